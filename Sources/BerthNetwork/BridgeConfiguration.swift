import BerthIPAM
import BerthPortMapper
import BerthSystem

/// The settings of a bridge network, mirroring dockerd's bridge options.
public struct BridgeConfiguration: Sendable, Hashable, Codable {
    /// The bridge interface (`berth0`; an existing bridge such as `cbr0` is adopted).
    public var bridge: String
    /// dockerd's `--bip`: the bridge's own address; containers get the rest of its subnet.
    public var bip: IPv4CIDR?
    /// An explicit subnet (gateway = its first host address); ignored when `bip` is set.
    public var subnet: IPv4CIDR?
    /// Pools to choose a subnet from when neither `bip` nor `subnet` is given.
    public var pools: [AddressPool]
    /// Inter-container communication (`--icc`); false drops traffic between containers of the bridge.
    public var icc: Bool
    /// Masquerade traffic from the subnet leaving the host (`--ip-masq`).
    public var masquerade: Bool
    /// Turn on `net.ipv4.ip_forward` (`--ip-forward`).
    public var ipForward: Bool
    /// MTU of the bridge and the veths; kernel default when `nil`.
    public var mtu: Int?
    /// The firewall backend; `nil` auto-detects, `.none` leaves the firewall alone (`--iptables=false`).
    public var firewall: FirewallKind?
    /// Nameservers the chosen subnet must not contain; `nil` reads /etc/resolv.conf.
    public var nameservers: [IPv4Address]?
    /// Hairpin NAT (dockerd's `--userland-proxy=false`): published ports are DNATed for traffic from
    /// the bridge too, and every container port gets hairpin mode so a container can reach itself
    /// through a published port.
    public var hairpinNAT: Bool

    /// - Parameters:
    ///   - bridge: The bridge name.
    ///   - bip: The bridge address (`192.168.11.1/24`).
    ///   - subnet: An explicit subnet.
    ///   - pools: Pools for automatic choice.
    ///   - icc: Inter-container communication.
    ///   - masquerade: Masquerade outgoing traffic.
    ///   - ipForward: Enable IPv4 forwarding.
    ///   - mtu: MTU.
    ///   - firewall: Firewall backend (`nil` = auto).
    ///   - nameservers: Nameservers to avoid (`nil` = /etc/resolv.conf).
    ///   - hairpinNAT: Hairpin NAT and hairpin mode on the container ports.
    public init(bridge: String = "berth0", bip: IPv4CIDR? = nil, subnet: IPv4CIDR? = nil,
                pools: [AddressPool] = AddressPool.dockerDefaults, icc: Bool = true, masquerade: Bool = true,
                ipForward: Bool = true, mtu: Int? = nil, firewall: FirewallKind? = nil, nameservers: [IPv4Address]? = nil,
                hairpinNAT: Bool = false) {
        self.bridge = bridge
        self.bip = bip
        self.subnet = subnet
        self.pools = pools
        self.icc = icc
        self.masquerade = masquerade
        self.ipForward = ipForward
        self.mtu = mtu
        self.firewall = firewall
        self.nameservers = nameservers
        self.hairpinNAT = hairpinNAT
    }
}
