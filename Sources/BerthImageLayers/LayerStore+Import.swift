import BerthSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// The kinds of archive ``LayerStore/importArchive(_:format:tag:progress:)`` understands.
public enum ArchiveFormat: String, Sendable, CaseIterable {
    /// Guess from the input: a directory is an OCI layout; a tar with manifest.json, blobs/ or
    /// `<id>/layer.tar` entries is a `docker save` archive; any other tar is a rootfs.
    case auto
    /// `docker save` output: legacy (`<id>/layer.tar`, `repositories`) or OCI-style (`blobs/sha256`).
    case dockerSave = "docker-save"
    /// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256`).
    case ociLayout = "oci"
    /// A plain root filesystem tarball, as `docker import` takes (gzip or not).
    case rootfs
}

/// A layer ready to be moved into the store.
struct PendingLayer {
    var record: LayerStore.LayerRecord
    /// Staged `diff` parent directory and blob file; nil when the store already has the layer.
    var stagedDir: String?
    var stagedBlob: String?
}

/// An image ready to be recorded.
struct PendingImage {
    var configBytes: [UInt8]
    var id: Digest
    var tags: [String]
    var diffIDs: [Digest]
}

extension LayerStore {
    /// Imports images from a `docker save` tarball, an OCI layout directory or a rootfs tarball.
    ///
    /// Everything is unpacked and verified in a staging directory first (config digests, blob
    /// digests, layer diff_ids); only then are layers, blobs, image records and tags moved into
    /// the store under the lock. On any error nothing of the import remains.
    /// - Parameters:
    ///   - path: The tarball or layout directory.
    ///   - format: What `path` is; `.auto` guesses.
    ///   - tag: A name to give the imported image (the only image, or the first one).
    ///   - progress: Called with bytes read per layer.
    /// - Returns: The imported images.
    @discardableResult
    public func importArchive(_ path: String, format: ArchiveFormat = .auto, tag: String? = nil,
                              progress: ProgressHandler? = nil) throws -> [Image] {
        var kind = format
        if kind == .auto { kind = try detectFormat(path) }
        if kind == .rootfs { return [try importRootfs(path, tag: tag, progress: progress)] }
        let staging = try makeStaging("import")
        defer { try? FileIO.removeTree(staging) }
        var pending: (images: [PendingImage], layers: [Digest: PendingLayer])
        if kind == .ociLayout {
            pending = try stageOCILayout(path, staging: staging, progress: progress)
        } else {
            pending = try stageDockerSave(path, staging: staging, progress: progress)
        }
        if let tag, !pending.images.isEmpty { pending.images[0].tags = [try validTag(tag)] }
        return try commit(pending.images, pending.layers)
    }

    /// Imports a root filesystem tarball as a one-layer image (`docker import`).
    /// - Parameters:
    ///   - path: A tar file, gzip-compressed or not.
    ///   - tag: The name to give the image.
    ///   - config: Run-time defaults (Cmd, Env…) of the new image.
    ///   - progress: Called with bytes read.
    /// - Returns: The new image.
    @discardableResult
    public func importRootfs(_ path: String, tag: String? = nil, config: ImageConfig.RunConfig = ImageConfig.RunConfig(),
                             progress: ProgressHandler? = nil) throws -> Image {
        let staging = try makeStaging("import")
        defer { try? FileIO.removeTree(staging) }
        let layer = try stageLayer(blob: path, expectedBlob: nil, expectedDiffID: nil, mediaType: nil,
                                   staging: staging, index: 0, count: 1, progress: progress)
        let now = Timestamp.now()
        var cfg = ImageConfig(diffIDs: [layer.record.diffID], config: config)
        cfg.created = now
        cfg.history = [ImageConfig.History(created: now, createdBy: "", comment: "Imported from -")]
        let bytes = try cfg.encoded()
        let image = PendingImage(configBytes: bytes, id: Digest.of(bytes), tags: try tag.map { [try validTag($0)] } ?? [],
                                 diffIDs: [layer.record.diffID])
        return try commit([image], [layer.record.diffID: layer])[0]
    }

    // MARK: detection

