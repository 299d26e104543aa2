import BerthSystem

/// Builds the `docker inspect` document of a container, with Docker's field names and order.
public enum InspectDocument {
    /// The inspect JSON value (print it with ``JSONValue/pretty(indent:)`` inside `[` `]`, as
    /// ``render(_:storeDirectory:)`` does, or evaluate `-f` templates on it).
    /// - Parameters:
    ///   - record: The container.
    ///   - storeDirectory: The container's state directory, for `HostsPath` and friends.
    ///   - networkName: The network the container is attached to.
    public static func make(_ record: ContainerRecord, storeDirectory: String? = nil, networkName: String = "bridge") -> JSONValue {
        let c = record.config, s = record.state
        let path = c.argv.first ?? ""
        let file = { (name: String) -> JSONValue in .string(storeDirectory.map { $0 + "/" + name } ?? "") }
        let state: JSONValue = .structure([
            ("Status", .string(s.isRunning && s.paused ? "paused" : s.status.rawValue)),
            ("Running", .bool(s.status == .running)),
            ("Paused", .bool(s.isRunning && s.paused)),
            ("Restarting", .bool(false)),
            ("OOMKilled", .bool(false)),
            ("Dead", .bool(s.status == .dead)),
            ("Pid", .int(Int64(s.isRunning ? s.pid : 0))),
            ("ExitCode", .int(Int64(s.exitCode))),
            ("Error", .string(s.error)),
            ("StartedAt", .string(s.startedAt.description)),
            ("FinishedAt", .string(s.finishedAt.description)),
        ])
        let bindings = portBindings(c.portSpecs)
        let hostConfig: JSONValue = .structure([
            ("Binds", .strings(c.volumes.filter { $0.hasPrefix("/") && $0.contains(":") })),
            ("NetworkMode", .string(c.networkMode == "bridge" ? "default" : c.networkMode)),
            ("PortBindings", .map(bindings.map { key, list in
                (key, .array(list.map { .structure([("HostIp", .string($0.ip)), ("HostPort", .string($0.port))]) }))
            })),
            ("AutoRemove", .bool(c.autoRemove)),
            ("VolumesFrom", .strings(c.volumesFrom)),
            ("CapAdd", .strings(c.capAdd)),
            ("CapDrop", .strings(c.capDrop)),
            ("Dns", .array(c.dns.map(JSONValue.string))),
            ("DnsOptions", .array(c.dnsOptions.map(JSONValue.string))),
            ("DnsSearch", .array(c.dnsSearch.map(JSONValue.string))),
            ("ExtraHosts", .strings(c.extraHosts)),
            ("Links", .strings(c.links.compactMap { link in
                let parts = link.split(separator: ":", maxSplits: 1).map { $0.hasPrefix("/") ? String($0.dropFirst()) : String($0) }
                guard let target = parts.first else { return nil }
                return "/\(target):/\(record.name)/\(parts.count > 1 ? parts[1] : target)"
            })),
            ("Privileged", .bool(c.privileged)),
            ("PublishAllPorts", .bool(c.publishAll)),
            ("ReadonlyRootfs", .bool(c.readOnlyRootfs)),
            ("SecurityOpt", .strings(c.securityOpt)),
            ("Memory", .int(c.memoryBytes ?? 0)),
            ("NanoCpus", .int(Int64(((c.cpus ?? 0) * 1e9).rounded()))),
            ("PidsLimit", c.pidsLimit.map { .int($0) } ?? .null),
        ])
        let mounts: JSONValue = .array(s.mounts.map { m in
            var members: [(String, JSONValue)] = [("Type", .string(m.type.rawValue))]
            if m.type == .volume { members.append(("Name", .string(m.name))) }
            members += [("Source", .string(m.source)), ("Destination", .string(m.destination))]
            if m.type == .volume { members.append(("Driver", .string("local"))) }
            members += [("Mode", .string(m.mode)), ("RW", .bool(m.rw)), ("Propagation", .string(m.propagation))]
            return .structure(members)
        })
        let volumePaths = c.imageVolumes + c.volumes.compactMap { v in (try? VolumeSpec(parsing: v)).flatMap { $0.source == .anonymous ? $0.destination : nil } }
        var config: [(String, JSONValue)] = [
            ("Hostname", .string(record.hostname)),
            ("Domainname", .string(c.domainname)),
            ("User", .string(c.user)),
            ("AttachStdin", .bool(c.openStdin)),
            ("AttachStdout", .bool(true)),
            ("AttachStderr", .bool(true)),
        ]
        let exposed = exposedPortKeys(c)
        if !exposed.isEmpty { config.append(("ExposedPorts", .map(exposed.map { ($0, .structure([])) }))) }
        config += [
            ("Tty", .bool(c.tty)),
            ("OpenStdin", .bool(c.openStdin)),
            ("StdinOnce", .bool(false)),
            ("Env", .strings(c.env)),
            ("Cmd", .strings(c.cmd)),
            ("Image", .string(c.image)),
            ("Volumes", volumePaths.isEmpty ? .null : .map(volumePaths.map { ($0, .structure([])) })),
            ("WorkingDir", .string(c.workingDir)),
            ("Entrypoint", .strings(c.entrypoint)),
            ("OnBuild", .null),
            ("Labels", .map(c.labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
        ]
        let ports: JSONValue = .map(s.isRunning ? exposed.map { key in
            let bound = s.ports.filter { "\($0.containerPort)/\($0.proto)" == key }
            return (key, bound.isEmpty ? .null : .array(bound.map {
                .structure([("HostIp", .string($0.hostIP)), ("HostPort", .string(String($0.hostPort)))])
            }))
        } : [])
        let ip = s.isRunning ? (s.ipAddress ?? "") : ""
        let gateway = s.isRunning ? (s.gateway ?? "") : ""
        let prefix = Int64(s.isRunning ? (s.ipPrefixLength ?? 0) : 0)
        let mac = s.isRunning ? (s.macAddress ?? "") : ""
        let endpoint: JSONValue = .structure([
            ("IPAMConfig", .null),
            ("Links", .null),
            ("Aliases", .null),
            ("NetworkID", .string("")),
            ("EndpointID", .string("")),
            ("Gateway", .string(gateway)),
            ("IPAddress", .string(ip)),
            ("IPPrefixLen", .int(prefix)),
            ("IPv6Gateway", .string("")),
            ("GlobalIPv6Address", .string("")),
            ("GlobalIPv6PrefixLen", .int(0)),
            ("MacAddress", .string(mac)),
            ("DriverOpts", .null),
        ])
        let attached = c.networkMode == "bridge" || !["host", "none"].contains(c.networkMode) && !c.networkMode.hasPrefix("container:")
        let network: JSONValue = .structure([
            ("Bridge", .string("")),
            ("SandboxID", .string("")),
            ("HairpinMode", .bool(false)),
            ("LinkLocalIPv6Address", .string("")),
            ("LinkLocalIPv6PrefixLen", .int(0)),
            ("Ports", ports),
            ("SandboxKey", .string(s.isRunning && s.pid > 0 ? "/proc/\(s.pid)/ns/net" : "")),
            ("SecondaryIPAddresses", .null),
            ("SecondaryIPv6Addresses", .null),
            ("EndpointID", .string("")),
            ("Gateway", .string(gateway)),
            ("GlobalIPv6Address", .string("")),
            ("GlobalIPv6PrefixLen", .int(0)),
            ("IPAddress", .string(ip)),
            ("IPPrefixLen", .int(prefix)),
            ("IPv6Gateway", .string("")),
            ("MacAddress", .string(mac)),
            ("Networks", .map(attached ? [(c.networkMode == "bridge" ? networkName : c.networkMode, endpoint)] : [])),
        ])
        return .structure([
            ("Id", .string(record.id.full)),
            ("Created", .string(record.created.description)),
            ("Path", .string(path)),
            ("Args", .array(c.argv.dropFirst().map(JSONValue.string))),
            ("State", state),
            ("Image", .string(c.image)),
            ("ResolvConfPath", file("resolv.conf")),
            ("HostnamePath", file("hostname")),
            ("HostsPath", file("hosts")),
            ("Name", .string("/" + record.name)),
            ("RestartCount", .int(0)),
            ("Driver", .string("overlay2")),
            ("Platform", .string("linux")),
            ("HostConfig", hostConfig),
            ("Mounts", mounts),
            ("Config", .structure(config)),
            ("NetworkSettings", network),
        ])
    }

    /// `docker inspect` output for several containers: a JSON array indented by four spaces.
    /// - Parameters:
    ///   - records: The containers.
    ///   - storeDirectory: Maps a container to its state directory.
    public static func render(_ records: [ContainerRecord], storeDirectory: (ContainerID) -> String? = { _ in nil }) -> String {
        JSONValue.array(records.map { make($0, storeDirectory: storeDirectory($0.id)) }).pretty() + "\n"
    }

    /// Exposed-port keys (`8080/tcp`), from `EXPOSE`/`--expose` and the container side of `-p`,
    /// sorted by number then protocol.
    static func exposedPortKeys(_ c: ContainerConfig) -> [String] {
        var keys = Set<String>()
        for e in c.exposedPorts {
            let parts = e.split(separator: "/")
            keys.insert(parts.count == 2 ? e.lowercased() : e + "/tcp")
        }
        for key in portBindings(c.portSpecs).map(\.0) { keys.insert(key) }
        return keys.sorted {
            let l = $0.split(separator: "/"), r = $1.split(separator: "/")
            let ln = Int(l[0]) ?? 0, rn = Int(r[0]) ?? 0
            return ln != rn ? ln < rn : $0 < $1
        }
    }

    /// `HostConfig.PortBindings` from `-p` strings, best effort: validation belongs to the port
    /// mapper, which rejects bad specs before a container is created.
    static func portBindings(_ specs: [String]) -> [(String, [(ip: String, port: String)])] {
        var result: [(String, [(ip: String, port: String)])] = []
        func add(_ key: String, _ binding: (ip: String, port: String)) {
            if let i = result.firstIndex(where: { $0.0 == key }) { result[i].1.append(binding) } else { result.append((key, [binding])) }
        }
        for spec in specs {
            let protoSplit = spec.split(separator: "/", maxSplits: 1)
            let proto = protoSplit.count == 2 ? protoSplit[1].lowercased() : "tcp"
            var parts = protoSplit.first.map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
            guard let containerPart = parts.popLast() else { continue }
            let hostPart = parts.popLast() ?? ""
            let ip = parts.joined(separator: ":")
            let containerRange = range(containerPart), hostRange = hostPart.isEmpty ? nil : range(hostPart)
            guard let containerRange else { continue }
            for (i, port) in containerRange.enumerated() {
                let host = hostRange.map { $0.count == containerRange.count ? String($0[i]) : "\($0.first!)-\($0.last!)" } ?? ""
                add("\(port)/\(proto)", (ip, host))
            }
        }
        return result
    }

    private static func range(_ text: String) -> [Int]? {
        let b = text.split(separator: "-").compactMap { Int($0) }
        guard !b.isEmpty, b.count <= 2, b.first! <= b.last! else { return nil }
        return Array(b.first!...b.last!)
    }
}
