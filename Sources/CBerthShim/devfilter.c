/* A cgroup2 device filter: the BPF_PROG_TYPE_CGROUP_DEVICE program that does on a cgroup2
 * hierarchy what the v1 devices controller's allow/deny lists do. Built from Berth's DeviceRule
 * list (see DeviceRule+Cgroup.swift), loaded and attached with the bpf(2) system call. */
#include "berth_shim.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_INSNS 4096

static int emit(struct bpf_insn *prog, int *n, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    if (*n >= MAX_INSNS) return -1;
    struct bpf_insn i = { .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
    prog[(*n)++] = i;
    return 0;
}

/* rules: 5 ints each (allow, type: 0 all / 1 block / 2 char, major or -1, minor or -1, access
 * mask: 1 mknod, 2 read, 4 write). The last matching rule decides, as the v1 lists do when they
 * start with a deny (or allow) of everything; no match denies. */
int berth_device_filter_attach(int cgroup_fd, const int *rules, int nrules, char *log, int log_size) {
    struct bpf_insn *prog = calloc(MAX_INSNS, sizeof *prog);
    if (!prog) return -ENOMEM;
    int n = 0, unconditional = 0;
    /* r2 = device type, r3 = requested access, r4 = major, r5 = minor (struct bpf_cgroup_dev_ctx). */
    emit(prog, &n, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, 0, 0);
    emit(prog, &n, BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xFFFF);
    emit(prog, &n, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_3, BPF_REG_1, 0, 0);
    emit(prog, &n, BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
    emit(prog, &n, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_4, BPF_REG_1, 4, 0);
    emit(prog, &n, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_5, BPF_REG_1, 8, 0);
    for (int r = nrules - 1; r >= 0; r--) {
        const int *rule = rules + 5 * r;
        int allow = rule[0], type = rule[1], major = rule[2], minor = rule[3], access = rule[4] & 7;
        /* Count the block's checks first: each jumps past the rest of the block. */
        int checks = 0;
        if (type != 0) checks += 1;
        if (type != 0 && major >= 0) checks += 1;
        if (type != 0 && minor >= 0) checks += 1;
        if (type != 0 && access != 7) checks += 3;
        int length = checks + 2, at = 0;
        if (type != 0) {
            int bpf_type = type == 1 ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
            emit(prog, &n, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, (int16_t)(length - at - 1), bpf_type); at++;
            if (major >= 0) { emit(prog, &n, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, (int16_t)(length - at - 1), major); at++; }
            if (minor >= 0) { emit(prog, &n, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, (int16_t)(length - at - 1), minor); at++; }
            if (access != 7) {
                /* Every requested access must be in the rule's: (access & ~rule) == 0. */
                emit(prog, &n, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0); at++;
                emit(prog, &n, BPF_ALU | BPF_AND | BPF_K, BPF_REG_1, 0, 0, ~access & 7); at++;
                emit(prog, &n, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_1, 0, (int16_t)(length - at - 1), 0); at++;
            }
        }
        emit(prog, &n, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, allow ? 1 : 0);
        if (emit(prog, &n, BPF_JMP | BPF_EXIT, 0, 0, 0, 0) != 0) { free(prog); return -E2BIG; }
        /* A rule that matches everything decides alone: what follows would be unreachable,
         * which the verifier refuses. */
        if (checks == 0) { unconditional = 1; break; }
    }
    if (!unconditional) {
        emit(prog, &n, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
        if (emit(prog, &n, BPF_JMP | BPF_EXIT, 0, 0, 0, 0) != 0) { free(prog); return -E2BIG; }
    }

    union bpf_attr load;
    memset(&load, 0, sizeof load);
    load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    load.insns = (uint64_t)(uintptr_t)prog;
    load.insn_cnt = (uint32_t)n;
    load.license = (uint64_t)(uintptr_t)"Apache-2.0";
    if (log && log_size > 0) {
        log[0] = 0;
        load.log_buf = (uint64_t)(uintptr_t)log;
        load.log_size = (uint32_t)log_size;
        load.log_level = 1;
    }
    int fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
    if (fd < 0 && errno == ENOSPC && log) {  /* the log did not fit: load again without one */
        load.log_buf = 0; load.log_size = 0; load.log_level = 0;
        fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
    }
    int load_errno = errno;
    free(prog);
    if (fd < 0) return -load_errno;

    union bpf_attr attach;
    memset(&attach, 0, sizeof attach);
    attach.target_fd = (uint32_t)cgroup_fd;
    attach.attach_bpf_fd = (uint32_t)fd;
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    int rc = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach);
    int err = errno;
    close(fd);  /* the cgroup holds the attached program */
    return rc < 0 ? -err : 0;
}
