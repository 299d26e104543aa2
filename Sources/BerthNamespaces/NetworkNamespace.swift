import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// A network namespace with a dedicated thread that lives inside it.
///
/// `setns` and `unshare` change only the calling thread, and threads from Dispatch or the
/// concurrency pool must never be moved (work scheduled later would silently run in the wrong
/// namespace). So each `NetworkNamespace` owns one thread that enters the namespace once and then
/// runs the closures given to ``run(_:)``. Sockets (including libnl sockets) opened in such a
/// closure stay bound to the namespace; processes spawned from it (see `Command`) start in it.
///
/// A namespace made with ``create()`` is anonymous: it is held only by this object's file
/// descriptor and its thread, so it disappears when the object is closed or the process dies —
/// nothing is left in /run/netns.
///
/// Closures passed to ``run(_:)`` must not use Dispatch, Swift concurrency or logging: a worker
/// thread created from inside would inherit the namespace.
public final class NetworkNamespace: @unchecked Sendable {
    /// A file descriptor referring to the namespace (usable with `setns`, or as
    /// `IFLA_NET_NS_FD` when moving a link into it). Valid until ``close()``.
    public let fd: Int32
    private let worker: NamespaceThread

    private init(worker: NamespaceThread, fd: Int32) {
        self.worker = worker
        self.fd = fd
    }

    /// Creates a new, empty network namespace with its loopback device up.
    public static func create() throws -> NetworkNamespace {
        let worker = try NamespaceThread()
        do {
            let fd: Int32 = try worker.perform {
                guard berth_unshare(berth_CLONE_NEWNET) == 0 else { throw BerthError.system("unshare(CLONE_NEWNET)") }
                guard berth_loopback_up() == 0 else { throw BerthError.system("bring up lo in the new network namespace") }
                let fd = Glibc.open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw BerthError.system("open /proc/thread-self/ns/net") }
                return fd
            }
            return NetworkNamespace(worker: worker, fd: fd)
        } catch {
            worker.stop()
            throw error
        }
    }

    /// Opens an existing namespace by path: `/proc/PID/ns/net`, `/run/netns/NAME`, or a bind mount.
    public static func open(path: String) throws -> NetworkNamespace {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw BerthError(e == ENOENT ? .notFound : .system,
                             "open network namespace \(path): \(strerrorString(e))", errno: e)
        }
        return try adopt(fd: fd, what: path)
    }

    /// Opens the network namespace of process `pid`.
    public static func open(pid: pid_t) throws -> NetworkNamespace {
        let path = "/proc/\(pid)/ns/net"
        guard FileIO.exists("/proc/\(pid)") else {
            throw BerthError(.notFound, "cannot join the network namespace of pid \(pid): no such process")
        }
        return try open(path: path)
    }

    private static func adopt(fd: Int32, what: String) throws -> NetworkNamespace {
        let worker: NamespaceThread
        do { worker = try NamespaceThread() } catch { Glibc.close(fd); throw error }
        do {
            try worker.perform {
                guard berth_setns(fd, berth_CLONE_NEWNET) == 0 else { throw BerthError.system("setns into \(what)") }
            }
        } catch {
            worker.stop()
            Glibc.close(fd)
            throw error
        }
        return NetworkNamespace(worker: worker, fd: fd)
    }

    /// Runs `body` on this namespace's thread, inside the namespace, and returns its result.
    /// Blocks the caller until `body` has finished. Calls are serialised.
    public func run<T>(_ body: () throws -> T) throws -> T {
        try withoutActuallyEscaping(body) { escapable in
            try worker.perform(escapable)
        }
    }

    /// A path that refers to this namespace while the object is open (for tools like `nsenter --net=`).
    public var path: String { "/proc/\(getpid())/fd/\(fd)" }

    /// The namespace's inode number (as in `ls -l /proc/PID/ns/net`), to compare namespaces.
    public var inode: UInt64 {
        var st = stat()
        fstat(fd, &st)
        return UInt64(st.st_ino)
    }

    /// Stops the thread and closes the descriptor. An anonymous namespace with no process,
    /// bind mount or other descriptor holding it is destroyed by the kernel.
    public func close() {
        if worker.stop() { Glibc.close(fd) }
    }

    deinit { close() }
}

/// One pthread that runs submitted jobs in order. Used only by `NetworkNamespace`.
final class NamespaceThread: @unchecked Sendable {
    /// A one-shot completion signal for a submitted job.
    final class Completion: @unchecked Sendable {
        private var mutex = pthread_mutex_t()
        private var cond = pthread_cond_t()
        private var done = false
        init() {
            pthread_mutex_init(&mutex, nil)
            pthread_cond_init(&cond, nil)
        }
        deinit {
            pthread_mutex_destroy(&mutex)
            pthread_cond_destroy(&cond)
        }
        func signal() {
            pthread_mutex_lock(&mutex)
            done = true
            pthread_cond_signal(&cond)
            pthread_mutex_unlock(&mutex)
        }
        func wait() {
            pthread_mutex_lock(&mutex)
            while !done { pthread_cond_wait(&cond, &mutex) }
            pthread_mutex_unlock(&mutex)
        }
    }

    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var jobs: [(work: () -> Void, done: Completion)] = []
    private var stopping = false
    private var thread: pthread_t? = nil

    init() throws {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
        thread = try PosixThread.start("the namespace thread") { [self] in loop() }
    }

    private func loop() {
        while true {
            pthread_mutex_lock(&mutex)
            while jobs.isEmpty && !stopping { pthread_cond_wait(&cond, &mutex) }
            if jobs.isEmpty {
                pthread_mutex_unlock(&mutex)
                return
            }
            var work: (() -> Void)? = jobs[0].work
            let done = jobs[0].done
            jobs.removeFirst()
            pthread_mutex_unlock(&mutex)
            work?()
            // Release the job (and what it captured) before the submitter resumes: callers pass
            // non-escaping closures through withoutActuallyEscaping.
            work = nil
            done.signal()
        }
    }

    /// Runs `body` on the thread and waits for it.
    func perform<T>(_ body: @escaping () throws -> T) throws -> T {
        var result: Result<T, any Error>? = nil
        let done = Completion()
        try withUnsafeMutablePointer(to: &result) { resultPtr in
            pthread_mutex_lock(&mutex)
            if stopping {
                pthread_mutex_unlock(&mutex)
                throw BerthError(.invalidState, "the network namespace has been closed")
            }
            jobs.append((work: { resultPtr.pointee = Result { try body() } }, done: done))
            pthread_cond_signal(&cond)
            pthread_mutex_unlock(&mutex)
            done.wait()
        }
        return try result!.get()
    }

    /// Asks the thread to finish its queue and exit; joins it. Returns false if already stopped.
    @discardableResult
    func stop() -> Bool {
        pthread_mutex_lock(&mutex)
        if stopping {
            pthread_mutex_unlock(&mutex)
            return false
        }
        stopping = true
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
        if let t = thread, pthread_equal(t, pthread_self()) == 0 { pthread_join(t, nil) }
        return true
    }
}
