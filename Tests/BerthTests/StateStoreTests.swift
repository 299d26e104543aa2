import BerthSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

@Test func containerRecordRoundTrips() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    var config = ContainerConfig(image: "busybox", cmd: ["sleep", "100"])
    config.env = ["A=1"]
    config.portSpecs = ["18080:8080"]
    config.memoryBytes = 64 << 20
    config.cpus = 0.5
    config.labels = ["k": "v"]
    var record = try f.store.create(config: config, name: "web")
    #expect(record.name == "web")
    #expect(record.state.status == .created)
    #expect(try f.store.load(record.id) == record)

    record.state.status = .running
    record.state.pid = 4242
    record.state.startedAt = Timestamp(seconds: 1_800_000_000, nanoseconds: 123_456_789)
    record.state.ipAddress = "172.17.0.2"
    record.state.ports = [PublishedPort(hostPort: 18080, containerPort: 8080)]
    record.state.mounts = [MountPoint(type: .bind, source: "/srv", destination: "/data", rw: false, mode: "ro")]
    try f.store.save(record)
    #expect(try f.store.load(record.id) == record)

    let updated = try f.store.updateState(of: record.id) { $0.status = .exited; $0.exitCode = 3; $0.pid = 0 }
    #expect(try f.store.load(record.id).state == updated)
    #expect(try f.store.list().map(\.id) == [record.id])

    try f.store.remove(record.id)
    #expect(try f.store.list().isEmpty)
    #expect(f.store.owner(ofName: "web") == nil)
    #expect(throws: BerthError.self) { try f.store.load(record.id) }
}

@Test func timestampsUseDockersFormat() throws {
    #expect(Timestamp.zero.description == "0001-01-01T00:00:00Z")
    #expect(try Timestamp(parsing: "0001-01-01T00:00:00Z") == .zero)
    let t = Timestamp(seconds: 1_795_405_363, nanoseconds: 887_918_700)
    #expect(t.description == "2026-11-23T03:42:43.8879187Z")
    #expect(try Timestamp(parsing: t.description) == t)
    #expect(throws: BerthError.self) { try Timestamp(parsing: "2026-11-23 03:42:43Z") }
}

@Test func duplicateNameIsDockersConflictError() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    let first = try f.store.create(config: ContainerConfig(image: "busybox"), name: "/xy")
    #expect(throws: BerthError(.alreadyExists,
                               "Conflict. The container name \"/xy\" is already in use by container \"\(first.id.full)\". You have to remove (or rename) that container to be able to reuse that name.")) {
        try f.store.create(config: ContainerConfig(image: "busybox"), name: "xy")
    }
    #expect(try f.store.ids().count == 1)
    try f.store.remove(first.id)
    _ = try f.store.create(config: ContainerConfig(image: "busybox"), name: "xy")
}

@Test func concurrentCreatesWithOneNameHaveExactlyOneWinner() async throws {
    let f = try StoreFixture()
    defer { f.remove() }
    let root = f.root
    let results = await withTaskGroup(of: Bool.self) { group in
        for _ in 0..<8 {
            group.addTask {
                // Each task opens its own store (its own lock descriptor), like separate processes.
                guard let store = try? StateStore(root: root) else { return false }
                return (try? store.create(config: ContainerConfig(image: "busybox"), name: "race")) != nil
            }
        }
        var r: [Bool] = []
        for await ok in group { r.append(ok) }
        return r
    }
    #expect(results.filter { $0 }.count == 1)
    #expect(try f.store.ids().count == 1)
}

@Test func lookupByIdNameAndPrefix() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    let a = try f.store.create(config: ContainerConfig(image: "busybox"), name: "alpha",
                               id: try ContainerID("abc1" + String(repeating: "0", count: 60)))
    let b = try f.store.create(config: ContainerConfig(image: "busybox"), name: "beta",
                               id: try ContainerID("abc2" + String(repeating: "0", count: 60)))
    #expect(try f.store.resolve(a.id.full) == a.id)
    #expect(try f.store.resolve("alpha") == a.id)
    #expect(try f.store.resolve("/beta") == b.id)
    #expect(try f.store.resolve("abc2") == b.id)
    #expect(try f.store.resolve("ABC1") == a.id)
    #expect(throws: BerthError(.invalidArgument, "Multiple IDs found with provided prefix: abc")) { try f.store.resolve("abc") }
    #expect(throws: BerthError(.notFound, "No such container: nope")) { try f.store.resolve("nope") }
    #expect(throws: BerthError(.notFound, "No such container: ")) { try f.store.resolve("") }
    #expect(throws: BerthError(.notFound, "No such container: fff")) { try f.store.resolve("fff") }
}

