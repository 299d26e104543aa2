/*
 * nftrules.c: deletes iptables-nft rules by their comment, over raw netlink (NETLINK_NETFILTER),
 * without spawning iptables. See berth_nft_delete_commented() in berth_shim.h.
 *
 * Steps, all on one socket opened in the calling thread's network namespace:
 *   1. NFT_MSG_GETGEN: the rule set's generation id.
 *   2. One NFT_MSG_GETRULE dump (family ip) per distinct (table, chain): each rule's handle and
 *      comment. iptables-nft 1.8.x stores `-m comment` as an xtables "comment" match expression
 *      (struct xt_comment_info); nft and later iptables versions keep a comment in the rule's
 *      userdata (TLV type 0): both are read.
 *   3. One NFNL_MSG_BATCH_BEGIN (carrying the generation id) / NFT_MSG_DELRULE... / BATCH_END
 *      transaction, every DELRULE acknowledged. The kernel refuses the batch (ERESTART) when the
 *      rule set changed since step 1, so the handles deleted are exactly the rules read.
 */
#include <errno.h>
#include <sched.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_tables_compat.h>

#include "berth_shim.h"

#define RECV_SIZE (128 * 1024)
#define COMMENT_MAX 256 /* XT_MAX_COMMENT_LEN */
#define UDATA_COMMENT 0 /* NFTNL_UDATA_RULE_COMMENT */

