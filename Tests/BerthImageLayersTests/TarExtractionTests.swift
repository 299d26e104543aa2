@testable import BerthImageLayers
import BerthSystem
import CBerthLayersShim
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct TarExtractionTests {
    @Test func extractsFilesLinksAndMetadata() throws {
        let s = try Scratch("ex")
        defer { s.remove() }
        let longName = "deep/" + String(repeating: "n", count: 150) + "/file.txt"
        for gzip in [false, true] {
            let tar = s.path + "/a\(gzip).tar"
            try writeTar(tar, [
                .dir("etc/", mode: 0o750),
                .file("etc/hosts", "127.0.0.1 localhost\n", mode: 0o640),
                .file("bin/tool", "#!/bin/sh\n", mode: 0o4755),
                .symlink("etc/link", to: "/etc/hosts"),
                .hardlink("etc/hosts2", to: "etc/hosts"),
                .file(longName, "long"),
                .symlink("lnk", to: "/" + String(repeating: "t", count: 120)),
            ], gzip: gzip)
            let out = try s.sub("out\(gzip)")
            let r = try TarExtractor.extract(archive: tar, into: out)
            #expect(r.compressed == gzip)
            #expect(r.entries == 7)
            #expect(try FileIO.read(out + "/etc/hosts") == "127.0.0.1 localhost\n")
            #expect(try readLink(out + "/etc/link") == "/etc/hosts")
            #expect(try readLink(out + "/lnk").count == 121)
            #expect(try FileIO.read(out + "/" + longName) == "long")
            var a = stat(), b = stat()
            lstat(out + "/etc/hosts", &a); lstat(out + "/etc/hosts2", &b)
            #expect(a.st_ino == b.st_ino)
            #expect(a.st_mode & 0o7777 == 0o640)
            #expect(a.st_mtim.tv_sec == 1_600_000_000)
            lstat(out + "/bin/tool", &a)
            #expect(a.st_mode & 0o7777 == 0o755, "setuid stripped by default")
            lstat(out + "/etc", &a)
            #expect(a.st_mode & 0o7777 == 0o750)
            #expect(a.st_mtim.tv_sec == 1_500_000_000, "directory mtime set after its contents")
        }
    }

    @Test func whiteoutsInOverlayAndFlattenModes() throws {
        let s = try Scratch("wh")
        defer { s.remove() }
        let lower = s.path + "/lower.tar", upper = s.path + "/upper.tar"
        try writeTar(lower, [.dir("a/"), .file("a/x", "x"), .file("a/y", "y"), .dir("b/"), .file("b/old", "o"), .file("gone", "g")])
        try writeTar(upper, [.dir("b/"), .file("b/.wh..wh..opq", ""), .file("b/new", "n"), .file("a/.wh.x", ""), .file(".wh.gone", "")])

        let ov = try s.sub("overlay")
        _ = try TarExtractor.extract(archive: upper, into: ov)
        #expect(fileType(ov + "/a/x") == S_IFCHR)
        #expect(fileType(ov + "/gone") == S_IFCHR)
        #expect(isOpaque(ov + "/b"))
        #expect(!exists(ov + "/b/.wh..wh..opq"))

        let flat = try s.sub("flat")
        let opts = ExtractionOptions(whiteouts: .flatten)
        _ = try TarExtractor.extract(archive: lower, into: flat, options: opts)
        _ = try TarExtractor.extract(archive: upper, into: flat, options: opts)
        #expect(try treeListing(flat).map { $0.split(separator: " ")[0] } == ["/a", "/a/y", "/b", "/b/new"])
    }

    @Test func hostileEntriesAreRefusedAndStayInside() throws {
        let s = try Scratch("ho")
        defer { s.remove() }
        let cases: [(String, [Item])] = [
            ("dotdot", [.file("../escape-dotdot", "x")]),
            ("dotdot-deep", [.file("a/../../escape-deep", "x")]),
            ("absolute", [.file("/abs/path", "x")]),
            ("symlink-dir", [.symlink("evil", to: "/"), .file("evil/escape-sym", "x")]),
            ("symlink-rel", [.symlink("evil", to: "../../.."), .file("evil/escape-rel", "x")]),
            ("symlink-chain", [.symlink("a", to: "b"), .symlink("b", to: "../c"), .file("a/escape-chain", "x")]),
            ("hardlink-abs", [.hardlink("shadow", to: "/etc/shadow")]),
            ("hardlink-up", [.hardlink("up", to: "../../x")]),
            ("device", [.chardev("dev/sda", major: 8, minor: 0)]),
            ("whiteout-dotdot", [.file("d/.wh...", "")]),
            ("whiteout-dot", [.file(".wh..", "")]),
        ]
        for (name, items) in cases {
            let base = try s.sub(name)
            let target = try Scratch("\(name)").path
            let inner = target + "/root"
            try FileIO.makeDirectories(inner)
            defer { try? FileIO.removeTree(target) }
            let tar = base + "/layer.tar"
            try writeTar(tar, items)
            var caught: BerthError?
            do { _ = try TarExtractor.extract(archive: tar, into: inner) } catch let e as BerthError { caught = e }
            #expect(caught != nil, "\(name) must fail")
            if let caught {
                #expect(caught.code == .denied, "\(name): \(caught)")
                #expect(caught.message.contains("entry"), "\(name): \(caught)")
            }
            // Nothing was written beside the target root or above it.
            #expect(try listDirectory(target) == ["root"], "\(name)")
            #expect(!exists("/escape-sym") && !exists("/escape-rel") && !exists("/tmp/escape-dotdot"))
            #expect(!exists(base + "/escape-dotdot"))
        }
    }

    @Test func devicesAllowedWhenAsked() throws {
        let s = try Scratch("dv")
        defer { s.remove() }
        let tar = s.path + "/d.tar"
        try writeTar(tar, [.chardev("dev/null", major: 1, minor: 3)])
        let out = try s.sub("out")
        var opts = ExtractionOptions()
        opts.allowDeviceNodes = true
        _ = try TarExtractor.extract(archive: tar, into: out, options: opts)
        #expect(fileType(out + "/dev/null") == S_IFCHR)
    }

    @Test func truncatedAndCorruptArchivesFailClearly() throws {
        let s = try Scratch("tr")
        defer { s.remove() }
        let big = String(repeating: "0123456789", count: 10_000)
        for gzip in [false, true] {
            let tar = s.path + "/full\(gzip).tar"
            try writeTar(tar, [.file("a", big), .file("b", big)], gzip: gzip)
            let bytes = try FileIO.readBytes(tar)
            let cut = s.path + "/cut\(gzip).tar"
            try FileIO.writeAtomically(cut, Array(bytes[0..<(bytes.count / 2)]))
            let out = try s.sub("out\(gzip)")
            #expect {
                _ = try TarExtractor.extract(archive: cut, into: out)
            } throws: { e in
                guard let e = e as? BerthError else { return false }
                return e.code == .corrupt && e.message.contains("truncated")
            }
            var corrupt = bytes
            corrupt[gzip ? 40 : 130] ^= 0x55
            let bad = s.path + "/bad\(gzip).tar"
            try FileIO.writeAtomically(bad, corrupt)
            let out2 = try s.sub("out2\(gzip)")
            #expect {
                _ = try TarExtractor.extract(archive: bad, into: out2)
            } throws: { e in
                guard let e = e as? BerthError else { return false }
                return e.code == .corrupt
            }
        }
    }

    @Test func hugeHeadersAreBounded() throws {
        let s = try Scratch("hg")
        defer { s.remove() }
        // A GNU long-name header claiming 1 GiB.
        var h = [UInt8](repeating: 0, count: 512)
        for (i, b) in "././@LongLink".utf8.enumerated() { h[i] = b }
        for (i, b) in "0000644\0".utf8.enumerated() { h[100 + i] = b }
        for (i, b) in "10000000000\0".utf8.enumerated() { h[124 + i] = b }
        h[156] = UInt8(ascii: "L")
        for (i, b) in "ustar\u{0}00".utf8.enumerated() { h[257 + i] = b }
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int($1) }
        var digits = String(sum, radix: 8)
        digits = String(repeating: "0", count: 6 - digits.count) + digits + "\0"
        for (i, b) in digits.utf8.enumerated() { h[148 + i] = b }
        let tar = s.path + "/huge.tar"
        try FileIO.writeAtomically(tar, h + [UInt8](repeating: 0, count: 1024))
        let out = try s.sub("out")
        #expect {
            _ = try TarExtractor.extract(archive: tar, into: out)
        } throws: { e in
            guard let e = e as? BerthError else { return false }
            return e.code == .corrupt && e.message.contains("limit")
        }
    }
}

