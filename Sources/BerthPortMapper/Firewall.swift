import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// Which packet-filter tool a ``Firewall`` drives.
public enum FirewallKind: String, Sendable, Codable, CaseIterable {
    /// `iptables-restore --noflush` batches in the nat and filter tables (chains `BERTH…`).
    case iptables
    /// `nft -f -` batches in Berth's own table `ip berth`.
    case nftables
    /// Leaves the firewall alone (no NAT, no filtering; published ports need the userland proxy).
    case none
}

/// The rules a bridge network needs, independent of its containers.
///
/// With `masquerade`, traffic from `subnet` leaving through any interface other than `bridge` is
/// masqueraded. Forwarded traffic to the bridge is accepted when it belongs to an established
/// connection, traffic from the bridge to elsewhere is accepted, and traffic between two ports of
/// the bridge is accepted (`icc`) or dropped. Other bridges managed by Berth cannot reach this one
/// (Docker's isolation stages).
public struct BridgeRules: Sendable, Hashable, Codable {
    /// The bridge interface name (`berth0`).
    public var bridge: String
    /// The bridge's subnet (`172.18.0.0/16`); host bits are ignored.
    public var subnet: IPv4CIDR
    /// Inter-container communication on this bridge.
    public var icc: Bool
    /// Masquerade traffic from the subnet that leaves through another interface.
    public var masquerade: Bool
    /// When true, containers reaching a published port through a host address are DNATed too
    /// (the bridge ports need hairpin mode for a container to reach its own published port).
    /// When false (Docker's default with the userland proxy), traffic arriving from the bridge is
    /// left to the proxy listeners.
    public var hairpinNAT: Bool

    /// - Parameters:
    ///   - bridge: The bridge interface name.
    ///   - subnet: The bridge's subnet.
    ///   - icc: Whether containers on the bridge may talk to each other.
    ///   - masquerade: Whether to masquerade the subnet's outgoing traffic.
    ///   - hairpinNAT: DNAT published ports for traffic coming from the bridge itself.
    public init(bridge: String, subnet: IPv4CIDR, icc: Bool, masquerade: Bool, hairpinNAT: Bool = false) {
        self.bridge = bridge
        self.subnet = subnet.network
        self.icc = icc
        self.masquerade = masquerade
        self.hairpinNAT = hairpinNAT
    }
}

/// One published port, resolved: a concrete host address and port forwarded to a container.
public struct PortMapping: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The transport protocol.
    public var proto: PortProtocol
    /// The host address the port is published on; `0.0.0.0` means every address.
    public var hostIP: IPv4Address
    /// The host port.
    public var hostPort: UInt16
    /// The container's address on `bridge`.
    public var containerIP: IPv4Address
    /// The port inside the container.
    public var containerPort: UInt16
    /// The bridge the container is attached to.
    public var bridge: String
    /// Also DNAT connections to 127.0.0.0/8 (Docker's `userland-proxy=false`); needs
    /// `route_localnet` on the bridge (see ``LoopbackDNAT``).
    public var loopbackDNAT: Bool

    /// - Parameters:
    ///   - proto: TCP, UDP or SCTP.
    ///   - hostIP: The host address (`0.0.0.0` for all).
    ///   - hostPort: The host port (1–65535).
    ///   - containerIP: The container's address.
    ///   - containerPort: The container port (1–65535).
    ///   - bridge: The bridge the container hangs off.
    ///   - loopbackDNAT: DNAT 127.0.0.0/8 too (no userland proxy).
    public init(proto: PortProtocol, hostIP: IPv4Address = .any, hostPort: UInt16, containerIP: IPv4Address,
                containerPort: UInt16, bridge: String, loopbackDNAT: Bool = false) {
        self.proto = proto
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.containerIP = containerIP
        self.containerPort = containerPort
        self.bridge = bridge
        self.loopbackDNAT = loopbackDNAT
    }

    /// `0.0.0.0:18080->172.17.0.5:8080/tcp`, as `docker port` shows it (plus the container address).
    public var description: String { "\(hostIP):\(hostPort)->\(containerIP):\(containerPort)/\(proto)" }
}

