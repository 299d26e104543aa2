import BerthLinks
import BerthNamespaces
import BerthSystem
import BerthTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

@Suite struct EngineTests {
    @Test func redisStyleLinkGivesDockersEnvironmentAndHosts() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let server = try f.run(["sleep", "100"], name: "myredis") {
            $0.exposedPorts = ["6379/tcp"]
            $0.env = ["REDIS_VERSION=7"]
        }
        let serverIP = try #require(server.startedState.ipAddress)
        let client = try f.run(["sh", "-c", "tr '\\0' '\\n' < /proc/1/environ; echo ---; cat /etc/hosts"], name: "pensive_panini") {
            $0.links = ["myredis:redis"]
        }
        #expect(client.wait() == 0)
        let clientRecord = try f.engine.store.load(client.id)
        let clientIP = try #require(clientRecord.state.ipAddress)
        let output = try FileIO.read(f.engine.logPath(client.id))
        let parts = output.components(separatedBy: "---\n")
        let env = parts[0].split(separator: "\n").map(String.init)
        // Docker 20.10's order: PATH, HOSTNAME, the link variables, then HOME.
        let expectedEnv = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME=\(client.id.short)",
            "REDIS_PORT=tcp://\(serverIP):6379",
            "REDIS_PORT_6379_TCP=tcp://\(serverIP):6379",
            "REDIS_PORT_6379_TCP_ADDR=\(serverIP)",
            "REDIS_PORT_6379_TCP_PORT=6379",
            "REDIS_PORT_6379_TCP_PROTO=tcp",
            "REDIS_NAME=/pensive_panini/redis",
            "REDIS_ENV_REDIS_VERSION=7",
            "HOME=/root",
        ]
        #expect(env == expectedEnv)
        #expect(parts[1] == """
            127.0.0.1\tlocalhost
            ::1\tlocalhost ip6-localhost ip6-loopback
            fe00::0\tip6-localnet
            ff00::0\tip6-mcastprefix
            ff02::1\tip6-allnodes
            ff02::2\tip6-allrouters
            \(serverIP)\tredis \(server.id.short) myredis
            \(clientIP)\t\(client.id.short)

            """)
        try f.engine.stop(server.id.full, timeout: 1)
    }

    @Test func restartingALinkedContainerRewritesTheClientsHosts() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let server = try f.run(["sleep", "100"], name: "db")
        let oldIP = try #require(server.startedState.ipAddress)
        let client = try f.run(["sleep", "100"], name: "app") { $0.links = ["db:database"] }
        let hosts = f.engine.store.directory(of: client.id) + "/hosts"
        var before = stat()
        stat(hosts, &before)
        try f.engine.stop("db", timeout: 0)
        // Another container starts meanwhile; the server comes back with another address.
        _ = try f.run(["sleep", "100"])
        let restarted = try f.engine.start("db")
        let newIP = try #require(restarted.startedState.ipAddress)
        #expect(newIP != oldIP)
        let text = try FileIO.read(hosts)
        #expect(text.contains("\(newIP)\tdatabase \(server.id.short) db\n"))
        #expect(!text.contains(oldIP + "\tdatabase"))
        var after = stat()
        stat(hosts, &after)
        #expect(before.st_ino == after.st_ino)
        // The container sees the rewritten file through its bind mount.
        let inside = try f.engine.exec("app", argv: ["cat", "/etc/hosts"], stdio: ProcessStdio(stdin: .null,
            stdout: .file(f.root + "/exec.out"), stderr: .inherit))
        #expect(inside == 0)
        #expect(try FileIO.read(f.root + "/exec.out") == text)
    }

    @Test func publishedPortsAnswerOnLoopbackAndTheHostAddress() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let web = try f.run(["sh", "-c", "mkdir /www && echo hello-berth > /www/index.html && echo ready && httpd -f -p 8080 -h /www"],
                            name: "web") {
            $0.portSpecs = ["18080:8080"]
            $0.exposedPorts = ["9000/tcp"]
            $0.publishAll = true
        }
        try f.waitForLog(web.id, containing: "ready")
        let state = try f.engine.store.load(web.id).state
        let ephemeral = try #require(state.ports.first { $0.containerPort == 9000 }).hostPort
        #expect(PortListing.lines(state.ports) == "8080/tcp -> 0.0.0.0:18080\n9000/tcp -> 0.0.0.0:\(ephemeral)\n")
        let gateway = try #require(state.gateway)
        var body = ""
        for _ in 0..<50 {
            body = (try? f.host.sh("wget -qO- http://127.0.0.1:18080/")) ?? ""
            if !body.isEmpty { break }
            usleep(50_000)
        }
        #expect(body == "hello-berth\n")
        #expect(try f.host.sh("wget -qO- http://\(gateway):18080/") == "hello-berth\n")
        try f.engine.stop("web", timeout: 1)
    }

    @Test func stopReleasesAddressPortsAndRules() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let web = try f.run(["sleep", "100"]) { $0.portSpecs = ["18081:80"] }
        let ip = try #require(web.startedState.ipAddress)
        #expect(try f.host.sh("iptables-save -t nat").contains("18081"))
        try f.engine.stop(web.id.full, timeout: 1)
        let net = try f.engine.network()
        #expect(try !net.leasedAddresses().map(\.description).contains(ip))
        #expect(try f.engine.portAllocator().allocations().isEmpty)
        #expect(try !f.host.sh("iptables-save -t nat").contains("18081"))
        #expect(try f.engine.store.load(web.id).state.status == .exited)
        #expect(!(try FileIO.read("/proc/self/mounts")).contains(f.root + "/image/containers/" + web.id.full))
    }

    @Test func removedOnExitContainerLeavesNothingAndLogsOnDisk() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let running = try f.run(["sleep", "100"], name: "once") {
            $0.autoRemove = true
            $0.portSpecs = ["18082:80"]
        }
        let id = running.id
        #expect(f.engine.store.isEphemeral(id))
        #expect(f.engine.logPath(id) == f.root + "/logs/" + id.full + ".log")
        #expect(FileIO.exists(f.engine.logPath(id)))
        try f.engine.stop(id.full, timeout: 1)
        _ = running.wait()
        #expect(!FileIO.exists(f.root + "/run/containers/" + id.full))
        #expect(!FileIO.exists(f.root + "/logs/" + id.full + ".log"))
        #expect(!FileIO.exists(f.root + "/image/containers/" + id.full))
        #expect(f.engine.store.owner(ofName: "once") == nil)
        #expect(try f.engine.portAllocator().allocations().isEmpty)
        #expect(try !f.host.sh("iptables-save -t nat").contains("18082"))
    }

    @Test func aRebootRemovesWhatRemovedOnExitContainersLeftOnDisk() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        var config = ContainerConfig(image: "busybox", cmd: ["true"])
        config.autoRemove = true
        let gone = try f.engine.create(config, name: "before-reboot")
        let kept = try f.engine.create(ContainerConfig(image: "busybox", cmd: ["true"]), name: "kept")
        try FileIO.writeAtomically(f.engine.logPath(gone.id), "output\n")
        #expect(FileIO.exists(f.root + "/image/containers/" + gone.id.full))
        // A reboot empties the exec root (a tmpfs).
        try FileIO.removeTree(f.root + "/run")
        let after = try Engine(options: EngineOptions(root: f.root, cgroupParent: f.cgroupParent, hostNamespace: f.host.namespace))
        #expect(try after.store.list().map(\.id) == [kept.id])
        #expect(!FileIO.exists(f.root + "/image/containers/" + gone.id.full))
        #expect(FileIO.exists(f.root + "/image/containers/" + kept.id.full))
        #expect(!FileIO.exists(f.root + "/logs/" + gone.id.full + ".log"))
        #expect(!FileIO.exists(f.root + "/names/before-reboot"))
        #expect(FileIO.exists(f.root + "/names/kept"))
    }

    @Test func successiveContainersGetSuccessiveAddresses() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let a = try f.run(["sleep", "100"]), b = try f.run(["sleep", "100"]), c = try f.run(["sleep", "100"])
        let ips = try [a, b, c].map { try #require(IPv4Address($0.startedState.ipAddress ?? "")) }
        #expect(ips[1].value == ips[0].value + 1 && ips[2].value == ips[1].value + 1)
    }

    @Test func aBridgeContainerHasItsOwnNetworkNamespaceAndSysfs() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        // Its namespace is made and connected before the clone, then joined: it is the container's
        // own (eth0 and lo only, none of the sandbox host's links), and /sys shows it.
        let links = try f.output(["sh", "-c", "ls /sys/class/net | tr '\\n' ' '; readlink /proc/self/ns/net"])
        #expect(links.hasPrefix("eth0 lo "))
        let hostNS = try f.host.sh("readlink /proc/self/ns/net").trimmingSpaces()
        #expect(!links.contains(hostNS))
        // Two running containers have two namespaces.
        let a = try f.run(["sleep", "100"]), b = try f.run(["sleep", "100"])
        let nsA = try Command.check("readlink", ["/proc/\(a.startedState.pid)/ns/net"]).stdout
        let nsB = try Command.check("readlink", ["/proc/\(b.startedState.pid)/ns/net"]).stdout
        #expect(nsA != nsB && !nsA.isEmpty)
    }

    @Test func containerNetworkModeSharesTheNetworkNamespace() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let a = try f.run(["sleep", "100"], name: "first")
        let ip = try #require(a.startedState.ipAddress)
        let out = try f.output(["ip", "-o", "-4", "addr", "show", "eth0"]) { $0.networkMode = "container:first" }
        #expect(out.contains("inet \(ip)/"))
        // Its /sys is mounted after it joined: it shows the shared namespace's links.
        let sys = try f.output(["ls", "/sys/class/net"]) { $0.networkMode = "container:first" }
        #expect(sys.split(separator: "\n").sorted() == ["eth0", "lo"])
    }

    @Test func hostNetworkModeSeesTheSandboxLinks() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let dummy = testName("dm")
        try f.host.sh("ip link add \(dummy) type bridge")
        let out = try f.output(["ip", "-o", "link"]) { $0.networkMode = "host" }
        #expect(out.contains(dummy))
        let none = try f.output(["ip", "-o", "link"]) { $0.networkMode = "none" }
        #expect(!none.contains(dummy) && !none.contains("eth0"))
    }

    @Test func volumesFromBackupScenario() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let backup = f.root + "/backup"
        try FileIO.makeDirectories(backup)
        let data = try f.run(["sh", "-c", "echo precious > /data/file && echo done"], name: "dbdata") { $0.volumes = ["/data"] }
        #expect(data.wait() == 0)
        let out = try f.output(["tar", "cf", "/backup/backup.tar", "/data"]) {
            $0.volumesFrom = ["dbdata"]
            $0.volumes = ["\(backup):/backup"]
        }
        _ = out
        let listing = try Command.check("tar", ["tf", backup + "/backup.tar"]).stdout
        #expect(listing.contains("data/file"))
        let volume = try #require(try f.engine.store.load(data.id).state.mounts.first)
        #expect(volume.anonymous && volume.destination == "/data")
        #expect(try f.engine.volumes.listing().contains(volume.name))
        try f.engine.remove("dbdata", removeVolumes: true)
        #expect(try f.engine.volumes.list().isEmpty)
    }

    @Test func badInputIsRejectedWithoutSideEffects() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        _ = try f.run(["sleep", "100"], name: "taken")
        let before = try f.engine.store.list().count
        func expectError(_ code: BerthError.Code, _ config: ContainerConfig, name: String? = nil) {
            do {
                _ = try f.engine.create(config, name: name)
                Issue.record("create succeeded")
            } catch let e as BerthError {
                #expect(e.code == code, "\(e)")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        expectError(.notFound, ContainerConfig(image: "nosuchimage", cmd: ["true"]))
        var badPort = ContainerConfig(image: "busybox", cmd: ["true"])
        badPort.portSpecs = ["99999:80"]
        expectError(.invalidArgument, badPort)
        var missingLink = ContainerConfig(image: "busybox", cmd: ["true"])
        missingLink.links = ["ghost:db"]
        expectError(.notFound, missingLink)
        expectError(.alreadyExists, ContainerConfig(image: "busybox", cmd: ["true"]), name: "taken")
        #expect(try f.engine.store.list().count == before)
        #expect(try f.engine.layers.containerRootfsList().count == before)
        #expect(try f.engine.network().leasedAddresses().count == 1)
    }
}

/// A container started again right after it exited: its previous veth may still exist until the
/// kernel has destroyed the old network namespace, so the new start must not need that name.
@Test func startingAgainRightAfterAnExitWorks() throws {
    let f = try EngineFixture()
    defer { f.remove() }
    let record = try f.engine.create(ContainerConfig(image: "busybox", cmd: ["true"]), name: "again")
    var veths: Set<String> = []
    for _ in 0..<8 {
        let running = try f.engine.start(record.id)
        if let veth = running.startedState.vethName { veths.insert(veth) }
        #expect(running.wait() == 0)
    }
    #expect(veths.count == 8, "a new host veth name per start")
}

