import BerthNamespaces
import BerthSystem

/// A network namespace that plays "the host" for one test: its bridge, veths, routes and firewall
/// rules live there and vanish with it. The machine's root namespace is never touched.
///
/// ```swift
/// let host = try SandboxHost()
/// defer { host.close() }
/// try host.sh("ip link add br0 type bridge")
/// ```
public final class SandboxHost: @unchecked Sendable {
    public let namespace: NetworkNamespace

    /// Creates an anonymous namespace with lo up.
    public init() throws {
        namespace = try NetworkNamespace.create()
    }

    /// Runs `body` inside the sandbox on its dedicated thread.
    public func run<T>(_ body: () throws -> T) throws -> T { try namespace.run(body) }

    /// Runs a shell script inside the sandbox and returns its stdout; throws on a non-zero exit.
    @discardableResult
    public func sh(_ script: String) throws -> String {
        try run { try Command.check("/bin/sh", ["-c", script]).stdout }
    }

    public func close() { namespace.close() }
    deinit { close() }
}

/// A name for a kernel object in a test: prefix + pid + random suffix (≤ 15 chars for prefix ≤ 4).
public func testName(_ prefix: String) -> String { uniqueName(prefix) }
