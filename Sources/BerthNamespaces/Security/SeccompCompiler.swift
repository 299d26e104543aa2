import BerthSystem
import CBerthShim
import CSeccomp

#if canImport(Glibc)
import Glibc
#endif

/// Compiles a ``SeccompProfile`` into a classic-BPF program with libseccomp, in the parent, so the
/// container's child only has to install it (``ProcessSecurity/seccompFilter``).
///
/// Docker's rule semantics apply: a rule is used only if its `includes` hold (all listed
/// capabilities granted, the native architecture listed, kernel ≥ `minKernel`) and none of its
/// `excludes` does; conditions on distinct argument indexes are ANDed, conditions on the same
/// index become separate rules (ORed); a rule whose action equals the default action is dropped.
///
/// Syscall names: a name libseccomp does not know on any architecture is an error, unless it is
/// one the built-in default profile lists (a syscall newer than libseccomp, which Docker also
/// skips silently). Names that exist only on other architectures (`chown32` on x86_64) are fine.
public enum SeccompCompiler {
    /// Compiles `profile` for a process holding `capabilities` (its bounding set).
    /// - Parameters:
    ///   - profile: The profile (validated again here).
    ///   - capabilities: The container's capabilities; they decide `includes.caps` / `excludes.caps`.
    ///   - kernel: The kernel version for `minKernel` (the running kernel by default).
    /// - Returns: The program as raw `struct sock_filter` bytes (8 per instruction).
    /// - Throws: `BerthError(.invalidArgument)` naming an unknown syscall or a conflicting rule;
    ///   `BerthError(.system)` if libseccomp fails.
    public static func compile(_ profile: SeccompProfile, capabilities: CapabilitySet,
                               kernel: KernelVersion = .running) throws -> [UInt8] {
        try profile.validate()
        let defaultAction = profile.defaultAction.value(errno: profile.defaultErrnoRet)
        guard let ctx = seccomp_init(defaultAction) else {
            throw BerthError(.system, "seccomp_init: libseccomp refused the default action \(profile.defaultAction.rawValue)")
        }
        defer { seccomp_release(ctx) }
        // A binary search over syscall numbers keeps the per-syscall cost flat for long allow-lists.
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)

        for arch in try architectures(of: profile) {
            let rc = seccomp_arch_add(ctx, arch.token)
            if rc != 0 && rc != -EEXIST {
                throw BerthError.system("seccomp_arch_add \(arch.name)", errno: -rc)
            }
        }

