/*
 * The container child: everything between clone and execve.
 *
 * Rules for this file: the child runs on a copy-on-write copy of the parent's memory (clone
 * without CLONE_VM), so it may read everything the parent prepared, but it must not allocate,
 * take locks or call back into Swift, because another thread of the parent may have held a lock
 * at the time of the clone. Only async-signal-safe system calls are used below.
 */
#include "berth_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

struct berth_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

static __attribute__((noreturn)) void fail(const struct berth_spawn_config *cfg, int stage, int err, int index, int step) {
    struct berth_child_error e = { stage, err, index, step };
    ssize_t unused = write(cfg->error_fd, &e, sizeof e);
    (void)unused;
    _exit(127);
}

static size_t slen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

/* mkdir -p of path (or of its parent directory when parent_only), using the scratch buffer. */
static int make_dirs(const struct berth_spawn_config *cfg, const char *path, int parent_only) {
    size_t n = slen(path);
    if (n + 1 > cfg->scratch_size) { errno = ENAMETOOLONG; return -1; }
    char *b = cfg->scratch;
    memcpy(b, path, n + 1);
    if (parent_only) {
        while (n > 0 && b[n - 1] != '/') n--;
        if (n <= 1) return 0;
        b[n - 1] = 0;
        n = n - 1;
    }
    for (size_t i = 1; i <= n; i++) {
        if (b[i] == '/' || b[i] == 0) {
            char saved = b[i];
            b[i] = 0;
            if (mkdir(b, 0755) != 0 && errno != EEXIST) return -1;
            b[i] = saved;
        }
    }
    return 0;
}

static int create_target(const struct berth_spawn_config *cfg, const struct berth_mount_op *op) {
    if (op->create == BERTH_CREATE_DIR) return make_dirs(cfg, op->target, 0);
    if (op->create == BERTH_CREATE_FILE) {
        if (make_dirs(cfg, op->target, 1) != 0) return -1;
        /* O_EXCL: an existing target (the init layer's /etc/hosts, say) is not opened for writing,
         * which on overlayfs would copy it up. An existing symlink is refused as before (the mount
         * would follow it). */
        int fd = open(op->target, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
            if (errno != EEXIST) return -1;
            struct stat st;
            if (lstat(op->target, &st) != 0) return -1;
            if (S_ISLNK(st.st_mode)) { errno = ELOOP; return -1; }
            return 0;
        }
        close(fd);
    }
    return 0;
}

/* The flags a bind remount must keep: in a user namespace the kernel refuses (EPERM) to clear
 * nosuid/nodev/noexec/atime flags that were locked on the original mount. */
