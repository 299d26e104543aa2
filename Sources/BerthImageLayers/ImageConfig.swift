import BerthSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An empty JSON object, the value type of `ExposedPorts` and `Volumes` in an image config.
public struct EmptyObject: Codable, Sendable, Equatable {
    public init() {}
}

/// The OCI / Docker image configuration document (the blob whose digest is the image ID).
public struct ImageConfig: Codable, Sendable {
    /// The run-time defaults (`config` in the document).
    public struct RunConfig: Codable, Sendable, Equatable {
        /// `User`: the user (and group) processes run as.
        public var user: String?
        /// `ExposedPorts`: `"80/tcp"` keys.
        public var exposedPorts: [String: EmptyObject]?
        /// `Env`: `KEY=value` entries.
        public var env: [String]?
        /// `Entrypoint`.
        public var entrypoint: [String]?
        /// `Cmd`.
        public var cmd: [String]?
        /// `Volumes`: container paths as keys.
        public var volumes: [String: EmptyObject]?
        /// `WorkingDir`.
        public var workingDir: String?
        /// `Labels`.
        public var labels: [String: String]?
        /// `StopSignal`.
        public var stopSignal: String?

        enum CodingKeys: String, CodingKey {
            case user = "User", exposedPorts = "ExposedPorts", env = "Env", entrypoint = "Entrypoint", cmd = "Cmd"
            case volumes = "Volumes", workingDir = "WorkingDir", labels = "Labels", stopSignal = "StopSignal"
        }

        public init() {}
    }

    /// The ordered layer digests of the uncompressed layer tars.
    public struct RootFS: Codable, Sendable {
        public var type: String = "layers"
        public var diffIDs: [Digest]
        enum CodingKeys: String, CodingKey { case type, diffIDs = "diff_ids" }
        public init(diffIDs: [Digest]) { self.diffIDs = diffIDs }
    }

    /// One step in the image's history.
    public struct History: Codable, Sendable {
        public var created: String?
        public var createdBy: String?
        public var author: String?
        public var comment: String?
        /// True for steps that changed only the config (no layer).
        public var emptyLayer: Bool?
        enum CodingKeys: String, CodingKey {
            case created, createdBy = "created_by", author, comment, emptyLayer = "empty_layer"
        }
        public init(created: String? = nil, createdBy: String? = nil, comment: String? = nil, emptyLayer: Bool? = nil) {
            self.created = created
            self.createdBy = createdBy
            self.comment = comment
            self.emptyLayer = emptyLayer
        }
    }

    /// GOARCH-style architecture (`amd64`).
    public var architecture: String?
    /// Operating system (`linux`).
    public var os: String?
    /// RFC 3339 creation time.
    public var created: String?
    /// Author of the image.
    public var author: String?
    /// Run-time defaults.
    public var config: RunConfig?
    /// The layer diff_ids, bottom first.
    public var rootfs: RootFS
    /// One entry per build step, oldest first.
    public var history: [History]?

    /// - Parameters:
    ///   - diffIDs: The layers, bottom first.
    ///   - config: Run-time defaults.
    public init(diffIDs: [Digest], config: RunConfig? = RunConfig()) {
        architecture = currentArchitecture()
        os = "linux"
        self.config = config
        rootfs = RootFS(diffIDs: diffIDs)
    }

    /// The canonical bytes this library writes (sorted keys, no spaces).
    public func encoded() throws -> [UInt8] { Array(try canonicalJSON(self)) }
}

/// An OCI content descriptor.
struct Descriptor: Codable, Sendable {
    var mediaType: String
    var digest: Digest
    var size: Int64
    var annotations: [String: String]?
    var platform: Platform?

    struct Platform: Codable, Sendable {
        var architecture: String
        var os: String
    }
}

/// An OCI image manifest (also accepted: Docker's schema 2 manifest, same shape).
struct ImageManifest: Codable, Sendable {
    var schemaVersion: Int
    var mediaType: String?
    var config: Descriptor
    var layers: [Descriptor]
}

/// An OCI image index (index.json of a layout, or a multi-platform image).
struct ImageIndex: Codable, Sendable {
    var schemaVersion: Int
    var mediaType: String?
    var manifests: [Descriptor]
}

/// One image in a `docker save` manifest.json.
struct DockerSaveManifestEntry: Codable, Sendable {
    var config: String
    var repoTags: [String]?
    var layers: [String]
    enum CodingKeys: String, CodingKey { case config = "Config", repoTags = "RepoTags", layers = "Layers" }
}

enum MediaType {
    static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    static let ociIndex = "application/vnd.oci.image.index.v1+json"
    static let ociConfig = "application/vnd.oci.image.config.v1+json"
    static let ociLayer = "application/vnd.oci.image.layer.v1.tar"
    static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// JSON with sorted keys and no escaped slashes.
func canonicalJSON<T: Encodable>(_ value: T) throws -> Data {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return try e.encode(value)
}

func decodeJSON<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String) throws -> T {
    do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch {
        throw BerthError(.corrupt, "\(what) is not valid JSON for \(T.self): \(error)")
    }
}

/// GOARCH-style name of the running architecture.
func currentArchitecture() -> String {
    #if arch(x86_64)
    return "amd64"
    #elseif arch(arm64)
    return "arm64"
    #else
    return "unknown"
    #endif
}
