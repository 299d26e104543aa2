@testable import BerthPortMapper
import BerthSystem
import BerthTestSupport
import Testing

/// `IptablesFirewall.addPortMappings(chainsInPlace:)` / `removePortMappings(chainsInPlace:)` on
/// iptables-nft: port rules written over netlink exactly as `iptables-restore` writes them, found
/// by their comment and deleted over netlink (no `iptables-restore`), and the spawning fallback.
@Suite struct NetlinkRulesTests {
    static let nfTables = IptablesVariant.installed == .nfTables

    let bridge = BridgeRules(bridge: "bn1", subnet: IPv4CIDR("172.28.0.0/16")!, icc: true, masquerade: true)
    /// Container A: tcp on every address, udp on one address, tcp with loopback DNAT (five rules).
    let a = [
        PortMapping(proto: .tcp, hostPort: 18080, containerIP: IPv4Address(172, 28, 0, 2), containerPort: 8080, bridge: "bn1"),
        PortMapping(proto: .udp, hostIP: IPv4Address(10, 0, 0, 1), hostPort: 5353, containerIP: IPv4Address(172, 28, 0, 2), containerPort: 53, bridge: "bn1"),
        PortMapping(proto: .tcp, hostPort: 18082, containerIP: IPv4Address(172, 28, 0, 2), containerPort: 9090, bridge: "bn1", loopbackDNAT: true),
    ]
    /// Container B: the same container port as A's first mapping on another host port, so that
    /// its hairpin and FORWARD rules differ from A's only by their comment.
    let b = [
        PortMapping(proto: .tcp, hostPort: 18081, containerIP: IPv4Address(172, 28, 0, 2), containerPort: 8080, bridge: "bn1"),
        PortMapping(proto: .udp, hostPort: 5354, containerIP: IPv4Address(172, 28, 0, 3), containerPort: 53, bridge: "bn1"),
    ]

    func lines(_ host: SandboxHost, containing text: String) throws -> Int {
        try ruleset(host, .iptables).split(separator: "\n").filter { $0.contains(text) }.count
    }

    @Test func theVariantMatchesIptablesVersion() throws {
        let version = try Command.check("iptables-restore", ["--version"]).stdout
        #expect(IptablesVariant.detect() == (version.contains("nf_tables") ? .nfTables : .legacy))
        #expect(IptablesVariant.installed == IptablesVariant.detect())
    }

    @Test func portRulesCarryTheirMappingsComment() throws {
        let rules = IptablesRules.port(a[2])
        #expect(rules.count == 5)
        for rule in rules {
            #expect(rule.comment == "berth port tcp/0.0.0.0:18082")
            #expect(rule.spec.contains("-m comment --comment \"berth port tcp/0.0.0.0:18082\" -j "))
        }
        #expect(IptablesRules.port(a[1]).allSatisfy { $0.comment == "berth port udp/10.0.0.1:5353" })
    }

