import ArgumentParser
import Berth
import BerthNamespaces
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start one or more stopped containers.")
    @OptionGroup var global: GlobalOptions
    @Argument var containers: [String]

    func run() throws {
        try global.forEachContainer(containers) { engine, c in
            try engine.startDetached(try engine.store.resolve(c))
        }
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
            Without detaching, attach ends when the container does, with its exit code.
            """)
    @OptionGroup var global: GlobalOptions
    @Flag(name: .customLong("no-stdin"), help: "Do not attach STDIN.")
    var noStdin = false
    @Argument var container: String

    func run() throws {
        let code: Int32 = try guarded(status: 1) {
            let engine = try global.engine()
            let id = try engine.store.resolve(container)
            guard try engine.store.load(id).state.isRunning else {
                throw BerthError(.invalidState, "You cannot attach to a stopped container, start it first")
            }
            let input = noStdin ? nil : try? engine.openInput(id.full)
            let raw = input?.hasTerminal == true ? RawTerminalMode(fd: 0) : nil
            defer { raw?.restore() }
            if let input, input.hasTerminal {
                if let size = WindowSize.of(0) ?? WindowSize.of(1) { try? input.resize(size) }
                try DetachKeys.followWindowSize(input)
            }
            if !noStdin { try DetachKeys.watchStdin(forwardingTo: input) }
            let path = engine.logPath(id)
            // Attach shows new output only, as Docker does.
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            var offset: off_t = fd >= 0 ? lseek(fd, 0, SEEK_END) : 0
            if fd >= 0 { close(fd) }
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
                if DetachKeys.detached { return 0 }
                usleep(20_000)
            }
            copyNewOutput()
            return (try? engine.store.load(id).state.exitCode) ?? 0
        }
        if code != 0 { throw ExitCode(code) }
    }
}

/// Watches stdin for Docker's detach sequence Ctrl-P Ctrl-Q, forwarding everything else to a
/// container's input when there is one (a Ctrl-P not followed by Ctrl-Q is passed on).
enum DetachKeys {
    nonisolated(unsafe) static var detached = false

    static func watchStdin(forwardingTo input: ContainerInput? = nil) throws {
        try PosixThread.start("the detach-keys thread", detached: true) {
            var held = false
            var buffer = [UInt8](repeating: 0, count: 4096)
            var forwarding = input != nil
            while true {
                let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress!, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                var out: [UInt8] = []
                for b in buffer[0..<n] {
                    if held {
                        held = false
                        if b == 0x11 {
                            if forwarding { try? input?.write(out) }
                            detached = true
                            return
                        }
                        out.append(0x10)
                    }
                    if b == 0x10 { held = true } else { out.append(b) }
                }
                // The container has gone when a write fails: keep watching for the keys only.
                if forwarding && !out.isEmpty { forwarding = (try? input?.write(out)) != nil }
            }
            if held && forwarding { try? input?.write([0x10]) }
        }
    }

    nonisolated(unsafe) static var windowChanged: Int32 = -1

    /// Sends our terminal's size to the container's on every SIGWINCH: the handler only writes
    /// a byte to a pipe, which a thread reads.
    static func followWindowSize(_ input: ContainerInput) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw BerthError.system("create a pipe") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // A burst of resizes must not block the handler: one pending byte is enough.
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        let reader = fds[0]
        windowChanged = fds[1]
        signal(SIGWINCH) { _ in
            var byte: UInt8 = 1
            _ = write(DetachKeys.windowChanged, &byte, 1)
        }
        try PosixThread.start("the window size thread", detached: true) {
            var byte: UInt8 = 0
            while read(reader, &byte, 1) == 1 || errno == EINTR {
                if let size = WindowSize.of(0) ?? WindowSize.of(1) { try? input.resize(size) }
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