    func detectFormat(_ path: String) throws -> ArchiveFormat {
        if FileIO.isDirectory(path) {
            guard FileIO.exists(path + "/index.json") else {
                throw BerthError(.invalidArgument, "\(path) is a directory without index.json (not an OCI layout)")
            }
            return .ociLayout
        }
        let file = try FileReader(path: path)
        let peek = PeekingReader(file)
        let gz = try peek.peek(2) == [0x1f, 0x8b]
        let source = DirectChunkSource(gz ? try GzipReader(peek, name: path) : peek, chunkSize: 64 * 1024)
        let reader = TarReader(source: source, name: path)
        for _ in 0..<8 {
            guard let e = try reader.next() else { break }
            let n = e.name.hasPrefix("./") ? String(e.name.dropFirst(2)) : e.name
            if ["manifest.json", "repositories", "oci-layout", "index.json"].contains(n) || n.hasPrefix("blobs/")
                || n.hasSuffix("/layer.tar") || n.hasSuffix("/VERSION") { return .dockerSave }
            let head = n.split(separator: "/").first.map(String.init) ?? n
            let stem = head.hasSuffix(".json") ? String(head.dropLast(5)) : head.hasSuffix(".tar") ? String(head.dropLast(4)) : head
            if (try? Digest(parsing: stem, allowBare: true)) != nil { return .dockerSave }
        }
        return .rootfs
    }

    // MARK: staging

    /// Unpacks one layer blob into `staging`, keeping a copy of the blob, verifying digests.
    func stageLayer(blob: String, expectedBlob: Digest?, expectedDiffID: Digest?, mediaType: String?,
                    staging: String, index: Int, count: Int, progress: ProgressHandler?,
                    copyBlob: Bool = true) throws -> PendingLayer {
        if let mediaType, mediaType.hasSuffix("zstd") {
            throw BerthError(.unsupported, "layer \(index) (\(blob)) is zstd-compressed, which is not supported")
        }
        let dir = staging + "/layer-\(index)-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir + "/diff", mode: 0o755)
        let file = try FileReader(path: blob)
        file.hasher = SHA256()
        var stagedBlob: String? = nil
        var teeFD: Int32 = -1
        if copyBlob {
            let p = dir + "/blob"
            teeFD = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard teeFD >= 0 else { throw BerthError.system("create \(p)") }
            file.teeFD = teeFD
            stagedBlob = p
        } else {
            stagedBlob = blob
        }
        defer { if teeFD >= 0 { close(teeFD) } }
        var st = stat()
        fstat(file.fd, &st)
        let total = Int64(st.st_size)
        if let progress {
            file.onProgress = { progress(Progress(layerIndex: index, layerCount: count, bytesDone: $0, bytesTotal: total)) }
        }
        let r = try TarExtractor.extract(reader: file, name: "layer \(index) (\(blob))", into: dir + "/diff", options: layerOptions)
        if let expectedBlob, r.blobDigest != expectedBlob {
            throw BerthError(.corrupt, "layer \(index) (\(blob)): blob digest \(r.blobDigest) does not match the expected \(expectedBlob)")
        }
        if let expectedDiffID, r.diffID != expectedDiffID {
            throw BerthError(.corrupt, "layer \(index) (\(blob)): content digest \(r.diffID) does not match the diff_id \(expectedDiffID) in the image config")
        }
        let type = r.compressed ? MediaType.ociLayerGzip : MediaType.ociLayer
        let rec = LayerRecord(diffID: r.diffID, blob: r.blobDigest, mediaType: type, blobSize: r.blobSize,
                              tarSize: r.tarSize, contentSize: r.contentSize)
        return PendingLayer(record: rec, stagedDir: dir, stagedBlob: stagedBlob)
    }

