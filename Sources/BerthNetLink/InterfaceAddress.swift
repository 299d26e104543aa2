import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// An IPv6 address with a prefix length (`fd00:1::1/64`), kept in canonical text form.
public struct IPv6CIDR: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The address in canonical (RFC 5952) form.
    public let address: String
    /// 0 through 128.
    public let prefixLength: Int

    /// Parses `ADDR/N`, throwing an error that quotes the text.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        var raw = in6_addr()
        guard parts.count == 2, let n = Int(parts[1]), (0...128).contains(n),
            inet_pton(AF_INET6, String(parts[0]), &raw) == 1
        else { throw BerthError(.invalidArgument, "invalid IPv6 CIDR \"\(text)\": expected ADDR/N with N from 0 to 128") }
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        inet_ntop(AF_INET6, &raw, &buf, socklen_t(buf.count))
        address = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        prefixLength = n
    }

    public var description: String { "\(address)/\(prefixLength)" }

    public init(from decoder: any Decoder) throws { try self.init(parsing: try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// An address assigned to an interface: IPv4 or IPv6, with its prefix length.
public enum InterfaceAddress: Hashable, Sendable, CustomStringConvertible {
    case ipv4(IPv4CIDR)
    case ipv6(IPv6CIDR)

    /// Parses `172.17.0.1/16` or `fd00::1/64`.
    public init(parsing text: String) throws {
        if text.contains(":") { self = .ipv6(try IPv6CIDR(parsing: text)) } else { self = .ipv4(try IPv4CIDR(parsing: text)) }
    }

    public var description: String {
        switch self {
        case .ipv4(let c): return c.description
        case .ipv6(let c): return c.description
        }
    }

    var family: Int32 {
        switch self {
        case .ipv4: return AF_INET
        case .ipv6: return AF_INET6
        }
    }
}
