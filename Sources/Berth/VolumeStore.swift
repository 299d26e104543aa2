import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// A local volume: a directory under the store root that containers mount.
public struct Volume: Codable, Sendable, Equatable {
    /// The name (64 hex digits for an anonymous volume).
    public var name: String
    /// Always `local`.
    public var driver: String
    /// When it was created.
    public var createdAt: Timestamp
    /// Whether it was made for a single `-v /path` or image `VOLUME` (removed by `rm -v`).
    public var anonymous: Bool
    /// The containers using it.
    public var references: [ContainerID]
    /// Where its data lives on the host (`<root>/volumes/<name>/_data`).
    public var mountpoint: String
}

/// Named and anonymous volumes under `<root>/volumes/<name>/_data`, with the set of containers
/// using each one, so that `volume rm` refuses a volume in use and `rm -v` removes a container's
/// anonymous volumes once nothing else uses them.
///
/// Shares the root and the lock file with ``StateStore``.
public final class VolumeStore: Sendable {
    /// The store root (the same as the ``StateStore``'s).
    public let root: String

    /// - Parameter root: The store root.
    public init(root: String = StateStore.defaultRoot) throws {
        self.root = root
        try FileIO.makeDirectories(root + "/volumes", mode: 0o700)
    }

    private var lockPath: String { root + "/lock" }
    private func directory(_ name: String) -> String { root + "/volumes/" + name }
    private func documentPath(_ name: String) -> String { directory(name) + "/volume.json" }

    /// Creates a volume, or returns the existing one with that name (as `docker volume create`).
    /// - Parameter name: The name; `nil` makes an anonymous volume with a random 64-hex name.
    public func create(name: String? = nil) throws -> Volume {
        try FileLock.withLock(lockPath) { try createLocked(name: name) }
    }

    /// Takes a reference on a volume for a container, creating the volume if needed.
    /// - Parameters:
    ///   - name: The volume; `nil` creates an anonymous one.
    ///   - container: The container that will mount it.
    public func acquire(_ name: String?, for container: ContainerID) throws -> Volume {
        try FileLock.withLock(lockPath) {
            var volume = try createLocked(name: name)
            if !volume.references.contains(container) {
                volume.references.append(container)
                try JSONFile.write(volume, to: documentPath(volume.name), durable: true)
            }
            return volume
        }
    }

    /// Drops every reference `container` holds; with `removeAnonymous` (`rm -v`), deletes its
    /// anonymous volumes that no other container uses.
    /// - Parameters:
    ///   - container: The container being removed.
    ///   - removeAnonymous: Whether to delete anonymous volumes left unused.
    /// - Returns: The names of the volumes deleted.
    @discardableResult
    public func release(container: ContainerID, removeAnonymous: Bool) throws -> [String] {
        try FileLock.withLock(lockPath) {
            var removed: [String] = []
            for var volume in try listLocked() where volume.references.contains(container) {
                volume.references.removeAll { $0 == container }
                if removeAnonymous && volume.anonymous && volume.references.isEmpty {
                    try FileIO.removeTree(directory(volume.name))
                    removed.append(volume.name)
                } else {
                    try JSONFile.write(volume, to: documentPath(volume.name), durable: true)
                }
            }
            return removed
        }
    }

    /// Deletes a volume (`docker volume rm`).
    /// - Parameter name: The volume.
    /// - Parameter force: Delete even when containers still reference it.
    public func remove(_ name: String, force: Bool = false) throws {
        try FileLock.withLock(lockPath) {
            let volume = try loadLocked(name)
            guard force || volume.references.isEmpty else {
                throw BerthError(.invalidState,
                                 "remove \(name): volume is in use - [\(volume.references.map(\.full).joined(separator: ", "))]")
            }
            try FileIO.removeTree(directory(name))
        }
    }

    /// One volume.
    /// - Parameter name: The volume.
    public func load(_ name: String) throws -> Volume { try loadLocked(name) }

    /// Every volume, sorted by name.
    public func list() throws -> [Volume] { try listLocked() }

    /// `docker volume ls` output: `DRIVER    VOLUME NAME` then one row per volume.
    public func listing() throws -> String {
        TableFormatter.render([["DRIVER", "VOLUME NAME"]] + (try list()).map { [$0.driver, $0.name] })
    }

    // MARK: Internals (caller holds the lock where it matters)

    private func createLocked(name: String?) throws -> Volume {
        if let name {
            guard VolumeSpec.isValidVolumeName(name) else {
                throw BerthError(.invalidArgument,
                                 "\"\(name)\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed")
            }
            if FileIO.exists(documentPath(name)) { return try loadLocked(name) }
        }
        let volumeName = name ?? ContainerID().full
        let volume = Volume(name: volumeName, driver: "local", createdAt: .now(), anonymous: name == nil, references: [],
                            mountpoint: directory(volumeName) + "/_data")
        do {
            try FileIO.makeDirectories(volume.mountpoint)
            try JSONFile.write(volume, to: documentPath(volumeName), durable: true)
        } catch {
            try? FileIO.removeTree(directory(volumeName))
            throw error
        }
        return volume
    }

    private func loadLocked(_ name: String) throws -> Volume {
        guard VolumeSpec.isValidVolumeName(name), FileIO.exists(documentPath(name)) else {
            throw BerthError(.notFound, "get \(name): no such volume")
        }
        return try JSONFile.read(Volume.self, from: documentPath(name))
    }

    private func listLocked() throws -> [Volume] {
        try directoryEntries(root + "/volumes").sorted().compactMap { try? loadLocked($0) }
    }
}
