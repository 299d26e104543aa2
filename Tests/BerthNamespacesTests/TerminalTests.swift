import BerthNamespaces
import BerthSystem
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Everything readable from a pty master until the slave side is gone (EIO).
func readUntilHangup(_ master: Int32) -> String {
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

@Suite struct TerminalTests {
    @Test func processOnAPseudoTerminalHasItAsControllingTerminal() throws {
        let f = try ContainerFixture()
        defer { withExtendedLifetime(f) {} }
        let pty = try PseudoTerminal.open(size: WindowSize(rows: 33, columns: 101))
        defer { close(pty.master) }
        let script = "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty=yes; echo sid=$(cut -d' ' -f6 /proc/1/stat); "
            + "stty size; echo hello >/dev/tty; echo name=$(tty)"
        let c = try ContainerProcess.spawn(f.spec(script), stdio: .terminal(pty))
        pty.closeSlave()
        let output = readUntilHangup(pty.master)
        #expect(try c.wait() == .exited(0), "\(output)")
        let lines = output.split(separator: "\r\n").map(String.init)
        #expect(lines.contains("tty=yes"), "\(output)")
        #expect(lines.contains("sid=1"), "\(output)")
        #expect(lines.contains("33 101"), "\(output)")
        #expect(lines.contains("hello"), "\(output)")
        #expect(lines.contains { $0.hasPrefix("name=") }, "\(output)")
    }

    @Test func inputWrittenToTheMasterReachesTheProcess() throws {
        let f = try ContainerFixture()
        defer { withExtendedLifetime(f) {} }
        let pty = try PseudoTerminal.open()
        defer { close(pty.master) }
        let c = try ContainerProcess.spawn(f.spec("read line; echo got=$line"), stdio: .terminal(pty))
        pty.closeSlave()
        let input = Array("abc\n".utf8)
        #expect(write(pty.master, input, input.count) == input.count)
        let output = readUntilHangup(pty.master)
        #expect(try c.wait() == .exited(0))
        #expect(output.contains("got=abc"), "\(output)")
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
        pty.closeSlave()
        let input = Array("[ -t 0 ] && echo sid-$(cut -d' ' -f6 /proc/1/stat); exit 6\n".utf8)
        #expect(write(pty.master, input, input.count) == input.count)
        let output = readUntilHangup(pty.master)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect((status >> 8) & 0xff == 6, "\(output)")
        #expect(output.contains("sid-1"), "\(output)")
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
        pty.closeSlave()
        let output = readUntilHangup(pty.master)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
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

/// Spawns `args` with the slave of `pty` as its stdin, stdout and stderr.
func spawnOnTerminal(_ args: [String], _ pty: PseudoTerminal) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for fd in Int32(0)...2 { posix_spawn_file_actions_adddup2(&actions, pty.slave, fd) }
    var pid: pid_t = 0
    let rc = withCStrings(args) { argv in
        withCStrings(currentEnvironment().map { "\($0.key)=\($0.value)" }) { envp in
            posix_spawn(&pid, args[0], &actions, nil, argv, envp)
        }
    }
    guard rc == 0 else { throw BerthError(.system, "spawn \(args[0]): \(strerrorString(rc))", errno: rc) }
    return pid
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
