import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// A process named by its pid and its start time (field 22 of /proc/PID/stat), so that a
/// recycled pid is never mistaken for the process that owned a container.
public struct ProcessIdentity: Codable, Sendable, Equatable {
    /// The process id.
    public var pid: Int32
    /// The start time in clock ticks since boot.
    public var startTime: UInt64

    /// - Parameters:
    ///   - pid: The process id.
    ///   - startTime: Its start time in clock ticks since boot.
    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// The calling process.
    public static var current: ProcessIdentity {
        let pid = getpid()
        return ProcessIdentity(pid: pid, startTime: startTime(of: pid) ?? 0)
    }

    /// The identity of a live process, or `nil` when there is none with that pid.
    /// - Parameter pid: The process id.
    public static func of(pid: Int32) -> ProcessIdentity? {
        startTime(of: pid).map { ProcessIdentity(pid: pid, startTime: $0) }
    }

    /// Whether this very process still exists (and is not a zombie).
    public var isAlive: Bool {
        guard pid > 0, let text = try? FileIO.read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return false }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return false }
        return UInt64(fields[19]) == startTime
    }

    static func startTime(of pid: Int32) -> UInt64? {
        guard pid > 0, let text = try? FileIO.read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After "pid (comm)": state is field 3, starttime field 22, i.e. index 19 here.
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}
