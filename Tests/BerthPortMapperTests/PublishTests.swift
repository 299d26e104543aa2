import BerthNamespaces
import BerthPortMapper
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct PublishTests {
    @Test(arguments: [FirewallKind.iptables, .nftables])
    func publishedPortIsReachableAtHostAddressAndLoopback(kind: FirewallKind) throws {
        let f = try PublishFixture(echo: [8080])
        defer { f.close() }
        let net = f.net
        let before = try primedRuleset(net.host, kind)
        try net.host.run {
            let proxy = try UserlandProxy()
            defer { proxy.close() }
            let publisher = try f.publisher(kind, proxy: proxy)
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
    /// A port the allocator hands out may be held by a socket it does not know about (here a
    /// listener; in life, usually an outgoing connection's local port from the same range).
    @Test func portsInUseByOtherSocketsAreSkipped() throws {
        let f = try PublishFixture(echo: [8080])
        defer { f.close() }
        let net = f.net
        try net.host.sh("echo '43000 43009' > /proc/sys/net/ipv4/ip_local_port_range")
        try net.host.run {
            let squatter = try serverSocket(port: 43000, what: "squatter")  // listening: no one else may bind
            defer { close(squatter) }
            let proxy = try UserlandProxy()
            defer { proxy.close() }
            let publisher = try f.publisher(nil, proxy: proxy)
            // Ephemeral: the first candidate, 43000, is taken; the next one is used.
            let eph = try publisher.publish(owner: "a", try PortSpec(parsing: "8080").bindings, containerIP: net.containerIP, bridge: net.bridge)
            #expect(eph.map(\.hostPort) == [43001])
            #expect(try exchange(.loopback, 43001, "eph") == "eph")
            #expect(try publisher.allocator.allocations().map(\.port) == [43001])
            try publisher.unpublish(owner: "a", eph)
            // A range: its first free port is taken; the next one is used.
            let ranged = try publisher.publish(owner: "b", try PortSpec(parsing: "43000-43005:8080").bindings,
                                               containerIP: net.containerIP, bridge: net.bridge)
            #expect(ranged.map(\.hostPort) == [43001])
            try publisher.unpublish(owner: "b", ranged)
            // A fixed port has no choice: the error names it, and nothing stays allocated.
            #expect {
                try publisher.publish(owner: "c", try PortSpec(parsing: "43000:8080").bindings, containerIP: net.containerIP, bridge: net.bridge)
            } throws: { error in
                (error as? BerthError)?.code == .alreadyExists && "\(error)".hasPrefix("proxy listen on 0.0.0.0:43000/tcp")
            }
            #expect(try publisher.allocator.allocations().isEmpty)
            #expect(proxy.mappings.isEmpty)
        }
    }

    @Test func ephemeralPortAndPublishAll() throws {
        let f = try PublishFixture(echo: [8080, 9090])
        defer { f.close() }
        let net = f.net
        try net.host.sh("echo '42000 42099' > /proc/sys/net/ipv4/ip_local_port_range")
        try net.host.run {
            let proxy = try UserlandProxy()
            defer { proxy.close() }
            let publisher = try f.publisher(nil, proxy: proxy)
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
        let f = try PublishFixture(echo: [5353], udp: true)
        defer { f.close() }
        let net = f.net
        let before = try primedRuleset(net.host, kind)
        try net.host.run {
            let proxy = try UserlandProxy()
            defer { proxy.close() }
            let publisher = try f.publisher(kind, proxy: proxy)
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
        let f = try PublishFixture(echo: [8080], hairpin: true)
        defer { f.close() }
        let net = f.net
        let before = try primedRuleset(net.host, kind)
        let fw = try makeFirewall(kind)
        let bridgeRules = BridgeRules(bridge: net.bridge, subnet: try IPv4CIDR(parsing: "\(net.gateway)/24"),
                                      icc: true, masquerade: true, hairpinNAT: true)
        let mappings = try net.host.run {
            try fw.addBridgeRules(bridgeRules)
            // No proxy: only DNAT can carry the container's connection to its own published port.
            let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: f.root), firewall: fw, proxy: nil)
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
        let f = try PublishFixture(echo: [8080])
        defer { f.close() }
        let net = f.net
        try net.host.run {
            try LoopbackDNAT.set(bridge: net.bridge, enabled: true)
            let publisher = try f.publisher(.iptables, proxy: nil)
            let m = try publisher.publish(owner: "l", try PortSpec(parsing: "18082:8080").bindings, containerIP: net.containerIP, bridge: net.bridge)
            #expect(try exchange(.loopback, 18082, "no proxy") == "no proxy")
            try publisher.unpublish(owner: "l", m)
            #expect(throws: BerthError.self) { try exchange(.loopback, 18082, "gone") }
        }
        #expect(throws: BerthError.self) { try LoopbackDNAT.set(bridge: "../x", enabled: true) }
    }

    @Test func proxyRefusesATakenPortAndRollsBack() throws {
        let f = try PublishFixture(echo: [])
        defer { f.close() }
        let net = f.net
        let before = try primedRuleset(net.host, .iptables)
        try net.host.run {
            // Something else already listens on 127.0.0.1:18083.
            let squatter = try UserlandProxy()
            defer { squatter.close() }
            try squatter.publish(PortMapping(proto: .tcp, hostIP: .loopback, hostPort: 18083, containerIP: net.containerIP,
                                             containerPort: 1, bridge: net.bridge))
            let proxy = try UserlandProxy()
            defer { proxy.close() }
            let publisher = try f.publisher(.iptables, proxy: proxy)
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

@Suite struct ConcurrentPublishTests {
    /// 20 publishers, each on its own thread inside the same sandbox, share one state root and one
    /// firewall: distinct ports, every rule present, and the rule set restored afterwards.
    @Test(arguments: [FirewallKind.iptables, .nftables])
    func twentyPublishersGetDistinctPorts(kind: FirewallKind) throws {
        let host = try SandboxHost()
        defer { host.close() }
        let root = try temporaryRoot()
        defer { try? FileIO.removeTree(root) }
        let before = try primedRuleset(host, kind)
        let namespaces = try (0..<20).map { _ in try NetworkNamespace.open(path: host.namespace.path) }
        defer { for ns in namespaces { ns.close() } }
        let results = MappingResults()
        let group = ThreadGroup()
        for (i, ns) in namespaces.enumerated() {
            group.start {
                do {
                    let m = try ns.run {
                        let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: root, ephemeral: EphemeralPorts(range: 43000...43999)),
                                                      firewall: try makeFirewall(kind), proxy: nil)
                        return try publisher.publish(owner: "c\(i)", try PortSpec(parsing: "8080").bindings,
                                                     containerIP: IPv4Address(172, 28, 0, UInt8(i + 2)), bridge: "br0")
                    }
                    results.add(i, m)
                } catch {
                    results.fail("\(error)")
                }
            }
        }
        group.join()
        #expect(results.errors.isEmpty, "\(results.errors)")
        let all = results.mappings
        #expect(all.count == 20)
        #expect(Set(all.values.flatMap { $0.map(\.hostPort) }).count == 20)
        let during = try ruleset(host, kind)
        for m in all.values.flatMap({ $0 }) { #expect(during.contains("\(m.containerIP):8080")) }
        for (i, ns) in namespaces.enumerated() {
            group.start {
                do {
                    try ns.run {
                        let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: root, ephemeral: EphemeralPorts(range: 43000...43999)),
                                                      firewall: try makeFirewall(kind), proxy: nil)
                        try publisher.unpublish(owner: "c\(i)", all[i] ?? [])
                    }
                } catch {
                    results.fail("\(error)")
                }
            }
        }
        group.join()
        #expect(results.errors.isEmpty, "\(results.errors)")
        #expect(try ruleset(host, kind) == before)
    }
}

final class MappingResults: @unchecked Sendable {
    private let lock = NSLockLike()
    private var byIndex: [Int: [PortMapping]] = [:]
    private var failures: [String] = []
    func add(_ i: Int, _ m: [PortMapping]) { lock.locked { byIndex[i] = m } }
    func fail(_ e: String) { lock.locked { failures.append(e) } }
    var mappings: [Int: [PortMapping]] { lock.locked { byIndex } }
    var errors: [String] { lock.locked { failures } }
}

/// A pthread mutex for test bookkeeping.
final class NSLockLike: @unchecked Sendable {
    private let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(m, nil) }
    deinit { pthread_mutex_destroy(m); m.deallocate() }
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

/// Starts closures on plain pthreads and joins them.
final class ThreadGroup: @unchecked Sendable {
    private var threads: [pthread_t] = []
    func start(_ body: @escaping @Sendable () -> Void) {
        final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        var t = pthread_t()
        pthread_create(&t, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, Unmanaged.passRetained(Box(body)).toOpaque())
        threads.append(t)
    }
    func join() {
        for t in threads { pthread_join(t, nil) }
        threads = []
    }
}

@Suite struct ProxyFlowTests {
    /// An idle UDP flow is forgotten after the idle timeout; the next datagram opens a new one.
    @Test func idleUDPFlowsExpire() throws {
        let net = try TestNetwork()
        defer { net.close() }
        let server = try EchoServer(in: net.container, port: 5300, udp: true)
        defer { server.close() }
        try net.host.run {
            let proxy = try UserlandProxy(options: .init(udpIdleTimeout: 1))
            defer { proxy.close() }
            try proxy.publish(PortMapping(proto: .udp, hostIP: .loopback, hostPort: 15300, containerIP: net.containerIP,
                                          containerPort: 5300, bridge: net.bridge))
            #expect(try exchange(.loopback, 15300, "one", udp: true) == "one")
            #expect(proxy.activeFlows == 1)
            var waited = 0
            while proxy.activeFlows > 0 && waited < 100 {
                usleep(100_000)
                waited += 1
            }
            #expect(proxy.activeFlows == 0)
            #expect(try exchange(.loopback, 15300, "two", udp: true) == "two")
        }
    }

    /// Many concurrent TCP connections through one engine, each echoed whole.
    @Test func concurrentConnections() throws {
        let net = try TestNetwork()
        defer { net.close() }
        let server = try EchoServer(in: net.container, port: 7070)
        defer { server.close() }
        let proxy = try net.host.run { () -> UserlandProxy in
            let p = try UserlandProxy()
            try p.publish(PortMapping(proto: .tcp, hostIP: .loopback, hostPort: 17070, containerIP: net.containerIP,
                                      containerPort: 7070, bridge: net.bridge))
            return p
        }
        defer { proxy.close() }
        // Client sockets opened inside the sandbox, used from several threads.
        let namespaces = try (0..<8).map { _ in try NetworkNamespace.open(path: net.host.namespace.path) }
        defer { for ns in namespaces { ns.close() } }
        let results = MappingResults()
        let group = ThreadGroup()
        for (i, ns) in namespaces.enumerated() {
            group.start {
                do {
                    let msg = String(repeating: Character(UnicodeScalar(UInt8(65 + i))), count: 200_000 + i)
                    let got = try ns.run { try exchange(.loopback, 17070, msg) }
                    if got != msg { results.fail("connection \(i): \(got.count) bytes back of \(msg.count)") }
                } catch {
                    results.fail("\(error)")
                }
            }
        }
        group.join()
        #expect(results.errors.isEmpty, "\(results.errors)")
    }
}
