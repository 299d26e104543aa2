import BerthSystem

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads and writes the store's JSON documents.
enum JSONFile {
    /// Encodes `value` and replaces `path` atomically (temporary file, fsync when `durable`, rename).
    static func write<T: Encodable>(_ value: T, to path: String, durable: Bool) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do { data = try encoder.encode(value) } catch {
            throw BerthError(.invalidArgument, "cannot encode \(path)", underlying: error)
        }
        try FileIO.writeAtomically(path, [UInt8](data) + [UInt8(ascii: "\n")], mode: 0o600, durable: durable)
    }

    /// Decodes the document at `path`.
    static func read<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        let bytes = try FileIO.readBytes(path)
        do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
            throw BerthError(.corrupt, "cannot decode \(path)", underlying: error)
        }
    }
}
