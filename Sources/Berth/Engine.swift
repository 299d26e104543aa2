import BerthCgroups
import BerthImageLayers
import BerthLinks
import BerthNamespaces
import BerthNetwork
import BerthPortMapper
import BerthSystem
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// The container engine: creates, starts, stops and removes containers on an image rootfs, with a
/// Docker-style bridge network, published ports, legacy links and volumes. No daemon: the process
/// that starts a container owns it (see ``RunningContainer``); `berth run -d` hands it to a
/// per-container monitor process.
///
/// ```swift
/// let engine = try Engine(options: EngineOptions(root: "/tmp/berth-root"))
/// var config = ContainerConfig(image: "busybox", cmd: ["echo", "hello"])
/// let record = try engine.create(config, name: "hello")
/// let running = try engine.start(record.id)
/// let exit = try running.wait()               // releases network, ports, mounts, cgroup
/// ```
///
/// Every command first calls ``reconcile()``: containers whose owner died are marked exited and
/// what they held (veth, lease, rules, mount, cgroup) is released.
public final class Engine: Sendable {
    /// The options it was opened with.
    public let options: EngineOptions
    /// Containers.
    public let store: StateStore
    /// Volumes.
    public let volumes: VolumeStore
    /// Images, layers and container rootfs.
    public let layers: LayerStore
    let host: HostContext
    private let networkCache = Mutex<BridgeNetwork?>(nil)
    private let proxyCache = Mutex<UserlandProxy?>(nil)
    private let portsCache = Mutex<PortAllocator?>(nil)
    /// Compiled seccomp programs, shared by every `berth` process on this root.
    let seccompCache: SeccompProgramCache

    /// Opens (creating if needed) the state under `options.root`. Nothing touches the network
    /// until a container needs it.
    /// - Parameter options: Root, bridge and firewall settings.
    public init(options: EngineOptions = EngineOptions()) throws {
        self.options = options
        store = try StateStore(root: options.root, execRoot: options.execRoot)
        volumes = try VolumeStore(root: options.root)
        // Mount points and the records of --rm rootfs go to the exec root (a tmpfs).
        layers = try LayerStore(root: options.root + "/image", runRoot: store.execRoot)
        host = HostContext(namespace: options.hostNamespace)
        seccompCache = SeccompProgramCache(directory: options.root + "/seccomp")
        try FileIO.makeDirectories(options.root + "/logs", mode: 0o700)
        if store.execRootIsNew { removeLeftoversOfEphemeralContainers() }
    }

    /// After a reboot the exec root is empty, and with it the records of `--rm` containers that
    /// were running; removes their rootfs directories, logs and names from the disk.
    func removeLeftoversOfEphemeralContainers() {
        let known = Set(((try? store.ids()) ?? []).map(\.full))
        // Engine rootfs are named by container id; others (made through LayerStore directly) stay.
        for rootfs in (try? layers.containerRootfsList()) ?? [] where (try? ContainerID(rootfs.name)) != nil && !known.contains(rootfs.name) {
            try? layers.removeContainerRootfs(name: rootfs.name)
        }
        // Those whose record was in the exec root too.
        _ = try? layers.removeOrphanedContainerRootfs()
        for file in (try? directoryEntries(options.root + "/logs")) ?? [] where !known.contains(String(file.prefix(64))) {
            unlink(options.root + "/logs/" + file)
        }
        try? store.removeStaleNames()
    }

    /// Gets the kernel ready to move a container into its cgroup without waiting: call it as early
    /// as a process knows it will start a container (`berth run` does, once it has parsed its
    /// arguments). On cgroup v1 the first move after a quiet spell waits for an RCU grace period
    /// (5–12 ms here); for `seconds` a spare thread makes no-op moves of this process so that this
    /// wait happens now, in parallel, and ``start(_:stdio:)`` keeps it up until the container joined.
    /// - Parameter seconds: How long to keep ready without a start.
    public static func prepareForStart(seconds: Double = 0.2) {
        CgroupMigrationWarmUp.shared.warm(for: seconds)
    }

    // MARK: - Network

    /// The bridge network, set up (or adopted) on first use and kept.
    public func network() throws -> BridgeNetwork {
        try networkCache.withLock { cached in
            if let cached { return cached }
            let configuration = BridgeConfiguration(bridge: options.bridge, bip: options.bip, icc: options.icc,
                                                    firewall: options.iptables ? nil : FirewallKind.none)
            let net = try host.run {
                let firewall = RememberedBridgeRules(inner: try makeFirewall(configuration.firewall),
                                                     marker: options.root + "/network/bridge-rules-" + options.bridge)
                return try BridgeNetwork.setUp(configuration, stateRoot: options.root + "/network", firewall: firewall)
            }
            if !options.userlandProxy {
                try host.run { try LoopbackDNAT.set(bridge: net.bridge, enabled: true) }
            }
            cached = net
            return net
        }
    }

    /// The port allocator (its ephemeral range is the host namespace's).
    func portAllocator() throws -> PortAllocator {
        try portsCache.withLock { cached in
            if let cached { return cached }
            // Published ports end with a reboot: their reservations live in the exec root.
            let a = try host.run { try PortAllocator(stateRoot: store.execRoot + "/ports") }
            cached = a
            return a
        }
    }

    /// This process's userland proxy (made on first use, inside the host namespace).
    func userlandProxy() throws -> UserlandProxy {
        try proxyCache.withLock { cached in
            if let cached { return cached }
            let p = try host.run { try UserlandProxy() }
            cached = p
            return p
        }
    }

    /// The proxy if this process made one.
    var existingProxy: UserlandProxy? { proxyCache.withLock { $0 } }

