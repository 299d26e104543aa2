import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// RFC 3339 timestamps as image configs carry them.
enum Timestamp {
    /// The current time as `2024-01-02T03:04:05.123456789Z`.
    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return format(seconds: Int64(ts.tv_sec), nanoseconds: Int(ts.tv_nsec))
    }

    static func format(seconds: Int64, nanoseconds: Int = 0) -> String {
        var t = time_t(seconds)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var s = "\(tmv.tm_year + 1900)-\(two(tmv.tm_mon + 1))-\(two(tmv.tm_mday))T\(two(tmv.tm_hour)):\(two(tmv.tm_min)):\(two(tmv.tm_sec))"
        if nanoseconds > 0 {
            let n = String(nanoseconds)
            s += "." + String(repeating: "0", count: 9 - n.count) + n
        }
        return s + "Z"
    }

    /// Seconds since the epoch of an RFC 3339 time (fraction and offset honoured), or nil.
    static func parse(_ text: String) -> Double? {
        let u = Array(text.utf8)
        guard u.count >= 19 else { return nil }
        func num(_ a: Int, _ b: Int) -> Int? {
            var v = 0
            for i in a..<b { guard u[i] >= 48 && u[i] <= 57 else { return nil }; v = v * 10 + Int(u[i] - 48) }
            return v
        }
        guard let y = num(0, 4), let mo = num(5, 7), let d = num(8, 10), let h = num(11, 13),
              let mi = num(14, 16), let se = num(17, 19) else { return nil }
        var tmv = tm()
        tmv.tm_year = Int32(y - 1900); tmv.tm_mon = Int32(mo - 1); tmv.tm_mday = Int32(d)
        tmv.tm_hour = Int32(h); tmv.tm_min = Int32(mi); tmv.tm_sec = Int32(se)
        var result = Double(timegm(&tmv))
        var i = 19
        if i < u.count && u[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            while i < u.count && u[i] >= 48 && u[i] <= 57 { result += Double(u[i] - 48) * scale; scale /= 10; i += 1 }
        }
        if i < u.count && (u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-")) && i + 6 <= u.count,
           let oh = num(i + 1, i + 3), let om = num(i + 4, i + 6) {
            let off = Double(oh * 3600 + om * 60)
            result += u[i] == UInt8(ascii: "+") ? -off : off
        }
        return result
    }

    /// Docker's "6 minutes ago" wording.
    static func ago(_ then: Double, now: Double) -> String {
        let d = max(0, now - then)
        func unit(_ n: Int, _ one: String, _ many: String) -> String { n == 1 ? one : "\(n) \(many)" }
        if d < 1 { return "Less than a second ago" }
        if d < 60 { return unit(Int(d), "1 second", "seconds") + " ago" }
        if d < 3600 { let m = Int(d / 60); return (m == 1 ? "About a minute" : "\(m) minutes") + " ago" }
        if d < 86400 * 2 { let h = Int((d / 3600).rounded()); return (h == 1 ? "About an hour" : "\(h) hours") + " ago" }
        if d < 86400 * 7 * 2 { return "\(Int(d / 86400)) days ago" }
        if d < 86400 * 30 * 2 { return "\(Int(d / (86400 * 7))) weeks ago" }
        if d < 86400 * 365 * 2 { return "\(Int(d / (86400 * 30))) months ago" }
        return "\(Int(d / (86400 * 365))) years ago"
    }

    static func realNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Docker's human sizes: decimal units, three significant digits ("1.98MB", "745kB", "0B").
func humanSize(_ bytes: Int64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"]
    var v = Double(bytes)
    var i = 0
    while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
    // %.4g then trimmed, like go-units' HumanSizeWithPrecision(size, 3).
    let digits = v >= 100 ? 0 : (v >= 10 ? 1 : 2)
    var s = fmtFixed(v, digits)
    if s.contains(".") {
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
    }
    return s + units[i]
}

func fmtFixed(_ x: Double, _ decimals: Int) -> String {
    var p = 1.0
    for _ in 0..<decimals { p *= 10 }
    let r = (x * p).rounded() / p
    var s = String(r)
    if decimals == 0, let dot = s.firstIndex(of: ".") { s = String(s[..<dot]) }
    return s
}
