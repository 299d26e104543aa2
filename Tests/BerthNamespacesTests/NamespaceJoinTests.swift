import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct NamespaceJoinTests {
    @Test func joiningAContainersNetworkSeesItsLinks() throws {
        let f = try ContainerFixture()
        let first = try ContainerProcess.spawn(f.spec("sleep 30"), stdio: .null)
        defer { try? first.kill(SIGKILL); _ = try? first.wait() }
        // A link made in the first container's (fresh) network namespace.
        let ns = try NetworkNamespace.open(pid: first.pid)
        defer { ns.close() }
        let link = testName("d")
        try ns.run { _ = try Command.check("ip", ["link", "add", link, "type", "bridge"]) }

        var spec = f.spec("ip -o link")
        spec.setNamespace(.network, .join(.network, pid: first.pid))
        let r = try f.run(spec)
        #expect(r.status == .exited(0), "\(r.output)")
        #expect(r.output.contains(link))
        // And the host's root namespace does not have it.
        #expect(!(try Command.check("ip", ["-o", "link"]).stdout.contains(link)))
    }

    @Test func execIntoARunningContainer() throws {
        let f = try ContainerFixture()
        var spec0 = f.spec("echo inside > /tmp/marker; sleep 30")
        spec0.hostname = "first"
        let first = try ContainerProcess.spawn(spec0, stdio: .null)
        defer { try? first.kill(SIGKILL); _ = try? first.wait() }
        // Wait for the marker (the first container writes it right after exec).
        for _ in 0..<200 where !FileIO.exists(f.rootfs.path + "/tmp/marker") { usleep(10_000) }

        let spec = try ContainerSpec.exec(into: first.pid, args: ["sh", "-c", "hostname; cat /tmp/marker; echo $$"])
        let r = try f.run(spec)
        #expect(r.status == .exited(0), "\(r.output)")
        let lines = r.output.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.first == "first")
        #expect(lines.dropFirst().first == "inside")
        #expect(Int(lines.last ?? "") ?? 1 > 1)
    }

    @Test func execIntoAUserNamespaceContainer() throws {
        let f = try ContainerFixture()
        let hostID: UInt32 = 1_100_000
        try Command.check("chown", ["-R", "-h", "\(hostID):\(hostID)", f.rootfs.bundle])
        var spec0 = f.spec("sleep 30")
        spec0.setNamespace(.user, .init(.user))
        spec0.linux?.uidMappings = [.init(containerID: 0, hostID: hostID, size: 65536)]
        spec0.linux?.gidMappings = [.init(containerID: 0, hostID: hostID, size: 65536)]
        let first = try ContainerProcess.spawn(spec0, stdio: .null)
        defer { try? first.kill(SIGKILL); _ = try? first.wait() }
        let spec = try ContainerSpec.exec(into: first.pid, args: ["sh", "-c", "id -u; cat /proc/self/uid_map"])
        #expect(spec.namespaces.contains { $0.type == .user })
        let r = try f.run(spec)
        #expect(r.status == .exited(0), "\(r.output)")
        #expect(r.output.hasPrefix("0\n"))
        #expect(r.output.contains("\(hostID)"))
    }

    @Test func execIntoADeadPidIsAClearError() throws {
        #expect(throws: BerthError.self) { _ = try ContainerSpec.exec(into: 99_999_999, args: ["true"]) }
    }
}

@Suite struct SyncPointTests {
    @Test func parentMovesAVethInBeforeTheProgramRuns() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let f = try ContainerFixture()
        let outside = testName("vo"), inside = testName("vi")
        try host.sh("ip link add \(outside) type veth peer name \(inside)")
        let c = try ContainerProcess.create(f.spec("ip -o link | grep -c \(inside); exit 0"),
                                            stdio: ProcessStdio(stdout: .file(f.outputPath)))
        // Still waiting at the sync point: not exec'd yet (its command name is still ours).
        let comm = try FileIO.read("/proc/\(c.pid)/comm")
        #expect(comm != "sh\n" && comm != "busybox\n")
        try host.sh("ip link set \(inside) netns \(c.pid)")
        try c.start()
        #expect(try c.wait() == .exited(0))
        #expect(try FileIO.read(f.outputPath) == "1\n")
        // The container's namespace is gone with it; the sandbox still has the other end or
        // lost it with the pair — either way nothing leaks into the root namespace.
        #expect(!(try Command.check("ip", ["-o", "link"]).stdout.contains(outside)))
    }
}
