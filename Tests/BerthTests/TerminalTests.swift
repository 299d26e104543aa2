import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

/// `-t`: the container's stdio is a pty it controls; the output reaches the log through the master.
@Suite struct EngineTerminalTests {
    @Test func containerWithATerminal() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        var config = ContainerConfig(image: "busybox", cmd: ["sh", "-c",
            "[ -t 0 ] && [ -t 1 ] && echo tty=yes; echo sid=$(cut -d' ' -f6 /proc/1/stat); echo term=$TERM"])
        config.tty = true
        let record = try f.engine.create(config, name: nil)
        let running = try f.engine.start(record.id, stdio: .pseudoTerminal(interactive: false, foreground: false))
        #expect(running.wait() == 0)
        let log = try FileIO.read(f.engine.logPath(record.id))
        #expect(log.contains("tty=yes\r\n"), "\(log)")
        #expect(log.contains("sid=1\r\n"), "\(log)")
        #expect(log.contains("term=xterm\r\n"), "\(log)")
        try f.engine.remove(record.id.full)
    }

    @Test func containerWithoutATerminalHasNone() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let out = try f.output(["sh", "-c", "if [ -t 0 ] || [ -t 1 ]; then echo tty; else echo notty; fi"])
        #expect(out == "notty\n")
    }

    /// `berth run -it` with a pty as the CLI's own terminal: what the test types reaches the
    /// container's shell, its output comes back, the exit status is the container's.
    @Test func cliRunInteractiveTerminal() throws {
        let berth = try #require(berthExecutable(), "build the berth executable first")
        let f = try EngineFixture()
        defer { f.remove() }
        let pty = try PseudoTerminal.open(size: WindowSize(rows: 24, columns: 80))
        defer { close(pty.master) }
        let args = [berth, "--root", f.root, "--cgroup-parent", f.cgroupParent, "run", "--rm", "-it", "busybox", "sh"]
        let pid: pid_t = try f.host.run {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            for fd in Int32(0)...2 { posix_spawn_file_actions_adddup2(&actions, pty.slave, fd) }
            var pid: pid_t = 0
            let rc = withCStrings(args) { argv in
                withCStrings(currentEnvironment().map { "\($0.key)=\($0.value)" }) { envp in
                    posix_spawn(&pid, berth, &actions, nil, argv, envp)
                }
            }
            guard rc == 0 else { throw BerthError(.system, "spawn \(berth): \(strerrorString(rc))", errno: rc) }
            return pid
        }
        pty.closeSlave()
        let input = Array("[ -t 0 ] && echo is-$((20+3)); exit 5\n".utf8)
        #expect(write(pty.master, input, input.count) == input.count)
        let output = readAll(pty.master)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect((status >> 8) & 0xff == 5, "\(output)")
        #expect(output.contains("is-23"), "\(output)")
    }

    /// `run -d -t`: the monitor holds the master and logs what comes out of it; `exec -t` gives
    /// the command a terminal too.
    @Test func cliDetachedTerminalAndExec() throws {
        let berth = try #require(berthExecutable(), "build the berth executable first")
        let f = try EngineFixture()
        defer { f.remove() }
        let b = "\(berth) --root \(f.root) --cgroup-parent \(f.cgroupParent)"
        _ = try f.host.sh("\(b) run -d -t --name tt busybox sh -c '[ -t 1 ] && echo detached-tty; sleep 100'")
        defer { _ = try? f.host.sh("\(b) stop -t 0 tt; \(b) rm tt") }
        for _ in 0..<100 where !((try? f.host.sh("\(b) logs tt")) ?? "").contains("detached-tty") { usleep(20_000) }
        #expect(try f.host.sh("\(b) logs tt").contains("detached-tty\r\n"))
        let exec = try f.host.sh("\(b) exec -t tt sh -c '[ -t 0 ] && [ -t 1 ] && echo exec-tty=$TERM'")
        #expect(exec.contains("exec-tty=xterm\r\n"), "\(exec)")
        #expect(try f.host.sh("\(b) exec tt sh -c '[ -t 1 ] || echo exec-notty'") == "exec-notty\n")
    }

    private func readAll(_ master: Int32) -> String {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(master, &buf, buf.count)
            if n > 0 { out += buf[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        return String(decoding: out, as: UTF8.self)
    }
}
