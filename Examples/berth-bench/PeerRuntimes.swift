import BerthNamespaces
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// crun and runc running one OCI bundle: what the `start` and `run` benchmarks compare Berth with.
///
/// The bundle is a busybox rootfs (every applet) with the config.json of `runc spec`, args
/// /bin/true and no terminal. crun 1.8.1 refuses this host's hybrid cgroup layout because cgroup2's
/// cgroup.controllers lists hugetlb, so crun runs in a private mount namespace where an empty file
/// hides that list; the host's own mounts are untouched.
final class PeerRuntimes {
    /// The bundle directory (config.json + rootfs/).
    let bundle: String
    private let crunView: PrivateMountNamespace
    private let idPrefix: String
    private var counter = 0

    /// - Parameters:
    ///   - bundle: A directory to create the bundle in (it must exist and be empty).
    ///   - idPrefix: Makes container ids unique to this run.
    init(bundle: String, idPrefix: String) throws {
        self.bundle = bundle
        self.idPrefix = idPrefix
        try PeerRuntimes.makeBundle(bundle)
        crunView = try PrivateMountNamespace.create()
        let controllers = "/sys/fs/cgroup/unified/cgroup.controllers"
        if FileIO.exists(controllers) {
            do {
                try FileIO.writeAtomically(bundle + "/empty", "")
                try crunView.bind(bundle + "/empty", over: controllers)
            } catch {
                crunView.close()
                throw error
            }
        }
    }

    /// Runs the bundle once with `tool` (`crun` or `runc`), inside `sandbox` if given.
    func run(_ tool: String, in sandbox: NetworkNamespace? = nil) throws {
        counter += 1
        let id = "\(idPrefix)-\(tool)-\(counter)"
        let view = tool == "crun" ? crunView : nil
        let body = { try Command.run(tool, ["run", "--bundle", self.bundle, id]) }
        let inView = { try view.map { try $0.run(body) } ?? body() }
        let r = try sandbox.map { try $0.run(inView) } ?? inView()
        guard r.succeeded else {
            _ = try? Command.run(tool, ["delete", "-f", id])
            throw BerthError(.commandFailed, "\(tool) run exited with status \(r.status): \(r.stderr.trimmingSpaces())")
        }
    }

    func close() { crunView.close() }

    private static func makeBundle(_ bundle: String) throws {
        let rootfs = bundle + "/rootfs"
        guard let busybox = ["/bin/busybox", "/usr/bin/busybox"].first(where: FileIO.exists) else {
            throw BerthError(.notFound, "busybox not found: install busybox-static")
        }
        for dir in ["/bin", "/proc", "/dev", "/sys", "/tmp", "/etc", "/root"] { try FileIO.makeDirectories(rootfs + dir) }
        try FileIO.writeAtomically(rootfs + "/bin/busybox", try FileIO.readBytes(busybox), mode: 0o755)
        for applet in try Command.check(busybox, ["--list"]).stdout.split(separator: "\n") where applet != "busybox" {
            symlink("busybox", rootfs + "/bin/" + applet)
        }
        try FileIO.writeAtomically(rootfs + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        try Command.check("runc", ["spec", "--bundle", bundle])
        var json = try FileIO.read(bundle + "/config.json")
        json = json.replacing("\"terminal\": true", with: "\"terminal\": false")
        json = json.replacing("\"sh\"\n", with: "\"/bin/true\"\n")
        try FileIO.writeAtomically(bundle + "/config.json", json)
    }
}

/// Runs every tool once per round, in the given order (alternating), for `warmup` unmeasured and
/// `runs` measured rounds; prints each tool's median, min and max, and returns the medians in ms.
func measureAlternating(warmup: Int, runs: Int, _ tools: [(name: String, body: () throws -> Void)]) throws -> [String: Double] {
    var times: [String: [Double]] = [:]
    for i in 0..<(warmup + runs) {
        for tool in tools {
            let t = try timeMillis(tool.body)
            if i >= warmup { times[tool.name, default: []].append(t) }
        }
    }
    var medians: [String: Double] = [:]
    for tool in tools {
        let xs = (times[tool.name] ?? []).sorted()
        guard !xs.isEmpty else { continue }
        medians[tool.name] = median(xs)
        print("\(tool.name): median \(fmt(median(xs))) ms, min \(fmt(xs.first!)) ms, max \(fmt(xs.last!)) ms over \(xs.count) runs")
    }
    return medians
}
