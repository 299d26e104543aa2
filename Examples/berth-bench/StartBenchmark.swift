import ArgumentParser
import BerthCgroups
import BerthNamespaces
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// `berth-bench start`: /bin/true in a container, Berth vs `crun run` vs `runc run`, alternating,
/// on one OCI bundle (config.json from `runc spec`, args /bin/true, no terminal) over a busybox
/// rootfs. Berth runs the same config.json in new pid/mnt/uts/ipc/net namespaces with a memory
/// cgroup and pivot_root.
struct StartBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Container start latency: Berth vs crun vs runc (/bin/true).")

    @Option(help: "Measured runs per tool.") var runs = 20
    @Option(help: "Warm-up runs per tool (not measured).") var warmup = 3
    @Option(help: "Directory for the bundle (tmpfs /dev/shm or /tmp).") var base = "/tmp"

    func run() throws {
        let bundle = try FileIO.makeTemporaryDirectory(prefix: "berth-bench-start-\(getpid())-", in: base)
        defer { try? FileIO.removeTree(bundle) }
        try makeBundle(bundle)
        let spec = try ContainerSpec.load(bundle: bundle)

        // crun 1.8.1 refuses this hybrid layout because cgroup2's cgroup.controllers lists hugetlb:
        // it runs in a private mount namespace where an empty file hides that list.
        let crunView = try PrivateMountNamespace.create()
        defer { crunView.close() }
        let emptyFile = bundle + "/empty"
        try FileIO.writeAtomically(emptyFile, "")
        let controllers = "/sys/fs/cgroup/unified/cgroup.controllers"
        if FileIO.exists(controllers) { try crunView.bind(emptyFile, over: controllers) }

        let prefix = uniqueName("bs")
        var counter = 0
        func berth() throws {
            counter += 1
            var limits = CgroupLimits()
            limits.memoryBytes = 64 << 20
            // The cgroup is made while the child builds its rootfs: it waits at the sync point.
            let c = try ContainerProcess.create(spec, stdio: .null)
            let cgroup = try Cgroup.create(name: "berth-bench-\(prefix)-\(counter)", limits: limits)
            defer { try? cgroup.killAll(); try? cgroup.destroy() }
            try cgroup.add(pid: c.pid)
            try c.start()
            let status = try c.wait()
            guard status == .exited(0) else { throw BerthError(.commandFailed, "berth: /bin/true \(status)") }
        }
        func peer(_ tool: String, in view: PrivateMountNamespace?) throws {
            counter += 1
            let id = "\(prefix)-\(tool)-\(counter)"
            let body = { try Command.run(tool, ["run", "--bundle", bundle, id]) }
            let r = try view.map { try $0.run(body) } ?? body()
            guard r.succeeded else {
                _ = try? Command.run(tool, ["delete", "-f", id])
                throw BerthError(.commandFailed, "\(tool) run exited with status \(r.status): \(r.stderr.trimmingSpaces())")
            }
        }

        var times: [String: [Double]] = ["berth": [], "crun": [], "runc": []]
        for i in 0..<(warmup + runs) {
            let tb = try timeMillis { try berth() }
            let tc = try timeMillis { try peer("crun", in: crunView) }
            let tr = try timeMillis { try peer("runc", in: nil) }
            if i >= warmup {
                times["berth"]!.append(tb)
                times["crun"]!.append(tc)
                times["runc"]!.append(tr)
            }
        }
        let b = median(times["berth"]!), c = median(times["crun"]!), r = median(times["runc"]!)
        for tool in ["berth", "crun", "runc"] {
            let xs = times[tool]!.sorted()
            print("\(tool): median \(fmt(median(xs))) ms, min \(fmt(xs.first!)) ms, max \(fmt(xs.last!)) ms over \(xs.count) runs")
        }
        print("start: berth \(fmt(b)) ms, crun \(fmt(c)) ms, runc \(fmt(r)) ms, crun/berth \(fmt(c / b)), runc/berth \(fmt(r / b))")
    }

    /// A busybox rootfs and the config.json of `runc spec` with args /bin/true and no terminal.
    private func makeBundle(_ bundle: String) throws {
        let rootfs = bundle + "/rootfs"
        guard let busybox = ["/bin/busybox", "/usr/bin/busybox"].first(where: FileIO.exists) else {
            throw BerthError(.notFound, "busybox not found: install busybox-static")
        }
        for dir in ["/bin", "/proc", "/dev", "/sys", "/tmp", "/etc"] { try FileIO.makeDirectories(rootfs + dir) }
        try FileIO.writeAtomically(rootfs + "/bin/busybox", try FileIO.readBytes(busybox), mode: 0o755)
        for applet in ["true", "sh"] { symlink("busybox", rootfs + "/bin/" + applet) }
        try Command.check("runc", ["spec", "--bundle", bundle])
        var json = try FileIO.read(bundle + "/config.json")
        json = json.replacing("\"terminal\": true", with: "\"terminal\": false")
        json = json.replacing("\"sh\"\n", with: "\"/bin/true\"\n")
        try FileIO.writeAtomically(bundle + "/config.json", json)
    }
}
