import BerthSystem

/// What ``BridgeNetwork/attach(_:address:interfaceName:hostInterfaceName:)`` made for one container;
/// pass it back to ``BridgeNetwork/detach(_:)``. Codable so the engine can persist it.
public struct Endpoint: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The bridge the host end is attached to.
    public var bridge: String
    /// The host end of the veth pair (`veth` + 7 hex digits).
    public var hostInterface: String
    /// The interface name inside the container (`eth0`).
    public var containerInterface: String
    /// The container's address with the subnet's prefix length (`172.17.0.2/16`).
    public var address: IPv4CIDR
    /// The default gateway (the bridge's address).
    public var gateway: IPv4Address
    /// The container interface's MAC address (`02:42` + the IPv4 address, like Docker).
    public var macAddress: MACAddress

    public var description: String {
        "\(hostInterface)@\(bridge) -> \(containerInterface) \(address) via \(gateway) \(macAddress)"
    }
}
