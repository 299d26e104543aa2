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
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        try Command.check("runc", ["spec", "--bundle", rootfs.bundle])
        var spec = try ContainerSpec.load(bundle: rootfs.bundle)
        #expect(spec.root?.path == rootfs.bundle + "/rootfs")
        spec.process?.args = ["/bin/sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; touch /x 2>/dev/null || echo readonly"]
        spec.process?.terminal = false
        let out = rootfs.bundle + "/out"
        let status = try ContainerProcess.run(spec, stdio: ProcessStdio(stdout: .file(out), stderr: .file(out, append: true)))
        let output = try FileIO.read(out)
        #expect(status == .exited(0), "\(output)")
        #expect(output.hasPrefix("runc\n/bin/sh -c"))
        #expect(output.hasSuffix("readonly\n"))
    }
}
