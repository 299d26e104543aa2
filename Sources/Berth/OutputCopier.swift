import BerthNamespaces
import BerthSystem
import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Copies a container's output from a pipe to both a terminal descriptor and the log file, on its
/// own thread, until every writer has closed the pipe (`berth run` in the foreground).
final class OutputCopier: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// The pty whose master this copier relays (``relay(_:logPath:interactive:foreground:)``).
    /// Its master stays open until the container side hangs up.
    private(set) var terminal: PseudoTerminal?

    /// Starts copying from `source` to `terminal` and `log` (both `source` and `log` are closed at the end).
    /// - Throws: ``BerthError`` when its thread cannot be created (`source` and `log` are closed then).
    init(source: Int32, terminal: Int32, log: Int32) throws {
        let copy: @Sendable () -> Void = { [done] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress!, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                buffer.withUnsafeBytes { raw in
                    OutputCopier.writeAll(terminal, raw.baseAddress!, n)
                    if log >= 0 { OutputCopier.writeAll(log, raw.baseAddress!, n) }
                }
            }
            close(source)
            if log >= 0 { close(log) }
            done.signal()
        }
        do {
            try PosixThread.start("the output copier thread", detached: true, copy)
        } catch {
            close(source)
            if log >= 0 { close(log) }
            throw error
        }
    }

    /// Starts relaying the master of a container's terminal (``ContainerStdio/pseudoTerminal(interactive:foreground:)``,
    /// taken from the started process): output to stdout (when `foreground`) and the log file at
    /// `logPath`, this process's stdin to the master when `interactive`. The copier closes the
    /// master and the log when the container side hangs up; on a throw the master is closed too.
    static func relay(_ pty: PseudoTerminal, logPath: String, interactive: Bool, foreground: Bool) throws -> OutputCopier {
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard log >= 0 else {
            let error = BerthError.system("open \(logPath)")
            pty.close()
            throw error
        }
        let relay: TerminalRelay
        do {
            relay = try TerminalRelay(master: pty.master, input: interactive ? 0 : -1, outputs: (foreground ? [1] : []) + [log])
        } catch {
            pty.close()
            close(log)
            throw error
        }
        let copier: OutputCopier
        do {
            copier = try OutputCopier(relay: relay, closing: [pty.master, log])
        } catch {
            // The relay ends when the container side hangs up (the failed start kills it).
            pty.close()
            close(log)
            throw error
        }
        copier.terminal = pty
        return copier
    }

    /// Waits for `relay` on its own thread, then closes `fds`.
    private init(relay: TerminalRelay, closing fds: [Int32]) throws {
        try PosixThread.start("the terminal copier thread", detached: true) { [done] in
            relay.wait()
            for fd in fds { close(fd) }
            done.signal()
        }
    }

    /// Waits until the copy has finished (at most `timeout` seconds).
    func join(timeout: Double = 2) {
        _ = done.wait(timeout: .now() + timeout)
    }

    private static func writeAll(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int) {
        var off = 0
        while off < count {
            let w = write(fd, base + off, count - off)
            if w < 0 && errno == EINTR { continue }
            if w <= 0 { return }
            off += w
        }
    }
}
