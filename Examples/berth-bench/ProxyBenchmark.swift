import ArgumentParser
import BerthNamespaces
import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// `berth-bench proxy`: iperf3 through Berth's userland proxy (berth-proxy, a process of its own
/// serving 100 published ports), through docker-proxy, and directly to the container, alternating,
/// all inside a sandbox network namespace the benchmark creates. Also CPU seconds per GiB of each
/// proxy process and resident memory (berth-proxy with 100 ports vs docker-proxy with one). A
/// second berth-proxy with coalescing off (`-coalesce 0`) shows what coalescing contributes.
struct ProxyBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Userland proxy throughput, CPU and memory: Berth vs docker-proxy vs direct (iperf3).")

    @Option(help: "Rounds (each runs the four paths once).") var rounds = 3
    @Option(help: "Seconds per iperf3 run.") var seconds = 5
    @Option(help: "Published ports in the berth-proxy process (memory measurement).") var ports = 100
    @Option(name: .customLong("berth-proxy"), help: "Path of berth-proxy (default: next to berth-bench).")
    var berthProxy: String?
    @Option(name: .customLong("docker-proxy")) var dockerProxy = "/usr/sbin/docker-proxy"

    func run() throws {
        let berthPath = berthProxy ?? ProxyBenchmark.siblingExecutable("berth-proxy")
        for tool in [berthPath, dockerProxy] where access(tool, X_OK) != 0 {
            throw ValidationError("\(tool) not found (build berth-proxy; install docker.io for docker-proxy)")
        }
        guard Command.exists("iperf3") else { throw ValidationError("iperf3 not found") }

        let host = try NetworkNamespace.create()
        defer { host.close() }
        let container = try NetworkNamespace.create()
        defer { container.close() }
        let tid = try container.run { berth_gettid() }
        let containerIP = "172.30.0.2"
        _ = try host.run {
            try Command.check("/bin/sh", ["-c", """
                set -e
                ip link add br0 type bridge && ip addr add 172.30.0.1/24 dev br0 && ip link set br0 up
                ip link add vh0 type veth peer name eth0 && ip link set eth0 netns \(tid)
                ip link set vh0 master br0 && ip link set vh0 up
                """])
        }
        _ = try container.run {
            try Command.check("/bin/sh", ["-c", "ip addr add \(containerIP)/24 dev eth0 && ip link set eth0 up && ip route add default via 172.30.0.1"])
        }

        var children: [pid_t] = []
        defer {
            for pid in children { kill(pid, SIGTERM) }
            for pid in children { _ = try? Command.waitForExit(pid) }
        }
        let iperfServer = try container.run { try Background.spawn("iperf3", ["-s", "-p", "5201"]) }
        children.append(iperfServer)
        let berthPort = 30000, dockerPort = 29000
        let berth = try host.run {
            try Background.spawn(berthPath, ["-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", String(berthPort),
                                             "-container-ip", containerIP, "-container-port", "5201", "-count", String(ports)])
        }
        children.append(berth)
        // The same program with one port: what the other 99 cost. It runs from a copy so that the
        // two processes share no page and each one's PSS and private figures stand on their own.
        let copyDir = try FileIO.makeTemporaryDirectory(prefix: "berth-bench-proxy-")
        defer { try? FileIO.removeTree(copyDir) }
        let berthOnePath = copyDir + "/berth-proxy"
        try FileIO.writeAtomically(berthOnePath, try FileIO.readBytes(berthPath), mode: 0o755)
        let berthOne = try host.run {
            try Background.spawn(berthOnePath, ["-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", "28000",
                                             "-container-ip", containerIP, "-container-port", "5201"])
        }
        children.append(berthOne)
        // Coalescing off, from a copy of its own as well (no page shared with the measured two).
        let plainPort = 27000, berthPlainPath = copyDir + "/berth-proxy-plain"
        try FileIO.writeAtomically(berthPlainPath, try FileIO.readBytes(berthPath), mode: 0o755)
        let berthPlain = try host.run {
            try Background.spawn(berthPlainPath, ["-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", String(plainPort),
                                                "-container-ip", containerIP, "-container-port", "5201", "-coalesce", "0"])
        }
        children.append(berthPlain)
        let docker = try host.run {
            try Background.spawn(dockerProxy, ["-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", String(dockerPort),
                                               "-container-ip", containerIP, "-container-port", "5201"])
        }
        children.append(docker)
        _ = try host.run {
            for (ip, port) in [(containerIP, 5201), ("127.0.0.1", berthPort), ("127.0.0.1", dockerPort),
                               ("127.0.0.1", berthPort + ports - 1), ("127.0.0.1", 28000), ("127.0.0.1", plainPort)] {
                try Background.waitForListener(ip, UInt16(port))
            }
        }

        var rate: [String: [Double]] = [:]
        var cpu: [String: (user: Double, system: Double)] = [:]
        var bytes: [String: Double] = [:]
        var machine: [String: Double] = [:]
        let paths: [(String, String, Int, pid_t?)] = [
            ("berth", "127.0.0.1", berthPort, berth), ("docker-proxy", "127.0.0.1", dockerPort, docker),
            ("direct", containerIP, 5201, nil), ("berth, coalescing off", "127.0.0.1", plainPort, berthPlain),
        ]
        for round in 1...rounds {
            for (name, ip, port, pid) in paths {
                let cpu0 = pid.map(Background.cpu) ?? (user: 0, system: 0)
                let busy0 = Background.machineBusy()
                let r = try host.run { try Iperf.run(ip, port, seconds: seconds) }
                machine[name, default: 0] += Background.machineBusy() - busy0
                let cpu1 = pid.map(Background.cpu) ?? (user: 0, system: 0)
                rate[name, default: []].append(r.gbits)
                let sum = cpu[name, default: (user: 0, system: 0)]
                cpu[name] = (sum.user + cpu1.user - cpu0.user, sum.system + cpu1.system - cpu0.system)
                bytes[name, default: 0] += r.bytes
                let used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
                print("round \(round) \(name): \(fmt(r.gbits)) Gbit/s" + (pid == nil ? "" : ", \(fmt(used / (r.bytes / Double(1 << 30)), 3)) s/GiB"))
            }
        }
        let gib = Double(1 << 30)
        func perGiB(_ name: String) -> (total: Double, user: Double) {
            let c = cpu[name]!, g = bytes[name]! / gib
            return ((c.user + c.system) / g, c.user / g)
        }
        let berthCPU = perGiB("berth"), dockerCPU = perGiB("docker-proxy"), plainCPU = perGiB("berth, coalescing off")
        let berthMem = Background.memory(berth), dockerMem = Background.memory(docker), oneMem = Background.memory(berthOne)
        print("cpu: berth-proxy \(fmt(berthCPU.total, 3)) s/GiB (user \(fmt(berthCPU.user, 3))), "
              + "docker-proxy \(fmt(dockerCPU.total, 3)) s/GiB (user \(fmt(dockerCPU.user, 3))) (berth/docker-proxy \(fmt(berthCPU.total / dockerCPU.total))); "
              + "berth-proxy with coalescing off \(fmt(plainCPU.total, 3)) s/GiB (\(fmt(plainCPU.total / dockerCPU.total)) of docker-proxy) at \(fmt(median(rate["berth, coalescing off"]!))) Gbit/s")
        // The whole machine's busy CPU per GiB (iperf3 client and server, the proxy, softirqs,
        // kernel threads): what a proxy adds over the direct path, wherever the kernel runs it.
        let perGiBMachine = Dictionary(uniqueKeysWithValues: machine.map { ($0.key, $0.value / (bytes[$0.key]! / gib)) })
        let direct = perGiBMachine["direct"]!, addedBerth = perGiBMachine["berth"]! - direct
        let addedPlain = perGiBMachine["berth, coalescing off"]! - direct
        let addedDocker = perGiBMachine["docker-proxy"]! - direct
        print("machine cpu: direct \(fmt(direct, 3)) s/GiB, through berth-proxy \(fmt(perGiBMachine["berth"]!, 3)), "
              + "through docker-proxy \(fmt(perGiBMachine["docker-proxy"]!, 3)); added by the proxy: berth \(fmt(addedBerth, 3)), "
              + "docker-proxy \(fmt(addedDocker, 3)) (berth/docker-proxy \(fmt(addedBerth / addedDocker))), "
              + "berth with coalescing off \(fmt(addedPlain, 3))")
        print("memory: berth-proxy with \(ports) ports \(berthMem.summary), with 1 port \(oneMem.summary); docker-proxy with 1 port \(dockerMem.summary)")
        let b = median(rate["berth"]!), d = median(rate["docker-proxy"]!), z = median(rate["direct"]!)
        print("proxy: berth \(fmt(b)) Gbit/s, docker-proxy \(fmt(d)), direct \(fmt(z)), berth/direct \(fmt(b / z)), berth/docker-proxy \(fmt(b / d))")
    }

    static func siblingExecutable(_ name: String) -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return name }
        let me = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(me[..<(me.lastIndex(of: "/") ?? me.startIndex)]) + "/" + name
    }
}

