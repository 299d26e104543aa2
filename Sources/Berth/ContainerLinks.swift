import BerthLinks
import BerthSystem

extension LinkTarget {
    /// The link view of a stored container: its name, hostname, bridge address (when running),
    /// exposed ports (image `EXPOSE`, `--expose` and the container side of `-p`, as Docker adds
    /// published ports to `ExposedPorts`) and configured environment.
    /// - Parameter record: The container.
    public init(record: ContainerRecord) {
        let ports = InspectDocument.exposedPortKeys(record.config).flatMap { (try? ExposedPort.parse($0)) ?? [] }
        self.init(name: record.name, id: record.id, hostname: record.hostname,
                  ipAddress: record.state.isRunning ? record.state.ipAddress.flatMap(IPv4Address.init) : nil,
                  exposedPorts: ports, environment: record.config.env, isRunning: record.state.isRunning)
    }
}

extension StateStore {
    /// A ``LinkResolver`` that finds link targets in this store (by id, name or id prefix).
    public func linkResolver() -> LinkResolver {
        LinkResolver { [self] reference in
            guard let id = try? self.resolve(reference) else { return nil }
            return LinkTarget(record: try self.load(id))
        }
    }

    /// After `target` restarted with a new address, rewrites in place the `/etc/hosts` of every
    /// running container linking to it (`containers/<id>/hosts`, bind-mounted into them), changing
    /// only the lines for the aliases that name `target`.
    /// - Parameters:
    ///   - target: The container that got a new address.
    ///   - address: Its new address.
    /// - Returns: The containers whose hosts file changed.
    @discardableResult
    public func refreshHostsOfContainersLinking(to target: ContainerID, address: IPv4Address) throws -> [ContainerID] {
        var changed: [ContainerID] = []
        for record in try list() where record.state.isRunning && record.id != target {
            let hosts = directory(of: record.id) + "/hosts"
            guard FileIO.exists(hosts) else { continue }
            var count = 0
            for link in record.state.linkTargets where link.target == target {
                count += try HostsFile.rewriteAddress(at: hosts, alias: link.alias, to: address)
            }
            if count > 0 { changed.append(record.id) }
        }
        return changed
    }
}

/// The paths of a container's generated `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`,
/// which the spawner bind-mounts into it.
public struct NetworkFiles: Sendable, Equatable {
    /// The hosts file.
    public var hosts: String
    /// The hostname file.
    public var hostname: String
    /// The resolv.conf file.
    public var resolvConf: String

    /// Writes the three files into the container's store directory (before it starts; later
    /// changes to `hosts` go through ``HostsFile/rewriteAddress(at:alias:to:)`` so the inode stays).
    /// - Parameters:
    ///   - record: The container, with its address in `state.ipAddress` (none for `--network none`).
    ///   - links: Its resolved links.
    ///   - directory: Where to write (``StateStore/directory(of:)``).
    ///   - hostResolvConf: The host's resolv.conf content (see ``ResolvConf/hostFilePath(root:)``).
    public static func write(for record: ContainerRecord, links: [ResolvedLink], in directory: String,
                             hostResolvConf: String) throws -> NetworkFiles {
        let c = record.config
        let extra = try c.extraHosts.map(HostsEntry.init(addHost:))
        let files = NetworkFiles(hosts: directory + "/hosts", hostname: directory + "/hostname",
                                 resolvConf: directory + "/resolv.conf")
        let address = record.state.ipAddress.flatMap(IPv4Address.init)
        // Not fsynced: they are written anew at every start.
        try FileIO.writeAtomically(files.hosts, HostsFile.content(hostname: record.hostname, domainname: c.domainname,
                                                                  address: address, extraHosts: extra, links: links),
                                   durable: false)
        try FileIO.writeAtomically(files.hostname, HostnameFile.content(hostname: record.hostname), durable: false)
        try FileIO.writeAtomically(files.resolvConf, ResolvConf.content(host: hostResolvConf, dns: c.dns, search: c.dnsSearch,
                                                                        options: c.dnsOptions), durable: false)
        return files
    }
}
