import BerthSystem
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Keeps moves into cgroups from waiting for an RCU grace period while containers start (the
/// engine holds ``shared`` while it starts one).
///
/// The first move after a quiet spell waits for a grace period (5–12 ms on this machine kind; see
/// ``Cgroup/warmUpMigration(file:)``); a move less than a grace period after the previous one does not.
/// While anyone holds it (``begin()`` … ``end()``) or until a deadline (``warm(for:)``), one thread
/// repeats a no-op move of this process every 2 ms, so that the first, slow one happens while the
/// start does other work (parsing arguments, mounting the rootfs) and the container's own join
/// finds the kernel ready.
public final class CgroupMigrationWarmUp: Sendable {
    /// The one a process normally uses: every caller's moves count for every other's.
    public static let shared = CgroupMigrationWarmUp()

    public init() {}

    private struct State {
        var holders = 0
        var until = 0.0
        var running = false
    }
    private let state = Mutex(State())

    /// Whether the thread making the moves is running.
    public var isRunning: Bool { state.withLock { $0.running } }

    /// Keeps moves ready until ``end()``.
    public func begin() {
        start { $0.holders += 1 }
    }

    /// Matches a ``begin()``. The last one also ends a head start (``warm(for:)``): the moves stop,
    /// so that none of them holds the kernel's cgroup lock while the container is torn down (or
    /// when the process exits).
    public func end() {
        state.withLock { s in
            s.holders -= 1
            if s.holders <= 0 { s.until = 0 }
        }
    }

    /// Keeps moves ready for `seconds` from now at the most: a head start for a ``begin()`` to
    /// come, which ends with its ``end()``.
    public func warm(for seconds: Double) {
        let deadline = ControlFiles.monotonicSeconds() + seconds
        start { $0.until = max($0.until, deadline) }
    }

    private func start(_ change: (inout State) -> Void) {
        let launch = state.withLock { s -> Bool in
            change(&s)
            if s.running { return false }
            s.running = true
            return true
        }
        guard launch else { return }
        do {
            try PosixThread.start("the cgroup warm-up thread", detached: true) { [self] in run() }
        } catch {
            state.withLock { $0.running = false }  // no warm-up then: the first move just waits
        }
    }

    /// The thread's loop: a no-op move every 2 ms until no one needs them.
    private func run() {
        guard let file = Cgroup.migrationWarmUpFile() else {
            state.withLock { $0.running = false }
            return
        }
        while true {
            Cgroup.warmUpMigration(file: file)
            let done = state.withLock { s -> Bool in
                guard s.holders <= 0 && ControlFiles.monotonicSeconds() >= s.until else { return false }
                s.running = false
                return true
            }
            if done { return }
            usleep(2000)
        }
    }
}
