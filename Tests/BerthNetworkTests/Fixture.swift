import BerthIPAM
import BerthNamespaces
import BerthNetLink
import BerthNetwork
import BerthPortMapper
import BerthSystem
import BerthTestSupport
import Testing

/// A sandbox host with a state root; everything it made goes away in `close()`.
final class NetworkFixture {
    let host: SandboxHost
    let stateRoot: String
    private var namespaces: [NetworkNamespace] = []

    init() throws {
        host = try SandboxHost()
        stateRoot = try FileIO.makeTemporaryDirectory(prefix: "berth-net-\(getpidValue())-")
    }

    /// Sets up a bridge network inside the sandbox (no firewall unless asked, no resolv.conf).
    func network(_ configure: (inout BridgeConfiguration) -> Void = { _ in }) throws -> BridgeNetwork {
        var c = BridgeConfiguration(bridge: testName("br"), firewall: FirewallKind.none, nameservers: [])
        configure(&c)
        let config = c
        return try host.run { try BridgeNetwork.setUp(config, stateRoot: stateRoot) }
    }

    /// A fresh "container" namespace, closed with the fixture.
    func container() throws -> NetworkNamespace {
        let ns = try NetworkNamespace.create()
        namespaces.append(ns)
        return ns
    }

    /// Runs a command inside `ns`; returns whether it succeeded.
    func succeeds(_ ns: NetworkNamespace, _ args: [String]) throws -> Bool {
        try ns.run { try Command.run("/usr/bin/busybox", args).succeeded }
    }

    /// Pings until a reply comes or ~5 s pass: a new bridge port forwards only once the kernel's
    /// link watcher has seen the carrier come up (up to a second later).
    func ping(from ns: NetworkNamespace, _ target: IPv4Address) throws -> Bool {
        for _ in 0..<5 where try succeeds(ns, ["ping", "-c", "1", "-W", "1", "\(target)"]) { return true }
        return false
    }

    /// Pings a few times and reports whether *any* reply came (for checks that traffic is blocked).
    func pingBlocked(from ns: NetworkNamespace, _ target: IPv4Address) throws -> Bool {
        !(try succeeds(ns, ["ping", "-c", "2", "-W", "1", "\(target)"]))
    }

    /// Link names in the sandbox host.
    func hostLinks() throws -> [String] { try host.run { try NetlinkSession().links().map(\.name) } }

    /// Links of a namespace.
    func links(_ ns: NetworkNamespace) throws -> [Link] { try ns.run { try NetlinkSession().links() } }

    func close() {
        for ns in namespaces { ns.close() }
        host.close()
        try? FileIO.removeTree(stateRoot)
    }
}

#if canImport(Glibc)
import Glibc
func getpidValue() -> Int32 { getpid() }
#endif
