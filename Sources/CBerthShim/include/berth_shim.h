#ifndef BERTH_SHIM_H
#define BERTH_SHIM_H

/*
 * CBerthShim: the syscalls Glibc does not export to Swift, plus (in later files) the
 * clone-to-exec child trampoline. Every function returns -1 and leaves errno set on failure.
 */
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/ioctl.h>

/* Namespace flags, re-exported because the CLONE_* macros do not import into Swift. */
extern const int berth_CLONE_NEWNS;
extern const int berth_CLONE_NEWUTS;
extern const int berth_CLONE_NEWIPC;
extern const int berth_CLONE_NEWPID;
extern const int berth_CLONE_NEWNET;
extern const int berth_CLONE_NEWUSER;
extern const int berth_CLONE_NEWCGROUP;

int berth_unshare(int flags);
int berth_setns(int fd, int nstype);
pid_t berth_gettid(void);
int berth_pipe2(int fds[2], int flags);
int berth_dup3(int oldfd, int newfd, int flags);
int berth_memfd_create(const char *name, unsigned int flags);
int berth_pidfd_open(pid_t pid, unsigned int flags);
int berth_pidfd_send_signal(int pidfd, int sig);
int berth_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);
int berth_close_range(unsigned int first, unsigned int last, unsigned int flags);
ssize_t berth_splice(int fd_in, int fd_out, size_t len, unsigned int flags);
int berth_errno(void);

/* Sets IFF_UP on the loopback device of the calling thread's network namespace. */
int berth_loopback_up(void);

/* unixsock.c: a listening or connected AF_UNIX stream socket (close-on-exec) at `path`; a path
 * longer than sun_path is reached through /proc/self/fd/N of its directory. */
int berth_unix_listen(const char *path, int backlog);
int berth_unix_connect(const char *path);

/* proxy.c (BerthPortMapper's userland proxy) */
/* accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC). */
int berth_accept4_nonblock(int fd);
/* fcntl(fd, F_SETPIPE_SZ, size): returns the new pipe capacity. */
int berth_set_pipe_size(int fd, int size);

/* epoll without the packed struct epoll_event, which Swift imports awkwardly. */
#define BERTH_EPOLLIN 0x001u
#define BERTH_EPOLLOUT 0x004u
#define BERTH_EPOLLERR 0x008u
#define BERTH_EPOLLHUP 0x010u
#define BERTH_EPOLLRDHUP 0x2000u
#define BERTH_EPOLLET 0x80000000u
/* epoll_create1(EPOLL_CLOEXEC). */
int berth_epoll_create(void);
/* EPOLL_CTL_ADD with data.fd = fd. */
int berth_epoll_add(int epfd, int fd, uint32_t events);
/* epoll_wait into parallel arrays of fds and event masks (at most 256); timeout in
 * microseconds (epoll_pwait2), negative to wait without one. */
int berth_epoll_wait(int epfd, int *fds, uint32_t *events, int max, long long timeout_us);
/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). */
int berth_eventfd_nonblock(void);

/* ---------------------------------------------------------------------------------------------
 * Container spawn (spawn.c): clone into new or joined namespaces, set up the rootfs, apply the
 * security settings and exec. The parent fills a berth_spawn_config completely before calling
 * berth_spawn; the child only reads it (it runs on a copy-on-write copy of the parent's memory,
 * never allocates and never calls into Swift). A failure in the child is written to error_fd as
 * a struct berth_child_error and the child exits with status 127.
 * ------------------------------------------------------------------------------------------- */

/* What a step of the rootfs plan does. */
enum berth_op_kind {
    BERTH_OP_MOUNT = 1,      /* mount(source, target, fstype, flags, data), then optional remount */
    BERTH_OP_MKNOD = 2,      /* mknod(target, mode, dev) (create an empty file first on EEXIST: ignored) */
    BERTH_OP_SYMLINK = 3,    /* symlink(source, target) */
    BERTH_OP_MKDIR = 4,      /* mkdir -p target with mode */
};

