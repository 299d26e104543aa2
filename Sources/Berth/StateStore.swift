import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// The engine's on-disk state: one directory per container under a root directory.
///
/// Layout under `root` (default `/var/lib/berth`):
///
///     lock                          flock(2) taken for every change, so that two berth processes
///                                   can run at once
///     containers/<id>/config.json   identity and configuration (``ContainerRecord`` minus state)
///     containers/<id>/state.json    ``ContainerState``
///     names/<name>                  the id owning a name: the name index and its reservation
///     volumes/<name>/…              see ``VolumeStore``
///
/// Containers run with `--rm` keep their directory under the *exec root* instead (Docker's
/// `--exec-root`, default `/run/berth`, a tmpfs): they never outlive their run, and a reboot, which
/// empties it, ends that run too. Its files (documents, generated hosts files, runtime record) then
/// cost no disk metadata updates, which on ext4 take milliseconds each to create and remove.
///
///     <exec root>/containers/<id>/…  as above, for `--rm` containers
///     <exec root>/names/<name>        their names (unique together with root/names)
///
/// Every document is replaced atomically (temporary file + rename), so a reader never sees a torn
/// file even without the lock. Reads take no lock.
///
/// Durability: `config.json` and the name are fsynced, as they are what the user asked for and
/// must outlive a power loss, except for `--rm` containers, which do not outlive their process.
/// `state.json` is not: it describes processes and kernel objects that a reboot ends anyway (the
/// engine reconciles it), and a state that a power loss left unreadable reads as exited.
public final class StateStore: Sendable {
    /// Docker's layout lives in /var/lib/docker; Berth's in /var/lib/berth.
    public static let defaultRoot = "/var/lib/berth"

    /// The root directory.
    public let root: String
    /// The exec root: state that must not outlive a reboot (``defaultExecRoot(for:)``).
    public let execRoot: String

    /// Opens (creating if needed) a store.
    /// - Parameters:
    ///   - root: The root directory; tests pass a temporary one.
    ///   - execRoot: The exec root; `nil` means ``defaultExecRoot(for:)``.
    public init(root: String = StateStore.defaultRoot, execRoot: String? = nil) throws {
        self.root = root
        self.execRoot = execRoot ?? Self.defaultExecRoot(for: root)
        execRootIsNew = !FileIO.exists(self.execRoot + "/containers")
        for dir in [root, root + "/containers", root + "/names", root + "/volumes", self.execRoot, self.execRoot + "/containers",
                    self.execRoot + "/names"] {
            try FileIO.makeDirectories(dir, mode: 0o700)
        }
    }

    /// Whether this store made its exec root's `containers` directory: the first use, or the
    /// first since a reboot emptied the exec root (the engine then removes what `--rm`
    /// containers of the previous boot left on disk: rootfs, logs, names).
    public let execRootIsNew: Bool

    /// `/run/berth` for the default root (as dockerd pairs /var/lib/docker with /var/run/docker);
    /// `<root>/run` for any other root, so that a root given alone stays self-contained (pass an
    /// exec root on a tmpfs to get its speed).
    /// - Parameter root: The state root.
    public static func defaultExecRoot(for root: String) -> String {
        root == defaultRoot ? "/run/berth" : root + "/run"
    }

    /// Whether a container's directory is under the exec root (a `--rm` container).
    /// - Parameter id: The container.
    public func isEphemeral(_ id: ContainerID) -> Bool { FileIO.exists(ephemeralDirectory(of: id)) }

    private func ephemeralDirectory(of id: ContainerID) -> String { execRoot + "/containers/" + id.full }

    /// The directory of one container (`containers/<id>`), where the engine also keeps its
    /// generated `hosts`, `hostname` and `resolv.conf`.
    /// - Parameter id: The container.
    public func directory(of id: ContainerID) -> String {
        let ephemeral = ephemeralDirectory(of: id)
        return FileIO.exists(ephemeral) ? ephemeral : root + "/containers/" + id.full
    }

    /// Runs `body` holding the store's exclusive lock. The lock is not re-entrant: `body` must not
    /// call the store's locking methods (``create(config:name:id:created:)``, ``save(_:)``,
    /// ``saveState(_:of:)``, ``remove(_:)``, ``rename(_:to:)``); it may read.
    /// - Parameter body: The critical section.
    public func withLock<T>(_ body: () throws -> T) throws -> T {
        try FileLock.withLock(root + "/lock", body)
    }

    // MARK: Creating and saving

