import BerthNetLink
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// Deletes detached veths in the background, in batches.
///
/// Deleting a veth costs 16–35 ms of kernel time (the unregister path waits for RCU grace periods
/// and for references to drop), whatever tool asks. Detaching a container does not need to wait
/// for it: the host end is taken down first, so the bridge forwards nothing to it, and this
/// thread deletes it afterwards. When several are pending they are moved into one device group and
/// removed with a single `RTM_DELLINK` by group, which the kernel unregisters as one batch — one
/// grace-period wait for all of them.
///
/// The thread uses a netlink socket opened in the host namespace by the creator, so it works on
/// that namespace whatever namespace the thread itself was created in; it touches nothing else.
final class LinkReaper: @unchecked Sendable {
    /// The device group pending deletions are moved to before a batch delete ("bert").
    static let graveyardGroup: UInt32 = 0x6265_7274

    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var pending: [String] = []
    private var busy = false
    private var stopping = false
    private var thread: pthread_t? = nil
    private let session: NetlinkSession
    /// Failures other than "already gone", kept for ``drain()``.
    private var failures: [String] = []

    /// - Parameter session: A netlink session opened in the host namespace; the reaper owns it.
    init(session: NetlinkSession) {
        self.session = session
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }

    deinit {
        stop()
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&cond)
    }

    /// Queues `name` for deletion and returns at once.
    func delete(_ name: String) throws {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if thread == nil {
            thread = try PosixThread.start("the veth deletion thread") { [self] in loop() }
        }
        pending.append(name)
        pthread_cond_broadcast(&cond)
    }

    /// Blocks until every queued deletion has been done.
    /// - Returns: Descriptions of deletions that failed since the last call.
    @discardableResult
    func drain() -> [String] {
        pthread_mutex_lock(&mutex)
        while !pending.isEmpty || busy { pthread_cond_wait(&cond, &mutex) }
        let f = failures
        failures = []
        pthread_mutex_unlock(&mutex)
        return f
    }

    /// Finishes the queue and ends the thread.
    func stop() {
        pthread_mutex_lock(&mutex)
        stopping = true
        let t = thread
        thread = nil
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
        if let t, pthread_equal(t, pthread_self()) == 0 { pthread_join(t, nil) }
    }

    private func loop() {
        while true {
            pthread_mutex_lock(&mutex)
            while pending.isEmpty && !stopping { pthread_cond_wait(&cond, &mutex) }
            if pending.isEmpty {
                pthread_mutex_unlock(&mutex)
                return
            }
            let batch = pending
            pending = []
            busy = true
            pthread_mutex_unlock(&mutex)

            let problems = reap(batch)

            pthread_mutex_lock(&mutex)
            busy = false
            failures += problems
            pthread_cond_broadcast(&cond)
            pthread_mutex_unlock(&mutex)
        }
    }

    private func reap(_ names: [String]) -> [String] {
        var problems: [String] = []
        if names.count == 1 {
            do { try session.deleteLink(named: names[0]) } catch let e as BerthError where e.code == .notFound {
            } catch { problems.append("\(error)") }
            return problems
        }
        var grouped = 0
        for name in names {
            do {
                try session.setGroup(name, LinkReaper.graveyardGroup)
                grouped += 1
            } catch let e as BerthError where e.code == .notFound {
            } catch { problems.append("\(error)") }
        }
        if grouped > 0 {
            do { try session.deleteLinks(inGroup: LinkReaper.graveyardGroup) } catch { problems.append("\(error)") }
        }
        return problems
    }
}
