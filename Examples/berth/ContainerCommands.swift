import ArgumentParser
import Berth
import BerthNamespaces
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start one or more stopped containers.",
        discussion: """
            With -a (or -i) one container is started and attached, as by berth attach but from \
            its first output on: its output is printed, signals go to it, and start ends with its \
            exit code unless the detach keys are typed. -i also forwards stdin to a container \
            created with -i (and -t: to its terminal).
            """)
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("a"), .customLong("attach")], help: "Attach STDOUT/STDERR and forward signals.")
    var attach = false
    @Flag(name: [.customShort("i"), .customLong("interactive")], help: "Attach the container's STDIN.")
    var interactive = false
    @Option(name: .customLong("detach-keys"), help: "Key sequence that detaches, e.g. ctrl-a,x (default ctrl-p,ctrl-q).")
    var detachKeys = ""
    @Argument var containers: [String]

    func run() throws {
        guard attach || interactive else {
            try global.forEachContainer(containers) { engine, c in
                try engine.startDetached(try engine.store.resolve(c))
            }
            return
        }
        let code: Int32 = try guarded(status: 1) {
            guard containers.count == 1 else {
                throw BerthError(.invalidArgument, "you cannot start and attach multiple containers at once")
            }
            let keys = try DetachKeys(parsing: detachKeys)
            let engine = try global.engine()
            let id = try engine.store.resolve(containers[0])
            let from = Attachment.logEnd(engine.logPath(id))
            try engine.startDetached(id)
            return try Attachment(engine: engine, id: id, from: from).run(stdin: interactive, keys: keys, proxySignals: true)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop one or more running containers.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("t"), .customLong("time")], help: "Seconds to wait before killing it.")
    var time: Double = 10
    @Argument var containers: [String]

    func run() throws {
        try global.forEachContainer(containers) { engine, c in
            try engine.stop(c, timeout: time)
        }
    }
}

struct RestartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Restart one or more containers.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("t"), .customLong("time")], help: "Seconds to wait before killing it.")
    var time: Double = 10
    @Argument var containers: [String]

    func run() throws {
        try global.forEachContainer(containers) { engine, c in
            try engine.restart(c, timeout: time)
        }
    }
}

struct KillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Kill one or more running containers.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("s"), .customLong("signal")], help: "Signal to send (name or number).")
    var signal: String = "KILL"
    @Argument var containers: [String]

    func run() throws {
        let number = try guarded(status: 1) { try SignalName.parse(signal) }
        try global.forEachContainer(containers) { engine, c in
            try engine.kill(c, signal: number)
        }
    }
}

struct PauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Pause all processes within one or more containers.")
    @OptionGroup var global: GlobalOptions
    @Argument var containers: [String]

    func run() throws {
        try global.forEachContainer(containers) { engine, c in try engine.pause(c) }
    }
}

struct UnpauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpause", abstract: "Unpause all processes within one or more containers.")
    @OptionGroup var global: GlobalOptions
    @Argument var containers: [String]

    func run() throws {
        try global.forEachContainer(containers) { engine, c in try engine.unpause(c) }
    }
}

enum SignalName {
    static let names: [String: Int32] = ["HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1,
                                         "USR2": SIGUSR2, "TERM": SIGTERM, "STOP": SIGSTOP, "CONT": SIGCONT]
    static func parse(_ text: String) throws -> Int32 {
        if let n = Int32(text), n > 0, n < 65 { return n }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name = String(name.dropFirst(3)) }
        guard let n = names[name] else { throw BerthError(.invalidArgument, "invalid signal: \(text)") }
        return n
    }
}

struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove one or more containers.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("f"), .customLong("force")], help: "Force the removal of a running container.")
    var force = false
    @Flag(name: [.customShort("v"), .customLong("volumes")], help: "Remove anonymous volumes of the container.")
    var volumes = false
    @Argument var containers: [String]

    func run() throws {
        try global.forEachContainer(containers) { engine, c in
            try engine.remove(c, force: force, removeVolumes: volumes)
        }
    }
}

