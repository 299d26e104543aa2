/// A container's configuration, modelled on the OCI runtime specification (the `config.json` of a
/// bundle, as written by `runc spec`). Fields Berth does not use are ignored when decoding.
///
/// ```swift
/// var spec = ContainerSpec.make(rootfs: "/tmp/rootfs", args: ["/bin/sh", "-c", "echo hi"])
/// spec.hostname = "box"
/// ```
public struct ContainerSpec: Codable, Sendable, Equatable {
    /// The OCI spec version the document follows.
    public var ociVersion: String?
    /// The first process.
    public var process: Process?
    /// The root filesystem; `nil` runs without a rootfs (for `exec` into a joined mount namespace).
    public var root: Root?
    /// The hostname (needs a new uts namespace).
    public var hostname: String?
    /// The NIS domain name (needs a new uts namespace).
    public var domainname: String?
    /// Mounts made inside the container, in order.
    public var mounts: [Mount]?
    /// Namespaces, id mappings, resources and security settings.
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
        /// Whether the process wants a terminal: honoured by whoever picks the stdio (berth-ns, the
        /// engine) with ``ProcessStdio/terminal(_:)``; the spawner itself uses the stdio it is given.
        public var terminal: Bool?
        /// The uid, gid and supplementary groups.
        public var user: User
        /// argv; `args[0]` without a slash is looked up in the `PATH` of ``env`` inside the rootfs.
        public var args: [String]
        /// `KEY=value` entries.
        public var env: [String]?
        /// The working directory inside the container.
        public var cwd: String
        /// The capability sets; `nil` keeps the caller's.
        public var capabilities: Capabilities?
        /// Sets `PR_SET_NO_NEW_PRIVS`.
        public var noNewPrivileges: Bool?
        /// Resource limits set before exec.
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
        /// The user id inside the container.
        public var uid: UInt32
        /// The group id inside the container.
        public var gid: UInt32
        /// Supplementary group ids.
        public var additionalGids: [UInt32]?

        /// Creates the value with the given fields.
        public init(uid: UInt32 = 0, gid: UInt32 = 0, additionalGids: [UInt32]? = nil) {
            self.uid = uid
            self.gid = gid
            self.additionalGids = additionalGids
        }
    }

    /// Capability names per set (`CAP_NET_BIND_SERVICE`, …).
    public struct Capabilities: Codable, Sendable, Equatable {
        /// The bounding set.
        public var bounding: [String]?
        /// The effective set.
        public var effective: [String]?
        /// The inheritable set.
        public var inheritable: [String]?
        /// The permitted set.
        public var permitted: [String]?
        /// The ambient set (raised only for capabilities also permitted and inheritable).
        public var ambient: [String]?

        /// Creates the value with the given fields.
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
        /// The resource name, like `RLIMIT_NOFILE`.
        public var type: String
        /// The hard limit.
        public var hard: UInt64
        /// The soft limit.
        public var soft: UInt64

        /// Creates the value with the given fields.
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
        /// The rootfs directory (absolute, or relative to the bundle in a config.json).
        public var path: String
        /// Whether / is remounted read-only.
        public var readonly: Bool?

        /// Creates the value with the given fields.
        public init(path: String, readonly: Bool? = nil) {
            self.path = path
            self.readonly = readonly
        }
    }

    /// One mount inside the container. `type` "bind" or an option "bind"/"rbind" makes a bind
    /// mount of `source` (a host path).
    public struct Mount: Codable, Sendable, Equatable {
        /// The absolute path inside the container.
        public var destination: String
        /// The filesystem type (`proc`, `tmpfs`, `bind`, …).
        public var type: String?
        /// The device or, for a bind mount, the host path.
        public var source: String?
        /// mount(8)-style options: flags (`ro`, `nosuid`, …), propagation, `bind`/`rbind`, or filesystem data (`mode=755`).
        public var options: [String]?

        /// Creates the value with the given fields.
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
        /// The namespaces to create or join; a kind not listed is shared with the caller.
        public var namespaces: [Namespace]?
        /// uid mappings of a new user namespace.
        public var uidMappings: [IDMapping]?
        /// gid mappings of a new user namespace (the uid mappings when absent).
        public var gidMappings: [IDMapping]?
        /// Resource limits, for the caller to apply through cgroups.
        public var resources: Resources?
        /// Paths hidden from the container.
        public var maskedPaths: [String]?
        /// Paths made read-only.
        public var readonlyPaths: [String]?
        /// The seccomp profile in the OCI (and Docker) format; compiled by ``ContainerSpec/processSecurity(cache:)``.
        public var seccomp: SeccompProfile?
        /// The cgroup path the runtime should use (informational).
        public var cgroupsPath: String?

        /// Creates the value with the given fields.
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
        /// The kind of namespace.
        public var type: NamespaceKind
        /// A namespace file to join (`/proc/PID/ns/net`, a bind mount); `nil` creates a new one.
        public var path: String?

        /// Creates the value with the given fields.
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
        /// The first id inside the namespace.
        public var containerID: UInt32
        /// The first id outside it.
        public var hostID: UInt32
        /// How many consecutive ids are mapped.
        public var size: UInt32

        /// Creates the value with the given fields.
        public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
            self.containerID = containerID
            self.hostID = hostID
            self.size = size
        }
    }

    /// Resource limits (applied through BerthCgroups by the caller).
    public struct Resources: Codable, Sendable, Equatable {
        /// Memory limits.
        public var memory: Memory?
        /// CPU limits.
        public var cpu: CPU?
        /// The process count limit.
        public var pids: Pids?
        /// Device cgroup rules, kept verbatim.
        public var devices: [OpaqueJSON]?

        /// Creates the value with the given fields.
        public init(memory: Memory? = nil, cpu: CPU? = nil, pids: Pids? = nil) {
            self.memory = memory
            self.cpu = cpu
            self.pids = pids
        }

        /// Memory limits in bytes.
        public struct Memory: Codable, Sendable, Equatable {
            /// The hard limit in bytes.
            public var limit: Int64?
            /// The soft limit in bytes.
            public var reservation: Int64?
            /// Memory + swap in bytes.
            public var swap: Int64?
            /// Creates the value with the given fields.
            public init(limit: Int64? = nil, reservation: Int64? = nil, swap: Int64? = nil) {
                self.limit = limit
                self.reservation = reservation
                self.swap = swap
            }
        }

        /// CPU limits.
        public struct CPU: Codable, Sendable, Equatable {
            /// The relative weight.
            public var shares: UInt64?
            /// CPU time per period in microseconds.
            public var quota: Int64?
            /// The period in microseconds.
            public var period: UInt64?
            /// The cpuset cpus (`0-1`).
            public var cpus: String?
            /// The cpuset memory nodes.
            public var mems: String?
            /// Creates the value with the given fields.
            public init(shares: UInt64? = nil, quota: Int64? = nil, period: UInt64? = nil, cpus: String? = nil, mems: String? = nil) {
                self.shares = shares
                self.quota = quota
                self.period = period
                self.cpus = cpus
                self.mems = mems
            }
        }

        /// The process count limit.
        public struct Pids: Codable, Sendable, Equatable {
            /// The maximum number of tasks.
            public var limit: Int64
            /// Creates the value with the given fields.
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
