import BerthSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// An image known to a ``LayerStore``.
public struct Image: Sendable {
    /// The image ID: the digest of its config blob.
    public var id: Digest
    /// `repository:tag` names pointing at it.
    public var tags: [String]
    /// The parsed configuration.
    public var config: ImageConfig
    /// Layer diff_ids, bottom first.
    public var layers: [Digest] { config.rootfs.diffIDs }
    /// Sum of the unpacked content of its layers, in bytes.
    public var size: Int64
}

/// Content-addressed images and layers under a state root, with container rootfs on overlayfs.
///
/// Layout under `root`:
/// - `blobs/sha256/<hex>`: image configs and layer blobs as imported (gzip or plain tar);
/// - `layers/<diff_id hex>/diff`: each layer unpacked once for overlayfs (whiteouts as 0/0
///   character devices, opaque dirs with `trusted.overlay.opaque=y`), shared read-only;
/// - `layers/<hex>/layer.json`, `images/<id hex>.json`, `tags.json`: records written atomically;
/// - `containers/<name>/{upper,work,merged}`: per-container overlay directories; with a run root,
///   `merged` (a mount point) and the records of ephemeral rootfs are in `<run root>/rootfs/<name>/`
///   instead, on the tmpfs a reboot empties;
/// - `init/`: the init layer, the top lower layer of every container rootfs (``initLayerEntries``);
/// - `tmp/`: staging; an import only becomes visible when it is complete and verified.
///
/// Every update of the records holds an exclusive `flock` on `root/lock`, so two processes can
/// share a root. A layer is referenced by the images and container rootfs that list it and is
/// removed only when nothing references it.
public final class LayerStore: Sendable {
    /// The state root.
    public let root: String
    /// How layers are unpacked: overlay whiteouts, setuid bits kept (images carry `su`,
    /// `passwd`…), device nodes refused unless the store was opened with `allowDeviceNodes`.
    public let layerOptions: ExtractionOptions
    /// Where container mount points and the records of ephemeral container rootfs go (a
    /// directory on a tmpfs, such as the engine's exec root); `nil` keeps everything under `root`.
    public let runRoot: String?

    /// Opens (creating if needed) a store under `root`.
    /// - Parameters:
    ///   - root: The state directory, e.g. `/var/lib/berth/image`.
    ///   - allowDeviceNodes: Accept layers holding character or block devices (a debootstrap
    ///     rootfs has /dev/null and friends); refused by default.
    ///   - runRoot: See ``runRoot``.
    public init(root: String, allowDeviceNodes: Bool = false, runRoot: String? = nil) throws {
        self.root = root
        self.runRoot = runRoot
        var o = ExtractionOptions(whiteouts: .overlay)
        o.keepSetuidBits = true
        o.allowDeviceNodes = allowDeviceNodes
        layerOptions = o
        for dir in ["", "/blobs/sha256", "/layers", "/images", "/containers", "/tmp"] {
            try FileIO.makeDirectories(root + dir, mode: 0o700)
        }
        try makeInitLayer()
    }

    /// The mount points every container needs, in the init layer that sits above the image layers
    /// of each container rootfs (Docker's `-init` layer, shared here): with them in place, mounting
    /// /proc, /sys, /dev and the generated hosts files changes nothing in the container's upper
    /// directory, so `diff` and `commit` do not see them and a start creates no files on disk.
    /// Paths ending in `/` are directories, the others empty files.
    public static let initLayerEntries = ["proc/", "sys/", "dev/", "etc/", "etc/hosts", "etc/hostname", "etc/resolv.conf"]

    /// The init layer's directory.
    public var initLayerPath: String { root + "/init" }

