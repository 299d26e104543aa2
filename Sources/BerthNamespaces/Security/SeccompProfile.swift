import BerthSystem

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// A seccomp profile in Docker's JSON format, which is a superset of the OCI runtime spec's
/// `linux.seccomp` object: `defaultAction`, `defaultErrnoRet`, `architectures` (OCI) or
/// `archMap` (Docker), `flags`, and `syscalls[]` rules that may carry argument conditions and
/// Docker's `includes` / `excludes` filters (capabilities, architectures, minimum kernel).
///
/// Load one with ``init(json:)`` or ``init(path:)``; ``dockerDefault`` is Berth's rendition of
/// Docker's default profile. Compile with ``SeccompCompiler``.
public struct SeccompProfile: Codable, Hashable, Sendable {
    /// What happens to a syscall no rule matches.
    public var defaultAction: SeccompAction
    /// The errno for `defaultAction` `SCMP_ACT_ERRNO` (EPERM when absent).
    public var defaultErrnoRet: UInt32?
    /// OCI form: the architectures to filter, as `SCMP_ARCH_X86_64`, `SCMP_ARCH_X86`, …
    public var architectures: [String]?
    /// Docker form: for each native architecture, the sub-architectures to add with it.
    public var archMap: [SeccompArchitectureMapping]?
    /// Load-time flags (`SECCOMP_FILTER_FLAG_LOG`, …). Accepted and validated, but the compiled
    /// program does not carry them (see Documentation/Security.md).
    public var flags: [String]?
    /// `SCMP_ACT_NOTIFY` listener socket (unsupported: profiles using it are rejected).
    public var listenerPath: String?
    /// Opaque data for the notify listener.
    public var listenerMetadata: String?
    /// The rules, in order.
    public var syscalls: [SeccompSyscallRule]

