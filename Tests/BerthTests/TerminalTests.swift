import BerthCgroups
import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

/// `-t`: the container's stdio is a pty of its own devpts that it controls; the output reaches
/// the log through the master. Tests that open container terminals in this process hold
/// ``exclusiveContainerTerminals(_:)``: some count the masters the process holds.
@Suite struct EngineTerminalTests {
    @Test func containerWithATerminal() throws {
        try exclusiveContainerTerminals {
            let f = try EngineFixture()
            defer { f.remove() }
            var config = ContainerConfig(image: "busybox", cmd: ["sh", "-c",
                "[ -t 0 ] && [ -t 1 ] && echo tty=yes; echo name=$(tty); [ -c \"$(tty)\" ] && echo exists; "
                + "read -r pid comm state ppid pgrp sid ttynr tpgid rest </proc/1/stat; echo sid=$sid tpgid=$tpgid ttynr=$ttynr; "
                + "echo term=$TERM"])
            config.tty = true
            let record = try f.engine.create(config, name: nil)
            let before = containerTerminalMasters()
            let running = try f.engine.start(record.id, stdio: .pseudoTerminal(interactive: false, foreground: false))
            #expect(running.wait() == 0)
            // The relay closed the master when the container side hung up.
            #expect(containerTerminalMasters() == before)
            let log = try FileIO.read(f.engine.logPath(record.id))
            #expect(log.contains("tty=yes\r\n"), "\(log)")
            #expect(log.contains("name=/dev/pts/0\r\n"), "\(log)")
            #expect(log.contains("exists\r\n"), "\(log)")
            #expect(log.contains("sid=1 tpgid=1 ttynr=34816\r\n"), "\(log)")
            #expect(log.contains("term=xterm\r\n"), "\(log)")
            try f.engine.remove(record.id.full)
        }
    }

    /// `RunningContainer.resizeTerminal` (SIGWINCH of `run -t`): TIOCSWINSZ on the master, the
    /// container's foreground group gets SIGWINCH and sees the new size.
    @Test func resizeReachesTheContainer() throws {
        try exclusiveContainerTerminals {
            let f = try EngineFixture()
            defer { f.remove() }
            var config = ContainerConfig(image: "busybox", cmd: ["sh", "-c",
                "trap 'echo size=$(stty size); exit 0' WINCH; echo ready; while :; do sleep 0.1; done"])
            config.tty = true
            let record = try f.engine.create(config, name: nil)
            let before = containerTerminalMasters()
            let running = try f.engine.start(record.id, stdio: .pseudoTerminal(interactive: false, foreground: false))
            #expect(containerTerminalMasters() == before + 1)
            try f.waitForLog(record.id, containing: "ready")
            running.resizeTerminal(WindowSize(rows: 50, columns: 132))
            #expect(running.wait() == 0)
            #expect(containerTerminalMasters() == before)
            let log = try FileIO.read(f.engine.logPath(record.id))
            #expect(log.contains("size=50 132\r\n"), "\(log)")
            try f.engine.remove(record.id.full)
        }
    }

