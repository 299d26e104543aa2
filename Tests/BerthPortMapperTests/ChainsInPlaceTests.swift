import BerthNamespaces
import BerthPortMapper
import BerthSystem
import BerthTestSupport
import Testing

/// `IptablesFirewall.addPortMappings(chainsInPlace:)` / `removePortMappings(chainsInPlace:)`:
/// the batches without `iptables-save`, and their fallbacks when the assumption is wrong.
@Suite struct ChainsInPlaceTests {
    func makeBridge() throws -> BridgeRules {
        BridgeRules(bridge: "bc1", subnet: try IPv4CIDR(parsing: "172.29.0.0/16"), icc: true, masquerade: true)
    }
    let mappings = [PortMapping(proto: .tcp, hostPort: 18090, containerIP: IPv4Address(172, 29, 0, 2), containerPort: 80, bridge: "bc1")]

    func count(_ host: SandboxHost, _ text: String) throws -> Int {
        try ruleset(host, .iptables).split(separator: "\n").filter { $0.contains(text) }.count
    }

    @Test func fastAddAndRemoveMatchTheComputedOnes() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let before = try primedRuleset(host, .iptables)
        let fw = IptablesFirewall()
        let bridge = try makeBridge()
        try host.run { try fw.addBridgeRules(bridge) }
        let bridgeOnly = try ruleset(host, .iptables)
        try host.run { try fw.addPortMappings(chainsInPlace: mappings) }
        #expect(try count(host, "--dport 18090") == 1)
        #expect(try count(host, "berth port tcp/0.0.0.0:18090") == 3)
        #expect(try count(host, "172.29.0.2/32") == 2)
        try host.run { try fw.removePortMappings(chainsInPlace: mappings) }
        #expect(try ruleset(host, .iptables) == bridgeOnly)
        // Removing again falls back to the idempotent removal: no error, nothing changes.
        try host.run { try fw.removePortMappings(chainsInPlace: mappings) }
        #expect(try ruleset(host, .iptables) == bridgeOnly)
        try host.run { try fw.removeBridgeRules(bridge) }
        #expect(try ruleset(host, .iptables) == before)
    }

    @Test func aMissingChainFallsBackWithoutDuplicates() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let before = try primedRuleset(host, .iptables)
        let fw = IptablesFirewall()
        // The nat rules go in, the filter chain is missing: the fast batch commits half of it.
        try host.sh("iptables -t nat -N BERTH")
        try host.run { try fw.addPortMappings(chainsInPlace: mappings) }
        #expect(try count(host, "--dport 18090") == 1)
        #expect(try count(host, "-A BERTH -d 172.29.0.2/32") == 1)
        try host.run { try fw.removePortMappings(chainsInPlace: mappings) }
        #expect(try count(host, "172.29.0.2") == 0)
        try host.run { try fw.removePortMappings(mappings) }
        #expect(try ruleset(host, .iptables) == before)
    }
}
