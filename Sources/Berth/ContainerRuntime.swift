import BerthNetwork
import BerthPortMapper
import BerthSystem

/// The kernel objects a started container owns, written ahead of each step of a start
/// (`containers/<id>/runtime.json`) so that whoever finds the owner dead — the next `berth`
/// command — can release exactly what was made: the cgroup, the veth, the address lease, the
/// published ports and their rules, the rootfs mount. Releasing is idempotent: objects that were
/// never made (or are already gone) are skipped.
public struct ContainerRuntime: Codable, Sendable, Equatable {
    /// The process that owns the container process (the monitor, or the foreground `berth run`).
    public var owner: ProcessIdentity
    /// The container's init process, once cloned.
    public var process: ProcessIdentity?
    /// The cgroup (`berth/<id>`).
    public var cgroup: String
    /// The host end of the veth pair (chosen before it is made), for bridge networking.
    public var hostInterface: String?
    /// The endpoint once attached (address lease, gateway, MAC).
    public var endpoint: Endpoint?
    /// Published ports, recorded once their host ports are allocated and before rules are added.
    public var mappings: [PortMapping]
    /// Whether the owner serves the mappings with its userland proxy.
    public var proxied: Bool
    /// The container rootfs (its name in the layer store) mounted for this run.
    public var rootfs: String

    init(owner: ProcessIdentity, cgroup: String, hostInterface: String?, rootfs: String, proxied: Bool) {
        self.owner = owner
        self.cgroup = cgroup
        self.hostInterface = hostInterface
        self.mappings = []
        self.proxied = proxied
        self.rootfs = rootfs
    }
}
