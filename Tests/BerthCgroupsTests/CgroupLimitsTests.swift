import BerthCgroups
import BerthSystem
import Foundation
import Testing

@Suite struct CgroupLimitsTests {
    @Test func parsesMemorySizes() throws {
        #expect(try CgroupLimits.parseMemory("64m") == 64 << 20)
        #expect(try CgroupLimits.parseMemory("64M") == 64 << 20)
        #expect(try CgroupLimits.parseMemory("1g") == 1 << 30)
        #expect(try CgroupLimits.parseMemory("512k") == 512 << 10)
        #expect(try CgroupLimits.parseMemory("100b") == 100)
        #expect(try CgroupLimits.parseMemory("100") == 100)
        #expect(try CgroupLimits.parseMemory("2GB") == 2 << 30)
        #expect(try CgroupLimits.parseMemory("1.5g") == 3 << 29)
        #expect(try CgroupLimits.parseMemory("8191p") == 8191 << 50)
    }

    @Test func rejectsBadMemorySizes() {
        for text in ["12q", "", " ", "-1m", "8192p", "99999999999999999999", "1.2.3", ".5m", "m", "1mm", "1 m x"] {
            #expect(throws: BerthError.self, "\(text)") { try CgroupLimits.parseMemory(text) }
        }
    }

    @Test func setCPUsSetsQuotaAndPeriod() {
        var limits = CgroupLimits()
        limits.setCPUs(0.5)
        #expect(limits.cpuQuotaMicros == 50_000 && limits.cpuPeriodMicros == 100_000)
        limits.setCPUs(2)
        #expect(limits.cpuQuotaMicros == 200_000)
        limits.setCPUs(0.001)
        #expect(limits.cpuQuotaMicros == 1000)
        limits.setCPUs(0)
        #expect(limits.cpuQuotaMicros == -1)
        limits.setCPUs(.infinity)
        #expect(limits.cpuQuotaMicros == -1)
    }

    @Test func codableRoundTrip() throws {
        var limits = CgroupLimits(memoryBytes: 1 << 30, pidsMax: 10, cpusetCpus: "0")
        limits.setCPUs(1.25)
        let data = try JSONEncoder().encode(limits)
        #expect(try JSONDecoder().decode(CgroupLimits.self, from: data) == limits)
    }

    @Test func parsesHybridLegacyAndUnifiedMountTables() throws {
        let hybrid = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """
        let own = "4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/\n"
        let h = try CgroupHierarchy.parse(mountinfo: hybrid, procCgroup: own)
        #expect(h.mode == .hybrid)
        #expect(h.v1Mounts["cpu"] == "/sys/fs/cgroup/cpu,cpuacct" && h.v1Mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct")
        #expect(h.v1Mounts["name=systemd"] == "/sys/fs/cgroup/systemd")
        #expect(h.unifiedMount == "/sys/fs/cgroup/unified")
        #expect(h.ownCgroups["memory"] == "/process_api/abc" && h.ownCgroups[""] == "/")
        let v1 = try #require(h.driver(name: "berth/x") as? CgroupV1Driver)
        #expect(v1.paths["memory"] == "/sys/fs/cgroup/memory/berth/x")
        #expect(v1.paths["unified"] == "/sys/fs/cgroup/unified/berth/x")

        let legacy = try CgroupHierarchy.parse(mountinfo: "35 31 0:32 / /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup rw,memory", procCgroup: "")
        #expect(legacy.mode == .legacy && legacy.v1Mounts["memory"] == "/sys/fs/cgroup/mem ory")

        let unified = try CgroupHierarchy.parse(mountinfo: "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate", procCgroup: "0::/user.slice\n")
        #expect(unified.mode == .unified)
        #expect((unified.driver(name: "berth/x") as? CgroupV2Driver)?.path == "/sys/fs/cgroup/berth/x")

        #expect(throws: BerthError.self) { try CgroupHierarchy.parse(mountinfo: "1 0 0:1 / / rw - ext4 /dev/vda rw", procCgroup: "") }
    }
}
