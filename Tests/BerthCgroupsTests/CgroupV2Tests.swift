@testable import BerthCgroups
import BerthSystem
import BerthTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A fake cgroup2 tree of plain files in a temporary directory, for the file formats.
final class FakeCgroup2Tree {
    let root: String
    init() throws {
        root = try FileIO.makeTemporaryDirectory(prefix: "berth-cg2-\(getpid())-")
        try put("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
        try put("cgroup.subtree_control", "")
    }
    /// Creates (or replaces) `root/relative` with `text`.
    func put(_ relative: String, _ text: String) throws {
        try FileIO.writeAtomically(root + "/" + relative, text)
    }
    func get(_ relative: String) throws -> String { try FileIO.read(root + "/" + relative) }
    deinit { try? FileIO.removeTree(root) }
}

@Suite struct CgroupV2FakeTreeTests {
    /// Creates the group's directory through the driver, then the empty control files a kernel would show.
    func makeGroup(_ tree: FakeCgroup2Tree, files: [String]) throws -> CgroupV2Driver {
        let driver = CgroupV2Driver(name: "berth/c1", root: tree.root)
        try driver.create()
        for f in files { try tree.put("berth/c1/" + f, "") }
        return driver
    }

    @Test func createEnablesControllersInEachParent() throws {
        let tree = try FakeCgroup2Tree()
        _ = try makeGroup(tree, files: [])
        #expect(try tree.get("cgroup.subtree_control") == "+cpu +cpuset +io +memory +pids")
        #expect(FileIO.isDirectory(tree.root + "/berth/c1"))
    }

    @Test func limitsAreWrittenInV2Formats() throws {
        let tree = try FakeCgroup2Tree()
        let driver = try makeGroup(tree, files: ["memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max",
                                                 "cpuset.cpus", "cpuset.mems", "io.weight"])
        var limits = CgroupLimits(memoryBytes: 64 << 20, memorySwapBytes: 96 << 20, cpuShares: 1024, pidsMax: 50,
                                  cpusetCpus: "0-1", cpusetMems: "0", blkioWeight: 500)
        limits.setCPUs(0.5)
        try driver.apply(limits)
        #expect(try tree.get("berth/c1/memory.max") == "\(64 << 20)")
        #expect(try tree.get("berth/c1/memory.swap.max") == "\(32 << 20)")  // v2 limits swap alone
        #expect(try tree.get("berth/c1/cpu.max") == "50000 100000")
        #expect(try tree.get("berth/c1/cpu.weight") == "39")
        #expect(try tree.get("berth/c1/pids.max") == "50")
        #expect(try tree.get("berth/c1/cpuset.cpus") == "0-1")
        #expect(try tree.get("berth/c1/cpuset.mems") == "0")
        #expect(try tree.get("berth/c1/io.weight") == "default \(CgroupV2Driver.ioWeight(blkioWeight: 500))")
    }

    @Test func unlimitedValuesAreWrittenAsMax() throws {
        let tree = try FakeCgroup2Tree()
        let driver = try makeGroup(tree, files: ["memory.max", "memory.swap.max", "cpu.max", "pids.max"])
        try driver.apply(CgroupLimits(memoryBytes: -1, memorySwapBytes: -1, cpuQuotaMicros: -1, cpuPeriodMicros: 50_000, pidsMax: -1))
        #expect(try tree.get("berth/c1/memory.max") == "max")
        #expect(try tree.get("berth/c1/memory.swap.max") == "max")
        #expect(try tree.get("berth/c1/cpu.max") == "max 50000")
        #expect(try tree.get("berth/c1/pids.max") == "max")
    }

    @Test func bfqWeightIsPreferredWhenPresent() throws {
        let tree = try FakeCgroup2Tree()
        let driver = try makeGroup(tree, files: ["io.weight", "io.bfq.weight"])
        try driver.apply(CgroupLimits(blkioWeight: 300))
        #expect(try tree.get("berth/c1/io.bfq.weight") == "300")
        #expect(try tree.get("berth/c1/io.weight") == "")
    }

    @Test func aMissingFileIsReportedByNameAndController() throws {
        let tree = try FakeCgroup2Tree()
        let driver = try makeGroup(tree, files: ["memory.max"])
        #expect { try driver.apply(CgroupLimits(pidsMax: 5)) } throws: { error in
            guard let e = error as? BerthError else { return false }
            return e.code == .unsupported && e.message.contains("pids.max") && e.message.contains("pids cgroup controller")
        }
    }

