import BerthSystem
#if canImport(Glibc)
import Glibc
#endif

/// A control group that Berth created (or found again after a crash), in every hierarchy the
/// host uses for it: v1 controllers, cgroup2, or both on a hybrid host.
///
/// ```swift
/// let cgroup = try Cgroup.create(name: "berth/\(id)", limits: CgroupLimits(memoryBytes: 64 << 20))
/// defer { try? cgroup.destroy() }
/// try cgroup.add(pid: child)          // before the child execs
/// print(try cgroup.stats().memoryPeak)
/// ```
///
/// The object holds no mutable state: everything lives in the kernel, so two `Cgroup` values with
/// the same name see the same group, and the type is `Sendable`.
public final class Cgroup: Sendable {
    /// The group's path below each hierarchy's root (`berth/<id>`).
    public let name: String
    /// The driver doing the work for this host's layout.
    public let driver: any CgroupDriver

    /// The group's directory per controller (v1) and under `"unified"` for cgroup2, for diagnostics.
    public var paths: [String: String] { driver.paths }

    private init(name: String, driver: any CgroupDriver) {
        self.name = name
        self.driver = driver
    }

    /// Creates the group `name` in every hierarchy the host uses and applies `limits`.
    ///
    /// On v1 the new cpuset gets its parent's cpus and mems so that it accepts tasks. If any step
    /// fails, the directories made so far are removed again.
    /// - Parameters:
    ///   - name: A relative path such as `berth/<container id>`; components may not be empty,
    ///     `.` or `..`.
    ///   - limits: The limits to apply; unset fields keep the kernel's defaults.
    /// - Throws: ``BerthError``: `.invalidArgument` for a bad name or limit (nothing is created),
    ///   `.alreadyExists` when the group exists, `.unsupported` naming the file when the kernel
    ///   lacks a limit, `.system` for a failed write.
    public static func create(name: String, limits: CgroupLimits) throws -> Cgroup {
        let name = try validate(name: name)
        try limits.validate()
        return try create(driver: try CgroupHierarchy.detect().driver(name: name), limits: limits)
    }

    /// Creates a group through a given driver (a test's fake tree, or a layout chosen by the caller).
    /// - Parameters:
    ///   - driver: The driver; its name is validated like ``create(name:limits:)``'s.
    ///   - limits: The limits to apply.
    public static func create(driver: any CgroupDriver, limits: CgroupLimits) throws -> Cgroup {
        _ = try validate(name: driver.name)
        try limits.validate()
        if driver.exists() { throw BerthError(.alreadyExists, "cgroup \(driver.name) already exists") }
        try driver.create()
        do {
            try driver.apply(limits)
        } catch {
            try? driver.remove()
            throw error
        }
        return Cgroup(name: driver.name, driver: driver)
    }

    /// Opens a group that already exists (the engine reconciling after a crash).
    /// - Parameter name: The group's path below each hierarchy's root.
    /// - Throws: ``BerthError`` `.notFound` when no hierarchy has it, `.invalidArgument` for a bad name.
    public static func open(name: String) throws -> Cgroup {
        let name = try validate(name: name)
        return try open(driver: try CgroupHierarchy.detect().driver(name: name))
    }

    /// Opens an existing group through a given driver.
    /// - Parameter driver: The driver.
    public static func open(driver: any CgroupDriver) throws -> Cgroup {
        _ = try validate(name: driver.name)
        guard driver.exists() else { throw BerthError(.notFound, "cgroup \(driver.name) does not exist") }
        return Cgroup(name: driver.name, driver: driver)
    }

    /// The names of the groups directly below `parent` in any hierarchy (`berth/<id>` for each
    /// container group under `berth`), so that an engine restarting after a crash can find groups
    /// it no longer knows and remove them.
    /// - Parameter parent: A group name such as `berth`.
    /// - Returns: Full names, sorted; empty when `parent` does not exist.
    public static func list(under parent: String) throws -> [String] {
        let parent = try validate(name: parent)
        let hierarchy = try CgroupHierarchy.detect()
        var roots = Set<String>()
        if hierarchy.mode != .unified {
            for c in CgroupHierarchy.v1Controllers { if let m = hierarchy.v1Mounts[c] { roots.insert(m) } }
        }
        if let unified = hierarchy.unifiedMount { roots.insert(unified) }
        var names = Set<String>()
        for root in roots {
            for child in ControlFiles.subdirectories(of: root + "/" + parent) { names.insert(parent + "/" + child) }
        }
        return names.sorted()
    }

