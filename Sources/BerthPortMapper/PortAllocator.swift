import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// One host port held by an owner (typically a container id).
public struct PortAllocation: Sendable, Hashable, Codable, CustomStringConvertible {
    public var owner: String
    public var proto: PortProtocol
    /// `0.0.0.0` holds the port on every address.
    public var hostIP: IPv4Address
    public var port: UInt16

    /// - Parameters:
    ///   - owner: Who holds the port.
    ///   - proto: The protocol.
    ///   - hostIP: The address (`0.0.0.0` for all).
    ///   - port: The host port.
    public init(owner: String, proto: PortProtocol, hostIP: IPv4Address, port: UInt16) {
        self.owner = owner
        self.proto = proto
        self.hostIP = hostIP
        self.port = port
    }

    public var description: String { "\(hostIP):\(port)/\(proto) (\(owner))" }

    /// Whether two allocations cannot coexist: same protocol and port, and the same address or
    /// one of them on every address.
    func conflicts(_ proto: PortProtocol, _ ip: IPv4Address, _ port: UInt16) -> Bool {
        self.proto == proto && self.port == port && (hostIP == ip || hostIP.isUnspecified || ip.isUnspecified)
    }
}

/// The kernel's ephemeral port range of a network namespace.
public struct EphemeralPorts: Sendable, Hashable {
    public var range: ClosedRange<UInt16>
    /// Ports the kernel keeps out of automatic assignment (`ip_local_reserved_ports`).
    public var reserved: Set<UInt16>

    /// - Parameters:
    ///   - range: The ephemeral range.
    ///   - reserved: Ports inside it never handed out.
    public init(range: ClosedRange<UInt16>, reserved: Set<UInt16> = []) {
        self.range = range
        self.reserved = reserved
    }

    /// Reads /proc/sys/net/ipv4/ip_local_port_range and ip_local_reserved_ports. procfs answers for
    /// the network namespace of the *calling thread*: call inside `NetworkNamespace.run { }`.
    public static func current() throws -> EphemeralPorts {
        let text = try FileIO.read("/proc/sys/net/ipv4/ip_local_port_range")
        let nums = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { UInt16($0) }
        guard nums.count == 2, nums[0] > 0, nums[0] <= nums[1] else {
            throw BerthError(.corrupt, "unexpected content in /proc/sys/net/ipv4/ip_local_port_range: \"\(text.trimmingSpaces())\"")
        }
        let reservedText = (try? FileIO.read("/proc/sys/net/ipv4/ip_local_reserved_ports")) ?? ""
        return EphemeralPorts(range: nums[0]...nums[1], reserved: try parseReserved(reservedText))
    }

    /// Parses the `8080,9000-9010` format of ip_local_reserved_ports.
    static func parseReserved(_ text: String) throws -> Set<UInt16> {
        var out = Set<UInt16>()
        for item in text.trimmingSpaces().split(separator: ",") where !item.isEmpty {
            let ends = item.split(separator: "-").compactMap { UInt16(String($0).trimmingSpaces()) }
            if ends.count == 1 { out.insert(ends[0]) } else if ends.count == 2, ends[0] <= ends[1] {
                for p in ends[0]...ends[1] { out.insert(p) }
            } else {
                throw BerthError(.corrupt, "unexpected entry \"\(item)\" in ip_local_reserved_ports")
            }
        }
        return out
    }
}

/// Hands out host ports: fixed ones checked for conflicts, ephemeral ones from the kernel's
/// ephemeral range, per host address and protocol (`0.0.0.0` conflicts with every address).
///
/// The allocations live in `<stateRoot>/ports.json`, read and rewritten (by rename) under an
/// `flock` on `<stateRoot>/ports.lock` for every operation, so several threads and processes
/// sharing a state root never hand out the same port. Ephemeral ports are taken round-robin after
/// the last one given, as Docker does, so a port just released is not reused at once.
public final class PortAllocator: Sendable {
    /// The directory holding ports.json and ports.lock.
    public let stateRoot: String
    /// The range ephemeral ports come from.
    public let ephemeral: EphemeralPorts

    private var statePath: String { stateRoot + "/ports.json" }
    private var lockPath: String { stateRoot + "/ports.lock" }

    /// - Parameters:
    ///   - stateRoot: A directory (created if missing) for the allocation file.
    ///   - ephemeral: The ephemeral range; read from the calling thread's netns when `nil`.
    public init(stateRoot: String, ephemeral: EphemeralPorts? = nil) throws {
        self.stateRoot = stateRoot
        self.ephemeral = try ephemeral ?? EphemeralPorts.current()
        try FileIO.makeDirectories(stateRoot)
    }

