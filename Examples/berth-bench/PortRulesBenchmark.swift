import ArgumentParser
import BerthNamespaces
import BerthPortMapper
import BerthSystem

/// `berth-bench portrules`: adding one container's published-port rules at its start and removing
/// them at its exit (`IptablesFirewall.addPortMappings(chainsInPlace:)` /
/// `removePortMappings(chainsInPlace:)`), in-process over netlink versus the `iptables-restore`
/// spawn, alternating in one run inside a sandbox network namespace.
struct PortRulesBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portrules",
        abstract: "Add and remove one container's port rules: netlink (iptables-nft) vs iptables-restore.")

    @Option(help: "Measured rounds per path.")
    var runs = 50

    @Option(help: "Unmeasured rounds first.")
    var warmup = 5

    @Option(name: .shortAndLong, help: "Published ports (-p specs), as for berth run.")
    var publish = ["18080:8080"]

    func run() throws {
        guard runs > 0, warmup >= 0 else { throw ValidationError("--runs must be positive") }
        let sandbox = try NetworkNamespace.create()
        defer { sandbox.close() }
        let bridge = BridgeRules(bridge: "bbench0", subnet: IPv4CIDR("172.18.0.0/16")!, icc: true, masquerade: true)
        let mappings = try PortSpec.parse(publish).flatMap(\.bindings).map {
            // A spec without a host port gets the container port (no allocator here).
            PortMapping(proto: $0.proto, hostIP: $0.hostIP, hostPort: $0.hostPorts?.lowerBound ?? $0.containerPort,
                        containerIP: IPv4Address(172, 18, 0, 2), containerPort: $0.containerPort, bridge: "bbench0")
        }
        let netlink = IptablesFirewall(), spawn = IptablesFirewall(inProcessRules: false)
        try sandbox.run { try netlink.addBridgeRules(bridge) }
        defer { _ = try? sandbox.run { try netlink.removeBridgeRules(bridge) } }
        print("sandbox netns inode \(sandbox.inode); \(mappings.map(\.description).joined(separator: ", "))")

        var times: [String: [Double]] = [:]
        for i in 0..<(warmup + runs) {
            for (name, fw) in [("netlink", netlink), ("iptables-restore", spawn)] {
                let add = try timeMillis { try sandbox.run { try fw.addPortMappings(chainsInPlace: mappings) } }
                let remove = try timeMillis { try sandbox.run { try fw.removePortMappings(chainsInPlace: mappings) } }
                if i >= warmup {
                    times["add " + name, default: []].append(add)
                    times["remove " + name, default: []].append(remove)
                }
            }
        }
        for op in ["add", "remove"] {
            for name in ["netlink", "iptables-restore"] {
                let xs = times[op + " " + name]!.sorted()
                print("\(op) \(name): median \(fmt(median(xs), 3)) ms, min \(fmt(xs.first!, 3)) ms, max \(fmt(xs.last!, 3)) ms over \(xs.count) runs")
            }
        }
        let m = times.mapValues(median)
        print("portrules: add netlink \(fmt(m["add netlink"]!, 3)) ms, iptables-restore \(fmt(m["add iptables-restore"]!, 3)) ms; "
            + "remove netlink \(fmt(m["remove netlink"]!, 3)) ms, iptables-restore \(fmt(m["remove iptables-restore"]!, 3)) ms")
    }
}
