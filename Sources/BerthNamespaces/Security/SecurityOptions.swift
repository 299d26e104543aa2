import BerthSystem

/// Everything `docker run` lets a user say about a container's confinement — `--cap-add`,
/// `--cap-drop`, `--privileged`, `--security-opt …` — resolved into the ``ProcessSecurity`` the
/// spawner applies.
///
/// Defaults follow Docker: the 14 default capabilities, the default seccomp profile, runc's
/// masked and read-only /proc and /sys paths, and `no_new_privs` OFF unless
/// `--security-opt no-new-privileges` is given.
///
/// ```swift
/// var options = SecurityOptions(capAdd: ["NET_ADMIN"])
/// try options.apply(securityOpt: "no-new-privileges")
/// let security = try options.resolve()   // hand to the spawner
/// ```
public struct SecurityOptions: Hashable, Sendable {
    /// Which seccomp filter the container gets.
    public enum Seccomp: Hashable, Sendable {
        /// ``SeccompProfile/dockerDefault``.
        case dockerDefault
        /// No filter (`--security-opt seccomp=unconfined`).
        case unconfined
        /// A custom profile (`--security-opt seccomp=PROFILE.json`).
        case profile(SeccompProfile)
    }

    /// The seccomp choice. Ignored when ``privileged`` (a privileged container is unconfined).
    public var seccomp: Seccomp
    /// `--cap-add` values (`NET_ADMIN`, `cap_sys_time`, `ALL`).
    public var capAdd: [String]
    /// `--cap-drop` values (`MKNOD`, `ALL`).
    public var capDrop: [String]
    /// `--privileged`: every capability, no seccomp, no masked or read-only paths, every device.
    public var privileged: Bool
    /// `--security-opt no-new-privileges`: set `PR_SET_NO_NEW_PRIVS` (honoured even with
    /// ``privileged``, as Docker does).
    public var noNewPrivileges: Bool
    /// `--security-opt systempaths=unconfined`: no masked or read-only paths.
    public var unconfinedSystemPaths: Bool
    /// Filter only the native architecture (see ``SeccompProfile/restrictedToNativeArchitecture()``):
    /// off by default, as Docker filters x86 and x32 too; turning it on makes container starts
    /// cheaper and refuses 32-bit binaries.
    public var nativeArchitectureOnly: Bool
    /// Options that were accepted but need no action here (`apparmor=unconfined`,
    /// `label=disable`), as notes a CLI may print.
    public var notes: [String]

    /// - Parameters:
    ///   - seccomp: The seccomp choice.
    ///   - capAdd: `--cap-add` values.
    ///   - capDrop: `--cap-drop` values.
    ///   - privileged: `--privileged`.
    ///   - noNewPrivileges: `--security-opt no-new-privileges`.
    public init(seccomp: Seccomp = .dockerDefault, capAdd: [String] = [], capDrop: [String] = [],
                privileged: Bool = false, noNewPrivileges: Bool = false) {
        self.seccomp = seccomp
        self.capAdd = capAdd
        self.capDrop = capDrop
        self.privileged = privileged
        self.noNewPrivileges = noNewPrivileges
        self.unconfinedSystemPaths = false
        self.nativeArchitectureOnly = false
        self.notes = []
    }

    /// Builds options from `docker run`-style flags.
    /// - Parameters:
    ///   - securityOpts: `--security-opt` values, applied in order.
    ///   - capAdd: `--cap-add` values.
    ///   - capDrop: `--cap-drop` values.
    ///   - privileged: `--privileged`.
    /// - Throws: `BerthError(.invalidArgument)` for a malformed option or an unreadable or invalid
    ///   profile, `BerthError(.unsupported)` for AppArmor / SELinux confinement Berth cannot give.
    public init(securityOpts: [String], capAdd: [String] = [], capDrop: [String] = [], privileged: Bool = false) throws {
        self.init(capAdd: capAdd, capDrop: capDrop, privileged: privileged)
        for opt in securityOpts { try apply(securityOpt: opt) }
    }