static unsigned long locked_flags(const char *target) {
    struct statvfs st;
    if (statvfs(target, &st) != 0) return 0;
    unsigned long f = 0;
    if (st.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (st.f_flag & ST_NODEV) f |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (st.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (st.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (st.f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

static int remount(const char *target, unsigned long flags) {
    if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | flags, NULL) == 0) return 0;
    if (errno != EPERM) return -1;
    return mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | flags | locked_flags(target), NULL);
}

static int ignorable(int err) { return err == ENOENT || err == EPERM || err == EACCES || err == EINVAL || err == ENODEV; }

static void run_op(const struct berth_spawn_config *cfg, const struct berth_mount_op *op, int index) {
    switch (op->kind) {
    case BERTH_OP_MKDIR:
        if (make_dirs(cfg, op->target, 0) != 0 && !op->optional) fail(cfg, BERTH_STAGE_MOUNT, errno, index, BERTH_STEP_CREATE);
        return;
    case BERTH_OP_SYMLINK:
        if (symlink(op->source, op->target) != 0 && errno != EEXIST && !op->optional)
            fail(cfg, BERTH_STAGE_MOUNT, errno, index, BERTH_STEP_MOUNT);
        return;
    case BERTH_OP_MKNOD:
        if (mknod(op->target, op->mode, (dev_t)op->dev) != 0 && errno != EEXIST && !op->optional)
            fail(cfg, BERTH_STAGE_MOUNT, errno, index, BERTH_STEP_MOUNT);
        return;
    case BERTH_OP_MOUNT:
    default:
        break;
    }
    if (create_target(cfg, op) != 0) {
        if (op->optional && ignorable(errno)) return;
        fail(cfg, BERTH_STAGE_MOUNT, errno, index, BERTH_STEP_CREATE);
    }
    if (mount(op->source, op->target, op->fstype, op->flags, op->data) != 0) {
        if (op->optional && ignorable(errno)) return;
        fail(cfg, BERTH_STAGE_MOUNT, errno, index, BERTH_STEP_MOUNT);
    }
    if (op->remount_flags && remount(op->target, op->remount_flags) != 0)
        fail(cfg, BERTH_STAGE_MOUNT, errno, index, BERTH_STEP_REMOUNT);
    if (op->propagation && mount(NULL, op->target, NULL, op->propagation, NULL) != 0)
        fail(cfg, BERTH_STAGE_MOUNT, errno, index, BERTH_STEP_PROPAGATION);
}

static void setup_rootfs(const struct berth_spawn_config *cfg) {
    if (cfg->pivot) {
        /* Nothing we mount may propagate back to the host. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail(cfg, BERTH_STAGE_MAKE_PRIVATE, errno, -1, 0);
        /* pivot_root needs the new root to be a mount point. */
        if (mount(cfg->rootfs, cfg->rootfs, NULL, MS_BIND | MS_REC, NULL) != 0) fail(cfg, BERTH_STAGE_BIND_ROOTFS, errno, -1, 0);
    }
    for (int i = 0; i < cfg->op_count; i++) run_op(cfg, &cfg->ops[i], i);
    if (chdir(cfg->rootfs) != 0) fail(cfg, BERTH_STAGE_PIVOT_ROOT, errno, -1, 0);
    if (cfg->pivot) {
        /* pivot_root(".", "."): the old root ends up stacked under the new one at "/"; detach it
         * (after making it a slave so the unmount does not propagate to the host). */
        if (syscall(SYS_pivot_root, ".", ".") != 0) fail(cfg, BERTH_STAGE_PIVOT_ROOT, errno, -1, 0);
        if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) != 0) fail(cfg, BERTH_STAGE_PIVOT_ROOT, errno, -1, 1);
        if (umount2(".", MNT_DETACH) != 0) fail(cfg, BERTH_STAGE_PIVOT_ROOT, errno, -1, 2);
    } else {
        if (chroot(".") != 0) fail(cfg, BERTH_STAGE_CHROOT, errno, -1, 0);
    }
    if (chdir("/") != 0) fail(cfg, BERTH_STAGE_PIVOT_ROOT, errno, -1, 3);
}

static void mask_and_protect(const struct berth_spawn_config *cfg) {
    for (int i = 0; i < cfg->masked_count; i++) {
        const char *p = cfg->masked_paths[i];
        struct stat st;
        if (stat(p, &st) != 0) {
            if (errno == ENOENT) continue;
            fail(cfg, BERTH_STAGE_MASK, errno, i, 0);
        }
        int rc = S_ISDIR(st.st_mode)
            ? mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=755")
            : mount("/dev/null", p, NULL, MS_BIND, NULL);
        if (rc != 0 && errno != ENOENT) fail(cfg, BERTH_STAGE_MASK, errno, i, 0);
    }
    for (int i = 0; i < cfg->readonly_count; i++) {
        const char *p = cfg->readonly_paths[i];
        if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) != 0) {
            if (errno == ENOENT) continue;
            fail(cfg, BERTH_STAGE_READONLY_PATH, errno, i, 0);
        }
        if (remount(p, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) != 0 && remount(p, MS_RDONLY) != 0)
            fail(cfg, BERTH_STAGE_READONLY_PATH, errno, i, 1);
    }
}

static int install_seccomp(const struct berth_spawn_config *cfg) {
    struct sock_fprog prog = { cfg->seccomp_len, (struct sock_filter *)cfg->seccomp_filter };
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

/* glibc's setxid wrappers signal every thread the parent had (its thread list was copied with
 * us and may be locked); the raw system calls change only this thread, which is all there is. */
static int raw_setresuid(uid_t u) { return (int)syscall(SYS_setresuid, u, u, u); }
static int raw_setresgid(gid_t g) { return (int)syscall(SYS_setresgid, g, g, g); }
static int raw_setgroups(size_t n, const gid_t *g) { return (int)syscall(SYS_setgroups, n, g); }

static int has_slash(const char *s) { for (; *s; s++) if (*s == '/') return 1; return 0; }

static __attribute__((noreturn)) void exec_program(const struct berth_spawn_config *cfg) {
    const char *file = cfg->argv[0];
    if (has_slash(file) || !cfg->search_path) {
        execve(file, cfg->argv, cfg->envp);
        fail(cfg, BERTH_STAGE_EXEC, errno, -1, 0);
    }
    size_t flen = slen(file);
    int seen_eacces = 0;
    const char *p = cfg->search_path;
    for (;;) {
        const char *end = p;
        while (*end && *end != ':') end++;
        size_t dlen = (size_t)(end - p);
        if (dlen + flen + 2 <= cfg->scratch_size) {
            char *b = cfg->scratch;
            if (dlen == 0) { b[0] = '.'; dlen = 1; } else memcpy(b, p, dlen);
            b[dlen] = '/';
            memcpy(b + dlen + 1, file, flen + 1);
            execve(b, cfg->argv, cfg->envp);
            if (errno == EACCES) seen_eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR) fail(cfg, BERTH_STAGE_EXEC, errno, -1, 0);
        }
        if (!*end) break;
        p = end + 1;
    }
    fail(cfg, BERTH_STAGE_EXEC, seen_eacces ? EACCES : ENOENT, -1, 0);
}