    /// Creates a container: reserves its name (given, or generated like Docker's), writes its
    /// configuration and a `created` state. Atomic across processes: of two concurrent creates
    /// with the same name exactly one succeeds; the other gets Docker's conflict error.
    /// - Parameters:
    ///   - config: What the container was asked to run.
    ///   - name: The requested name (validated); `nil` generates one.
    ///   - id: The identifier; a new random one by default.
    ///   - created: The creation time; now by default.
    /// - Returns: The stored record.
    public func create(config: ContainerConfig, name: String? = nil, id: ContainerID = ContainerID(),
                       created: Timestamp = .now()) throws -> ContainerRecord {
        let requested = try name.map(ContainerName.validate)
        return try withLock {
            guard !FileIO.exists(root + "/containers/" + id.full), !FileIO.exists(ephemeralDirectory(of: id)) else {
                throw BerthError(.alreadyExists, "container id \(id) already exists")
            }
            let home = config.autoRemove ? ephemeralDirectory(of: id) : root + "/containers/" + id.full
            let chosen: String
            if let requested {
                try reserveNameLocked(requested, for: id, ephemeral: config.autoRemove)
                chosen = requested
            } else {
                chosen = try reserveGeneratedNameLocked(for: id, ephemeral: config.autoRemove)
            }
            let record = ContainerRecord(id: id, name: chosen, created: created, config: config, state: ContainerState())
            do {
                try FileIO.makeDirectories(home, mode: 0o700)
                try writeDocuments(record)
            } catch {
                try? FileIO.removeTree(home)
                unlinkName(chosen)
                throw error
            }
            return record
        }
    }

    /// Replaces a container's configuration and state.
    /// - Parameter record: The record; its container must exist.
    public func save(_ record: ContainerRecord) throws {
        try withLock {
            try requireExists(record.id)
            try writeDocuments(record)
        }
    }

    /// Replaces a container's state only (the common update: started, stopped, addresses).
    /// - Parameters:
    ///   - state: The new state.
    ///   - id: The container.
    public func saveState(_ state: ContainerState, of id: ContainerID) throws {
        try withLock {
            try requireExists(id)
            try JSONFile.write(state, to: directory(of: id) + "/state.json", durable: false)
        }
    }

    /// Reads, changes and writes a container's state under the lock, so that concurrent updaters
    /// (the CLI and the monitor) do not lose each other's changes.
    /// - Parameters:
    ///   - id: The container.
    ///   - change: Edits the state in place.
    /// - Returns: The state as saved.
    @discardableResult
    public func updateState(of id: ContainerID, _ change: (inout ContainerState) throws -> Void) throws -> ContainerState {
        try withLock {
            try requireExists(id)
            var state = try JSONFile.read(ContainerState.self, from: directory(of: id) + "/state.json")
            try change(&state)
            try JSONFile.write(state, to: directory(of: id) + "/state.json", durable: false)
            return state
        }
    }

    /// Renames a container (Docker's `rename`), keeping the old name if the new one is taken.
    /// - Parameters:
    ///   - id: The container.
    ///   - newName: The new name.
    public func rename(_ id: ContainerID, to newName: String) throws {
        let bare = try ContainerName.validate(newName)
        try withLock {
            var record = try load(id)
            guard record.name != bare else { return }
            try reserveNameLocked(bare, for: id, ephemeral: record.config.autoRemove)
            record.name = bare
            do { try writeDocuments(record, stateToo: false) } catch { unlinkName(bare); throw error }
            releaseNameLocked(of: id, except: bare)
        }
    }

    /// Removes a container's documents, directory and name. Releasing its kernel objects and
    /// volumes is the engine's job, before this call.
    /// - Parameter id: The container.
    public func remove(_ id: ContainerID) throws {
        try withLock {
            try requireExists(id)
            releaseNameLocked(of: id, except: nil)
            try FileIO.removeTree(directory(of: id))
        }
    }

    // MARK: Reading

    /// Loads one container.
    /// - Parameter id: The container.
    public func load(_ id: ContainerID) throws -> ContainerRecord {
        let dir = directory(of: id)
        guard FileIO.exists(dir + "/config.json") else { throw BerthError(.notFound, "No such container: \(id)") }
        let identity = try JSONFile.read(StoredIdentity.self, from: dir + "/config.json")
        // Not fsynced (see the type's notes): after a power loss it may be empty; the container then
        // reads as exited, which is what it is after a reboot.
        let state = (try? JSONFile.read(ContainerState.self, from: dir + "/state.json")) ?? {
            var exited = ContainerState()
            exited.status = .exited
            return exited
        }()
        return ContainerRecord(id: identity.id, name: identity.name, created: identity.created, config: identity.config, state: state)
    }

    /// Every container, newest first (the order of `docker ps`). Containers whose documents are
    /// unreadable (a crash mid-create) are skipped.
    public func list() throws -> [ContainerRecord] {
        try ids().compactMap { try? load($0) }.sorted { $0.created > $1.created }
    }

    /// The identifiers of every stored container.
    public func ids() throws -> [ContainerID] {
        try (directoryEntries(root + "/containers") + directoryEntries(execRoot + "/containers")).compactMap { try? ContainerID($0) }
    }

