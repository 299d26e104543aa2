#ifndef BERTH_SHIM_H
#define BERTH_SHIM_H

/*
 * CBerthShim: the syscalls Glibc does not export to Swift, plus (in later files) the
 * clone-to-exec child trampoline. Every function returns -1 and leaves errno set on failure.
 */
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

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

#endif
