import BerthCgroups
import BerthIPAM
import BerthImageLayers
import BerthNamespaces
import BerthNetLink
import BerthNetwork
import BerthPortMapper
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

extension Engine {
    /// Called by the owner when the container process has exited: releases its resources,
    /// records the exit and removes it when `--rm` was given.
    /// - Returns: The exit code.
    func finish(id: ContainerID, runtime: ContainerRuntime, status: ExitStatus) -> Int32 {
        StepTrace.mark("container ran")
        // The veth dies with the namespace, unless a `--network container:` joiner keeps it alive.
        let record = try? store.load(id)
        // With --rm the rootfs directories go while the port rules are removed (both take milliseconds).
        _ = release(runtime, id: id, deleteVeth: runtime.endpoint != nil && networkIsShared(id),
                    removeRootfs: record?.config.autoRemove == true, record: record)
        StepTrace.mark("release")
        if record?.config.autoRemove == true, (try? removeStopped(id, removeVolumes: true)) != nil {
            StepTrace.mark("remove")
            return status.code
        }
        _ = try? store.updateState(of: id) { s in
            s.status = .exited
            s.exitCode = status.code
            s.pid = 0
            s.paused = false
            s.finishedAt = .now()
            s.ports = []
            s.vethName = nil
            s.monitorPid = nil
        }
        if record?.config.autoRemove == true { try? removeStopped(id, removeVolumes: true) }
        StepTrace.mark("state + remove")
        return status.code
    }

    /// Whether a running container joined the network namespace of `id`.
    func networkIsShared(_ id: ContainerID) -> Bool {
        guard let records = try? store.list(), let me = records.first(where: { $0.id == id }) else { return false }
        let names: Set<String> = ["container:" + me.name, "container:/" + me.name, "container:" + id.full, "container:" + id.short]
        return records.contains { $0.id != id && $0.state.isRunning && names.contains($0.config.networkMode) }
    }

    /// Releases what a runtime record names; keeps going after failures and returns them.
    ///
    /// Three strands overlap, as each mostly waits on the kernel: the port rules and host ports (an
    /// `iptables-restore`), the rootfs (unmounting an overlay syncs its upper filesystem; removing
    /// its directories), and, here, the cgroup and the network endpoint. The runtime record, which
    /// names all of them, goes only after all three.
    /// - Parameters:
    ///   - deleteVeth: Delete the veth explicitly. Without it the kernel deletes it with the
    ///     container's network namespace (deleting it costs tens of milliseconds).
    ///   - removeRootfs: Also remove the rootfs directories once unmounted (`--rm`).
    ///   - record: The container's record when the caller has it (saves reading it again).
    func release(_ runtime: ContainerRuntime, id: ContainerID, deleteVeth: Bool, removeRootfs: Bool = false,
                 record known: ContainerRecord? = nil) -> [String] {
        var problems: [String] = []
        func attempt(_ what: String, _ body: () throws -> Void) {
            do { try body() } catch { problems.append("\(what): \(error)") }
        }
        StepTrace.mark("release: begin")
        // Port rules and host ports.
        var ports: BackgroundWork<[String]>?
        let record = known ?? (try? store.load(id))
        if !runtime.mappings.isEmpty || !(record?.config.portSpecs.isEmpty ?? true) || record?.config.publishAll == true {
            closeProxyListeners(runtime.mappings, proxied: runtime.proxied)
            ports = BackgroundWork { [self] in removePortRulesAndHostPorts(runtime.mappings, of: id) }
        }
        // The rootfs.
        let rootfsWork = BackgroundWork { [self] () -> [String] in
            guard let rootfs = try? layers.containerRootfs(name: runtime.rootfs) else { return [] }
            do {
                do { try rootfs.unmount() } catch { try rootfs.unmount(lazy: true) }
                StepTrace.mark("release: rootfs unmounted")
                if removeRootfs {
                    try layers.removeContainerRootfs(name: runtime.rootfs)
                    StepTrace.mark("release: rootfs removed")
                }
                return []
            } catch { return ["rootfs \(runtime.rootfs): \(error)"] }
        }
        attempt("cgroup \(runtime.cgroup)") {
            guard let cgroup = try? Cgroup.open(name: runtime.cgroup) else { return }
            // Killing freezes the group first (v1): skip it when the container left nothing behind.
            if (try? cgroup.processes().isEmpty) != true { try? cgroup.killAll() }
            try cgroup.destroy()
        }
        StepTrace.mark("release: cgroup")
        if let endpoint = runtime.endpoint {
            attempt("endpoint \(endpoint.hostInterface)") { try releaseEndpoint(endpoint, deleteVeth: deleteVeth) }
        } else if deleteVeth, let name = runtime.hostInterface {
            attempt("veth \(name)") { try deleteLinkIfPresent(name) }
        }
        StepTrace.mark("release: endpoint")
        problems += (try? rootfsWork.join()) ?? []
        if let ports { problems += (try? ports.join()) ?? [] }
        StepTrace.mark("release: joined")
        unlink(runtimePath(id))
        return problems
    }

