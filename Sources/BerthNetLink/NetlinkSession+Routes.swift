import BerthSystem
import CNetlink

#if canImport(Glibc)
import Glibc
#endif

extension NetlinkSession {
    /// The IPv4 routes of the session's namespace.
    /// - Parameter table: Only routes of this table (254 = main); every table when `nil`.
    public func routes(table: UInt32? = 254) throws -> [Route] {
        var cache: OpaquePointer? = nil
        try check(rtnl_route_alloc_cache(socket, AF_INET, 0, &cache), "list routes")
        guard let cache else { return [] }
        defer { nl_cache_free(cache) }
        var result: [Route] = []
        var obj = nl_cache_get_first(cache)
        while let r = obj {
            obj = nl_cache_get_next(r)
            let t = rtnl_route_get_table(r)
            if let table, t != table { continue }
            guard let dst = rtnl_route_get_dst(r) else { continue }
            let prefix = Int(nl_addr_get_prefixlen(dst))
            let dstText = nlAddressText(dst) ?? "0.0.0.0"
            guard let dest = IPv4CIDR("\(dstText)/\(prefix)") else { continue }
            var gateway: IPv4Address? = nil
            var ifindex: Int32? = nil
            if rtnl_route_get_nnexthops(r) > 0, let nh = rtnl_route_nexthop_n(r, 0) {
                gateway = nlAddressText(rtnl_route_nh_get_gateway(nh)).flatMap(IPv4Address.init)
                let i = rtnl_route_nh_get_ifindex(nh)
                ifindex = i > 0 ? i : nil
            }
            let src = nlAddressText(rtnl_route_get_pref_src(r)).flatMap(IPv4Address.init)
            result.append(Route(destination: dest, gateway: gateway, interfaceIndex: ifindex, preferredSource: src,
                                scope: Route.Scope(rawValue: rtnl_route_get_scope(r)) ?? .universe,
                                table: t, protocolNumber: rtnl_route_get_protocol(r)))
        }
        return result
    }

    /// Adds a route.
    /// - Throws: `.alreadyExists` when the same route exists; `.invalidArgument` when the gateway
    ///   is unreachable (`Network is unreachable`).
    public func addRoute(_ route: Route) throws {
        try withRouteObject(route) { obj in
            let rc = rtnl_route_add(socket, obj, NLM_F_EXCL)
            if rc == -NLE_FAILURE || rc == -NLE_INVAL {
                throw BerthError(.invalidArgument, "add route \(route): the gateway is not reachable on-link")
            }
            try check(rc, "add route \(route)", exists: "route \(route) already exists",
                      notFound: "add route \(route): no such interface")
        }
    }

    /// Deletes a route.
    /// - Throws: `.notFound` when there is no such route.
    public func deleteRoute(_ route: Route) throws {
        try withRouteObject(route) { obj in
            let rc = rtnl_route_delete(socket, obj, 0)
            if rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NOADDR || rc == -NLE_FAILURE {
                throw BerthError(.notFound, "no such route \(route)")
            }
            try check(rc, "delete route \(route)", notFound: "no such route \(route)")
        }
    }

    private func withRouteObject(_ route: Route, _ body: (OpaquePointer) throws -> Void) throws {
        guard let obj = rtnl_route_alloc() else { throw BerthError(.system, "allocate route: out of memory") }
        defer { rtnl_route_put(obj) }
        rtnl_route_set_family(obj, UInt8(AF_INET))
        let dst = try makeNLAddress(route.destination.description, family: AF_INET)
        defer { nl_addr_put(dst) }
        try check(rtnl_route_set_dst(obj, dst), "set route destination \(route.destination)")
        rtnl_route_set_table(obj, route.table)
        rtnl_route_set_scope(obj, route.scope.rawValue)
        rtnl_route_set_protocol(obj, route.protocolNumber)
        rtnl_route_set_type(obj, UInt8(RTN_UNICAST))
        if let src = route.preferredSource {
            let a = try makeNLAddress(src.description, family: AF_INET)
            defer { nl_addr_put(a) }
            try check(rtnl_route_set_pref_src(obj, a), "set route source \(src)")
        }
        if route.gateway != nil || route.interfaceIndex != nil {
            guard let nh = rtnl_route_nh_alloc() else { throw BerthError(.system, "allocate next hop: out of memory") }
            if let gw = route.gateway {
                let a = try makeNLAddress(gw.description, family: AF_INET)
                defer { nl_addr_put(a) }
                rtnl_route_nh_set_gateway(nh, a)
            }
            if let i = route.interfaceIndex { rtnl_route_nh_set_ifindex(nh, i) }
            rtnl_route_add_nexthop(obj, nh)  // the route takes ownership
        }
        try body(obj)
    }
}
