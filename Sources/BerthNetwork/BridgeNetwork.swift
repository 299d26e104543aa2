import BerthIPAM
import BerthNamespaces
import BerthNetLink
import BerthPortMapper
import BerthSystem

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A Docker-style bridge network: a bridge with the gateway address, an address allocator, the
/// firewall rules (MASQUERADE, FORWARD, icc), and per container a veth pair whose container end is
/// `eth0` with its address, a Docker-style MAC and a default route via the bridge.
///
/// Host-side work (the bridge, the veth host ends, sysctls, firewall batches) happens in the
/// network namespace of the **calling thread**: call from a thread in the host namespace, or inside
/// `NetworkNamespace.run { }` of a sandbox playing the host. Container-side work runs inside the
/// container's `NetworkNamespace`.
///
/// ```swift
/// let net = try BridgeNetwork.setUp(BridgeConfiguration(bridge: "berth0"), stateRoot: "/var/lib/berth/network")
/// let ns = try NetworkNamespace.create()
/// let endpoint = try net.attach(ns)          // eth0 172.17.0.2/16, default via 172.17.0.1
/// // … run the container in ns …
/// try net.detach(endpoint)
/// ```
///
/// Every multi-step operation records its steps and undoes them in reverse when a later one fails,
/// so a failed attach leaves no veth, lease or rule behind.
public final class BridgeNetwork: Sendable {
    /// The settings it was set up with.
    public let configuration: BridgeConfiguration
    /// The bridge name.
    public var bridge: String { configuration.bridge }
    /// The subnet and gateway (the bridge's address).
    public let subnet: NetworkSubnet
    /// The bridge's interface index in the host namespace.
    public let bridgeIndex: Int32
    /// True when the bridge existed before Berth and is not Berth's: teardown never deletes it.
    public let adopted: Bool
    /// The state directory (address leases under `ipam/`, bridge ownership under `bridges/`).
    public let stateRoot: String
    /// The firewall backend in use.
    public let firewall: any Firewall
    let allocator: AddressAllocator
    let ownership: Ownership
    let reaper: LinkReaper

    /// What Berth created for the bridge, persisted so that a restarted process still knows.
    struct Ownership: Codable, Equatable {
        var createdBridge: Bool
        var addedAddress: Bool
    }

    private init(configuration: BridgeConfiguration, subnet: NetworkSubnet, bridgeIndex: Int32, stateRoot: String,
                 firewall: any Firewall, allocator: AddressAllocator, ownership: Ownership, reaper: LinkReaper) {
        self.configuration = configuration
        self.subnet = subnet
        self.bridgeIndex = bridgeIndex
        self.stateRoot = stateRoot
        self.firewall = firewall
        self.allocator = allocator
        self.ownership = ownership
        self.reaper = reaper
        self.adopted = !ownership.createdBridge
    }

    deinit {
        // Finishes queued deletions and ends the reaper thread (it holds the reaper while it runs).
        reaper.stop()
    }

    // MARK: - Setting up