/* Installs the requested sets, limited to what we hold: a capability missing from the caller's
 * own permitted set (a host that runs us without CAP_SYS_RESOURCE, say) cannot be granted. */
static int set_caps(const struct berth_spawn_config *cfg) {
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) != 0) return -1;
    uint64_t held = (uint64_t)data[0].permitted | ((uint64_t)data[1].permitted << 32);
    uint64_t eff = cfg->cap_effective & held, perm = cfg->cap_permitted & held, inh = cfg->cap_inheritable & held;
    data[0].effective = (uint32_t)eff;
    data[1].effective = (uint32_t)(eff >> 32);
    data[0].permitted = (uint32_t)perm;
    data[1].permitted = (uint32_t)(perm >> 32);
    data[0].inheritable = (uint32_t)inh;
    data[1].inheritable = (uint32_t)(inh >> 32);
    hdr.version = _LINUX_CAPABILITY_VERSION_3;
    hdr.pid = 0;
    return (int)syscall(SYS_capset, &hdr, data);
}

/* The one-byte message that carries one descriptor (SCM_RIGHTS) either way. */
struct fd_message {
    char byte;
    struct iovec iov;
    struct msghdr msg;
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
};

static void fd_message_init(struct fd_message *m) {
    memset(m, 0, sizeof *m);
    m->iov.iov_base = &m->byte;
    m->iov.iov_len = 1;
    m->msg.msg_iov = &m->iov;
    m->msg.msg_iovlen = 1;
    m->msg.msg_control = m->u.buf;
    m->msg.msg_controllen = sizeof m->u.buf;
}

/* One descriptor over a unix socket (SCM_RIGHTS), with a one-byte payload. */
static int send_fd(int sock, int fd) {
    struct fd_message m;
    fd_message_init(&m);
    struct msghdr msg = m.msg;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    ssize_t n;
    do n = sendmsg(sock, &msg, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

/* The container's terminal, as runc makes it: a pty from the devpts instance mounted at /dev/pts
 * in the container's own mount namespace (we are past pivot_root, or have joined that namespace),
 * so that the slave is /dev/pts/N inside and ttyname(3) finds it. The master goes to the parent;
 * the slave (close-on-exec, moved onto 0/1/2 later) is returned. */
static int open_console(const struct berth_spawn_config *cfg) {
    int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) fail(cfg, BERTH_STAGE_CONSOLE, errno, -1, BERTH_CONSOLE_OPEN_PTMX);
    int unlock = 0;
    if (ioctl(m, TIOCSPTLCK, &unlock) != 0) fail(cfg, BERTH_STAGE_CONSOLE, errno, -1, BERTH_CONSOLE_UNLOCK);
    /* TIOCGPTPEER opens the slave in the master's own devpts, without a path lookup. */
    int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        /* Before Linux 4.13: by name, /dev/pts/N of the devpts we just opened /dev/ptmx in. */
        unsigned int n = 0;
        if (ioctl(m, TIOCGPTN, &n) != 0) fail(cfg, BERTH_STAGE_CONSOLE, errno, -1, BERTH_CONSOLE_OPEN_SLAVE);
        char digits[16];
        int len = 0;
        do { digits[len++] = (char)('0' + n % 10); n /= 10; } while (n && len < (int)sizeof digits);
        char *b = cfg->scratch;
        memcpy(b, "/dev/pts/", 9);
        for (int i = 0; i < len; i++) b[9 + i] = digits[len - 1 - i];
        b[9 + len] = 0;
        s = open(b, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s < 0) fail(cfg, BERTH_STAGE_CONSOLE, errno, -1, BERTH_CONSOLE_OPEN_SLAVE);
    }
    /* The process's user owns its terminal (as with login or runc), so it can reopen it by name. */
    if (cfg->set_user && fchown(s, cfg->uid, (gid_t)-1) != 0) fail(cfg, BERTH_STAGE_CONSOLE, errno, -1, BERTH_CONSOLE_CHOWN);
    if (cfg->console_rows || cfg->console_cols) {
        struct winsize w = { cfg->console_rows, cfg->console_cols, 0, 0 };
        if (ioctl(m, TIOCSWINSZ, &w) != 0) fail(cfg, BERTH_STAGE_CONSOLE, errno, -1, BERTH_CONSOLE_WINSIZE);
    }
    if (send_fd(cfg->console_fd, m) != 0) fail(cfg, BERTH_STAGE_CONSOLE, errno, -1, BERTH_CONSOLE_SEND);
    close(m);
    close(cfg->console_fd);
    return s;
}

