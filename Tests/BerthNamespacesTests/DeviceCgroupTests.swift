import BerthCgroups
import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The device policy through the path the engine and berth-ns take: a BerthCgroups `Cgroup`
/// (every controller) and `DeviceRule.apply(_:toCgroupPaths:)`, then the child joins the group at
/// the sync point. A node for the host's root disk made with mknod (allowed: CAP_MKNOD and
/// `b *:* m` are defaults) cannot be opened; the harmless devices still work; `--privileged`
/// can read the disk (the control; a few bytes, never a write).
@Suite(.enabled(if: FileIO.exists("/sys/fs/cgroup/devices/devices.allow")))
struct DeviceCgroupTests {
    /// The host's root disk as `MAJOR MINOR`: the root mount's device, or its parent disk when that
    /// is a partition (/sys/dev/block/M:m/partition exists).
    static func hostRootDisk() throws -> (major: String, minor: String) {
        let root = try EscapeTests.hostRootDevice()
        let sys = "/sys/dev/block/\(root.major):\(root.minor)"
        if FileIO.exists(sys + "/partition"), let parent = try? FileIO.read(sys + "/../dev") {
            let mm = parent.split(whereSeparator: { $0 == "\n" || $0 == " " }).first?.split(separator: ":") ?? []
            if mm.count == 2 { return (String(mm[0]), String(mm[1])) }
        }
        return root
    }

    func run(_ script: String, options: SecurityOptions) throws -> (status: BerthNamespaces.ExitStatus, output: String) {
        let fixture = try ContainerFixture()
        let security = try options.resolve()
        let cgroup = try Cgroup.create(name: "berth-\(testName("dev"))", limits: CgroupLimits())
        defer { try? cgroup.killAll(); try? cgroup.destroy() }
        #expect(try DeviceRule.apply(options.deviceRules, toCgroupPaths: cgroup.paths))
        return try fixture.run(fixture.spec(script), security: security) { process in
            try cgroup.add(pid: process.pid)
        }
    }

    /// Whether this (host) process can open the block device `major:minor` for reading: on some
    /// sandboxed machines the host itself is refused the root disk, which would make a refusal
    /// inside the container prove nothing. The loop device 7:0 is the discriminating probe there.
    static func hostCanOpen(_ major: String, _ minor: String) throws -> Bool {
        let node = "/tmp/berth-\(testName("dn"))"
        guard let maj = UInt64(major), let min = UInt64(minor) else {
            throw BerthError(.invalidArgument, "device number \(major):\(minor)")
        }
        // glibc's makedev, which Swift does not import (it is a macro).
        let dev = (min & 0xff) | ((maj & 0xfff) << 8) | ((min & ~0xff) << 12) | ((maj & ~0xfff) << 32)
        guard mknod(node, S_IFBLK | 0o600, dev_t(dev)) == 0 else {
            throw BerthError.system("mknod \(node) b \(major):\(minor)")
        }
        defer { unlink(node) }
        let fd = open(node, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    /// Makes a node for each device and tries to read 16 bytes from it (never writes):
    /// `NAME-bytes=N` and the first line of head's error.
    static func script(_ devices: [(name: String, major: String, minor: String)]) -> String {
        var s = ""
        for d in devices {
            s += "mknod /tmp/\(d.name) b \(d.major) \(d.minor) && echo made-\(d.name)\n"
                + "if head -c 16 /tmp/\(d.name) >/dev/null 2>/tmp/err; then echo \(d.name)-opened; else echo \(d.name)-refused: $(head -c 200 /tmp/err); fi\n"
        }
        return s + "head -c 16 /dev/urandom | wc -c; head -c 8 /dev/zero | wc -c; echo fine > /dev/null && echo null-ok\n"
    }

    static var devices: [(name: String, major: String, minor: String)] {
        get throws {
            let disk = try hostRootDisk()
            return [("disk", disk.major, disk.minor), ("loop", "7", "0")]
        }
    }

    @Test func defaultsRefuseOpeningTheHostDisk() throws {
        Self.expectDefaults(try run(Self.script(try Self.devices), options: SecurityOptions()))
    }

    /// What ``script(_:)`` prints under the default policy: both nodes made (`b *:* m`), neither
    /// opened, and the harmless devices working.
    static func expectDefaults(_ r: (status: BerthNamespaces.ExitStatus, output: String)) {
        #expect(r.status == .exited(0), "\(r.output)")
        for name in ["disk", "loop"] {
            #expect(r.output.contains("made-\(name)\n"), "mknod is allowed: \(r.output)")
            #expect(r.output.contains("\(name)-refused:") && !r.output.contains("\(name)-opened"), "\(r.output)")
        }
        #expect(r.output.contains("Operation not permitted"), "\(r.output)")
        #expect(r.output.contains("null-ok") && r.output.contains("16\n8\n"), "\(r.output)")
    }

    @Test func privilegedCanOpenBlockDevices() throws {
        let devices = try Self.devices
        let r = try run(Self.script(devices), options: SecurityOptions(privileged: true))
        #expect(r.status == .exited(0), "\(r.output)")
        for d in devices where try Self.hostCanOpen(d.major, d.minor) {
            #expect(r.output.contains("\(d.name)-opened"), "\(r.output)")
        }
        #expect(r.output.contains("null-ok"), "\(r.output)")
    }

    @Test func noDevicesControllerIsReportedNotGuessed() throws {
        #expect(try !DeviceRule.apply(DeviceRule.dockerDefault, toCgroupPaths: [:]))
        // Without a devices controller the rules become a cgroup2 filter, which needs the directory.
        #expect(throws: BerthError.self) {
            _ = try DeviceRule.apply(DeviceRule.dockerDefault, toCgroupPaths: ["unified": "/nonexistent-\(testName("u"))"])
        }
        #expect(throws: BerthError.self) {
            _ = try DeviceRule.apply(DeviceRule.dockerDefault, toCgroupPaths: ["devices": "/nonexistent-\(testName("d"))"])
        }
    }
}
