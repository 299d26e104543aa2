import BerthSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import BerthLinks

/// Captured from Docker 20.10 (see /work/shared/reference/docker-link-etc-hosts.txt).
private let dockerHosts = """
    127.0.0.1\tlocalhost
    ::1\tlocalhost ip6-localhost ip6-loopback
    fe00::0\tip6-localnet
    ff00::0\tip6-mcastprefix
    ff02::1\tip6-allnodes
    ff02::2\tip6-allrouters
    172.17.0.2\tredis a740da6694ef myredis
    172.17.0.3\t19931baf99c4

    """

private func redis(ip: String = "172.17.0.2", name: String = "myredis") throws -> LinkTarget {
    LinkTarget(name: name, id: try ContainerID("a740da6694ef" + String(repeating: "1", count: 52)), ipAddress: IPv4Address(ip))
}

@Test func hostsFileIsByteIdenticalToDocker() throws {
    let links = [ResolvedLink(alias: "redis", target: try redis())]
    let text = HostsFile.content(hostname: "19931baf99c4", address: IPv4Address("172.17.0.3"), links: links)
    #expect(text == dockerHosts)
}

@Test func hostsFileOrdersAddHostThenLinksThenOwnEntry() throws {
    let links = [ResolvedLink(alias: "myredis", target: try redis())]
    let text = HostsFile.content(hostname: "web", domainname: "example.com", address: IPv4Address("10.0.0.3"),
                                 extraHosts: [try HostsEntry(addHost: "db.local:10.1.1.1"), try HostsEntry(addHost: "v6:fd00::1")],
                                 links: links)
    let tail = text.split(separator: "\n").suffix(4).joined(separator: "\n")
    #expect(tail == "10.1.1.1\tdb.local\nfd00::1\tv6\n172.17.0.2\tmyredis a740da6694ef\n10.0.0.3\tweb.example.com web")
}

@Test func badAddHostIsRejected() {
    for bad in ["nocolon", ":1.2.3.4", "x:", "x:1.2.3", "x:hello", "a b:1.2.3.4"] {
        #expect(throws: BerthError.self) { try HostsEntry(addHost: bad) }
    }
}

@Test func rewriteKeepsTheInodeAndChangesOnlyTheTargetLine() throws {
    let dir = try FileIO.makeTemporaryDirectory(prefix: "berth-links-\(getpid())-")
    defer { try? FileIO.removeTree(dir) }
    let path = dir + "/hosts"
    let links = [ResolvedLink(alias: "redis", target: try redis()),
                 ResolvedLink(alias: "cache", target: try redis(ip: "172.17.0.9", name: "memcache"))]
    let before = HostsFile.content(hostname: "19931baf99c4", address: IPv4Address("172.17.0.3"), links: links)
    func hosts(redisIP: String) -> String {
        HostsFile.defaultEntries.map { $0.line + "\n" }.joined()
            + "\(redisIP)\tredis a740da6694ef myredis\n172.17.0.9\tcache a740da6694ef memcache\n172.17.0.3\t19931baf99c4\n"
    }
    #expect(before == hosts(redisIP: "172.17.0.2"))
    try FileIO.writeAtomically(path, before)
    var st1 = stat(), st2 = stat()
    #expect(stat(path, &st1) == 0)

    let changed = try HostsFile.rewriteAddress(at: path, alias: "redis", to: IPv4Address(172, 17, 0, 123))
    #expect(changed == 1)
    #expect(stat(path, &st2) == 0)
    #expect(st1.st_ino == st2.st_ino)
    let after = try FileIO.read(path)
    #expect(after == hosts(redisIP: "172.17.0.123"))

    // Shorter address: the file shrinks, nothing stale remains at its end.
    try HostsFile.rewriteAddress(at: path, alias: "redis", to: IPv4Address(10, 0, 0, 1))
    #expect(try FileIO.read(path) == hosts(redisIP: "10.0.0.1"))
    #expect(try HostsFile.rewriteAddress(at: path, alias: "nosuch", to: IPv4Address(10, 0, 0, 2)) == 0)
    #expect(throws: BerthError.self) { try HostsFile.rewriteAddress(at: dir + "/missing", alias: "x", to: .loopback) }
}

@Test func hostnameFile() {
    #expect(HostnameFile.content(hostname: "19931baf99c4") == "19931baf99c4\n")
}

