@testable import BerthImageLayers
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory removed by `remove()` (call it in a defer).
struct Scratch {
    let path: String
    init(_ tag: String = "t") throws {
        path = try FileIO.makeTemporaryDirectory(prefix: "berth-layers-\(tag)-\(getpid())-")
    }
    func remove() { try? FileIO.removeTree(path) }
    func sub(_ name: String) throws -> String {
        let p = path + "/" + name
        try FileIO.makeDirectories(p)
        return p
    }
}

/// A tar entry to write in a test archive.
enum Item {
    case file(String, String, mode: UInt32 = 0o644)
    case dir(String, mode: UInt32 = 0o755)
    case symlink(String, to: String)
    case hardlink(String, to: String)
    case chardev(String, major: UInt32, minor: UInt32)
    case raw(TarEntry, [UInt8])
}

/// Writes `items` as a tar (gzip when asked) at `path`.
func writeTar(_ path: String, _ items: [Item], gzip: Bool = false) throws {
    let file = try FileSink(creating: path)
    let writer = TarWriter(sink: gzip ? try GzipSink(file) : file)
    for item in items {
        switch item {
        case .file(let name, let text, let mode):
            var e = TarEntry(name: name, kind: .regular)
            e.mode = mode
            e.mtime = 1_600_000_000
            try writer.writeFile(e, data: Array(text.utf8))
        case .dir(let name, let mode):
            var e = TarEntry(name: name, kind: .directory)
            e.mode = mode
            e.mtime = 1_500_000_000
            try writer.writeHeader(e)
        case .symlink(let name, let target):
            var e = TarEntry(name: name, kind: .symbolicLink)
            e.linkName = target
            e.mode = 0o777
            try writer.writeHeader(e)
        case .hardlink(let name, let target):
            var e = TarEntry(name: name, kind: .hardLink)
            e.linkName = target
            try writer.writeHeader(e)
        case .chardev(let name, let major, let minor):
            var e = TarEntry(name: name, kind: .characterDevice)
            e.deviceMajor = major
            e.deviceMinor = minor
            e.mode = 0o666
            try writer.writeHeader(e)
        case .raw(let e, let data):
            if e.kind == .regular { try writer.writeFile(e, data: data) } else { try writer.writeHeader(e) }
        }
    }
    try writer.finish()
}

func exists(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0
}

func fileType(_ path: String) -> mode_t? {
    var st = stat()
    guard lstat(path, &st) == 0 else { return nil }
    return st.st_mode & S_IFMT
}

/// Every path below `dir` (relative, sorted), for comparing trees.
func treeListing(_ dir: String, _ rel: String = "") throws -> [String] {
    var out: [String] = []
    for name in try listDirectory(dir + rel).sorted() {
        let p = rel + "/" + name
        var st = stat()
        lstat(dir + p, &st)
        let kind = st.st_mode & S_IFMT
        var line = "\(p) \(String(st.st_mode & 0o7777, radix: 8)) \(st.st_uid):\(st.st_gid)"
        if kind == S_IFREG { line += " f\(st.st_size) \(Digest.of(try FileIO.readBytes(dir + p)).short)" }
        if kind == S_IFLNK { line += " -> \(try readLink(dir + p))" }
        if kind == S_IFDIR { line += " d" }
        out.append(line)
        if kind == S_IFDIR { out += try treeListing(dir, p) }
    }
    return out
}
