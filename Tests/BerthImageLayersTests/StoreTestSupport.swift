@testable import BerthImageLayers
import BerthSystem
import BerthTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Writes a docker-save tarball holding one image made of `layers` (paths of plain tar files).
/// `diffIDs` overrides the config's diff_ids (to test mismatches).
func writeDockerSave(_ path: String, layers: [String], tag: String, diffIDs: [Digest]? = nil,
                     config run: ImageConfig.RunConfig = ImageConfig.RunConfig()) throws {
    let ids = try diffIDs ?? layers.map { Digest.of(try FileIO.readBytes($0)) }
    var config = ImageConfig(diffIDs: ids, config: run)
    config.created = "2024-01-01T00:00:00Z"
    config.history = ids.map { _ in ImageConfig.History(created: "2024-01-01T00:00:00Z", createdBy: "/bin/sh -c #(nop) ADD file in /") }
    let configBytes = try config.encoded()
    let configName = Digest.of(configBytes).hex + ".json"
    let sink = try FileSink(creating: path)
    let tar = TarWriter(sink: sink)
    var names: [String] = []
    for (i, l) in layers.enumerated() {
        let name = "layer\(i)/layer.tar"
        try tar.writeFile(TarEntry(name: name, kind: .regular), data: try FileIO.readBytes(l))
        names.append(name)
    }
    try tar.writeFile(TarEntry(name: configName, kind: .regular), data: configBytes)
    let manifest = [DockerSaveManifestEntry(config: configName, repoTags: [tag], layers: names)]
    try tar.writeFile(TarEntry(name: "manifest.json", kind: .regular), data: Array(try canonicalJSON(manifest)))
    try tar.finish()
}

/// A store in a scratch dir, with the busybox rootfs imported as `busybox:latest`.
struct StoreFixture {
    let scratch: Scratch
    let store: LayerStore
    let busybox: Image

    init(_ tag: String) throws {
        scratch = try Scratch(tag)
        do {
            store = try LayerStore(root: scratch.path + "/root")
            let rootfs = try makeBusyboxRootfs()
            defer { rootfs.remove() }
            let tar = scratch.path + "/busybox.tar.gz"
            _ = try DirectoryArchiver.archive(directory: rootfs.path, to: tar, gzip: true)
            busybox = try store.importArchive(tar, tag: "busybox")[0]
        } catch {
            scratch.remove()
            throw error
        }
    }

    /// Unmounts every rootfs and removes the scratch dir.
    func remove() {
        for fs in (try? store.containerRootfsList()) ?? [] { try? fs.unmount(lazy: true) }
        scratch.remove()
    }
}

func isMountedAnywhere(_ prefix: String) -> Bool {
    ((try? FileIO.read("/proc/self/mountinfo")) ?? "").split(separator: "\n").contains {
        let f = $0.split(separator: " ")
        return f.count > 4 && f[4].hasPrefix(prefix)
    }
}

/// BusyboxRootfs, retried: running the freshly copied busybox can fail with ETXTBSY while a
/// concurrent test's spawn still holds the copy's write descriptor.
func makeBusyboxRootfs() throws -> BusyboxRootfs {
    var attempt = 0
    while true {
        do { return try BusyboxRootfs() } catch let e as BerthError where e.errno == ETXTBSY || e.message.contains("busy") {
            attempt += 1
            if attempt >= 5 { throw e }
            usleep(100_000)
        }
    }
}
