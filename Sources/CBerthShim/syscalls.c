#include "berth_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

const int berth_CLONE_NEWNS = CLONE_NEWNS;
const int berth_CLONE_NEWUTS = CLONE_NEWUTS;
const int berth_CLONE_NEWIPC = CLONE_NEWIPC;
const int berth_CLONE_NEWPID = CLONE_NEWPID;
const int berth_CLONE_NEWNET = CLONE_NEWNET;
const int berth_CLONE_NEWUSER = CLONE_NEWUSER;
const int berth_CLONE_NEWCGROUP = CLONE_NEWCGROUP;

int berth_unshare(int flags) { return unshare(flags); }
int berth_setns(int fd, int nstype) { return setns(fd, nstype); }
pid_t berth_gettid(void) { return (pid_t)syscall(SYS_gettid); }
int berth_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int berth_dup3(int oldfd, int newfd, int flags) { return dup3(oldfd, newfd, flags); }
int berth_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }

int berth_pidfd_open(pid_t pid, unsigned int flags) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, flags);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int berth_pidfd_send_signal(int pidfd, int sig) {
#ifdef SYS_pidfd_send_signal
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int berth_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5) {
    return prctl(option, arg2, arg3, arg4, arg5);
}

int berth_close_range(unsigned int first, unsigned int last, unsigned int flags) {
#ifdef SYS_close_range
    return (int)syscall(SYS_close_range, first, last, flags);
#else
    errno = ENOSYS;
    return -1;
#endif
}

ssize_t berth_splice(int fd_in, int fd_out, size_t len, unsigned int flags) {
    return splice(fd_in, NULL, fd_out, NULL, len, flags);
}

int berth_errno(void) { return errno; }

#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

int berth_loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(s);
    errno = saved;
    return rc;
}