    @Test(.enabled(if: nfTables)) func tcpAndUdpRemovalInProcessRestoresExactly() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let before = try primedRuleset(host, .iptables)
        let fw = IptablesFirewall()
        try host.run { try fw.addBridgeRules(bridge) }
        let bridgeOnly = try ruleset(host, .iptables)
        try host.run { try fw.addPortMappings(chainsInPlace: a) }
        #expect(try lines(host, containing: "--comment \"berth port") == 11)
        // The netlink path itself, then the public entry point (which takes it too).
        let deleted = try host.run { try FirewallLock.withLock { try NetlinkRuleDeletion.delete(a.flatMap(IptablesRules.port)) } }
        #expect(deleted == 11)
        #expect(try ruleset(host, .iptables) == bridgeOnly)
        try host.run { try fw.addPortMappings(chainsInPlace: a) }
        try host.run { try fw.removePortMappings(chainsInPlace: a) }
        #expect(try ruleset(host, .iptables) == bridgeOnly)
        try host.run { try fw.removeBridgeRules(bridge) }
        #expect(try ruleset(host, .iptables) == before)
    }

    /// The rules as nf_tables holds them, expression by expression (handles dropped).
    func expressions(_ host: SandboxHost) throws -> String {
        let raw = try host.run { try Command.check("nft", ["--debug=netlink", "list", "ruleset"]).stdout }
        return raw.split(separator: "\n").filter { $0.hasPrefix("  [") || $0.hasPrefix("ip ") }
            .map { $0.hasPrefix("ip ") ? String($0.split(separator: " ").prefix(3).joined(separator: " ")) : String($0) }
            .joined(separator: "\n")
    }

    @Test(.enabled(if: nfTables)) func rulesAddedInProcessAreWhatIptablesRestoreWrites() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let before = try primedRuleset(host, .iptables)
        let netlink = IptablesFirewall(), spawn = IptablesFirewall(inProcessRules: false)
        try host.run { try netlink.addBridgeRules(bridge) }
        try host.run { try spawn.addPortMappings(chainsInPlace: a + b) }
        let spawned = try ruleset(host, .iptables), spawnedExpressions = try expressions(host)
        #expect(try lines(host, containing: "--comment \"berth port") == 17)
        try host.run { try spawn.removePortMappings(chainsInPlace: a + b) }
        #expect(try lines(host, containing: "--comment \"berth port") == 0)
        #expect(try host.run { try FirewallLock.withLock { netlink.addInProcess(a + b) } })
        #expect(try ruleset(host, .iptables) == spawned)
        #expect(try expressions(host) == spawnedExpressions)
        // iptables itself finds them: it deletes one by its full spec.
        let rule = IptablesRules.port(a[0])[2]
        try host.sh("iptables -t filter -D \(rule.chain) \(rule.spec)")
        try host.run { try netlink.removePortMappings(chainsInPlace: a + b) }
        try host.run { try netlink.removeBridgeRules(bridge) }
        #expect(try ruleset(host, .iptables) == before)
    }

    @Test(.enabled(if: nfTables)) func inProcessAdditionIsAllOrNothing() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let before = try primedRuleset(host, .iptables)
        // No bridge rules: Berth's chains are missing, so the transaction fails as a whole and
        // adds nothing (the public entry point then falls back to iptables-restore, which makes them).
        #expect(try host.run { try FirewallLock.withLock { IptablesFirewall().addInProcess(a) } } == false)
        #expect(try ruleset(host, .iptables) == before)
        #expect(throws: BerthError.self) {
            try host.run { try NetlinkRuleAddition.add(a.flatMap(IptablesRules.portRules)) }
        }
        // SCTP is not written natively by iptables-nft: left to iptables-restore.
        let sctp = PortMapping(proto: .sctp, hostPort: 1, containerIP: IPv4Address(172, 28, 0, 2), containerPort: 1, bridge: "bn1")
        #expect(throws: BerthError.self) { try NetlinkRuleAddition.add(IptablesRules.portRules(sctp)) }
    }

    @Test(.enabled(if: nfTables)) func removalDeletesOnlyTheGivenMappings() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let (before, onlyB, fw) = try bridgeWithBThenA(host)
        // A's and B's hairpin rules for 172.28.0.2:8080 differ only by their comment.
        #expect(try lines(host, containing: "-s 172.28.0.2/32 -d 172.28.0.2/32 -p tcp -m tcp --dport 8080") == 2)
        let deleted = try host.run { try FirewallLock.withLock { try NetlinkRuleDeletion.delete(a.flatMap(IptablesRules.port)) } }
        #expect(deleted == 11)
        #expect(try ruleset(host, .iptables) == onlyB)
        try host.run { try fw.removePortMappings(chainsInPlace: b) }
        try host.run { try fw.removeBridgeRules(bridge) }
        #expect(try ruleset(host, .iptables) == before)
    }

    @Test(.enabled(if: nfTables)) func aRuleDeletedBehindBerthsBackIsSkipped() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let (before, onlyB, fw) = try bridgeWithBThenA(host)
        // Someone deletes A's first DNAT and A's udp FORWARD rule.
        let dnat = IptablesRules.port(a[0])[0], forward = IptablesRules.port(a[1])[2]
        _ = try host.sh("iptables -t nat -D \(dnat.chain) \(dnat.spec) && iptables -t filter -D \(forward.chain) \(forward.spec)")
        let deleted = try host.run { try FirewallLock.withLock { try NetlinkRuleDeletion.delete(a.flatMap(IptablesRules.port)) } }
        #expect(deleted == 9)
        #expect(try ruleset(host, .iptables) == onlyB)
        // Everything of A gone already: no error, nothing else touched.
        try host.run { try fw.removePortMappings(chainsInPlace: a) }
        #expect(try ruleset(host, .iptables) == onlyB)
        try host.run {
            try fw.removePortMappings(chainsInPlace: b)
            try fw.removeBridgeRules(bridge)
        }
        #expect(try ruleset(host, .iptables) == before)
    }

    @Test(.enabled(if: nfTables)) func atMostTheGivenCountPerCommentAndChain() throws {
        let host = try SandboxHost()
        defer { host.close() }
        // Two identical commented rules, and one with the comment in nft's userdata instead of
        // an xtables comment match.
        _ = try host.sh("""
            set -e
            iptables -t nat -N BERTH
            iptables -t nat -A BERTH -p tcp --dport 1 -m comment --comment "berth port tcp/0.0.0.0:1" -j RETURN
            iptables -t nat -A BERTH -p tcp --dport 1 -m comment --comment "berth port tcp/0.0.0.0:1" -j RETURN
            nft add rule ip nat BERTH tcp dport 2 counter comment '"berth port tcp/0.0.0.0:2"'
            """)
        let one = IptablesRule(table: "nat", chain: "BERTH", spec: "", comment: "berth port tcp/0.0.0.0:1")
        let two = IptablesRule(table: "nat", chain: "BERTH", spec: "", comment: "berth port tcp/0.0.0.0:2")
        #expect(try host.run { try NetlinkRuleDeletion.delete([one]) } == 1)
        #expect(try lines(host, containing: "berth port tcp/0.0.0.0:1") == 1)
        #expect(try host.run { try NetlinkRuleDeletion.delete([one, one, two]) } == 2)
        #expect(try host.sh("nft list chain ip nat BERTH").contains("dport") == false)
        #expect(try host.run { try NetlinkRuleDeletion.delete([one, two]) } == 0)
        // A chain or table that does not exist is no error either.
        let nowhere = IptablesRule(table: "filter", chain: "NOPE", spec: "", comment: "x")
        #expect(try host.run { try NetlinkRuleDeletion.delete([nowhere]) } == 0)
    }

    @Test(.enabled(if: nfTables && Command.exists("conntrack"))) func udpTrafficAndConntrackFlush() throws {
        let net = try TestNetwork()
        defer { net.close() }
        let server = try EchoServer(in: net.container, port: 5353, udp: true)
        defer { server.close() }
        let before = try primedRuleset(net.host, .iptables)
        let fw = IptablesFirewall()
        let bridgeRules = BridgeRules(bridge: net.bridge, subnet: try IPv4CIDR(parsing: "\(net.gateway)/24"), icc: true, masquerade: true)
        let udp = [PortMapping(proto: .udp, hostPort: 15354, containerIP: net.containerIP, containerPort: 5353, bridge: net.bridge)]
        try net.host.run {
            try fw.addBridgeRules(bridgeRules)
            try fw.addPortMappings(chainsInPlace: udp)
            #expect(try exchange(net.hostIP, 15354, "dnat", udp: true) == "dnat")
            #expect(try Command.run("conntrack", ["-L", "-p", "udp", "--orig-port-dst", "15354"]).stdout.contains("dport=15354"))
            try fw.removePortMappings(chainsInPlace: udp)
            #expect(!(try Command.run("conntrack", ["-L", "-p", "udp", "--orig-port-dst", "15354"]).stdout.contains("dport=15354")))
            try fw.removeBridgeRules(bridgeRules)
        }
        #expect(try ruleset(net.host, .iptables) == before)
    }

    @Test func theSpawningFallbackRestoresExactly() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let before = try primedRuleset(host, .iptables)
        let fw = IptablesFirewall(inProcessRules: false)
        try host.run {
            try fw.addBridgeRules(bridge)
            try fw.addPortMappings(chainsInPlace: b)
        }
        let onlyB = try ruleset(host, .iptables)
        try host.run { try fw.addPortMappings(chainsInPlace: a) }
        #expect(try host.run { try FirewallLock.withLock { fw.removeInProcess(a.flatMap(IptablesRules.port)) } } == false)
        // The unchecked batch, then (a rule gone) the computed removal.
        try host.run { try fw.removePortMappings(chainsInPlace: a) }
        #expect(try ruleset(host, .iptables) == onlyB)
        try host.run { try fw.addPortMappings(chainsInPlace: a) }
        let dnat = IptablesRules.port(a[0])[0]
        _ = try host.sh("iptables -t nat -D \(dnat.chain) \(dnat.spec)")
        try host.run { try fw.removePortMappings(chainsInPlace: a) }
        #expect(try ruleset(host, .iptables) == onlyB)
        try host.run {
            try fw.removePortMappings(b)
            try fw.removeBridgeRules(bridge)
        }
        #expect(try ruleset(host, .iptables) == before)
    }

    /// The bridge's rules, then mapping set `b`, then `a`; returns the rule set before anything, the one
    /// with `b` only, and the firewall.
    private func bridgeWithBThenA(_ host: SandboxHost) throws -> (before: String, onlyB: String, fw: IptablesFirewall) {
        let before = try primedRuleset(host, .iptables)
        let fw = IptablesFirewall()
        try host.run {
            try fw.addBridgeRules(bridge)
            try fw.addPortMappings(chainsInPlace: b)
        }
        let onlyB = try ruleset(host, .iptables)
        try host.run { try fw.addPortMappings(chainsInPlace: a) }
        return (before, onlyB, fw)
    }
}
