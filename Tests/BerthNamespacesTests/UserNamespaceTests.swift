import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct UserNamespaceTests {
    @Test func rootInsideIsAnUnprivilegedUidOutside() throws {
        let f = try ContainerFixture()
        let hostID: UInt32 = 1_000_000
        // The mapped root must own the rootfs (see Documentation/BerthNamespaces.md).
        try Command.check("chown", ["-R", "-h", "\(hostID):\(hostID)", f.rootfs.bundle])
        var spec = f.spec("id -u; cat /proc/self/uid_map; touch /tmp/made-inside; cat /proc/1/status | grep CapEff")
        spec.setNamespace(.user, .init(.user))
        spec.linux?.uidMappings = [.init(containerID: 0, hostID: hostID, size: 65536)]
        spec.linux?.gidMappings = [.init(containerID: 0, hostID: hostID, size: 65536)]
        let r = try f.run(spec)
        #expect(r.status == .exited(0), "\(r.output)")
        let lines = r.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(lines.first == "0")
        #expect(lines.dropFirst().first == "0 \(hostID) 65536")
        var st = stat()
        #expect(stat(f.rootfs.path + "/tmp/made-inside", &st) == 0)
        #expect(st.st_uid == hostID)
    }

    @Test func userNamespaceWithoutMappingsIsRefused() throws {
        let f = try ContainerFixture()
        var spec = f.spec("true")
        spec.setNamespace(.user, .init(.user))
        #expect(throws: BerthError.self) { try ContainerProcess.run(spec, stdio: .null) }
    }
}
