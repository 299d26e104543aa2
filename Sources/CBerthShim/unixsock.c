#include "berth_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Fills `sa` with `path`, or, when it does not fit in sun_path (108 bytes), with
 * /proc/self/fd/N/<name> through an O_PATH descriptor of its directory (*dirfd, to close after
 * the bind or connect). */
static int unix_address(const char *path, struct sockaddr_un *sa, int *dirfd) {
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    *dirfd = -1;
    size_t len = strlen(path);
    if (len < sizeof sa->sun_path) {
        memcpy(sa->sun_path, path, len + 1);
        return 0;
    }
    const char *slash = strrchr(path, '/');
    if (!slash || strlen(slash + 1) + 32 >= sizeof sa->sun_path) { errno = ENAMETOOLONG; return -1; }
    char dir[4096];
    size_t dlen = (size_t)(slash - path);
    if (dlen == 0) dlen = 1;
    if (dlen >= sizeof dir) { errno = ENAMETOOLONG; return -1; }
    memcpy(dir, path, dlen);
    dir[dlen] = 0;
    *dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0) return -1;
    snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", *dirfd, slash + 1);
    return 0;
}

/* A stream socket bound and listening at `path` (backlog >= 0), or connected to it (backlog < 0). */
static int unix_socket(const char *path, int backlog) {
    struct sockaddr_un sa;
    int dirfd;
    if (unix_address(path, &sa, &dirfd) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc;
    if (fd < 0) rc = -1;
    else if (backlog < 0) rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    else if ((rc = bind(fd, (struct sockaddr *)&sa, sizeof sa)) == 0) rc = listen(fd, backlog);
    int e = errno;
    if (dirfd >= 0) close(dirfd);
    if (rc != 0) {
        if (fd >= 0) close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int berth_unix_listen(const char *path, int backlog) {
    return unix_socket(path, backlog < 0 ? 0 : backlog);
}

int berth_unix_connect(const char *path) {
    return unix_socket(path, -1);
}
