/// A container (or image, network, volume) identifier: 64 lowercase hex digits, shown as 12.
public struct ContainerID: Hashable, Sendable, Codable, CustomStringConvertible {
    public let full: String

    /// A new random identifier.
    public init() {
        var s = ""
        for _ in 0..<4 { s += String(UInt64.random(in: 0...UInt64.max), radix: 16).leftPadded(to: 16) }
        full = s
    }

    /// Wraps an existing identifier; it must be 64 hex digits.
    public init(_ text: String) throws {
        guard text.count == 64, text.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw BerthError(.invalidArgument, "invalid id \"\(text)\": expected 64 lowercase hex digits")
        }
        full = text
    }

    /// The 12-digit form that `docker ps` shows.
    public var short: String { String(full.prefix(12)) }
    public var description: String { full }

    public init(from decoder: any Decoder) throws { try self.init(try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(full)
    }
}

extension String {
    /// Left-pads with `pad` to `width` characters.
    public func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

/// A name for temporary kernel objects: `prefix` + pid + random suffix, short enough for an
/// interface name (15 characters) when `prefix` is at most 4 characters.
public func uniqueName(_ prefix: String) -> String {
    let pid = String(UInt32(truncatingIfNeeded: getpidValue()) % 100_000, radix: 36)
    let rnd = String(UInt32.random(in: 0..<(36 * 36 * 36 * 36)), radix: 36).leftPadded(to: 4)
    return "\(prefix)\(pid)\(rnd)"
}

#if canImport(Glibc)
import Glibc
private func getpidValue() -> Int32 { getpid() }
#endif
