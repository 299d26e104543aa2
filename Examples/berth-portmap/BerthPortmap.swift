import ArgumentParser
import BerthNamespaces
import BerthPortMapper
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// `berth-portmap`: publishes ports of a process living in a network namespace, like `docker run -p`.
@main
struct BerthPortmap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-portmap",
        abstract: "Publish container ports with DNAT rules and Berth's userland proxy.",
        subcommands: [Demo.self, Publish.self, Rules.self]
    )
}

/// Blocks SIGINT and SIGTERM in every thread created from now on and returns a set to wait on.
func blockStopSignals() -> sigset_t {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &set, nil)
    return set
}

func waitForStopSignal(_ set: sigset_t) {
    var s = set
    var sig: Int32 = 0
    sigwait(&s, &sig)
}

struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish ports of a container until Ctrl-C, then remove every rule and listener.",
        discussion: """
            The container is given by its address on a bridge. With --netns, the rules and the \
            listeners go into that network namespace (the "host" of the bridge), for example one made \
            with `ip netns add` (/run/netns/NAME) or a process's /proc/PID/ns/net.
            """)

    @Option(name: .customLong("container-ip"), help: "The container's address on the bridge.")
    var containerIP: String
    @Option(help: "The bridge the container is attached to.")
    var bridge: String
    @Option(name: .short, help: "A port spec as for docker run -p (repeatable).")
    var publish: [String] = []
    @Flag(name: .customShort("P"), help: "Publish every --expose port on an ephemeral host port.")
    var publishAll = false
    @Option(help: "A port or range to expose (repeatable), for -P.")
    var expose: [String] = []
    @Option(help: "Network namespace to act in (a path); default: the current one.")
    var netns: String?
    @Option(help: "Firewall backend: iptables, nftables or none; default: detect.")
    var firewall: String?
    @Flag(name: .customLong("no-userland-proxy"), help: "DNAT loopback traffic instead of proxying it (sets route_localnet on the bridge).")
    var noProxy = false
    @Option(help: "State directory for port allocations.")
    var state = "/var/lib/berth/portmap"

    func run() throws {
        let ip = try IPv4Address.parse(containerIP)
        var bindings = try PortSpec.parse(publish).flatMap(\.bindings)
        if publishAll { bindings += PortSpec.publishAll(try expose.flatMap(ExposedPort.parse(expose:))) }
        guard !bindings.isEmpty else { throw ValidationError("nothing to publish: give -p or -P with --expose") }
        let kind: FirewallKind? = try firewall.map {
            guard let k = FirewallKind(rawValue: $0) else { throw ValidationError("unknown firewall \"\($0)\"") }
            return k
        }
        let signals = blockStopSignals()
        let ns = try netns.map(NetworkNamespace.open(path:)) ?? NetworkNamespace.open(path: "/proc/self/ns/net")
        defer { ns.close() }
        let owner = "berth-portmap-\(getpid())"
        let (publisher, mappings): (PortPublisher, [PortMapping]) = try ns.run {
            let fw = try makeFirewall(kind)
            if noProxy { try LoopbackDNAT.set(bridge: bridge, enabled: true) }
            let proxy = noProxy ? nil : try UserlandProxy()
            let publisher = PortPublisher(allocator: try PortAllocator(stateRoot: state), firewall: fw, proxy: proxy)
            return (publisher, try publisher.publish(owner: owner, bindings, containerIP: ip, bridge: bridge))
        }
        for m in mappings { print("published \(m)") }
        let rules = try ns.run { try Rules.show(publisher.firewall.kind) }
        print(rules, terminator: "")
        if let proxy = publisher.proxy { for m in proxy.mappings { print("proxy listening on \(m.hostIP):\(m.hostPort)/\(m.proto)") } }
        print("serving; Ctrl-C to stop")
        waitForStopSignal(signals)
        try ns.run {
            try publisher.unpublish(owner: owner, mappings)
            publisher.proxy?.close()
        }
        print("removed \(mappings.count) mapping(s)")
    }
}

struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show Berth's firewall rules in the current network namespace.")

    @Option(help: "iptables or nftables; default: detect.")
    var firewall: String?

    func run() throws {
        let kind = try makeFirewall(firewall.flatMap(FirewallKind.init(rawValue:))).kind
        print(try Rules.show(kind), terminator: "")
    }

    static func show(_ kind: FirewallKind) throws -> String {
        switch kind {
        case .iptables:
            let save = try Command.check("iptables-save", []).stdout
            // Tables, Berth's chains and every rule (other rules of the host included).
            return save.split(separator: "\n").filter { $0.hasPrefix("*") || $0.hasPrefix(":BERTH") || $0.hasPrefix("-A ") }
                .joined(separator: "\n") + "\n"
        case .nftables:
            let r = try Command.run("nft", ["list", "table", "ip", "berth"])
            return r.succeeded ? r.stdout : "(no table ip berth)\n"
        case .none:
            return "(firewall left alone)\n"
        }
    }
}
