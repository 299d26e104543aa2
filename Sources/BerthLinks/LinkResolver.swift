import BerthSystem

/// A link whose target was found and is running: everything needed for the environment and for
/// `/etc/hosts`.
public struct ResolvedLink: Sendable, Equatable {
    /// The alias the linking container uses.
    public var alias: String
    /// The linked container.
    public var target: LinkTarget

    /// - Parameters:
    ///   - alias: The alias.
    ///   - target: The linked container.
    public init(alias: String, target: LinkTarget) {
        self.alias = alias
        self.target = target
    }

    /// The `/etc/hosts` entry Docker writes for this link: the alias, the target's hostname, and
    /// its name when that differs from the alias.
    public var hostsEntry: HostsEntry {
        var names = [alias, target.hostname]
        if alias != target.name { names.append(target.name) }
        return HostsEntry(address: target.ipAddress?.description ?? "", names: names)
    }
}

/// Turns `--link` arguments into ``ResolvedLink`` values through a lookup the engine supplies.
public struct LinkResolver: Sendable {
    /// Finds a container by name or id; returns `nil` when there is none.
    public typealias Lookup = @Sendable (String) throws -> LinkTarget?

    private let lookup: Lookup

    /// - Parameter lookup: Finds a container by name or id (the engine's state store).
    public init(lookup: @escaping Lookup) { self.lookup = lookup }

    /// Resolves every link, failing on the first one whose target is missing, stopped or has no
    /// address, or on an alias used twice.
    /// - Parameter specs: The `--link` arguments in command-line order.
    /// - Parameter linkingContainerName: The name of the container being created (for messages).
    /// - Returns: The links in the same order.
    public func resolve(_ specs: [LinkSpec], linkingContainerName: String) throws -> [ResolvedLink] {
        var seen = Set<String>()
        var result: [ResolvedLink] = []
        for spec in specs {
            guard seen.insert(spec.alias).inserted else {
                throw BerthError(.invalidArgument, "invalid link \"\(spec)\": alias \"\(spec.alias)\" is used by another link")
            }
            guard let target = try lookup(spec.target) else {
                throw BerthError(.notFound, "could not get container for \(spec.target): No such container: \(spec.target)")
            }
            guard target.isRunning else {
                throw BerthError(.invalidState,
                                 "Cannot link to a non running container: /\(target.name) AS /\(linkingContainerName)/\(spec.alias)")
            }
            guard target.ipAddress != nil else {
                throw BerthError(.invalidState,
                                 "Cannot link to /\(target.name): it has no address on the default bridge network")
            }
            result.append(ResolvedLink(alias: spec.alias, target: target))
        }
        return result
    }
}

extension Array where Element == ResolvedLink {
    /// The environment variables of all links, in link order.
    /// - Parameter linkingContainerName: The linking container's name without `/`.
    public func environment(linkingContainerName: String) -> [String] {
        flatMap { LinkEnvironment.variables(alias: $0.alias, linkingContainerName: linkingContainerName, target: $0.target) }
    }
}
