import BerthNamespaces
import BerthPortMapper
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The proxy's coalescing of bulk transfers (`SO_RCVLOWAT`) must never hold data back for long:
/// each message below is followed by a pause in which the sender waits for the answer, so the
/// tail of every message sits below the low-water mark until the proxy's deadline passes.
@Suite struct CoalescingTests {
    /// Messages of these sizes go up, and the same sizes come back down, in turn.
    static let sizes = [3 << 20 + 17, 1, 5 << 20, 70_000, 2 << 20 + 4095, 5, 9 << 20 + 1]

    /// With a pipe smaller than the low-water mark too, where reads stop because the pipe is full.
    @Test(arguments: [1 << 20, 128 << 10])
    func bulkMessagesThenPausesArriveWholeInBothDirections(pipeSize: Int) throws {
        let net = try TestNetwork()
        defer { net.close() }
        let server = try MirrorServer(in: net.container, port: 7171)
        defer { server.close() }
        let options = UserlandProxy.Options(pipeSize: pipeSize, coalesceBytes: 1 << 20, coalesceDelay: 0.001)
        let proxy = try loopbackProxy(net, options, hostPort: 17171, containerPort: 7171)
        defer { proxy.close() }
        try net.host.run {
            let s = try connectedSocket(.loopback, 17171, timeout: 5)
            defer { close(s) }
            for size in CoalescingTests.sizes {
                try writeMessage(s, size: size)
                try readMessage(s, expected: size)
            }
        }
        // Loopback bursts of megabytes arrive faster than one packet per wake-up.
        #expect(proxy.coalescingStarts > 0)
        #expect(server.errors.isEmpty, "\(server.errors)")
    }

    @Test func halfCloseWhileCoalescingPassesTheTailAndEOF() throws {
        let net = try TestNetwork()
        defer { net.close() }
        let server = try EchoServer(in: net.container, port: 7172)
        defer { server.close() }
        // A deadline far beyond the test's timeouts: only the EOF can end the wait.
        let proxy = try loopbackProxy(net, .init(coalesceBytes: 1 << 20, coalesceDelay: 60), hostPort: 17172, containerPort: 7172)
        defer { proxy.close() }
        let letters: [UInt8] = (0..<(6 << 20 + 333)).map { (i: Int) -> UInt8 in UInt8(97 + (i &* 7 &+ i >> 9) % 26) }
        let message = String(decoding: letters, as: UTF8.self)
        let got = try net.host.run { try exchange(.loopback, 17172, message) }
        #expect(got.count == message.count)
        #expect(got == message)
    }

    @Test func offLeavesTheLowWaterMarkAlone() throws {
        let net = try TestNetwork()
        defer { net.close() }
        let server = try MirrorServer(in: net.container, port: 7173)
        defer { server.close() }
        let proxy = try loopbackProxy(net, .init(coalesceBytes: 0), hostPort: 17173, containerPort: 7173)
        defer { proxy.close() }
        try net.host.run {
            let s = try connectedSocket(.loopback, 17173, timeout: 5)
            defer { close(s) }
            try writeMessage(s, size: 4 << 20)
            try readMessage(s, expected: 4 << 20)
        }
        #expect(proxy.coalescingStarts == 0)
    }
}

/// A proxy with `options` publishing 127.0.0.1:`hostPort` (in the sandbox host) to the
/// container's `containerPort`.
private func loopbackProxy(_ net: TestNetwork, _ options: UserlandProxy.Options, hostPort: UInt16,
                           containerPort: UInt16) throws -> UserlandProxy {
    try net.host.run {
        let p = try UserlandProxy(options: options)
        try p.publish(PortMapping(proto: .tcp, hostIP: .loopback, hostPort: hostPort, containerIP: net.containerIP,
                                  containerPort: containerPort, bridge: net.bridge))
        return p
    }
}

/// The byte at offset `i` of a message of `size` bytes.
private func patternByte(_ i: Int, _ size: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 31 &+ size &+ i >> 12) }

/// A length-prefixed message: 8 bytes of size, then the pattern.
private func writeMessage(_ s: Int32, size: Int) throws {
    var header = UInt64(size).bigEndian
    guard send(s, &header, 8, Int32(MSG_NOSIGNAL)) == 8 else { throw BerthError.system("write message header") }
    var chunk = [UInt8](repeating: 0, count: 256 << 10)
    var sent = 0
    while sent < size {
        let n = min(chunk.count, size - sent)
        for i in 0..<n { chunk[i] = patternByte(sent + i, size) }
        var off = 0
        while off < n {
            let w = chunk[off..<n].withUnsafeBytes { send(s, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard w > 0 else { throw BerthError.system("write message") }
            off += w
        }
        sent += n
    }
}

/// Reads exactly `count` bytes.
private func readFully(_ s: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) throws -> Bool {
    var got = 0
    while got < count {
        let n = read(s, buf + got, count - got)
        if n == 0 { return false }
        guard n > 0 else { throw BerthError.system("read message") }
        got += n
    }
    return true
}

/// Reads one message and checks its size and every byte.
private func readMessage(_ s: Int32, expected: Int) throws {
    var header: UInt64 = 0
    guard try readFully(s, &header, 8) else { throw BerthError(.corrupt, "EOF before a message header") }
    let size = Int(UInt64(bigEndian: header))
    guard size == expected else { throw BerthError(.corrupt, "message of \(size) bytes, expected \(expected)") }
    try readBody(s, size)
}

/// Reads a message's `size` bytes of pattern and checks every one.
private func readBody(_ s: Int32, _ size: Int) throws {
    let buf = UnsafeMutableRawPointer.allocate(byteCount: 256 << 10, alignment: 8)
    defer { buf.deallocate() }
    var done = 0
    while done < size {
        let n = min(256 << 10, size - done)
        guard try readFully(s, buf, n) else { throw BerthError(.corrupt, "EOF after \(done) of \(size) bytes") }
        let bytes = buf.assumingMemoryBound(to: UInt8.self)
        for i in 0..<n where bytes[i] != patternByte(done + i, size) {
            throw BerthError(.corrupt, "byte \(done + i) of \(size) differs")
        }
        done += n
    }
}

/// Answers each length-prefixed message with one of the same size, after checking every byte;
/// one connection at a time, on its own thread in the namespace it was opened in.
final class MirrorServer: @unchecked Sendable {
    let fd: Int32
    private let lock = NSLockLike()
    private var failures: [String] = []
    var errors: [String] { lock.locked { failures } }

    init(in ns: NetworkNamespace, port: UInt16) throws {
        fd = try ns.run { try serverSocket(port: port, what: "mirror server") }
        _ = try PosixThread.start("the mirror server", detached: true) { [self] in serve() }
    }

    private func serve() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            do {
                while true {
                    var header: UInt64 = 0
                    guard try readFully(c, &header, 8) else { break }
                    let size = Int(UInt64(bigEndian: header))
                    try readBody(c, size)
                    try writeMessage(c, size: size)
                }
            } catch {
                lock.locked { failures.append("\(error)") }
            }
            Glibc.close(c)
        }
    }

    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}