    /// Closes the userland proxy's listeners of `mappings` (when the container's ports are proxied
    /// by this process's proxy).
    func closeProxyListeners(_ mappings: [PortMapping], proxied: Bool) {
        guard proxied, let proxy = existingProxy else { return }
        for m in mappings { proxy.unpublish(m) }
    }

    /// Removes the DNAT rules of `mappings`, then gives back every host port `id` holds.
    /// - Parameter net: The bridge network when the caller has it.
    /// - Returns: What failed.
    func removePortRulesAndHostPorts(_ mappings: [PortMapping], of id: ContainerID, net known: BridgeNetwork? = nil) -> [String] {
        var problems: [String] = []
        if !mappings.isEmpty {
            do {
                let net = try known ?? network()
                try host.run { try net.firewall.removePortMappings(mappings) }
                StepTrace.mark("release: remove rules")
            } catch { problems.append("port rules: \(error)") }
        }
        do { _ = try portAllocator().release(owner: id.full) } catch { problems.append("host ports: \(error)") }
        return problems
    }

    /// Releases an endpoint's address lease, deleting its veth first when asked.
    func releaseEndpoint(_ endpoint: Endpoint, deleteVeth: Bool) throws {
        let net = try network()
        if deleteVeth {
            try host.run { try net.detach(endpoint) }
        } else {
            try net.releaseLease(endpoint)
        }
    }

    /// Deletes a host-side link (a veth a crash left behind) through netlink; a link that is
    /// already gone is fine.
    func deleteLinkIfPresent(_ name: String) throws {
        try host.run {
            do {
                try NetlinkSession().deleteLink(named: name)
            } catch let e as BerthError where e.code == .notFound {
                return
            }
        }
    }

    // MARK: - Reconcile

    /// Brings the stored state in line with the kernel: every container whose owner (monitor or
    /// foreground `berth run`) is gone is marked exited and what it held is released (veth,
    /// address lease, rules and host ports, rootfs mount, cgroup); `--rm` containers are removed.
    /// Then, if no start is under way, address leases and host ports that no live container
    /// holds are released (a crash between making and recording them).
    /// - Returns: The containers that were cleaned up.
    @discardableResult
    public func reconcile() -> [ContainerID] {
        var cleaned: [ContainerID] = []
        for id in (try? store.ids()) ?? [] where reconcile(id) { cleaned.append(id) }
        if !cleaned.isEmpty { sweep() }
        return cleaned
    }

    /// Reconciles one container; returns whether anything was cleaned up.
    @discardableResult
    func reconcile(_ id: ContainerID) -> Bool {
        guard let record = try? store.load(id) else { return false }
        let runtime = loadRuntime(id)
        if let runtime, runtime.owner.isAlive { return false }
        if runtime == nil && !record.state.isRunning { return false }
        if let runtime { _ = release(runtime, id: id, deleteVeth: true) }
        _ = try? store.updateState(of: id) { s in
            if s.status == .running {
                s.status = .exited
                s.exitCode = 137
                s.error = "owner process died"
                s.finishedAt = .now()
            }
            s.pid = 0
            s.paused = false
            s.ports = []
            s.vethName = nil
            s.monitorPid = nil
        }
        if record.config.autoRemove { try? removeStopped(id, removeVolumes: true) }
        return true
    }