    /// A start that fails after the terminal came over (no such program) undoes everything and
    /// leaves no master open.
    @Test func failedStartWithATerminalRollsBack() throws {
        try exclusiveContainerTerminals {
            let f = try EngineFixture()
            defer { f.remove() }
            var config = ContainerConfig(image: "busybox", cmd: ["/no/such/program"])
            config.tty = true
            let record = try f.engine.create(config, name: nil)
            let before = containerTerminalMasters()
            #expect(throws: BerthError.self) {
                _ = try f.engine.start(record.id, stdio: .pseudoTerminal(interactive: false, foreground: false))
            }
            #expect(containerTerminalMasters() == before)
            #expect(try Cgroup.list(under: f.cgroupParent).isEmpty)
            #expect(!(try FileIO.read("/proc/self/mounts")).contains(record.id.full))
            #expect(!FileIO.exists(f.engine.runtimePath(record.id)))
            #expect(try f.engine.store.load(record.id).state.status != .running)
            #expect(try f.engine.portAllocator().allocations().isEmpty)
            #expect(try f.engine.network().leasedAddresses().isEmpty)
        }
    }

    /// `Engine.exec` with a terminal: opened through the container's /dev/ptmx after joining its
    /// mount namespace (the container's own terminal is /dev/pts/0, so this one is 1).
    @Test func execWithATerminal() throws {
        try exclusiveContainerTerminals {
            let f = try EngineFixture()
            defer { f.remove() }
            var config = ContainerConfig(image: "busybox", cmd: ["sleep", "100"])
            config.tty = true
            let record = try f.engine.create(config, name: nil)
            let running = try f.engine.start(record.id, stdio: .pseudoTerminal(interactive: false, foreground: false))
            defer { try? running.kill(SIGKILL); running.wait() }
            let before = containerTerminalMasters()
            var terminal: PseudoTerminal?
            var output = ""
            let code = try f.engine.exec(record.id.full, argv: ["sh", "-c", "[ -t 0 ] && echo name=$(tty) sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$; stty size; read x; echo got=$x"],
                                         stdio: .containerTerminal(size: WindowSize(rows: 20, columns: 70))) { process in
                terminal = process.takeTerminal()
                #expect(containerTerminalMasters() == before + 1)
                if let terminal {
                    let input = Array("typed\n".utf8)
                    #expect(write(terminal.master, input, input.count) == input.count)
                    output = readUntilHangup(terminal.master)
                }
            }
            let pty = try #require(terminal)
            close(pty.master)
            #expect(containerTerminalMasters() == before)
            #expect(code == 0, "\(output)")
            // The line discipline echoes the typed input first.
            let line = output.split(separator: "\r\n").first { $0.hasPrefix("name=") }
            let fields = line.map { $0.split(separator: " ").map(String.init) } ?? []
            #expect(fields.first == "name=/dev/pts/1", "\(output)")
            // The exec'd shell leads its own session.
            #expect(fields.count == 3 && fields[1] == "sid=" + fields[2].dropFirst(4), "\(output)")
            #expect(output.contains("20 70\r\n"), "\(output)")
            #expect(output.contains("got=typed\r\n"), "\(output)")
        }
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
        let pid: pid_t = try f.host.run { try spawnOnTerminal(args, pty) }
        let (status, output, typed) = converse(over: pty, with: pid, typing: "[ -t 0 ] && echo is-$((20+3)) $(tty) $(stty size); exit 5\n")
        #expect(typed)
        #expect((status >> 8) & 0xff == 5, "\(output)")
        #expect(output.contains("is-23 /dev/pts/0 24 80"), "\(output)")
    }

    /// `-t` without `-i` (stdin is not a terminal here): the container still has one; `-i`
    /// without `-t`: stdin is piped through, no terminal.
    @Test func cliTerminalWithoutInputAndInputWithoutTerminal() throws {
        let (f, _, b) = try cliFixture()
        defer { f.remove() }
        let t = try f.host.sh("echo ignored | \(b) run --rm -t busybox sh -c '[ -t 0 ] && echo in=$(tty)'")
        #expect(t.contains("in=/dev/pts/0\r\n"), "\(t)")
        let i = try f.host.sh("echo piped | \(b) run --rm -i busybox sh -c '[ -t 0 ] || cat'")
        #expect(i == "piped\n", "\(i)")
    }

    /// `exec -it` on a pty: typed input reaches the command, whose terminal has our size and
    /// follows it on SIGWINCH; the exit status is the command's.
    @Test func cliExecInteractiveTerminalFollowsResize() throws {
        let (f, berth, b) = try cliFixture()
        defer { f.remove() }
        _ = try f.host.sh("\(b) run -d --name tx busybox sleep 100")
        defer { _ = try? f.host.sh("\(b) rm -f tx") }
        let pty = try PseudoTerminal.open(size: WindowSize(rows: 24, columns: 80))
        defer { close(pty.master) }
        let args = [berth, "--root", f.root, "--cgroup-parent", f.cgroupParent, "exec", "-it", "tx", "sh"]
        let pid: pid_t = try f.host.run { try spawnOnTerminal(args, pty) }
        pty.closeSlave()
        let first = Array("echo at-$(tty) $(stty size)\n".utf8)
        #expect(write(pty.master, first, first.count) == first.count)
        let before = readTerminal(pty.master, until: "at-/dev/pts/0 24 80")
        #expect(before.contains("at-/dev/pts/0 24 80"), "\(before)")
        try pty.resize(WindowSize(rows: 30, columns: 100))
        kill(pid, SIGWINCH)
        usleep(200_000)
        let second = Array("echo now $(stty size); exit 4\n".utf8)
        #expect(write(pty.master, second, second.count) == second.count)
        let output = readUntilHangup(pty.master)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect((status >> 8) & 0xff == 4, "\(output)")
        #expect(output.contains("now 30 100"), "\(output)")
    }

    /// `run -d -t`: the monitor holds the master and logs what comes out of it; `exec -t` gives
    /// the command a terminal of the container's devpts too.
    @Test func cliDetachedTerminalAndExec() throws {
        let (f, _, b) = try cliFixture()
        defer { f.remove() }
        _ = try f.host.sh("\(b) run -d -t --name tt busybox sh -c '[ -t 1 ] && echo detached-tty=$(tty); sleep 100'")
        defer { _ = try? f.host.sh("\(b) stop -t 0 tt; \(b) rm tt") }
        for _ in 0..<100 where !((try? f.host.sh("\(b) logs tt")) ?? "").contains("detached-tty") { usleep(20_000) }
        #expect(try f.host.sh("\(b) logs tt").contains("detached-tty=/dev/pts/0\r\n"))
        let exec = try f.host.sh("\(b) exec -t tt sh -c '[ -t 0 ] && [ -t 1 ] && echo exec-tty=$TERM $(tty)'")
        #expect(exec.contains("exec-tty=xterm /dev/pts/1\r\n"), "\(exec)")
        #expect(try f.host.sh("\(b) exec tt sh -c '[ -t 1 ] || echo exec-notty'") == "exec-notty\n")
    }
}
