extension SeccompProfile {
    /// Berth's rendition of Docker's default seccomp profile.
    ///
    /// An allow-list: anything not listed fails with EPERM. It filters the native architectures
    /// (x86_64 with x86 and x32 on amd64; aarch64 with arm on arm64). On top of the plain
    /// allow-list:
    /// - `clone` is allowed only without any `CLONE_NEW*` namespace flag, and `clone3` fails with
    ///   ENOSYS (so that libc falls back to `clone`), unless CAP_SYS_ADMIN is granted;
    /// - `personality` is allowed only for PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32
    ///   and the query value 0xffffffff;
    /// - `socket` is allowed for every family except AF_VSOCK;
    /// - groups of syscalls are allowed only when the matching capability is granted
    ///   (CAP_SYS_ADMIN: mount, umount2, unshare, setns, pivot_root, sethostname, bpf, …;
    ///   CAP_SYS_PTRACE: ptrace, process_vm_readv/writev, kcmp, pidfd_getfd; CAP_SYS_MODULE:
    ///   init_module, finit_module, delete_module; CAP_SYS_BOOT: reboot; CAP_SYS_TIME,
    ///   CAP_SYS_NICE, CAP_SYS_RAWIO, CAP_SYS_CHROOT, CAP_SYS_PACCT, CAP_SYSLOG,
    ///   CAP_SYS_TTY_CONFIG, CAP_DAC_READ_SEARCH, CAP_BPF, CAP_PERFMON).
    ///
    /// Denied in every case: keyctl, add_key, request_key, kexec_load, kexec_file_load,
    /// userfaultfd, swapon/swapoff, uselib, lookup_dcookie (without CAP_SYS_ADMIN),
    /// open_by_handle_at (without CAP_DAC_READ_SEARCH), io_uring_*, and any syscall newer than
    /// this list.
    ///
    /// Difference from Docker: Docker allows ptrace, process_vm_readv/writev and kcmp to
    /// everyone on kernels ≥ 4.8; Berth allows them only with CAP_SYS_PTRACE (a debugger in a
    /// container needs `--cap-add SYS_PTRACE`). Docker 25 also denies io_uring, as Berth does.
    public static let dockerDefault: SeccompProfile = {
        var rules: [SeccompSyscallRule] = [SeccompSyscallRule(names: DockerDefaultSyscalls.allowed, action: .allow)]
        rules.append(SeccompSyscallRule(names: ["personality"], action: .allow, args: [
            .init(index: 0, value: 0x0, op: .equal),           // PER_LINUX
            .init(index: 0, value: 0x8, op: .equal),           // PER_LINUX32
            .init(index: 0, value: 0x20000, op: .equal),       // UNAME26
            .init(index: 0, value: 0x20008, op: .equal),       // UNAME26 | PER_LINUX32
            .init(index: 0, value: 0xffff_ffff, op: .equal),   // query the current persona
        ]))
        // AF_VSOCK (40) reaches the hypervisor host: not for containers.
        rules.append(SeccompSyscallRule(names: ["socket"], action: .allow,
                                        args: [.init(index: 0, value: 40, op: .notEqual)]))
        rules.append(SeccompSyscallRule(names: ["arch_prctl", "modify_ldt"], action: .allow,
                                        includes: .init(arches: ["amd64", "x32", "x86"])))
        rules.append(SeccompSyscallRule(names: ["breakpoint", "cacheflush", "set_tls", "arm_fadvise64_64",
                                                "arm_sync_file_range", "sync_file_range2"], action: .allow,
                                        includes: .init(arches: ["arm", "arm64"])))
        rules.append(SeccompSyscallRule(names: ["riscv_flush_icache"], action: .allow,
                                        includes: .init(arches: ["riscv64"])))
        rules.append(SeccompSyscallRule(names: ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
                                        action: .allow, includes: .init(arches: ["s390", "s390x"])))

        // Namespaces: clone without CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET} = mask 0x7E020000.
        rules.append(SeccompSyscallRule(names: ["clone"], action: .allow,
                                        args: [.init(index: 0, value: 0x7E02_0000, valueTwo: 0, op: .maskedEqual)],
                                        excludes: .init(caps: ["CAP_SYS_ADMIN"], arches: ["s390", "s390x"])))
        // s390 swaps clone's first two arguments: the flags are argument 1 there.
        rules.append(SeccompSyscallRule(names: ["clone"], action: .allow,
                                        args: [.init(index: 1, value: 0x7E02_0000, valueTwo: 0, op: .maskedEqual)],
                                        includes: .init(arches: ["s390", "s390x"]),
                                        excludes: .init(caps: ["CAP_SYS_ADMIN"])))
        // clone3 passes its flags in memory, where seccomp cannot look: make libc fall back to clone.
        rules.append(SeccompSyscallRule(names: ["clone3"], action: .errno, errnoRet: 38 /* ENOSYS */,
                                        excludes: .init(caps: ["CAP_SYS_ADMIN"])))

        let gated: [(cap: String, names: [String])] = [
            ("CAP_SYS_ADMIN", ["bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                               "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
                               "pivot_root", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
                               "syslog", "umount", "umount2", "unshare"]),
            ("CAP_DAC_READ_SEARCH", ["open_by_handle_at"]),
            ("CAP_SYS_BOOT", ["reboot"]),
            ("CAP_SYS_CHROOT", ["chroot"]),
            ("CAP_SYS_MODULE", ["delete_module", "init_module", "finit_module"]),
            ("CAP_SYS_PACCT", ["acct"]),
            ("CAP_SYS_PTRACE", ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]),
            ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
            ("CAP_SYS_TIME", ["settimeofday", "stime", "clock_settime", "clock_settime64"]),
            ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
            ("CAP_SYS_NICE", ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
            ("CAP_SYSLOG", ["syslog"]),
            ("CAP_BPF", ["bpf"]),
            ("CAP_PERFMON", ["perf_event_open"]),
        ]
        for (cap, names) in gated {
            rules.append(SeccompSyscallRule(names: names, action: .allow, includes: .init(caps: [cap])))
        }
        return SeccompProfile(
            defaultAction: .errno, defaultErrnoRet: 1,
            archMap: [
                .init(architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
                .init(architecture: "SCMP_ARCH_AARCH64", subArchitectures: ["SCMP_ARCH_ARM"]),
                .init(architecture: "SCMP_ARCH_RISCV64", subArchitectures: []),
                .init(architecture: "SCMP_ARCH_PPC64LE", subArchitectures: []),
                .init(architecture: "SCMP_ARCH_S390X", subArchitectures: ["SCMP_ARCH_S390"]),
            ],
            syscalls: rules)
    }()

    /// Every syscall name the default profile mentions. A custom profile may name one of these
    /// even if libseccomp is too old to know it (it is then skipped, as Docker does); any other
    /// name libseccomp does not know is reported as an error.
    static let namesOfDefaultProfile: Set<String> = Set(dockerDefault.syscalls.flatMap(\.names))
}

/// The plain allow-list of the default profile, grouped by what the calls are for.
enum DockerDefaultSyscalls {
    static let allowed: [String] = files + descriptors + memory + processes + identity + signals + time
        + scheduling + ipc + network + ["cachestat"]

