import BerthSystem

/// One entry of a tar archive, after GNU long-name and PAX extended headers have been applied.
public struct TarEntry: Sendable {
    /// What an entry creates.
    public enum Kind: Sendable, Equatable {
        case regular, hardLink, symbolicLink, characterDevice, blockDevice, directory, fifo
    }

    /// The path as stored in the archive (no normalisation applied).
    public var name: String
    /// What the entry creates.
    public var kind: Kind
    /// The target of a symbolic or hard link.
    public var linkName: String = ""
    /// Bytes of data that follow the header (regular files only).
    public var size: Int64 = 0
    /// Permission bits including setuid, setgid and sticky.
    public var mode: UInt32 = 0o644
    /// Owner user ID.
    public var uid: UInt32 = 0
    /// Owner group ID.
    public var gid: UInt32 = 0
    /// Modification time, seconds since the epoch.
    public var mtime: Int64 = 0
    /// Nanoseconds part of the modification time (from a PAX header).
    public var mtimeNanoseconds: Int32 = 0
    /// Major number of a device node.
    public var deviceMajor: UInt32 = 0
    /// Minor number of a device node.
    public var deviceMinor: UInt32 = 0
    /// Extended attributes from `SCHILY.xattr.*` PAX records.
    public var xattrs: [(name: String, value: [UInt8])] = []

    /// - Parameters:
    ///   - name: The path in the archive.
    ///   - kind: What the entry creates.
    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }
}

/// Limits that keep a hostile archive from making the reader allocate without bound.
public struct TarLimits: Sendable {
    /// The largest PAX extended header or GNU long name/link accepted.
    public var maxMetadataBytes: Int = 1 << 20
    /// The largest entry size accepted (1 TiB by default).
    public var maxEntrySize: Int64 = 1 << 40
    public init() {}
}

