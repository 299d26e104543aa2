import BerthNamespaces
import BerthSystem
import BerthTestSupport
import CBerthShim
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ContainerProcessTests {
    @Test func pidOneAndNoHostProcesses() throws {
        let f = try ContainerFixture()
        let r = try f.run("echo pid=$$; ls /proc | grep -c '^[0-9]'")
        #expect(r.status == .exited(0), "\(r.output)")
        let lines = r.output.split(separator: "\n")
        #expect(lines.first == "pid=1")
        // Only the shell and `ls` itself (plus grep) are visible: far fewer than the host's.
        #expect(Int(lines.last ?? "") ?? 99 <= 3)
    }

    @Test func noDescriptorOfTheParentLeaks() throws {
        let f = try ContainerFixture()
        // Some open descriptors in the test process that must not reach the container.
        let extra = open("/dev/null", O_RDONLY)
        defer { close(extra) }
        let r = try f.run("ls /proc/self/fd | tr '\\n' ' '")
        #expect(r.status == .exited(0))
        #expect(r.output == "0 1 2 3 ")  // stdio + the directory `ls` is reading
    }

    @Test func hostnameIsIsolated() throws {
        let f = try ContainerFixture()
        var spec = f.spec("hostname")
        let name = testName("h")
        spec.hostname = name
        let r = try f.run(spec)
        #expect(r.status == .exited(0))
        #expect(r.output == name + "\n")
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count)
        #expect(String(decoding: buf.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self) != name)
    }

    @Test func mountsInsideDoNotShowOnTheHost() throws {
        let f = try ContainerFixture()
        let before = try hostMountPoints()
        let r = try f.run("mkdir -p /mnt/x && mount -t tmpfs none /mnt/x && grep -c /mnt/x /proc/self/mountinfo")
        #expect(r.status == .exited(0), "\(r.output)")
        #expect(r.output == "1\n")
        let after = try hostMountPoints()
        #expect(!after.contains { $0.contains(f.rootfs.path) })
        #expect(after.count <= before.count)
    }

    @Test func exitCodeAndSignal() throws {
        let f = try ContainerFixture()
        #expect(try f.run("exit 7").status == .exited(7))
        let c = try ContainerProcess.spawn(f.spec("sleep 30"), stdio: .null)
        try c.kill(SIGKILL)
        #expect(try c.wait() == .signaled(SIGKILL))
        #expect(try c.wait().code == 128 + SIGKILL)
    }

    @Test func missingBinaryIsAClearError() throws {
        let f = try ContainerFixture()
        let spec = ContainerSpec.make(rootfs: f.rootfs.path, args: ["/bin/nope"])
        do {
            _ = try ContainerProcess.run(spec, stdio: .null)
            Issue.record("ran a missing binary")
        } catch let e as BerthError {
            #expect(e.description == "exec \"/bin/nope\": No such file or directory")
            #expect(e.code == .notFound)
        }
        let spec2 = ContainerSpec.make(rootfs: f.rootfs.path, args: ["nope"])
        #expect(throws: BerthError.self) { try ContainerProcess.run(spec2, stdio: .null) }
    }

    @Test func pathSearchUsesTheSpecEnvironment() throws {
        let f = try ContainerFixture()
        let r = try f.run(ContainerSpec.make(rootfs: f.rootfs.path, args: ["echo", "found"]))
        #expect(r.status == .exited(0))
        #expect(r.output == "found\n")
    }

    @Test func missingRootfsIsAClearError() throws {
        let spec = ContainerSpec.make(rootfs: "/tmp/berth-no-such-rootfs-\(getpid())", args: ["/bin/true"])
        #expect {
            try ContainerProcess.run(spec, stdio: .null)
        } throws: { e in
            (e as? BerthError)?.code == .notFound && "\(e)".contains("rootfs /tmp/berth-no-such-rootfs")
        }
    }

    @Test func joiningADeadPidIsAClearError() throws {
        let f = try ContainerFixture()
        var spec = f.spec("true")
        spec.setNamespace(.network, .join(.network, pid: 99_999_999))
        #expect {
            try ContainerProcess.run(spec, stdio: .null)
        } throws: { e in
            (e as? BerthError)?.code == .notFound && "\(e)".contains("/proc/99999999/ns/net")
        }
    }
}

