import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

extension DeviceRule {
    /// Applies a container's device policy to its cgroup, given the cgroup's directory per
    /// controller (BerthCgroups' `Cgroup.paths`: `"devices"` → `/sys/fs/cgroup/devices/<name>`,
    /// `"unified"` → its cgroup2 directory).
    ///
    /// With a v1 devices controller (v1 and hybrid hosts) the rules go to its lists; on a pure
    /// cgroup2 host, which has no devices controller, they become a BPF device filter attached to
    /// the cgroup2 directory (``attachFilter(_:toCgroup2Directory:)``), as runc and crun do.
    ///
    /// Call it after the cgroup is created and before the container's process can exec (before
    /// `ContainerProcess.spawn`, or in its `prepare` closure ahead of adding the pid):
    ///
    /// ```swift
    /// let cgroup = try Cgroup.create(name: "berth/\(id)", limits: limits)
    /// guard try DeviceRule.apply(options.deviceRules, toCgroupPaths: cgroup.paths) else { … } // no cgroup at all
    /// ```
    ///
    /// - Parameters:
    ///   - rules: The policy, normally ``SecurityOptions/deviceRules`` (``dockerDefault``, or
    ///     ``allowAll`` under `--privileged`).
    ///   - paths: The cgroup's directory per controller; `"devices"` is used, else `"unified"`.
    /// - Returns: `true` when the rules were applied; `false` when `paths` has neither entry, so
    ///   that the caller decides whether to run without device control. Nothing is done then.
    /// - Throws: `BerthError` naming the rule and the file when the kernel refuses a rule,
    ///   `.notFound` when the `"devices"` entry is not a devices cgroup directory, or the error of
    ///   loading or attaching the filter.
    public static func apply(_ rules: [DeviceRule], toCgroupPaths paths: [String: String]) throws -> Bool {
        if let directory = paths["devices"] {
            try apply(rules, toV1Directory: directory)
            return true
        }
        guard let unified = paths["unified"] else { return false }
        try attachFilter(rules, toCgroup2Directory: unified)
        return true
    }

    /// Attaches `rules` to a cgroup2 directory as a device filter: a `BPF_PROG_TYPE_CGROUP_DEVICE`
    /// program in which the last matching rule decides and no match denies (the v1 lists'
    /// meaning for a policy that starts with `a`, as ``dockerDefault`` and ``allowAll`` do). The
    /// program stays attached (`BPF_F_ALLOW_MULTI`) until the directory is removed; every process
    /// in the group, and in groups below it, is checked when it opens or makes a device node.
    /// - Parameters:
    ///   - rules: The policy.
    ///   - directory: A cgroup2 directory (`/sys/fs/cgroup/berth/<id>`).
    /// - Throws: `BerthError` when the directory cannot be opened or the kernel refuses the
    ///   program (the verifier's log is the error's `underlying` one).
    public static func attachFilter(_ rules: [DeviceRule], toCgroup2Directory directory: String) throws {
        var encoded: [Int32] = []
        for rule in rules {
            var access: Int32 = rule.kind == .all ? 7 : 0
            for c in rule.access.utf8 {
                switch c {
                case UInt8(ascii: "m"): access |= 1
                case UInt8(ascii: "r"): access |= 2
                case UInt8(ascii: "w"): access |= 4
                default: throw BerthError(.invalidArgument, "device rule \"\(rule)\": access \"\(rule.access)\" is not made of r, w and m")
                }
            }
            let kind: Int32 = rule.kind == .all ? 0 : rule.kind == .block ? 1 : 2
            encoded += [rule.allow ? 1 : 0, kind, Int32(rule.major ?? -1), Int32(rule.minor ?? -1), access]
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw BerthError.system("open cgroup2 directory \(directory) for its device filter") }
        defer { close(fd) }
        var log = [CChar](repeating: 0, count: 1 << 16)
        let rc = berth_device_filter_attach(fd, encoded, Int32(rules.count), &log, Int32(log.count))
        guard rc == 0 else {
            let verifier = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let log: BerthError? = verifier.isEmpty ? nil : BerthError(.system, "verifier: " + verifier)
            throw BerthError(.system, "device filter of \(rules.count) rules on \(directory): \(strerrorString(-rc))",
                             errno: -rc, underlying: log)
        }
    }
}
