import BerthNamespaces
import BerthNetLink
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct LinkTests {
    @Test func bridgeAndVethLifecycle() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let br = testName("br"), va = testName("va"), vb = testName("vb")
        try host.run {
            let nl = try NetlinkSession()
            let bridge = try nl.addBridge(named: br, mtu: 1400)
            #expect(bridge.kind == "bridge")
            #expect(bridge.mtu == 1400)
            try nl.setUp(br)
            #expect(try nl.link(named: br).isUp)

            try nl.addVethPair(VethPair(name: va, peerName: vb))
            try nl.setMaster(va, bridge: br)
            try nl.setUp(va)
            let a = try nl.link(named: va)
            #expect(a.kind == "veth")
            #expect(a.masterIndex == bridge.index)
            #expect(a.isUp)

            let mac = MACAddress("02:42:ac:11:00:07")!
            try nl.setMACAddress(vb, mac)
            try nl.setMTU(vb, 1300)
            let renamed = testName("vr")
            try nl.rename(vb, to: renamed)
            let b = try nl.link(named: renamed)
            #expect(b.macAddress == mac)
            #expect(b.mtu == 1300)
            #expect(try nl.linkIfPresent(named: vb) == nil)
            #expect(try nl.links().map(\.name).contains(renamed))

            try nl.removeMaster(va)
            #expect(try nl.link(named: va).masterIndex == nil)
            try nl.deleteLink(named: va)
            #expect(try nl.linkIfPresent(named: renamed) == nil)  // the peer went with it
            try nl.deleteLink(named: br)
        }
        #expect(!(try host.sh("ip -o link")).contains(br))
    }

    @Test func clearErrors() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let br = testName("br")
        try host.run {
            let nl = try NetlinkSession()
            try nl.addBridge(named: br)
            do {
                try nl.addBridge(named: br)
                Issue.record("second bridge created")
            } catch let e as BerthError {
                #expect(e.code == .alreadyExists)
                #expect(e.message == "bridge \(br) already exists")
            }
            do {
                _ = try nl.link(named: "veth1a2b3c")
                Issue.record("found a missing link")
            } catch let e as BerthError {
                #expect(e.code == .notFound)
                #expect(e.message == "no such link veth1a2b3c")
            }
            #expect(throws: BerthError.self) { try nl.deleteLink(named: "veth1a2b3c") }
            #expect(throws: BerthError.self) { try nl.addBridge(named: "this-name-is-too-long") }
            #expect(throws: BerthError.self) { try nl.setMTU(br, 10) }
            // A veth whose name is taken fails and leaves nothing behind.
            let peer = testName("vp")
            do {
                try nl.addVethPair(VethPair(name: br, peerName: peer))
                Issue.record("veth with a taken name created")
            } catch let e as BerthError {
                #expect(e.code == .alreadyExists)
                #expect(e.message.contains(br))
            }
            #expect(try nl.linkIfPresent(named: peer) == nil)
            try nl.deleteLink(named: br)
        }
    }

    @Test func vethPeerCreatedOrMovedIntoAnotherNamespace() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let c1 = try NetworkNamespace.create()
        defer { c1.close() }
        let c2 = try NetworkNamespace.create()
        defer { c2.close() }
        let v1 = testName("v"), v2 = testName("v"), tmp = testName("t")
        let mac = MACAddress("02:42:ac:11:00:09")!
        try host.run {
            let nl = try NetlinkSession()
            // Created directly in c1 as eth0 with its MAC (raised from inside c1 below).
            try nl.addVethPair(VethPair(name: v1, peerName: "eth0", peerMACAddress: mac, up: true,
                                        peerNamespace: .fd(c1.fd)))
            #expect(try nl.link(named: v1).isUp)
            // Created here, then moved into c2, renamed and raised in one request.
            try nl.addVethPair(VethPair(name: v2, peerName: tmp))
            try nl.moveLink(tmp, to: .fd(c2.fd), renamingTo: "eth0", up: true)
            #expect(try nl.linkIfPresent(named: tmp) == nil)
            #expect(try nl.linkIfPresent(named: "eth0") == nil)
            // Moving another link into c2 as eth0 collides.
            let v3 = testName("v"), t3 = testName("t")
            try nl.addVethPair(VethPair(name: v3, peerName: t3))
            defer { try? nl.deleteLink(named: v3) }
            do {
                try nl.moveLink(t3, to: .fd(c2.fd), renamingTo: "eth0", up: true)
                Issue.record("moved onto a taken name")
            } catch let e as BerthError {
                #expect(e.code == .alreadyExists)
            }
            // The kernel moves before it renames: the link is now in c2 under its old name, and
            // deleting our end (below) removes it there too.
            #expect(try nl.linkIfPresent(named: t3) == nil)
        }
        let e1 = try c1.run {
            let nl = try NetlinkSession()
            try nl.setUp("eth0")
            return try nl.link(named: "eth0")
        }
        #expect(e1.isUp)
        #expect(e1.macAddress == mac)
        let e2 = try c2.run { try NetlinkSession().link(named: "eth0") }
        #expect(e2.isUp)
        #expect(e2.kind == "veth")
    }

    @Test func moveByThreadID() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let target = try NetworkNamespace.create()
        defer { target.close() }
        // IFLA_NET_NS_PID takes a tid too: the namespace thread's id names that namespace.
        let tid: Int32 = try target.run {
            var buf = [CChar](repeating: 0, count: 64)
            let n = readlink("/proc/thread-self", &buf, 63)
            let text = String(decoding: buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return Int32(text.split(separator: "/").last.map(String.init) ?? "") ?? -1
        }
        // Never the main thread: that would name the machine's own namespace.
        try #require(tid > 0 && tid != getpid())
        let v = testName("v"), t = testName("t")
        try host.run {
            let nl = try NetlinkSession()
            try nl.addVethPair(VethPair(name: v, peerName: t))
            try nl.moveLink(t, to: .pid(tid), renamingTo: "eth1", up: true)
        }
        let moved = try target.run { try NetlinkSession().link(named: "eth1") }
        #expect(moved.isUp)
    }

    @Test func deviceGroupDeletedInOneRequest() throws {
        let host = try SandboxHost()
        defer { host.close() }
        try host.run {
            let nl = try NetlinkSession()
            let names = (0..<3).map { _ in testName("g") }
            for n in names {
                try nl.addVethPair(VethPair(name: n, peerName: n + "p"))
                try nl.setGroup(n, 77)
            }
            let keep = testName("k")
            try nl.addVethPair(VethPair(name: keep, peerName: keep + "p"))
            try nl.deleteLinks(inGroup: 77)
            let left = try nl.links().map(\.name)
            for n in names { #expect(!left.contains(n)) }
            #expect(left.contains(keep))
            try nl.deleteLinks(inGroup: 77)  // empty group: no error
            #expect(throws: BerthError.self) { try nl.deleteLinks(inGroup: 0) }
        }
    }

    @Test func hairpinThroughNetlink() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let br = testName("br"), v = testName("v")
        try host.run {
            let nl = try NetlinkSession()
            try nl.addBridge(named: br)
            try nl.addVethPair(VethPair(name: v, peerName: v + "p"))
            try nl.setMaster(v, bridge: br)
            try nl.setHairpin(v, true)
        }
        #expect(try host.sh("bridge -d link show dev \(v)").contains("hairpin on"))
        try host.run { try NetlinkSession().setHairpin(v, false) }
        #expect(try host.sh("bridge -d link show dev \(v)").contains("hairpin off"))
    }
}
