import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// Writes tar archives (POSIX ustar, with PAX records for long names, big sizes and xattrs).
final class TarWriter {
    private let sink: any ByteSink
    private static let zeros = [UInt8](repeating: 0, count: 1024)

    init(sink: any ByteSink) { self.sink = sink }

    /// Writes the header of `e`; for a regular file the caller then writes exactly `e.size` bytes
    /// with ``writeData(_:)`` and calls ``endData(size:)``.
    func writeHeader(_ e: TarEntry) throws {
        var pax: [(String, [UInt8])] = []
        let nameBytes = Array(e.name.utf8)
        if nameBytes.count > 100 { pax.append(("path", nameBytes)) }
        let linkBytes = Array(e.linkName.utf8)
        if linkBytes.count > 100 { pax.append(("linkpath", linkBytes)) }
        if e.size > 0o77777777777 { pax.append(("size", Array(String(e.size).utf8))) }
        if e.uid > 0o7777777 { pax.append(("uid", Array(String(e.uid).utf8))) }
        if e.gid > 0o7777777 { pax.append(("gid", Array(String(e.gid).utf8))) }
        for x in e.xattrs { pax.append(("SCHILY.xattr." + x.name, x.value)) }
        if !pax.isEmpty {
            var body: [UInt8] = []
            for (k, v) in pax {
                let rest = 1 + k.utf8.count + 1 + v.count + 1
                var len = rest + String(rest).count
                if String(len).count != String(rest).count { len = rest + String(len).count }
                body += Array("\(len) \(k)=".utf8) + v + [0x0a]
            }
            let paxName = "PaxHeaders.0/" + String(e.name.split(separator: "/").last ?? "x").prefix(80)
            var h = TarEntry(name: paxName, kind: .regular)
            h.size = Int64(body.count)
            h.mtime = e.mtime
            try sink.write(header(h, type: UInt8(ascii: "x")))
            try sink.write(body)
            try endData(size: Int64(body.count))
        }
        let type: UInt8
        switch e.kind {
        case .regular: type = UInt8(ascii: "0")
        case .hardLink: type = UInt8(ascii: "1")
        case .symbolicLink: type = UInt8(ascii: "2")
        case .characterDevice: type = UInt8(ascii: "3")
        case .blockDevice: type = UInt8(ascii: "4")
        case .directory: type = UInt8(ascii: "5")
        case .fifo: type = UInt8(ascii: "6")
        }
        try sink.write(header(e, type: type))
    }

    func writeData(_ bytes: UnsafeRawBufferPointer) throws { try sink.write(bytes) }

    /// Pads the data of an entry to a whole block.
    func endData(size: Int64) throws {
        let pad = Int((512 - size % 512) % 512)
        if pad > 0 { try TarWriter.zeros.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0..<pad])) } }
    }

    /// Writes a whole regular file entry whose data is `data`.
    func writeFile(_ e: TarEntry, data: [UInt8]) throws {
        var e = e
        e.kind = .regular
        e.size = Int64(data.count)
        try writeHeader(e)
        try sink.write(data)
        try endData(size: e.size)
    }

    /// Writes the end-of-archive marker and finishes the sink.
    func finish() throws {
        try sink.write(TarWriter.zeros)
        try sink.finish()
    }

    private func header(_ e: TarEntry, type: UInt8) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: [UInt8], _ at: Int, _ len: Int) {
            for (i, b) in s.prefix(len).enumerated() { h[at + i] = b }
        }
        func octal(_ v: Int64, _ at: Int, _ len: Int) {
            let clamped = max(0, min(v, (Int64(1) << (3 * Int64(len - 1))) - 1))
            var digits = String(clamped, radix: 8)
            digits = String(repeating: "0", count: max(0, len - 1 - digits.count)) + digits
            put(Array(digits.utf8), at, len - 1)
        }
        put(Array(e.name.utf8), 0, 100)
        octal(Int64(e.mode & 0o7777), 100, 8)
        octal(Int64(e.uid), 108, 8)
        octal(Int64(e.gid), 116, 8)
        octal(e.kind == .regular ? e.size : 0, 124, 12)
        octal(e.mtime, 136, 12)
        h[156] = type
        put(Array(e.linkName.utf8), 157, 100)
        put(Array("ustar\u{0}00".utf8), 257, 8)
        if e.kind == .characterDevice || e.kind == .blockDevice {
            octal(Int64(e.deviceMajor), 329, 8)
            octal(Int64(e.deviceMinor), 337, 8)
        }
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int64($1) }
        octal(sum, 148, 7)
        h[155] = 0x20
        return h
    }
}
