import BerthNamespaces
import BerthSystem
import CBerthShim
import CSeccomp
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real-kernel checks of compiled programs without the spawner: a filter installed without
/// TSYNC confines only the calling thread, so each check runs on a fresh pthread that first moves
/// into its own mount and UTS namespaces (so that nothing it might do by mistake reaches the
/// host), installs the program and then tries the calls.
@Suite struct SecuritySeccompKernelTests {
    /// What a call returned: its result and errno (0 on success).
    struct Outcome: Equatable, CustomStringConvertible {
        var result: Int
        var errno: Int32
        var description: String { errno == 0 ? "ok(\(result))" : "errno \(errno) (\(strerrorString(errno)))" }
        static let eperm = Outcome(result: -1, errno: EPERM)
    }

    final class ThreadJob: @unchecked Sendable {
        let program: [UInt8]
        let calls: [(String, () -> Int)]
        var outcomes: [String: Outcome] = [:]
        var setupError: String?
        init(program: [UInt8], calls: [(String, () -> Int)]) { self.program = program; self.calls = calls }

        func run() {
            guard berth_unshare(berth_CLONE_NEWNS | berth_CLONE_NEWUTS) == 0 else { setupError = "unshare: \(errno)"; return }
            guard mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) == 0 else { setupError = "make / private: \(errno)"; return }
            // struct sock_fprog { unsigned short len; struct sock_filter *filter; } on a 64-bit target.
            let rc: Int32 = program.withUnsafeBytes { prog in
                var fprog = [UInt64](repeating: 0, count: 2)
                fprog[0] = UInt64(prog.count / 8)
                fprog[1] = UInt64(UInt(bitPattern: prog.baseAddress))
                return fprog.withUnsafeBytes { f in
                    berth_prctl(22 /* PR_SET_SECCOMP */, 2 /* SECCOMP_MODE_FILTER */,
                                UInt(bitPattern: f.baseAddress), 0, 0)
                }
            }
            guard rc == 0 else { setupError = "PR_SET_SECCOMP: \(strerrorString(errno))"; return }
            for (name, call) in calls {
                errno = 0
                let r = call()
                outcomes[name] = Outcome(result: r, errno: r < 0 ? errno : 0)
            }
        }
    }

    /// libc's `syscall(2)`, which Swift cannot import (variadic). glibc implements it in assembly
    /// that only moves registers, so calling it through a fixed six-argument C pointer is sound.
    static let rawSyscall: @convention(c) (Int, Int, Int, Int, Int, Int, Int) -> Int = {
        unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "syscall")!,
                      to: (@convention(c) (Int, Int, Int, Int, Int, Int, Int) -> Int).self)
    }()

    /// Calls syscall `name` (resolved by libseccomp for this architecture) with `args`.
    static func sys(_ name: String, _ args: Int...) -> Int {
        let nr = Int(seccomp_syscall_resolve_name(name))
        precondition(nr >= 0, "\(name) does not exist on this architecture")
        var a = args
        while a.count < 6 { a.append(0) }
        return rawSyscall(nr, a[0], a[1], a[2], a[3], a[4], a[5])
    }

    /// Runs `calls` on a new thread confined by `program`.
    func confined(_ program: [UInt8], _ calls: [(String, () -> Int)]) throws -> [String: Outcome] {
        let job = ThreadJob(program: program, calls: calls)
        var thread = pthread_t()
        let box = Unmanaged.passRetained(job).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<ThreadJob>.fromOpaque(raw!).takeRetainedValue()
            job.run()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<ThreadJob>.fromOpaque(box).release()
            throw BerthError.system("pthread_create", errno: rc)
        }
        pthread_join(thread, nil)
        if let e = job.setupError { throw BerthError(.system, "confined thread setup: \(e)") }
        return job.outcomes
    }

    static let deniedByDefault = [
        "unshare(net)", "unshare(user)", "unshare(mnt)", "setns", "mount", "umount2", "sethostname",
        "personality(ADDR_NO_RANDOMIZE)", "socket(AF_VSOCK)", "keyctl", "add_key", "request_key", "ptrace",
        "reboot(bad magic)", "init_module", "finit_module", "delete_module", "kexec_load(bad flags)", "bpf",
        "perf_event_open", "userfaultfd(bad flags)", "clone(NEWNS|FS)", "acct(bad path)", "swapon",
    ]

    @Test func defaultProfileDeniesNamespaceMountAndHostnameCalls() throws {
        let program = try SeccompCompiler.compile(.dockerDefault, capabilities: .dockerDefault)
        let tmp = try FileIO.makeTemporaryDirectory(prefix: "berth-secmnt-\(getpid())-")
        defer { try? FileIO.removeTree(tmp) }
        let out = try confined(program, probes(tmp))
        #expect(out["clone3"]?.errno == ENOSYS, "clone3 must look unimplemented so that libc falls back to clone")
        for denied in Self.deniedByDefault {
            #expect(out[denied] == .eperm, "\(denied): \(out[denied].map { "\($0)" } ?? "not run")")
        }
        // Nothing got mounted on the host's view of the directory.
        #expect(try !FileIO.read("/proc/self/mountinfo").contains(tmp))
    }

    /// The calls the tests try: the name and a closure returning the raw result.
    func probes(_ tmp: String) -> [(String, () -> Int)] {
        [
            ("unshare(net)", { Int(berth_unshare(berth_CLONE_NEWNET)) }),
            ("unshare(user)", { Int(berth_unshare(berth_CLONE_NEWUSER)) }),
            ("unshare(mnt)", { Int(berth_unshare(berth_CLONE_NEWNS)) }),
            ("setns", { Int(berth_setns(-1, 0)) }),
            ("mount", { Int(mount("none", tmp, "tmpfs", 0, nil)) }),
            ("umount2", { Int(umount2(tmp + "/missing", 0)) }),
            ("sethostname", { Int(sethostname("berth-escape", 12)) }),
            ("personality(ADDR_NO_RANDOMIZE)", { Self.sys("personality", 0x0040000) }),
            ("socket(AF_VSOCK)", { Int(socket(40, Int32(SOCK_STREAM.rawValue), 0)) }),
            // Ordinary work keeps working.
            ("getpid", { Int(getpid()) }),
            ("personality(query)", { Self.sys("personality", 0xffff_ffff) }),
            ("open+read", {
                let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { return -1 }
                defer { close(fd) }
                var buf = [UInt8](repeating: 0, count: 64)
                return read(fd, &buf, 64)
            }),
            ("socket(AF_UNIX)", {
                let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                if fd >= 0 { close(fd) }
                return Int(fd)
            }),
            ("chroot(/)", { Int(chroot("/")) }),
            // Each of these would fail differently (EINVAL, EBADF, ESRCH, …) if the filter let it
            // through; the arguments are chosen so that nothing happens even then.
            ("keyctl", { Self.sys("keyctl", 0 /* GET_KEYRING_ID */, -3 /* session */, 0) }),
            ("add_key", { Self.sys("add_key", 0, 0, 0, 0, 0) }),
            ("request_key", { Self.sys("request_key", 0, 0, 0, 0) }),
            ("ptrace", { Self.sys("ptrace", 3 /* PEEKUSER */, -1, 0, 0) }),
            ("reboot(bad magic)", { Self.sys("reboot", 0, 0, 0, 0) }),
            ("init_module", { Self.sys("init_module", 0, 0, 0) }),
            ("finit_module", { Self.sys("finit_module", -1, 0, 0) }),
            ("delete_module", { Self.sys("delete_module", 0, 0) }),
            ("kexec_load(bad flags)", { Self.sys("kexec_load", 0, 0, 0, 0xffff) }),
            ("bpf", { Self.sys("bpf", 9999, 0, 0) }),
            ("perf_event_open", { Self.sys("perf_event_open", 0, 0, -1, -1, 0) }),
            ("userfaultfd(bad flags)", { Self.sys("userfaultfd", 0x7fff_ffff) }),
            ("clone(NEWNS|FS)", { Self.sys("clone", Int(berth_CLONE_NEWNS) | 0x200 /* CLONE_FS: invalid pair */, 0, 0, 0, 0) }),
            ("acct(bad path)", { Self.sys("acct", 1) }),
            ("swapon", { Self.sys("swapon", 0, 0) }),
            ("clone3", { Self.sys("clone3", 0, 0) }),
        ]
    }

    /// The control: under an allow-everything program the same probes do not fail with EPERM, so
    /// the EPERMs above come from the filter and not from the probes' arguments.
    @Test func probesReachTheKernelWhenAllowed() throws {
        let program = try SeccompCompiler.compile(try SeccompProfile(json: #"{"defaultAction": "SCMP_ACT_ALLOW"}"#),
                                                  capabilities: .dockerDefault)
        let tmp = try FileIO.makeTemporaryDirectory(prefix: "berth-secctl-\(getpid())-")
        defer { try? FileIO.removeTree(tmp) }
        let out = try confined(program, probes(tmp).filter { $0.0 != "mount" })
        for name in Self.deniedByDefault where name != "mount" {
            #expect(out[name] != nil && out[name] != .eperm, "\(name): \(out[name].map { "\($0)" } ?? "not run")")
        }
        #expect(try !FileIO.read("/proc/self/mountinfo").contains(tmp))
    }

    @Test func defaultProfileAllowsOrdinaryWork() throws {
        let program = try SeccompCompiler.compile(.dockerDefault, capabilities: .dockerDefault)
        let out = try confined(program, probes("/nonexistent"))
        for allowed in ["getpid", "personality(query)", "open+read", "socket(AF_UNIX)", "chroot(/)"] {
            #expect(out[allowed]?.errno == 0, "\(allowed): \(out[allowed].map { "\($0)" } ?? "not run")")
        }
    }

    @Test func capabilitiesOpenTheirSyscallGroups() throws {
        var caps = CapabilitySet.dockerDefault
        caps.insert(.sysAdmin)
        caps.insert(.sysPtrace)
        caps.remove(.sysChroot)
        let program = try SeccompCompiler.compile(.dockerDefault, capabilities: caps)
        let out = try confined(program, [
            // With CAP_SYS_ADMIN the call reaches the kernel, which reports the missing path.
            ("umount2", { Int(umount2("/nonexistent-berth-\(getpid())", 0)) }),
            ("setns", { Int(berth_setns(-1, 0)) }),
            ("ptrace", { Self.sys("ptrace", 3 /* PEEKUSER */, -1, 0, 0) }),
            // Without CAP_SYS_CHROOT, chroot is filtered.
            ("chroot(/)", { Int(chroot("/")) }),
        ])
        #expect(out["umount2"]?.errno == ENOENT, "\(String(describing: out["umount2"]))")
        #expect(out["setns"]?.errno == EBADF, "\(String(describing: out["setns"]))")
        #expect(out["ptrace"]?.errno == ESRCH, "\(String(describing: out["ptrace"]))")
        #expect(out["chroot(/)"] == .eperm, "\(String(describing: out["chroot(/)"]))")
    }

    @Test func customProfileActionsAndArgumentConditions() throws {
        let profile = try SeccompProfile(json: """
        {"defaultAction": "SCMP_ACT_ALLOW",
         "syscalls": [
           {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
           {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
            "args": [{"index": 1, "value": 4242, "op": "SCMP_CMP_EQ"}]}
         ]}
        """)
        let program = try SeccompCompiler.compile(profile, capabilities: .dockerDefault)
        let dir = try FileIO.makeTemporaryDirectory(prefix: "berth-secdir-\(getpid())-")
        defer { try? FileIO.removeTree(dir) }
        let out = try confined(program, [
            ("mkdir", { Int(mkdir(dir + "/x", 0o755)) }),
            ("getpriority(4242)", { Int(getpriority(__priority_which_t(0), 4242)) }),
            ("getpriority(0)", { Int(getpriority(__priority_which_t(0), 0)) }),
        ])
        #expect(out["mkdir"] == Outcome(result: -1, errno: EACCES))
        #expect(out["getpriority(4242)"] == Outcome(result: -1, errno: EINVAL))
        #expect(out["getpriority(0)"]?.errno == 0)
        #expect(!FileIO.exists(dir + "/x"))
    }
}
