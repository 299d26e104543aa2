import BerthSystem
#if canImport(Glibc)
import Glibc
#endif

/// A child process that waits on a pipe (fd 3) before it execs its command, so that a test can put
/// it into a cgroup first: `/bin/sh -c 'read _ <&3; exec 3<&-; exec "$@"'`.
final class GatedProcess {
    let pid: pid_t
    private var gate: Int32
    private var reaped = false
    private(set) var status: Int32 = -1

    /// Spawns `/bin/sh -c <script>`, held at the gate. Its stdout goes to /dev/null, stderr is kept.
    init(script: String) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw BerthError.system("pipe") }
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 3)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let argv = ["/bin/sh", "-c", "read _ <&3; exec 3<&-; exec /bin/sh -c \"$0\"", script]
        var child: pid_t = 0
        let rc = withCStrings(argv) { a in
            withCStrings(currentEnvironment().map { "\($0.key)=\($0.value)" }) { e in
                posix_spawn(&child, "/bin/sh", &actions, nil, a, e)
            }
        }
        close(fds[0])
        guard rc == 0 else { close(fds[1]); throw BerthError.system("spawn /bin/sh", errno: rc) }
        pid = child
        gate = fds[1]
    }

    /// Lets the child exec its command.
    func release() {
        guard gate >= 0 else { return }
        _ = write(gate, "\n", 1)
        close(gate)
        gate = -1
    }

    /// Waits for the child and returns its status (128 + signal when killed).
    @discardableResult
    func wait() -> Int32 {
        if !reaped {
            release()
            status = (try? Command.waitForExit(pid)) ?? -1
            reaped = true
        }
        return status
    }

    /// Kills and reaps the child if it is still around.
    func stop() {
        if !reaped { kill(pid, SIGKILL); wait() }
    }

    deinit { stop() }
}
