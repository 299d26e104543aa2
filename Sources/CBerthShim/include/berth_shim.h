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
/* epoll_wait into parallel arrays of fds and event masks (at most 256). */
int berth_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout_ms);
/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). */
int berth_eventfd_nonblock(void);

#endif
