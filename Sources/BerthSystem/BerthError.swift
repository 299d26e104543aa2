#if canImport(Glibc)
import Glibc
#endif

/// The one error type every Berth module throws.
///
/// A `BerthError` carries a ``Code`` that callers can switch on, a message that names the object and
/// the cause (for example `bridge berth0 already exists`), and optionally the `errno` or the error
/// that caused it. New codes can be added without breaking callers that match on the ones they know.
public struct BerthError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A broad category of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The caller passed something malformed (a bad CIDR, a port spec like `99999:80`).
        public static let invalidArgument = Code("invalidArgument")
        /// The named object does not exist.
        public static let notFound = Code("notFound")
        /// The named object already exists or the resource is taken.
        public static let alreadyExists = Code("alreadyExists")
        /// A pool, range or limit has no room left.
        public static let exhausted = Code("exhausted")
        /// A system call failed; `errno` says why.
        public static let system = Code("system")
        /// A helper process (iptables-restore, nft, …) failed.
        public static let commandFailed = Code("commandFailed")
        /// The object is in a state that does not allow the operation.
        public static let invalidState = Code("invalidState")
        /// Data read from disk or from an archive is malformed or fails verification.
        public static let corrupt = Code("corrupt")
        /// The operation is not supported on this host.
        public static let unsupported = Code("unsupported")
        /// Something refused for security reasons (a tar entry escaping the rootfs, …).
        public static let denied = Code("denied")
    }

    public var code: Code
    public var message: String
    /// The errno of the failed system call, if any.
    public var errno: Int32?
    /// A textual form of an underlying error, if any.
    public var underlying: String?

    /// - Parameters:
    ///   - code: The category.
    ///   - message: A sentence naming the object and the cause.
    ///   - errno: The errno of a failed system call.
    ///   - underlying: An underlying error.
    public init(_ code: Code, _ message: String, errno: Int32? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
        self.underlying = underlying.map { String(describing: $0) }
    }

    /// An error for a failed system call: `"<what>: <strerror(errno)>"`.
    /// - Parameters:
    ///   - what: What was attempted, naming the object (`mount /proc on /tmp/x`).
    ///   - errno: The errno value; defaults to the calling thread's current errno.
    public static func system(_ what: String, errno err: Int32 = Glibc.errno) -> BerthError {
        BerthError(.system, "\(what): \(strerrorString(err))", errno: err)
    }

    public var description: String {
        if let underlying, !message.containsBytes(of: underlying) { return "\(message) (\(underlying))" }
        return message
    }
}

extension String {
    /// Whether `needle` occurs in this string, compared as UTF-8 bytes. `String.contains(_:
    /// StringProtocol)` comes from _StringProcessing, which links the regex engine into every
    /// executable that calls it (the lean berth-proxy measured 0.27 MiB more resident memory with
    /// it); modules that a small process embeds use this instead.
    public func containsBytes(of needle: String) -> Bool {
        let n = Array(needle.utf8), h = Array(utf8)
        guard !n.isEmpty else { return true }
        guard n.count <= h.count else { return false }
        for start in 0...(h.count - n.count) where h[start] == n[0] && h[start..<start + n.count].elementsEqual(n) {
            return true
        }
        return false
    }
}

/// `strerror` as a Swift string.
public func strerrorString(_ err: Int32) -> String {
    guard let p = strerror(err) else { return "errno \(err)" }
    return String(cString: p)
}
