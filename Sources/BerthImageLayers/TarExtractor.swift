import BerthSystem
import CBerthLayersShim

#if canImport(Glibc)
import Glibc
#endif

/// What an extraction produced.
public struct ExtractionResult: Sendable {
    /// The sha256 of the uncompressed tar stream (a layer's diff_id).
    public var diffID: Digest
    /// The sha256 of the bytes as read (equal to ``diffID`` for an uncompressed archive).
    public var blobDigest: Digest
    /// Whether the input was gzip-compressed.
    public var compressed: Bool
    /// Bytes of the uncompressed tar stream.
    public var tarSize: Int64
    /// Bytes of the input.
    public var blobSize: Int64
    /// Entries applied.
    public var entries: Int
    /// Bytes of regular-file data written.
    public var contentSize: Int64
}

/// Safe, streaming extraction of (optionally gzip-compressed) tar archives into a directory.
///
/// Every entry stays inside the target: names with `..` or a leading `/` are refused, parent
/// directories are resolved with `openat2(RESOLVE_BENEATH)` so that no symlink (absolute,
/// relative or chained) is ever followed out of the target, hard links may only point at entries
/// already inside, device nodes need ``ExtractionOptions/allowDeviceNodes``. A refused entry stops
/// the extraction with a ``BerthError`` (code `.denied` or `.corrupt`) naming the entry.
public enum TarExtractor {
    /// Extracts `archive` into the existing directory `target`.
    ///
    /// Decompression and hashing run on a second thread while this thread creates files.
    /// - Parameters:
    ///   - archive: A tar file, gzip-compressed or not (detected from its first bytes).
    ///   - target: An existing directory.
    ///   - options: Whiteout handling and what is allowed.
    ///   - progress: Called with bytes read so far and the archive's size, from the reading thread.
    /// - Returns: The digests and sizes of what was read.
    public static func extract(archive: String, into target: String, options: ExtractionOptions = ExtractionOptions(),
                               progress: (@Sendable (Int64, Int64) -> Void)? = nil) throws -> ExtractionResult {
        let file = try FileReader(path: archive)
        file.hasher = SHA256()
        var st = stat()
        fstat(file.fd, &st)
        let total = Int64(st.st_size)
        if let progress { file.onProgress = { progress($0, total) } }
        return try extract(reader: file, name: archive, into: target, options: options)
    }

    /// Extracts from an open reader whose `hasher` (if any) digests the raw input.
    static func extract(reader file: FileReader, name: String, into target: String,
                        options: ExtractionOptions) throws -> ExtractionResult {
        let peek = PeekingReader(file)
        let magic = try peek.peek(2)
        let compressed = magic == [0x1f, 0x8b]
        let tarStream: any ByteReader = compressed ? try GzipReader(peek, name: name) : peek
        let source = PipelinedChunkSource(tarStream, hashOnConsumer: true)
        defer { source.close() }
        let reader = TarReader(source: source, name: name, limits: options.limits)
        let extractor = try LayerWriter(target: target, archiveName: name, options: options)
        let entries = try extractor.apply(reader)
        // Drain what follows the end-of-archive marker so that the digests cover the whole blob.
        while try source.nextChunk() != nil {}
        let diffID = source.consumerHasher!.finish()
        let blob = compressed ? (file.hasher?.finish() ?? diffID) : diffID
        return ExtractionResult(diffID: diffID, blobDigest: blob, compressed: compressed,
                                tarSize: source.count, blobSize: file.count, entries: entries,
                                contentSize: extractor.contentSize)
    }
}

/// Applies tar entries to a directory, one at a time, without ever leaving it.
final class LayerWriter {
    private let rootFD: Int32
    private let target: String
    private let archiveName: String
    private let options: ExtractionOptions
    /// Directory fds by normalised relative path ("" is the root).
    private var dirs: [String: Int32] = [:]
    private var dirTimes: [(path: String, sec: Int64, nsec: Int32)] = []
    /// Paths written by this layer (flatten mode: an opaque marker keeps them).
    private var written: Set<String> = []
    private let isRoot = geteuid() == 0
    /// Bytes of regular-file data written.
    private(set) var contentSize: Int64 = 0

    init(target: String, archiveName: String, options: ExtractionOptions) throws {
        rootFD = open(target, Int32(BERTH_O_PATH) | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw BerthError.system("open extraction target \(target)") }
        self.target = target
        self.archiveName = archiveName
        self.options = options
    }

    deinit {
        forgetDirectories()
        close(rootFD)
    }

    private func forgetDirectories() {
        for (_, fd) in dirs { close(fd) }
        dirs.removeAll(keepingCapacity: true)
    }