@Test func renameMovesTheName() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    let a = try f.store.create(config: ContainerConfig(image: "busybox"), name: "one")
    _ = try f.store.create(config: ContainerConfig(image: "busybox"), name: "two")
    #expect(throws: BerthError.self) { try f.store.rename(a.id, to: "two") }
    #expect(try f.store.load(a.id).name == "one")
    try f.store.rename(a.id, to: "three")
    #expect(try f.store.load(a.id).name == "three")
    #expect(f.store.owner(ofName: "one") == nil)
    #expect(try f.store.resolve("three") == a.id)
}

@Test func namesAreValidatedAndGenerated() throws {
    for good in ["ab", "a1", "web-1", "my_db.x", "/lead"] { #expect(throws: Never.self) { try ContainerName.validate(good) } }
    for bad in ["a", "", "-ab", "_ab", "a b", "a/b", "ab!", "é1"] {
        #expect(throws: BerthError(.invalidArgument, "Invalid container name (\(bad)), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")) {
            try ContainerName.validate(bad)
        }
    }
    #expect(ContainerName.adjectives.count >= 50)
    #expect(ContainerName.surnames.count >= 100)
    for attempt in 0..<4 {
        let name = ContainerName.generate(attempt: attempt)
        #expect(try ContainerName.validate(name) == name)
        #expect(name.last!.isNumber == (attempt > 0))
    }
    let f = try StoreFixture()
    defer { f.remove() }
    let r = try f.store.create(config: ContainerConfig(image: "busybox"))
    #expect(r.name.contains("_"))
    #expect(f.store.owner(ofName: r.name) == r.id)
}

@Test func badNameLeavesNoTrace() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    #expect(throws: BerthError.self) { try f.store.create(config: ContainerConfig(image: "busybox"), name: "bad name") }
    #expect(try f.store.ids().isEmpty)
    #expect(try directoryEntries(f.root + "/names").isEmpty)
}

@Test func removedOnExitContainersLiveInTheExecRoot() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    #expect(f.store.execRoot == f.root + "/run")
    var config = ContainerConfig(image: "busybox", cmd: ["true"])
    config.autoRemove = true
    let ephemeral = try f.store.create(config: config, name: "once")
    let kept = try f.store.create(config: ContainerConfig(image: "busybox", cmd: ["true"]), name: "kept")
    #expect(f.store.isEphemeral(ephemeral.id))
    #expect(!f.store.isEphemeral(kept.id))
    #expect(f.store.directory(of: ephemeral.id) == f.root + "/run/containers/" + ephemeral.id.full)
    #expect(f.store.directory(of: kept.id) == f.root + "/containers/" + kept.id.full)
    // Both are found by id, name and prefix, and listed.
    #expect(try f.store.resolve("once") == ephemeral.id)
    #expect(try f.store.resolve(String(ephemeral.id.full.prefix(10))) == ephemeral.id)
    #expect(Set(try f.store.list().map(\.id)) == [ephemeral.id, kept.id])
    // A name stays unique across both places.
    #expect(throws: BerthError.self) { try f.store.create(config: config, name: "kept") }
    #expect(throws: BerthError.self) { try f.store.create(config: ContainerConfig(image: "busybox", cmd: ["true"]), name: "once") }

    try f.store.remove(ephemeral.id)
    #expect(!FileIO.exists(f.root + "/run/containers/" + ephemeral.id.full))
    #expect(f.store.owner(ofName: "once") == nil)
    #expect(try f.store.list().map(\.id) == [kept.id])
}

@Test func anUnreadableStateReadsAsExited() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    let record = try f.store.create(config: ContainerConfig(image: "busybox", cmd: ["true"]), name: "torn")
    _ = try f.store.updateState(of: record.id) { $0.status = .running; $0.pid = 4242 }
    // What a power loss can leave of a document written without fsync.
    try FileIO.writeAtomically(f.store.directory(of: record.id) + "/state.json", "")
    let loaded = try f.store.load(record.id)
    #expect(loaded.state.status == .exited)
    #expect(loaded.state.pid == 0)
    #expect(loaded.config == record.config)
}

@Test func aNewExecRootIsReported() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    #expect(f.store.execRootIsNew)
    #expect(try StateStore(root: f.root).execRootIsNew == false)
    try FileIO.removeTree(f.root + "/run")
    #expect(try StateStore(root: f.root).execRootIsNew)
    #expect(StateStore.defaultExecRoot(for: StateStore.defaultRoot) == "/run/berth")
}
