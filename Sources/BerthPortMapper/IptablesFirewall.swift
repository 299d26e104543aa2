import BerthSystem

/// The iptables backend: Docker's layout under Berth's own chain names, applied with one
/// `iptables-restore --noflush` batch per operation.
///
/// Chains created (and deleted again when they are empty): `nat BERTH` (DNAT of published ports,
/// reached from PREROUTING for local destinations and from OUTPUT for non-loopback local ones),
/// `filter BERTH` (accepts forwarded traffic to published ports), `filter BERTH-ISOLATION-STAGE-1`
/// and `-STAGE-2` (keep two Berth bridges apart). Rules are written in `iptables-save`'s canonical
/// form so that the current rule set, read with `iptables-save`, tells which rules are present.
///
/// Every port rule carries a comment naming its mapping (`berth port tcp/0.0.0.0:18080`). When
/// the installed iptables is iptables-nft, ``addPortMappings(chainsInPlace:)`` and
/// ``removePortMappings(chainsInPlace:)`` add and delete a mapping's rules in-process over netlink
/// (written as iptables-nft writes them, found again by their comment), without spawning
/// `iptables-restore`.
public struct IptablesFirewall: Firewall {
    /// Whether ``addPortMappings(chainsInPlace:)`` and ``removePortMappings(chainsInPlace:)`` may
    /// add and delete rules over netlink (iptables-nft hosts only); when false they always run
    /// `iptables-restore`.
    public var inProcessRules: Bool

    /// - Parameter inProcessRules: Let ``addPortMappings(chainsInPlace:)`` and
    ///   ``removePortMappings(chainsInPlace:)`` work over netlink when the installed iptables is
    ///   iptables-nft (the default); `false` always spawns `iptables-restore`, as on
    ///   iptables-legacy hosts.
    public init(inProcessRules: Bool = true) {
        self.inProcessRules = inProcessRules
    }

    public var kind: FirewallKind { .iptables }

    public func addBridgeRules(_ rules: BridgeRules) throws {
        try apply(adding: IptablesRules.bridge(rules), removing: [])
    }

    public func removeBridgeRules(_ rules: BridgeRules) throws {
        try apply(adding: [], removing: IptablesRules.bridge(rules))
    }

    public func addPortMappings(_ mappings: [PortMapping]) throws {
        guard !mappings.isEmpty else { return }
        try apply(adding: mappings.flatMap(IptablesRules.port), removing: [])
    }

    public func removePortMappings(_ mappings: [PortMapping]) throws {
        guard !mappings.isEmpty else { return }
        try apply(adding: [], removing: mappings.flatMap(IptablesRules.port))
        ConntrackFlush.flushUDP(mappings)
    }

    /// ``addPortMappings(_:)`` for a caller that knows a bridge's rules are installed (so Berth's
    /// chains and jumps exist, and stay: the bridge's rules keep them non-empty): applies the rules
    /// without reading the rule set first. With iptables-nft (and ``inProcessRules``) they go in
    /// in-process, in one nf_tables transaction over netlink; otherwise, or if that fails, one
    /// `iptables-restore` adds them (instead of `iptables-save` + `iptables-restore`). If that
    /// batch fails too (a chain was deleted behind Berth's back), it falls back to one computed
    /// batch that removes what of the mappings' rules went in and adds them again (with chains and
    /// jumps), so a partly committed batch leaves no duplicates.
    /// - Parameter mappings: The mappings to publish.
    public func addPortMappings(chainsInPlace mappings: [PortMapping]) throws {
        guard !mappings.isEmpty else { return }
        let rules = mappings.flatMap(IptablesRules.port)
        try FirewallLock.withLock {
            if addInProcess(mappings) { return }
            let fast = IptablesRules.unchecked(adding: rules)
            if (try? Command.run("iptables-restore", ["--noflush", "--wait"], input: fast))?.succeeded == true { return }
            try applyLocked(adding: rules, removing: rules)
        }
    }

