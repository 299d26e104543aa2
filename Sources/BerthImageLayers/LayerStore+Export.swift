import BerthSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

extension LayerStore {
    /// Writes images to `path`: a `docker save` tarball (`.dockerSave`, legacy layout that every
    /// Docker loads: `<config>.json`, `<chain id>/layer.tar`, `manifest.json`, `repositories`) or
    /// an OCI image layout directory (`.ociLayout`, layers kept as stored, gzip or plain) that
    /// `skopeo inspect oci:DIR` and `umoci unpack --image DIR:TAG` accept.
    ///
    /// The output appears complete or not at all (written beside `path`, then renamed).
    /// - Parameters:
    ///   - references: Tags or IDs.
    ///   - path: The tar file or layout directory to create; must not exist.
    ///   - format: `.dockerSave` or `.ociLayout`.
    public func save(_ references: [String], to path: String, format: ArchiveFormat = .dockerSave) throws {
        guard !FileIO.exists(path) else { throw BerthError(.alreadyExists, "\(path) already exists") }
        let images = try references.map { try image($0) }
        guard !images.isEmpty else { throw BerthError(.invalidArgument, "no image to save") }
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var ok = false
        defer { if !ok { try? FileIO.removeTree(tmp) } }
        switch format {
        case .dockerSave: try writeDockerSave(images, references: references, to: tmp)
        case .ociLayout: try writeOCILayout(images, references: references, to: tmp)
        default: throw BerthError(.invalidArgument, "cannot save to format \(format.rawValue)")
        }
        guard rename(tmp, path) == 0 else { throw BerthError.system("rename \(tmp) to \(path)") }
        ok = true
    }

    /// Writes an image's file tree, all layers applied in order (whiteouts delete, opaque
    /// directories drop lower content), into the existing empty directory `target` (`docker export`
    /// of a fresh container, or a rootfs for a runtime without overlayfs).
    /// - Parameters:
    ///   - reference: Tag or ID.
    ///   - target: An existing directory, normally empty.
    public func flatten(_ reference: String, into target: String) throws {
        let img = try image(reference)
        var options = layerOptions
        options.whiteouts = .flatten
        for diffID in img.layers {
            let rec = try layerRecord(diffID)
            _ = try TarExtractor.extract(archive: blobPath(rec.blob), into: target, options: options)
        }
    }

    /// The tags to write for `img`: the reference if it is a tag, else all the image's tags.
    private func tagsToWrite(_ img: Image, _ reference: String) -> [String] {
        img.tags.contains(normalizeTag(reference)) ? [normalizeTag(reference)] : img.tags
    }

    private func writeDockerSave(_ images: [Image], references: [String], to path: String) throws {
        let output = try FileSink(creating: path)
        let tar = TarWriter(sink: output)
        var manifest: [DockerSaveManifestEntry] = []
        var repositories: [String: [String: String]] = [:]
        var written = Set<String>()
        let now = Int64(Timestamp.realNow())
        func dir(_ name: String) throws {
            var e = TarEntry(name: name + "/", kind: .directory)
            e.mode = 0o755
            e.mtime = now
            try tar.writeHeader(e)
        }
        func addFile(_ name: String, _ bytes: [UInt8]) throws {
            var e = TarEntry(name: name, kind: .regular)
            e.mtime = now
            try tar.writeFile(e, data: bytes)
        }
        for (img, ref) in zip(images, references) {
            var layerPaths: [String] = []
            var parent: Digest?
            for diffID in img.layers {
                let chain = parent.map { Digest.of(Array("\($0) \(diffID)".utf8)) } ?? diffID
                let name = chain.hex
                if !written.contains(name) {
                    written.insert(name)
                    try dir(name)
                    try addFile(name + "/VERSION", Array("1.0".utf8))
                    var legacy: [String: String] = ["id": name, "created": "1970-01-01T00:00:00Z"]
                    if let parent { legacy["parent"] = parent.hex }
                    try addFile(name + "/json", Array(try canonicalJSON(legacy)))
                    try writeLayerTar(diffID, name: name + "/layer.tar", into: tar, mtime: now)
                }
                layerPaths.append(name + "/layer.tar")
                parent = chain
            }
            let configName = img.id.hex + ".json"
            if !written.contains(configName) {
                written.insert(configName)
                try addFile(configName, try FileIO.readBytes(blobPath(img.id)))
            }
            let tags = tagsToWrite(img, ref)
            manifest.append(DockerSaveManifestEntry(config: configName, repoTags: tags.isEmpty ? nil : tags, layers: layerPaths))
            for t in tags {
                let colon = t.lastIndex(of: ":")!
                repositories[String(t[..<colon]), default: [:]][String(t[t.index(after: colon)...])] = parent?.hex ?? ""
            }
        }
        try addFile("manifest.json", Array(try canonicalJSON(manifest)))
        if !repositories.isEmpty { try addFile("repositories", Array(try canonicalJSON(repositories))) }
        try tar.finish()
    }

