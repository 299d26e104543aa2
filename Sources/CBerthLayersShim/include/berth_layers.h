#ifndef BERTH_LAYERS_H
#define BERTH_LAYERS_H
#include <stdint.h>
#include <sys/types.h>
#include <sys/xattr.h>

/// O_PATH (Glibc exposes it only with _GNU_SOURCE).
#define BERTH_O_PATH 010000000

/// RESOLVE_* flags of openat2(2).
#define BERTH_RESOLVE_NO_XDEV 0x01
#define BERTH_RESOLVE_NO_MAGICLINKS 0x02
#define BERTH_RESOLVE_NO_SYMLINKS 0x04
#define BERTH_RESOLVE_BENEATH 0x08
#define BERTH_RESOLVE_IN_ROOT 0x10

/// openat2(2): opens `path` relative to `dirfd` with `flags`, `mode` and RESOLVE_* `resolve`.
/// Returns the fd or -1 with errno set (ENOSYS on kernels older than 5.6).
int berth_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/// makedev(3) and major/minor as functions (they are macros in glibc).
uint64_t berth_makedev(unsigned int major, unsigned int minor);
unsigned int berth_major(uint64_t dev);
unsigned int berth_minor(uint64_t dev);
#endif
