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
/// The state root is on disk (`--base`) and the exec root on a tmpfs, like Berth's default layout.
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
        // Berth's layout: the state root on disk, the exec root (--rm containers, published-port
        // reservations) on a tmpfs, as /run/berth is on most hosts. /dev/shm is one everywhere
        // (on some machines /run is not).
        let execRoot = try FileIO.makeTemporaryDirectory(prefix: "berth-bench-exec-\(getpid())-", in: "/dev/shm")
        defer { try? FileIO.removeTree(execRoot) }
        let cgroupParent = uniqueName("br")
        let flags = ["--root", root, "--exec-root", execRoot, "--cgroup-parent", cgroupParent]
        defer {
            // Whatever a failed run left: containers (and with them cgroups and mounts).
            _ = try? sandbox.run {
                let ids = try Command.run(berthPath, flags + ["ps", "-aq"]).stdout.split(separator: "\n").map(String.init)
                if !ids.isEmpty { _ = try Command.run(berthPath, flags + ["rm", "-f", "-v"] + ids) }
            }
        }

        // The image: the peers' busybox bundle rootfs as a tarball, imported once.
        let bundle = work + "/bundle"
        try FileIO.makeDirectories(bundle)
        let peers = try PeerRuntimes(bundle: bundle, idPrefix: cgroupParent)
        defer { peers.close() }
        try Command.check("tar", ["-C", bundle + "/rootfs", "-cf", work + "/busybox.tar", "."])
        try sandbox.run { _ = try Command.check(berthPath, flags + ["import", work + "/busybox.tar", "busybox"]) }

        func berthRun() throws {
            let r = try sandbox.run {
                try Command.run(berthPath, flags + ["run", "--rm", "-p", "18080:8080", "busybox", "true"])
            }
            guard r.succeeded else { throw BerthError(.commandFailed, "berth run exited \(r.status): \(r.stderr.trimmingSpaces())") }
        }
        let m = try measureAlternating(warmup: warmup, runs: runs, [
            ("berth", berthRun), ("crun", { try peers.run("crun", in: sandbox) }), ("runc", { try peers.run("runc", in: sandbox) }),
        ])
        print("run: berth \(fmt(m["berth"]!)) ms, crun \(fmt(m["crun"]!)) ms, runc \(fmt(m["runc"]!)) ms")
    }

    static func sibling(_ name: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw BerthError.system("readlink /proc/self/exe") }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(exe[..<exe.lastIndex(of: "/")!]) + "/" + name
    }
}