    /// Creates the bridge, or adopts an existing one, and installs what the network needs.
    ///
    /// An existing bridge that carries an IPv4 address keeps it and its subnet is the network's
    /// (`cbr0` with 10.10.0.1/24). Otherwise the subnet comes from `bip`, `subnet`, earlier state
    /// under `stateRoot`, or the first pool subnet overlapping no host route and no nameserver.
    /// - Parameters:
    ///   - configuration: The settings.
    ///   - stateRoot: Where leases and ownership are kept (e.g. `/var/lib/berth/network`).
    ///   - firewall: A backend to use instead of `makeFirewall(configuration.firewall)`.
    /// - Throws: `.invalidArgument` for a link of that name that is not a bridge, a bip differing
    ///   from the adopted bridge's address, or a bip overlapping a host route; `.exhausted` when no
    ///   pool subnet is free. Nothing is left behind on failure.
    public static func setUp(_ configuration: BridgeConfiguration, stateRoot: String,
                             firewall: (any Firewall)? = nil) throws -> BridgeNetwork {
        let name = configuration.bridge
        let fw = try firewall ?? makeFirewall(configuration.firewall)
        let nl = try NetlinkSession()
        var log = RollbackLog()
        do {
            let ipamRoot = stateRoot + "/ipam", bridgesRoot = stateRoot + "/bridges"
            try FileIO.makeDirectories(bridgesRoot, mode: 0o700)
            let ownershipPath = "\(bridgesRoot)/\(name)"
            let previous = try readOwnership(ownershipPath)

            let existing = try nl.linkIfPresent(named: name)
            if let existing, existing.kind != "bridge" {
                throw BerthError(.invalidArgument, "link \(name) exists and is a \(existing.kind ?? "device") link, not a bridge")
            }
            let existingAddress: IPv4CIDR? = try existing.flatMap { _ in
                try nl.addresses(of: name).lazy.compactMap { if case .ipv4(let c) = $0 { return c } else { return nil } }.first
            }
            // Read only when a subnet has to be checked or chosen (not when adopting an addressed bridge).
            func otherRoutes() throws -> [IPv4CIDR] {
                try nl.routes().filter { $0.interfaceIndex != existing?.index && !$0.isDefault }.map(\.destination)
            }

            // The subnet.
            var requested: NetworkSubnet? = nil
            if let bip = configuration.bip {
                requested = try NetworkSubnet(bip: bip)
            } else if let s = configuration.subnet {
                requested = try NetworkSubnet(subnet: s)
            }
            let chosen: NetworkSubnet
            let allocator: AddressAllocator
            if let existingAddress {
                let adoptedSubnet = try NetworkSubnet(subnet: existingAddress.network, gateway: existingAddress.address)
                if let requested, requested != adoptedSubnet {
                    throw BerthError(.invalidArgument,
                        "bridge \(name) already has address \(existingAddress); it differs from the requested \(configuration.bip.map { "bip \($0)" } ?? "subnet \(requested.subnet)")")
                }
                chosen = adoptedSubnet
                allocator = try openAllocator(ipamRoot, name, chosen, &log)
            } else if let requested {
                try requested.checkNoOverlap(hostRoutes: try otherRoutes(), nameservers: [],
                                             taken: try otherNetworks(ipamRoot, except: name))
                chosen = requested
                allocator = try openAllocator(ipamRoot, name, chosen, &log)
            } else if let state = try? AddressAllocator.open(root: ipamRoot, network: name) {
                chosen = state.subnet
                allocator = state
            } else {
                allocator = try AddressAllocator.create(root: ipamRoot, network: name, pools: configuration.pools,
                                                        hostRoutes: try otherRoutes(),
                                                        nameservers: configuration.nameservers ?? ResolvConf.nameservers())
                log.record("address state of \(name)") { try allocator.destroy() }
                chosen = allocator.subnet
            }

            // The bridge and its address.
            var ownership = previous ?? Ownership(createdBridge: false, addedAddress: false)
            let bridge: Link
            if let existing {
                bridge = existing
            } else {
                bridge = try nl.addBridge(named: name, mtu: configuration.mtu)
                log.record("bridge \(name)") { try nl.deleteLink(named: name) }
                ownership.createdBridge = true
            }
            if existingAddress == nil {
                try nl.addAddress(.ipv4(chosen.gatewayCIDR), toIndex: bridge.index, name: name)
                if existing != nil {
                    log.record("address \(chosen.gatewayCIDR) on \(name)") { try nl.deleteAddress(.ipv4(chosen.gatewayCIDR), from: name) }
                    ownership.addedAddress = true
                }
            }
            if !bridge.isUp { try nl.setUp(index: bridge.index, true, name: name) }

            if configuration.ipForward { try NetworkSysctl.setIPForwarding(true) }
            let rules = BridgeRules(bridge: name, subnet: chosen.subnet, icc: configuration.icc,
                                    masquerade: configuration.masquerade, hairpinNAT: configuration.hairpinNAT)
            try fw.addBridgeRules(rules)
            log.record("firewall rules of \(name)") { try fw.removeBridgeRules(rules) }

            if ownership != previous {
                try FileIO.writeAtomically(ownershipPath, Array(try JSONEncoder().encode(ownership)))
            }
            log.commit()
            return BridgeNetwork(configuration: configuration, subnet: chosen, bridgeIndex: bridge.index, stateRoot: stateRoot,
                                 firewall: fw, allocator: allocator, ownership: ownership,
                                 reaper: LinkReaper(session: try NetlinkSession()))
        } catch {
            let failures = log.unwind()
            throw withUndoFailures(error, failures)
        }
    }