    /// - Parameters:
    ///   - defaultAction: The action for syscalls no rule matches.
    ///   - defaultErrnoRet: The errno for a default `SCMP_ACT_ERRNO`.
    ///   - architectures: OCI-style architecture list.
    ///   - archMap: Docker-style architecture map.
    ///   - flags: Load-time flags.
    ///   - syscalls: The rules.
    public init(defaultAction: SeccompAction, defaultErrnoRet: UInt32? = nil, architectures: [String]? = nil,
                archMap: [SeccompArchitectureMapping]? = nil, flags: [String]? = nil,
                syscalls: [SeccompSyscallRule] = []) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.archMap = archMap
        self.flags = flags
        self.listenerPath = nil
        self.listenerMetadata = nil
        self.syscalls = syscalls
    }

    enum CodingKeys: String, CodingKey {
        case defaultAction, defaultErrnoRet, architectures, archMap, flags, listenerPath, listenerMetadata, syscalls
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        defaultAction = try c.decode(SeccompAction.self, forKey: .defaultAction)
        defaultErrnoRet = try c.decodeIfPresent(UInt32.self, forKey: .defaultErrnoRet)
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        archMap = try c.decodeIfPresent([SeccompArchitectureMapping].self, forKey: .archMap)
        flags = try c.decodeIfPresent([String].self, forKey: .flags)
        listenerPath = try c.decodeIfPresent(String.self, forKey: .listenerPath)
        listenerMetadata = try c.decodeIfPresent(String.self, forKey: .listenerMetadata)
        syscalls = try c.decodeIfPresent([SeccompSyscallRule].self, forKey: .syscalls) ?? []
    }

    /// Parses and validates a profile.
    /// - Parameters:
    ///   - json: The JSON text.
    ///   - source: A name for messages (a file path).
    /// - Throws: `BerthError(.invalidArgument)` whose message names the source and the place in
    ///   the document (`syscalls[3].args[0].op`) and what is wrong there.
    public init(json: String, source: String = "seccomp profile") throws {
        try self.init(jsonBytes: Array(json.utf8), source: source)
    }

    /// Reads, parses and validates a profile file.
    /// - Parameter path: The file.
    public init(path: String) throws {
        try self.init(jsonBytes: try FileIO.readBytes(path), source: path)
    }

    private init(jsonBytes: [UInt8], source: String) throws {
        do {
            self = try JSONDecoder().decode(SeccompProfile.self, from: Data(jsonBytes))
        } catch let error as DecodingError {
            throw BerthError(.invalidArgument, "\(source): \(Self.describe(error))")
        } catch let error as BerthError {
            throw BerthError(.invalidArgument, "\(source): \(error.message)")
        } catch {
            throw BerthError(.invalidArgument, "\(source): not valid JSON (\(error))")
        }
        do { try validate() } catch let error as BerthError {
            throw BerthError(.invalidArgument, "\(source): \(error.message)")
        }
    }

    /// A copy that filters only the native architecture (x86_64 without x86 and x32): a program a
    /// third the size, cheaper for the kernel to install and run, at the price that syscalls from
    /// 32-bit binaries hit libseccomp's bad-architecture action (the thread is killed).
    public func restrictedToNativeArchitecture() -> SeccompProfile {
        var copy = self
        copy.archMap = nil
        copy.architectures = nil
        return copy
    }

    /// The profile as JSON (Docker's field names).
    public func jsonString() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Checks what the types alone cannot: argument indexes, errno fields, architecture names,
    /// flags, unsupported actions.
    /// - Throws: `BerthError(.invalidArgument)` naming the place in the document.
    public func validate() throws {
        func fail(_ path: String, _ why: String) -> BerthError { BerthError(.invalidArgument, "\(path): \(why)") }
        if defaultAction == .notify { throw fail("defaultAction", "SCMP_ACT_NOTIFY is not supported (no listener)") }
        if defaultErrnoRet != nil && defaultAction != .errno {
            throw fail("defaultErrnoRet", "only allowed with defaultAction SCMP_ACT_ERRNO")
        }
        if let architectures, archMap != nil, !architectures.isEmpty {
            throw fail("architectures", "use either architectures or archMap, not both")
        }
        for (i, arch) in (architectures ?? []).enumerated() where SeccompArchitecture(name: arch) == nil {
            throw fail("architectures[\(i)]", "unknown architecture \"\(arch)\"")
        }
        for (i, m) in (archMap ?? []).enumerated() {
            if SeccompArchitecture(name: m.architecture) == nil {
                throw fail("archMap[\(i)].architecture", "unknown architecture \"\(m.architecture)\"")
            }
            for (j, sub) in m.subArchitectures.enumerated() where SeccompArchitecture(name: sub) == nil {
                throw fail("archMap[\(i)].subArchitectures[\(j)]", "unknown architecture \"\(sub)\"")
            }
        }
        let knownFlags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                          "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
        for (i, flag) in (flags ?? []).enumerated() where !knownFlags.contains(flag) {
            throw fail("flags[\(i)]", "unknown flag \"\(flag)\"")
        }
        for (i, rule) in syscalls.enumerated() {
            let at = "syscalls[\(i)]"
            if rule.names.isEmpty { throw fail(at + ".names", "empty") }
            for (j, name) in rule.names.enumerated() where name.isEmpty { throw fail(at + ".names[\(j)]", "empty name") }
            if rule.action == .notify { throw fail(at + ".action", "SCMP_ACT_NOTIFY is not supported (no listener)") }
            if rule.errnoRet != nil && rule.action != .errno && rule.action != .trace {
                throw fail(at + ".errnoRet", "only allowed with action SCMP_ACT_ERRNO or SCMP_ACT_TRACE")
            }
            for (j, arg) in (rule.args ?? []).enumerated() where arg.index > 5 {
                throw fail(at + ".args[\(j)].index", "\(arg.index) is out of range 0...5")
            }
            for (label, cond) in [("includes", rule.includes), ("excludes", rule.excludes)] {
                guard let cond else { continue }
                for (j, cap) in (cond.caps ?? []).enumerated() {
                    do { _ = try Capability(parsing: cap) } catch let e as BerthError {
                        throw fail(at + ".\(label).caps[\(j)]", e.message)
                    }
                }
                if let k = cond.minKernel, KernelVersion(k) == nil {
                    throw fail(at + ".\(label).minKernel", "\"\(k)\" is not a kernel version like 4.8")
                }
            }
        }
    }

    /// Turns a decoding error into `path: what is wrong`.
    static func describe(_ error: DecodingError) -> String {
        func render(_ path: [any CodingKey]) -> String {
            var s = ""
            for key in path {
                if let i = key.intValue { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + key.stringValue }
            }
            return s.isEmpty ? "top level" : s
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            let parent = render(ctx.codingPath)
            return "\(parent == "top level" ? "" : parent + ": ")missing required field \"\(key.stringValue)\""
        case .typeMismatch(let type, let ctx):
            return "\(render(ctx.codingPath)): expected \(typeName(type))"
        case .valueNotFound(let type, let ctx):
            return "\(render(ctx.codingPath)): expected \(typeName(type)), found null"
        case .dataCorrupted(let ctx):
            if ctx.codingPath.isEmpty { return "not valid JSON (\(ctx.debugDescription))" }
            return "\(render(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is [String].Type: return "an array of strings"
        case is UInt32.Type, is UInt64.Type, is UInt.Type, is Int.Type: return "a non-negative integer"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a value of type \(name)"
        }
    }
}

