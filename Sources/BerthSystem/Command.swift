import CBerthShim
#if canImport(Glibc)
import Glibc
#endif

/// Runs helper programs (iptables-restore, nft, …) with `posix_spawn`.
///
/// Foundation's `Process` costs tens of milliseconds per spawn on this platform; `posix_spawn`
/// costs under one. The child inherits the *calling thread's* namespaces, so a command run from
/// inside ``NetworkNamespace/run(_:)`` (BerthNamespaces) runs in that namespace.
public enum Command {
    /// The outcome of a finished command.
    public struct Result: Sendable {
        /// The exit status, or 128 + signal number if it was killed.
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var succeeded: Bool { status == 0 }
    }

    /// Runs a program to completion, feeding `input` on stdin and capturing stdout and stderr.
    ///
    /// - Parameters:
    ///   - executable: A path, or a name looked up in `PATH` (and /usr/sbin, /sbin).
    ///   - arguments: The arguments, without argv[0].
    ///   - input: Bytes for stdin; stdin is /dev/null when `nil`.
    ///   - environment: Extra `KEY=value` entries added to (and overriding) the current environment.
    /// - Returns: The status and output. Does not throw on a non-zero status.
    /// - Throws: ``BerthError`` when the program cannot be started.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], input: String? = nil,
                           environment: [String: String] = [:]) throws -> Result {
        let path = try resolve(executable)
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard berth_pipe2(&outPipe, O_CLOEXEC) == 0 else { throw BerthError.system("pipe") }
        guard berth_pipe2(&errPipe, O_CLOEXEC) == 0 else { throw BerthError.system("pipe") }
        if input != nil { guard berth_pipe2(&inPipe, O_CLOEXEC) == 0 else { throw BerthError.system("pipe") } }
        defer { for fd in inPipe + outPipe + errPipe where fd >= 0 { close(fd) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if input != nil { posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0) }
        else { posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attr, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = [path] + arguments
        var env = currentEnvironment()
        for (k, v) in environment { env[k] = v }
        let envp = env.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let rc = withCStrings(argv) { cargv in
            withCStrings(envp) { cenv in posix_spawn(&pid, path, &actions, &attr, cargv, cenv) }
        }
        guard rc == 0 else { throw BerthError.system("spawn \(executable)", errno: rc) }
        close(outPipe[1]); outPipe[1] = -1
        close(errPipe[1]); errPipe[1] = -1
        if input != nil { close(inPipe[0]); inPipe[0] = -1 }

        // Feed stdin and drain both outputs with poll, so that no pipe fills up and deadlocks.
        var pending = Array((input ?? "").utf8)[...]
        var out: [UInt8] = [], err: [UInt8] = []
        if input != nil && pending.isEmpty { close(inPipe[1]); inPipe[1] = -1 }
        var buf = [UInt8](repeating: 0, count: 65536)
        while outPipe[0] >= 0 || errPipe[0] >= 0 || inPipe[1] >= 0 {
            var fds: [pollfd] = []
            if outPipe[0] >= 0 { fds.append(pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0)) }
            if errPipe[0] >= 0 { fds.append(pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)) }
            if inPipe[1] >= 0 { fds.append(pollfd(fd: inPipe[1], events: Int16(POLLOUT), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for p in fds where p.revents != 0 {
                if p.fd == inPipe[1] {
                    // A command that exits without reading all its input makes this write fail
                    // with EPIPE; it must not kill the caller with SIGPIPE.
                    let n = BrokenPipe.suppressed { pending.withUnsafeBytes { write(p.fd, $0.baseAddress, $0.count) } }
                    if n > 0 { pending = pending.dropFirst(n) }
                    if n < 0 && errno != EINTR && errno != EAGAIN || pending.isEmpty { close(inPipe[1]); inPipe[1] = -1 }
                } else {
                    let n = read(p.fd, &buf, buf.count)
                    if n > 0 {
                        if p.fd == outPipe[0] { out += buf[0..<n] } else { err += buf[0..<n] }
                    } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                        close(p.fd)
                        if p.fd == outPipe[0] { outPipe[0] = -1 } else { errPipe[0] = -1 }
                    }
                }
            }
        }
        let status = try waitForExit(pid)
        return Result(status: status, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// Like ``run(_:_:input:environment:)`` but throws ``BerthError`` (code `.commandFailed`) naming
    /// the command and quoting its stderr when it exits non-zero.
    @discardableResult
    public static func check(_ executable: String, _ arguments: [String], input: String? = nil,
                             environment: [String: String] = [:]) throws -> Result {
        let r = try run(executable, arguments, input: input, environment: environment)
        guard r.succeeded else {
            let detail = r.stderr.isEmpty ? r.stdout : r.stderr
            throw BerthError(.commandFailed,
                "\(executable) \(arguments.joined(separator: " ")) exited with status \(r.status): \(detail.trimmingSpaces())")
        }
        return r
    }

    /// Waits for `pid`, returning its exit status or 128 + the signal that killed it.
    public static func waitForExit(_ pid: pid_t) throws -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { throw BerthError.system("waitpid \(pid)") }
        }
        return decodeWaitStatus(status)
    }

    /// Turns a raw `waitpid` status into an exit code (128 + signal for a killed process).
    public static func decodeWaitStatus(_ status: Int32) -> Int32 {
        let sig = status & 0x7f
        return sig == 0 ? (status >> 8) & 0xff : 128 + sig
    }

    /// Finds an executable in PATH (plus /usr/sbin and /sbin, where the firewall tools live).
    public static func resolve(_ name: String) throws -> String {
        if name.contains("/") { return name }
        let path = (getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin") + ":/usr/local/sbin:/usr/sbin:/sbin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw BerthError(.notFound, "executable \"\(name)\" not found in PATH")
    }

    /// Whether `name` can be found by ``resolve(_:)``.
    public static func exists(_ name: String) -> Bool { (try? resolve(name)) != nil }
}

/// The process environment as a dictionary.
public func currentEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { result[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return result
}

/// Calls `body` with a NULL-terminated `char *[]` built from `strings`.
public func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) throws -> R) rethrows -> R {
    var ptrs: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    ptrs.append(nil)
    defer { for p in ptrs { free(p) } }
    return try ptrs.withUnsafeBufferPointer { try body($0.baseAddress!) }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    public func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\n" || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\n" || l == "\t" || l == "\r" { s.removeLast() }
        return String(s)
    }
}
