import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// The epoll loop behind ``UserlandProxy``. Everything except ``submit(_:)``, ``stop()`` and
/// ``activeFlows`` runs on the loop's own thread, so the connection state needs no locking.
final class ProxyLoop: @unchecked Sendable {
    enum Request {
        case add(Int32, PortMapping)
        case remove(PortMapping)
        case stop
    }

    /// One direction of a TCP connection: src → pipe → dst.
    struct Direction {
        var src: Int32
        var dst: Int32
        var pipeRead: Int32 = -1
        var pipeWrite: Int32 = -1
        var inPipe = 0
        var eof = false
        var shut = false
        /// `SO_RCVLOWAT` is raised on `src` (see `UserlandProxy.Options.coalesceBytes`).
        var coalescing = false
        /// While coalescing: when the proxy stops waiting for the low-water mark.
        var deadline = 0.0
        /// The last deadline put in the loop's deadline queue.
        var queued = 0.0
        /// The last read stopped because the pipe was full, not because `src` ran dry: `src`
        /// may hold data whose edge-triggered event has already been consumed.
        var sourceFull = false
        var done: Bool { eof && inPipe == 0 && shut }
        /// Whether room on `dst` should also read `src`: always, unless coalescing, where a read
        /// waits for the low-water mark (or the deadline) unless the pipe had stopped it.
        var readsOnWrite: Bool { !coalescing || sourceFull }
    }

    final class Listener {
        let fd: Int32
        let mapping: PortMapping
        var members: Set<Int32> = []  // client fds (TCP) or upstream fds (UDP flows)
        var flows: [UInt64: Int32] = [:]  // UDP: client address → upstream fd
        init(fd: Int32, mapping: PortMapping) { self.fd = fd; self.mapping = mapping }
    }

    final class Connection {
        let listener: Listener
        var connected = false
        var up: Direction  // client → container
        var down: Direction  // container → client
        var client: Int32 { up.src }
        var upstream: Int32 { up.dst }
        init(listener: Listener, client: Int32, upstream: Int32) {
            self.listener = listener
            up = Direction(src: client, dst: upstream)
            down = Direction(src: upstream, dst: client)
        }
    }

    final class Flow {
        let listener: Listener
        let upstream: Int32
        var client: sockaddr_in
        let key: UInt64
        var lastActive: Double
        init(listener: Listener, upstream: Int32, client: sockaddr_in, key: UInt64, now: Double) {
            self.listener = listener
            self.upstream = upstream
            self.client = client
            self.key = key
            lastActive = now
        }
    }

    enum Entry {
        case tcpListener(Listener)
        case udpListener(Listener)
        case connection(Connection)
        case flow(Flow)
    }

    private let options: UserlandProxy.Options
    private let epfd: Int32
    private let wakeFD: Int32
    private let requestLock = PthreadMutex()
    private var requests: [(Request, ProxyCompletion)] = []
    private var thread = pthread_t()
    private var stopped = false

    // Loop-thread state.
    private var entries: [Int32: Entry] = [:]
    private var listeners: [PortMapping: Listener] = [:]
    private let buffer: UnsafeMutableRawPointer
    private static let bufferSize = 65536
    private var lastSweep = 0.0
    /// Coalescing deadlines in the order they fall due: each is `now + coalesceDelay` when it
    /// is set, so appending keeps the queue sorted. An entry whose direction has since been read
    /// again (a later entry), stopped coalescing or closed is skipped when it comes up, so a
    /// wake-up costs O(1) however many connections coalesce.
    private var deadlines: [(at: Double, connection: Connection, up: Bool)] = []
    private var deadlineHead = 0
    private let flowCount = AtomicCounter()
    private let coalescingCount = AtomicCounter()

    var activeFlows: Int { flowCount.value }
    var coalescingStarts: Int { coalescingCount.value }

