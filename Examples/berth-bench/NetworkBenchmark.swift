import ArgumentParser
import BerthNamespaces
import BerthNetwork
import BerthPortMapper
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// `berth-bench network`: per-container network attach and detach through Berth's BridgeNetwork
/// versus the CNI reference plugins (bridge + host-local, invoked as libcni does), alternating in
/// one run, everything inside a sandbox network namespace created here.
struct NetworkBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Attach/detach N containers: Berth BridgeNetwork vs CNI bridge + host-local.")

    @Option(name: .shortAndLong, help: "Containers per tool.")
    var count = 50

    @Option(help: "Firewall backend for both sides' masquerading (iptables, nftables, none). CNI always uses iptables.")
    var firewall = "iptables"

    @Option(help: "Directory of the CNI plugins.")
    var cniPath = "/usr/lib/cni"

    func run() throws {
        guard count > 0 else { throw ValidationError("--count must be positive") }
        let kind = try FirewallKind(rawValue: firewall).orThrow(ValidationError("unknown firewall \(firewall)"))
        guard FileIO.exists(cniPath + "/bridge"), FileIO.exists(cniPath + "/host-local") else {
            throw ValidationError("CNI plugins not found in \(cniPath) (apt-get install containernetworking-plugins)")
        }
        let sandbox = try NetworkNamespace.create()
        defer { sandbox.close() }
        let work = try FileIO.makeTemporaryDirectory(prefix: "berth-bench-net-")
        defer { try? FileIO.removeTree(work) }

        let berthBridge = "bbench\(getpid() % 10000)", cniBridge = "cbench\(getpid() % 10000)"
        let network = try sandbox.run {
            try BridgeNetwork.setUp(BridgeConfiguration(bridge: berthBridge, firewall: kind, nameservers: []),
                                    stateRoot: work + "/berth")
        }
        defer { _ = try? sandbox.run { try network.tearDown() } }
        print("sandbox netns inode \(sandbox.inode); berth bridge \(berthBridge) \(network.subnet); cni bridge \(cniBridge) 10.88.0.0/16; firewall \(kind.rawValue)")

        let cniConfig = """
            {"cniVersion":"0.4.0","name":"berthbench","type":"bridge","bridge":"\(cniBridge)","isGateway":true,\
            "ipMasq":true,"ipam":{"type":"host-local","subnet":"10.88.0.0/16","dataDir":"\(work)/cni-ipam"}}
            """
        var berthAttach: [Double] = [], berthDetach: [Double] = [], cniAdd: [Double] = [], cniDel: [Double] = []
        var steps: [String: [Double]] = [:]
        var order: [String] = []
        let record: (String, Double) -> Void = { name, ms in
            if steps[name] == nil { order.append(name) }
            steps[name, default: []].append(ms)
        }

        for i in 0..<count {
            // Berth.
            let c1 = try NetworkNamespace.create()
            var endpoint: Endpoint? = nil
            berthAttach.append(try timeMillis {
                endpoint = try sandbox.run {
                    try network.attach(c1, address: nil, interfaceName: "eth0", hostInterfaceName: nil,
                                       observe: { record("berth attach: " + $0, $1) })
                }
            })
            berthDetach.append(try timeMillis {
                try sandbox.run {
                    try network.detach(endpoint!, deletion: .background, observe: { record("berth detach: " + $0, $1) })
                }
            })
            // Not part of detach: the background deletion, waited for here so that it is measured
            // (and so that it does not overlap the next measurements).
            record("(background veth deletion after detach)", try timeMillis { try network.waitForPendingDeletions() })
            // For comparison: the same detach waiting for the kernel's veth deletion.
            let c3 = try NetworkNamespace.create()
            let e3 = try sandbox.run { try network.attach(c3) }
            record("(berth detach, synchronous deletion)", try timeMillis {
                try sandbox.run { try network.detach(e3, deletion: .synchronous) }
            })
            c3.close()
            c1.close()

            // CNI, as libcni invokes it.
            let c2 = try NetworkNamespace.create()
            let id = "bench\(getpid())x\(i)"
            func cni(_ command: String) throws -> String {
                let env = ["CNI_COMMAND": command, "CNI_CONTAINERID": id, "CNI_NETNS": c2.path,
                           "CNI_IFNAME": "eth0", "CNI_PATH": cniPath]
                return try sandbox.run { try Command.check(cniPath + "/bridge", [], input: cniConfig, environment: env).stdout }
            }
            var added = ""
            cniAdd.append(try timeMillis { added = try cni("ADD") })
            if i == 0 { print("cni ADD result: \(added.filter { $0 != "\n" && $0 != " " }.prefix(160))…") }
            cniDel.append(try timeMillis { _ = try cni("DEL") })
            c2.close()
        }
        // The CNI bridge plugin leaves its bridge and masquerade chains behind: they die with the sandbox.

        print("per-step medians (ms):")
        for name in order { print("  \(name): \(fmt(median(steps[name]!), 3))") }
        print("  berth attach total: \(fmt(median(berthAttach), 3)), cni ADD: \(fmt(median(cniAdd), 3))")
        print("  berth detach total: \(fmt(median(berthDetach), 3)), cni DEL: \(fmt(median(cniDel), 3))")
        let a = median(berthAttach), c = median(cniAdd), d = median(berthDetach), e = median(cniDel)
        print("network: attach berth \(fmt(a)) ms cni \(fmt(c)) ms ratio \(fmt(c / a, 1)), detach berth \(fmt(d)) ms cni \(fmt(e)) ms ratio \(fmt(e / d, 1))")
    }
}

extension Optional {
    func orThrow(_ error: @autoclosure () -> any Error) throws -> Wrapped {
        guard let self else { throw error() }
        return self
    }
}
