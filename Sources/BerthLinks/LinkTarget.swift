import BerthSystem

/// What the link code needs to know about a container that another container links to.
///
/// The engine builds one from its state store; BerthLinks never reads the store itself.
public struct LinkTarget: Sendable, Equatable {
    /// The container's name without the leading `/` (`myredis`).
    public var name: String
    /// The container's identifier.
    public var id: ContainerID
    /// The container's hostname (Docker's default is the 12-digit short id).
    public var hostname: String
    /// The container's address on the default bridge; `nil` when it has none.
    public var ipAddress: IPv4Address?
    /// The ports the container exposes (image `EXPOSE`, `--expose`, published ports).
    public var exposedPorts: [ExposedPort]
    /// The container's configured environment, `KEY=value` strings as given at create time
    /// (image env then `-e`), not the runtime additions such as `HOSTNAME`.
    public var environment: [String]
    /// Whether the container is running now.
    public var isRunning: Bool

    /// - Parameters:
    ///   - name: The name without `/`.
    ///   - id: The identifier.
    ///   - hostname: The hostname; `nil` means the short id, as Docker does.
    ///   - ipAddress: Its address on the default bridge.
    ///   - exposedPorts: Exposed ports in any order.
    ///   - environment: `KEY=value` strings.
    ///   - isRunning: Whether it runs.
    public init(name: String, id: ContainerID, hostname: String? = nil, ipAddress: IPv4Address?,
                exposedPorts: [ExposedPort] = [], environment: [String] = [], isRunning: Bool = true) {
        self.name = name.hasPrefix("/") ? String(name.dropFirst()) : name
        self.id = id
        self.hostname = hostname ?? id.short
        self.ipAddress = ipAddress
        self.exposedPorts = exposedPorts
        self.environment = environment
        self.isRunning = isRunning
    }
}

/// A `--link` argument: `name:alias` or `name` (the alias is then the name).
public struct LinkSpec: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The linked container's name or id, without a leading `/`.
    public var target: String
    /// The name the linking container knows it by.
    public var alias: String

    /// - Parameters:
    ///   - target: The container's name or id.
    ///   - alias: The alias; defaults to the target.
    public init(target: String, alias: String? = nil) {
        self.target = target
        self.alias = alias ?? target
    }

    /// Parses `name[:alias]`. Leading `/` on either part is dropped, as Docker does.
    /// - Parameter text: The `--link` value.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map {
            $0.hasPrefix("/") ? String($0.dropFirst()) : String($0)
        }
        guard parts.count <= 2, parts.allSatisfy({ !$0.isEmpty && !$0.contains("/") }) else {
            throw BerthError(.invalidArgument, "invalid link \"\(text)\": expected NAME or NAME:ALIAS")
        }
        self.init(target: parts[0], alias: parts.count == 2 ? parts[1] : nil)
    }

    /// `name:alias`, the form Docker stores in `HostConfig.Links` minus the slashes.
    public var description: String { "\(target):\(alias)" }
}
