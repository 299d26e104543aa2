import BerthSystem
import CBerthShim
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A container's first process: cloned into new or joined namespaces, stopped at a sync point
/// until ``start()``, then set up (rootfs, hostname, user, security) and exec'd.
///
/// ```swift
/// let c = try ContainerProcess.create(spec)       // child waits at the sync point
/// try cgroup.add(pid: c.pid)                       // parent-side work: cgroups, veths, …
/// try c.start()                                    // rootfs, pivot_root, exec; throws on failure
/// let status = try c.wait()
/// ```
///
/// The object owns the process: when it is released before the process was reaped, the process
/// is killed and reaped. Any failure in ``create(_:stdio:security:options:)`` or ``start()``
/// kills and reaps the child before throwing, so nothing is left behind.
public final class ContainerProcess: @unchecked Sendable {
    /// Options that are not part of the OCI spec.
    public struct Options: Sendable {
        /// A signal the kernel sends the container when the thread that created it exits (0: none).
        public var parentDeathSignal: Int32 = 0

        /// - Parameter parentDeathSignal: The signal, e.g. `SIGKILL`; 0 for none.
        public init(parentDeathSignal: Int32 = 0) {
            self.parentDeathSignal = parentDeathSignal
        }
    }

    /// The process id (in the caller's pid namespace).
    public let pid: pid_t
    private let pidfd: Int32
    private struct State {
        var syncFD: Int32
        var errorFD: Int32
        /// Our end of the console socket (``ProcessStdio/containerTerminal(size:)``), until the
        /// master has come through it.
        var consoleFD: Int32
        /// The master of the process's terminal, until the caller takes it.
        var terminalMaster: Int32 = -1
        var started = false
        var status: ExitStatus?
    }
    private let state: Mutex<State>
    private let context: ChildFailure.Context

    private init(pid: pid_t, pidfd: Int32, syncFD: Int32, errorFD: Int32, consoleFD: Int32, context: ChildFailure.Context) {
        self.pid = pid
        self.pidfd = pidfd
        self.state = Mutex(State(syncFD: syncFD, errorFD: errorFD, consoleFD: consoleFD))
        self.context = context
    }

    deinit {
        let needsReap = state.withLock { s -> Bool in
            if s.syncFD >= 0 { close(s.syncFD); s.syncFD = -1 }
            if s.errorFD >= 0 { close(s.errorFD); s.errorFD = -1 }
            if s.consoleFD >= 0 { close(s.consoleFD); s.consoleFD = -1 }
            if s.terminalMaster >= 0 { close(s.terminalMaster); s.terminalMaster = -1 }
            return s.status == nil
        }
        if needsReap { killAndReap() }
        if pidfd >= 0 { close(pidfd) }
    }

    /// The path of one of the process's namespaces (`/proc/PID/ns/net`, …), for joining it.
    public func namespacePath(_ kind: NamespaceKind) -> String { "/proc/\(pid)/ns/\(kind.procName)" }

