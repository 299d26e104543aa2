import BerthSystem
import CSeccomp
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Compiled seccomp programs, remembered per (profile, capabilities, kernel, libseccomp version,
/// architecture): in memory, and optionally in a directory so that separate processes (one
/// `berth run` each) skip libseccomp too. Compiling Docker's default profile for three x86
/// architectures takes tens of milliseconds; a cached program costs a lookup.
///
/// A disk entry holds the full key text next to the program and is used only if that text
/// matches exactly, so a file-name hash collision can never hand out another profile's program.
/// Entries are written by rename, mode 0600, in a directory created with mode 0700.
public final class SeccompProgramCache: Sendable {
    /// Where entries are stored, or `nil` for memory only.
    public let directory: String?
    private let memory = Mutex<[[UInt8]: [UInt8]]>([:])

    /// - Parameter directory: A directory for entries shared between processes (for example
    ///   `<state root>/seccomp`), or `nil` to cache in memory only.
    public init(directory: String? = nil) {
        self.directory = directory
    }

    /// The process-wide in-memory cache.
    public static let shared = SeccompProgramCache()

    /// The compiled program for `profile` and `capabilities`, compiling it on a miss.
    /// - Parameters:
    ///   - profile: The profile.
    ///   - capabilities: The container's capabilities.
    ///   - kernel: The kernel version for `minKernel`.
    /// - Throws: What ``SeccompCompiler/compile(_:capabilities:kernel:)`` throws. A broken or
    ///   unwritable disk entry is not an error: the program is compiled (and the entry rewritten).
    public func program(for profile: SeccompProfile, capabilities: CapabilitySet,
                        kernel: KernelVersion = .running) throws -> [UInt8] {
        let key = Self.key(profile, capabilities, kernel)
        if let hit = memory.withLock({ $0[key] }) { return hit }
        if let hit = loadFromDisk(key) {
            remember(key, hit)
            return hit
        }
        let program = try SeccompCompiler.compile(profile, capabilities: capabilities, kernel: kernel)
        remember(key, program)
        storeOnDisk(key, program)
        return program
    }

    /// Forgets everything held in memory (disk entries stay).
    public func removeAllFromMemory() { memory.withLock { $0.removeAll() } }

    private func remember(_ key: [UInt8], _ program: [UInt8]) {
        memory.withLock { entries in
            // Profiles are few in practice; forget everything rather than grow without bound.
            if entries.count >= 64 { entries.removeAll() }
            entries[key] = program
        }
    }

    // MARK: Disk entries: [8-byte little-endian key length][key text][program]

    private func path(for key: [UInt8]) -> String? {
        guard let directory else { return nil }
        return directory + "/" + Self.fnv1a(key) + ".bpf"
    }

    private func loadFromDisk(_ key: [UInt8]) -> [UInt8]? {
        guard let path = path(for: key), let bytes = try? FileIO.readBytes(path), bytes.count > 8 else { return nil }
        var length = 0
        for i in 0..<8 { length |= Int(bytes[i]) << (8 * i) }
        let keyBytes = key
        guard length == keyBytes.count, bytes.count > 8 + length,
              bytes[8..<(8 + length)].elementsEqual(keyBytes) else { return nil }
        let program = Array(bytes[(8 + length)...])
        return program.count % 8 == 0 ? program : nil
    }

    private func storeOnDisk(_ key: [UInt8], _ program: [UInt8]) {
        guard let directory, let path = path(for: key) else { return }
        if !FileIO.isDirectory(directory) { try? FileIO.makeDirectories(directory, mode: 0o700) }
        let keyBytes = key
        var bytes: [UInt8] = (0..<8).map { UInt8((keyBytes.count >> (8 * $0)) & 0xff) }
        bytes += keyBytes
        bytes += program
        try? FileIO.writeAtomically(path, bytes, mode: 0o600)
    }

    /// What every key starts with: the format, libseccomp's version, the native architecture and
    /// whether the kernel runs x32.
    static let keyPrefix: [UInt8] = {
        var v = "?"
        if let version = seccomp_version() {
            v = "\(version.pointee.major).\(version.pointee.minor).\(version.pointee.micro)"
        }
        // The architectures filtered depend on what the kernel runs (x32), not only on its version.
        return Array("berth-seccomp 2|libseccomp \(v)|native \(seccomp_arch_native())|x32 \(SeccompCompiler.kernelRunsX32)|".utf8)
    }()

    /// Everything the compiled program depends on, as bytes.
    static func key(_ profile: SeccompProfile, _ capabilities: CapabilitySet, _ kernel: KernelVersion) -> [UInt8] {
        var key = keyPrefix
        key += Array("kernel \(kernel.major).\(kernel.minor)|caps \(capabilities.mask)|".utf8)
        // The built-in profile is by far the most common: skip re-serializing it.
        key += profile == .dockerDefault ? SeccompProfile.dockerDefaultCanonicalBytes : profile.canonicalBytes
        return key
    }

    /// 64-bit FNV-1a as hex: only a file name; the key bytes inside the file are what is trusted.
    static func fnv1a(_ bytes: [UInt8]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension SeccompProfile {
    /// An unambiguous byte string of everything that affects compilation (every string and list
    /// is length-prefixed, so no two profiles give the same bytes).
    var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(8192)
        func int(_ n: UInt64) {
            var n = n
            repeat { out.append(UInt8(n & 0x7f) | (n > 0x7f ? 0x80 : 0)); n >>= 7 } while n > 0
        }
        func s(_ text: String?) {
            guard let text else { out.append(0); return }
            out.append(1)
            int(UInt64(text.utf8.count))
            out.append(contentsOf: text.utf8)
        }
        func optInt(_ n: UInt32?) {
            guard let n else { out.append(0); return }
            out.append(1)
            int(UInt64(n))
        }
        func list(_ items: [String]?) {
            guard let items else { out.append(0); return }
            out.append(1)
            int(UInt64(items.count))
            for i in items { s(i) }
        }
        func filter(_ f: SeccompRuleFilter?) {
            guard let f else { out.append(0); return }
            out.append(1)
            list(f.caps); list(f.arches); s(f.minKernel)
        }
        s(defaultAction.rawValue)
        optInt(defaultErrnoRet)
        list(architectures)
        if let archMap {
            out.append(1)
            int(UInt64(archMap.count))
            for m in archMap { s(m.architecture); list(m.subArchitectures) }
        } else { out.append(0) }
        list(flags)
        int(UInt64(syscalls.count))
        for rule in syscalls {
            list(rule.names)
            s(rule.action.rawValue)
            optInt(rule.errnoRet)
            if let args = rule.args {
                out.append(1)
                int(UInt64(args.count))
                for a in args { int(UInt64(a.index)); int(a.value); int(a.valueTwo); int(UInt64(a.op.libseccompValue)) }
            } else { out.append(0) }
            filter(rule.includes)
            filter(rule.excludes)
        }
        return out
    }

    /// ``dockerDefault``'s canonical bytes, computed once per process.
    static let dockerDefaultCanonicalBytes = dockerDefault.canonicalBytes
}
