@testable import BerthNamespaces
import BerthSystem
import CSeccomp
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Which architectures the default program covers: Docker's (x86_64 + x86 + x32 on amd64) less
/// x32 when the kernel cannot run x32 system calls (a third shorter program, cheaper to install).
@Suite struct SeccompArchitectureTests {
    static let x86_64 = seccomp_arch_resolve_name("x86_64")
    static let x86 = seccomp_arch_resolve_name("x86")
    static let x32 = seccomp_arch_resolve_name("x32")
    static let isX86_64 = seccomp_arch_native() == x86_64

    /// The probe agrees with the kernel's build configuration where /proc/config.gz says so.
    @Test(.enabled(if: isX86_64 && FileIO.exists("/proc/config.gz")))
    func x32ProbeMatchesTheKernelConfig() throws {
        let r = try Command.run("/bin/sh", ["-c", "zcat /proc/config.gz | grep -E '^(# )?CONFIG_X86_X32_ABI[ =]'"])
        if r.stdout.contains("CONFIG_X86_X32_ABI=y") { #expect(SeccompCompiler.kernelRunsX32) }
        if r.stdout.contains("# CONFIG_X86_X32_ABI is not set") { #expect(!SeccompCompiler.kernelRunsX32) }
    }

    @Test(.enabled(if: isX86_64))
    func defaultProfileFiltersX32OnlyWhenTheKernelRunsIt() throws {
        let tokens = try SeccompCompiler.architectures(of: .dockerDefault).map(\.token)
        #expect(tokens.first == Self.x86_64)
        #expect(tokens.contains(Self.x86), "32-bit x86 binaries stay filtered (IA32 emulation)")
        #expect(tokens.contains(Self.x32) == SeccompCompiler.kernelRunsX32)
    }

    @Test(.enabled(if: isX86_64))
    func programIsShorterWithoutX32() throws {
        let caps = CapabilitySet.dockerDefault
        let program = try SeccompCompiler.compile(.dockerDefault, capabilities: caps)
        var twoArches = SeccompProfile.dockerDefault
        twoArches.archMap = nil
        twoArches.architectures = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
        let withoutX32 = try SeccompCompiler.compile(twoArches, capabilities: caps)
        if SeccompCompiler.kernelRunsX32 {
            #expect(program.count > withoutX32.count)
        } else {
            #expect(program == withoutX32, "\(program.count / 8) vs \(withoutX32.count / 8) instructions")
        }
    }

    /// A profile that lists only x32 keeps it (an empty list would mean "native only").
    @Test func anOnlyX32ListIsKept() throws {
        var profile = SeccompProfile.dockerDefault
        profile.archMap = nil
        profile.architectures = ["SCMP_ARCH_X32"]
        let tokens = try SeccompCompiler.architectures(of: profile).map(\.token)
        #expect(tokens == [Self.x32])
    }
}
