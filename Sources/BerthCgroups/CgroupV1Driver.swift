import BerthSystem
#if canImport(Glibc)
import Glibc
#endif

/// A cgroup on cgroup v1: one directory per controller hierarchy (`<mount>/berth/<id>`).
///
/// On a hybrid host it also keeps a directory in the cgroup2 tree and puts the same processes
/// there, which gives it `cgroup.kill` for ``kill()``.
public struct CgroupV1Driver: CgroupDriver {
    public let name: String
    /// Each controller and the mount point of its hierarchy.
    public let mounts: [String: String]
    /// The cgroup2 mount point of a hybrid host, if the group should also live there.
    public let unifiedMount: String?
    private let components: [Substring]

    /// - Parameters:
    ///   - name: The group's path below each hierarchy's root (`berth/<id>`), already validated.
    ///   - mounts: Each controller (`cpu`, `memory`, …) and its hierarchy's mount point.
    ///   - unifiedMount: On a hybrid host, the cgroup2 mount point; `nil` to stay out of it.
    public init(name: String, mounts: [String: String], unifiedMount: String? = nil) {
        self.name = name
        self.mounts = mounts
        self.unifiedMount = unifiedMount
        components = name.split(separator: "/")
    }

    /// A driver for the usual layout `root/<controller>` (each of ``CgroupHierarchy/v1Controllers``
    /// whose directory exists under `root`).
    /// - Parameters:
    ///   - name: The group's path below each hierarchy's root.
    ///   - root: The directory holding one mount per controller (`/sys/fs/cgroup`).
    public init(name: String, root: String) {
        var mounts: [String: String] = [:]
        for c in CgroupHierarchy.v1Controllers where FileIO.isDirectory(root + "/" + c) { mounts[c] = root + "/" + c }
        self.init(name: name, mounts: mounts)
    }

    public var paths: [String: String] {
        var result: [String: String] = [:]
        for (controller, mount) in mounts { result[controller] = mount + "/" + name }
        if let unifiedMount { result["unified"] = unifiedMount + "/" + name }
        return result
    }

    /// The hierarchies to work on, each once (co-mounted controllers share one), cpuset first.
    private var hierarchies: [(controller: String, mount: String)] {
        var seen = Set<String>()
        var result: [(String, String)] = []
        let order = CgroupHierarchy.v1Controllers + mounts.keys.sorted()
        for c in order { if let m = mounts[c], seen.insert(m).inserted { result.append((c, m)) } }
        if let unifiedMount { result.append(("unified", unifiedMount)) }
        return result
    }

    private func dir(_ controller: String) throws -> String {
        guard let mount = mounts[controller] else {
            throw BerthError(.unsupported, "the \(controller) cgroup controller is not mounted on this host")
        }
        return mount + "/" + name
    }

    public func exists() -> Bool {
        hierarchies.contains { FileIO.isDirectory($0.mount + "/" + name) }
    }

    public func create() throws {
        var created: [String] = []
        do {
            for (controller, mount) in hierarchies {
                created += try ControlFiles.makeDirectories(root: mount, components: components) { dir, parent in
                    guard controller == "cpuset" else { return }
                    // A new v1 cpuset has empty cpus and mems and refuses tasks until both are set.
                    for file in ["cpuset.cpus", "cpuset.mems"] where (try? ControlFiles.read(dir, file))?.isEmpty ?? false {
                        let inherited = try ControlFiles.read(parent, file)
                        try ControlFiles.write(dir, file, inherited, controller: "cpuset", purpose: "\(file) of \(dir) from its parent")
                    }
                }
            }
        } catch {
            ControlFiles.removeDirectories(created.reversed())
            throw error
        }
    }

    public func apply(_ limits: CgroupLimits) throws {
        if limits.cpusetCpus != nil || limits.cpusetMems != nil {
            let d = try dir("cpuset")
            if let cpus = limits.cpusetCpus { try ControlFiles.write(d, "cpuset.cpus", cpus, controller: "cpuset", purpose: "cpuset cpus \"\(cpus)\"") }
            if let mems = limits.cpusetMems { try ControlFiles.write(d, "cpuset.mems", mems, controller: "cpuset", purpose: "cpuset mems \"\(mems)\"") }
        }
        if limits.memoryBytes != nil || limits.memorySwapBytes != nil { try applyMemory(limits) }
        if limits.cpuShares != nil || limits.cpuQuotaMicros != nil || limits.cpuPeriodMicros != nil { try applyCPU(limits) }
        if let pids = limits.pidsMax {
            try ControlFiles.write(try dir("pids"), "pids.max", pids > 0 ? "\(pids)" : "max", controller: "pids", purpose: "pids limit")
        }
        if let weight = limits.blkioWeight {
            let d = try dir("blkio")
            // blkio.weight belongs to the CFQ scheduler (gone since Linux 5.0); BFQ offers its own file.
            let file = FileIO.exists(d + "/blkio.weight") || !FileIO.exists(d + "/blkio.bfq.weight") ? "blkio.weight" : "blkio.bfq.weight"
            try ControlFiles.write(d, file, "\(weight)", controller: "blkio", purpose: "blkio weight")
        }
    }

