/* Helpers for BerthPortMapper's userland proxy that Glibc does not export to Swift. */
#include "berth_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <sys/socket.h>

int berth_accept4_nonblock(int fd) {
    return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int berth_set_pipe_size(int fd, int size) {
    return fcntl(fd, F_SETPIPE_SZ, size);
}

#include <sys/epoll.h>
#include <sys/eventfd.h>

int berth_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int berth_epoll_add(int epfd, int fd, uint32_t events) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = 0;
    ev.data.fd = fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int berth_epoll_wait(int epfd, int *fds, uint32_t *events, int max, long long timeout_us) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n;
    if (timeout_us < 0) {
        n = epoll_wait(epfd, evs, max, -1);
    } else {
        struct timespec ts = { .tv_sec = timeout_us / 1000000, .tv_nsec = (timeout_us % 1000000) * 1000 };
        n = epoll_pwait2(epfd, evs, max, &ts, NULL);
        if (n < 0 && errno == ENOSYS)  /* before Linux 5.11: whole milliseconds, rounded up */
            n = epoll_wait(epfd, evs, max, (int)((timeout_us + 999) / 1000));
    }
    for (int i = 0; i < n; i++) {
        fds[i] = evs[i].data.fd;
        events[i] = evs[i].events;
    }
    return n;
}

int berth_eventfd_nonblock(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
