/// An IPv4 address, stored in host byte order.
public struct IPv4Address: Hashable, Comparable, Sendable, Codable, CustomStringConvertible,
    LosslessStringConvertible
{
    /// The address as a 32-bit number, most significant byte first (`10.0.0.1` is `0x0A000001`).
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad notation; `nil` for anything else (no octal, no shortened forms).
    public init?(_ text: String) {
        var parts: [UInt32] = []
        for piece in text.split(separator: ".", omittingEmptySubsequences: false) {
            guard !piece.isEmpty, piece.count <= 3, piece.allSatisfy({ $0.isASCII && $0.isNumber }),
                let n = UInt32(piece), n <= 255
            else { return nil }
            parts.append(n)
        }
        guard parts.count == 4 else { return nil }
        value = parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3]
    }

    /// Parses an address or throws an error naming the bad text.
    public static func parse(_ text: String) throws -> IPv4Address {
        guard let a = IPv4Address(text) else {
            throw BerthError(.invalidArgument, "invalid IPv4 address \"\(text)\"")
        }
        return a
    }

    public var bytes: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }
    public var description: String { bytes.map(String.init).joined(separator: ".") }
    public var isLoopback: Bool { value >> 24 == 127 }
    public var isUnspecified: Bool { value == 0 }

    public static let any = IPv4Address(0)
    public static let loopback = IPv4Address(127, 0, 0, 1)

    public static func < (l: IPv4Address, r: IPv4Address) -> Bool { l.value < r.value }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try IPv4Address.parse(text)
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// An IPv4 address with a prefix length, as written in CIDR notation: `172.17.0.1/16`.
///
/// The address part is kept as given, so the same type describes an interface address
/// (`172.17.0.1/16`) and a subnet (`172.17.0.0/16`, see ``network``).
public struct IPv4CIDR: Hashable, Sendable, Codable, CustomStringConvertible, LosslessStringConvertible {
    public var address: IPv4Address
    public var prefixLength: Int

    /// - Parameters:
    ///   - address: Any address; not masked.
    ///   - prefixLength: 0 through 32.
    public init(address: IPv4Address, prefixLength: Int) throws {
        guard (0...32).contains(prefixLength) else {
            throw BerthError(.invalidArgument, "invalid prefix length /\(prefixLength) for \(address): must be 0 to 32")
        }
        self.address = address
        self.prefixLength = prefixLength
    }

    public init?(_ text: String) { try? self.init(parsing: text) }

    /// Parses `A.B.C.D/N`, throwing an error that quotes the text.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv4Address(String(parts[0])),
            parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(parts[1]), (0...32).contains(n)
        else { throw BerthError(.invalidArgument, "invalid CIDR \"\(text)\": expected A.B.C.D/N with N from 0 to 32") }
        address = a
        prefixLength = n
    }

    public var mask: UInt32 { prefixLength == 0 ? 0 : UInt32.max << UInt32(32 - prefixLength) }
    /// The subnet this address belongs to (host bits cleared).
    public var network: IPv4CIDR { IPv4CIDR(unchecked: IPv4Address(address.value & mask), prefixLength) }
    public var networkAddress: IPv4Address { IPv4Address(address.value & mask) }
    public var broadcastAddress: IPv4Address { IPv4Address(address.value | ~mask) }
    /// The number of addresses in the subnet, network and broadcast included.
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefixLength) }
    public var isNetworkAddress: Bool { address.value & ~mask == 0 }

    public func contains(_ a: IPv4Address) -> Bool { a.value & mask == address.value & mask }
    /// True when the two subnets share at least one address.
    public func overlaps(_ other: IPv4CIDR) -> Bool {
        let m = prefixLength < other.prefixLength ? mask : other.mask
        return address.value & m == other.address.value & m
    }

    public var description: String { "\(address)/\(prefixLength)" }

    init(unchecked address: IPv4Address, _ prefixLength: Int) {
        self.address = address
        self.prefixLength = prefixLength
    }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
