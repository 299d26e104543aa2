@testable import BerthImageLayers
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct LayerStoreTests {
    @Test func roundTripMountModifyDiffCommitSaveReimport() throws {
        let f = try StoreFixture("rt")
        defer { f.remove() }
        #expect(f.busybox.tags == ["busybox:latest"])
        let fs = try f.store.createContainerRootfs(name: "c1", image: "busybox")
        try fs.mount()
        defer { try? fs.unmount(lazy: true) }
        #expect(fs.isMounted)
        let m = fs.mergedDir
        #expect(FileIO.exists(m + "/bin/busybox"))
        try FileIO.writeAtomically(m + "/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
        try FileIO.writeAtomically(m + "/tmp/t.txt", "t")
        #expect(unlink(m + "/bin/cat") == 0)
        #expect(symlink("/etc/passwd", m + "/link") == 0)
        try FileIO.writeAtomically(m + "/newfile", "n")
        try FileIO.makeDirectories(m + "/opt/app/sub")
        try FileIO.writeAtomically(m + "/opt/app/sub/f", "f")

        let changes = try f.store.diff(name: "c1").map(\.description)
        #expect(changes == ["C /bin", "D /bin/cat", "C /etc", "C /etc/passwd", "A /link", "A /newfile",
                            "A /opt", "A /opt/app", "A /opt/app/sub", "A /opt/app/sub/f", "C /tmp", "A /tmp/t.txt"])

        let committed = try f.store.commit(name: "c1", options: CommitOptions(
            createdBy: "/bin/sh -c edit", comment: "edited", tag: "edited:v1",
            changes: ["CMD [\"/bin/sh\"]", "ENV A=b", "EXPOSE 8080", "WORKDIR /opt/app", "VOLUME /data"]))
        #expect(committed.layers.count == 2)
        #expect(committed.config.config?.cmd == ["/bin/sh"])
        #expect(committed.config.config?.env == ["A=b"])
        #expect(committed.config.config?.exposedPorts?["8080/tcp"] != nil)
        #expect(committed.config.config?.workingDir == "/opt/app")
        #expect(committed.config.config?.volumes?["/data"] != nil)
        let hist = try f.store.history("edited:v1")
        #expect(hist.count == 2)
        #expect(hist[0].createdBy == "/bin/sh -c edit" && hist[0].comment == "edited" && hist[0].image == committed.id)
        #expect(hist[1].comment == "Imported from -" && hist[1].image == nil)

        let original = try treeListing(m)
        for format in [ArchiveFormat.dockerSave, .ociLayout] {
            let out = f.scratch.path + "/saved-\(format.rawValue)"
            try f.store.save(["edited:v1"], to: out, format: format)
            let other = try LayerStore(root: f.scratch.path + "/other-\(format.rawValue)")
            let imported = try other.importArchive(out, format: .auto)
            #expect(imported.count == 1)
            #expect(imported[0].id == committed.id)
            let fs2 = try other.createContainerRootfs(name: "c2", image: committed.id.hex)
            try fs2.mount()
            defer { try? fs2.unmount(lazy: true) }
            #expect(try treeListing(fs2.mergedDir) == original, "\(format)")
            try fs2.unmount()
            try other.removeContainerRootfs(name: "c2")
        }
        try fs.unmount()
        #expect(!fs.isMounted)
    }

    @Test func twoLayerWhiteoutsAndOpaqueDirs() throws {
        let s = try Scratch("two")
        defer { s.remove() }
        let lower = s.path + "/lower.tar", upper = s.path + "/upper.tar"
        try writeTar(lower, [.dir("a/"), .file("a/x", "x"), .file("a/y", "y"), .dir("b/"), .file("b/old", "o"), .file("gone", "g"), .file("keep", "k")])
        try writeTar(upper, [.dir("b/"), .file("b/.wh..wh..opq", ""), .file("b/new", "n"), .file("a/.wh.x", ""), .file(".wh.gone", "")])
        let save = s.path + "/two.tar"
        try writeDockerSave(save, layers: [lower, upper], tag: "two:latest")
        let store = try LayerStore(root: s.path + "/root")
        let img = try store.importArchive(save)[0]
        #expect(img.layers.count == 2)
        let fs = try store.createContainerRootfs(name: "w", image: "two", initLayer: false)
        try fs.mount()
        defer { try? fs.unmount(lazy: true) }
        let merged = try treeListing(fs.mergedDir).map { String($0.split(separator: " ")[0]) }
        #expect(merged == ["/a", "/a/y", "/b", "/b/new", "/keep"])

        let flat = try s.sub("flat")
        for l in [lower, upper] { _ = try TarExtractor.extract(archive: l, into: flat, options: ExtractionOptions(whiteouts: .flatten)) }
        #expect(try treeListing(flat).map { String($0.split(separator: " ")[0]) } == merged)
        let flat2 = try s.sub("flat2")
        try store.flatten("two", into: flat2)
        #expect(try treeListing(flat2) == treeListing(fs.mergedDir))

        // Deleting through the overlay shows in diff; an opaque dir lists what it hides.
        try FileIO.removeTree(fs.mergedDir + "/b")
        try FileIO.makeDirectories(fs.mergedDir + "/b")
        try FileIO.writeAtomically(fs.mergedDir + "/b/fresh", "f")
        unlink(fs.mergedDir + "/keep")
        let d = try store.diff(name: "w").map(\.description)
        #expect(d.contains("C /b") && d.contains("D /b/new") && d.contains("A /b/fresh") && d.contains("D /keep"))
    }

    @Test func digestMismatchAndTruncationLeaveNothing() throws {
        let s = try Scratch("dm")
        defer { s.remove() }
        let layer = s.path + "/l.tar"
        try writeTar(layer, [.file("hello", String(repeating: "hello world\n", count: 5000))])
        let store = try LayerStore(root: s.path + "/root")

        let bad = s.path + "/bad.tar"
        try writeDockerSave(bad, layers: [layer], tag: "bad:1", diffIDs: [Digest.of([1, 2, 3])])
        #expect {
            try store.importArchive(bad)
        } throws: { e in
            guard let e = e as? BerthError else { return false }
            return e.code == .corrupt && e.message.contains("diff_id")
        }

        let good = s.path + "/good.tar"
        try writeDockerSave(good, layers: [layer], tag: "good:1")
        let bytes = try FileIO.readBytes(good)
        let cut = s.path + "/cut.tar"
        try FileIO.writeAtomically(cut, Array(bytes[0..<(bytes.count / 2)]))
        #expect(throws: BerthError.self) { try store.importArchive(cut, format: .dockerSave) }

        var corrupt = bytes
        corrupt[1024 + 600] ^= 0xff  // inside the layer's data
        let corr = s.path + "/corrupt.tar"
        try FileIO.writeAtomically(corr, corrupt)
        #expect(throws: BerthError.self) { try store.importArchive(corr, format: .dockerSave) }

        #expect(try store.images().isEmpty)
        #expect(try store.layers().isEmpty)
        #expect(try listDirectory(s.path + "/root/tmp").isEmpty)
        #expect(try listDirectory(s.path + "/root/blobs/sha256").isEmpty)

        // And the good one imports.
        let img = try store.importArchive(good)[0]
        #expect(img.tags == ["good:1"])
    }

    @Test func referencesKeepLayersUntilUnused() throws {
        let f = try StoreFixture("rf")
        defer { f.remove() }
        let layer = f.busybox.layers[0]
        try f.store.tag("busybox", as: "other:tag")
        _ = try f.store.createContainerRootfs(name: "user", image: "busybox")
        #expect(try f.store.referenceCount(of: layer) == 2)
        #expect(try f.store.removeImage("other:tag") == ["Untagged: other:tag"])
        #expect(throws: BerthError.self) { try f.store.removeImage("busybox") }
        #expect(FileIO.isDirectory(f.store.layerPath(layer)))
        try f.store.removeContainerRootfs(name: "user")
        let out = try f.store.removeImage("busybox")
        #expect(out.contains("Untagged: busybox:latest"))
        #expect(try f.store.layers().isEmpty)
        #expect(try f.store.images().isEmpty)
    }

    @Test func historyAndImagesLookLikeDocker() throws {
        let f = try StoreFixture("hi")
        defer { f.remove() }
        let rows = try f.store.history("busybox")
        let created = Timestamp.parse(rows[0].created!)!
        let text = LayerStore.formatHistory(rows, truncate: false, now: created + 6 * 60 + 5)
        let lines = text.split(separator: "\n")
        #expect(lines[0] == "IMAGE                                                                     CREATED         CREATED BY   SIZE      COMMENT")
        #expect(lines[1].hasPrefix(f.busybox.id.description + "   6 minutes ago                "))
        #expect(lines[1].hasSuffix("B    Imported from -") || lines[1].hasSuffix("B     Imported from -"))
        #expect(humanSize(1_980_000) == "1.98MB")
        #expect(humanSize(0) == "0B")
        #expect(humanSize(745_000) == "745kB")
        let images = LayerStore.formatImages(try f.store.images())
        #expect(images.hasPrefix("REPOSITORY   TAG       IMAGE ID       CREATED"))
        #expect(images.contains("busybox      latest    \(f.busybox.id.short)"))
    }

    @Test func ociLayoutAcceptedBySkopeoAndUmoci() throws {
        let f = try StoreFixture("oc")
        defer { f.remove() }
        let dir = f.scratch.path + "/layout"
        try f.store.save(["busybox"], to: dir, format: .ociLayout)
        let inspect = try Command.check("skopeo", ["inspect", "oci:\(dir):latest"])
        #expect(inspect.stdout.contains(f.busybox.layers[0].description) || inspect.stdout.contains("\"Layers\""))
        let bundle = f.scratch.path + "/bundle"
        try Command.check("umoci", ["unpack", "--image", "\(dir):latest", bundle])
        #expect(FileIO.exists(bundle + "/rootfs/bin/busybox"))
        #expect(FileIO.exists(bundle + "/config.json"))

        // A committed layer (plain tar, our whiteouts and opaque marker) read by umoci.
        let fs = try f.store.createContainerRootfs(name: "oc", image: "busybox")
        try fs.mount()
        defer { try? fs.unmount(lazy: true) }
        unlink(fs.mergedDir + "/bin/cat")
        try FileIO.removeTree(fs.mergedDir + "/etc")
        try FileIO.makeDirectories(fs.mergedDir + "/etc")
        try FileIO.writeAtomically(fs.mergedDir + "/etc/only", "o")
        try fs.unmount()
        try f.store.commit(name: "oc", options: CommitOptions(tag: "busybox:edited"))
        let dir2 = f.scratch.path + "/layout2"
        try f.store.save(["busybox:edited"], to: dir2, format: .ociLayout)
        try Command.check("skopeo", ["inspect", "oci:\(dir2):edited"])
        let bundle2 = f.scratch.path + "/bundle2"
        try Command.check("umoci", ["unpack", "--image", "\(dir2):edited", bundle2])
        #expect(!exists(bundle2 + "/rootfs/bin/cat"))
        #expect(FileIO.exists(bundle2 + "/rootfs/bin/ls"))
        #expect(try listDirectory(bundle2 + "/rootfs/etc") == ["only"])
    }
}

