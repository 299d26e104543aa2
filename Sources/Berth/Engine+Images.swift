import BerthImageLayers
import BerthSystem

extension Engine {
    /// The files Berth bind-mounts over the rootfs; their mount points are not changes of the
    /// container (Docker leaves them out of `diff` too).
    static let generatedFiles: Set<String> = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]

    /// What changed in a container's filesystem compared to its image (`docker diff`), without the
    /// mount points of the generated network files.
    /// - Parameter reference: Id, name or id prefix.
    public func diff(_ reference: String) throws -> [Change] {
        let id = try store.resolve(reference)
        var changes = try layers.diff(name: id.full).filter { !Self.generatedFiles.contains($0.path) }
        // /etc shows as changed only because of those mount points when nothing else changed in it.
        if !changes.contains(where: { $0.path.hasPrefix("/etc/") }) {
            changes.removeAll { $0.path == "/etc" && $0.kind == .changed }
        }
        return changes
    }

    /// Creates an image from a container's changes (`docker commit`).
    /// - Parameters:
    ///   - reference: Id, name or id prefix.
    ///   - repository: `name[:tag]` for the new image.
    ///   - message: The commit message.
    ///   - changes: Dockerfile instructions applied to the image config (`CMD ["sh"]`, …).
    public func commit(_ reference: String, repository: String?, message: String? = nil, changes: [String] = []) throws -> Image {
        let record = try store.find(reference)
        let options = CommitOptions(createdBy: record.config.argv.joined(separator: " "), comment: message, tag: repository,
                                    changes: changes)
        return try layers.commit(name: record.id.full, options: options)
    }
}