    /// Clones the container's first process. The child prepares its root filesystem right away
    /// and stops at the sync point, before anything of the container's program runs. Id maps of
    /// a new user namespace are written before this returns; cgroups and links are the caller's
    /// to set up before ``start()`` (this work overlaps with the child's mounts).
    ///
    /// - Parameters:
    ///   - spec: The container spec (process, root, hostname, mounts, namespaces, id mappings).
    ///     `root.path` must be absolute (see ``ContainerSpec/load(bundle:)``).
    ///   - stdio: Where stdin, stdout and stderr go.
    ///   - security: The security settings to apply in the child; `nil` takes them from the spec
    ///     (``ContainerSpec/processSecurity(cache:)``: capabilities, no_new_privs, seccomp, masked
    ///     and read-only paths).
    ///   - options: Non-OCI options.
    /// - Throws: ``BerthError`` naming the bad input or the failed system call.
    public static func create(_ spec: ContainerSpec, stdio: ProcessStdio = ProcessStdio(),
                              security: ProcessSecurity? = nil, options: Options = Options()) throws -> ContainerProcess {
        guard let process = spec.process, let argv0 = process.args.first, !argv0.isEmpty else {
            throw BerthError(.invalidArgument, "container spec has no process arguments")
        }
        let security = try security ?? spec.processSecurity()
        if let filter = security.seccompFilter, filter.count % 8 != 0 || filter.count / 8 > 4096 {
            throw BerthError(.invalidArgument, "seccomp filter of \(filter.count) bytes is not a BPF program of at most 4096 instructions")
        }

        // Namespaces: new ones become clone flags, joined ones are opened now (a dead pid fails here).
        var cloneFlags: Int32 = 0
        var seen = Set<NamespaceKind>()
        var joinList: [ContainerSpec.Namespace] = []
        for ns in spec.namespaces {
            guard seen.insert(ns.type).inserted else {
                throw BerthError(.invalidArgument, "namespace \(ns.type.rawValue) is listed twice")
            }
            if let path = ns.path, !path.isEmpty { joinList.append(ns) } else { cloneFlags |= ns.type.cloneFlag }
        }
        // setns order: the user namespace first (it owns the others), the mount namespace last.
        let order: [NamespaceKind] = [.user, .cgroup, .ipc, .uts, .network, .pid, .mount]
        joinList.sort { order.firstIndex(of: $0.type)! < order.firstIndex(of: $1.type)! }
        let newUser = cloneFlags & berth_CLONE_NEWUSER != 0
        let newMount = cloneFlags & berth_CLONE_NEWNS != 0
        if spec.hostname != nil && cloneFlags & berth_CLONE_NEWUTS == 0 {
            throw BerthError(.invalidArgument, "setting the hostname needs a new uts namespace")
        }
        if newUser && (spec.linux?.uidMappings ?? []).isEmpty {
            throw BerthError(.invalidArgument, "a new user namespace needs linux.uidMappings and linux.gidMappings")
        }

        var rootfs: String? = nil
        if let root = spec.root {
            guard root.path.hasPrefix("/") else {
                throw BerthError(.invalidArgument, "rootfs path \(root.path) is not absolute (load the spec with ContainerSpec.load(bundle:))")
            }
            guard FileIO.isDirectory(root.path) else {
                throw BerthError(.notFound, "rootfs \(root.path) does not exist or is not a directory")
            }
            guard newMount else {
                throw BerthError(.invalidArgument, "a rootfs needs a new mount namespace")
            }
            rootfs = root.path
        }
        let plan = try rootfs.map {
            // sysfs shows the network namespace of whoever mounts it: the child can mount its own when
            // it has a new one or joined one (it joins before mounting) unless a new user namespace
            // keeps it from mounting for a namespace it does not own.
            try RootfsPlan(spec: spec, rootfs: $0,
                           newNetwork: cloneFlags & berth_CLONE_NEWNET != 0 || (joinList.contains { $0.type == .network } && !newUser),
                           newIPC: cloneFlags & berth_CLONE_NEWIPC != 0, userNamespace: newUser)
        }

        let limits = try (process.rlimits ?? []).map { r -> berth_rlimit in
            guard let resource = ContainerSpec.Rlimit.resources[r.type] else {
                throw BerthError(.invalidArgument, "unknown rlimit type \(r.type) (expected one of \(ContainerSpec.Rlimit.resources.keys.sorted().joined(separator: ", ")))")
            }
            guard r.soft <= r.hard else { throw BerthError(.invalidArgument, "rlimit \(r.type): soft limit \(r.soft) is above the hard limit \(r.hard)") }
            return berth_rlimit(resource: resource, soft: r.soft, hard: r.hard)
        }

        var toClose: [Int32] = []
        defer { for fd in toClose { close(fd) } }
        var joins: [(fd: Int32, type: Int32)] = []
        var pidNamespaceFD: Int32 = -1
        for ns in joinList {
            let path = ns.path!
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let e = errno
                let cause = e == ENOENT ? "no such process or namespace" : strerrorString(e)
                throw BerthError(e == ENOENT ? .notFound : .system, "join \(ns.type.rawValue) namespace \(path): \(cause)", errno: e)
            }
            toClose.append(fd)
            if ns.type == .pid { pidNamespaceFD = fd } else { joins.append((fd, ns.type.cloneFlag)) }
        }
        let reportedJoins = joinList.filter { $0.type != .pid }

        let io = try stdio.open()
        toClose += io.owned

