import BerthCgroups
import BerthSystem
import BerthTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Creates `<unique>/c` with `limits`, runs `body`, then kills, destroys and checks nothing is left.
func withTestCgroup(_ limits: CgroupLimits = CgroupLimits(), _ body: (Cgroup) throws -> Void) throws {
    let top = testName("cgt")
    let cgroup = try Cgroup.create(name: "\(top)/c", limits: limits)
    defer {
        try? cgroup.killAll()
        try? cgroup.destroy()
        for dir in cgroup.paths.values {
            #expect(!FileIO.exists(dir), "left behind: \(dir)")
            let parent = String(dir.dropLast(2))
            #expect(!FileIO.exists(parent), "left behind: \(parent)")
        }
    }
    try body(cgroup)
}

/// The v1 directory of `controller` for the group.
func dir(_ cgroup: Cgroup, _ controller: String) throws -> String {
    try #require(cgroup.paths[controller], "no \(controller) path in \(cgroup.paths)")
}

func read(_ path: String) throws -> String { try FileIO.read(path).trimmingSpaces() }

@Suite struct CgroupKernelTests {
    let hierarchy = try! CgroupHierarchy.detect()

    @Test func detectsThisHostsLayout() throws {
        let v1 = FileIO.isDirectory("/sys/fs/cgroup/memory") && FileIO.exists("/sys/fs/cgroup/memory/cgroup.procs")
        let v2 = FileIO.exists("/sys/fs/cgroup/unified/cgroup.controllers") || FileIO.exists("/sys/fs/cgroup/cgroup.controllers")
        #expect(hierarchy.mode == (v1 && v2 ? .hybrid : v1 ? .legacy : .unified))
        if hierarchy.mode == .hybrid {
            #expect(hierarchy.v1Mounts["memory"] == "/sys/fs/cgroup/memory")
            #expect(hierarchy.unifiedMount == "/sys/fs/cgroup/unified")
            #expect(hierarchy.ownCgroups["memory"] != nil)
        }
    }

    @Test func limitFilesHoldTheWrittenValues() throws {
        guard hierarchy.mode != .unified else { return }
        var limits = CgroupLimits(memoryBytes: 64 << 20, memorySwapBytes: 96 << 20, cpuShares: 512, pidsMax: 42,
                                  cpusetCpus: "0", cpusetMems: "0", blkioWeight: 300)
        limits.setCPUs(1.5)
        try withTestCgroup(limits) { cg in
            let memory = try dir(cg, "memory")
            #expect(try read(memory + "/memory.limit_in_bytes") == "\(64 << 20)")
            #expect(try read(memory + "/memory.memsw.limit_in_bytes") == "\(96 << 20)")
            let cpu = try dir(cg, "cpu")
            #expect(try read(cpu + "/cpu.shares") == "512")
            #expect(try read(cpu + "/cpu.cfs_quota_us") == "150000")
            #expect(try read(cpu + "/cpu.cfs_period_us") == "100000")
            #expect(try read(try dir(cg, "pids") + "/pids.max") == "42")
            #expect(try read(try dir(cg, "cpuset") + "/cpuset.cpus") == "0")
            #expect(try read(try dir(cg, "cpuset") + "/cpuset.mems") == "0")
            let blkio = try dir(cg, "blkio")
            let weightFile = FileIO.exists(blkio + "/blkio.weight") ? "/blkio.weight" : "/blkio.bfq.weight"
            #expect(try read(blkio + weightFile).hasSuffix("300"))

            // Raising memory above the old memory+swap needs memsw first; lowering needs memory first.
            try cg.update(CgroupLimits(memoryBytes: 200 << 20, memorySwapBytes: 300 << 20))
            #expect(try read(memory + "/memory.limit_in_bytes") == "\(200 << 20)")
            #expect(try read(memory + "/memory.memsw.limit_in_bytes") == "\(300 << 20)")
            try cg.update(CgroupLimits(memoryBytes: 16 << 20, memorySwapBytes: 16 << 20))
            #expect(try read(memory + "/memory.limit_in_bytes") == "\(16 << 20)")
            #expect(try read(memory + "/memory.memsw.limit_in_bytes") == "\(16 << 20)")
            try cg.update(CgroupLimits(memoryBytes: -1, memorySwapBytes: -1, cpuQuotaMicros: -1, pidsMax: -1))
            #expect(try read(memory + "/memory.limit_in_bytes") == "9223372036854771712")
            #expect(try read(cpu + "/cpu.cfs_quota_us") == "-1")
            #expect(try read(try dir(cg, "pids") + "/pids.max") == "max")
        }
    }