@Suite struct ContainerSetupFailureTests {
    @Test func failedMountNamesTheMountAndLeavesNothing() throws {
        let f = try ContainerFixture()
        var spec = f.spec("true")
        spec.mounts = (spec.mounts ?? []) + [ContainerSpec.Mount(destination: "/mnt/x", type: "nosuchfs", source: "none")]
        let before = try hostMountPoints()
        var pid: pid_t = 0
        #expect {
            try ContainerProcess.run(spec, stdio: .null) { c in
                pid = c.pid
                usleep(50_000)  // let the child get to the failing mount first
            }
        } throws: { e in
            "\(e)" == "mount nosuchfs on /mnt/x: No such device"
        }
        #expect(pid > 0 && kill(pid, 0) != 0)
        #expect(try hostMountPoints() == before)
    }

    @Test func badBindSourceIsRefusedBeforeCloning() throws {
        let f = try ContainerFixture()
        var spec = f.spec("true")
        spec.mounts = [ContainerSpec.Mount(destination: "/data", type: "bind", source: "/no/such/dir", options: ["rbind", "ro"])]
        #expect {
            try ContainerProcess.run(spec, stdio: .null)
        } throws: { e in
            (e as? BerthError)?.code == .notFound && "\(e)".contains("/no/such/dir")
        }
    }

    @Test func aSymlinkedFileTargetResolvesInsideTheRootfs() throws {
        let f = try ContainerFixture()
        // The image points /etc/hosts outside its rootfs; the bind mount must not follow it there
        // (like runc's securejoin, the link is resolved as if the rootfs were /).
        let outside = f.rootfs.bundle + "/outside-hosts"
        try FileIO.writeAtomically(outside, "host file\n")
        let source = f.rootfs.bundle + "/generated-hosts"
        try FileIO.writeAtomically(source, "generated\n")
        try FileIO.makeDirectories(f.rootfs.path + "/etc")
        unlink(f.rootfs.path + "/etc/hosts")
        #expect(symlink(outside, f.rootfs.path + "/etc/hosts") == 0)
        var spec = f.spec("cat /etc/hosts")
        spec.mounts = (spec.mounts ?? []) + [ContainerSpec.Mount(destination: "/etc/hosts", type: "bind", source: source, options: ["bind"])]
        let r = try f.run(spec)
        #expect(r.status == .exited(0))
        #expect(r.output == "generated\n")
        #expect(try FileIO.read(outside) == "host file\n")
        #expect(!(try FileIO.read("/proc/self/mounts")).contains(outside))
    }

    @Test func bindMountsWithReadOnly() throws {
        let f = try ContainerFixture()
        let data = f.rootfs.bundle + "/data"
        try FileIO.makeDirectories(data)
        try FileIO.writeAtomically(data + "/hello", "hi\n")
        var spec = f.spec("cat /data/hello; touch /data/new 2>/dev/null || echo ro; touch /rw/new && echo rw")
        spec.mounts = (spec.mounts ?? []) + [
            ContainerSpec.Mount(destination: "/data", type: "bind", source: data, options: ["rbind", "ro"]),
            ContainerSpec.Mount(destination: "/rw", type: "bind", source: data, options: ["bind"]),
        ]
        let r = try f.run(spec)
        #expect(r.status == .exited(0))
        #expect(r.output == "hi\nro\nrw\n")
        #expect(FileIO.exists(data + "/new"))
    }
}

@Suite struct ContainerRootfsTests {
    @Test func devProcAndSysAreSetUp() throws {
        let f = try ContainerFixture()
        let script = """
            ls /dev | tr '\\n' ' '; echo
            echo hi > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c
            readlink /dev/ptmx; readlink /dev/fd
            grep -E ' /(proc|dev|dev/pts|dev/shm|dev/mqueue|sys) ' /proc/self/mounts | cut -d' ' -f2,3 | tr '\\n' ' '; echo
            touch /sys/x 2>/dev/null || echo sys-ro
            awk '$5 == "/"' /proc/self/mountinfo | wc -l
            """
        let r = try f.run(script)
        #expect(r.status == .exited(0), "\(r.output)")
        let lines = r.output.split(separator: "\n").map(String.init)
        let dev = Set((lines.first ?? "").split(separator: " ").map(String.init))
        #expect(dev.isSuperset(of: ["null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd", "stdin", "stdout", "stderr"]))
        #expect(lines.dropFirst().prefix(2) == ["4", "4"])
        #expect(lines.contains("pts/ptmx"))
        #expect(lines.contains("/proc/self/fd"))
        let mounts = lines.first { $0.hasPrefix("/proc proc") } ?? ""
        for m in ["/proc proc", "/dev tmpfs", "/dev/pts devpts", "/dev/shm tmpfs", "/dev/mqueue mqueue", "/sys sysfs"] {
            #expect(mounts.contains(m), "\(m) missing in \(mounts)")
        }
        #expect(lines.contains("sys-ro"))
        // The host's root is gone: only the container's own "/" is mounted at "/".
        #expect(lines.last == "1")
    }

    @Test func hostNetworkBindsTheHostSys() throws {
        let f = try ContainerFixture()
        var spec = f.spec("grep ' /sys ' /proc/self/mounts | cut -d' ' -f3,4 | cut -c1-8; ls /sys/class/net | grep -c '^lo$'")
        spec.setNamespace(.network, nil)
        let r = try f.run(spec)
        #expect(r.status == .exited(0), "\(r.output)")
        #expect(r.output.hasPrefix("sysfs ro"))
        #expect(r.output.hasSuffix("1\n"))
    }
}

@Suite struct CloneFallbackTests {
    @Test func plainCloneWorksToo() throws {
        let f = try ContainerFixture()
        berth_spawn_use_clone3(0)
        defer { berth_spawn_use_clone3(1) }
        let r = try f.run("echo pid=$$")
        #expect(r.status == .exited(0))
        #expect(r.output == "pid=1\n")
        let c = try ContainerProcess.spawn(f.spec("sleep 30"), stdio: .null)
        try c.kill(SIGKILL)
        #expect(try c.wait() == .signaled(SIGKILL))
    }
}
