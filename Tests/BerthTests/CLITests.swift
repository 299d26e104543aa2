import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

/// The `berth` binary itself, run inside the sandbox with the daemon-style flags first.
@Suite struct CLITests {
    @Test func runPortPsInspectLogsStopRm() throws {
        let (f, berth, b) = try cliFixture()
        defer { f.remove() }
        let id = try f.host.sh("\(b) run -d --name web -p 18085:8080 --expose 9000 busybox sh -c 'echo hello-log; sleep 100'")
            .trimmingSpaces()
        #expect(id.count == 64)
        #expect(try f.host.sh("\(b) port web") == "8080/tcp -> 0.0.0.0:18085\n")
        #expect(try f.host.sh("\(b) port web 8080") == "0.0.0.0:18085\n")
        let ps = try f.host.sh("\(b) ps")
        #expect(ps.hasPrefix("CONTAINER ID   IMAGE     COMMAND"))
        #expect(ps.contains("0.0.0.0:18085->8080/tcp") && ps.contains("9000/tcp") && ps.contains(" web\n"))
        #expect(try f.host.sh("\(b) ps -q") == String(id.prefix(12)) + "\n")
        let ip = try f.host.sh("\(b) inspect -f '{{.NetworkSettings.IPAddress}}' web").trimmingSpaces()
        #expect(IPv4Address(ip) != nil)
        #expect(try f.host.sh("\(b) inspect -f '{{.State.Status}}' web") == "running\n")
        for _ in 0..<100 where !((try? f.host.sh("\(b) logs web")) ?? "").contains("hello-log") { usleep(20_000) }
        #expect(try f.host.sh("\(b) logs web") == "hello-log\n")
        #expect(try f.host.sh("\(b) stop -t 0 web") == "web\n")
        #expect(try f.host.sh("\(b) ps -a").contains("Exited (137)"))
        // Bad input: a clear message and Docker's status 125.
        let bad = try f.host.run { try Command.run(berth, ["--root", f.root, "run", "-p", "a:b:c:d", "busybox", "true"]) }
        #expect(bad.status == 125 && bad.stderr.contains("invalid port spec"))
        #expect(try f.host.sh("\(b) rm web") == "web\n")
        #expect(try f.host.sh("\(b) ps -aq").isEmpty)
    }
}
