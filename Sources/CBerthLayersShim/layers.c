#include "berth_layers.h"
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <string.h>
#include <errno.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct berth_open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };

int berth_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct berth_open_how how;
    memset(&how, 0, sizeof how);
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    long rc;
    do { rc = syscall(SYS_openat2, dirfd, path, &how, sizeof how); } while (rc < 0 && errno == EINTR);
    return (int)rc;
}

uint64_t berth_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
unsigned int berth_major(uint64_t dev) { return major(dev); }
unsigned int berth_minor(uint64_t dev) { return minor(dev); }