    init(options: UserlandProxy.Options) throws {
        self.options = options
        epfd = berth_epoll_create()
        guard epfd >= 0 else { throw BerthError.system("proxy epoll_create1") }
        wakeFD = berth_eventfd_nonblock()
        guard wakeFD >= 0 else { let e = errno; Glibc.close(epfd); throw BerthError.system("proxy eventfd", errno: e) }
        buffer = .allocate(byteCount: ProxyLoop.bufferSize, alignment: 16)
        berth_epoll_add(epfd, wakeFD, BERTH_EPOLLIN)
        do {
            thread = try PosixThread.start("the proxy thread") { [self] in run() }
        } catch {
            Glibc.close(wakeFD)
            Glibc.close(epfd)
            buffer.deallocate()
            throw error
        }
    }

    deinit {
        buffer.deallocate()
    }

    /// Hands a request to the loop and waits until it has been carried out.
    func submit(_ r: Request) throws {
        let done = ProxyCompletion()
        try requestLock.locked {
            guard !stopped else { throw BerthError(.invalidState, "userland proxy is stopped") }
            requests.append((r, done))
        }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
        done.wait()
    }

    /// Stops the loop, closing everything, and joins the thread.
    func stop() {
        let first = requestLock.locked { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        let done = ProxyCompletion()
        requestLock.locked { requests.append((.stop, done)) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
        pthread_join(thread, nil)
        Glibc.close(wakeFD)
        Glibc.close(epfd)
    }

    // MARK: loop

    private func run() {
        // A splice into a socket whose peer is gone takes EPIPE: PosixThread blocks SIGPIPE on
        // this thread (instead of ignoring it for the whole process).

        let maxEvents = 128
        let fds = UnsafeMutablePointer<Int32>.allocate(capacity: maxEvents)
        let masks = UnsafeMutablePointer<UInt32>.allocate(capacity: maxEvents)
        defer { fds.deallocate(); masks.deallocate() }
        while true {
            let sweeping = flowCount.value > 0
            var timeout: Int64 = sweeping ? 1_000_000 : -1
            if deadlineHead < deadlines.count {
                let us = max(0, Int64(((deadlines[deadlineHead].at - monotonic()) * 1e6).rounded(.up)))
                timeout = timeout < 0 ? us : min(timeout, us)
            }
            let n = berth_epoll_wait(epfd, fds, masks, Int32(maxEvents), timeout)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            for i in 0..<Int(n) {
                let fd = fds[i]
                let ev = masks[i]
                if fd == wakeFD {
                    if !handleRequests() { shutdownAll(); return }
                    continue
                }
                guard let entry = entries[fd] else { continue }
                switch entry {
                case .tcpListener(let l): acceptAll(l)
                case .udpListener(let l): receiveFromClients(l)
                case .connection(let c): service(c, fd: fd, events: ev)
                case .flow(let f): receiveFromUpstream(f)
                }
            }
            if deadlineHead < deadlines.count { expireCoalescing(monotonic()) }
            if sweeping { sweepIdleFlows() }
        }
        shutdownAll()
    }

    /// Carries out queued requests; false when asked to stop.
    private func handleRequests() -> Bool {
        var value: UInt64 = 0
        _ = read(wakeFD, &value, 8)
        let batch = requestLock.locked { () -> [(Request, ProxyCompletion)] in
            defer { requests = [] }
            return requests
        }
        var keepGoing = true
        for (r, done) in batch {
            switch r {
            case .add(let fd, let m):
                let l = Listener(fd: fd, mapping: m)
                listeners[m] = l
                entries[fd] = m.proto == .udp ? .udpListener(l) : .tcpListener(l)
                watch(fd, BERTH_EPOLLIN)
                if m.proto == .tcp { acceptAll(l) }
            case .remove(let m):
                if let l = listeners.removeValue(forKey: m) { closeListener(l) }
            case .stop:
                keepGoing = false
            }
            done.signal()
        }
        return keepGoing
    }

    private func shutdownAll() {
        for l in listeners.values { closeListener(l) }
        listeners = [:]
        // Requests that raced with stop still get an answer.
        let rest = requestLock.locked { () -> [(Request, ProxyCompletion)] in
            defer { requests = [] }
            return requests
        }
        for (r, done) in rest {
            if case .add(let fd, _) = r { Glibc.close(fd) }
            done.signal()
        }
    }

    private func watch(_ fd: Int32, _ events: UInt32) {
        berth_epoll_add(epfd, fd, events)
    }

    private func forget(_ fd: Int32) {
        guard fd >= 0 else { return }
        entries[fd] = nil
        Glibc.close(fd)  // closing removes it from the epoll set
    }

    private func closeListener(_ l: Listener) {
        for member in l.members {
            switch entries[member] {
            case .connection(let c)?: closeConnection(c)
            case .flow(let f)?: closeFlow(f)
            default: break
            }
        }
        forget(l.fd)
    }

    // MARK: TCP

    private func acceptAll(_ l: Listener) {
        while true {
            let client = berth_accept4_nonblock(l.fd)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // EAGAIN, or EMFILE and friends: try again on the next event
            }
            guard let upstream = ProxySockets.connectUpstream(l.mapping, congestionControl: options.localCongestionControl) else {
                Glibc.close(client)
                continue
            }
            if let cc = options.localCongestionControl, ProxySockets.peerIsLoopback(client) {
                ProxySockets.setCongestionControl(client, cc)
            }
            if options.noDelay {
                var one: Int32 = 1
                setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                setsockopt(upstream, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            let c = Connection(listener: l, client: client, upstream: upstream)
            entries[client] = .connection(c)
            entries[upstream] = .connection(c)
            l.members.insert(client)
            flowCount.add(1)
            let flags = BERTH_EPOLLIN | BERTH_EPOLLOUT | BERTH_EPOLLRDHUP | BERTH_EPOLLET
            watch(client, flags)
            watch(upstream, flags)
        }
    }

    private func service(_ c: Connection, fd: Int32, events: UInt32) {
        if !c.connected {
            guard fd == c.upstream else { return }  // client data waits until the upstream is ready
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err == EINPROGRESS || (err == 0 && events & BERTH_EPOLLOUT == 0 && events & (BERTH_EPOLLERR | BERTH_EPOLLHUP) == 0) {
                return
            }
            guard err == 0, makePipes(&c.up), makePipes(&c.down) else { closeConnection(c); return }
            c.connected = true
            guard pump(&c.up), pump(&c.down) else { closeConnection(c); return }
        } else {
            let readable = events & (BERTH_EPOLLIN | BERTH_EPOLLRDHUP | BERTH_EPOLLHUP | BERTH_EPOLLERR) != 0
            let writable = events & (BERTH_EPOLLOUT | BERTH_EPOLLHUP | BERTH_EPOLLERR) != 0
            // Data read from `fd` flows in the direction whose source is `fd`; room on `fd` lets
            // the other direction continue.
            let fromClient = fd == c.client
            var ok = true
            if readable || writable {
                if fromClient {
                    if readable { ok = pump(&c.up) }
                    if ok && writable { ok = pump(&c.down, readSource: c.down.readsOnWrite) }
                } else {
                    if readable { ok = pump(&c.down) }
                    if ok && writable { ok = pump(&c.up, readSource: c.up.readsOnWrite) }
                }
            }
            guard ok else { closeConnection(c); return }
        }
        if c.up.done && c.down.done { closeConnection(c); return }
        queueDeadlines(c)
    }

    /// Queues the deadlines the last pumps set.
    private func queueDeadlines(_ c: Connection) {
        if c.up.coalescing && c.up.deadline != c.up.queued {
            deadlines.append((c.up.deadline, c, true))
            c.up.queued = c.up.deadline
        }
        if c.down.coalescing && c.down.deadline != c.down.queued {
            deadlines.append((c.down.deadline, c, false))
            c.down.queued = c.down.deadline
        }
    }

    // MARK: coalescing

    /// A read at least this large (two loopback GSO packets) starts coalescing.
    private static let coalesceStart = 128 << 10

    /// The receive low-water mark of a coalescing socket.
    private var lowWater: Int { min(options.coalesceBytes, options.pipeSize) }

    private func startCoalescing(_ d: inout Direction) {
        var mark = Int32(lowWater)
        guard setsockopt(d.src, SOL_SOCKET, SO_RCVLOWAT, &mark, socklen_t(MemoryLayout<Int32>.size)) == 0 else { return }
        d.coalescing = true
        coalescingCount.add(1)
    }

    private func stopCoalescing(_ d: inout Direction) {
        guard d.coalescing else { return }
        var one: Int32 = 1
        setsockopt(d.src, SOL_SOCKET, SO_RCVLOWAT, &one, socklen_t(MemoryLayout<Int32>.size))
        d.coalescing = false
        d.sourceFull = false
    }

    /// Directions that went `coalesceDelay` without reaching the low-water mark (the sender
    /// slowed down or paused) forward what they hold and go back to forwarding every byte.
    private func expireCoalescing(_ now: Double) {
        while deadlineHead < deadlines.count, deadlines[deadlineHead].at <= now {
            let (_, c, up) = deadlines[deadlineHead]
            deadlineHead += 1
            // Skip a closed connection (its fd may already belong to another one) and a direction
            // read again since (its newer deadline is further down the queue).
            guard case .connection(let current)? = entries[c.client], current === c,
                  up ? c.up.coalescing && c.up.deadline <= now : c.down.coalescing && c.down.deadline <= now
            else { continue }
            let ok: Bool
            if up {
                stopCoalescing(&c.up)
                ok = pump(&c.up, mayCoalesce: false)
            } else {
                stopCoalescing(&c.down)
                ok = pump(&c.down, mayCoalesce: false)
            }
            if !ok || (c.up.done && c.down.done) { closeConnection(c) } else { queueDeadlines(c) }
        }
        if deadlineHead == deadlines.count {
            deadlines.removeAll(keepingCapacity: true)
            deadlineHead = 0
        } else if deadlineHead >= 1024 && deadlineHead * 2 >= deadlines.count {
            deadlines.removeFirst(deadlineHead)
            deadlineHead = 0
        }
    }

    private func makePipes(_ d: inout Direction) -> Bool {
        var fds: [Int32] = [-1, -1]
        guard berth_pipe2(&fds, O_NONBLOCK | O_CLOEXEC) == 0 else { return false }
        _ = berth_set_pipe_size(fds[1], Int32(options.pipeSize))
        d.pipeRead = fds[0]
        d.pipeWrite = fds[1]
        return true
    }

    /// Moves what can be moved from `d.src` to `d.dst` without blocking; false on a fatal error.
    /// With `readSource` false it only empties the pipe; with `mayCoalesce` false a large read
    /// does not start coalescing.
    private func pump(_ d: inout Direction, readSource: Bool = true, mayCoalesce: Bool = true) -> Bool {
        let flags: UInt32 = 1 | 2  // SPLICE_F_MOVE | SPLICE_F_NONBLOCK
        let capacity = options.pipeSize
        while true {
            var progress = false
            if readSource && !d.eof && d.inPipe < capacity {
                let want = capacity - d.inPipe
                let n = berth_splice(d.src, d.pipeWrite, want, flags)
                if n > 0 {
                    d.inPipe += n
                    progress = true
                    d.sourceFull = n == want
                    if !d.coalescing && mayCoalesce && options.coalesceBytes > 0 && n >= min(lowWater, ProxyLoop.coalesceStart) {
                        startCoalescing(&d)
                    }
                    if d.coalescing { d.deadline = monotonic() + options.coalesceDelay }
                } else if n == 0 {
                    d.eof = true
                } else if errno != EAGAIN && errno != EINTR {
                    return false
                } else {
                    d.sourceFull = false
                }
            }
            if d.inPipe > 0 {
                let n = berth_splice(d.pipeRead, d.dst, d.inPipe, flags)
                if n > 0 {
                    d.inPipe -= n
                    progress = true
                } else if n < 0 && errno != EAGAIN && errno != EINTR {
                    return false
                }
            }
            if !progress { break }
        }
        if d.eof && d.inPipe == 0 && !d.shut {
            // Half-close: pass the EOF on, keep the other direction open.
            shutdown(d.dst, Int32(SHUT_WR))
            d.shut = true
        }
        return true
    }

    private func closeConnection(_ c: Connection) {
        guard entries[c.client] != nil else { return }
        c.listener.members.remove(c.client)
        for fd in [c.up.pipeRead, c.up.pipeWrite, c.down.pipeRead, c.down.pipeWrite] where fd >= 0 { Glibc.close(fd) }
        forget(c.client)
        forget(c.upstream)
        flowCount.add(-1)
    }

    // MARK: UDP

    private static func key(_ sa: sockaddr_in) -> UInt64 {
        UInt64(UInt32(bigEndian: sa.sin_addr.s_addr)) << 16 | UInt64(UInt16(bigEndian: sa.sin_port))
    }

    private func receiveFromClients(_ l: Listener) {
        let now = monotonic()
        while true {
            var from = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(l.fd, buffer, ProxyLoop.bufferSize, Int32(MSG_DONTWAIT), $0, &len)
                }
            }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            let k = ProxyLoop.key(from)
            let flow: Flow
            if let fd = l.flows[k], case .flow(let f)? = entries[fd] {
                flow = f
            } else {
                guard let up = ProxySockets.connectUpstream(l.mapping) else { continue }
                flow = Flow(listener: l, upstream: up, client: from, key: k, now: now)
                l.flows[k] = up
                l.members.insert(up)
                entries[up] = .flow(flow)
                flowCount.add(1)
                watch(up, BERTH_EPOLLIN)
            }
            flow.lastActive = now
            _ = send(flow.upstream, buffer, n, Int32(MSG_DONTWAIT))  // a full queue drops, as UDP may
        }
    }

    private func receiveFromUpstream(_ f: Flow) {
        f.lastActive = monotonic()
        while true {
            let n = recv(f.upstream, buffer, ProxyLoop.bufferSize, Int32(MSG_DONTWAIT))
            if n < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN { closeFlow(f) }  // e.g. ECONNREFUSED from an ICMP error
                return
            }
            var to = f.client
            _ = withUnsafePointer(to: &to) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(f.listener.fd, buffer, n, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    private func closeFlow(_ f: Flow) {
        guard entries[f.upstream] != nil else { return }
        f.listener.flows[f.key] = nil
        f.listener.members.remove(f.upstream)
        forget(f.upstream)
        flowCount.add(-1)
    }

    private func sweepIdleFlows() {
        let now = monotonic()
        guard now - lastSweep >= 1 else { return }
        lastSweep = now
        var idle: [Flow] = []
        for case .flow(let f) in entries.values where now - f.lastActive >= options.udpIdleTimeout { idle.append(f) }
        for f in idle { closeFlow(f) }
    }

    private func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// A one-shot signal from the loop to a submitter.
final class ProxyCompletion: @unchecked Sendable {
    private var done = false
    private let condPtr: UnsafeMutablePointer<pthread_cond_t>
    private let mutexPtr: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        condPtr = .allocate(capacity: 1)
        mutexPtr = .allocate(capacity: 1)
        pthread_cond_init(condPtr, nil)
        pthread_mutex_init(mutexPtr, nil)
    }
    deinit {
        pthread_cond_destroy(condPtr)
        pthread_mutex_destroy(mutexPtr)
        condPtr.deallocate()
        mutexPtr.deallocate()
    }
    func signal() {
        pthread_mutex_lock(mutexPtr)
        done = true
        pthread_cond_signal(condPtr)
        pthread_mutex_unlock(mutexPtr)
    }
    func wait() {
        pthread_mutex_lock(mutexPtr)
        while !done { pthread_cond_wait(condPtr, mutexPtr) }
        pthread_mutex_unlock(mutexPtr)
    }
}

/// A counter read from other threads.
final class AtomicCounter: @unchecked Sendable {
    private let mutex = PthreadMutex()
    private var n = 0
    func add(_ d: Int) { mutex.locked { n += d } }
    var value: Int { mutex.locked { n } }
}
