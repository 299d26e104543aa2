import BerthSystem
import CBerthShim

/// Turns the child's `{stage, errno, index, step}` report into a ``BerthError`` that names what
/// failed, using the same plan the parent built the child's configuration from.
struct ChildFailure {
    var stage: Int32
    var errno: Int32
    var index: Int32
    var step: Int32

    init(_ e: berth_child_error) {
        stage = e.stage
        errno = e.err
        index = e.index
        step = e.step
    }

    struct Context {
        var argv0: String
        var rootfs: String?
        var steps: [RootfsPlan.Step]
        var joins: [ContainerSpec.Namespace]
        var security: ProcessSecurity
        var rlimits: [String] = []
        var hostname: String?
        var domainname: String?
        var cwd: String?
        var user: ContainerSpec.User
    }

    func error(_ c: Context) -> BerthError {
        let i = Int(index)
        let what: String
        switch UInt32(stage) {
        case BERTH_STAGE_SYNC.rawValue: what = "wait for the parent"
        case BERTH_STAGE_SETNS.rawValue:
            let ns = i < c.joins.count ? c.joins[i] : nil
            what = "join \(ns?.type.rawValue ?? "a") namespace \(ns?.path ?? "")"
        case BERTH_STAGE_USERNS_ROOT.rawValue: what = "become root in the new user namespace (are uid/gid 0 mapped?)"
        case BERTH_STAGE_MAKE_PRIVATE.rawValue: what = "make / rprivate"
        case BERTH_STAGE_BIND_ROOTFS.rawValue: what = "bind rootfs \(c.rootfs ?? "") onto itself"
        case BERTH_STAGE_MOUNT.rawValue:
            guard i < c.steps.count else { what = "mount"; break }
            let s = c.steps[i]
            switch UInt32(step) {
            case BERTH_STEP_CREATE.rawValue: what = "create mount point \(s.destination)"
            case BERTH_STEP_REMOUNT.rawValue: what = "remount \(s.destination) with its options"
            case BERTH_STEP_PROPAGATION.rawValue: what = "set propagation of \(s.destination)"
            default: what = s.what
            }
        case BERTH_STAGE_PIVOT_ROOT.rawValue: what = "pivot_root into \(c.rootfs ?? "")"
        case BERTH_STAGE_CHROOT.rawValue: what = "chroot into \(c.rootfs ?? "")"
        case BERTH_STAGE_ROOT_READONLY.rawValue: what = "remount / read-only"
        case BERTH_STAGE_MASK.rawValue: what = "mask \(i < c.security.maskedPaths.count ? c.security.maskedPaths[i] : "a path")"
        case BERTH_STAGE_READONLY_PATH.rawValue:
            what = "make \(i < c.security.readonlyPaths.count ? c.security.readonlyPaths[i] : "a path") read-only"
        case BERTH_STAGE_HOSTNAME.rawValue: what = "set hostname \(c.hostname ?? "")"
        case BERTH_STAGE_DOMAINNAME.rawValue: what = "set domainname \(c.domainname ?? "")"
        case BERTH_STAGE_CWD.rawValue: what = "chdir to \(c.cwd ?? "")"
        case BERTH_STAGE_BOUNDING.rawValue: what = "drop capability \(i) from the bounding set"
        case BERTH_STAGE_KEEPCAPS.rawValue: what = "set keep-capabilities"
        case BERTH_STAGE_SETGROUPS.rawValue: what = "set supplementary groups \(c.user.additionalGids ?? [])"
        case BERTH_STAGE_SETGID.rawValue: what = "set gid \(c.user.gid)"
        case BERTH_STAGE_SETUID.rawValue: what = "set uid \(c.user.uid)"
        case BERTH_STAGE_CAPSET.rawValue: what = "set capabilities"
        case BERTH_STAGE_AMBIENT.rawValue: what = "raise ambient capability \(i)"
        case BERTH_STAGE_NO_NEW_PRIVS.rawValue: what = "set no_new_privs"
        case BERTH_STAGE_SECCOMP.rawValue: what = "install the seccomp filter"
        case BERTH_STAGE_STDIO.rawValue: what = "set up \(["stdin", "stdout", "stderr"][min(max(i, 0), 2)])"
        case BERTH_STAGE_EXEC.rawValue: what = "exec \"\(c.argv0)\""
        case BERTH_STAGE_SIGNALS.rawValue: what = "reset the signal mask"
        case BERTH_STAGE_RLIMIT.rawValue: what = "set \(i < c.rlimits.count ? c.rlimits[i] : "a resource limit")"
        case BERTH_STAGE_LOOPBACK.rawValue: what = "bring up lo in the new network namespace"
        case BERTH_STAGE_PDEATHSIG.rawValue: what = "set the parent-death signal"
        case BERTH_STAGE_CONSOLE.rawValue:
            switch UInt32(step) {
            case BERTH_CONSOLE_OPEN_PTMX.rawValue: what = "open the container's /dev/ptmx for its terminal"
            case BERTH_CONSOLE_UNLOCK.rawValue: what = "unlock the terminal's pty"
            case BERTH_CONSOLE_OPEN_SLAVE.rawValue: what = "open the slave of the terminal's pty"
            case BERTH_CONSOLE_CHOWN.rawValue: what = "give the terminal to uid \(c.user.uid)"
            case BERTH_CONSOLE_WINSIZE.rawValue: what = "set the terminal's window size"
            default: what = "send the terminal's master to the parent"
            }
        default: what = "container setup (stage \(stage))"
        }
        let code: BerthError.Code = (errno == 2 && UInt32(stage) == BERTH_STAGE_EXEC.rawValue) ? .notFound : .system
        return BerthError(code, "\(what): \(strerrorString(errno))", errno: errno)
    }
}