struct WaitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wait", abstract: "Block until containers stop, then print their exit codes.")
    @OptionGroup var global: GlobalOptions
    @Argument var containers: [String]

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            for c in containers { out("\(try engine.wait(c))\n") }
        }
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("a"), .customLong("all")], help: "Show all containers (default shows just running).")
    var all = false
    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "Only display container IDs.")
    var quiet = false
    @Flag(name: .customLong("no-trunc"), help: "Don't truncate output.")
    var noTrunc = false

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            let records = try engine.store.list().filter { all || $0.state.isRunning }
            if quiet {
                out(records.map { (noTrunc ? $0.id.full : $0.id.short) + "\n" }.joined())
            } else {
                out(ContainerListing.table(records, truncate: !noTrunc))
            }
        }
    }
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats",
        abstract: "Display a live stream of container(s) resource usage statistics.",
        discussion: "Without containers: every running one. CPU % compares two readings a second apart.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .customLong("no-stream"), help: "Print one table and exit.")
    var noStream = false
    @Argument var containers: [String] = []

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            let ids = containers.isEmpty
                ? try engine.store.list().filter(\.state.isRunning).map(\.id)
                : try containers.map { try engine.store.resolve($0) }
            // Names as of now, read once (a stopped container's row still needs one).
            var names: [ContainerID: String] = [:]
            for id in ids { names[id] = (try? engine.store.load(id).name) ?? id.short }
            func read() -> [ContainerID: ContainerStats] {
                var readings: [ContainerID: ContainerStats] = [:]
                for id in ids { readings[id] = try? engine.stats(id.full) }
                return readings
            }
            var earlier = read()
            while true {
                usleep(1_000_000)
                let now = read()
                let rows = ids.map { id in
                    StatsListing.row(id: id, name: names[id] ?? id.short, earlier: earlier[id], now: now[id])
                }
                // A live table redraws in place, as Docker's does.
                out((noStream ? "" : "\u{1B}[2J\u{1B}[H") + TableFormatter.render([StatsListing.header] + rows))
                if noStream { return }
                earlier = now
            }
        }
    }
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Return low-level information on containers.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("f"), .customLong("format")], help: "Format the output using a Go template.")
    var format: String?
    @Argument var containers: [String]

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            let records = try containers.map { try engine.store.find($0) }
            if let format {
                let template = try InspectTemplate(format)
                for r in records {
                    out(try template.render(InspectDocument.make(r, storeDirectory: engine.store.directory(of: r.id))) + "\n")
                }
            } else {
                out(InspectDocument.render(records) { engine.store.directory(of: $0) })
            }
        }
    }
}

struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Fetch the logs of a container.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("f"), .customLong("follow")], help: "Follow log output.")
    var follow = false
    @Argument var container: String

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            let id = try engine.store.resolve(container)
            try LogFollower.copy(path: engine.logPath(id), follow: follow) {
                (try? engine.store.load(id).state.isRunning) ?? false
            }
        }
    }
}

/// Copies a log file to stdout, optionally following it while the container runs.
enum LogFollower {
    static func copy(path: String, follow: Bool, detachKeys: Bool = false, running: () -> Bool) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT && !follow { return }
            if errno != ENOENT { throw BerthError.system("open \(path)") }
        }
        var current = fd
        defer { if current >= 0 { close(current) } }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if current < 0 { current = open(path, O_RDONLY | O_CLOEXEC) }
            var n = 0
            if current >= 0 {
                n = buffer.withUnsafeMutableBytes { read(current, $0.baseAddress!, $0.count) }
                if n > 0 {
                    _ = buffer.withUnsafeBytes { write(1, $0.baseAddress!, n) }
                    continue
                }
            }
            if !follow || !running() {
                // One last read after the container stopped.
                if current >= 0 {
                    while true {
                        let m = buffer.withUnsafeMutableBytes { read(current, $0.baseAddress!, $0.count) }
                        if m <= 0 { break }
                        _ = buffer.withUnsafeBytes { write(1, $0.baseAddress!, m) }
                    }
                }
                return
            }
            usleep(50_000)
        }
    }
}

struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "attach",
        abstract: "Attach local standard input and output to a running container (detach with Ctrl-P Ctrl-Q).",
        discussion: """
            Output is what the container writes from now on. Input reaches a container started \
            detached with -i (with -t: its terminal, sized like ours; our terminal goes raw, so \
            Ctrl-C reaches the container); otherwise it is only watched for the detach keys. \
            Signals this command receives (Ctrl-C, for a container without -t) go to the \
            container unless --sig-proxy=false. Without detaching, attach ends when the container does, with its \
            exit code.
            """)
    @OptionGroup var global: GlobalOptions
    @Flag(name: .customLong("no-stdin"), help: "Do not attach STDIN.")
    var noStdin = false
    @Option(name: .customLong("detach-keys"), help: "Key sequence that detaches, e.g. ctrl-a,x (default ctrl-p,ctrl-q).")
    var detachKeys = ""
    @Option(name: .customLong("sig-proxy"), help: "Forward received signals to the container (true/false).")
    var sigProxy = true
    @Argument var container: String

    func run() throws {
        let code: Int32 = try guarded(status: 1) {
            let keys = try DetachKeys(parsing: detachKeys)
            let engine = try global.engine()
            let id = try engine.store.resolve(container)
            let state = try engine.store.load(id).state
            guard state.isRunning else {
                throw BerthError(.invalidState, "You cannot attach to a stopped container, start it first")
            }
            guard !state.paused else {
                throw BerthError(.invalidState, "You cannot attach to a paused container, unpause it first")
            }
            // Attach shows new output only, as Docker does.
            let session = Attachment(engine: engine, id: id, from: Attachment.logEnd(engine.logPath(id)))
            return try session.run(stdin: !noStdin, keys: keys, proxySignals: sigProxy)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

/// A client attached to a running container: prints its output from the log as it grows,
/// forwards stdin (and the terminal's size) to the container's input when it has one, watches
/// for the detach keys and passes signals on.
struct Attachment {
    let engine: Engine
    let id: ContainerID
    /// Where in the log the output to show begins.
    let from: off_t

    /// The size of the log now: what a later start or attach appends begins there.
    static func logEnd(_ path: String) -> off_t {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        return lseek(fd, 0, SEEK_END)
    }

    /// Runs until the container stops (returning its exit code) or the client detaches (0).
    /// - Parameters:
    ///   - stdin: Read stdin: forward it when the container has input, watch it for the keys.
    ///   - keys: The detach sequence.
    ///   - proxySignals: Send SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the container
    ///     (unless it has a terminal).
    func run(stdin: Bool, keys: DetachKeys, proxySignals: Bool) throws -> Int32 {
        let input = stdin ? try? engine.openInput(id.full) : nil
        let raw = input?.hasTerminal == true ? RawTerminalMode(fd: 0) : nil
        defer { raw?.restore() }
        if let input, input.hasTerminal {
            if let size = WindowSize.of(0) ?? WindowSize.of(1) { try? input.resize(size) }
            try AttachInput.followWindowSize(input)
        }
        // As in Docker, not with a terminal: there the keys are the signals (raw mode sends them).
        if proxySignals, (try? engine.store.load(id).config.tty) != true { try AttachInput.proxySignals(to: id.full, of: engine) }
        if stdin { try AttachInput.watchStdin(keys: keys, forwardingTo: input) }
        let path = engine.logPath(id)
        var offset = from
        var buffer = [UInt8](repeating: 0, count: 65536)
        func copyNewOutput() {
            let f = open(path, O_RDONLY | O_CLOEXEC)
            guard f >= 0 else { return }
            while true {
                let n = buffer.withUnsafeMutableBytes { pread(f, $0.baseAddress!, $0.count, offset) }
                if n <= 0 { break }
                offset += off_t(n)
                _ = buffer.withUnsafeBytes { write(1, $0.baseAddress!, n) }
            }
            close(f)
        }
        while (try? engine.store.load(id).state.isRunning) ?? false {
            copyNewOutput()
            if AttachInput.detached { return 0 }
            usleep(20_000)
        }
        copyNewOutput()
        return (try? engine.store.load(id).state.exitCode) ?? 0
    }
}

/// The threads of an attached client: stdin (watched for the detach keys and forwarded to the
/// container's input when there is one), the terminal's size, and signals.
enum AttachInput {
    nonisolated(unsafe) static var detached = false

    static func watchStdin(keys: DetachKeys, forwardingTo input: ContainerInput? = nil) throws {
        try PosixThread.start("the detach-keys thread", detached: true) {
            var matcher = DetachKeyMatcher(keys)
            var buffer = [UInt8](repeating: 0, count: 4096)
            var forwarding = input != nil
            while true {
                let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress!, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                let out = matcher.feed(buffer[0..<n])
                // The container has gone when a write fails: keep watching for the keys only.
                if forwarding && !out.isEmpty { forwarding = (try? input?.write(out)) != nil }
                if matcher.detached { detached = true; return }
            }
            let rest = matcher.flush()
            if forwarding && !rest.isEmpty { try? input?.write(rest) }
        }
    }

    /// Makes a pipe whose write end a signal handler may write to without blocking.
    private static func signalPipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw BerthError.system("create a pipe") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        return (fds[0], fds[1])
    }

    nonisolated(unsafe) static var windowChanged: Int32 = -1

    /// Sends our terminal's size to the container's on every SIGWINCH: the handler only writes
    /// a byte to a pipe, which a thread reads.
    static func followWindowSize(_ input: ContainerInput) throws {
        let (reader, writer) = try signalPipe()
        // A burst of resizes must not block the handler: one pending byte is enough.
        windowChanged = writer
        signal(SIGWINCH) { _ in
            var byte: UInt8 = 1
            _ = write(AttachInput.windowChanged, &byte, 1)
        }
        try PosixThread.start("the window size thread", detached: true) {
            var byte: UInt8 = 0
            while read(reader, &byte, 1) == 1 || errno == EINTR {
                if let size = WindowSize.of(0) ?? WindowSize.of(1) { try? input.resize(size) }
            }
        }
    }

    nonisolated(unsafe) static var signalled: Int32 = -1

    /// Passes the signals a user sends to a client on to the container (Docker's --sig-proxy):
    /// the handler writes the signal's number to a pipe, and a thread sends it.
    static func proxySignals(to reference: String, of engine: Engine) throws {
        let (reader, writer) = try signalPipe()
        signalled = writer
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2] {
            signal(sig) { sig in
                var byte = UInt8(truncatingIfNeeded: sig)
                _ = write(AttachInput.signalled, &byte, 1)
            }
        }
        try PosixThread.start("the signal thread", detached: true) {
            var byte: UInt8 = 0
            while read(reader, &byte, 1) == 1 || errno == EINTR {
                try? engine.kill(reference, signal: Int32(byte))
            }
        }
    }
}

