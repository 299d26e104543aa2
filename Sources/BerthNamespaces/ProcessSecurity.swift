/// The security settings a container's first process gets, fully prepared by the parent before
/// clone so that the child only has to apply them (no allocation, no parsing between clone and exec).
///
/// The child applies them after pivot_root, in this order: masked paths, read-only paths,
/// capabilities (bounding set first), `no_new_privs`, and the seccomp filter last, just before exec.
public struct ProcessSecurity: Sendable, Equatable {
    /// Sets `PR_SET_NO_NEW_PRIVS`: setuid binaries and file capabilities cannot raise privileges.
    public var noNewPrivileges: Bool
    /// The capability sets to install; `nil` leaves the process's capabilities as they are.
    public var capabilities: CapabilityMasks?
    /// A compiled classic-BPF seccomp program: an array of `struct sock_filter` (8 bytes each),
    /// native endianness. `nil` means unconfined.
    public var seccompFilter: [UInt8]?
    /// Paths (inside the container) hidden by bind-mounting /dev/null (files) or an empty read-only
    /// tmpfs (directories) over them. Paths that do not exist are skipped.
    public var maskedPaths: [String]
    /// Paths (inside the container) re-mounted read-only. Paths that do not exist are skipped.
    public var readonlyPaths: [String]

    /// - Parameters:
    ///   - noNewPrivileges: Whether to set no_new_privs.
    ///   - capabilities: The capability sets, or `nil` to keep the current ones.
    ///   - seccompFilter: A compiled BPF program, or `nil` for none.
    ///   - maskedPaths: Paths to mask.
    ///   - readonlyPaths: Paths to make read-only.
    public init(noNewPrivileges: Bool = false, capabilities: CapabilityMasks? = nil, seccompFilter: [UInt8]? = nil,
                maskedPaths: [String] = [], readonlyPaths: [String] = []) {
        self.noNewPrivileges = noNewPrivileges
        self.capabilities = capabilities
        self.seccompFilter = seccompFilter
        self.maskedPaths = maskedPaths
        self.readonlyPaths = readonlyPaths
    }

    /// No restrictions at all (what `--privileged` starts from).
    public static let unrestricted = ProcessSecurity()
}

/// The five Linux capability sets as bit masks (bit N = capability number N, e.g. bit 21 is
/// CAP_SYS_ADMIN).
public struct CapabilityMasks: Sendable, Equatable {
    public var bounding: UInt64
    public var effective: UInt64
    public var permitted: UInt64
    public var inheritable: UInt64
    public var ambient: UInt64

    public init(bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64 = 0, ambient: UInt64 = 0) {
        self.bounding = bounding
        self.effective = effective
        self.permitted = permitted
        self.inheritable = inheritable
        self.ambient = ambient
    }

    /// The same mask in bounding, effective and permitted (what Docker does for root in a container).
    public init(all mask: UInt64) {
        self.init(bounding: mask, effective: mask, permitted: mask)
    }
}