        var syncPipe: [Int32] = [-1, -1], errorPipe: [Int32] = [-1, -1]
        guard berth_sync_pair(&syncPipe) == 0 else { throw BerthError.system("create the sync socket") }
        toClose += [syncPipe[0]]
        guard berth_pipe2(&errorPipe, O_CLOEXEC) == 0 else {
            close(syncPipe[1])
            throw BerthError.system("create the error pipe")
        }
        toClose += [errorPipe[1]]
        // The console socket: the child sends its terminal's master through it (SCM_RIGHTS).
        var consolePair: [Int32] = [-1, -1]
        if stdio.allocatesTerminal {
            guard berth_sync_pair(&consolePair) == 0 else {
                close(syncPipe[1])
                close(errorPipe[0])
                throw BerthError.system("create the console socket")
            }
            toClose += [consolePair[0]]
        }

        let child = ChildConfiguration()
        let c = child.config
        c.pointee.clone_flags = cloneFlags
        child.setJoins(joins)
        c.pointee.pid_ns_fd = pidNamespaceFD
        c.pointee.sync_fd = syncPipe[0]
        c.pointee.error_fd = errorPipe[1]
        c.pointee.close_fds = (syncPipe[1], errorPipe[0], consolePair[1], -1)
        if let rootfs, let plan {
            c.pointee.rootfs = UnsafePointer(child.string(rootfs))
            c.pointee.pivot = 1
            c.pointee.readonly_root = spec.root?.readonly == true ? 1 : 0
            child.setOps(plan.steps)
        }
        c.pointee.hostname = child.optionalString(spec.hostname)
        c.pointee.domainname = child.optionalString(spec.domainname)
        c.pointee.cwd = child.optionalString(process.cwd.isEmpty ? nil : process.cwd)
        c.pointee.loopback_up = cloneFlags & berth_CLONE_NEWNET != 0 ? 1 : 0
        c.pointee.userns_root = newUser ? 1 : 0
        c.pointee.set_user = 1
        c.pointee.uid = process.user.uid
        c.pointee.gid = process.user.gid
        let groups = process.user.additionalGids ?? []
        c.pointee.groups = UnsafePointer(child.array(groups))
        c.pointee.group_count = Int32(groups.count)
        c.pointee.rlimits = UnsafePointer(child.array(limits))
        c.pointee.rlimit_count = Int32(limits.count)
        c.pointee.stdio = (io.fds[0], io.fds[1], io.fds[2])
        c.pointee.controlling_tty = stdio.controllingTerminal ? 1 : 0
        c.pointee.console_fd = consolePair[0]
        c.pointee.console_rows = stdio.terminalSize?.rows ?? 0
        c.pointee.console_cols = stdio.terminalSize?.columns ?? 0
        c.pointee.pdeathsig = options.parentDeathSignal
        c.pointee.argv = UnsafePointer(child.stringArray(process.args))
        c.pointee.envp = UnsafePointer(child.stringArray(process.env ?? []))
        c.pointee.search_path = UnsafePointer(child.string(spec.searchPath))
        let scratchSize = Int(PATH_MAX) * 2
        c.pointee.scratch = child.raw(scratchSize).assumingMemoryBound(to: CChar.self)
        c.pointee.scratch_size = scratchSize
        child.setSecurity(security)
        var keep = Set([0, 1, 2, syncPipe[0], errorPipe[1], consolePair[0]] + joins.map(\.fd) + io.fds.filter { $0 >= 0 })
        keep.remove(-1)
        let keepList = keep.sorted()
        c.pointee.keep_fds = UnsafePointer(child.array(keepList))
        c.pointee.keep_count = Int32(keepList.count)

