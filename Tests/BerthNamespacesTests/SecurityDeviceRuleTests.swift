import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SecurityDeviceRuleTests {
    static let hierarchy = "/sys/fs/cgroup/devices"

    @Test(.enabled(if: FileIO.exists(hierarchy + "/devices.allow")))
    func dockerDefaultRulesLandInAV1DevicesCgroup() throws {
        let dir = Self.hierarchy + "/" + testName("bsec")
        guard mkdir(dir, 0o755) == 0 else { throw BerthError.system("mkdir \(dir)") }
        defer { rmdir(dir) }
        try DeviceRule.apply(DeviceRule.dockerDefault, toV1Directory: dir)
        let list = try FileIO.read(dir + "/devices.list").split(separator: "\n").map(String.init)
        #expect(!list.contains("a *:* rwm"))
        for line in ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                     "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm", "c 10:229 rwm"] {
            #expect(list.contains(line), "\(line) missing from \(list)")
        }
        #expect(list.count == 13)
        // The host's disk is not usable: no rule names block devices for reading or writing.
        #expect(!list.contains { $0.hasPrefix("b ") && $0.hasSuffix("rw") })
    }

    @Test func notADevicesCgroupIsAClearError() throws {
        let dir = try FileIO.makeTemporaryDirectory(prefix: "berth-secdev-\(getpid())-")
        defer { try? FileIO.removeTree(dir) }
        let e = #expect(throws: BerthError.self) { try DeviceRule.apply(DeviceRule.dockerDefault, toV1Directory: dir) }
        #expect(e?.code == .notFound && e?.message.contains(dir) == true)
        #expect(!FileIO.exists(dir + "/devices.deny"))
    }
}
