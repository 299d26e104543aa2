import BerthSystem

extension ExposedPort {
    /// Parses an `--expose` value: `80`, `80/udp`, `7000-7002`, `7000-7002/tcp`, with the same
    /// error wording as `-p` specs.
    /// - Parameter spec: The text given to `--expose`.
    /// - Returns: One entry per port of the range.
    /// - Throws: ``BerthError`` `.invalidArgument` quoting `spec`.
    public static func parse(expose spec: String) throws -> [ExposedPort] {
        let (body, proto) = try PortSpec.splitProtocol(spec)
        let range = try PortSpec.parseRange(body, in: spec, what: "port")
        return range.map { ExposedPort($0, proto) }
    }
}

/// One `docker run -p` value, parsed: `C`, `H:C`, `IP:H:C`, `IP::C`, ranges such as
/// `8000-8010:80-90` or `7000-7002`, and an optional `/tcp`, `/udp` or `/sctp` suffix.
public struct PortSpec: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The host address; `0.0.0.0` (every address) when not given.
    public var hostIP: IPv4Address
    /// The host ports; `nil` means ephemeral ports chosen by the allocator.
    public var hostPorts: ClosedRange<UInt16>?
    /// The container ports.
    public var containerPorts: ClosedRange<UInt16>
    /// The protocol.
    public var proto: PortProtocol
    /// The text this was parsed from.
    public var text: String

    /// Parses a `-p` value.
    /// - Parameter text: For example `127.0.0.1:18080:8080/tcp`.
    /// - Throws: ``BerthError`` `.invalidArgument` naming `text` and what is wrong with it.
    public init(parsing text: String) throws {
        self.text = text
        let (body, proto) = try PortSpec.splitProtocol(text)
        self.proto = proto
        if body.hasPrefix("[") {
            throw BerthError(.invalidArgument, "invalid port spec \"\(text)\": IPv6 host addresses are not supported")
        }
        let parts = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var ipText = "", hostText = "", containerText = ""
        switch parts.count {
        case 1: containerText = parts[0]
        case 2: hostText = parts[0]; containerText = parts[1]
        case 3: ipText = parts[0]; hostText = parts[1]; containerText = parts[2]
        default:
            throw BerthError(.invalidArgument,
                "invalid port spec \"\(text)\": expected [IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]")
        }
        if parts.count == 2 && hostText.isEmpty {
            throw BerthError(.invalidArgument, "invalid port spec \"\(text)\": empty host port")
        }
        if ipText.isEmpty {
            hostIP = .any
            if parts.count == 3 {
                throw BerthError(.invalidArgument, "invalid port spec \"\(text)\": empty host IP")
            }
        } else {
            guard let ip = IPv4Address(ipText) else {
                throw BerthError(.invalidArgument, "invalid port spec \"\(text)\": invalid host IP \"\(ipText)\"")
            }
            hostIP = ip
        }
        containerPorts = try PortSpec.parseRange(containerText, in: text, what: "container port")
        if hostText.isEmpty {
            hostPorts = nil
        } else {
            let h = try PortSpec.parseRange(hostText, in: text, what: "host port")
            // Docker allows a host range for a single container port: any free port of the range.
            if containerPorts.count > 1 && h.count != containerPorts.count {
                throw BerthError(.invalidArgument,
                    "invalid port spec \"\(text)\": host range \(hostText) has \(h.count) ports but container range \(containerText) has \(containerPorts.count)")
            }
            hostPorts = h
        }
    }

    /// Parses several `-p` values.
    public static func parse(_ texts: [String]) throws -> [PortSpec] { try texts.map(PortSpec.init(parsing:)) }

    public var description: String { text }

    /// The container ports this spec publishes (for `EXPOSE` bookkeeping).
    public var exposedPorts: [ExposedPort] { containerPorts.map { ExposedPort($0, proto) } }

    /// One binding per container port: which host port(s) it may take.
    public var bindings: [PortBinding] {
        containerPorts.enumerated().map { i, c in
            let host: ClosedRange<UInt16>?
            if let h = hostPorts {
                host = containerPorts.count == 1 ? h : (h.lowerBound + UInt16(i))...(h.lowerBound + UInt16(i))
            } else {
                host = nil
            }
            return PortBinding(proto: proto, hostIP: hostIP, hostPorts: host, containerPort: c)
        }
    }

    /// The bindings of `-P`: every exposed port on an ephemeral host port of every address.
    /// - Parameter exposed: The image's and `--expose`'s ports.
    public static func publishAll(_ exposed: [ExposedPort]) -> [PortBinding] {
        Set(exposed).sorted().map { PortBinding(proto: $0.proto, hostIP: .any, hostPorts: nil, containerPort: $0.port) }
    }

    static func splitProtocol(_ text: String) throws -> (String, PortProtocol) {
        let pieces = text.split(separator: "/", omittingEmptySubsequences: false)
        switch pieces.count {
        case 1: return (text, .tcp)
        case 2:
            guard let p = PortProtocol(rawValue: pieces[1].lowercased()) else {
                throw BerthError(.invalidArgument, "invalid port spec \"\(text)\": unknown protocol \"\(pieces[1])\" (expected tcp, udp or sctp)")
            }
            return (String(pieces[0]), p)
        default:
            throw BerthError(.invalidArgument, "invalid port spec \"\(text)\": more than one \"/\"")
        }
    }

    static func parsePort(_ s: Substring, in text: String, what: String) throws -> UInt16 {
        guard !s.isEmpty, s.count <= 5, s.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(s) else {
            throw BerthError(.invalidArgument, "invalid port spec \"\(text)\": invalid \(what) \"\(s)\"")
        }
        guard (1...65535).contains(n) else {
            throw BerthError(.invalidArgument, "invalid port spec \"\(text)\": \(what) \(n) is out of range 1-65535")
        }
        return UInt16(n)
    }

    static func parseRange(_ s: String, in text: String, what: String) throws -> ClosedRange<UInt16> {
        let ends = s.split(separator: "-", omittingEmptySubsequences: false)
        switch ends.count {
        case 1:
            let p = try parsePort(ends[0], in: text, what: what)
            return p...p
        case 2:
            let a = try parsePort(ends[0], in: text, what: what), b = try parsePort(ends[1], in: text, what: what)
            guard a <= b else {
                throw BerthError(.invalidArgument, "invalid port spec \"\(text)\": \(what) range \(s) ends before it starts")
            }
            return a...b
        default:
            throw BerthError(.invalidArgument, "invalid port spec \"\(text)\": invalid \(what) range \"\(s)\"")
        }
    }
}

/// One container port to publish, before a host port is chosen.
public struct PortBinding: Sendable, Hashable, Codable, CustomStringConvertible {
    public var proto: PortProtocol
    /// The host address (`0.0.0.0` for all).
    public var hostIP: IPv4Address
    /// `nil`: an ephemeral port; one port: exactly that port; a longer range: any free port in it.
    public var hostPorts: ClosedRange<UInt16>?
    public var containerPort: UInt16

    /// - Parameters:
    ///   - proto: The protocol.
    ///   - hostIP: The host address (`0.0.0.0` for all).
    ///   - hostPorts: The acceptable host ports, or `nil` for an ephemeral one.
    ///   - containerPort: The container port.
    public init(proto: PortProtocol, hostIP: IPv4Address = .any, hostPorts: ClosedRange<UInt16>?, containerPort: UInt16) {
        self.proto = proto
        self.hostIP = hostIP
        self.hostPorts = hostPorts
        self.containerPort = containerPort
    }

    public var description: String {
        let h = hostPorts.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" } ?? ""
        return "\(hostIP):\(h):\(containerPort)/\(proto)"
    }
}
