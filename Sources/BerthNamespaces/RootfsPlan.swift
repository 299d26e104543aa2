import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// The list of steps the child takes to build the container's filesystem before pivot_root,
/// computed entirely by the parent from the spec (paths resolved, options parsed).
struct RootfsPlan {
    /// One step, as the C child will run it, plus a description for error messages.
    struct Step {
        var kind: Int32 = Int32(BERTH_OP_MOUNT.rawValue)
        var create: Int32 = Int32(BERTH_CREATE_NONE.rawValue)
        var optional = false
        var mode: UInt32 = 0
        var dev: UInt64 = 0
        var source: String?
        var target: String
        var fstype: String?
        var data: String?
        var flags: UInt = 0
        var remountFlags: UInt = 0
        var propagation: UInt = 0
        /// The path inside the container, for messages.
        var destination: String
        /// What the step does, for messages: `mount proc on /proc`.
        var what: String
    }

    var steps: [Step] = []

    /// The device nodes every container gets in its /dev (major, minor).
    static let devices: [(name: String, major: UInt64, minor: UInt64)] = [
        ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
    ]

    /// - Parameters:
    ///   - spec: The container spec.
    ///   - rootfs: The absolute rootfs path.
    ///   - newNetwork: Whether the container gets a new network namespace (sysfs can be mounted).
    ///   - newIPC: Whether the container gets a new ipc namespace (mqueue can be mounted).
    ///   - userNamespace: Whether the container runs in a new user namespace (no mknod).
    init(spec: ContainerSpec, rootfs: String, newNetwork: Bool, newIPC: Bool, userNamespace: Bool) throws {
        for mount in spec.mounts ?? [] {
            guard mount.destination.hasPrefix("/") else {
                throw BerthError(.invalidArgument, "mount destination \(mount.destination) is not an absolute path")
            }
            let target = Self.secureJoin(root: rootfs, mount.destination)
            let options = MountOptions(mount.options ?? [])
            let type = mount.type ?? (options.bind ? "bind" : "none")
            if mount.isBind {
                guard let source = mount.source, !source.isEmpty else {
                    throw BerthError(.invalidArgument, "bind mount on \(mount.destination) has no source")
                }
                try addBind(source: source, target: target, destination: mount.destination, options: options)
                continue
            }
            switch type {
            case "sysfs" where !newNetwork:
                // sysfs shows the mounting process's network namespace: without a new one, bind the host's.
                try addBind(source: "/sys", target: target, destination: mount.destination,
                            options: MountOptions(["rbind", "ro", "nosuid", "noexec", "nodev"]))
                continue
            case "mqueue" where !newIPC:
                continue
            case "cgroup", "cgroup2":
                // The hierarchies of this (possibly hybrid) host, read-only; the container sees its
                // own cgroup through /proc/self/cgroup.
                var step = Step(target: target, destination: mount.destination, what: "bind /sys/fs/cgroup on \(mount.destination)")
                step.create = Int32(BERTH_CREATE_DIR.rawValue)
                step.source = "/sys/fs/cgroup"
                step.flags = UInt(MS_BIND | MS_REC)
                step.remountFlags = UInt(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
                step.optional = true
                steps.append(step)
                continue
            default:
                break
            }
            var step = Step(target: target, destination: mount.destination,
                            what: "mount \(type) on \(mount.destination)")
            step.create = Int32(BERTH_CREATE_DIR.rawValue)
            step.source = mount.source ?? type
            step.fstype = type
            step.flags = options.flags
            step.data = options.dataString
            step.propagation = options.propagation
            if userNamespace, type == "devpts" {
                // gid=5 names a host group the user namespace may not map.
                step.data = options.data.filter { !$0.hasPrefix("gid=") }.joined(separator: ",")
            }
            steps.append(step)
            if mount.destination == "/dev" && type == "tmpfs" {
                addDevices(dev: target, userNamespace: userNamespace)
            }
        }
    }

    private mutating func addBind(source: String, target: String, destination: String, options: MountOptions) throws {
        var st = stat()
        guard stat(source, &st) == 0 else {
            let e = errno
            throw BerthError(e == ENOENT ? .notFound : .system,
                             "bind mount \(source) on \(destination): \(strerrorString(e))", errno: e)
        }
        var step = Step(target: target, destination: destination, what: "bind \(source) on \(destination)")
        step.create = (st.st_mode & S_IFMT) == S_IFDIR ? Int32(BERTH_CREATE_DIR.rawValue) : Int32(BERTH_CREATE_FILE.rawValue)
        step.source = source
        step.flags = UInt(MS_BIND) | (options.recursive ? UInt(MS_REC) : 0)
        // Bind mounts ignore most flags on the first call; they take effect on a remount.
        let extra = options.flags & ~UInt(MS_REMOUNT | MS_BIND | MS_REC)
        if extra != 0 { step.remountFlags = extra }
        step.propagation = options.propagation
        steps.append(step)
    }

    /// Fills a fresh tmpfs /dev: device nodes (mknod, or bind mounts of the host's nodes inside a
    /// user namespace, where mknod is refused), the /proc/self/fd links and /dev/ptmx.
    private mutating func addDevices(dev: String, userNamespace: Bool) {
        for d in Self.devices {
            var step = Step(target: dev + "/" + d.name, destination: "/dev/" + d.name, what: "")
            if userNamespace {
                step.kind = Int32(BERTH_OP_MOUNT.rawValue)
                step.create = Int32(BERTH_CREATE_FILE.rawValue)
                step.source = "/dev/" + d.name
                step.flags = UInt(MS_BIND)
                step.what = "bind /dev/\(d.name) on /dev/\(d.name)"
            } else {
                step.kind = Int32(BERTH_OP_MKNOD.rawValue)
                step.mode = UInt32(S_IFCHR) | 0o666
                step.dev = (d.major << 8) | d.minor
                step.what = "mknod /dev/\(d.name)"
            }
            steps.append(step)
        }
        for (name, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                               ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")] {
            var step = Step(target: dev + "/" + name, destination: "/dev/" + name, what: "symlink /dev/\(name) to \(target)")
            step.kind = Int32(BERTH_OP_SYMLINK.rawValue)
            step.source = target
            steps.append(step)
        }
    }

    /// Joins `path` onto `root` the way the container will see it: symlinks met on the way are
    /// resolved inside `root` (an absolute link restarts at `root`, `..` stops at `root`), so a
    /// mount destination can never land outside the rootfs.
    static func secureJoin(root: String, _ path: String) -> String {
        var pending = path.split(separator: "/").map(String.init)
        var resolved: [String] = []
        var links = 0
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        while !pending.isEmpty {
            let part = pending.removeFirst()
            if part.isEmpty || part == "." { continue }
            if part == ".." { _ = resolved.popLast(); continue }
            let candidate = root + "/" + (resolved + [part]).joined(separator: "/")
            let n = buffer.withUnsafeMutableBytes { readlink(candidate, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count - 1) }
            if n > 0, links < 40 {
                links += 1
                let target = String(decoding: buffer[0..<n], as: UTF8.self)
                if target.hasPrefix("/") { resolved = [] }
                pending = target.split(separator: "/").map(String.init) + pending
                continue
            }
            resolved.append(part)
        }
        return resolved.isEmpty ? root : root + "/" + resolved.joined(separator: "/")
    }
}
