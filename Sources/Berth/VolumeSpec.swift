import BerthSystem

/// A mount the container gets, as Docker's inspect `Mounts` lists it.
public struct MountPoint: Codable, Sendable, Equatable {
    /// How the source is provided.
    public enum Kind: String, Codable, Sendable {
        /// A host path (`-v /host:/ctr`).
        case bind
        /// A volume of the ``VolumeStore`` (named or anonymous).
        case volume
    }

    /// Bind or volume.
    public var type: Kind
    /// The volume name (64 hex digits for an anonymous one); empty for a bind.
    public var name: String
    /// The host path mounted (a volume's `_data` directory for volumes).
    public var source: String
    /// The absolute path inside the container.
    public var destination: String
    /// Whether the mount is writable.
    public var rw: Bool
    /// The mode text as given (`ro`, `rw,z`, …), empty when none was.
    public var mode: String
    /// Mount propagation (`rprivate` unless the mode says otherwise); empty for volumes, as Docker.
    public var propagation: String
    /// Whether the volume is anonymous (removed with `rm -v`).
    public var anonymous: Bool

    /// - Parameters:
    ///   - type: Bind or volume.
    ///   - name: The volume name; empty for a bind.
    ///   - source: The host path.
    ///   - destination: The container path.
    ///   - rw: Writable or not.
    ///   - mode: The mode text.
    ///   - propagation: Mount propagation.
    ///   - anonymous: Whether an anonymous volume.
    public init(type: Kind, name: String = "", source: String, destination: String, rw: Bool = true, mode: String = "",
                propagation: String = "", anonymous: Bool = false) {
        self.type = type
        self.name = name
        self.source = source
        self.destination = destination
        self.rw = rw
        self.mode = mode
        self.propagation = propagation
        self.anonymous = anonymous
    }
}

/// A parsed `-v` argument.
public struct VolumeSpec: Sendable, Equatable {
    /// Where the data comes from.
    public enum Source: Sendable, Equatable {
        /// `-v /ctr`: a new anonymous volume.
        case anonymous
        /// `-v name:/ctr`: a named volume, created on first use.
        case named(String)
        /// `-v /host:/ctr`: a host path.
        case hostPath(String)
    }

    /// The source.
    public var source: Source
    /// The absolute container path (cleaned: no trailing or doubled `/`).
    public var destination: String
    /// Whether writable (`ro` makes it read-only).
    public var rw: Bool
    /// The mode text as given, empty when none.
    public var mode: String
    /// The propagation named in the mode, if any.
    public var propagation: String?

    /// Parses a `-v` value: `/ctr`, `name:/ctr[:mode]` or `/host:/ctr[:mode]`, where mode is a
    /// comma-separated list of `ro`/`rw`, `z`/`Z`, `nocopy` and one propagation
    /// (`private`, `rprivate`, `shared`, `rshared`, `slave`, `rslave`).
    /// - Parameter text: The `-v` value.
    public init(parsing text: String) throws {
        func invalid(_ why: String) -> BerthError {
            BerthError(.invalidArgument, "invalid volume specification: '\(text)': \(why)")
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var sourceText: String?
        let target: String
        var modeText = ""
        switch parts.count {
        case 1:
            target = parts[0]
        case 2:
            if VolumeSpec.parseMode(parts[1]) != nil { throw invalid("a volume cannot have a mode without a source") }
            sourceText = parts[0]
            target = parts[1]
        case 3:
            sourceText = parts[0]
            target = parts[1]
            modeText = parts[2]
        default:
            throw invalid("expected [SOURCE:]DESTINATION[:MODE]")
        }
        guard !target.isEmpty else { throw invalid("empty destination") }
        guard target.hasPrefix("/") else { throw invalid("destination \"\(target)\" must be an absolute path") }
        let dest = VolumeSpec.clean(target)
        guard dest != "/" else { throw invalid("destination can't be '/'") }
        guard let mode = VolumeSpec.parseMode(modeText) else {
            throw BerthError(.invalidArgument, "invalid volume specification: '\(text)': invalid mode: \(modeText)")
        }
        if let s = sourceText {
            if s.isEmpty { throw invalid("empty source") }
            if s.hasPrefix("/") {
                source = .hostPath(VolumeSpec.clean(s))
            } else {
                guard VolumeSpec.isValidVolumeName(s) else {
                    throw invalid("\"\(s)\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")
                }
                source = .named(s)
            }
        } else {
            source = .anonymous
        }
        if case .hostPath = source {} else if mode.propagation != nil {
            throw invalid("propagation mode is only valid for bind mounts")
        }
        destination = dest
        rw = mode.rw
        self.mode = modeText
        propagation = mode.propagation
    }

    /// Docker's volume-name rule, the same as container names.
    public static func isValidVolumeName(_ name: String) -> Bool { (try? ContainerName.validate(name)) == name }

    /// Parses a mode list; `nil` when invalid. An empty text is valid (read-write).
    static func parseMode(_ text: String) -> (rw: Bool, propagation: String?)? {
        if text.isEmpty { return (true, nil) }
        var rw: Bool?, label = false, copy = false, propagation: String?
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            switch item {
            case "ro", "rw":
                if rw != nil { return nil }
                rw = item == "rw"
            case "z", "Z":
                if label { return nil }
                label = true
            case "nocopy":
                if copy { return nil }
                copy = true
            case "private", "rprivate", "shared", "rshared", "slave", "rslave":
                if propagation != nil { return nil }
                propagation = String(item)
            default:
                return nil
            }
        }
        return (rw ?? true, propagation)
    }

    /// `/a//b/` → `/a/b`; `.` components are dropped and `..` resolved lexically.
    static func clean(_ path: String) -> String {
        var parts: [Substring] = []
        for p in path.split(separator: "/") {
            if p == "." { continue }
            if p == ".." { _ = parts.popLast(); continue }
            parts.append(p)
        }
        return "/" + parts.joined(separator: "/")
    }
}

/// A parsed `--volumes-from` argument: `container[:ro|rw]`.
public struct VolumesFromSpec: Sendable, Equatable {
    /// The container's name or id.
    public var container: String
    /// `true` forces read-write, `false` read-only, `nil` keeps each mount's own mode.
    public var rw: Bool?

    /// - Parameter text: `container`, `container:ro` or `container:rw`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), !parts[0].isEmpty else {
            throw BerthError(.invalidArgument, "invalid --volumes-from \"\(text)\": expected CONTAINER[:ro|rw]")
        }
        container = parts[0]
        if parts.count == 2 {
            guard let mode = VolumeSpec.parseMode(parts[1]), mode.propagation == nil else {
                throw BerthError(.invalidArgument, "invalid mode: \(parts[1])")
            }
            rw = parts[1].split(separator: ",").contains { $0 == "ro" || $0 == "rw" } ? mode.rw : nil
        }
    }
}
