import BerthNamespaces

/// Where a started container's standard streams go.
public enum ContainerStdio: Sendable {
    /// stdout and stderr appended to the container's log file, stdin from /dev/null (detached).
    case logFile
    /// stdout and stderr copied both to this process's stdout/stderr and to the log file;
    /// stdin from this process's stdin when `interactive`, else /dev/null (`berth run` in the foreground).
    case terminal(interactive: Bool)
    /// A pseudo-terminal (`-t`): the container's stdin, stdout and stderr are the slave of a new
    /// pty (its controlling terminal, sized like this process's terminal); what it writes is
    /// copied from the master to this process's stdout (when `foreground`) and to the log file;
    /// this process's stdin is copied to the master when `interactive`. Putting the local
    /// terminal in raw mode is the caller's business (``RawTerminalMode``).
    case pseudoTerminal(interactive: Bool, foreground: Bool)
    /// Exactly these streams (tests, benchmarks); nothing is logged.
    case custom(ProcessStdio)
}
