import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The spawner applies a hand-made ProcessSecurity in the child (the Security/ module builds real
/// ones; these tests only check that each setting reaches the container).
@Suite struct ProcessSecurityHookTests {
    /// One `struct sock_filter` (code, jt, jf, k), little-endian.
    private func insn(_ code: UInt16, _ jt: UInt8, _ jf: UInt8, _ k: UInt32) -> [UInt8] {
        [UInt8(code & 0xff), UInt8(code >> 8), jt, jf, UInt8(k & 0xff), UInt8(k >> 8 & 0xff), UInt8(k >> 16 & 0xff), UInt8(k >> 24)]
    }

    @Test func capabilitiesNoNewPrivsMasksAndSeccompReachTheChild() throws {
        let f = try ContainerFixture()
        // Deny mkdir (83) and mkdirat (258) with EPERM, allow the rest (x86_64 numbers).
        let filter = insn(0x20, 0, 0, 0) + insn(0x15, 2, 0, 83) + insn(0x15, 1, 0, 258)
            + insn(0x06, 0, 0, 0x7fff_0000) + insn(0x06, 0, 0, 0x0005_0000 | UInt32(EPERM))
        let netBindService: UInt64 = 1 << 10, kill: UInt64 = 1 << 5
        let security = ProcessSecurity(
            noNewPrivileges: true,
            capabilities: CapabilityMasks(all: netBindService | kill),
            seccompFilter: filter,
            maskedPaths: ["/proc/kcore", "/sys/firmware", "/no/such/path"],
            readonlyPaths: ["/proc/sys"])
        let script = """
            grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '
            wc -c < /proc/kcore; ls /sys/firmware | wc -l
            echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo sys-ro
            mkdir /tmp/x 2>&1 | grep -q 'not permitted' && echo mkdir-denied
            """
        let r = try f.run(f.spec(script), security: security)
        #expect(r.status == .exited(0), "\(r.output)")
        let lines = r.output.split(separator: "\n").map(String.init)
        #expect(lines.contains("CapBnd: 0000000000000420"))
        #expect(lines.contains("CapEff: 0000000000000420"))
        #expect(lines.contains("NoNewPrivs: 1"))
        #expect(lines.contains("Seccomp: 2"))
        #expect(lines.contains("0"))          // /proc/kcore reads empty (masked by /dev/null)
        #expect(lines.contains("sys-ro"))
        #expect(lines.contains("mkdir-denied"))
    }

    @Test func malformedSeccompFilterIsRefused() throws {
        let f = try ContainerFixture()
        #expect(throws: BerthError.self) {
            try ContainerProcess.run(f.spec("true"), stdio: .null, security: ProcessSecurity(seccompFilter: [1, 2, 3]))
        }
    }
}
