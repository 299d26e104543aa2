import BerthSystem
import CCrypto

/// A content digest in the OCI form `sha256:<64 lowercase hex digits>`.
public struct Digest: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The 64 hex digits.
    public let hex: String

    /// Parses `sha256:<hex>` (or bare hex when `allowBare` is true).
    /// - Parameters:
    ///   - text: The digest text.
    ///   - allowBare: Accept 64 hex digits without the `sha256:` prefix.
    /// - Throws: ``BerthError`` `.invalidArgument` when the text is not a sha256 digest.
    public init(parsing text: String, allowBare: Bool = false) throws {
        var h = Substring(text)
        if h.hasPrefix("sha256:") { h = h.dropFirst(7) }
        else if !allowBare { throw BerthError(.invalidArgument, "digest \"\(text)\" is not of the form sha256:<hex>") }
        guard h.utf8.count == 64, h.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw BerthError(.invalidArgument, "digest \"\(text)\" does not hold 64 lowercase hex digits")
        }
        hex = String(h)
    }

    init(hex: String) { self.hex = hex }

    /// The digest of `bytes`.
    public static func of(_ bytes: [UInt8]) -> Digest {
        let h = SHA256()
        bytes.withUnsafeBytes { h.update($0) }
        return h.finish()
    }

    /// `sha256:<hex>`.
    public var description: String { "sha256:" + hex }
    /// The first 12 hex digits, as `docker images` shows them.
    public var short: String { String(hex.prefix(12)) }

    public static func < (a: Digest, b: Digest) -> Bool { a.hex < b.hex }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: s)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// Incremental SHA-256 over OpenSSL's EVP interface (SHA-NI accelerated where the CPU has it).
final class SHA256 {
    private let ctx: OpaquePointer

    init() {
        ctx = EVP_MD_CTX_new()
        EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(ctx) }

    func update(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count > 0 { EVP_DigestUpdate(ctx, bytes.baseAddress, bytes.count) }
    }

    /// Finishes the hash and returns the digest; the hasher must not be used afterwards.
    func finish() -> Digest {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &out, &len)
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var s = [UInt8]()
        s.reserveCapacity(64)
        for b in out { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 15)]) }
        return Digest(hex: String(decoding: s, as: UTF8.self))
    }
}
