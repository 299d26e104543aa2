import ArgumentParser
import BerthNamespaces
import BerthNetwork
import BerthPortMapper
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// `berth-portmap demo`: everything in a throwaway sandbox — a network namespace playing the host,
/// a bridge network, a "container" namespace with a tiny TCP server, and its ports published.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish a port of a server in a container namespace, all inside a sandbox, until Ctrl-C.")

    @Option(name: .short, help: "Port specs (default: 18080:8080 and 127.0.0.1::8080).")
    var publish: [String] = []
    @Option(help: "Firewall backend: iptables, nftables or none; default: detect.")
    var firewall: String?

    func run() throws {
        let specs = try PortSpec.parse(publish.isEmpty ? ["18080:8080", "127.0.0.1::8080"] : publish)
        let kind: FirewallKind? = try firewall.map {
            guard let k = FirewallKind(rawValue: $0) else { throw ValidationError("unknown firewall \"\($0)\"") }
            return k
        }
        let signals = blockStopSignals()
        let state = try FileIO.makeTemporaryDirectory(prefix: "berth-portmap-demo-")
        defer { try? FileIO.removeTree(state) }
        let host = try NetworkNamespace.create()
        defer { host.close() }
        let container = try NetworkNamespace.create()
        defer { container.close() }

        let network = try host.run {
            try BridgeNetwork.setUp(BridgeConfiguration(bridge: "bpm0", firewall: kind), stateRoot: state + "/network")
        }
        defer { _ = try? host.run { try network.tearDown() } }
        let endpoint = try host.run { try network.attach(container) }
        defer { _ = try? host.run { try network.detach(endpoint, deletion: .synchronous) } }
        let containerIP = endpoint.address.address
        let servers = try Set(specs.flatMap(\.containerPorts)).map { port in
            try GreetingServer(in: container, port: port, greeting: "hello from \(containerIP):\(port)\n")
        }
        defer { for s in servers { s.close() } }

        let owner = "demo"
        let (publisher, mappings) = try host.run { () -> (PortPublisher, [PortMapping]) in
            let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: state + "/ports"),
                                          firewall: network.firewall, proxy: try UserlandProxy())
            return (publisher, try publisher.publish(owner: owner, specs.flatMap(\.bindings), containerIP: containerIP,
                                                     bridge: network.bridge))
        }
        defer { _ = try? host.run { try publisher.unpublish(owner: owner, mappings); publisher.proxy?.close() } }

        print("container \(endpoint.address) on bridge \(network.bridge) in sandbox \(host.path)")
        for m in mappings { print("published \(m)") }
        print(try host.run { try Rules.show(network.firewall.kind) }, terminator: "")
        for m in publisher.proxy?.mappings ?? [] { print("proxy listening on \(m.hostIP):\(m.hostPort)/\(m.proto)") }
        // Try each published port once, from the sandbox, via loopback (the proxy) and the gateway address (DNAT).
        for m in mappings where m.proto == .tcp {
            let targets = m.hostIP.isUnspecified ? [IPv4Address.loopback, endpoint.gateway] : [m.hostIP]
            for ip in targets {
                let reply = (try? host.run { try GreetingServer.fetch(ip, m.hostPort) }) ?? "(no answer)\n"
                print("\(ip):\(m.hostPort) -> \(reply)", terminator: "")
            }
        }
        print("serving; try: nsenter --net=\(host.path) busybox nc 127.0.0.1 \(mappings.first?.hostPort ?? 0)   (Ctrl-C to stop)")
        waitForStopSignal(signals)
        print("cleaning up")
    }
}

/// A TCP server that writes one greeting per connection and closes it; its socket is opened in the
/// given namespace and served by a thread of its own.
final class GreetingServer: @unchecked Sendable {
    let fd: Int32
    let greeting: [UInt8]

    init(in ns: NetworkNamespace, port: UInt16, greeting: String) throws {
        self.greeting = Array(greeting.utf8)
        fd = try ns.run {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
            guard s >= 0 else { throw BerthError.system("socket") }
            var one: Int32 = 1
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, 4)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, 16) } }
            guard rc == 0, listen(s, 64) == 0 else { let e = errno; Glibc.close(s); throw BerthError.system("listen on port \(port)", errno: e) }
            return s
        }
        var t = pthread_t()
        pthread_create(&t, nil, { arg in
            let me = Unmanaged<GreetingServer>.fromOpaque(arg!).takeRetainedValue()
            while true {
                let c = accept(me.fd, nil, nil)
                if c < 0 { if errno == EINTR { continue }; return nil }
                _ = me.greeting.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                Glibc.close(c)
            }
        }, Unmanaged.passRetained(self).toOpaque())
        pthread_detach(t)
    }

    func close() { shutdown(fd, Int32(SHUT_RDWR)) }

    /// Reads what a server at ip:port sends before closing (from the calling thread's namespace).
    static func fetch(_ ip: IPv4Address, _ port: UInt16) throws -> String {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        defer { Glibc.close(s) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = ip.value.bigEndian
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, 16) } }
        guard rc == 0 else { throw BerthError.system("connect \(ip):\(port)") }
        var out: [UInt8] = [], buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(s, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
