// berth-proxy: Berth's userland proxy as a process of its own, taking docker-proxy's flags
// (`-proto tcp -host-ip 127.0.0.1 -host-port H -container-ip C -container-port P`) plus `-count N`
// to publish host ports H…H+N-1 from the same process and engine. It prints "ready" once every
// listener is open and runs until SIGINT or SIGTERM.
//
// Lean on purpose, since its resident memory is what a published port costs: flags are parsed by
// hand (no ArgumentParser, no Foundation), nothing runs MainActor-isolated (top-level code would
// be, and its executor checks link Swift Concurrency and Dispatch), and output goes through
// write(2) rather than `print`, whose `Any` arguments go through dynamic casts that scan the
// binary's protocol conformance records. scripts/bench links it in the order of the functions it
// runs (hot-symbols.txt, from scripts/proxy-symbol-order) so that few code pages become resident.
import BerthPortMapper
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

@main
enum BerthProxy {
    static let usage = "usage: berth-proxy -proto tcp|udp -host-ip IP -host-port H -container-ip IP -container-port P [-count N] [-pipe-size BYTES] [-nodelay true|false] [-local-cc ALGORITHM|default] [-coalesce BYTES] [-coalesce-delay-us US]"

    static func say(_ fd: Int32, _ message: String) {
        var line = message
        line += "\n"
        line.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
    }

    static func fail(_ message: String) -> Never {
        say(2, "berth-proxy: " + message)
        exit(2)
    }

    static func main() { serve() }

    /// Kept out of `main`, which is MainActor-isolated: its closures would get executor checks.
    static nonisolated func serve() {
        var flags: [String: String] = [:]
        var args = CommandLine.arguments.dropFirst()
        while let flag = args.popFirst() {
            if flag == "-h" || flag == "--help" {
                say(1, usage)
                exit(0)
            }
            guard flag.hasPrefix("-"), let value = args.popFirst() else { fail(usage) }
            flags[String(flag.drop { $0 == "-" })] = value
        }
        let known = ["proto", "host-ip", "host-port", "container-ip", "container-port", "count", "pipe-size", "nodelay", "local-cc", "coalesce", "coalesce-delay-us"]
        if let unknown = flags.keys.first(where: { !known.contains($0) }) { fail("unknown flag -" + unknown + "\n" + usage) }
        guard let proto = PortProtocol(rawValue: flags["proto"] ?? "tcp"),
            let hostIP = IPv4Address(flags["host-ip"] ?? "0.0.0.0"),
            let hostPort = flags["host-port"].flatMap({ UInt16($0) }), hostPort > 0,
            let containerIP = flags["container-ip"].flatMap({ IPv4Address($0) }),
            let containerPort = flags["container-port"].flatMap({ UInt16($0) }), containerPort > 0,
            let count = Int(flags["count"] ?? "1"), count >= 1, Int(hostPort) + count - 1 <= 65535,
            let pipeSize = Int(flags["pipe-size"] ?? "1048576"), pipeSize >= 4096,
            let noDelay = Bool(flags["nodelay"] ?? "true"),
            let coalesce = flags["coalesce"].map({ Int($0) }) ?? UserlandProxy.Options().coalesceBytes, coalesce >= 0,
            let coalesceDelay = flags["coalesce-delay-us"].map({ Double($0) }) ?? UserlandProxy.Options().coalesceDelay * 1e6,
            coalesceDelay > 0
        else { fail(usage) }

        // Block the stop signals before the proxy thread exists, so that only sigwait sees them.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGINT)
        sigaddset(&stopSignals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

        do {
            let cc = flags["local-cc"] ?? "cubic"
            let proxy = try UserlandProxy(options: .init(pipeSize: pipeSize, noDelay: noDelay,
                                                         localCongestionControl: cc == "default" ? nil : cc,
                                                         coalesceBytes: coalesce, coalesceDelay: coalesceDelay / 1e6))
            for i in 0..<count {
                try proxy.publish(PortMapping(proto: proto, hostIP: hostIP, hostPort: hostPort + UInt16(i),
                                              containerIP: containerIP, containerPort: containerPort, bridge: ""))
            }
            say(1, "ready")
            var sig: Int32 = 0
            sigwait(&stopSignals, &sig)
            proxy.close()
        } catch {
            fail("\(error)")
        }
    }
}
