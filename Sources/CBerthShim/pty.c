#include "berth_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

int berth_openpty(int *master, int *slave, int nonblock, const struct winsize *size) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
    if (m < 0) return -1;
    int unlock = 0;
    /* TIOCGPTPEER opens the slave from the master itself: no path lookup, no race with a
     * devpts mount over /dev/pts. Older kernels: ptsname_r + open. */
    if (ioctl(m, TIOCSPTLCK, &unlock) != 0) goto fail;
    int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        char name[64];
        if (ptsname_r(m, name, sizeof name) != 0) goto fail;
        s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s < 0) goto fail;
    }
    if (size && ioctl(m, TIOCSWINSZ, size) != 0) { int e = errno; close(s); close(m); errno = e; return -1; }
    *master = m;
    *slave = s;
    return 0;
fail:;
    int e = errno;
    close(m);
    errno = e;
    return -1;
}

int berth_get_winsize(int fd, struct winsize *size) { return ioctl(fd, TIOCGWINSZ, size); }
int berth_set_winsize(int fd, const struct winsize *size) { return ioctl(fd, TIOCSWINSZ, size); }