    /// Allocates host ports for `bindings`, all or nothing.
    /// - Parameters:
    ///   - owner: Who holds them (a container id); used by ``release(owner:)``.
    ///   - bindings: The bindings; a binding with one host port gets it or fails, with a range gets
    ///     its first free port, with none gets an ephemeral port.
    ///   - avoiding: Ports a binding with a choice (a range, or ephemeral) must not get, although
    ///     they are not allocated: ports found in use by another socket.
    /// - Returns: The host port of each binding, in order.
    /// - Throws: ``BerthError`` `.alreadyExists` (`Bind for 0.0.0.0:8080 failed: port is already
    ///   allocated`) or `.exhausted`; nothing is allocated then.
    public func allocate(owner: String, _ bindings: [PortBinding], avoiding: [PortAllocation] = []) throws -> [UInt16] {
        try update { state in
            var result: [UInt16] = []
            var added: [PortAllocation] = []
            func taken(_ p: PortProtocol, _ ip: IPv4Address, _ port: UInt16) -> Bool {
                state.allocations.contains { $0.conflicts(p, ip, port) } || added.contains { $0.conflicts(p, ip, port) }
            }
            for b in bindings {
                let port: UInt16
                func avoided(_ port: UInt16) -> Bool { avoiding.contains { $0.conflicts(b.proto, b.hostIP, port) } }
                if let range = b.hostPorts {
                    // A single port is the caller's demand: only a choice skips avoided ports.
                    guard let free = range.first(where: { !taken(b.proto, b.hostIP, $0) && (range.count == 1 || !avoided($0)) }) else {
                        let shown = range.count == 1 ? "\(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)"
                        throw BerthError(.alreadyExists, "Bind for \(b.hostIP):\(shown) failed: port is already allocated")
                    }
                    port = free
                } else {
                    let r = ephemeral.range
                    let count = Int(r.upperBound) - Int(r.lowerBound) + 1
                    let last = state.cursor[b.proto] ?? r.upperBound
                    var start = Int(last) + 1 - Int(r.lowerBound)
                    if start < 0 || start >= count { start = 0 }
                    var found: UInt16? = nil
                    for k in 0..<count {
                        let candidate = UInt16(Int(r.lowerBound) + (start + k) % count)
                        if !ephemeral.reserved.contains(candidate) && !taken(b.proto, b.hostIP, candidate) && !avoided(candidate) {
                            found = candidate
                            break
                        }
                    }
                    guard let found else {
                        throw BerthError(.exhausted, "no free \(b.proto) port on \(b.hostIP) in the ephemeral range \(r.lowerBound)-\(r.upperBound): all ports are allocated")
                    }
                    state.cursor[b.proto] = found
                    port = found
                }
                added.append(PortAllocation(owner: owner, proto: b.proto, hostIP: b.hostIP, port: port))
                result.append(port)
            }
            state.allocations += added
            return result
        }
    }

    /// Releases one port held by `owner`. Releasing a port that is not held does nothing.
    public func release(owner: String, proto: PortProtocol, hostIP: IPv4Address, port: UInt16) throws {
        try update { state in
            if let i = state.allocations.firstIndex(where: {
                $0.owner == owner && $0.proto == proto && $0.hostIP == hostIP && $0.port == port
            }) { state.allocations.remove(at: i) }
        }
    }

    /// Releases every port held by `owner` and returns them.
    @discardableResult
    public func release(owner: String) throws -> [PortAllocation] {
        try update { state in
            let mine = state.allocations.filter { $0.owner == owner }
            state.allocations.removeAll { $0.owner == owner }
            return mine
        }
    }

    /// Every current allocation.
    public func allocations() throws -> [PortAllocation] {
        try FileLock.withLock(lockPath) { try load().allocations }
    }

    // MARK: state file

    struct State {
        var allocations: [PortAllocation] = []
        var cursor: [PortProtocol: UInt16] = [:]
    }

    private func update<T>(_ body: (inout State) throws -> T) throws -> T {
        try FileLock.withLock(lockPath) {
            var state = try load()
            let result = try body(&state)
            // Not fsynced: after a reboot no port is published, and the engine releases stale owners.
            try FileIO.writeAtomically(statePath, PortAllocator.encode(state), durable: false)
            return result
        }
    }

    private func load() throws -> State {
        guard FileIO.exists(statePath) else { return State() }
        return try PortAllocator.decode(try FileIO.read(statePath), path: statePath)
    }

    static func encode(_ s: State) -> String {
        let allocs = s.allocations.map { a -> JSONValue in
            .object([("owner", .string(a.owner)), ("proto", .string(a.proto.rawValue)),
                     ("hostIP", .string(a.hostIP.description)), ("port", .number(Double(a.port)))])
        }
        let cursor = s.cursor.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key.rawValue, JSONValue.number(Double($0.value))) }
        return JSONValue.object([("allocations", .array(allocs)), ("cursor", .object(cursor))]).serialized() + "\n"
    }

    static func decode(_ text: String, path: String) throws -> State {
        let bad = BerthError(.corrupt, "port allocation file \(path) is malformed")
        guard let doc = JSONValue.parse(text), let list = doc["allocations"]?.array else { throw bad }
        var s = State()
        for item in list {
            guard let owner = item["owner"]?.string, let p = item["proto"]?.string.flatMap(PortProtocol.init(rawValue:)),
                let ip = item["hostIP"]?.string.flatMap(IPv4Address.init), let port = item["port"]?.int,
                (1...65535).contains(port) else { throw bad }
            s.allocations.append(PortAllocation(owner: owner, proto: p, hostIP: ip, port: UInt16(port)))
        }
        if case .object(let pairs)? = doc["cursor"] {
            for (k, v) in pairs {
                if let p = PortProtocol(rawValue: k), let n = v.int, (1...65535).contains(n) { s.cursor[p] = UInt16(n) }
            }
        }
        return s
    }
}
