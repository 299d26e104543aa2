import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// What `commit` records besides the new layer.
public struct CommitOptions: Sendable {
    /// The history entry's `created_by` (Docker puts the container's command here).
    public var createdBy: String = ""
    /// The history entry's comment (`docker commit -m`).
    public var comment: String?
    /// The author recorded in the config and the history entry.
    public var author: String?
    /// A name to give the new image.
    public var tag: String?
    /// Config changes, Dockerfile-style: `CMD ["sh"]`, `CMD sh -c x`, `ENTRYPOINT [...]`,
    /// `ENV K=V`, `EXPOSE 80/tcp`, `WORKDIR /x`, `VOLUME /data`, `USER u`, `LABEL k=v`.
    public var changes: [String] = []

    public init(createdBy: String = "", comment: String? = nil, tag: String? = nil, changes: [String] = []) {
        self.createdBy = createdBy
        self.comment = comment
        self.tag = tag
        self.changes = changes
    }
}

/// One row of `docker history`.
public struct HistoryRow: Sendable {
    /// The image ID for the top row, nil (shown as `<missing>`) below.
    public var image: Digest?
    /// RFC 3339 time of the step.
    public var created: String?
    /// The command of the step.
    public var createdBy: String
    /// Bytes the step's layer adds (0 for config-only steps).
    public var size: Int64
    /// The step's comment (`Imported from -`, a commit message).
    public var comment: String
}

extension LayerStore {
    /// Turns a container rootfs' upper dir into a new layer (whiteouts for deletions, opaque
    /// markers) and records a new image: the parent's layers plus this one, a history entry and
    /// the config changes asked for.
    /// - Parameters:
    ///   - name: The container rootfs.
    ///   - options: History text, tag and config changes.
    /// - Returns: The new image.
    @discardableResult
    public func commit(name: String, options: CommitOptions = CommitOptions()) throws -> Image {
        let fs = try containerRootfs(name: name)
        let base = try loadConfig(fs.image)
        var config = base
        var run = config.config ?? ImageConfig.RunConfig()
        for change in options.changes { try Self.apply(change: change, to: &run) }
        let staging = try makeStaging("commit")
        defer { try? FileIO.removeTree(staging) }
        let tar = staging + "/layer.tar"
        _ = try DirectoryArchiver.archive(directory: fs.upperDir, to: tar, overlayUpper: true)
        var layer = try stageLayer(blob: tar, expectedBlob: nil, expectedDiffID: nil, mediaType: nil,
                                   staging: staging, index: 0, count: 1, progress: nil, copyBlob: false)
        layer.stagedBlob = tar
        let now = Timestamp.now()
        config.config = run
        config.created = now
        if let author = options.author { config.author = author }
        config.rootfs.diffIDs.append(layer.record.diffID)
        var h = ImageConfig.History(created: now, createdBy: options.createdBy, comment: options.comment)
        h.author = options.author
        config.history = (config.history ?? []) + [h]
        let bytes = try config.encoded()
        var tags: [String] = []
        if let t = options.tag { tags = [try validTag(t)] }
        let image = PendingImage(configBytes: bytes, id: Digest.of(bytes), tags: tags, diffIDs: config.rootfs.diffIDs)
        var layers: [Digest: PendingLayer] = [layer.record.diffID: layer]
        for d in base.rootfs.diffIDs where layers[d] == nil { layers[d] = PendingLayer(record: try layerRecord(d)) }
        return try commit([image], layers)[0]
    }

