@testable import BerthImageLayers
import BerthSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Archives written by other tools: skopeo's docker-archive (docker save layout) and an OCI layout
/// whose top layer umoci made (its whiteouts included).
@Suite struct InteropTests {
    @Test func skopeoDockerArchiveImports() throws {
        let f = try StoreFixture("sk")
        defer { f.remove() }
        let layout = f.scratch.path + "/layout"
        try f.store.save(["busybox"], to: layout, format: .ociLayout)
        let archive = f.scratch.path + "/skopeo-docker.tar"
        try Command.check("skopeo", ["copy", "oci:\(layout):latest", "docker-archive:\(archive):bb:skopeo"])
        let other = try LayerStore(root: f.scratch.path + "/other")
        let got = try other.importArchive(archive)
        #expect(got.count == 1)
        #expect(got[0].tags == ["bb:skopeo"])
        #expect(got[0].layers == f.busybox.layers)
        let fs = try other.createContainerRootfs(name: "s", image: "bb:skopeo")
        try fs.mount()
        defer { try? fs.unmount(lazy: true) }
        #expect(FileIO.exists(fs.mergedDir + "/bin/busybox"))
    }

    @Test func umociRepackedLayerWithWhiteoutsImports() throws {
        let f = try StoreFixture("um")
        defer { f.remove() }
        let layout = f.scratch.path + "/layout"
        try f.store.save(["busybox"], to: layout, format: .ociLayout)
        let bundle = f.scratch.path + "/bundle"
        try Command.check("umoci", ["unpack", "--image", "\(layout):latest", bundle])
        #expect(unlink(bundle + "/rootfs/bin/cat") == 0)
        try FileIO.removeTree(bundle + "/rootfs/etc")
        try FileIO.makeDirectories(bundle + "/rootfs/etc")
        try FileIO.writeAtomically(bundle + "/rootfs/etc/only", "x")
        try FileIO.writeAtomically(bundle + "/rootfs/added", "a")
        try Command.check("umoci", ["repack", "--image", "\(layout):edited", bundle])

        let other = try LayerStore(root: f.scratch.path + "/other")
        let got = try other.importArchive(layout)
        let edited = try #require(got.first { $0.tags == ["layout:edited"] })
        #expect(edited.layers.count == 2)
        let fs = try other.createContainerRootfs(name: "u", image: "layout:edited", initLayer: false)
        try fs.mount()
        defer { try? fs.unmount(lazy: true) }
        #expect(!exists(fs.mergedDir + "/bin/cat"))
        #expect(FileIO.exists(fs.mergedDir + "/bin/ls"))
        #expect(try listDirectory(fs.mergedDir + "/etc") == ["only"])
        #expect(try FileIO.read(fs.mergedDir + "/added") == "a")

        let flat = f.scratch.path + "/flat"
        try FileIO.makeDirectories(flat)
        try other.flatten("layout:edited", into: flat)
        #expect(try treeListing(flat) == treeListing(fs.mergedDir))
    }
}