static void wait_for_parent(const struct berth_spawn_config *cfg) {
    if (cfg->sync_fd < 0) return;
    char c;
    ssize_t n;
    do n = read(cfg->sync_fd, &c, 1); while (n < 0 && errno == EINTR);
    if (n != 1) _exit(126);
}

static __attribute__((noreturn)) void child_main(const struct berth_spawn_config *cfg) {
    /* Signal dispositions set by the Swift runtime or the embedding program must not leak into
     * the container; the mask (all blocked by the parent) is cleared just before exec. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < _NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        sigaction(s, &dfl, NULL);
    }
    for (int i = 0; i < 4; i++) if (cfg->close_fds[i] >= 0) close(cfg->close_fds[i]);
    /* Drop every inherited descriptor we do not need right away: the child may wait at the sync
     * point for a while, and holding the parent's descriptors (a file another thread is writing,
     * the write end of someone's pipe) would show as ETXTBSY or a missing EOF elsewhere. */
    if (cfg->keep_fds) {
        unsigned int next = 0;
        for (int i = 0; i <= cfg->keep_count; i++) {
            unsigned int upto = i < cfg->keep_count ? (unsigned int)cfg->keep_fds[i] : ~0U;
            if (upto > next && berth_close_range(next, upto - 1, 0) != 0 && upto != ~0U)
                for (unsigned int fd = next; fd < upto; fd++) close((int)fd);
            next = upto + 1;
        }
    }
    if (cfg->pdeathsig && prctl(PR_SET_PDEATHSIG, cfg->pdeathsig, 0, 0, 0) != 0)
        fail(cfg, BERTH_STAGE_PDEATHSIG, errno, -1, 0);

    /* In a new user namespace nothing works until the parent has written our id maps: wait for
     * its first byte. */
    if (cfg->userns_root) wait_for_parent(cfg);
    for (int i = 0; i < cfg->join_count; i++) {
        if (setns(cfg->join_fds[i], cfg->join_types[i]) != 0) fail(cfg, BERTH_STAGE_SETNS, errno, i, 0);
        close(cfg->join_fds[i]);
    }
    if (cfg->userns_root) {
        if (raw_setresgid(0) != 0) fail(cfg, BERTH_STAGE_USERNS_ROOT, errno, -1, 0);
        if (raw_setresuid(0) != 0) fail(cfg, BERTH_STAGE_USERNS_ROOT, errno, -1, 1);
    }
    if (cfg->loopback_up && berth_loopback_up() != 0) fail(cfg, BERTH_STAGE_LOOPBACK, errno, -1, 0);
    if (cfg->rootfs) setup_rootfs(cfg);
    if (cfg->readonly_root && remount("/", MS_RDONLY) != 0) fail(cfg, BERTH_STAGE_ROOT_READONLY, errno, -1, 0);
    mask_and_protect(cfg);
    if (cfg->hostname && sethostname(cfg->hostname, slen(cfg->hostname)) != 0) fail(cfg, BERTH_STAGE_HOSTNAME, errno, -1, 0);
    if (cfg->domainname && setdomainname(cfg->domainname, slen(cfg->domainname)) != 0) fail(cfg, BERTH_STAGE_DOMAINNAME, errno, -1, 0);
    /* Before the seccomp filter (a profile need not allow what this takes) and the sync point
     * (the parent receives the master while we wait there). */
    int console = cfg->console_fd >= 0 ? open_console(cfg) : -1;

    /* Without no_new_privs only a holder of CAP_SYS_ADMIN may install a seccomp filter, so (like
     * runc) it goes in before the capabilities are dropped; we do it here, before the sync point,
     * so that the kernel's work on it (checking, converting and JIT-compiling the program and
     * pre-evaluating it for every syscall number: 0.3-0.7 ms for Docker's profile) overlaps with
     * the parent's cgroup writes instead of delaying the exec. The profile must then allow what
     * runs until exec: read (the sync byte), prlimit64, fcntl, dup2, close_range, chdir, prctl,
     * setgroups, setres[ug]id, capset, rt_sigprocmask, execve (and write + exit_group to report
     * a failure); Docker's and Berth's default profiles do. With no_new_privs it goes in last. */
    if (cfg->seccomp_len && !cfg->no_new_privs && install_seccomp(cfg) != 0) fail(cfg, BERTH_STAGE_SECCOMP, errno, -1, 0);

    /* The sync point. The rootfs work above overlaps with the parent's: it puts us in cgroups and
     * moves links into our network namespace, then sends one byte (or closes its end to abort).
     * Nothing of the container's program runs before that. */
    wait_for_parent(cfg);

    /* Before setuid: raising a hard limit needs CAP_SYS_RESOURCE. */
    for (int i = 0; i < cfg->rlimit_count; i++) {
        struct rlimit64 lim = { cfg->rlimits[i].soft, cfg->rlimits[i].hard };
        if (prlimit64(0, (enum __rlimit_resource)cfg->rlimits[i].resource, &lim, NULL) != 0)
            fail(cfg, BERTH_STAGE_RLIMIT, errno, i, 0);
    }

    /* stdio: move sources out of 0..2 first so that dup2 cannot clobber a later source. */
    int src[3] = { cfg->stdio[0], cfg->stdio[1], cfg->stdio[2] };
    if (console >= 0) src[0] = src[1] = src[2] = console;
    for (int i = 0; i < 3; i++) {
        if (src[i] >= 0 && src[i] < 3 && src[i] != i) {
            src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
            if (src[i] < 0) fail(cfg, BERTH_STAGE_STDIO, errno, i, 0);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (src[i] < 0) continue;
        if (src[i] == i) { if (fcntl(i, F_SETFD, 0) != 0) fail(cfg, BERTH_STAGE_STDIO, errno, i, 0); }
        else if (dup2(src[i], i) != i) fail(cfg, BERTH_STAGE_STDIO, errno, i, 0);
    }
    /* A terminal: a new session (we are not a group leader: the parent's group is ours) whose
     * controlling terminal is the pty slave now on fd 0, as a login shell gets. */
    if (cfg->controlling_tty) {
        if (setsid() < 0) fail(cfg, BERTH_STAGE_STDIO, errno, 0, 1);
        if (ioctl(0, TIOCSCTTY, 0) != 0) fail(cfg, BERTH_STAGE_STDIO, errno, 0, 2);
    }
    /* Nothing of the parent beyond stdio may reach the container. */
    if (berth_close_range(3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) != 0) {
        for (int fd = 3; fd < 1024; fd++) if (fd != cfg->error_fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }

    if (cfg->cwd && chdir(cfg->cwd) != 0) fail(cfg, BERTH_STAGE_CWD, errno, -1, 0);

    if (cfg->set_caps) {
        for (int c = 0; c <= cfg->last_cap && c < 64; c++) {
            if (cfg->cap_bounding & (1ULL << c)) continue;
            if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) fail(cfg, BERTH_STAGE_BOUNDING, errno, c, 0);
        }
        if (cfg->set_user && cfg->uid != 0 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) fail(cfg, BERTH_STAGE_KEEPCAPS, errno, -1, 0);
    }
    if (cfg->set_user) {
        if (raw_setgroups((size_t)cfg->group_count, cfg->group_count ? cfg->groups : NULL) != 0 && errno != EPERM)
            fail(cfg, BERTH_STAGE_SETGROUPS, errno, -1, 0);
        if (raw_setresgid(cfg->gid) != 0) fail(cfg, BERTH_STAGE_SETGID, errno, -1, 0);
        if (raw_setresuid(cfg->uid) != 0) fail(cfg, BERTH_STAGE_SETUID, errno, -1, 0);
    }
    if (cfg->set_caps) {
        if (set_caps(cfg) != 0) fail(cfg, BERTH_STAGE_CAPSET, errno, -1, 0);
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        uint64_t raisable = cfg->cap_ambient & cfg->cap_permitted & cfg->cap_inheritable;
        for (int c = 0; c <= cfg->last_cap && c < 64; c++) {
            if (!(raisable & (1ULL << c))) continue;
            if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0) fail(cfg, BERTH_STAGE_AMBIENT, errno, c, 0);
        }
    }
    if (cfg->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(cfg, BERTH_STAGE_NO_NEW_PRIVS, errno, -1, 0);

    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) fail(cfg, BERTH_STAGE_SIGNALS, errno, -1, 0);
    if (cfg->seccomp_len && cfg->no_new_privs && install_seccomp(cfg) != 0) fail(cfg, BERTH_STAGE_SECCOMP, errno, -1, 0);
    exec_program(cfg);
}

