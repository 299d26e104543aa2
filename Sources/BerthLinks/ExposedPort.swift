import BerthSystem

/// A port a container exposes, as Docker writes it in `EXPOSE` or `--expose`: `6379/tcp`.
///
/// Ordering follows Docker's link rules: by number, then `tcp` before any other protocol, then by
/// protocol name.
public struct ExposedPort: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    /// The port number inside the container.
    public var number: UInt16
    /// The protocol in lowercase: `tcp`, `udp` or `sctp`.
    public var proto: String

    /// - Parameters:
    ///   - number: The port number.
    ///   - proto: The protocol; stored in lowercase.
    public init(_ number: UInt16, _ proto: String = "tcp") {
        self.number = number
        self.proto = proto.lowercased()
    }

    /// `6379/tcp`.
    public var description: String { "\(number)/\(proto)" }

    /// Parses `PORT[/PROTO]` or a range `START-END[/PROTO]` (the protocol defaults to `tcp`), as
    /// `--expose` and an image's `ExposedPorts` accept it.
    /// - Parameter text: The spec, for example `6379`, `53/udp` or `8000-8002/tcp`.
    /// - Returns: One port per number in the range.
    public static func parse(_ text: String) throws -> [ExposedPort] {
        let pieces = text.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count <= 2 else { throw bad(text, "too many \"/\"") }
        let proto = pieces.count == 2 ? pieces[1].lowercased() : "tcp"
        guard ["tcp", "udp", "sctp"].contains(proto) else { throw bad(text, "unknown protocol \"\(pieces[1])\"") }
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
        if l.number != r.number { return l.number < r.number }
        if l.proto != r.proto {
            if l.proto == "tcp" { return true }
            if r.proto == "tcp" { return false }
        }
        return l.proto < r.proto
    }
}
