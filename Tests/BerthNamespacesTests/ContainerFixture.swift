import BerthNamespaces
import BerthSystem
import BerthTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A busybox rootfs plus helpers to run a shell script in a container on it and capture the
/// output. Each test makes its own.
final class ContainerFixture {
    let rootfs: BusyboxRootfs
    let outputPath: String

    init() throws {
        rootfs = try Self.makeRootfs()
        outputPath = rootfs.bundle + "/output"
    }

    /// BusyboxRootfs writes /bin/busybox and runs it right away; a process another test forks in
    /// between briefly holds a copy of the write descriptor, and exec then fails with ETXTBSY
    /// (the classic fork/exec race). Retry a few times.
    static func makeRootfs() throws -> BusyboxRootfs {
        var attempt = 0
        while true {
            do { return try BusyboxRootfs() } catch let e as BerthError where e.errno == ETXTBSY && attempt < 5 {
                attempt += 1
                usleep(20_000)
            }
        }
    }

    deinit { rootfs.remove() }

    /// A spec running `sh -c script` with the default namespaces and mounts.
    func spec(_ script: String) -> ContainerSpec {
        ContainerSpec.make(rootfs: rootfs.path, args: ["/bin/sh", "-c", script])
    }

    /// Runs the spec with stdout and stderr into a file; returns the status and the output.
    func run(_ spec: ContainerSpec, security: ProcessSecurity? = nil,
             prepare: (ContainerProcess) throws -> Void = { _ in }) throws -> (status: ExitStatus, output: String) {
        let stdio = ProcessStdio(stdin: .null, stdout: .file(outputPath), stderr: .file(outputPath, append: true))
        let status = try ContainerProcess.run(spec, stdio: stdio, security: security, prepare: prepare)
        return (status, (try? FileIO.read(outputPath)) ?? "")
    }

    func run(_ script: String) throws -> (status: ExitStatus, output: String) { try run(spec(script)) }
}

/// The mount points of the calling process (field 5 of /proc/self/mountinfo).
func hostMountPoints() throws -> [String] {
    try FileIO.read("/proc/self/mountinfo").split(separator: "\n").map { line in
        String(line.split(separator: " ")[4])
    }
}