static int no_clone3 = 0;

void berth_spawn_use_clone3(int enabled) { __atomic_store_n(&no_clone3, !enabled, __ATOMIC_RELAXED); }

/* clone3 with CLONE_PIDFD, falling back to clone; fork-like (no new stack, no CLONE_VM). */
static pid_t clone_child(const struct berth_spawn_config *cfg, int *pidfd) {
    *pidfd = -1;
    pid_t pid = -1;
#ifdef SYS_clone3
    if (!__atomic_load_n(&no_clone3, __ATOMIC_RELAXED)) {
        int fd = -1;
        struct berth_clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = (uint64_t)(unsigned)cfg->clone_flags | CLONE_PIDFD;
        args.pidfd = (uint64_t)(uintptr_t)&fd;
        args.exit_signal = SIGCHLD;
        pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        if (pid == 0) child_main(cfg);
        if (pid > 0) { *pidfd = fd; return pid; }
        if (errno != ENOSYS) return -1;
        __atomic_store_n(&no_clone3, 1, __ATOMIC_RELAXED);
    }
#endif
    pid = (pid_t)syscall(SYS_clone, (unsigned long)cfg->clone_flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) child_main(cfg);
    if (pid > 0) *pidfd = berth_pidfd_open(pid, 0);
    return pid;
}

