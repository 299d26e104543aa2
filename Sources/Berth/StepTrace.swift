#if canImport(Glibc)
import Glibc
#endif

/// Step timings on stderr when `BERTH_TRACE` is set (`berth run` phases, for tuning).
public enum StepTrace {
    nonisolated(unsafe) private static var last: Double = monotonicNow()
    private static let enabled = getenv("BERTH_TRACE") != nil

    /// Prints the time since the previous mark.
    /// - Parameter step: What just finished.
    public static func mark(_ step: @autoclosure () -> String) {
        guard enabled else { return }
        let now = monotonicNow()
        let text = "trace: \(step()) \(Int((now - last) * 10000) / 10) ms\n"
        last = now
        _ = text.withCString { write(2, $0, strlen($0)) }
    }
}
