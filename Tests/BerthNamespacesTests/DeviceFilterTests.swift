import BerthCgroups
import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The cgroup2 device filter (a BPF program), which replaces the v1 devices controller on pure
/// cgroup2 hosts. Tested on whatever cgroup2 hierarchy the machine mounts (the unified one of a
/// hybrid host, too): the container joins only the cgroup2 group, so only the filter decides.
@Suite(.enabled(if: (try? CgroupHierarchy.detect().unifiedMount) != nil))
struct DeviceFilterTests {
    /// A cgroup2 group of its own with `rules` attached; runs `script` in a container that
    /// joins it at the sync point, and removes the group afterwards.
    func run(_ script: String, rules: [DeviceRule]) throws -> (status: BerthNamespaces.ExitStatus, output: String) {
        guard let mount = try CgroupHierarchy.detect().unifiedMount else { throw BerthError(.notFound, "no cgroup2 mount") }
        let directory = mount + "/berth-" + testName("df")
        guard mkdir(directory, 0o755) == 0 else { throw BerthError.system("mkdir \(directory)") }
        defer { rmdir(directory) }
        // As on a pure cgroup2 host: the group's paths have no v1 "devices" entry.
        #expect(try DeviceRule.apply(rules, toCgroupPaths: ["unified": directory]))
        let fixture = try ContainerFixture()
        return try fixture.run(fixture.spec(script), security: try SecurityOptions().resolve()) { process in
            try FileIO.writeControl(directory + "/cgroup.procs", String(process.pid))
        }
    }

    @Test func defaultsRefuseOpeningTheHostDiskButNotTheHarmlessDevices() throws {
        DeviceCgroupTests.expectDefaults(try run(DeviceCgroupTests.script(try DeviceCgroupTests.devices), rules: DeviceRule.dockerDefault))
    }

    /// Access is checked per kind: with mknod allowed only for character devices, a block node
    /// cannot even be made; a rule's access letters limit what it allows.
    @Test func accessAndKindAreChecked() throws {
        let rules = [
            DeviceRule(allow: false, .all, nil, nil),
            DeviceRule(allow: true, .char, nil, nil, "m"),
            DeviceRule(allow: true, .char, 1, 3),       // /dev/null: everything
            DeviceRule(allow: true, .char, 1, 5, "r"),  // /dev/zero: read only
        ]
        let script = """
            mknod /tmp/blk b 7 0 2>/dev/null && echo blk-made || echo blk-refused
            mknod /tmp/chr c 1 5 && echo chr-made
            head -c 4 /dev/zero | wc -c
            (echo x > /dev/zero) 2>/dev/null && echo zero-written || echo zero-write-refused
            echo x > /dev/null && echo null-ok
            head -c 4 /dev/urandom >/dev/null 2>&1 && echo urandom-opened || echo urandom-refused
            """
        let r = try run(script, rules: rules)
        #expect(r.status == .exited(0), "\(r.output)")
        for line in ["blk-refused", "chr-made", "4", "zero-write-refused", "null-ok", "urandom-refused"] {
            #expect(r.output.split(separator: "\n").contains(Substring(line)), "\(line): \(r.output)")
        }
    }

    @Test func privilegedAllowsEverything() throws {
        let r = try run("mknod /tmp/loop b 7 0 && echo made; head -c 4 /dev/urandom | wc -c", rules: DeviceRule.allowAll)
        #expect(r.status == .exited(0), "\(r.output)")
        #expect(r.output.contains("made\n4\n"), "\(r.output)")
    }

    @Test func badAccessLettersAndMissingDirectoriesAreErrors() throws {
        #expect(throws: BerthError.self) {
            try DeviceRule.attachFilter([DeviceRule(allow: true, .char, 1, 3, "rx")], toCgroup2Directory: "/sys/fs/cgroup")
        }
        #expect(throws: BerthError.self) {
            try DeviceRule.attachFilter(DeviceRule.dockerDefault, toCgroup2Directory: "/nonexistent-\(testName("d"))")
        }
    }
}
