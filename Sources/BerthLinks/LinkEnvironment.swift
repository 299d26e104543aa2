import BerthSystem

/// The environment variables a legacy `--link` injects, in Docker's exact order and spelling.
///
/// For a link `myredis:redis` from container `pensive_panini` to a container at 172.17.0.2 that
/// exposes 6379/tcp, Docker 20.10 produces:
///
///     REDIS_PORT=tcp://172.17.0.2:6379
///     REDIS_PORT_6379_TCP=tcp://172.17.0.2:6379
///     REDIS_PORT_6379_TCP_ADDR=172.17.0.2
///     REDIS_PORT_6379_TCP_PORT=6379
///     REDIS_PORT_6379_TCP_PROTO=tcp
///     REDIS_NAME=/pensive_panini/redis
///
/// followed by `REDIS_ENV_<key>=<value>` for the target's configured environment except `HOME`
/// and `PATH`. Runs of three or more consecutive port numbers also get a block of `_START`,
/// `_ADDR`, `_PROTO`, `_PORT_START`, `_END`, `_PORT_END` variables named after the run's first
/// port, emitted before the per-port variables (two consecutive ports are not a run, and the run
/// detection looks at numbers only, not protocols: both are Docker's behaviour, kept on purpose so
/// that scripts written against Docker see the same variables).
public enum LinkEnvironment {
    /// The variable-name prefix for an alias: uppercased, `-` replaced by `_` (Docker changes
    /// nothing else, so `my.db` gives `MY.DB`).
    /// - Parameter alias: The link alias.
    public static func prefix(forAlias alias: String) -> String {
        String(alias.uppercased().map { $0 == "-" ? "_" : $0 })
    }

    /// The link's environment variables as `KEY=value` strings, in Docker's order.
    /// - Parameters:
    ///   - alias: The alias the linking container uses (`redis`).
    ///   - linkingContainerName: The linking container's name, without `/` (`pensive_panini`).
    ///   - target: The linked container.
    public static func variables(alias: String, linkingContainerName: String, target: LinkTarget) -> [String] {
        let a = prefix(forAlias: alias)
        let ip = target.ipAddress?.description ?? ""
        let ports = Array(Set(target.exposedPorts)).sorted()
        var env: [String] = []
        env.reserveCapacity(2 + ports.count * 4)

        if let first = ports.first {
            env.append("\(a)_PORT=\(first.proto)://\(ip):\(first.port)")
        }

        var i = 0
        while i < ports.count {
            let start = ports[i]
            let last = endOfRun(ports, from: i)
            guard last > i + 1 else { i += 1; continue }
            let end = ports[last]
            let key = "\(a)_PORT_\(start.port)_\(start.proto.rawValue.uppercased())"
            let endKey = "\(a)_PORT_\(start.port)_\(end.proto.rawValue.uppercased())"
            env.append("\(key)_START=\(start.proto)://\(ip):\(start.port)")
            env.append("\(key)_ADDR=\(ip)")
            env.append("\(key)_PROTO=\(start.proto)")
            env.append("\(key)_PORT_START=\(start.port)")
            env.append("\(endKey)_END=\(end.proto)://\(ip):\(end.port)")
            env.append("\(endKey)_PORT_END=\(end.port)")
            i = last + 1
        }

        for p in ports {
            let key = "\(a)_PORT_\(p.port)_\(p.proto.rawValue.uppercased())"
            env.append("\(key)=\(p.proto)://\(ip):\(p.port)")
            env.append("\(key)_ADDR=\(ip)")
            env.append("\(key)_PORT=\(p.port)")
            env.append("\(key)_PROTO=\(p.proto)")
        }

        env.append("\(a)_NAME=/\(linkingContainerName)/\(alias)")

        for entry in target.environment {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            let key = entry[..<eq]
            if key == "HOME" || key == "PATH" { continue }
            env.append("\(a)_ENV_\(key)=\(entry[entry.index(after: eq)...])")
        }
        return env
    }

    /// The index of the last port of the run that starts at `index`. Like Docker, it advances the
    /// expected number by one per element whatever the element's protocol or number, and stops at
    /// the first number that jumps ahead.
    private static func endOfRun(_ ports: [ExposedPort], from index: Int) -> Int {
        var expected = Int(ports[index].port)
        var k = index + 1
        while k < ports.count {
            if Int(ports[k].port) > expected + 1 { return k - 1 }
            expected += 1
            k += 1
        }
        return ports.count - 1
    }
}

/// The process environment of a container, assembled the way Docker does it.
public enum ContainerEnvironment {
    /// Docker's default `PATH` for Linux containers.
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// `PATH`, `HOSTNAME`, `TERM=xterm` with a tty, the link variables, then the configured
    /// environment (image env then `-e`), where a configured `KEY=value` replaces an earlier entry
    /// with the same key in place and anything else is appended; finally `HOME` if still missing
    /// (runc adds it from the user's home directory; Docker's containers show it last).
    /// - Parameters:
    ///   - hostname: The container's hostname.
    ///   - tty: Whether the container has a terminal.
    ///   - links: Link variables from ``LinkEnvironment/variables(alias:linkingContainerName:target:)``.
    ///   - configured: `KEY=value` strings from the image and `-e`.
    ///   - home: The `HOME` to add when none is configured; `nil` adds none.
    public static func build(hostname: String, tty: Bool = false, links: [String] = [], configured: [String],
                             home: String? = "/root") -> [String] {
        var env = ["PATH=\(defaultPath)", "HOSTNAME=\(hostname)"]
        if tty { env.append("TERM=xterm") }
        env += links
        // Docker's ReplaceOrAppendEnvValues: only the defaults are indexed (a later duplicate key
        // wins), a bare `KEY` without `=` removes that default, and configured entries are never
        // merged with each other.
        var position: [Substring: Int] = [:]
        for (i, e) in env.enumerated() { position[key(e)] = i }
        var removed = Set<Int>()
        for e in configured {
            let k = key(e)
            guard e.contains("=") else {
                if let i = position[k] { removed.insert(i) }
                continue
            }
            if let i = position[k] { env[i] = e; removed.remove(i) } else { env.append(e) }
        }
        env = env.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        let hasHome = env.contains { key($0) == "HOME" }
        if let home, !hasHome { env.append("HOME=\(home)") }
        return env
    }

    private static func key(_ entry: String) -> Substring {
        entry.firstIndex(of: "=").map { entry[..<$0] } ?? Substring(entry)
    }
}