    /// ``removePortMappings(_:)`` for a caller that knows a bridge's rules are installed (see
    /// ``addPortMappings(chainsInPlace:)``), so Berth's chains stay whatever happens to the
    /// mappings' rules.
    ///
    /// With iptables-nft (and ``inProcessRules``), the rules are found by their comment and
    /// deleted in-process, in one nf_tables transaction over netlink; rules already gone are
    /// skipped. Otherwise, or if that finds nothing or fails, one `iptables-restore` batch deletes
    /// the rules without reading the rule set first, and if that fails too (a rule was already
    /// gone), the computed, idempotent removal runs.
    /// - Parameter mappings: The mappings to withdraw.
    public func removePortMappings(chainsInPlace mappings: [PortMapping]) throws {
        guard !mappings.isEmpty else { return }
        let rules = mappings.flatMap(IptablesRules.port)
        try FirewallLock.withLock {
            if removeInProcess(rules) { return }
            let fast = IptablesRules.unchecked(removing: rules)
            if (try? Command.run("iptables-restore", ["--noflush", "--wait"], input: fast))?.succeeded == true { return }
            try applyLocked(adding: [], removing: rules)
        }
        ConntrackFlush.flushUDP(mappings)
    }

    /// Deletes `rules` over netlink when that is possible here; true when it deleted at least one
    /// (finding none means the rules were all gone, or are not nf_tables rules after all: the
    /// `iptables-restore` path then decides). Call with the namespace lock held.
    func removeInProcess(_ rules: [IptablesRule]) -> Bool {
        guard inProcessRules, IptablesVariant.installed == .nfTables else { return false }
        return ((try? NetlinkRuleDeletion.delete(rules)) ?? 0) > 0
    }

    /// Adds the mappings' rules over netlink when that is possible here; true when they went in
    /// (all of them: the transaction is all or nothing). Call with the namespace lock held.
    func addInProcess(_ mappings: [PortMapping]) -> Bool {
        guard inProcessRules, IptablesVariant.installed == .nfTables else { return false }
        return (try? NetlinkRuleAddition.add(mappings.flatMap(IptablesRules.portRules))) != nil
    }

    /// Reads the current rule set, computes one restore batch and applies it, under the namespace lock.
    private func apply(adding: [IptablesRule], removing: [IptablesRule]) throws {
        try FirewallLock.withLock { try applyLocked(adding: adding, removing: removing) }
    }

    /// ``apply(adding:removing:)`` with the namespace lock already held.
    private func applyLocked(adding: [IptablesRule], removing: [IptablesRule]) throws {
        let current = IptablesState(save: try Command.check("iptables-save", []).stdout)
        let batch = IptablesRules.batch(current: current, adding: adding, removing: removing)
        guard !batch.isEmpty else { return }
        try Command.check("iptables-restore", ["--noflush", "--wait"], input: batch)
    }
}

/// One rule: table, chain and the match/target part exactly as `iptables-save` prints it.
struct IptablesRule: Hashable, Sendable {
    var table: String
    var chain: String
    var spec: String
    /// Insert at the top of the chain instead of appending.
    var first = false
    /// The text of the rule's `-m comment --comment` match (also part of `spec`), when it has one.
    var comment: String? = nil

    /// The line as `iptables-save` shows it: `-A CHAIN spec`.
    var saved: String { "-A \(chain) \(spec)" }
}

/// One published-port rule: `[-s A/N] [-d A/N] [[!] -i IF] [-o IF] -p P -m P --dport N
/// -m comment --comment C -j TARGET`, the only shape port rules take.
struct PortRule {
    enum Target {
        case accept
        case dnat(IPv4Address, UInt16)
        case masquerade
    }

    var table: String
    var chain: String
    var inInterface: (name: String, invert: Bool)? = nil
    var outInterface: String? = nil
    var proto: PortProtocol
    var source: (IPv4Address, prefix: Int)? = nil
    var destination: (IPv4Address, prefix: Int)? = nil
    var destinationPort: UInt16
    var comment: String
    var target: Target

    /// The rule as `iptables-save` prints it (its canonical option order).
    var rule: IptablesRule {
        var words: [String] = []
        if let (a, n) = source { words += ["-s", "\(a)/\(n)"] }
        if let (a, n) = destination { words += ["-d", "\(a)/\(n)"] }
        if let i = inInterface { words += (i.invert ? ["!"] : []) + ["-i", i.name] }
        if let o = outInterface { words += ["-o", o] }
        let p = proto.rawValue
        words += ["-p", p, "-m", p, "--dport", "\(destinationPort)", "-m", "comment", "--comment", "\"\(comment)\""]
        switch target {
        case .accept: words += ["-j", "ACCEPT"]
        case .dnat(let a, let port): words += ["-j", "DNAT", "--to-destination", "\(a):\(port)"]
        case .masquerade: words += ["-j", "MASQUERADE"]
        }
        return IptablesRule(table: table, chain: chain, spec: words.joined(separator: " "), comment: comment)
    }
}

