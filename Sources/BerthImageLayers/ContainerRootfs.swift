import BerthSystem
import CBerthLayersShim

#if canImport(Glibc)
import Glibc
#endif

/// A container's root filesystem: the image's layers as overlayfs lower dirs plus a private upper
/// and work dir, mounted at ``mergedDir``.
public struct ContainerRootfs: Sendable {
    /// The container name it was created for.
    public var name: String
    /// The image it was created from.
    public var image: Digest
    /// Lower dirs, topmost first (as overlayfs's `lowerdir=` wants them).
    public var lowerDirs: [String]
    /// The container's writable layer (what `diff` and `commit` read).
    public var upperDir: String
    /// overlayfs's scratch directory (same filesystem as the upper dir).
    public var workDir: String
    /// Where the root filesystem appears when mounted.
    public var mergedDir: String

    /// Whether an overlay is mounted at ``mergedDir``.
    public var isMounted: Bool {
        guard let text = try? FileIO.read("/proc/self/mountinfo") else { return false }
        return text.split(separator: "\n").contains { line in
            let f = line.split(separator: " ")
            return f.count > 4 && f[4] == mergedDir[...]
        }
    }

    /// Mounts the overlay at ``mergedDir`` (no-op when already mounted).
    ///
    /// With many layers the option string can exceed the page-size limit of mount(2); then the
    /// lower dirs are passed as `/proc/self/fd/N` of descriptors opened for the call.
    /// - Parameter volatile: Mount with overlayfs's `volatile` option: no syncs of the upper
    ///   filesystem, at unmount included (one flush of the whole upper filesystem otherwise). For
    ///   a rootfs that is thrown away when its container ends (`--rm`): after a crash overlayfs
    ///   refuses to mount it again (the engine removes it then anyway).
    /// - Throws: ``BerthError`` when mount(2) fails.
    public func mount(volatile: Bool = false) throws {
        if isMounted { return }
        for dir in lowerDirs + [upperDir, workDir] where dir.contains(",") || dir.contains(":") {
            throw BerthError(.invalidArgument, "rootfs \(name): overlay directory \(dir) contains ',' or ':'")
        }
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        // diff and commit read the upper dir as a plain tree, which holds only while overlayfs
        // copies up rather than recording renames (redirect_dir) or metadata-only copies (metacopy).
        let features = ",redirect_dir=off,metacopy=off" + (volatile ? ",volatile" : "")
        var lowers = lowerDirs.joined(separator: ":")
        var options = "lowerdir=\(lowers),upperdir=\(upperDir),workdir=\(workDir)" + features
        if options.utf8.count > 4000 {
            for dir in lowerDirs {
                let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard fd >= 0 else { throw BerthError.system("open layer \(dir)") }
                fds.append(fd)
            }
            lowers = fds.map { "/proc/self/fd/\($0)" }.joined(separator: ":")
            options = "lowerdir=\(lowers),upperdir=\(upperDir),workdir=\(workDir)" + features
            guard options.utf8.count <= 4000 else {
                throw BerthError(.unsupported, "rootfs \(name): \(lowerDirs.count) layers do not fit in one overlay mount")
            }
        }
        // The mount point may be on a run root that a reboot emptied.
        if !FileIO.exists(mergedDir) { try FileIO.makeDirectories(mergedDir, mode: 0o755) }
        guard Glibc.mount("overlay", mergedDir, "overlay", 0, options) == 0 else {
            throw BerthError.system("mount overlay for rootfs \(name) on \(mergedDir)")
        }
    }

    /// Unmounts the overlay (no-op when not mounted).
    /// - Parameter lazy: Detach even if busy (`MNT_DETACH`).
    public func unmount(lazy: Bool = false) throws {
        guard isMounted else { return }
        guard umount2(mergedDir, lazy ? Int32(MNT_DETACH) : 0) == 0 else {
            throw BerthError.system("unmount rootfs \(name) at \(mergedDir)")
        }
    }
}

/// One line of `docker diff`.
public struct Change: Sendable, Equatable, CustomStringConvertible {
    /// Added, changed or deleted; the raw value is Docker's letter.
    public enum Kind: String, Sendable { case added = "A", changed = "C", deleted = "D" }
    /// What happened to the path.
    public var kind: Kind
    /// Absolute path inside the container.
    public var path: String
    /// `A /path`, as `docker diff` prints it.
    public var description: String { "\(kind.rawValue) \(path)" }
}