    private static func openAllocator(_ root: String, _ name: String, _ subnet: NetworkSubnet,
                                      _ log: inout RollbackLog) throws -> AddressAllocator {
        if let old = try? AddressAllocator.open(root: root, network: name), old.subnet != subnet {
            // The subnet changed (a new bip): stale state may go only when no container holds an address.
            guard try old.allocatedAddresses().isEmpty else {
                throw BerthError(.invalidState,
                    "network \(name) still has containers on \(old.subnet.subnet); detach them before changing its subnet to \(subnet.subnet)")
            }
            try old.destroy()
        }
        let existed = (try? AddressAllocator.open(root: root, network: name)) != nil
        let a = try AddressAllocator(root: root, network: name, subnet: subnet)
        if !existed { log.record("address state of \(name)") { try a.destroy() } }
        return a
    }

    private static func otherNetworks(_ root: String, except name: String) throws -> [IPv4CIDR] {
        try AddressAllocator.networks(root: root).filter { $0.key != name }.map(\.value.subnet)
    }

    private static func readOwnership(_ path: String) throws -> Ownership? {
        guard FileIO.exists(path) else { return nil }
        return try? JSONDecoder().decode(Ownership.self, from: Data(try FileIO.readBytes(path)))
    }

    // MARK: - Containers

    /// Connects a container's network namespace to the bridge.
    ///
    /// One request creates the veth pair with its host end (`veth` + 7 hex digits) on the bridge and
    /// up, and its container end already inside `namespace`, named `interfaceName`, with the MAC
    /// derived from the address; inside the namespace the end is raised, addressed and given the
    /// default route via the bridge, and `lo` is raised.
    /// - Parameters:
    ///   - namespace: The container's network namespace.
    ///   - address: A specific address (`--ip`); the next free one when `nil`.
    ///   - interfaceName: The name inside the container.
    ///   - hostInterfaceName: The host end's name; a random `vethXXXXXXX` when `nil`.
    /// - Returns: The endpoint to pass to ``detach(_:)``.
    /// - Throws: `.invalidArgument` for an address outside the subnet, `.alreadyExists` for a taken
    ///   address or link name, `.exhausted` for a full subnet. Nothing is left behind on failure.
    public func attach(_ namespace: NetworkNamespace, address: IPv4Address? = nil, interfaceName: String = "eth0",
                       hostInterfaceName: String? = nil) throws -> Endpoint {
        try attach(namespace, address: address, interfaceName: interfaceName, hostInterfaceName: hostInterfaceName, observe: nil)
    }

    /// Leases an address for a container that ``attach(_:leased:interfaceName:hostInterfaceName:)``
    /// will connect: the caller can then publish ports and write down the endpoint while the veth is
    /// made. ``releaseLease(_:)`` gives it back if the attach does not happen.
    /// - Parameter address: A specific address (`--ip`); the next free one when `nil`.
    /// - Returns: The endpoint the attach will make, with a host end named `hostInterfaceName`.
    /// - Throws: `.invalidArgument` for an address outside the subnet, `.alreadyExists` for a taken
    ///   address, `.exhausted` for a full subnet.
    public func lease(_ address: IPv4Address? = nil, interfaceName: String = "eth0", hostInterfaceName: String) throws -> Endpoint {
        let ip = try allocator.allocate(address)
        return Endpoint(bridge: bridge, hostInterface: hostInterfaceName, containerInterface: interfaceName,
                        address: try IPv4CIDR(address: ip, prefixLength: subnet.subnet.prefixLength),
                        gateway: subnet.gateway, macAddress: MACAddress(dockerStyleFor: ip))
    }

    /// Releases a lease from ``lease(_:interfaceName:hostInterfaceName:)`` whose attach failed or
    /// never happened.
    public func releaseLease(_ endpoint: Endpoint) throws {
        _ = try allocator.release(endpoint.address.address)
    }

    /// Makes the veth pair of an endpoint from ``lease(_:interfaceName:hostInterfaceName:)``, as
    /// ``attach(_:address:interfaceName:hostInterfaceName:)`` does; the lease stays the caller's
    /// (it is not released when this fails).
    /// - Parameters:
    ///   - namespace: The container's network namespace.
    ///   - endpoint: The leased endpoint.
    public func attach(_ namespace: NetworkNamespace, leased endpoint: Endpoint) throws {
        _ = try connect(namespace, ip: endpoint.address.address, interfaceName: endpoint.containerInterface,
                        hostInterfaceName: endpoint.hostInterface, clock: StepClock(nil))
    }

