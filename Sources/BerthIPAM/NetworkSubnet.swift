import BerthSystem

/// The addressing of one network: its subnet and the gateway address the bridge carries.
public struct NetworkSubnet: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The subnet (host bits zero).
    public let subnet: IPv4CIDR
    /// The bridge's address; never handed to a container.
    public let gateway: IPv4Address

    /// A subnet whose gateway is its first host address (`172.17.0.1` for 172.17.0.0/16), or `gateway`.
    /// - Throws: `.invalidArgument` for host bits in `subnet`, a prefix longer than /30, or a gateway
    ///   outside the subnet or on its network or broadcast address.
    public init(subnet: IPv4CIDR, gateway: IPv4Address? = nil) throws {
        guard subnet.isNetworkAddress else {
            throw BerthError(.invalidArgument, "invalid subnet \(subnet): host bits are set (did you mean \(subnet.network)?)")
        }
        guard subnet.prefixLength <= 30 else {
            throw BerthError(.invalidArgument, "invalid subnet \(subnet): too small for a gateway and a container (at most /30)")
        }
        let gw = gateway ?? IPv4Address(subnet.networkAddress.value + 1)
        guard subnet.contains(gw) else {
            throw BerthError(.invalidArgument, "gateway \(gw) is outside subnet \(subnet)")
        }
        guard gw != subnet.networkAddress, gw != subnet.broadcastAddress else {
            throw BerthError(.invalidArgument, "gateway \(gw) is the \(gw == subnet.networkAddress ? "network" : "broadcast") address of \(subnet)")
        }
        self.subnet = subnet
        self.gateway = gw
    }

    /// Docker's `--bip`: the bridge gets exactly this address, containers the rest of its subnet
    /// (`192.168.11.1/24` → subnet 192.168.11.0/24, gateway 192.168.11.1).
    public init(bip: IPv4CIDR) throws {
        guard bip.prefixLength <= 30 else {
            throw BerthError(.invalidArgument, "invalid bip \(bip): the subnet must be /30 or larger")
        }
        guard !bip.isNetworkAddress, bip.address != bip.broadcastAddress else {
            throw BerthError(.invalidArgument, "invalid bip \(bip): \(bip.address) is the \(bip.isNetworkAddress ? "network" : "broadcast") address of \(bip.network); give the bridge's own address, such as \(IPv4Address(bip.networkAddress.value + 1))/\(bip.prefixLength)")
        }
        try self.init(subnet: bip.network, gateway: bip.address)
    }

    /// Parses `--bip` text (`192.168.11.1/24`).
    public init(bip text: String) throws {
        try self.init(bip: try IPv4CIDR(parsing: text))
    }

    /// The gateway with the subnet's prefix length (`172.17.0.1/16`), as put on the bridge.
    public var gatewayCIDR: IPv4CIDR { try! IPv4CIDR(address: gateway, prefixLength: subnet.prefixLength) }

    /// Rejects the subnet when it overlaps a host route (other than those through `ownInterface`) or
    /// contains a nameserver.
    /// - Throws: `.alreadyExists` naming the overlapping route or nameserver.
    public func checkNoOverlap(hostRoutes: [IPv4CIDR], nameservers: [IPv4Address] = [], taken: [IPv4CIDR] = []) throws {
        if let r = hostRoutes.first(where: { $0.prefixLength > 0 && $0.overlaps(subnet) }) {
            throw BerthError(.alreadyExists, "subnet \(subnet) overlaps the host route \(r)")
        }
        if let n = nameservers.first(where: { subnet.contains($0) }) {
            throw BerthError(.alreadyExists, "subnet \(subnet) contains the nameserver \(n)")
        }
        if let t = taken.first(where: { $0.overlaps(subnet) }) {
            throw BerthError(.alreadyExists, "subnet \(subnet) overlaps the subnet \(t) of another network")
        }
    }

    public var description: String { "\(subnet) gateway \(gateway)" }
}
