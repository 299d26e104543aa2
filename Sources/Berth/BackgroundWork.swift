import Foundation

/// One piece of work on its own thread, joined before its result matters: steps that wait on the
/// kernel and can overlap (joining a v1 cgroup waits for an RCU grace period while the network is
/// set up; port rules are removed while the rootfs is).
final class BackgroundWork<Value: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Written by the thread before `done` is signalled, read after `join` only.
    nonisolated(unsafe) private var result: Result<Value, any Error>?
    private let joined = NSLock()
    nonisolated(unsafe) private var waited = false

    /// Starts `body` on a new thread.
    /// - Parameter body: The work.
    init(_ body: @escaping @Sendable () throws -> Value) {
        let thread = Thread { [self] in
            result = Result { try body() }
            done.signal()
        }
        thread.start()
    }

    /// Waits until the work has finished (once; later calls return at once) and returns its value
    /// or throws its error.
    func join() throws -> Value {
        joined.lock()
        if !waited { done.wait(); waited = true }
        joined.unlock()
        return try result!.get()
    }
}
