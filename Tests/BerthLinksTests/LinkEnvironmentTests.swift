import BerthSystem
import Testing

@testable import BerthLinks

/// Captured from Docker 20.10 (`docker run --link myredis:redis busybox env`, see
/// /work/shared/reference/docker-link-env-unsorted.txt): the target exposes 6379/tcp at 172.17.0.2.
private let dockerRedisEnv = """
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    HOSTNAME=89ea8cad28ef
    REDIS_PORT=tcp://172.17.0.2:6379
    REDIS_PORT_6379_TCP=tcp://172.17.0.2:6379
    REDIS_PORT_6379_TCP_ADDR=172.17.0.2
    REDIS_PORT_6379_TCP_PORT=6379
    REDIS_PORT_6379_TCP_PROTO=tcp
    REDIS_NAME=/pensive_panini/redis
    HOME=/root

    """

private func target(_ name: String = "myredis", ip: String = "172.17.0.2", ports: [String] = ["6379/tcp"],
                    env: [String] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    running: Bool = true) throws -> LinkTarget {
    LinkTarget(name: name, id: try ContainerID("a740da6694ef" + String(repeating: "0", count: 52)),
               ipAddress: IPv4Address(ip), exposedPorts: try ports.flatMap(ExposedPort.parse),
               environment: env, isRunning: running)
}

@Test func redisLinkEnvironmentIsByteIdenticalToDocker() throws {
    let resolver = LinkResolver { name in name == "myredis" ? try target() : nil }
    let links = try resolver.resolve([LinkSpec(parsing: "myredis:redis")], linkingContainerName: "pensive_panini")
    let env = ContainerEnvironment.build(hostname: "89ea8cad28ef", links: links.environment(linkingContainerName: "pensive_panini"),
                                         configured: [])
    #expect(env.map { $0 + "\n" }.joined() == dockerRedisEnv)
}

@Test func multiplePortsSortByNumberThenTCPFirst() throws {
    let t = try target(ports: ["8080/udp", "53/udp", "8080/tcp", "443"], env: [])
    let env = LinkEnvironment.variables(alias: "web-1", linkingContainerName: "app", target: t)
    #expect(env == [
        "WEB_1_PORT=udp://172.17.0.2:53",
        "WEB_1_PORT_53_UDP=udp://172.17.0.2:53",
        "WEB_1_PORT_53_UDP_ADDR=172.17.0.2",
        "WEB_1_PORT_53_UDP_PORT=53",
        "WEB_1_PORT_53_UDP_PROTO=udp",
        "WEB_1_PORT_443_TCP=tcp://172.17.0.2:443",
        "WEB_1_PORT_443_TCP_ADDR=172.17.0.2",
        "WEB_1_PORT_443_TCP_PORT=443",
        "WEB_1_PORT_443_TCP_PROTO=tcp",
        "WEB_1_PORT_8080_TCP=tcp://172.17.0.2:8080",
        "WEB_1_PORT_8080_TCP_ADDR=172.17.0.2",
        "WEB_1_PORT_8080_TCP_PORT=8080",
        "WEB_1_PORT_8080_TCP_PROTO=tcp",
        "WEB_1_PORT_8080_UDP=udp://172.17.0.2:8080",
        "WEB_1_PORT_8080_UDP_ADDR=172.17.0.2",
        "WEB_1_PORT_8080_UDP_PORT=8080",
        "WEB_1_PORT_8080_UDP_PROTO=udp",
        "WEB_1_NAME=/app/web-1",
    ])
}

@Test func portRangesGetStartAndEndVariablesBeforeThePerPortOnes() throws {
    let t = try target(ports: ["8000-8002/tcp", "9000/tcp", "9001/tcp"], env: [])
    let env = LinkEnvironment.variables(alias: "db", linkingContainerName: "app", target: t)
    let ip = "172.17.0.2"
    var expected = [
        "DB_PORT=tcp://\(ip):8000",
        "DB_PORT_8000_TCP_START=tcp://\(ip):8000",
        "DB_PORT_8000_TCP_ADDR=\(ip)",
        "DB_PORT_8000_TCP_PROTO=tcp",
        "DB_PORT_8000_TCP_PORT_START=8000",
        "DB_PORT_8000_TCP_END=tcp://\(ip):8002",
        "DB_PORT_8000_TCP_PORT_END=8002",
    ]
    // Two consecutive ports (9000, 9001) are not a run in Docker.
    for p in [8000, 8001, 8002, 9000, 9001] {
        expected += ["DB_PORT_\(p)_TCP=tcp://\(ip):\(p)", "DB_PORT_\(p)_TCP_ADDR=\(ip)",
                     "DB_PORT_\(p)_TCP_PORT=\(p)", "DB_PORT_\(p)_TCP_PROTO=tcp"]
    }
    expected.append("DB_NAME=/app/db")
    #expect(env == expected)
}

