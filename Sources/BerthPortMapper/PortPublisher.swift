import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// Publishes a container's ports in one step: host ports from the ``PortAllocator``, DNAT rules
/// from the ``Firewall``, listeners in the ``UserlandProxy`` (if any) — and undoes completed steps
/// when a later one fails. ``unpublish(owner:_:)`` undoes all three.
///
/// Call it on a thread in the host's network namespace (inside `NetworkNamespace.run { }` for a
/// sandbox): the firewall batch and the proxy listeners act on the calling thread's namespace.
public final class PortPublisher: Sendable {
    public let allocator: PortAllocator
    public let firewall: any Firewall
    /// The proxy for loopback and non-DNAT traffic; `nil` for the proxy-less mode.
    public let proxy: UserlandProxy?

    /// - Parameters:
    ///   - allocator: Where host ports come from.
    ///   - firewall: The backend for DNAT rules (`NoFirewall` to rely on the proxy alone).
    ///   - proxy: The userland proxy, or `nil` to DNAT loopback traffic instead
    ///     (Docker's `userland-proxy=false`; see ``LoopbackDNAT``).
    public init(allocator: PortAllocator, firewall: any Firewall, proxy: UserlandProxy?) {
        self.allocator = allocator
        self.firewall = firewall
        self.proxy = proxy
    }

    /// Allocates host ports for `bindings` and forwards them to `containerIP`.
    /// - Parameters:
    ///   - owner: The container id (the allocator's owner key).
    ///   - bindings: From ``PortSpec/bindings`` or ``PortSpec/publishAll(_:)``.
    ///   - containerIP: The container's address on `bridge`.
    ///   - bridge: The bridge the container is attached to.
    /// - Returns: The resolved mappings, in the order of `bindings`.
    /// - Throws: ``BerthError`` from the allocator (conflicts), the firewall or the proxy; nothing
    ///   stays allocated, installed or listening then.
    @discardableResult
    public func publish(owner: String, _ bindings: [PortBinding], containerIP: IPv4Address, bridge: String) throws -> [PortMapping] {
        guard !bindings.isEmpty else { return [] }
        let mappings = try PortPublisher.allocate(owner: owner, bindings, allocator: allocator, proxy: proxy) { b, port in
            PortMapping(proto: b.proto, hostIP: b.hostIP, hostPort: port, containerIP: containerIP,
                        containerPort: b.containerPort, bridge: bridge, loopbackDNAT: proxy == nil)
        }
        do {
            try firewall.addPortMappings(mappings)
        } catch {
            if let proxy { for m in mappings { proxy.unpublish(m) } }
            PortPublisher.release(owner: owner, mappings, allocator: allocator)
            throw error
        }
        return mappings
    }

    /// How many times ``allocate(owner:_:allocator:proxy:mapping:)`` tries ports for bindings with a choice.
    public static let maxAttempts = 10

    /// Allocates host ports for `bindings` and opens their proxy listeners (not SCTP's), all or
    /// nothing: the first two steps of publishing, for callers that install the rules themselves.
    ///
    /// A port the allocator hands out can still be taken by a socket it does not know about (an
    /// outgoing connection's local port is drawn from the same ephemeral range). When the proxy
    /// finds the port of a binding with a choice (ephemeral or a range) in use, the ports are
    /// allocated again avoiding it, up to ``maxAttempts`` times, as Docker does.
    /// - Parameters:
    ///   - owner: The allocator's owner key.
    ///   - bindings: The bindings.
    ///   - allocator: Where the ports come from.
    ///   - proxy: The proxy to open listeners in; `nil` only allocates.
    ///   - mapping: Makes the mapping of a binding and its host port.
    /// - Returns: The mappings, in the order of `bindings`.
    /// - Throws: ``BerthError`` from the allocator or the proxy; nothing stays allocated or
    ///   listening then.
    public static func allocate(owner: String, _ bindings: [PortBinding], allocator: PortAllocator, proxy: UserlandProxy?,
                                mapping: (PortBinding, UInt16) -> PortMapping) throws -> [PortMapping] {
        var inUse: [PortAllocation] = []
        while true {
            let ports = try allocator.allocate(owner: owner, bindings, avoiding: inUse)
            let mappings = zip(bindings, ports).map(mapping)
            guard let proxy else { return mappings }
            let proxied = mappings.indices.filter { mappings[$0].proto != .sctp }
            do {
                try proxy.publishAll(proxied.map { mappings[$0] })
                return mappings
            } catch let failure as UserlandProxy.ListenerFailure {
                release(owner: owner, mappings, allocator: allocator)
                let busy = proxied[failure.index]
                let hasChoice = (bindings[busy].hostPorts?.count ?? 2) > 1
                guard (failure.error as? BerthError)?.code == .alreadyExists, hasChoice, inUse.count + 1 < maxAttempts else {
                    throw failure.error
                }
                let m = mappings[busy]
                inUse.append(PortAllocation(owner: owner, proto: m.proto, hostIP: m.hostIP, port: m.hostPort))
            }
        }
    }

    /// Gives the host ports of `mappings` back, ignoring errors (a rollback).
    private static func release(owner: String, _ mappings: [PortMapping], allocator: PortAllocator) {
        for m in mappings { try? allocator.release(owner: owner, proto: m.proto, hostIP: m.hostIP, port: m.hostPort) }
    }

    /// Stops forwarding `mappings` and releases their host ports. Keeps going after an error and
    /// throws the first one at the end.
    /// - Parameters:
    ///   - owner: The owner given to ``publish(owner:_:containerIP:bridge:)``.
    ///   - mappings: The mappings it returned.
    public func unpublish(owner: String, _ mappings: [PortMapping]) throws {
        var firstError: (any Error)? = nil
        if let proxy { for m in mappings { proxy.unpublish(m) } }
        do { try firewall.removePortMappings(mappings) } catch { firstError = firstError ?? error }
        for m in mappings {
            do { try allocator.release(owner: owner, proto: m.proto, hostIP: m.hostIP, port: m.hostPort) } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
    }
}

/// The sysctl behind the proxy-less mode: with `route_localnet` on the bridge, packets from
/// 127.0.0.0/8 that OUTPUT DNATs to a container may be routed out of the bridge (and are then
/// masqueraded by the mapping's rule).
public enum LoopbackDNAT {
    /// Sets `net.ipv4.conf.<bridge>.route_localnet` in the calling thread's network namespace.
    /// - Parameters:
    ///   - bridge: The bridge interface.
    ///   - enabled: The new value.
    public static func set(bridge: String, enabled: Bool) throws {
        // Byte checks rather than `contains("..")`, which is _StringProcessing's (see berth-proxy).
        let dot = UInt8(ascii: "."), slash = UInt8(ascii: "/")
        guard !bridge.isEmpty, !bridge.utf8.contains(slash),
            !zip(bridge.utf8, bridge.utf8.dropFirst()).contains(where: { $0 == dot && $1 == dot })
        else {
            throw BerthError(.invalidArgument, "invalid bridge name \"\(bridge)\"")
        }
        let path = "/proc/sys/net/ipv4/conf/\(bridge)/route_localnet"
        guard FileIO.exists(path) else { throw BerthError(.notFound, "bridge \(bridge) not found (no \(path))") }
        try FileIO.writeControl(path, enabled ? "1" : "0")
    }
}
