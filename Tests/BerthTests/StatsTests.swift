import BerthCgroups
import BerthSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

/// `stats`: readings of a running container and Docker's table.
@Suite struct StatsTests {
    @Test func sizesAndRowsLookLikeDockers() throws {
        #expect(StatsListing.binarySize(0) == "0B")
        #expect(StatsListing.binarySize(1536) == "1.5KiB")
        #expect(StatsListing.binarySize(1_577_058) == "1.504MiB")
        #expect(StatsListing.binarySize(64 << 20) == "64MiB")
        #expect(StatsListing.decimalSize(999) == "999B")
        #expect(StatsListing.decimalSize(1234) == "1.23kB")
        #expect(StatsListing.decimalSize(45_678_901) == "45.7MB")
        let id = try ContainerID(String(repeating: "ab", count: 32))
        #expect(StatsListing.row(id: id, name: "gone", earlier: nil, now: nil)
                == ["abababababab", "gone", "0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0"])
        let before = ContainerStats(id: id, name: "w", cgroup: CgroupStats(cpuUsageNanos: 1_000_000_000), systemCPUNanos: 10_000_000_000,
                                    onlineCPUs: 2, memoryLimit: 64 << 20, networkReceived: 0, networkSent: 0)
        var after = before
        after.cgroup = CgroupStats(memoryUsage: 8 << 20, cpuUsageNanos: 1_500_000_000, pidsCurrent: 3, memoryInactiveFile: 1 << 20,
                                   ioReadBytes: 4096, ioWriteBytes: 0)
        after.systemCPUNanos = 12_000_000_000  // 2 s of host CPU time (1 s on each of 2 CPUs); 0.5 s used
        after.networkReceived = 1234
        after.networkSent = 648
        #expect(after.cpuPercent(since: before) == 50)
        #expect(StatsListing.row(id: id, name: "w", earlier: before, now: after)
                == ["abababababab", "w", "50.00%", "7MiB / 64MiB", "10.94%", "1.23kB / 648B", "4.1kB / 0B", "3"])
    }

    @Test func networkCountersSkipLoopback() {
        let dev = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo:    5000      50    0    0    0     0          0         0     5000      50    0    0    0     0       0          0
          eth0:    1234      10    0    0    0     0          0         0      648       8    0    0    0     0       0          0
        """
        let bytes = ContainerStats.networkBytes(devText: dev)
        #expect(bytes.received == 1234 && bytes.sent == 648)
    }

    /// A busy container with --memory 64m that pinged its gateway: CPU, memory, limit, traffic, pids.
    @Test func readingsOfABusyContainer() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let script = "gw=$(ip route | awk '/default/ {print $3}'); ping -c 2 -W 1 $gw >/dev/null; echo pinged; while :; do :; done"
        let running = try f.run(["sh", "-c", script], name: "busy") { $0.memoryBytes = 64 << 20 }
        defer { _ = try? f.engine.remove(running.id.full, force: true) }
        try f.waitForLog(running.id, containing: "pinged")
        let first = try f.engine.stats("busy")
        usleep(500_000)
        let second = try f.engine.stats("busy")
        #expect(second.cpuPercent(since: first) > 30, "a busy loop uses most of a CPU")
        #expect(second.memoryLimit == 64 << 20)
        #expect(second.cgroup.memoryUsage > 0 && second.memoryPercent > 0)
        #expect(second.cgroup.pidsCurrent >= 1)
        #expect(second.networkSent >= 2 * 98 && second.networkReceived >= 2 * 98, "two pings each way")
        #expect(second.name == "busy")
        try f.engine.stop("busy", timeout: 0.1)
        #expect {
            try f.engine.stats("busy")
        } throws: { ($0 as? BerthError)?.message == "Container \(running.id.full) is not running" }
    }

    @Test func cliStatsNoStream() throws {
        let (f, _, b) = try cliFixture()
        defer { f.remove() }
        _ = try f.host.sh("\(b) run -d --name st -m 32m busybox sleep 60")
        defer { _ = try? f.host.sh("\(b) rm -f st") }
        let table = try f.host.sh("\(b) stats --no-stream st")
        let lines = table.split(separator: "\n")
        #expect(lines.count == 2, "\(table)")
        #expect(lines.first?.hasPrefix("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT") == true, "\(table)")
        #expect(lines.last?.contains(" st ") == true && lines.last?.contains(" / 32MiB ") == true, "\(table)")
    }
}
