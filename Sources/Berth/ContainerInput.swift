import BerthNamespaces
import BerthSystem
import CBerthShim
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The messages on a container's attach socket: a kind byte, a 4-byte big-endian length, then
/// that many bytes of payload.
enum AttachFrame {
    /// Bytes for the container's stdin.
    static let input: UInt8 = 0
    /// A new window size for its terminal: rows and columns, 2 bytes each, big-endian.
    static let resize: UInt8 = 1
    static let headerSize = 5
    /// The largest payload a server accepts; a client that sends more is dropped.
    static let maxPayload = 1 << 20

    static func encode(_ kind: UInt8, _ payload: UnsafeRawBufferPointer) -> [UInt8] {
        let n = UInt32(payload.count)
        return [kind, UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + payload
    }
}

/// Serves the stdin of a container that runs detached with `-i` (`ContainerConfig.openStdin`):
/// a unix socket in the container's directory whose clients' input goes to the container's
/// stdin (the write end of its stdin pipe, or its pty master with `-t`) and whose resize
/// messages set its terminal's size. It lives in the process that owns the container (the
/// monitor for `berth run -d`) and stops when the container exits. Clients come and go; the
/// container's stdin stays open until it exits, as with `docker run -d -i`.
final class AttachServer: @unchecked Sendable {
    let path: String
    private let listenFD: Int32
    /// Owned: a duplicate of the pty master, or the stdin pipe's write end.
    private let input: Int32
    private let terminal: Bool
    private var wake: [Int32] = [-1, -1]
    private var thread = pthread_t()
    private var stopped = false

    /// Starts serving. `input` becomes the server's (it is closed by ``stop()``, or here on a throw).
    /// - Parameters:
    ///   - path: The socket's path (a stale socket there is replaced).
    ///   - input: Where input goes.
    ///   - terminal: Whether `input` is a pty master (resize messages apply to it).
    init(path: String, input: Int32, terminal: Bool) throws {
        self.path = path
        self.input = input
        self.terminal = terminal
        unlink(path)
        listenFD = berth_unix_listen(path, 16)
        guard listenFD >= 0 else {
            let e = errno
            close(input)
            throw BerthError.system("listen on the attach socket \(path)", errno: e)
        }
        guard berth_pipe2(&wake, O_CLOEXEC | O_NONBLOCK) == 0 else {
            let e = errno
            close(listenFD); close(input); unlink(path)
            throw BerthError.system("create the attach server's wake-up pipe", errno: e)
        }
        do {
            thread = try PosixThread.start("the attach server thread") { [self] in loop() }
        } catch {
            close(listenFD); close(input); close(wake[0]); close(wake[1]); unlink(path)
            throw error
        }
    }

    /// Stops serving: disconnects the clients, closes the container's input and removes the socket.
    func stop() {
        guard !stopped else { return }
        stopped = true
        var byte: UInt8 = 1
        _ = write(wake[1], &byte, 1)
        pthread_join(thread, nil)
        close(wake[0]); close(wake[1])
        close(listenFD)
        close(input)
        unlink(path)
    }

    private func loop() {
        // A write into a stdin pipe whose reader has exited takes EPIPE: PosixThread blocks SIGPIPE.
        var clients: [(fd: Int32, pending: [UInt8])] = []
        var inputOpen = true
        defer { for c in clients { close(c.fd) } }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            var fds = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)]
            fds += clients.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 { if errno == EINTR { continue }; return }
            if fds[0].revents != 0 { return }
            if fds[1].revents & Int16(POLLIN) != 0 {
                let c = berth_accept4_nonblock(listenFD)
                if c >= 0 { clients.append((c, [])) }
            }
            var gone: Set<Int32> = []
            for (i, p) in fds.enumerated().dropFirst(2) where p.revents != 0 {
                let r = buffer.withUnsafeMutableBytes { read(p.fd, $0.baseAddress!, $0.count) }
                if r < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                guard r > 0 else { gone.insert(p.fd); continue }
                let k = i - 2
                clients[k].pending += buffer[0..<r]
                if !handleFrames(&clients[k].pending, inputOpen: &inputOpen) { gone.insert(p.fd) }
            }
            for fd in gone { close(fd) }
            clients.removeAll { gone.contains($0.fd) }
        }
    }

    /// Carries out the complete frames in `pending`; false when a frame is malformed.
    private func handleFrames(_ pending: inout [UInt8], inputOpen: inout Bool) -> Bool {
        var offset = 0
        defer { pending.removeFirst(offset) }
        while pending.count - offset >= AttachFrame.headerSize {
            let kind = pending[offset]
            let length = pending[offset + 1 ..< offset + 5].reduce(0) { $0 << 8 | Int($1) }
            guard length <= AttachFrame.maxPayload else { return false }
            guard pending.count - offset >= AttachFrame.headerSize + length else { break }
            let start = offset + AttachFrame.headerSize
            switch kind {
            case AttachFrame.input:
                // The container stopped reading (it exited or closed stdin): drop what comes.
                if inputOpen && length > 0 {
                    inputOpen = pending.withUnsafeBytes { writeAll(input, $0.baseAddress! + start, length) }
                }
            case AttachFrame.resize:
                guard length == 4 else { return false }
                if terminal {
                    let b = pending[start ..< start + 4].map { UInt16($0) }
                    var w = winsize(ws_row: b[0] << 8 | b[1], ws_col: b[2] << 8 | b[3], ws_xpixel: 0, ws_ypixel: 0)
                    _ = berth_set_winsize(input, &w)
                }
            default:
                return false
            }
            offset = start + length
        }
        return true
    }

    /// Writes everything, waiting while `fd` is full (a pty master may be non-blocking); false
    /// when the reader is gone.
    private func writeAll(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int) -> Bool {
        var done = 0
        while done < count {
            let w = write(fd, base + done, count - done)
            if w > 0 { done += w; continue }
            if w < 0 && errno == EINTR { continue }
            if w < 0 && errno == EAGAIN {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                var stop = pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0)
                var both = [p, stop]
                _ = poll(&both, 2, -1)
                p = both[0]; stop = both[1]
                if stop.revents != 0 { return false }
                continue
            }
            return false
        }
        return true
    }
}

