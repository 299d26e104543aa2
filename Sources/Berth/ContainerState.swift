import BerthSystem

/// A container's lifecycle status, spelled as Docker's `State.Status`.
public enum ContainerStatus: String, Codable, Sendable, CaseIterable {
    /// Created, never started (or reset before a start).
    case created
    /// Its init process runs.
    case running
    /// Its init process ended; `exitCode` says how.
    case exited
    /// Removal or cleanup failed half-way; only `rm -f` helps.
    case dead
}

/// A published port as it was actually bound: host address and port to container port.
public struct PublishedPort: Codable, Sendable, Hashable {
    /// The host address (`0.0.0.0` for all).
    public var hostIP: String
    /// The host port.
    public var hostPort: UInt16
    /// The container port.
    public var containerPort: UInt16
    /// `tcp`, `udp` or `sctp`.
    public var proto: String

    /// - Parameters:
    ///   - hostIP: The host address.
    ///   - hostPort: The host port.
    ///   - containerPort: The container port.
    ///   - proto: The protocol.
    public init(hostIP: String = "0.0.0.0", hostPort: UInt16, containerPort: UInt16, proto: String = "tcp") {
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.containerPort = containerPort
        self.proto = proto
    }
}

/// What the container is doing now and the kernel objects it owns, so that a later `berth`
/// process (or the monitor) can find and release them. Stored as `containers/<id>/state.json`.
public struct ContainerState: Codable, Sendable, Equatable {
    /// The lifecycle status.
    public var status: ContainerStatus
    /// The init process in the host pid namespace; 0 when not running.
    public var pid: Int32
    /// The exit code of the last run.
    public var exitCode: Int32
    /// An error from the last start attempt, if any.
    public var error: String
    /// When the last run started; ``Timestamp/zero`` if never.
    public var startedAt: Timestamp
    /// When the last run ended; ``Timestamp/zero`` if never.
    public var finishedAt: Timestamp
    /// The container's address on its network.
    public var ipAddress: String?
    /// The prefix length of that address.
    public var ipPrefixLength: Int?
    /// The network's gateway.
    public var gateway: String?
    /// The container interface's MAC address.
    public var macAddress: String?
    /// Host ports bound for `-p` / `-P`.
    public var ports: [PublishedPort]
    /// The host end of the container's veth pair.
    public var vethName: String?
    /// The cgroup the container runs in.
    public var cgroupName: String?
    /// Where the rootfs (overlay) is mounted.
    public var rootfsPath: String?
    /// The per-container monitor process (`berth -d`), if any.
    public var monitorPid: Int32?
    /// The mounts the container got (binds and volumes), in mount order.
    public var mounts: [MountPoint]
    /// The containers this one links to, by alias, as resolved at its last start (names can
    /// change later; ids cannot).
    public var linkTargets: [LinkedContainer]
    /// Whether its processes are frozen (`pause`); the status stays `running`.
    public var paused: Bool

    /// A freshly created container's state.
    public init() {
        status = .created
        pid = 0
        exitCode = 0
        error = ""
        startedAt = .zero
        finishedAt = .zero
        ports = []
        mounts = []
        linkTargets = []
        paused = false
    }

    /// Whether the status is `running`.
    public var isRunning: Bool { status == .running }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        status = try c.decode(ContainerStatus.self, forKey: .status)
        pid = try c.decodeIfPresent(Int32.self, forKey: .pid) ?? 0
        exitCode = try c.decodeIfPresent(Int32.self, forKey: .exitCode) ?? 0
        error = try c.decodeIfPresent(String.self, forKey: .error) ?? ""
        startedAt = try c.decodeIfPresent(Timestamp.self, forKey: .startedAt) ?? .zero
        finishedAt = try c.decodeIfPresent(Timestamp.self, forKey: .finishedAt) ?? .zero
        ipAddress = try c.decodeIfPresent(String.self, forKey: .ipAddress)
        ipPrefixLength = try c.decodeIfPresent(Int.self, forKey: .ipPrefixLength)
        gateway = try c.decodeIfPresent(String.self, forKey: .gateway)
        macAddress = try c.decodeIfPresent(String.self, forKey: .macAddress)
        ports = try c.decodeIfPresent([PublishedPort].self, forKey: .ports) ?? []
        vethName = try c.decodeIfPresent(String.self, forKey: .vethName)
        cgroupName = try c.decodeIfPresent(String.self, forKey: .cgroupName)
        rootfsPath = try c.decodeIfPresent(String.self, forKey: .rootfsPath)
        monitorPid = try c.decodeIfPresent(Int32.self, forKey: .monitorPid)
        mounts = try c.decodeIfPresent([MountPoint].self, forKey: .mounts) ?? []
        linkTargets = try c.decodeIfPresent([LinkedContainer].self, forKey: .linkTargets) ?? []
        paused = try c.decodeIfPresent(Bool.self, forKey: .paused) ?? false
    }
}

/// One resolved `--link`: the alias and the id of the container it names.
public struct LinkedContainer: Codable, Sendable, Equatable {
    /// The alias the linking container uses.
    public var alias: String
    /// The linked container.
    public var target: ContainerID

    /// - Parameters:
    ///   - alias: The alias.
    ///   - target: The linked container's id.
    public init(alias: String, target: ContainerID) {
        self.alias = alias
        self.target = target
    }
}

/// A container as stored: identity, configuration and current state.
public struct ContainerRecord: Codable, Sendable, Equatable {
    /// The 64-hex identifier.
    public var id: ContainerID
    /// The name without a leading `/`.
    public var name: String
    /// When it was created.
    public var created: Timestamp
    /// What it was created with.
    public var config: ContainerConfig
    /// Its current state.
    public var state: ContainerState

    /// - Parameters:
    ///   - id: The identifier.
    ///   - name: The name without `/`.
    ///   - created: Creation time.
    ///   - config: The configuration.
    ///   - state: The state.
    public init(id: ContainerID, name: String, created: Timestamp, config: ContainerConfig, state: ContainerState) {
        self.id = id
        self.name = name
        self.created = created
        self.config = config
        self.state = state
    }

    /// The hostname the container uses: the configured one, or the short id.
    public var hostname: String { config.hostname.isEmpty ? id.short : config.hostname }
}
