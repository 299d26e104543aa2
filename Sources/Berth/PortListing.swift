/// `docker port` output.
public enum PortListing {
    /// One line per published port, `8080/tcp -> 0.0.0.0:18080`, sorted by container port.
    /// - Parameter ports: The container's published ports.
    public static func lines(_ ports: [PublishedPort]) -> String {
        ports.sorted { ($0.containerPort, $0.proto, $0.hostPort) < ($1.containerPort, $1.proto, $1.hostPort) }
            .map { "\($0.containerPort)/\($0.proto) -> \($0.hostIP):\($0.hostPort)\n" }.joined()
    }
}
