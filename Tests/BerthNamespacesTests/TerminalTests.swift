import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Tests that open container terminals in this process hold ``exclusiveContainerTerminals(_:)``:
/// ``noMasterIsLeftBehind()`` counts the masters the process holds.
@Suite struct TerminalTests {
    /// The terminal comes from the container's own devpts: `tty` names /dev/pts/0 of the
    /// container, which exists there; pid 1 leads its session with it as controlling terminal
    /// and its process group in the foreground; the size given at start is the terminal's.
    @Test func containerTerminalIsAPtyOfTheContainersOwnDevpts() throws {
        try exclusiveContainerTerminals {
            let f = try ContainerFixture()
            defer { withExtendedLifetime(f) {} }
            let script = "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty=yes; echo name=$(tty); [ -c \"$(tty)\" ] && echo exists; "
                + "read -r pid comm state ppid pgrp sid ttynr tpgid rest </proc/1/stat; "
                + "echo sid=$sid pgrp=$pgrp tpgid=$tpgid ttynr=$ttynr; stty size; echo hello >/dev/tty; echo owner=$(stat -c %u $(tty))"
            let c = try ContainerProcess.spawn(f.spec(script), stdio: .containerTerminal(size: WindowSize(rows: 33, columns: 101)))
            let pty = try #require(c.takeTerminal())
            defer { close(pty.master) }
            #expect(pty.slave == -1)
            #expect(c.takeTerminal() == nil)
            let output = readUntilHangup(pty.master)
            #expect(try c.wait() == .exited(0), "\(output)")
            let lines = output.split(separator: "\r\n").map(String.init)
            #expect(lines.contains("tty=yes"), "\(output)")
            #expect(lines.contains("name=/dev/pts/0"), "\(output)")
            #expect(lines.contains("exists"), "\(output)")
            // tty_nr 34816 is device 136:0, /dev/pts/0.
            #expect(lines.contains("sid=1 pgrp=1 tpgid=1 ttynr=34816"), "\(output)")
            #expect(lines.contains("33 101"), "\(output)")
            #expect(lines.contains("hello"), "\(output)")
            #expect(lines.contains("owner=0"), "\(output)")
        }
    }

    /// A process that runs as another user owns its terminal and can open it by name.
    @Test func containerTerminalBelongsToTheProcessUser() throws {
        try exclusiveContainerTerminals {
            let f = try ContainerFixture()
            defer { withExtendedLifetime(f) {} }
            var spec = f.spec("echo name=$(tty) owner=$(stat -c %u $(tty)) uid=$(id -u); echo by-name >$(tty)")
            spec.process?.user = ContainerSpec.User(uid: 65534, gid: 65534)
            let (status, output) = try outputOnContainerTerminal(spec)
            #expect(status == .exited(0), "\(output)")
            #expect(output.contains("name=/dev/pts/0 owner=65534 uid=65534\r\n"), "\(output)")
            #expect(output.contains("by-name\r\n"), "\(output)")
        }
    }

    /// In a new user namespace the devpts instance is the namespace's own too.
    @Test func containerTerminalInAUserNamespace() throws {
        try exclusiveContainerTerminals {
            let f = try ContainerFixture()
            defer { withExtendedLifetime(f) {} }
            let hostID: UInt32 = 1_200_000
            // The mapped root must own the rootfs (see Documentation/BerthNamespaces.md).
            try Command.check("chown", ["-R", "-h", "\(hostID):\(hostID)", f.rootfs.bundle])
            var spec = f.spec("echo name=$(tty) uid=$(id -u); [ -c \"$(tty)\" ] && echo exists")
            spec.setNamespace(.user, .init(.user))
            spec.linux?.uidMappings = [.init(containerID: 0, hostID: hostID, size: 65536)]
            spec.linux?.gidMappings = [.init(containerID: 0, hostID: hostID, size: 65536)]
            let (status, output) = try outputOnContainerTerminal(spec)
            #expect(status == .exited(0), "\(output)")
            #expect(output.contains("name=/dev/pts/0 uid=0\r\n"), "\(output)")
            #expect(output.contains("exists\r\n"), "\(output)")
        }
    }

    /// TIOCSWINSZ on the master while the process runs: it sees the new size.
    @Test func resizingTheMasterIsSeenInside() throws {
        try exclusiveContainerTerminals {
            let f = try ContainerFixture()
            defer { withExtendedLifetime(f) {} }
            let c = try ContainerProcess.spawn(f.spec("stty size; echo ready; read x; stty size"),
                                               stdio: .containerTerminal(size: WindowSize(rows: 24, columns: 80)))
            let pty = try #require(c.takeTerminal())
            defer { close(pty.master) }
            let before = readTerminal(pty.master, until: "ready")
            #expect(before.contains("24 80\r\n"), "\(before)")
            try pty.resize(WindowSize(rows: 40, columns: 120))
            #expect(WindowSize.of(pty.master) == WindowSize(rows: 40, columns: 120))
            let input = Array("\n".utf8)
            #expect(write(pty.master, input, input.count) == input.count)
            let after = readUntilHangup(pty.master)
            #expect(try c.wait() == .exited(0), "\(after)")
            #expect(after.contains("40 120\r\n"), "\(after)")
        }
    }