    /// Finds a container the way Docker does: an exact id, then an exact name (with or without
    /// `/`), then a unique id prefix.
    /// - Parameter reference: An id, a name or an id prefix.
    /// - Returns: The container's identifier.
    public func resolve(_ reference: String) throws -> ContainerID {
        if let id = try? ContainerID(reference), FileIO.exists(directory(of: id)) { return id }
        let name = reference.hasPrefix("/") ? String(reference.dropFirst()) : reference
        if !name.isEmpty, !name.contains("/"), let text = readName(name),
            let id = try? ContainerID(text.trimmingSpaces()), FileIO.exists(directory(of: id) + "/config.json")
        {
            return id
        }
        let prefix = reference.lowercased()
        guard !prefix.isEmpty, prefix.allSatisfy(\.isHexDigit) else {
            throw BerthError(.notFound, "No such container: \(reference)")
        }
        let matches = try ids().filter { $0.full.hasPrefix(prefix) }
        switch matches.count {
        case 1: return matches[0]
        case 0: throw BerthError(.notFound, "No such container: \(reference)")
        default: throw BerthError(.invalidArgument, "Multiple IDs found with provided prefix: \(reference)")
        }
    }

    /// ``resolve(_:)`` then ``load(_:)``.
    /// - Parameter reference: An id, a name or an id prefix.
    public func find(_ reference: String) throws -> ContainerRecord { try load(try resolve(reference)) }

    /// The id that owns `name`, if any.
    /// - Parameter name: A container name with or without `/`.
    public func owner(ofName name: String) -> ContainerID? {
        let bare = name.hasPrefix("/") ? String(name.dropFirst()) : name
        guard let text = readName(bare), let id = try? ContainerID(text.trimmingSpaces()),
            FileIO.exists(directory(of: id) + "/config.json")
        else { return nil }
        return id
    }

    // MARK: Internals

    /// What config.json holds: the record without its state.
    private struct StoredIdentity: Codable {
        var id: ContainerID
        var name: String
        var created: Timestamp
        var config: ContainerConfig
    }

    /// A name's file: under the exec root for a `--rm` container (it goes with the container), under
    /// the root otherwise. Both directories are checked on every lookup: a name is unique across them.
    private func namePath(_ name: String, ephemeral: Bool = false) -> String {
        (ephemeral ? execRoot : root) + "/names/" + name
    }

    private func readName(_ name: String) -> String? {
        (try? FileIO.read(namePath(name, ephemeral: true))) ?? (try? FileIO.read(namePath(name)))
    }

    private func unlinkName(_ name: String) {
        unlink(namePath(name, ephemeral: true))
        unlink(namePath(name))
    }

    private func requireExists(_ id: ContainerID) throws {
        guard FileIO.exists(directory(of: id) + "/config.json") else { throw BerthError(.notFound, "No such container: \(id)") }
    }

    private func writeDocuments(_ record: ContainerRecord, stateToo: Bool = true) throws {
        let dir = directory(of: record.id)
        try JSONFile.write(StoredIdentity(id: record.id, name: record.name, created: record.created, config: record.config),
                           to: dir + "/config.json", durable: !record.config.autoRemove)
        if stateToo { try JSONFile.write(record.state, to: dir + "/state.json", durable: false) }
    }

    /// Claims `name` for `id`. Caller holds the lock. A name file whose container is gone (a crash
    /// between reservation and creation) is taken over.
    private func reserveNameLocked(_ name: String, for id: ContainerID, ephemeral: Bool) throws {
        if let owner = owner(ofName: name), owner != id {
            throw BerthError(.alreadyExists,
                             "Conflict. The container name \"/\(name)\" is already in use by container \"\(owner.full)\". You have to remove (or rename) that container to be able to reuse that name.")
        }
        try FileIO.writeAtomically(namePath(name, ephemeral: ephemeral), id.full + "\n", mode: 0o600, durable: !ephemeral)
    }

    /// Docker tries random names, with a digit appended after the first collision, and falls back
    /// to the short id.
    private func reserveGeneratedNameLocked(for id: ContainerID, ephemeral: Bool) throws -> String {
        for attempt in 0..<ContainerName.generationAttempts {
            let name = ContainerName.generate(attempt: attempt)
            if owner(ofName: name) == nil {
                try reserveNameLocked(name, for: id, ephemeral: ephemeral)
                return name
            }
        }
        try reserveNameLocked(id.short, for: id, ephemeral: ephemeral)
        return id.short
    }

    /// Deletes name files under the root whose container no longer exists (left by a crash between
    /// reserving a name and writing the container). Takes the lock.
    public func removeStaleNames() throws {
        try withLock {
            for name in try directoryEntries(root + "/names") where owner(ofName: name) == nil { unlink(namePath(name)) }
        }
    }

    /// Deletes every name file pointing at `id`, except `keep`. Caller holds the lock.
    private func releaseNameLocked(of id: ContainerID, except keep: String?) {
        for ephemeral in [true, false] {
            for name in (try? directoryEntries((ephemeral ? execRoot : root) + "/names")) ?? [] where name != keep {
                let path = namePath(name, ephemeral: ephemeral)
                if let text = try? FileIO.read(path), text.trimmingSpaces() == id.full { unlink(path) }
            }
        }
    }
}

/// The names in a directory, without `.` and `..`.
func directoryEntries(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else {
        if errno == ENOENT { return [] }
        throw BerthError.system("opendir \(path)")
    }
    defer { closedir(dir) }
    var names: [String] = []
    while let ent = readdir(dir) {
        let name = withUnsafeBytes(of: ent.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name != "." && name != ".." && !name.contains(".tmp-") { names.append(name) }
    }
    return names
}
