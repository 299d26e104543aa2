import BerthCgroups
import BerthSystem
import BerthTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

/// The `berth` binary next to the test bundle (built by `swift build --build-tests`).
func berthExecutable() -> String? {
    guard let exe = try? Engine.currentExecutable() else { return nil }
    var dir = exe
    while let slash = dir.lastIndex(of: "/"), !dir.isEmpty {
        dir = String(dir[..<slash])
        if FileIO.exists(dir + "/berth") && !FileIO.isDirectory(dir + "/berth") { return dir + "/berth" }
        if dir.hasSuffix("/.build") || dir.isEmpty { break }
    }
    return nil
}

@Suite struct CrashSafetyTests {
    @Test func killingTheMonitorOrTheForegroundCLILeavesNothingBehind() throws {
        let berth = try #require(berthExecutable(), "build the berth executable first")
        let f = try EngineFixture()
        defer { f.remove() }
        let flags = "--root \(f.root) --cgroup-parent \(f.cgroupParent)"

        // A detached container whose monitor is killed.
        let id = try f.host.sh("\(berth) \(flags) run -d -p 18090:80 busybox sleep 100").trimmingSpaces()
        let detached = try f.engine.store.load(try ContainerID(id))
        let monitor = try #require(detached.state.monitorPid)
        #expect(try f.host.sh("iptables-save -t nat").contains("18090"))

        // A foreground `berth run --rm` killed in the middle.
        try f.host.sh("\(berth) \(flags) run --rm --name fg -p 18091:80 busybox sleep 100 >/dev/null 2>&1 & echo $! > \(f.root)/cli.pid")
        let cli = try #require(Int32(try FileIO.read(f.root + "/cli.pid").trimmingSpaces()))
        var running = false
        for _ in 0..<400 {
            if let r = try? f.engine.store.find("fg"), r.state.isRunning { running = true; break }
            usleep(25_000)
        }
        #expect(running)
        #expect(kill(monitor, SIGKILL) == 0)
        #expect(kill(cli, SIGKILL) == 0)
        usleep(200_000)

        // The next command cleans up.
        let listing = try f.host.sh("\(berth) \(flags) ps -a")
        #expect(!listing.contains(" fg"))
        #expect((try? f.engine.store.find("fg")) == nil)
        let record = try f.engine.store.load(detached.id)
        #expect(record.state.status == .exited)
        #expect(!(try f.host.sh("ip -o link")).contains("veth"))
        #expect(try f.engine.network().leasedAddresses().isEmpty)
        #expect(try f.engine.portAllocator().allocations().isEmpty)
        let nat = try f.host.sh("iptables-save -t nat")
        #expect(!nat.contains("18090") && !nat.contains("18091"))
        #expect(!(try FileIO.read("/proc/self/mounts")).contains(f.root))
        #expect(try Cgroup.list(under: f.cgroupParent).isEmpty)
    }
}
