import ArgumentParser
import Berth
import BerthCgroups
import BerthNamespaces
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// The container flags of `run` and `create`, spelled as Docker's.
struct ContainerOptions: ParsableArguments {
    @Option(name: .long, help: "Assign a name to the container.")
    var name: String?

    @Option(name: [.customShort("h"), .long], help: "Container host name.")
    var hostname: String?

    @Option(name: [.customShort("e"), .customLong("env")], help: "Set an environment variable (KEY=value).")
    var env: [String] = []

    @Option(name: .customLong("env-file"), help: "Read environment variables from a file.")
    var envFile: [String] = []

    @Option(name: [.customShort("p"), .customLong("publish")], help: "Publish a port: [IP:][HOST:]CONTAINER[/PROTO].")
    var publish: [String] = []

    @Flag(name: [.customShort("P"), .customLong("publish-all")], help: "Publish all exposed ports to random ports.")
    var publishAll = false

    @Option(name: .customLong("expose"), help: "Expose a port or a range of ports.")
    var expose: [String] = []

    @Option(name: .customLong("link"), help: "Add a link to another container (name[:alias]).")
    var link: [String] = []

    @Option(name: [.customShort("v"), .customLong("volume")], help: "Bind mount a volume.")
    var volume: [String] = []

    @Option(name: .customLong("volumes-from"), help: "Mount volumes from the specified container(s).")
    var volumesFrom: [String] = []

    @Option(name: [.customLong("net"), .customLong("network")], help: "bridge, host, none or container:<name|id>.")
    var network: String = "bridge"

    @Option(name: .customLong("ip"), help: "IPv4 address on the bridge.")
    var ip: String?

    @Option(name: [.customShort("m"), .customLong("memory")], help: "Memory limit (e.g. 64m).")
    var memory: String?

    @Option(name: .customLong("cpus"), help: "Number of CPUs.")
    var cpus: Double?

    @Option(name: .customLong("pids-limit"), help: "Tune container pids limit.")
    var pidsLimit: Int64?

    @Option(name: .customLong("add-host"), help: "Add a custom host-to-IP mapping (host:ip).")
    var addHost: [String] = []

    @Option(name: .customLong("dns"), help: "Set custom DNS servers.")
    var dns: [String] = []

    @Option(name: .customLong("dns-search"), help: "Set custom DNS search domains.")
    var dnsSearch: [String] = []

    @Option(name: .customLong("dns-option"), help: "Set DNS options.")
    var dnsOption: [String] = []

    @Option(name: [.customShort("w"), .customLong("workdir")], help: "Working directory inside the container.")
    var workdir: String?

    @Option(name: .customLong("entrypoint"), help: "Overwrite the default ENTRYPOINT of the image.")
    var entrypoint: String?

    @Option(name: [.customShort("u"), .customLong("user")], help: "Username or UID (format: <name|uid>[:<group|gid>]).")
    var user: String?

    @Flag(name: .customLong("rm"), help: "Automatically remove the container when it exits.")
    var autoRemove = false

    @Flag(name: [.customShort("i"), .customLong("interactive")], help: "Keep STDIN open.")
    var interactive = false

    @Flag(name: [.customShort("t"), .customLong("tty")], help: "Allocate a pseudo-TTY.")
    var tty = false

    @Flag(name: .customLong("read-only"), help: "Mount the container's root filesystem as read only.")
    var readOnly = false

    @Flag(name: .customLong("privileged"), help: "Give extended privileges to this container.")
    var privileged = false

    @Option(name: .customLong("cap-add"), help: "Add Linux capabilities.")
    var capAdd: [String] = []

    @Option(name: .customLong("cap-drop"), help: "Drop Linux capabilities.")
    var capDrop: [String] = []

    @Option(name: .customLong("security-opt"), help: "Security options.")
    var securityOpt: [String] = []

    @Option(name: [.customShort("l"), .customLong("label")], help: "Set metadata (key=value).")
    var label: [String] = []

    @Argument(help: "The image.")
    var image: String

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.")
    var command: [String] = []