    /// Job control: ^C typed on the terminal signals the foreground process group (the shell and
    /// its sleep), whose SIGINT trap runs.
    @Test func interruptCharacterSignalsTheForegroundGroup() throws {
        try exclusiveContainerTerminals {
            let f = try ContainerFixture()
            defer { withExtendedLifetime(f) {} }
            let c = try ContainerProcess.spawn(f.spec("trap 'echo interrupted; exit 3' INT; echo ready; while :; do sleep 1; done"),
                                               stdio: .containerTerminal())
            let pty = try #require(c.takeTerminal())
            defer { close(pty.master) }
            let ready = readTerminal(pty.master, until: "ready")
            #expect(ready.contains("ready"), "\(ready)")
            var interrupt: UInt8 = 3
            #expect(write(pty.master, &interrupt, 1) == 1)
            let output = readUntilHangup(pty.master)
            #expect(try c.wait() == .exited(3), "\(output)")
            #expect(output.contains("interrupted"), "\(output)")
        }
    }

    /// `exec` with a terminal: the process joins the container's namespaces and opens its pty
    /// through the container's /dev/ptmx.
    @Test func execIntoAContainerGetsATerminalOfItsDevpts() throws {
        try exclusiveContainerTerminals {
            let f = try ContainerFixture()
            defer { withExtendedLifetime(f) {} }
            let first = try ContainerProcess.spawn(f.spec("sleep 100"), stdio: .containerTerminal())
            defer { try? first.kill(SIGKILL); _ = try? first.wait() }
            let firstTerminal = try #require(first.takeTerminal())
            defer { close(firstTerminal.master) }
            let spec = try ContainerSpec.exec(into: first.pid, args: ["sh", "-c", "echo name=$(tty); ls -1 /dev/pts; stty size"])
            let c = try ContainerProcess.spawn(spec, stdio: .containerTerminal(size: WindowSize(rows: 12, columns: 34)))
            let pty = try #require(c.takeTerminal())
            defer { close(pty.master) }
            let output = readUntilHangup(pty.master)
            #expect(try c.wait() == .exited(0), "\(output)")
            #expect(output.contains("name=/dev/pts/1\r\n"), "\(output)")
            #expect(output.contains("12 34\r\n"), "\(output)")
            let listing = output.split(separator: "\r\n").map(String.init)
            #expect(listing.contains("0") && listing.contains("1"), "\(output)")
        }
    }

    /// The master is the only thing left on the host side: closed with the process object when
    /// never taken, and when a start fails (no program, a failing mount before the terminal).
    @Test func noMasterIsLeftBehind() throws {
        try exclusiveContainerTerminals {
            let f = try ContainerFixture()
            defer { withExtendedLifetime(f) {} }
            let before = containerTerminalMasters()
            do {
                let c = try ContainerProcess.spawn(f.spec("echo untaken"), stdio: .containerTerminal())
                #expect(containerTerminalMasters() == before + 1)
                #expect(try c.wait() == .exited(0))
            }
            #expect(containerTerminalMasters() == before)

            // Fails at exec, after the master came over.
            var missing = f.spec("true")
            missing.process?.args = ["/no/such/program"]
            #expect(throws: BerthError.self) { _ = try ContainerProcess.spawn(missing, stdio: .containerTerminal()) }
            #expect(containerTerminalMasters() == before)

            // Fails in the rootfs, before the terminal is opened.
            var badMount = f.spec("true")
            badMount.mounts = (badMount.mounts ?? []) + [ContainerSpec.Mount(destination: "/mnt", type: "tmpfs", source: "tmpfs",
                                                                             options: ["size=bogus"])]
            let error = #expect(throws: BerthError.self) { _ = try ContainerProcess.spawn(badMount, stdio: .containerTerminal()) }
            #expect(error?.message.contains("/mnt") == true, "\(String(describing: error))")
            #expect(containerTerminalMasters() == before)
        }
    }

