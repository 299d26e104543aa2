import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

/// One engine inside its own sandbox host: a temporary state root, a busybox image, a cgroup
/// parent with the test's pid and a random suffix. ``remove()`` removes every container, the
/// bridge and its rules, the root and the sandbox.
final class EngineFixture: @unchecked Sendable {
    let host: SandboxHost
    let root: String
    let engine: Engine
    let cgroupParent: String

    init() throws {
        host = try SandboxHost()
        root = try FileIO.makeTemporaryDirectory(prefix: "berth-engine-\(getpid())-")
        cgroupParent = testName("bt")
        do {
            engine = try Engine(options: EngineOptions(root: root, cgroupParent: cgroupParent, hostNamespace: host.namespace))
            // Writing the busybox binary can meet ETXTBSY while a parallel test forks; try again.
            var made: BusyboxRootfs? = nil
            for attempt in 0..<5 {
                do { made = try BusyboxRootfs(); break } catch where attempt < 4 { usleep(100_000) }
            }
            let rootfs = made!
            defer { rootfs.remove() }
            let tar = root + "/busybox.tar"
            try Command.check("tar", ["-C", rootfs.path, "-cf", tar, "."])
            try engine.layers.importRootfs(tar, tag: "busybox")
            unlink(tar)
        } catch {
            try? FileIO.removeTree(root)
            host.close()
            throw error
        }
    }

    /// Creates and starts a container; its output goes to its log file.
    func run(_ cmd: [String], name: String? = nil, _ edit: (inout ContainerConfig) -> Void = { _ in }) throws -> RunningContainer {
        var config = ContainerConfig(image: "busybox", cmd: cmd)
        edit(&config)
        let record = try engine.create(config, name: name)
        return try engine.start(record.id)
    }

    /// Runs a container to completion and returns its output.
    func output(_ cmd: [String], _ edit: (inout ContainerConfig) -> Void = { _ in }) throws -> String {
        let running = try run(cmd, edit)
        let code = running.wait()
        let text = try FileIO.read(engine.logPath(running.id))
        try engine.remove(running.id.full)
        guard code == 0 else { throw BerthError(.commandFailed, "container \(cmd) exited \(code): \(text)") }
        return text
    }

    /// Waits until a file appears in a container's log (a server is listening).
    func waitForLog(_ id: ContainerID, containing text: String, timeout: Double = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let log = try? FileIO.read(engine.logPath(id)), log.contains(text) { return }
            usleep(20_000)
        }
        let log = (try? FileIO.read(engine.logPath(id))) ?? "<no log>"
        let state = (try? engine.store.load(id).state).map { "\($0.status) exit \($0.exitCode) \($0.error)" } ?? "<gone>"
        throw BerthError(.invalidState, "container \(id.short) never logged \(text): \(state), log: \(log)")
    }

    func remove() {
        for record in (try? engine.store.list()) ?? [] { try? engine.remove(record.id.full, force: true, removeVolumes: true) }
        if let net = try? engine.network() { _ = try? host.run { try net.tearDown() } }
        try? FileIO.removeTree(root)
        host.close()
    }
}

/// For tests of the `berth` CLI: an engine fixture, the `berth` binary, and the command line that
/// points it at the fixture (`berth --root … --cgroup-parent …`). Remove the fixture when done.
func cliFixture() throws -> (EngineFixture, String, String) {
    let berth = try #require(berthExecutable(), "build the berth executable first")
    let f = try EngineFixture()
    return (f, berth, "\(berth) --root \(f.root) --cgroup-parent \(f.cgroupParent)")
}