/// Streams a tar archive (ustar, GNU long names and links, PAX headers) from a ``ChunkSource``.
///
/// Call ``next()`` for each entry; read the data of a regular file with ``readData(_:)`` before
/// the next call (unread data is skipped).
final class TarReader {
    private let source: any ChunkSource
    private let limits: TarLimits
    private let archiveName: String
    private var chunk: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)
    private var chunkPos = 0
    private var atEnd = false
    /// Archive offset of the next unread byte.
    private(set) var offset: Int64 = 0
    private var remaining: Int64 = 0
    private var padding: Int64 = 0
    private var currentName = ""
    private let block = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 8)

    init(source: any ChunkSource, name: String, limits: TarLimits = TarLimits()) {
        self.source = source
        self.archiveName = name
        self.limits = limits
    }

    deinit { block.deallocate() }

    // MARK: raw input

    private func fill() throws -> Bool {
        if chunkPos < chunk.count { return true }
        if atEnd { return false }
        guard let c = try source.nextChunk() else { atEnd = true; return false }
        chunk = c
        chunkPos = 0
        return true
    }

    /// Reads exactly 512 bytes; false on a clean end of input before the first byte.
    private func readBlock(_ block: UnsafeMutableRawBufferPointer) throws -> Bool {
        var got = 0
        while got < 512 {
            guard try fill() else {
                if got == 0 { return false }
                throw BerthError(.corrupt, "\(archiveName): truncated tar (a header at offset \(offset) is cut short)")
            }
            let n = min(512 - got, chunk.count - chunkPos)
            (block.baseAddress! + got).copyMemory(from: chunk.baseAddress! + chunkPos, byteCount: n)
            chunkPos += n
            got += n
            offset += Int64(n)
        }
        return true
    }

    /// Passes the next `count` bytes to `body` in slices.
    private func consume(_ count: Int64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var left = count
        while left > 0 {
            guard try fill() else {
                throw BerthError(.corrupt, "\(archiveName): truncated tar (entry \(currentName) lacks \(left) bytes of data)")
            }
            let n = Int(min(left, Int64(chunk.count - chunkPos)))
            try body(UnsafeRawBufferPointer(rebasing: chunk[chunkPos..<(chunkPos + n)]))
            chunkPos += n
            left -= Int64(n)
            offset += Int64(n)
        }
    }

    private func readBytes(_ count: Int64) throws -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(Int(count))
        try consume(count) { out.append(contentsOf: $0) }
        let pad = (512 - count % 512) % 512
        try consume(pad) { _ in }
        return out
    }

    // MARK: entries

    /// Reads the data of the current regular-file entry, slice by slice.
    func readData(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let n = remaining
        remaining = 0
        try consume(n, body)
    }

    /// The next entry, or nil at the end of the archive.
    func next() throws -> TarEntry? {
        if remaining > 0 { let r = remaining; remaining = 0; try consume(r) { _ in } }
        if padding > 0 { let p = padding; padding = 0; try consume(p) { _ in } }

        var longName: String?
        var longLink: String?
        var pax: [String: [UInt8]] = [:]
        var paxXattrs: [(String, [UInt8])] = []

        while true {
            let headerOffset = offset
            guard try readBlock(block) else { return nil }
            if block.allSatisfy({ $0 == 0 }) {
                // End-of-archive marker; the second zero block (and anything after) is not read.
                return nil
            }
            let h = UnsafeRawBufferPointer(block)
            try verifyChecksum(h, at: headerOffset)
            let type = h[156]
            let size = try number(h, 124, 12, field: "size", at: headerOffset)
            guard size >= 0 && size <= limits.maxEntrySize else {
                throw BerthError(.corrupt, "\(archiveName): tar header at offset \(headerOffset) has an invalid size \(size)")
            }
            switch type {
            case UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"), UInt8(ascii: "g"):
                guard size <= Int64(limits.maxMetadataBytes) else {
                    throw BerthError(.corrupt, "\(archiveName): extended tar header at offset \(headerOffset) is \(size) bytes (limit \(limits.maxMetadataBytes))")
                }
                currentName = "(extended header at offset \(headerOffset))"
                let data = try readBytes(size)
                if type == UInt8(ascii: "L") { longName = cString(data[...]) }
                else if type == UInt8(ascii: "K") { longLink = cString(data[...]) }
                else if type == UInt8(ascii: "x") {
                    for (k, v) in try parsePAX(data, at: headerOffset) {
                        if k.hasPrefix("SCHILY.xattr.") { paxXattrs.append((String(k.dropFirst(13)), v)) }
                        else { pax[k] = v }
                    }
                }
                continue
            default:
                break
            }

            var name: String
            if let longName { name = longName } else {
                name = field(h, 0, 100)
                if isUSTAR(h) {
                    let prefix = field(h, 345, 155)
                    if !prefix.isEmpty { name = prefix + "/" + name }
                }
            }
            if let p = pax["path"] { name = String(decoding: p, as: UTF8.self) }
            currentName = name
            var link = longLink ?? field(h, 157, 100)
            if let p = pax["linkpath"] { link = String(decoding: p, as: UTF8.self) }

            let kind: TarEntry.Kind
            switch type {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"): kind = name.hasSuffix("/") ? .directory : .regular
            case UInt8(ascii: "1"): kind = .hardLink
            case UInt8(ascii: "2"): kind = .symbolicLink
            case UInt8(ascii: "3"): kind = .characterDevice
            case UInt8(ascii: "4"): kind = .blockDevice
            case UInt8(ascii: "5"): kind = .directory
            case UInt8(ascii: "6"): kind = .fifo
            default:
                throw BerthError(.unsupported, "\(archiveName): entry \(name) has unsupported tar type '\(Character(Unicode.Scalar(type)))'")
            }
            var e = TarEntry(name: name, kind: kind)
            e.linkName = link
            e.mode = UInt32(truncatingIfNeeded: try number(h, 100, 8, field: "mode", at: headerOffset)) & 0o7777
            e.uid = UInt32(truncatingIfNeeded: try number(h, 108, 8, field: "uid", at: headerOffset))
            e.gid = UInt32(truncatingIfNeeded: try number(h, 116, 8, field: "gid", at: headerOffset))
            e.mtime = try number(h, 136, 12, field: "mtime", at: headerOffset)
            if kind == .characterDevice || kind == .blockDevice {
                e.deviceMajor = UInt32(truncatingIfNeeded: try number(h, 329, 8, field: "devmajor", at: headerOffset))
                e.deviceMinor = UInt32(truncatingIfNeeded: try number(h, 337, 8, field: "devminor", at: headerOffset))
            }
            var dataSize = size
            if let s = pax["size"] {
                guard let v = Int64(String(decoding: s, as: UTF8.self)), v >= 0, v <= limits.maxEntrySize else {
                    throw BerthError(.corrupt, "\(archiveName): entry \(name) has an invalid PAX size")
                }
                dataSize = v
            }
            if let u = pax["uid"], let v = UInt32(String(decoding: u, as: UTF8.self)) { e.uid = v }
            if let g = pax["gid"], let v = UInt32(String(decoding: g, as: UTF8.self)) { e.gid = v }
            if let m = pax["mtime"] {
                let text = String(decoding: m, as: UTF8.self)
                let parts = text.split(separator: ".", maxSplits: 1)
                if let s = parts.first.flatMap({ Int64($0) }) {
                    e.mtime = s
                    if parts.count == 2 {
                        let frac = String(parts[1].prefix(9))
                        let padded = frac + String(repeating: "0", count: 9 - frac.count)
                        e.mtimeNanoseconds = Int32(padded) ?? 0
                    }
                }
            }
            e.xattrs = paxXattrs.map { (name: $0.0, value: $0.1) }
            // Only regular files carry data; links, directories and devices have none even if a
            // header claims a size (GNU tar writes sizes of 0 for them, be lenient and skip).
            remaining = dataSize
            padding = (512 - dataSize % 512) % 512
            if kind == .regular { e.size = dataSize }
            return e
        }
    }

    // MARK: header fields

    private func isUSTAR(_ h: UnsafeRawBufferPointer) -> Bool {
        // "ustar\0" (POSIX); GNU's "ustar  \0" uses the prefix area for other things.
        h[257] == 0x75 && h[258] == 0x73 && h[259] == 0x74 && h[260] == 0x61 && h[261] == 0x72 && h[262] == 0
    }

    private func field(_ h: UnsafeRawBufferPointer, _ start: Int, _ len: Int) -> String {
        var end = start
        while end < start + len && h[end] != 0 { end += 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: h[start..<end]), as: UTF8.self)
    }

    private func cString(_ data: ArraySlice<UInt8>) -> String {
        var d = data
        while d.last == 0 { d.removeLast() }
        return String(decoding: d, as: UTF8.self)
    }

    private func number(_ h: UnsafeRawBufferPointer, _ start: Int, _ len: Int, field name: String, at headerOffset: Int64) throws -> Int64 {
        if h[start] & 0x80 != 0 {
            // Base-256 (GNU): big-endian two's complement; reject anything not fitting 63 bits.
            if h[start] == 0xff { throw BerthError(.corrupt, "\(archiveName): tar header at offset \(headerOffset) has a negative \(name)") }
            var v: Int64 = Int64(h[start] & 0x7f)
            for i in (start + 1)..<(start + len) {
                guard v <= (Int64.max >> 8) else {
                    throw BerthError(.corrupt, "\(archiveName): tar header at offset \(headerOffset) has an oversized \(name)")
                }
                v = v << 8 | Int64(h[i])
            }
            return v
        }
        var v: Int64 = 0
        var i = start
        while i < start + len && (h[i] == 0x20) { i += 1 }
        while i < start + len {
            let c = h[i]
            if c == 0 || c == 0x20 { break }
            guard c >= 0x30 && c <= 0x37 else {
                throw BerthError(.corrupt, "\(archiveName): tar header at offset \(headerOffset) has a malformed \(name) field")
            }
            v = v * 8 + Int64(c - 0x30)
            i += 1
        }
        return v
    }

    private func verifyChecksum(_ h: UnsafeRawBufferPointer, at headerOffset: Int64) throws {
        let stored = try number(h, 148, 8, field: "checksum", at: headerOffset)
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for i in 0..<512 {
            let b = (i >= 148 && i < 156) ? UInt8(0x20) : h[i]
            unsigned += Int64(b)
            signed += Int64(Int8(bitPattern: b))
        }
        guard stored == unsigned || stored == signed else {
            throw BerthError(.corrupt, "\(archiveName): corrupt tar header at offset \(headerOffset) (checksum mismatch)")
        }
    }

    private func parsePAX(_ data: [UInt8], at headerOffset: Int64) throws -> [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        var i = 0
        let bad = BerthError(.corrupt, "\(archiveName): malformed PAX header at offset \(headerOffset)")
        while i < data.count {
            if data[i] == 0 { break }
            var len = 0
            var j = i
            while j < data.count && data[j] != 0x20 {
                guard data[j] >= 0x30 && data[j] <= 0x39, len < data.count else { throw bad }
                len = len * 10 + Int(data[j] - 0x30)
                j += 1
            }
            guard j < data.count, len > j - i + 1, i + len <= data.count, data[i + len - 1] == 0x0a else { throw bad }
            let record = data[(j + 1)..<(i + len - 1)]
            guard let eq = record.firstIndex(of: 0x3d) else { throw bad }
            out.append((String(decoding: record[record.startIndex..<eq], as: UTF8.self), Array(record[(eq + 1)...])))
            i += len
        }
        return out
    }
}
