/// The undo actions of a multi-step operation, run in reverse when a later step fails.
struct RollbackLog {
    private var steps: [(what: String, undo: () throws -> Void)] = []

    /// Records how to undo a step that has just succeeded.
    mutating func record(_ what: String, _ undo: @escaping () throws -> Void) {
        steps.append((what, undo))
    }

    /// Undoes every recorded step, newest first, continuing past failures.
    /// - Returns: Descriptions of the undo actions that failed.
    @discardableResult
    mutating func unwind() -> [String] {
        var failures: [String] = []
        for step in steps.reversed() {
            do { try step.undo() } catch { failures.append("undo \(step.what): \(error)") }
        }
        steps.removeAll()
        return failures
    }

    /// Forgets the steps (the operation succeeded).
    mutating func commit() { steps.removeAll() }
}
