import BerthCgroups
import BerthSystem
import BerthTestSupport
import Testing

@testable import Berth

@Suite struct EngineRollbackTests {
    @Test func requestedAddressAndRollbackWhenItIsTaken() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let net = try f.engine.network()
        let wanted = IPv4Address(net.subnet.gateway.value + 40)
        let first = try f.run(["sleep", "100"]) { $0.ipAddress = wanted.description }
        #expect(first.startedState.ipAddress == wanted.description)

        // The same address again: the start fails at the attach and undoes every earlier step.
        var config = ContainerConfig(image: "busybox", cmd: ["sleep", "100"])
        config.ipAddress = wanted.description
        config.portSpecs = ["18082:80"]
        let second = try f.engine.create(config)
        #expect(throws: BerthError.self) { _ = try f.engine.start(second.id) }
        #expect(try net.leasedAddresses() == [wanted])
        #expect(try f.engine.portAllocator().allocations().isEmpty)
        #expect(try f.host.sh("ip -o link").components(separatedBy: "veth").count == 2)
        #expect(try Cgroup.list(under: f.cgroupParent).count == 1)
        #expect(!(try FileIO.read("/proc/self/mounts")).contains(second.id.full))
        #expect(!FileIO.exists(f.engine.runtimePath(second.id)))
        #expect(try f.engine.store.load(second.id).state.status == .created)
    }
}