    /// Applies one Dockerfile-style instruction to a run config.
    /// - Throws: `.invalidArgument` for an unknown or malformed instruction.
    public static func apply(change: String, to run: inout ImageConfig.RunConfig) throws {
        let trimmed = change.trimmingSpaces()
        let parts = trimmed.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { throw BerthError(.invalidArgument, "config change \"\(change)\" needs an instruction and a value") }
        let value = String(parts[1]).trimmingSpaces()
        func list() throws -> [String] {
            if value.hasPrefix("[") {
                guard let a = try? decodeJSON([String].self, Array(value.utf8), what: "change") else {
                    throw BerthError(.invalidArgument, "config change \"\(change)\": malformed JSON array")
                }
                return a
            }
            return ["/bin/sh", "-c", value]
        }
        switch parts[0].uppercased() {
        case "CMD": run.cmd = try list()
        case "ENTRYPOINT": run.entrypoint = try list()
        case "ENV":
            let kv: String
            if value.contains("=") { kv = value } else {
                let p = value.split(separator: " ", maxSplits: 1)
                guard p.count == 2 else { throw BerthError(.invalidArgument, "config change \"\(change)\": ENV needs KEY=value") }
                kv = "\(p[0])=\(p[1])"
            }
            let key = kv.split(separator: "=", maxSplits: 1)[0]
            var env = (run.env ?? []).filter { !$0.hasPrefix(key + "=") }
            env.append(kv)
            run.env = env
        case "EXPOSE":
            for p in value.split(separator: " ") {
                let spec = p.contains("/") ? String(p) : "\(p)/tcp"
                let num = spec.split(separator: "/")[0]
                guard let n = Int(num), n > 0, n < 65536 else { throw BerthError(.invalidArgument, "config change \"\(change)\": bad port \(p)") }
                run.exposedPorts = (run.exposedPorts ?? [:]).merging([spec: EmptyObject()]) { a, _ in a }
            }
        case "WORKDIR": run.workingDir = value
        case "USER": run.user = value
        case "VOLUME":
            let paths = value.hasPrefix("[") ? try list() : value.split(separator: " ").map(String.init)
            for p in paths { run.volumes = (run.volumes ?? [:]).merging([p: EmptyObject()]) { a, _ in a } }
        case "LABEL":
            let kv = value.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { throw BerthError(.invalidArgument, "config change \"\(change)\": LABEL needs key=value") }
            run.labels = (run.labels ?? [:]).merging([String(kv[0]): String(kv[1])]) { _, b in b }
        case "STOPSIGNAL": run.stopSignal = value
        default:
            throw BerthError(.invalidArgument, "config change \"\(change)\": unsupported instruction \(parts[0])")
        }
    }

    /// The history of an image, newest first, like `docker history`.
    /// - Parameter reference: Tag or ID.
    public func history(_ reference: String) throws -> [HistoryRow] {
        let img = try image(reference)
        var sizes = img.layers.map { (try? layerRecord($0).contentSize) ?? 0 }[...]
        var rows: [HistoryRow] = []
        let entries = img.config.history ?? img.layers.map { _ in ImageConfig.History() }
        for h in entries {
            var size: Int64 = 0
            if h.emptyLayer != true, let s = sizes.first { size = s; sizes = sizes.dropFirst() }
            rows.append(HistoryRow(image: nil, created: h.created, createdBy: h.createdBy ?? "", size: size, comment: h.comment ?? ""))
        }
        rows.reverse()
        if !rows.isEmpty { rows[0].image = img.id }
        return rows
    }

    /// Formats history rows like `docker history` (or `--no-trunc`).
    /// - Parameters:
    ///   - rows: From ``history(_:)``.
    ///   - truncate: Shorten IDs to 12 digits and CREATED BY to 45 characters.
    ///   - now: The reference time for "6 minutes ago" (seconds since the epoch).
    public static func formatHistory(_ rows: [HistoryRow], truncate: Bool = true, now: Double? = nil) -> String {
        let t = now ?? Timestamp.realNow()
        var table = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
        for r in rows {
            let id = r.image.map { truncate ? $0.short : $0.description } ?? "<missing>"
            let created = r.created.flatMap { Timestamp.parse($0) }.map { Timestamp.ago($0, now: t) } ?? ""
            var by = r.createdBy
            if truncate && by.count > 45 { by = String(by.prefix(44)) + "…" }
            table.append([id, created, by, humanSize(r.size), r.comment])
        }
        return formatTable(table)
    }

    /// Formats images like `docker images` (REPOSITORY, TAG, IMAGE ID, CREATED, SIZE).
    public static func formatImages(_ images: [Image], now: Double? = nil) -> String {
        let t = now ?? Timestamp.realNow()
        var table = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
        for img in images {
            let created = img.config.created.flatMap { Timestamp.parse($0) }.map { Timestamp.ago($0, now: t) } ?? ""
            let names = img.tags.isEmpty ? ["<none>:<none>"] : img.tags
            for name in names {
                let colon = name.lastIndex(of: ":")!
                table.append([String(name[..<colon]), String(name[name.index(after: colon)...]), img.id.short, created, humanSize(img.size)])
            }
        }
        return formatTable(table)
    }
}

/// Docker's tabwriter layout: cells padded to the column width + 3, minimum 10; last column bare.
func formatTable(_ rows: [[String]]) -> String {
    guard let columns = rows.first?.count else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    for r in rows { for (i, c) in r.enumerated() where i < columns - 1 { widths[i] = max(widths[i], max(10, c.count + 3)) } }
    var out = ""
    for r in rows {
        for (i, c) in r.enumerated() {
            out += i < columns - 1 ? c + String(repeating: " ", count: widths[i] - c.count) : c
        }
        out += "\n"
    }
    return out
}
