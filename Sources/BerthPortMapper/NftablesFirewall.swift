import BerthSystem

/// The nftables backend: everything lives in Berth's own table `ip berth`, changed with one
/// `nft -f -` batch per operation and deleted when its last bridge or port rule goes.
///
/// Each rule carries a comment naming what it belongs to (`berth bridge br0 …`, `berth port …`), so
/// removal finds exactly the rules a bridge or a mapping added (by handle, from `nft -a list`), and
/// adding the same bridge or mapping twice changes nothing.
public struct NftablesFirewall: Firewall {
    public init() {}
    public var kind: FirewallKind { .nftables }

    public func addBridgeRules(_ rules: BridgeRules) throws {
        try apply(adding: [NftablesRules.bridge(rules)], removing: [])
    }

    public func removeBridgeRules(_ rules: BridgeRules) throws {
        try apply(adding: [], removing: [NftablesRules.bridgeKey(rules)])
    }

    public func addPortMappings(_ mappings: [PortMapping]) throws {
        guard !mappings.isEmpty else { return }
        try apply(adding: mappings.map(NftablesRules.port), removing: [])
    }

    public func removePortMappings(_ mappings: [PortMapping]) throws {
        guard !mappings.isEmpty else { return }
        try apply(adding: [], removing: mappings.map(NftablesRules.portKey))
        ConntrackFlush.flushUDP(mappings)
    }

    private func apply(adding: [NftablesRules.Group], removing: [String]) throws {
        try FirewallLock.withLock {
            let listing = try Command.run("nft", ["-a", "list", "table", "ip", NftablesRules.table])
            let current = listing.succeeded ? NftablesState(listing: listing.stdout) : nil
            let batch = NftablesRules.batch(current: current, adding: adding, removing: removing)
            guard !batch.isEmpty else { return }
            try Command.check("nft", ["-f", "-"], input: batch)
        }
    }
}

/// The rules of table `ip berth` as listed by `nft -a list table ip berth`.
struct NftablesState {
    struct Rule { var chain: String; var handle: Int; var comment: String }
    var rules: [Rule] = []

    init(listing: String) {
        var chain = ""
        for raw in listing.split(separator: "\n") {
            let line = String(raw).trimmingSpaces()
            if line.hasPrefix("table ") || line.hasPrefix("type ") { continue }
            if line.hasPrefix("chain ") {
                chain = String(line.dropFirst(6).split(separator: " ").first ?? "")
                continue
            }
            guard let h = NftablesState.text(after: "# handle ", in: line), let handle = Int(String(h).trimmingSpaces()) else { continue }
            var comment = ""
            if let rest = NftablesState.text(after: "comment \"", in: line) {
                comment = String(rest.prefix { $0 != "\"" })
            }
            rules.append(Rule(chain: chain, handle: handle, comment: comment))
        }
    }

    func has(_ key: String) -> Bool { rules.contains { $0.comment == key } }

    /// What follows the first `marker` in `line`. Plain stdlib on purpose: `firstRange(of:)` lives in
    /// _StringProcessing, which would drag the regex engine (~0.9 MB of code) into berth-proxy.
    static func text(after marker: String, in line: String) -> Substring? {
        var i = line.startIndex
        while i < line.endIndex {
            if line[i...].hasPrefix(marker) { return line[line.index(i, offsetBy: marker.count)...] }
            i = line.index(after: i)
        }
        return nil
    }
}

/// Rule generation for the nftables backend (pure, unit-testable).
enum NftablesRules {
    static let table = "berth"
    static let baseKey = "berth base"

    /// The rules of one bridge or one mapping, tagged with one comment.
    struct Group {
        var key: String
        /// (chain, rule statement without the comment)
        var rules: [(chain: String, rule: String)]
    }

