import BerthNamespaces
import BerthPortMapper
import BerthSystem
import BerthTestSupport
import Testing

/// The rule set of a sandbox as text, without the header comments and counters.
func ruleset(_ host: SandboxHost, _ kind: FirewallKind) throws -> String {
    let raw = try host.run {
        kind == .iptables ? try Command.check("iptables-save", []).stdout : try Command.check("nft", ["list", "ruleset"]).stdout
    }
    return raw.split(separator: "\n")
        .filter { !$0.hasPrefix("#") }
        .map { line in
            var l = String(line)
            if let r = l.firstRange(of: " [") , l.hasPrefix(":") { l = String(l[..<r.lowerBound]) }
            return l
        }
        .joined(separator: "\n")
}

/// Makes the sandbox look like a used host (nat and filter tables exist, as on any Docker host,
/// plus one rule of its own) and returns its rule set.
func primedRuleset(_ host: SandboxHost, _ kind: FirewallKind) throws -> String {
    try host.sh("iptables -t nat -N PRIME; iptables -t nat -X PRIME; iptables -t filter -A INPUT -p tcp --dport 22 -j ACCEPT")
    return try ruleset(host, kind)
}

@Suite struct FirewallTests {
    static let backends: [FirewallKind] = [.iptables, .nftables]

    @Test(arguments: backends) func rulesAreRemovedExactly(kind: FirewallKind) throws {
        let host = try SandboxHost()
        defer { host.close() }
        let before = try primedRuleset(host, kind)
        let fw = try makeFirewall(kind)
        let br1 = BridgeRules(bridge: "bt1", subnet: try IPv4CIDR(parsing: "172.30.0.0/16"), icc: true, masquerade: true)
        let br2 = BridgeRules(bridge: "bt2", subnet: try IPv4CIDR(parsing: "172.31.0.0/16"), icc: false, masquerade: true)
        let m1 = [
            PortMapping(proto: .tcp, hostPort: 18080, containerIP: IPv4Address(172, 30, 0, 2), containerPort: 8080, bridge: "bt1"),
            PortMapping(proto: .udp, hostIP: IPv4Address(10, 0, 0, 1), hostPort: 5353, containerIP: IPv4Address(172, 30, 0, 2), containerPort: 53, bridge: "bt1"),
        ]
        let m2 = [PortMapping(proto: .tcp, hostPort: 18081, containerIP: IPv4Address(172, 31, 0, 2), containerPort: 8080, bridge: "bt2", loopbackDNAT: true)]
        try host.run {
            try fw.addBridgeRules(br1)
            try fw.addBridgeRules(br2)
            try fw.addPortMappings(m1)
            try fw.addPortMappings(m2)
        }
        let during = try ruleset(host, kind)
        #expect(during.contains("18080"))
        #expect(during.contains("172.30.0.2:8080"))
        #expect(during.contains("5353"))
        #expect(during.contains("172.31.0.0/16"))
        try host.run {
            try fw.removePortMappings(m1)
            try fw.removeBridgeRules(br1)
        }
        let half = try ruleset(host, kind)
        #expect(!half.contains("172.30."))
        #expect(half.contains("172.31.0.2:8080"))
        try host.run {
            try fw.removeBridgeRules(br2)
            try fw.removePortMappings(m2)
            // Removing again is a no-op.
            try fw.removePortMappings(m2)
        }
        let after = try ruleset(host, kind)
        #expect(after == before)
    }
}