    /// Checks a group name and returns it without a leading or trailing `/`.
    /// - Throws: ``BerthError`` `.invalidArgument` naming the text.
    public static func validate(name: String) throws -> String {
        func bad(_ why: String) -> BerthError { BerthError(.invalidArgument, "invalid cgroup name \"\(name)\": \(why)") }
        var trimmed = Substring(name)
        while trimmed.hasPrefix("/") { trimmed.removeFirst() }
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard !trimmed.isEmpty else { throw bad("empty") }
        for component in trimmed.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty { throw bad("empty path component") }
            if component == "." || component == ".." { throw bad("\"\(component)\" is not allowed") }
            if component.utf8.count > 255 { throw bad("a component is longer than 255 bytes") }
            if component.contains(where: { $0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } ?? false }) {
                throw bad("control characters are not allowed")
            }
        }
        return String(trimmed)
    }

    /// Moves a process and all its threads into the group (in every hierarchy). The spawner calls
    /// this while the child waits at its sync point, before it execs.
    /// - Parameter pid: The process.
    public func add(pid: pid_t) throws {
        try driver.add(pid: pid)
    }

    /// Changes limits of the running group; unset fields stay as they are.
    /// - Parameter limits: The new limits.
    public func update(_ limits: CgroupLimits) throws {
        try limits.validate()
        try driver.apply(limits)
    }

    /// Reads memory, CPU, pids and OOM counters.
    public func stats() throws -> CgroupStats {
        try driver.stats()
    }

    /// The processes in the group, ascending.
    public func processes() throws -> [pid_t] {
        try driver.processes()
    }

    /// Freezes every task in the group; returns once the kernel reports the group frozen.
    public func freeze() throws {
        try driver.freeze()
    }

    /// Lets a frozen group run again.
    public func thaw() throws {
        try driver.thaw()
    }

    /// Kills every task in the group with SIGKILL: `cgroup.kill` where the kernel has it, otherwise
    /// freeze, SIGKILL each task, thaw. Does not wait for the tasks to exit (``destroy()`` does).
    public func killAll() throws {
        try driver.kill()
    }

    /// The `cgroup.procs` file of this process's own cgroup, in the pids hierarchy or else the
    /// unified one, for ``warmUpMigration(file:)``; `nil` when neither is writable.
    public static func migrationWarmUpFile() -> String? {
        guard let hierarchy = try? CgroupHierarchy.detect() else { return nil }
        let candidates: [(mount: String?, path: String?)] = [
            (hierarchy.v1Mounts["pids"], hierarchy.ownCgroups["pids"]),
            (hierarchy.unifiedMount, hierarchy.ownCgroups[""]),
        ]
        for (mount, path) in candidates {
            guard let mount, let path else { continue }
            let file = mount + (path == "/" ? "" : path) + "/cgroup.procs"
            if access(file, W_OK) == 0 { return file }
        }
        return nil
    }

    /// Moves this process into the cgroup it is already in (a no-op move), so that the next move of
    /// a process into a cgroup finds the RCU grace period it needs already under way or done.
    ///
    /// Moving a task between cgroups takes the kernel's cgroup-threadgroup lock for writing, and
    /// without `favordynmods` that waits for an RCU grace period (5–12 ms on this machine kind)
    /// unless another move ended less than a grace period ago. Repeated less than a grace period
    /// apart on a spare thread, these moves keep ``add(pid:)`` from waiting (the engine does this
    /// while a container starts). Errors are ignored: without it a move only waits longer.
    /// - Parameter file: From ``migrationWarmUpFile()``.
    public static func warmUpMigration(file: String) {
        _ = try? FileIO.writeControl(file, "\(getpid())")
    }

    /// Removes the group's directories in every hierarchy and the parents that are left empty
    /// (so `berth/` goes with its last group). Waits up to 5 s for exiting tasks to leave.
    /// Destroying a group that is already gone succeeds.
    /// - Throws: ``BerthError`` `.invalidState` when tasks are still alive (call ``killAll()`` first).
    public func destroy() throws {
        var remaining: [pid_t] = []
        let empty = try ControlFiles.poll(timeoutSeconds: 5) {
            remaining = try driver.processes()
            return remaining.isEmpty
        }
        guard empty else {
            throw BerthError(.invalidState,
                "cannot remove cgroup \(name): processes \(remaining.map(String.init).joined(separator: ", ")) are still in it (call killAll() first)")
        }
        try driver.remove()
    }
}
