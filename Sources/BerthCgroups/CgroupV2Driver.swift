import BerthSystem
#if canImport(Glibc)
import Glibc
#endif

/// A cgroup on cgroup2 (the unified hierarchy): one directory, `<root>/berth/<id>`.
///
/// Creating it enables the controllers it needs (`cpu`, `cpuset`, `io`, `memory`, `pids`) in each
/// parent's `cgroup.subtree_control`, as far as the parent offers them. A limit whose file the
/// kernel does not offer fails with `.unsupported` naming the file.
public struct CgroupV2Driver: CgroupDriver {
    public let name: String
    /// The cgroup2 mount point (or a fake tree in tests).
    public let root: String
    private let components: [Substring]

    /// The controllers a container group uses.
    public static let wantedControllers = ["cpu", "cpuset", "io", "memory", "pids"]

    /// - Parameters:
    ///   - name: The group's path below the root (`berth/<id>`), already validated.
    ///   - root: The cgroup2 mount point (`/sys/fs/cgroup`, `/sys/fs/cgroup/unified` on a hybrid host).
    public init(name: String, root: String) {
        self.name = name
        self.root = root
        components = name.split(separator: "/")
    }

    /// The group's directory.
    public var path: String { root + "/" + name }
    public var paths: [String: String] { ["unified": path] }

    public func exists() -> Bool { FileIO.isDirectory(path) }

    public func create() throws {
        // Each level must pass the controllers down before its child can use them.
        try enableControllers(in: root)
        _ = try ControlFiles.makeDirectories(root: root, components: components) { dir, _ in
            if dir != path { try enableControllers(in: dir) }
        }
    }

    private func enableControllers(in dir: String) throws {
        guard let offered = try? ControlFiles.read(dir, "cgroup.controllers"),
              let enabled = try? ControlFiles.read(dir, "cgroup.subtree_control") else { return }
        let have = Set(enabled.split(separator: " ").map(String.init))
        let offer = Set(offered.split(separator: " ").map(String.init))
        let missing = Self.wantedControllers.filter { offer.contains($0) && !have.contains($0) }
        guard !missing.isEmpty else { return }
        // One write enables all; the kernel rejects the whole write if one fails, so then try each
        // alone. A controller that stays off surfaces later as a missing limit file.
        let file = dir + "/cgroup.subtree_control"
        if (try? FileIO.writeControl(file, missing.map { "+" + $0 }.joined(separator: " "))) == nil {
            for c in missing { try? FileIO.writeControl(file, "+" + c) }
        }
    }

    /// `cpu.weight` for v1 `cpu.shares`: maps 2…262144 onto 1…10000 (the formula runc and crun use).
    public static func cpuWeight(shares: UInt64) -> UInt64 {
        let s = min(max(shares, 2), 262_144)
        return 1 + ((s - 2) * 9999) / 262_142
    }

    /// `io.weight` for a v1 blkio weight: maps 10…1000 onto 1…10000.
    public static func ioWeight(blkioWeight: UInt16) -> UInt64 {
        let w = UInt64(min(max(blkioWeight, 10), 1000))
        return 1 + ((w - 10) * 9999) / 990
    }

