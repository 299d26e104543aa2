import BerthSystem

/// Generates a container's `/etc/resolv.conf` from the host's, the way Docker does on the default
/// bridge network.
///
/// Without `--dns`, `--dns-search` or `--dns-option`, the container gets the host's file minus the
/// nameservers it cannot reach from its own network namespace: loopback ones (`127.x.x.x`, `::1`)
/// and, unless IPv6 is enabled, IPv6 ones. Comments, `search`, `domain` and `options` lines stay
/// as they are. If no nameserver is left, Google's public servers `8.8.8.8` and `8.8.4.4` are
/// appended, as Docker does. With any of the three flags, the file is rebuilt as `search`,
/// `nameserver` and `options` lines, taking what the flags give and the host's values (filtered as
/// above) for the rest.
public enum ResolvConf {
    /// Docker's fallback nameservers when the host has only loopback ones.
    public static let defaultNameservers = ["8.8.8.8", "8.8.4.4"]
    /// Docker's IPv6 fallback nameservers, used when IPv6 is enabled.
    public static let defaultIPv6Nameservers = ["2001:4860:4860::8888", "2001:4860:4860::8844"]

    /// The host file to start from: `/etc/resolv.conf`, or systemd-resolved's upstream file
    /// when `/etc/resolv.conf` only points at the local stub resolver 127.0.0.53 (Docker does the
    /// same).
    /// - Parameter root: A prefix for tests; `""` for the real host.
    public static func hostFilePath(root: String = "") -> String {
        let main = root + "/etc/resolv.conf"
        let upstream = root + "/run/systemd/resolve/resolv.conf"
        if let text = try? FileIO.read(main), nameservers(in: text) == ["127.0.0.53"], FileIO.exists(upstream) {
            return upstream
        }
        return main
    }

    /// The container's file content.
    /// - Parameters:
    ///   - host: The host's resolv.conf content (empty when it has none).
    ///   - dns: `--dns` servers.
    ///   - search: `--dns-search` domains (`.` alone means none).
    ///   - options: `--dns-option` values.
    ///   - ipv6: Whether the container has IPv6 (keeps IPv6 nameservers).
    public static func content(host: String, dns: [String] = [], search: [String] = [], options: [String] = [],
                               ipv6: Bool = false) -> String {
        let filtered = filter(host, ipv6: ipv6)
        if dns.isEmpty && search.isEmpty && options.isEmpty { return filtered }

        var out = ""
        let domains = search.isEmpty ? searchDomains(in: filtered) : search
        if !domains.isEmpty, domains.joined(separator: " ").trimmingSpaces() != "." {
            out += "search " + domains.joined(separator: " ") + "\n"
        }
        for server in dns.isEmpty ? nameservers(in: filtered) : dns { out += "nameserver \(server)\n" }
        let opts = options.isEmpty ? self.options(in: filtered) : options
        if !opts.isEmpty, !opts.joined(separator: " ").trimmingSpaces().isEmpty {
            out += "options " + opts.joined(separator: " ") + "\n"
        }
        return out
    }

    /// The host content without unreachable nameservers, with Docker's fallback servers appended
    /// if none is left.
    /// - Parameters:
    ///   - host: The host's resolv.conf content.
    ///   - ipv6: Whether to keep IPv6 nameservers.
    public static func filter(_ host: String, ipv6: Bool = false) -> String {
        var lines: [Substring] = []
        for line in host.split(separator: "\n", omittingEmptySubsequences: false) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, fields[0] == "nameserver" {
                let server = String(fields[1])
                if isLoopback(server) || (!ipv6 && server.contains(":")) { continue }
            }
            lines.append(line)
        }
        var text = lines.joined(separator: "\n")
        if nameservers(in: text).isEmpty {
            if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
            for server in defaultNameservers + (ipv6 ? defaultIPv6Nameservers : []) { text += "nameserver \(server)\n" }
        }
        return text
    }

    /// The `nameserver` addresses in file order.
    /// - Parameter text: resolv.conf content.
    public static func nameservers(in text: String) -> [String] { values(of: "nameserver", in: text).compactMap(\.first) }

    /// The domains of the last `search` (or `domain`) line.
    /// - Parameter text: resolv.conf content.
    public static func searchDomains(in text: String) -> [String] {
        var result: [String] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if let first = fields.first, first == "search" || first == "domain" { result = Array(fields.dropFirst()) }
        }
        return result
    }

    /// The values of the last `options` line.
    /// - Parameter text: resolv.conf content.
    public static func options(in text: String) -> [String] { values(of: "options", in: text).last ?? [] }

    private static func values(of keyword: String, in text: String) -> [[String]] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.first == keyword, fields.count >= 2 else { return nil }
            return Array(fields.dropFirst())
        }
    }

    private static func isLoopback(_ server: String) -> Bool {
        if server == "::1" { return true }
        return IPv4Address(server)?.isLoopback ?? false
    }
}
