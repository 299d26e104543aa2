import BerthNamespaces

#if canImport(Glibc)
import Glibc
#endif

/// Forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT received by berth-ns to the container; a second SIGINT
/// kills it (a shell as pid 1 ignores signals it has no handler for). SIGWINCH resizes the
/// container's terminal to ours.
enum SignalForwarder {
    private final class Job: @unchecked Sendable {
        let set: sigset_t
        let container: ContainerProcess
        let terminal: PseudoTerminal?
        init(set: sigset_t, container: ContainerProcess, terminal: PseudoTerminal?) {
            self.set = set
            self.container = container
            self.terminal = terminal
        }
    }

    static func start(set: sigset_t, to container: ContainerProcess, terminal: PseudoTerminal?) {
        let job = Unmanaged.passRetained(Job(set: set, container: container, terminal: terminal)).toOpaque()
        var thread = pthread_t()
        _ = pthread_create(&thread, nil, { arg in
            let job = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
            var set = job.set
            var interrupts = 0
            while true {
                var sig: Int32 = 0
                guard sigwait(&set, &sig) == 0 else { return nil }
                if sig == SIGWINCH {
                    if let pty = job.terminal, let size = WindowSize.of(0) ?? WindowSize.of(1) { try? pty.resize(size) }
                    continue
                }
                if sig == SIGINT { interrupts += 1 }
                try? job.container.kill(interrupts > 1 ? SIGKILL : sig)
            }
        }, job)
        pthread_detach(thread)
    }
}
