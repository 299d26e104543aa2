#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in seconds.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Runs `body` once and returns the elapsed wall time in milliseconds.
func timeMillis(_ body: () throws -> Void) rethrows -> Double {
    let t0 = monotonicSeconds()
    try body()
    return (monotonicSeconds() - t0) * 1000
}

/// The median of a non-empty sample.
func median(_ xs: [Double]) -> Double {
    precondition(!xs.isEmpty, "median of an empty sample")
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Formats a number with a fixed count of decimals.
func fmt(_ x: Double, _ decimals: Int = 2) -> String {
    var p: Double = 1
    for _ in 0..<decimals { p *= 10 }
    let r = (x * p).rounded() / p
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
        let have = s.distance(from: dot, to: s.endIndex) - 1
        if have < decimals { s += String(repeating: "0", count: decimals - have) }
    } else if decimals > 0 { s += "." + String(repeating: "0", count: decimals) }
    return s
}
