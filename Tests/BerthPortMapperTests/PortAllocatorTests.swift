import BerthPortMapper
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A temporary state root removed by the caller.
func temporaryRoot() throws -> String { try FileIO.makeTemporaryDirectory(prefix: "berth-portmap-\(getpid())-") }

@Suite struct PortAllocatorTests {
    @Test func fixedPortsConflictPerAddressAndProtocol() throws {
        let root = try temporaryRoot()
        defer { try? FileIO.removeTree(root) }
        let a = try PortAllocator(stateRoot: root, ephemeral: EphemeralPorts(range: 40000...40010))
        let tcp = PortBinding(proto: .tcp, hostPorts: 8080...8080, containerPort: 80)
        #expect(try a.allocate(owner: "c1", [tcp]) == [8080])
        do {
            _ = try a.allocate(owner: "c2", [tcp])
            Issue.record("double allocation")
        } catch let e as BerthError {
            #expect(e.code == .alreadyExists)
            #expect(e.message == "Bind for 0.0.0.0:8080 failed: port is already allocated")
        }
        // Same port, other protocol: fine. A specific address conflicts with 0.0.0.0.
        #expect(try a.allocate(owner: "c2", [PortBinding(proto: .udp, hostPorts: 8080...8080, containerPort: 80)]) == [8080])
        #expect(throws: BerthError.self) {
            try a.allocate(owner: "c3", [PortBinding(proto: .tcp, hostIP: .loopback, hostPorts: 8080...8080, containerPort: 80)])
        }
        // Two specific addresses do not conflict with each other.
        let ip1 = PortBinding(proto: .tcp, hostIP: IPv4Address(10, 0, 0, 1), hostPorts: 9090...9090, containerPort: 80)
        let ip2 = PortBinding(proto: .tcp, hostIP: IPv4Address(10, 0, 0, 2), hostPorts: 9090...9090, containerPort: 80)
        #expect(try a.allocate(owner: "c3", [ip1, ip2]) == [9090, 9090])
        // All or nothing: a failing batch leaves nothing behind.
        let before = try a.allocations()
        #expect(throws: BerthError.self) {
            try a.allocate(owner: "c4", [PortBinding(proto: .tcp, hostPorts: 7070...7070, containerPort: 1), tcp])
        }
        #expect(try a.allocations() == before)
        #expect(try a.release(owner: "c1").count == 1)
        #expect(try a.allocate(owner: "c4", [tcp]) == [8080])
    }

    @Test func ephemeralPortsComeFromTheRangeMinusReserved() throws {
        let root = try temporaryRoot()
        defer { try? FileIO.removeTree(root) }
        let a = try PortAllocator(stateRoot: root, ephemeral: EphemeralPorts(range: 40000...40004, reserved: [40001]))
        let b = PortBinding(proto: .tcp, hostPorts: nil, containerPort: 80)
        let got = try a.allocate(owner: "c", [b, b, b, b])
        #expect(Set(got) == [40000, 40002, 40003, 40004])
        do {
            _ = try a.allocate(owner: "c", [b])
            Issue.record("range overflow")
        } catch let e as BerthError {
            #expect(e.code == .exhausted)
        }
        try a.release(owner: "c", proto: .tcp, hostIP: .any, port: 40002)
        #expect(try a.allocate(owner: "d", [b]) == [40002])
        // A host range takes its first free port.
        #expect(try a.allocate(owner: "e", [PortBinding(proto: .tcp, hostPorts: 40003...40010, containerPort: 1)]) == [40005])
    }

    @Test func rangeIsReadInsideTheNamespace() throws {
        let host = try SandboxHost()
        defer { host.close() }
        try host.sh("echo '41000 41009' > /proc/sys/net/ipv4/ip_local_port_range; echo 41003 > /proc/sys/net/ipv4/ip_local_reserved_ports")
        let e = try host.run { try EphemeralPorts.current() }
        #expect(e.range == 41000...41009)
        #expect(e.reserved == [41003])
    }

    @Test func concurrentPublishersGetDistinctPorts() throws {
        let root = try temporaryRoot()
        defer { try? FileIO.removeTree(root) }
        let results = Results()
        var threads: [pthread_t] = []
        for i in 0..<20 {
            let box = Unmanaged.passRetained(Job(root: root, owner: "c\(i)", results: results))
            var t = pthread_t()
            pthread_create(&t, nil, { arg in
                let job = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
                job.run()
                return nil
            }, box.toOpaque())
            threads.append(t)
        }
        for t in threads { pthread_join(t, nil) }
        let ports = results.all()
        #expect(ports.count == 40)
        #expect(Set(ports).count == 40)
        #expect(ports.allSatisfy { (45000...45999).contains($0) })
    }
}

/// One publisher thread: its own allocator object on the shared state root.
final class Job: @unchecked Sendable {
    let root: String, owner: String, results: Results
    init(root: String, owner: String, results: Results) { self.root = root; self.owner = owner; self.results = results }
    func run() {
        do {
            let a = try PortAllocator(stateRoot: root, ephemeral: EphemeralPorts(range: 45000...45999))
            let b = PortBinding(proto: .tcp, hostPorts: nil, containerPort: 80)
            results.add(try a.allocate(owner: owner, [b, b]))
        } catch {
            results.add([])
        }
    }
}

final class Results: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var ports: [UInt16] = []
    init() { pthread_mutex_init(&mutex, nil) }
    func add(_ p: [UInt16]) { pthread_mutex_lock(&mutex); ports += p; pthread_mutex_unlock(&mutex) }
    func all() -> [UInt16] { pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }; return ports }
}
