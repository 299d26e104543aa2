import BerthSystem

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The persistent address allocator of one network.
///
/// State lives in `<root>/<network>.json` (subnet, gateway, the sequential cursor and the allocated
/// addresses as ranges), replaced by rename and guarded by an exclusive `flock` on
/// `<root>/<network>.lock`. Every call reads the state, changes it and writes it back under the lock,
/// so two processes (or two allocators in one process) sharing a root never hand out the same
/// address, and a restart neither reuses a live address nor forgets a release.
///
/// The network, gateway and broadcast addresses are never handed out. Allocation is sequential
/// like Docker's (`.2`, `.3`, …, continuing after the last address given, wrapping around).
/// Bulk work should use the batch calls (``allocate(count:)``, ``release(_:)-([IPv4Address])``):
/// one read and one write for the whole batch.
public final class AddressAllocator: Sendable {
    /// The state directory.
    public let root: String
    /// The network's name (the state file's name).
    public let network: String
    /// The network's subnet and gateway.
    public let subnet: NetworkSubnet

    private var statePath: String { "\(root)/\(network).json" }
    private var lockPath: String { "\(root)/\(network).lock" }

    /// Opens the allocator of `network`, creating its state with `subnet` when there is none.
    /// - Throws: `.invalidState` when the network exists with another subnet; `.invalidArgument` for a bad name.
    public init(root: String, network: String, subnet: NetworkSubnet) throws {
        try AddressAllocator.validate(network)
        self.root = root
        self.network = network
        self.subnet = subnet
        try FileIO.makeDirectories(root, mode: 0o700)
        try FileLock.withLock(lockPath) {
            if let existing = try loadState() {
                guard existing.subnet == subnet else {
                    throw BerthError(.invalidState,
                        "network \(network) already has subnet \(existing.subnet.subnet) gateway \(existing.subnet.gateway), not \(subnet.subnet) gateway \(subnet.gateway)")
                }
            } else {
                try save(State(subnet: subnet))
            }
        }
    }

    /// Opens the allocator of an existing network.
    /// - Throws: `.notFound` when `root` has no state for `network`.
    public static func open(root: String, network: String) throws -> AddressAllocator {
        try validate(network)
        guard let s = try readState(path: "\(root)/\(network).json") else {
            throw BerthError(.notFound, "no address state for network \(network) in \(root)")
        }
        return try AddressAllocator(root: root, network: network, subnet: s.subnet)
    }

    /// Creates a network whose subnet is chosen from `pools`, avoiding the host's routes and
    /// nameservers and the subnets of the other networks under `root` — all under one lock, so two
    /// processes creating networks at once get different subnets.
    /// - Parameters:
    ///   - root: The state directory.
    ///   - network: The new network's name.
    ///   - pools: Candidate pools (Docker's defaults).
    ///   - hostRoutes: Destinations of the host's on-link routes.
    ///   - nameservers: The host's nameservers.
    public static func create(root: String, network: String, pools: [AddressPool] = AddressPool.dockerDefaults,
                              hostRoutes: [IPv4CIDR], nameservers: [IPv4Address] = []) throws -> AddressAllocator {
        try validate(network)
        try FileIO.makeDirectories(root, mode: 0o700)
        return try FileLock.withLock("\(root)/.networks.lock") {
            if let s = try readState(path: "\(root)/\(network).json") {
                return try AddressAllocator(root: root, network: network, subnet: s.subnet)
            }
            let taken = try networks(root: root).values.map(\.subnet)
            let chosen = try AddressPool.chooseSubnet(from: pools, hostRoutes: hostRoutes, nameservers: nameservers, taken: taken)
            return try AddressAllocator(root: root, network: network, subnet: try NetworkSubnet(subnet: chosen))
        }
    }