@Test func theInitLayerHoldsMountPointsAboveTheImage() throws {
    let s = try Scratch("init")
    defer { s.remove() }
    let image = s.path + "/etc.tar"
    // The image has an /etc of its own and a symlink where a container mounts /etc/hosts.
    try writeTar(image, [.dir("etc/"), .file("etc/os-release", "x"), .symlink("etc/hosts", to: "/outside/hosts")])
    let store = try LayerStore(root: s.path + "/root")
    try store.importRootfs(image, tag: "img")
    let fs = try store.createContainerRootfs(name: "c", image: "img")
    #expect(fs.lowerDirs.first == store.initLayerPath)
    try fs.mount()
    defer { try? fs.unmount(lazy: true) }
    for entry in LayerStore.initLayerEntries {
        var st = stat()
        #expect(lstat(fs.mergedDir + "/" + (entry.hasSuffix("/") ? String(entry.dropLast()) : entry), &st) == 0)
        #expect((st.st_mode & S_IFMT) == (entry.hasSuffix("/") ? S_IFDIR : S_IFREG), "\(entry)")
    }
    // The image's own files stay; the init layer's regular file shadows the symlink.
    #expect(try FileIO.read(fs.mergedDir + "/etc/os-release") == "x")
    // Nothing of it is in the container's upper directory: diff sees no change.
    #expect(try listDirectory(fs.upperDir).isEmpty)
    #expect(try store.diff(name: "c").isEmpty)
    // Without it, the rootfs is the image exactly.
    let bare = try store.createContainerRootfs(name: "bare", image: "img", initLayer: false)
    #expect(!bare.lowerDirs.contains(store.initLayerPath))
}