    func apply(_ reader: TarReader) throws -> Int {
        var count = 0
        while let entry = try reader.next() {
            try apply(entry, reader)
            count += 1
        }
        for d in dirTimes.reversed() {
            let fd = berth_openat2(rootFD, d.path, UInt64(O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), 0,
                                   UInt64(BERTH_RESOLVE_BENEATH | BERTH_RESOLVE_NO_MAGICLINKS))
            if fd < 0 { continue }
            var ts = [timespec(tv_sec: Int(d.sec), tv_nsec: Int(d.nsec)), timespec(tv_sec: Int(d.sec), tv_nsec: Int(d.nsec))]
            futimens(fd, &ts)
            close(fd)
        }
        return count
    }

    private func deny(_ entry: String, _ why: String) -> BerthError {
        BerthError(.denied, "\(archiveName): entry \(entry): \(why)")
    }

    /// Splits a name into safe components; refuses `..` and absolute paths.
    private func components(_ name: String, entry: String, allowAbsolute: Bool = false, what: String = "path") throws -> [Substring] {
        if name.hasPrefix("/") && !allowAbsolute { throw deny(entry, "absolute path refused") }
        var out: [Substring] = []
        for c in name.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." { throw deny(entry, "\(what) \"\(name)\" contains \"..\"") }
            out.append(c)
        }
        return out
    }

    /// An fd on the directory `comps` (relative to the root), creating missing directories.
    private func directory(_ comps: ArraySlice<Substring>, entry: String, create: Bool = true) throws -> Int32 {
        if comps.isEmpty { return rootFD }
        let key = comps.joined(separator: "/")
        if let fd = dirs[key] { return fd }
        var fd = berth_openat2(rootFD, key, UInt64(Int32(BERTH_O_PATH) | O_DIRECTORY | O_CLOEXEC), 0,
                               UInt64(BERTH_RESOLVE_BENEATH | BERTH_RESOLVE_NO_MAGICLINKS))
        if fd < 0 {
            let err = errno
            switch err {
            case ENOENT where create:
                let parent = try directory(comps.dropLast(), entry: entry)
                if mkdirat(parent, String(comps.last!), 0o755) != 0 && errno != EEXIST {
                    throw BerthError.system("\(archiveName): entry \(entry): create directory \(key)")
                }
                fd = berth_openat2(parent, String(comps.last!), UInt64(Int32(BERTH_O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), 0,
                                   UInt64(BERTH_RESOLVE_BENEATH | BERTH_RESOLVE_NO_MAGICLINKS))
                if fd < 0 {
                    throw deny(entry, "parent \(key) cannot be created as a directory (\(strerrorString(errno)))")
                }
            case ENOENT:
                throw BerthError(.notFound, "\(archiveName): entry \(entry): \(key) does not exist in the target")
            case EXDEV, ELOOP:
                throw deny(entry, "parent \(key) leads outside the target through a symlink")
            case ENOTDIR:
                throw deny(entry, "parent \(key) is not a directory")
            default:
                throw BerthError.system("\(archiveName): entry \(entry): open \(key)", errno: err)
            }
        }
        if dirs.count >= 256 { forgetDirectories() }
        dirs[key] = fd
        return fd
    }

    /// Removes whatever `name` is in `parent` (a whole tree for a directory).
    private func remove(_ parent: Int32, _ name: String, entry: String) throws {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            try removeChildren(parent, name, keep: nil, entry: entry)
            if unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT {
                throw BerthError.system("\(archiveName): entry \(entry): remove directory \(name)")
            }
        } else if unlinkat(parent, name, 0) != 0 && errno != ENOENT {
            throw BerthError.system("\(archiveName): entry \(entry): remove \(name)")
        }
        // A directory or symlink we cached may be gone or replaced.
        forgetDirectories()
    }

    /// Removes the children of directory `name` in `parent`; `keep` says which to spare (by path).
    private func removeChildren(_ parent: Int32, _ name: String, keep: ((String) -> Bool)?, prefix: String = "", entry: String) throws {
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw BerthError.system("\(archiveName): entry \(entry): open \(name)") }
        guard let dir = fdopendir(fd) else { close(fd); throw BerthError.system("fdopendir \(name)") }
        defer { closedir(dir) }
        var children: [(String, Bool)] = []
        while let ent = readdir(dir) {
            let child = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if child == "." || child == ".." { continue }
            children.append((child, ent.pointee.d_type == UInt8(DT_DIR)))
        }
        for (child, isDir) in children {
            if let keep, keep(prefix + child) { continue }
            if isDir {
                try removeChildren(fd, child, keep: nil, entry: entry)
                if unlinkat(fd, child, AT_REMOVEDIR) != 0 && errno != ENOENT {
                    throw BerthError.system("\(archiveName): entry \(entry): remove directory \(child)")
                }
            } else if unlinkat(fd, child, 0) != 0 && errno != ENOENT {
                throw BerthError.system("\(archiveName): entry \(entry): remove \(child)")
            }
        }
    }

    private func permissions(_ e: TarEntry) -> mode_t {
        var m = e.mode & 0o7777
        if !options.keepSetuidBits { m &= ~UInt32(0o6000) }
        return mode_t(m)
    }

    private func setXattrs(_ fd: Int32, _ e: TarEntry) throws {
        for x in e.xattrs {
            // Overlay's own attributes are ours to set, never the archive's.
            if x.name.hasPrefix("trusted.overlay.") { continue }
            let rc = x.value.withUnsafeBytes { fsetxattr(fd, x.name, $0.baseAddress, $0.count, 0) }
            if rc != 0 && errno != ENOTSUP {
                throw BerthError.system("\(archiveName): entry \(e.name): set xattr \(x.name)")
            }
        }
    }

    private func finish(_ fd: Int32, _ e: TarEntry) throws {
        if options.keepOwnership && isRoot && (e.uid != 0 || e.gid != 0) {
            guard fchown(fd, e.uid, e.gid) == 0 else { throw BerthError.system("\(archiveName): entry \(e.name): chown") }
        }
        guard fchmod(fd, permissions(e)) == 0 else { throw BerthError.system("\(archiveName): entry \(e.name): chmod") }
        if !e.xattrs.isEmpty { try setXattrs(fd, e) }
    }

    private func apply(_ e: TarEntry, _ reader: TarReader) throws {
        let comps = try components(e.name, entry: e.name)
        guard let last = comps.last else { return }  // the root itself: keep the target's metadata
        let base = String(last)
        let parentComps = comps.dropLast()

        if base.hasPrefix(".wh.") {
            try applyWhiteout(e, base: base, parentComps: parentComps)
            return
        }
        let parent = try directory(parentComps, entry: e.name)
        let key = comps.joined(separator: "/")
        if options.whiteouts == .flatten { written.insert(key) }

        switch e.kind {
        case .directory:
            var fd: Int32 = -1
            if mkdirat(parent, base, 0o700) != 0 {
                guard errno == EEXIST else { throw BerthError.system("\(archiveName): entry \(e.name): mkdir") }
                var st = stat()
                if fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) != S_IFDIR {
                    try remove(parent, base, entry: e.name)
                    guard mkdirat(parent, base, 0o700) == 0 else { throw BerthError.system("\(archiveName): entry \(e.name): mkdir") }
                }
            }
            fd = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw BerthError.system("\(archiveName): entry \(e.name): open directory") }
            do { try finish(fd, e) } catch { close(fd); throw error }
            if let old = dirs[key] { close(old) }
            if dirs.count >= 256 { forgetDirectories() }
            dirs[key] = fd
            dirTimes.append((key, e.mtime, e.mtimeNanoseconds))

        case .regular:
            var fd = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd < 0 && errno == EEXIST {
                try remove(parent, base, entry: e.name)
                fd = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            }
            guard fd >= 0 else { throw BerthError.system("\(archiveName): entry \(e.name): create file") }
            defer { close(fd) }
            if e.size > 0 {
                contentSize += e.size
                try reader.readData { try writeAll(fd, $0, what: "\(archiveName): entry \(e.name)") }
            }
            try finish(fd, e)
            var ts = [timespec(tv_sec: Int(e.mtime), tv_nsec: Int(e.mtimeNanoseconds)),
                      timespec(tv_sec: Int(e.mtime), tv_nsec: Int(e.mtimeNanoseconds))]
            futimens(fd, &ts)

        case .symbolicLink:
            // The target is stored as-is: it is only dangerous when followed, which we never do.
            if symlinkat(e.linkName, parent, base) != 0 {
                guard errno == EEXIST else { throw BerthError.system("\(archiveName): entry \(e.name): symlink") }
                try remove(parent, base, entry: e.name)
                guard symlinkat(e.linkName, parent, base) == 0 else { throw BerthError.system("\(archiveName): entry \(e.name): symlink") }
            }
            try finishPath(parent, base, e, isSymlink: true)

        case .hardLink:
            let t = try components(e.linkName, entry: e.name, allowAbsolute: true, what: "hard link target")
            guard let tlast = t.last else { throw deny(e.name, "hard link to the root directory") }
            let tparent: Int32
            do { tparent = try directory(t.dropLast(), entry: e.name, create: false) } catch let err as BerthError where err.code == .notFound {
                throw deny(e.name, "hard link target \(e.linkName) is not inside the target")
            }
            var st = stat()
            guard fstatat(tparent, String(tlast), &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw deny(e.name, "hard link target \(e.linkName) is not inside the target")
            }
            guard (st.st_mode & S_IFMT) != S_IFDIR else { throw deny(e.name, "hard link to directory \(e.linkName)") }
            if linkat(tparent, String(tlast), parent, base, 0) != 0 {
                guard errno == EEXIST else { throw BerthError.system("\(archiveName): entry \(e.name): link to \(e.linkName)") }
                var cur = stat()
                if fstatat(parent, base, &cur, AT_SYMLINK_NOFOLLOW) == 0 && cur.st_ino == st.st_ino && cur.st_dev == st.st_dev { return }
                try remove(parent, base, entry: e.name)
                guard linkat(tparent, String(tlast), parent, base, 0) == 0 else {
                    throw BerthError.system("\(archiveName): entry \(e.name): link to \(e.linkName)")
                }
            }

        case .characterDevice, .blockDevice, .fifo:
            if e.kind != .fifo && !options.allowDeviceNodes {
                throw deny(e.name, "device node refused (allowDeviceNodes is off)")
            }
            let type: mode_t = e.kind == .fifo ? S_IFIFO : (e.kind == .characterDevice ? S_IFCHR : S_IFBLK)
            let dev = e.kind == .fifo ? 0 : berth_makedev(e.deviceMajor, e.deviceMinor)
            if mknodat(parent, base, type | 0o600, dev_t(dev)) != 0 {
                guard errno == EEXIST else { throw BerthError.system("\(archiveName): entry \(e.name): mknod") }
                try remove(parent, base, entry: e.name)
                guard mknodat(parent, base, type | 0o600, dev_t(dev)) == 0 else { throw BerthError.system("\(archiveName): entry \(e.name): mknod") }
            }
            try finishPath(parent, base, e, isSymlink: false)
        }
    }

    /// Owner, mode and times of an entry that cannot be opened for writing (symlink, node).
    private func finishPath(_ parent: Int32, _ base: String, _ e: TarEntry, isSymlink: Bool) throws {
        if options.keepOwnership && isRoot && (e.uid != 0 || e.gid != 0) {
            guard fchownat(parent, base, e.uid, e.gid, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw BerthError.system("\(archiveName): entry \(e.name): chown")
            }
        }
        if !isSymlink {
            // The node was just created by us in a directory we hold open: chmod cannot be redirected.
            guard fchmodat(parent, base, permissions(e), 0) == 0 else { throw BerthError.system("\(archiveName): entry \(e.name): chmod") }
        }
        var ts = [timespec(tv_sec: Int(e.mtime), tv_nsec: Int(e.mtimeNanoseconds)),
                  timespec(tv_sec: Int(e.mtime), tv_nsec: Int(e.mtimeNanoseconds))]
        utimensat(parent, base, &ts, AT_SYMLINK_NOFOLLOW)
    }

    private func applyWhiteout(_ e: TarEntry, base: String, parentComps: ArraySlice<Substring>) throws {
        if base == ".wh..wh..opq" {
            let dirKey = parentComps.joined(separator: "/")
            let parent = try directory(parentComps, entry: e.name)
            switch options.whiteouts {
            case .overlay:
                let fd = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard fd >= 0 else { throw BerthError.system("\(archiveName): entry \(e.name): open directory") }
                defer { close(fd) }
                let rc = fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0)
                guard rc == 0 else { throw BerthError.system("\(archiveName): entry \(e.name): mark \(dirKey) opaque") }
            case .flatten:
                guard let dirName = parentComps.last else {
                    try removeChildren(rootFD, ".", keep: { self.written.contains($0) }, entry: e.name)
                    forgetDirectories()
                    return
                }
                let grand = try directory(parentComps.dropLast(), entry: e.name)
                try removeChildren(grand, String(dirName), keep: { self.written.contains($0) }, prefix: dirKey + "/", entry: e.name)
                forgetDirectories()
            }
            return
        }
        if base.hasPrefix(".wh..wh.") { return }  // aufs bookkeeping (.wh..wh.plnk and the like)
        let name = String(base.dropFirst(4))
        guard !name.isEmpty, name != ".", name != ".." else {
            throw deny(e.name, "whiteout names an invalid entry \"\(name)\"")
        }
        let parent = try directory(parentComps, entry: e.name)
        switch options.whiteouts {
        case .overlay:
            var st = stat()
            if fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 { try remove(parent, name, entry: e.name) }
            guard mknodat(parent, name, S_IFCHR | 0, 0) == 0 else {
                throw BerthError.system("\(archiveName): entry \(e.name): create whiteout \(name)")
            }
        case .flatten:
            try remove(parent, name, entry: e.name)
        }
    }
}
