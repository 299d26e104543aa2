/// The undo actions of a container start, run newest first when a later step fails.
struct EngineRollback {
    private var steps: [(what: String, undo: () throws -> Void)] = []

    mutating func record(_ what: String, _ undo: @escaping () throws -> Void) {
        steps.append((what, undo))
    }

    /// Undoes every step, newest first, continuing past failures; returns the failures.
    @discardableResult
    mutating func unwind() -> [String] {
        var failures: [String] = []
        for step in steps.reversed() {
            do { try step.undo() } catch { failures.append("undo \(step.what): \(error)") }
        }
        steps.removeAll()
        return failures
    }

    mutating func commit() { steps.removeAll() }
}