    public func apply(_ limits: CgroupLimits) throws {
        let d = path
        if let cpus = limits.cpusetCpus { try ControlFiles.write(d, "cpuset.cpus", cpus, controller: "cpuset", purpose: "cpuset cpus \"\(cpus)\"") }
        if let mems = limits.cpusetMems { try ControlFiles.write(d, "cpuset.mems", mems, controller: "cpuset", purpose: "cpuset mems \"\(mems)\"") }
        if let memory = limits.memoryBytes {
            try ControlFiles.write(d, "memory.max", memory < 0 ? "max" : "\(memory)", controller: "memory", purpose: "memory limit")
        }
        if let total = limits.memorySwapBytes {
            // v2 limits swap alone; Docker's value is memory + swap.
            var swap = "max"
            if total >= 0 {
                let memory = try limits.memoryBytes ?? {
                    let current = try ControlFiles.read(d, "memory.max")
                    guard let m = Int64(current) else {
                        throw BerthError(.invalidArgument, "cannot set memory+swap limit \(total) on \(d): the memory limit is \(current)")
                    }
                    return m
                }()
                swap = "\(max(0, total - memory))"
            }
            try ControlFiles.write(d, "memory.swap.max", swap, controller: "memory", purpose: "memory+swap limit")
        }
        if let shares = limits.cpuShares {
            try ControlFiles.write(d, "cpu.weight", "\(Self.cpuWeight(shares: shares))", controller: "cpu", purpose: "cpu weight")
        }
        if limits.cpuQuotaMicros != nil || limits.cpuPeriodMicros != nil {
            var quota = limits.cpuQuotaMicros.map { $0 < 0 ? "max" : "\($0)" }
            if quota == nil {
                // Only the period changes: keep the current quota (cpu.max is "quota period").
                quota = (try? ControlFiles.read(d, "cpu.max"))?.split(separator: " ").first.map(String.init) ?? "max"
            }
            let value = limits.cpuPeriodMicros.map { "\(quota!) \($0)" } ?? quota!
            try ControlFiles.write(d, "cpu.max", value, controller: "cpu", purpose: "cpu quota")
        }
        if let pids = limits.pidsMax {
            try ControlFiles.write(d, "pids.max", pids > 0 ? "\(pids)" : "max", controller: "pids", purpose: "pids limit")
        }
        if let weight = limits.blkioWeight {
            // BFQ has its own weight on the v1 scale; otherwise io.weight on the 1…10000 scale.
            if FileIO.exists(d + "/io.bfq.weight") {
                try ControlFiles.write(d, "io.bfq.weight", "\(weight)", controller: "io", purpose: "blkio weight")
            } else {
                try ControlFiles.write(d, "io.weight", "default \(Self.ioWeight(blkioWeight: weight))", controller: "io", purpose: "blkio weight")
            }
        }
    }

    public func add(pid: pid_t) throws {
        try ControlFiles.addProcess(pid, to: path, controller: "cgroup2")
    }

    public func processes() throws -> [pid_t] {
        Array(Set(try ControlFiles.pids(path))).sorted()
    }

    public func stats() throws -> CgroupStats {
        let d = path
        guard FileIO.isDirectory(d) else { throw BerthError(.notFound, "cgroup \(d) does not exist") }
        let io = ControlFiles.ioBytes((try? FileIO.read(d + "/io.stat")) ?? "")
        return CgroupStats(
            memoryUsage: ControlFiles.number(d, "memory.current"),
            memoryPeak: ControlFiles.number(d, "memory.peak"),
            cpuUsageNanos: ControlFiles.keyed(d, "cpu.stat", "usage_usec") * 1000,
            pidsCurrent: ControlFiles.number(d, "pids.current"),
            oomKills: ControlFiles.keyed(d, "memory.events", "oom_kill"),
            memoryInactiveFile: ControlFiles.keyed(d, "memory.stat", "inactive_file"),
            ioReadBytes: io.read, ioWriteBytes: io.write)
    }

    public func freeze() throws {
        let d = path
        try ControlFiles.write(d, "cgroup.freeze", "1", controller: "cgroup2", purpose: "freeze")
        guard FileIO.exists(d + "/cgroup.events") else { return }
        let frozen = try ControlFiles.poll(timeoutSeconds: 5) {
            ControlFiles.keyed(try FileIO.read(d + "/cgroup.events"), "frozen") == 1
        }
        guard frozen else {
            try? FileIO.writeControl(d + "/cgroup.freeze", "0")
            throw BerthError(.invalidState, "cgroup \(d) did not freeze within 5 s")
        }
    }

    public func thaw() throws {
        try ControlFiles.write(path, "cgroup.freeze", "0", controller: "cgroup2", purpose: "thaw")
    }

    public func kill() throws {
        if FileIO.exists(path + "/cgroup.kill") {
            try ControlFiles.write(path, "cgroup.kill", "1", controller: "cgroup2", purpose: "kill")
            return
        }
        // Before Linux 5.14: freeze so that nothing forks past the list, kill each, thaw.
        try? freeze()
        defer { try? thaw() }
        try ControlFiles.killEach(try processes())
    }

    public func remove() throws {
        try ControlFiles.removeGroup(root: root, components: components)
    }
}
