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

@Suite struct PublishMoreTests {
    @Test func ephemeralPortAndPublishAll() throws {
        let net = try TestNetwork()
        defer { net.close() }
        let root = try temporaryRoot()
        defer { try? FileIO.removeTree(root) }
        let s1 = try EchoServer(in: net.container, port: 8080)
        defer { s1.close() }
        let s2 = try EchoServer(in: net.container, port: 9090)
        defer { s2.close() }
        try net.host.sh("echo '42000 42099' > /proc/sys/net/ipv4/ip_local_port_range")
        try net.host.run {
            let proxy = try UserlandProxy()
            defer { proxy.close() }
            let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: root), firewall: try makeFirewall(nil), proxy: proxy)
            // -p 8080
            let one = try publisher.publish(owner: "a", try PortSpec(parsing: "8080").bindings, containerIP: net.containerIP, bridge: net.bridge)
            #expect(one.count == 1 && (42000...42099).contains(one[0].hostPort))
            #expect(try exchange(net.hostIP, one[0].hostPort, "eph") == "eph")
            try publisher.unpublish(owner: "a", one)
            // -P with two exposed ports
            let exposed = try ExposedPort.parse(expose: "8080") + ExposedPort.parse(expose: "9090/tcp")
            let all = try publisher.publish(owner: "b", PortSpec.publishAll(exposed), containerIP: net.containerIP, bridge: net.bridge)
            #expect(all.count == 2)
            #expect(Set(all.map(\.hostPort)).count == 2)
            for m in all {
                #expect((42000...42099).contains(m.hostPort))
                #expect(try exchange(.loopback, m.hostPort, "P\(m.containerPort)") == "P\(m.containerPort)")
                #expect(try exchange(net.hostIP, m.hostPort, "D\(m.containerPort)") == "D\(m.containerPort)")
            }
            try publisher.unpublish(owner: "b", all)
            #expect(try publisher.allocator.allocations().isEmpty)
        }
    }

    @Test(arguments: [FirewallKind.iptables, .nftables])
    func udpEchoAndConntrackFlush(kind: FirewallKind) throws {
        let net = try TestNetwork()
        defer { net.close() }
        let root = try temporaryRoot()
        defer { try? FileIO.removeTree(root) }
        let server = try EchoServer(in: net.container, port: 5353, udp: true)
        defer { server.close() }
        let before = try primedRuleset(net.host, kind)
        try net.host.run {
            let proxy = try UserlandProxy()
            defer { proxy.close() }
            let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: root), firewall: try makeFirewall(kind), proxy: proxy)
            let mappings = try publisher.publish(owner: "u", try PortSpec(parsing: "15353:5353/udp").bindings,
                                                 containerIP: net.containerIP, bridge: net.bridge)
            #expect(try exchange(net.hostIP, 15353, "dnat", udp: true) == "dnat")
            #expect(try exchange(.loopback, 15353, "proxy", udp: true) == "proxy")
            #expect(proxy.activeFlows == 1)
            let tracked = try Command.run("conntrack", ["-L", "-p", "udp", "--orig-port-dst", "15353"])
            #expect(tracked.stdout.contains("dport=15353"))
            try publisher.unpublish(owner: "u", mappings)
            let after = try Command.run("conntrack", ["-L", "-p", "udp", "--orig-port-dst", "15353"])
            #expect(!after.stdout.contains("dport=15353"))
        }
        #expect(try ruleset(net.host, kind) == before)
    }

    @Test(arguments: [FirewallKind.iptables, .nftables])
    func hairpin(kind: FirewallKind) throws {
        let net = try TestNetwork(hairpin: true)
        defer { net.close() }
        let root = try temporaryRoot()
        defer { try? FileIO.removeTree(root) }
        let server = try EchoServer(in: net.container, port: 8080)
        defer { server.close() }
        let before = try primedRuleset(net.host, kind)
        let fw = try makeFirewall(kind)
        let bridgeRules = BridgeRules(bridge: net.bridge, subnet: try IPv4CIDR(parsing: "\(net.gateway)/24"),
                                      icc: true, masquerade: true, hairpinNAT: true)
        let mappings = try net.host.run {
            try fw.addBridgeRules(bridgeRules)
            // No proxy: only DNAT can carry the container's connection to its own published port.
            let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: root), firewall: fw, proxy: nil)
            return try publisher.publish(owner: "h", try PortSpec(parsing: "18081:8080").bindings,
                                         containerIP: net.containerIP, bridge: net.bridge)
        }
        #expect(try net.container.run { try exchange(net.hostIP, 18081, "hairpin") } == "hairpin")
        try net.host.run {
            try fw.removePortMappings(mappings)
            try fw.removeBridgeRules(bridgeRules)
        }
        #expect(try ruleset(net.host, kind) == before)
    }

    @Test func proxylessLoopbackDNAT() throws {
        let net = try TestNetwork()
        defer { net.close() }
        let root = try temporaryRoot()
        defer { try? FileIO.removeTree(root) }
        let server = try EchoServer(in: net.container, port: 8080)
        defer { server.close() }
        try net.host.run {
            try LoopbackDNAT.set(bridge: net.bridge, enabled: true)
            let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: root), firewall: try makeFirewall(.iptables), proxy: nil)
            let m = try publisher.publish(owner: "l", try PortSpec(parsing: "18082:8080").bindings, containerIP: net.containerIP, bridge: net.bridge)
            #expect(try exchange(.loopback, 18082, "no proxy") == "no proxy")
            try publisher.unpublish(owner: "l", m)
            #expect(throws: BerthError.self) { try exchange(.loopback, 18082, "gone") }
        }
        #expect(throws: BerthError.self) { try LoopbackDNAT.set(bridge: "../x", enabled: true) }
    }

    @Test func proxyRefusesATakenPortAndRollsBack() throws {
        let net = try TestNetwork()
        defer { net.close() }
        let root = try temporaryRoot()
        defer { try? FileIO.removeTree(root) }
        let before = try primedRuleset(net.host, .iptables)
        try net.host.run {
            // Something else already listens on 127.0.0.1:18083.
            let squatter = try UserlandProxy()
            defer { squatter.close() }
            try squatter.publish(PortMapping(proto: .tcp, hostIP: .loopback, hostPort: 18083, containerIP: net.containerIP,
                                             containerPort: 1, bridge: net.bridge))
            let proxy = try UserlandProxy()
            defer { proxy.close() }
            let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: root), firewall: try makeFirewall(.iptables), proxy: proxy)
            #expect(throws: BerthError.self) {
                try publisher.publish(owner: "x", try PortSpec(parsing: "18084:80").bindings + (try PortSpec(parsing: "18083:8080").bindings),
                                      containerIP: net.containerIP, bridge: net.bridge)
            }
            #expect(try publisher.allocator.allocations().isEmpty)
            #expect(proxy.mappings.isEmpty)
        }
        #expect(try ruleset(net.host, .iptables) == before)
    }
}
