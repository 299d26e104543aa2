import ArgumentParser
import BerthNamespaces
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// `berth-bench run`: `berth run --rm IMAGE true` on the bridge network with a published port
/// (the CLI binary, as a user runs it: create, overlay rootfs, network files, cgroup, veth + address
/// + DNAT rules + proxy listener, exec, teardown, removal) against `crun run` and `runc run` of
/// /bin/true on an OCI bundle (no network), alternating, all inside a sandbox network namespace.
struct RunBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "berth run --rm (bridge + published port) vs crun/runc run (/bin/true).")

    @Option(help: "Measured runs per tool.") var runs = 20
    @Option(help: "Warm-up runs per tool (not measured).") var warmup = 3
    @Option(help: "Directory for the state root and the bundle.") var base = "/tmp"
    @Option(help: "The berth executable (default: next to berth-bench).") var berth: String?

    func run() throws {
        let berthPath = try berth ?? Self.sibling("berth")
        guard FileIO.exists(berthPath) else {
            throw BerthError(.notFound, "\(berthPath) not found: build it first (swift build -c release --product berth)")
        }
        let work = try FileIO.makeTemporaryDirectory(prefix: "berth-bench-run-\(getpid())-", in: base)
        defer { try? FileIO.removeTree(work) }
        let sandbox = try NetworkNamespace.create()
        defer { sandbox.close() }
        let root = work + "/root"
        let cgroupParent = uniqueName("br")
        let flags = ["--root", root, "--cgroup-parent", cgroupParent]
        defer {
            // Whatever a failed run left: containers (and with them cgroups and mounts).
            _ = try? sandbox.run {
                let ids = try Command.run(berthPath, flags + ["ps", "-aq"]).stdout.split(separator: "\n").map(String.init)
                if !ids.isEmpty { _ = try Command.run(berthPath, flags + ["rm", "-f", "-v"] + ids) }
            }
        }

        // The image: a busybox rootfs tarball imported once.
        let bundle = work + "/bundle"
        try Self.makeBundle(bundle)
        try Command.check("tar", ["-C", bundle + "/rootfs", "-cf", work + "/busybox.tar", "."])
        try sandbox.run { _ = try Command.check(berthPath, flags + ["import", work + "/busybox.tar", "busybox"]) }

        let crunView = try PrivateMountNamespace.create()
        defer { crunView.close() }
        try FileIO.writeAtomically(work + "/empty", "")
        let controllers = "/sys/fs/cgroup/unified/cgroup.controllers"
        if FileIO.exists(controllers) { try crunView.bind(work + "/empty", over: controllers) }

        var counter = 0
        func berthRun() throws {
            let r = try sandbox.run {
                try Command.run(berthPath, flags + ["run", "--rm", "-p", "18080:8080", "busybox", "true"])
            }
            guard r.succeeded else { throw BerthError(.commandFailed, "berth run exited \(r.status): \(r.stderr.trimmingSpaces())") }
        }
        func peer(_ tool: String, in view: PrivateMountNamespace?) throws {
            counter += 1
            let id = "\(cgroupParent)-\(tool)-\(counter)"
            let body = { try Command.run(tool, ["run", "--bundle", bundle, id]) }
            let r = try sandbox.run { try view.map { try $0.run(body) } ?? body() }
            guard r.succeeded else {
                _ = try? Command.run(tool, ["delete", "-f", id])
                throw BerthError(.commandFailed, "\(tool) run exited with status \(r.status): \(r.stderr.trimmingSpaces())")
            }
        }

        var times: [String: [Double]] = ["berth": [], "crun": [], "runc": []]
        for i in 0..<(warmup + runs) {
            let tb = try timeMillis { try berthRun() }
            let tc = try timeMillis { try peer("crun", in: crunView) }
            let tr = try timeMillis { try peer("runc", in: nil) }
            if i >= warmup {
                times["berth"]!.append(tb)
                times["crun"]!.append(tc)
                times["runc"]!.append(tr)
            }
        }
        for tool in ["berth", "crun", "runc"] {
            let xs = times[tool]!.sorted()
            print("\(tool): median \(fmt(median(xs))) ms, min \(fmt(xs.first!)) ms, max \(fmt(xs.last!)) ms over \(xs.count) runs")
        }
        print("run: berth \(fmt(median(times["berth"]!))) ms, crun \(fmt(median(times["crun"]!))) ms, runc \(fmt(median(times["runc"]!))) ms")
    }

    static func sibling(_ name: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw BerthError.system("readlink /proc/self/exe") }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(exe[..<exe.lastIndex(of: "/")!]) + "/" + name
    }

    /// A busybox rootfs (all applets) and the config.json of `runc spec` with args /bin/true.
    static func makeBundle(_ bundle: String) throws {
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
