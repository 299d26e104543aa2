import BerthSystem
import CZlib
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// A source of bytes read in the caller's buffer size; `read` returns 0 at the end.
protocol ByteReader: AnyObject {
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// Reads a file descriptor, optionally hashing what it reads, copying it to a second file and
/// reporting progress.
final class FileReader: ByteReader {
    let fd: Int32
    let path: String
    private let ownsFD: Bool
    var hasher: SHA256?
    /// Bytes read so far.
    private(set) var count: Int64 = 0
    /// When set, every byte read is also written there (an import keeps the original blob).
    var teeFD: Int32 = -1
    var onProgress: ((Int64) -> Void)?

    init(path: String) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BerthError.system("open \(path)") }
        self.path = path
        ownsFD = true
    }

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        ownsFD = false
    }

    deinit { if ownsFD { close(fd) } }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw BerthError.system("read \(path)")
            }
            if n > 0 {
                let got = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                hasher?.update(got)
                if teeFD >= 0 { try writeAll(teeFD, got, what: "copy of \(path)") }
                count += Int64(n)
                onProgress?(count)
            }
            return n
        }
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: String) throws {
    var off = 0
    while off < bytes.count {
        let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
        if n < 0 {
            if errno == EINTR { continue }
            throw BerthError.system("write \(what)")
        }
        off += n
    }
}

/// Hashes and counts the bytes flowing through it (the uncompressed layer stream: its digest is
/// the layer's diff_id).
final class HashingReader: ByteReader {
    let upstream: any ByteReader
    let hasher = SHA256()
    private(set) var count: Int64 = 0

    init(_ upstream: any ByteReader) { self.upstream = upstream }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try upstream.read(into: buffer)
        if n > 0 {
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            count += Int64(n)
        }
        return n
    }
}

/// Streams gzip (one or more concatenated members) through zlib's inflate.
final class GzipReader: ByteReader {
    private let upstream: any ByteReader
    private let name: String
    private var stream = z_stream()
    private let input: UnsafeMutableRawBufferPointer
    private var inputEnded = false
    private var finished = false

    /// - Parameters:
    ///   - upstream: The compressed bytes.
    ///   - name: What is being read, for error messages.
    init(_ upstream: any ByteReader, name: String) throws {
        self.upstream = upstream
        self.name = name
        input = .allocate(byteCount: 256 * 1024, alignment: 16)
        guard berth_inflate_init_auto(&stream) == Z_OK else {
            input.deallocate()
            throw BerthError(.system, "inflateInit for \(name) failed")
        }
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if finished || buffer.count == 0 { return 0 }
        stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = UInt32(min(buffer.count, Int(UInt32.max)))
        while stream.avail_out > 0 {
            if stream.avail_in == 0 && !inputEnded {
                let n = try upstream.read(into: input)
                if n == 0 { inputEnded = true } else {
                    stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.avail_in = UInt32(n)
                }
            }
            if stream.avail_in == 0 && inputEnded {
                throw BerthError(.corrupt, "\(name): truncated gzip stream (ended before the end of the compressed data)")
            }
            let rc = inflate(&stream, Z_NO_FLUSH)
            if rc == Z_STREAM_END {
                // Another member may follow (concatenated gzip); trailing zeros are padding.
                if try !nextMemberFollows() { finished = true; break }
                inflateReset(&stream)
                continue
            }
            if rc == Z_BUF_ERROR && stream.avail_in == 0 { continue }
            guard rc == Z_OK else {
                let detail = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw BerthError(.corrupt, "\(name): corrupt gzip data: \(detail)")
            }
        }
        return buffer.count - Int(stream.avail_out)
    }

    /// After a member's end: true when another gzip member starts, false at the end of input.
    private func nextMemberFollows() throws -> Bool {
        while true {
            while stream.avail_in > 0 {
                if stream.next_in.pointee == 0x1f { return true }
                guard stream.next_in.pointee == 0 else {
                    throw BerthError(.corrupt, "\(name): unexpected bytes after the end of the gzip stream")
                }
                stream.next_in += 1
                stream.avail_in -= 1
            }
            if inputEnded { return false }
            let n = try upstream.read(into: input)
            if n == 0 { inputEnded = true; return false }
            stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_in = UInt32(n)
        }
    }
}

/// Peeks at the first bytes of a reader, then replays them.
final class PeekingReader: ByteReader {
    private let upstream: any ByteReader
    private var head: [UInt8] = []
    private var headPos = 0

    init(_ upstream: any ByteReader) { self.upstream = upstream }