        var pidfd: Int32 = -1
        let pid = berth_spawn(c, &pidfd)
        guard pid > 0 else {
            let e = errno
            close(syncPipe[1])
            close(errorPipe[0])
            if consolePair[1] >= 0 { close(consolePair[1]) }
            throw BerthError.system("clone the container process", errno: e)
        }
        let context = ChildFailure.Context(
            argv0: argv0, rootfs: rootfs, steps: plan?.steps ?? [], joins: reportedJoins, security: security,
            rlimits: (process.rlimits ?? []).map(\.type), hostname: spec.hostname, domainname: spec.domainname, cwd: process.cwd, user: process.user)
        let container = ContainerProcess(pid: pid, pidfd: pidfd, syncFD: syncPipe[1], errorFD: errorPipe[0],
                                         consoleFD: consolePair[1], context: context)
        if newUser {
            // Releasing `container` on a throw kills and reaps the child.
            try writeIDMap(pid: pid, file: "uid_map", spec.linux?.uidMappings ?? [])
            try writeIDMap(pid: pid, file: "gid_map", spec.linux?.gidMappings ?? spec.linux?.uidMappings ?? [])
            guard berth_sync_release(syncPipe[1]) == 0 else {
                throw (container.pendingFailure() ?? BerthError.system("release container process \(pid) after writing its id maps"))
            }
        }
        return container
    }

    private static func writeIDMap(pid: pid_t, file: String, _ mappings: [ContainerSpec.IDMapping]) throws {
        let text = mappings.map { "\($0.containerID) \($0.hostID) \($0.size)\n" }.joined()
        do {
            try FileIO.writeControl("/proc/\(pid)/\(file)", text)
        } catch let e as BerthError {
            throw BerthError(.system, "write \(file) \(mappings.map { "\($0.containerID):\($0.hostID):\($0.size)" }) for pid \(pid): \(e.message)", errno: e.errno)
        }
    }

    /// Releases the child from the sync point and waits until it has exec'd the container's
    /// program (or failed on the way, in which case it is reaped and the failure thrown).
    ///
    /// With ``ProcessStdio/containerTerminal(size:)`` it first receives the master of the
    /// terminal the child opened (``takeTerminal()``); the child sends it before the sync point.
    public func start() throws {
        let (syncFD, errorFD, consoleFD) = try state.withLock { s -> (Int32, Int32, Int32) in
            guard !s.started else { throw BerthError(.invalidState, "container process \(pid) was already started") }
            s.started = true
            let fds = (s.syncFD, s.errorFD, s.consoleFD)
            s.syncFD = -1
            s.errorFD = -1
            s.consoleFD = -1
            return fds
        }
        defer { close(errorFD) }
        if consoleFD >= 0 {
            var master: Int32 = -1
            let rc = berth_recv_fd(consoleFD, &master)
            let e = errno
            close(consoleFD)
            guard rc == 1 else {
                close(syncFD)
                // rc == 0: the child closed the socket, i.e. died; its report says why.
                let failure = rc == 0 ? readFailure(errorFD, wait: true) : nil
                if failure == nil { killAndReap() } else { _ = try? reap() }
                throw failure ?? BerthError(.system, "receive the terminal of container process \(pid): "
                    + (rc == 0 ? "it exited first" : strerrorString(e)), errno: rc == 0 ? 0 : e)
            }
            state.withLock { $0.terminalMaster = master }
        }
        let released = berth_sync_release(syncFD) == 0
        close(syncFD)
        if let failure = readFailure(errorFD, wait: true) {
            _ = try? reap()
            closeTerminal()
            throw failure
        }
        if !released {
            let status = (try? reap()).map { "\($0)" } ?? "is gone"
            closeTerminal()
            throw BerthError(.invalidState, "container process \(pid) \(status) before it was started")
        }
    }

    /// The terminal the process got with ``ProcessStdio/containerTerminal(size:)``, once: after
    /// ``start()`` the caller owns its ``PseudoTerminal/master`` (close-on-exec, blocking) and
    /// closes it when done with the process's I/O; its ``PseudoTerminal/slave`` is -1 (the slave
    /// lives in the container). A master never taken is closed with this object. `nil` without a
    /// container terminal, before ``start()`` and after the first call.
    public func takeTerminal() -> PseudoTerminal? {
        state.withLock { s in
            guard s.terminalMaster >= 0 else { return nil }
            defer { s.terminalMaster = -1 }
            return PseudoTerminal(master: s.terminalMaster, slave: -1)
        }
    }

    private func closeTerminal() {
        state.withLock { s in
            if s.terminalMaster >= 0 { close(s.terminalMaster); s.terminalMaster = -1 }
        }
    }

    /// The child's failure report on `fd`, if any. With `wait`, blocks until the child has exec'd
    /// (EOF) or reported; without, only looks at what is already there.
    private func readFailure(_ fd: Int32, wait: Bool) -> BerthError? {
        if !wait {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&p, 1, 0) == 1 else { return nil }
        }
        var report = berth_child_error()
        let size = MemoryLayout<berth_child_error>.size
        var got = 0
        withUnsafeMutableBytes(of: &report) { buf in
            while got < size {
                let r = read(fd, buf.baseAddress! + got, size - got)
                if r > 0 { got += r } else if r < 0 && errno == EINTR { continue } else { break }
            }
        }
        return got == size ? ChildFailure(report).error(context) : nil
    }

    /// A failure the child already reported (used when parent-side work fails because the child
    /// died: its own report says why).
    func pendingFailure() -> BerthError? {
        let fd = state.withLock { $0.errorFD }
        return fd >= 0 ? readFailure(fd, wait: false) : nil
    }

    /// Sends `signal` to the process (through its pidfd when the kernel has them, so a recycled
    /// pid is never hit).
    public func kill(_ signal: Int32 = SIGTERM) throws {
        if state.withLock({ $0.status != nil }) {
            throw BerthError(.invalidState, "container process \(pid) has already exited")
        }
        let rc = pidfd >= 0 ? berth_pidfd_send_signal(pidfd, signal) : Glibc.kill(pid, signal)
        guard rc == 0 else {
            if errno == ESRCH { return }
            throw BerthError.system("send signal \(signal) to container process \(pid)")
        }
    }

    /// Waits for the process to end and returns how it ended. Calling it again returns the same
    /// status.
    @discardableResult
    public func wait() throws -> ExitStatus {
        if let s = state.withLock({ $0.status }) { return s }
        return try reap()
    }

    /// The exit status if the process has ended (reaping it), or `nil` if it is still running.
    public func poll() throws -> ExitStatus? {
        if let s = state.withLock({ $0.status }) { return s }
        var exited: Int32 = 0, code: Int32 = 0
        let rc = berth_wait_child(pid, pidfd, 1, &exited, &code)
        guard rc >= 0 else { throw BerthError.system("wait for container process \(pid)") }
        if rc == 0 { return nil }
        let status: ExitStatus = exited != 0 ? .exited(code) : .signaled(code)
        state.withLock { $0.status = status }
        return status
    }

    private func reap() throws -> ExitStatus {
        var exited: Int32 = 0, code: Int32 = 0
        guard berth_wait_child(pid, pidfd, 0, &exited, &code) == 1 else {
            throw BerthError.system("wait for container process \(pid)")
        }
        let status: ExitStatus = exited != 0 ? .exited(code) : .signaled(code)
        state.withLock { $0.status = status }
        return status
    }

    private func killAndReap() {
        if pidfd >= 0 { _ = berth_pidfd_send_signal(pidfd, SIGKILL) } else { _ = Glibc.kill(pid, SIGKILL) }
        _ = try? reap()
    }

    /// Creates, prepares and starts a container process in one call.
    /// - Parameters:
    ///   - spec: The container spec.
    ///   - stdio: Where the standard streams go.
    ///   - security: Security settings (see ``create(_:stdio:security:options:)``).
    ///   - options: Non-OCI options.
    ///   - prepare: Runs while the child waits at the sync point (add it to cgroups, move links
    ///     into its network namespace). A throw kills and reaps the child.
    @discardableResult
    public static func spawn(_ spec: ContainerSpec, stdio: ProcessStdio = ProcessStdio(), security: ProcessSecurity? = nil,
                             options: Options = Options(),
                             prepare: (ContainerProcess) throws -> Void = { _ in }) throws -> ContainerProcess {
        let c = try create(spec, stdio: stdio, security: security, options: options)
        do {
            try prepare(c)
        } catch {
            // Parent-side work fails when the child has died; its own report is the better error.
            throw c.pendingFailure() ?? error
        }
        try c.start()
        return c
    }

    /// Runs a container to completion and returns how it ended.
    public static func run(_ spec: ContainerSpec, stdio: ProcessStdio = ProcessStdio(), security: ProcessSecurity? = nil,
                           prepare: (ContainerProcess) throws -> Void = { _ in }) throws -> ExitStatus {
        try spawn(spec, stdio: stdio, security: security, prepare: prepare).wait()
    }
}

extension NamespaceKind {
    /// The CLONE_NEW* flag of this kind.
    public var cloneFlag: Int32 {
        switch self {
        case .pid: berth_CLONE_NEWPID
        case .network: berth_CLONE_NEWNET
        case .mount: berth_CLONE_NEWNS
        case .ipc: berth_CLONE_NEWIPC
        case .uts: berth_CLONE_NEWUTS
        case .user: berth_CLONE_NEWUSER
        case .cgroup: berth_CLONE_NEWCGROUP
        }
    }
}