@Test func aVolatileMountSkipsSyncsAndUnmountsCleanly() throws {
    let s = try Scratch("vol")
    defer { s.remove() }
    let image = s.path + "/one.tar"
    try writeTar(image, [.file("hello", "hi")])
    let store = try LayerStore(root: s.path + "/root")
    try store.importRootfs(image, tag: "one")
    let fs = try store.createContainerRootfs(name: "v", image: "one")
    try fs.mount(volatile: true)
    let line = try FileIO.read("/proc/self/mounts").split(separator: "\n").first { $0.contains(fs.mergedDir) }
    #expect(line?.contains("volatile") == true)
    #expect(try FileIO.read(fs.mergedDir + "/hello") == "hi")
    try fs.unmount()
    #expect(!fs.isMounted)
    try store.removeContainerRootfs(name: "v")
}

@Test func aRunRootHoldsMountPointsAndEphemeralRecords() throws {
    let s = try Scratch("run")
    defer { s.remove() }
    let image = s.path + "/one.tar"
    try writeTar(image, [.file("hello", "hi")])
    let run = s.path + "/run"
    let store = try LayerStore(root: s.path + "/root", runRoot: run)
    try store.importRootfs(image, tag: "one")
    let kept = try store.createContainerRootfs(name: "kept", image: "one")
    let once = try store.createContainerRootfs(name: "once", image: "one", ephemeral: true)
    #expect(kept.mergedDir == run + "/rootfs/kept/merged" && once.mergedDir == run + "/rootfs/once/merged")
    #expect(FileIO.exists(s.path + "/root/containers/kept/rootfs.json"))
    #expect(FileIO.exists(run + "/rootfs/once/rootfs.json") && !FileIO.exists(s.path + "/root/containers/once/rootfs.json"))
    #expect(try listDirectory(s.path + "/root/containers/once").sorted() == ["upper", "work"])
    #expect(Set(try store.containerRootfsList().map(\.name)) == ["kept", "once"])
    try once.mount()
    #expect(try FileIO.read(once.mergedDir + "/hello") == "hi")
    try once.unmount()

    // A reboot empties the run root: the kept rootfs mounts again, the ephemeral one is an orphan.
    try FileIO.removeTree(run)
    #expect(try store.containerRootfsList().map(\.name) == ["kept"])
    #expect(try store.removeOrphanedContainerRootfs() == ["once"])
    #expect(!FileIO.exists(s.path + "/root/containers/once"))
    let again = try store.containerRootfs(name: "kept")
    try again.mount()
    #expect(try FileIO.read(again.mergedDir + "/hello") == "hi")
    try again.unmount()
    try store.removeContainerRootfs(name: "kept")
    #expect(try listDirectory(s.path + "/root/containers").isEmpty)
}

