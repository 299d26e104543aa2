import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// Which kernel interface the installed `iptables-restore` drives.
enum IptablesVariant: Sendable, Equatable {
    /// iptables-nft (`iptables v1.8.9 (nf_tables)`): its rules are nf_tables rules in tables
    /// `ip nat` / `ip filter`, reachable over NETLINK_NETFILTER.
    case nfTables
    /// iptables-legacy (x_tables), or no iptables at all.
    case legacy

    /// The variant of this machine's `iptables-restore`, found once per process.
    static let installed = detect()

    /// Follows `iptables-restore`'s symlinks (Debian: alternatives → iptables-nft-restore →
    /// xtables-nft-multi): a name with `nft` or `legacy` in it decides without spawning anything;
    /// otherwise `iptables-restore --version` does (`… (nf_tables)` or `… (legacy)`).
    static func detect() -> IptablesVariant {
        guard var path = try? Command.resolve("iptables-restore") else { return .legacy }
        for _ in 0..<16 {
            let name = path.split(separator: "/").last.map(String.init) ?? path
            if name.containsBytes(of: "nft") { return .nfTables }
            if name.containsBytes(of: "legacy") { return .legacy }
            guard let target = readLink(path) else { break }
            if target.hasPrefix("/") {
                path = target
            } else {
                let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
                path = dir + "/" + target
            }
        }
        guard let version = try? Command.run(path, ["--version"]), version.succeeded else { return .legacy }
        return version.stdout.containsBytes(of: "nf_tables") ? .nfTables : .legacy
    }

    private static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Deletes iptables-nft rules by their comment over netlink, in the calling thread's network
/// namespace, without spawning iptables (`berth_nft_delete_commented` in CBerthShim): one rule
/// dump per chain concerned, then one nf_tables transaction of `DELRULE`s by handle, every one
/// acknowledged, bound to the rule set's generation so that it fails rather than acts on a
/// rule set that changed since it was read.
enum NetlinkRuleDeletion {
    /// Deletes, of each given rule, one rule of its table and chain carrying its comment.
    ///
    /// - Parameter rules: Rules with a ``IptablesRule/comment`` (rules without one are not
    ///   looked for).
    /// - Returns: How many rules were deleted (fewer than `rules.count` when some were gone).
    /// - Throws: ``BerthError`` when netlink fails; then nothing was deleted.
    static func delete(_ rules: [IptablesRule]) throws -> Int {
        struct Key: Hashable { var table, chain, comment: String }
        var counts: [Key: UInt32] = [:]
        var order: [Key] = []
        for rule in rules {
            guard let comment = rule.comment else { continue }
            let key = Key(table: rule.table, chain: rule.chain, comment: comment)
            if counts[key] == nil { order.append(key) }
            counts[key, default: 0] += 1
        }
        guard !order.isEmpty else { return 0 }
        var strings: [UnsafeMutablePointer<CChar>?] = []
        defer { for p in strings { free(p) } }
        var sets: [berth_nft_comment_rules] = []
        for key in order {
            let t = strdup(key.table), c = strdup(key.chain), m = strdup(key.comment)
            strings += [t, c, m]
            guard t != nil, c != nil, m != nil else { throw BerthError(.system, "delete firewall rules over netlink: out of memory") }
            sets.append(berth_nft_comment_rules(table: t, chain: c, comment: m, count: counts[key]!))
        }
        let deleted = berth_nft_delete_commented(sets, sets.count)
        guard deleted >= 0 else { throw BerthError.system("delete \(rules.count) firewall rules over netlink") }
        return Int(deleted)
    }
}

/// Adds port rules (``IptablesRules/portRules(_:)``) in-process over netlink, exactly as
/// `iptables-restore` with iptables-nft 1.8 writes them (native matches for interfaces, addresses,
/// protocol and port, an xtables comment match, a counter, and ACCEPT or the xtables
/// DNAT/MASQUERADE targets), so that `iptables-save` prints them the same way and
/// ``NetlinkRuleDeletion`` finds them by their comment. No `iptables-restore` process is spawned.
enum NetlinkRuleAddition {
    /// Adds `rules` in one nf_tables transaction in the calling thread's network namespace.
    /// - Throws: ``BerthError`` when netlink refuses them (a chain is missing, the kernel lacks an
    ///   xtables extension) or for SCTP, which iptables-nft writes with the xtables `sctp` match
    ///   (the `iptables-restore` path handles it); then none was added.
    static func add(_ rules: [PortRule]) throws {
        guard !rules.isEmpty else { return }
        var strings: [UnsafeMutablePointer<CChar>?] = []
        defer { for p in strings { free(p) } }
        func keep(_ s: String?) -> UnsafePointer<CChar>? {
            guard let s else { return nil }
            let p = strdup(s)
            strings.append(p)
            return UnsafePointer(p)
        }
        func mask(_ prefix: Int) -> UInt32 { prefix == 0 ? 0 : UInt32.max << (32 - prefix) }
        var specs: [berth_nft_port_rule] = []
        for rule in rules {
            var s = berth_nft_port_rule()
            switch rule.proto {
            case .tcp: s.l4proto = UInt8(IPPROTO_TCP)
            case .udp: s.l4proto = UInt8(IPPROTO_UDP)
            case .sctp: throw BerthError(.unsupported, "SCTP port rules are not written over netlink")
            }
            s.table = keep(rule.table)
            s.chain = keep(rule.chain)
            s.iifname = keep(rule.inInterface?.name)
            s.iif_invert = rule.inInterface?.invert == true ? 1 : 0
            s.oifname = keep(rule.outInterface)
            if let (address, prefix) = rule.source {
                s.saddr = address.value.bigEndian
                s.smask = mask(prefix).bigEndian
            }
            if let (address, prefix) = rule.destination {
                s.daddr = address.value.bigEndian
                s.dmask = mask(prefix).bigEndian
            }
            s.dport = rule.destinationPort
            s.comment = keep(rule.comment)
            switch rule.target {
            case .accept:
                s.target = Int32(BERTH_NFT_ACCEPT)
            case .dnat(let address, let port):
                s.target = Int32(BERTH_NFT_DNAT)
                s.to_addr = address.value.bigEndian
                s.to_port = port
            case .masquerade:
                s.target = Int32(BERTH_NFT_MASQUERADE)
            }
            specs.append(s)
        }
        guard !strings.contains(where: { $0 == nil }) else {
            throw BerthError(.system, "add firewall rules over netlink: out of memory")
        }
        guard berth_nft_add_rules(specs, specs.count) == 0 else {
            throw BerthError.system("add \(rules.count) firewall rules over netlink")
        }
    }
}