    /// ``attach(_:address:interfaceName:hostInterfaceName:)`` reporting each step's duration (for berth-bench).
    package func attach(_ namespace: NetworkNamespace, address: IPv4Address?, interfaceName: String,
                        hostInterfaceName: String?, observe: ((String, Double) -> Void)?) throws -> Endpoint {
        var clock = StepClock(observe)
        let ip = try allocator.allocate(address)
        clock.lap("lease")
        do {
            return try connect(namespace, ip: ip, interfaceName: interfaceName, hostInterfaceName: hostInterfaceName, clock: clock)
        } catch {
            var failures: [String] = []
            do { _ = try allocator.release(ip) } catch let undo { failures.append("lease \(ip): \(undo)") }
            throw BridgeNetwork.withUndoFailures(error, failures)
        }
    }

    /// The veth pair and the container side of an attach, for an address already leased.
    private func connect(_ namespace: NetworkNamespace, ip: IPv4Address, interfaceName: String,
                         hostInterfaceName: String?, clock: StepClock) throws -> Endpoint {
        var clock = clock
        var log = RollbackLog()
        do {
            let cidr = try IPv4CIDR(address: ip, prefixLength: subnet.subnet.prefixLength)
            let mac = MACAddress(dockerStyleFor: ip)

            let nl = try NetlinkSession()
            var hostName = hostInterfaceName ?? BridgeNetwork.randomVethName()
            var attempts = 0
            while true {
                do {
                    try nl.addVethPair(VethPair(name: hostName, peerName: interfaceName, mtu: configuration.mtu,
                                                peerMACAddress: mac, masterIndex: bridgeIndex, up: true,
                                                peerNamespace: .fd(namespace.fd)))
                    break
                } catch let e as BerthError where e.code == .alreadyExists && hostInterfaceName == nil
                    && e.message.contains(hostName) && attempts < 3 {
                    attempts += 1
                    hostName = BridgeNetwork.randomVethName()
                }
            }
            let created = hostName
            clock.lap("veth")
            log.record("veth \(created)") { try nl.deleteLink(named: created) }
            if configuration.hairpinNAT { try nl.setHairpin(created, true) }

            let gateway = subnet.gateway
            try namespace.run {
                let inner = try NetlinkSession()
                let index = try inner.link(named: interfaceName).index
                try inner.setUp(index: index, true, name: interfaceName)
                try inner.addAddress(.ipv4(cidr), toIndex: index, name: interfaceName)
                try inner.addRoute(.defaultRoute(via: gateway, interfaceIndex: index))
                try inner.setUp(index: 1, true, name: "lo")
            }
            clock.lap("container side")
            log.commit()
            return Endpoint(bridge: bridge, hostInterface: created, containerInterface: interfaceName, address: cidr,
                            gateway: gateway, macAddress: mac)
        } catch {
            let failures = log.unwind()
            throw BridgeNetwork.withUndoFailures(error, failures)
        }
    }

    /// How ``detach(_:deletion:)`` gets rid of the veth pair.
    public enum VethDeletion: Sendable {
        /// Take the host end down now (a down bridge port forwards nothing from then on) and
        /// delete the pair on a background thread, batching deletions that pile up. Deleting a veth
        /// costs 16–35 ms of kernel time; this keeps it off the caller's path. The address is
        /// released at once: the pair is dead to the bridge. ``waitForPendingDeletions()`` waits.
        case background
        /// Delete the pair before returning.
        case synchronous
    }

    /// Disconnects a container: the veth pair goes (unless the container's namespace already took
    /// it away) and the address is released. Keeps going after a failure and reports all.
    /// - Parameters:
    ///   - endpoint: What ``attach(_:address:interfaceName:hostInterfaceName:)`` returned.
    ///   - deletion: Whether the kernel's veth deletion is waited for (default: in the background).
    public func detach(_ endpoint: Endpoint, deletion: VethDeletion = .background) throws {
        try detach(endpoint, deletion: deletion, observe: nil)
    }

