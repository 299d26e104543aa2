import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ContainerSpecTests {
    @Test func decodesRuncSpec() throws {
        let path = "/work/shared/reference/runc-spec-config.json"
        // The reference is runc 1.1.5's `runc spec`; fall back to generating one when it is absent.
        let bytes: [UInt8]
        if FileIO.exists(path) { bytes = try FileIO.readBytes(path) } else {
            let dir = try FileIO.makeTemporaryDirectory(prefix: "berth-spec-\(getpid())-")
            defer { try? FileIO.removeTree(dir) }
            try Command.check("runc", ["spec", "--bundle", dir])
            bytes = try FileIO.readBytes(dir + "/config.json")
        }
        let spec = try ContainerSpec.decode(bytes)
        #expect(spec.process?.args == ["/bin/true"] || spec.process?.args == ["sh"])
        #expect(spec.process?.noNewPrivileges == true)
        #expect(spec.process?.capabilities?.bounding?.contains("CAP_KILL") == true)
        #expect(spec.root == ContainerSpec.Root(path: "rootfs", readonly: true))
        #expect(spec.hostname == "runc")
        #expect(spec.mounts?.first?.destination == "/proc")
        #expect(spec.mounts?.count == 7)
        #expect(Set(spec.namespaces.map(\.type)) == [.pid, .network, .ipc, .uts, .mount])
        #expect(spec.linux?.maskedPaths?.contains("/proc/kcore") == true)
        #expect(spec.linux?.readonlyPaths?.contains("/proc/sys") == true)
        // Round trip.
        #expect(try ContainerSpec.decode(try spec.encoded()) == spec)
    }

    @Test func malformedConfigIsAClearError() throws {
        #expect {
            _ = try ContainerSpec.decode(Array("{\"process\": {\"args\": 3}}".utf8))
        } throws: { e in
            (e as? BerthError)?.code == .invalidArgument && "\(e)".contains("invalid container config")
        }
    }

    @Test func runsARuncSpecBundle() throws {
        let rootfs = try ContainerFixture.makeRootfs()
        defer { rootfs.remove() }
        try Command.check("runc", ["spec", "--bundle", rootfs.bundle])
        var spec = try ContainerSpec.load(bundle: rootfs.bundle)
        #expect(spec.root?.path == rootfs.bundle + "/rootfs")
        spec.process?.args = ["/bin/sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; ulimit -n; touch /x 2>/dev/null || echo readonly"]
        spec.process?.terminal = false
        let out = rootfs.bundle + "/out"
        let status = try ContainerProcess.run(spec, stdio: ProcessStdio(stdout: .file(out), stderr: .file(out, append: true)))
        let output = try FileIO.read(out)
        #expect(status == .exited(0), "\(output)")
        #expect(output.hasPrefix("runc\n/bin/sh -c"))
        #expect(output.hasSuffix("1024\nreadonly\n"))  // runc spec's RLIMIT_NOFILE
    }

    @Test func specSecurityReachesTheContainer() throws {
        let f = try ContainerFixture()
        var spec = f.spec("grep -E '^(CapBnd|Seccomp|NoNewPrivs):' /proc/self/status | tr -s '\\t ' ' '; unshare -m true 2>/dev/null || echo denied")
        let caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
        spec.process?.capabilities = .init(bounding: caps, effective: caps, permitted: caps)
        spec.process?.noNewPrivileges = true
        spec.linux?.seccomp = .dockerDefault
        spec.linux?.maskedPaths = ["/proc/keys"]
        // Through JSON and back, as a bundle's config.json would carry it.
        spec = try ContainerSpec.decode(try spec.encoded())
        let r = try f.run(spec)
        #expect(r.status == .exited(0), "\(r.output)")
        let lines = r.output.split(separator: "\n").map(String.init)
        #expect(lines.contains("CapBnd: 0000000000000420"))
        #expect(lines.contains("Seccomp: 2"))
        #expect(lines.contains("NoNewPrivs: 1"))
        #expect(lines.contains("denied"))
    }

    @Test func badRlimitIsAClearError() throws {
        let f = try ContainerFixture()
        var spec = f.spec("true")
        spec.process?.rlimits = [.init(type: "RLIMIT_BOGUS", soft: 1, hard: 1)]
        #expect {
            try ContainerProcess.run(spec, stdio: .null)
        } throws: { e in
            (e as? BerthError)?.code == .invalidArgument && "\(e)".contains("RLIMIT_BOGUS")
        }
    }

    @Test func unknownCapabilityInSpecIsAClearError() throws {
        let f = try ContainerFixture()
        var spec = f.spec("true")
        spec.process?.capabilities = .init(bounding: ["CAP_NOPE"])
        #expect {
            try ContainerProcess.run(spec, stdio: .null)
        } throws: { e in
            (e as? BerthError)?.code == .invalidArgument && "\(e)".contains("CAP_NOPE")
        }
    }
}