    /// Releases leases and host ports owned by no live container (only when no start holds the
    /// operation lock).
    func sweep() {
        guard let lock = try? OperationLock.exclusiveIfFree(root: options.root) else { return }
        defer { lock.release() }
        var liveAddresses = Set<IPv4Address>()
        var liveOwners = Set<String>()
        for id in (try? store.ids()) ?? [] {
            guard let runtime = loadRuntime(id), runtime.owner.isAlive else { continue }
            liveOwners.insert(id.full)
            if let a = runtime.endpoint?.address.address { liveAddresses.insert(a) }
        }
        if let allocator = try? AddressAllocator.open(root: options.root + "/network/ipam", network: options.bridge) {
            let stale = ((try? allocator.allocatedAddresses()) ?? []).filter { !liveAddresses.contains($0) }
            if !stale.isEmpty { _ = try? allocator.release(stale) }
        }
        if FileIO.exists(store.execRoot + "/ports"), let ports = try? portAllocator() {
            for owner in Set(((try? ports.allocations()) ?? []).map(\.owner)) where !liveOwners.contains(owner) {
                _ = try? ports.release(owner: owner)
            }
        }
    }

    // MARK: - Stop, kill, wait, remove

    /// Stops a running container: SIGTERM, then SIGKILL to its whole cgroup after `timeout`
    /// seconds; returns once its owner has released it.
    /// - Parameters:
    ///   - reference: Id, name or id prefix.
    ///   - timeout: Seconds to wait after SIGTERM.
    public func stop(_ reference: String, timeout: Double = 10) throws {
        let id = try store.resolve(reference)
        let record = try store.load(id)
        guard record.state.isRunning, record.state.pid > 0 else { return }
        _ = Glibc.kill(record.state.pid, SIGTERM)
        resumeToDeliverSignals(record)
        if try waitUntilStopped(id, timeout: timeout) { return }
        if let cgroup = try? Cgroup.open(name: cgroupName(id)) { try? cgroup.killAll() }
        _ = Glibc.kill(record.state.pid, SIGKILL)
        if try waitUntilStopped(id, timeout: 10) { return }
        throw BerthError(.invalidState, "container \(record.name) did not stop")
    }

    /// Sends a signal to a running container's init process.
    /// - Parameters:
    ///   - reference: Id, name or id prefix.
    ///   - signal: The signal (SIGKILL by default, as `docker kill`).
    public func kill(_ reference: String, signal: Int32 = SIGKILL) throws {
        let id = try store.resolve(reference)
        let record = try store.load(id)
        guard record.state.isRunning, record.state.pid > 0 else {
            throw BerthError(.invalidState, "Cannot kill container: \(reference): Container \(id.full) is not running")
        }
        guard Glibc.kill(record.state.pid, signal) == 0 else { throw BerthError.system("kill container \(record.name)") }
        resumeToDeliverSignals(record)
    }

    // MARK: - Pause

    /// Freezes every process of a running container (`docker pause`), with the cgroup freezer:
    /// they stay in memory and are not scheduled until ``unpause(_:)``.
    /// - Parameter reference: Id, name or id prefix.
    /// - Throws: `invalidState` when it is not running or already paused.
    public func pause(_ reference: String) throws {
        let id = try store.resolve(reference)
        let record = try store.load(id)
        guard record.state.isRunning else { throw BerthError(.invalidState, "Container \(id.full) is not running") }
        guard !record.state.paused else { throw BerthError(.invalidState, "Container \(id.full) is already paused") }
        let cgroup = try containerCgroup(record)
        try cgroup.freeze()
        do {
            _ = try store.updateState(of: id) { s in
                guard s.isRunning else { throw BerthError(.invalidState, "Container \(id.full) is not running") }
                s.paused = true
            }
        } catch {
            try? cgroup.thaw()
            throw error
        }
    }

    /// Lets a paused container run again (`docker unpause`).
    /// - Parameter reference: Id, name or id prefix.
    /// - Throws: `invalidState` when it is not paused.
    public func unpause(_ reference: String) throws {
        let id = try store.resolve(reference)
        let record = try store.load(id)
        guard record.state.isRunning, record.state.paused else {
            throw BerthError(.invalidState, "Container \(id.full) is not paused")
        }
        try containerCgroup(record).thaw()
        _ = try store.updateState(of: id) { s in s.paused = false }
    }