@Test func pristineOverlayDirectoriesAreRecycledAndOthersNot() throws {
    let s = try Scratch("recycle")
    defer { s.remove() }
    let image = s.path + "/one.tar"
    try writeTar(image, [.file("hello", "hi")])
    let store = try LayerStore(root: s.path + "/root", runRoot: s.path + "/run")
    try store.importRootfs(image, tag: "one")
    let free = s.path + "/root/containers-free"

    // Used and left unchanged: its directories go to the free list, and the next rootfs takes them.
    let a = try store.createContainerRootfs(name: "a", image: "one", ephemeral: true)
    try a.mount()
    #expect(try FileIO.read(a.mergedDir + "/hello") == "hi")
    try store.removeContainerRootfs(name: "a")
    #expect(try listDirectory(free).count == 1)
    let b = try store.createContainerRootfs(name: "b", image: "one", ephemeral: true)
    #expect(try listDirectory(free).isEmpty)
    try b.mount()
    #expect(try FileIO.read(b.mergedDir + "/hello") == "hi")
    #expect(!FileIO.exists(b.mergedDir + "/written"))

    // Written to, or its "/" changed: removed, not recycled.
    try FileIO.writeAtomically(b.mergedDir + "/written", "x")
    try store.removeContainerRootfs(name: "b")
    #expect(((try? listDirectory(free)) ?? []).isEmpty)
    let c = try store.createContainerRootfs(name: "c", image: "one", ephemeral: true)
    try c.mount()
    chmod(c.mergedDir, 0o700)
    try store.removeContainerRootfs(name: "c")
    #expect(((try? listDirectory(free)) ?? []).isEmpty)
    #expect(try listDirectory(s.path + "/root/containers").isEmpty)
}
