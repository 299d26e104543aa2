#if canImport(Glibc)
import Glibc
#endif

/// Small file helpers with precise semantics that the kernel interfaces need.
public enum FileIO {
    /// Reads a whole file as UTF-8.
    public static func read(_ path: String) throws -> String {
        String(decoding: try readBytes(path), as: UTF8.self)
    }

    /// Reads a whole file.
    public static func readBytes(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BerthError.system("open \(path)") }
        defer { close(fd) }
        var result: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n < 0 { if errno == EINTR { continue }; throw BerthError.system("read \(path)") }
            if n == 0 { break }
            result += buf[0..<n]
        }
        return result
    }

    /// Writes `text` with a single `write(2)` on an already existing file, as cgroupfs, procfs and
    /// sysfs require (no temporary file, no truncation dance).
    public static func writeControl(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BerthError.system("open \(path)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw BerthError.system("write \"\(text)\" to \(path)") }
    }

    /// Replaces `path` atomically: writes a temporary file beside it, fsyncs it (when `durable`),
    /// renames it over `path`.
    ///
    /// The rename alone already means that no reader and no crashed writer ever leaves a torn file;
    /// the fsync adds survival of a power loss, at about a millisecond here and another when the
    /// file is later unlinked (ext4), so state that a reboot makes stale anyway skips it.
    /// - Parameters:
    ///   - path: The file to replace.
    ///   - bytes: Its new content.
    ///   - mode: The permissions of a new file.
    ///   - durable: fsync before the rename.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644, durable: Bool = true) throws {
        let tmp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw BerthError.system("create \(tmp)") }
        var ok = false
        defer { if !ok { unlink(tmp) } }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 { if errno == EINTR { continue }; close(fd); throw BerthError.system("write \(tmp)") }
            off += n
        }
        if durable { fsync(fd) }
        close(fd)
        guard rename(tmp, path) == 0 else { throw BerthError.system("rename \(tmp) to \(path)") }
        ok = true
    }

    /// Writes a UTF-8 string atomically (see ``writeAtomically(_:_:mode:durable:)``).
    public static func writeAtomically(_ path: String, _ text: String, mode: mode_t = 0o644, durable: Bool = true) throws {
        try writeAtomically(path, Array(text.utf8), mode: mode, durable: durable)
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// `mkdir -p`.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        if isDirectory(path) { return }
        var current = path.hasPrefix("/") ? "" : "."
        for comp in path.split(separator: "/") {
            current += "/" + comp
            if mkdir(current, mode) != 0 && errno != EEXIST { throw BerthError.system("mkdir \(current)") }
        }
    }

    /// `rm -rf` that never crosses into another filesystem mounted below `path`
    /// and does not follow symlinks.
    public static func removeTree(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw BerthError.system("lstat \(path)")
        }
        try removeTree(path, device: st.st_dev, mode: st.st_mode)
    }

    private static func removeTree(_ path: String, device: dev_t, mode: mode_t) throws {
        if (mode & S_IFMT) == S_IFDIR {
            guard let dir = opendir(path) else { throw BerthError.system("opendir \(path)") }
            var children: [(String, mode_t, dev_t)] = []
            while let ent = readdir(dir) {
                let name = withUnsafeBytes(of: ent.pointee.d_name) { raw in
                    String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
                }
                if name == "." || name == ".." { continue }
                let child = path + "/" + name
                var st = stat()
                if lstat(child, &st) == 0 { children.append((child, st.st_mode, st.st_dev)) }
            }
            closedir(dir)
            for (child, m, dev) in children {
                if dev != device {
                    throw BerthError(.invalidState, "refusing to remove \(child): another filesystem is mounted there")
                }
                try removeTree(child, device: device, mode: m)
            }
            if rmdir(path) != 0 && errno != ENOENT { throw BerthError.system("rmdir \(path)") }
        } else if unlink(path) != 0 && errno != ENOENT {
            throw BerthError.system("unlink \(path)")
        }
    }

    /// Creates a fresh temporary directory (`mkdtemp`) under `base`.
    public static func makeTemporaryDirectory(prefix: String, in base: String = "/tmp") throws -> String {
        var template = Array("\(base)/\(prefix)XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw BerthError.system("mkdtemp in \(base)") }
        return String(cString: p)
    }
}

/// An exclusive advisory lock on a file (`flock`), so that two processes sharing a state root
/// serialise their updates.
public final class FileLock {
    private let fd: Int32
    public let path: String

    /// Opens (creating if needed) and locks `path`, blocking until the lock is free.
    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BerthError.system("open lock file \(path)") }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { let e = errno; close(fd); throw BerthError.system("lock \(path)", errno: e) }
        }
    }

    deinit { close(fd) }  // closing releases the lock

    /// Runs `body` while holding the lock on `path`.
    public static func withLock<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let lock = try FileLock(path: path)
        defer { withExtendedLifetime(lock) {} }
        return try body()
    }
}