    func stageDockerSave(_ path: String, staging: String, progress: ProgressHandler?) throws
        -> (images: [PendingImage], layers: [Digest: PendingLayer]) {
        // 1. Spool every file of the archive to staging (hashing it), keep the small ones in memory.
        let file = try FileReader(path: path)
        var st = stat()
        fstat(file.fd, &st)
        let total = Int64(st.st_size)
        if let progress { file.onProgress = { progress(Progress(layerIndex: nil, layerCount: 0, bytesDone: $0, bytesTotal: total)) } }
        let peek = PeekingReader(file)
        let gz = try peek.peek(2) == [0x1f, 0x8b]
        let source = PipelinedChunkSource(gz ? try GzipReader(peek, name: path) : peek)
        defer { source.close() }
        let reader = TarReader(source: source, name: path)
        var files: [String: (path: String, digest: Digest)] = [:]
        var small: [String: [UInt8]] = [:]
        var links: [String: String] = [:]
        var n = 0
        func clean(_ name: String) -> String {
            var parts: [Substring] = []
            for c in name.split(separator: "/") where c != "." {
                if c == ".." { _ = parts.popLast() } else { parts.append(c) }
            }
            return parts.joined(separator: "/")
        }
        while let e = try reader.next() {
            let name = clean(e.name)
            switch e.kind {
            case .regular:
                let out = staging + "/f\(n)"
                n += 1
                let sink = try FileSink(creating: out)
                var mem: [UInt8] = []
                let keep = e.size <= 4 << 20
                try reader.readData { chunk in
                    try sink.write(chunk)
                    if keep { mem.append(contentsOf: chunk) }
                }
                try sink.finish()
                files[name] = (out, sink.hasher.finish())
                if keep { small[name] = mem }
            case .symbolicLink:
                let dir = name.split(separator: "/").dropLast().joined(separator: "/")
                links[name] = clean(e.linkName.hasPrefix("/") ? e.linkName : dir + "/" + e.linkName)
            case .hardLink:
                links[name] = clean(e.linkName)
            default:
                continue
            }
        }
        func resolve(_ name: String) -> String {
            var n = clean(name)
            for _ in 0..<16 { guard let t = links[n] else { break }; n = t }
            return n
        }
        guard let manifestBytes = small[resolve("manifest.json")] else {
            throw BerthError(.corrupt, "\(path): no manifest.json (not a docker save archive)")
        }
        let manifest = try decodeJSON([DockerSaveManifestEntry].self, manifestBytes, what: "\(path): manifest.json")

        // 2. Verify configs and unpack each distinct layer.
        var images: [PendingImage] = []
        var layers: [Digest: PendingLayer] = [:]
        for entry in manifest {
            let configName = resolve(entry.config)
            guard let configBytes = small[configName] else {
                throw BerthError(.corrupt, "\(path): config \(entry.config) is missing from the archive")
            }
            let id = Digest.of(configBytes)
            if let expected = digestInName(configName), expected != id {
                throw BerthError(.corrupt, "\(path): config \(entry.config) has digest \(id), not \(expected)")
            }
            let config = try decodeJSON(ImageConfig.self, configBytes, what: "\(path): config \(entry.config)")
            guard config.rootfs.diffIDs.count == entry.layers.count else {
                throw BerthError(.corrupt, "\(path): image \(id.short) lists \(entry.layers.count) layers but its config has \(config.rootfs.diffIDs.count) diff_ids")
            }
            for (i, layerName) in entry.layers.enumerated() {
                let diffID = config.rootfs.diffIDs[i]
                if layers[diffID] != nil { continue }
                guard let f = files[resolve(layerName)] else {
                    throw BerthError(.corrupt, "\(path): layer \(layerName) is missing from the archive")
                }
                if let expected = digestInName(resolve(layerName)), expected != f.digest {
                    throw BerthError(.corrupt, "\(path): layer \(layerName) has digest \(f.digest), not \(expected)")
                }
                if let rec = try? layerRecord(diffID) {
                    layers[diffID] = PendingLayer(record: rec)
                    continue
                }
                var p = try stageLayer(blob: f.path, expectedBlob: nil, expectedDiffID: diffID, mediaType: nil,
                                       staging: staging, index: i, count: entry.layers.count, progress: progress,
                                       copyBlob: false)
                p.stagedBlob = f.path
                layers[diffID] = p
            }
            images.append(PendingImage(configBytes: configBytes, id: id,
                                       tags: try (entry.repoTags ?? []).map { try validTag($0) }, diffIDs: config.rootfs.diffIDs))
        }
        return (images, layers)
    }

