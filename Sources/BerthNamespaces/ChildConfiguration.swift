import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// C memory the child reads after clone: strings, arrays and the `berth_spawn_config` itself.
/// Everything is allocated before the clone and freed when this object goes away (the child has
/// its own copy-on-write copy by then).
final class ChildConfiguration {
    private var allocations: [UnsafeMutableRawPointer] = []
    let config: UnsafeMutablePointer<berth_spawn_config>

    init() {
        config = UnsafeMutablePointer<berth_spawn_config>.allocate(capacity: 1)
        config.initialize(to: berth_spawn_config())
        allocations.append(UnsafeMutableRawPointer(config))
        config.pointee.pid_ns_fd = -1
        config.pointee.sync_fd = -1
        config.pointee.error_fd = -1
        config.pointee.close_fds = (-1, -1, -1, -1)
        config.pointee.stdio = (-1, -1, -1)
        config.pointee.console_fd = -1
    }

    deinit {
        for p in allocations { free(p) }
    }

    /// A NUL-terminated copy of `s`.
    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    func optionalString(_ s: String?) -> UnsafePointer<CChar>? { s.map { UnsafePointer(string($0)) } }

    /// A NULL-terminated array of C strings.
    func stringArray(_ xs: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let p = raw(MemoryLayout<UnsafeMutablePointer<CChar>?>.stride * (xs.count + 1))
            .bindMemory(to: UnsafeMutablePointer<CChar>?.self, capacity: xs.count + 1)
        for (i, x) in xs.enumerated() { p[i] = string(x) }
        p[xs.count] = nil
        return p
    }

    func constStringArray(_ xs: [String]) -> UnsafePointer<UnsafePointer<CChar>?> {
        UnsafeRawPointer(stringArray(xs)).assumingMemoryBound(to: UnsafePointer<CChar>?.self)
    }

    /// Zeroed memory, 16-byte aligned (malloc's guarantee), at least one byte.
    func raw(_ bytes: Int) -> UnsafeMutableRawPointer {
        let p = calloc(1, max(bytes, 1))!
        allocations.append(p)
        return p
    }

    func array<T>(_ xs: [T]) -> UnsafeMutablePointer<T> {
        let p = raw(MemoryLayout<T>.stride * xs.count).bindMemory(to: T.self, capacity: max(xs.count, 1))
        for (i, x) in xs.enumerated() { (p + i).initialize(to: x) }
        return p
    }

    func setOps(_ steps: [RootfsPlan.Step]) {
        let ops = steps.map { s -> berth_mount_op in
            var op = berth_mount_op()
            op.kind = s.kind
            op.create = s.create
            op.optional = s.optional ? 1 : 0
            op.mode = s.mode
            op.dev = s.dev
            op.source = optionalString(s.source)
            op.target = UnsafePointer(string(s.target))
            op.fstype = optionalString(s.fstype)
            op.data = optionalString(s.data)
            op.flags = s.flags
            op.remount_flags = s.remountFlags
            op.propagation = s.propagation
            return op
        }
        config.pointee.ops = UnsafePointer(array(ops))
        config.pointee.op_count = Int32(ops.count)
    }

    func setJoins(_ joins: [(fd: Int32, type: Int32)]) {
        withUnsafeMutableBytes(of: &config.pointee.join_fds) { raw in
            let fds = raw.bindMemory(to: Int32.self)
            for (i, j) in joins.enumerated() { fds[i] = j.fd }
        }
        withUnsafeMutableBytes(of: &config.pointee.join_types) { raw in
            let types = raw.bindMemory(to: Int32.self)
            for (i, j) in joins.enumerated() { types[i] = j.type }
        }
        config.pointee.join_count = Int32(joins.count)
    }

    func setSecurity(_ security: ProcessSecurity) {
        config.pointee.no_new_privs = security.noNewPrivileges ? 1 : 0
        if let caps = security.capabilities {
            config.pointee.set_caps = 1
            config.pointee.last_cap = berth_cap_last_cap()
            config.pointee.cap_bounding = caps.bounding
            config.pointee.cap_effective = caps.effective
            config.pointee.cap_permitted = caps.permitted
            config.pointee.cap_inheritable = caps.inheritable
            config.pointee.cap_ambient = caps.ambient
        }
        if let filter = security.seccompFilter, !filter.isEmpty {
            let p = raw(filter.count)
            filter.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: filter.count) }
            config.pointee.seccomp_filter = UnsafeRawPointer(p)
            config.pointee.seccomp_len = UInt16(filter.count / 8)
        }
        config.pointee.masked_paths = constStringArray(security.maskedPaths)
        config.pointee.masked_count = Int32(security.maskedPaths.count)
        config.pointee.readonly_paths = constStringArray(security.readonlyPaths)
        config.pointee.readonly_count = Int32(security.readonlyPaths.count)
    }
}