    /// Writes a layer as an uncompressed tar entry (inflating a gzip blob on the way), checking
    /// that what is written still has the layer's diff_id.
    private func writeLayerTar(_ diffID: Digest, name: String, into tar: TarWriter, mtime: Int64) throws {
        let rec = try layerRecord(diffID)
        var e = TarEntry(name: name, kind: .regular)
        e.size = rec.tarSize
        e.mtime = mtime
        try tar.writeHeader(e)
        let file = try FileReader(path: blobPath(rec.blob))
        let source: any ByteReader = rec.mediaType.hasSuffix("gzip") ? try GzipReader(file, name: blobPath(rec.blob)) : file
        let hashing = HashingReader(source)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var left = rec.tarSize
        while left > 0 {
            let n = try hashing.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(min(Int64(buffer.count), left))]))
            guard n > 0 else { throw BerthError(.corrupt, "layer \(diffID): blob \(rec.blob) is shorter than recorded") }
            try tar.writeData(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            left -= Int64(n)
        }
        guard hashing.hasher.finish() == diffID else {
            throw BerthError(.corrupt, "layer \(diffID): stored blob \(rec.blob) no longer matches its diff_id")
        }
        try tar.endData(size: rec.tarSize)
    }

    private func writeOCILayout(_ images: [Image], references: [String], to dir: String) throws {
        try FileIO.makeDirectories(dir + "/blobs/sha256")
        func putBlob(_ bytes: [UInt8]) throws -> Descriptor {
            let d = Digest.of(bytes)
            let p = dir + "/blobs/sha256/" + d.hex
            if !FileIO.exists(p) { try FileIO.writeAtomically(p, bytes) }
            return Descriptor(mediaType: "", digest: d, size: Int64(bytes.count))
        }
        var index = ImageIndex(schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [])
        for (img, ref) in zip(images, references) {
            var layers: [Descriptor] = []
            for diffID in img.layers {
                let rec = try layerRecord(diffID)
                let p = dir + "/blobs/sha256/" + rec.blob.hex
                if !FileIO.exists(p) { try copyFile(blobPath(rec.blob), to: p) }
                layers.append(Descriptor(mediaType: rec.mediaType, digest: rec.blob, size: rec.blobSize))
            }
            var config = try putBlob(try FileIO.readBytes(blobPath(img.id)))
            config.mediaType = MediaType.ociConfig
            let manifest = ImageManifest(schemaVersion: 2, mediaType: MediaType.ociManifest, config: config, layers: layers)
            var m = try putBlob(Array(try canonicalJSON(manifest)))
            m.mediaType = MediaType.ociManifest
            let tags = tagsToWrite(img, ref)
            if tags.isEmpty { index.manifests.append(m) }
            for t in tags {
                var tagged = m
                let colon = t.lastIndex(of: ":")!
                tagged.annotations = ["org.opencontainers.image.ref.name": String(t[t.index(after: colon)...])]
                index.manifests.append(tagged)
            }
        }
        try FileIO.writeAtomically(dir + "/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}")
        try FileIO.writeAtomically(dir + "/index.json", Array(try canonicalJSON(index)))
    }
}

/// Copies a file with large reads and writes.
func copyFile(_ from: String, to: String) throws {
    let input = try FileReader(path: from)
    let out = try FileSink(creating: to)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
    defer { buffer.deallocate() }
    while true {
        let n = try input.read(into: buffer)
        if n == 0 { break }
        try out.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
    }
    try out.finish()
}
