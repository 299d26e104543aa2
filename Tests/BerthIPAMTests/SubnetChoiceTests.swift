import BerthIPAM
import BerthSystem
import Testing

@Suite struct SubnetChoiceTests {
    private func cidr(_ s: String) -> IPv4CIDR { IPv4CIDR(s)! }

    @Test func dockerDefaultOrder() throws {
        #expect(try AddressPool.chooseSubnet(hostRoutes: []) == cidr("172.17.0.0/16"))
        // The default route never blocks anything.
        #expect(try AddressPool.chooseSubnet(hostRoutes: [cidr("0.0.0.0/0")]) == cidr("172.17.0.0/16"))
        #expect(try AddressPool.chooseSubnet(hostRoutes: [cidr("172.17.5.0/24")]) == cidr("172.18.0.0/16"))
        #expect(try AddressPool.chooseSubnet(hostRoutes: [cidr("172.16.0.0/12")]) == cidr("192.168.0.0/20"))
        #expect(try AddressPool.chooseSubnet(hostRoutes: [cidr("172.16.0.0/12"), cidr("192.168.0.0/24")]) == cidr("192.168.16.0/20"))
        #expect(try AddressPool.chooseSubnet(hostRoutes: [], nameservers: [IPv4Address("172.17.0.53")!]) == cidr("172.18.0.0/16"))
        #expect(try AddressPool.chooseSubnet(hostRoutes: [], taken: [cidr("172.17.0.0/16"), cidr("172.18.0.0/16")]) == cidr("172.19.0.0/16"))
        #expect(AddressPool.dockerDefaults.flatMap(\.subnets).count == 15 + 16)
    }

    @Test func everythingTakenIsExhausted() throws {
        do {
            _ = try AddressPool.chooseSubnet(hostRoutes: [cidr("172.16.0.0/12"), cidr("192.168.0.0/16")])
            Issue.record("chose a subnet")
        } catch let e as BerthError {
            #expect(e.code == .exhausted)
        }
    }

    @Test func resolvConfParsing() {
        let text = "# comment\nnameserver 10.0.0.2\nsearch example.org\nnameserver\tfd00::53\nnameserver 172.17.0.1\n"
        #expect(ResolvConf.nameservers(parsing: text) == [IPv4Address("10.0.0.2")!, IPv4Address("172.17.0.1")!])
        #expect(ResolvConf.nameservers(path: "/nonexistent/resolv.conf").isEmpty)
    }

    @Test func bipGivesTheSubnetAndTheGateway() throws {
        let s = try NetworkSubnet(bip: "192.168.11.1/24")
        #expect(s.subnet == cidr("192.168.11.0/24"))
        #expect(s.gateway == IPv4Address("192.168.11.1")!)
        #expect(s.gatewayCIDR == cidr("192.168.11.1/24"))
        let odd = try NetworkSubnet(bip: "10.20.30.77/16")
        #expect(odd.subnet == cidr("10.20.0.0/16") && odd.gateway == IPv4Address("10.20.30.77")!)
    }

    @Test func badInputIsAClearError() throws {
        func message(_ body: () throws -> Void) -> String? {
            do { try body(); return nil } catch let e as BerthError { return e.message } catch { return "\(error)" }
        }
        #expect(message { _ = try NetworkSubnet(bip: "192.168.11.1") }?.contains("invalid CIDR \"192.168.11.1\"") == true)
        #expect(message { _ = try NetworkSubnet(bip: "192.168.11.1/33") }?.contains("invalid CIDR") == true)
        #expect(message { _ = try NetworkSubnet(bip: "300.1.1.1/24") }?.contains("invalid CIDR") == true)
        #expect(message { _ = try NetworkSubnet(bip: "192.168.11.0/24") }?.contains("network address") == true)
        #expect(message { _ = try NetworkSubnet(bip: "192.168.11.255/24") }?.contains("broadcast address") == true)
        #expect(message { _ = try NetworkSubnet(bip: "192.168.11.1/31") }?.contains("/30 or larger") == true)
        #expect(message { _ = try NetworkSubnet(subnet: cidr("10.1.1.1/24")) }?.contains("host bits") == true)
        #expect(message { _ = try NetworkSubnet(subnet: cidr("10.1.1.0/24"), gateway: IPv4Address("10.1.2.1")!) }?.contains("outside subnet") == true)
        #expect(message { _ = try AddressPool(base: cidr("10.0.0.0/8"), subnetPrefixLength: 4) } != nil)
        // An overlapping bip.
        let s = try NetworkSubnet(bip: "10.1.2.1/24")
        #expect(message { try s.checkNoOverlap(hostRoutes: [cidr("10.0.0.0/8")]) } == "subnet 10.1.2.0/24 overlaps the host route 10.0.0.0/8")
        #expect(message { try s.checkNoOverlap(hostRoutes: [], nameservers: [IPv4Address("10.1.2.53")!]) } == "subnet 10.1.2.0/24 contains the nameserver 10.1.2.53")
        #expect(message { try s.checkNoOverlap(hostRoutes: [cidr("10.2.0.0/16")]) } == nil)
    }
}
