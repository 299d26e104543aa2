import ArgumentParser
import BerthCgroups
import BerthSystem
#if canImport(Glibc)
import Glibc
#endif

/// `berth-cgroups`: runs one command in a fresh cgroup with Docker-style limits, then prints what
/// it used and removes the cgroup.
///
///     berth-cgroups --memory 64m --cpus 0.5 --pids-limit 50 -- sh -c 'echo hi'
@main
struct BerthCgroupsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-cgroups",
        abstract: "Run a command in a new cgroup with limits, print its usage, remove the cgroup.")

    @Option(help: "Cgroup name below each hierarchy's root (default: berth/<random>).")
    var name: String?

    @Option(help: "Memory limit, like 64m or 1g.")
    var memory: String?

    @Option(help: "Memory plus swap limit, like 128m (-1 for unlimited swap).")
    var memorySwap: String?

    @Option(help: "Number of CPUs, like 0.5.")
    var cpus: Double?

    @Option(help: "Relative CPU weight (v1 shares, 2-262144).")
    var cpuShares: UInt64?

    @Option(help: "Maximum number of tasks (-1 for unlimited).")
    var pidsLimit: Int64?

    @Option(help: "CPUs the command may run on, like 0-1.")
    var cpusetCpus: String?

    @Option(help: "Memory nodes the command may use, like 0.")
    var cpusetMems: String?

    @Option(help: "Relative block I/O weight (10-1000).")
    var blkioWeight: UInt16?

    @Flag(help: "Print the cgroup's directories too.")
    var verbose = false

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.")
    var command: [String] = []

    func limits() throws -> CgroupLimits {
        var limits = CgroupLimits(cpuShares: cpuShares, pidsMax: pidsLimit, cpusetCpus: cpusetCpus,
                                  cpusetMems: cpusetMems, blkioWeight: blkioWeight)
        if let memory { limits.memoryBytes = try CgroupLimits.parseMemory(memory) }
        if let memorySwap { limits.memorySwapBytes = memorySwap == "-1" ? -1 : try CgroupLimits.parseMemory(memorySwap) }
        if let cpus { limits.setCPUs(cpus) }
        return limits
    }

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard !argv.isEmpty else { throw ValidationError("give a command to run, e.g. -- sh -c 'echo hi'") }
        let hierarchy = try CgroupHierarchy.detect()
        let cgroup = try Cgroup.create(name: name ?? "berth/\(uniqueName("cg"))", limits: try limits())
        var status: Int32 = 0
        do {
            defer {
                try? cgroup.killAll()
                do { try cgroup.destroy() } catch { printError("berth-cgroups: \(error)") }
            }
            let child = try GatedChild(argv)
            do { try cgroup.add(pid: child.pid) } catch { child.abandon(); throw error }
            status = try child.releaseAndWait()
            print(table(cgroup: cgroup, mode: hierarchy.mode, status: status, stats: try cgroup.stats()))
        }
        throw ExitCode(status)
    }

    func table(cgroup: Cgroup, mode: CgroupHierarchy.Mode, status: Int32, stats: CgroupStats) -> String {
        var rows: [(String, String)] = [
            ("cgroup", "\(cgroup.name) (\(mode))"),
            ("exit status", status > 128 ? "\(status) (signal \(status - 128))" : "\(status)"),
            ("memory usage", bytes(stats.memoryUsage)),
            ("memory peak", bytes(stats.memoryPeak)),
            ("cpu time", String(format3(Double(stats.cpuUsageNanos) / 1e6)) + " ms"),
            ("tasks now", "\(stats.pidsCurrent)"),
            ("oom kills", "\(stats.oomKills)"),
        ]
        if verbose { rows += cgroup.paths.sorted { $0.key < $1.key }.map { ("path \($0.key)", $0.value) } }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(width) + "  " + $0.1 }.joined(separator: "\n")
    }

    func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : "\(format3(value)) \(units[unit])"
    }

    func format3(_ x: Double) -> String {
        let scaled = (x * 10).rounded() / 10
        return "\(scaled)"
    }
}

func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
