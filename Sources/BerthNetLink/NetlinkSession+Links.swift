import BerthSystem
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

extension NetlinkSession {
    // MARK: - Reading links

    /// All links of the session's namespace, ordered by index.
    public func links() throws -> [Link] {
        var cache: OpaquePointer? = nil
        try check(rtnl_link_alloc_cache(socket, AF_UNSPEC, &cache), "list links")
        guard let cache else { return [] }
        defer { nl_cache_free(cache) }
        var result: [Link] = []
        var obj = nl_cache_get_first(cache)
        while let o = obj {
            result.append(Link(o))
            obj = nl_cache_get_next(o)
        }
        return result.sorted { $0.index < $1.index }
    }

    /// The link called `name`.
    /// - Throws: ``BerthError`` `.notFound` (`no such link veth1a2b3c`).
    public func link(named name: String) throws -> Link {
        try validateLinkName(name)
        return try withKernelLink(name) { Link($0) }
    }

    /// The link with interface index `index`.
    public func link(index: Int32) throws -> Link {
        var out: OpaquePointer? = nil
        try check(rtnl_link_get_kernel(socket, index, nil, &out), "get link \(index)",
                  notFound: "no such link with index \(index)")
        guard let out else { throw BerthError(.notFound, "no such link with index \(index)") }
        defer { rtnl_link_put(out) }
        return Link(out)
    }

    /// The link called `name`, or `nil` when there is none.
    public func linkIfPresent(named name: String) throws -> Link? {
        do { return try link(named: name) } catch let e as BerthError where e.code == .notFound { return nil }
    }

    func withKernelLink<T>(_ name: String, _ body: (OpaquePointer) throws -> T) throws -> T {
        var out: OpaquePointer? = nil
        try check(rtnl_link_get_kernel(socket, 0, name, &out), "get link \(name)", notFound: "no such link \(name)")
        guard let out else { throw BerthError(.notFound, "no such link \(name)") }
        defer { rtnl_link_put(out) }
        return try body(out)
    }

    func index(of name: String) throws -> Int32 {
        try validateLinkName(name)
        return try withKernelLink(name) { rtnl_link_get_ifindex($0) }
    }

    // MARK: - Creating and deleting

    /// Creates a bridge (down; raise it with ``setUp(_:_:)``).
    /// - Parameters:
    ///   - name: The bridge name.
    ///   - mtu: Its MTU; kernel default when `nil`.
    ///   - macAddress: Its MAC address; random when `nil`.
    /// - Throws: `.alreadyExists` (`bridge berth0 already exists`).
    @discardableResult
    public func addBridge(named name: String, mtu: Int? = nil, macAddress: MACAddress? = nil) throws -> Link {
        try validateLinkName(name)
        guard let br = rtnl_link_bridge_alloc() else { throw BerthError(.system, "allocate bridge \(name): out of memory") }
        defer { rtnl_link_put(br) }
        rtnl_link_set_name(br, name)
        if let mtu { rtnl_link_set_mtu(br, UInt32(mtu)) }
        if let macAddress { try setAddr(br, macAddress) }
        try check(rtnl_link_add(socket, br, NLM_F_CREATE | NLM_F_EXCL), "create bridge \(name)",
                  exists: "bridge \(name) already exists" + (try? link(named: name)).map { $0.kind == "bridge" ? "" : " (as a \($0.kind ?? "non-bridge") link)" }.orEmpty)
        return try link(named: name)
    }

    /// Creates a veth pair in one request (see ``VethPair``).
    /// - Throws: `.alreadyExists` naming the taken name; `.notFound` for a bad master index.
    public func addVethPair(_ pair: VethPair) throws {
        try validateLinkName(pair.name)
        try validateLinkName(pair.peerName)
        guard let veth = rtnl_link_veth_alloc() else { throw BerthError(.system, "allocate veth \(pair.name): out of memory") }
        defer { rtnl_link_put(veth) }
        guard let peer = rtnl_link_veth_get_peer(veth) else { throw BerthError(.system, "veth \(pair.name) has no peer object") }
        defer { rtnl_link_put(peer) }  // rtnl_link_veth_get_peer returns a new reference
        rtnl_link_set_name(veth, pair.name)
        rtnl_link_set_name(peer, pair.peerName)
        if let mtu = pair.mtu {
            rtnl_link_set_mtu(veth, UInt32(mtu))
            rtnl_link_set_mtu(peer, UInt32(mtu))
        }
        if let mac = pair.macAddress { try setAddr(veth, mac) }
        if let mac = pair.peerMACAddress { try setAddr(peer, mac) }
        if let master = pair.masterIndex { rtnl_link_set_master(veth, master) }
        if pair.up { rtnl_link_set_flags(veth, LinkFlag.up) }
        switch pair.peerNamespace {
        case .pid(let pid)?: rtnl_link_set_ns_pid(peer, pid)
        case .fd(let fd)?: rtnl_link_set_ns_fd(peer, fd)
        case nil: break
        }
        let rc = rtnl_link_add(socket, veth, NLM_F_CREATE | NLM_F_EXCL)
        if rc < 0 {
            let taken = (try? linkIfPresent(named: pair.name)) != nil ? pair.name : pair.peerName
            let where_ = taken == pair.peerName && pair.peerNamespace != nil ? " in the target namespace" : ""
            throw NetlinkSession.error(rc, "create veth pair \(pair.name)/\(pair.peerName)",
                                       exists: "link \(taken) already exists\(where_)",
                                       notFound: "create veth pair \(pair.name)/\(pair.peerName): the master or the target namespace does not exist")
        }
    }

