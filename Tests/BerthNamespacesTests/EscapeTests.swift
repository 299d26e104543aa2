import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Break-out attempts from a busybox container started with Berth's defaults (Docker's
/// capabilities, seccomp profile, masked and read-only paths, devices cgroup) in new pid, net,
/// ipc, uts and mount namespaces. Each attempt prints `ESCAPED …` if it works; every one must be
/// refused. Control tests show the same attempts succeed when the confinement is lifted, so the
/// refusals come from the confinement and not from busybox or the rootfs.
@Suite struct EscapeTests {
    /// Runs `script` with `sh -c` under `options`; with `devicesCgroup` the container is put in a
    /// fresh v1 devices cgroup holding the options' device rules (removed afterwards).
    func run(_ script: String, options: SecurityOptions = SecurityOptions(),
             devicesCgroup: Bool = false) throws -> (status: BerthNamespaces.ExitStatus, output: String) {
        // A fresh rootfs's busybox can be briefly "text busy": another test's child, cloned while
        // the file was open for writing, holds a copy of that descriptor until it execs.
        var attempt = 0
        while true {
            do { return try runOnce(script, options: options, devicesCgroup: devicesCgroup) } catch let e as BerthError
                where e.errno == ETXTBSY || e.message.contains("Text file busy") {
                attempt += 1
                if attempt >= 5 { throw e }
                usleep(100_000)
            }
        }
    }

    private func runOnce(_ script: String, options: SecurityOptions,
                         devicesCgroup: Bool) throws -> (status: BerthNamespaces.ExitStatus, output: String) {
        let fixture = try ContainerFixture()
        let security = try options.resolve()
        var cgroup: String? = nil
        if devicesCgroup {
            let dir = "/sys/fs/cgroup/devices/" + testName("besc")
            guard mkdir(dir, 0o755) == 0 else { throw BerthError.system("mkdir \(dir)") }
            cgroup = dir
        }
        defer { if let cgroup { rmdir(cgroup) } }
        return try fixture.run(fixture.spec(script), security: security) { process in
            if let cgroup {
                try DeviceRule.apply(options.deviceRules, toV1Directory: cgroup)
                try FileIO.writeControl(cgroup + "/cgroup.procs", "\(process.pid)")
            }
        }
    }

    /// `attempt` runs `command`; prints `ESCAPED <label>` if it succeeds, `refused <label>: <stderr>` otherwise.
    static func attempt(_ label: String, _ command: String) -> String {
        "if \(command) >/tmp/out 2>/tmp/err; then echo \"ESCAPED \(label)\"; else echo \"refused \(label): $(head -c 200 /tmp/err)\"; fi\n"
    }

    func expectAllRefused(_ result: (status: BerthNamespaces.ExitStatus, output: String), _ labels: [String],
                          sourceLocation: SourceLocation = #_sourceLocation) {
        if getenv("BERTH_TEST_VERBOSE") != nil { print(result.output) }
        #expect(result.status == .exited(0), "\(result.output)", sourceLocation: sourceLocation)
        #expect(!result.output.contains("ESCAPED"), "\(result.output)", sourceLocation: sourceLocation)
        for label in labels {
            #expect(result.output.contains("refused \(label):"), "\(label) not tried: \(result.output)", sourceLocation: sourceLocation)
        }
    }

    // MARK: Attempts that must fail under the defaults

    static let namespaceAttempts = attempt("mount tmpfs", "mount -t tmpfs none /tmp")
        + attempt("remount / read-only", "mount -o remount,ro /")
        + attempt("remount /sys rw", "mount -o remount,rw /sys")
        + attempt("umount /proc", "umount -l /proc")
        + attempt("unshare user", "unshare -U true")
        + attempt("unshare net", "unshare -n true")
        + attempt("unshare mount", "unshare -m true")
        + attempt("nsenter", "nsenter -t 1 -n true")

    @Test func mountAndNewNamespacesAreRefused() throws {
        expectAllRefused(try run(Self.namespaceAttempts),
                         ["mount tmpfs", "remount / read-only", "remount /sys rw", "umount /proc", "unshare user",
                          "unshare net", "unshare mount", "nsenter"])
    }

