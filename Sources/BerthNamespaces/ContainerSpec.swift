/// A container's configuration, modelled on the OCI runtime specification (the `config.json` of a
/// bundle, as written by `runc spec`). Fields Berth does not use are ignored when decoding.
///
/// ```swift
/// var spec = ContainerSpec.make(rootfs: "/tmp/rootfs", args: ["/bin/sh", "-c", "echo hi"])
/// spec.hostname = "box"
/// ```
public struct ContainerSpec: Codable, Sendable, Equatable {
    public var ociVersion: String?
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var domainname: String?
    public var mounts: [Mount]?
    public var linux: Linux?

    /// - Parameters:
    ///   - process: The first process.
    ///   - root: The root filesystem.
    ///   - hostname: The hostname (needs a new uts namespace).
    ///   - mounts: Mounts made inside the container, in order.
    ///   - linux: Namespaces, resources, id mappings and security settings.
    public init(ociVersion: String? = "1.0.2", process: Process? = nil, root: Root? = nil, hostname: String? = nil,
                domainname: String? = nil, mounts: [Mount]? = nil, linux: Linux? = nil) {
        self.ociVersion = ociVersion
        self.process = process
        self.root = root
        self.hostname = hostname
        self.domainname = domainname
        self.mounts = mounts
        self.linux = linux
    }

    /// The container's first process.
    public struct Process: Codable, Sendable, Equatable {
        public var terminal: Bool?
        public var user: User
        public var args: [String]
        public var env: [String]?
        public var cwd: String
        public var capabilities: Capabilities?
        public var noNewPrivileges: Bool?
        public var rlimits: [Rlimit]?

        /// - Parameters:
        ///   - args: argv; `args[0]` is looked up in the environment's `PATH` inside the rootfs.
        ///   - env: `KEY=value` entries.
        ///   - cwd: The working directory inside the container.
        ///   - user: The uid, gid and supplementary groups.
        public init(args: [String], env: [String]? = nil, cwd: String = "/", user: User = User(),
                    capabilities: Capabilities? = nil, noNewPrivileges: Bool? = nil, terminal: Bool? = false) {
            self.args = args
            self.env = env
            self.cwd = cwd
            self.user = user
            self.capabilities = capabilities
            self.noNewPrivileges = noNewPrivileges
            self.terminal = terminal
        }
    }

    /// The user a process runs as.
    public struct User: Codable, Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32
        public var additionalGids: [UInt32]?

