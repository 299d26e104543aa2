/// A 48-bit Ethernet MAC address.
public struct MACAddress: Hashable, Sendable, Codable, CustomStringConvertible, LosslessStringConvertible {
    public var bytes: [UInt8]

    /// - Parameter bytes: exactly six bytes.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == 6 else { throw BerthError(.invalidArgument, "a MAC address has 6 bytes, got \(bytes.count)") }
        self.bytes = bytes
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (or with dashes).
    public init?(_ text: String) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var b: [UInt8] = []
        for p in parts {
            guard p.count == 2, let v = UInt8(p, radix: 16) else { return nil }
            b.append(v)
        }
        bytes = b
    }

    /// Docker's MAC for a container address: `02:42` followed by the four bytes of the IPv4 address.
    public init(dockerStyleFor ip: IPv4Address) {
        bytes = [0x02, 0x42] + ip.bytes
    }

    public var description: String {
        bytes.map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: ":")
    }

    public init(from decoder: any Decoder) throws {
        let t = try decoder.singleValueContainer().decode(String.self)
        guard let m = MACAddress(t) else { throw BerthError(.invalidArgument, "invalid MAC address \"\(t)\"") }
        self = m
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
