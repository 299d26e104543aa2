import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// A private mount namespace owned by a dedicated thread: mounts made in ``run(_:)`` (and by
/// processes spawned from there with `Command`) are invisible to the rest of the machine and
/// vanish with the object. Useful to give a helper tool a slightly different view of the host
/// (for example, to hide a file behind a bind mount) without touching the host's mounts.
public final class PrivateMountNamespace: @unchecked Sendable {
    private let worker: NamespaceThread

    private init(worker: NamespaceThread) { self.worker = worker }

    /// Creates the namespace (a copy of the caller's mount tree, made recursively private so that
    /// nothing propagates back).
    public static func create() throws -> PrivateMountNamespace {
        let worker = try NamespaceThread()
        do {
            try worker.perform {
                guard berth_unshare(berth_CLONE_NEWNS) == 0 else { throw BerthError.system("unshare(CLONE_NEWNS)") }
                guard mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) == 0 else {
                    throw BerthError.system("make / rprivate in the new mount namespace")
                }
            }
        } catch {
            worker.stop()
            throw error
        }
        return PrivateMountNamespace(worker: worker)
    }

    /// Runs `body` on the namespace's thread and returns its result.
    public func run<T>(_ body: () throws -> T) throws -> T {
        try withoutActuallyEscaping(body) { try worker.perform($0) }
    }

    /// Bind-mounts `source` over `target` inside the namespace.
    public func bind(_ source: String, over target: String) throws {
        try run {
            guard mount(source, target, nil, UInt(MS_BIND), nil) == 0 else {
                throw BerthError.system("bind \(source) over \(target)")
            }
        }
    }

    /// Stops the thread; the namespace and its mounts go away with it.
    public func close() { worker.stop() }

    deinit { close() }
}
