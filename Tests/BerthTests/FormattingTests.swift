import BerthSystem
import Testing

@testable import Berth

private let t0 = Timestamp(seconds: 1_800_000_000)
private func later(_ s: Int64) -> Timestamp { Timestamp(seconds: t0.seconds + s) }

private func sampleRecord(status: ContainerStatus = .running) throws -> ContainerRecord {
    var config = ContainerConfig(image: "busybox", cmd: ["sh", "-c", "while true; do nc -l -p 8080; done"])
    config.exposedPorts = ["8080/tcp"]
    config.portSpecs = ["18080:8080"]
    config.links = ["myredis:redis"]
    config.volumes = ["/srv:/data:ro"]
    var state = ContainerState()
    state.status = status
    state.pid = 4321
    state.startedAt = later(10)
    state.ipAddress = "172.17.0.3"
    state.ipPrefixLength = 16
    state.gateway = "172.17.0.1"
    state.macAddress = "02:42:ac:11:00:03"
    state.ports = [PublishedPort(hostIP: "0.0.0.0", hostPort: 18080, containerPort: 8080)]
    state.mounts = [MountPoint(type: .bind, source: "/srv", destination: "/data", rw: false, mode: "ro", propagation: "rprivate")]
    if status == .exited {
        state.exitCode = 0
        state.finishedAt = later(20)
    }
    return ContainerRecord(id: try ContainerID("19931baf99c4" + String(repeating: "ab", count: 26)), name: "web",
                           created: t0, config: config, state: state)
}