        public init(uid: UInt32 = 0, gid: UInt32 = 0, additionalGids: [UInt32]? = nil) {
            self.uid = uid
            self.gid = gid
            self.additionalGids = additionalGids
        }
    }

    /// Capability names per set (`CAP_NET_BIND_SERVICE`, …).
    public struct Capabilities: Codable, Sendable, Equatable {
        public var bounding: [String]?
        public var effective: [String]?
        public var inheritable: [String]?
        public var permitted: [String]?
        public var ambient: [String]?

        public init(bounding: [String]? = nil, effective: [String]? = nil, inheritable: [String]? = nil,
                    permitted: [String]? = nil, ambient: [String]? = nil) {
            self.bounding = bounding
            self.effective = effective
            self.inheritable = inheritable
            self.permitted = permitted
            self.ambient = ambient
        }
    }

    /// A resource limit set with setrlimit before exec (`RLIMIT_NOFILE`, …).
    public struct Rlimit: Codable, Sendable, Equatable {
        public var type: String
        public var hard: UInt64
        public var soft: UInt64

        public init(type: String, soft: UInt64, hard: UInt64) {
            self.type = type
            self.soft = soft
            self.hard = hard
        }

        /// The Linux resource numbers by OCI name.
        static let resources: [String: Int32] = [
            "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
            "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
            "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
            "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
        ]
    }

    /// The root filesystem: a path (relative paths are relative to the bundle) and whether it is
    /// mounted read-only.
    public struct Root: Codable, Sendable, Equatable {
        public var path: String
        public var readonly: Bool?

        public init(path: String, readonly: Bool? = nil) {
            self.path = path
            self.readonly = readonly
        }
    }

    /// One mount inside the container. `type` "bind" or an option "bind"/"rbind" makes a bind
    /// mount of `source` (a host path).
    public struct Mount: Codable, Sendable, Equatable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String]?

        public init(destination: String, type: String? = nil, source: String? = nil, options: [String]? = nil) {
            self.destination = destination
            self.type = type
            self.source = source
            self.options = options
        }

        /// Whether this is a bind mount.
        public var isBind: Bool {
            type == "bind" || (options ?? []).contains { $0 == "bind" || $0 == "rbind" }
        }
    }

    /// Linux-specific settings.
    public struct Linux: Codable, Sendable, Equatable {
        public var namespaces: [Namespace]?
        public var uidMappings: [IDMapping]?
        public var gidMappings: [IDMapping]?
        public var resources: Resources?
        public var maskedPaths: [String]?
        public var readonlyPaths: [String]?
        /// The seccomp profile in the OCI (and Docker) format; compiled by ``ContainerSpec/processSecurity(cache:)``.
        public var seccomp: SeccompProfile?
        public var cgroupsPath: String?

        public init(namespaces: [Namespace]? = nil, uidMappings: [IDMapping]? = nil, gidMappings: [IDMapping]? = nil,
                    resources: Resources? = nil, maskedPaths: [String]? = nil, readonlyPaths: [String]? = nil,
                    seccomp: SeccompProfile? = nil, cgroupsPath: String? = nil) {
            self.namespaces = namespaces
            self.uidMappings = uidMappings
            self.gidMappings = gidMappings
            self.resources = resources
            self.maskedPaths = maskedPaths
            self.readonlyPaths = readonlyPaths
            self.seccomp = seccomp
            self.cgroupsPath = cgroupsPath
        }
    }

    /// A namespace to create (no `path`) or to join (`path`, e.g. `/proc/PID/ns/net`).
    public struct Namespace: Codable, Sendable, Equatable {
        public var type: NamespaceKind
        public var path: String?

        public init(_ type: NamespaceKind, path: String? = nil) {
            self.type = type
            self.path = path
        }

        /// Joins the namespace of `type` of process `pid` (what `--net=container:X` stands on).
        public static func join(_ type: NamespaceKind, pid: Int32) -> Namespace {
            Namespace(type, path: "/proc/\(pid)/ns/\(type.procName)")
        }
    }

    /// An id mapping for a user namespace: `size` ids from `containerID` inside map to `hostID`.
    public struct IDMapping: Codable, Sendable, Equatable {
        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32

        public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
            self.containerID = containerID
            self.hostID = hostID
            self.size = size
        }
    }

    /// Resource limits (applied through BerthCgroups by the caller).
    public struct Resources: Codable, Sendable, Equatable {
        public var memory: Memory?
        public var cpu: CPU?
        public var pids: Pids?
        public var devices: [JSONValue]?

        public init(memory: Memory? = nil, cpu: CPU? = nil, pids: Pids? = nil) {
            self.memory = memory
            self.cpu = cpu
            self.pids = pids
        }

        public struct Memory: Codable, Sendable, Equatable {
            public var limit: Int64?
            public var reservation: Int64?
            public var swap: Int64?
            public init(limit: Int64? = nil, reservation: Int64? = nil, swap: Int64? = nil) {
                self.limit = limit
                self.reservation = reservation
                self.swap = swap
            }
        }

        public struct CPU: Codable, Sendable, Equatable {
            public var shares: UInt64?
            public var quota: Int64?
            public var period: UInt64?
            public var cpus: String?
            public var mems: String?
            public init(shares: UInt64? = nil, quota: Int64? = nil, period: UInt64? = nil, cpus: String? = nil, mems: String? = nil) {
                self.shares = shares
                self.quota = quota
                self.period = period
                self.cpus = cpus
                self.mems = mems
            }
        }

        public struct Pids: Codable, Sendable, Equatable {
            public var limit: Int64
            public init(limit: Int64) { self.limit = limit }
        }
    }
}

/// The kinds of Linux namespaces, spelled as in the OCI spec.
public enum NamespaceKind: String, Codable, Sendable, CaseIterable {
    case pid, network, mount, ipc, uts, user, cgroup

    /// The name under /proc/PID/ns/.
    public var procName: String {
        switch self {
        case .pid: "pid"
        case .network: "net"
        case .mount: "mnt"
        case .ipc: "ipc"
        case .uts: "uts"
        case .user: "user"
        case .cgroup: "cgroup"
        }
    }
}
