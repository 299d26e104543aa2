import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

@testable import Berth

/// A state root in a fresh temporary directory, removed by ``remove()``.
final class StoreFixture {
    let root: String
    let store: StateStore
    let volumes: VolumeStore

    init() throws {
        root = try FileIO.makeTemporaryDirectory(prefix: "berth-state-\(getpid())-")
        store = try StateStore(root: root)
        volumes = try VolumeStore(root: root)
    }

    func remove() { try? FileIO.removeTree(root) }
}
