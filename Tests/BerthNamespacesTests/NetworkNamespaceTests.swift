import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct NetworkNamespaceTests {
    @Test func sandboxIsSeparateFromTheHost() throws {
        let host = try SandboxHost()
        defer { host.close() }
        let hostNS = try NetworkNamespace.open(path: "/proc/self/ns/net")
        defer { hostNS.close() }
        #expect(host.namespace.inode != hostNS.inode)
        let name = testName("bt")
        let links = try host.sh("ip link add \(name) type bridge && ip -o link show")
        #expect(links.contains(name))
        #expect(links.contains("lo:") && links.contains("UP"))
        // The dummy link must not be visible from the root namespace.
        let rootLinks = try Command.check("ip", ["-o", "link", "show"]).stdout
        #expect(!rootLinks.contains(name))
    }

    @Test func errorsPropagateAndClosedNamespaceRefuses() throws {
        let ns = try NetworkNamespace.create()
        #expect(throws: BerthError.self) {
            try ns.run { throw BerthError(.invalidArgument, "boom") }
        }
        ns.close()
        #expect(throws: BerthError.self) { try ns.run { 1 } }
    }

    @Test func joiningADeadPidFails() throws {
        do {
            _ = try NetworkNamespace.open(pid: 999_999_9)
            Issue.record("joined a dead pid")
        } catch let e as BerthError {
            #expect(e.code == .notFound)
            #expect(e.message.contains("9999999"))
        }
    }
}