/// Processes the benchmark starts and leaves running (posix_spawn from the calling thread, so
/// they start in that thread's network namespace).
enum Background {
    static func spawn(_ executable: String, _ args: [String]) throws -> pid_t {
        let path = try Command.resolve(executable)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // docker-proxy reports readiness on fd 3 and closes it: give it one that is not a listener.
        posix_spawn_file_actions_addopen(&actions, 3, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let rc = withCStrings([path] + args) { argv in
            withCStrings(currentEnvironment().map { "\($0.key)=\($0.value)" }) { env in
                posix_spawn(&pid, path, &actions, nil, argv, env)
            }
        }
        guard rc == 0 else { throw BerthError.system("spawn \(executable)", errno: rc) }
        return pid
    }

    /// Polls until something accepts connections on ip:port (up to 10 s).
    static func waitForListener(_ ip: String, _ port: UInt16) throws {
        let addr = try IPv4Address.parse(ip)
        for _ in 0..<200 {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr.s_addr = addr.value.bigEndian
            let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, 16) } }
            close(s)
            if rc == 0 { return }
            usleep(50_000)
        }
        throw BerthError(.notFound, "nothing listens on \(ip):\(port)")
    }

    /// CPU time of a process, all its threads (live and exited), in seconds: user and system.
    /// System time includes the softirq work (TCP receive of the peer socket) that the kernel runs
    /// on the proxy's thread, as it does for any proxy; both proxies are measured the same way.
    static func cpu(_ pid: pid_t) -> (user: Double, system: Double) {
        guard let stat = try? FileIO.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return (0, 0) }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state(0) ppid(1) … utime(11) stime(12).
        guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return (0, 0) }
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (u / tick, s / tick)
    }

    /// The machine's busy CPU time so far, all CPUs, in seconds (/proc/stat: everything but idle
    /// and iowait).
    static func machineBusy() -> Double {
        guard let stat = try? FileIO.read("/proc/stat"), let line = stat.split(separator: "\n").first,
              line.hasPrefix("cpu ") else { return 0 }
        let v = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard v.count >= 5 else { return 0 }
        let total = v.prefix(8).reduce(0, +)  // user nice system idle iowait irq softirq steal
        return (total - v[3] - v[4]) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident memory of a process in KiB. RSS counts every resident page mapped (shared
    /// libraries in full); PSS divides shared pages among the processes mapping them (docker-proxy
    /// shares libc with every other process);
    /// private is what only this process maps; anonymous is heap, stacks and written data; file is
    /// mapped code and read-only data.
    struct Memory {
        var rss = 0.0, pss = 0.0, privateKiB = 0.0, anon = 0.0, file = 0.0
        var threads = 0

        func mib(_ kib: Double) -> String { fmt(kib / 1024) }
        var summary: String {
            "RSS \(mib(rss)) MiB (PSS \(mib(pss)), private \(mib(privateKiB)), anonymous \(mib(anon)), file \(mib(file)); \(threads) threads)"
        }
    }

    static func memory(_ pid: pid_t) -> Memory {
        func fields(_ path: String) -> [Substring: Double] {
            var out: [Substring: Double] = [:]
            for line in ((try? FileIO.read(path)) ?? "").split(separator: "\n") {
                let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard parts.count >= 2, parts[0].hasSuffix(":"), let v = Double(parts[1]) else { continue }
                out[parts[0].dropLast()] = v
            }
            return out
        }
        let status = fields("/proc/\(pid)/status"), rollup = fields("/proc/\(pid)/smaps_rollup")
        return Memory(rss: status["VmRSS"] ?? 0, pss: rollup["Pss"] ?? 0,
                      privateKiB: (rollup["Private_Clean"] ?? 0) + (rollup["Private_Dirty"] ?? 0), anon: status["RssAnon"] ?? 0,
                      file: status["RssFile"] ?? 0, threads: Int(status["Threads"] ?? 0))
    }
}

enum Iperf {
    /// One iperf3 client run; the receiver's byte count and rate.
    static func run(_ ip: String, _ port: Int, seconds: Int) throws -> (gbits: Double, bytes: Double) {
        let args = ["-c", ip, "-p", String(port), "-t", String(seconds), "-f", "m"]
        var result = try Command.run("iperf3", args)
        if !result.succeeded {
            // The server sometimes resets a control connection that follows a test too closely.
            usleep(500_000)
            result = try Command.check("iperf3", args)
        }
        let out = result.stdout
        guard let line = out.split(separator: "\n").last(where: { $0.hasSuffix("receiver") }) else {
            throw BerthError(.corrupt, "no receiver line in iperf3 output: \(out)")
        }
        let t = line.split(separator: " ")
        let units: [Substring: Double] = ["Bytes": 1, "KBytes": 1024, "MBytes": 1_048_576, "GBytes": 1_073_741_824, "TBytes": 1_099_511_627_776]
        guard let u = t.firstIndex(where: { units[$0] != nil }), u > 0, let n = Double(t[u - 1]),
            let mbit = t.firstIndex(of: "Mbits/sec"), let r = Double(t[mbit - 1])
        else { throw BerthError(.corrupt, "unexpected iperf3 line: \(line)") }
        let amount = n * units[t[u]]!
        return (r / 1000, amount)
    }
}
