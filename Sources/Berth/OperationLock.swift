import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// A lock file under the state root: container starts hold it shared, while they make kernel
/// objects not yet recorded anywhere (an address lease between its allocation and the runtime
/// record); the crash sweep takes it exclusively, and only when no start is under way, so that it
/// never releases a lease a live start is about to record.
final class OperationLock {
    private var fd: Int32

    private init(fd: Int32) { self.fd = fd }

    /// Blocks until a shared hold is granted.
    static func shared(root: String) throws -> OperationLock {
        let fd = try open(root)
        while flock(fd, LOCK_SH) != 0 {
            if errno != EINTR { close(fd); throw BerthError.system("lock \(root)/operations.lock") }
        }
        return OperationLock(fd: fd)
    }

    /// An exclusive hold if no one holds the lock now, else `nil`.
    static func exclusiveIfFree(root: String) throws -> OperationLock? {
        let fd = try open(root)
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { close(fd); return nil }
        return OperationLock(fd: fd)
    }

    private static func open(_ root: String) throws -> Int32 {
        let fd = Glibc.open(root + "/operations.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BerthError.system("open \(root)/operations.lock") }
        return fd
    }

    /// Releases the hold (also done on deinit).
    func release() {
        if fd >= 0 { close(fd); fd = -1 }
    }

    deinit { release() }
}