    @Test func memoryLimitKillsAnAllocatorAndCountsTheOOMKill() throws {
        guard hierarchy.mode != .unified else { return }
        try withTestCgroup(CgroupLimits(memoryBytes: 32 << 20, memorySwapBytes: 32 << 20)) { cg in
            // dd reads 128 MiB of zeros into one buffer, touching every page of it.
            let child = try GatedProcess(script: "exec dd if=/dev/zero of=/dev/null bs=128M count=1")
            try cg.add(pid: child.pid)
            #expect(child.wait() == 128 + SIGKILL)
            let stats = try cg.stats()
            #expect(stats.oomKills >= 1)
            #expect(stats.memoryPeak > 16 << 20 && stats.memoryPeak <= 32 << 20)
        }
    }

    @Test func pidsLimitMakesForkFail() throws {
        guard hierarchy.mode != .unified else { return }
        try withTestCgroup(CgroupLimits(pidsMax: 2)) { cg in
            // The shell is one task, the first sleep the second; the second fork must fail.
            let child = try GatedProcess(script: "exec 2>/dev/null; sleep 30 & sleep 30 & wait")
            try cg.add(pid: child.pid)
            child.release()
            let failed = try waitUntil { (try read(try dir(cg, "pids") + "/pids.events")).hasSuffix(" 0") == false }
            #expect(failed, "pids.events never counted a refused fork")
            try cg.killAll()
            child.wait()
        }
    }

    @Test func halfACPUCapsABusyLoop() throws {
        guard hierarchy.mode != .unified else { return }
        var limits = CgroupLimits()
        limits.setCPUs(0.5)
        try withTestCgroup(limits) { cg in
            // Two busy loops could use two cores; the quota holds them to half of one together.
            let child = try GatedProcess(script: "while :; do :; done & while :; do :; done")
            try cg.add(pid: child.pid)
            child.release()
            usleep(200_000)
            let start = try cg.stats().cpuUsageNanos, t0 = monotonic()
            usleep(1_000_000)
            let used = Double(try cg.stats().cpuUsageNanos - start) / 1e9, elapsed = monotonic() - t0
            let share = used / elapsed
            #expect(share > 0.05 && share < 0.7, "busy loops used \(share) of a core under a 0.5 CPU quota")
            try cg.killAll()
            child.wait()
        }
    }

    @Test func freezeStopsTasksAndThawLetsThemRun() throws {
        guard hierarchy.mode != .unified else { return }
        try withTestCgroup { cg in
            let child = try GatedProcess(script: "while :; do :; done")
            try cg.add(pid: child.pid)
            child.release()
            try cg.freeze()
            #expect(try read(try dir(cg, "freezer") + "/freezer.state") == "FROZEN")
            let frozenAt = try cg.stats().cpuUsageNanos
            usleep(200_000)
            #expect(try cg.stats().cpuUsageNanos == frozenAt, "a frozen task used CPU")
            try cg.thaw()
            #expect(try read(try dir(cg, "freezer") + "/freezer.state") == "THAWED")
            #expect(try waitUntil { try cg.stats().cpuUsageNanos > frozenAt }, "a thawed task never ran")
            try cg.killAll()
            #expect(child.wait() == 128 + SIGKILL)
        }
    }

