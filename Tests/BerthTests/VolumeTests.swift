import BerthSystem
import Testing

@testable import Berth

@Test func volumeSpecsParse() throws {
    let bind = try VolumeSpec(parsing: "/srv/data/:/data:ro")
    #expect(bind.source == .hostPath("/srv/data"))
    #expect(bind.destination == "/data")
    #expect(!bind.rw)
    #expect(bind.mode == "ro")

    let anon = try VolumeSpec(parsing: "/var/lib/db")
    #expect(anon.source == .anonymous)
    #expect(anon.rw)

    let named = try VolumeSpec(parsing: "dbdata:/var/lib/db:rw,z")
    #expect(named.source == .named("dbdata"))
    #expect(named.rw)

    let shared = try VolumeSpec(parsing: "/a:/b:ro,rshared")
    #expect(shared.propagation == "rshared")
}

@Test func badVolumeSpecsAreClearErrors() {
    let cases: [(String, String)] = [
        (":/x", "invalid volume specification: ':/x': empty source"),
        ("a:b", "invalid volume specification: 'a:b': destination \"b\" must be an absolute path"),
        ("/a:/b:xx", "invalid volume specification: '/a:/b:xx': invalid mode: xx"),
        ("/a:/b:ro,ro", "invalid volume specification: '/a:/b:ro,ro': invalid mode: ro,ro"),
        ("/x:ro", "invalid volume specification: '/x:ro': a volume cannot have a mode without a source"),
        ("/a:/b:c:d", "invalid volume specification: '/a:/b:c:d': expected [SOURCE:]DESTINATION[:MODE]"),
        ("relative", "invalid volume specification: 'relative': destination \"relative\" must be an absolute path"),
        ("/a:/", "invalid volume specification: '/a:/': destination can't be '/'"),
        ("", "invalid volume specification: '': empty destination"),
        ("bad name:/x", "invalid volume specification: 'bad name:/x': \"bad name\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"),
        ("v1:/x:shared", "invalid volume specification: 'v1:/x:shared': propagation mode is only valid for bind mounts"),
    ]
    for (spec, message) in cases {
        #expect(throws: BerthError(.invalidArgument, message)) { try VolumeSpec(parsing: spec) }
    }
    for bad in ["", ":ro", "a:b:c", "a:xx", "a:shared"] {
        #expect(throws: BerthError.self) { try VolumesFromSpec(parsing: bad) }
    }
}

@Test func namedAndAnonymousVolumesTrackReferences() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    let c1 = ContainerID(), c2 = ContainerID()
    let named = try f.volumes.acquire("cache", for: c1)
    #expect(FileIO.isDirectory(named.mountpoint))
    #expect(named.mountpoint == f.root + "/volumes/cache/_data")
    _ = try f.volumes.acquire("cache", for: c2)
    let anon = try f.volumes.acquire(nil, for: c1)
    #expect(anon.anonymous && anon.name.count == 64)
    #expect(try f.volumes.load("cache").references == [c1, c2])

    #expect(throws: BerthError(.invalidState, "remove cache: volume is in use - [\(c1.full), \(c2.full)]")) {
        try f.volumes.remove("cache")
    }
    // rm -v of c1: its anonymous volume goes, the named one stays (still used by c2).
    #expect(try f.volumes.release(container: c1, removeAnonymous: true) == [anon.name])
    #expect(!FileIO.exists(anon.mountpoint))
    #expect(try f.volumes.load("cache").references == [c2])
    try f.volumes.release(container: c2, removeAnonymous: true)
    #expect(try f.volumes.load("cache").references.isEmpty)  // named volumes survive rm -v

    let listing = try f.volumes.listing()
    #expect(listing == "DRIVER    VOLUME NAME\nlocal     cache\n")
    try f.volumes.remove("cache")
    #expect(throws: BerthError(.notFound, "get cache: no such volume")) { try f.volumes.remove("cache") }
    #expect(try f.volumes.list().isEmpty)
}

@Test func mountsCombineVolumesFromBindsAndImageVolumes() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    let resolver = MountResolver(containers: f.store, volumes: f.volumes)

    var dataConfig = ContainerConfig(image: "busybox")
    dataConfig.volumes = ["shared:/shared", "/data", "/srv:/srv:ro"]
    var data = try f.store.create(config: dataConfig, name: "data")
    data.state.mounts = try resolver.resolve(dataConfig, for: data.id)
    try f.store.save(data)
    #expect(data.state.mounts.map(\.destination) == ["/data", "/shared", "/srv"])

    var appConfig = ContainerConfig(image: "busybox")
    appConfig.volumesFrom = ["data:ro"]
    appConfig.volumes = ["/host/cfg:/shared"]  // replaces the inherited /shared
    appConfig.imageVolumes = ["/var/lib/app", "/data"]  // /data is already inherited
    let app = try f.store.create(config: appConfig, name: "app")
    let mounts = try resolver.resolve(appConfig, for: app.id)
    #expect(mounts.map(\.destination) == ["/data", "/shared", "/srv", "/var/lib/app"])
    let byDest = Dictionary(uniqueKeysWithValues: mounts.map { ($0.destination, $0) })
    #expect(byDest["/data"]!.name == data.state.mounts[0].name)
    #expect(byDest["/data"]!.rw == false)
    #expect(byDest["/shared"]!.type == .bind && byDest["/shared"]!.source == "/host/cfg")
    #expect(byDest["/var/lib/app"]!.anonymous)
    #expect(try f.volumes.load(data.state.mounts[0].name).references == [data.id, app.id])

    // Inheriting without a mode keeps each mount's own.
    var other = ContainerConfig(image: "busybox")
    other.volumesFrom = [data.id.short]
    let third = try f.store.create(config: other, name: "third")
    let inherited = try resolver.resolve(other, for: third.id)
    #expect(inherited.map(\.rw) == [true, true, false])
}

@Test func failedMountResolutionReleasesWhatItTook() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    let resolver = MountResolver(containers: f.store, volumes: f.volumes)
    let id = ContainerID()

    var missing = ContainerConfig(image: "busybox")
    missing.volumes = ["/a"]
    missing.volumesFrom = ["nosuch"]
    #expect(throws: BerthError(.notFound, "No such container: nosuch")) { try resolver.resolve(missing, for: id) }

    var duplicate = ContainerConfig(image: "busybox")
    duplicate.volumes = ["v1:/x", "/y:/x"]
    #expect(throws: BerthError(.invalidArgument, "Duplicate mount point: /x")) { try resolver.resolve(duplicate, for: id) }

    var badImage = ContainerConfig(image: "busybox")
    badImage.volumes = ["/anon", "named1:/n"]
    badImage.imageVolumes = ["relative"]
    #expect(throws: BerthError.self) { try resolver.resolve(badImage, for: id) }
    #expect(try f.volumes.list().isEmpty)

    // A failure in the middle (a corrupt inherited mount) releases the references taken before it.
    var source = try f.store.create(config: ContainerConfig(image: "busybox"), name: "src")
    source.state.mounts = [MountPoint(type: .volume, name: "ok1", source: "", destination: "/a"),
                           MountPoint(type: .volume, name: "bad name", source: "", destination: "/b")]
    try f.store.save(source)
    var midway = ContainerConfig(image: "busybox")
    midway.volumesFrom = ["src"]
    midway.volumes = ["/anon"]
    #expect(throws: BerthError.self) { try resolver.resolve(midway, for: id) }
    #expect(try f.volumes.list().map(\.name) == ["ok1"])
    #expect(try f.volumes.load("ok1").references.isEmpty)
}
