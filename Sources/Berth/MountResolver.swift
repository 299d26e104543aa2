import BerthSystem

/// Turns a container's `--volumes-from`, `-v` and image `VOLUME` settings into its mount list,
/// taking volume references on its behalf.
///
/// Docker's precedence: mounts inherited with `--volumes-from` first, then `-v` (which replaces an
/// inherited mount at the same destination), then an anonymous volume for each image `VOLUME`
/// path not already covered. Two `-v` with one destination are an error.
public struct MountResolver: Sendable {
    /// The container store (to read `--volumes-from` sources).
    public let containers: StateStore
    /// The volume store.
    public let volumes: VolumeStore

    /// - Parameters:
    ///   - containers: The container store.
    ///   - volumes: The volume store on the same root.
    public init(containers: StateStore, volumes: VolumeStore) {
        self.containers = containers
        self.volumes = volumes
    }

    /// Resolves the mounts of `config` for container `id`. On failure, references taken so far are
    /// released and anonymous volumes made so far are deleted.
    /// - Parameters:
    ///   - config: The container's configuration.
    ///   - id: The container that will mount them.
    /// - Returns: Mounts sorted by destination depth then path, so parents are mounted first.
    public func resolve(_ config: ContainerConfig, for id: ContainerID) throws -> [MountPoint] {
        // Parse everything before touching the volume store: bad input leaves no trace.
        let specs = try config.volumes.map(VolumeSpec.init(parsing:))
        let froms = try config.volumesFrom.map(VolumesFromSpec.init(parsing:))
        var seen = Set<String>()
        for spec in specs where !seen.insert(spec.destination).inserted {
            throw BerthError(.invalidArgument, "Duplicate mount point: \(spec.destination)")
        }
        for path in config.imageVolumes where !path.hasPrefix("/") {
            throw BerthError(.invalidArgument, "invalid image volume \"\(path)\": must be an absolute path")
        }
        var sources: [(VolumesFromSpec, ContainerRecord)] = []
        for from in froms {
            let record = try containers.find(from.container)
            guard record.id != id else { throw BerthError(.invalidArgument, "a container cannot take volumes from itself") }
            sources.append((from, record))
        }

        var byDestination: [String: MountPoint] = [:]
        do {
            for (from, record) in sources {
                for var mount in record.state.mounts {
                    if let rw = from.rw { mount.rw = rw; mount.mode = rw ? "rw" : "ro" }
                    if mount.type == .volume { _ = try volumes.acquire(mount.name, for: id) }
                    byDestination[mount.destination] = mount
                }
            }
            for spec in specs {
                let mount: MountPoint
                switch spec.source {
                case .hostPath(let path):
                    mount = MountPoint(type: .bind, source: path, destination: spec.destination, rw: spec.rw, mode: spec.mode,
                                       propagation: spec.propagation ?? "rprivate")
                case .named(let name):
                    let v = try volumes.acquire(name, for: id)
                    mount = MountPoint(type: .volume, name: v.name, source: v.mountpoint, destination: spec.destination,
                                       rw: spec.rw, mode: spec.mode)
                case .anonymous:
                    let v = try volumes.acquire(nil, for: id)
                    mount = MountPoint(type: .volume, name: v.name, source: v.mountpoint, destination: spec.destination,
                                       rw: spec.rw, mode: spec.mode, anonymous: true)
                }
                byDestination[spec.destination] = mount
            }
            for path in config.imageVolumes.map(VolumeSpec.clean) where byDestination[path] == nil {
                let v = try volumes.acquire(nil, for: id)
                byDestination[path] = MountPoint(type: .volume, name: v.name, source: v.mountpoint, destination: path, anonymous: true)
            }
        } catch {
            _ = try? volumes.release(container: id, removeAnonymous: true)
            throw error
        }
        return byDestination.values.sorted {
            let l = $0.destination.split(separator: "/").count, r = $1.destination.split(separator: "/").count
            return l != r ? l < r : $0.destination < $1.destination
        }
    }
}
