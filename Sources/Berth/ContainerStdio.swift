import BerthNamespaces

/// Where a started container's standard streams go.
public enum ContainerStdio: Sendable {
    /// stdout and stderr appended to the container's log file (detached); stdin from /dev/null,
    /// or with `ContainerConfig.openStdin` (`-i`) from the container's attach socket, which this
    /// process serves until the container exits (``Engine/openInput(_:)``).
    case logFile
    /// stdout and stderr copied both to this process's stdout/stderr and to the log file;
    /// stdin from this process's stdin when `interactive`, else /dev/null (`berth run` in the foreground).
    case terminal(interactive: Bool)
    /// A pseudo-terminal (`-t`): the container's stdin, stdout and stderr are the slave of a new
    /// pty (its controlling terminal, sized like this process's terminal); what it writes is
    /// copied from the master to this process's stdout (when `foreground`) and to the log file;
    /// this process's stdin is copied to the master when `interactive`. Putting the local
    /// terminal in raw mode is the caller's business (``RawTerminalMode``).
    /// Without `interactive` and with `ContainerConfig.openStdin`, the terminal's input comes from
    /// the container's attach socket, as with ``logFile``.
    case pseudoTerminal(interactive: Bool, foreground: Bool)
    /// Exactly these streams (tests, benchmarks); nothing is logged.
    case custom(ProcessStdio)
}

extension ContainerStdio {
    /// Whether the container's stdin comes from this process (or the caller's own streams).
    var takesLocalInput: Bool {
        switch self {
        case .logFile: false
        case .terminal(let interactive), .pseudoTerminal(let interactive, _): interactive
        case .custom: true
        }
    }
}
