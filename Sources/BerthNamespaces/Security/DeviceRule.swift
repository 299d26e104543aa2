import BerthSystem

/// One rule of the cgroup v1 `devices` controller: `a`, or `c MAJOR:MINOR ACCESS` /
/// `b MAJOR:MINOR ACCESS` where a missing number (`*`) matches all.
public struct DeviceRule: Hashable, Sendable, CustomStringConvertible {
    /// The device kind a rule matches.
    public enum Kind: Character, Sendable {
        /// Every device (only meaningful as `a`, which ignores numbers and access).
        case all = "a"
        /// Character devices.
        case char = "c"
        /// Block devices.
        case block = "b"
    }

    /// Whether the rule goes to `devices.allow` (true) or `devices.deny` (false).
    public var allow: Bool
    /// The device kind.
    public var kind: Kind
    /// The major number, `nil` for any.
    public var major: Int?
    /// The minor number, `nil` for any.
    public var minor: Int?
    /// Any of `r` (read), `w` (write), `m` (mknod).
    public var access: String

    /// - Parameters:
    ///   - allow: Allow (true) or deny (false).
    ///   - kind: Character, block or all.
    ///   - major: Major number, `nil` for any.
    ///   - minor: Minor number, `nil` for any.
    ///   - access: `r`, `w`, `m` in any combination.
    public init(allow: Bool, _ kind: Kind, _ major: Int?, _ minor: Int?, _ access: String = "rwm") {
        self.allow = allow
        self.kind = kind
        self.major = major
        self.minor = minor
        self.access = access
    }

    /// The line written to `devices.allow` / `devices.deny` (`c 1:3 rwm`, `a`).
    public var description: String {
        if kind == .all { return "a" }
        return "\(kind.rawValue) \(major.map(String.init) ?? "*"):\(minor.map(String.init) ?? "*") \(access)"
    }

    /// Docker's default device policy: deny everything, then allow creating any device node
    /// (using it is still denied), and read/write/mknod on the harmless ones: null, zero, full,
    /// random, urandom, tty, console, ptmx, the pts, tun and fuse.
    public static let dockerDefault: [DeviceRule] = [
        DeviceRule(allow: false, .all, nil, nil),
        DeviceRule(allow: true, .char, nil, nil, "m"),
        DeviceRule(allow: true, .block, nil, nil, "m"),
        DeviceRule(allow: true, .char, 1, 3),     // /dev/null
        DeviceRule(allow: true, .char, 1, 5),     // /dev/zero
        DeviceRule(allow: true, .char, 1, 7),     // /dev/full
        DeviceRule(allow: true, .char, 1, 8),     // /dev/random
        DeviceRule(allow: true, .char, 1, 9),     // /dev/urandom
        DeviceRule(allow: true, .char, 5, 0),     // /dev/tty
        DeviceRule(allow: true, .char, 5, 1),     // /dev/console
        DeviceRule(allow: true, .char, 5, 2),     // /dev/ptmx
        DeviceRule(allow: true, .char, 136, nil), // /dev/pts/*
        DeviceRule(allow: true, .char, 10, 200),  // /dev/net/tun
        DeviceRule(allow: true, .char, 10, 229),  // /dev/fuse
    ]

    /// `--privileged`: every device.
    public static let allowAll: [DeviceRule] = [DeviceRule(allow: true, .all, nil, nil)]

    /// Writes `rules` to a cgroup v1 devices directory, in order, one `write(2)` per rule
    /// (`devices.deny` for deny rules, `devices.allow` for allow rules).
    /// - Parameters:
    ///   - rules: The rules, normally starting with a deny of `a`.
    ///   - directory: The container's cgroup in the devices hierarchy
    ///     (`/sys/fs/cgroup/devices/berth/<id>`).
    /// - Throws: `BerthError` naming the rule and the file if the kernel refuses it.
    public static func apply(_ rules: [DeviceRule], toV1Directory directory: String) throws {
        guard FileIO.exists(directory + "/devices.allow") else {
            throw BerthError(.notFound, "\(directory) is not a cgroup v1 devices directory (no devices.allow)")
        }
        for rule in rules {
            let file = directory + (rule.allow ? "/devices.allow" : "/devices.deny")
            do { try FileIO.writeControl(file, rule.description) } catch let e as BerthError {
                throw BerthError(e.code, "device rule \"\(rule)\" into \(file): \(e.message)", errno: e.errno)
            }
        }
    }
}