/// A connection to the stdin of a container that runs detached with `-i` (what `berth attach`
/// types into): see ``Engine/openInput(_:)``. Output is not on it: it goes to the container's
/// log, which an attaching client follows.
public final class ContainerInput: @unchecked Sendable {
    /// Whether the container's stdin is a terminal (`-t`): ``resize(_:)`` then sets its size.
    public let hasTerminal: Bool
    private let fd: Int32
    /// Whether ``close()`` has run; held while a frame is sent, so frames never interleave.
    private let closed = Mutex(false)

    init(fd: Int32, hasTerminal: Bool) {
        self.fd = fd
        self.hasTerminal = hasTerminal
    }

    deinit { close() }

    /// Sends bytes to the container's stdin.
    /// - Throws: ``BerthError`` when the container's owner has gone (the container exited).
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try send(AttachFrame.encode(AttachFrame.input, $0)) }
    }

    /// Sets the window size of the container's terminal (it gets SIGWINCH); nothing without `-t`.
    public func resize(_ size: WindowSize) throws {
        let b = [UInt8(size.rows >> 8), UInt8(size.rows & 0xff), UInt8(size.columns >> 8), UInt8(size.columns & 0xff)]
        try b.withUnsafeBytes { try send(AttachFrame.encode(AttachFrame.resize, $0)) }
    }

    /// Disconnects (the container's stdin stays open).
    public func close() {
        closed.withLock { closed in
            guard !closed else { return }
            closed = true
            Glibc.close(fd)
        }
    }

    private func send(_ frame: [UInt8]) throws {
        try closed.withLock { closed throws(BerthError) in
            guard !closed else { throw BerthError(.invalidState, "the container's input is closed") }
            var done = 0
            while done < frame.count {
                let w = frame.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, frame.count - done, Int32(MSG_NOSIGNAL)) }
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { throw BerthError.system("send to the container's stdin (has it exited?)") }
                done += w
            }
        }
    }
}

extension Engine {
    /// The attach socket of a container started with its stdin open and no local input.
    func attachSocketPath(_ id: ContainerID) -> String { store.directory(of: id) + "/attach.sock" }

    /// Connects to the stdin of a running container that was started detached with `-i`
    /// (`ContainerConfig.openStdin`, output to its log): what is written goes to its stdin, or
    /// to its terminal with `-t`, as `docker attach` does.
    /// - Parameter reference: The container's name or (a prefix of) its id.
    /// - Throws: ``BerthError`` `.invalidState` when it is not running or its stdin is not open.
    public func openInput(_ reference: String) throws -> ContainerInput {
        let id = try store.resolve(reference)
        let record = try store.load(id)
        guard record.state.isRunning else {
            throw BerthError(.invalidState, "container \(reference) is not running")
        }
        guard record.config.openStdin else {
            throw BerthError(.invalidState, "container \(reference) was not started with -i: its stdin is closed")
        }
        let fd = berth_unix_connect(attachSocketPath(id))
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT || e == ECONNREFUSED {
                throw BerthError(.invalidState, "container \(reference) takes its input from the process that started it, not from an attach socket", errno: e)
            }
            throw BerthError.system("connect to the attach socket of \(reference)", errno: e)
        }
        return ContainerInput(fd: fd, hasTerminal: record.config.tty)
    }
}
