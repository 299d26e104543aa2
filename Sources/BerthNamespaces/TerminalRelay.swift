import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// The local terminal switched to raw mode (no echo, no line editing, no signal keys: ^C goes
/// to the container as a byte), as `docker run -it` does. ``restore()`` puts the saved settings back.
public final class RawTerminalMode: @unchecked Sendable {
    private let fd: Int32
    private var saved: termios
    private var restored = false
    private let lock = TerminalModeLock()

    /// Switches `fd` to raw mode; nil when `fd` is not a terminal.
    public init?(fd: Int32) {
        var t = termios()
        guard isatty(fd) == 1, tcgetattr(fd, &t) == 0 else { return nil }
        self.fd = fd
        saved = t
        var raw = t
        cfmakeraw(&raw)
        guard tcsetattr(fd, TCSANOW, &raw) == 0 else { return nil }
    }

    /// Puts the saved settings back (once; later calls do nothing).
    public func restore() {
        lock.withLock {
            guard !restored else { return }
            restored = true
            _ = tcsetattr(fd, TCSANOW, &saved)
        }
    }

    deinit { restore() }
}

/// A tiny mutex (pthread) for RawTerminalMode.
final class TerminalModeLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// Copies between a pty master and local descriptors on a dedicated thread (a poll loop):
/// `input` → master (when given) and master → every output descriptor. It ends when the master
/// reports hang-up (every slave descriptor closed: the container's processes are gone).
public final class TerminalRelay: @unchecked Sendable {
    private let master: Int32
    private let input: Int32
    private let outputs: [Int32]
    private var thread = pthread_t()
    private var started = false

    /// Starts relaying.
    /// - Parameters:
    ///   - master: The pty master (owned by the caller; close it after ``wait()``).
    ///   - input: Where the container's terminal input comes from (-1: none).
    ///   - outputs: Where its terminal output goes (a local terminal, a log file...).
    public init(master: Int32, input: Int32, outputs: [Int32]) throws {
        self.master = master
        self.input = input
        self.outputs = outputs
        thread = try PosixThread.start("the terminal relay thread") { [self] in loop() }
        started = true
    }

    /// Waits until the container side has hung up and all its output is copied.
    public func wait() {
        guard started else { return }
        started = false
        pthread_join(thread, nil)
    }

    private func loop() {
        var buf = [UInt8](repeating: 0, count: 16384)
        var inputOpen = input >= 0
        while true {
            var fds = [pollfd(fd: master, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: inputOpen ? input : -1, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, -1)
            if n < 0 { if errno == EINTR { continue }; return }
            if fds[0].revents != 0 {
                let r = read(master, &buf, buf.count)
                if r > 0 {
                    for fd in outputs { writeAll(fd, buf, r) }
                } else if r == 0 || (errno != EINTR && errno != EAGAIN) {
                    return  // EIO: the slave side is closed
                }
            }
            if inputOpen && fds[1].revents != 0 {
                let r = read(input, &buf, buf.count)
                if r > 0 { writeAll(master, buf, r) }
                else if r == 0 || (errno != EINTR && errno != EAGAIN) {
                    // End of input: send the terminal's EOF character (^D) as docker does.
                    var eof: UInt8 = 4
                    _ = write(master, &eof, 1)
                    inputOpen = false
                }
            }
        }
    }

    private func writeAll(_ fd: Int32, _ buf: [UInt8], _ count: Int) {
        var done = 0
        while done < count {
            let w = buf.withUnsafeBytes { write(fd, $0.baseAddress! + done, count - done) }
            if w < 0 { if errno == EINTR { continue }; return }
            done += w
        }
    }
}
