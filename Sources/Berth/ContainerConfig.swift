import BerthSystem

/// What `berth run` / `create` was asked for: everything needed to (re)start the container.
///
/// Port specs stay strings (`-p 8080:80/tcp`): BerthPortMapper parses them. Stored as
/// `containers/<id>/config.json`.
public struct ContainerConfig: Codable, Sendable, Equatable {
    /// The image reference as given (`busybox:latest`).
    public var image: String
    /// The command (`CMD` or the arguments after the image).
    public var cmd: [String]
    /// The entrypoint, if any.
    public var entrypoint: [String]
    /// `KEY=value` strings: image env, then `-e`.
    public var env: [String]
    /// The working directory (`-w`); empty means `/`.
    public var workingDir: String
    /// The user (`-u`), `name`, `uid` or `uid:gid`; empty means root.
    public var user: String
    /// The hostname; empty means the short id.
    public var hostname: String
    /// The domain name, if any.
    public var domainname: String
    /// Exposed ports as `PORT/PROTO` strings (image `EXPOSE` and `--expose`).
    public var exposedPorts: [String]
    /// `-p` values, unparsed.
    public var portSpecs: [String]
    /// Whether `-P` publishes every exposed port on a random host port.
    public var publishAll: Bool
    /// `--link` values (`name[:alias]`).
    public var links: [String]
    /// `-v` values.
    public var volumes: [String]
    /// `--volumes-from` values (`container[:ro|rw]`).
    public var volumesFrom: [String]
    /// `VOLUME` paths from the image config.
    public var imageVolumes: [String]
    /// `--network`: `bridge` (default), `host`, `none` or `container:<name|id>`.
    public var networkMode: String
    /// `--ip`, a requested address on the bridge.
    public var ipAddress: String?
    /// `--memory` in bytes; `nil` means unlimited.
    public var memoryBytes: Int64?
    /// `--cpus` as a fraction of CPUs; `nil` means unlimited.
    public var cpus: Double?
    /// `--pids-limit`; `nil` means unlimited.
    public var pidsLimit: Int64?
    /// `--dns` servers.
    public var dns: [String]
    /// `--dns-search` domains.
    public var dnsSearch: [String]
    /// `--dns-option` values.
    public var dnsOptions: [String]
    /// `--add-host` values (`name:address`).
    public var extraHosts: [String]
    /// `--rm`.
    public var autoRemove: Bool
    /// `-t`.
    public var tty: Bool
    /// `-i`.
    public var openStdin: Bool
    /// `--read-only`.
    public var readOnlyRootfs: Bool
    /// `--privileged`.
    public var privileged: Bool
    /// `--cap-add`.
    public var capAdd: [String]
    /// `--cap-drop`.
    public var capDrop: [String]
    /// `--security-opt` values (for example `seccomp=unconfined`).
    public var securityOpt: [String]
    /// `--label` values as a dictionary.
    public var labels: [String: String]

    /// Creates a configuration; every field but the image has Docker's default.
    /// - Parameters:
    ///   - image: The image reference.
    ///   - cmd: The command.
    public init(image: String, cmd: [String] = []) {
        self.image = image
        self.cmd = cmd
        entrypoint = []
        env = []
        workingDir = ""
        user = ""
        hostname = ""
        domainname = ""
        exposedPorts = []
        portSpecs = []
        publishAll = false
        links = []
        volumes = []
        volumesFrom = []
        imageVolumes = []
        networkMode = "bridge"
        ipAddress = nil
        memoryBytes = nil
        cpus = nil
        pidsLimit = nil
        dns = []
        dnsSearch = []
        dnsOptions = []
        extraHosts = []
        autoRemove = false
        tty = false
        openStdin = false
        readOnlyRootfs = false
        privileged = false
        capAdd = []
        capDrop = []
        securityOpt = []
        labels = [:]
    }

    /// The argv the container runs: entrypoint followed by the command.
    public var argv: [String] { entrypoint + cmd }

    // Decoding tolerates missing keys so that documents written by an older Berth still load.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(image: try c.decode(String.self, forKey: .image))
        func get<T: Decodable>(_ k: CodingKeys, _ fallback: T) throws -> T { try c.decodeIfPresent(T.self, forKey: k) ?? fallback }
        cmd = try get(.cmd, cmd); entrypoint = try get(.entrypoint, entrypoint); env = try get(.env, env)
        workingDir = try get(.workingDir, workingDir); user = try get(.user, user)
        hostname = try get(.hostname, hostname); domainname = try get(.domainname, domainname)
        exposedPorts = try get(.exposedPorts, exposedPorts); portSpecs = try get(.portSpecs, portSpecs)
        publishAll = try get(.publishAll, publishAll); links = try get(.links, links)
        volumes = try get(.volumes, volumes); volumesFrom = try get(.volumesFrom, volumesFrom)
        imageVolumes = try get(.imageVolumes, imageVolumes); networkMode = try get(.networkMode, networkMode)
        ipAddress = try c.decodeIfPresent(String.self, forKey: .ipAddress)
        memoryBytes = try c.decodeIfPresent(Int64.self, forKey: .memoryBytes)
        cpus = try c.decodeIfPresent(Double.self, forKey: .cpus)
        pidsLimit = try c.decodeIfPresent(Int64.self, forKey: .pidsLimit)
        dns = try get(.dns, dns); dnsSearch = try get(.dnsSearch, dnsSearch); dnsOptions = try get(.dnsOptions, dnsOptions)
        extraHosts = try get(.extraHosts, extraHosts); autoRemove = try get(.autoRemove, autoRemove)
        tty = try get(.tty, tty); openStdin = try get(.openStdin, openStdin)
        readOnlyRootfs = try get(.readOnlyRootfs, readOnlyRootfs); privileged = try get(.privileged, privileged)
        capAdd = try get(.capAdd, capAdd); capDrop = try get(.capDrop, capDrop)
        securityOpt = try get(.securityOpt, securityOpt); labels = try get(.labels, labels)
    }
}