/// The rule set of the nat and filter tables as read from `iptables-save`.
struct IptablesState {
    /// Chains per table.
    var chains: [String: Set<String>] = [:]
    /// How many times each `-A` line occurs, per table.
    var rules: [String: [String: Int]] = [:]

    init(save: String) {
        var table = ""
        for raw in save.split(separator: "\n") {
            let line = String(raw)
            if line.hasPrefix("*") {
                table = String(line.dropFirst())
            } else if line.hasPrefix(":") {
                let name = line.dropFirst().split(separator: " ").first.map(String.init) ?? ""
                chains[table, default: []].insert(name)
            } else if line.hasPrefix("-A ") {
                rules[table, default: [:]][line, default: 0] += 1
            }
        }
    }

    func count(_ rule: IptablesRule) -> Int { rules[rule.table]?[rule.saved] ?? 0 }
    func hasChain(_ table: String, _ chain: String) -> Bool { chains[table]?.contains(chain) ?? false }
}

/// Rule generation (pure, unit-testable).
enum IptablesRules {
    static let natChain = "BERTH"
    static let filterChain = "BERTH"
    static let isolation1 = "BERTH-ISOLATION-STAGE-1"
    static let isolation2 = "BERTH-ISOLATION-STAGE-2"

    /// The chains Berth owns, per table.
    static let ownedChains: [(table: String, chain: String)] = [
        ("nat", natChain), ("filter", filterChain), ("filter", isolation1), ("filter", isolation2),
    ]

    /// The jumps from the built-in chains into Berth's chains.
    static let skeleton: [IptablesRule] = [
        IptablesRule(table: "nat", chain: "PREROUTING", spec: "-m addrtype --dst-type LOCAL -j \(natChain)"),
        IptablesRule(table: "nat", chain: "OUTPUT", spec: "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j \(natChain)"),
        IptablesRule(table: "filter", chain: "FORWARD", spec: "-j \(isolation1)", first: true),
    ]

