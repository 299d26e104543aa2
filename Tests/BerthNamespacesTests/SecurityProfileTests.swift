import BerthNamespaces
import BerthSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SecurityProfileTests {
    // MARK: Capabilities

    @Test func capabilityNamesParseInEveryDockerSpelling() throws {
        #expect(try Capability(parsing: "NET_ADMIN") == .netAdmin)
        #expect(try Capability(parsing: "CAP_NET_ADMIN") == .netAdmin)
        #expect(try Capability(parsing: "net_admin").number == 12)
        #expect(try Capability(parsing: "cap_sys_admin").number == 21)
        #expect(try Capability(parsing: "CHECKPOINT_RESTORE").number == 40)
        #expect(Capability.allKnown.count == 41)
        for cap in Capability.allKnown { #expect(try Capability(parsing: cap.name) == cap) }
        #expect(Capability.sysAdmin.name == "CAP_SYS_ADMIN")
    }

    @Test func unknownCapabilityIsAClearError() {
        let error = #expect(throws: BerthError.self) { try Capability(parsing: "NET_ADMNI") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("NET_ADMNI") == true)
        let viaAdd = #expect(throws: BerthError.self) { try CapabilitySet.resolving(add: ["SYS_BOGUS"]) }
        #expect(viaAdd?.message.contains("--cap-add") == true)
        #expect(viaAdd?.message.contains("SYS_BOGUS") == true)
        let viaDrop = #expect(throws: BerthError.self) { try SecurityOptions(capDrop: ["nope"]).resolve() }
        #expect(viaDrop?.message.contains("--cap-drop") == true)
    }

    @Test func dockerDefaultCapabilities() {
        let names = CapabilitySet.dockerDefault.members.map(\.name)
        #expect(names.count == 14)
        for n in ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
                  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
                  "CAP_AUDIT_WRITE"] {
            #expect(names.contains(n))
        }
        #expect(!CapabilitySet.dockerDefault.contains(.sysAdmin))
        #expect(!CapabilitySet.dockerDefault.contains(.netAdmin))
    }

    @Test func capAddDropAllAndPrivilegedFollowDocker() throws {
        let last = 40
        let everything = CapabilitySet.all(upTo: last)
        #expect(everything.members.count == 41)
        // add + drop on the default set
        var s = try CapabilitySet.resolving(add: ["net_admin"], drop: ["MKNOD", "cap_kill"], available: everything)
        #expect(s.contains(.netAdmin) && !s.contains(.mknod) && !s.contains(.kill) && s.contains(.chown))
        #expect(s.members.count == 13)
        // drop ALL keeps only the adds
        s = try CapabilitySet.resolving(add: ["CHOWN"], drop: ["ALL"], available: everything)
        #expect(s.members == [.chown])
        // add ALL minus drops
        s = try CapabilitySet.resolving(add: ["all"], drop: ["SYS_ADMIN"], available: everything)
        #expect(s.members.count == 40 && !s.contains(.sysAdmin))
        // add ALL beats drop ALL (Docker's order)
        s = try CapabilitySet.resolving(add: ["ALL"], drop: ["ALL"], available: everything)
        #expect(s.members.count == 41)
        // privileged ignores drops
        s = try CapabilitySet.resolving(drop: ["ALL"], privileged: true, available: everything)
        #expect(s == everything)
        // an older kernel: capabilities above its last one are left out
        s = try CapabilitySet.resolving(add: ["BPF", "PERFMON", "NET_ADMIN"], available: .all(upTo: 37))
        #expect(!s.contains(.bpf) && !s.contains(.perfmon) && s.contains(.netAdmin))
        #expect(CapabilitySet.all(upTo: 37).mask == (1 << 38) - 1)
        // masks: bounding = effective = permitted, nothing inheritable or ambient
        let m = CapabilitySet.dockerDefault.processMasks
        #expect(m.bounding == CapabilitySet.dockerDefault.mask && m.effective == m.bounding && m.permitted == m.bounding)
        #expect(m.inheritable == 0 && m.ambient == 0)
    }

    @Test func kernelCapLastCapAndOwnBoundingSetLimitWhatIsAvailable() throws {
        let text = try FileIO.read("/proc/sys/kernel/cap_last_cap").trimmingSpaces()
        #expect(Capability.lastSupportedByKernel == Int(text))
        #expect(CapabilitySet.all().members.count == Capability.lastSupportedByKernel + 1)
        let status = try FileIO.read("/proc/self/status")
        let line = status.split(separator: "\n").first { $0.hasPrefix("CapBnd:") }.map(String.init) ?? ""
        let own = UInt64(line.dropFirst(7).filter { !$0.isWhitespace }, radix: 16) ?? 0
        #expect(CapabilitySet.availableToContainers.mask == own & CapabilitySet.all().mask)
        #expect(try CapabilitySet.resolving(privileged: true) == .availableToContainers)
    }

    // MARK: Seccomp profiles

    @Test func defaultProfileCompilesToASaneProgram() throws {
        let program = try SeccompCompiler.compile(.dockerDefault, capabilities: .dockerDefault)
        #expect(program.count % 8 == 0)
        let instructions = program.count / 8
        #expect(instructions > 100 && instructions <= 4096, "\(instructions) instructions")
        // Granting CAP_SYS_ADMIN enables more rules, so the program differs.
        var withAdmin = CapabilitySet.dockerDefault
        withAdmin.insert(.sysAdmin)
        #expect(try SeccompCompiler.compile(.dockerDefault, capabilities: withAdmin) != program)
        // The cache returns the same bytes.
        #expect(try SeccompCompiler.cachedCompile(.dockerDefault, capabilities: .dockerDefault) == program)
    }

    @Test func nativeArchitectureOnlyMakesASmallerProgram() throws {
        let full = try SeccompCompiler.compile(.dockerDefault, capabilities: .dockerDefault)
        let native = try SeccompCompiler.compile(SeccompProfile.dockerDefault.restrictedToNativeArchitecture(), capabilities: .dockerDefault)
        #expect(native.count * 2 < full.count)
        var options = SecurityOptions()
        options.nativeArchitectureOnly = true
        #expect(try options.resolve().seccompFilter == native)
    }

    @Test func defaultProfileDeniesTheDangerousCalls() {
        let profile = SeccompProfile.dockerDefault
        #expect(profile.defaultAction == .errno && profile.defaultErrnoRet == 1)
        let unconditional = Set(profile.syscalls.filter { $0.action == .allow && $0.includes == nil && $0.excludes == nil && $0.args == nil }
            .flatMap(\.names))
        for name in ["keyctl", "add_key", "request_key", "unshare", "mount", "umount2", "reboot", "init_module",
                     "finit_module", "kexec_load", "bpf", "perf_event_open", "ptrace", "setns", "clone", "clone3",
                     "personality", "userfaultfd", "pivot_root", "sethostname", "io_uring_setup", "swapon"] {
            #expect(!unconditional.contains(name), "\(name) must not be allowed unconditionally")
        }
        for name in ["read", "write", "openat", "execve", "futex", "epoll_wait", "socketpair", "capset", "prctl",
                     "setresuid", "setgroups", "rt_sigprocmask", "exit_group", "wait4", "mknod"] {
            #expect(unconditional.contains(name), "\(name) must be allowed")
        }
    }

    @Test func defaultProfileRoundTripsThroughJSON() throws {
        let json = try SeccompProfile.dockerDefault.jsonString()
        #expect(json.contains("\"SCMP_ACT_ERRNO\"") && json.contains("\"archMap\""))
        let again = try SeccompProfile(json: json)
        #expect(again == SeccompProfile.dockerDefault)
    }

    static let customProfile = """
    {
      "defaultAction": "SCMP_ACT_ERRNO",
      "defaultErrnoRet": 38,
      "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
      "flags": ["SECCOMP_FILTER_FLAG_LOG"],
      "syscalls": [
        {"names": ["read", "write", "exit_group", "execve", "brk", "mmap", "chown32"], "action": "SCMP_ACT_ALLOW"},
        {"name": "openat", "action": "SCMP_ACT_ALLOW", "comment": "Docker's old single-name form"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["reboot"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["futex_wait"], "action": "SCMP_ACT_ALLOW"}
      ]
    }
    """

    @Test func customProfileParsesAndCompiles() throws {
        let profile = try SeccompProfile(json: Self.customProfile, source: "custom.json")
        #expect(profile.syscalls.count == 11)
        #expect(profile.syscalls[1].names == ["openat"])
        #expect(profile.syscalls[5].args?.first?.op == .maskedEqual)
        #expect(profile.syscalls[5].args?.first?.value == 0x7E02_0000)
        let program = try SeccompCompiler.compile(profile, capabilities: .dockerDefault)
        #expect(program.count % 8 == 0 && program.count / 8 > 10)
        // An empty allow-everything profile compiles too.
        let open = try SeccompProfile(json: #"{"defaultAction": "SCMP_ACT_ALLOW"}"#)
        #expect(try SeccompCompiler.compile(open, capabilities: CapabilitySet()).count > 0)
    }

    @Test func malformedProfilesNameTheProblem() {
        func message(_ json: String) -> String {
            do { _ = try SeccompProfile(json: json, source: "p.json"); return "no error" } catch let e as BerthError {
                #expect(e.code == .invalidArgument)
                return e.message
            } catch { return "\(error)" }
        }
        var m = message(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [ {"names": ["read"] "action": 1} ]}"#)
        #expect(m.hasPrefix("p.json: ") && m.contains("not valid JSON"), "\(m)")
        m = message(#"{"syscalls": []}"#)
        #expect(m.contains("defaultAction"), "\(m)")
        m = message(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["write"], "action": "SCMP_ACT_MAYBE"}]}"#)
        #expect(m.contains("syscalls[1].action") && m.contains("SCMP_ACT_MAYBE"), "\(m)")
        m = message(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": "x", "op": "SCMP_CMP_EQ"}]}]}"#)
        #expect(m.contains("syscalls[0].args[0].value") && m.contains("integer"), "\(m)")
        m = message(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#)
        #expect(m.contains("syscalls[0].args[0].index") && m.contains("0...5"), "\(m)")
        m = message(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#)
        #expect(m.contains("syscalls[0].args[0].op") && m.contains("SCMP_CMP_ABOUT"), "\(m)")
        m = message(#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}"#)
        #expect(m.contains("architectures[0]") && m.contains("SCMP_ARCH_Z80"), "\(m)")
        m = message(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}"#)
        #expect(m.contains("syscalls[0].errnoRet"), "\(m)")
        m = message(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_WIZARD"]}}]}"#)
        #expect(m.contains("syscalls[0].includes.caps[0]") && m.contains("CAP_WIZARD"), "\(m)")
        m = message(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#)
        #expect(m.contains("syscalls[0]") && m.contains("names"), "\(m)")
        m = message(#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#)
        #expect(m.contains("defaultAction") && m.contains("not supported"), "\(m)")
        m = message(#"["SCMP_ACT_ALLOW"]"#)
        #expect(m.contains("p.json"), "\(m)")
    }

    @Test func unknownSyscallInACustomProfileIsAnError() throws {
        let profile = try SeccompProfile(json: #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "mkdri"], "action": "SCMP_ACT_ALLOW"}]}"#)
        let error = #expect(throws: BerthError.self) { try SeccompCompiler.compile(profile, capabilities: .dockerDefault) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("syscalls[0]") == true && error?.message.contains("\"mkdri\"") == true)
        // Through the security-opt path too, without side effects.
        var options = SecurityOptions()
        try options.apply(securityOpt: #"seccomp={"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_ALLOW"}]}"#)
        #expect(throws: BerthError.self) { try options.resolve() }
    }

    @Test func conflictingRulesAreReported() throws {
        let profile = try SeccompProfile(json: #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["read"], "action": "SCMP_ACT_TRAP"}]}"#)
        let error = #expect(throws: BerthError.self) { try SeccompCompiler.compile(profile, capabilities: .dockerDefault) }
        #expect(error?.message.contains("\"read\"") == true)
    }

    @Test func programCacheOnDiskIsSharedAndVerified() throws {
        let dir = try FileIO.makeTemporaryDirectory(prefix: "berth-seccache-\(getpid())-") + "/cache"
        defer { try? FileIO.removeTree(String(dir.dropLast(6))) }
        let expected = try SeccompCompiler.compile(.dockerDefault, capabilities: .dockerDefault)
        #expect(try SeccompProgramCache(directory: dir).program(for: .dockerDefault, capabilities: .dockerDefault) == expected)
        var st = stat()
        #expect(stat(dir, &st) == 0 && st.st_mode & 0o777 == 0o700)
        let files = try Command.check("/bin/ls", [dir]).stdout.split(separator: "\n").map(String.init)
        #expect(files.count == 1)
        let file = dir + "/" + files[0]
        #expect(stat(file, &st) == 0 && st.st_mode & 0o777 == 0o600)

        // A second cache (another process, in effect) reads the entry: prove it by altering the
        // program bytes while keeping the key.
        var bytes = try FileIO.readBytes(file)
        bytes[bytes.count - 1] ^= 0xff
        try FileIO.writeAtomically(file, bytes, mode: 0o600)
        let altered = try SeccompProgramCache(directory: dir).program(for: .dockerDefault, capabilities: .dockerDefault)
        #expect(altered != expected && altered.count == expected.count)

        // An entry whose key text differs (another profile hashed to this name) is not used.
        bytes = try FileIO.readBytes(file)
        bytes[20] ^= 0x01
        try FileIO.writeAtomically(file, bytes, mode: 0o600)
        #expect(try SeccompProgramCache(directory: dir).program(for: .dockerDefault, capabilities: .dockerDefault) == expected)
        // Different capabilities are a different entry.
        var caps = CapabilitySet.dockerDefault
        caps.insert(.sysAdmin)
        _ = try SeccompProgramCache(directory: dir).program(for: .dockerDefault, capabilities: caps)
        #expect(try Command.check("/bin/ls", [dir]).stdout.split(separator: "\n").count == 2)
    }

    @Test func kernelVersionsParse() {
        #expect(KernelVersion("4.8") == KernelVersion(major: 4, minor: 8))
        #expect(KernelVersion("6.18.44-fc-v595") == KernelVersion(major: 6, minor: 18))
        #expect(KernelVersion("5.15.0-91-generic")! > KernelVersion("4.8")!)
        #expect(KernelVersion("4.10")! > KernelVersion("4.8")!)
        #expect(KernelVersion("four") == nil)
        #expect(KernelVersion("4") == nil)
        #expect(KernelVersion.running.major >= 4)
    }

    // MARK: Security options

    @Test func securityOptParsing() throws {
        var o = SecurityOptions()
        #expect(o.noNewPrivileges == false)
        try o.apply(securityOpt: "no-new-privileges")
        #expect(o.noNewPrivileges)
        try o.apply(securityOpt: "no-new-privileges=false")
        #expect(!o.noNewPrivileges)
        try o.apply(securityOpt: "no-new-privileges:true")
        #expect(o.noNewPrivileges)
        try o.apply(securityOpt: "seccomp=unconfined")
        #expect(o.seccomp == .unconfined)
        try o.apply(securityOpt: "seccomp=builtin")
        #expect(o.seccomp == .dockerDefault)
        try o.apply(securityOpt: "systempaths=unconfined")
        #expect(o.unconfinedSystemPaths)
        try o.apply(securityOpt: "apparmor=unconfined")
        try o.apply(securityOpt: "label=disable")
        #expect(o.notes.count == 2)

        for bad in ["no-new-privileges=maybe", "seccomp=", "seccomp", "systempaths=open", "selinux=on", "apparmor=", "label"] {
            let e = #expect(throws: BerthError.self) { try o.apply(securityOpt: bad) }
            #expect(e?.code == .invalidArgument, "\(bad)")
            #expect(e?.message.contains(bad) == true, "\(bad): \(e?.message ?? "")")
        }
        for unsupported in ["apparmor=docker-default", "label=type:svirt_apache_t", "label:user:USER"] {
            let e = #expect(throws: BerthError.self) { try o.apply(securityOpt: unsupported) }
            #expect(e?.code == .unsupported, "\(unsupported)")
        }
        let missing = #expect(throws: BerthError.self) { try o.apply(securityOpt: "seccomp=/nonexistent/\(getpid())/p.json") }
        #expect(missing?.code == .notFound)
        #expect(missing?.message.contains("/nonexistent/") == true)
    }

    @Test func seccompProfileFromAFile() throws {
        let dir = try FileIO.makeTemporaryDirectory(prefix: "berth-sec-\(getpid())-")
        defer { try? FileIO.removeTree(dir) }
        try FileIO.writeAtomically(dir + "/good.json", Self.customProfile)
        try FileIO.writeAtomically(dir + "/bad.json", #"{"defaultAction": 3}"#)
        let o = try SecurityOptions(securityOpts: ["seccomp=\(dir)/good.json"])
        guard case .profile(let p) = o.seccomp else { Issue.record("expected a profile"); return }
        #expect(p.syscalls.count == 11)
        #expect(try o.resolve().seccompFilter != nil)
        let e = #expect(throws: BerthError.self) { try SecurityOptions(securityOpts: ["seccomp:\(dir)/bad.json"]) }
        #expect(e?.message.contains("bad.json") == true && e?.message.contains("defaultAction") == true)
    }

    @Test func resolveDefaultsAndPrivileged() throws {
        let d = try SecurityOptions().resolve()
        #expect(d.noNewPrivileges == false)
        #expect(d.capabilities == CapabilitySet.dockerDefault.processMasks)
        #expect(d.seccompFilter == (try SeccompCompiler.compile(.dockerDefault, capabilities: .dockerDefault)))
        #expect(d.maskedPaths.contains("/proc/kcore") && d.maskedPaths.contains("/sys/firmware") && d.maskedPaths.count == 11)
        #expect(d.readonlyPaths == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"])

        let p = try SecurityOptions(securityOpts: ["no-new-privileges"], capDrop: ["ALL"], privileged: true).resolve()
        #expect(p.seccompFilter == nil && p.maskedPaths.isEmpty && p.readonlyPaths.isEmpty)
        #expect(p.capabilities == CapabilitySet.availableToContainers.processMasks)
        #expect(p.noNewPrivileges)
        #expect(SecurityOptions(privileged: true).deviceRules == DeviceRule.allowAll)

        let u = try SecurityOptions(securityOpts: ["seccomp=unconfined", "systempaths=unconfined"], capAdd: ["SYS_ADMIN"]).resolve()
        #expect(u.seccompFilter == nil && u.maskedPaths.isEmpty)
        #expect(u.capabilities.map { $0.bounding & (1 << 21) != 0 } == true)
    }

    @Test func deviceRulesRenderAsCgroupLines() {
        let lines = DeviceRule.dockerDefault.map(\.description)
        #expect(lines.first == "a" && DeviceRule.dockerDefault.first?.allow == false)
        for l in ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
                  "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm", "c 10:229 rwm"] {
            #expect(lines.contains(l), "\(l)")
        }
        #expect(DeviceRule.allowAll.map(\.description) == ["a"])
    }
}
