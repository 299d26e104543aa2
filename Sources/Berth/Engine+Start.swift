import BerthCgroups
import BerthImageLayers
import BerthLinks
import BerthNamespaces
import BerthNetwork
import BerthPortMapper
import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

extension Engine {
    /// Starts a created or exited container; this process becomes its owner (it reaps it and,
    /// when it exits, releases what it held — see ``RunningContainer``).
    ///
    /// The steps, each recorded and undone in reverse if a later one fails: mount the overlay
    /// rootfs; write `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` (bind-mounted); create the
    /// cgroup; clone the process, which waits at a sync point while the engine adds it to the
    /// cgroup, attaches its network namespace to the bridge (or joins another container's),
    /// rewrites the hosts file with its address and publishes its ports (firewall DNAT plus the
    /// userland proxy for loopback); then release it. Containers linking to this one get their
    /// hosts file rewritten in place when its address changed.
    /// - Parameters:
    ///   - reference: The container's id, name or id prefix.
    ///   - stdio: Where its streams go.
    /// - Returns: The running container.
    public func start(_ reference: String, stdio: ContainerStdio = .logFile) throws -> RunningContainer {
        try start(try store.resolve(reference), stdio: stdio)
    }

    /// ``start(_:stdio:)`` by id.
    public func start(_ id: ContainerID, stdio: ContainerStdio = .logFile) throws -> RunningContainer {
        // The cgroup join after the clone would wait for an RCU grace period: have one start now
        // and keep moves ready until it is done (see CgroupMigrationWarmUp).
        CgroupMigrationWarmUp.shared.begin()
        defer { CgroupMigrationWarmUp.shared.end() }
        var record = try store.load(id)
        if record.state.isRunning {
            if let runtime = loadRuntime(id), runtime.owner.isAlive {
                throw BerthError(.invalidState, "container \(record.name) is already running")
            }
            reconcile(id)
            record = try store.load(id)
        }
        let config = record.config
        let mode = try NetworkMode(parsing: config.networkMode)
        let links = try store.linkResolver().resolve(try config.links.map(LinkSpec.init(parsing:)), linkingContainerName: record.name)
        var joinedNetwork: String? = nil
        if case .container(let other) = mode {
            let target = try store.find(other)
            guard target.state.isRunning, target.state.pid > 0, ProcessIdentity.of(pid: target.state.pid) != nil else {
                throw BerthError(.invalidState, "cannot join the network of container \(other): it is not running")
            }
            joinedNetwork = "/proc/\(target.state.pid)/ns/net"
        }
        let bindings = try portBindings(config)
        let net: BridgeNetwork? = mode == .bridge ? try network() : nil
        let hostResolvConf = (try? FileIO.read(BerthLinks.ResolvConf.hostFilePath())) ?? ""
        StepTrace.mark("start: network + links")

        let operations = try OperationLock.shared(root: options.root)
        defer { operations.release() }

        // The host end of the veth gets a random name per start, as Docker's: a name derived from the
        // container would still be taken by the previous run's veth when a container starts again
        // right after it exited (the kernel destroys the old namespace, and the veth with it, some
        // time later). The runtime record keeps it before the veth exists, for crash recovery.
        var runtime = ContainerRuntime(owner: .current, cgroup: cgroupName(id),
                                       hostInterface: mode == .bridge ? BridgeNetwork.randomVethName() : nil,
                                       rootfs: id.full, proxied: options.userlandProxy)
        var rollback = RollbackLog()
        var copiers: [OutputCopier] = []
        var closeAfterClone: [Int32] = []
        defer { for fd in closeAfterClone { close(fd) } }
        // -i without local input (detached): the container's stdin is served on its attach socket.
        let servesInput = config.openStdin && !stdio.takesLocalInput
        var stdinWriter: Int32 = -1
        defer { if stdinWriter >= 0 { close(stdinWriter) } }
        var attachServer: AttachServer?
        do {
            try saveRuntime(runtime, id)
            rollback.record("runtime record") { unlink(self.runtimePath(id)) }

            let directory = store.directory(of: id)
            record.state.ipAddress = nil
            let files = try NetworkFiles.write(for: record, links: links, in: directory, hostResolvConf: hostResolvConf)
            StepTrace.mark("network files")

            // Bridge: the container's network namespace is made now, and on another thread the
            // address, the veth, the host ports, the runtime record, the DNAT rules and the proxy
            // listeners are set up in it while the cgroup, the rootfs and the spec are made; the
            // clone then joins it (as CNI runtimes do).
            var containerNetwork: NetworkNamespace? = nil
            var networking: BackgroundWork<(Endpoint, [PortMapping])>? = nil
            if let net {
                let sandbox = try NetworkNamespace.create()
                containerNetwork = sandbox
                rollback.record("network namespace") { sandbox.close() }
                let work = BackgroundWork { [self, runtime, record, links, bindings] in
                    try self.connect(id, net: net, namespace: sandbox, runtime: runtime, record: record, links: links,
                                     files: files, bindings: bindings)
                }
                networking = work
                rollback.record("network of \(id.short)") {
                    guard let (endpoint, mappings) = try? work.join() else { return }  // it undid itself
                    try self.disconnect(id, net: net, endpoint: endpoint, mappings: mappings)
                }
                joinedNetwork = sandbox.path
            }

            // The cgroup is made on a thread of its own: making one takes the kernel's cgroup lock,
            // which a move into a cgroup (the warm-up's, see CgroupMigrationWarmUp) holds for an RCU
            // grace period; the container joins it after the clone. Docker's device allow-list (all
            // devices under --privileged) goes on the v1 devices controller, or into a cgroup2
            // device filter on a pure cgroup2 host, before the process
            // joins: MKNOD is a default capability, so without it a container could create and
            // open the host's disks.
            let securityOptions = try SecurityOptions(securityOpts: config.securityOpt, capAdd: config.capAdd,
                                                      capDrop: config.capDrop, privileged: config.privileged)
            let limits = cgroupLimits(config)
            let deviceRules = securityOptions.deviceRules
            let making = BackgroundWork { [runtime] () -> Cgroup in
                let cgroup = try Cgroup.create(name: runtime.cgroup, limits: limits)
                do {
                    _ = try DeviceRule.apply(deviceRules, toCgroupPaths: cgroup.paths)
                } catch {
                    try? cgroup.destroy()
                    throw error
                }
                StepTrace.mark("cgroup")
                return cgroup
            }
            rollback.record("cgroup \(runtime.cgroup)") {
                guard let cgroup = try? making.join() else { return }  // it undid itself
                try? cgroup.killAll()
                try cgroup.destroy()
            }

            let rootfs = try layers.containerRootfs(name: id.full)
            try rootfs.mount()
            rollback.record("rootfs mount") { try rootfs.unmount(lazy: true) }
            StepTrace.mark("rootfs mount")



            let spec = try containerSpec(record, rootfs: rootfs.mergedDir, files: files, links: links, mode: mode,
                                         joinedNetwork: joinedNetwork)
            let security = try securityOptions.resolve(cache: seccompCache)
            StepTrace.mark("spec + security")
            let processStdio: ProcessStdio
            switch stdio {
            case .custom(let s):
                processStdio = s
            case .logFile:
                var stdin = StdioTarget.null
                if servesInput {
                    var pipe: [Int32] = [-1, -1]
                    guard berth_pipe2(&pipe, O_CLOEXEC) == 0 else { throw BerthError.system("create the stdin pipe") }
                    closeAfterClone.append(pipe[0])
                    stdinWriter = pipe[1]
                    stdin = .fd(pipe[0])
                }
                processStdio = ProcessStdio(stdin: stdin, stdout: .file(logPath(id), append: true),
                                            stderr: .file(logPath(id), append: true))
            case .terminal(let interactive):
                let log = open(logPath(id), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
                guard log >= 0 else { throw BerthError.system("open \(logPath(id))") }
                closeAfterClone.append(log)
                var fds: [Int32] = []
                for terminal in [Int32(1), 2] {
                    var pipe: [Int32] = [-1, -1]
                    guard berth_pipe2(&pipe, O_CLOEXEC) == 0 else { throw BerthError.system("create an output pipe") }
                    closeAfterClone.append(pipe[1])
                    fds.append(pipe[1])
                    copiers.append(try OutputCopier(source: pipe[0], terminal: terminal, log: fcntl(log, F_DUPFD_CLOEXEC, 0)))
                }
                processStdio = ProcessStdio(stdin: interactive ? .inherit : .null, stdout: .fd(fds[0]), stderr: .fd(fds[1]))
            case .pseudoTerminal(_, let foreground):
                // The child opens it in the container's devpts; the relay starts once it is running.
                processStdio = .containerTerminal(size: foreground ? (WindowSize.of(0) ?? WindowSize.of(1)) : nil)
            }

            let process = try ContainerProcess.create(spec, stdio: processStdio, security: security,
                                                      options: ContainerProcess.Options(parentDeathSignal: SIGKILL))
            for fd in closeAfterClone { close(fd) }
            closeAfterClone = []
            rollback.record("container process \(process.pid)") {
                try? process.kill(SIGKILL)
                _ = try? process.wait()
            }
            runtime.process = ProcessIdentity.of(pid: process.pid)
            StepTrace.mark("clone")
            // Moving a process into a v1 cgroup waits for an RCU grace period (about 10 ms here):
            // it overlaps the network set-up; the child waits at its sync point until both are done.
            let pid = process.pid
            let joining = BackgroundWork { try making.join().add(pid: pid) }
            rollback.record("joining the cgroup") { _ = try? joining.join() }

            if let networking, let containerNetwork {
                let (endpoint, mappings) = try networking.join()
                runtime.endpoint = endpoint
                runtime.mappings = mappings
                // The child joined it at the clone: it lives as long as the container now.
                containerNetwork.close()
                StepTrace.mark("network joined")
            }
            try saveRuntime(runtime, id)
            try joining.join()
            StepTrace.mark("cgroup joined")
            try process.start()
            StepTrace.mark("release child")
            if case .pseudoTerminal(let interactive, let foreground) = stdio, let pty = process.takeTerminal() {
                copiers.append(try OutputCopier.relay(pty, logPath: logPath(id), interactive: interactive, foreground: foreground))
                // The relay closes the master when the container hangs up: the server keeps its own.
                if servesInput { stdinWriter = fcntl(pty.master, F_DUPFD_CLOEXEC, 0) }
            }
            if servesInput && stdinWriter >= 0 {
                let input = stdinWriter
                stdinWriter = -1
                let server = try AttachServer(path: attachSocketPath(id), input: input, terminal: config.tty)
                attachServer = server
                rollback.record("attach socket") { server.stop() }
                StepTrace.mark("attach socket")
            }

            let started = try store.updateState(of: id) { s in
                s.status = .running
                s.paused = false
                s.pid = process.pid
                s.exitCode = 0
                s.error = ""
                s.startedAt = .now()
                s.finishedAt = .zero
                s.ipAddress = runtime.endpoint?.address.address.description
                s.ipPrefixLength = runtime.endpoint.map { Int($0.address.prefixLength) }
                s.gateway = runtime.endpoint?.gateway.description
                s.macAddress = runtime.endpoint?.macAddress.description
                s.vethName = runtime.endpoint?.hostInterface
                s.ports = runtime.mappings.map {
                    PublishedPort(hostIP: $0.hostIP.description, hostPort: $0.hostPort, containerPort: $0.containerPort,
                                  proto: $0.proto.rawValue)
                }
                s.cgroupName = runtime.cgroup
                s.rootfsPath = rootfs.mergedDir
                s.monitorPid = runtime.owner.pid
                s.linkTargets = links.map { LinkedContainer(alias: $0.alias, target: $0.target.id) }
            }
            let running = try RunningContainer(engine: self, id: id, process: process, runtime: runtime, state: started,
                                               copiers: copiers, attachServer: attachServer)
            rollback.commit()
            if let address = runtime.endpoint?.address.address {
                _ = try? store.refreshHostsOfContainersLinking(to: id, address: address)
            }
            return running
        } catch {
            let failures = rollback.unwind()
            for c in copiers { c.join(timeout: 0.5) }
            _ = try? store.updateState(of: id) { s in
                s.status = s.status == .running ? .exited : s.status
                s.error = "\(error)"
            }
            guard !failures.isEmpty else { throw error }
            if var e = error as? BerthError {
                e.message += " (and rollback failed: \(failures.joined(separator: "; ")))"
                throw e
            }
            throw BerthError(.system, "\(error) (and rollback failed: \(failures.joined(separator: "; ")))")
        }
    }

    /// Connects a bridge container's network namespace, made before its process: leases the
    /// address, makes the veth into `namespace` (on a thread of its own), writes the address into
    /// the hosts file, allocates the host ports, records endpoint and ports in the runtime record
    /// (before the veth and the rules can exist, for the reconciler), adds the DNAT rules and opens
    /// the proxy listeners. Undoes what it did when a step fails.
    /// - Returns: The endpoint and the port mappings, for ``disconnect(_:net:endpoint:mappings:)``.
    func connect(_ id: ContainerID, net: BridgeNetwork, namespace: NetworkNamespace, runtime: ContainerRuntime,
                 record: ContainerRecord, links: [ResolvedLink], files: NetworkFiles,
                 bindings: [PortBinding]) throws -> (Endpoint, [PortMapping]) {
        var undo = RollbackLog()
        do {
            let config = record.config
            let endpoint = try host.run {
                try net.lease(config.ipAddress.flatMap(IPv4Address.init), hostInterfaceName: runtime.hostInterface ?? BridgeNetwork.randomVethName())
            }
            undo.record("lease \(endpoint.address)") { try net.releaseLease(endpoint) }
            StepTrace.mark("lease")
            let attaching = BackgroundWork { [host] in try host.run { try net.attach(namespace, leased: endpoint) } }
            undo.record("veth \(endpoint.hostInterface)") {
                // A failed attach removed its own veth.
                if (try? attaching.join()) != nil { try self.deleteLinkIfPresent(endpoint.hostInterface) }
            }
            let extra = try config.extraHosts.map(HostsEntry.init(addHost:))
            try Self.overwrite(files.hosts, HostsFile.content(hostname: record.hostname, domainname: config.domainname,
                                                              address: endpoint.address.address, extraHosts: extra, links: links))
            var recorded = runtime
            recorded.endpoint = endpoint
            var mappings: [PortMapping] = []
            if bindings.isEmpty {
                try saveRuntime(recorded, id)
            } else {
                let allocator = try portAllocator()
                // Host ports and, with the userland proxy, their listeners (a port some other
                // socket holds is skipped when the binding leaves a choice).
                let proxy = options.userlandProxy ? try userlandProxy() : nil
                let loopbackDNAT = !options.userlandProxy, address = endpoint.address.address, bridge = net.bridge
                let published = try host.run {
                    try PortPublisher.allocate(owner: id.full, bindings, allocator: allocator, proxy: proxy) { b, port in
                        PortMapping(proto: b.proto, hostIP: b.hostIP, hostPort: port, containerIP: address,
                                    containerPort: b.containerPort, bridge: bridge, loopbackDNAT: loopbackDNAT)
                    }
                }
                mappings = published
                undo.record("host ports") { _ = try allocator.release(owner: id.full) }
                if let proxy { undo.record("proxy listeners") { for m in published { proxy.unpublish(m) } } }
                StepTrace.mark("host ports and proxy listeners")
                recorded.mappings = mappings
                try saveRuntime(recorded, id)
                StepTrace.mark("runtime record")
                try host.run { try net.firewall.addPortMappings(published) }
                undo.record("port rules") { try self.host.run { try net.firewall.removePortMappings(published) } }
                StepTrace.mark("port rules")
            }
            try attaching.join()
            StepTrace.mark("veth attached")
            undo.commit()
            return (endpoint, mappings)
        } catch {
            let failures = undo.unwind()
            guard !failures.isEmpty else { throw error }
            throw BerthError(.system, "\(error) (and rollback failed: \(failures.joined(separator: "; ")))")
        }
    }

    /// Undoes a successful ``connect(_:net:namespace:runtime:record:links:files:bindings:)``.
    func disconnect(_ id: ContainerID, net: BridgeNetwork, endpoint: Endpoint, mappings: [PortMapping]) throws {
        closeProxyListeners(mappings, proxied: options.userlandProxy)
        let problems = mappings.isEmpty ? [] : removePortRulesAndHostPorts(mappings, of: id, net: net)
        try releaseEndpoint(endpoint, deleteVeth: true)
        guard problems.isEmpty else { throw BerthError(.system, problems.joined(separator: "; ")) }
    }

    /// The port bindings of `-p` and `-P` (every exposed port not already published with `-p`).
    func portBindings(_ config: ContainerConfig) throws -> [PortBinding] {
        var bindings = try PortSpec.parse(config.portSpecs).flatMap(\.bindings)
        if config.publishAll {
            let exposed = try config.exposedPorts.flatMap { try ExposedPort.parse(expose: $0) }
            let covered = Set(bindings.map { "\($0.containerPort)/\($0.proto)" })
            bindings += PortSpec.publishAll(exposed).filter { !covered.contains("\($0.containerPort)/\($0.proto)") }
        }
        return bindings
    }

    /// The OCI-style spec of a container.
    func containerSpec(_ record: ContainerRecord, rootfs: String, files: NetworkFiles, links: [ResolvedLink],
                       mode: NetworkMode, joinedNetwork: String?) throws -> ContainerSpec {
        let config = record.config
        let environment = ContainerEnvironment.build(hostname: record.hostname, tty: config.tty,
                                                     links: links.environment(linkingContainerName: record.name),
                                                     configured: config.env)
        var spec = ContainerSpec.make(rootfs: rootfs, args: config.argv, env: environment)
        spec.process?.env = environment
        spec.process?.cwd = config.workingDir.isEmpty ? "/" : config.workingDir
        let ids = try UserSpec(parsing: config.user).resolve(rootfs: rootfs)
        spec.process?.user = ContainerSpec.User(uid: ids.uid, gid: ids.gid)
        spec.hostname = record.hostname
        spec.root?.readonly = config.readOnlyRootfs
        // As runc's default spec: the cgroup hierarchies, read-only.
        var mounts = (spec.mounts ?? []) + [ContainerSpec.Mount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
                                                                options: ["nosuid", "noexec", "nodev", "relatime", "ro"])]
        for (file, destination) in [(files.hosts, "/etc/hosts"), (files.hostname, "/etc/hostname"),
                                    (files.resolvConf, "/etc/resolv.conf")] {
            mounts.append(ContainerSpec.Mount(destination: destination, type: "bind", source: file, options: ["bind", "rw"]))
        }
        for m in record.state.mounts {
            var options = ["rbind", m.rw ? "rw" : "ro"]
            if !m.propagation.isEmpty { options.append(m.propagation) }
            try populateVolume(m, rootfs: rootfs)
            mounts.append(ContainerSpec.Mount(destination: m.destination, type: "bind", source: m.source, options: options))
        }
        spec.mounts = mounts
        switch mode {
        case .host:
            // The namespace playing the host (a sandbox in tests), or the caller's own.
            spec.setNamespace(.network, options.hostNamespace.map { ContainerSpec.Namespace(.network, path: $0.path) })
        case .container:
            spec.setNamespace(.network, ContainerSpec.Namespace(.network, path: joinedNetwork))
        case .bridge:
            // The namespace made (and connected) for it before the clone.
            if let joinedNetwork { spec.setNamespace(.network, ContainerSpec.Namespace(.network, path: joinedNetwork)) }
        case .none:
            break
        }
        return spec
    }

    /// Replaces a file's content keeping its inode (it may be bind-mounted into the container).
    static func overwrite(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw BerthError.system("open \(path)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BerthError.system("write \(path)") }
            off += n
        }
    }

    /// Docker copies the image's content at a volume's path into a new, empty volume.
    func populateVolume(_ mount: MountPoint, rootfs: String) throws {
        guard mount.type == .volume else { return }
        let inImage = rootfs + mount.destination
        guard FileIO.isDirectory(inImage), FileIO.isDirectory(mount.source),
              (try directoryEntries(mount.source)).isEmpty, !(try directoryEntries(inImage)).isEmpty else { return }
        _ = try Command.check("cp", ["-a", inImage + "/.", mount.source + "/"])
    }
}
