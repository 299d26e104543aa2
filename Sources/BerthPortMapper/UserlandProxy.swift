import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// One proxy engine for every published port of a process: a single epoll loop on a dedicated
/// thread forwards TCP with `splice(2)` through a pipe per direction (the payload never enters
/// user space) and UDP through a flow table (client address → upstream socket) with an idle timeout.
///
/// It serves what DNAT does not catch: connections to 127.0.0.1 (loopback traffic never passes
/// PREROUTING and is excluded from the OUTPUT DNAT) and, when the bridge is not in hairpin NAT
/// mode, connections from containers to a host address.
///
/// Namespaces: the engine's thread stays in the network namespace of the thread that created it
/// (it connects to containers from there), and ``publish(_:)`` opens listeners in the namespace of
/// its calling thread. Create the proxy and publish from the host's namespace, for a sandbox
/// inside `NetworkNamespace.run { }`.
///
/// ```swift
/// let proxy = try UserlandProxy()
/// try proxy.publish(PortMapping(proto: .tcp, hostIP: .loopback, hostPort: 18080,
///                               containerIP: IPv4Address(172, 17, 0, 2), containerPort: 8080, bridge: "berth0"))
/// ```
public final class UserlandProxy: @unchecked Sendable {
    /// Tuning knobs.
    public struct Options: Sendable {
        /// Capacity of each splice pipe (`F_SETPIPE_SZ`); larger pipes mean fewer system calls.
        public var pipeSize: Int
        /// A UDP flow with no traffic for this many seconds is forgotten (Docker: 90 s).
        public var udpIdleTimeout: Double
        /// Listen backlog of TCP listeners.
        public var backlog: Int32
        /// Set TCP_NODELAY on both sockets of a connection (interactive protocols need it; bulk
        /// transfers are unaffected because every splice moves a large chunk).
        public var noDelay: Bool
        /// Congestion control (`TCP_CONGESTION`) for legs that never leave the host: the connection
        /// to the container, and client connections from 127.0.0.0/8; `nil` keeps the host's
        /// default. A pacing algorithm such as BBR only adds a timer per burst there; `cubic`
        /// (always built in) does not pace. Remote clients keep the host's default.
        public var localCongestionControl: String?
        /// Coalescing of bulk TCP transfers, in bytes (0 turns it off; at most `pipeSize` is
        /// used). When one read from a socket returns 128 KiB or more (data arrives faster than
        /// the proxy forwards it), the proxy sets `SO_RCVLOWAT` to this value on that socket, so
        /// it wakes up and forwards once per this many bytes rather than once per arriving
        /// packet: fewer, larger sends into the other socket, whose segments the kernel then
        /// processes in batches.
        public var coalesceBytes: Int
        /// How long a coalescing socket may go without reaching `coalesceBytes` before the proxy
        /// forwards what it holds and returns to forwarding every byte as it arrives, in seconds.
        /// It bounds what coalescing adds to the end of a burst.
        public var coalesceDelay: Double

        /// - Parameters:
        ///   - pipeSize: Bytes per splice pipe (1 MiB by default, the default pipe-max-size).
        ///   - udpIdleTimeout: Seconds before an idle UDP flow is closed.
        ///   - backlog: The TCP listen backlog.
        ///   - noDelay: Disable Nagle's algorithm on proxied connections.
        ///   - localCongestionControl: `TCP_CONGESTION` of host-local legs (`nil`: the default).
        ///   - coalesceBytes: Receive low-water mark of bulk transfers (1 MiB; 0: off).
        ///   - coalesceDelay: Longest wait for `coalesceBytes`, in seconds (200 µs).
        public init(pipeSize: Int = 1 << 20, udpIdleTimeout: Double = 90, backlog: Int32 = 512, noDelay: Bool = true,
                    localCongestionControl: String? = "cubic", coalesceBytes: Int = 1 << 20,
                    coalesceDelay: Double = 0.0002) {
            self.pipeSize = pipeSize
            self.udpIdleTimeout = udpIdleTimeout
            self.backlog = backlog
            self.noDelay = noDelay
            self.localCongestionControl = localCongestionControl
            self.coalesceBytes = coalesceBytes
            self.coalesceDelay = coalesceDelay
        }
    }

    public let options: Options
    private let loop: ProxyLoop
    private let mutex = PthreadMutex()
    private var published: [PortMapping] = []
    private var closed = false

    /// Starts the engine's thread in the calling thread's network namespace.
    /// - Parameter options: Tuning knobs.
    public init(options: Options = Options()) throws {
        self.options = options
        loop = try ProxyLoop(options: options)
    }