/// Docker's `archMap` entry: a native architecture and the sub-architectures filtered with it.
public struct SeccompArchitectureMapping: Codable, Hashable, Sendable {
    /// e.g. `SCMP_ARCH_X86_64`.
    public var architecture: String
    /// e.g. `["SCMP_ARCH_X86", "SCMP_ARCH_X32"]`.
    public var subArchitectures: [String]

    /// - Parameters:
    ///   - architecture: The native architecture name.
    ///   - subArchitectures: Its compatible architectures.
    public init(architecture: String, subArchitectures: [String]) {
        self.architecture = architecture
        self.subArchitectures = subArchitectures
    }

    enum CodingKeys: String, CodingKey { case architecture, subArchitectures }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        architecture = try c.decode(String.self, forKey: .architecture)
        subArchitectures = try c.decodeIfPresent([String].self, forKey: .subArchitectures) ?? []
    }
}

/// One rule: a list of syscall names, an action, optional argument conditions, and Docker's
/// includes/excludes filters that decide whether the rule applies at all.
public struct SeccompSyscallRule: Codable, Hashable, Sendable {
    /// The syscall names (Docker's older single `name` field is accepted too).
    public var names: [String]
    /// What happens when the rule matches.
    public var action: SeccompAction
    /// The errno for `SCMP_ACT_ERRNO` (EPERM when absent) or the `SCMP_ACT_TRACE` message.
    public var errnoRet: UInt32?
    /// Argument conditions. All must hold (AND), except that conditions on the same argument
    /// index are added as separate rules (OR), as runc and Docker do.
    public var args: [SeccompArgumentCondition]?
    /// The rule applies only when all of these hold.
    public var includes: SeccompRuleFilter?
    /// The rule does not apply when any of these holds.
    public var excludes: SeccompRuleFilter?
    /// Free text.
    public var comment: String?

    /// - Parameters:
    ///   - names: The syscalls.
    ///   - action: The action.
    ///   - errnoRet: The errno for `SCMP_ACT_ERRNO`.
    ///   - args: Argument conditions.
    ///   - includes: Conditions for the rule to apply.
    ///   - excludes: Conditions that disable the rule.
    public init(names: [String], action: SeccompAction, errnoRet: UInt32? = nil, args: [SeccompArgumentCondition]? = nil,
                includes: SeccompRuleFilter? = nil, excludes: SeccompRuleFilter? = nil) {
        self.names = names
        self.action = action
        self.errnoRet = errnoRet
        self.args = args
        self.includes = includes
        self.excludes = excludes
        self.comment = nil
    }