/// A packet-filter backend: installs and removes the rules of bridges and published ports.
///
/// Every operation is one batch (one `iptables-restore`, one `nft -f -`, or one nf_tables
/// transaction over netlink), applied in the network namespace of the *calling thread*: run it
/// inside `NetworkNamespace.run { }` to target a sandbox or a host namespace other than the
/// process's. Operations are idempotent (adding rules that are present, or removing rules that
/// are absent, changes nothing), and removing the last rule also removes the chains or table the
/// backend created, so the rule set returns to what it was. Operations on one namespace are
/// serialised across processes with an `flock` on the namespace itself.
public protocol Firewall: Sendable {
    /// The backend.
    var kind: FirewallKind { get }
    /// Installs the MASQUERADE, FORWARD and isolation rules of a bridge network.
    /// - Parameter rules: The bridge and its settings.
    func addBridgeRules(_ rules: BridgeRules) throws
    /// Removes what ``addBridgeRules(_:)`` installed for the same `rules`.
    /// - Parameter rules: The same value that was added.
    func removeBridgeRules(_ rules: BridgeRules) throws
    /// Installs DNAT, hairpin MASQUERADE and FORWARD accept rules for a set of published ports,
    /// in one batch.
    /// - Parameter mappings: The ports to publish (typically one container's).
    func addPortMappings(_ mappings: [PortMapping]) throws
    /// Removes the rules of ``addPortMappings(_:)`` for the same mappings, in one batch, and flushes
    /// the conntrack entries of their UDP host ports.
    /// - Parameter mappings: The same values that were added.
    func removePortMappings(_ mappings: [PortMapping]) throws
}

/// Returns a firewall backend.
///
/// - Parameter kind: The backend, or `nil` to pick one: iptables when `iptables-restore` exists,
///   else nftables when `nft` exists, else an error.
/// - Returns: The backend; `.none` returns one that leaves the firewall alone.
/// - Throws: ``BerthError`` `.unsupported` when the requested tool is not installed.
public func makeFirewall(_ kind: FirewallKind?) throws -> any Firewall {
    switch kind {
    case .iptables?:
        guard Command.exists("iptables-restore") else {
            throw BerthError(.unsupported, "firewall backend iptables: iptables-restore is not installed")
        }
        return IptablesFirewall()
    case .nftables?:
        guard Command.exists("nft") else { throw BerthError(.unsupported, "firewall backend nftables: nft is not installed") }
        return NftablesFirewall()
    case FirewallKind.none?:
        return NoFirewall()
    case nil:
        if Command.exists("iptables-restore") && Command.exists("iptables-save") { return IptablesFirewall() }
        if Command.exists("nft") { return NftablesFirewall() }
        throw BerthError(.unsupported, "no firewall backend found: install iptables or nftables (or choose FirewallKind.none)")
    }
}

/// The backend that leaves the firewall alone.
public struct NoFirewall: Firewall {
    public init() {}
    public var kind: FirewallKind { .none }
    public func addBridgeRules(_ rules: BridgeRules) throws {}
    public func removeBridgeRules(_ rules: BridgeRules) throws {}
    public func addPortMappings(_ mappings: [PortMapping]) throws {}
    public func removePortMappings(_ mappings: [PortMapping]) throws {}
}

/// Serialises read-modify-write firewall updates on one network namespace across threads and
/// processes: an `flock` on the namespace file itself (all opens of one namespace share its nsfs
/// inode), so no lock file is left behind.
enum FirewallLock {
    static func withLock<T>(_ body: () throws -> T) throws -> T {
        let fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BerthError.system("open /proc/thread-self/ns/net") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw BerthError.system("lock the network namespace for a firewall update") }
        }
        return try body()
    }
}

/// Flushes the conntrack entries of UDP host ports that stop being published, so that a client
/// that keeps sending does not stay stuck on the old (now gone) NAT binding. Keyed by the *host*
/// port, the one the client addresses (Docker keys it by the container port, which misses).
enum ConntrackFlush {
    static func flushUDP(_ mappings: [PortMapping]) {
        let ports = Set(mappings.filter { $0.proto == .udp }.map(\.hostPort))
        guard !ports.isEmpty, Command.exists("conntrack") else { return }
        for port in ports.sorted() {
            // Exit status 1 only means "no entry matched".
            _ = try? Command.run("conntrack", ["-D", "-p", "udp", "--orig-port-dst", String(port)])
        }
    }
}