    /// Creates the init layer once: built in staging, then renamed into place.
    private func makeInitLayer() throws {
        if FileIO.exists(initLayerPath) { return }
        let staging = try makeStaging("init")
        do {
            try FileIO.makeDirectories(staging, mode: 0o755)
            chmod(staging, 0o755)
            for entry in Self.initLayerEntries {
                if entry.hasSuffix("/") {
                    try FileIO.makeDirectories(staging + "/" + entry.dropLast(), mode: 0o755)
                } else {
                    try FileIO.writeAtomically(staging + "/" + entry, "", mode: 0o644)
                }
            }
            guard rename(staging, initLayerPath) == 0 || errno == ENOTEMPTY || errno == EEXIST else {
                throw BerthError.system("rename \(staging) to \(initLayerPath)")
            }
            if FileIO.exists(staging) { try FileIO.removeTree(staging) }
        } catch {
            try? FileIO.removeTree(staging)
            throw error
        }
    }

    // MARK: paths

    var lockPath: String { root + "/lock" }
    func blobPath(_ d: Digest) -> String { root + "/blobs/sha256/" + d.hex }
    func layerDir(_ d: Digest) -> String { root + "/layers/" + d.hex }
    func imagePath(_ d: Digest) -> String { root + "/images/" + d.hex + ".json" }
    var tagsPath: String { root + "/tags.json" }
    func containerDir(_ name: String) -> String { root + "/containers/" + name }
    /// A container rootfs's directory under the run root (mount point, ephemeral record).
    func runDir(_ name: String) -> String? { runRoot.map { $0 + "/rootfs/" + name } }
    /// Where a rootfs is mounted.
    func mountDir(_ name: String) -> String { (runDir(name) ?? containerDir(name)) + "/merged" }
    /// The rootfs record: under the run root for an ephemeral rootfs, in its directory otherwise.
    func recordPath(_ name: String) -> String? {
        if let run = runDir(name), FileIO.exists(run + "/rootfs.json") { return run + "/rootfs.json" }
        let p = containerDir(name) + "/rootfs.json"
        return FileIO.exists(p) ? p : nil
    }

    func withLock<T>(_ body: () throws -> T) throws -> T { try FileLock.withLock(lockPath, body) }

    /// A new staging directory under `root/tmp`.
    func makeStaging(_ what: String) throws -> String {
        try FileIO.makeTemporaryDirectory(prefix: "\(what)-\(getpid())-", in: root + "/tmp")
    }

    // MARK: records

    struct LayerRecord: Codable {
        var diffID: Digest
        var blob: Digest
        var mediaType: String
        var blobSize: Int64
        var tarSize: Int64
        var contentSize: Int64
    }

    struct ImageRecord: Codable {
        var id: Digest
        var diffIDs: [Digest]
        var added: String
    }

    struct RootfsRecord: Codable {
        var name: String
        var image: Digest
        var diffIDs: [Digest]
        /// Whether the init layer sits above the image's layers (absent in older records: no).
        var initLayer: Bool?
    }