@Test func environmentPassthroughSkipsHomeAndPath() throws {
    let t = try target(ports: [], env: ["PATH=/bin", "HOME=/root", "REDIS_VERSION=7.2", "EMPTY=", "NOEQUALS", "A=b=c"])
    let env = LinkEnvironment.variables(alias: "redis", linkingContainerName: "app", target: t)
    #expect(env == ["REDIS_NAME=/app/redis", "REDIS_ENV_REDIS_VERSION=7.2", "REDIS_ENV_EMPTY=", "REDIS_ENV_A=b=c"])
}

@Test func aliasPrefixOnlyUppercasesAndReplacesDashes() {
    #expect(LinkEnvironment.prefix(forAlias: "my-db.x_y") == "MY_DB.X_Y")
}

@Test func configuredEnvironmentReplacesInPlaceAndAppends() {
    let env = ContainerEnvironment.build(hostname: "h", tty: true, links: ["DB_NAME=/a/db"],
                                         configured: ["PATH=/opt/bin", "FOO=1", "HOSTNAME", "HOME=/home/u"])
    #expect(env == ["PATH=/opt/bin", "TERM=xterm", "DB_NAME=/a/db", "FOO=1", "HOME=/home/u"])
}

@Test func linkToMissingOrStoppedContainerIsAClearError() throws {
    let stopped = try target(running: false)
    let resolver = LinkResolver { name in name == "myredis" ? stopped : nil }
    #expect(throws: BerthError(.notFound, "could not get container for nope: No such container: nope")) {
        try resolver.resolve([LinkSpec(target: "nope")], linkingContainerName: "app")
    }
    #expect(throws: BerthError(.invalidState, "Cannot link to a non running container: /myredis AS /app/redis")) {
        try resolver.resolve([LinkSpec(parsing: "/myredis:redis")], linkingContainerName: "app")
    }
}

@Test func badLinkAndPortSpecsAreRejected() {
    for bad in ["", "a:b:c", ":x", "x:", "a/b:c"] {
        #expect(throws: BerthError.self) { try LinkSpec(parsing: bad) }
    }
    for bad in ["0", "70000", "80/icmp", "90-80", "a", "1-2-3", "80/tcp/x", ""] {
        #expect(throws: BerthError.self) { try ExposedPort.parse(bad) }
    }
    #expect(throws: BerthError.self) {
        try LinkResolver { _ in try target() }.resolve([LinkSpec(target: "a", alias: "x"), LinkSpec(target: "b", alias: "x")],
                                                     linkingContainerName: "app")
    }
}

@Test func runDetectionIgnoresProtocolsLikeDocker() throws {
    // Docker 20.10's nextContiguous advances one number per element whatever its protocol, so
    // 80/tcp, 80/udp, 81/tcp form a "range" that ends at 81/tcp.
    let t = try target(ip: "10.0.0.5", ports: ["81/tcp", "80/udp", "80/tcp"], env: [])
    let env = LinkEnvironment.variables(alias: "x", linkingContainerName: "app", target: t)
    #expect(Array(env.prefix(7)) == [
        "X_PORT=tcp://10.0.0.5:80",
        "X_PORT_80_TCP_START=tcp://10.0.0.5:80",
        "X_PORT_80_TCP_ADDR=10.0.0.5",
        "X_PORT_80_TCP_PROTO=tcp",
        "X_PORT_80_TCP_PORT_START=80",
        "X_PORT_80_TCP_END=tcp://10.0.0.5:81",
        "X_PORT_80_TCP_PORT_END=81",
    ])
    #expect(env.count == 7 + 3 * 4 + 1)
    #expect(env[7] == "X_PORT_80_TCP=tcp://10.0.0.5:80" && env[11] == "X_PORT_80_UDP=udp://10.0.0.5:80")
}
