import ArgumentParser
import BerthNamespaces
import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// `berth-bench security`: what the default confinement adds to a container start — compiling
/// Docker's default seccomp profile (first container / cached), resolving `SecurityOptions`, and
/// the kernel's cost of installing the program (measured on a throwaway thread, which is what the
/// child does with one prctl before exec).
struct SecurityBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "security",
        abstract: "Cost of the default seccomp profile and capabilities: compile, cache, install.")

    @Option(help: "Iterations per measurement.")
    var iterations = 50

    @Option(help: "Container starts per variant (0 skips the container comparison).")
    var containers = 40

    func run() throws {
        let caps = CapabilitySet.dockerDefault
        var compile: [Double] = []
        var program: [UInt8] = []
        for _ in 0..<iterations {
            compile.append(try timeMillis { program = try SeccompCompiler.compile(.dockerDefault, capabilities: caps) })
        }
        _ = try SeccompCompiler.cachedCompile(.dockerDefault, capabilities: caps)
        var cached: [Double] = []
        var resolve: [Double] = []
        for _ in 0..<iterations {
            cached.append(try timeMillis { _ = try SeccompCompiler.cachedCompile(.dockerDefault, capabilities: caps) })
            resolve.append(try timeMillis { _ = try SecurityOptions().resolve() })
        }
        let dir = try FileIO.makeTemporaryDirectory(prefix: "berth-bench-seccomp-")
        defer { try? FileIO.removeTree(dir) }
        _ = try SeccompProgramCache(directory: dir).program(for: .dockerDefault, capabilities: caps)
        var disk: [Double] = []
        for _ in 0..<iterations {
            let fresh = SeccompProgramCache(directory: dir)
            disk.append(try timeMillis { _ = try SecurityOptions().resolve(cache: fresh) })
        }
        var install: [Double] = []
        for _ in 0..<iterations { install.append(try Self.installOnThrowawayThread(program)) }
        let cachedTotal = median(resolve) + median(install)
        let diskTotal = median(disk) + median(install)
        print("default seccomp profile: \(program.count / 8) BPF instructions")
        print("compile (first container with a profile): \(fmt(median(compile), 3)) ms")
        print("cached compile lookup:                    \(fmt(median(cached) * 1000, 1)) µs")
        print("SecurityOptions().resolve() (cached):     \(fmt(median(resolve) * 1000, 1)) µs")
        print("resolve from a disk cache (new process):  \(fmt(median(disk) * 1000, 1)) µs")
        print("install in the kernel (prctl):            \(fmt(median(install) * 1000, 1)) µs")
        print("per-start overhead, cached:               \(fmt(cachedTotal, 3)) ms (goal < 1 ms)")
        print("per-start overhead, new process + disk:   \(fmt(diskTotal, 3)) ms (goal < 1 ms)")
        print("per-start overhead, first start:          \(fmt(median(compile) + median(install), 3)) ms")
        if containers > 0 { try compareContainerStarts() }
    }

    /// Starts /bin/true in new pid/net/ipc/uts/mnt namespaces, alternating unconfined and the
    /// defaults (capabilities, cached seccomp program, masked and read-only paths).
    func compareContainerStarts() throws {
        let bundle = try FileIO.makeTemporaryDirectory(prefix: "berth-bench-sec-")
        defer { try? FileIO.removeTree(bundle) }
        let rootfs = bundle + "/rootfs"
        guard let busybox = ["/bin/busybox", "/usr/bin/busybox"].first(where: FileIO.exists) else {
            throw BerthError(.notFound, "busybox not found: install busybox-static")
        }
        for dir in ["/bin", "/proc", "/dev", "/sys", "/tmp", "/etc"] { try FileIO.makeDirectories(rootfs + dir) }
        try FileIO.writeAtomically(rootfs + "/bin/busybox", try FileIO.readBytes(busybox), mode: 0o755)
        symlink("busybox", rootfs + "/bin/true")
        let spec = ContainerSpec.make(rootfs: rootfs, args: ["/bin/true"])
        let full = try SecurityOptions().resolve()
        let nativeOnly = SeccompProfile.dockerDefault.restrictedToNativeArchitecture()
        let nativeProgram = try SeccompCompiler.compile(nativeOnly, capabilities: .dockerDefault)
        let variants: [(String, ProcessSecurity)] = [
            ("unconfined", ProcessSecurity()),
            ("capabilities only", ProcessSecurity(capabilities: full.capabilities)),
            ("seccomp only", ProcessSecurity(seccompFilter: full.seccompFilter)),
            ("seccomp, native arch only (\(nativeProgram.count / 8) insns)", ProcessSecurity(seccompFilter: nativeProgram)),
            ("masked + read-only paths only", ProcessSecurity(maskedPaths: full.maskedPaths, readonlyPaths: full.readonlyPaths)),
            ("defaults (all of the above)", full),
        ]
        var samples = [[Double]](repeating: [], count: variants.count)
        for i in 0..<(containers + 2) {
            for (v, variant) in variants.enumerated() {
                let t = try timeMillis {
                    let security = v == variants.count - 1 ? try SecurityOptions().resolve() : variant.1
                    _ = try ContainerProcess.run(spec, stdio: .null, security: security)
                }
                if i >= 2 { samples[v].append(t) }  // two warm-up rounds
            }
        }
        let base = median(samples[0])
        for (v, variant) in variants.enumerated() {
            let m = median(samples[v])
            var label = "container start /bin/true, " + variant.0 + ":"
            while label.count < 62 { label += " " }
            print("\(label)\(fmt(m, 3)) ms" + (v == 0 ? "" : "  (+\(fmt(m - base, 3)) ms)"))
        }
    }

    final class Job: @unchecked Sendable {
        let program: [UInt8]
        var millis: Double = -1
        init(_ program: [UInt8]) { self.program = program }
    }

    /// Installs `program` on a new thread (a filter without TSYNC confines only that thread) and
    /// returns how long the prctl took.
    static func installOnThrowawayThread(_ program: [UInt8]) throws -> Double {
        let job = Job(program)
        var thread = pthread_t()
        let box = Unmanaged.passRetained(job).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
            job.program.withUnsafeBytes { prog in
                var fprog: [UInt64] = [UInt64(prog.count / 8), UInt64(UInt(bitPattern: prog.baseAddress))]
                fprog.withUnsafeMutableBytes { f in
                    let t0 = monotonicSeconds()
                    let r = berth_prctl(22 /* PR_SET_SECCOMP */, 2 /* SECCOMP_MODE_FILTER */, UInt(bitPattern: f.baseAddress), 0, 0)
                    if r == 0 { job.millis = (monotonicSeconds() - t0) * 1000 }
                }
            }
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Job>.fromOpaque(box).release()
            throw BerthError.system("pthread_create", errno: rc)
        }
        pthread_join(thread, nil)
        guard job.millis >= 0 else { throw BerthError(.system, "installing the seccomp program failed") }
        return job.millis
    }
}