    @Test func kernelTunablesAndSysfsAreReadOnly() throws {
        let script = Self.attempt("write /proc/sys/vm/drop_caches", "sh -c 'echo 1 > /proc/sys/vm/drop_caches'")
            + Self.attempt("write /proc/sys/kernel/ns_last_pid", "sh -c 'echo 100 > /proc/sys/kernel/ns_last_pid'")
            + Self.attempt("sysctl -w", "sysctl -w kernel.domainname=escape")
            // Never write to it: access(W_OK) reports the read-only mount without touching the trigger.
            + Self.attempt("/proc/sysrq-trigger writable", "test -w /proc/sysrq-trigger")
            + Self.attempt("write /sys", "touch /sys/kernel/escape")
            + Self.attempt("write /sys/kernel/uevent_helper", "sh -c 'echo /tmp/x > /sys/kernel/uevent_helper'")
        expectAllRefused(try run(script), ["write /proc/sys/vm/drop_caches", "write /proc/sys/kernel/ns_last_pid",
                                           "sysctl -w", "/proc/sysrq-trigger writable", "write /sys",
                                           "write /sys/kernel/uevent_helper"])
    }

    @Test func hostInformationIsMasked() throws {
        let script = """
            for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do
              if [ -e $f ]; then n=$(cat $f 2>/dev/null | wc -c); [ "$n" = 0 ] && echo "refused read $f: empty" || echo "ESCAPED read $f ($n bytes)"; else echo "refused read $f: absent"; fi
            done
            n=$(ls -A /sys/firmware 2>/dev/null | wc -l); [ "$n" = 0 ] && echo "refused list /sys/firmware: empty" || echo "ESCAPED list /sys/firmware"
            """
        expectAllRefused(try run(script), ["read /proc/kcore", "read /proc/keys", "read /proc/timer_list",
                                           "read /proc/sched_debug", "list /sys/firmware"])
    }

