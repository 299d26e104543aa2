@testable import BerthPortMapper
import BerthSystem
import Testing

@Suite struct PortSpecTests {
    @Test func dockerForms() throws {
        let c = try PortSpec(parsing: "8080")
        #expect(c.hostIP == .any && c.hostPorts == nil && c.containerPorts == 8080...8080 && c.proto == .tcp)
        let hc = try PortSpec(parsing: "18080:8080")
        #expect(hc.hostPorts == 18080...18080 && hc.containerPorts == 8080...8080)
        let ihc = try PortSpec(parsing: "127.0.0.1:18080:8080/udp")
        #expect(ihc.hostIP == .loopback && ihc.hostPorts == 18080...18080 && ihc.proto == .udp)
        let ic = try PortSpec(parsing: "10.1.2.3::53/udp")
        #expect(ic.hostIP == IPv4Address(10, 1, 2, 3) && ic.hostPorts == nil && ic.containerPorts == 53...53)
        let sctp = try PortSpec(parsing: "9000/sctp")
        #expect(sctp.proto == .sctp)
    }

    @Test func ranges() throws {
        let r = try PortSpec(parsing: "8000-8010:80-90")
        let b = r.bindings
        #expect(b.count == 11)
        #expect(b[0].hostPorts == 8000...8000 && b[0].containerPort == 80)
        #expect(b[10].hostPorts == 8010...8010 && b[10].containerPort == 90)
        let e = try PortSpec(parsing: "7000-7002")
        #expect(e.bindings.map(\.containerPort) == [7000, 7001, 7002])
        #expect(e.bindings.allSatisfy { $0.hostPorts == nil })
        // A host range for one container port: any free port of the range.
        let any = try PortSpec(parsing: "8000-8005:80")
        #expect(any.bindings.count == 1 && any.bindings[0].hostPorts == 8000...8005)
    }

    @Test(arguments: ["99999:80", "a:b:c:d", "8000-8010:80-81", "0", "1.2.3:80:80", "300.1.1.1:80:80",
                      "80/xyz", "", ":80", "80-70", "1-2-3", "80/tcp/udp", "abc", "[::1]:80:80", "-1", "::80"])
    func invalidSpecsNameTheSpec(spec: String) {
        do {
            _ = try PortSpec(parsing: spec)
            Issue.record("accepted \(spec)")
        } catch let e as BerthError {
            #expect(e.code == .invalidArgument)
            #expect(e.message.contains("\"\(spec)\""))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func exposeAndPublishAll() throws {
        let ports = try ExposedPort.parse(expose: "7000-7002/udp") + ExposedPort.parse(expose: "80")
        #expect(ports.map(\.description) == ["7000/udp", "7001/udp", "7002/udp", "80/tcp"])
        let all = PortSpec.publishAll(ports + [ExposedPort(80)])
        #expect(all.count == 4)
        #expect(all.allSatisfy { $0.hostPorts == nil && $0.hostIP == .any })
        #expect(throws: BerthError.self) { try ExposedPort.parse(expose: "70000") }
    }
}

/// The nft listing parser (stdlib-only string search, see NftablesState.text(after:in:)).
@Suite struct NftablesListingTests {
    @Test func handlesAndCommentsAreRead() {
        let listing = """
            table ip berth { # handle 7
            \tchain BERTH { # handle 1
            \t\ttype nat hook prerouting priority dstnat; policy accept;
            \t\tiifname != "br0" tcp dport 8080 dnat to 172.17.0.2:80 comment "m:tcp:8080" # handle 12
            \t\tcounter packets 0 bytes 0 # handle 13
            \t}
            }
            """
        let state = NftablesState(listing: listing)
        #expect(state.rules.map(\.handle) == [12, 13])
        #expect(state.rules.map(\.chain) == ["BERTH", "BERTH"])
        #expect(state.rules.map(\.comment) == ["m:tcp:8080", ""])
        #expect(state.has("m:tcp:8080") && !state.has("m:tcp:80"))
        #expect(NftablesState.text(after: "ab", in: "xxabyy") == "yy")
        #expect(NftablesState.text(after: "ab", in: "xxa") == nil)
        #expect(NftablesState.text(after: "é", in: "café!") == "!")
    }

    @Test func bridgeNamesWithPathSyntaxAreRefused() {
        for bad in ["", "a/b", "..", "a..b"] {
            #expect(throws: BerthError.self) { try LoopbackDNAT.set(bridge: bad, enabled: true) }
        }
    }
}
