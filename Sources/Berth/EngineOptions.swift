import BerthNamespaces
import BerthSystem

/// How an ``Engine`` is set up: where its state lives and how its bridge network looks. The
/// defaults match `dockerd`'s (a bridge with a pool-chosen subnet, iptables, inter-container
/// communication, the userland proxy for loopback traffic).
public struct EngineOptions: Sendable {
    /// The state root (`--root`): containers, images, volumes, network leases.
    public var root: String
    /// The exec root (`--exec-root`): state that ends with a reboot (`--rm` containers, published
    /// ports); `nil` means ``StateStore/defaultExecRoot(for:)``.
    public var execRoot: String?
    /// The bridge interface (`--bridge`); an existing bridge is adopted.
    public var bridge: String
    /// The bridge address and subnet (`--bip`); `nil` lets IPAM choose a free pool subnet.
    public var bip: IPv4CIDR?
    /// Whether Berth installs firewall rules (`--iptables`); without them published ports rely on
    /// the userland proxy alone.
    public var iptables: Bool
    /// Inter-container communication on the bridge (`--icc`).
    public var icc: Bool
    /// Serve published ports on loopback with the userland proxy (Docker's default); when false,
    /// loopback traffic is DNATed instead (`route_localnet`).
    public var userlandProxy: Bool
    /// The parent cgroup of containers (`berth` gives `berth/<id>`).
    public var cgroupParent: String
    /// The network namespace that plays the host: the bridge, veth host ends, firewall rules and
    /// proxy listeners live there. `nil` means the calling process's own namespace.
    public var hostNamespace: NetworkNamespace?
    /// The `berth` executable that ``Engine/startDetached(_:)`` runs as `berth monitor <id>`;
    /// `nil` means /proc/self/exe.
    public var monitorExecutable: String?

    /// - Parameters:
    ///   - root: The state root.
    ///   - bridge: The bridge name.
    ///   - bip: The bridge address, or `nil` for an automatic subnet.
    ///   - iptables: Whether to install firewall rules.
    ///   - icc: Inter-container communication.
    ///   - userlandProxy: Whether loopback traffic to published ports goes through the proxy.
    ///   - cgroupParent: The parent cgroup.
    ///   - hostNamespace: The namespace playing the host (`nil`: this process's).
    ///   - execRoot: The exec root, or `nil` for the default.
    public init(root: String = StateStore.defaultRoot, bridge: String = "berth0", bip: IPv4CIDR? = nil,
                iptables: Bool = true, icc: Bool = true, userlandProxy: Bool = true, cgroupParent: String = "berth",
                hostNamespace: NetworkNamespace? = nil, execRoot: String? = nil) {
        self.root = root
        self.execRoot = execRoot
        self.bridge = bridge
        self.bip = bip
        self.iptables = iptables
        self.icc = icc
        self.userlandProxy = userlandProxy
        self.cgroupParent = cgroupParent
        self.hostNamespace = hostNamespace
        self.monitorExecutable = nil
    }

    /// The global `berth` flags that reproduce these options (for re-executing `berth monitor`).
    public var commandLineArguments: [String] {
        var args = ["--root", root, "--bridge", bridge]
        if let execRoot { args += ["--exec-root", execRoot] }
        if let bip { args += ["--bip", bip.description] }
        if !iptables { args.append("--iptables=false") }
        if !icc { args.append("--icc=false") }
        if !userlandProxy { args.append("--userland-proxy=false") }
        if cgroupParent != "berth" { args += ["--cgroup-parent", cgroupParent] }
        return args
    }
}

/// Runs work in the namespace that plays the host.
struct HostContext: Sendable {
    let namespace: NetworkNamespace?

    func run<T>(_ body: () throws -> T) throws -> T {
        if let namespace { return try namespace.run(body) }
        return try body()
    }
}
