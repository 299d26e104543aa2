import BerthNamespaces
import BerthNetLink
import BerthSystem
import BerthTestSupport
import Testing

@Suite struct AddressRouteTests {
    @Test func addressesAndRoutes() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let br = testName("br")
        try host.run {
            let nl = try NetlinkSession()
            let bridge = try nl.addBridge(named: br)
            try nl.setUp(br)
            let v4 = try InterfaceAddress(parsing: "172.29.0.1/16")
            let v6 = try InterfaceAddress(parsing: "fd00:29::1/64")
            try nl.addAddress(v4, to: br)
            try nl.addAddress(v6, to: br)
            let addrs = try nl.addresses(of: br)
            #expect(addrs.contains(v4))
            #expect(addrs.contains(v6))
            do {
                try nl.addAddress(v4, to: br)
                Issue.record("duplicate address added")
            } catch let e as BerthError {
                #expect(e.code == .alreadyExists)
            }

            let routes = try nl.routes()
            let onLink = routes.first { $0.destination == IPv4CIDR("172.29.0.0/16")! }
            #expect(onLink?.isOnLink == true)
            #expect(onLink?.interfaceIndex == bridge.index)

            try nl.addRoute(.defaultRoute(via: IPv4Address("172.29.0.254")!, interfaceIndex: bridge.index))
            let extra = Route(destination: IPv4CIDR("10.99.0.0/24")!, gateway: IPv4Address("172.29.0.253")!)
            try nl.addRoute(extra)
            let after = try nl.routes()
            #expect(after.contains { $0.isDefault && $0.gateway == IPv4Address("172.29.0.254")! })
            #expect(after.contains { $0.destination == IPv4CIDR("10.99.0.0/24")! })
            #expect(throws: BerthError.self) { try nl.addRoute(extra) }
            // An unreachable gateway is a clear error.
            do {
                try nl.addRoute(Route(destination: IPv4CIDR("10.98.0.0/24")!, gateway: IPv4Address("192.0.2.1")!))
                Issue.record("route via an unreachable gateway added")
            } catch let e as BerthError {
                #expect(e.message.contains("10.98.0.0/24"))
            }
            try nl.deleteRoute(extra)
            #expect(throws: BerthError.self) { try nl.deleteRoute(extra) }
            try nl.deleteAddress(v4, from: br)
            #expect(!(try nl.addresses(of: br)).contains(v4))
            #expect(throws: BerthError.self) { try nl.deleteAddress(v4, from: br) }
        }
        #expect(throws: BerthError.self) { try InterfaceAddress(parsing: "300.1.1.1/8") }
        #expect(throws: BerthError.self) { try InterfaceAddress(parsing: "fd00::1/129") }
    }

    @Test func sysctlsFollowTheNamespace() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let rootForwarding = try NetworkSysctl.ipForwarding()
        let br = testName("br")
        try host.run {
            try NetworkSysctl.setIPForwarding(true)
            #expect(try NetworkSysctl.ipForwarding())
            try NetworkSysctl.setIPForwarding(false)
            #expect(!(try NetworkSysctl.ipForwarding()))
            try NetlinkSession().addBridge(named: br)
            try NetworkSysctl.setRouteLocalnet(br, true)
            #expect(try NetworkSysctl.routeLocalnet(br))
            #expect(throws: BerthError.self) { try NetworkSysctl.routeLocalnet("nosuchif0") }
        }
        #expect(try NetworkSysctl.ipForwarding() == rootForwarding)
    }
}
