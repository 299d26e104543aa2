import BerthSystem
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

/// A route-netlink socket bound to the network namespace it was opened in.
///
/// Open one inside ``NetworkNamespace/run(_:)`` (BerthNamespaces) to work on that namespace:
/// the kernel binds a netlink socket to the namespace of the thread that creates it, whatever
/// thread uses it afterwards. A session is not `Sendable`: keep it on the thread that made it and
/// close it (or let it go) before leaving the closure.
///
/// ```swift
/// try sandbox.run {
///     let nl = try NetlinkSession()
///     try nl.addBridge(named: "berth0")
///     try nl.setUp("berth0")
/// }
/// ```
///
/// Every operation is one request and one acknowledgement; libnl error codes become
/// ``BerthError``s that name the object (`bridge berth0 already exists`, `no such link veth1a2b3c`).
public final class NetlinkSession {
    /// The libnl socket (`struct nl_sock *`).
    let socket: OpaquePointer
    private var closed = false

    /// Opens a route-netlink socket in the calling thread's network namespace.
    public init() throws {
        guard let sk = nl_socket_alloc() else { throw BerthError(.system, "allocate a netlink socket: out of memory") }
        let rc = nl_connect(sk, NETLINK_ROUTE)
        guard rc >= 0 else {
            nl_socket_free(sk)
            throw NetlinkSession.error(rc, "connect a route-netlink socket")
        }
        socket = sk
    }

    /// Closes the socket. Further calls are invalid.
    public func close() {
        if closed { return }
        closed = true
        nl_close(socket)
        nl_socket_free(socket)
    }

    deinit { close() }

    // MARK: - Errors

    /// Turns a negative libnl return code into a ``BerthError``.
    /// - Parameters:
    ///   - rc: The negative `NLE_*` code.
    ///   - what: What was attempted, naming the object (used when no specific message applies).
    ///   - exists: The message for `NLE_EXIST` (`bridge berth0 already exists`).
    ///   - notFound: The message for `NLE_NODEV` / `NLE_OBJ_NOTFOUND` (`no such link veth0`).
    static func error(_ rc: Int32, _ what: String, exists: String? = nil, notFound: String? = nil) -> BerthError {
        let code = -rc
        let text = String(cString: nl_geterror(code))
        switch code {
        case NLE_EXIST:
            return BerthError(.alreadyExists, exists ?? "\(what): already exists", errno: EEXIST)
        case NLE_NODEV, NLE_OBJ_NOTFOUND:
            return BerthError(.notFound, notFound ?? "\(what): not found", errno: ENODEV)
        case NLE_PERM, NLE_NOACCESS:
            return BerthError(.denied, "\(what): \(text)", errno: EPERM)
        case NLE_INVAL, NLE_RANGE:
            return BerthError(.invalidArgument, "\(what): \(text)", errno: EINVAL)
        case NLE_BUSY:
            return BerthError(.invalidState, "\(what): \(text)", errno: EBUSY)
        case NLE_OPNOTSUPP, NLE_AF_NOSUPPORT:
            return BerthError(.unsupported, "\(what): \(text)", errno: EOPNOTSUPP)
        default:
            return BerthError(.system, "\(what): \(text)")
        }
    }

    /// Throws the translated error when `rc` is negative.
    func check(_ rc: Int32, _ what: @autoclosure () -> String, exists: @autoclosure () -> String? = nil,
               notFound: @autoclosure () -> String? = nil) throws {
        if rc < 0 { throw NetlinkSession.error(rc, what(), exists: exists(), notFound: notFound()) }
    }

    // MARK: - Raw requests

    /// Sends one `ifinfomsg` request built by `fill` and waits for the kernel's acknowledgement.
    /// Used for the few requests libnl 3.7 has no object API for (bridge port flags, group delete,
    /// flag changes by index without a lookup).
    func sendLinkRequest(type: Int, flags: Int32 = 0, family: UInt8 = UInt8(AF_UNSPEC), index: Int32,
                         ifFlags: UInt32 = 0, change: UInt32 = 0, what: @autoclosure () -> String,
                         exists: @autoclosure () -> String? = nil, notFound: @autoclosure () -> String? = nil,
                         fill: (OpaquePointer) -> Int32 = { _ in 0 }) throws {
        guard let msg = nlmsg_alloc_simple(Int32(type), flags) else {
            throw BerthError(.system, "\(what()): out of memory")
        }
        var ifi = ifinfomsg()
        ifi.ifi_family = family
        ifi.ifi_index = index
        ifi.ifi_flags = ifFlags
        ifi.ifi_change = change
        var rc = nlmsg_append(msg, &ifi, MemoryLayout<ifinfomsg>.size, Int32(NLMSG_ALIGNTO))
        if rc >= 0 { rc = fill(msg) }
        if rc < 0 {
            nlmsg_free(msg)
            throw NetlinkSession.error(rc, what())
        }
        // nl_send_sync frees the message.
        try check(nl_send_sync(socket, msg), what(), exists: exists(), notFound: notFound())
    }
}

/// Link flag bits (from <linux/if.h>, spelled out because they import as an enum).
enum LinkFlag {
    static let up: UInt32 = 0x1
    static let broadcast: UInt32 = 0x2
    static let loopback: UInt32 = 0x8
    static let lowerUp: UInt32 = 0x10000
}

/// Builds an `nl_addr` from text such as `172.17.0.1/16` or `fd00::1/64`.
func makeNLAddress(_ text: String, family: Int32) throws -> OpaquePointer {
    var addr: OpaquePointer? = nil
    let rc = nl_addr_parse(text, family, &addr)
    guard rc >= 0, let addr else { throw NetlinkSession.error(rc, "parse address \(text)") }
    return addr
}

/// The text form of an `nl_addr` without its prefix length.
func nlAddressText(_ addr: OpaquePointer?) -> String? {
    guard let addr, nl_addr_get_len(addr) > 0 else { return nil }
    var buf = [CChar](repeating: 0, count: 128)
    let family = nl_addr_get_family(addr)
    guard let bin = nl_addr_get_binary_addr(addr) else { return nil }
    guard inet_ntop(family, bin, &buf, socklen_t(buf.count)) != nil else { return nil }
    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
