import BerthNamespaces
import BerthNetLink
import BerthSystem

/// How a container is networked (`docker run --network`).
public enum NetworkMode: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A new network namespace with a veth on the bridge network (the default).
    case bridge
    /// No new network namespace: the container shares the host's.
    case host
    /// A new network namespace with only the loopback device, up.
    case none
    /// Join the network namespace of another container (by id or name); nothing is attached.
    case container(String)

    /// Parses `bridge`, `default`, `host`, `none` or `container:<id or name>`.
    /// - Throws: `.invalidArgument` naming the text.
    public init(parsing text: String) throws {
        switch text {
        case "bridge", "default", "": self = .bridge
        case "host": self = .host
        case "none": self = .none
        default:
            if text.hasPrefix("container:") {
                let target = String(text.dropFirst("container:".count))
                guard !target.isEmpty else {
                    throw BerthError(.invalidArgument, "invalid network mode \"\(text)\": container: needs a container id or name")
                }
                self = .container(target)
            } else {
                throw BerthError(.invalidArgument,
                    "invalid network mode \"\(text)\": expected bridge, host, none or container:<id>")
            }
        }
    }

    /// Whether the container gets a network namespace of its own (bridge and none).
    public var createsNamespace: Bool {
        switch self {
        case .bridge, .none: return true
        case .host, .container: return false
        }
    }

    /// Whether a bridge endpoint must be attached (and detached) for the container.
    public var attachesToBridge: Bool { self == .bridge }

    /// For `container:X`, the container whose namespace is joined.
    public var joinedContainer: String? {
        if case .container(let id) = self { return id }
        return nil
    }

    public var description: String {
        switch self {
        case .bridge: return "bridge"
        case .host: return "host"
        case .none: return "none"
        case .container(let id): return "container:\(id)"
        }
    }

    public init(from decoder: any Decoder) throws { try self.init(parsing: try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    /// Prepares a namespace made for a container in `none` (or, before attaching, `bridge`) mode:
    /// raises its loopback device, which a fresh `CLONE_NEWNET` namespace has down.
    /// - Parameter namespace: The container's network namespace.
    public static func raiseLoopback(in namespace: NetworkNamespace) throws {
        try namespace.run { try NetlinkSession().setUp(index: 1, name: "lo") }
    }
}
