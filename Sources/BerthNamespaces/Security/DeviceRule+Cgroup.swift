import BerthSystem

extension DeviceRule {
    /// Applies a container's device policy to its cgroup, given the cgroup's directory per
    /// controller (BerthCgroups' `Cgroup.paths`: `"devices"` → `/sys/fs/cgroup/devices/<name>`).
    ///
    /// Call it after the cgroup is created and before the container's process can exec (before
    /// `ContainerProcess.spawn`, or in its `prepare` closure ahead of adding the pid):
    ///
    /// ```swift
    /// let cgroup = try Cgroup.create(name: "berth/\(id)", limits: limits)
    /// guard try DeviceRule.apply(options.deviceRules, toCgroupPaths: cgroup.paths) else { … } // no v1 devices
    /// ```
    ///
    /// - Parameters:
    ///   - rules: The policy, normally ``SecurityOptions/deviceRules`` (``dockerDefault``, or
    ///     ``allowAll`` under `--privileged`).
    ///   - paths: The cgroup's directory per controller; only `"devices"` is used.
    /// - Returns: `true` when the rules were written; `false` when the cgroup has no v1 devices
    ///   directory (a pure cgroup2 host, where device control needs a BPF program Berth does not
    ///   attach), so that the caller decides whether to run without it. Nothing is written then.
    /// - Throws: `BerthError` naming the rule and the file when the kernel refuses a rule, or
    ///   `.notFound` when the `"devices"` entry is not a devices cgroup directory.
    public static func apply(_ rules: [DeviceRule], toCgroupPaths paths: [String: String]) throws -> Bool {
        guard let directory = paths["devices"] else { return false }
        try apply(rules, toV1Directory: directory)
        return true
    }
}
