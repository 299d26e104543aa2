#include "berth_shim.h"
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>

int berth_kernel_runs_x32(void) {
#if defined(__x86_64__)
    /* getpid through the x32 ABI (__X32_SYSCALL_BIT | 39): ENOSYS when the kernel was built
     * without CONFIG_X86_X32_ABI. Any other answer (a pid, or EPERM from a seccomp filter we
     * already run under) counts as "runs x32", the safe side. */
    long pid = syscall(0x40000000L | SYS_getpid);
    return pid == -1 && errno == ENOSYS ? 0 : 1;
#else
    return 0;
#endif
}
