import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// One Linux capability, identified by its number (bit position in the capability masks).
public struct Capability: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The capability number, e.g. 21 for CAP_SYS_ADMIN.
    public let number: Int

    /// A capability by number. Numbers above ``Capability/highestKnown`` are allowed (a newer
    /// kernel may know them); they are named `CAP_<number>`.
    /// - Parameter number: The capability number (0 ... 63).
    public init(_ number: Int) { self.number = number }

    /// The kernel's name, e.g. `CAP_SYS_ADMIN`.
    public var name: String {
        number >= 0 && number < Capability.names.count ? Capability.names[number] : "CAP_\(number)"
    }

    /// The kernel's name.
    public var description: String { name }

    public static func < (a: Capability, b: Capability) -> Bool { a.number < b.number }

    /// Parses a name as Docker accepts it: with or without the `CAP_` prefix, any case
    /// (`net_admin`, `CAP_NET_ADMIN`). `ALL` is not a capability; see ``CapabilitySet``.
    /// - Parameter name: The name to parse.
    /// - Throws: `BerthError(.invalidArgument)` naming the unknown capability.
    public init(parsing name: String) throws {
        let upper = name.uppercased()
        let full = upper.hasPrefix("CAP_") ? upper : "CAP_" + upper
        guard let index = Capability.names.firstIndex(of: full) else {
            throw BerthError(.invalidArgument, "unknown capability \"\(name)\" (known: \(Capability.names.map { String($0.dropFirst(4)) }.joined(separator: ", ")))")
        }
        self.number = index
    }

    /// The names of capabilities 0 through 40, in number order.
    static let names: [String] = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
        "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
        "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ]

    /// Every capability this library knows by name (CAP_CHOWN ... CAP_CHECKPOINT_RESTORE).
    public static let allKnown: [Capability] = (0..<names.count).map(Capability.init)
    /// The highest capability number this library knows by name (40, CAP_CHECKPOINT_RESTORE).
    public static let highestKnown = names.count - 1

    /// The highest capability number the running kernel supports, from
    /// /proc/sys/kernel/cap_last_cap (falls back to ``highestKnown`` if that file is unreadable).
    public static let lastSupportedByKernel: Int = {
        guard let text = try? FileIO.read("/proc/sys/kernel/cap_last_cap"),
              let n = Int(text.trimmingSpaces()), n >= 0, n < 64 else { return highestKnown }
        return n
    }()

    /// CAP_CHOWN (0).
    public static let chown = Capability(0)
    /// CAP_DAC_OVERRIDE (1).
    public static let dacOverride = Capability(1)
    /// CAP_DAC_READ_SEARCH (2).
    public static let dacReadSearch = Capability(2)
    /// CAP_FOWNER (3).
    public static let fowner = Capability(3)
    /// CAP_FSETID (4).
    public static let fsetid = Capability(4)
    /// CAP_KILL (5).
    public static let kill = Capability(5)
    /// CAP_SETGID (6).
    public static let setgid = Capability(6)
    /// CAP_SETUID (7).
    public static let setuid = Capability(7)
    /// CAP_SETPCAP (8).
    public static let setpcap = Capability(8)
    /// CAP_LINUX_IMMUTABLE (9).
    public static let linuxImmutable = Capability(9)
    /// CAP_NET_BIND_SERVICE (10).
    public static let netBindService = Capability(10)
    /// CAP_NET_BROADCAST (11).
    public static let netBroadcast = Capability(11)
    /// CAP_NET_ADMIN (12).
    public static let netAdmin = Capability(12)
    /// CAP_NET_RAW (13).
    public static let netRaw = Capability(13)
    /// CAP_IPC_LOCK (14).
    public static let ipcLock = Capability(14)
    /// CAP_IPC_OWNER (15).
    public static let ipcOwner = Capability(15)
    /// CAP_SYS_MODULE (16).
    public static let sysModule = Capability(16)
    /// CAP_SYS_RAWIO (17).
    public static let sysRawio = Capability(17)
    /// CAP_SYS_CHROOT (18).
    public static let sysChroot = Capability(18)
    /// CAP_SYS_PTRACE (19).
    public static let sysPtrace = Capability(19)
    /// CAP_SYS_PACCT (20).
    public static let sysPacct = Capability(20)
    /// CAP_SYS_ADMIN (21).
    public static let sysAdmin = Capability(21)
    /// CAP_SYS_BOOT (22).
    public static let sysBoot = Capability(22)
    /// CAP_SYS_NICE (23).
    public static let sysNice = Capability(23)
    /// CAP_SYS_RESOURCE (24).
    public static let sysResource = Capability(24)
    /// CAP_SYS_TIME (25).
    public static let sysTime = Capability(25)
    /// CAP_SYS_TTY_CONFIG (26).
    public static let sysTtyConfig = Capability(26)
    /// CAP_MKNOD (27).
    public static let mknod = Capability(27)
    /// CAP_LEASE (28).
    public static let lease = Capability(28)
    /// CAP_AUDIT_WRITE (29).
    public static let auditWrite = Capability(29)
    /// CAP_AUDIT_CONTROL (30).
    public static let auditControl = Capability(30)
    /// CAP_SETFCAP (31).
    public static let setfcap = Capability(31)
    /// CAP_MAC_OVERRIDE (32).
    public static let macOverride = Capability(32)
    /// CAP_MAC_ADMIN (33).
    public static let macAdmin = Capability(33)
    /// CAP_SYSLOG (34).
    public static let syslog = Capability(34)
    /// CAP_WAKE_ALARM (35).
    public static let wakeAlarm = Capability(35)
    /// CAP_BLOCK_SUSPEND (36).
    public static let blockSuspend = Capability(36)
    /// CAP_AUDIT_READ (37).
    public static let auditRead = Capability(37)
    /// CAP_PERFMON (38).
    public static let perfmon = Capability(38)
    /// CAP_BPF (39).
    public static let bpf = Capability(39)
    /// CAP_CHECKPOINT_RESTORE (40).
    public static let checkpointRestore = Capability(40)
}

