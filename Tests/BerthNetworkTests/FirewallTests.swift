import BerthNamespaces
import BerthNetLink
import BerthNetwork
import BerthPortMapper
import BerthSystem
import BerthTestSupport
import Testing

@Suite struct FirewallWiringTests {
    @Test(.enabled(if: Command.exists("iptables-restore"))) func iccFalseBlocksContainerToContainer() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network { $0.icc = false; $0.firewall = .iptables; $0.bip = IPv4CIDR("10.123.0.1/24")! }
        let c1 = try f.container(), c2 = try f.container()
        let e1 = try f.host.run { try net.attach(c1) }
        let e2 = try f.host.run { try net.attach(c2) }
        // Both ports forward (the bridge is reachable from each) before isolation is checked.
        #expect(try f.ping(from: c1, net.subnet.gateway))
        #expect(try f.ping(from: c2, net.subnet.gateway))
        #expect(try f.pingBlocked(from: c1, e2.address.address))
        #expect(try f.pingBlocked(from: c2, e1.address.address))
        let rules = try f.host.sh("iptables-save")
        #expect(rules.contains("10.123.0.0/24"))
        #expect(rules.contains("MASQUERADE"))
        try f.host.run {
            try net.detach(e1)
            try net.detach(e2)
            try net.tearDown()
        }
        try net.waitForPendingDeletions()
        #expect(!(try f.host.sh("iptables-save")).contains("10.123.0.0/24"))
    }

    @Test(.enabled(if: Command.exists("iptables-restore"))) func iccTrueAllowsAndMasqueradeCanBeOff() throws {
        let f = try NetworkFixture()
        defer { f.close() }
        let net = try f.network { $0.firewall = .iptables; $0.masquerade = false; $0.bip = IPv4CIDR("10.124.0.1/24")! }
        let c1 = try f.container(), c2 = try f.container()
        let e1 = try f.host.run { try net.attach(c1) }
        let e2 = try f.host.run { try net.attach(c2) }
        #expect(try f.ping(from: c1, e2.address.address))
        let nat = try f.host.sh("iptables-save -t nat")
        #expect(!nat.contains("-s 10.124.0.0/24") || !nat.contains("MASQUERADE"))
        try f.host.run {
            try net.detach(e1)
            try net.detach(e2)
            try net.tearDown()
        }
    }
}