    /// Opens a listener on `mapping.hostIP:hostPort` (in the calling thread's network namespace)
    /// and forwards what it receives to `containerIP:containerPort`.
    /// - Parameter mapping: The published port.
    /// - Throws: ``BerthError`` `.alreadyExists` when the address is in use, `.unsupported` for SCTP.
    public func publish(_ mapping: PortMapping) throws {
        guard mapping.proto != .sctp else {
            throw BerthError(.unsupported, "userland proxy for \(mapping): SCTP is not proxied")
        }
        let fd = try ProxySockets.listen(mapping, backlog: options.backlog)
        do {
            try mutex.locked {
                guard !closed else { throw BerthError(.invalidState, "userland proxy is closed") }
                try loop.submit(.add(fd, mapping))
                published.append(mapping)
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Publishes several mappings, all or nothing.
    public func publish(_ mappings: [PortMapping]) throws {
        do { try publishAll(mappings) } catch let failure as ListenerFailure { throw failure.error }
    }

    /// `mappings[index]` could not be published; the ones before it were unpublished again.
    struct ListenerFailure: Error {
        let index: Int
        let error: any Error
    }

    /// The all-or-nothing `publish` of several mappings, telling which one failed (``ListenerFailure``).
    func publishAll(_ mappings: [PortMapping]) throws {
        for (i, m) in mappings.enumerated() {
            do {
                try publish(m)
            } catch {
                for done in mappings[..<i].reversed() { unpublish(done) }
                throw ListenerFailure(index: i, error: error)
            }
        }
    }

    /// Closes the listener of `mapping` and every connection and UDP flow it accepted. Returns once
    /// the port is free again. Unknown mappings are ignored.
    public func unpublish(_ mapping: PortMapping) {
        mutex.locked {
            guard !closed, let i = published.firstIndex(of: mapping) else { return }
            published.remove(at: i)
            try? loop.submit(.remove(mapping))
        }
    }

    /// The mappings with an open listener.
    public var mappings: [PortMapping] { mutex.locked { published } }

    /// The number of open TCP connections and UDP flows (for diagnostics).
    public var activeFlows: Int { loop.activeFlows }

    /// How many times a connection's direction has started coalescing (see
    /// ``Options/coalesceBytes``) since the engine started: a statistic.
    public var coalescingStarts: Int { loop.coalescingStarts }

    /// Closes every listener and connection and stops the thread.
    public func close() {
        let wasOpen = mutex.locked { () -> Bool in
            defer { closed = true; published = [] }
            return !closed
        }
        if wasOpen { loop.stop() }
    }

    deinit { close() }
}

/// A pthread mutex as a class (the address must not move).
final class PthreadMutex: @unchecked Sendable {
    private let m: UnsafeMutablePointer<pthread_mutex_t>
    init() {
        m = .allocate(capacity: 1)
        pthread_mutex_init(m, nil)
    }
    deinit {
        pthread_mutex_destroy(m)
        m.deallocate()
    }
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

/// Socket helpers of the proxy.
enum ProxySockets {
    static func address(_ ip: IPv4Address, _ port: UInt16) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = ip.value.bigEndian
        return sa
    }

    static func socketType(_ proto: PortProtocol) -> Int32 {
        (proto == .udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue))
            | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    }

    /// A bound (and, for TCP, listening) non-blocking socket for `m.hostIP:m.hostPort`.
    static func listen(_ m: PortMapping, backlog: Int32) throws -> Int32 {
        let fd = socket(AF_INET, socketType(m.proto), 0)
        guard fd >= 0 else { throw BerthError.system("proxy socket for \(m.hostIP):\(m.hostPort)/\(m.proto)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = address(m.hostIP, m.hostPort)
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            if e == EADDRINUSE {
                throw BerthError(.alreadyExists, "proxy listen on \(m.hostIP):\(m.hostPort)/\(m.proto): address already in use", errno: e)
            }
            throw BerthError.system("proxy bind \(m.hostIP):\(m.hostPort)/\(m.proto)", errno: e)
        }
        if m.proto == .tcp && Glibc.listen(fd, backlog) != 0 {
            let e = errno
            Glibc.close(fd)
            throw BerthError.system("proxy listen on \(m.hostIP):\(m.hostPort)/tcp", errno: e)
        }
        return fd
    }

    /// Best effort: an unknown algorithm leaves the default in place.
    static func setCongestionControl(_ fd: Int32, _ cc: String) {
        _ = cc.withCString { setsockopt(fd, Int32(IPPROTO_TCP), TCP_CONGESTION, $0, socklen_t(strlen($0))) }
    }

    /// Whether the peer of a connected socket is on 127.0.0.0/8.
    static func peerIsLoopback(_ fd: Int32) -> Bool {
        var sa = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) } }
        return rc == 0 && UInt32(bigEndian: sa.sin_addr.s_addr) >> 24 == 127
    }

    /// Starts a non-blocking connection (TCP) or connects a datagram socket (UDP) to the container.
    /// Returns the socket; a TCP connection may still be in progress.
    static func connectUpstream(_ m: PortMapping, congestionControl: String? = nil) -> Int32? {
        let fd = socket(AF_INET, socketType(m.proto), 0)
        guard fd >= 0 else { return nil }
        if m.proto == .tcp, let cc = congestionControl { setCongestionControl(fd, cc) }
        var sa = address(m.containerIP, m.containerPort)
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 && errno != EINPROGRESS {
            Glibc.close(fd)
            return nil
        }
        return fd
    }
}
