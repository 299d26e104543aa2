import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// One `/etc/hosts` line: an address, a tab, then names separated by spaces.
public struct HostsEntry: Sendable, Equatable, Codable {
    /// The address as text (IPv4 or IPv6).
    public var address: String
    /// The host names, the canonical one first.
    public var names: [String]

    /// - Parameters:
    ///   - address: IPv4 or IPv6 address text.
    ///   - names: Host names.
    public init(address: String, names: [String]) {
        self.address = address
        self.names = names
    }

    /// The line without its newline: `172.17.0.2\tredis a740da6694ef myredis`.
    public var line: String { "\(address)\t\(names.joined(separator: " "))" }

    /// Parses an `--add-host` value `NAME:ADDRESS` (split at the first colon so that IPv6
    /// addresses work), as Docker does.
    /// - Parameter text: For example `db.local:10.0.0.5` or `v6:fd00::1`.
    public init(addHost text: String) throws {
        guard let colon = text.firstIndex(of: ":") else {
            throw BerthError(.invalidArgument, "bad format for add-host: \"\(text)\": expected NAME:ADDRESS")
        }
        let name = String(text[..<colon]), address = String(text[text.index(after: colon)...])
        guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "\t" }) else {
            throw BerthError(.invalidArgument, "bad format for add-host: \"\(text)\": empty or blank host name")
        }
        guard HostsEntry.isIPAddress(address) else {
            throw BerthError(.invalidArgument, "invalid IP address in add-host: \"\(address)\"")
        }
        self.init(address: address, names: [name])
    }

    static func isIPAddress(_ text: String) -> Bool {
        var buf = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, text, &buf) == 1 || inet_pton(AF_INET6, text, &buf) == 1
    }
}

/// Builds a container's `/etc/hosts` exactly as Docker 20.10 does, and rewrites a linked
/// container's address in place when it restarts with a new one.
///
/// Docker's layout: the localhost and IPv6 block, then `--add-host` entries, then one line per
/// link (`IP\talias hostname [name]`), then the container's own line (`IP\thostname`, or
/// `IP\tfqdn hostname` when the hostname has a domain).
public enum HostsFile {
    /// The fixed block at the top of every file Docker writes.
    public static let defaultEntries: [HostsEntry] = [
        HostsEntry(address: "127.0.0.1", names: ["localhost"]),
        HostsEntry(address: "::1", names: ["localhost", "ip6-localhost", "ip6-loopback"]),
        HostsEntry(address: "fe00::0", names: ["ip6-localnet"]),
        HostsEntry(address: "ff00::0", names: ["ip6-mcastprefix"]),
        HostsEntry(address: "ff02::1", names: ["ip6-allnodes"]),
        HostsEntry(address: "ff02::2", names: ["ip6-allrouters"]),
    ]

    /// The container's own entry: `hostname`, or `fqdn short` when the hostname (joined with
    /// `domainname`) contains a dot.
    /// - Parameters:
    ///   - address: The container's address.
    ///   - hostname: Its hostname.
    ///   - domainname: Its domain name, if any.
    public static func ownEntry(address: String, hostname: String, domainname: String? = nil) -> HostsEntry {
        var fqdn = hostname
        if let domainname, !domainname.isEmpty { fqdn += "." + domainname }
        if let dot = fqdn.firstIndex(of: ".") {
            return HostsEntry(address: address, names: [fqdn, String(fqdn[..<dot])])
        }
        return HostsEntry(address: address, names: [fqdn])
    }

    /// The file's content.
    /// - Parameters:
    ///   - hostname: The container's hostname.
    ///   - domainname: Its domain name, if any.
    ///   - address: Its address; `nil` (no network) leaves out its own line.
    ///   - extraHosts: `--add-host` entries in command-line order.
    ///   - links: Resolved links in command-line order.
    public static func content(hostname: String, domainname: String? = nil, address: IPv4Address?,
                               extraHosts: [HostsEntry] = [], links: [ResolvedLink] = []) -> String {
        var entries = defaultEntries + extraHosts + links.map(\.hostsEntry)
        if let address { entries.append(ownEntry(address: address.description, hostname: hostname, domainname: domainname)) }
        return entries.map { $0.line + "\n" }.joined()
    }

    /// Changes, in place, the address of every line whose first name is `alias`, leaving all
    /// other bytes alone.
    ///
    /// The file is bind-mounted into a running container, so it must keep its inode: it is
    /// rewritten through the same open file (write from offset 0, then truncate to the new
    /// length) under an exclusive `flock` on that file, so two processes updating it serialise.
    /// - Parameters:
    ///   - path: The hosts file of the linking container.
    ///   - alias: The link alias naming the restarted container.
    ///   - address: Its new address.
    /// - Returns: The number of lines changed (0 when no line names `alias`).
    @discardableResult
    public static func rewriteAddress(at path: String, alias: String, to address: IPv4Address) throws -> Int {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw BerthError.system("open hosts file \(path)") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw BerthError.system("lock hosts file \(path)") }
        }
        let old = try readAll(fd, path: path)
        var changed = 0
        var lines = String(decoding: old, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for (i, line) in lines.enumerated() {
            guard let tab = line.firstIndex(of: "\t") else { continue }
            let names = line[line.index(after: tab)...].split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard names.first.map(String.init) == alias else { continue }
            lines[i] = address.description + line[tab...]
            changed += 1
        }
        guard changed > 0 else { return 0 }
        let new = Array(lines.joined(separator: "\n").utf8)
        var off = 0
        while off < new.count {
            let n = new.withUnsafeBytes { pwrite(fd, $0.baseAddress! + off, $0.count - off, off_t(off)) }
            if n < 0 { if errno == EINTR { continue }; throw BerthError.system("write hosts file \(path)") }
            off += n
        }
        guard ftruncate(fd, off_t(new.count)) == 0 else { throw BerthError.system("truncate hosts file \(path)") }
        return changed
    }

    private static func readAll(_ fd: Int32, path: String) throws -> [UInt8] {
        var result: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        var off: off_t = 0
        while true {
            let n = pread(fd, &buf, buf.count, off)
            if n < 0 { if errno == EINTR { continue }; throw BerthError.system("read hosts file \(path)") }
            if n == 0 { return result }
            result += buf[0..<n]
            off += off_t(n)
        }
    }
}

/// `/etc/hostname`: the hostname and a newline.
public enum HostnameFile {
    /// The file's content.
    /// - Parameter hostname: The container's hostname.
    public static func content(hostname: String) -> String { hostname + "\n" }
}
