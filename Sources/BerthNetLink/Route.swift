import BerthSystem

/// An IPv4 route of the main (or another) routing table.
public struct Route: Sendable, Hashable, CustomStringConvertible {
    /// How far the destination is (`RT_SCOPE_*`).
    public enum Scope: UInt8, Sendable, Hashable {
        case universe = 0, site = 200, link = 253, host = 254, nowhere = 255
    }

    /// The destination subnet; `0.0.0.0/0` for the default route.
    public var destination: IPv4CIDR
    /// The next hop; `nil` for an on-link route.
    public var gateway: IPv4Address?
    /// The output interface index.
    public var interfaceIndex: Int32?
    /// The preferred source address.
    public var preferredSource: IPv4Address?
    /// The scope (`link` for routes to directly attached subnets).
    public var scope: Scope
    /// The routing table (254 is `main`).
    public var table: UInt32
    /// The `RTPROT_*` protocol that installed it (2 kernel, 3 boot, 4 static).
    public var protocolNumber: UInt8

    /// The default route `0.0.0.0/0`.
    public var isDefault: Bool { destination.prefixLength == 0 }
    /// A route to a directly attached subnet (no gateway), the kind that subnet choice must avoid.
    public var isOnLink: Bool { gateway == nil && !isDefault }

    /// - Parameters:
    ///   - destination: The subnet (`0.0.0.0/0` for default).
    ///   - gateway: The next hop.
    ///   - interfaceIndex: The output interface.
    ///   - preferredSource: The preferred source address.
    ///   - scope: Defaults to `.link` without a gateway and `.universe` with one.
    ///   - table: Defaults to main (254).
    ///   - protocolNumber: Defaults to boot (3), like `ip route add`.
    public init(destination: IPv4CIDR, gateway: IPv4Address? = nil, interfaceIndex: Int32? = nil,
                preferredSource: IPv4Address? = nil, scope: Scope? = nil, table: UInt32 = 254, protocolNumber: UInt8 = 3) {
        self.destination = destination.network
        self.gateway = gateway
        self.interfaceIndex = interfaceIndex
        self.preferredSource = preferredSource
        self.scope = scope ?? (gateway == nil ? .link : .universe)
        self.table = table
        self.protocolNumber = protocolNumber
    }

    /// A default route via `gateway`.
    public static func defaultRoute(via gateway: IPv4Address, interfaceIndex: Int32? = nil) -> Route {
        Route(destination: IPv4CIDR(unsafeNetwork: 0, 0), gateway: gateway, interfaceIndex: interfaceIndex)
    }

    public var description: String {
        var s = isDefault ? "default" : destination.description
        if let gateway { s += " via \(gateway)" }
        if let interfaceIndex { s += " dev #\(interfaceIndex)" }
        if scope == .link { s += " scope link" }
        if let preferredSource { s += " src \(preferredSource)" }
        if table != 254 { s += " table \(table)" }
        return s
    }
}

extension IPv4CIDR {
    /// A CIDR from a raw value and a prefix known to be valid.
    init(unsafeNetwork value: UInt32, _ prefix: Int) {
        self = IPv4CIDR("\(IPv4Address(value))/\(prefix)")!
    }
}
