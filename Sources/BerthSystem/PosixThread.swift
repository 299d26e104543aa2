#if canImport(Glibc)
import Glibc
#endif

/// POSIX threads running a closure: for work that blocks in the kernel (a namespace's executor,
/// the proxy's event loop, reaping a process, copying a stream, a step that waits for an RCU grace
/// period) beside the caller.
///
/// A thread started here has SIGPIPE blocked: a write into a pipe or socket whose reader has gone
/// fails with EPIPE instead of killing the whole (possibly embedding) process; the signal stays
/// pending on that thread, harmlessly.
///
/// It stands in for Foundation's `Thread` so that Berth's modules need only FoundationEssentials:
/// a program linked statically without Foundation and FoundationInternationalization starts
/// faster (the Swift runtime scans every protocol conformance record in the binary on each
/// dynamic cast it has not seen yet, and those two libraries bring about 1,900 of them).
public enum PosixThread {
    /// Runs `body` on a new thread.
    /// - Parameters:
    ///   - what: The thread's purpose, for the error (`the proxy thread`).
    ///   - detached: Detach it (nobody joins it; it ends when `body` returns). Otherwise the
    ///     caller joins the returned thread with `pthread_join`.
    ///   - stackSize: The thread's stack size in bytes; nil for the system's default.
    ///   - body: The work.
    /// - Returns: The thread.
    /// - Throws: ``BerthError`` (`start <what>: …`) when the thread cannot be created (the limit
    ///   on threads or memory); `body` does not run then.
    @discardableResult
    public static func start(_ what: String, detached: Bool = false, stackSize: Int? = nil,
                             _ body: @escaping @Sendable () -> Void) throws -> pthread_t {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if detached { pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED)) }
        if let stackSize { pthread_attr_setstacksize(&attributes, stackSize) }
        let box = Unmanaged.passRetained(Box(body))
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            BrokenPipe.blockOnThisThread()
            box.body()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw BerthError.system("start \(what)", errno: result)
        }
        return thread
    }

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}

/// Keeps SIGPIPE (a write into a pipe or socket whose reader has gone) from killing the process
/// that embeds Berth: Berth's writes take EPIPE instead. The process-wide disposition is left
/// alone (a CLI piped into `head` still ends as usual on its own writes).
public enum BrokenPipe {
    /// Blocks SIGPIPE on the calling thread for good: for threads of Berth's own
    /// (``PosixThread/start(_:detached:stackSize:_:)`` does it for its threads).
    public static func blockOnThisThread() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Runs `body` with SIGPIPE blocked on the calling thread (a caller's thread: it gets its mask
    /// back), and discards a SIGPIPE that `body`'s writes raised, so it is not delivered when the
    /// mask is restored.
    public static func suppressed<T>(_ body: () throws -> T) rethrows -> T {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        var old = sigset_t()
        pthread_sigmask(SIG_BLOCK, &set, &old)
        var pending = sigset_t()
        sigpending(&pending)
        let wasPending = sigismember(&pending, SIGPIPE) == 1
        defer {
            sigpending(&pending)
            if !wasPending && sigismember(&pending, SIGPIPE) == 1 {
                var now = timespec()
                _ = sigtimedwait(&set, nil, &now)
            }
            pthread_sigmask(SIG_SETMASK, &old, nil)
        }
        return try body()
    }
}
