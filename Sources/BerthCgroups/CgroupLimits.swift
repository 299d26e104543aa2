import BerthSystem

/// Resource limits for a ``Cgroup``, in Docker's terms.
///
/// Every field is optional: `nil` means "leave as it is" (the kernel default for a new cgroup).
/// The same value works on cgroup v1 and v2; each driver translates it into its own files
/// (for example ``cpuShares`` becomes `cpu.weight` on v2).
///
/// ```swift
/// var limits = CgroupLimits(memoryBytes: try CgroupLimits.parseMemory("64m"), pidsMax: 100)
/// limits.setCPUs(0.5)
/// ```
public struct CgroupLimits: Sendable, Codable, Equatable {
    /// The memory limit in bytes (`docker --memory`); `-1` means unlimited.
    public var memoryBytes: Int64?
    /// The memory plus swap limit in bytes (`docker --memory-swap`); `-1` means unlimited swap.
    /// Must be at least ``memoryBytes``. Setting it equal to ``memoryBytes`` forbids swap.
    public var memorySwapBytes: Int64?
    /// The relative CPU weight in cgroup v1 shares (2…262144, default 1024); converted to
    /// `cpu.weight` (1…10000) on cgroup v2.
    public var cpuShares: UInt64?
    /// The CPU time the group may use per period, in microseconds (≥ 1000); `-1` means unlimited.
    public var cpuQuotaMicros: Int64?
    /// The length of a CPU period in microseconds (1000…1000000, default 100000).
    public var cpuPeriodMicros: UInt64?
    /// The maximum number of tasks (`docker --pids-limit`); `0` or negative means unlimited.
    public var pidsMax: Int64?
    /// The CPUs the group may run on, in the kernel's list format (`"0-1"`, `"0,2"`).
    public var cpusetCpus: String?
    /// The memory nodes the group may use, in the kernel's list format (`"0"`).
    public var cpusetMems: String?
    /// The relative block I/O weight (10…1000, `docker --blkio-weight`).
    public var blkioWeight: UInt16?

    /// Limits with nothing set.
    public init() {}

    /// Limits with the given fields set; every parameter defaults to `nil` ("leave as it is").
    /// - Parameters:
    ///   - memoryBytes: Memory limit in bytes, `-1` for unlimited.
    ///   - memorySwapBytes: Memory plus swap limit in bytes, `-1` for unlimited swap.
    ///   - cpuShares: CPU shares (v1 scale, 2…262144).
    ///   - cpuQuotaMicros: CPU quota per period in microseconds, `-1` for unlimited.
    ///   - cpuPeriodMicros: CPU period in microseconds.
    ///   - pidsMax: Maximum number of tasks, `0` or negative for unlimited.
    ///   - cpusetCpus: Allowed CPUs (`"0-1"`).
    ///   - cpusetMems: Allowed memory nodes (`"0"`).
    ///   - blkioWeight: Block I/O weight (10…1000).
    public init(memoryBytes: Int64? = nil, memorySwapBytes: Int64? = nil, cpuShares: UInt64? = nil,
                cpuQuotaMicros: Int64? = nil, cpuPeriodMicros: UInt64? = nil, pidsMax: Int64? = nil,
                cpusetCpus: String? = nil, cpusetMems: String? = nil, blkioWeight: UInt16? = nil) {
        self.memoryBytes = memoryBytes
        self.memorySwapBytes = memorySwapBytes
        self.cpuShares = cpuShares
        self.cpuQuotaMicros = cpuQuotaMicros
        self.cpuPeriodMicros = cpuPeriodMicros
        self.pidsMax = pidsMax
        self.cpusetCpus = cpusetCpus
        self.cpusetMems = cpusetMems
        self.blkioWeight = blkioWeight
    }

    /// The default CPU period (100 ms), as Docker uses for `--cpus`.
    public static let defaultCPUPeriodMicros: UInt64 = 100_000

    /// Limits CPU time to `cpus` cores, like `docker --cpus`: the period becomes 100000 µs and the
    /// quota `cpus × period` (at least 1000 µs, the kernel's minimum). Zero, a negative or a
    /// non-finite value removes the quota (`-1`).
    /// - Parameter cpus: The number of cores, for example `0.5` or `2`.
    public mutating func setCPUs(_ cpus: Double) {
        let period = Self.defaultCPUPeriodMicros
        cpuPeriodMicros = period
        guard cpus.isFinite, cpus > 0 else { cpuQuotaMicros = -1; return }
        let quota = (cpus * Double(period)).rounded()
        cpuQuotaMicros = quota >= 9.0e18 ? -1 : max(1000, Int64(quota))
    }

