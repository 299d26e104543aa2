import BerthSystem
import CNetlink

/// A snapshot of a network interface as the kernel reported it.
public struct Link: Sendable, Hashable, CustomStringConvertible {
    /// The interface index (unique within its network namespace).
    public var index: Int32
    /// The interface name (`berth0`, `veth1a2b3c4`, `eth0`).
    public var name: String
    /// The link kind from `IFLA_INFO_KIND` (`bridge`, `veth`, …); `nil` for physical or loopback devices.
    public var kind: String?
    /// The MTU in bytes.
    public var mtu: Int
    /// The hardware address, when it is a 6-byte Ethernet address.
    public var macAddress: MACAddress?
    /// Whether the administrative `IFF_UP` flag is set.
    public var isUp: Bool
    /// The index of the master device (a bridge), or `nil` when the link has no master.
    public var masterIndex: Int32?
    /// For a veth, the index of the peer (in the peer's namespace); otherwise the `IFLA_LINK` index.
    public var peerIndex: Int32?
    /// The device group (`IFLA_GROUP`; 0 is the default group).
    public var group: UInt32

    public var description: String {
        var s = "\(index): \(name)"
        if let kind { s += " (\(kind))" }
        s += isUp ? " up" : " down"
        s += " mtu \(mtu)"
        if let macAddress { s += " \(macAddress)" }
        if let masterIndex { s += " master \(masterIndex)" }
        return s
    }

    /// Reads the fields of a libnl `struct rtnl_link *`.
    init(_ link: OpaquePointer) {
        index = rtnl_link_get_ifindex(link)
        name = rtnl_link_get_name(link).map { String(cString: $0) } ?? ""
        kind = rtnl_link_get_type(link).map { String(cString: $0) }
        mtu = Int(rtnl_link_get_mtu(link))
        if let a = rtnl_link_get_addr(link), nl_addr_get_len(a) == 6, let p = nl_addr_get_binary_addr(a) {
            let raw = UnsafeRawBufferPointer(start: p, count: 6)
            macAddress = try? MACAddress(bytes: Array(raw))
        } else {
            macAddress = nil
        }
        isUp = rtnl_link_get_flags(link) & UInt32(LinkFlag.up) != 0
        let master = rtnl_link_get_master(link)
        masterIndex = master > 0 ? master : nil
        let peer = Int32(rtnl_link_get_link(link))
        peerIndex = peer > 0 ? peer : nil
        group = rtnl_link_get_group(link)
    }
}

/// Where to move a link: the network namespace of a process, or one held by a file descriptor
/// (``NetworkNamespace/fd`` in BerthNamespaces).
public enum NamespaceReference: Sendable, Hashable {
    /// The network namespace of this pid or tid (`IFLA_NET_NS_PID`).
    case pid(Int32)
    /// The namespace an open descriptor refers to (`IFLA_NET_NS_FD`).
    case fd(Int32)
}

/// A veth pair to create in one request.
///
/// The peer can be created directly in another namespace, already named (`eth0`) and with its MAC
/// address — the cheapest way to give a container its interface. The peer cannot be raised in the
/// same request: the kernel opens it before the pair is linked and refuses (`ENOTCONN`); raise it
/// afterwards from inside its namespace, or create it here and use
/// ``NetlinkSession/moveLink(_:to:renamingTo:up:)``, which moves, renames and raises in one request.
public struct VethPair: Sendable, Hashable {
    /// The name of the end that stays in the current namespace.
    public var name: String
    /// The name of the other end (in `peerNamespace` when that is set).
    public var peerName: String
    /// The MTU of both ends; kernel default when `nil`.
    public var mtu: Int?
    /// The MAC address of the local end; random when `nil`.
    public var macAddress: MACAddress?
    /// The MAC address of the peer; random when `nil`.
    public var peerMACAddress: MACAddress?
    /// The bridge (by index) the local end is enslaved to at creation.
    public var masterIndex: Int32?
    /// Whether the local end is raised at creation.
    public var up: Bool
    /// Where the peer is created; the current namespace when `nil`.
    public var peerNamespace: NamespaceReference?

    /// - Parameters:
    ///   - name: Local end name (at most 15 bytes).
    ///   - peerName: Peer name (at most 15 bytes).
    ///   - mtu: MTU of both ends.
    ///   - macAddress: MAC of the local end.
    ///   - peerMACAddress: MAC of the peer.
    ///   - masterIndex: Bridge index for the local end.
    ///   - up: Raise the local end.
    ///   - peerNamespace: Namespace in which the peer is created.
    public init(name: String, peerName: String, mtu: Int? = nil, macAddress: MACAddress? = nil,
                peerMACAddress: MACAddress? = nil, masterIndex: Int32? = nil, up: Bool = false,
                peerNamespace: NamespaceReference? = nil) {
        self.name = name
        self.peerName = peerName
        self.mtu = mtu
        self.macAddress = macAddress
        self.peerMACAddress = peerMACAddress
        self.masterIndex = masterIndex
        self.up = up
        self.peerNamespace = peerNamespace
    }
}

/// Checks an interface name the way the kernel will (1 to 15 bytes, no `/`, no spaces, not `.`/`..`).
func validateLinkName(_ name: String) throws {
    let bytes = Array(name.utf8)
    guard !bytes.isEmpty, bytes.count <= 15, name != ".", name != "..",
        !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7f })
    else {
        throw BerthError(.invalidArgument, "invalid interface name \"\(name)\": 1 to 15 characters, no '/', ':' or spaces")
    }
}
