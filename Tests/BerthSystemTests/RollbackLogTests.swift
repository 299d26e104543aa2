import BerthSystem
import Testing

@Suite struct RollbackLogTests {
    @Test func unwindsNewestFirstAndReportsFailuresWithoutStopping() {
        var order: [String] = []
        var log = RollbackLog()
        log.record("first") { order.append("first") }
        log.record("second") { throw BerthError(.system, "busy") }
        log.record("third") { order.append("third") }
        let failures = log.unwind()
        #expect(order == ["third", "first"])
        #expect(failures == ["undo second: busy"])
        #expect(log.unwind().isEmpty, "a second unwind has nothing left to undo")
    }

    @Test func commitKeepsWhatWasMade() {
        var undone = false
        var log = RollbackLog()
        log.record("step") { undone = true }
        log.commit()
        log.unwind()
        #expect(!undone)
    }
}
