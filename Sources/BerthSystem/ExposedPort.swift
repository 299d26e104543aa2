/// A transport protocol a port can be exposed or published for.
public enum PortProtocol: String, Sendable, Codable, Hashable, CaseIterable, CustomStringConvertible {
    case tcp, udp, sctp
    public var description: String { rawValue }
}

/// A port a container exposes, as Docker writes it in `EXPOSE` or `--expose`: `6379/tcp`.
///
/// Ordering follows Docker's link rules: by number, then `tcp` before any other protocol, then by
/// protocol name.
public struct ExposedPort: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    /// The port number inside the container.
    public var port: UInt16
    /// The protocol.
    public var proto: PortProtocol

    /// - Parameters:
    ///   - port: The port number.
    ///   - proto: The protocol (TCP by default).
    public init(_ port: UInt16, _ proto: PortProtocol = .tcp) {
        self.port = port
        self.proto = proto
    }

    /// `6379/tcp`, Docker's key for a port.
    public var description: String { "\(port)/\(proto)" }

    /// Parses `PORT[/PROTO]` or a range `START-END[/PROTO]` (the protocol defaults to `tcp`), as
    /// `--expose` and an image's `ExposedPorts` accept it.
    /// - Parameter text: The spec, for example `6379`, `53/udp` or `8000-8002/tcp`.
    /// - Returns: One port per number in the range.
    public static func parse(_ text: String) throws -> [ExposedPort] {
        let pieces = text.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count <= 2 else { throw bad(text, "too many \"/\"") }
        let protoText = pieces.count == 2 ? pieces[1].lowercased() : "tcp"
        guard let proto = PortProtocol(rawValue: protoText) else { throw bad(text, "unknown protocol \"\(pieces[1])\"") }
        let bounds = pieces[0].split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count <= 2 else { throw bad(text, "a range is START-END") }
        let numbers = try bounds.map { b -> UInt16 in
            guard !b.isEmpty, b.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(b), (1...65535).contains(n) else {
                throw bad(text, "\"\(b)\" is not a port number from 1 to 65535")
            }
            return UInt16(n)
        }
        let low = numbers[0], high = numbers.last!
        guard low <= high else { throw bad(text, "range end \(high) is below its start \(low)") }
        return (low...high).map { ExposedPort($0, proto) }
    }

    private static func bad(_ text: String, _ why: String) -> BerthError {
        BerthError(.invalidArgument, "invalid exposed port \"\(text)\": \(why)")
    }

    public static func < (l: ExposedPort, r: ExposedPort) -> Bool {
        if l.port != r.port { return l.port < r.port }
        if l.proto != r.proto {
            if l.proto == .tcp { return true }
            if r.proto == .tcp { return false }
        }
        return l.proto.rawValue < r.proto.rawValue
    }
}
