import BerthNamespaces
import BerthSystem
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

    @Test func withoutATerminalStdioIsNotATTY() throws {
        let f = try ContainerFixture()
        let r = try f.run("if [ -t 0 ] || [ -t 1 ]; then echo tty; else echo notty; fi; echo sid=$(cut -d' ' -f6 /proc/1/stat)")
        #expect(r.status == .exited(0))
        #expect(r.output.hasPrefix("notty\n"), "\(r.output)")
        #expect(r.output != "notty\nsid=1\n")
    }
}