    /// The first bytes (fewer only at the end of input).
    func peek(_ count: Int) throws -> [UInt8] {
        while head.count < count {
            var chunk = [UInt8](repeating: 0, count: count - head.count)
            let n = try chunk.withUnsafeMutableBytes { try upstream.read(into: $0) }
            if n == 0 { break }
            head += chunk[0..<n]
        }
        return Array(head.prefix(count))
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if headPos < head.count {
            let n = min(buffer.count, head.count - headPos)
            head.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + headPos, byteCount: n) }
            headPos += n
            return n
        }
        return try upstream.read(into: buffer)
    }
}

/// Hands out the bytes of a stream one chunk at a time; a chunk stays valid until the next call.
protocol ChunkSource: AnyObject {
    /// The next chunk, or nil at the end of the stream.
    func nextChunk() throws -> UnsafeRawBufferPointer?
    /// Stops any background work; called once the consumer is done (or failed).
    func close()
}

/// A ``ChunkSource`` that reads its upstream on the calling thread.
final class DirectChunkSource: ChunkSource {
    private let upstream: any ByteReader
    private let buffer: UnsafeMutableRawBufferPointer

    init(_ upstream: any ByteReader, chunkSize: Int = 1 << 20) {
        self.upstream = upstream
        buffer = .allocate(byteCount: chunkSize, alignment: 64)
    }

    deinit { buffer.deallocate() }

    func nextChunk() throws -> UnsafeRawBufferPointer? {
        let n = try upstream.read(into: buffer)
        return n == 0 ? nil : UnsafeRawBufferPointer(rebasing: buffer[0..<n])
    }

    func close() {}
}

/// A ``ChunkSource`` whose upstream (file read, gzip inflate, hashing) runs on its own thread,
/// so that decompression overlaps with file creation on another core.
final class PipelinedChunkSource: ChunkSource, @unchecked Sendable {
    private let upstream: any ByteReader
    private let buffers: [UnsafeMutableRawBufferPointer]
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    // Guarded by mutex.
    private var free: [Int]
    private var ready: [(index: Int, count: Int)] = []
    private var failure: (any Error)?
    private var ended = false
    private var cancelled = false
    private var producerDone = false
    private var current: Int?
    /// Hashes every chunk handed out, on the consumer's thread (balances the two threads: the
    /// producer inflates, the consumer hashes and writes files).
    let consumerHasher: SHA256?
    /// Bytes handed out so far.
    private(set) var count: Int64 = 0

    init(_ upstream: any ByteReader, chunkSize: Int = 1 << 20, depth: Int = 4, hashOnConsumer: Bool = false) {
        consumerHasher = hashOnConsumer ? SHA256() : nil
        self.upstream = upstream
        buffers = (0..<depth).map { _ in .allocate(byteCount: chunkSize, alignment: 64) }
        free = Array(0..<depth)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
        do {
            try PosixThread.start("the layer reader thread", detached: true, stackSize: 1 << 20) { [self] in produce() }
        } catch {
            // No producer: the first read reports why.
            failure = error
            ended = true
            producerDone = true
        }
    }

    deinit {
        close()
        for b in buffers { b.deallocate() }
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    private func produce() {
        while true {
            pthread_mutex_lock(mutex)
            while free.isEmpty && !cancelled { pthread_cond_wait(cond, mutex) }
            if cancelled { producerDone = true; pthread_cond_broadcast(cond); pthread_mutex_unlock(mutex); return }
            let index = free.removeFirst()
            pthread_mutex_unlock(mutex)

            let buffer = buffers[index]
            var filled = 0
            var err: (any Error)?
            do {
                while filled < buffer.count {
                    let n = try upstream.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                    if n == 0 { break }
                    filled += n
                }
            } catch { err = error }

            pthread_mutex_lock(mutex)
            if filled > 0 { ready.append((index, filled)) } else { free.append(index) }
            let stop = err != nil || filled < buffer.count
            if let err { failure = err }
            if stop { ended = true; producerDone = true }
            pthread_cond_broadcast(cond)
            pthread_mutex_unlock(mutex)
            if stop { return }
        }
    }

    func nextChunk() throws -> UnsafeRawBufferPointer? {
        pthread_mutex_lock(mutex)
        if let c = current { free.append(c); current = nil; pthread_cond_broadcast(cond) }
        while ready.isEmpty && !ended { pthread_cond_wait(cond, mutex) }
        if !ready.isEmpty {
            let r = ready.removeFirst()
            current = r.index
            pthread_mutex_unlock(mutex)
            let chunk = UnsafeRawBufferPointer(rebasing: buffers[r.index][0..<r.count])
            consumerHasher?.update(chunk)
            count += Int64(r.count)
            return chunk
        }
        let failure = self.failure
        pthread_mutex_unlock(mutex)
        if let failure { throw failure }
        return nil
    }

    func close() {
        pthread_mutex_lock(mutex)
        cancelled = true
        pthread_cond_broadcast(cond)
        while !producerDone { pthread_cond_wait(cond, mutex) }
        pthread_mutex_unlock(mutex)
    }
}
