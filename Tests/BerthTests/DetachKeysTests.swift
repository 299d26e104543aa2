import BerthSystem
import Testing

@testable import Berth

/// Docker's `--detach-keys` syntax and the matcher that finds the sequence in forwarded input.
@Suite struct DetachKeysTests {
    @Test func parsesDockerSyntax() throws {
        #expect(try DetachKeys(parsing: "").bytes == [0x10, 0x11])
        #expect(try DetachKeys(parsing: "ctrl-p,ctrl-q") == .standard)
        #expect(try DetachKeys(parsing: "ctrl-a,x").bytes == [0x01, UInt8(ascii: "x")])
        #expect(try DetachKeys(parsing: "ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_").bytes == [0, 27, 28, 29, 30, 31])
        #expect(try DetachKeys(parsing: "ctrl-z,e").bytes == [26, UInt8(ascii: "e")])
        #expect(try DetachKeys(parsing: "a").bytes == [UInt8(ascii: "a")])
        #expect(DetachKeys.standard.description == "ctrl-p,ctrl-q")
        #expect(try DetachKeys(parsing: "ctrl-[,e,ctrl-@").description == "ctrl-[,e,ctrl-@")
    }

    @Test(arguments: ["ctrl-P", "ctrl-1", "ctrl-", "ctrl-ab", "shift-a", "ab", "ctrl-p,,ctrl-q", "é"])
    func rejectsUnknownKeys(_ spec: String) {
        #expect {
            try DetachKeys(parsing: spec)
        } throws: { error in
            guard let e = error as? BerthError, e.code == .invalidArgument else { return false }
            return e.message.contains("invalid detach keys \"\(spec)\": unknown key")
        }
    }

    @Test func forwardsAllButTheSequence() {
        var m = DetachKeyMatcher()
        #expect(m.feed(Array("ls\r".utf8)) == Array("ls\r".utf8))
        #expect(m.feed([0x10]) == [])
        #expect(m.held == [0x10])
        // A Ctrl-P that is not followed by Ctrl-Q is passed on with what follows it.
        #expect(m.feed([0x10]) == [0x10])
        #expect(m.feed([UInt8(ascii: "x")]) == [0x10, UInt8(ascii: "x")])
        #expect(!m.detached)
        #expect(m.feed([UInt8(ascii: "a"), 0x10, 0x11, UInt8(ascii: "b")]) == [UInt8(ascii: "a")])
        #expect(m.detached)
        #expect(m.feed([UInt8(ascii: "c")]) == [])
        #expect(m.flush() == [])
    }

    /// A sequence split across reads, and one that overlaps itself ("a,a,b" in "aaab").
    @Test func matchesAcrossReadsAndOverlaps() throws {
        var m = DetachKeyMatcher(try DetachKeys(parsing: "a,a,b"))
        var out: [UInt8] = []
        for byte in Array("xaa".utf8) { out += m.feed([byte]) }
        #expect(out == Array("x".utf8))
        out += m.feed(Array("a".utf8))
        #expect(out == Array("xa".utf8))
        out += m.feed(Array("b".utf8))
        #expect(out == Array("xa".utf8))
        #expect(m.detached)

        var tail = DetachKeyMatcher(try DetachKeys(parsing: "ctrl-a,x"))
        #expect(tail.feed([UInt8(ascii: "q"), 0x01]) == [UInt8(ascii: "q")])
        #expect(tail.flush() == [0x01])
        #expect(!tail.detached)
    }
}
