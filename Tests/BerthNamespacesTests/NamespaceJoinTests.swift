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

        var spec = ContainerSpec(process: .init(args: ["/bin/sh", "-c", "hostname; cat /tmp/marker; echo $$"], env: ["PATH=/bin"]))
        for kind in [NamespaceKind.pid, .network, .ipc, .uts, .mount] { spec.setNamespace(kind, .join(kind, pid: first.pid)) }
        let r = try f.run(spec)
        #expect(r.status == .exited(0), "\(r.output)")
        let lines = r.output.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.first == "first")
        #expect(lines.dropFirst().first == "inside")
        #expect(Int(lines.last ?? "") ?? 1 > 1)
    }
}
