import BerthNamespaces

#if canImport(Glibc)
import Glibc
#endif

/// Forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT received by berth-ns to the container; a second SIGINT
/// kills it (a shell as pid 1 ignores signals it has no handler for).
enum SignalForwarder {
    private final class Job: @unchecked Sendable {
        let set: sigset_t
        let container: ContainerProcess
        init(set: sigset_t, container: ContainerProcess) {
            self.set = set
            self.container = container
        }
    }

    static func start(set: sigset_t, to container: ContainerProcess) {
        let job = Unmanaged.passRetained(Job(set: set, container: container)).toOpaque()
        var thread = pthread_t()
        _ = pthread_create(&thread, nil, { arg in
            let job = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
            var set = job.set
            var interrupts = 0
            while true {
                var sig: Int32 = 0
                guard sigwait(&set, &sig) == 0 else { return nil }
                if sig == SIGINT { interrupts += 1 }
                try? job.container.kill(interrupts > 1 ? SIGKILL : sig)
            }
        }, job)
        pthread_detach(thread)
    }
}
