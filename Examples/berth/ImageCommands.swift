import ArgumentParser
import Berth
import BerthImageLayers
import BerthSystem

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diff", abstract: "Inspect changes to files on a container's filesystem.")
    @OptionGroup var global: GlobalOptions
    @Argument var container: String

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            out(try engine.diff(container).map { $0.description + "\n" }.joined())
        }
    }
}

struct CommitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "commit", abstract: "Create a new image from a container's changes.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("m"), .customLong("message")], help: "Commit message.")
    var message: String?
    @Option(name: [.customShort("c"), .customLong("change")], help: "Apply Dockerfile instruction to the created image.")
    var change: [String] = []
    @Argument var container: String
    @Argument var repository: String?

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            let image = try engine.commit(container, repository: repository, message: message, changes: change)
            out(image.id.description + "\n")
        }
    }
}

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Show the history of an image.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .customLong("no-trunc"), help: "Don't truncate output.")
    var noTrunc = false
    @Argument var image: String

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            out(LayerStore.formatHistory(try engine.layers.history(image), truncate: !noTrunc))
        }
    }
}

struct ImagesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List images.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "Only show image IDs.")
    var quiet = false

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            let images = try engine.layers.images()
            if quiet { out(images.map { $0.id.short + "\n" }.joined()) } else { out(LayerStore.formatImages(images)) }
        }
    }
}

struct RemoveImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove one or more images.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("f"), .customLong("force")], help: "Force removal of the image.")
    var force = false
    @Argument var images: [String]

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            for i in images { out(try engine.layers.removeImage(i, force: force).map { $0 + "\n" }.joined()) }
        }
    }
}

struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load", abstract: "Load an image from a tar archive (docker save or OCI).")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("i"), .customLong("input")], help: "Read from tar archive file.")
    var input: String

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            for image in try engine.layers.importArchive(input) {
                if image.tags.isEmpty { out("Loaded image ID: \(image.id)\n") }
                for t in image.tags { out("Loaded image: \(t)\n") }
            }
        }
    }
}

struct SaveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "save", abstract: "Save one or more images to a tar archive.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("o"), .customLong("output")], help: "Write to a file.")
    var output: String
    @Argument var images: [String]

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            try engine.layers.save(images, to: output)
        }
    }
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Import a rootfs tarball to create an image.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("c"), .customLong("change")], help: "Apply Dockerfile instruction to the created image.")
    var change: [String] = []
    @Argument var file: String
    @Argument var repository: String?

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            var config = ImageConfig.RunConfig()
            for c in change { try LayerStore.apply(change: c, to: &config) }
            let image = try engine.layers.importRootfs(file, tag: repository, config: config)
            out(image.id.description + "\n")
        }
    }
}

struct VolumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "volume", abstract: "Manage volumes.",
                                                    subcommands: [VolumeListCommand.self, VolumeCreateCommand.self, VolumeRemoveCommand.self])
}

struct VolumeListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List volumes.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "Only display volume names.")
    var quiet = false

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            if quiet { out(try engine.volumes.list().map { $0.name + "\n" }.joined()) } else { out(try engine.volumes.listing()) }
        }
    }
}

struct VolumeCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a volume.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String?

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            out(try engine.volumes.create(name: name).name + "\n")
        }
    }
}

struct VolumeRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove one or more volumes.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("f"), .customLong("force")], help: "Force the removal.")
    var force = false
    @Argument var names: [String]

    func run() throws {
        try guarded(status: 1) {
            let engine = try global.engine()
            for n in names {
                try engine.volumes.remove(n, force: force)
                out(n + "\n")
            }
        }
    }
}
