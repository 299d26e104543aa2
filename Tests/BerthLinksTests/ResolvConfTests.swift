import Testing

@testable import BerthLinks

@Test func loopbackNameserversAreDroppedAndTheRestKept() {
    let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nnameserver fd00::53\nsearch corp.example\noptions edns0\n"
    #expect(ResolvConf.content(host: host) == "# generated\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n")
    #expect(ResolvConf.content(host: host, ipv6: true)
        == "# generated\nnameserver 10.0.0.2\nnameserver fd00::53\nsearch corp.example\noptions edns0\n")
}

@Test func onlyLoopbackNameserversFallBackToGoogle() {
    #expect(ResolvConf.content(host: "nameserver 127.0.0.1\nsearch x\n") == "search x\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n")
    #expect(ResolvConf.content(host: "") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n")
}

@Test func dockerReferenceResolvConfPassesThrough() {
    #expect(ResolvConf.content(host: "nameserver 172.17.0.1\n") == "nameserver 172.17.0.1\n")
}

@Test func dnsFlagsRebuildTheFile() {
    let host = "nameserver 10.0.0.2\nsearch corp.example\noptions ndots:2\n"
    #expect(ResolvConf.content(host: host, dns: ["1.1.1.1", "9.9.9.9"])
        == "search corp.example\nnameserver 1.1.1.1\nnameserver 9.9.9.9\noptions ndots:2\n")
    #expect(ResolvConf.content(host: host, search: ["a.test", "b.test"], options: ["rotate"])
        == "search a.test b.test\nnameserver 10.0.0.2\noptions rotate\n")
    #expect(ResolvConf.content(host: host, search: ["."]) == "nameserver 10.0.0.2\noptions ndots:2\n")
}