/// A set of capabilities stored as a 64-bit mask (bit N = capability N), with Docker's rules for
/// `--cap-add`, `--cap-drop` and `--privileged`.
public struct CapabilitySet: Hashable, Sendable, CustomStringConvertible {
    /// Bit N set means capability N is in the set.
    public var mask: UInt64

    /// - Parameter mask: Bit N set means capability N is in the set.
    public init(mask: UInt64 = 0) { self.mask = mask }

    /// A set holding the given capabilities.
    /// - Parameter capabilities: The members.
    public init<S: Sequence>(_ capabilities: S) where S.Element == Capability {
        mask = 0
        for c in capabilities { insert(c) }
    }

    /// Whether `capability` is in the set.
    public func contains(_ capability: Capability) -> Bool {
        capability.number >= 0 && capability.number < 64 && mask & (1 << UInt64(capability.number)) != 0
    }

    /// Adds `capability` (numbers outside 0...63 are ignored).
    public mutating func insert(_ capability: Capability) {
        guard capability.number >= 0 && capability.number < 64 else { return }
        mask |= 1 << UInt64(capability.number)
    }

    /// Removes `capability`.
    public mutating func remove(_ capability: Capability) {
        guard capability.number >= 0 && capability.number < 64 else { return }
        mask &= ~(1 << UInt64(capability.number))
    }

    /// The members in number order.
    public var members: [Capability] { (0..<64).filter { mask & (1 << UInt64($0)) != 0 }.map(Capability.init) }

    /// Whether the set is empty.
    public var isEmpty: Bool { mask == 0 }

    /// The members' names, comma-separated.
    public var description: String { members.map(\.name).joined(separator: ",") }

