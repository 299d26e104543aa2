import ArgumentParser
import BerthCgroups
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

    @Option(help: "Write the default profile's compiled BPF program (raw struct sock_filter) to this file and exit.")
    var dumpProgram: String?

    @Option(help: "Also start containers with this BPF program (raw struct sock_filter, e.g. an older --dump-program).")
    var program: String?

    func run() throws {
        let caps = CapabilitySet.dockerDefault
        if let dumpProgram {
            let program = try SeccompCompiler.compile(.dockerDefault, capabilities: caps)
            try FileIO.writeAtomically(dumpProgram, program, mode: 0o600)
            let native = try SeccompCompiler.compile(SeccompProfile.dockerDefault.restrictedToNativeArchitecture(), capabilities: caps)
            try FileIO.writeAtomically(dumpProgram + ".native", native, mode: 0o600)
            return
        }
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
        var summary = "security: per-start overhead \(fmt(cachedTotal, 3)) ms cached, \(fmt(diskTotal, 3)) ms from disk"
            + " (\(program.count / 8) BPF instructions)"
        if containers > 0 {
            let added = try compareContainerStarts()
            summary += ", defaults add \(fmt(added.median, 3)) ms to a container start (child CPU +\(fmt(added.cpu, 3)) ms)"
        }
        print(summary)
    }

    /// Starts /bin/true in new pid/net/ipc/uts/mnt namespaces, alternating unconfined and the
    /// defaults (capabilities, cached seccomp program, masked and read-only paths).
    /// - Returns: What the defaults add to an unconfined start: median wall-clock and child CPU.
    func compareContainerStarts() throws -> (median: Double, cpu: Double) {
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
        var variants: [(String, ProcessSecurity)] = [
            ("unconfined", ProcessSecurity()),
            ("capabilities only", ProcessSecurity(capabilities: full.capabilities)),
            ("seccomp only (\((full.seccompFilter?.count ?? 0) / 8) insns)", ProcessSecurity(seccompFilter: full.seccompFilter)),
            ("seccomp, native arch only (\(nativeProgram.count / 8) insns)", ProcessSecurity(seccompFilter: nativeProgram)),
            ("masked + read-only paths only", ProcessSecurity(maskedPaths: full.maskedPaths, readonlyPaths: full.readonlyPaths)),
            ("defaults (all of the above)", full),
        ]
        if let program {
            let bytes = try FileIO.readBytes(program)
            variants.append(("seccomp, \(program) (\(bytes.count / 8) insns)", ProcessSecurity(seccompFilter: bytes)))
        }
        let defaultsIndex = 5
        let plain = variants.count
        // The same with a cgroup, as berth-ns and the engine start containers: the parent adds the
        // child to every v1 hierarchy (several ms) while the child waits at the sync point.
        variants.append(("unconfined, in a cgroup", ProcessSecurity()))
        variants.append(("defaults, in a cgroup", full))
        var counter = 0
        let prefix = uniqueName("bsec")
        var samples = [[Double]](repeating: [], count: variants.count)
        var cpu = [[Double]](repeating: [], count: variants.count)
        // Each round starts with a different variant, so that whatever one start leaves for the
        // kernel to finish (namespace and filter teardown) lands on every variant alike; the
        // starts with a cgroup are a second group, rotated on its own.
        let groups = [Array(0..<plain), Array(plain..<variants.count)]
        for group in groups {
            for i in 0..<(containers + 2) {
                for k in 0..<group.count {
                    let v = group[(i + k) % group.count]
                    let variant = variants[v]
                    let cpu0 = Self.childrenCPUMillis()
                    let t = try timeMillis {
                        let security = v == defaultsIndex ? try SecurityOptions().resolve() : variant.1
                        if v < plain {
                            _ = try ContainerProcess.run(spec, stdio: .null, security: security)
                        } else {
                            counter += 1
                            let cgroup = try Cgroup.create(name: "\(prefix)-\(counter)", limits: CgroupLimits())
                            defer { try? cgroup.killAll(); try? cgroup.destroy() }
                            _ = try ContainerProcess.run(spec, stdio: .null, security: security) { try cgroup.add(pid: $0.pid) }
                        }
                    }
                    if i >= 2 {  // two warm-up rounds
                        samples[v].append(t)
                        cpu[v].append(Self.childrenCPUMillis() - cpu0)
                    }
                }
            }
        }
        var base = median(samples[0])
        var baseQ = quartile(samples[0])
        var baseCPU = mean(cpu[0])
        print("container start of /bin/true: wall-clock median and first quartile; the child's CPU time (mean of")
        print("user+sys from getrusage(RUSAGE_CHILDREN): less disturbed by other load than wall-clock)")
        for (v, variant) in variants.enumerated() {
            if v == plain { (base, baseQ, baseCPU) = (median(samples[v]), quartile(samples[v]), mean(cpu[v])) }
            let m = median(samples[v])
            let q = quartile(samples[v])
            let c = mean(cpu[v])
            var label = variant.0 + ":"
            while label.count < 48 { label += " " }
            let isBase = v == 0 || v == plain
            print("\(label)median \(fmt(m, 3)) ms" + (isBase ? "" : " (+\(fmt(m - base, 3)))")
                  + ", p25 \(fmt(q, 3)) ms" + (isBase ? "" : " (+\(fmt(q - baseQ, 3)))")
                  + ", child CPU \(fmt(c, 3)) ms" + (isBase ? "" : " (+\(fmt(c - baseCPU, 3)))"))
        }
        return (median(samples[defaultsIndex]) - median(samples[0]), mean(cpu[defaultsIndex]) - mean(cpu[0]))
    }

    func mean(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }

    /// User + system CPU time of all reaped children so far, in milliseconds.
    static func childrenCPUMillis() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        func ms(_ t: timeval) -> Double { Double(t.tv_sec) * 1000 + Double(t.tv_usec) / 1000 }
        return ms(usage.ru_utime) + ms(usage.ru_stime)
    }

    /// The first quartile: less disturbed by other load than the median on a shared machine.
    func quartile(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 4]
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
