import ArgumentParser
import BerthCgroups
import BerthNamespaces
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// `berth-ns`: runs one command isolated on a rootfs directory (or an OCI bundle) and exits with
/// its status.
@main
struct BerthNS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-ns",
        abstract: "Run a command in new namespaces on a rootfs directory or an OCI bundle.",
        discussion: """
            Examples:
              berth-ns --rootfs /tmp/rootfs --hostname box --memory 64m -- /bin/sh -c 'hostname; ps'
              berth-ns --bundle /tmp/bundle
            """)

    @Option(help: "The root filesystem directory.") var rootfs: String?
    @Option(help: "An OCI bundle directory (config.json + its rootfs).") var bundle: String?
    @Option(help: "The container's hostname.") var hostname: String?
    @Option(help: "Network: none (a new namespace with lo), host, or container:PID.") var net: String?
    @Option(help: "Memory limit, like 64m or 1g.") var memory: String?
    @Option(name: .customLong("pids-limit"), help: "Maximum number of processes.") var pidsLimit: Int64?
    @Option(help: "CPU limit in cores, like 0.5.") var cpus: Double?
    @Option(name: .customLong("env"), help: "An environment entry KEY=value (repeatable).") var env: [String] = []
    @Option(name: .customLong("workdir"), help: "The working directory inside the container.") var workdir: String?
    @Option(help: "uid[:gid] to run as.") var user: String?
    @Option(name: .customLong("security-opt"), help: "seccomp=unconfined|PROFILE.json, no-new-privileges, systempaths=unconfined (repeatable).")
    var securityOpt: [String] = []
    @Option(name: .customLong("cap-add"), help: "Add a capability, like NET_ADMIN or ALL (repeatable).") var capAdd: [String] = []
    @Option(name: .customLong("cap-drop"), help: "Drop a capability, like MKNOD or ALL (repeatable).") var capDrop: [String] = []
    @Flag(name: [.customShort("t"), .customLong("tty")],
          help: "Give the container a pseudo-terminal (also when config.json has process.terminal); the local terminal goes raw.")
    var tty = false
    @Flag(help: "All capabilities, no seccomp filter, no masked or read-only paths.") var privileged = false
    @Option(name: .customLong("userns-remap"),
            help: "Run in a user namespace: container uid/gid 0.. map to HOSTID.. (HOSTID[:SIZE], size 65536 by default). The rootfs must be owned by HOSTID.")
    var usernsRemap: String?
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).") var command: [String] = []

    func validate() throws {
        if (rootfs == nil) == (bundle == nil) { throw ValidationError("give exactly one of --rootfs and --bundle") }
        if rootfs != nil && arguments.isEmpty { throw ValidationError("give the command to run after --") }
    }

    private var arguments: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

    func run() throws {
        let status: ExitStatus
        do {
            status = try runContainer()
        } catch let e as BerthError {
            note("\(e)")
            throw ExitCode(125)
        }
        throw ExitCode(status.code)
    }

    private func runContainer() throws -> ExitStatus {
        var spec: ContainerSpec
        if let bundle {
            spec = try ContainerSpec.load(bundle: absolute(bundle))
            if !arguments.isEmpty { spec.process?.args = arguments }
        } else {
            spec = ContainerSpec.make(rootfs: absolute(rootfs!), args: arguments)
        }
        let wantsTerminal = tty || spec.process?.terminal == true
        spec.process?.terminal = wantsTerminal
        if let hostname { spec.hostname = hostname }
        if !env.isEmpty { let current = spec.process?.env ?? []; spec.process?.env = current + env }
        if let workdir { spec.process?.cwd = workdir }
        if let user { spec.process?.user = try parseUser(user) }
        if let net {
            switch net {
            case "none": spec.setNamespace(.network, .init(.network))
            case "host": spec.setNamespace(.network, nil)
            case let s where s.hasPrefix("container:"):
                guard let pid = Int32(s.dropFirst("container:".count)) else {
                    throw BerthError(.invalidArgument, "--net \(s): expected container:PID")
                }
                spec.setNamespace(.network, .join(.network, pid: pid))
            default: throw BerthError(.invalidArgument, "--net \(net): expected none, host or container:PID")
            }
        }
        if let usernsRemap { try remap(&spec, usernsRemap) }
        let (security, deviceRules) = try securitySettings(spec, fromBundle: bundle != nil)
        let limits = try cgroupLimits(spec)

        // Signals for the container go through us: block them here (before any thread exists, so
        // every thread inherits the mask) and forward them from a sigwait loop.
        var forwarded = sigset_t()
        sigemptyset(&forwarded)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH] { sigaddset(&forwarded, s) }
        pthread_sigmask(SIG_BLOCK, &forwarded, nil)

        // Every container gets a cgroup, if only for the device policy: the defaults grant
        // CAP_MKNOD, and without the devices allow-list (v1) or filter (cgroup2) a container could mknod the
        // host's disk and read it. The rules are in place before the child is added (at the sync
        // point, before it execs).
        let cgroup = try Cgroup.create(name: "berth-ns-\(uniqueName("c"))", limits: limits)
        defer { try? cgroup.killAll(); try? cgroup.destroy() }
        if try !DeviceRule.apply(deviceRules, toCgroupPaths: cgroup.paths) {
            note("no devices cgroup and no cgroup2 group on this host: the container's device access is not restricted")
        }
        guard wantsTerminal else {
            let container = try ContainerProcess.spawn(spec, stdio: .inherit, security: security, options: .init(parentDeathSignal: SIGKILL)) { c in
                try cgroup.add(pid: c.pid)
            }
            SignalForwarder.start(set: forwarded, to: container, terminal: nil)
            return try container.wait()
        }

        // A terminal: the container opens a pty in its own devpts (sized like ours) and makes the
        // slave its controlling terminal; we relay our stdin to the master and the master to our
        // stdout, with our terminal raw.
        let container = try ContainerProcess.spawn(spec, stdio: .containerTerminal(size: WindowSize.of(0) ?? WindowSize.of(1)),
                                                   security: security, options: .init(parentDeathSignal: SIGKILL)) { c in
            try cgroup.add(pid: c.pid)
        }
        guard let pty = container.takeTerminal() else { throw BerthError(.invalidState, "the container has no terminal") }
        defer { close(pty.master) }
        let raw = RawTerminalMode(fd: 0)
        defer { raw?.restore() }
        let relay = try TerminalRelay(master: pty.master, input: 0, outputs: [1])
        SignalForwarder.start(set: forwarded, to: container, terminal: pty)
        let status = try container.wait()
        // Anything left in the container (a background job) would hold the slave open.
        try? cgroup.killAll()
        relay.wait()
        return status
    }

    private func note(_ text: String) {
        let line = Array("berth-ns: \(text)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    private func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buf, buf.count) != nil else { return path }
        return String(decoding: buf.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self) + "/" + path
    }

    private func parseUser(_ text: String) throws -> ContainerSpec.User {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let uid = UInt32(parts[0]) else {
            throw BerthError(.invalidArgument, "--user \(text): expected uid[:gid]")
        }
        var gid = uid
        if parts.count == 2 {
            guard let g = UInt32(parts[1]) else { throw BerthError(.invalidArgument, "--user \(text): expected uid[:gid]") }
            gid = g
        }
        return ContainerSpec.User(uid: uid, gid: gid)
    }

    /// Docker's defaults (capabilities, seccomp profile, masked and read-only paths) relaxed or
    /// tightened by the flags. A bundle's config.json keeps the authority over what it states
    /// (its capabilities, paths, no_new_privs and seccomp profile) unless --privileged is given.
    /// Also returns the device policy for the cgroup (Docker's allow-list, every device under
    /// --privileged).
    private func securitySettings(_ spec: ContainerSpec, fromBundle: Bool) throws -> (ProcessSecurity, [DeviceRule]) {
        let options = try SecurityOptions(securityOpts: securityOpt, capAdd: capAdd, capDrop: capDrop, privileged: privileged)
        var security = try options.resolve()
        if let caps = security.capabilities, spec.process?.user.uid ?? 0 != 0 {
            // As Docker does (and as execve would): a non-root user keeps the bounding set only.
            security.capabilities = CapabilityMasks(bounding: caps.bounding, effective: 0, permitted: 0)
        }
        guard fromBundle, !privileged else { return (security, options.deviceRules) }
        let stated = try spec.processSecurity()
        if spec.process?.capabilities != nil && capAdd.isEmpty && capDrop.isEmpty { security.capabilities = stated.capabilities }
        if spec.process?.noNewPrivileges == true { security.noNewPrivileges = true }
        if let masked = spec.linux?.maskedPaths { security.maskedPaths = masked }
        if let readonly = spec.linux?.readonlyPaths { security.readonlyPaths = readonly }
        if spec.linux?.seccomp != nil && !securityOpt.contains(where: { $0.hasPrefix("seccomp") }) {
            security.seccompFilter = stated.seccompFilter
        }
        return (security, options.deviceRules)
    }

    /// `--userns-remap HOSTID[:SIZE]`: a new user namespace mapping 0..SIZE-1 to HOSTID.. for both
    /// uids and gids.
    private func remap(_ spec: inout ContainerSpec, _ text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let host = UInt32(parts[0]),
              let size = parts.count == 2 ? UInt32(parts[1]) : 65536, size > 0 else {
            throw BerthError(.invalidArgument, "--userns-remap \(text): expected HOSTID or HOSTID:SIZE")
        }
        spec.setNamespace(.user, .init(.user))
        spec.linux?.uidMappings = [.init(containerID: 0, hostID: host, size: size)]
        spec.linux?.gidMappings = [.init(containerID: 0, hostID: host, size: size)]
    }

    /// The spec's `linux.resources` overridden by the command-line flags.
    private func cgroupLimits(_ spec: ContainerSpec) throws -> CgroupLimits {
        var limits = CgroupLimits()
        if let r = spec.linux?.resources {
            limits.memoryBytes = r.memory?.limit
            limits.memorySwapBytes = r.memory?.swap
            limits.cpuShares = r.cpu?.shares
            limits.cpuQuotaMicros = r.cpu?.quota
            limits.cpuPeriodMicros = r.cpu?.period
            limits.cpusetCpus = r.cpu?.cpus
            limits.cpusetMems = r.cpu?.mems
            limits.pidsMax = r.pids?.limit
        }
        if let memory { limits.memoryBytes = try CgroupLimits.parseMemory(memory) }
        if let pidsLimit { limits.pidsMax = pidsLimit }
        if let cpus {
            guard cpus > 0, cpus.isFinite else { throw BerthError(.invalidArgument, "--cpus \(cpus): expected a positive number") }
            limits.setCPUs(cpus)
        }
        try limits.validate()
        return limits
    }
}