    /// Every capability up to and including `last` (default: what the running kernel supports).
    /// - Parameter last: The highest capability number to include.
    public static func all(upTo last: Int = Capability.lastSupportedByKernel) -> CapabilitySet {
        let n = max(0, min(last, 63))
        return CapabilitySet(mask: n == 63 ? UInt64.max : (UInt64(1) << UInt64(n + 1)) - 1)
    }

    /// The 14 capabilities Docker gives a container by default: CHOWN, DAC_OVERRIDE, FSETID,
    /// FOWNER, MKNOD, NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT,
    /// KILL, AUDIT_WRITE.
    public static let dockerDefault = CapabilitySet([
        .chown, .dacOverride, .fsetid, .fowner, .mknod, .netRaw, .setgid, .setuid, .setfcap,
        .setpcap, .netBindService, .sysChroot, .kill, .auditWrite,
    ])

    /// Applies Docker's `--cap-add` / `--cap-drop` / `--privileged` rules to `base`:
    /// `privileged` gives every capability the kernel supports (add and drop are ignored);
    /// `ALL` in `add` gives every capability except those in `drop`; `ALL` in `drop` keeps only
    /// what `add` lists; otherwise `drop` is removed from `base` and then `add` is added.
    /// Names are case-insensitive, with or without `CAP_`. The result is limited to `available`:
    /// capabilities the kernel does not support, or that this process does not hold itself (a
    /// runtime cannot hand out more than it has, e.g. when it runs nested), are left out.
    /// - Parameters:
    ///   - base: The starting set (normally ``dockerDefault``).
    ///   - add: `--cap-add` values.
    ///   - drop: `--cap-drop` values.
    ///   - privileged: `--privileged`.
    ///   - available: What may be handed out (normally ``availableToContainers``).
    /// - Throws: `BerthError(.invalidArgument)` naming an unknown capability.
    public static func resolving(base: CapabilitySet = .dockerDefault, add: [String] = [], drop: [String] = [],
                                 privileged: Bool = false,
                                 available: CapabilitySet = .availableToContainers) throws -> CapabilitySet {
        func parse(_ names: [String], flag: String) throws -> (all: Bool, set: CapabilitySet) {
            var all = false
            var set = CapabilitySet()
            for name in names {
                let trimmed = name.trimmingSpaces()
                if trimmed.uppercased() == "ALL" || trimmed.uppercased() == "CAP_ALL" { all = true; continue }
                do { set.insert(try Capability(parsing: trimmed)) } catch let e as BerthError {
                    throw BerthError(.invalidArgument, "\(flag): \(e.message)")
                }
            }
            return (all, set)
        }
        // Validate both lists even when privileged, so a typo is reported rather than ignored.
        let adds = try parse(add, flag: "--cap-add")
        let drops = try parse(drop, flag: "--cap-drop")
        let everything = available
        var result: CapabilitySet
        if privileged || adds.all {
            result = privileged ? everything : CapabilitySet(mask: everything.mask & ~drops.set.mask)
        } else if drops.all {
            result = adds.set
        } else {
            result = CapabilitySet(mask: (base.mask & ~drops.set.mask) | adds.set.mask)
        }
        result.mask &= everything.mask
        return result
    }

    /// The capabilities this process can hand out: those the kernel supports (cap_last_cap) that
    /// are also in this process's bounding set (CapBnd in /proc/self/status).
    public static let availableToContainers: CapabilitySet = {
        var set = CapabilitySet.all()
        if let status = try? FileIO.read("/proc/self/status") {
            for line in status.split(separator: "\n") where line.hasPrefix("CapBnd:") {
                if let mask = UInt64(line.dropFirst(7).trimmingCharacters(), radix: 16) { set.mask &= mask }
            }
        }
        return set
    }()

    /// The masks a container's root process gets from this set: bounding, effective and permitted
    /// all equal to the set; inheritable and ambient empty (Docker's behaviour since the
    /// CVE-2022-24769 fix).
    public var processMasks: CapabilityMasks { CapabilityMasks(all: mask) }
}

extension Substring {
    fileprivate func trimmingCharacters() -> String { String(self).trimmingSpaces() }
}