    func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
        try FileIO.writeAtomically(path, Array(try canonicalJSON(value)))
    }

    func readJSON<T: Decodable>(_ type: T.Type, _ path: String) throws -> T {
        try decodeJSON(type, try FileIO.readBytes(path), what: path)
    }

    func tagTable() throws -> [String: Digest] {
        guard FileIO.exists(tagsPath) else { return [:] }
        return try readJSON([String: Digest].self, tagsPath)
    }

    func layerRecord(_ d: Digest) throws -> LayerRecord {
        let p = layerDir(d) + "/layer.json"
        guard FileIO.exists(p) else { throw BerthError(.notFound, "layer \(d) is not in the store \(root)") }
        return try readJSON(LayerRecord.self, p)
    }

    func imageRecords() throws -> [ImageRecord] {
        try listDirectory(root + "/images").filter { $0.hasSuffix(".json") }.sorted().map {
            try readJSON(ImageRecord.self, root + "/images/" + $0)
        }
    }

    func rootfsRecords() throws -> [RootfsRecord] {
        try listDirectory(root + "/containers").sorted().compactMap { name in
            try recordPath(name).map { try readJSON(RootfsRecord.self, $0) }
        }
    }

    func loadConfig(_ id: Digest) throws -> ImageConfig {
        let bytes = try FileIO.readBytes(blobPath(id))
        return try decodeJSON(ImageConfig.self, bytes, what: "config of image \(id)")
    }

    func makeImage(_ record: ImageRecord, tags: [String: Digest]) throws -> Image {
        let config = try loadConfig(record.id)
        var size: Int64 = 0
        for d in record.diffIDs { size += (try? layerRecord(d).contentSize) ?? 0 }
        return Image(id: record.id, tags: tags.filter { $0.value == record.id }.map(\.key).sorted(), config: config, size: size)
    }

    // MARK: images

    /// All images, newest first (like `docker images`).
    public func images() throws -> [Image] {
        let tags = try tagTable()
        let list = try imageRecords().map { try makeImage($0, tags: tags) }
        return list.sorted { (Timestamp.parse($0.config.created ?? "") ?? 0) > (Timestamp.parse($1.config.created ?? "") ?? 0) }
    }

    /// Finds an image by `name:tag` (`:latest` implied), full or `sha256:`-prefixed ID, or a unique
    /// ID prefix of at least 4 digits.
    /// - Parameter reference: The name or ID.
    /// - Throws: ``BerthError`` `.notFound` or `.invalidArgument` (ambiguous prefix).
    public func image(_ reference: String) throws -> Image {
        let tags = try tagTable()
        return try makeImage(try resolveImage(reference, tags: tags), tags: tags)
    }

    func resolveImage(_ reference: String, tags: [String: Digest]) throws -> ImageRecord {
        if let id = tags[normalizeTag(reference)] { return try readJSON(ImageRecord.self, imagePath(id)) }
        var hex = reference
        if hex.hasPrefix("sha256:") { hex = String(hex.dropFirst(7)) }
        if hex.count >= 4 && hex.allSatisfy({ $0.isHexDigit }) {
            let matches = try listDirectory(root + "/images").filter { $0.hasPrefix(hex) && $0.hasSuffix(".json") }
            if matches.count == 1 { return try readJSON(ImageRecord.self, root + "/images/" + matches[0]) }
            if matches.count > 1 { throw BerthError(.invalidArgument, "image reference \(reference) is ambiguous (\(matches.count) images match)") }
        }
        throw BerthError(.notFound, "image \(reference) not found in \(root)")
    }

    /// Points `name:tag` at an image (moving the tag if it pointed elsewhere).
    /// - Parameters:
    ///   - reference: The image.
    ///   - name: `repository[:tag]`.
    public func tag(_ reference: String, as name: String) throws {
        try withLock {
            var tags = try tagTable()
            let rec = try resolveImage(reference, tags: tags)
            tags[try validTag(name)] = rec.id
            try writeJSON(tags, to: tagsPath)
        }
    }

    /// Removes a tag or an image (`docker rmi`): a tag reference removes that tag, and the image
    /// too once no tag is left; an ID removes the image and all its tags. Layers no longer
    /// referenced by any image or container rootfs are deleted.
    /// - Parameters:
    ///   - reference: Tag or ID.
    ///   - force: Remove the image even if it has other tags.
    /// - Returns: Lines like Docker's: `Untagged: x:y`, `Deleted: sha256:...`.
    /// - Throws: `.invalidState` when a container rootfs still uses the image.
    @discardableResult
    public func removeImage(_ reference: String, force: Bool = false) throws -> [String] {
        try withLock {
            var tags = try tagTable()
            let rec = try resolveImage(reference, tags: tags)
            var out: [String] = []
            let byTag = tags[normalizeTag(reference)] == rec.id
            let imageTags = tags.filter { $0.value == rec.id }.map(\.key).sorted()
            if byTag && imageTags.count > 1 && !force {
                tags[normalizeTag(reference)] = nil
                try writeJSON(tags, to: tagsPath)
                return ["Untagged: \(normalizeTag(reference))"]
            }
            if !byTag && imageTags.count > 1 && !force {
                throw BerthError(.invalidState, "image \(rec.id.short) is referenced by several tags (\(imageTags.joined(separator: ", "))); remove them by name or force")
            }
            if let user = try rootfsRecords().first(where: { $0.image == rec.id }) {
                throw BerthError(.invalidState, "image \(rec.id.short) is used by container rootfs \(user.name)")
            }
            for t in imageTags { tags[t] = nil; out.append("Untagged: \(t)") }
            try writeJSON(tags, to: tagsPath)
            unlink(imagePath(rec.id))
            if try !imageRecords().contains(where: { $0.id == rec.id }) { unlink(blobPath(rec.id)) }
            out.append("Deleted: \(rec.id)")
            out += try removeUnreferencedLayers()
            return out
        }
    }

    /// How many images and container rootfs use a layer.
    /// - Parameter diffID: The layer.
    public func referenceCount(of diffID: Digest) throws -> Int {
        try imageRecords().filter { $0.diffIDs.contains(diffID) }.count
            + rootfsRecords().filter { $0.diffIDs.contains(diffID) }.count
    }

    /// Deletes layers (and their blobs) that nothing references. Call with the lock held.
    func removeUnreferencedLayers() throws -> [String] {
        var used = Set<Digest>()
        for r in try imageRecords() { used.formUnion(r.diffIDs) }
        for r in try rootfsRecords() { used.formUnion(r.diffIDs) }
        var out: [String] = []
        for name in try listDirectory(root + "/layers") {
            guard let d = try? Digest(parsing: name, allowBare: true), !used.contains(d) else { continue }
            if let rec = try? layerRecord(d) { unlink(blobPath(rec.blob)) }
            try FileIO.removeTree(layerDir(d))
            out.append("Deleted: \(d)")
        }
        return out
    }

    /// Removes what a crash can leave behind: staging directories of processes that no longer
    /// exist, layers no image or rootfs references, blobs no image or layer references.
    /// - Returns: What was removed, one line each.
    @discardableResult
    public func collectGarbage() throws -> [String] {
        try withLock {
            var out: [String] = []
            for name in try listDirectory(root + "/tmp") {
                let parts = name.split(separator: "-")
                if parts.count >= 3, let pid = Int32(parts[1]), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH {
                    try FileIO.removeTree(root + "/tmp/" + name)
                    out.append("Removed staging: \(name)")
                }
            }
            out += try removeUnreferencedLayers()
            var keep = Set<String>()
            for r in try imageRecords() { keep.insert(r.id.hex) }
            for d in try layers() { if let rec = try? layerRecord(d) { keep.insert(rec.blob.hex) } }
            for name in try listDirectory(root + "/blobs/sha256") where !keep.contains(name) {
                unlink(root + "/blobs/sha256/" + name)
                out.append("Deleted blob: sha256:\(name)")
            }
            return out
        }
    }

    /// The names of the layers stored, for inspection.
    public func layers() throws -> [Digest] {
        try listDirectory(root + "/layers").compactMap { try? Digest(parsing: $0, allowBare: true) }.sorted()
    }

    /// The directory holding a layer's unpacked content (read-only by convention).
    public func layerPath(_ diffID: Digest) -> String { layerDir(diffID) + "/diff" }
}

/// `name` → `name:latest` when it has no tag; Docker Hub names in their familiar form
/// (`docker.io/library/busybox` → `busybox`).
func normalizeTag(_ raw: String) -> String {
    var name = raw
    for prefix in ["docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"] where name.hasPrefix(prefix) {
        name = String(name.dropFirst(prefix.count))
        break
    }
    let lastSlash = name.lastIndex(of: "/")
    let tail = lastSlash.map { name[name.index(after: $0)...] } ?? Substring(name)
    return tail.contains(":") ? name : name + ":latest"
}

func validTag(_ name: String) throws -> String {
    let t = normalizeTag(name)
    guard !t.isEmpty, t.count < 256, !t.hasPrefix(":"), !t.contains(" "), !t.hasPrefix("sha256:") else {
        throw BerthError(.invalidArgument, "invalid image name \"\(name)\"")
    }
    return t
}
