import BerthSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

/// `pause` / `unpause` with the cgroup freezer, and what a paused container refuses or allows.
@Suite struct PauseTests {
    private func logSize(_ f: EngineFixture, _ id: ContainerID) -> Int {
        (try? FileIO.readBytes(f.engine.logPath(id)).count) ?? 0
    }

    @Test func pauseFreezesAndUnpauseResumes() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let running = try f.run(["sh", "-c", "while :; do echo tick; sleep 0.02; done"], name: "ticker")
        defer { _ = try? f.engine.remove(running.id.full, force: true) }
        try f.waitForLog(running.id, containing: "tick")
        try f.engine.pause("ticker")
        var record = try f.engine.store.load(running.id)
        #expect(record.state.paused && record.state.isRunning)
        let doc = InspectDocument.make(record).compact()
        #expect(doc.contains("\"Status\":\"paused\",\"Running\":true,\"Paused\":true"), "\(doc)")
        #expect(HumanTime.status(record.state).hasSuffix(" (Paused)"))
        // Frozen: the log stops growing.
        usleep(100_000)
        let frozenAt = logSize(f, running.id)
        usleep(300_000)
        #expect(logSize(f, running.id) == frozenAt)
        #expect {
            try f.engine.pause("ticker")
        } throws: { ($0 as? BerthError)?.message == "Container \(running.id.full) is already paused" }
        #expect {
            try f.engine.exec("ticker", argv: ["true"], stdio: .null)
        } throws: { ($0 as? BerthError)?.message == "Container \(running.id.full) is paused, unpause the container before exec" }
        try f.engine.unpause("ticker")
        record = try f.engine.store.load(running.id)
        #expect(!record.state.paused)
        #expect(InspectDocument.make(record).compact().contains("\"Status\":\"running\",\"Running\":true,\"Paused\":false"))
        usleep(300_000)
        #expect(logSize(f, running.id) > frozenAt)
        #expect {
            try f.engine.unpause("ticker")
        } throws: { ($0 as? BerthError)?.message == "Container \(running.id.full) is not paused" }
    }

    /// `stop` and `kill` of a paused container thaw it so that the signal is delivered, as Docker does.
    @Test func stopAndKillReachAPausedContainer() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let polite = try f.run(["sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done"])
        defer { _ = try? f.engine.remove(polite.id.full, force: true) }
        try f.waitForLog(polite.id, containing: "ready")
        try f.engine.pause(polite.id.full)
        let started = monotonicNow()
        try f.engine.stop(polite.id.full, timeout: 5)
        #expect(monotonicNow() - started < 4, "SIGTERM was delivered, not the SIGKILL after the timeout")
        var state = try f.engine.store.load(polite.id).state
        #expect(state.status == .exited && state.exitCode == 7 && !state.paused)
        #expect {
            try f.engine.pause(polite.id.full)
        } throws: { ($0 as? BerthError)?.message == "Container \(polite.id.full) is not running" }

        let other = try f.run(["sleep", "60"])
        defer { _ = try? f.engine.remove(other.id.full, force: true) }
        try f.engine.pause(other.id.full)
        try f.engine.kill(other.id.full)
        #expect(other.wait() == 137)
        state = try f.engine.store.load(other.id).state
        #expect(state.status == .exited && !state.paused)
    }

    /// `rm -f` removes a paused container and leaves no frozen cgroup behind.
    @Test func forceRemoveOfAPausedContainer() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let running = try f.run(["sleep", "60"])
        try f.engine.pause(running.id.full)
        try f.engine.remove(running.id.full, force: true)
        #expect(throws: BerthError.self) { try f.engine.store.load(running.id) }
    }

    /// `berth pause` / `unpause` on a detached container (its monitor owns it), as in Docker.
    @Test func cliPauseUnpause() throws {
        let (f, _, b) = try cliFixture()
        defer { f.remove() }
        let id = try f.host.sh("\(b) run -d --name pz busybox sleep 60").trimmingSpaces()
        defer { _ = try? f.host.sh("\(b) rm -f pz") }
        #expect(try f.host.sh("\(b) pause pz") == "pz\n")
        #expect(try f.host.sh("\(b) inspect -f '{{.State.Status}} {{.State.Paused}}' pz") == "paused true\n")
        #expect(try f.host.sh("\(b) ps").contains("(Paused)"))
        let again = try f.host.run { try Command.run("/bin/sh", ["-c", "\(b) pause pz"]) }
        #expect(again.status == 1)
        #expect(again.stderr == "Error response from daemon: Container \(id) is already paused\n", "\(again.stderr)")
        #expect(try f.host.sh("\(b) unpause pz") == "pz\n")
        #expect(try f.host.sh("\(b) inspect -f '{{.State.Status}} {{.State.Paused}}' pz") == "running false\n")
        _ = try f.host.sh("\(b) pause pz")
        #expect(try f.host.sh("\(b) stop -t 1 pz") == "pz\n")
        #expect(try f.host.sh("\(b) inspect -f '{{.State.Status}} {{.State.Paused}}' pz") == "exited false\n")
    }
}