    enum CodingKeys: String, CodingKey { case names, name, action, errnoRet, args, includes, excludes, comment }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var names = try c.decodeIfPresent([String].self, forKey: .names) ?? []
        if let single = try c.decodeIfPresent(String.self, forKey: .name) { names.append(single) }
        if names.isEmpty && !c.contains(.names) {
            throw DecodingError.keyNotFound(CodingKeys.names, .init(codingPath: c.codingPath, debugDescription: "no names"))
        }
        self.names = names
        action = try c.decode(SeccompAction.self, forKey: .action)
        errnoRet = try c.decodeIfPresent(UInt32.self, forKey: .errnoRet)
        args = try c.decodeIfPresent([SeccompArgumentCondition].self, forKey: .args)
        includes = try c.decodeIfPresent(SeccompRuleFilter.self, forKey: .includes)
        excludes = try c.decodeIfPresent(SeccompRuleFilter.self, forKey: .excludes)
        comment = try c.decodeIfPresent(String.self, forKey: .comment)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(names, forKey: .names)
        try c.encode(action, forKey: .action)
        try c.encodeIfPresent(errnoRet, forKey: .errnoRet)
        try c.encodeIfPresent(args, forKey: .args)
        try c.encodeIfPresent(includes, forKey: .includes)
        try c.encodeIfPresent(excludes, forKey: .excludes)
        try c.encodeIfPresent(comment, forKey: .comment)
    }
}

/// A condition on one syscall argument: `args[index] <op> value` (for `SCMP_CMP_MASKED_EQ`:
/// `args[index] & value == valueTwo`).
public struct SeccompArgumentCondition: Codable, Hashable, Sendable {
    /// The argument, 0 ... 5.
    public var index: UInt
    /// The operand (the mask for `SCMP_CMP_MASKED_EQ`).
    public var value: UInt64
    /// The second operand (the expected value for `SCMP_CMP_MASKED_EQ`).
    public var valueTwo: UInt64
    /// The comparison.
    public var op: SeccompComparison

    /// - Parameters:
    ///   - index: The argument index.
    ///   - value: The operand.
    ///   - valueTwo: The second operand.
    ///   - op: The comparison.
    public init(index: UInt, value: UInt64, valueTwo: UInt64 = 0, op: SeccompComparison) {
        self.index = index
        self.value = value
        self.valueTwo = valueTwo
        self.op = op
    }

    enum CodingKeys: String, CodingKey { case index, value, valueTwo, op }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        index = try c.decode(UInt.self, forKey: .index)
        value = try c.decode(UInt64.self, forKey: .value)
        valueTwo = try c.decodeIfPresent(UInt64.self, forKey: .valueTwo) ?? 0
        op = try c.decode(SeccompComparison.self, forKey: .op)
    }
}

/// Docker's `includes` / `excludes`: capabilities (in the bounding set), architectures (Go names
/// such as `amd64`, `x32`, `arm64`) and a minimum kernel version (`4.8`).
public struct SeccompRuleFilter: Codable, Hashable, Sendable {
    /// Capability names.
    public var caps: [String]?
    /// Architectures, in Go's naming (`amd64`, `386`/`x86`, `x32`, `arm64`, `arm`, …).
    public var arches: [String]?
    /// A kernel version such as `4.8`.
    public var minKernel: String?

    /// - Parameters:
    ///   - caps: Capability names.
    ///   - arches: Architecture names.
    ///   - minKernel: A minimum kernel version.
    public init(caps: [String]? = nil, arches: [String]? = nil, minKernel: String? = nil) {
        self.caps = caps
        self.arches = arches
        self.minKernel = minKernel
    }
}

