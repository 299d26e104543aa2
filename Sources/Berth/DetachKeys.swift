import BerthSystem

/// The key sequence that detaches a client from a container's input without stopping it
/// (`docker attach --detach-keys`); Ctrl-P Ctrl-Q by default.
///
/// A sequence is written as Docker writes it: comma-separated keys, each a single character or
/// `ctrl-` followed by a letter or one of `@ [ \ ] ^ _` (`ctrl-p,ctrl-q`, `ctrl-a,x`).
public struct DetachKeys: Sendable, Equatable, CustomStringConvertible {
    /// The bytes a terminal sends for the sequence, in order.
    public let bytes: [UInt8]

    /// Ctrl-P Ctrl-Q.
    public static let standard = DetachKeys(validBytes: [0x10, 0x11])

    private init(validBytes: [UInt8]) { bytes = validBytes }

    /// Parses a sequence; an empty one means ``standard``, as in Docker.
    /// - Throws: `BerthError(.invalidArgument)` naming the key that is not understood.
    public init(parsing spec: String) throws {
        guard !spec.isEmpty else { self = .standard; return }
        var bytes: [UInt8] = []
        for key in spec.split(separator: ",", omittingEmptySubsequences: false) {
            guard let byte = DetachKeys.byte(of: key) else {
                throw BerthError(.invalidArgument, "invalid detach keys \"\(spec)\": unknown key \"\(key)\" (keys are single characters or ctrl-<a-z @ [ \\ ] ^ _>, separated by commas)")
            }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    private static func byte(of key: Substring) -> UInt8? {
        let utf8 = Array(key.utf8)
        if utf8.count == 1 { return utf8[0] }
        let prefix = Array("ctrl-".utf8)
        guard utf8.count == prefix.count + 1, Array(utf8.prefix(prefix.count)) == prefix else { return nil }
        let c = utf8[prefix.count]
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 1
        // @ [ \ ] ^ _ are 0x40 and 0x5b–0x5f: their control codes are the character minus 0x40.
        case UInt8(ascii: "@"), UInt8(ascii: "[")...UInt8(ascii: "_"): return c - 0x40
        default: return nil
        }
    }

    /// The sequence written back in the form it is parsed from.
    public var description: String {
        bytes.map { b -> String in
            switch b {
            case 1...26: return "ctrl-" + String(UnicodeScalar(b + 0x60))
            case 0, 27...31: return "ctrl-" + String(UnicodeScalar(b + 0x40))
            default: return String(UnicodeScalar(b))
            }
        }.joined(separator: ",")
    }
}

/// Finds a ``DetachKeys`` sequence in a stream of input that is being forwarded to a container.
///
/// Bytes that could begin the sequence are held back until the next ones decide: when the
/// sequence completes, they are dropped and the client detaches; when it does not, they are passed
/// on in their place. A sequence may span any number of reads.
public struct DetachKeyMatcher: Sendable {
    /// The sequence searched for.
    public let keys: DetachKeys
    /// Input held back because it matches the beginning of the sequence.
    public private(set) var held: [UInt8] = []
    /// Whether the sequence has been seen; once it has, ``feed(_:)`` forwards nothing more.
    public private(set) var detached = false

    public init(_ keys: DetachKeys = .standard) {
        self.keys = keys
    }

    /// Takes the next input and returns what is to be forwarded now: everything before the
    /// sequence, less what might still be its beginning.
    public mutating func feed(_ input: some Sequence<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        guard !detached else { return out }
        let sequence = keys.bytes
        if sequence.isEmpty { out.append(contentsOf: input); return out }
        for byte in input {
            held.append(byte)
            if held.count == sequence.count && held == sequence {
                held = []
                detached = true
                return out
            }
            // Keep the longest end of what is held that is a beginning of the sequence; the rest
            // cannot be part of it any more.
            var keep = min(held.count, sequence.count - 1)
            while keep > 0 && !held.suffix(keep).elementsEqual(sequence.prefix(keep)) { keep -= 1 }
            out.append(contentsOf: held.prefix(held.count - keep))
            held.removeFirst(held.count - keep)
        }
        return out
    }

    /// Returns what is held back, for the end of the input, when no more can complete the sequence.
    public mutating func flush() -> [UInt8] {
        defer { held = [] }
        return detached ? [] : held
    }
}