    /// The cgroup name of a container.
    func cgroupName(_ id: ContainerID) -> String { options.cgroupParent + "/" + id.full }

    /// The container's log file (stdout and stderr): in its directory, or for a `--rm` container
    /// (whose directory is in the exec root, a tmpfs) under `<root>/logs`, on disk.
    public func logPath(_ id: ContainerID) -> String {
        store.isEphemeral(id) ? options.root + "/logs/" + id.full + ".log" : store.directory(of: id) + "/container.log"
    }

    func runtimePath(_ id: ContainerID) -> String { store.directory(of: id) + "/runtime.json" }

    func loadRuntime(_ id: ContainerID) -> ContainerRuntime? {
        guard FileIO.exists(runtimePath(id)) else { return nil }
        return try? JSONFile.read(ContainerRuntime.self, from: runtimePath(id))
    }

    /// Written without fsync: it guards against the owner *process* dying (the page cache
    /// survives that), and a start writes it three times.
    func saveRuntime(_ runtime: ContainerRuntime, _ id: ContainerID) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data: Data
        do { data = try encoder.encode(runtime) } catch {
            throw BerthError(.invalidArgument, "cannot encode \(runtimePath(id))", underlying: error)
        }
        try FileIO.writeAtomically(runtimePath(id), [UInt8](data), durable: false)
    }

    // MARK: - Create

    /// Creates a container from `config`: checks every input (image, ports, links, network mode,
    /// volumes, limits), fills in the image's defaults (command, entrypoint, environment, working
    /// directory, user, exposed ports, volumes), reserves the name, resolves the volumes and makes
    /// the rootfs directories. Nothing is left behind when it throws.
    /// - Parameters:
    ///   - config: What to run.
    ///   - name: The name; `nil` generates one.
    ///   - overridesEntrypoint: `--entrypoint` was given: `config.entrypoint` replaces the image's
    ///     (even when empty) and the image's `CMD` is not used.
    /// - Returns: The stored container (status `created`).
    public func create(_ config: ContainerConfig, name: String? = nil, overridesEntrypoint: Bool = false) throws -> ContainerRecord {
        StepTrace.mark("before create")
        var config = config
        let image = try layers.image(config.image)
        let run = image.config.config ?? ImageConfig.RunConfig()
        if !overridesEntrypoint { config.entrypoint = run.entrypoint ?? [] }
        if config.cmd.isEmpty && !overridesEntrypoint { config.cmd = run.cmd ?? [] }
        config.env = (run.env ?? []) + config.env
        if config.workingDir.isEmpty { config.workingDir = run.workingDir ?? "" }
        if config.user.isEmpty { config.user = run.user ?? "" }
        config.exposedPorts = Array(Set((run.exposedPorts ?? [:]).keys.map { $0 } + config.exposedPorts)).sorted()
        config.imageVolumes = Array((run.volumes ?? [:]).keys).sorted()
        guard !config.argv.isEmpty else {
            throw BerthError(.invalidArgument, "No command specified: image \(config.image) has no CMD or ENTRYPOINT and none was given")
        }
        try validate(config, name: name)

        let record = try store.create(config: config, name: name)
        do {
            var state = record.state
            state.mounts = try MountResolver(containers: store, volumes: volumes).resolve(config, for: record.id)
            do {
                _ = try layers.createContainerRootfs(name: record.id.full, image: image.id.description,
                                                     ephemeral: config.autoRemove)
                if !state.mounts.isEmpty { try store.saveState(state, of: record.id) }
            } catch {
                try? layers.removeContainerRootfs(name: record.id.full)
                _ = try? volumes.release(container: record.id, removeAnonymous: true)
                throw error
            }
            StepTrace.mark("create")
            var created = record
            created.state = state
            return created
        } catch {
            try? store.remove(record.id)
            throw error
        }
    }

    /// Checks what can be checked before anything is created.
    func validate(_ config: ContainerConfig, name: String?) throws {
        _ = try PortSpec.parse(config.portSpecs)
        for e in config.exposedPorts { _ = try ExposedPort.parse(e) }
        let mode = try NetworkMode(parsing: config.networkMode)
        if case .container(let other) = mode {
            let target = try store.find(other)
            guard target.state.isRunning else {
                throw BerthError(.invalidState, "cannot join the network of container \(other): it is not running")
            }
        }
        if mode != .bridge {
            if !config.portSpecs.isEmpty || config.publishAll {
                // Docker ignores -p outside the bridge; Berth says so instead of silently dropping it.
                throw BerthError(.invalidArgument, "published ports need the bridge network (--network \(mode))")
            }
            if !config.links.isEmpty {
                throw BerthError(.invalidArgument, "links need the bridge network (--network \(mode))")
            }
        }
        if let ip = config.ipAddress, IPv4Address(ip) == nil {
            throw BerthError(.invalidArgument, "invalid --ip \"\(ip)\": not an IPv4 address")
        }
        let specs = try config.links.map(LinkSpec.init(parsing:))
        _ = try store.linkResolver().resolve(specs, linkingContainerName: name ?? "<new container>")
        for v in config.volumes { _ = try VolumeSpec(parsing: v) }
        for v in config.volumesFrom { _ = try VolumesFromSpec(parsing: v) }
        for h in config.extraHosts { _ = try HostsEntry(addHost: h) }
        try cgroupLimits(config).validate()
        _ = try UserSpec(parsing: config.user)
    }

    /// The cgroup limits of `--memory`, `--cpus`, `--pids-limit`.
    func cgroupLimits(_ config: ContainerConfig) -> CgroupLimits {
        var limits = CgroupLimits(memoryBytes: config.memoryBytes, pidsMax: config.pidsLimit)
        if let cpus = config.cpus { limits.setCPUs(cpus) }
        return limits
    }
}