    @Test func killAllKillsEveryTaskAndDestroyLeavesNothing() throws {
        guard hierarchy.mode != .unified else { return }
        let top = testName("cgt")
        let first = try Cgroup.create(name: "\(top)/a", limits: CgroupLimits())
        let second = try Cgroup.create(name: "\(top)/b", limits: CgroupLimits(pidsMax: 10))
        defer { try? first.destroy(); try? second.destroy() }
        let child = try GatedProcess(script: "sleep 100 & sleep 100 & sleep 100 & wait")
        try first.add(pid: child.pid)
        child.release()
        #expect(try waitUntil { try first.processes().count == 4 })
        #expect(try first.stats().pidsCurrent == 4)
        try first.killAll()
        #expect(child.wait() == 128 + SIGKILL)
        try first.destroy()
        try first.destroy()  // a second destroy is a no-op
        for dir in first.paths.values { #expect(!FileIO.exists(dir)) }
        // The shared parent stays while the second group lives in it, and goes with it.
        for (controller, dir) in second.paths { #expect(FileIO.exists(String(dir.dropLast(2))), "\(controller)") }
        try second.destroy()
        for dir in second.paths.values { #expect(!FileIO.exists(String(dir.dropLast(2))), "left behind: \(dir)") }
    }

    @Test func destroyRefusesAGroupWithLiveTasks() throws {
        guard hierarchy.mode != .unified else { return }
        try withTestCgroup { cg in
            let child = try GatedProcess(script: "sleep 100")
            try cg.add(pid: child.pid)
            child.release()
            #expect(throws: BerthError.self) { try cg.destroy() }
            #expect(try cg.processes().contains(child.pid))
        }
    }

    @Test func openFindsAnExistingGroup() throws {
        try withTestCgroup(CgroupLimits(pidsMax: 7)) { cg in
            let again = try Cgroup.open(name: cg.name)
            #expect(again.paths == cg.paths)
            #expect(try again.processes().isEmpty)
        }
        let top = testName("cgt")
        let a = try Cgroup.create(name: "\(top)/a", limits: CgroupLimits())
        defer { try? a.destroy() }
        let b = try Cgroup.create(name: "\(top)/b", limits: CgroupLimits())
        defer { try? b.destroy() }
        #expect(try Cgroup.list(under: top) == ["\(top)/a", "\(top)/b"])
        try a.destroy()
        try b.destroy()
        #expect(try Cgroup.list(under: top).isEmpty)
        #expect { try Cgroup.open(name: testName("cgt") + "/none") } throws: { ($0 as? BerthError)?.code == .notFound }
    }

    @Test func badInputGivesAClearErrorAndCreatesNothing() throws {
        let top = testName("cgt")
        func nothingCreated() -> Bool {
            hierarchy.v1Mounts.values.allSatisfy { !FileIO.exists($0 + "/" + top) }
                && !FileIO.exists((hierarchy.unifiedMount ?? "/nonexistent") + "/" + top)
        }
        for name in ["\(top)/../\(top)", "\(top)/.", "", "/", "\(top)//x"] {
            #expect { try Cgroup.create(name: name, limits: CgroupLimits()) } throws: { error in
                guard let e = error as? BerthError else { return false }
                return e.code == .invalidArgument && e.message.contains("cgroup name")
            }
        }
        for text in ["12q", "", "-1m", "99999999999p", "1.2.3g", "m"] {
            #expect { try CgroupLimits.parseMemory(text) } throws: { error in
                guard let e = error as? BerthError else { return false }
                return e.code == .invalidArgument && e.message.contains("\"\(text)\"")
            }
        }
        let bad = [CgroupLimits(memoryBytes: -5), CgroupLimits(memoryBytes: 64 << 20, memorySwapBytes: 32 << 20),
                   CgroupLimits(cpuShares: 1), CgroupLimits(cpuQuotaMicros: 10), CgroupLimits(pidsMax: 1, cpusetCpus: "1-0"),
                   CgroupLimits(blkioWeight: 5000)]
        for limits in bad {
            #expect { try Cgroup.create(name: "\(top)/c", limits: limits) } throws: { ($0 as? BerthError)?.code == .invalidArgument }
        }
        #expect(nothingCreated())
        // A limit the kernel refuses (CPUs that do not exist) rolls the creation back.
        #expect { try Cgroup.create(name: "\(top)/c", limits: CgroupLimits(cpusetCpus: "0-4000")) } throws: { error in
            (error as? BerthError)?.message.contains("cpuset.cpus") ?? false
        }
        #expect(nothingCreated())
        // An existing group is not adopted by create.
        try withTestCgroup { cg in
            #expect { try Cgroup.create(name: cg.name, limits: CgroupLimits()) } throws: { ($0 as? BerthError)?.code == .alreadyExists }
        }
    }
}

func monotonic() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Polls `condition` for up to 5 s.
func waitUntil(_ condition: () throws -> Bool) throws -> Bool {
    let deadline = monotonic() + 5
    while monotonic() < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}

@Suite struct CgroupConcurrencyTests {
    /// Groups that share a parent are created and destroyed at once from several threads: the
    /// parent comes and goes under them, and every step must still succeed and leave nothing.
    @Test func siblingsComeAndGoInParallel() async throws {
        let top = testName("cgt")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<3 {
                group.addTask {
                    for round in 0..<8 {
                        let cg = try Cgroup.create(name: "\(top)/w\(worker)r\(round)", limits: CgroupLimits(pidsMax: 5))
                        try cg.destroy()
                    }
                }
            }
            try await group.waitForAll()
        }
        let hierarchy = try CgroupHierarchy.detect()
        for mount in Set(hierarchy.v1Mounts.values) + [hierarchy.unifiedMount].compactMap({ $0 }) {
            #expect(!FileIO.exists(mount + "/" + top), "left behind in \(mount)")
        }
    }
}

@Test func warmingUpAMigrationMovesNothing() throws {
    let before = try FileIO.read("/proc/self/cgroup")
    let file = try #require(Cgroup.migrationWarmUpFile())
    Cgroup.warmUpMigration(file: file)
    #expect(try FileIO.read("/proc/self/cgroup") == before)
}

@Test func theMigrationWarmUpRunsWhileHeldAndUntilItsDeadline() throws {
    let warmUp = CgroupMigrationWarmUp()
    let before = try FileIO.read("/proc/self/cgroup")
    warmUp.begin()
    #expect(warmUp.isRunning)
    usleep(10_000)
    warmUp.end()
    var waited = 0
    while warmUp.isRunning && waited < 200 { usleep(1000); waited += 1 }
    #expect(!warmUp.isRunning)
    warmUp.warm(for: 0.02)
    #expect(warmUp.isRunning)
    waited = 0
    while warmUp.isRunning && waited < 500 { usleep(1000); waited += 1 }
    #expect(!warmUp.isRunning)
    #expect(try FileIO.read("/proc/self/cgroup") == before)
}
