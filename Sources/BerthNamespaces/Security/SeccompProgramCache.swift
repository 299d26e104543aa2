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
    private let memory = Mutex<[String: [UInt8]]>([:])

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

    private func remember(_ key: String, _ program: [UInt8]) {
        memory.withLock { entries in
            // Profiles are few in practice; forget everything rather than grow without bound.
            if entries.count >= 64 { entries.removeAll() }
            entries[key] = program
        }
    }

    // MARK: Disk entries: [8-byte little-endian key length][key text][program]

    private func path(for key: String) -> String? {
        guard let directory else { return nil }
        return directory + "/" + Self.fnv1a(key) + ".bpf"
    }

    private func loadFromDisk(_ key: String) -> [UInt8]? {
        guard let path = path(for: key), let bytes = try? FileIO.readBytes(path), bytes.count > 8 else { return nil }
        var length = 0
        for i in 0..<8 { length |= Int(bytes[i]) << (8 * i) }
        let keyBytes = Array(key.utf8)
        guard length == keyBytes.count, bytes.count > 8 + length,
              bytes[8..<(8 + length)].elementsEqual(keyBytes) else { return nil }
        let program = Array(bytes[(8 + length)...])
        return program.count % 8 == 0 ? program : nil
    }

    private func storeOnDisk(_ key: String, _ program: [UInt8]) {
        guard let directory, let path = path(for: key) else { return }
        if !FileIO.isDirectory(directory) { try? FileIO.makeDirectories(directory, mode: 0o700) }
        let keyBytes = Array(key.utf8)
        var bytes: [UInt8] = (0..<8).map { UInt8((keyBytes.count >> (8 * $0)) & 0xff) }
        bytes += keyBytes
        bytes += program
        try? FileIO.writeAtomically(path, bytes, mode: 0o600)
    }

    /// Everything the compiled program depends on, as text.
    static func key(_ profile: SeccompProfile, _ capabilities: CapabilitySet, _ kernel: KernelVersion) -> String {
        var v = "?"
        if let version = seccomp_version() {
            v = "\(version.pointee.major).\(version.pointee.minor).\(version.pointee.micro)"
        }
        return "berth-seccomp 1|libseccomp \(v)|native \(seccomp_arch_native())|kernel \(kernel)|caps \(String(capabilities.mask, radix: 16))|"
            + profile.canonicalText
    }

    /// 64-bit FNV-1a as hex: only a file name; the key text inside the file is what is trusted.
    static func fnv1a(_ text: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension SeccompProfile {
    /// An unambiguous text of everything that affects compilation (strings are length-prefixed).
    var canonicalText: String {
        var out = ""
        out.reserveCapacity(8192)
        func s(_ text: String?) {
            guard let text else { out += "~;"; return }
            out += "\(text.utf8.count):"
            out += text
        }
        func list(_ items: [String]?) {
            guard let items else { out += "~;"; return }
            out += "[\(items.count)"
            for i in items { s(i) }
            out += "]"
        }
        func filter(_ f: SeccompRuleFilter?) {
            guard let f else { out += "~;"; return }
            out += "{"
            list(f.caps); list(f.arches); s(f.minKernel)
            out += "}"
        }
        s(defaultAction.rawValue)
        out += "e\(defaultErrnoRet.map(String.init) ?? "~");"
        list(architectures)
        out += "m\(archMap?.count ?? -1)"
        for m in archMap ?? [] { s(m.architecture); list(m.subArchitectures) }
        list(flags)
        out += "r\(syscalls.count)"
        for rule in syscalls {
            out += "("
            list(rule.names)
            s(rule.action.rawValue)
            out += "e\(rule.errnoRet.map(String.init) ?? "~");a\(rule.args?.count ?? -1)"
            for a in rule.args ?? [] { out += "<\(a.index),\(a.value),\(a.valueTwo),\(a.op.libseccompValue)>" }
            filter(rule.includes)
            filter(rule.excludes)
            out += ")"
        }
        return out
    }
}
