import BerthNamespaces
import BerthSystem
import BerthTestSupport
import CBerthShim
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

/// `-i` without local input (`run -d -i`): the owner serves the container's stdin on its attach
/// socket; `openInput` and `berth attach` write to it, with `-t` into its terminal.
@Suite struct AttachTests {
    /// Two clients one after the other feed one stdin, which stays open between them; the
    /// socket goes away with the container.
    @Test func inputReachesADetachedContainer() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let running = try f.run(["sh", "-c", "read a; read b; echo got-$a-$b"]) { $0.openStdin = true }
        let socket = f.engine.attachSocketPath(running.id)
        #expect(FileIO.exists(socket))
        let first = try f.engine.openInput(running.id.full)
        #expect(!first.hasTerminal)
        try first.write(Array("one\n".utf8))
        first.close()
        let second = try f.engine.openInput(running.id.full)
        try second.write(Array("two\n".utf8))
        #expect(running.wait() == 0)
        #expect(try FileIO.read(f.engine.logPath(running.id)) == "got-one-two\n")
        #expect(!FileIO.exists(socket))
        // The container has gone: a write fails instead of vanishing.
        #expect(throws: BerthError.self) { for _ in 0..<100 { try second.write(Array("x".utf8)) } }
        second.close()
    }

    /// Without -i there is nothing to attach to; a stopped container is refused too.
    @Test func inputNeedsOpenStdinAndARunningContainer() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let running = try f.run(["sleep", "100"])
        #expect(!FileIO.exists(f.engine.attachSocketPath(running.id)))
        let closed = #expect(throws: BerthError.self) { _ = try f.engine.openInput(running.id.full) }
        #expect(closed?.code == .invalidState && closed?.message.contains("was not started with -i") == true)
        try running.kill(SIGKILL)
        running.wait()
        let stopped = #expect(throws: BerthError.self) { _ = try f.engine.openInput(running.id.full) }
        #expect(stopped?.message.contains("is not running") == true)
    }

    /// `-d -i -t`: input goes to the terminal and resize messages set its size.
    @Test func inputAndSizeReachADetachedTerminal() throws {
        try exclusiveContainerTerminals {
            let f = try EngineFixture()
            defer { f.remove() }
            var config = ContainerConfig(image: "busybox", cmd: ["sh", "-c", "read a; echo got-$a $(stty size)"])
            config.tty = true
            config.openStdin = true
            let record = try f.engine.create(config, name: nil)
            let before = containerTerminalMasters()
            let running = try f.engine.start(record.id, stdio: .pseudoTerminal(interactive: false, foreground: false))
            let input = try f.engine.openInput(record.id.full)
            #expect(input.hasTerminal)
            try input.resize(WindowSize(rows: 33, columns: 111))
            try input.write(Array("typed\r".utf8))
            #expect(running.wait() == 0)
            let log = try FileIO.read(f.engine.logPath(record.id))
            #expect(log.contains("got-typed 33 111"), "\(log)")
            input.close()
            // The relay's master and the server's duplicate are both closed.
            #expect(containerTerminalMasters() == before)
        }
    }

    /// A client that sends a malformed frame is dropped; the others keep working.
    @Test func malformedFramesDropOnlyThatClient() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let running = try f.run(["sh", "-c", "read a; echo got-$a"]) { $0.openStdin = true }
        let bad = berth_unix_connect(f.engine.attachSocketPath(running.id))
        #expect(bad >= 0)
        let junk: [UInt8] = [7, 0, 0, 0, 1, 0x41]
        #expect(send(bad, junk, junk.count, Int32(MSG_NOSIGNAL)) == junk.count)
        var byte: UInt8 = 0
        #expect(read(bad, &byte, 1) == 0, "the server hangs up on an unknown kind")
        close(bad)
        let good = try f.engine.openInput(running.id.full)
        try good.write(Array("fine\n".utf8))
        #expect(running.wait() == 0)
        #expect(try FileIO.read(f.engine.logPath(running.id)) == "got-fine\n")
    }

    /// `run -d -i`, then `berth attach` with piped input: the container gets it, attach prints
    /// the output and ends with the container's exit code.
    @Test func cliAttachPipesInput() throws {
        let (f, _, b) = try cliFixture()
        defer { f.remove() }
        _ = try f.host.sh("\(b) run -d -i --name ia busybox sh -c 'read a; read b; echo got-$a-$b; exit 3'")
        defer { _ = try? f.host.sh("\(b) rm -f ia") }
        let attached = try f.host.run { try Command.run("/bin/sh", ["-c", "printf 'one\\ntwo\\n' | \(b) attach ia"]) }
        #expect(attached.status == 3, "\(attached.stderr)")
        #expect(attached.stdout == "got-one-two\n")
        #expect(try f.host.sh("\(b) inspect -f '{{.State.Status}}' ia") == "exited\n")
    }

    /// `run -d -i -t`, then `berth attach` on a terminal: typed input reaches the shell, the
    /// size follows ours, Ctrl-P Ctrl-Q detaches and leaves the container running.
    @Test func cliAttachToATerminalAndDetach() throws {
        let (f, berth, b) = try cliFixture()
        defer { f.remove() }
        _ = try f.host.sh("\(b) run -d -i -t --name it busybox sh")
        defer { _ = try? f.host.sh("\(b) rm -f it") }
        let pty = try PseudoTerminal.open(size: WindowSize(rows: 24, columns: 80))
        defer { close(pty.master) }
        let args = [berth, "--root", f.root, "--cgroup-parent", f.cgroupParent, "attach", "it"]
        let pid: pid_t = try f.host.run { try spawnOnTerminal(args, pty) }
        pty.closeSlave()
        usleep(300_000)
        let first = Array("echo at-$((6*7)) $(stty size)\r".utf8)
        #expect(write(pty.master, first, first.count) == first.count)
        let before = readTerminal(pty.master, until: "at-42 24 80")
        #expect(before.contains("at-42 24 80"), "\(before)")
        try pty.resize(WindowSize(rows: 30, columns: 100))
        kill(pid, SIGWINCH)
        usleep(300_000)
        let second = Array("echo now $(stty size)\r".utf8)
        #expect(write(pty.master, second, second.count) == second.count)
        let after = readTerminal(pty.master, until: "now 30 100")
        #expect(after.contains("now 30 100"), "\(after)")
        let detach: [UInt8] = [0x10, 0x11]
        #expect(write(pty.master, detach, 2) == 2)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect((status >> 8) & 0xff == 0)
        #expect(try f.host.sh("\(b) inspect -f '{{.State.Status}}' it") == "running\n")
    }

    /// `create -i`, then `start -a -i` with piped input: output from the container's first line,
    /// only this start's, and the exit code; several containers at once are refused.
    @Test func cliStartAttachInteractive() throws {
        let (f, _, b) = try cliFixture()
        defer { f.remove() }
        _ = try f.host.sh("\(b) create -i --name si busybox sh -c 'echo hello; read a; echo got-$a; exit 4'")
        defer { _ = try? f.host.sh("\(b) rm -f si") }
        for word in ["one", "two"] {
            let started = try f.host.run { try Command.run("/bin/sh", ["-c", "echo \(word) | \(b) start -a -i si"]) }
            #expect(started.status == 4, "\(started.stderr)")
            #expect(started.stdout == "hello\ngot-\(word)\n")
        }
        let both = try f.host.run { try Command.run("/bin/sh", ["-c", "\(b) start -a si si"]) }
        #expect(both.status == 1)
        #expect(both.stderr.contains("you cannot start and attach multiple containers at once"), "\(both.stderr)")
        let badKeys = try f.host.run { try Command.run("/bin/sh", ["-c", "\(b) attach --detach-keys ctrl-P si"]) }
        #expect(badKeys.status == 1)
        #expect(badKeys.stderr.contains("invalid detach keys \"ctrl-P\": unknown key \"ctrl-P\""), "\(badKeys.stderr)")
    }

    /// `attach --detach-keys ctrl-a,x`: Ctrl-P Ctrl-Q reach the shell, the new sequence detaches.
    @Test func cliAttachWithOtherDetachKeys() throws {
        let (f, berth, b) = try cliFixture()
        defer { f.remove() }
        _ = try f.host.sh("\(b) run -d -i -t --name dk busybox sh")
        defer { _ = try? f.host.sh("\(b) rm -f dk") }
        let pty = try PseudoTerminal.open(size: WindowSize(rows: 24, columns: 80))
        defer { close(pty.master) }
        let args = [berth, "--root", f.root, "--cgroup-parent", f.cgroupParent, "attach", "--detach-keys", "ctrl-a,x", "dk"]
        let pid: pid_t = try f.host.run { try spawnOnTerminal(args, pty) }
        pty.closeSlave()
        usleep(300_000)
        // Ctrl-P Ctrl-Q, then Ctrl-U to clear whatever they did to the line.
        let typed = [0x10, 0x11, 0x15] + Array("echo kept-$((6*7))\r".utf8)
        #expect(write(pty.master, typed, typed.count) == typed.count)
        let seen = readTerminal(pty.master, until: "kept-42")
        #expect(seen.contains("kept-42"), "\(seen)")
        var status: Int32 = 0
        #expect(waitpid(pid, &status, WNOHANG) == 0, "attach ended on Ctrl-P Ctrl-Q")
        let detach: [UInt8] = [0x01, UInt8(ascii: "x")]
        #expect(write(pty.master, detach, 2) == 2)
        waitpid(pid, &status, 0)
        #expect((status >> 8) & 0xff == 0)
        #expect(try f.host.sh("\(b) inspect -f '{{.State.Status}}' dk") == "running\n")
    }

    /// A signal sent to `berth attach` (Ctrl-C on a container without -t) reaches the container.
    @Test func cliAttachProxiesSignals() throws {
        let (f, _, b) = try cliFixture()
        defer { f.remove() }
        _ = try f.host.sh("\(b) run -d --name sp busybox sh -c 'trap \"echo got-int; exit 5\" INT; echo ready; while :; do sleep 0.1; done'")
        defer { _ = try? f.host.sh("\(b) rm -f sp") }
        let script = "\(b) attach --no-stdin sp </dev/null & pid=$!; sleep 0.5; kill -INT $pid; wait $pid"
        let attached = try f.host.run { try Command.run("/bin/sh", ["-c", script]) }
        #expect(attached.status == 5, "\(attached.stderr)")
        #expect(attached.stdout == "got-int\n")
        #expect(try f.host.sh("\(b) inspect -f '{{.State.ExitCode}}' sp") == "5\n")
    }
}