struct buf {
    char *data;
    size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Starts a netfilter message; returns its offset in b (the header is patched by msg_end). */
static long msg_begin(struct buf *b, uint16_t type, uint16_t flags, uint32_t seq, uint8_t family, uint16_t res_id) {
    size_t at = b->len;
    size_t need = NLMSG_ALIGN(sizeof(struct nlmsghdr)) + NLMSG_ALIGN(sizeof(struct nfgenmsg));
    if (buf_reserve(b, need) != 0) return -1;
    memset(b->data + at, 0, need);
    struct nlmsghdr *h = (struct nlmsghdr *)(b->data + at);
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    h->nlmsg_seq = seq;
    struct nfgenmsg *g = (struct nfgenmsg *)(b->data + at + NLMSG_ALIGN(sizeof(struct nlmsghdr)));
    g->nfgen_family = family;
    g->version = NFNETLINK_V0;
    g->res_id = htons(res_id);
    b->len += need;
    return (long)at;
}

static int msg_attr(struct buf *b, uint16_t type, const void *value, size_t len) {
    size_t total = NLA_ALIGN(NLA_HDRLEN + len);
    if (buf_reserve(b, total) != 0) return -1;
    memset(b->data + b->len, 0, total);
    struct nlattr *a = (struct nlattr *)(b->data + b->len);
    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    memcpy(b->data + b->len + NLA_HDRLEN, value, len);
    b->len += total;
    return 0;
}

static int msg_attr_str(struct buf *b, uint16_t type, const char *s) {
    return msg_attr(b, type, s, strlen(s) + 1);
}

static void msg_end(struct buf *b, long at) {
    struct nlmsghdr *h = (struct nlmsghdr *)(b->data + at);
    h->nlmsg_len = (uint32_t)(b->len - (size_t)at);
}

/* Walks the attributes in [p, p+len): calls back with (type without flags, payload, payload length). */
#define FOR_EACH_ATTR(a, p, len)                                                                  \
    for (const struct nlattr *a = (const struct nlattr *)(p);                                     \
         (const char *)a + NLA_HDRLEN <= (const char *)(p) + (len) && a->nla_len >= NLA_HDRLEN && \
         (const char *)a + a->nla_len <= (const char *)(p) + (len);                              \
         a = (const struct nlattr *)((const char *)a + NLA_ALIGN(a->nla_len)))
/* Walks the netlink messages in [p, p+len). */
#define FOR_EACH_MSG(h, p, len)                                                                        \
    for (const struct nlmsghdr *h = (const struct nlmsghdr *)(p);                                      \
         (const char *)h + NLMSG_HDRLEN <= (const char *)(p) + (len) && h->nlmsg_len >= NLMSG_HDRLEN && \
         (const char *)h + h->nlmsg_len <= (const char *)(p) + (len);                                  \
         h = (const struct nlmsghdr *)((const char *)h + NLMSG_ALIGN(h->nlmsg_len)))
#define ATTR_TYPE(a) ((a)->nla_type & NLA_TYPE_MASK)
#define ATTR_DATA(a) ((const char *)(a) + NLA_HDRLEN)
#define ATTR_LEN(a) ((size_t)(a)->nla_len - NLA_HDRLEN)

/* A NUL-terminated attribute equal to s. */
static int attr_is(const struct nlattr *a, const char *s) {
    size_t n = strlen(s);
    return ATTR_LEN(a) >= n + 1 && memcmp(ATTR_DATA(a), s, n) == 0 && ATTR_DATA(a)[n] == '\0';
}

/* Copies a comment of at most len bytes (NUL-terminated or not) into out[COMMENT_MAX + 1]. */
static void copy_comment(char *out, const char *p, size_t len) {
    size_t n = strnlen(p, len < COMMENT_MAX ? len : COMMENT_MAX);
    memcpy(out, p, n);
    out[n] = '\0';
}

/* The rule's comment: userdata TLV type 0, else an xtables "comment" match. Empty if none. */
static void rule_comment(const struct nlattr *exprs, const struct nlattr *udata, char *out) {
    out[0] = '\0';
    if (udata) {
        const unsigned char *p = (const unsigned char *)ATTR_DATA(udata);
        size_t len = ATTR_LEN(udata), i = 0;
        while (i + 2 <= len && i + 2 + p[i + 1] <= len) {
            if (p[i] == UDATA_COMMENT) {
                copy_comment(out, (const char *)p + i + 2, p[i + 1]);
                return;
            }
            i += 2 + p[i + 1];
        }
    }
    if (!exprs) return;
    FOR_EACH_ATTR(elem, ATTR_DATA(exprs), ATTR_LEN(exprs)) {
        if (ATTR_TYPE(elem) != NFTA_LIST_ELEM) continue;
        const struct nlattr *name = NULL, *data = NULL;
        FOR_EACH_ATTR(e, ATTR_DATA(elem), ATTR_LEN(elem)) {
            if (ATTR_TYPE(e) == NFTA_EXPR_NAME) name = e;
            else if (ATTR_TYPE(e) == NFTA_EXPR_DATA) data = e;
        }
        if (!name || !data || !attr_is(name, "match")) continue;
        const struct nlattr *mname = NULL, *info = NULL;
        FOR_EACH_ATTR(m, ATTR_DATA(data), ATTR_LEN(data)) {
            if (ATTR_TYPE(m) == NFTA_MATCH_NAME) mname = m;
            else if (ATTR_TYPE(m) == NFTA_MATCH_INFO) info = m;
        }
        if (mname && info && attr_is(mname, "comment")) {
            copy_comment(out, ATTR_DATA(info), ATTR_LEN(info));
            return;
        }
    }
}

struct found {
    size_t set;       /* index into the caller's sets (for table and chain) */
    uint64_t handle;  /* network byte order, as the kernel sent it */
};

struct state {
    int fd;
    uint32_t seq;
    char *rbuf;
    const struct berth_nft_comment_rules *sets;
    size_t nsets;
    unsigned int *left;  /* per set: how many more rules may still match */
    struct found *found;
    size_t nfound, capfound;
    uint32_t genid;
    int have_genid;
};

static int send_all(int fd, const struct buf *b) {
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t n;
    do n = sendto(fd, b->data, b->len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    if ((size_t)n != b->len) { errno = EMSGSIZE; return -1; }
    return 0;
}

static ssize_t recv_one(struct state *s) {
    ssize_t n;
    do n = recv(s->fd, s->rbuf, RECV_SIZE, MSG_TRUNC);
    while (n < 0 && errno == EINTR);
    if (n > RECV_SIZE) { errno = EMSGSIZE; return -1; }
    return n;
}

/* Records one dumped rule if its comment matches a set of its chain that has room left. */
static int take_rule(struct state *s, const struct nlmsghdr *h) {
    size_t off = NLMSG_ALIGN(sizeof(struct nfgenmsg));
    if (h->nlmsg_len < NLMSG_HDRLEN + off) return 0;
    const char *p = (const char *)NLMSG_DATA(h) + off;
    size_t len = h->nlmsg_len - NLMSG_HDRLEN - off;
    const struct nlattr *table = NULL, *chain = NULL, *handle = NULL, *exprs = NULL, *udata = NULL;
    FOR_EACH_ATTR(a, p, len) {
        switch (ATTR_TYPE(a)) {
        case NFTA_RULE_TABLE: table = a; break;
        case NFTA_RULE_CHAIN: chain = a; break;
        case NFTA_RULE_HANDLE: handle = a; break;
        case NFTA_RULE_EXPRESSIONS: exprs = a; break;
        case NFTA_RULE_USERDATA: udata = a; break;
        }
    }
    if (!table || !chain || !handle || ATTR_LEN(handle) != 8) return 0;
    char comment[COMMENT_MAX + 1];
    rule_comment(exprs, udata, comment);
    if (!comment[0]) return 0;
    for (size_t i = 0; i < s->nsets; i++) {
        const struct berth_nft_comment_rules *set = &s->sets[i];
        if (s->left[i] == 0 || strcmp(set->comment, comment) != 0) continue;
        if (!attr_is(table, set->table) || !attr_is(chain, set->chain)) continue;
        if (s->nfound == s->capfound) {
            size_t cap = s->capfound ? s->capfound * 2 : 16;
            struct found *f = realloc(s->found, cap * sizeof *f);
            if (!f) return -1;
            s->found = f;
            s->capfound = cap;
        }
        uint64_t hv;
        memcpy(&hv, ATTR_DATA(handle), 8);
        s->found[s->nfound++] = (struct found){.set = i, .handle = hv};
        s->left[i]--;
        return 0;
    }
    return 0;
}

/* Reads the replies to request `seq` until NLMSG_DONE (dump) or the ack; handles each data message. */
static int read_replies(struct state *s, uint32_t seq, int dump) {
    for (;;) {
        ssize_t n = recv_one(s);
        if (n < 0) return -1;
        FOR_EACH_MSG(h, s->rbuf, (size_t)n) {
            if (h->nlmsg_seq != seq) continue;
            if (h->nlmsg_flags & NLM_F_DUMP_INTR) { errno = EINTR; return -1; }
            if (h->nlmsg_type == NLMSG_DONE) return 0;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                if (e->error) { errno = -e->error; return -1; }
                if (!dump) return 0;
                continue;
            }
            if ((h->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) continue;
            uint16_t type = h->nlmsg_type & 0xff;
            if (type == NFT_MSG_NEWGEN) {
                size_t off = NLMSG_ALIGN(sizeof(struct nfgenmsg));
                if (h->nlmsg_len < NLMSG_HDRLEN + off) continue;
                FOR_EACH_ATTR(a, (const char *)NLMSG_DATA(h) + off, h->nlmsg_len - NLMSG_HDRLEN - off) {
                    if (ATTR_TYPE(a) == NFTA_GEN_ID && ATTR_LEN(a) == 4) {
                        uint32_t g;
                        memcpy(&g, ATTR_DATA(a), 4);
                        s->genid = ntohl(g);
                        s->have_genid = 1;
                    }
                }
                if (!dump) return 0;
            } else if (type == NFT_MSG_NEWRULE) {
                if (take_rule(s, h) != 0) return -1;
            }
        }
    }
}

static int get_genid(struct state *s) {
    struct buf b = {0};
    uint32_t seq = ++s->seq;
    long at = msg_begin(&b, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST, seq, AF_UNSPEC, 0);
    if (at < 0) return -1;
    msg_end(&b, at);
    int rc = send_all(s->fd, &b);
    free(b.data);
    if (rc != 0) return -1;
    if (read_replies(s, seq, 0) != 0) return -1;
    if (!s->have_genid) { errno = EPROTO; return -1; }
    return 0;
}

static int dump_chain(struct state *s, const char *table, const char *chain) {
    struct buf b = {0};
    uint32_t seq = ++s->seq;
    long at = msg_begin(&b, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_IPV4, 0);
    if (at < 0 || msg_attr_str(&b, NFTA_RULE_TABLE, table) != 0 || msg_attr_str(&b, NFTA_RULE_CHAIN, chain) != 0) {
        free(b.data);
        return -1;
    }
    msg_end(&b, at);
    int rc = send_all(s->fd, &b);
    free(b.data);
    if (rc != 0) return -1;
    return read_replies(s, seq, 1);
}

/* Sends the DELRULE transaction and checks one ack per DELRULE. */
static int delete_found(struct state *s) {
    struct buf b = {0};
    uint32_t first = s->seq + 1;
    long at = msg_begin(&b, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, ++s->seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    uint32_t genid = htonl(s->genid);
    if (at < 0 || msg_attr(&b, NFNL_BATCH_GENID, &genid, 4) != 0) goto fail;
    msg_end(&b, at);
    for (size_t i = 0; i < s->nfound; i++) {
        const struct berth_nft_comment_rules *set = &s->sets[s->found[i].set];
        at = msg_begin(&b, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELRULE, NLM_F_REQUEST | NLM_F_ACK, ++s->seq, NFPROTO_IPV4, 0);
        if (at < 0 || msg_attr_str(&b, NFTA_RULE_TABLE, set->table) != 0 || msg_attr_str(&b, NFTA_RULE_CHAIN, set->chain) != 0 ||
            msg_attr(&b, NFTA_RULE_HANDLE, &s->found[i].handle, 8) != 0)
            goto fail;
        msg_end(&b, at);
    }
    at = msg_begin(&b, NFNL_MSG_BATCH_END, NLM_F_REQUEST, ++s->seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    if (at < 0) goto fail;
    msg_end(&b, at);
    uint32_t last = s->seq;

    /* The whole batch is one skb; the acks of a large one must fit the receive queue. */
    int size = (int)(b.len + 65536);
    if (setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
        (void)setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    int rsize = (int)(s->nfound * 1024 + 65536);
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rsize, sizeof rsize) != 0)
        (void)setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rsize, sizeof rsize);

    if (send_all(s->fd, &b) != 0) goto fail;
    free(b.data);
    b.data = NULL;

    /* Acks arrive after the commit (or the abort), in message order; any error fails the lot. */
    size_t acked = 0;
    while (acked < s->nfound) {
        ssize_t n = recv_one(s);
        if (n < 0) return -1;
        FOR_EACH_MSG(h, s->rbuf, (size_t)n) {
            if (h->nlmsg_seq < first || h->nlmsg_seq > last || h->nlmsg_type != NLMSG_ERROR) continue;
            const struct nlmsgerr *e = NLMSG_DATA(h);
            if (e->error) { errno = -e->error; return -1; }
            if (h->nlmsg_seq != first && h->nlmsg_seq != last) acked++;
        }
    }
    return 0;
fail:
    free(b.data);
    return -1;
}

/* Closing a netfilter socket while a committed transaction awaits its deferred destruction waits
 * for that (an RCU grace period, 4-15 ms here): the kernel flushes its destruction work when the
 * socket is released. A thread of ours would not do: a process's exit waits for all its threads,
 * and an uninterruptible wait cannot be cut short. So the last reference goes to a short-lived
 * process of its own (clone with CLONE_VM and a small stack, its own copy of the descriptor table,
 * which it empties of everything else at once). A detached thread drops our copy first, lets the
 * child go, and reaps it; if this process exits first, the thread just dies and the child is
 * reparented (and reaped) as any orphan. The child uses raw system calls only. */
struct closer {
    int fd;
    _Atomic int go;
    void *stack;
    size_t stack_size;
};

static int closer_child(void *arg) {
    struct closer *c = arg;
    if (c->fd > 0) syscall(SYS_close_range, 0, (unsigned)c->fd - 1, 0);
    syscall(SYS_close_range, (unsigned)c->fd + 1, ~0U, 0);
    while (!c->go) syscall(SYS_futex, &c->go, FUTEX_WAIT, 0, NULL, NULL, 0);
    syscall(SYS_close, c->fd); /* the last reference: the wait happens here */
    return 0;
}

static void *closer_thread(void *arg) {
    struct closer *c = arg;
    pid_t pid = clone(closer_child, (char *)c->stack + c->stack_size, CLONE_VM, c);
    close(c->fd);
    if (pid > 0) {
        c->go = 1;
        syscall(SYS_futex, &c->go, FUTEX_WAKE, 1, NULL, NULL, 0);
        while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR) {}
    }
    munmap(c->stack, c->stack_size);
    free(c);
    return NULL;
}

/* Closes a netfilter socket without waiting, as above. Falls back to closing in place. */
static void close_in_background(int fd) {
    struct closer *c = calloc(1, sizeof *c);
    if (!c) { close(fd); return; }
    c->fd = fd;
    c->stack_size = 64 * 1024;
    c->stack = mmap(NULL, c->stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (c->stack == MAP_FAILED) { free(c); close(fd); return; }
    pthread_attr_t attr;
    pthread_t thread;
    if (pthread_attr_init(&attr) == 0) {
        int ok = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
                 pthread_attr_setstacksize(&attr, 64 * 1024) == 0 &&
                 pthread_create(&thread, &attr, closer_thread, c) == 0;
        pthread_attr_destroy(&attr);
        if (ok) return;
    }
    munmap(c->stack, c->stack_size);
    free(c);
    close(fd);
}

int berth_nft_delete_commented(const struct berth_nft_comment_rules *sets, size_t count) {
    if (count == 0) return 0;
    for (size_t i = 0; i < count; i++) {
        if (!sets[i].table || !sets[i].chain || !sets[i].comment || !sets[i].comment[0] ||
            strlen(sets[i].comment) > COMMENT_MAX - 1) {
            errno = EINVAL;
            return -1;
        }
    }
    struct state s = {.fd = -1, .sets = sets, .nsets = count};
    int result = -1, saved = 0;
    s.left = calloc(count, sizeof *s.left);
    s.rbuf = malloc(RECV_SIZE);
    if (!s.left || !s.rbuf) { saved = ENOMEM; goto out; }
    for (size_t i = 0; i < count; i++) s.left[i] = sets[i].count;

    s.fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (s.fd < 0) { saved = errno; goto out; }
    int one = 1;
    (void)setsockopt(s.fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    struct timeval tv = {.tv_sec = 2};
    (void)setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    /* s.seq starts at 0: the socket is new, replies are matched by their sequence number. */

    if (get_genid(&s) != 0) { saved = errno; goto out; }
    for (size_t i = 0; i < count; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(sets[i].table, sets[j].table) == 0 && strcmp(sets[i].chain, sets[j].chain) == 0;
        if (seen) continue;
        if (dump_chain(&s, sets[i].table, sets[i].chain) != 0) { saved = errno; goto out; }
    }
    if (s.nfound > 0 && delete_found(&s) != 0) { saved = errno; goto out; }
    result = (int)s.nfound;
out:
    if (s.fd >= 0) {
        if (s.nfound > 0) close_in_background(s.fd);
        else close(s.fd);
    }
    free(s.found);
    free(s.left);
    free(s.rbuf);
    if (result < 0) errno = saved;
    return result;
}
