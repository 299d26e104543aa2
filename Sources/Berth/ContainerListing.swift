import BerthSystem

/// Aligns rows into columns the way Docker's CLI does (Go's tabwriter with a minimum cell width of
/// 10 and 3 spaces of padding; the last column is not padded).
public enum TableFormatter {
    /// The rows as text, one line each, ending with a newline.
    /// - Parameter rows: The header row first; every row should have the same number of cells.
    public static func render(_ rows: [[String]]) -> String {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (i, cell) in row.enumerated() where i < row.count - 1 {
                widths[i] = max(widths[i], max(10, cell.count + 3))
            }
        }
        var out = ""
        for row in rows {
            for (i, cell) in row.enumerated() {
                out += cell
                if i < row.count - 1 { out += String(repeating: " ", count: widths[i] - cell.count) }
            }
            out += "\n"
        }
        return out
    }
}

/// Docker's human-readable durations and statuses.
public enum HumanTime {
    /// Docker's `HumanDuration`: `Less than a second`, `1 second`, `5 seconds`, `About a minute`,
    /// `3 minutes`, `About an hour`, `5 hours`, `3 days`, `2 weeks`, `4 months`, `2 years`.
    /// - Parameter seconds: The duration in seconds.
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s < 1 { return "Less than a second" }
        if s == 1 { return "1 second" }
        if s < 60 { return "\(s) seconds" }
        let minutes = Int(seconds / 60)
        if minutes == 1 { return "About a minute" }
        if minutes < 60 { return "\(minutes) minutes" }
        let hours = Int(seconds / 3600 + 0.5)
        if hours == 1 { return "About an hour" }
        if hours < 48 { return "\(hours) hours" }
        if hours < 24 * 7 * 2 { return "\(hours / 24) days" }
        if hours < 24 * 30 * 2 { return "\(hours / 24 / 7) weeks" }
        if hours < 24 * 365 * 2 { return "\(hours / 24 / 30) months" }
        return "\(Int(seconds / 3600) / 24 / 365) years"
    }

    /// The `STATUS` column: `Created`, `Up 3 seconds`, `Up 3 seconds (Paused)`, `Exited (0) 2 minutes ago`, `Dead`.
    /// - Parameters:
    ///   - state: The container's state.
    ///   - now: The current time.
    public static func status(_ state: ContainerState, now: Timestamp = .now()) -> String {
        switch state.status {
        case .created: return "Created"
        case .running: return "Up " + duration(state.startedAt.seconds(until: now)) + (state.paused ? " (Paused)" : "")
        case .exited:
            if state.finishedAt.isZero { return "Exited (\(state.exitCode))" }
            return "Exited (\(state.exitCode)) \(duration(state.finishedAt.seconds(until: now))) ago"
        case .dead: return "Dead"
        }
    }
}