    /// Deletes the link called `name` (for a veth, both ends go).
    /// - Throws: `.notFound` (`no such link veth1a2b3c`).
    public func deleteLink(named name: String) throws {
        try validateLinkName(name)
        guard let l = rtnl_link_alloc() else { throw BerthError(.system, "allocate link: out of memory") }
        defer { rtnl_link_put(l) }
        rtnl_link_set_name(l, name)
        try check(rtnl_link_delete(socket, l), "delete link \(name)", notFound: "no such link \(name)")
    }

    /// Deletes the link with index `index`.
    public func deleteLink(index: Int32) throws {
        try sendLinkRequest(type: RTM_DELLINK, index: index, what: "delete link \(index)",
                            notFound: "no such link with index \(index)")
    }

    /// Deletes every link of device group `group` in one request: the kernel unregisters them as one
    /// batch, paying its synchronisation cost once instead of once per link.
    /// - Parameter group: A non-zero group number (group 0 holds every ordinary link).
    public func deleteLinks(inGroup group: UInt32) throws {
        guard group != 0 else { throw BerthError(.invalidArgument, "refusing to delete device group 0 (every link)") }
        do {
            try sendLinkRequest(type: RTM_DELLINK, index: 0, what: "delete links of group \(group)") { msg in
                nla_put_u32(msg, Int32(IFLA_GROUP), group)
            }
        } catch let e as BerthError where e.code == .notFound {
            return  // an empty group
        }
    }

    // MARK: - Changing

    /// Raises (or lowers) a link.
    public func setUp(_ name: String, _ up: Bool = true) throws {
        let idx = try index(of: name)
        try setUp(index: idx, up, name: name)
    }

    /// Raises (or lowers) the link with index `index` in one request, without a name lookup.
    public func setUp(index: Int32, _ up: Bool = true, name: String? = nil) throws {
        let label = name ?? "\(index)"
        try sendLinkRequest(type: RTM_NEWLINK, index: index, ifFlags: up ? LinkFlag.up : 0, change: LinkFlag.up,
                            what: "set link \(label) \(up ? "up" : "down")", notFound: "no such link \(label)")
    }

    /// Enslaves `name` to the bridge `bridge`.
    public func setMaster(_ name: String, bridge: String) throws {
        let idx = try index(of: name)
        let master = try index(of: bridge)
        try sendLinkRequest(type: RTM_NEWLINK, index: idx, what: "attach \(name) to bridge \(bridge)") { msg in
            nla_put_u32(msg, Int32(IFLA_MASTER), UInt32(master))
        }
    }

    /// Detaches `name` from its bridge.
    public func removeMaster(_ name: String) throws {
        let idx = try index(of: name)
        try sendLinkRequest(type: RTM_NEWLINK, index: idx, what: "detach \(name) from its bridge") { msg in
            nla_put_u32(msg, Int32(IFLA_MASTER), 0)
        }
    }

    /// Detaches the link with index `index` from its bridge, in one request.
    public func removeMaster(index: Int32, name: String? = nil) throws {
        try sendLinkRequest(type: RTM_NEWLINK, index: index, what: "detach \(name ?? "\(index)") from its bridge",
                            notFound: "no such link \(name ?? "\(index)")") { msg in
            nla_put_u32(msg, Int32(IFLA_MASTER), 0)
        }
    }

    /// Sets the MTU of `name`.
    public func setMTU(_ name: String, _ mtu: Int) throws {
        guard (68...65535).contains(mtu) else { throw BerthError(.invalidArgument, "invalid MTU \(mtu) for \(name): must be 68 to 65535") }
        let idx = try index(of: name)
        try sendLinkRequest(type: RTM_NEWLINK, index: idx, what: "set MTU \(mtu) on \(name)") { msg in
            nla_put_u32(msg, Int32(IFLA_MTU), UInt32(mtu))
        }
    }

