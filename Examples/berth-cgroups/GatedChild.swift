import BerthSystem
#if canImport(Glibc)
import Glibc
#endif

/// A child started with posix_spawn that waits before it execs its command, so that it can be
/// put into a cgroup first and nothing of the command runs outside it.
///
/// It runs `/bin/sh -c 'read _ <&3; exec 3<&-; exec "$@"' sh <argv…>`: the shell blocks reading
/// fd 3, a pipe whose other end only we hold. Writing a newline (or closing the pipe) lets it exec
/// the command under the same pid. stdin, stdout and stderr are inherited.
struct GatedChild {
    let pid: pid_t
    private let gate: Int32

    init(_ argv: [String]) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw BerthError.system("pipe") }
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 3)
        // The command gets default signal handling even though we ignore SIGINT while we wait.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGQUIT, SIGPIPE, SIGTERM] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF))
        let shellArgv = ["/bin/sh", "-c", "read _ <&3; exec 3<&-; exec \"$@\"", "sh"] + argv
        var child: pid_t = 0
        let rc = withCStrings(shellArgv) { a in
            withCStrings(currentEnvironment().map { "\($0.key)=\($0.value)" }) { e in
                posix_spawn(&child, "/bin/sh", &actions, &attr, a, e)
            }
        }
        close(fds[0])
        guard rc == 0 else { close(fds[1]); throw BerthError.system("spawn /bin/sh", errno: rc) }
        pid = child
        gate = fds[1]
        // Like system(3): Ctrl-C goes to the command; we stay to clean up the cgroup.
        signal(SIGINT, SIG_IGN)
        signal(SIGQUIT, SIG_IGN)
    }

    /// Lets the command run and waits for it; returns its exit status (128 + signal if killed).
    func releaseAndWait() throws -> Int32 {
        _ = write(gate, "\n", 1)
        close(gate)
        return try Command.waitForExit(pid)
    }

    /// Kills the held child without letting it run its command.
    func abandon() {
        kill(pid, SIGKILL)
        close(gate)
        _ = try? Command.waitForExit(pid)
    }
}
