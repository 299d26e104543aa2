import ArgumentParser
import BerthImageLayers
import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// `berth-layers`: the image layer store from the command line.
@main
struct BerthLayers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-layers",
        abstract: "Import, list, mount, diff, commit and save container images (BerthImageLayers).",
        subcommands: [Import.self, List.self, History.self, Mount.self, Unmount.self, Diff.self,
                      Commit.self, Save.self, Remove.self])
}

struct StoreOptions: ParsableArguments {
    @Option(help: "State root of the layer store.")
    var root = "/var/lib/berth/image"

    @Flag(help: "Accept layers that hold device nodes.")
    var allowDevices = false

    func open() throws -> LayerStore { try LayerStore(root: root, allowDeviceNodes: allowDevices) }
}

/// Draws a progress bar on stderr when it is a terminal.
final class ProgressBar: @unchecked Sendable {
    private let tty = isatty(2) == 1
    private var lastPercent = -1

    func update(_ p: Progress) {
        guard tty, p.bytesTotal > 0 else { return }
        let percent = Int(p.bytesDone * 100 / p.bytesTotal)
        if percent == lastPercent { return }
        lastPercent = percent
        let width = 30
        let filled = percent * width / 100
        let label = p.layerIndex.map { "layer \($0 + 1)/\(p.layerCount)" } ?? "reading"
        let line = "\r[\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] \(percent)% \(label) "
        writeStderr(line)
    }

    func done() { if tty && lastPercent >= 0 { writeStderr("\n") } }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Import a docker-save tarball, an OCI layout or a rootfs tarball.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The tarball or OCI layout directory.") var path: String
    @Option(help: "auto, docker-save, oci or rootfs.") var format = "auto"
    @Option(help: "Name to give the (first) imported image.") var tag: String?

    func run() throws {
        guard let f = ArchiveFormat(rawValue: format) else { throw ValidationError("unknown format \(format)") }
        let bar = ProgressBar()
        let images = try store.open().importArchive(path, format: f, tag: tag) { bar.update($0) }
        bar.done()
        for img in images { print("Loaded image: \(img.tags.first ?? img.id.description)") }
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List images like `docker images`.")
    @OptionGroup var store: StoreOptions
    func run() throws { print(LayerStore.formatImages(try store.open().images()), terminator: "") }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show an image's history like `docker history`.")
    @OptionGroup var store: StoreOptions
    @Argument var image: String
    @Flag(help: "Do not truncate IDs and commands.") var noTrunc = false
    func run() throws {
        print(LayerStore.formatHistory(try store.open().history(image), truncate: !noTrunc), terminator: "")
    }
}

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create (if needed) and mount a container rootfs; prints its path.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "Image to create the rootfs from.") var image: String
    @Argument(help: "Name of the container rootfs.") var name: String
    func run() throws {
        let s = try store.open()
        let existing = try? s.containerRootfs(name: name)
        let fs = try existing ?? s.createContainerRootfs(name: name, image: image)
        try fs.mount()
        print(fs.mergedDir)
    }
}

struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unmount a container rootfs (and remove it with --remove).")
    @OptionGroup var store: StoreOptions
    @Argument var name: String
    @Flag(help: "Delete the rootfs and its changes.") var remove = false
    func run() throws {
        let s = try store.open()
        try s.containerRootfs(name: name).unmount()
        if remove { try s.removeContainerRootfs(name: name) }
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show changes of a container rootfs like `docker diff`.")
    @OptionGroup var store: StoreOptions
    @Argument var name: String
    func run() throws { for c in try store.open().diff(name: name) { print(c) } }
}

struct Commit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Commit a container rootfs' changes as a new image.")
    @OptionGroup var store: StoreOptions
    @Argument var name: String
    @Argument(help: "repository[:tag] of the new image.") var tag: String?
    @Option(name: .shortAndLong, help: "Commit message.") var message: String?
    @Option(help: "History 'created by' text.") var createdBy = ""
    @Option(name: .shortAndLong, help: "Dockerfile instruction (CMD, ENV, EXPOSE, WORKDIR, VOLUME, USER, LABEL).") var change: [String] = []
    func run() throws {
        let img = try store.open().commit(name: name, options: CommitOptions(createdBy: createdBy, comment: message, tag: tag, changes: change))
        print(img.id)
    }
}

struct Save: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Save images to a docker-save tarball or an OCI layout.")
    @OptionGroup var store: StoreOptions
    @Argument var images: [String]
    @Option(name: .shortAndLong, help: "Output tarball or directory.") var output: String
    @Option(help: "docker-save or oci.") var format = "docker-save"
    func run() throws {
        guard let f = ArchiveFormat(rawValue: format), f == .dockerSave || f == .ociLayout else {
            throw ValidationError("format must be docker-save or oci")
        }
        try store.open().save(images, to: output, format: f)
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove an image (or a tag) like `docker rmi`.")
    @OptionGroup var store: StoreOptions
    @Argument var image: String
    @Flag(name: .shortAndLong) var force = false
    func run() throws { for line in try store.open().removeImage(image, force: force) { print(line) } }
}

/// Writes text to fd 2 with one write(2).
func writeStderr(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
