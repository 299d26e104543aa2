@testable import BerthImageLayers
import BerthSystem
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ImportFormatsTests {
    /// 40 layers make the lowerdir option longer than a page: the mount falls back to fd paths.
    @Test func manyLayersMountThroughFdPaths() throws {
        let s = try Scratch("many")
        defer { s.remove() }
        var layers: [String] = []
        for i in 0..<40 {
            let p = s.path + "/l\(i).tar"
            try writeTar(p, [.dir("d/"), .file("d/f\(i)", "\(i)"), .file("top", "layer \(i)")])
            layers.append(p)
        }
        let save = s.path + "/many.tar"
        try writeDockerSave(save, layers: layers, tag: "many:latest")
        let store = try LayerStore(root: s.path + "/root-with-a-rather-long-directory-name-to-pass-the-page-limit")
        let imported = try store.importArchive(save)
        #expect(imported.first?.tags == ["many:latest"], "\(imported.map(\.tags))")
        let fs = try store.createContainerRootfs(name: "m", image: "many")
        #expect(fs.lowerDirs.joined(separator: ":").utf8.count > 4000)
        try fs.mount()
        defer { try? fs.unmount(lazy: true) }
        #expect(try FileIO.read(fs.mergedDir + "/top") == "layer 39")
        #expect(try listDirectory(fs.mergedDir + "/d").count == 40)
        try fs.unmount()
    }

    /// Newer Docker writes docker-save archives in OCI style: blobs/sha256, index.json, oci-layout
    /// and a manifest.json naming blobs; the archive may also be gzip-compressed as a whole, and
    /// layers may be gzip blobs.
    @Test func ociStyleDockerSaveAndGzipArchives() throws {
        let s = try Scratch("ocis")
        defer { s.remove() }
        let layer = s.path + "/layer.tar.gz"
        try writeTar(layer, [.dir("etc/"), .file("etc/os-release", "ID=test\n")], gzip: true)
        let source = try LayerStore(root: s.path + "/src")
        let img = try source.importRootfs(layer, tag: "t:1")
        let layout = s.path + "/layout"
        try source.save(["t:1"], to: layout, format: .ociLayout)

        // Wrap the layout in a tar with a docker-style manifest.json naming blobs.
        let rec = try source.layerRecord(img.layers[0])
        let manifest = [DockerSaveManifestEntry(config: "blobs/sha256/\(img.id.hex)", repoTags: ["t:1"],
                                                layers: ["blobs/sha256/\(rec.blob.hex)"])]
        try FileIO.writeAtomically(layout + "/manifest.json", Array(try canonicalJSON(manifest)))
        let archive = s.path + "/docker25.tar.gz"
        try Command.check("tar", ["-czf", archive, "-C", layout, "."])

        let progress = Mutex<[Int64]>([])
        let store = try LayerStore(root: s.path + "/dst")
        let got = try store.importArchive(archive, format: .auto) { p in progress.withLock { $0.append(p.bytesDone) } }
        #expect(got.map(\.id) == [img.id])
        #expect(got[0].tags == ["t:1"])
        #expect(try FileIO.read(store.layerPath(img.layers[0]) + "/etc/os-release") == "ID=test\n")
        #expect(progress.withLock { !$0.isEmpty })

        // The same layout imported directly; the tag comes from its ref name.
        let store2 = try LayerStore(root: s.path + "/dst2")
        let got2 = try store2.importArchive(layout)
        #expect(got2[0].id == img.id && got2[0].tags == ["layout:1"])
    }

    @Test func hostileLayerInsideAnImageLeavesNothing() throws {
        let s = try Scratch("hl")
        defer { s.remove() }
        let good = s.path + "/good.tar", evil = s.path + "/evil.tar"
        try writeTar(good, [.file("ok", "ok")])
        try writeTar(evil, [.symlink("up", to: "/"), .file("up/tmp/pwned-\(getpid())", "x")])
        let save = s.path + "/evil-image.tar"
        try writeDockerSave(save, layers: [good, evil], tag: "evil:latest")
        let store = try LayerStore(root: s.path + "/root")
        #expect {
            try store.importArchive(save)
        } throws: { e in
            (e as? BerthError)?.code == .denied && "\(e)".contains("up/tmp/pwned")
        }
        #expect(!exists("/tmp/pwned-\(getpid())"))
        #expect(try store.images().isEmpty && store.layers().isEmpty)
        #expect(try listDirectory(s.path + "/root/tmp").isEmpty)
    }

    @Test func garbageFromACrashIsCollected() throws {
        let s = try Scratch("gc")
        defer { s.remove() }
        let layer = s.path + "/l.tar"
        try writeTar(layer, [.file("a", "a")])
        let store = try LayerStore(root: s.path + "/root")
        let img = try store.importRootfs(layer, tag: "keep")
        // A dead process's staging dir, an orphan layer and an orphan blob.
        try FileIO.makeDirectories(s.path + "/root/tmp/import-2147483646-abcdef/layer-0/diff")
        let orphan = Digest.of(Array("orphan".utf8))
        try FileIO.makeDirectories(store.layerPath(orphan))
        try FileIO.writeAtomically(s.path + "/root/blobs/sha256/" + orphan.hex, "x")
        let removed = try store.collectGarbage()
        #expect(removed.count == 3, "\(removed)")
        #expect(try listDirectory(s.path + "/root/tmp").isEmpty)
        #expect(try store.layers() == img.layers)
        #expect(try store.image("keep").id == img.id)
        #expect(try store.collectGarbage().isEmpty)
    }

    @Test func badReferencesAndNamesAreRefused() throws {
        let s = try Scratch("bad")
        defer { s.remove() }
        let store = try LayerStore(root: s.path + "/root")
        #expect(throws: BerthError.self) { try store.image("nope") }
        #expect(throws: BerthError.self) { try store.createContainerRootfs(name: "../x", image: "nope") }
        #expect(throws: BerthError.self) { try store.importArchive(s.path + "/missing.tar") }
        #expect(throws: BerthError.self) { try store.importArchive(s.path, format: .ociLayout) }
        var run = ImageConfig.RunConfig()
        #expect(throws: BerthError.self) { try LayerStore.apply(change: "EXPOSE 99999", to: &run) }
        #expect(throws: BerthError.self) { try LayerStore.apply(change: "FROB x", to: &run) }
        try LayerStore.apply(change: "CMD echo hi", to: &run)
        #expect(run.cmd == ["/bin/sh", "-c", "echo hi"])
    }
}
