import BerthCgroups
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// One reading of a running container's resource use, as `docker stats` shows it: take two
/// readings a moment apart for the CPU share (``cpuPercent(since:)``).
public struct ContainerStats: Sendable {
    /// The container.
    public var id: ContainerID
    /// Its name.
    public var name: String
    /// Its cgroup's counters: CPU time, memory, block I/O, tasks.
    public var cgroup: CgroupStats
    /// The host's CPU time over all CPUs (busy and idle, from /proc/stat) in nanoseconds, read
    /// with ``cgroup``: the clock that ``cpuPercent(since:)`` divides by.
    public var systemCPUNanos: UInt64
    /// The CPUs online on the host.
    public var onlineCPUs: Int
    /// The memory limit: `--memory`, or the host's memory when there is none (as Docker shows it).
    public var memoryLimit: UInt64
    /// Bytes the container received over its network interfaces (loopback excluded).
    public var networkReceived: UInt64
    /// Bytes it sent.
    public var networkSent: UInt64

    /// The container's CPU use between `earlier` and this reading, Docker's way: its share of the
    /// host's CPU time times the number of CPUs, in percent (100 % is one busy CPU).
    public func cpuPercent(since earlier: ContainerStats) -> Double {
        guard cgroup.cpuUsageNanos >= earlier.cgroup.cpuUsageNanos, systemCPUNanos > earlier.systemCPUNanos else { return 0 }
        let used = Double(cgroup.cpuUsageNanos - earlier.cgroup.cpuUsageNanos)
        let elapsed = Double(systemCPUNanos - earlier.systemCPUNanos)
        return used / elapsed * Double(onlineCPUs) * 100
    }

    /// Memory in use (less inactive page cache) as a percentage of ``memoryLimit``.
    public var memoryPercent: Double {
        memoryLimit == 0 ? 0 : Double(cgroup.memoryUsageWithoutCache) / Double(memoryLimit) * 100
    }

    /// The host's total CPU time in nanoseconds: the first seven fields of /proc/stat's `cpu`
    /// line (user, nice, system, idle, iowait, irq, softirq, as Docker sums them), in clock ticks.
    static func hostCPUNanos() -> UInt64 {
        guard let text = try? FileIO.read("/proc/stat"),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return 0 }
        let ticks = line.split(separator: " ").dropFirst().prefix(7).compactMap { UInt64($0) }.reduce(0, +)
        let perSecond = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        return ticks * (1_000_000_000 / perSecond)
    }

    /// The host's memory (`MemTotal` in /proc/meminfo) in bytes.
    static func hostMemory() -> UInt64 {
        guard let text = try? FileIO.read("/proc/meminfo"),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
              let kib = line.split(separator: " ").dropFirst().first.flatMap({ UInt64($0) }) else { return 0 }
        return kib * 1024
    }

    /// Received and sent bytes of the interfaces other than loopback in the network namespace of
    /// `pid` (`/proc/<pid>/net/dev`).
    static func networkBytes(pid: Int32) -> (received: UInt64, sent: UInt64) {
        guard let text = try? FileIO.read("/proc/\(pid)/net/dev") else { return (0, 0) }
        return networkBytes(devText: text)
    }

    /// The sums of a `/proc/net/dev` table (`  eth0: rxbytes rxpackets … txbytes …`), loopback excluded.
    static func networkBytes(devText text: String) -> (received: UInt64, sent: UInt64) {
        var received: UInt64 = 0, sent: UInt64 = 0
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            guard String(line[..<colon]).trimmingSpaces() != "lo" else { continue }
            let fields = line[line.index(after: colon)...].split(separator: " ").compactMap { UInt64($0) }
            guard fields.count >= 16 else { continue }
            received &+= fields[0]
            sent &+= fields[8]
        }
        return (received, sent)
    }
}

extension Engine {
    /// Reads a running container's resource use (`docker stats`).
    /// - Parameter reference: Id, name or id prefix.
    /// - Throws: `invalidState` when it is not running.
    public func stats(_ reference: String) throws -> ContainerStats {
        let record = try store.find(reference)
        guard record.state.isRunning, record.state.pid > 0 else {
            throw BerthError(.invalidState, "Container \(record.id.full) is not running")
        }
        let counters = try containerCgroup(record).stats()
        let system = ContainerStats.hostCPUNanos()
        let host = ContainerStats.hostMemory()
        let limit = record.config.memoryBytes.map { UInt64(max($0, 0)) }.map { host > 0 ? min($0, host) : $0 } ?? host
        // Only a container with a network namespace of its own has traffic of its own to show.
        let net = record.config.networkMode == "bridge" ? ContainerStats.networkBytes(pid: record.state.pid) : (0, 0)
        return ContainerStats(id: record.id, name: record.name, cgroup: counters, systemCPUNanos: system,
                              onlineCPUs: max(sysconf(Int32(_SC_NPROCESSORS_ONLN)), 1), memoryLimit: limit,
                              networkReceived: net.0, networkSent: net.1)
    }
}

/// `docker stats`' table: `CONTAINER ID  NAME  CPU %  MEM USAGE / LIMIT  MEM %  NET I/O  BLOCK I/O  PIDS`.
public enum StatsListing {
    /// The header row.
    public static let header = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]

    /// One container's row from two readings (`earlier` for the CPU share); a container that was
    /// not running gets Docker's zeros.
    public static func row(id: ContainerID, name: String, earlier: ContainerStats?, now: ContainerStats?) -> [String] {
        guard let now else {
            return [id.short, name, "0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0"]
        }
        let cpu = earlier.map { now.cpuPercent(since: $0) } ?? 0
        return [id.short, name, percent(cpu),
                binarySize(now.cgroup.memoryUsageWithoutCache) + " / " + binarySize(now.memoryLimit),
                percent(now.memoryPercent),
                decimalSize(now.networkReceived) + " / " + decimalSize(now.networkSent),
                decimalSize(now.cgroup.ioReadBytes) + " / " + decimalSize(now.cgroup.ioWriteBytes),
                "\(now.cgroup.pidsCurrent)"]
    }

    /// `0.25%`.
    static func percent(_ value: Double) -> String { format("%.2f%%", value) }

    /// Memory sizes as Docker prints them: 4 significant digits, binary units (`1.504MiB`).
    public static func binarySize(_ bytes: UInt64) -> String {
        scaled(bytes, base: 1024, units: ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], format: "%.4g%s")
    }

    /// Traffic and I/O sizes as Docker prints them: 3 significant digits, decimal units (`1.2kB`).
    public static func decimalSize(_ bytes: UInt64) -> String {
        scaled(bytes, base: 1000, units: ["B", "kB", "MB", "GB", "TB", "PB"], format: "%.3g%s")
    }

    private static func scaled(_ bytes: UInt64, base: Double, units: [String], format pattern: String) -> String {
        var size = Double(bytes)
        var i = 0
        while size >= base && i < units.count - 1 {
            size /= base
            i += 1
        }
        return units[i].withCString { unit in format(pattern, size, unit) }
    }

    /// printf-style formatting (C's `%g` and `%f`, which Docker's Go formatting matches for these).
    private static func format(_ pattern: String, _ args: any CVarArg...) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = withVaList(args) { list in vsnprintf(&buffer, buffer.count, pattern, list) }
        return String(decoding: buffer.prefix(max(0, min(Int(n), buffer.count - 1))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
