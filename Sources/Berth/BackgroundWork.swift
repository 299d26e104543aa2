import Foundation

/// One piece of work on its own thread, joined before its result matters (teardown steps that
/// can overlap, e.g. removing port rules while the rootfs is removed).
final class BackgroundWork: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Written by the thread before `done` is signalled, read after `join` only.
    nonisolated(unsafe) private var problems: [String] = []

    /// Starts `body` on a new thread.
    /// - Parameter body: The work; returns what went wrong (empty on success).
    init(_ body: @escaping @Sendable () -> [String]) {
        let thread = Thread { [self] in
            problems = body()
            done.signal()
        }
        thread.start()
    }

    /// Waits until the work has finished and returns its problems.
    func join() -> [String] {
        done.wait()
        return problems
    }
}