/* How to create a mount target before mounting. */
enum berth_op_create { BERTH_CREATE_NONE = 0, BERTH_CREATE_DIR = 1, BERTH_CREATE_FILE = 2 };

/* One step of the rootfs plan; paths are absolute host paths (under the rootfs) before pivot_root. */
struct berth_mount_op {
    int kind;                 /* enum berth_op_kind */
    int create;               /* enum berth_op_create */
    int optional;             /* ignore ENOENT/EPERM/EACCES/EINVAL failures of this step */
    unsigned int mode;        /* MKNOD/MKDIR mode */
    unsigned long long dev;   /* MKNOD device number */
    const char *source;
    const char *target;
    const char *fstype;
    const char *data;
    unsigned long flags;          /* mount flags */
    unsigned long remount_flags;  /* non-zero: remount with MS_BIND|MS_REMOUNT|remount_flags after a bind */
    unsigned long propagation;    /* non-zero: mount(NULL, target, NULL, propagation) afterwards */
};

/* Where the child failed. */
enum berth_stage {
    BERTH_STAGE_SYNC = 1, BERTH_STAGE_SETNS, BERTH_STAGE_USERNS_ROOT, BERTH_STAGE_MAKE_PRIVATE,
    BERTH_STAGE_BIND_ROOTFS, BERTH_STAGE_MOUNT, BERTH_STAGE_PIVOT_ROOT, BERTH_STAGE_ROOT_READONLY,
    BERTH_STAGE_MASK, BERTH_STAGE_READONLY_PATH, BERTH_STAGE_HOSTNAME, BERTH_STAGE_DOMAINNAME,
    BERTH_STAGE_CWD, BERTH_STAGE_BOUNDING, BERTH_STAGE_KEEPCAPS, BERTH_STAGE_SETGROUPS,
    BERTH_STAGE_SETGID, BERTH_STAGE_SETUID, BERTH_STAGE_CAPSET, BERTH_STAGE_AMBIENT,
    BERTH_STAGE_NO_NEW_PRIVS, BERTH_STAGE_SECCOMP, BERTH_STAGE_STDIO, BERTH_STAGE_EXEC,
    BERTH_STAGE_SIGNALS, BERTH_STAGE_PDEATHSIG, BERTH_STAGE_CHROOT, BERTH_STAGE_LOOPBACK, BERTH_STAGE_RLIMIT,
    BERTH_STAGE_CONSOLE
};

/* Sub-steps of BERTH_STAGE_MOUNT. */
enum berth_mount_step { BERTH_STEP_MOUNT = 0, BERTH_STEP_CREATE = 1, BERTH_STEP_REMOUNT = 2,
                        BERTH_STEP_PROPAGATION = 3 };

/* Sub-steps of BERTH_STAGE_CONSOLE. */
enum berth_console_step { BERTH_CONSOLE_OPEN_PTMX = 0, BERTH_CONSOLE_UNLOCK = 1, BERTH_CONSOLE_OPEN_SLAVE = 2,
                          BERTH_CONSOLE_CHOWN = 3, BERTH_CONSOLE_WINSIZE = 4, BERTH_CONSOLE_SEND = 5 };

/* What the child reports on the error pipe. */
struct berth_child_error {
    int32_t stage;   /* enum berth_stage */
    int32_t err;     /* errno */
    int32_t index;   /* index into the op / path / namespace list, or -1 */
    int32_t step;    /* enum berth_mount_step for BERTH_STAGE_MOUNT */
};

#define BERTH_MAX_JOIN 8

/* One resource limit (setrlimit resource number, soft and hard values). */
struct berth_rlimit { int resource; uint64_t soft; uint64_t hard; };

struct berth_spawn_config {
    int clone_flags;                 /* CLONE_NEW* for namespaces to create */
    int join_fds[BERTH_MAX_JOIN];    /* namespaces to join with setns, in order (not pid) */
    int join_types[BERTH_MAX_JOIN];
    int join_count;
    int pid_ns_fd;                   /* pid namespace to join (-1: none); the clone then runs on a helper thread */

