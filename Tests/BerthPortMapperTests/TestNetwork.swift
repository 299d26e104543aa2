import BerthNamespaces
import BerthPortMapper
import BerthSystem
import BerthTestSupport
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// A sandbox host with a bridge, a "container" namespace on a veth, and a host address on a veth
/// interface: everything a port-publishing test needs, gone with the namespaces.
final class TestNetwork: @unchecked Sendable {
    let host: SandboxHost
    let container: NetworkNamespace
    let bridge: String
    let hostVeth: String
    let subnetIndex: Int
    var gateway: IPv4Address { IPv4Address(172, 29, UInt8(subnetIndex), 1) }
    var containerIP: IPv4Address { IPv4Address(172, 29, UInt8(subnetIndex), 2) }
    let hostIP = IPv4Address(10, 77, 0, 1)

    init(hairpin: Bool = false) throws {
        host = try SandboxHost()
        container = try NetworkNamespace.create()
        bridge = testName("pb")
        hostVeth = testName("pv")
        subnetIndex = Int.random(in: 1...250)  // namespaces are private: any value works
        let tid = try container.run { berth_gettid() }
        try host.sh("""
            set -e
            sysctl -qw net.ipv4.ip_forward=1
            ip link add ext0 type veth peer name ext1 && ip addr add \(hostIP)/24 dev ext0 && ip link set ext0 up && ip link set ext1 up
            ip link add \(bridge) type bridge && ip addr add \(gateway)/24 dev \(bridge) && ip link set \(bridge) up
            ip link add \(hostVeth) type veth peer name eth0 && ip link set eth0 netns \(tid)
            ip link set \(hostVeth) master \(bridge) && ip link set \(hostVeth) up
            \(hairpin ? "ip link set \(hostVeth) type bridge_slave hairpin on" : "")
            """)
        _ = try container.run {
            try Command.check("/bin/sh", ["-c", """
                set -e
                ip addr add \(containerIP)/24 dev eth0 && ip link set eth0 up
                ip route add default via \(gateway)
                """])
        }
    }

    func close() {
        container.close()
        host.close()
    }
}

/// A TCP or UDP echo server in some namespace, served by its own thread (the socket stays bound
/// to the namespace it was opened in). TCP: echoes until EOF, then closes.
final class EchoServer: @unchecked Sendable {
    let fd: Int32
    let udp: Bool
    private var thread = pthread_t()

    init(in ns: NetworkNamespace, port: UInt16, udp: Bool = false) throws {
        self.udp = udp
        fd = try ns.run { try serverSocket(port: port, udp: udp, what: "echo server") }
        let me = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { arg in
            let server = Unmanaged<EchoServer>.fromOpaque(arg!).takeRetainedValue()
            server.serve()
            return nil
        }, me.toOpaque())
    }

    private func serve() {
        var buf = [UInt8](repeating: 0, count: 65536)
        if udp {
            while true {
                var from = sockaddr_in()
                var len = socklen_t(16)
                let n = withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buf, buf.count, 0, $0, &len) }
                }
                if n < 0 { return }
                _ = withUnsafePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, buf, n, 0, $0, len) }
                }
            }
        }
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            while true {
                let n = read(c, &buf, buf.count)
                if n <= 0 { break }
                _ = send(c, buf, n, Int32(MSG_NOSIGNAL))  // a client that gave up must not kill the tests
            }
            Glibc.close(c)
        }
    }

    /// Stops accepting (the thread exits on the failed accept/recv).
    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}

/// Connects to `ip:port` from the calling thread's namespace, sends `message`, half-closes, and
/// returns everything read until EOF (TCP) or one datagram (UDP). Times out after 3 s.
func exchange(_ ip: IPv4Address, _ port: UInt16, _ message: String, udp: Bool = false) throws -> String {
    let s = try connectedSocket(ip, port, udp: udp, timeout: 3)
    defer { close(s) }
    let bytes = Array(message.utf8)
    guard send(s, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { throw BerthError.system("send to \(ip):\(port)") }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    if udp {
        let n = read(s, &buf, buf.count)
        guard n >= 0 else { throw BerthError.system("receive from \(ip):\(port)") }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }
    shutdown(s, Int32(SHUT_WR))
    while true {
        let n = read(s, &buf, buf.count)
        if n < 0 { throw BerthError.system("read from \(ip):\(port)") }
        if n == 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

/// A socket bound to `port` on every address of the calling thread's namespace (listening, for
/// TCP), with SO_REUSEADDR.
func serverSocket(port: UInt16, udp: Bool = false, what: String) throws -> Int32 {
    let s = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, 4)
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, 16) } }
    guard rc == 0, udp || listen(s, 16) == 0 else { let e = errno; close(s); throw BerthError.system("bind \(what)", errno: e) }
    return s
}

/// A socket connected to `ip:port` from the calling thread's namespace, with send and receive
/// timeouts of `timeout` seconds.
func connectedSocket(_ ip: IPv4Address, _ port: UInt16, udp: Bool = false, timeout: Int) throws -> Int32 {
    let s = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
    var tv = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    sa.sin_addr.s_addr = ip.value.bigEndian
    let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, 16) } }
    guard rc == 0 else { let e = errno; close(s); throw BerthError.system("connect \(ip):\(port)", errno: e) }
    return s
}

/// What most publishing tests start from: a sandbox host with a container (``TestNetwork``), a
/// temporary state root for the port allocator, and echo servers in the container.
struct PublishFixture {
    let net: TestNetwork
    let root: String
    private let servers: [EchoServer]

    /// - Parameters:
    ///   - ports: The container ports to run an echo server on.
    ///   - udp: UDP echo servers instead of TCP.
    ///   - hairpin: Passed to ``TestNetwork``.
    init(echo ports: [UInt16], udp: Bool = false, hairpin: Bool = false) throws {
        let net = try TestNetwork(hairpin: hairpin)
        var servers: [EchoServer] = []
        do {
            root = try temporaryRoot()
            for port in ports { servers.append(try EchoServer(in: net.container, port: port, udp: udp)) }
        } catch {
            for s in servers { s.close() }
            net.close()
            throw error
        }
        self.net = net
        self.servers = servers
    }

    /// A publisher on this fixture's state root, with the firewall of `kind` (nil: the host's
    /// choice) and `proxy`.
    func publisher(_ kind: FirewallKind?, proxy: UserlandProxy?) throws -> PortPublisher {
        PortPublisher(allocator: try PortAllocator(stateRoot: root), firewall: try makeFirewall(kind), proxy: proxy)
    }

    func close() {
        for s in servers { s.close() }
        try? FileIO.removeTree(root)
        net.close()
    }
}