    /// The table with its hooked chains and the jumps into Berth's chains.
    static let skeleton = """
        table ip \(table) {
            chain prerouting { type nat hook prerouting priority dstnat; policy accept; }
            chain output { type nat hook output priority -100; policy accept; }
            chain postrouting { type nat hook postrouting priority srcnat; policy accept; }
            chain forward { type filter hook forward priority filter; policy accept; }
            chain published { }
            chain published-forward { }
            chain isolation-1 { }
            chain isolation-2 { }
        }
        add rule ip \(table) prerouting fib daddr type local jump published comment "\(baseKey)"
        add rule ip \(table) output ip daddr != 127.0.0.0/8 fib daddr type local jump published comment "\(baseKey)"
        add rule ip \(table) forward jump isolation-1 comment "\(baseKey)"

        """

    static func bridgeKey(_ b: BridgeRules) -> String { "berth bridge \(b.bridge) \(b.subnet)" }

    static func bridge(_ b: BridgeRules) -> Group {
        let br = "\"\(b.bridge)\""
        var r: [(String, String)] = []
        if b.masquerade { r.append(("postrouting", "ip saddr \(b.subnet) oifname != \(br) masquerade")) }
        if !b.hairpinNAT { r.append(("published", "iifname \(br) return")) }
        r += [
            ("forward", "oifname \(br) ct state related,established accept"),
            ("forward", "oifname \(br) jump published-forward"),
            ("forward", "iifname \(br) oifname != \(br) accept"),
            ("forward", "iifname \(br) oifname \(br) \(b.icc ? "accept" : "drop")"),
            ("isolation-1", "iifname \(br) oifname != \(br) jump isolation-2"),
            ("isolation-2", "oifname \(br) drop"),
        ]
        return Group(key: bridgeKey(b), rules: r)
    }

    static func portKey(_ m: PortMapping) -> String {
        "berth port \(m.proto) \(m.hostIP):\(m.hostPort) \(m.containerIP):\(m.containerPort) \(m.bridge)\(m.loopbackDNAT ? " lo" : "")"
    }

    static func port(_ m: PortMapping) -> Group {
        let p = m.proto.rawValue, c = m.containerIP, br = "\"\(m.bridge)\""
        let dst = m.hostIP.isUnspecified ? "" : "ip daddr \(m.hostIP) "
        var r: [(String, String)] = [
            ("published", "\(dst)\(p) dport \(m.hostPort) dnat to \(c):\(m.containerPort)"),
            ("postrouting", "ip saddr \(c) ip daddr \(c) \(p) dport \(m.containerPort) masquerade"),
            ("published-forward", "ip daddr \(c) iifname != \(br) oifname \(br) \(p) dport \(m.containerPort) accept"),
        ]
        if m.loopbackDNAT && (m.hostIP.isUnspecified || m.hostIP.isLoopback) {
            let ldst = m.hostIP.isUnspecified ? "127.0.0.0/8" : "\(m.hostIP)"
            r += [
                ("output", "ip daddr \(ldst) \(p) dport \(m.hostPort) dnat to \(c):\(m.containerPort)"),
                ("postrouting", "ip saddr 127.0.0.0/8 ip daddr \(c) oifname \(br) \(p) dport \(m.containerPort) masquerade"),
            ]
        }
        return Group(key: portKey(m), rules: r)
    }

    /// The `nft -f -` input for one operation; empty when there is nothing to do.
    /// `current` is nil when the table does not exist.
    static func batch(current: NftablesState?, adding: [Group], removing: [String]) -> String {
        var out = ""
        let removeKeys = Set(removing)
        if let current {
            let doomed = current.rules.filter { removeKeys.contains($0.comment) }
            let survivors = current.rules.filter { $0.comment != baseKey && !removeKeys.contains($0.comment) }
            if survivors.isEmpty && adding.isEmpty {
                return "delete table ip \(table)\n"
            }
            for r in doomed { out += "delete rule ip \(table) \(r.chain) handle \(r.handle)\n" }
        } else {
            guard !adding.isEmpty else { return "" }
            out += skeleton
        }
        var seen = Set<String>()
        for g in adding where !(current?.has(g.key) ?? false) && !removeKeys.contains(g.key) && seen.insert(g.key).inserted {
            for (chain, rule) in g.rules { out += "add rule ip \(table) \(chain) \(rule) comment \"\(g.key)\"\n" }
        }
        return out
    }
}
