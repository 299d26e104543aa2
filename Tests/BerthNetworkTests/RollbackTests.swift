import BerthIPAM
import BerthNamespaces
import BerthNetLink
import BerthNetwork
import BerthSystem
import BerthTestSupport
import Testing

@Suite struct RollbackTests {
    private func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }

    private func vethCount(_ f: NetworkFixture) throws -> Int {
        try f.host.run { try NetlinkSession().links().filter { $0.kind == "veth" }.count }
    }

    @Test func takenHostLinkNameLeavesNothing() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network()
        let c = try f.container()
        do {
            _ = try f.host.run { try net.attach(c, hostInterfaceName: net.bridge) }
            Issue.record("attached with a taken name")
        } catch let e as BerthError {
            #expect(e.code == .alreadyExists)
            #expect(e.message.contains(net.bridge))
        }
        #expect(try vethCount(f) == 0)
        #expect(try net.leasedAddresses().isEmpty)
        #expect(try f.links(c).map(\.name) == ["lo"])
        try f.host.run { try net.tearDown() }
    }

    @Test func takenContainerNameLeavesNothing() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network()
        let c = try f.container()
        _ = try c.run { try NetlinkSession().addBridge(named: "eth0") }
        #expect(throws: BerthError.self) { _ = try f.host.run { try net.attach(c) } }
        #expect(try vethCount(f) == 0)
        #expect(try net.leasedAddresses().isEmpty)
        try f.host.run { try net.tearDown() }
    }

    @Test func failureInsideTheContainerUndoesTheVethAndTheLease() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network()
        let c = try f.container()
        // The container already has a default route: adding ours fails after the veth exists.
        try c.run {
            let nl = try NetlinkSession()
            try nl.addBridge(named: "other0")
            try nl.setUp("other0")
            try nl.addAddress(.ipv4(IPv4CIDR("10.0.0.1/24")!), to: "other0")
            try nl.addRoute(.defaultRoute(via: IPv4Address("10.0.0.254")!))
        }
        do {
            _ = try f.host.run { try net.attach(c) }
            Issue.record("attach succeeded")
        } catch let e as BerthError {
            #expect(e.code == .alreadyExists)
            #expect(e.message.contains("default"))
        }
        #expect(try vethCount(f) == 0)
        #expect(try net.leasedAddresses().isEmpty)
        #expect(!(try f.links(c)).map(\.name).contains("eth0"))
        try f.host.run { try net.tearDown() }
    }

    @Test func exhaustedSlash30LeavesNothing() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network { $0.bip = IPv4CIDR("10.77.0.1/30")! }
        let c1 = try f.container(), c2 = try f.container()
        let e = try f.host.run { try net.attach(c1) }
        #expect(e.address == IPv4CIDR("10.77.0.2/30")!)
        do {
            _ = try f.host.run { try net.attach(c2) }
            Issue.record("attached to a full /30")
        } catch let err as BerthError {
            #expect(err.code == .exhausted)
        }
        #expect(try vethCount(f) == 1)
        #expect(try f.links(c2).map(\.name) == ["lo"])
        try f.host.run { try net.detach(e); try net.tearDown() }
        #expect(try vethCount(f) == 0)
    }

    @Test func badInputIsAClearErrorWithNoSideEffect() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        // An overlapping bip.
        let dummy = testName("du")
        try f.host.run {
            let nl = try NetlinkSession()
            try nl.addBridge(named: dummy)
            try nl.addAddress(.ipv4(IPv4CIDR("10.1.0.1/16")!), to: dummy)
            try nl.setUp(dummy)
        }
        let before = try f.hostLinks()
        do {
            _ = try f.network { $0.bip = IPv4CIDR("10.1.2.1/24")! }
            Issue.record("overlapping bip accepted")
        } catch let e as BerthError {
            #expect(e.message == "subnet 10.1.2.0/24 overlaps the host route 10.1.0.0/16")
        }
        #expect(try f.hostLinks() == before)
        #expect(try AddressAllocator.networks(root: f.stateRoot + "/ipam").isEmpty)
        // A bip on the network address.
        #expect(throws: BerthError.self) { _ = try f.network { $0.bip = IPv4CIDR("10.2.0.0/24")! } }
        // A link with the bridge's name that is not a bridge.
        let veth = testName("vx")
        try f.host.run { try NetlinkSession().addVethPair(VethPair(name: veth, peerName: veth + "p")) }
        do {
            _ = try f.network { $0.bridge = veth }
            Issue.record("adopted a veth as a bridge")
        } catch let e as BerthError {
            #expect(e.message.contains("not a bridge"))
        }
        // A requested address outside the subnet.
        let net = try f.network { $0.bip = IPv4CIDR("192.168.12.1/24")! }
        let c = try f.container()
        do {
            _ = try f.host.run { try net.attach(c, address: IPv4Address("10.9.9.9")!) }
            Issue.record("attached outside the subnet")
        } catch let e as BerthError {
            #expect(e.code == .invalidArgument)
            #expect(e.message.contains("outside subnet 192.168.12.0/24"))
        }
        #expect(try f.links(c).map(\.name) == ["lo"])
        // A requested address inside works.
        let e = try f.host.run { try net.attach(c, address: IPv4Address("192.168.12.50")!) }
        #expect(e.address == IPv4CIDR("192.168.12.50/24")!)
        #expect(e.macAddress == MACAddress("02:42:c0:a8:0c:32")!)
        try f.host.run { try net.detach(e); try net.tearDown() }
    }
}