    /// ``detach(_:deletion:)`` reporting each step's duration (for berth-bench).
    package func detach(_ endpoint: Endpoint, deletion: VethDeletion, observe: ((String, Double) -> Void)?) throws {
        var clock = StepClock(observe)
        var problems: [String] = []
        do {
            let nl = try NetlinkSession()
            switch deletion {
            case .synchronous:
                try nl.deleteLink(named: endpoint.hostInterface)
                clock.lap("delete veth")
            case .background:
                let index = try nl.link(named: endpoint.hostInterface).index
                try nl.setUp(index: index, false, name: endpoint.hostInterface)
                clock.lap("host end down")
                try reaper.delete(endpoint.hostInterface)
                clock.lap("queue deletion")
            }
        } catch let e as BerthError where e.code == .notFound {
            // Already gone with the container's namespace.
        } catch {
            problems.append("\(error)")
        }
        do { try allocator.release(endpoint.address.address) } catch { problems.append("\(error)") }
        clock.lap("release")
        if !problems.isEmpty {
            throw BerthError(.system, "detach \(endpoint.hostInterface) from \(bridge): \(problems.joined(separator: "; "))")
        }
    }

    /// Waits until every veth queued by a background ``detach(_:deletion:)`` has been deleted.
    /// - Throws: The failures of those deletions, if any.
    public func waitForPendingDeletions() throws {
        let failures = reaper.drain()
        if !failures.isEmpty {
            throw BerthError(.system, "background veth deletion on \(bridge) failed: \(failures.joined(separator: "; "))")
        }
    }

    /// The addresses currently leased to containers.
    public func leasedAddresses() throws -> [IPv4Address] { try allocator.allocatedAddresses() }

    // MARK: - Tearing down

    /// Removes what ``setUp(_:stateRoot:firewall:)`` installed: the firewall rules, and the bridge if
    /// Berth created it (an adopted bridge stays, minus an address Berth added).
    /// - Parameter removeState: Also forget the address state (leases) and ownership record.
    public func tearDown(removeState: Bool = true) throws {
        var problems: [String] = reaper.drain()
        reaper.stop()
        do {
            try firewall.removeBridgeRules(BridgeRules(bridge: bridge, subnet: subnet.subnet, icc: configuration.icc,
                                                       masquerade: configuration.masquerade,
                                                       hairpinNAT: configuration.hairpinNAT))
        } catch { problems.append("\(error)") }
        do {
            let nl = try NetlinkSession()
            if ownership.createdBridge {
                do { try nl.deleteLink(named: bridge) } catch let e as BerthError where e.code == .notFound {}
            } else if ownership.addedAddress {
                do { try nl.deleteAddress(.ipv4(subnet.gatewayCIDR), from: bridge) } catch let e as BerthError where e.code == .notFound {}
            }
        } catch { problems.append("\(error)") }
        if removeState {
            do { try allocator.destroy() } catch { problems.append("\(error)") }
            unlink("\(stateRoot)/bridges/\(bridge)")
        }
        if !problems.isEmpty {
            throw BerthError(.system, "tear down bridge network \(bridge): \(problems.joined(separator: "; "))")
        }
    }

    // MARK: - Helpers

    /// `veth` followed by 7 random hex digits, like Docker's host-side names.
    public static func randomVethName() -> String {
        "veth" + String(UInt32.random(in: 0..<(1 << 28)), radix: 16).leftPadded(to: 7)
    }

    static func withUndoFailures(_ error: any Error, _ failures: [String]) -> any Error {
        guard !failures.isEmpty else { return error }
        if var e = error as? BerthError {
            e.message += " (and rollback failed: \(failures.joined(separator: "; ")))"
            return e
        }
        return BerthError(.system, "\(error) (and rollback failed: \(failures.joined(separator: "; ")))")
    }
}

/// Measures consecutive steps when an observer is given.
struct StepClock {
    private let observe: ((String, Double) -> Void)?
    private var last: Double

    init(_ observe: ((String, Double) -> Void)?) {
        self.observe = observe
        last = observe == nil ? 0 : StepClock.now()
    }

    mutating func lap(_ step: String) {
        guard let observe else { return }
        let t = StepClock.now()
        observe(step, (t - last) * 1000)
        last = t
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