    private func applyMemory(_ limits: CgroupLimits) throws {
        let d = try dir("memory")
        let memory = limits.memoryBytes.map { "\($0)" }
        guard let swap = limits.memorySwapBytes else {
            guard let memory else { return }
            do {
                try ControlFiles.write(d, "memory.limit_in_bytes", memory, controller: "memory", purpose: "memory limit")
            } catch let error as BerthError where error.errno == EINVAL {
                throw BerthError(.invalidArgument,
                    "\(error.message) (the memory+swap limit in memory.memsw.limit_in_bytes is lower: set memorySwapBytes too)",
                    errno: EINVAL)
            }
            return
        }
        // The kernel keeps memory ≤ memory+swap at every step: when the memory limit goes up,
        // raise memory+swap first; when it goes down, lower memory first.
        let current = Int64((try? ControlFiles.read(d, "memory.limit_in_bytes")) ?? "") ?? Int64.max
        let raising = limits.memoryBytes.map { $0 == -1 || $0 > current } ?? false
        let writeSwap = {
            try ControlFiles.write(d, "memory.memsw.limit_in_bytes", "\(swap)", controller: "memory",
                                   purpose: "memory+swap limit (needs swap accounting, swapaccount=1)")
        }
        if raising { try writeSwap() }
        if let memory { try ControlFiles.write(d, "memory.limit_in_bytes", memory, controller: "memory", purpose: "memory limit") }
        if !raising { try writeSwap() }
    }

    private func applyCPU(_ limits: CgroupLimits) throws {
        let d = try dir("cpu")
        if let shares = limits.cpuShares {
            try ControlFiles.write(d, "cpu.shares", "\(shares)", controller: "cpu", purpose: "cpu shares")
        }
        let quota = { (q: Int64) in
            try ControlFiles.write(d, "cpu.cfs_quota_us", "\(q)", controller: "cpu", purpose: "cpu quota")
        }
        if let period = limits.cpuPeriodMicros {
            do {
                try ControlFiles.write(d, "cpu.cfs_period_us", "\(period)", controller: "cpu", purpose: "cpu period")
            } catch let error as BerthError where error.errno == EINVAL && limits.cpuQuotaMicros != nil {
                // The old quota does not fit the new period (a parent's bandwidth): quota first.
                try quota(limits.cpuQuotaMicros!)
                try ControlFiles.write(d, "cpu.cfs_period_us", "\(period)", controller: "cpu", purpose: "cpu period")
                return
            }
        }
        if let q = limits.cpuQuotaMicros { try quota(q) }
    }

    public func add(pid: pid_t) throws {
        for (controller, mount) in hierarchies {
            try ControlFiles.addProcess(pid, to: mount + "/" + name, controller: controller)
        }
    }

    public func processes() throws -> [pid_t] {
        var all = Set<pid_t>()
        for (_, mount) in hierarchies { all.formUnion(try ControlFiles.pids(mount + "/" + name)) }
        return all.sorted()
    }

    public func stats() throws -> CgroupStats {
        guard exists() else { throw BerthError(.notFound, "cgroup \(name) does not exist") }
        var s = CgroupStats()
        if let d = try? dir("memory") {
            s.memoryUsage = ControlFiles.number(d, "memory.usage_in_bytes")
            s.memoryPeak = ControlFiles.number(d, "memory.max_usage_in_bytes")
            s.oomKills = ControlFiles.keyed(d, "memory.oom_control", "oom_kill")
            s.memoryInactiveFile = ControlFiles.keyed(d, "memory.stat", "total_inactive_file")
        }
        if let d = try? dir("blkio") {
            let text = (try? FileIO.read(d + "/blkio.throttle.io_service_bytes_recursive"))
                ?? (try? FileIO.read(d + "/blkio.throttle.io_service_bytes")) ?? ""
            (s.ioReadBytes, s.ioWriteBytes) = ControlFiles.ioBytes(text)
        }
        if let d = try? dir("cpuacct") { s.cpuUsageNanos = ControlFiles.number(d, "cpuacct.usage") }
        if let d = try? dir("pids") { s.pidsCurrent = ControlFiles.number(d, "pids.current") }
        return s
    }

    public func freeze() throws {
        let d = try dir("freezer")
        try ControlFiles.write(d, "freezer.state", "FROZEN", controller: "freezer", purpose: "freezer state")
        let frozen = try ControlFiles.poll(timeoutSeconds: 5) {
            let state = try ControlFiles.read(d, "freezer.state")
            if state == "FREEZING" {
                // Tasks in uninterruptible sleep hold it in FREEZING; asking again retries them.
                try FileIO.writeControl(d + "/freezer.state", "FROZEN")
            }
            return state == "FROZEN"
        }
        guard frozen else {
            try? FileIO.writeControl(d + "/freezer.state", "THAWED")
            throw BerthError(.invalidState, "cgroup \(d) did not freeze within 5 s (a task is stuck in the kernel)")
        }
    }

    public func thaw() throws {
        let d = try dir("freezer")
        try ControlFiles.write(d, "freezer.state", "THAWED", controller: "freezer", purpose: "freezer state")
    }

    public func kill() throws {
        let unifiedDir = unifiedMount.map { $0 + "/" + name }
        if let unifiedDir, FileIO.exists(unifiedDir + "/cgroup.kill"),
           (try? FileIO.writeControl(unifiedDir + "/cgroup.kill", "1")) != nil {
            // cgroup.kill reached every task in the cgroup2 side; any task added only to the v1
            // side (by someone else) is caught by the loop below.
        }
        // Frozen, no task can fork a new one between reading the list and killing it.
        // If freezing fails (a task stuck in the kernel), kill anyway: that matters more.
        let canFreeze = mounts["freezer"] != nil
        if canFreeze { try? freeze() }
        defer { if canFreeze { try? thaw() } }
        try ControlFiles.killEach(try processes())
    }

    public func remove() throws {
        var firstError: (any Error)?
        for (_, mount) in hierarchies.reversed() {
            do { try ControlFiles.removeGroup(root: mount, components: components) } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
    }
}