/// Archives written by GNU tar in its own format (`L`/`K` long names and links) and in PAX format
/// (path, linkpath, mtime with nanoseconds, SCHILY.xattr).
@Suite struct GNUTarFormatsTests {
    @Test func gnuAndPaxArchivesFromGNUTar() throws {
        let s = try Scratch("gnu")
        defer { s.remove() }
        let src = try s.sub("src")
        let longDir = String(repeating: "d", count: 120)
        try FileIO.makeDirectories(src + "/" + longDir)
        try FileIO.writeAtomically(src + "/" + longDir + "/" + String(repeating: "f", count: 110), "long")
        symlink("/" + String(repeating: "t", count: 150), src + "/longlink")
        try FileIO.writeAtomically(src + "/attr", "x")
        #expect(setxattr(src + "/attr", "user.berth", "v1", 2, 0) == 0)
        var ts = [timespec(tv_sec: 1_700_000_000, tv_nsec: 123_456_789), timespec(tv_sec: 1_700_000_000, tv_nsec: 123_456_789)]
        utimensat(AT_FDCWD, src + "/attr", &ts, 0)
        for format in ["gnu", "pax"] {
            let tar = s.path + "/\(format).tar"
            var args = ["--format=\(format)", "-cf", tar, "-C", src, "."]
            if format == "pax" { args.insert("--xattrs", at: 0) }
            try Command.check("tar", args)
            let out = try s.sub("out-\(format)")
            _ = try TarExtractor.extract(archive: tar, into: out)
            #expect(try FileIO.read(out + "/" + longDir + "/" + String(repeating: "f", count: 110)) == "long")
            #expect(try readLink(out + "/longlink").count == 151)
            if format == "pax" {
                var v = [UInt8](repeating: 0, count: 8)
                let n = getxattr(out + "/attr", "user.berth", &v, 8)
                #expect(n == 2 && v[0] == UInt8(ascii: "v"))
                var st = stat()
                stat(out + "/attr", &st)
                #expect(st.st_mtim.tv_sec == 1_700_000_000 && st.st_mtim.tv_nsec == 123_456_789)
            }
        }
    }
}
