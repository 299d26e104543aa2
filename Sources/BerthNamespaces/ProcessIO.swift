import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// Where one of a container process's standard streams goes.
public enum StdioTarget: Sendable, Equatable {
    /// The same descriptor as the calling process.
    case inherit
    /// /dev/null (of the host, opened before the clone).
    case null
    /// A descriptor owned by the caller (it stays open in the caller).
    case fd(Int32)
    /// A host file: opened read-only for stdin; created (or truncated unless `append`) for output.
    case file(String, append: Bool = false)
}

/// The three standard streams of a container process.
public struct ProcessStdio: Sendable, Equatable {
    /// Standard input.
    public var stdin: StdioTarget
    /// Standard output.
    public var stdout: StdioTarget
    /// Standard error.
    public var stderr: StdioTarget
    /// Whether the process starts a new session whose controlling terminal is its stdin
    /// (`setsid` + `TIOCSCTTY` in the child): set by ``terminal(_:)`` and ``containerTerminal(size:)``.
    public var controllingTerminal: Bool = false
    /// Whether the child allocates a new pseudo-terminal through the container's own `/dev/ptmx`
    /// for all three streams (the three targets above are then ignored): set by
    /// ``containerTerminal(size:)``.
    public var allocatesTerminal: Bool = false
    /// The initial window size of the terminal the child allocates (`nil`: the kernel's 0 x 0).
    public var terminalSize: WindowSize?

    /// - Parameters:
    ///   - stdin: Standard input (default /dev/null).
    ///   - stdout: Standard output (default: inherited).
    ///   - stderr: Standard error (default: inherited).
    public init(stdin: StdioTarget = .null, stdout: StdioTarget = .inherit, stderr: StdioTarget = .inherit) {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
    }

    /// All three inherited from the caller.
    public static let inherit = ProcessStdio(stdin: .inherit, stdout: .inherit, stderr: .inherit)
    /// All three on the slave of `pty`, a pair the caller opened (on the caller's devpts: in a
    /// container with a devpts of its own, `isatty` holds but `ttyname` finds no name for it, so
    /// prefer ``containerTerminal(size:)`` there). The slave becomes the process's controlling
    /// terminal in a session of its own.
    public static func terminal(_ pty: PseudoTerminal) -> ProcessStdio {
        var stdio = ProcessStdio(stdin: .fd(pty.slave), stdout: .fd(pty.slave), stderr: .fd(pty.slave))
        stdio.controllingTerminal = true
        return stdio
    }

    /// All three on a new pseudo-terminal that the child opens through `/dev/ptmx` once it is in
    /// the container's mount namespace, as runc does: the slave is `/dev/pts/N` of the
    /// container's own devpts (`tty` names it), owned by the process's user, and becomes the
    /// controlling terminal of a session the process leads (what OCI `process.terminal` and
    /// `docker run -t` give). The master comes back over a unix socket (`SCM_RIGHTS`): take it
    /// with ``ContainerProcess/takeTerminal()`` after ``ContainerProcess/start()``.
    /// - Parameter size: The initial window size, e.g. the caller's terminal's.
    public static func containerTerminal(size: WindowSize? = nil) -> ProcessStdio {
        var stdio = ProcessStdio(stdin: .inherit, stdout: .inherit, stderr: .inherit)
        stdio.controllingTerminal = true
        stdio.allocatesTerminal = true
        stdio.terminalSize = size
        return stdio
    }
    /// All three on /dev/null.
    public static let null = ProcessStdio(stdin: .null, stdout: .null, stderr: .null)

    /// Opens what needs opening. Returns the child's three source fds (-1 = inherit) and the fds
    /// the caller must close after the clone.
    func open() throws -> (fds: [Int32], owned: [Int32]) {
        if allocatesTerminal { return ([-1, -1, -1], []) }
        var fds: [Int32] = []
        var owned: [Int32] = []
        do {
            for (index, target) in [stdin, stdout, stderr].enumerated() {
                switch target {
                case .inherit: fds.append(-1)
                case .fd(let fd): fds.append(fd)
                case .null:
                    let fd = Glibc.open("/dev/null", (index == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC)
                    guard fd >= 0 else { throw BerthError.system("open /dev/null") }
                    owned.append(fd)
                    fds.append(fd)
                case .file(let path, let append):
                    let flags = index == 0 ? O_RDONLY : O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC)
                    let fd = Glibc.open(path, flags | O_CLOEXEC, 0o644)
                    guard fd >= 0 else {
                        let e = errno
                        throw BerthError(e == ENOENT ? .notFound : .system,
                                         "open \(path) for \(["stdin", "stdout", "stderr"][index]): \(strerrorString(e))", errno: e)
                    }
                    owned.append(fd)
                    fds.append(fd)
                }
            }
        } catch {
            for fd in owned { close(fd) }
            throw error
        }
        return (fds, owned)
    }
}

/// How a process ended.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    /// It called exit with this status.
    case exited(Int32)
    /// A signal killed it.
    case signaled(Int32)

    /// The shell convention: the exit status, or 128 + the signal number.
    public var code: Int32 {
        switch self {
        case .exited(let c): c
        case .signaled(let s): 128 + s
        }
    }

    public var description: String {
        switch self {
        case .exited(let c): "exited with status \(c)"
        case .signaled(let s): "killed by signal \(s)"
        }
    }
}