    /// A pair opened by the caller (its devpts) still works as before: a terminal, controlling,
    /// session leader.
    @Test func processOnAHostPseudoTerminalHasItAsControllingTerminal() throws {
        let f = try ContainerFixture()
        defer { withExtendedLifetime(f) {} }
        let pty = try PseudoTerminal.open(size: WindowSize(rows: 33, columns: 101))
        defer { close(pty.master) }
        let script = "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty=yes; echo sid=$(cut -d' ' -f6 /proc/1/stat); "
            + "stty size; echo hello >/dev/tty"
        let c = try ContainerProcess.spawn(f.spec(script), stdio: .terminal(pty))
        pty.closeSlave()
        let output = readUntilHangup(pty.master)
        #expect(try c.wait() == .exited(0), "\(output)")
        let lines = output.split(separator: "\r\n").map(String.init)
        #expect(lines.contains("tty=yes"), "\(output)")
        #expect(lines.contains("sid=1"), "\(output)")
        #expect(lines.contains("33 101"), "\(output)")
        #expect(lines.contains("hello"), "\(output)")
    }

    @Test func inputWrittenToTheMasterReachesTheProcess() throws {
        try exclusiveContainerTerminals {
            let f = try ContainerFixture()
            defer { withExtendedLifetime(f) {} }
            let c = try ContainerProcess.spawn(f.spec("read line; echo got=$line"), stdio: .containerTerminal())
            let pty = try #require(c.takeTerminal())
            defer { close(pty.master) }
            let input = Array("abc\n".utf8)
            #expect(write(pty.master, input, input.count) == input.count)
            let output = readUntilHangup(pty.master)
            #expect(try c.wait() == .exited(0))
            #expect(output.contains("got=abc"), "\(output)")
        }
    }

    /// `berth-ns -t` with a pty as its own terminal: raw mode, relay both ways, the container's status.
    @Test func berthNSWithATerminal() throws {
        let exe = try #require(berthNSExecutable(), "build berth-ns first")
        let f = try ContainerFixture()
        defer { withExtendedLifetime(f) {} }
        let pty = try PseudoTerminal.open(size: WindowSize(rows: 24, columns: 80))
        defer { close(pty.master) }
        let args = [exe, "-t", "--rootfs", f.rootfs.path, "--", "/bin/sh"]
        let pid = try spawnOnTerminal(args, pty)
        let (status, output, typed) = converse(over: pty, with: pid, typing: "[ -t 0 ] && echo sid-$(cut -d' ' -f6 /proc/1/stat) on-$(tty); exit 6\n")
        #expect(typed)
        #expect((status >> 8) & 0xff == 6, "\(output)")
        #expect(output.contains("sid-1 on-/dev/pts/0"), "\(output)")
    }

    /// A bundle whose config.json has `process.terminal: true` gets a terminal without -t.
    @Test func berthNSHonoursProcessTerminalInABundle() throws {
        let exe = try #require(berthNSExecutable(), "build berth-ns first")
        let f = try ContainerFixture()
        defer { withExtendedLifetime(f) {} }
        var spec = f.spec("[ -t 0 ] && [ -t 1 ] && echo bundle-tty")
        spec.process?.terminal = true
        let json = try JSONEncoder().encode(spec)
        try FileIO.writeAtomically(f.rootfs.bundle + "/config.json", String(decoding: json, as: UTF8.self))
        let pty = try PseudoTerminal.open()
        defer { close(pty.master) }
        let pid = try spawnOnTerminal([exe, "--bundle", f.rootfs.bundle], pty)
        let (status, output, _) = converse(over: pty, with: pid)
        #expect(status == 0, "\(output)")
        #expect(output.contains("bundle-tty"), "\(output)")
    }

    @Test func withoutATerminalStdioIsNotATTY() throws {
        let f = try ContainerFixture()
        let r = try f.run("if [ -t 0 ] || [ -t 1 ]; then echo tty; else echo notty; fi; echo sid=$(cut -d' ' -f6 /proc/1/stat)")
        #expect(r.status == .exited(0))
        #expect(r.output.hasPrefix("notty\n"), "\(r.output)")
        #expect(r.output != "notty\nsid=1\n")
    }
}

/// The berth-ns binary next to the test bundle.
func berthNSExecutable() -> String? {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    guard n > 0 else { return nil }
    var dir = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    while let slash = dir.lastIndex(of: "/") {
        dir = String(dir[..<slash])
        if dir.isEmpty || dir.hasSuffix("/.build") { break }
        if FileIO.exists(dir + "/berth-ns") && !FileIO.isDirectory(dir + "/berth-ns") { return dir + "/berth-ns" }
    }
    return nil
}

/// Spawns `spec` on a terminal of its own devpts, reads it until it hangs up, and waits.
private func outputOnContainerTerminal(_ spec: ContainerSpec) throws -> (status: BerthNamespaces.ExitStatus, output: String) {
    let c = try ContainerProcess.spawn(spec, stdio: .containerTerminal())
    let pty = try #require(c.takeTerminal())
    defer { close(pty.master) }
    let output = readUntilHangup(pty.master)
    return (try c.wait(), output)
}
