import BerthCgroups
import BerthNamespaces
import BerthSystem

extension Engine {
    /// Runs a command inside a running container (`docker exec`): joins its pid, mount, network,
    /// ipc and uts namespaces and its cgroup.
    /// - Parameters:
    ///   - reference: Id, name or id prefix.
    ///   - argv: The command.
    ///   - env: Extra `KEY=value` entries, over the container's environment.
    ///   - workingDir: The working directory (`/` or the container's by default).
    ///   - stdio: Where the streams go. ``ProcessStdio/containerTerminal(size:)`` (`exec -t`)
    ///     gives the command a terminal opened through the container's /dev/ptmx, after it
    ///     joined the container's mount namespace: its slave is a /dev/pts/N of the container.
    ///   - started: Runs once the command has started, before waiting for it: take its terminal
    ///     here (``ContainerProcess/takeTerminal()``) and start relaying it. A throw kills the
    ///     command.
    /// - Returns: The command's exit code.
    public func exec(_ reference: String, argv: [String], env: [String] = [], workingDir: String? = nil,
                     stdio: ProcessStdio = .inherit, started: (ContainerProcess) throws -> Void = { _ in }) throws -> Int32 {
        let record = try store.find(reference)
        let pid = record.state.pid
        guard record.state.isRunning, pid > 0, ProcessIdentity.of(pid: pid) != nil else {
            throw BerthError(.invalidState, "Container \(record.id.full) is not running")
        }
        guard !record.state.paused else {
            throw BerthError(.invalidState, "Container \(record.id.full) is paused, unpause the container before exec")
        }
        guard !argv.isEmpty else { throw BerthError(.invalidArgument, "exec needs a command") }
        var environment = ((try? FileIO.readBytes("/proc/\(pid)/environ")) ?? [])
            .split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        for e in env {
            let key = e.split(separator: "=", maxSplits: 1).first.map(String.init) ?? e
            environment.removeAll { $0.hasPrefix(key + "=") }
            environment.append(e)
        }
        let cwd = workingDir ?? (record.config.workingDir.isEmpty ? "/" : record.config.workingDir)
        let kinds: [NamespaceKind] = [.pid, .network, .ipc, .uts, .mount]
        let spec = ContainerSpec(process: ContainerSpec.Process(args: argv, env: environment, cwd: cwd),
                                 linux: ContainerSpec.Linux(namespaces: kinds.map { ContainerSpec.Namespace.join($0, pid: pid) }))
        let cgroup = try? Cgroup.open(name: cgroupName(record.id))
        let process = try ContainerProcess.spawn(spec, stdio: stdio) { process in
            try cgroup?.add(pid: process.pid)
        }
        try started(process)
        return try process.wait().code
    }
}
