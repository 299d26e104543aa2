import BerthNamespaces

/// Where a started container's standard streams go.
public enum ContainerStdio: Sendable {
    /// stdout and stderr appended to the container's log file, stdin from /dev/null (detached).
    case logFile
    /// stdout and stderr copied both to this process's stdout/stderr and to the log file;
    /// stdin from this process's stdin when `interactive`, else /dev/null (`berth run` in the foreground).
    case terminal(interactive: Bool)
    /// Exactly these streams (tests, benchmarks); nothing is logged.
    case custom(ProcessStdio)
}
