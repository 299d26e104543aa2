import BerthSystem
import Dispatch

/// One piece of work on its own thread, joined before its result matters: steps that wait on the
/// kernel and can overlap (joining a v1 cgroup waits for an RCU grace period while the network is
/// set up; port rules are removed while the rootfs is). If no thread can be created, the work runs
/// in the caller, there and then.
final class BackgroundWork<Value: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Written by the thread before `done` is signalled, read after `join` only.
    nonisolated(unsafe) private var result: Result<Value, any Error>?
    private let joined = DispatchSemaphore(value: 1)
    nonisolated(unsafe) private var waited = false

    /// Starts `body` on a new thread.
    /// - Parameter body: The work.
    init(_ body: @escaping @Sendable () throws -> Value) {
        do {
            try PosixThread.start("a background step", detached: true) { [self] in
                result = Result { try body() }
                done.signal()
            }
        } catch {
            result = Result { try body() }
            done.signal()
        }
    }

    /// Waits until the work has finished (once; later calls return at once) and returns its value
    /// or throws its error.
    func join() throws -> Value {
        joined.wait()
        if !waited { done.wait(); waited = true }
        joined.signal()
        return try result!.get()
    }
}
