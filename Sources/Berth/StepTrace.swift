#if canImport(Glibc)
import Glibc
#endif

/// Step timings on stderr when `BERTH_TRACE` is set (`berth run` phases, for tuning). When
/// `BERTH_TRACE` holds a CLOCK_MONOTONIC time in nanoseconds (the caller's, just before it started
/// this process), the first mark counts from then, which shows the cost of exec and start-up.
public enum StepTrace {
    nonisolated(unsafe) private static var last: Double = {
        if let value = getenv("BERTH_TRACE"), let ns = Double(String(cString: value)), ns > 0 { return ns / 1e9 }
        return monotonicNow()
    }()
    private static let enabled = getenv("BERTH_TRACE") != nil

    /// Prints the time since the previous mark.
    /// - Parameter step: What just finished.
    public static func mark(_ step: @autoclosure () -> String) {
        guard enabled else { return }
        let now = monotonicNow()
        let tenths = Int(((now - last) * 10000).rounded())
        let text = "trace: \(step()) \(tenths / 10).\(tenths % 10) ms\n"
        last = now
        _ = text.withCString { write(2, $0, strlen($0)) }
    }
}
