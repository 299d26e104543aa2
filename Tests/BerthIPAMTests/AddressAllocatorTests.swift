import BerthIPAM
import BerthSystem
import Dispatch
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct AddressAllocatorTests {
    private func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
    private func tempRoot() throws -> String { try FileIO.makeTemporaryDirectory(prefix: "berth-ipam-") }

    @Test func bitmapIsSequentialAndWraps() {
        var b = AddressBitmap(count: 130)
        #expect(b.insertNext() == 0)
        #expect(b.insertNext() == 1)
        b.remove(0)
        #expect(b.insertNext() == 2)  // a released index is not reused at once
        for _ in 3..<130 { _ = b.insertNext() }
        #expect(b.insertNext() == 0)  // wrapped around
        #expect(b.insertNext() == nil)
        #expect(b.ranges == [0...129])
        b.remove(64)
        b.remove(70)
        #expect(b.ranges == [0...63, 65...69, 71...129])
    }

    @Test func sequentialAllocationAndPersistence() throws {
        let root = try tempRoot()
        defer { try? FileIO.removeTree(root) }
        let subnet = try NetworkSubnet(subnet: IPv4CIDR("172.17.0.0/16")!)
        let a = try AddressAllocator(root: root, network: "bridge", subnet: subnet)
        #expect(try a.allocate() == ip("172.17.0.2"))
        #expect(try a.allocate() == ip("172.17.0.3"))
        #expect(try a.allocate() == ip("172.17.0.4"))
        #expect(try a.release(ip("172.17.0.3")))
        #expect(!(try a.release(ip("172.17.0.3"))))

        // A "restarted" process sees the live addresses and the release.
        let b = try AddressAllocator.open(root: root, network: "bridge")
        #expect(b.subnet == subnet)
        #expect(try b.allocatedAddresses() == [ip("172.17.0.2"), ip("172.17.0.4")])
        #expect(try b.allocate() == ip("172.17.0.5"))
        #expect(try b.allocate(ip("172.17.0.3")) == ip("172.17.0.3"))
        #expect(try b.isAllocated(ip("172.17.0.3")))

        // The same name with another subnet is refused.
        #expect(throws: BerthError.self) {
            _ = try AddressAllocator(root: root, network: "bridge", subnet: try NetworkSubnet(subnet: IPv4CIDR("10.0.0.0/24")!))
        }
        #expect(try AddressAllocator.networks(root: root) == ["bridge": subnet])
        try b.destroy()
        #expect(throws: BerthError.self) { _ = try AddressAllocator.open(root: root, network: "bridge") }
    }

    @Test func requestedAddressErrors() throws {
        let root = try tempRoot()
        defer { try? FileIO.removeTree(root) }
        let a = try AddressAllocator(root: root, network: "n1", subnet: try NetworkSubnet(bip: "192.168.11.1/24"))
        func code(_ body: () throws -> Void) -> BerthError.Code? {
            do { try body(); return nil } catch let e as BerthError { return e.code } catch { return nil }
        }
        #expect(code { _ = try a.allocate(ip("10.0.0.5")) } == .invalidArgument)
        #expect(code { _ = try a.allocate(ip("192.168.11.1")) } == .invalidArgument)  // gateway
        #expect(code { _ = try a.allocate(ip("192.168.11.0")) } == .invalidArgument)
        #expect(code { _ = try a.allocate(ip("192.168.11.255")) } == .invalidArgument)
        #expect(try a.allocate(ip("192.168.11.9")) == ip("192.168.11.9"))
        #expect(code { _ = try a.allocate(ip("192.168.11.9")) } == .alreadyExists)
        do {
            _ = try a.allocate(ip("10.0.0.5"))
        } catch let e as BerthError {
            #expect(e.message == "address 10.0.0.5 is outside subnet 192.168.11.0/24 of network n1")
        }
        #expect(try a.allocatedAddresses() == [ip("192.168.11.9")])
        #expect(code { _ = try AddressAllocator(root: root, network: "../x", subnet: a.subnet) } == .invalidArgument)
    }

    @Test func exhaustionLeavesNoLease() throws {
        let root = try tempRoot()
        defer { try? FileIO.removeTree(root) }
        let a = try AddressAllocator(root: root, network: "tiny", subnet: try NetworkSubnet(subnet: IPv4CIDR("10.9.9.0/30")!))
        #expect(try a.allocate() == ip("10.9.9.2"))
        do {
            _ = try a.allocate()
            Issue.record("allocated from a full /30")
        } catch let e as BerthError {
            #expect(e.code == .exhausted)
            #expect(e.message.contains("10.9.9.0/30"))
        }
        #expect(throws: BerthError.self) { _ = try a.allocate(count: 1) }
        #expect(try a.allocatedAddresses() == [ip("10.9.9.2")])
        try a.release(ip("10.9.9.2"))
        #expect(try a.allocate() == ip("10.9.9.2"))
    }

    @Test func twoAllocatorsOnOneRootNeverCollide() throws {
        let root = try tempRoot()
        defer { try? FileIO.removeTree(root) }
        let subnet = try NetworkSubnet(subnet: IPv4CIDR("10.50.0.0/22")!)
        let x = try AddressAllocator(root: root, network: "shared", subnet: subnet)
        let y = try AddressAllocator(root: root, network: "shared", subnet: subnet)
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 2) { k in
            let alloc = k == 0 ? x : y
            var mine: [IPv4Address] = []
            for _ in 0..<150 { if let a = try? alloc.allocate() { mine.append(a) } }
            // Release half and take them again, racing with the other side.
            _ = try? alloc.release(Array(mine.prefix(50)))
            for _ in 0..<50 { if let a = try? alloc.allocate() { mine.append(a) } }
            results.add(Array(mine.dropFirst(50)))
        }
        let all = results.all
        #expect(all.count == 300)
        #expect(Set(all).count == 300)
        #expect(Set(try x.allocatedAddresses()) == Set(all))
    }

    @Test func aWholeSlash16InOneBatch() throws {
        let root = try tempRoot()
        defer { try? FileIO.removeTree(root) }
        let a = try AddressAllocator(root: root, network: "big", subnet: try NetworkSubnet(subnet: IPv4CIDR("10.60.0.0/16")!))
        let got = try a.allocate(count: 65533)
        #expect(got.count == 65533)
        #expect(Set(got).count == 65533)
        #expect(throws: BerthError.self) { _ = try a.allocate() }
        #expect(try a.release(got) == 65533)
        #expect(try a.allocatedAddresses().isEmpty)
        let stateSize = try FileIO.readBytes(root + "/big.json").count
        #expect(stateSize < 200)
    }

    @Test func createChoosesAroundRoutesAndOtherNetworks() throws {
        let root = try tempRoot()
        defer { try? FileIO.removeTree(root) }
        let routes = [IPv4CIDR("172.17.0.0/16")!]
        let one = try AddressAllocator.create(root: root, network: "one", hostRoutes: routes)
        let two = try AddressAllocator.create(root: root, network: "two", hostRoutes: routes)
        #expect(one.subnet.subnet == IPv4CIDR("172.18.0.0/16")!)
        #expect(two.subnet.subnet == IPv4CIDR("172.19.0.0/16")!)
        #expect(try AddressAllocator.create(root: root, network: "one", hostRoutes: []).subnet == one.subnet)
    }

    @Test func corruptStateIsReported() throws {
        let root = try tempRoot()
        defer { try? FileIO.removeTree(root) }
        try FileIO.writeAtomically(root + "/bad.json", "{not json")
        do {
            _ = try AddressAllocator.open(root: root, network: "bad")
            Issue.record("opened corrupt state")
        } catch let e as BerthError {
            #expect(e.code == .corrupt)
        }
    }
}

/// Collects results from concurrent workers.
final class Results: @unchecked Sendable {
    private let lock = NSLockLike()
    private var items: [IPv4Address] = []
    func add(_ xs: [IPv4Address]) { lock.locked { items += xs } }
    var all: [IPv4Address] { lock.locked { items } }
}

final class NSLockLike: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return body()
    }
}