@Test func humanDurationsMatchDocker() {
    let cases: [(Double, String)] = [
        (0.4, "Less than a second"), (1, "1 second"), (5, "5 seconds"), (59, "59 seconds"), (60, "About a minute"),
        (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"), (5400, "2 hours"),
        (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (14 * 86400, "2 weeks"), (60 * 86400, "2 months"),
        (730 * 86400, "2 years"),
    ]
    for (seconds, text) in cases { #expect(HumanTime.duration(seconds) == text, "\(seconds)") }
}

@Test func statusColumn() throws {
    var s = ContainerState()
    #expect(HumanTime.status(s, now: t0) == "Created")
    s.status = .running
    s.startedAt = t0
    #expect(HumanTime.status(s, now: later(3)) == "Up 3 seconds")
    s.status = .exited
    s.exitCode = 137
    s.finishedAt = t0
    #expect(HumanTime.status(s, now: later(150)) == "Exited (137) 2 minutes ago")
}

@Test func psTableLooksLikeDockers() throws {
    let running = try sampleRecord()
    var exited = try sampleRecord(status: .exited)
    exited.name = "old"
    exited.config.cmd = ["true"]
    let table = ContainerListing.table([running, exited], now: later(65))
    let expected = """
        CONTAINER ID   IMAGE     COMMAND                  CREATED              STATUS                      PORTS                     NAMES
        19931baf99c4   busybox   "sh -c while true; d…"   About a minute ago   Up 55 seconds               0.0.0.0:18080->8080/tcp   web
        19931baf99c4   busybox   "true"                   About a minute ago   Exited (0) 45 seconds ago                             old

        """
    #expect(table == expected)
}

@Test func portsColumnGroupsLikeDocker() {
    let published = [8000, 8001, 8002].map { PublishedPort(hostPort: UInt16($0), containerPort: UInt16($0)) }
        + [PublishedPort(hostIP: "127.0.0.1", hostPort: 18080, containerPort: 8080),
           PublishedPort(hostIP: "::", hostPort: 18080, containerPort: 8080)]
    #expect(ContainerListing.ports(published: published, exposed: [(53, "udp"), (9000, "tcp"), (9001, "tcp")])
        == "53/udp, 0.0.0.0:8000-8002->8000-8002/tcp, 9000-9001/tcp, 127.0.0.1:18080->8080/tcp, [::]:18080->8080/tcp")
    #expect(ContainerListing.ports(published: []) == "")
}

@Test func commandColumnQuotesAndTruncates() {
    #expect(ContainerListing.command(["sleep", "100"]) == "\"sleep 100\"")
    #expect(ContainerListing.command(["echo", "say \"hi\""]) == "\"echo say \\\"hi\\\"\"")
    #expect(ContainerListing.command(["abcdefghijklmnopqrstuvwxyz"]) == "\"abcdefghijklmnopqrs…\"")
    #expect(ContainerListing.command(["abcdefghijklmnopqrstuvwxyz"], truncate: false) == "\"abcdefghijklmnopqrstuvwxyz\"")
}

@Test func inspectDocumentHasDockersShape() throws {
    let doc = InspectDocument.make(try sampleRecord(), storeDirectory: "/var/lib/berth/containers/x")
    #expect(doc["Id"] == .string("19931baf99c4" + String(repeating: "ab", count: 26)))
    #expect(doc["Name"] == .string("/web"))
    #expect(doc["Path"] == .string("sh"))
    #expect(doc["State"]?["Status"] == .string("running"))
    #expect(doc["State"]?["Running"] == .bool(true))
    #expect(doc["State"]?["Pid"] == .int(4321))
    #expect(doc["State"]?["FinishedAt"] == .string("0001-01-01T00:00:00Z"))
    #expect(doc["NetworkSettings"]?["IPAddress"] == .string("172.17.0.3"))
    #expect(doc["NetworkSettings"]?["Networks"]?["bridge"]?["Gateway"] == .string("172.17.0.1"))
    #expect(doc["HostsPath"] == .string("/var/lib/berth/containers/x/hosts"))
    #expect(doc["HostConfig"]?["Links"] == .array([.string("/myredis:/web/redis")]))
    let ports = try #require(doc["NetworkSettings"]?["Ports"])
    #expect(ports.compact() == #"{"8080/tcp":[{"HostIp":"0.0.0.0","HostPort":"18080"}]}"#)
    #expect(doc["HostConfig"]?["PortBindings"]?.compact() == #"{"8080/tcp":[{"HostIp":"","HostPort":"18080"}]}"#)
    #expect(doc["Mounts"]?.compact()
        == #"[{"Type":"bind","Source":"/srv","Destination":"/data","Mode":"ro","RW":false,"Propagation":"rprivate"}]"#)

    let text = InspectDocument.render([try sampleRecord()])
    #expect(text.hasPrefix("[\n    {\n        \"Id\": \"19931baf99c4"))
    #expect(text.contains("\n        \"State\": {\n            \"Status\": \"running\",\n"))
    #expect(text.hasSuffix("    }\n]\n"))
}

@Test func jsonPrintingEscapesLikeGo() {
    let v = JSONValue.structure([("a", .string("<x> & \"y\"\n")), ("b", .array([])), ("c", .map([])), ("d", .double(0.5))])
    #expect(v.compact() == #"{"a":"\u003cx\u003e \u0026 \"y\"\n","b":[],"c":{},"d":0.5}"#)
    #expect(v.pretty() == "{\n    \"a\": \"\\u003cx\\u003e \\u0026 \\\"y\\\"\\n\",\n    \"b\": [],\n    \"c\": {},\n    \"d\": 0.5\n}")
}

@Test func inspectFormatPaths() throws {
    let doc = InspectDocument.make(try sampleRecord())
    func run(_ template: String) throws -> String { try InspectTemplate(template).render(doc) }
    #expect(try run("{{.NetworkSettings.IPAddress}}") == "172.17.0.3")
    #expect(try run("{{ .NetworkSettings.IPAddress }}") == "172.17.0.3")
    #expect(try run("{{.State.Running}} {{.State.Pid}}") == "true 4321")
    #expect(try run("ip={{.NetworkSettings.IPAddress}}\n") == "ip=172.17.0.3\n")
    #expect(try run("{{.Name}}") == "/web")
    #expect(try run("{{.Config.Cmd}}") == "[sh -c while true; do nc -l -p 8080; done]")
    #expect(try run("{{.NetworkSettings.Ports}}") == "map[8080/tcp:[{0.0.0.0 18080}]]")
    #expect(try run("{{json .NetworkSettings.Ports}}") == #"{"8080/tcp":[{"HostIp":"0.0.0.0","HostPort":"18080"}]}"#)
    #expect(try run(#"{{(index (index .NetworkSettings.Ports "8080/tcp") 0).HostPort}}"#) == "18080")
    #expect(templateError("{{range .Mounts}}{{end}}").contains("not supported"))
    #expect(try run("{{len .Mounts}}") == "1")
    #expect(try run("{{upper .State.Status}}") == "RUNNING")
    #expect(try run("{{.Config.Entrypoint}}") == "<nil>")
    #expect(try run("  {{- .Name -}}  ") == "/web")

    #expect(throws: BerthError(.invalidArgument, #"template: :1:3: executing "" at <.NetworkSettings.Nope>: map has no entry for key "Nope""#)) {
        try run("{{ .NetworkSettings.Nope }}")
    }
    #expect(throws: BerthError(.invalidArgument, #"template: :1:2: executing "" at <.X>: map has no entry for key "X""#)) {
        try run("{{.X}}")
    }
    #expect(throws: BerthError(.invalidArgument, #"template: :1:2: executing "" at <.Name.Foo>: can't evaluate field Foo in type string"#)) {
        try run("{{.Name.Foo}}")
    }
    #expect(throws: BerthError(.invalidArgument, "template: :1: unclosed action")) { try run("{{.Name") }
    #expect(throws: BerthError(.invalidArgument, "template: :1: function \"nope\" not defined")) { try run("{{nope .Name}}") }
}

private func templateError(_ template: String) -> String {
    do { _ = try InspectTemplate(template); return "" } catch { return (error as? BerthError)?.message ?? "" }
}