    /// Applies one `--security-opt` value. Docker's forms are accepted, with `=` or the legacy `:`:
    /// - `seccomp=unconfined`, `seccomp=builtin` (the default), `seccomp=PATH` (a JSON profile file)
    ///   or `seccomp={…}` (the profile inline);
    /// - `no-new-privileges`, `no-new-privileges=true|false`;
    /// - `systempaths=unconfined`;
    /// - `apparmor=unconfined` and `label=disable`: accepted (Berth applies no AppArmor profile and
    ///   no SELinux label), recorded in ``notes``;
    /// - any other `apparmor=` / `label=` value asks for confinement Berth cannot apply, so it is
    ///   refused rather than silently ignored.
    /// - Parameter securityOpt: The value, e.g. `seccomp=/etc/profile.json`.
    public mutating func apply(securityOpt: String) throws {
        let text = securityOpt.trimmingSpaces()
        let separator = text.firstIndex(where: { $0 == "=" || $0 == ":" })
        let key = separator.map { String(text[..<$0]) } ?? text
        let value = separator.map { String(text[text.index(after: $0)...]) }
        func invalid(_ why: String) -> BerthError {
            BerthError(.invalidArgument, "invalid --security-opt \"\(securityOpt)\": \(why)")
        }
        switch key.lowercased() {
        case "no-new-privileges":
            switch value?.lowercased() {
            case nil, "true", "1": noNewPrivileges = true
            case "false", "0": noNewPrivileges = false
            default: throw invalid("expected no-new-privileges, no-new-privileges=true or no-new-privileges=false")
            }
        case "seccomp":
            guard let value, !value.isEmpty else { throw invalid("expected seccomp=unconfined or seccomp=PROFILE.json") }
            switch value {
            case "unconfined": seccomp = .unconfined
            case "builtin", "default": seccomp = .dockerDefault
            default:
                if value.hasPrefix("{") {
                    seccomp = .profile(try SeccompProfile(json: value, source: "seccomp profile given inline"))
                } else {
                    guard FileIO.exists(value) else {
                        throw BerthError(.notFound, "seccomp profile \(value) does not exist")
                    }
                    seccomp = .profile(try SeccompProfile(path: value))
                }
            }
        case "systempaths":
            guard value == "unconfined" else { throw invalid("the only value is systempaths=unconfined") }
            unconfinedSystemPaths = true
        case "apparmor":
            guard let value, !value.isEmpty else { throw invalid("expected apparmor=PROFILE") }
            guard value == "unconfined" else {
                throw BerthError(.unsupported, "--security-opt \"\(securityOpt)\": Berth does not apply AppArmor profiles; refusing to run without the confinement asked for (use apparmor=unconfined)")
            }
            notes.append("apparmor=unconfined: Berth applies no AppArmor profile anyway")
        case "label":
            guard let value, !value.isEmpty else { throw invalid("expected label=disable or label=TYPE:VALUE") }
            guard value == "disable" else {
                throw BerthError(.unsupported, "--security-opt \"\(securityOpt)\": Berth does not apply SELinux labels (only label=disable is accepted)")
            }
            notes.append("label=disable: Berth applies no SELinux label anyway")
        default:
            throw invalid("unknown option \"\(key)\" (expected seccomp, no-new-privileges, systempaths, apparmor or label)")
        }
    }

    private static let nativeDefault = SeccompProfile.dockerDefault.restrictedToNativeArchitecture()

    /// The container's capabilities after `--cap-add`, `--cap-drop` and `--privileged`.
    /// - Throws: `BerthError(.invalidArgument)` naming an unknown capability.
    public func capabilities() throws -> CapabilitySet {
        try CapabilitySet.resolving(base: .dockerDefault, add: capAdd, drop: capDrop, privileged: privileged)
    }

    /// The devices cgroup policy: Docker's default list, or everything when ``privileged``.
    public var deviceRules: [DeviceRule] { privileged ? DeviceRule.allowAll : DeviceRule.dockerDefault }

    /// Resolves everything into what the spawner applies. The seccomp program is compiled once per
    /// (profile, capabilities) and cached in `cache`.
    /// - Parameter cache: Where compiled programs are remembered; an engine passes one backed by a
    ///   directory under its state root so that every process after the first skips libseccomp.
    /// - Throws: `BerthError(.invalidArgument)` for an unknown capability or a profile that does not compile.
    public func resolve(cache: SeccompProgramCache = .shared) throws -> ProcessSecurity {
        let caps = try capabilities()
        var filter: [UInt8]? = nil
        if !privileged {
            switch seccomp {
            case .dockerDefault:
                filter = try cache.program(for: nativeArchitectureOnly ? Self.nativeDefault : .dockerDefault, capabilities: caps)
            case .unconfined: filter = nil
            case .profile(let profile):
                filter = try cache.program(for: nativeArchitectureOnly ? profile.restrictedToNativeArchitecture() : profile,
                                           capabilities: caps)
            }
        }
        let confinedPaths = !privileged && !unconfinedSystemPaths
        return ProcessSecurity(noNewPrivileges: noNewPrivileges, capabilities: caps.processMasks, seccompFilter: filter,
                               maskedPaths: confinedPaths ? ContainerPaths.masked : [],
                               readonlyPaths: confinedPaths ? ContainerPaths.readonly : [])
    }
}