    /// Sets the MAC address of `name`.
    public func setMACAddress(_ name: String, _ mac: MACAddress) throws {
        let idx = try index(of: name)
        try sendLinkRequest(type: RTM_NEWLINK, index: idx, what: "set MAC \(mac) on \(name)") { msg in
            mac.bytes.withUnsafeBytes { nla_put(msg, Int32(IFLA_ADDRESS), 6, $0.baseAddress) }
        }
    }

    /// Renames `name` to `newName` (the link must be down for most drivers).
    public func rename(_ name: String, to newName: String) throws {
        try validateLinkName(newName)
        let idx = try index(of: name)
        try sendLinkRequest(type: RTM_NEWLINK, index: idx, what: "rename \(name) to \(newName)",
                            exists: "cannot rename \(name): link \(newName) already exists") { msg in
            nla_put_string(msg, Int32(IFLA_IFNAME), newName)
        }
    }

    /// Puts `name` into device group `group` (see ``deleteLinks(inGroup:)``).
    public func setGroup(_ name: String, _ group: UInt32) throws {
        let idx = try index(of: name)
        try setGroup(index: idx, group, name: name)
    }

    /// Puts the link with index `index` into device group `group`, in one request.
    public func setGroup(index: Int32, _ group: UInt32, name: String? = nil) throws {
        try sendLinkRequest(type: RTM_NEWLINK, index: index, what: "set group \(group) on \(name ?? "\(index)")") { msg in
            nla_put_u32(msg, Int32(IFLA_GROUP), group)
        }
    }

    /// Moves a link into another network namespace, renaming and raising it in the same request
    /// (one `rtnl_link_change` carrying the namespace, the new name and `IFF_UP`), so that the
    /// interface never appears in the target under its temporary name or down.
    /// - Parameters:
    ///   - name: The link in this session's namespace.
    ///   - target: The destination namespace.
    ///   - newName: The name it gets there (`eth0`); unchanged when `nil`.
    ///   - up: Raise it there.
    /// - Note: The kernel applies the move before the rename: when `newName` is taken in the target,
    ///   the request fails with `.alreadyExists` but the link has moved there under its old name.
    public func moveLink(_ name: String, to target: NamespaceReference, renamingTo newName: String? = nil,
                         up: Bool = false) throws {
        if let newName { try validateLinkName(newName) }
        try withKernelLink(name) { orig in
            guard let change = rtnl_link_alloc() else { throw BerthError(.system, "allocate link: out of memory") }
            defer { rtnl_link_put(change) }
            switch target {
            case .pid(let pid): rtnl_link_set_ns_pid(change, pid)
            case .fd(let fd): rtnl_link_set_ns_fd(change, fd)
            }
            if let newName { rtnl_link_set_name(change, newName) }
            if up { rtnl_link_set_flags(change, LinkFlag.up) }
            let dest = newName.map { " as \($0)" } ?? ""
            try check(rtnl_link_change(socket, orig, change, 0), "move \(name) into \(target)\(dest)",
                      exists: "cannot move \(name): link \(newName ?? name) already exists in the target namespace",
                      notFound: "cannot move \(name): the target namespace \(target) does not exist")
        }
    }

    /// Enables or disables hairpin mode on a bridge port (traffic may leave by the port it came in),
    /// through netlink (`IFLA_PROTINFO` / `IFLA_BRPORT_MODE`), which — unlike
    /// /sys/class/net/<if>/brport — always addresses this session's namespace.
    public func setHairpin(_ port: String, _ enabled: Bool) throws {
        let idx = try index(of: port)
        try sendLinkRequest(type: RTM_SETLINK, family: UInt8(AF_BRIDGE), index: idx,
                            what: "set hairpin \(enabled ? "on" : "off") on bridge port \(port)",
                            notFound: "\(port) is not a bridge port") { msg in
            guard let nest = nla_nest_start(msg, Int32(IFLA_PROTINFO) | Int32(NLA_F_NESTED)) else { return -NLE_NOMEM }
            let rc = nla_put_u8(msg, Int32(IFLA_BRPORT_MODE), enabled ? 1 : 0)
            if rc < 0 { return rc }
            return nla_nest_end(msg, nest)
        }
    }

    private func setAddr(_ link: OpaquePointer, _ mac: MACAddress) throws {
        var bytes = mac.bytes
        guard let a = nl_addr_build(AF_LLC, &bytes, 6) else { throw BerthError(.system, "build MAC address: out of memory") }
        defer { nl_addr_put(a) }
        rtnl_link_set_addr(link, a)
    }
}

extension Optional where Wrapped == String {
    var orEmpty: String { self ?? "" }
}
