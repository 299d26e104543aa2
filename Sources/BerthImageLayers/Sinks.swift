import BerthSystem
import CZlib

#if canImport(Glibc)
import Glibc
#endif

/// A destination of bytes.
protocol ByteSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Flushes buffered bytes (and ends a compressed stream).
    func finish() throws
}

extension ByteSink {
    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }
}

/// Buffered writes to a file descriptor, hashing and counting what goes out.
final class FileSink: ByteSink {
    let fd: Int32
    let path: String
    private let ownsFD: Bool
    private var buffer: UnsafeMutableRawBufferPointer
    private var used = 0
    let hasher = SHA256()
    private(set) var count: Int64 = 0

    /// Creates (exclusively) the file at `path`.
    init(creating path: String, mode: mode_t = 0o644) throws {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw BerthError.system("create \(path)") }
        self.path = path
        ownsFD = true
        buffer = .allocate(byteCount: 1 << 20, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        if ownsFD { close(fd) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        hasher.update(bytes)
        count += Int64(bytes.count)
        if used + bytes.count > buffer.count { try flush() }
        if bytes.count >= buffer.count { try writeAll(fd, bytes, what: path); return }
        (buffer.baseAddress! + used).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        used += bytes.count
    }

    private func flush() throws {
        if used > 0 { try writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<used]), what: path) }
        used = 0
    }

    func finish() throws {
        try flush()
        guard fsync(fd) == 0 || errno == EINVAL else { throw BerthError.system("fsync \(path)") }
    }
}

/// Hashes and counts bytes on their way to another sink (the uncompressed side of a gzip layer).
final class HashingSink: ByteSink {
    let downstream: any ByteSink
    let hasher = SHA256()
    private(set) var count: Int64 = 0
    init(_ downstream: any ByteSink) { self.downstream = downstream }
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        hasher.update(bytes)
        count += Int64(bytes.count)
        try downstream.write(bytes)
    }
    func finish() throws { try downstream.finish() }
}

/// gzip compression (zlib deflate) into another sink.
final class GzipSink: ByteSink {
    private let downstream: any ByteSink
    private var stream = z_stream()
    private let out: UnsafeMutableRawBufferPointer

    init(_ downstream: any ByteSink, level: Int32 = 6) throws {
        self.downstream = downstream
        out = .allocate(byteCount: 256 * 1024, alignment: 16)
        guard berth_deflate_init_gzip(&stream, level) == Z_OK else {
            out.deallocate()
            throw BerthError(.system, "deflateInit failed")
        }
    }

    deinit {
        deflateEnd(&stream)
        out.deallocate()
    }

    private func run(_ flush: Int32) throws {
        repeat {
            stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = UInt32(out.count)
            let rc = deflate(&stream, flush)
            guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else { throw BerthError(.system, "deflate failed (\(rc))") }
            let n = out.count - Int(stream.avail_out)
            if n > 0 { try downstream.write(UnsafeRawBufferPointer(rebasing: out[0..<n])) }
            if flush == Z_FINISH && rc == Z_STREAM_END { return }
        } while stream.avail_out == 0 || (flush == Z_FINISH)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        stream.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = UInt32(bytes.count)
        while stream.avail_in > 0 { try run(Z_NO_FLUSH) }
    }

    func finish() throws {
        stream.avail_in = 0
        try run(Z_FINISH)
        try downstream.finish()
    }
}
