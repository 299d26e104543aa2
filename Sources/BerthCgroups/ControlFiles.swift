import BerthSystem
#if canImport(Glibc)
import Glibc
#endif

/// Reading and writing cgroupfs control files, and the directory bookkeeping both drivers share.
enum ControlFiles {
    /// Writes `value` to `dir/file` with one write(2).
    /// - Parameters:
    ///   - controller: The controller the file belongs to, named in errors.
    ///   - purpose: What the write sets (`memory limit`), named in errors.
    /// - Throws: `.unsupported` naming the file and controller when the kernel lacks the file.
    static func write(_ dir: String, _ file: String, _ value: String, controller: String, purpose: String) throws {
        let path = dir + "/" + file
        guard FileIO.exists(path) else {
            throw BerthError(.unsupported,
                "cannot set \(purpose): the \(controller) cgroup controller has no \(file) on this host (looked in \(dir))")
        }
        do {
            try FileIO.writeControl(path, value)
        } catch let error as BerthError {
            throw BerthError(error.code, "cannot set \(purpose): \(error.message)", errno: error.errno)
        }
    }

    /// The file's content without surrounding white space.
    static func read(_ dir: String, _ file: String) throws -> String {
        try FileIO.read(dir + "/" + file).trimmingSpaces()
    }

    /// The file as an unsigned number, 0 when the file is missing or not a number.
    static func number(_ dir: String, _ file: String) -> UInt64 {
        guard let text = try? read(dir, file) else { return 0 }
        return UInt64(text) ?? 0
    }

    /// The value of `key` in a flat-keyed file (`oom_kill 3` lines), 0 when missing.
    static func keyed(_ dir: String, _ file: String, _ key: String) -> UInt64 {
        guard let text = try? FileIO.read(dir + "/" + file) else { return 0 }
        return keyed(text, key) ?? 0
    }

    /// The value of `key` in flat-keyed text.
    static func keyed(_ text: String, _ key: String) -> UInt64? {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == key { return UInt64(parts[1]) }
        }
        return nil
    }

    /// Read and written bytes summed over devices: v1 `blkio.throttle.io_service_bytes*` lines
    /// (`8:0 Read 4096`) or v2 `io.stat` lines (`8:0 rbytes=4096 wbytes=0 …`).
    static func ioBytes(_ text: String) -> (read: UInt64, write: UInt64) {
        var read: UInt64 = 0, write: UInt64 = 0
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 3, let n = UInt64(fields[2]) {
                if fields[1] == "Read" { read &+= n } else if fields[1] == "Write" { write &+= n }
                continue
            }
            for field in fields.dropFirst() {
                let kv = field.split(separator: "=", maxSplits: 1)
                guard kv.count == 2, let n = UInt64(kv[1]) else { continue }
                if kv[0] == "rbytes" { read &+= n } else if kv[0] == "wbytes" { write &+= n }
            }
        }
        return (read, write)
    }

    /// The pids listed in `dir/cgroup.procs`; none when the directory is gone.
    static func pids(_ dir: String) throws -> [pid_t] {
        let path = dir + "/cgroup.procs"
        let text: String
        do { text = try FileIO.read(path) } catch let e as BerthError where e.errno == ENOENT { return [] }
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Adds `pid` to the group whose directory is `dir`.
    static func addProcess(_ pid: pid_t, to dir: String, controller: String) throws {
        let path = dir + "/cgroup.procs"
        do {
            try FileIO.writeControl(path, "\(pid)")
        } catch let error as BerthError {
            let hint = error.errno == ESRCH ? " (no such process)" : error.errno == ENOSPC ? " (the group has no cpus or mems)" : ""
            throw BerthError(error.code, "cannot add process \(pid) to the \(controller) cgroup \(dir): \(error.message)\(hint)",
                             errno: error.errno)
        }
    }

    /// Creates `root/components…` level by level. Calls `prepare(dir, parent)` on every level,
    /// new or existing, right after it is ensured (v1 cpuset copies cpus and mems there).
    /// - Returns: The directories this call created, parent first.
    static func makeDirectories(root: String, components: [Substring],
                                prepare: (String, String) throws -> Void = { _, _ in }) throws -> [String] {
        var created: [String] = []
        do {
            // Another process may remove an empty parent (another container's destroy) between
            // our mkdir of it and of its child: start again from the top when that happens.
            for attempt in 0..<8 {
                var dir = root
                var raced = false
                for (i, component) in components.enumerated() {
                    let parent = dir
                    dir += "/" + component
                    if mkdir(dir, 0o755) == 0 {
                        created.append(dir)
                    } else if errno == ENOENT && attempt < 7 {
                        raced = true
                        break
                    } else if errno != EEXIST || i == components.count - 1 {
                        if errno == EEXIST { throw BerthError(.alreadyExists, "cgroup \(dir) already exists") }
                        throw BerthError.system("mkdir \(dir)")
                    }
                    do {
                        try prepare(dir, parent)
                    } catch let error as BerthError where error.errno == ENOENT && attempt < 7 {
                        raced = true
                        break
                    }
                }
                if !raced { break }
            }
        } catch {
            removeDirectories(created.reversed())
            throw error
        }
        return created
    }

    /// The names of the directories directly inside `dir` (none when it does not exist).
    static func subdirectories(of dir: String) -> [String] {
        guard let handle = opendir(dir) else { return [] }
        defer { closedir(handle) }
        var result: [String] = []
        while let entry = readdir(handle) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { result.append(name) }
        }
        return result
    }

    /// Best-effort rmdir of each directory in order.
    static func removeDirectories<S: Sequence<String>>(_ dirs: S) {
        for dir in dirs { _ = rmdir(dir) }
    }

    /// Removes `root/components…` (the leaf, retrying briefly while the kernel still holds exiting
    /// tasks), then each parent up to the first component while it is empty.
    static func removeGroup(root: String, components: [Substring]) throws {
        var dirs: [String] = []
        var dir = root
        for c in components { dir += "/" + c; dirs.append(dir) }
        guard let leaf = dirs.last else { return }
        var removed = false
        _ = try poll(timeoutSeconds: 2) {
            if rmdir(leaf) == 0 || errno == ENOENT { removed = true; return true }
            if errno == EBUSY { return false }
            throw BerthError.system("rmdir \(leaf)")
        }
        guard removed else { throw BerthError.system("rmdir \(leaf)", errno: EBUSY) }
        for parent in dirs.dropLast().reversed() {
            if rmdir(parent) == 0 || errno == ENOENT { continue }
            break  // not empty (another group lives there) or busy: it stays
        }
    }

    /// Calls `condition` until it returns true or `timeoutSeconds` pass, sleeping between calls
    /// (1 ms at first, growing to 20 ms). Returns whether the condition became true.
    static func poll(timeoutSeconds: Double, _ condition: () throws -> Bool) throws -> Bool {
        let deadline = monotonicSeconds() + timeoutSeconds
        var sleepMicros: UInt32 = 1000
        while true {
            if try condition() { return true }
            if monotonicSeconds() > deadline { return false }
            usleep(sleepMicros)
            sleepMicros = min(sleepMicros * 2, 20_000)
        }
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Sends SIGKILL to each pid, ignoring those already gone.
    static func killEach(_ pids: [pid_t]) throws {
        for pid in pids where pid > 0 {
            if Glibc.kill(pid, SIGKILL) != 0 && errno != ESRCH { throw BerthError.system("kill -9 \(pid)") }
        }
    }
}