        // libseccomp 2.5 silently keeps the first of two unconditional rules with different actions
        // for one syscall; a profile that says both is ambiguous, so it is refused.
        var unconditional: [Int32: (action: UInt32, rule: Int)] = [:]
        for (index, rule) in profile.syscalls.enumerated() where applies(rule, capabilities: capabilities, kernel: kernel) {
            let action = rule.action.value(errno: rule.errnoRet)
            if action == defaultAction { continue }
            let conditions = (rule.args ?? []).map { arg in
                scmp_arg_cmp(arg: UInt32(arg.index), op: scmp_compare(rawValue: arg.op.libseccompValue),
                             datum_a: arg.value, datum_b: arg.valueTwo)
            }
            var indexCounts = [Int](repeating: 0, count: 6)
            for c in conditions { indexCounts[Int(c.arg)] += 1 }
            let groups: [[scmp_arg_cmp]] = indexCounts.contains { $0 > 1 } ? conditions.map { [$0] } : [conditions]
            for name in rule.names {
                let number = seccomp_syscall_resolve_name(name)
                if number == __NR_SCMP_ERROR {
                    if SeccompProfile.namesOfDefaultProfile.contains(name) { continue }
                    throw BerthError(.invalidArgument,
                                     "syscalls[\(index)]: unknown syscall \"\(name)\" (not known to libseccomp on any architecture)")
                }
                if conditions.isEmpty {
                    if let earlier = unconditional[number], earlier.action != action {
                        throw BerthError(.invalidArgument,
                                         "syscalls[\(index)]: rule for \"\(name)\" conflicts with syscalls[\(earlier.rule)], which gives it a different action")
                    }
                    unconditional[number] = (action, index)
                }
                for group in groups {
                    let rc = group.withUnsafeBufferPointer { buf in
                        seccomp_rule_add_array(ctx, action, number, UInt32(buf.count), buf.baseAddress)
                    }
                    if rc == -EEXIST {
                        throw BerthError(.invalidArgument,
                                         "syscalls[\(index)]: rule for \"\(name)\" conflicts with an earlier rule with a different action")
                    }
                    if rc != 0 {
                        throw BerthError(.invalidArgument,
                                         "syscalls[\(index)]: libseccomp rejected the rule for \"\(name)\": \(strerrorString(-rc))",
                                         errno: -rc)
                    }
                }
            }
        }
        return try export(ctx)
    }

    /// Like ``compile(_:capabilities:kernel:)`` but through ``SeccompProgramCache/shared`` (in
    /// memory only), so that only the first container with a given profile pays for compiling it.
    /// - Parameters:
    ///   - profile: The profile.
    ///   - capabilities: The container's capabilities.
    ///   - kernel: The kernel version for `minKernel`.
    public static func cachedCompile(_ profile: SeccompProfile, capabilities: CapabilitySet,
                                     kernel: KernelVersion = .running) throws -> [UInt8] {
        try SeccompProgramCache.shared.program(for: profile, capabilities: capabilities, kernel: kernel)
    }

    /// Whether Docker's includes/excludes let `rule` apply.
    static func applies(_ rule: SeccompSyscallRule, capabilities: CapabilitySet, kernel: KernelVersion) -> Bool {
        func has(_ name: String) -> Bool { (try? Capability(parsing: name)).map(capabilities.contains) ?? false }
        let native = SeccompArchitecture.nativeGoNames
        if let ex = rule.excludes {
            if let arches = ex.arches, arches.contains(where: native.contains) { return false }
            if let caps = ex.caps, caps.contains(where: has) { return false }
            if let k = ex.minKernel.flatMap(KernelVersion.init), kernel >= k { return false }
        }
        if let inc = rule.includes {
            if let arches = inc.arches, !arches.isEmpty, !arches.contains(where: native.contains) { return false }
            if let caps = inc.caps, !caps.allSatisfy(has) { return false }
            if let k = inc.minKernel.flatMap(KernelVersion.init), kernel < k { return false }
        }
        return true
    }

    /// The architectures to filter: OCI's list as given, or Docker's archMap entry for the native
    /// architecture (native plus its sub-architectures), or just the native one — less the
    /// sub-architectures the running kernel cannot execute at all (see ``kernelRuns(_:)``).
    static func architectures(of profile: SeccompProfile) throws -> [SeccompArchitecture] {
        if let list = profile.architectures, !list.isEmpty {
            let all = try list.map { name in
                guard let a = SeccompArchitecture(name: name) else {
                    throw BerthError(.invalidArgument, "unknown architecture \"\(name)\"")
                }
                return a
            }
            let runnable = all.filter(kernelRuns)
            return runnable.isEmpty ? all : runnable
        }
        let native = seccomp_arch_native()
        for entry in profile.archMap ?? [] {
            guard let arch = SeccompArchitecture(name: entry.architecture), arch.token == native else { continue }
            return [arch] + entry.subArchitectures.compactMap(SeccompArchitecture.init(name:)).filter(kernelRuns)
        }
        return []
    }

    /// Whether the running kernel can execute system calls of `arch` at all. Only x32 is ever
    /// answered `false`: most kernels (Debian's, Fedora's, this test VM's) are built without
    /// CONFIG_X86_X32_ABI, and then an x32 section in the program is dead weight — a third of
    /// Docker's amd64 program, and the kernel's install cost grows with the program's length.
    /// Without the section an x32 system call (`nr | 0x40000000`) hits libseccomp's "bad
    /// architecture" action (kill) instead of the kernel's ENOSYS: either way it never runs.
    static func kernelRuns(_ arch: SeccompArchitecture) -> Bool {
        arch.token != SCMP_ARCH_X32 || kernelRunsX32
    }

    /// Probed once per process: an x32 `getpid` answers ENOSYS on kernels without x32.
    static let kernelRunsX32: Bool = berth_kernel_runs_x32() != 0

    /// Exports the filter's BPF into a memfd (libseccomp 2.5 cannot export to memory) and reads it back.
    private static func export(_ ctx: scmp_filter_ctx) throws -> [UInt8] {
        let fd = berth_memfd_create("berth-seccomp", 1 /* MFD_CLOEXEC */)
        guard fd >= 0 else { throw BerthError.system("memfd_create for the seccomp program") }
        defer { close(fd) }
        let rc = seccomp_export_bpf(ctx, fd)
        guard rc == 0 else { throw BerthError.system("seccomp_export_bpf", errno: -rc) }
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0, size % 8 == 0, lseek(fd, 0, SEEK_SET) == 0 else {
            throw BerthError(.system, "seccomp_export_bpf produced \(size) bytes, not a whole number of instructions")
        }
        var program = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < program.count {
            let n = program.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BerthError.system("read the exported seccomp program") }
            done += n
        }
        return program
    }
}

/// A libseccomp architecture, named as in profiles (`SCMP_ARCH_X86_64`).
struct SeccompArchitecture {
    let name: String
    let token: UInt32

    /// Resolves `SCMP_ARCH_X86_64` (or `x86_64`) through libseccomp; `nil` if unknown.
    init?(name: String) {
        var short = name.hasPrefix("SCMP_ARCH_") ? String(name.dropFirst(10)) : name
        short = short.lowercased()
        let token = seccomp_arch_resolve_name(short)
        guard token != 0 else { return nil }
        self.name = name
        self.token = token
    }

    /// The names Docker's `includes.arches` / `excludes.arches` use for the native architecture
    /// (Go's GOARCH plus common aliases).
    static let nativeGoNames: Set<String> = {
        let native = seccomp_arch_native()
        let table: [(String, Set<String>)] = [
            ("x86_64", ["amd64", "x86_64"]), ("x86", ["386", "x86", "i386"]), ("x32", ["x32"]),
            ("aarch64", ["arm64", "aarch64"]), ("arm", ["arm"]), ("riscv64", ["riscv64"]),
            ("ppc64le", ["ppc64le"]), ("ppc64", ["ppc64"]), ("s390x", ["s390x"]), ("s390", ["s390"]),
            ("mips", ["mips"]), ("mipsel", ["mipsle"]), ("mips64", ["mips64"]), ("mipsel64", ["mips64le"]),
        ]
        for (name, aliases) in table where seccomp_arch_resolve_name(name) == native { return aliases }
        return []
    }()
}
