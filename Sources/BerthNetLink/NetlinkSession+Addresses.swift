import BerthSystem
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

extension NetlinkSession {
    /// Adds an address to a link. An IPv4 address also gets its subnet's broadcast address, as
    /// `ip addr add … brd +` and Docker do.
    /// - Parameters:
    ///   - address: The address with its prefix length (`172.17.0.2/16`).
    ///   - name: The link.
    /// - Throws: `.alreadyExists` when the link already has that address; `.notFound` for a missing link.
    public func addAddress(_ address: InterfaceAddress, to name: String) throws {
        let idx = try index(of: name)
        try addAddress(address, toIndex: idx, name: name)
    }

    /// Adds an address to the link with index `index` (no name lookup).
    public func addAddress(_ address: InterfaceAddress, toIndex index: Int32, name: String? = nil) throws {
        let label = name ?? "link \(index)"
        try withAddressObject(address, index: index) { obj in
            try check(rtnl_addr_add(socket, obj, NLM_F_EXCL), "add address \(address) to \(label)",
                      exists: "\(label) already has address \(address)", notFound: "no such link \(label)")
        }
    }

    /// Removes an address from a link.
    /// - Throws: `.notFound` when the link does not have it.
    public func deleteAddress(_ address: InterfaceAddress, from name: String) throws {
        let idx = try index(of: name)
        try withAddressObject(address, index: idx) { obj in
            let rc = rtnl_addr_delete(socket, obj, 0)
            if rc == -NLE_NOADDR || rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV {
                throw BerthError(.notFound, "\(name) has no address \(address)")
            }
            try check(rc, "delete address \(address) from \(name)")
        }
    }

    /// The addresses of a link (IPv4 first, then IPv6), or of every link when `name` is `nil`.
    public func addresses(of name: String? = nil) throws -> [InterfaceAddress] {
        let idx = try name.map { try index(of: $0) }
        var cache: OpaquePointer? = nil
        try check(rtnl_addr_alloc_cache(socket, &cache), "list addresses")
        guard let cache else { return [] }
        defer { nl_cache_free(cache) }
        var v4: [InterfaceAddress] = [], v6: [InterfaceAddress] = []
        var obj = nl_cache_get_first(cache)
        while let o = obj {
            obj = nl_cache_get_next(o)
            if let idx, rtnl_addr_get_ifindex(o) != idx { continue }
            guard let local = rtnl_addr_get_local(o), let text = nlAddressText(local) else { continue }
            let prefix = rtnl_addr_get_prefixlen(o)
            switch rtnl_addr_get_family(o) {
            case AF_INET: if let c = IPv4CIDR("\(text)/\(prefix)") { v4.append(.ipv4(c)) }
            case AF_INET6: if let c = try? IPv6CIDR(parsing: "\(text)/\(prefix)") { v6.append(.ipv6(c)) }
            default: break
            }
        }
        return v4 + v6
    }

    private func withAddressObject(_ address: InterfaceAddress, index: Int32, _ body: (OpaquePointer) throws -> Void) throws {
        guard let obj = rtnl_addr_alloc() else { throw BerthError(.system, "allocate address: out of memory") }
        defer { rtnl_addr_put(obj) }
        rtnl_addr_set_ifindex(obj, index)
        let local = try makeNLAddress(address.description, family: address.family)
        defer { nl_addr_put(local) }
        try check(rtnl_addr_set_local(obj, local), "set address \(address)")
        if case .ipv4(let c) = address, c.prefixLength < 31 {
            let brd = try makeNLAddress(c.broadcastAddress.description, family: AF_INET)
            defer { nl_addr_put(brd) }
            try check(rtnl_addr_set_broadcast(obj, brd), "set broadcast of \(address)")
        }
        try body(obj)
    }
}
