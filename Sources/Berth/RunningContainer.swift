import BerthNamespaces
import BerthSystem
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A container this process started and owns. A thread reaps its process; when it exits, the
/// engine releases what it held (published ports, address lease, cgroup, rootfs mount), records
/// the exit code and, for `--rm`, removes the container.
public final class RunningContainer: @unchecked Sendable {
    /// The container.
    public let id: ContainerID
    /// Its init process in this pid namespace.
    public let pid: Int32
    /// The state right after it started (address, ports…).
    public let startedState: ContainerState
    private let process: ContainerProcess
    private let terminals: [PseudoTerminal]
    private let finished = DispatchSemaphore(value: 0)
    private let exitCode = Mutex<Int32?>(nil)

    /// - Throws: ``BerthError`` when the thread that reaps it cannot be created.
    init(engine: Engine, id: ContainerID, process: ContainerProcess, runtime: ContainerRuntime, state: ContainerState,
         copiers: [OutputCopier], attachServer: AttachServer? = nil) throws {
        self.id = id
        self.pid = process.pid
        self.process = process
        self.startedState = state
        self.terminals = copiers.compactMap(\.terminal)
        try PosixThread.start("the container reaper thread", detached: true) { [self] in
            let status = (try? process.wait()) ?? .signaled(9)
            attachServer?.stop()
            let code = engine.finish(id: id, runtime: runtime, status: status)
            for c in copiers { c.join() }
            exitCode.withLock { $0 = code }
            finished.signal()
        }
    }

    /// Waits until the container has exited and its resources are released.
    /// - Returns: The exit code (128 + signal when a signal killed it).
    @discardableResult
    public func wait() -> Int32 {
        finished.wait()
        finished.signal()
        return exitCode.withLock { $0 ?? 137 }
    }

    /// Resizes the container's terminal (`-t`; nothing otherwise): the container gets SIGWINCH.
    /// - Parameter size: The new size, typically the local terminal's after a SIGWINCH.
    public func resizeTerminal(_ size: WindowSize) {
        for t in terminals { try? t.resize(size) }
    }

    /// Sends a signal to the container's init process.
    /// - Parameter signal: The signal (SIGTERM by default).
    public func kill(_ signal: Int32 = SIGTERM) throws {
        try process.kill(signal)
    }
}