    @Test func statsAreReadFromV2Files() throws {
        let tree = try FakeCgroup2Tree()
        let driver = try makeGroup(tree, files: [])
        try tree.put("berth/c1/memory.current", "1234567\n")
        try tree.put("berth/c1/memory.peak", "2345678\n")
        try tree.put("berth/c1/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
        try tree.put("berth/c1/pids.current", "3\n")
        try tree.put("berth/c1/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n")
        try tree.put("berth/c1/cgroup.procs", "12\n34\n12\n")
        try tree.put("berth/c1/memory.stat", "anon 1000\nfile 4096\nactive_file 96\ninactive_file 4000\n")
        try tree.put("berth/c1/io.stat", "8:0 rbytes=4096 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n259:0 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n")
        let stats = try driver.stats()
        #expect(stats == CgroupStats(memoryUsage: 1_234_567, memoryPeak: 2_345_678, cpuUsageNanos: 1_500_000,
                                     pidsCurrent: 3, oomKills: 2, memoryInactiveFile: 4000, ioReadBytes: 4196, ioWriteBytes: 512))
        #expect(stats.memoryUsageWithoutCache == 1_230_567)
        #expect(try driver.processes() == [12, 34])
    }

    /// Block I/O in both formats: v1 `blkio.throttle.io_service_bytes_recursive`, v2 `io.stat`.
    @Test func blockIOIsSummedOverDevices() {
        let v1 = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 4608\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 4608\n"
            + "8:16 Read 100\n8:16 Write 1\nTotal 4709\n"
        #expect(ControlFiles.ioBytes(v1) == (read: 4196, write: 513))
        #expect(ControlFiles.ioBytes("8:0 rbytes=7 wbytes=9 rios=1 wios=1\n") == (read: 7, write: 9))
        #expect(ControlFiles.ioBytes("") == (read: 0, write: 0))
    }

    @Test func freezeKillAndAddUseTheCgroupFiles() throws {
        let tree = try FakeCgroup2Tree()
        let driver = try makeGroup(tree, files: ["cgroup.freeze", "cgroup.kill", "cgroup.procs"])
        try tree.put("berth/c1/cgroup.events", "populated 1\nfrozen 1\n")
        try driver.freeze()
        #expect(try tree.get("berth/c1/cgroup.freeze") == "1")
        try driver.kill()
        #expect(try tree.get("berth/c1/cgroup.kill") == "1")
        try driver.add(pid: 4242)
        #expect(try tree.get("berth/c1/cgroup.procs") == "4242")
    }

    @Test func sharesMapOntoWeights() {
        #expect(CgroupV2Driver.cpuWeight(shares: 2) == 1)
        #expect(CgroupV2Driver.cpuWeight(shares: 1024) == 39)
        #expect(CgroupV2Driver.cpuWeight(shares: 262_144) == 10_000)
        #expect(CgroupV2Driver.ioWeight(blkioWeight: 10) == 1)
        #expect(CgroupV2Driver.ioWeight(blkioWeight: 1000) == 10_000)
    }
}

/// The real cgroup2 tree, as far as this host offers it (on a hybrid host: no controllers).
@Suite struct CgroupV2KernelTests {
    @Test func createJoinFreezeKillAndRemoveOnTheRealUnifiedTree() throws {
        let hierarchy = try CgroupHierarchy.detect()
        guard let unified = hierarchy.unifiedMount else { return }
        let top = testName("cgt")
        let driver = CgroupV2Driver(name: "\(top)/c", root: unified)
        let cgroup = try Cgroup.create(driver: driver, limits: CgroupLimits())
        defer {
            try? cgroup.killAll()
            try? cgroup.destroy()
            #expect(!FileIO.exists(unified + "/" + top))
        }
        #expect(FileIO.isDirectory(unified + "/\(top)/c"))
        let child = try GatedProcess(script: "while :; do :; done")
        try cgroup.add(pid: child.pid)
        child.release()
        #expect(try cgroup.processes() == [child.pid])
        if FileIO.exists(driver.path + "/cgroup.freeze") {
            try cgroup.freeze()
            #expect(try FileIO.read(driver.path + "/cgroup.events").contains("frozen 1"))
            try cgroup.thaw()
        }
        try cgroup.killAll()
        #expect(child.wait() == 128 + SIGKILL)
        try cgroup.destroy()
        #expect(!FileIO.exists(unified + "/" + top))
    }

    @Test func aLimitWithoutItsControllerFailsAndRollsBack() throws {
        let hierarchy = try CgroupHierarchy.detect()
        guard let unified = hierarchy.unifiedMount, !hierarchy.unifiedControllers.contains("pids") else { return }
        let top = testName("cgt")
        let driver = CgroupV2Driver(name: "\(top)/c", root: unified)
        #expect { try Cgroup.create(driver: driver, limits: CgroupLimits(pidsMax: 5)) } throws: { error in
            (error as? BerthError)?.code == .unsupported
        }
        #expect(!FileIO.exists(unified + "/" + top))
    }
}