    /// The host's root disk, as `MAJOR MINOR` from the root mount's line in mountinfo.
    static func hostRootDevice() throws -> (major: String, minor: String) {
        for line in try FileIO.read("/proc/self/mountinfo").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4] == "/" else { continue }
            let mm = fields[2].split(separator: ":")
            if mm.count == 2 { return (String(mm[0]), String(mm[1])) }
        }
        throw BerthError(.notFound, "no root mount in /proc/self/mountinfo")
    }

    @Test(.enabled(if: FileIO.exists("/sys/fs/cgroup/devices/devices.allow")))
    func hostDiskAndMemoryThroughMknodAreRefused() throws {
        let disk = try Self.hostRootDevice()
        // mknod itself is allowed (Docker grants CAP_MKNOD and `b *:* m`); using the node is not.
        let script = "mknod /tmp/disk b \(disk.major) \(disk.minor) && echo made-disk-node\n"
            + "mknod /tmp/mem c 1 1 && echo made-mem-node\n"
            + Self.attempt("read host disk", "head -c 512 /tmp/disk")
            + Self.attempt("write host disk", "dd if=/dev/zero of=/tmp/disk bs=1 count=0 conv=notrunc")
            + Self.attempt("read /dev/mem", "head -c 16 /tmp/mem")
            + "head -c 16 /dev/urandom | wc -c; echo fine > /dev/null && echo null-ok\n"
        let r = try run(script, devicesCgroup: true)
        expectAllRefused(r, ["read host disk", "write host disk", "read /dev/mem"])
        #expect(r.output.contains("made-disk-node") && r.output.contains("null-ok") && r.output.contains("16\n"), "\(r.output)")
    }

    @Test func kernelModulesRebootHostnameAreRefused() throws {
        let hostname = try FileIO.read("/proc/sys/kernel/hostname")
        let script = "echo garbage > /tmp/m.ko\n"
            + Self.attempt("insmod", "insmod /tmp/m.ko")
            + Self.attempt("rmmod", "rmmod berth_no_such_module")
            + Self.attempt("hostname", "hostname escape")
            + Self.attempt("domainname", "sh -c 'echo escape > /proc/sys/kernel/domainname'")
            + Self.attempt("swapon", "swapon /tmp/m.ko")
            // busybox date reports a failed clock_settime on stderr but exits 0.
            + Self.attempt("settime", "sh -c 'date -s 2001-01-01 2>&1 >/dev/null | grep . >&2 && exit 1; exit 0'")
            // In a new pid namespace reboot(2) could at most end this container; it is refused anyway.
            + Self.attempt("reboot", "reboot -f")
            + "echo still-running\n"
        let r = try run(script)
        expectAllRefused(r, ["insmod", "rmmod", "hostname", "domainname", "swapon", "settime", "reboot"])
        #expect(r.output.contains("still-running"))
        #expect(try FileIO.read("/proc/sys/kernel/hostname") == hostname)
    }

    // MARK: Ordinary work still works

    @Test func ordinaryWorkloadsRun() throws {
        let script = """
            set -e
            dd if=/dev/urandom of=/tmp/blob bs=1024 count=512 2>/dev/null
            sha256sum /tmp/blob > /tmp/sum && sha256sum -c /tmp/sum >/dev/null && echo file-io-ok
            seq 1 1000 | sort -rn | head -1
            mkdir -p /tmp/d/e && echo x > /tmp/d/e/f && tar -C /tmp -cf /tmp/d.tar d && tar -tf /tmp/d.tar | grep -q e/f && echo tar-ok
            (sleep 0.1; echo child-done) & wait
            mkdir -p /www && echo hello-http > /www/index.html
            httpd -p 127.0.0.1:8080 -h /www
            wget -q -O - http://127.0.0.1:8080/index.html
            nc -l -p 9000 > /tmp/nc.out & sleep 0.2
            echo hello-nc | nc 127.0.0.1 9000 || true
            wait $!; cat /tmp/nc.out
            chown nobody /tmp/blob && echo chown-ok
            ping -c 1 -W 1 127.0.0.1 >/dev/null && echo ping-ok
            id -u
            """
        let r = try run(script)
        #expect(r.status == .exited(0), "\(r.output)")
        for expected in ["file-io-ok", "1000\n", "tar-ok", "child-done", "hello-http", "hello-nc", "chown-ok", "ping-ok", "0\n"] {
            #expect(r.output.contains(expected), "\(expected) missing: \(r.output)")
        }
    }

    // MARK: Controls and options

    @Test func privilegedLiftsTheConfinement() throws {
        let script = Self.attempt("mount tmpfs", "mount -t tmpfs none /tmp")
            + Self.attempt("unshare net", "unshare -n true")
            + "n=$(ls -A /sys/firmware | wc -l); [ \"$n\" != 0 ] && echo sys-firmware-visible\n"
            + "grep -E '^(CapBnd|Seccomp):' /proc/self/status | tr -s '\\t ' ' '\n"
        let r = try run(script, options: SecurityOptions(privileged: true))
        #expect(r.output.contains("ESCAPED mount tmpfs") && r.output.contains("ESCAPED unshare net"), "\(r.output)")
        #expect(r.output.contains("Seccomp: 0"), "\(r.output)")
    }

    @Test func capAddAndSecurityOptsReachTheContainer() throws {
        // CAP_SYS_ADMIN opens mount in the seccomp profile and in the kernel.
        var r = try run(Self.attempt("mount tmpfs", "mount -t tmpfs none /tmp"), options: SecurityOptions(capAdd: ["SYS_ADMIN"]))
        #expect(r.output.contains("ESCAPED mount tmpfs"), "\(r.output)")

        // --cap-drop CHOWN and no-new-privileges.
        r = try run("touch /tmp/f; " + Self.attempt("chown", "chown nobody /tmp/f")
                    + "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '\n",
                    options: try SecurityOptions(securityOpts: ["no-new-privileges"], capDrop: ["chown"]))
        #expect(r.output.contains("refused chown:") && r.output.contains("NoNewPrivs: 1") && r.output.contains("Seccomp: 2"), "\(r.output)")

        // A custom profile: everything allowed except mkdir/mkdirat, which fail with EACCES.
        let profile = #"seccomp={"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#
        r = try run(Self.attempt("mkdir", "mkdir /tmp/x") + Self.attempt("mount tmpfs", "mount -t tmpfs none /tmp"),
                    options: try SecurityOptions(securityOpts: [profile]))
        #expect(r.output.contains("refused mkdir:") && r.output.contains("ermission denied"), "\(r.output)")
        // mount is allowed by that profile but still refused: no CAP_SYS_ADMIN.
        #expect(r.output.contains("refused mount tmpfs:"), "\(r.output)")

        // seccomp=unconfined alone: mount still fails for lack of CAP_SYS_ADMIN (defence in depth).
        r = try run(Self.attempt("mount tmpfs", "mount -t tmpfs none /tmp") + "grep '^Seccomp:' /proc/self/status | tr -s '\\t ' ' '\n",
                    options: try SecurityOptions(securityOpts: ["seccomp=unconfined"]))
        #expect(r.output.contains("refused mount tmpfs:") && r.output.contains("Seccomp: 0"), "\(r.output)")
    }
}
