import ArgumentParser
import BerthImageLayers
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// `berth-bench unpack`: unpacking a ~50 MB gzip layer of a Debian minbase rootfs on tmpfs with
/// Berth's extractor, `umoci raw unpack` and `tar -xzf`, alternating, several rounds.
struct UnpackBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpack",
        abstract: "Unpack a Debian minbase gzip layer on tmpfs: Berth vs umoci raw unpack vs tar -xzf.")

    @Option(help: "Where the layer (and the debootstrap tree it is made from) is cached.")
    var cache = "/var/cache/berth-bench"

    @Option(help: "Rounds per tool.")
    var rounds = 5

    @Option(help: "Comma-separated tools to run (berth, umoci, tar); the summary line needs all three.")
    var tools = "berth,umoci,tar"

    @Option(help: "Debian suite for debootstrap.")
    var suite = "bookworm"

    @Option(help: "Debian mirror for debootstrap.")
    var mirror = "http://deb.debian.org/debian"

    func run() throws {
        guard geteuid() == 0 else { throw BerthError(.denied, "berth-bench unpack needs root (tmpfs mount, device nodes)") }
        guard rounds > 0 else { throw ValidationError("--rounds must be positive") }
        try FileIO.makeDirectories(cache)
        let layer = try prepareLayer()
        let layout = try prepareLayout(layer)

        let tmpfs = try FileIO.makeTemporaryDirectory(prefix: "berth-bench-unpack-\(getpid())-")
        guard mount("tmpfs", tmpfs, "tmpfs", 0, "size=4g,mode=0755") == 0 else {
            let e = BerthError.system("mount tmpfs on \(tmpfs)")
            rmdir(tmpfs)
            throw e
        }
        defer {
            umount2(tmpfs, Int32(MNT_DETACH))
            rmdir(tmpfs)
        }
        // Keep the scratch mount out of any shared peer group (nothing propagates elsewhere).
        _ = mount("none", tmpfs, nil, UInt(MS_PRIVATE), nil)
        // The inputs live on the tmpfs too, so that every tool reads from memory.
        let layerCopy = tmpfs + "/layer.tar.gz"
        try Command.check("cp", [layer, layerCopy])
        let layoutCopy = tmpfs + "/oci"
        try Command.check("cp", ["-a", layout, layoutCopy])

        var times: [String: [Double]] = ["berth": [], "umoci": [], "tar": []]
        var options = ExtractionOptions(whiteouts: .overlay)
        options.allowDeviceNodes = true
        options.keepSetuidBits = true
        let tools = self.tools.split(separator: ",").map(String.init)
        guard !tools.isEmpty, tools.allSatisfy({ ["berth", "umoci", "tar"].contains($0) }) else {
            throw ValidationError("--tools takes berth, umoci and tar")
        }
        var files = 0
        for round in 0..<rounds {
            for k in 0..<tools.count {
                let tool = tools[(round + k) % tools.count]
                let target = tmpfs + "/out-\(tool)-\(round)"
                var elapsed = 0.0
                switch tool {
                case "berth":
                    try FileIO.makeDirectories(target)
                    let t0 = monotonicSeconds()
                    let r = try TarExtractor.extract(archive: layerCopy, into: target, options: options)
                    elapsed = monotonicSeconds() - t0
                    files = r.entries
                case "umoci":
                    let t0 = monotonicSeconds()
                    try Command.check("umoci", ["raw", "unpack", "--image", "\(layoutCopy):latest", target])
                    elapsed = monotonicSeconds() - t0
                default:
                    try FileIO.makeDirectories(target)
                    let t0 = monotonicSeconds()
                    try Command.check("tar", ["-xzf", layerCopy, "-C", target])
                    elapsed = monotonicSeconds() - t0
                }
                times[tool, default: []].append(elapsed)
                print("round \(round + 1) \(tool): \(fmt(elapsed, 3)) s")
                try FileIO.removeTree(target)
            }
        }
        for tool in tools { print("\(tool): median \(fmt(median(times[tool]!), 3)) s") }
        guard tools.count == 3 else { return }
        let b = median(times["berth"]!), u = median(times["umoci"]!), t = median(times["tar"]!)
        var st = stat()
        stat(layer, &st)
        print("layer: \(layer) (\(fmt(Double(st.st_size) / 1e6, 1)) MB gzip, \(files) entries), \(rounds) rounds on tmpfs, medians")
        print("unpack: berth \(fmt(b, 3)) s, umoci \(fmt(u, 3)) s, tar \(fmt(t, 3)) s, umoci/berth \(fmt(u / b, 2)), berth/tar \(fmt(b / t, 2))")
    }

    /// The cached gzip layer, made from a debootstrap tree (or, failing that, from local files).
    private func prepareLayer() throws -> String {
        let layer = cache + "/debian-\(suite)-minbase.tar.gz"
        if FileIO.exists(layer) { return layer }
        let tree = cache + "/\(suite)-minbase"
        if !FileIO.exists(tree + "/etc/debian_version") || FileIO.exists(tree + "/debootstrap") {
            print("preparing: debootstrap --variant=minbase \(suite) \(tree) (once, cached)")
            try? FileIO.removeTree(tree)
            if !Command.exists("debootstrap") { _ = try? Command.run("apt-get", ["install", "-y", "debootstrap"]) }
            let r = try? Command.run("debootstrap", ["--variant=minbase", suite, tree, mirror])
            if r?.succeeded != true {
                try? FileIO.removeTree(tree)
                return try fallbackLayer()
            }
            // Like `apt-get clean` in an image build: the downloaded .debs are not part of the rootfs.
            let debs = tree + "/var/cache/apt/archives"
            for name in (try? Command.check("ls", [debs]).stdout.split(separator: "\n")) ?? [] where name.hasSuffix(".deb") {
                unlink(debs + "/" + name)
            }
        }
        let tmp = layer + ".tmp-\(getpid())"
        _ = try DirectoryArchiver.archive(directory: tree, to: tmp, gzip: true)
        guard rename(tmp, layer) == 0 else { throw BerthError.system("rename \(tmp)") }
        return layer
    }

    private func fallbackLayer() throws -> String {
        let layer = cache + "/local-usr-subset.tar.gz"
        print("NOTE: debootstrap failed; using a tarball of local /usr/lib and /usr/share files instead of a Debian minbase layer")
        if FileIO.exists(layer) { return layer }
        let tmp = layer + ".tmp-\(getpid())"
        try Command.check("tar", ["-czf", tmp, "-C", "/", "--exclude=usr/lib/swift*", "usr/lib/x86_64-linux-gnu/perl-base",
                                  "usr/share/perl", "usr/share/doc", "usr/share/locale", "usr/share/zoneinfo", "usr/share/i18n"])
        guard rename(tmp, layer) == 0 else { throw BerthError.system("rename \(tmp)") }
        return layer
    }

    /// An OCI layout holding the layer, for umoci (made with Berth's own exporter, cached).
    private func prepareLayout(_ layer: String) throws -> String {
        let layout = layer + ".oci"
        if FileIO.exists(layout + "/index.json") { return layout }
        let storeRoot = try FileIO.makeTemporaryDirectory(prefix: "berth-bench-store-\(getpid())-")
        defer { try? FileIO.removeTree(storeRoot) }
        let store = try LayerStore(root: storeRoot, allowDeviceNodes: true)
        try store.importRootfs(layer, tag: "bench:latest")
        try store.save(["bench:latest"], to: layout, format: .ociLayout)
        return layout
    }
}
