import BerthIPAM
import BerthNamespaces
import BerthNetLink
import BerthNetwork
import BerthSystem
import BerthTestSupport
import Testing

@Suite struct BridgeNetworkTests {
    private func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }

    @Test func twoContainersReachEachOtherAndTheBridge() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network()
        #expect(net.subnet.subnet == IPv4CIDR("172.17.0.0/16")!)
        #expect(!net.adopted)
        let c1 = try f.container(), c2 = try f.container()
        let e1 = try f.host.run { try net.attach(c1) }
        let e2 = try f.host.run { try net.attach(c2) }
        #expect(e1.address == IPv4CIDR("172.17.0.2/16")!)
        #expect(e2.address == IPv4CIDR("172.17.0.3/16")!)
        #expect(e1.hostInterface.hasPrefix("veth") && e1.hostInterface.count == 11)
        #expect(try f.ping(from: c1, e2.address.address))
        #expect(try f.ping(from: c2, e1.address.address))
        #expect(try f.ping(from: c1, net.subnet.gateway))

        // The host ends are on the bridge and up.
        let hostEnd = try f.host.run { try NetlinkSession().link(named: e1.hostInterface) }
        #expect(hostEnd.masterIndex == net.bridgeIndex)
        #expect(hostEnd.isUp)
        #expect(try f.host.run { try NetworkSysctl.ipForwarding() })

        try f.host.run { try net.detach(e1) }
        #expect(try net.leasedAddresses() == [e2.address.address])  // released at once
        try net.waitForPendingDeletions()
        #expect(!(try f.hostLinks()).contains(e1.hostInterface))
        #expect(!(try f.links(c1)).map(\.name).contains("eth0"))
        #expect(try net.leasedAddresses() == [e2.address.address])
        try f.host.run { try net.detach(e2, deletion: .synchronous) }
        #expect(!(try f.hostLinks()).contains(e2.hostInterface))
        try f.host.run { try net.tearDown() }
        #expect(!(try f.hostLinks()).contains(net.bridge))
    }

    @Test func setUpAgainAfterARestartKeepsLeasesAndOwnership() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let name = testName("br")
        let first = try f.network { $0.bridge = name }
        let c = try f.container()
        let e = try f.host.run { try first.attach(c) }
        // A second process (or a restart) sets the same network up again.
        let second = try f.network { $0.bridge = name }
        #expect(!second.adopted)
        #expect(second.subnet == first.subnet)
        #expect(try second.leasedAddresses() == [e.address.address])
        let c2 = try f.container()
        let e2 = try f.host.run { try second.attach(c2) }
        #expect(e2.address != e.address)
        try f.host.run {
            try second.detach(e2)
            try first.detach(e)
            try second.tearDown()
        }
        #expect(!(try f.hostLinks()).contains(name))
    }

    @Test func backgroundDeletionsAreBatched() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network()
        var endpoints: [Endpoint] = []
        for _ in 0..<6 {
            let c = try f.container()
            endpoints.append(try f.host.run { try net.attach(c) })
        }
        // A container whose namespace is gone already: its veth went with it.
        let gone = try NetworkNamespace.create()
        let eGone = try f.host.run { try net.attach(gone) }
        gone.close()
        for e in endpoints { try f.host.run { try net.detach(e) } }
        try f.host.run { try net.detach(eGone) }
        try net.waitForPendingDeletions()
        let left = try f.host.run { try NetlinkSession().links().filter { $0.kind == "veth" } }
        #expect(left.isEmpty)
        #expect(try net.leasedAddresses().isEmpty)
        try f.host.run { try net.tearDown() }
    }

    @Test func containerSeesEth0AddressMACAndDefaultRoute() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network()
        let c = try f.container()
        let e = try f.host.run { try net.attach(c) }
        let (eth0, addrs, routes, lo) = try c.run {
            let nl = try NetlinkSession()
            return (try nl.link(named: "eth0"), try nl.addresses(of: "eth0"), try nl.routes(), try nl.link(named: "lo"))
        }
        #expect(eth0.isUp)
        #expect(lo.isUp)
        #expect(eth0.macAddress == MACAddress("02:42:ac:11:00:02")!)
        #expect(e.macAddress == eth0.macAddress)
        #expect(addrs.contains(.ipv4(IPv4CIDR("172.17.0.2/16")!)))
        #expect(routes.contains { $0.isDefault && $0.gateway == ip("172.17.0.1") && $0.interfaceIndex == eth0.index })
        try f.host.run { try net.detach(e); try net.tearDown() }
    }

    @Test func hostRouteOverlappingMovesThePoolOn() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let dummy = testName("du")
        try f.host.run {
            let nl = try NetlinkSession()
            try nl.addBridge(named: dummy)
            try nl.addAddress(.ipv4(IPv4CIDR("172.17.42.1/24")!), to: dummy)
            try nl.setUp(dummy)
        }
        let net = try f.network()
        #expect(net.subnet.subnet == IPv4CIDR("172.18.0.0/16")!)
        #expect(net.subnet.gateway == ip("172.18.0.1"))
        let named = try f.network { $0.nameservers = [self.ip("172.19.0.10")] }
        #expect(named.subnet.subnet == IPv4CIDR("172.20.0.0/16")!)  // 172.18 taken by the first, 172.19 holds a nameserver
        try f.host.run { try named.tearDown(); try net.tearDown() }
    }

    @Test func bipGivesThatSubnet() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network { $0.bip = IPv4CIDR("192.168.11.1/24")! }
        #expect(net.subnet.subnet == IPv4CIDR("192.168.11.0/24")!)
        let c = try f.container()
        let e = try f.host.run { try net.attach(c) }
        #expect(e.address == IPv4CIDR("192.168.11.2/24")!)
        #expect(e.gateway == ip("192.168.11.1"))
        let bridgeAddrs = try f.host.run { try NetlinkSession().addresses(of: net.bridge) }
        #expect(bridgeAddrs.contains(.ipv4(IPv4CIDR("192.168.11.1/24")!)))
        #expect(try f.ping(from: c, ip("192.168.11.1")))
        try f.host.run { try net.detach(e); try net.tearDown() }
    }

    @Test func hairpinNATSetsHairpinOnContainerPorts() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network { $0.hairpinNAT = true }
        let c = try f.container()
        let e = try f.host.run { try net.attach(c) }
        #expect(try f.host.sh("bridge -d link show dev \(e.hostInterface)").contains("hairpin on"))
        try f.host.run { try net.detach(e); try net.tearDown() }
    }

    @Test func existingBridgeIsAdoptedAndKept() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let cbr = testName("cbr")
        try f.host.run {
            let nl = try NetlinkSession()
            try nl.addBridge(named: cbr)
            try nl.addAddress(.ipv4(IPv4CIDR("10.10.0.1/24")!), to: cbr)
        }
        let net = try f.network { $0.bridge = cbr }
        #expect(net.adopted)
        #expect(net.subnet.subnet == IPv4CIDR("10.10.0.0/24")!)
        let c = try f.container()
        let e = try f.host.run { try net.attach(c) }
        #expect(e.address == IPv4CIDR("10.10.0.2/24")!)
        #expect(try f.ping(from: c, ip("10.10.0.1")))
        try f.host.run { try net.detach(e); try net.tearDown() }
        let after = try f.host.run { (try NetlinkSession().linkIfPresent(named: cbr), try NetlinkSession().addresses(of: cbr)) }
        #expect(after.0 != nil)
        #expect(after.1.contains(.ipv4(IPv4CIDR("10.10.0.1/24")!)))
        // A bip that contradicts the adopted bridge's address is refused.
        do {
            _ = try f.network { $0.bridge = cbr; $0.bip = IPv4CIDR("10.20.0.1/24")! }
            Issue.record("adopted with a different bip")
        } catch let e as BerthError {
            #expect(e.message.contains("already has address 10.10.0.1/24"))
        }
    }

    @Test func containerModeSharesAndNoneHasOnlyLoopback() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network()
        let x = try f.container()
        let e = try f.host.run { try net.attach(x) }
        #expect(try NetworkMode(parsing: "container:abc") == .container("abc"))
        let mode = NetworkMode.container("x")
        #expect(!mode.createsNamespace && !mode.attachesToBridge)
        // container:X joins X's namespace: it sees X's eth0 and address.
        let joined = try NetworkNamespace.open(path: x.path)
        defer { joined.close() }
        let seen = try joined.run { try NetlinkSession().addresses(of: "eth0") }
        #expect(seen.contains(.ipv4(e.address)))
        #expect(joined.inode == x.inode)

        // none: a fresh namespace with lo up and nothing else.
        #expect(NetworkMode.none.createsNamespace && !NetworkMode.none.attachesToBridge)
        let n = try f.container()
        try NetworkMode.raiseLoopback(in: n)
        let links = try f.links(n)
        #expect(links.map(\.name) == ["lo"])
        #expect(links[0].isUp)
        #expect(throws: BerthError.self) { try NetworkMode(parsing: "container:") }
        #expect(throws: BerthError.self) { try NetworkMode(parsing: "overlay") }
        try f.host.run { try net.detach(e); try net.tearDown() }
    }
}