    static let files = [
        "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range", "creat",
        "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod",
        "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr",
        "flistxattr", "flock", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
        "fsync", "ftruncate", "ftruncate64", "futimesat", "getcwd", "getdents", "getdents64", "getxattr",
        "lchown", "lchown32", "lgetxattr", "link", "linkat", "listxattr", "llistxattr", "_llseek", "lremovexattr",
        "lseek", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat", "mknod", "mknodat", "name_to_handle_at",
        "newfstatat", "open", "openat", "openat2", "pread64", "preadv", "preadv2", "pwrite64", "pwritev",
        "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "removexattr", "rename", "renameat",
        "renameat2", "rmdir", "sendfile", "sendfile64", "setxattr", "splice", "stat", "stat64", "statfs",
        "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate",
        "truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes",
        "vmsplice", "write", "writev",
    ]
    static let descriptors = [
        "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
        "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "inotify_add_watch", "inotify_init",
        "inotify_init1", "inotify_rm_watch", "ioctl", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64", "io_setup", "io_submit", "pipe", "pipe2", "poll", "ppoll", "ppoll_time64",
        "pselect6", "pselect6_time64", "select", "_newselect", "signalfd", "signalfd4", "timerfd_create",
        "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64",
    ]
    static let memory = [
        "brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock",
        "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "msync", "munlock", "munlockall", "munmap",
        "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages", "mseal",
    ]
    static let processes = [
        "execve", "execveat", "exit", "exit_group", "fork", "vfork", "wait4", "waitid", "waitpid", "getpid",
        "getppid", "gettid", "getpgid", "getpgrp", "getsid", "setpgid", "setsid", "prctl", "getrlimit",
        "setrlimit", "ugetrlimit", "prlimit64", "getrusage", "set_tid_address", "get_robust_list",
        "set_robust_list", "futex", "futex_time64", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
        "rseq", "restart_syscall", "get_thread_area", "set_thread_area", "seccomp", "capget", "capset",
        "pidfd_open", "pidfd_send_signal", "process_mrelease", "landlock_add_rule", "landlock_create_ruleset",
        "landlock_restrict_self", "getcpu", "uname", "sysinfo", "times", "getrandom",
    ]
    static let identity = [
        "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32", "getgroups",
        "getgroups32", "getresuid", "getresuid32", "getresgid", "getresgid32", "setuid", "setuid32", "setgid",
        "setgid32", "setreuid", "setreuid32", "setregid", "setregid32", "setresuid", "setresuid32", "setresgid",
        "setresgid32", "setgroups", "setgroups32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32",
    ]
    static let signals = [
        "kill", "tkill", "tgkill", "pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
        "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
        "sigaltstack", "sigprocmask", "sigreturn", "alarm", "getitimer", "setitimer",
    ]
    static let time = [
        "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
        "clock_nanosleep_time64", "gettimeofday", "nanosleep", "time", "timer_create", "timer_delete",
        "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    ]
    static let scheduling = [
        "getpriority", "setpriority", "ioprio_get", "ioprio_set", "sched_getaffinity", "sched_setaffinity",
        "sched_getattr", "sched_setattr", "sched_getparam", "sched_setparam", "sched_get_priority_max",
        "sched_get_priority_min", "sched_getscheduler", "sched_setscheduler", "sched_rr_get_interval",
        "sched_rr_get_interval_time64", "sched_yield",
    ]
    static let ipc = [
        "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
        "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl",
        "semget", "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget",
    ]
    static let network = [
        "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen", "recv",
        "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg", "sendto",
        "setsockopt", "shutdown", "socketcall", "socketpair",
    ]
}
