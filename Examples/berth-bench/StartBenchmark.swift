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
        let prefix = uniqueName("bs")
        let peers = try PeerRuntimes(bundle: bundle, idPrefix: prefix)
        defer { peers.close() }
        let spec = try ContainerSpec.load(bundle: bundle)

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
        let m = try measureAlternating(warmup: warmup, runs: runs, [
            ("berth", berth), ("crun", { try peers.run("crun") }), ("runc", { try peers.run("runc") }),
        ])
        let b = m["berth"]!, c = m["crun"]!, r = m["runc"]!
        print("start: berth \(fmt(b)) ms, crun \(fmt(c)) ms, runc \(fmt(r)) ms, crun/berth \(fmt(c / b)), runc/berth \(fmt(r / b))")
    }
}