    /// The networks that have state under `root`, by name.
    public static func networks(root: String) throws -> [String: NetworkSubnet] {
        guard let dir = opendir(root) else { return [:] }
        defer { closedir(dir) }
        var result: [String: NetworkSubnet] = [:]
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard name.hasSuffix(".json"), !name.hasPrefix(".") else { continue }
            let net = String(name.dropLast(5))
            if let s = try? readState(path: "\(root)/\(name)") { result[net] = s.subnet }
        }
        return result
    }

    // MARK: - Allocation

    /// Allocates the next free address, or `requested`.
    /// - Throws: `.exhausted` when the subnet is full; for `requested`: `.invalidArgument` when it is
    ///   outside the subnet or reserved, `.alreadyExists` when it is taken.
    public func allocate(_ requested: IPv4Address? = nil) throws -> IPv4Address {
        try update { state in
            if let requested {
                let i = try reservableIndex(requested)
                guard state.bitmap.insert(i) else {
                    throw BerthError(.alreadyExists, "address \(requested) is already allocated in network \(network)")
                }
                return requested
            }
            guard let i = state.bitmap.insertNext() else { throw exhausted() }
            return address(i)
        }
    }

    /// Allocates `count` addresses in one transaction; all or nothing.
    /// - Throws: `.exhausted` (allocating none) when fewer than `count` are free.
    public func allocate(count: Int) throws -> [IPv4Address] {
        guard count >= 0 else { throw BerthError(.invalidArgument, "cannot allocate \(count) addresses") }
        return try update { state in
            guard state.bitmap.count - state.bitmap.setCount >= count else { throw exhausted() }
            var out: [IPv4Address] = []
            out.reserveCapacity(count)
            for _ in 0..<count {
                guard let i = state.bitmap.insertNext() else { throw exhausted() }
                out.append(address(i))
            }
            return out
        }
    }

    /// Releases an address. Releasing an address that is not allocated is a no-op that returns false.
    @discardableResult
    public func release(_ address: IPv4Address) throws -> Bool {
        try release([address]) == 1
    }

    /// Releases many addresses in one transaction.
    /// - Returns: How many were allocated (and are now free).
    @discardableResult
    public func release(_ addresses: [IPv4Address]) throws -> Int {
        try update { state in
            var n = 0
            for a in addresses {
                guard let i = try? reservableIndex(a) else { continue }
                if state.bitmap.remove(i) { n += 1 }
            }
            return n
        }
    }

    /// The addresses currently allocated, in order.
    public func allocatedAddresses() throws -> [IPv4Address] {
        try FileLock.withLock(lockPath) {
            guard let state = try loadState() else { return [] }
            return state.bitmap.ranges.flatMap { $0.map(address) }.filter { !isReserved($0) }
        }
    }

    /// Whether `address` is allocated.
    public func isAllocated(_ address: IPv4Address) throws -> Bool {
        guard let i = try? reservableIndex(address) else { return false }
        return try FileLock.withLock(lockPath) { try loadState()?.bitmap.contains(i) ?? false }
    }

    /// Deletes the network's state (its addresses are forgotten).
    public func destroy() throws {
        try FileLock.withLock(lockPath) {
            if unlink(statePath) != 0 && errno != ENOENT { throw BerthError.system("remove \(statePath)") }
        }
        unlink(lockPath)
    }

    // MARK: - Internals

    private var hostCount: Int { Int(subnet.subnet.size) }

    private func address(_ index: Int) -> IPv4Address { IPv4Address(subnet.subnet.networkAddress.value + UInt32(index)) }

    private func isReserved(_ a: IPv4Address) -> Bool {
        a == subnet.subnet.networkAddress || a == subnet.subnet.broadcastAddress || a == subnet.gateway
    }

    private func reservableIndex(_ a: IPv4Address) throws -> Int {
        guard subnet.subnet.contains(a) else {
            throw BerthError(.invalidArgument, "address \(a) is outside subnet \(subnet.subnet) of network \(network)")
        }
        if a == subnet.gateway { throw BerthError(.invalidArgument, "address \(a) is the gateway of network \(network)") }
        if isReserved(a) {
            throw BerthError(.invalidArgument, "address \(a) is the \(a == subnet.subnet.networkAddress ? "network" : "broadcast") address of \(subnet.subnet)")
        }
        return Int(a.value - subnet.subnet.networkAddress.value)
    }

    private func exhausted() -> BerthError {
        BerthError(.exhausted, "no free address left in \(subnet.subnet) (network \(network))")
    }

    struct State {
        var subnet: NetworkSubnet
        var bitmap: AddressBitmap

        init(subnet: NetworkSubnet) {
            self.subnet = subnet
            bitmap = AddressBitmap(count: Int(subnet.subnet.size))
            bitmap.insert(0)
            bitmap.insert(bitmap.count - 1)
            let gw = Int(subnet.gateway.value - subnet.subnet.networkAddress.value)
            bitmap.insert(gw)
            bitmap.cursor = gw == 1 ? 1 : 0  // Docker hands out .2 first after a .1 gateway
        }
    }

    /// The on-disk document.
    struct Document: Codable {
        var subnet: IPv4CIDR
        var gateway: IPv4Address
        var cursor: Int
        /// Allocated container addresses as `A` or `A-B` ranges (reserved addresses not included).
        var allocated: [String]
    }

    private func update<T>(_ body: (inout State) throws -> T) throws -> T {
        try FileLock.withLock(lockPath) {
            guard var state = try loadState() else {
                throw BerthError(.notFound, "network \(network) has no address state in \(root) (was it removed?)")
            }
            let before = state.bitmap
            let result = try body(&state)
            if state.bitmap != before { try save(state) }
            return result
        }
    }

    private func loadState() throws -> State? {
        try AddressAllocator.readState(path: statePath)
    }

    static func readState(path: String) throws -> State? {
        let bytes: [UInt8]
        do { bytes = try FileIO.readBytes(path) } catch let e as BerthError where e.errno == ENOENT { return nil }
        let doc: Document
        do { doc = try JSONDecoder().decode(Document.self, from: Data(bytes)) } catch {
            throw BerthError(.corrupt, "address state \(path) is not valid", underlying: error)
        }
        let subnet = try NetworkSubnet(subnet: doc.subnet, gateway: doc.gateway)
        var state = State(subnet: subnet)
        let base = subnet.subnet.networkAddress.value
        for r in doc.allocated {
            let parts = r.split(separator: "-")
            guard (1...2).contains(parts.count), let lo = IPv4Address(String(parts[0])),
                let hi = IPv4Address(String(parts[parts.count - 1])), lo <= hi,
                subnet.subnet.contains(lo), subnet.subnet.contains(hi)
            else { throw BerthError(.corrupt, "address state \(path) has a bad range \"\(r)\"") }
            for v in lo.value...hi.value { state.bitmap.insert(Int(v - base)) }
        }
        state.bitmap.cursor = min(max(doc.cursor, -1), state.bitmap.count - 1)
        return state
    }

    private func save(_ state: State) throws {
        let base = state.subnet.subnet.networkAddress.value
        var allocated: [String] = []
        for r in state.bitmap.ranges {
            // Reserved addresses are implied; cut them out of the ranges.
            var start: Int? = nil
            for i in r {
                if isReserved(IPv4Address(base + UInt32(i))) {
                    if let s = start { allocated.append(text(s, i - 1, base)); start = nil }
                } else if start == nil { start = i }
            }
            if let s = start { allocated.append(text(s, r.upperBound, base)) }
        }
        let doc = Document(subnet: state.subnet.subnet, gateway: state.subnet.gateway, cursor: state.bitmap.cursor, allocated: allocated)
        let data = try JSONEncoder().encode(doc)
        try AddressAllocator.writeState(statePath, Array(data))
    }

    private func text(_ lo: Int, _ hi: Int, _ base: UInt32) -> String {
        lo == hi ? "\(IPv4Address(base + UInt32(lo)))" : "\(IPv4Address(base + UInt32(lo)))-\(IPv4Address(base + UInt32(hi)))"
    }

    /// Writes the state document. A document of at most one page replaces the old one in place with a
    /// single `pwrite` at offset 0, padded with spaces (JSON whitespace) to the old length: readers
    /// hold the lock, and a process killed around that one-page write leaves either document whole.
    /// Renaming over the file instead costs ~2 ms on ext4, whose replace-by-rename heuristic starts
    /// writeback of the new file; larger documents still go through ``replaceFile(_:_:)``.
    static func writeState(_ path: String, _ bytes: [UInt8]) throws {
        let page = 4096
        if bytes.count <= page {
            let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
            if fd >= 0 {
                defer { Glibc.close(fd) }
                var st = stat()
                if fstat(fd, &st) == 0, Int(st.st_size) <= page {
                    var padded = bytes
                    if padded.count < Int(st.st_size) {
                        padded += [UInt8](repeating: UInt8(ascii: " "), count: Int(st.st_size) - padded.count)
                    }
                    let n = padded.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                    if n == padded.count { return }
                }
            }
        }
        try replaceFile(path, bytes)
    }

    /// Temp file + rename, without fsync: the state must survive a process restart (the page cache
    /// has it), and after a machine crash every container and veth is gone anyway. An fsync per
    /// allocation would cost milliseconds on ext4.
    static func replaceFile(_ path: String, _ bytes: [UInt8]) throws {
        let tmp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BerthError.system("create \(tmp)") }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                Glibc.close(fd)
                unlink(tmp)
                throw BerthError.system("write \(tmp)", errno: e)
            }
            off += n
        }
        Glibc.close(fd)
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw BerthError.system("rename \(tmp) to \(path)", errno: e)
        }
    }

    static func validate(_ name: String) throws {
        guard !name.isEmpty, name.count <= 128, !name.hasPrefix("."),
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") })
        else {
            throw BerthError(.invalidArgument, "invalid network name \"\(name)\": use letters, digits, '-', '_' and '.'")
        }
    }
}
