import BerthNamespaces
import BerthPortMapper
import BerthSystem
import BerthTestSupport
import Testing

@Suite struct PublishTests {
    @Test(arguments: [FirewallKind.iptables, .nftables])
    func publishedPortIsReachableAtHostAddressAndLoopback(kind: FirewallKind) throws {
        let net = try TestNetwork()
        defer { net.close() }
        let root = try temporaryRoot()
        defer { try? FileIO.removeTree(root) }
        let server = try EchoServer(in: net.container, port: 8080)
        defer { server.close() }
        let before = try primedRuleset(net.host, kind)
        try net.host.run {
            let proxy = try UserlandProxy()
            defer { proxy.close() }
            let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: root), firewall: try makeFirewall(kind), proxy: proxy)
            let spec = try PortSpec(parsing: "18080:8080")
            let mappings = try publisher.publish(owner: "c1", spec.bindings, containerIP: net.containerIP, bridge: net.bridge)
            #expect(mappings.map(\.hostPort) == [18080])
            #expect(try exchange(net.hostIP, 18080, "via DNAT") == "via DNAT")
            #expect(try exchange(.loopback, 18080, "via proxy") == "via proxy")
            // Half-close: a large payload comes back whole after our shutdown(SHUT_WR).
            let big = String(repeating: "x", count: 3_000_000)
            #expect(try exchange(.loopback, 18080, big).count == big.count)
            // A second publisher of the same port fails with Docker's message and leaves nothing.
            do {
                _ = try publisher.publish(owner: "c2", spec.bindings, containerIP: net.containerIP, bridge: net.bridge)
                Issue.record("double publish")
            } catch let e as BerthError {
                #expect(e.message == "Bind for 0.0.0.0:18080 failed: port is already allocated")
            }
            try publisher.unpublish(owner: "c1", mappings)
            #expect(proxy.mappings.isEmpty)
            #expect(throws: BerthError.self) { try exchange(.loopback, 18080, "gone") }
        }
        #expect(try ruleset(net.host, kind) == before)
    }
}