    int sync_fd;                     /* the child's end of the sync socket (-1: no sync): it reads one
                                        byte before exec (and one more first thing when userns_root) */
    int error_fd;                    /* close-on-exec pipe for struct berth_child_error */
    int close_fds[4];                /* parent-side pipe ends the child must close (-1: unused) */
    const int *keep_fds;             /* ascending: every other descriptor is closed first thing */
    int keep_count;

    const char *rootfs;              /* NULL: no rootfs setup (stay in the current mount tree) */
    int pivot;                       /* 1: pivot_root into rootfs (new mount ns); 0: chroot */
    int readonly_root;
    const struct berth_mount_op *ops;
    int op_count;
    const char *const *masked_paths; /* inside the new root */
    int masked_count;
    const char *const *readonly_paths;
    int readonly_count;

    const char *hostname;            /* NULL: leave */
    const char *domainname;
    const char *cwd;                 /* NULL: leave */

    int loopback_up;                 /* 1: bring up lo (a new network namespace has it down) */
    int userns_root;                 /* 1: setresuid/setresgid(0) right after sync (new user namespace) */
    int set_user;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;

    const struct berth_rlimit *rlimits;
    int rlimit_count;

    int stdio[3];                    /* -1: inherit */
    int controlling_tty;             /* 1: after stdio, setsid() and make fd 0 (a pty slave) the
                                      * controlling terminal (TIOCSCTTY) */
    int console_fd;                  /* -1: none. Else the child's end of a unix socket: once the rootfs
                                      * is set up (inside the container's mount namespace, created or
                                      * joined) the child opens a pty through /dev/ptmx, so from the
                                      * container's own devpts, sends the master on this socket
                                      * (SCM_RIGHTS, before the sync point) and puts the slave on 0/1/2
                                      * (stdio[] is ignored); set controlling_tty too */
    unsigned short console_rows;     /* the console's initial window size (0 x 0: the kernel's default) */
    unsigned short console_cols;
    int pdeathsig;                   /* 0: none */

    char *const *argv;
    char *const *envp;
    const char *search_path;         /* PATH used to find argv[0] when it has no slash */
    char *scratch;                   /* a writable buffer for path building */
    size_t scratch_size;

    int set_caps;
    int last_cap;
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    int no_new_privs;
    const void *seccomp_filter;      /* struct sock_filter[], 8-byte aligned */
    unsigned short seccomp_len;      /* number of instructions; 0: none */
};

/* Clones the child described by cfg. Returns its pid (and a pidfd in *pidfd, or -1 when the kernel
 * has none) or -1 with errno set. Signals are blocked in the calling thread around the clone. */
pid_t berth_spawn(const struct berth_spawn_config *cfg, int *pidfd);

/* Opens a pseudo-terminal pair, both ends close-on-exec, the master non-blocking when nonblock.
 * Copies *size onto it when not NULL. Returns 0, or -1 with errno set (nothing left open). */
int berth_openpty(int *master, int *slave, int nonblock, const struct winsize *size);
/* TIOCGWINSZ / TIOCSWINSZ. */
int berth_get_winsize(int fd, struct winsize *size);
int berth_set_winsize(int fd, const struct winsize *size);

/* Turns clone3 off (0) or back on (1): the fallback to clone + pidfd_open, for kernels before
 * 5.3 and for tests. clone3 is turned off automatically when the kernel answers ENOSYS. */
void berth_spawn_use_clone3(int enabled);

/* Waits for a child: via waitid(P_PIDFD) when pidfd >= 0, else waitpid. Sets *exited to 1 and
 * *code to the exit status, or *exited to 0 and *code to the signal number. nohang: returns 0
 * without waiting when the child is still running (and 1 when it was reaped). */
int berth_wait_child(pid_t pid, int pidfd, int nohang, int *exited, int *code);

/* A close-on-exec socket pair for the sync point (a write to a dead child fails with EPIPE
 * instead of raising SIGPIPE) and for the console, and the parent's release: one byte sent with
 * MSG_NOSIGNAL. */
