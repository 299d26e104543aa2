import BerthCgroups
import BerthSystem
import BerthTestSupport
import Testing

@testable import Berth

@Suite struct EngineImageTests {
    @Test func diffCommitHistoryAndLimits() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let box = try f.run(["sh", "-c", "echo data > /newfile && rm /bin/ping && echo ready && sleep 100"], name: "box") {
            $0.memoryBytes = 64 << 20
            $0.pidsLimit = 50
        }
        try f.waitForLog(box.id, containing: "ready")
        #expect(try f.engine.diff("box").map(\.description) == ["C /bin", "D /bin/ping", "A /newfile"])

        let cgroup = try Cgroup.open(name: f.engine.cgroupName(box.id))
        if let memory = cgroup.paths["memory"] {
            #expect(try FileIO.read(memory + "/memory.limit_in_bytes").trimmingSpaces() == "67108864")
        }
        if let pids = cgroup.paths["pids"] {
            #expect(try FileIO.read(pids + "/pids.max").trimmingSpaces() == "50")
        }

        let image = try f.engine.commit("box", repository: "box:v1", message: "snapshot")
        #expect(try f.engine.layers.history("box:v1").count == 2)
        #expect(try f.engine.layers.image("box:v1").id == image.id)
        try f.engine.stop("box", timeout: 0)
        let out = try f.output(["sh", "-c", "cat /newfile; ls /bin/ping 2>&1 || true"]) { $0.image = "box:v1" }
        #expect(out.hasPrefix("data\n"))
        #expect(out.contains("No such file"))
    }
}

@Suite struct EngineDeviceTests {
    /// MKNOD is a default capability, so only the devices cgroup stands between a container and a
    /// node it makes for a host block device. Loop 7:0 is used because this sandboxed machine
    /// refuses its root disk even to the host's root (see DeviceCgroupTests).
    @Test func defaultContainersCannotOpenBlockDevicesTheyCreate() throws {
        let f = try EngineFixture()
        defer { f.remove() }
        let out = try f.output(["sh", "-c",
            "mknod /tmp/loop b 7 0 && echo made; head -c 1 /tmp/loop >/dev/null 2>/tmp/err; echo open=$?; cat /tmp/err; head -c 4 /dev/zero | wc -c"])
        #expect(out.contains("made"))
        #expect(out.contains("open=1"))
        #expect(out.contains("Operation not permitted"))
        #expect(out.contains("4"), "ordinary device nodes still work")
    }
}
