import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// A wall-clock instant with nanosecond precision, written as Docker writes times
/// (RFC 3339 in UTC with nanoseconds: `2026-11-23T03:42:43.887918707Z`).
public struct Timestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Seconds since the Unix epoch.
    public var seconds: Int64
    /// Nanoseconds within the second, 0 ..< 1_000_000_000.
    public var nanoseconds: Int32

    /// - Parameters:
    ///   - seconds: Seconds since the epoch.
    ///   - nanoseconds: Nanoseconds within the second.
    public init(seconds: Int64, nanoseconds: Int32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    /// The current time (`CLOCK_REALTIME`).
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: Int32(ts.tv_nsec))
    }

    /// Go's zero time, which Docker shows for a container that never started or finished.
    public static let zero = Timestamp(seconds: -62_135_596_800)

    /// Whether this is Go's zero time.
    public var isZero: Bool { self == .zero }

    /// Seconds elapsed from `self` to `later` (negative when `later` is earlier).
    /// - Parameter later: The end of the interval.
    public func seconds(until later: Timestamp) -> Double {
        Double(later.seconds - seconds) + Double(later.nanoseconds - nanoseconds) / 1e9
    }

    /// RFC 3339 in UTC with the fraction trimmed of trailing zeros (Go's `RFC3339Nano`).
    public var description: String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ w: Int) -> String { String(v).leftPadded(to: w) }
        var s = "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
        s += "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2))"
        if nanoseconds != 0 {
            var frac = String(nanoseconds).leftPadded(to: 9)
            while frac.hasSuffix("0") { frac.removeLast() }
            s += "." + frac
        }
        return s + "Z"
    }

    /// Parses the form ``description`` writes (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`).
    /// - Parameter text: The timestamp text.
    public init(parsing text: String) throws {
        let bad = BerthError(.corrupt, "invalid timestamp \"\(text)\": expected YYYY-MM-DDTHH:MM:SS[.fraction]Z")
        let u = Array(text.utf8)
        guard u.count >= 20, u.last == UInt8(ascii: "Z"), u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"),
            u[10] == UInt8(ascii: "T"), u[13] == UInt8(ascii: ":"), u[16] == UInt8(ascii: ":")
        else { throw bad }
        func num(_ r: Range<Int>) throws -> Int32 {
            var v: Int32 = 0
            for i in r {
                guard (48...57).contains(u[i]) else { throw bad }
                v = v * 10 + Int32(u[i] - 48)
            }
            return v
        }
        var tm = tm()
        tm.tm_year = try num(0..<4) - 1900
        tm.tm_mon = try num(5..<7) - 1
        tm.tm_mday = try num(8..<10)
        tm.tm_hour = try num(11..<13)
        tm.tm_min = try num(14..<16)
        tm.tm_sec = try num(17..<19)
        var nanos: Int32 = 0
        if u.count > 20 {
            guard u[19] == UInt8(ascii: "."), u.count - 21 <= 9, u.count - 21 >= 1 else { throw bad }
            let digits = try num(20..<(u.count - 1))
            nanos = digits * Int32([1, 10, 100, 1000, 10000, 100_000, 1_000_000, 10_000_000, 100_000_000][9 - (u.count - 21)])
        } else if u.count != 20 { throw bad }
        self.init(seconds: Int64(timegm(&tm)), nanoseconds: nanos)
    }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public static func < (l: Timestamp, r: Timestamp) -> Bool {
        (l.seconds, l.nanoseconds) < (r.seconds, r.nanoseconds)
    }
}
