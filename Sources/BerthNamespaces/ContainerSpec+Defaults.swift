import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension ContainerSpec {
    /// The `PATH` a container gets when its environment has none.
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The mounts every container gets (the same set `runc spec` writes): /proc, a tmpfs /dev with
    /// devpts, shm and mqueue, and a read-only /sys. The spawner fills /dev with the standard device
    /// nodes after mounting it.
    public static let defaultMounts: [Mount] = [
        Mount(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
        Mount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        Mount(destination: "/dev/pts", type: "devpts", source: "devpts",
              options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
        Mount(destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        Mount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
        Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
    ]

    /// A spec for running `args` on `rootfs` in new pid, network, ipc, uts and mount namespaces, as
    /// root, with the default mounts and `PATH`. Security settings are left empty (unconfined);
    /// callers add them.
    /// - Parameters:
    ///   - rootfs: The root filesystem directory (absolute, or relative to the bundle).
    ///   - args: argv of the first process.
    ///   - env: Extra `KEY=value` entries (a `PATH` is added when missing).
    public static func make(rootfs: String, args: [String], env: [String] = []) -> ContainerSpec {
        var environment = env
        if !environment.contains(where: { $0.hasPrefix("PATH=") }) { environment.insert("PATH=\(defaultPath)", at: 0) }
        return ContainerSpec(
            process: Process(args: args, env: environment, cwd: "/"),
            root: Root(path: rootfs, readonly: false),
            mounts: defaultMounts,
            linux: Linux(namespaces: [.init(.pid), .init(.network), .init(.ipc), .init(.uts), .init(.mount)]))
    }

    /// Decodes a `config.json` document.
    /// - Parameter json: The document's bytes.
    /// - Throws: ``BerthError`` (`.invalidArgument`) naming the problem.
    public static func decode(_ json: [UInt8]) throws -> ContainerSpec {
        do {
            return try JSONDecoder().decode(ContainerSpec.self, from: Data(json))
        } catch {
            throw BerthError(.invalidArgument, "invalid container config: \(error)")
        }
    }

    /// Encodes the spec as pretty-printed JSON.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(self))
    }

    /// Loads `config.json` from an OCI bundle directory and makes `root.path` absolute.
    /// - Parameter bundle: The bundle directory.
    public static func load(bundle: String) throws -> ContainerSpec {
        let path = bundle + "/config.json"
        guard FileIO.exists(path) else { throw BerthError(.notFound, "bundle \(bundle): no config.json") }
        var spec: ContainerSpec
        do { spec = try decode(try FileIO.readBytes(path)) } catch let e as BerthError {
            throw BerthError(e.code, "\(path): \(e.message)", errno: e.errno)
        }
        if var root = spec.root, !root.path.hasPrefix("/") {
            root.path = bundle + "/" + root.path
            spec.root = root
        }
        return spec
    }

    /// The namespaces to create or join (empty when none are listed).
    public var namespaces: [Namespace] { linux?.namespaces ?? [] }

    /// Whether the spec creates (not joins) a namespace of `kind`.
    public func createsNamespace(_ kind: NamespaceKind) -> Bool {
        namespaces.contains { $0.type == kind && $0.path == nil }
    }

    /// Sets (replaces) the entry for namespace `kind`; `nil` removes it (share the caller's).
    public mutating func setNamespace(_ kind: NamespaceKind, _ namespace: Namespace?) {
        var list = namespaces.filter { $0.type != kind }
        if let namespace { list.append(namespace) }
        if linux == nil { linux = Linux() }
        linux!.namespaces = list
    }

    /// The value of `PATH` in the process environment, or ``defaultPath``.
    public var searchPath: String {
        for entry in process?.env ?? [] where entry.hasPrefix("PATH=") { return String(entry.dropFirst(5)) }
        return Self.defaultPath
    }
}

extension ContainerSpec {
    /// A spec that runs `args` inside the running process `pid`'s namespaces (what `docker exec`
    /// does): its pid, network, ipc, uts and mount namespaces, plus its user and cgroup
    /// namespaces when they differ from the caller's. There is no `root`: the process sees the
    /// container's filesystem through the joined mount namespace.
    /// - Parameters:
    ///   - pid: A process of the container (its first process).
    ///   - args: argv; `args[0]` is looked up in `PATH` inside the container.
    ///   - env: `KEY=value` entries (a `PATH` is added when missing).
    ///   - cwd: The working directory inside the container.
    ///   - user: The user to run as.
    /// - Throws: ``BerthError`` (`.notFound`) when `pid` does not exist.
    public static func exec(into pid: Int32, args: [String], env: [String] = [], cwd: String = "/",
                            user: User = User()) throws -> ContainerSpec {
        guard FileIO.exists("/proc/\(pid)/ns") else {
            throw BerthError(.notFound, "cannot exec into process \(pid): no such process")
        }
        var environment = env
        if !environment.contains(where: { $0.hasPrefix("PATH=") }) { environment.insert("PATH=\(defaultPath)", at: 0) }
        var spec = ContainerSpec(process: Process(args: args, env: environment, cwd: cwd, user: user))
        var kinds: [NamespaceKind] = [.pid, .network, .ipc, .uts, .mount]
        for kind in [NamespaceKind.user, .cgroup] where namespaceInode("/proc/\(pid)/ns/\(kind.procName)") != namespaceInode("/proc/self/ns/\(kind.procName)") {
            kinds.append(kind)
        }
        for kind in kinds { spec.setNamespace(kind, .join(kind, pid: pid)) }
        return spec
    }

    private static func namespaceInode(_ path: String) -> UInt64? {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_ino) : nil
    }
}