    func stageOCILayout(_ dir: String, staging: String, progress: ProgressHandler?) throws
        -> (images: [PendingImage], layers: [Digest: PendingLayer]) {
        let index = try decodeJSON(ImageIndex.self, try FileIO.readBytes(dir + "/index.json"), what: "\(dir)/index.json")
        func blob(_ d: Descriptor) throws -> [UInt8] {
            let p = dir + "/blobs/sha256/" + d.digest.hex
            guard FileIO.exists(p) else { throw BerthError(.corrupt, "\(dir): blob \(d.digest) is missing") }
            let bytes = try FileIO.readBytes(p)
            guard Digest.of(bytes) == d.digest else {
                throw BerthError(.corrupt, "\(dir): blob \(d.digest) does not match its digest (\(Digest.of(bytes)))")
            }
            return bytes
        }
        var manifests: [(Descriptor, String?)] = []
        for d in index.manifests {
            let name = d.annotations?["org.opencontainers.image.ref.name"]
            if d.mediaType == MediaType.ociIndex || d.mediaType == MediaType.dockerManifestList {
                let inner = try decodeJSON(ImageIndex.self, try blob(d), what: "\(dir): index \(d.digest)")
                let pick = inner.manifests.first { $0.platform?.os == "linux" && $0.platform?.architecture == currentArchitecture() }
                    ?? inner.manifests.first
                if let pick { manifests.append((pick, name)) }
            } else {
                manifests.append((d, name))
            }
        }
        guard !manifests.isEmpty else { throw BerthError(.corrupt, "\(dir): index.json lists no manifests") }
        var images: [PendingImage] = []
        var layers: [Digest: PendingLayer] = [:]
        let repo = String(dir.split(separator: "/").last ?? "image")
        for (desc, refName) in manifests {
            let manifest = try decodeJSON(ImageManifest.self, try blob(desc), what: "\(dir): manifest \(desc.digest)")
            let configBytes = try blob(manifest.config)
            let config = try decodeJSON(ImageConfig.self, configBytes, what: "\(dir): config \(manifest.config.digest)")
            guard config.rootfs.diffIDs.count == manifest.layers.count else {
                throw BerthError(.corrupt, "\(dir): manifest \(desc.digest.short) lists \(manifest.layers.count) layers but its config has \(config.rootfs.diffIDs.count) diff_ids")
            }
            for (i, l) in manifest.layers.enumerated() {
                let diffID = config.rootfs.diffIDs[i]
                if layers[diffID] != nil { continue }
                if let rec = try? layerRecord(diffID) { layers[diffID] = PendingLayer(record: rec); continue }
                let p = dir + "/blobs/sha256/" + l.digest.hex
                guard FileIO.exists(p) else { throw BerthError(.corrupt, "\(dir): layer blob \(l.digest) is missing") }
                layers[diffID] = try stageLayer(blob: p, expectedBlob: l.digest, expectedDiffID: diffID, mediaType: l.mediaType,
                                                staging: staging, index: i, count: manifest.layers.count, progress: progress)
            }
            var tags: [String] = []
            if let refName { tags = [try validTag(refName.contains(":") || refName.contains("/") ? refName : "\(repo):\(refName)")] }
            images.append(PendingImage(configBytes: configBytes, id: manifest.config.digest, tags: tags, diffIDs: config.rootfs.diffIDs))
        }
        return (images, layers)
    }

    /// `<hex>.json`, `<hex>/layer.tar` or `blobs/sha256/<hex>` → the digest the name promises.
    private func digestInName(_ name: String) -> Digest? {
        if name.hasPrefix("blobs/sha256/") { return try? Digest(parsing: String(name.dropFirst(13)), allowBare: true) }
        if name.hasSuffix(".json") { return try? Digest(parsing: String(name.dropLast(5)), allowBare: true) }
        return nil
    }

    // MARK: commit

    /// Moves staged layers and blobs into the store and records images and tags, under the lock.
    /// Rolls back what it moved if a step fails.
    func commit(_ images: [PendingImage], _ layers: [Digest: PendingLayer]) throws -> [Image] {
        try withLock {
            var movedLayers: [String] = []
            var movedBlobs: [String] = []
            var writtenFiles: [String] = []
            do {
                for (diffID, layer) in layers.sorted(by: { $0.key < $1.key }) {
                    let dest = layerDir(diffID)
                    if FileIO.exists(dest + "/layer.json") { continue }
                    guard let staged = layer.stagedDir, let blob = layer.stagedBlob else {
                        throw BerthError(.invalidState, "layer \(diffID) was removed from the store during the import; retry")
                    }
                    let blobDest = blobPath(layer.record.blob)
                    if !FileIO.exists(blobDest) {
                        guard rename(blob, blobDest) == 0 else { throw BerthError.system("move blob \(blob) to \(blobDest)") }
                        movedBlobs.append(blobDest)
                    }
                    if staged + "/blob" == blob || FileIO.exists(staged + "/blob") { unlink(staged + "/blob") }
                    try writeJSON(layer.record, to: staged + "/layer.json")
                    guard rename(staged, dest) == 0 else { throw BerthError.system("move layer \(staged) to \(dest)") }
                    movedLayers.append(dest)
                }
                var tags = try tagTable()
                for img in images {
                    if !FileIO.exists(blobPath(img.id)) {
                        try FileIO.writeAtomically(blobPath(img.id), img.configBytes)
                        writtenFiles.append(blobPath(img.id))
                    }
                    if !FileIO.exists(imagePath(img.id)) {
                        try writeJSON(ImageRecord(id: img.id, diffIDs: img.diffIDs, added: Timestamp.now()), to: imagePath(img.id))
                        writtenFiles.append(imagePath(img.id))
                    }
                    for t in img.tags { tags[t] = img.id }
                }
                try writeJSON(tags, to: tagsPath)
                let table = tags
                return try images.map { try makeImage(ImageRecord(id: $0.id, diffIDs: $0.diffIDs, added: ""), tags: table) }
            } catch {
                for p in writtenFiles { unlink(p) }
                for p in movedLayers { try? FileIO.removeTree(p) }
                for p in movedBlobs { unlink(p) }
                throw error
            }
        }
    }
}