    /// The cgroup a running container is in: the one its start recorded.
    func containerCgroup(_ record: ContainerRecord) throws -> Cgroup {
        try Cgroup.open(name: record.state.cgroupName ?? cgroupName(record.id))
    }

    /// A signal sent to a paused container waits until it is thawed: thaw it, as Docker does for
    /// `stop` and `kill` (the container is then no longer paused).
    func resumeToDeliverSignals(_ record: ContainerRecord) {
        guard record.state.paused else { return }
        try? containerCgroup(record).thaw()
        _ = try? store.updateState(of: record.id) { s in s.paused = false }
    }

    /// Waits for a container to stop and returns its exit code (`docker wait`).
    /// - Parameter reference: Id, name or id prefix.
    public func wait(_ reference: String) throws -> Int32 {
        let id = try store.resolve(reference)
        _ = try waitUntilStopped(id, timeout: .infinity)
        return try store.load(id).state.exitCode
    }

    /// Polls until the container is no longer running (reconciling it if its owner died).
    /// - Returns: false on timeout.
    func waitUntilStopped(_ id: ContainerID, timeout: Double) throws -> Bool {
        let deadline = monotonicNow() + timeout
        while true {
            guard let record = try? store.load(id) else { return true }
            if !record.state.isRunning { return true }
            if let runtime = loadRuntime(id), !runtime.owner.isAlive {
                reconcile(id)
                return true
            }
            if loadRuntime(id) == nil, record.state.pid > 0, ProcessIdentity.of(pid: record.state.pid) == nil {
                reconcile(id)
                return true
            }
            if monotonicNow() >= deadline { return false }
            usleep(5000)
        }
    }

    /// Stops (if running) then starts a container again, detached with a monitor.
    /// - Parameters:
    ///   - reference: Id, name or id prefix.
    ///   - timeout: Seconds to wait after SIGTERM.
    public func restart(_ reference: String, timeout: Double = 10) throws {
        try stop(reference, timeout: timeout)
        try startDetached(try store.resolve(reference))
    }

    /// Removes a container (`docker rm`).
    /// - Parameters:
    ///   - reference: Id, name or id prefix.
    ///   - force: Kill it first if it runs.
    ///   - removeVolumes: Also delete its anonymous volumes (`-v`).
    public func remove(_ reference: String, force: Bool = false, removeVolumes: Bool = false) throws {
        let id = try store.resolve(reference)
        let record = try store.load(id)
        if record.state.isRunning {
            if let runtime = loadRuntime(id), runtime.owner.isAlive {
                guard force else {
                    throw BerthError(.invalidState,
                        "You cannot remove a running container \(id.full). Stop the container before attempting removal or force remove")
                }
                if let cgroup = try? Cgroup.open(name: cgroupName(id)) { try? cgroup.killAll() }
                if record.state.pid > 0 { _ = Glibc.kill(record.state.pid, SIGKILL) }
                guard try waitUntilStopped(id, timeout: 10) else {
                    throw BerthError(.invalidState, "container \(record.name) did not stop")
                }
            } else {
                reconcile(id)
            }
        }
        // An owner with --rm may have removed it meanwhile.
        guard (try? store.load(id)) != nil else { return }
        try removeStopped(id, removeVolumes: removeVolumes)
    }

    /// Removes a stopped container's rootfs, volume references and documents.
    func removeStopped(_ id: ContainerID, removeVolumes: Bool) throws {
        if let runtime = loadRuntime(id) { _ = release(runtime, id: id, deleteVeth: true) }
        if (try? layers.containerRootfs(name: id.full)) != nil { try layers.removeContainerRootfs(name: id.full) }
        StepTrace.mark("remove rootfs")
        _ = try volumes.release(container: id, removeAnonymous: removeVolumes)
        StepTrace.mark("release volumes")
        let ephemeralLog = store.isEphemeral(id) ? logPath(id) : nil
        try store.remove(id)
        if let ephemeralLog { unlink(ephemeralLog) }
        StepTrace.mark("remove documents")
    }
}

/// Seconds on the monotonic clock.
func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
