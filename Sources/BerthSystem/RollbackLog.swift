/// The undo actions of a multi-step operation (start a container, attach a network, publish ports),
/// run newest first when a later step fails.
///
/// ```swift
/// var log = RollbackLog()
/// let veth = try createVeth();       log.record("veth \(veth)") { try deleteVeth(veth) }
/// let lease = try allocateAddress(); log.record("lease \(lease)") { try release(lease) }
/// do { try configure() } catch { log.unwind(); throw error }
/// log.commit()
/// ```
public struct RollbackLog {
    private var steps: [(what: String, undo: () throws -> Void)] = []

    public init() {}

    /// Records how to undo a step that has just succeeded.
    /// - Parameters:
    ///   - what: Names the object, for the failure report (`veth veth1a2b3c4`).
    ///   - undo: Undoes the step.
    public mutating func record(_ what: String, _ undo: @escaping () throws -> Void) {
        steps.append((what, undo))
    }

    /// Undoes every recorded step, newest first, continuing past failures.
    /// - Returns: Descriptions of the undo actions that failed.
    @discardableResult
    public mutating func unwind() -> [String] {
        var failures: [String] = []
        for step in steps.reversed() {
            do { try step.undo() } catch { failures.append("undo \(step.what): \(error)") }
        }
        steps.removeAll()
        return failures
    }

    /// Forgets the steps: the operation succeeded and keeps what it made.
    public mutating func commit() { steps.removeAll() }
}
