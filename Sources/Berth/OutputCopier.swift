import BerthSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Copies a container's output from a pipe to both a terminal descriptor and the log file, on its
/// own thread, until every writer has closed the pipe (`berth run` in the foreground).
final class OutputCopier: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)

    /// Starts copying from `source` to `terminal` and `log` (both `source` and `log` are closed at the end).
    init(source: Int32, terminal: Int32, log: Int32) {
        let thread = Thread { [done] in
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
        thread.start()
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
