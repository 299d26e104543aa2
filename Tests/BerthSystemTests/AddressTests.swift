@testable import BerthSystem
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct AddressTests {
    @Test func parsesAndPrintsIPv4() throws {
        let a = try IPv4Address.parse("172.17.0.2")
        #expect(a.description == "172.17.0.2")
        #expect(a == IPv4Address(172, 17, 0, 2))
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "a.b.c.d", "01234.1.1.1", "1..2.3"] {
            #expect(IPv4Address(bad) == nil, "\(bad) should not parse")
        }
    }

    @Test func cidrMathAndOverlap() throws {
        let c = try IPv4CIDR(parsing: "172.17.0.1/16")
        #expect(c.network.description == "172.17.0.0/16")
        #expect(c.broadcastAddress.description == "172.17.255.255")
        #expect(c.contains(IPv4Address(172, 17, 200, 3)))
        #expect(!c.contains(IPv4Address(172, 18, 0, 1)))
        #expect(c.overlaps(try IPv4CIDR(parsing: "172.16.0.0/12")))
        #expect(!c.overlaps(try IPv4CIDR(parsing: "172.18.0.0/16")))
        #expect(c.size == 65536)
    }

    @Test(arguments: ["172.17.0.0", "172.17.0.0/33", "1.2.3.4/-1", "x/8", "10.0.0.0/8/8", "10.0.0.0/ 8"])
    func badCIDRsNameTheText(_ text: String) {
        do {
            _ = try IPv4CIDR(parsing: text)
            Issue.record("\(text) parsed")
        } catch let e as BerthError {
            #expect(e.code == .invalidArgument)
            #expect(e.message.contains(text))
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func dockerStyleMAC() {
        #expect(MACAddress(dockerStyleFor: IPv4Address(172, 17, 0, 2)).description == "02:42:ac:11:00:02")
        #expect(MACAddress("02:42:AC:11:00:02")?.description == "02:42:ac:11:00:02")
        #expect(MACAddress("02:42:ac:11:00") == nil)
    }

    @Test func commandCapturesOutputAndStatus() throws {
        let r = try Command.run("/bin/sh", ["-c", "cat; echo err >&2; exit 3"], input: "hello")
        #expect(r.stdout == "hello")
        #expect(r.stderr == "err\n")
        #expect(r.status == 3)
        #expect(throws: BerthError.self) { try Command.check("/bin/sh", ["-c", "exit 1"]) }
        #expect(throws: BerthError.self) { try Command.run("/nonexistent/berth-nope", []) }
    }

    /// Writes into a pipe nobody reads take EPIPE instead of killing the (test) process with
    /// SIGPIPE: a command's input it does not read, a Berth thread's write, a caller's own.
    @Test func brokenPipesAreErrorsNotSignals() throws {
        let unread = String(repeating: "x", count: 1 << 20)  // more than a pipe holds
        #expect(try Command.run("/bin/true", [], input: unread).status == 0)
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        close(fds[0])
        let result = Mutex<Int32>(0)
        let thread = try PosixThread.start("the test writer") { [w = fds[1]] in
            var byte: UInt8 = 1
            let n = write(w, &byte, 1)
            result.withLock { $0 = n < 0 ? errno : 0 }
        }
        pthread_join(thread, nil)
        #expect(result.withLock { $0 } == EPIPE)
        let caller = BrokenPipe.suppressed { () -> Int32 in
            var byte: UInt8 = 1
            return write(fds[1], &byte, 1) < 0 ? errno : 0
        }
        #expect(caller == EPIPE)
        var pending = sigset_t()
        sigpending(&pending)
        #expect(sigismember(&pending, SIGPIPE) == 0, "the suppressed SIGPIPE is not left pending")
        close(fds[1])
    }

    @Test func idsAndNames() throws {
        let id = ContainerID()
        #expect(id.full.count == 64 && id.short.count == 12)
        #expect(try ContainerID(id.full) == id)
        #expect(throws: BerthError.self) { try ContainerID("xyz") }
        #expect(uniqueName("bt").count <= 15)
    }
}

@Test func errorDescriptionAddsTheUnderlyingErrorUnlessTheMessageHasIt() {
    let inner = BerthError(.notFound, "no such file")
    #expect(BerthError(.system, "open /x", underlying: inner).description == "open /x (no such file)")
    #expect(BerthError(.system, "open /x: no such file", underlying: inner).description == "open /x: no such file")
    #expect("abc".containsBytes(of: "") && "abc".containsBytes(of: "bc") && !"abc".containsBytes(of: "abcd"))
    #expect("café".containsBytes(of: "é") && !"abc".containsBytes(of: "cb"))
}