extension LayerStore {
    /// Creates the overlay directories of a container rootfs from an image (not yet mounted).
    /// The image's layers are referenced by the rootfs until ``removeContainerRootfs(name:)``.
    /// - Parameters:
    ///   - name: A unique name (letters, digits, `_`, `.`, `-`), usually the container ID.
    ///   - image: The image reference.
    ///   - initLayer: Put the init layer (``LayerStore/initLayerEntries``) above the image's
    ///     layers, as a container needs; without it the rootfs shows the image exactly.
    ///   - ephemeral: The rootfs will not outlive a reboot (a `--rm` container): with a
    ///     ``LayerStore/runRoot`` its record goes there, and only `upper` and `work` are made on
    ///     disk; ``removeOrphanedContainerRootfs()`` removes those after a reboot.
    /// - Returns: The rootfs; call ``ContainerRootfs/mount()`` to mount it.
    public func createContainerRootfs(name: String, image: String, initLayer: Bool = true,
                                      ephemeral: Bool = false) throws -> ContainerRootfs {
        guard !name.isEmpty, name.count <= 128, name != ".", name != "..",
              name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }) else {
            throw BerthError(.invalidArgument, "invalid container rootfs name \"\(name)\"")
        }
        return try withLock {
            let rec = try resolveImage(image, tags: try tagTable())
            let dir = containerDir(name)
            guard !FileIO.exists(dir) else { throw BerthError(.alreadyExists, "container rootfs \(name) already exists") }
            let recycled = takeRecycledDirectories(as: dir)
            if !recycled {
                guard mkdir(dir, 0o700) == 0 else {
                    if errno == EEXIST { throw BerthError(.alreadyExists, "container rootfs \(name) already exists") }
                    throw BerthError.system("mkdir \(dir)")
                }
            }
            do {
                if !recycled {
                    for sub in ["upper", "work"] {
                        guard mkdir(dir + "/" + sub, 0o755) == 0 else { throw BerthError.system("mkdir \(dir)/\(sub)") }
                    }
                }
                try FileIO.makeDirectories(mountDir(name), mode: 0o755)
                if rec.diffIDs.isEmpty && !initLayer { try FileIO.makeDirectories(dir + "/empty", mode: 0o755) }
                let record = RootfsRecord(name: name, image: rec.id, diffIDs: rec.diffIDs, initLayer: initLayer)
                if ephemeral, let run = runDir(name) {
                    try FileIO.writeAtomically(run + "/rootfs.json", Array(try canonicalJSON(record)), durable: false)
                } else {
                    try writeJSON(record, to: dir + "/rootfs.json")
                }
            } catch {
                try? FileIO.removeTree(dir)
                if let run = runDir(name) { try? FileIO.removeTree(run) }
                throw error
            }
            return try rootfs(from: RootfsRecord(name: name, image: rec.id, diffIDs: rec.diffIDs, initLayer: initLayer))
        }
    }

    func rootfs(from r: RootfsRecord) throws -> ContainerRootfs {
        let dir = containerDir(r.name)
        // The init layer on top of the image's (see ``LayerStore/initLayerEntries``); overlayfs needs
        // at least one lower directory.
        var lowers = (r.initLayer == true ? [initLayerPath] : []) + r.diffIDs.reversed().map { layerPath($0) }
        if lowers.isEmpty { lowers = [dir + "/empty"] }
        return ContainerRootfs(name: r.name, image: r.image, lowerDirs: lowers, upperDir: dir + "/upper",
                               workDir: dir + "/work", mergedDir: mountDir(r.name))
    }

    /// The rootfs created under `name`.
    public func containerRootfs(name: String) throws -> ContainerRootfs {
        guard !name.contains("/"), let p = recordPath(name) else {
            throw BerthError(.notFound, "container rootfs \(name) not found in \(root)")
        }
        return try rootfs(from: try readJSON(RootfsRecord.self, p))
    }

    /// All container rootfs of this store.
    public func containerRootfsList() throws -> [ContainerRootfs] {
        try rootfsRecords().map { try rootfs(from: $0) }
    }

    /// Unmounts (if needed) and deletes a container rootfs, releasing its layers.
    public func removeContainerRootfs(name: String) throws {
        let fs = try containerRootfs(name: name)
        try fs.unmount()
        try withLock {
            if let p = recordPath(name) { unlink(p) }
            if !recycleDirectories(of: name) { try FileIO.removeTree(containerDir(name)) }
            if let run = runDir(name) { try FileIO.removeTree(run) }
        }
    }

    // MARK: Recycled overlay directories

    /// Unused `upper` + `work` pairs kept for the next rootfs (`containers-free/<n>`): making and
    /// removing directories is the dearest part of a short-lived container on some filesystems
    /// (ext4 without a journal scans past recently freed inodes to allocate one, and with `discard`
    /// frees each block with a synchronous discard). overlayfs empties `work` itself at mount.
    static let recycledDirectoriesKept = 8
    var recycledRoot: String { root + "/containers-free" }

    /// Moves a removed rootfs's directories to the free list when its upper dir is pristine (empty,
    /// without overlayfs xattrs) and the list is not full. Caller holds the lock.
    /// - Returns: Whether they were kept.
    func recycleDirectories(of name: String) -> Bool {
        let dir = containerDir(name)
        var st = stat()
        // The upper dir is the container's "/": a chmod or chown of it must not carry over.
        guard lstat(dir + "/upper", &st) == 0, st.st_mode & 0o7777 == 0o755, st.st_uid == 0, st.st_gid == 0,
              let entries = try? listDirectory(dir + "/upper"), entries.isEmpty,
              let xattrs = try? readXattrs(dir + "/upper"), Set(xattrs.map(\.name)).isSubset(of: ["trusted.overlay.uuid"]),
              Set((try? listDirectory(dir)) ?? []).isSubset(of: ["upper", "work", "merged", "empty"]) else { return false }
        // The identity overlayfs gave that mount goes; the next mount records its own.
        if !xattrs.isEmpty && lremovexattr(dir + "/upper", "trusted.overlay.uuid") != 0 { return false }
        let free = (try? listDirectory(recycledRoot)) ?? []
        guard free.count < Self.recycledDirectoriesKept else { return false }
        if !FileIO.exists(recycledRoot) { try? FileIO.makeDirectories(recycledRoot, mode: 0o700) }
        return rename(dir, recycledRoot + "/" + uniqueName("r")) == 0
    }

    /// Takes a pair from the free list as `dir`. Caller holds the lock.
    /// - Returns: Whether one was there.
    func takeRecycledDirectories(as dir: String) -> Bool {
        guard let slot = ((try? listDirectory(recycledRoot)) ?? []).first else { return false }
        return rename(recycledRoot + "/" + slot, dir) == 0
    }

    /// Removes container rootfs directories that have no record (an ephemeral rootfs whose record
    /// a reboot took with the run root) and, under the run root, mount points of no rootfs.
    /// - Returns: The names removed.
    @discardableResult
    public func removeOrphanedContainerRootfs() throws -> [String] {
        try withLock {
            var removed: [String] = []
            for name in try listDirectory(root + "/containers") where recordPath(name) == nil {
                try FileIO.removeTree(containerDir(name))
                removed.append(name)
            }
            if let runRoot {
                for name in (try? listDirectory(runRoot + "/rootfs")) ?? [] where recordPath(name) == nil {
                    try FileIO.removeTree(runRoot + "/rootfs/" + name)
                }
            }
            return removed
        }
    }

    /// What changed in a container rootfs compared to its image, like `docker diff`: `A` added,
    /// `C` changed, `D` deleted; parent directories of changes appear as `C`. Whiteouts (0/0
    /// character devices) are deletions; an opaque directory lists the lower entries it hides as
    /// deleted. Paths come in a pre-order walk of the upper dir, names sorted.
    /// - Parameter name: The container rootfs.
    public func diff(name: String) throws -> [Change] {
        let fs = try containerRootfs(name: name)
        var out: [Change] = []
        var reported = Set<String>()
        try diffWalk(fs, rel: "", out: &out, reported: &reported)
        return out
    }

    private func existsInLower(_ fs: ContainerRootfs, _ rel: String) -> stat? {
        for l in fs.lowerDirs {
            var st = stat()
            if lstat(l + rel, &st) == 0 {
                if (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0 { return nil }  // whited out below
                return st
            }
        }
        return nil
    }

    private func diffWalk(_ fs: ContainerRootfs, rel: String, out: inout [Change], reported: inout Set<String>) throws {
        func addParent() {
            if !rel.isEmpty && !reported.contains(rel) {
                out.append(Change(kind: .changed, path: rel))
                reported.insert(rel)
            }
        }
        for name in try listDirectory(fs.upperDir + rel).sorted() {
            let p = rel + "/" + name
            var st = stat()
            guard lstat(fs.upperDir + p, &st) == 0 else { continue }
            let fmt = st.st_mode & S_IFMT
            if fmt == S_IFCHR && st.st_rdev == 0 {
                if existsInLower(fs, p) != nil {
                    addParent()
                    out.append(Change(kind: .deleted, path: p))
                }
                continue
            }
            let lower = existsInLower(fs, p)
            if fmt == S_IFDIR {
                if let lower, (lower.st_mode & S_IFMT) == S_IFDIR {
                    let same = lower.st_mode == st.st_mode && lower.st_uid == st.st_uid && lower.st_gid == st.st_gid
                        && lower.st_mtim.tv_sec == st.st_mtim.tv_sec && lower.st_mtim.tv_nsec == st.st_mtim.tv_nsec
                    if !same && !reported.contains(p) { addParent(); out.append(Change(kind: .changed, path: p)); reported.insert(p) }
                    if isOpaque(fs.upperDir + p) {
                        addParent()
                        if !reported.contains(p) { out.append(Change(kind: .changed, path: p)); reported.insert(p) }
                        let upperNames = Set(try listDirectory(fs.upperDir + p))
                        var hidden = Set<String>()
                        for l in fs.lowerDirs where FileIO.isDirectory(l + p) {
                            for n in try listDirectory(l + p) where !upperNames.contains(n) { hidden.insert(n) }
                        }
                        for n in hidden.sorted() { out.append(Change(kind: .deleted, path: p + "/" + n)) }
                    }
                } else {
                    addParent()
                    out.append(Change(kind: lower == nil ? .added : .changed, path: p))
                    reported.insert(p)
                }
                try diffWalk(fs, rel: p, out: &out, reported: &reported)
            } else {
                addParent()
                out.append(Change(kind: lower == nil ? .added : .changed, path: p))
            }
        }
    }
}