    /// Parses a Docker-style memory size: a number with an optional unit `b`, `k`, `m`, `g`, `t`
    /// or `p` (either case, optionally followed by `b`, powers of 1024): `"64m"`, `"1g"`, `"512k"`,
    /// `"100b"`, `"100"`, `"1.5g"`.
    /// - Parameter text: The size as typed by a user.
    /// - Returns: The size in bytes.
    /// - Throws: ``BerthError`` with code `.invalidArgument` naming `text` when it is empty, negative,
    ///   has an unknown unit or does not fit in 64 bits.
    public static func parseMemory(_ text: String) throws -> Int64 {
        func bad(_ why: String) -> BerthError {
            BerthError(.invalidArgument, "invalid memory size \"\(text)\": \(why)")
        }
        let s = text.trimmingSpaces().lowercased()
        guard !s.isEmpty else { throw bad("empty") }
        if s.hasPrefix("-") { throw bad("negative") }
        let numberEnd = s.firstIndex { !($0.isASCII && ($0.isNumber || $0 == ".")) } ?? s.endIndex
        let number = s[..<numberEnd]
        var unit = s[numberEnd...]
        guard !number.isEmpty, number.first != ".", number.filter({ $0 == "." }).count <= 1 else {
            throw bad("expected a number with an optional unit b, k, m, g, t or p")
        }
        if unit.count == 2, unit.last == "b" { unit = unit.dropLast() }
        let multiplier: Int64
        switch unit {
        case "", "b": multiplier = 1
        case "k": multiplier = 1 << 10
        case "m": multiplier = 1 << 20
        case "g": multiplier = 1 << 30
        case "t": multiplier = 1 << 40
        case "p": multiplier = 1 << 50
        default: throw bad("unknown unit \"\(unit)\" (expected b, k, m, g, t or p)")
        }
        let parts = number.split(separator: ".", omittingEmptySubsequences: false)
        guard let whole = Int64(parts[0]) else { throw bad("too large") }
        let (product, overflow) = whole.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw bad("too large") }
        var bytes = product
        if parts.count == 2, !parts[1].isEmpty {
            // The fraction in Double: an error of at most a byte or so, far below a page.
            guard let fraction = Double("0." + parts[1]) else { throw bad("bad fraction") }
            let (sum, over) = bytes.addingReportingOverflow(Int64((fraction * Double(multiplier)).rounded(.down)))
            guard !over else { throw bad("too large") }
            bytes = sum
        }
        return bytes
    }

    /// Checks the values against the kernel's ranges, so that bad input fails before anything is
    /// created.
    /// - Throws: ``BerthError`` `.invalidArgument` naming the field and the value.
    public func validate() throws {
        func bad(_ what: String) -> BerthError { BerthError(.invalidArgument, "invalid cgroup limit: \(what)") }
        if let m = memoryBytes, m < -1 || m == 0 { throw bad("memory \(m) bytes (expected > 0, or -1 for unlimited)") }
        if let s = memorySwapBytes {
            if s < -1 || s == 0 { throw bad("memory+swap \(s) bytes (expected > 0, or -1 for unlimited)") }
            if s > 0, let m = memoryBytes, m > 0, s < m {
                throw bad("memory+swap \(s) bytes is below memory \(m) bytes (memory+swap includes memory)")
            }
            if s > 0, memoryBytes == nil || memoryBytes == -1 {
                throw bad("memory+swap \(s) bytes needs a memory limit too")
            }
        }
        if let shares = cpuShares, shares < 2 || shares > 262_144 { throw bad("cpu shares \(shares) (expected 2…262144)") }
        if let q = cpuQuotaMicros, q != -1 && q < 1000 { throw bad("cpu quota \(q) µs (expected ≥ 1000, or -1 for unlimited)") }
        if let p = cpuPeriodMicros, p < 1000 || p > 1_000_000 { throw bad("cpu period \(p) µs (expected 1000…1000000)") }
        if let b = blkioWeight, b < 10 || b > 1000 { throw bad("blkio weight \(b) (expected 10…1000)") }
        for (field, list) in [("cpuset cpus", cpusetCpus), ("cpuset mems", cpusetMems)] {
            guard let list else { continue }
            guard Self.isValidList(list) else { throw bad("\(field) \"\(list)\" (expected a list like 0-2,4)") }
        }
    }

    /// Whether `text` is a kernel CPU/node list: comma-separated numbers or ranges `a-b` with a ≤ b.
    static func isValidList(_ text: String) -> Bool {
        guard !text.isEmpty else { return false }
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2 else { return false }
            let values = bounds.compactMap { b -> Int? in b.allSatisfy { $0.isASCII && $0.isNumber } ? Int(b) : nil }
            guard values.count == bounds.count else { return false }
            if values.count == 2 && values[0] > values[1] { return false }
        }
        return true
    }

    /// Whether no field is set.
    public var isEmpty: Bool { self == CgroupLimits() }
}
