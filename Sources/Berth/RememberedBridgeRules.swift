import BerthNetLink
import BerthPortMapper
import BerthSystem
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A firewall that installs a bridge's rules once per (boot, network namespace, bridge interface)
/// instead of on every `berth` command: `BridgeNetwork.setUp` re-asserts them each time it opens
/// the network, which costs an `iptables-save` + `iptables-restore` pair per `berth run`. The
/// marker records where the rules were installed; a new boot, a new namespace or a re-created
/// bridge (new interface index) does not match it, so the rules are installed again. Everything
/// else is passed through.
final class RememberedBridgeRules: Firewall {
    let inner: any Firewall
    /// The marker file (`<root>/network/bridge-rules-<bridge>`).
    let marker: String

    var kind: FirewallKind { inner.kind }

    /// Set once this process has installed (or found installed) the bridge's rules: then Berth's
    /// iptables chains and jumps exist and port rules go in without reading the rule set first.
    let bridgeRulesInPlace = Mutex(false)

    init(inner: any Firewall, marker: String) {
        self.inner = inner
        self.marker = marker
    }

    func addBridgeRules(_ rules: BridgeRules) throws {
        let key = try? Self.key(rules)
        if let key, let stored = try? FileIO.read(marker), stored == key {
            bridgeRulesInPlace.withLock { $0 = true }
            return
        }
        try inner.addBridgeRules(rules)
        bridgeRulesInPlace.withLock { $0 = true }
        if let key { try? FileIO.writeAtomically(marker, key, durable: false) }
    }

    func removeBridgeRules(_ rules: BridgeRules) throws {
        bridgeRulesInPlace.withLock { $0 = false }
        unlink(marker)
        try inner.removeBridgeRules(rules)
    }

    func addPortMappings(_ mappings: [PortMapping]) throws {
        if let iptables = inner as? IptablesFirewall, bridgeRulesInPlace.withLock({ $0 }) {
            try iptables.addPortMappings(chainsInPlace: mappings)
        } else {
            try inner.addPortMappings(mappings)
        }
    }

    func removePortMappings(_ mappings: [PortMapping]) throws {
        if let iptables = inner as? IptablesFirewall, bridgeRulesInPlace.withLock({ $0 }) {
            try iptables.removePortMappings(chainsInPlace: mappings)
        } else {
            try inner.removePortMappings(mappings)
        }
    }

    /// Boot id, namespace inode (of the calling thread: the host's), bridge index and the rules.
    static func key(_ rules: BridgeRules) throws -> String {
        let boot = try FileIO.read("/proc/sys/kernel/random/boot_id").trimmingSpaces()
        var st = stat()
        guard stat("/proc/thread-self/ns/net", &st) == 0 else { throw BerthError.system("stat /proc/thread-self/ns/net") }
        let index = try NetlinkSession().link(named: rules.bridge).index
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text = String(decoding: try encoder.encode(rules), as: UTF8.self)
        return "\(boot) \(st.st_ino) \(index) \(text)\n"
    }
}