    /// The configuration these flags describe.
    func config() throws -> ContainerConfig {
        var c = ContainerConfig(image: image, cmd: command)
        c.tty = tty
        for file in envFile {
            guard let text = try? FileIO.read(file) else { throw BerthError(.notFound, "open \(file): no such file or directory") }
            for line in text.split(separator: "\n") {
                let l = String(line).trimmingSpaces()
                if l.isEmpty || l.hasPrefix("#") { continue }
                c.env.append(l.contains("=") ? l : l + "=" + (getenv(l).map { String(cString: $0) } ?? ""))
            }
        }
        for e in env {
            c.env.append(e.contains("=") ? e : e + "=" + (getenv(e).map { String(cString: $0) } ?? ""))
        }
        if let entrypoint { c.entrypoint = entrypoint.isEmpty ? [] : [entrypoint] }
        c.workingDir = workdir ?? ""
        c.user = user ?? ""
        c.hostname = hostname ?? ""
        c.exposedPorts = expose
        c.portSpecs = publish
        c.publishAll = publishAll
        c.links = link
        c.volumes = volume
        c.volumesFrom = volumesFrom
        c.networkMode = network
        c.ipAddress = ip
        c.memoryBytes = try memory.map(CgroupLimits.parseMemory)
        c.cpus = cpus
        c.pidsLimit = pidsLimit
        c.dns = dns
        c.dnsSearch = dnsSearch
        c.dnsOptions = dnsOption
        c.extraHosts = addHost
        c.autoRemove = autoRemove
        c.openStdin = interactive
        c.readOnlyRootfs = readOnly
        c.privileged = privileged
        c.capAdd = capAdd
        c.capDrop = capDrop
        c.securityOpt = securityOpt
        for l in label {
            let parts = l.split(separator: "=", maxSplits: 1).map(String.init)
            c.labels[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        return c
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a command in a new container.",
                                                    helpNames: [.long])
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("d"), .customLong("detach")], help: "Run in the background and print the container ID.")
    var detach = false
    @OptionGroup var container: ContainerOptions

    func run() throws {
        let code: Int32 = try guarded {
            StepTrace.mark("arguments")
            let engine = try global.engine()
            StepTrace.mark("engine + reconcile")
            let config = try container.config()
            let record = try engine.create(config, name: container.name, overridesEntrypoint: container.entrypoint != nil)
            if detach {
                do {
                    try engine.startDetached(record.id)
                } catch {
                    if config.autoRemove { try? engine.remove(record.id.full, force: true) }
                    throw error
                }
                out(record.id.full + "\n")
                return 0
            }
            let running: RunningContainer
            do {
                running = try engine.start(record.id, stdio: config.tty
                    ? .pseudoTerminal(interactive: container.interactive, foreground: true)
                    : .terminal(interactive: container.interactive))
            } catch {
                if config.autoRemove { try? engine.remove(record.id.full, force: true) }
                throw error
            }
            SignalForwarding.forward(to: running)
            // -it: keystrokes (^C included) go to the container's terminal as they are typed.
            let raw = config.tty && container.interactive ? RawTerminalMode(fd: 0) : nil
            let code = running.wait()
            raw?.restore()
            StepTrace.mark("done")
            return code
        }
        if code != 0 { throw ExitCode(code) }
    }
}

struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a new container.",
                                                    helpNames: [.long])
    @OptionGroup var global: GlobalOptions
    @OptionGroup var container: ContainerOptions

    func run() throws {
        try guarded {
            let engine = try global.engine()
            let record = try engine.create(try container.config(), name: container.name,
                                           overridesEntrypoint: container.entrypoint != nil)
            out(record.id.full + "\n")
        }
    }
}

/// Forwards SIGINT and SIGTERM received by a foreground `berth run` to the container, and
/// SIGWINCH as a resize of its terminal (`-t`).
enum SignalForwarding {
    nonisolated(unsafe) static var target: RunningContainer?

    static func forward(to running: RunningContainer) {
        target = running
        signal(SIGINT) { sig in try? SignalForwarding.target?.kill(sig) }
        signal(SIGTERM) { sig in try? SignalForwarding.target?.kill(sig) }
        signal(SIGWINCH) { _ in
            if let size = WindowSize.of(0) ?? WindowSize.of(1) { SignalForwarding.target?.resizeTerminal(size) }
        }
    }
}

struct MonitorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "monitor", abstract: "Own a detached container (internal).",
                                                    shouldDisplay: false)
    @OptionGroup var global: GlobalOptions
    @Argument var id: String

    func run() throws {
        let engine = try global.engine(reconcile: false)
        let fd = getenv("BERTH_MONITOR_READY_FD").flatMap { Int32(String(cString: $0)) } ?? -1
        signal(SIGPIPE, SIG_IGN)
        let code = engine.runMonitor(try ContainerID(id), readyFD: fd)
        throw ExitCode(code)
    }
}