/// `docker ps` rendering.
public enum ContainerListing {
    /// The column headers of `docker ps`.
    public static let headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]

    /// The `ps` table.
    /// - Parameters:
    ///   - records: The containers, in display order (newest first).
    ///   - now: The current time.
    ///   - truncate: Whether to shorten ids and commands (`--no-trunc` turns it off).
    public static func table(_ records: [ContainerRecord], now: Timestamp = .now(), truncate: Bool = true) -> String {
        TableFormatter.render([headers] + records.map { row($0, now: now, truncate: truncate) })
    }

    /// One `ps` row.
    /// - Parameters:
    ///   - record: The container.
    ///   - now: The current time.
    ///   - truncate: Whether to shorten the id and the command.
    public static func row(_ record: ContainerRecord, now: Timestamp = .now(), truncate: Bool = true) -> [String] {
        var exposed: [(UInt16, String)] = []
        for spec in record.config.exposedPorts {
            let parts = spec.split(separator: "/")
            if let n = parts.first.flatMap({ UInt16($0) }) { exposed.append((n, parts.count > 1 ? String(parts[1]) : "tcp")) }
        }
        return [
            truncate ? record.id.short : record.id.full,
            record.config.image,
            command(record.config.argv, truncate: truncate),
            HumanTime.duration(record.created.seconds(until: now)) + " ago",
            HumanTime.status(record.state, now: now),
            record.state.isRunning ? ports(published: record.state.ports, exposed: exposed) : "",
            record.name,
        ]
    }

    /// The `COMMAND` column: the argv joined by spaces, cut to 20 characters with `…`, then quoted
    /// like Go's `strconv.Quote`.
    /// - Parameters:
    ///   - argv: Entrypoint plus command.
    ///   - truncate: Whether to cut it.
    public static func command(_ argv: [String], truncate: Bool = true) -> String {
        var text = argv.joined(separator: " ")
        if truncate && text.count > 20 { text = String(text.prefix(19)) + "…" }
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\t": quoted += "\\t"
            case "\r": quoted += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    quoted += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
                } else {
                    quoted.unicodeScalars.append(scalar)
                }
            }
        }
        return quoted + "\""
    }

    /// The `PORTS` column, grouped as Docker does: published ports whose host and container numbers
    /// match and exposed-only ports are merged into consecutive ranges
    /// (`0.0.0.0:8000-8002->8000-8002/tcp`, `53/udp`); other mappings are listed one by one at the
    /// end (`0.0.0.0:18080->8080/tcp`).
    /// - Parameters:
    ///   - published: Bound ports.
    ///   - exposed: Exposed ports (number, protocol); those also published are not repeated.
    public static func ports(published: [PublishedPort], exposed: [(UInt16, String)] = []) -> String {
        struct Entry { var ip: String; var publicPort: UInt16; var privatePort: UInt16; var proto: String }
        var entries = published.map { Entry(ip: $0.hostIP, publicPort: $0.hostPort, privatePort: $0.containerPort, proto: $0.proto) }
        for (n, proto) in exposed where !published.contains(where: { $0.containerPort == n && $0.proto == proto }) {
            if !entries.contains(where: { $0.ip.isEmpty && $0.privatePort == n && $0.proto == proto }) {
                entries.append(Entry(ip: "", publicPort: 0, privatePort: n, proto: proto))
            }
        }
        entries.sort {
            if $0.privatePort != $1.privatePort { return $0.privatePort < $1.privatePort }
            if $0.ip != $1.ip { return $0.ip < $1.ip }
            if $0.publicPort != $1.publicPort { return $0.publicPort < $1.publicPort }
            return $0.proto < $1.proto
        }
        func hostPort(_ ip: String, _ port: String) -> String { ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)" }
        func group(_ key: (ip: String, proto: String), _ first: UInt16, _ last: UInt16) -> String {
            let range = first == last ? "\(first)" : "\(first)-\(last)"
            return key.ip.isEmpty ? "\(range)/\(key.proto)" : "\(hostPort(key.ip, range))->\(range)/\(key.proto)"
        }
        var order: [String] = []
        var groups: [String: (key: (ip: String, proto: String), first: UInt16, last: UInt16)] = [:]
        var result: [String] = []
        var mappings: [String] = []
        for e in entries {
            if !e.ip.isEmpty && e.publicPort != e.privatePort {
                mappings.append("\(hostPort(e.ip, String(e.publicPort)))->\(e.privatePort)/\(e.proto)")
                continue
            }
            let k = e.ip + "/" + e.proto
            guard let g = groups[k] else {
                groups[k] = ((e.ip, e.proto), e.privatePort, e.privatePort)
                order.append(k)
                continue
            }
            if e.privatePort == g.last &+ 1 {
                groups[k]!.last = e.privatePort
            } else {
                result.append(group(g.key, g.first, g.last))
                groups[k] = (g.key, e.privatePort, e.privatePort)
            }
        }
        for k in order { let g = groups[k]!; result.append(group(g.key, g.first, g.last)) }
        return (result + mappings).joined(separator: ", ")
    }
}