    static func bridge(_ b: BridgeRules) -> [IptablesRule] {
        let br = b.bridge
        var r: [IptablesRule] = []
        if b.masquerade {
            r.append(.init(table: "nat", chain: "POSTROUTING", spec: "-s \(b.subnet) ! -o \(br) -j MASQUERADE"))
        }
        if !b.hairpinNAT {
            r.append(.init(table: "nat", chain: natChain, spec: "-i \(br) -j RETURN"))
        }
        r += [
            .init(table: "filter", chain: "FORWARD", spec: "-o \(br) -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            .init(table: "filter", chain: "FORWARD", spec: "-o \(br) -j \(filterChain)"),
            .init(table: "filter", chain: "FORWARD", spec: "-i \(br) ! -o \(br) -j ACCEPT"),
            .init(table: "filter", chain: "FORWARD", spec: "-i \(br) -o \(br) -j \(b.icc ? "ACCEPT" : "DROP")"),
            .init(table: "filter", chain: isolation1, spec: "-i \(br) ! -o \(br) -j \(isolation2)"),
            .init(table: "filter", chain: isolation2, spec: "-o \(br) -j DROP"),
        ]
        return r
    }

    /// The comment that names a mapping's rules: protocol, host address and host port, which no
    /// two mappings in one namespace share (the allocator and the kernel's bind see to that).
    static func comment(_ m: PortMapping) -> String { "berth port \(m.proto.rawValue)/\(m.hostIP):\(m.hostPort)" }

    /// A mapping's rules, each tagged with ``comment(_:)`` (after the matches, before the target,
    /// where `iptables-save` prints it, quoted because it holds spaces).
    static func port(_ m: PortMapping) -> [IptablesRule] { portRules(m).map(\.rule) }

    /// A mapping's rules before they are text: ``port(_:)`` prints them for `iptables-restore`,
    /// ``NetlinkRuleAddition`` encodes the same list for nf_tables.
    static func portRules(_ m: PortMapping) -> [PortRule] {
        let comment = comment(m)
        let c = m.containerIP
        var r: [PortRule] = [
            PortRule(table: "nat", chain: natChain, proto: m.proto,
                     destination: m.hostIP.isUnspecified ? nil : (m.hostIP, 32), destinationPort: m.hostPort,
                     comment: comment, target: .dnat(c, m.containerPort)),
            PortRule(table: "nat", chain: "POSTROUTING", proto: m.proto, source: (c, 32), destination: (c, 32),
                     destinationPort: m.containerPort, comment: comment, target: .masquerade),
            PortRule(table: "filter", chain: filterChain, inInterface: (m.bridge, true), outInterface: m.bridge,
                     proto: m.proto, destination: (c, 32), destinationPort: m.containerPort, comment: comment, target: .accept),
        ]
        if m.loopbackDNAT && (m.hostIP.isUnspecified || m.hostIP.isLoopback) {
            let local = m.hostIP.isUnspecified ? (IPv4Address(127, 0, 0, 0), 8) : (m.hostIP, 32)
            r += [
                PortRule(table: "nat", chain: "OUTPUT", proto: m.proto, destination: local, destinationPort: m.hostPort,
                         comment: comment, target: .dnat(c, m.containerPort)),
                PortRule(table: "nat", chain: "POSTROUTING", outInterface: m.bridge, proto: m.proto,
                         source: (IPv4Address(127, 0, 0, 0), 8), destination: (c, 32), destinationPort: m.containerPort,
                         comment: comment, target: .masquerade),
            ]
        }
        return r
    }

    /// The `iptables-restore --noflush` input that adds `adding` (or deletes `removing`) as they
    /// are, assuming Berth's chains and jumps exist and, for deletion, that every rule is present.
    static func unchecked(adding: [IptablesRule] = [], removing: [IptablesRule] = []) -> String {
        var out = ""
        for table in ["nat", "filter"] {
            var body = removing.filter { $0.table == table }.map { "-D \($0.chain) \($0.spec)" }
            body += adding.filter { $0.table == table }.map { $0.first ? "-I \($0.chain) 1 \($0.spec)" : "-A \($0.chain) \($0.spec)" }
            guard !body.isEmpty else { continue }
            out += "*\(table)\n" + body.joined(separator: "\n") + "\nCOMMIT\n"
        }
        return out
    }

    /// The `iptables-restore --noflush` input that turns `current` into current + adding − removing,
    /// creating Berth's chains and jumps when needed and deleting them when nothing is left in them.
    /// Empty when there is nothing to do.
    static func batch(current: IptablesState, adding: [IptablesRule], removing: [IptablesRule]) -> String {
        var counts = current.rules
        var lines: [String: [String]] = ["nat": [], "filter": []]
        var declare: [String: [String]] = ["nat": [], "filter": []]

        for rule in removing {
            let n = counts[rule.table]?[rule.saved] ?? 0
            guard n > 0 else { continue }  // already gone: removal is idempotent
            counts[rule.table]![rule.saved] = n - 1
            lines[rule.table, default: []].append("-D \(rule.chain) \(rule.spec)")
        }

        // Does anything remain (or get added) in Berth's own chains?
        let ownedPrefixes = ownedChains.map { ($0.table, "-A \($0.chain) ") }
        let remaining = ownedPrefixes.contains { table, prefix in
            (counts[table] ?? [:]).contains { $0.value > 0 && $0.key.hasPrefix(prefix) }
        }
        let needSkeleton = remaining || !adding.isEmpty

        if needSkeleton {
            for (table, chain) in ownedChains where !current.hasChain(table, chain) {
                declare[table, default: []].append(":\(chain) - [0:0]")
            }
            for rule in skeleton where current.count(rule) == 0 {
                lines[rule.table, default: []].insert(rule.first ? "-I \(rule.chain) 1 \(rule.spec)" : "-A \(rule.chain) \(rule.spec)", at: 0)
            }
            for rule in adding {
                lines[rule.table, default: []].append(rule.first ? "-I \(rule.chain) 1 \(rule.spec)" : "-A \(rule.chain) \(rule.spec)")
            }
        } else {
            for rule in skeleton {
                for _ in 0..<current.count(rule) { lines[rule.table, default: []].append("-D \(rule.chain) \(rule.spec)") }
            }
            for (table, chain) in ownedChains where current.hasChain(table, chain) {
                // Flush first: a crash may have left rules Berth no longer tracks.
                lines[table, default: []].append("-F \(chain)")
                lines[table, default: []].append("-X \(chain)")
            }
        }

        var out = ""
        for table in ["nat", "filter"] {
            let body = declare[table, default: []] + lines[table, default: []]
            guard !body.isEmpty else { continue }
            out += "*\(table)\n" + body.joined(separator: "\n") + "\nCOMMIT\n"
        }
        return out
    }
}
