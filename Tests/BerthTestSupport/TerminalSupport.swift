import BerthNamespaces
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// Everything readable from a pty master until the slave side is gone (EIO).
public func readUntilHangup(_ master: Int32) -> String {
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(master, &buf, buf.count)
        if n > 0 { out += buf[0..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        break
    }
    return String(decoding: out, as: UTF8.self)
}

/// What a pty master yields until `marker` has appeared (or `timeout` seconds passed, or the
/// slave side hung up).
public func readTerminal(_ master: Int32, until marker: String, timeout: Double = 10) -> String {
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    var deadline = timespec()
    clock_gettime(CLOCK_MONOTONIC, &deadline)
    let end = Double(deadline.tv_sec) + Double(deadline.tv_nsec) / 1e9 + timeout
    while !String(decoding: out, as: UTF8.self).contains(marker) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let left = end - (Double(now.tv_sec) + Double(now.tv_nsec) / 1e9)
        if left <= 0 { break }
        var p = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        let ready = poll(&p, 1, Int32(left * 1000) + 1)
        if ready < 0 && errno == EINTR { continue }
        if ready <= 0 { break }
        let n = read(master, &buf, buf.count)
        if n > 0 { out += buf[0..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        break
    }
    return String(decoding: out, as: UTF8.self)
}

/// Spawns `args` (posix_spawn) with the slave of `pty` as its stdin, stdout and stderr, no
/// signal blocked (the calling thread may block some) and default signal dispositions.
public func spawnOnTerminal(_ args: [String], _ pty: PseudoTerminal) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for fd in Int32(0)...2 { posix_spawn_file_actions_adddup2(&actions, pty.slave, fd) }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t(), all = sigset_t()
    sigemptyset(&none)
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let rc = withCStrings(args) { argv in
        withCStrings(currentEnvironment().map { "\($0.key)=\($0.value)" }) { envp in
            posix_spawn(&pid, args[0], &actions, &attributes, argv, envp)
        }
    }
    guard rc == 0 else { throw BerthError(.system, "spawn \(args[0]): \(strerrorString(rc))", errno: rc) }
    return pid
}

/// Talks to a program spawned on `pty` (``spawnOnTerminal(_:_:)``): closes our copy of the slave,
/// types `input`, reads until the terminal hangs up and reaps the program.
/// - Returns: Its wait status, everything it wrote, and whether all of `input` was written.
public func converse(over pty: PseudoTerminal, with pid: pid_t,
                     typing input: String = "") -> (status: Int32, output: String, typed: Bool) {
    pty.closeSlave()
    let bytes = Array(input.utf8)
    let typed = bytes.isEmpty || write(pty.master, bytes, bytes.count) == bytes.count
    let output = readUntilHangup(pty.master)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return (status, output, typed)
}

/// How many pty masters of devpts instances other than the host's this process holds open: the
/// masters of terminals containers opened in their own devpts (``ProcessStdio/containerTerminal(size:)``).
/// Tests that count them must not run in parallel with others that make container terminals in
/// the same test process.
public func containerTerminalMasters() -> Int {
    var host = Set<UInt>()
    for path in ["/dev/ptmx", "/dev/pts/ptmx"] {
        var st = stat()
        if stat(path, &st) == 0 { host.insert(UInt(st.st_dev)) }
    }
    let ptmx = (UInt(5) << 8) | 2  // makedev(5, 2): major and minor both fit the old encoding
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        guard let fd = Int32(name) else { continue }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFCHR else { continue }
        if UInt(st.st_rdev) == ptmx && !host.contains(UInt(st.st_dev)) { count += 1 }
    }
    return count
}

/// Runs `body` while no other test of this test process opens container terminals through it:
/// every test target is linked into one test process and Swift Testing runs suites in parallel,
/// so tests that count ``containerTerminalMasters()`` (and those that open container terminals
/// in-process at all) take this lock.
public func exclusiveContainerTerminals<T>(_ body: () throws -> T) rethrows -> T {
    containerTerminalLock.lock()
    defer { containerTerminalLock.unlock() }
    return try body()
}

private final class ProcessWideLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func lock() { pthread_mutex_lock(&mutex) }
    func unlock() { pthread_mutex_unlock(&mutex) }
}

private let containerTerminalLock = ProcessWideLock()
