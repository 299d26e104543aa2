import ArgumentParser
import BerthNamespaces
import BerthNetLink
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// `berth-netlink`: builds a bridge with N veth-attached network namespaces through BerthNetLink
/// (no `ip` command), shows them, pings across, and tears everything down. By default all of it
/// happens inside a fresh network namespace playing the host; `--in-root-namespace` uses the real one.
@main
struct BerthNetlinkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-netlink",
        abstract: "Create a bridge with N veth-attached namespaces via libnl, show them, tear down.")

    @Option(name: .shortAndLong, help: "Number of namespaces to attach.")
    var count = 3

    @Option(help: "Bridge name.")
    var bridge = "berthnl0"

    @Option(help: "Bridge address; namespaces get the following addresses.")
    var address = "10.199.0.1/24"

    @Flag(help: "Work in the machine's root network namespace instead of a fresh one.")
    var inRootNamespace = false

    @Flag(help: "Keep the objects (only with --in-root-namespace; a fresh namespace always vanishes).")
    var keep = false

    func run() throws {
        guard (1...200).contains(count) else { throw ValidationError("--count must be 1 to 200") }
        let gateway = try IPv4CIDR(parsing: address)
        guard gateway.prefixLength <= 30, UInt64(count) + 2 < gateway.size else {
            throw ValidationError("\(address) has no room for \(count) namespaces")
        }
        let host = inRootNamespace ? try NetworkNamespace.open(path: "/proc/self/ns/net") : try NetworkNamespace.create()
        defer { host.close() }
        print(inRootNamespace ? "working in the root network namespace" : "working in a fresh network namespace (inode \(host.inode))")

        var containers: [NetworkNamespace] = []
        defer { for c in containers { c.close() } }
        var names: [String] = []
        try host.run {
            let nl = try NetlinkSession()
            let br = try nl.addBridge(named: bridge)
            try nl.addAddress(.ipv4(gateway), to: bridge)
            try nl.setUp(bridge)
            print("created \(br)")
            for i in 0..<count {
                let ns = try NetworkNamespace.create()
                containers.append(ns)
                let name = "vethnl\(getpid() % 1000)x\(i)"
                let tmp = "tmpnl\(getpid() % 1000)x\(i)"
                try nl.addVethPair(VethPair(name: name, peerName: tmp))
                try nl.setMaster(name, bridge: bridge)
                try nl.setUp(name)
                // Move, rename and raise the container end in one request.
                try nl.moveLink(tmp, to: .fd(ns.fd), renamingTo: "eth0", up: true)
                names.append(name)
            }
            print("host links:")
            for l in try nl.links() { print("  \(l)") }
        }
        for (i, ns) in containers.enumerated() {
            let ip = IPv4Address(gateway.address.value + UInt32(i) + 1)
            let cidr = try IPv4CIDR(address: ip, prefixLength: gateway.prefixLength)
            let (eth0, routes) = try ns.run {
                let nl = try NetlinkSession()
                try nl.addAddress(.ipv4(cidr), to: "eth0")
                try nl.addRoute(.defaultRoute(via: gateway.address))
                return (try nl.link(named: "eth0"), try nl.routes())
            }
            print("namespace \(i) (inode \(ns.inode)): \(eth0) \(cidr); routes: \(routes.map(\.description).joined(separator: ", "))")
        }
        if count >= 2, let first = containers.first {
            let target = IPv4Address(gateway.address.value + 2)
            var ok = false
            for _ in 0..<5 where !ok {
                ok = try first.run { try Command.run("busybox", ["ping", "-c", "1", "-W", "1", "\(target)"]).succeeded }
            }
            print("ping from namespace 0 to \(target): \(ok ? "ok" : "no reply")")
        }
        if inRootNamespace && keep {
            print("kept \(bridge) and \(names.joined(separator: " ")) (the namespaces vanish on exit, taking the veths)")
            return
        }
        try host.run {
            let nl = try NetlinkSession()
            for n in names { try? nl.deleteLink(named: n) }
            try nl.deleteLink(named: bridge)
        }
        print("removed \(bridge) and \(names.count) veth pairs")
    }
}
