import BerthSystem
import CBerthLayersShim

#if canImport(Glibc)
import Glibc
#endif

/// What a directory archive produced.
public struct ArchiveResult: Sendable {
    /// sha256 of the uncompressed tar (the layer's diff_id).
    public var diffID: Digest
    /// sha256 of the file written (equal to ``diffID`` when not compressed).
    public var blobDigest: Digest
    /// Bytes of the uncompressed tar.
    public var tarSize: Int64
    /// Bytes of the file written.
    public var blobSize: Int64
    /// Whether the file is gzip-compressed.
    public var compressed: Bool
    /// Entries written (whiteouts included).
    public var entries: Int
}

/// Turns a directory into a layer tar (entries in lexical order, directories before their
/// contents, hard links kept, xattrs as PAX `SCHILY.xattr.*`).
public enum DirectoryArchiver {
    /// Archives `directory` into a new file at `output`.
    /// - Parameters:
    ///   - directory: The tree to archive (its root becomes the archive root).
    ///   - output: The file to create; must not exist.
    ///   - gzip: Compress with gzip.
    ///   - overlayUpper: The tree is an overlayfs upper dir: 0/0 character devices become `.wh.NAME`
    ///     whiteouts and directories marked `trusted.overlay.opaque=y` get a `.wh..wh..opq` entry.
    /// - Returns: The digests and sizes.
    public static func archive(directory: String, to output: String, gzip: Bool = false,
                               overlayUpper: Bool = false) throws -> ArchiveResult {
        let file = try FileSink(creating: output)
        var ok = false
        defer { if !ok { unlink(output) } }
        let tarSink = HashingSink(gzip ? try GzipSink(file) : file)
        let writer = TarWriter(sink: tarSink)
        let walker = Walker(writer: writer, overlayUpper: overlayUpper)
        try walker.walk(directory, relative: "")
        try writer.finish()
        ok = true
        let diffID = tarSink.hasher.finish()
        return ArchiveResult(diffID: diffID, blobDigest: gzip ? file.hasher.finish() : diffID,
                             tarSize: tarSink.count, blobSize: file.count, compressed: gzip, entries: walker.entries)
    }

    private final class Walker {
        let writer: TarWriter
        let overlayUpper: Bool
        var links: [String: String] = [:]
        var entries = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)

        init(writer: TarWriter, overlayUpper: Bool) {
            self.writer = writer
            self.overlayUpper = overlayUpper
        }

        deinit { buffer.deallocate() }

        func walk(_ dir: String, relative: String) throws {
            for name in try listDirectory(dir).sorted() {
                let path = dir + "/" + name
                let rel = relative + name
                var st = stat()
                guard lstat(path, &st) == 0 else { throw BerthError.system("lstat \(path)") }
                let fmt = st.st_mode & S_IFMT
                var e = TarEntry(name: rel, kind: .regular)
                e.mode = UInt32(st.st_mode & 0o7777)
                e.uid = st.st_uid
                e.gid = st.st_gid
                e.mtime = Int64(st.st_mtim.tv_sec)
                if fmt != S_IFLNK { e.xattrs = try readXattrs(path) }
                switch fmt {
                case S_IFDIR:
                    e.kind = .directory
                    e.name = rel + "/"
                    try writer.writeHeader(e)
                    entries += 1
                    if overlayUpper && isOpaque(path) {
                        var w = TarEntry(name: rel + "/.wh..wh..opq", kind: .regular)
                        w.mtime = e.mtime
                        try writer.writeHeader(w)
                        entries += 1
                    }
                    try walk(path, relative: rel + "/")
                case S_IFREG:
                    let key = "\(st.st_dev):\(st.st_ino)"
                    if st.st_nlink > 1, let first = links[key] {
                        e.kind = .hardLink
                        e.linkName = first
                        try writer.writeHeader(e)
                    } else {
                        if st.st_nlink > 1 { links[key] = rel }
                        e.size = Int64(st.st_size)
                        try writer.writeHeader(e)
                        try copyData(path, size: e.size)
                        try writer.endData(size: e.size)
                    }
                    entries += 1
                case S_IFLNK:
                    e.kind = .symbolicLink
                    e.linkName = try readLink(path)
                    try writer.writeHeader(e)
                    entries += 1
                case S_IFCHR, S_IFBLK:
                    let major = berth_major(UInt64(st.st_rdev)), minor = berth_minor(UInt64(st.st_rdev))
                    if overlayUpper && fmt == S_IFCHR && major == 0 && minor == 0 {
                        let slash = rel.lastIndex(of: "/")
                        let parent = slash.map { String(rel[...$0]) } ?? ""
                        var w = TarEntry(name: parent + ".wh." + name, kind: .regular)
                        w.mtime = e.mtime
                        try writer.writeHeader(w)
                    } else {
                        e.kind = fmt == S_IFCHR ? .characterDevice : .blockDevice
                        e.deviceMajor = major
                        e.deviceMinor = minor
                        try writer.writeHeader(e)
                    }
                    entries += 1
                case S_IFIFO:
                    e.kind = .fifo
                    try writer.writeHeader(e)
                    entries += 1
                default:
                    continue  // sockets are not archived
                }
            }
        }

        private func copyData(_ path: String, size: Int64) throws {
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { throw BerthError.system("open \(path)") }
            defer { close(fd) }
            var left = size
            while left > 0 {
                let n = read(fd, buffer.baseAddress, Int(min(Int64(buffer.count), left)))
                if n < 0 { if errno == EINTR { continue }; throw BerthError.system("read \(path)") }
                guard n > 0 else { throw BerthError(.invalidState, "\(path) shrank while being archived") }
                try writer.writeData(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                left -= Int64(n)
            }
        }
    }
}

/// Names in a directory, without `.` and `..`.
func listDirectory(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw BerthError.system("opendir \(path)") }
    defer { closedir(dir) }
    var names: [String] = []
    while let ent = readdir(dir) {
        let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

func readLink(_ path: String) throws -> String {
    var buf = [CChar](repeating: 0, count: 4097)
    let n = readlink(path, &buf, 4096)
    guard n >= 0 else { throw BerthError.system("readlink \(path)") }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Whether a directory carries overlayfs's opaque marker.
func isOpaque(_ path: String) -> Bool {
    var v: [UInt8] = [0, 0]
    let n = lgetxattr(path, "trusted.overlay.opaque", &v, 2)
    return n == 1 && v[0] == UInt8(ascii: "y")
}

/// The extended attributes worth archiving (overlayfs's own are skipped).
func readXattrs(_ path: String) throws -> [(name: String, value: [UInt8])] {
    let size = llistxattr(path, nil, 0)
    if size <= 0 { return [] }
    var names = [CChar](repeating: 0, count: size)
    let got = llistxattr(path, &names, size)
    if got <= 0 { return [] }
    var out: [(name: String, value: [UInt8])] = []
    for raw in names[0..<got].split(separator: 0) {
        let name = String(decoding: raw.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if name.hasPrefix("trusted.overlay.") { continue }
        let vs = lgetxattr(path, name, nil, 0)
        if vs < 0 { continue }
        var value = [UInt8](repeating: 0, count: vs)
        let n = lgetxattr(path, name, &value, vs)
        if n >= 0 { out.append((name, Array(value[0..<n]))) }
    }
    return out
}
