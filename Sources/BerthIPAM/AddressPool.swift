import BerthSystem

/// A range of address space that networks are carved from: `base` split into subnets of
/// `subnetPrefixLength` (Docker's default pools are 172.17–172.31 as /16s, then 192.168.0.0/16 as /20s).
public struct AddressPool: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The whole range.
    public var base: IPv4CIDR
    /// The prefix length of each subnet handed out.
    public var subnetPrefixLength: Int

    /// - Parameters:
    ///   - base: The range; its host bits must be zero.
    ///   - subnetPrefixLength: At least the base's prefix length and at most 30.
    public init(base: IPv4CIDR, subnetPrefixLength: Int) throws {
        guard base.isNetworkAddress else {
            throw BerthError(.invalidArgument, "invalid pool \(base): host bits are set (did you mean \(base.network)?)")
        }
        guard subnetPrefixLength >= base.prefixLength, subnetPrefixLength <= 30 else {
            throw BerthError(.invalidArgument, "invalid pool \(base) split into /\(subnetPrefixLength): the size must be from /\(base.prefixLength) to /30")
        }
        self.base = base
        self.subnetPrefixLength = subnetPrefixLength
    }

    /// The subnets of this pool, in order.
    public var subnets: [IPv4CIDR] {
        let step = UInt64(1) << UInt64(32 - subnetPrefixLength)
        let n = base.size / step
        return (0..<n).map { i in
            IPv4CIDR("\(IPv4Address(base.networkAddress.value &+ UInt32(i * step)))/\(subnetPrefixLength)")!
        }
    }

    public var description: String { "\(base) in /\(subnetPrefixLength)s" }

    /// Docker's default local pools: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 in /20s.
    public static let dockerDefaults: [AddressPool] =
        (17...31).map { try! AddressPool(base: IPv4CIDR("172.\($0).0.0/16")!, subnetPrefixLength: 16) }
        + [try! AddressPool(base: IPv4CIDR("192.168.0.0/16")!, subnetPrefixLength: 20)]

    /// Chooses the first subnet of `pools` that overlaps none of `hostRoutes`, contains none of
    /// `nameservers` and overlaps none of `taken` (subnets of other networks).
    ///
    /// - Parameters:
    ///   - pools: Candidate pools in order of preference.
    ///   - hostRoutes: Destinations of the host's on-link routes (read them with BerthNetLink's
    ///     `NetlinkSession.routes()`); a default route (`/0`) is ignored.
    ///   - nameservers: The host's resolv.conf nameservers (see ``ResolvConf/nameservers(path:)``).
    ///   - taken: Subnets already used by other networks.
    /// - Throws: `.exhausted` when every candidate overlaps something.
    public static func chooseSubnet(from pools: [AddressPool] = dockerDefaults, hostRoutes: [IPv4CIDR],
                                    nameservers: [IPv4Address] = [], taken: [IPv4CIDR] = []) throws -> IPv4CIDR {
        let routes = hostRoutes.filter { $0.prefixLength > 0 }
        for pool in pools {
            for subnet in pool.subnets {
                if routes.contains(where: { $0.overlaps(subnet) }) { continue }
                if nameservers.contains(where: { subnet.contains($0) }) { continue }
                if taken.contains(where: { $0.overlaps(subnet) }) { continue }
                return subnet
            }
        }
        throw BerthError(.exhausted,
            "no free subnet in the pools \(pools.map(\.description).joined(separator: ", ")): all overlap host routes, nameservers or other networks")
    }
}

/// Reading nameservers from resolv.conf, which subnet choice must avoid.
public enum ResolvConf {
    /// The IPv4 `nameserver` entries of a resolv.conf file (none when it is missing).
    public static func nameservers(path: String = "/etc/resolv.conf") -> [IPv4Address] {
        guard let text = try? FileIO.read(path) else { return [] }
        return nameservers(parsing: text)
    }

    /// The IPv4 `nameserver` entries of resolv.conf text.
    public static func nameservers(parsing text: String) -> [IPv4Address] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count >= 2, f[0] == "nameserver" else { return nil }
            return IPv4Address(String(f[1]))
        }
    }
}
