import BerthLinks
import BerthSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

@Test func linksResolveThroughTheStoreAndHostsFollowARestart() throws {
    let f = try StoreFixture()
    defer { f.remove() }
    var redisConfig = ContainerConfig(image: "redis")
    redisConfig.exposedPorts = ["6379/tcp"]
    redisConfig.env = ["PATH=/usr/bin", "REDIS_VERSION=7"]
    var redis = try f.store.create(config: redisConfig, name: "myredis")
    let resolver = f.store.linkResolver()

    // Not running yet: Docker's error.
    #expect(throws: BerthError(.invalidState, "Cannot link to a non running container: /myredis AS /web/redis")) {
        try resolver.resolve([LinkSpec(parsing: "myredis:redis")], linkingContainerName: "web")
    }
    #expect(throws: BerthError(.notFound, "could not get container for ghost: No such container: ghost")) {
        try resolver.resolve([LinkSpec(parsing: "ghost")], linkingContainerName: "web")
    }

    redis.state.status = .running
    redis.state.ipAddress = "172.17.0.2"
    try f.store.save(redis)

    var webConfig = ContainerConfig(image: "busybox")
    webConfig.links = ["myredis:redis"]
    webConfig.extraHosts = ["db.local:10.9.9.9"]
    webConfig.dns = ["1.1.1.1"]
    var web = try f.store.create(config: webConfig, name: "web")
    let links = try resolver.resolve(web.config.links.map(LinkSpec.init(parsing:)), linkingContainerName: web.name)
    #expect(links.environment(linkingContainerName: "web") == [
        "REDIS_PORT=tcp://172.17.0.2:6379", "REDIS_PORT_6379_TCP=tcp://172.17.0.2:6379",
        "REDIS_PORT_6379_TCP_ADDR=172.17.0.2", "REDIS_PORT_6379_TCP_PORT=6379", "REDIS_PORT_6379_TCP_PROTO=tcp",
        "REDIS_NAME=/web/redis", "REDIS_ENV_REDIS_VERSION=7",
    ])

    web.state.status = .running
    web.state.ipAddress = "172.17.0.3"
    web.state.linkTargets = links.map { LinkedContainer(alias: $0.alias, target: $0.target.id) }
    try f.store.save(web)
    let files = try NetworkFiles.write(for: web, links: links, in: f.store.directory(of: web.id),
                                       hostResolvConf: "nameserver 127.0.0.53\n")
    let hostsBefore = try FileIO.read(files.hosts)
    #expect(hostsBefore.hasSuffix("10.9.9.9\tdb.local\n172.17.0.2\tredis \(redis.id.short) myredis\n172.17.0.3\t\(web.id.short)\n"))
    #expect(try FileIO.read(files.hostname) == web.id.short + "\n")
    #expect(try FileIO.read(files.resolvConf) == "nameserver 1.1.1.1\n")

    var st1 = stat(), st2 = stat()
    _ = stat(files.hosts, &st1)
    #expect(try f.store.refreshHostsOfContainersLinking(to: redis.id, address: IPv4Address(172, 17, 0, 9)) == [web.id])
    _ = stat(files.hosts, &st2)
    #expect(st1.st_ino == st2.st_ino)
    let hostsAfter = try FileIO.read(files.hosts)
    #expect(hostsAfter.hasSuffix("10.9.9.9\tdb.local\n172.17.0.9\tredis \(redis.id.short) myredis\n172.17.0.3\t\(web.id.short)\n"))
    #expect(hostsAfter.utf8.count == hostsBefore.utf8.count)
}
