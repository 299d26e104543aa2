import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway root filesystem made from Debian's busybox-static: /bin/busybox plus a symlink per
/// applet, and the empty directories a container runtime mounts over. Nothing is downloaded.
public final class BusyboxRootfs: @unchecked Sendable {
    /// The directory that holds the rootfs.
    public let path: String
    /// A scratch directory that contains ``path`` (an OCI bundle can put config.json here).
    public let bundle: String

    /// Builds a fresh rootfs under a new temporary directory.
    /// - Parameter base: where to create it (tmpfs /dev/shm is faster; /tmp by default).
    public init(base: String = "/tmp") throws {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"].first { FileIO.exists($0) }
        guard let busybox else {
            throw BerthError(.notFound, "busybox not found: install Debian's busybox-static")
        }
        bundle = try FileIO.makeTemporaryDirectory(prefix: "berth-test-\(getpid())-", in: base)
        path = bundle + "/rootfs"
        do {
            for dir in ["", "/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/proc", "/dev", "/sys", "/etc", "/tmp", "/root", "/var", "/run", "/home"] {
                try FileIO.makeDirectories(path + dir)
            }
            chmod(path + "/tmp", 0o1777)
            try FileIO.writeAtomically(path + "/bin/busybox", try FileIO.readBytes(busybox), mode: 0o755)
            // Ask the host copy: executing the fresh copy can fail with ETXTBSY while another thread's
            // spawned child still holds the write descriptor between fork and exec.
            let list = try Command.check(busybox, ["--list-full"]).stdout
            for line in list.split(separator: "\n") where !line.isEmpty {
                let target = path + "/" + line
                if FileIO.exists(target) { continue }
                symlink("/bin/busybox", target)
            }
            try FileIO.writeAtomically(path + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
            try FileIO.writeAtomically(path + "/etc/group", "root:x:0:\nnogroup:x:65534:\n")
        } catch {
            try? FileIO.removeTree(bundle)
            throw error
        }
    }

    /// Removes the rootfs and its bundle directory.
    public func remove() { try? FileIO.removeTree(bundle) }

    deinit { remove() }
}