struct PortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "port", abstract: "List port mappings of a container.")
    @OptionGroup var global: GlobalOptions
    @Argument var container: String
    @Argument var privatePort: String?

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            let record = try engine.store.find(container)
            let ports = record.state.isRunning ? record.state.ports : []
            if let privatePort {
                let parts = privatePort.split(separator: "/").map(String.init)
                let proto = parts.count > 1 ? parts[1] : "tcp"
                let matching = ports.filter { "\($0.containerPort)" == parts[0] && $0.proto == proto }
                guard !matching.isEmpty else {
                    throw BerthError(.notFound, "No public port '\(parts[0])/\(proto)' published for \(container)")
                }
                out(matching.map { "\($0.hostIP):\($0.hostPort)\n" }.joined())
            } else {
                out(PortListing.lines(ports))
            }
        }
    }
}

/// `exec -t`: SIGWINCH resizes the command's terminal to ours, as `run -t` does.
enum ExecTerminalResize {
    nonisolated(unsafe) static var terminal: PseudoTerminal?

    static func forward(to pty: PseudoTerminal) {
        terminal = pty
        signal(SIGWINCH) { _ in
            if let size = WindowSize.of(0) ?? WindowSize.of(1) { try? ExecTerminalResize.terminal?.resize(size) }
        }
    }
}

struct ExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "Run a command in a running container.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("e"), .customLong("env")], help: "Set environment variables.")
    var env: [String] = []
    @Option(name: [.customShort("w"), .customLong("workdir")], help: "Working directory inside the container.")
    var workdir: String?
    @Flag(name: [.customShort("i"), .customLong("interactive")], help: "Keep STDIN open.")
    var interactive = false
    @Flag(name: [.customShort("t"), .customLong("tty")], help: "Allocate a pseudo-TTY.")
    var tty = false
    @Argument var container: String
    @Argument(parsing: .captureForPassthrough) var command: [String] = []

    func run() throws {
        let code: Int32 = try guarded(status: 126) {
            let engine = try global.engine()
            guard tty else {
                return try engine.exec(container, argv: command, env: env, workingDir: workdir,
                                       stdio: ProcessStdio(stdin: interactive ? .inherit : .null, stdout: .inherit, stderr: .inherit))
            }
            // -t: the command gets a terminal of its own, opened in the container's devpts; we
            // relay its master to our terminal (raw with -i) until the container side hangs up.
            var terminal: PseudoTerminal?
            var relay: TerminalRelay?
            defer {
                ExecTerminalResize.terminal = nil
                if let terminal { close(terminal.master) }
            }
            let raw = interactive ? RawTerminalMode(fd: 0) : nil
            defer { raw?.restore() }
            let code = try engine.exec(container, argv: command, env: env + ["TERM=xterm"], workingDir: workdir,
                                       stdio: .containerTerminal(size: WindowSize.of(0) ?? WindowSize.of(1))) { process in
                terminal = process.takeTerminal()
                guard let terminal else { return }
                relay = try TerminalRelay(master: terminal.master, input: interactive ? 0 : -1, outputs: [1])
                ExecTerminalResize.forward(to: terminal)
            }
            relay?.wait()
            return code
        }
        if code != 0 { throw ExitCode(code) }
    }
}