/// A seccomp action, spelled as in the JSON (`SCMP_ACT_ALLOW`, …).
public enum SeccompAction: String, Codable, Hashable, Sendable, CaseIterable {
    /// Kill the thread (old name of `SCMP_ACT_KILL_THREAD`).
    case kill = "SCMP_ACT_KILL"
    /// Kill the calling thread.
    case killThread = "SCMP_ACT_KILL_THREAD"
    /// Kill the whole process.
    case killProcess = "SCMP_ACT_KILL_PROCESS"
    /// Send SIGSYS.
    case trap = "SCMP_ACT_TRAP"
    /// Fail with `errnoRet` (EPERM when absent).
    case errno = "SCMP_ACT_ERRNO"
    /// Notify a ptrace tracer (ENOSYS without one).
    case trace = "SCMP_ACT_TRACE"
    /// Run the syscall.
    case allow = "SCMP_ACT_ALLOW"
    /// Run the syscall and log it.
    case log = "SCMP_ACT_LOG"
    /// Ask a user-space listener (not supported).
    case notify = "SCMP_ACT_NOTIFY"

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let value = SeccompAction(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription:
                "unknown action \"\(text)\" (expected one of \(Self.allCases.map(\.rawValue).joined(separator: ", ")))"))
        }
        self = value
    }

    /// The libseccomp action value, with `errno` for `SCMP_ACT_ERRNO` / `SCMP_ACT_TRACE`.
    func value(errno: UInt32?) -> UInt32 {
        switch self {
        case .kill, .killThread: return 0x0000_0000
        case .killProcess: return 0x8000_0000
        case .trap: return 0x0003_0000
        case .errno: return 0x0005_0000 | ((errno ?? 1) & 0xffff)
        case .trace: return 0x7ff0_0000 | ((errno ?? 0) & 0xffff)
        case .log: return 0x7ffc_0000
        case .allow: return 0x7fff_0000
        case .notify: return 0x7fc0_0000
        }
    }
}

/// An argument comparison, spelled as in the JSON (`SCMP_CMP_EQ`, …).
public enum SeccompComparison: String, Codable, Hashable, Sendable, CaseIterable {
    /// `arg != value`.
    case notEqual = "SCMP_CMP_NE"
    /// `arg < value`.
    case lessThan = "SCMP_CMP_LT"
    /// `arg <= value`.
    case lessOrEqual = "SCMP_CMP_LE"
    /// `arg == value`.
    case equal = "SCMP_CMP_EQ"
    /// `arg >= value`.
    case greaterOrEqual = "SCMP_CMP_GE"
    /// `arg > value`.
    case greaterThan = "SCMP_CMP_GT"
    /// `arg & value == valueTwo`.
    case maskedEqual = "SCMP_CMP_MASKED_EQ"

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let value = SeccompComparison(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription:
                "unknown comparison \"\(text)\" (expected one of \(Self.allCases.map(\.rawValue).joined(separator: ", ")))"))
        }
        self = value
    }

    /// libseccomp's `enum scmp_compare` value.
    var libseccompValue: UInt32 {
        switch self {
        case .notEqual: return 1
        case .lessThan: return 2
        case .lessOrEqual: return 3
        case .equal: return 4
        case .greaterOrEqual: return 5
        case .greaterThan: return 6
        case .maskedEqual: return 7
        }
    }
}

/// A kernel version `major.minor` (patch levels are ignored, as Docker does for `minKernel`).
public struct KernelVersion: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// The major number (6 in 6.18).
    public var major: Int
    /// The minor number (18 in 6.18).
    public var minor: Int

    /// - Parameters:
    ///   - major: e.g. 4.
    ///   - minor: e.g. 8.
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// Parses `4.8`, `5.15.0-91-generic`, `6.18.44-fc`; `nil` if it does not start with N.N.
    /// - Parameter text: The version text.
    public init?(_ text: String) {
        var numbers: [Int] = []
        var current = ""
        for ch in text {
            if ch.isASCII && ch.isNumber { current.append(ch); continue }
            guard let n = Int(current) else { break }
            numbers.append(n)
            current = ""
            if ch != "." || numbers.count == 2 { break }
        }
        if numbers.count < 2, let n = Int(current) { numbers.append(n) }
        guard numbers.count >= 2 else { return nil }
        self.init(major: numbers[0], minor: numbers[1])
    }

    /// `major.minor`.
    public var description: String { "\(major).\(minor)" }

    public static func < (a: KernelVersion, b: KernelVersion) -> Bool { (a.major, a.minor) < (b.major, b.minor) }

    /// The running kernel's version (from uname).
    public static let running: KernelVersion = {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return KernelVersion(release) ?? KernelVersion(major: 0, minor: 0)
    }()
}