int berth_sync_pair(int fds[2]);
int berth_sync_release(int fd);

/* Receives one descriptor sent with SCM_RIGHTS on a unix socket (the console master): returns 1
 * and sets *fd (close-on-exec), 0 when the peer closed without sending, -1 with errno set. */
int berth_recv_fd(int sock, int *fd);

/* Reads /proc/sys/kernel/cap_last_cap (40 when unreadable). */
int berth_cap_last_cap(void);

/* abi_probe.c: 1 when the kernel executes x32 system calls (x86_64 built with
 * CONFIG_X86_X32_ABI), 0 when it answers ENOSYS or the machine is not x86_64. */
int berth_kernel_runs_x32(void);

/* nftrules.c: rules that iptables-nft made with `-m comment --comment C`, deleted over netlink. */
struct berth_nft_comment_rules {
    const char *table;    /* "nat", "filter" (family ip) */
    const char *chain;    /* "BERTH", "POSTROUTING", ... */
    const char *comment;  /* the exact comment (1-255 bytes) */
    unsigned int count;   /* delete at most this many rules of the chain with this comment */
};
/* Deletes, in the calling thread's network namespace and in one nf_tables transaction, the rules
 * of the given chains whose comment (an xtables comment match, or a comment in the rule's
 * userdata) equals a set's comment, at most `count` per set. The transaction carries the
 * generation id read before the rules were listed, so it fails (ERESTART) rather than acting on a
 * changed rule set. Returns the number of rules deleted (0: none matched, nothing sent), or -1
 * with errno set and nothing deleted. */
int berth_nft_delete_commented(const struct berth_nft_comment_rules *sets, size_t count);

/* nftrules.c: one port-mapping rule as iptables-nft 1.8 writes it (family ip): optional
 * interface and address matches, the protocol with an optional destination port (native nf_tables
 * expressions), `-m comment --comment C` (an xtables comment match), a counter, and ACCEPT, DNAT
 * (xt_DNAT revision 2, to address:port) or MASQUERADE (revision 0). Addresses in network order. */
enum { BERTH_NFT_ACCEPT = 1, BERTH_NFT_DNAT = 2, BERTH_NFT_MASQUERADE = 3 };
struct berth_nft_port_rule {
    const char *table;      /* "nat", "filter" */
    const char *chain;
    int insert;             /* 1: at the head of the chain (-I CHAIN 1), 0: appended (-A) */
    const char *iifname;    /* NULL: any */
    int iif_invert;         /* ! -i */
    const char *oifname;    /* NULL: any */
    unsigned char l4proto;  /* IPPROTO_TCP, IPPROTO_UDP */
    uint32_t saddr, smask;  /* smask 0: no -s */
    uint32_t daddr, dmask;  /* dmask 0: no -d */
    uint16_t dport;         /* host order; 0: no --dport */
    const char *comment;    /* 1-255 bytes */
    int target;             /* BERTH_NFT_* */
    uint32_t to_addr;       /* DNAT */
    uint16_t to_port;       /* DNAT, host order; 0: the address only */
};
/* Adds the rules, in the calling thread's network namespace, in one nf_tables transaction (all
 * or none). The chains must exist. Returns 0, or -1 with errno set (ENOENT: a table or chain is
 * missing; EOPNOTSUPP/ENOENT for an xtables extension the kernel lacks). */
int berth_nft_add_rules(const struct berth_nft_port_rule *rules, size_t count);

/* Loads a cgroup2 device filter (BPF_PROG_TYPE_CGROUP_DEVICE) built from `nrules` rules of 5
 * ints (allow, type 0 all / 1 block / 2 char, major or -1, minor or -1, access mask 1 mknod /
 * 2 read / 4 write; the last matching rule decides, no match denies) and attaches it to the
 * cgroup2 directory `cgroup_fd` (BPF_F_ALLOW_MULTI). 0 or -errno; the verifier's log goes to
 * `log` when one is given. */
int berth_device_filter_attach(int cgroup_fd, const int *rules, int nrules, char *log, int log_size);

#endif