static pid_t clone_blocked(const struct berth_spawn_config *cfg, int *pidfd) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone_child(cfg, pidfd);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return pid;
}

struct pidns_job { const struct berth_spawn_config *cfg; pid_t pid; int pidfd; int err; };

/* Joining a pid namespace only affects children of the calling thread, so a short-lived thread
 * enters it and clones from there. */
static void *pidns_thread(void *arg) {
    struct pidns_job *job = arg;
    if (setns(job->cfg->pid_ns_fd, CLONE_NEWPID) != 0) { job->err = errno; job->pid = -1; return NULL; }
    job->pid = clone_blocked(job->cfg, &job->pidfd);
    job->err = job->pid < 0 ? errno : 0;
    return NULL;
}

pid_t berth_spawn(const struct berth_spawn_config *cfg, int *pidfd) {
    if (cfg->pid_ns_fd < 0) return clone_blocked(cfg, pidfd);
    struct pidns_job job = { cfg, -1, -1, 0 };
    pthread_t t;
    int rc = pthread_create(&t, NULL, pidns_thread, &job);
    if (rc != 0) { errno = rc; return -1; }
    pthread_join(t, NULL);
    *pidfd = job.pidfd;
    if (job.pid < 0) errno = job.err;
    return job.pid;
}

int berth_wait_child(pid_t pid, int pidfd, int nohang, int *exited, int *code) {
    siginfo_t info;
    for (;;) {
        memset(&info, 0, sizeof info);
        int rc = pidfd >= 0 ? waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | (nohang ? WNOHANG : 0))
                            : waitid(P_PID, (id_t)pid, &info, WEXITED | (nohang ? WNOHANG : 0));
        if (rc == 0) break;
        if (errno == EINTR) continue;
        if (pidfd >= 0 && errno == EINVAL) { pidfd = -1; continue; }
        return -1;
    }
    if (info.si_pid == 0) return 0;
    *exited = info.si_code == CLD_EXITED;
    *code = info.si_status;
    return 1;
}

int berth_sync_pair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

int berth_sync_release(int fd) {
    char one = 1;
    ssize_t n;
    do n = send(fd, &one, 1, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

int berth_recv_fd(int sock, int *fd) {
    struct fd_message m;
    fd_message_init(&m);
    struct msghdr msg = m.msg;
    ssize_t n;
    do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    if (n == 0) return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) {
            memcpy(fd, CMSG_DATA(c), sizeof(int));
            return 1;
        }
    }
    errno = EBADMSG;
    return -1;
}

int berth_cap_last_cap(void) {
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 40;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 40;
    int v = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (buf[i] - '0');
    return v;
}
