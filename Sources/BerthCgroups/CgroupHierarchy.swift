import BerthSystem

/// How cgroups are mounted on this host, read from `/proc/self/mountinfo` and `/proc/self/cgroup`.
///
/// Three layouts exist in the wild: **legacy** (only cgroup v1 hierarchies, one per controller or
/// group of controllers), **unified** (only cgroup2, usually at /sys/fs/cgroup) and **hybrid** (v1
/// hierarchies for the controllers plus a cgroup2 mount, usually /sys/fs/cgroup/unified, that holds
/// few or no controllers). Nothing about the paths is assumed: they come from the mount table.
public struct CgroupHierarchy: Sendable, Equatable {
    /// The host's cgroup layout.
    public enum Mode: String, Sendable, Codable, CustomStringConvertible {
        /// Only cgroup v1 hierarchies.
        case legacy
        /// cgroup v1 hierarchies for the controllers plus a cgroup2 mount.
        case hybrid
        /// Only cgroup2.
        case unified
        public var description: String { rawValue }
    }

    /// The layout.
    public var mode: Mode
    /// Each mounted v1 controller (`cpu`, `memory`, `name=systemd`, …) and its mount point.
    /// Co-mounted controllers (`cpu,cpuacct`) share a mount point.
    public var v1Mounts: [String: String]
    /// The cgroup2 mount point, if any.
    public var unifiedMount: String?
    /// The controllers that the cgroup2 root offers (its `cgroup.controllers`).
    public var unifiedControllers: [String]
    /// The calling process's own cgroup per v1 controller, and under the key `""` its cgroup2
    /// path, as `/proc/self/cgroup` lists them (relative to each hierarchy's root, for example
    /// `/process_api/19e2…` when the caller runs in a nested cgroup).
    public var ownCgroups: [String: String]

    /// Reads the mount table and the calling process's cgroups.
    /// - Throws: ``BerthError`` `.unsupported` when no cgroup filesystem is mounted.
    public static func detect() throws -> CgroupHierarchy {
        var h = try parse(mountinfo: try FileIO.read("/proc/self/mountinfo"),
                          procCgroup: (try? FileIO.read("/proc/self/cgroup")) ?? "")
        if let unified = h.unifiedMount, let text = try? FileIO.read(unified + "/cgroup.controllers") {
            h.unifiedControllers = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        }
        return h
    }

    /// The v1 controllers Berth places a container in, in the order it joins them (cpuset first:
    /// it refuses tasks until its cpus and mems are set).
    public static let v1Controllers = ["cpuset", "cpu", "cpuacct", "memory", "pids", "blkio", "freezer", "devices"]

    /// Builds a hierarchy description from the text of `/proc/self/mountinfo` and `/proc/self/cgroup`
    /// (split out so that layouts other than this host's can be tested).
    /// - Throws: ``BerthError`` `.unsupported` when no cgroup filesystem is mounted.
    public static func parse(mountinfo: String, procCgroup: String) throws -> CgroupHierarchy {
        var v1: [String: String] = [:]
        var unified: String?
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard let dash = fields.firstIndex(of: "-"), dash >= 5, fields.count >= dash + 3 else { continue }
            let mountPoint = unescapeMountField(String(fields[4]))
            switch fields[dash + 1] {
            case "cgroup2":
                if unified == nil { unified = mountPoint }
            case "cgroup":
                for option in fields[dash + 3].split(separator: ",") {
                    let o = String(option)
                    if o == "rw" || o == "ro" || o.hasPrefix("release_agent=") || o == "clone_children"
                        || o == "noprefix" || o == "xattr" || o == "cpuset_v2_mode" { continue }
                    if v1[o] == nil { v1[o] = mountPoint }
                }
            default: continue
            }
        }
        var own: [String: String] = [:]
        for line in procCgroup.split(separator: "\n") {
            // hierarchy-id:controller-list:path
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[1].isEmpty { own[""] = String(parts[2]); continue }
            for c in parts[1].split(separator: ",") { own[String(c)] = String(parts[2]) }
        }
        let mode: Mode
        switch (v1.keys.contains { !$0.hasPrefix("name=") }, unified != nil) {
        case (true, true): mode = .hybrid
        case (true, false): mode = .legacy
        case (false, true): mode = .unified
        case (false, false): throw BerthError(.unsupported, "no cgroup filesystem is mounted (checked /proc/self/mountinfo)")
        }
        return CgroupHierarchy(mode: mode, v1Mounts: v1, unifiedMount: unified, unifiedControllers: [],
                               ownCgroups: own)
    }

    /// The driver for a cgroup called `name` on this host: the v2 driver on a unified host, the v1
    /// driver otherwise (on a hybrid host it also places the group in the cgroup2 tree, whose
    /// `cgroup.kill` then kills every task at once).
    /// - Parameter name: The cgroup's path below each hierarchy's root, like `berth/<id>`.
    public func driver(name: String) -> any CgroupDriver {
        switch mode {
        case .unified:
            return CgroupV2Driver(name: name, root: unifiedMount ?? "/sys/fs/cgroup")
        case .legacy, .hybrid:
            var mounts: [String: String] = [:]
            for c in Self.v1Controllers { if let m = v1Mounts[c] { mounts[c] = m } }
            return CgroupV1Driver(name: name, mounts: mounts, unifiedMount: mode == .hybrid ? unifiedMount : nil)
        }
    }

    /// Undoes mountinfo's octal escapes (`\040` for a space).
    static func unescapeMountField(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 4 <= b.count,
               let v = UInt8(String(decoding: b[(i + 1)..<(i + 4)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else { out.append(b[i]); i += 1 }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
