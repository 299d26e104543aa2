import ArgumentParser
import Berth
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// `berth`: run Docker-style containers without a daemon.
@main
struct BerthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth",
        abstract: "Run Docker-style containers without a daemon.",
        subcommands: [
            RunCommand.self, CreateCommand.self, StartCommand.self, StopCommand.self, RestartCommand.self,
            KillCommand.self, PauseCommand.self, UnpauseCommand.self, RemoveCommand.self, WaitCommand.self, ListCommand.self, StatsCommand.self, InspectCommand.self,
            LogsCommand.self, AttachCommand.self, PortCommand.self, ExecCommand.self, DiffCommand.self,
            CommitCommand.self, HistoryCommand.self, ImagesCommand.self, RemoveImageCommand.self,
            LoadCommand.self, SaveCommand.self, ImportCommand.self, VolumeCommand.self, MonitorCommand.self,
        ])

    /// Docker puts the daemon flags before the command (`berth --root DIR run …`); argument-parser
    /// wants a subcommand's options after its name, so the leading global flags are moved there.
    static func main() {
        let arguments = GlobalOptions.reorder(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            // The kernel's first move into a cgroup waits; let that happen while the engine opens.
            if command is StartsContainers { Engine.prepareForStart() }
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// A command that starts containers (run, start, restart): `berth` gets the kernel ready for
/// their moves into cgroups as soon as it has parsed one (``Engine/prepareForStart(seconds:)``).
protocol StartsContainers {}
extension RunCommand: StartsContainers {}
extension StartCommand: StartsContainers {}
extension RestartCommand: StartsContainers {}

/// The flags every command takes, as dockerd's: `berth --root DIR --bridge NAME ... COMMAND`.
struct GlobalOptions: ParsableArguments {
    @Option(help: "State root directory.")
    var root: String = "/var/lib/berth"

    @Option(name: .customLong("exec-root"),
            help: "Directory for state that ends with a reboot (--rm containers, published ports); a tmpfs. Default: /run/berth with the default root, ROOT/run otherwise.")
    var execRoot: String?

    @Option(help: "Bridge interface (created if missing, adopted if it exists).")
    var bridge: String = "berth0"

    @Option(help: "Bridge address and subnet, e.g. 192.168.11.1/24.")
    var bip: String?

    @Option(help: "Install firewall rules (true/false).")
    var iptables: Bool = true

    @Option(help: "Inter-container communication on the bridge (true/false).")
    var icc: Bool = true

    @Option(name: .customLong("userland-proxy"), help: "Serve loopback traffic to published ports with the userland proxy.")
    var userlandProxy: Bool = true

    @Option(name: .customLong("cgroup-parent"), help: "Parent cgroup of containers.")
    var cgroupParent: String = "berth"

    /// The global flags, all of which take a value.
    static let flags: Set<String> = ["--root", "--exec-root", "--bridge", "--bip", "--iptables", "--icc", "--userland-proxy", "--cgroup-parent"]

    /// Moves global flags that precede the subcommand name after it (after `volume ls`'s two words).
    static func reorder(_ args: [String]) -> [String] {
        var globals: [String] = []
        var i = 0
        while i < args.count, args[i].hasPrefix("--") {
            let flag = String(args[i].split(separator: "=", maxSplits: 1)[0])
            guard flags.contains(flag) else { break }
            globals.append(args[i])
            if !args[i].contains("="), i + 1 < args.count { globals.append(args[i + 1]); i += 1 }
            i += 1
        }
        guard i < args.count, !globals.isEmpty else { return args }
        var head = [args[i]]
        i += 1
        if head[0] == "volume", i < args.count, !args[i].hasPrefix("-") { head.append(args[i]); i += 1 }
        return head + globals + Array(args[i...])
    }

    /// Opens the engine and reconciles its state with the kernel.
    func engine(reconcile: Bool = true) throws -> Engine {
        var options = EngineOptions(root: root, bridge: bridge, iptables: iptables, icc: icc,
                                    userlandProxy: userlandProxy, cgroupParent: cgroupParent, execRoot: execRoot)
        if let bip {
            guard let cidr = IPv4CIDR(bip) else { throw BerthError(.invalidArgument, "invalid --bip \"\(bip)\": expected ADDRESS/PREFIX") }
            options.bip = cidr
        }
        let engine = try Engine(options: options)
        if reconcile { engine.reconcile() }
        return engine
    }
}

/// Runs a command body, printing a `BerthError` as `berth: message` and exiting 125 (Docker's
/// status for daemon-side errors), or 1 for errors of commands that manage existing objects.
func guarded<T>(status: Int32 = 125, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ExitCode {
        throw e
    } catch let e as BerthError {
        FileHandleStderr.write("berth: \(e.message)\n")
        throw ExitCode(status)
    }
}

extension GlobalOptions {
    /// `berth start|stop|restart|kill|rm`: opens the engine and applies `action` to each named
    /// container the way docker does: each success prints the name, a failure is reported for that
    /// container (`Error response from daemon: …`) and the others still go; the command then exits 1.
    func forEachContainer(_ containers: [String], _ action: (Engine, String) throws -> Void) throws {
        try guarded(status: 1) {
            let engine = try engine()
            var failed = false
            for c in containers {
                do {
                    try action(engine, c)
                    out(c + "\n")
                } catch let e as BerthError {
                    FileHandleStderr.write("Error response from daemon: \(e.message)\n")
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}

enum FileHandleStderr {
    static func write(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress!, $0.count) }
    }
}

/// Writes to stdout without buffering surprises.
func out(_ text: String) {
    let bytes = Array(text.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + off, $0.count - off) }
        if n <= 0 { return }
        off += n
    }
}
