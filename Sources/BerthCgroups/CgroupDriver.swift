#if canImport(Glibc)
import Glibc
#endif

/// One cgroup in one kind of cgroup hierarchy: what ``Cgroup`` delegates to.
///
/// There are two implementations, ``CgroupV1Driver`` (one directory per controller hierarchy) and
/// ``CgroupV2Driver`` (one directory in the unified tree). Both take the root of the tree they
/// work on, so tests can point them at a fake cgroupfs made of plain files. A driver does no input
/// validation and no waiting; ``Cgroup`` does both.
public protocol CgroupDriver: Sendable {
    /// The group's path below each hierarchy's root (`berth/<id>`).
    var name: String { get }
    /// The group's directory per controller (v1) or under the key `"unified"` (v2 and the
    /// cgroup2 side of a hybrid host), for diagnostics.
    var paths: [String: String] { get }
    /// Whether the group's directory exists in at least one hierarchy.
    func exists() -> Bool
    /// Creates the group's directories (and missing parents); on failure removes what it made.
    func create() throws
    /// Writes the limits that are set; leaves the others untouched.
    func apply(_ limits: CgroupLimits) throws
    /// Moves a process (all its threads) into the group.
    func add(pid: pid_t) throws
    /// The processes in the group, ascending and without duplicates.
    func processes() throws -> [pid_t]
    /// Reads the usage counters.
    func stats() throws -> CgroupStats
    /// Starts freezing the group; returns once the kernel reports it frozen or throws on timeout.
    func freeze() throws
    /// Thaws the group.
    func thaw() throws
    /// Sends SIGKILL to every task in the group (does not wait for them to exit).
    func kill() throws
    /// Removes the group's directories, then its parents up to the first component of ``name``
    /// where they are empty. The group must have no tasks left.
    func remove() throws
}
