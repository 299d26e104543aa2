import BerthCgroups
import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Limits through BerthCgroups: the parent adds the child to its cgroup at the sync point.
@Suite struct ContainerLimitsTests {
    private func withCgroup<T>(_ limits: CgroupLimits, _ body: (Cgroup) throws -> T) throws -> T {
        let cgroup = try Cgroup.create(name: "berth-\(testName("t"))", limits: limits)
        defer { try? cgroup.killAll(); try? cgroup.destroy() }
        return try body(cgroup)
    }

    @Test func memoryLimitKillsAndTheOOMIsReported() throws {
        let f = try ContainerFixture()
        var limits = CgroupLimits()
        limits.memoryBytes = try CgroupLimits.parseMemory("32m")
        try withCgroup(limits) { cgroup in
            let r = try f.run(f.spec("exec tail /dev/zero")) { try cgroup.add(pid: $0.pid) }
            #expect(r.status == .signaled(SIGKILL), "\(r.output)")
            #expect(!r.output.contains("survived"))
            #expect(try cgroup.stats().oomKills >= 1)
        }
    }

    @Test func pidsLimitMakesForkFail() throws {
        let f = try ContainerFixture()
        var limits = CgroupLimits()
        limits.pidsMax = 4
        try withCgroup(limits) { cgroup in
            let r = try f.run(f.spec("i=0; while [ $i -lt 8 ]; do sleep 5 & i=$((i+1)); done; echo done")) { try cgroup.add(pid: $0.pid) }
            #expect(r.output.contains("fork"), "\(r.output)")
        }
    }

    @Test func halfACPUCapsABusyLoop() throws {
        let f = try ContainerFixture()
        var limits = CgroupLimits()
        limits.setCPUs(0.5)
        try withCgroup(limits) { cgroup in
            let c = try ContainerProcess.spawn(f.spec("while :; do :; done"), stdio: .null) { try cgroup.add(pid: $0.pid) }
            var t0 = timespec(), t1 = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t0)
            let u0 = try cgroup.stats().cpuUsageNanos
            usleep(1_500_000)
            let u1 = try cgroup.stats().cpuUsageNanos
            clock_gettime(CLOCK_MONOTONIC, &t1)
            try c.kill(SIGKILL)
            try c.wait()
            let wall = Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) / 1e9
            let share = Double(u1 - u0) / 1e9 / wall
            // A ratio of CPU time to elapsed time, with a wide band for a shared machine.
            #expect(share > 0.1 && share < 0.75, "cpu share \(share)")
        }
    }

    @Test func badMemoryTextIsAClearError() throws {
        #expect {
            _ = try CgroupLimits.parseMemory("12q")
        } throws: { e in
            "\(e)".contains("12q")
        }
    }

    @Test func failureAtStartLeavesNoProcessOrCgroup() throws {
        let f = try ContainerFixture()
        let name = "berth-\(testName("t"))"
        let cgroup = try Cgroup.create(name: name, limits: CgroupLimits())
        var pid: pid_t = 0
        do {
            _ = try ContainerProcess.spawn(ContainerSpec.make(rootfs: f.rootfs.path, args: ["/bin/nope"]), stdio: .null) {
                pid = $0.pid
                try cgroup.add(pid: $0.pid)
            }
            Issue.record("started a missing binary")
        } catch {}
        #expect(pid > 0)
        #expect(try cgroup.processes().isEmpty)
        #expect(kill(pid, 0) != 0)
        try cgroup.destroy()
        #expect(!FileIO.exists("/sys/fs/cgroup/memory/\(name)"))
        #expect(!FileIO.exists("/sys/fs/cgroup/pids/\(name)"))
    }
}
