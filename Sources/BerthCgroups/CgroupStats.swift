/// Resource usage of a ``Cgroup``, read from the kernel's accounting files.
///
/// A counter the kernel does not offer on this host (for example `memory.peak` before Linux 5.19)
/// reads as 0.
public struct CgroupStats: Sendable, Codable, Equatable {
    /// Memory in use now, in bytes (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    public var memoryUsage: UInt64
    /// The highest memory use seen, in bytes (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`).
    public var memoryPeak: UInt64
    /// CPU time used by all tasks, in nanoseconds (v1 `cpuacct.usage`, v2 `cpu.stat` usage_usec × 1000).
    public var cpuUsageNanos: UInt64
    /// The number of tasks now (`pids.current`).
    public var pidsCurrent: UInt64
    /// How many tasks the OOM killer killed in this group (v1 `memory.oom_control` oom_kill,
    /// v2 `memory.events` oom_kill).
    public var oomKills: UInt64
    /// Page cache that is inactive, in bytes (v1 `memory.stat` total_inactive_file, v2
    /// `memory.stat` inactive_file): what `docker stats` subtracts from ``memoryUsage``, since the
    /// kernel drops it first.
    public var memoryInactiveFile: UInt64
    /// Bytes read from block devices (v1 `blkio.throttle.io_service_bytes_recursive` Read rows,
    /// v2 `io.stat` rbytes), summed over devices.
    public var ioReadBytes: UInt64
    /// Bytes written to block devices (the Write rows, v2 wbytes), summed over devices.
    public var ioWriteBytes: UInt64

    /// - Parameters:
    ///   - memoryUsage: Bytes in use.
    ///   - memoryPeak: Highest bytes in use.
    ///   - cpuUsageNanos: CPU time in nanoseconds.
    ///   - pidsCurrent: Number of tasks.
    ///   - oomKills: Number of OOM kills.
    ///   - memoryInactiveFile: Inactive page cache bytes.
    ///   - ioReadBytes: Bytes read from block devices.
    ///   - ioWriteBytes: Bytes written to block devices.
    public init(memoryUsage: UInt64 = 0, memoryPeak: UInt64 = 0, cpuUsageNanos: UInt64 = 0,
                pidsCurrent: UInt64 = 0, oomKills: UInt64 = 0, memoryInactiveFile: UInt64 = 0,
                ioReadBytes: UInt64 = 0, ioWriteBytes: UInt64 = 0) {
        self.memoryUsage = memoryUsage
        self.memoryPeak = memoryPeak
        self.cpuUsageNanos = cpuUsageNanos
        self.pidsCurrent = pidsCurrent
        self.oomKills = oomKills
        self.memoryInactiveFile = memoryInactiveFile
        self.ioReadBytes = ioReadBytes
        self.ioWriteBytes = ioWriteBytes
    }

    /// Memory in use less inactive page cache, as `docker stats` shows it.
    public var memoryUsageWithoutCache: UInt64 {
        memoryInactiveFile < memoryUsage ? memoryUsage - memoryInactiveFile : memoryUsage
    }
}
