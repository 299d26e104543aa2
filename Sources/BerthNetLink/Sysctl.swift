import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// The networking sysctls a bridge network needs, read and written through /proc/sys/net.
///
/// /proc/sys/net resolves to the network namespace of the *calling thread* when the file is
/// opened, so call these inside ``NetworkNamespace/run(_:)`` to address that namespace.
public enum NetworkSysctl {
    /// `net.ipv4.ip_forward`: whether the namespace routes IPv4 between interfaces.
    public static func ipForwarding() throws -> Bool { try read("ipv4/ip_forward") == "1" }

    /// Sets `net.ipv4.ip_forward` (writes only when the value differs).
    public static func setIPForwarding(_ on: Bool) throws {
        if try ipForwarding() != on { try write("ipv4/ip_forward", on ? "1" : "0") }
    }

    /// `net.ipv4.conf.<interface>.route_localnet`: whether 127.0.0.0/8 may be routed from/to the interface.
    public static func routeLocalnet(_ interface: String) throws -> Bool {
        try read("ipv4/conf/\(try checked(interface))/route_localnet") == "1"
    }

    /// Sets `net.ipv4.conf.<interface>.route_localnet`.
    public static func setRouteLocalnet(_ interface: String, _ on: Bool) throws {
        try write("ipv4/conf/\(try checked(interface))/route_localnet", on ? "1" : "0")
    }

    /// `net.ipv6.conf.<interface>.disable_ipv6`.
    public static func setIPv6Disabled(_ interface: String, _ disabled: Bool) throws {
        try write("ipv6/conf/\(try checked(interface))/disable_ipv6", disabled ? "1" : "0")
    }

    /// Reads any key below /proc/sys/net (`ipv4/ip_forward`), trimmed.
    public static func read(_ key: String) throws -> String {
        let path = "/proc/sys/net/" + key
        do { return try FileIO.read(path).trimmingSpaces() } catch let e as BerthError where e.errno == ENOENT {
            throw BerthError(.notFound, "no sysctl net/\(key) in this network namespace", errno: ENOENT)
        }
    }

    /// Writes any key below /proc/sys/net with a single write(2).
    public static func write(_ key: String, _ value: String) throws {
        let path = "/proc/sys/net/" + key
        do { try FileIO.writeControl(path, value) } catch let e as BerthError where e.errno == ENOENT {
            throw BerthError(.notFound, "no sysctl net/\(key) in this network namespace", errno: ENOENT)
        }
    }

    private static func checked(_ interface: String) throws -> String {
        guard !interface.isEmpty, interface.count <= 15, !interface.contains("/"), interface != ".", interface != ".." else {
            throw BerthError(.invalidArgument, "invalid interface name \"\(interface)\"")
        }
        return interface
    }
}
