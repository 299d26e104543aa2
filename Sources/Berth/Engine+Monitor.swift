import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

extension Engine {
    /// Starts a container under a monitor process (`berth -d`): runs the `berth` executable as
    /// `berth <global flags> monitor <id>` in a new session with its output on the container's log
    /// file. The monitor starts the container (so it can reap it), hosts its userland proxies,
    /// records the exit code and releases its resources when it exits. Returns once the monitor
    /// reports the container started, or throws the monitor's error.
    /// - Parameter id: The container.
    public func startDetached(_ id: ContainerID) throws {
        let executable = try options.monitorExecutable ?? Self.currentExecutable()
        let arguments = [executable] + options.commandLineArguments + ["monitor", id.full]
        var ready: [Int32] = [-1, -1]
        guard berth_pipe2(&ready, O_CLOEXEC) == 0 else { throw BerthError.system("create the monitor's ready pipe") }
        defer { if ready[0] >= 0 { close(ready[0]) } }
        let log = logPath(id)
        let pid: pid_t = try host.run {
            defer { close(ready[1]) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addclose(&actions, ready[0])
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o640)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            posix_spawn_file_actions_adddup2(&actions, ready[1], 3)
            var attr = posix_spawnattr_t()
            posix_spawnattr_init(&attr)
            defer { posix_spawnattr_destroy(&attr) }
            var none = sigset_t()
            sigemptyset(&none)
            posix_spawnattr_setsigmask(&attr, &none)
            // POSIX_SPAWN_SETSID (0x80, glibc) is a _GNU_SOURCE constant Swift does not import.
            posix_spawnattr_setflags(&attr, Int16(0x80 | POSIX_SPAWN_SETSIGMASK))
            var pid: pid_t = 0
            let environment = ["PATH=" + (getenv("PATH").map { String(cString: $0) } ?? "/usr/sbin:/usr/bin:/sbin:/bin"),
                               "BERTH_MONITOR_READY_FD=3"]
            let rc = withCStrings(arguments) { argv in
                withCStrings(environment) { envp in posix_spawn(&pid, executable, &actions, &attr, argv, envp) }
            }
            guard rc == 0 else { throw BerthError(.system, "start monitor \(executable): \(strerrorString(rc))", errno: rc) }
            return pid
        }
        // Reap the monitor whenever it ends (a long-lived embedding process must not keep zombies).
        // Without a thread for it, it is reaped by whoever inherits it when this process ends.
        _ = try? PosixThread.start("the monitor reaper thread", detached: true) {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        var message: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(ready[0], &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            message += buffer[0..<n]
        }
        let text = String(decoding: message, as: UTF8.self).trimmingSpaces()
        if text == "ok" { return }
        throw BerthError(.commandFailed, text.isEmpty ? "monitor for container \(id.short) exited before starting it (see \(log))" : text)
    }

    /// The body of `berth monitor <id>`: starts the container with this process as its owner,
    /// writes `ok` (or the error) to `readyFD`, then waits for it to exit and releases it.
    /// - Parameters:
    ///   - id: The container.
    ///   - readyFD: Where to report the start (closed afterwards); -1 for none.
    /// - Returns: The container's exit code, or 125 when it could not start.
    public func runMonitor(_ id: ContainerID, readyFD: Int32) -> Int32 {
        func report(_ text: String) {
            guard readyFD >= 0 else { return }
            let bytes = Array((text + "\n").utf8)
            _ = bytes.withUnsafeBytes { write(readyFD, $0.baseAddress!, $0.count) }
            close(readyFD)
        }
        let running: RunningContainer
        do {
            // -d -t: the monitor holds the pty master and copies the output to the log.
            let tty = (try? store.load(id))?.config.tty ?? false
            running = try start(id, stdio: tty ? .pseudoTerminal(interactive: false, foreground: false) : .logFile)
        } catch {
            report("\(error)")
            return 125
        }
        report("ok")
        return running.wait()
    }

    /// The path of the running executable.
    static func currentExecutable() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw BerthError.system("readlink /proc/self/exe") }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
