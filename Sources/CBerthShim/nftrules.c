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
#include <net/if.h>
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

/* A NETLINK_NETFILTER socket in the calling thread's network namespace: errors carry no copy of
 * the request, a reply that never comes times out. */
static int nft_socket(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0) return -1;
    int one = 1;
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    struct timeval tv = {.tv_sec = 2};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends a BATCH_BEGIN ... BATCH_END transaction whose requests (sequence numbers first..last)
 * each asked for an ack, and waits for those acks. They arrive after the commit (or the abort),
 * in message order; any error fails the lot (the kernel aborted the whole batch). */
static int commit_batch(int fd, const struct buf *b, char *rbuf, uint32_t first, uint32_t last) {
    /* The whole batch is one skb; the acks of a large one must fit the receive queue. */
    size_t expected = last - first + 1;
    int size = (int)(b->len + 65536);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    int rsize = (int)(expected * 1024 + 65536);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rsize, sizeof rsize) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rsize, sizeof rsize);
    if (send_all(fd, b) != 0) return -1;
    size_t acked = 0;
    while (acked < expected) {
        ssize_t n;
        do n = recv(fd, rbuf, RECV_SIZE, MSG_TRUNC);
        while (n < 0 && errno == EINTR);
        if (n < 0) return -1;
        if (n > RECV_SIZE) { errno = EMSGSIZE; return -1; }
        FOR_EACH_MSG(h, rbuf, (size_t)n) {
            if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < first || h->nlmsg_seq > last) continue;
            const struct nlmsgerr *e = NLMSG_DATA(h);
            if (e->error) { errno = -e->error; return -1; }
            acked++;
        }
    }
    return 0;
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
    long at = msg_begin(&b, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, ++s->seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    uint32_t genid = htonl(s->genid);
    if (at < 0 || msg_attr(&b, NFNL_BATCH_GENID, &genid, 4) != 0) goto fail;
    msg_end(&b, at);
    uint32_t first = s->seq + 1;
    for (size_t i = 0; i < s->nfound; i++) {
        const struct berth_nft_comment_rules *set = &s->sets[s->found[i].set];
        at = msg_begin(&b, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELRULE, NLM_F_REQUEST | NLM_F_ACK, ++s->seq, NFPROTO_IPV4, 0);
        if (at < 0 || msg_attr_str(&b, NFTA_RULE_TABLE, set->table) != 0 || msg_attr_str(&b, NFTA_RULE_CHAIN, set->chain) != 0 ||
            msg_attr(&b, NFTA_RULE_HANDLE, &s->found[i].handle, 8) != 0)
            goto fail;
        msg_end(&b, at);
    }
    uint32_t last = s->seq;
    at = msg_begin(&b, NFNL_MSG_BATCH_END, NLM_F_REQUEST, ++s->seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    if (at < 0) goto fail;
    msg_end(&b, at);
    int rc = commit_batch(s->fd, &b, s->rbuf, first, last);
    free(b.data);
    return rc;
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

    s.fd = nft_socket();
    if (s.fd < 0) { saved = errno; goto out; }
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

/* ---- Adding rules ------------------------------------------------------------------------- */

/* Opens a nested attribute; returns its offset (close it with nest_end). */
static long nest_begin(struct buf *b, uint16_t type) {
    if (buf_reserve(b, NLA_HDRLEN) != 0) return -1;
    long at = (long)b->len;
    struct nlattr *a = (struct nlattr *)(b->data + at);
    a->nla_type = (uint16_t)(type | NLA_F_NESTED);
    a->nla_len = NLA_HDRLEN;
    b->len += NLA_HDRLEN;
    return at;
}

static void nest_end(struct buf *b, long at) {
    struct nlattr *a = (struct nlattr *)(b->data + at);
    a->nla_len = (uint16_t)(b->len - (size_t)at);
}

static int attr_be32(struct buf *b, uint16_t type, uint32_t v) {
    uint32_t n = htonl(v);
    return msg_attr(b, type, &n, 4);
}

/* One expression: NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }. The data attributes
 * are written between expr_begin and expr_end. */
struct expr_at { long elem, data; };

static int expr_begin(struct buf *b, const char *name, struct expr_at *at) {
    at->elem = nest_begin(b, NFTA_LIST_ELEM);
    if (at->elem < 0 || msg_attr_str(b, NFTA_EXPR_NAME, name) != 0) return -1;
    at->data = nest_begin(b, NFTA_EXPR_DATA);
    return at->data < 0 ? -1 : 0;
}

static void expr_end(struct buf *b, const struct expr_at *at) {
    nest_end(b, at->data);
    nest_end(b, at->elem);
}

/* NFTA_*_DATA { NFTA_DATA_VALUE value } */
static int data_value(struct buf *b, uint16_t type, const void *value, size_t len) {
    long n = nest_begin(b, type);
    if (n < 0 || msg_attr(b, NFTA_DATA_VALUE, value, len) != 0) return -1;
    nest_end(b, n);
    return 0;
}

/* [ meta load key => reg 1 ] */
static int expr_meta(struct buf *b, uint32_t key) {
    struct expr_at at;
    if (expr_begin(b, "meta", &at) != 0 || attr_be32(b, NFTA_META_DREG, NFT_REG_1) != 0 ||
        attr_be32(b, NFTA_META_KEY, key) != 0)
        return -1;
    expr_end(b, &at);
    return 0;
}

/* [ payload load len b @ base + offset => reg 1 ] */
static int expr_payload(struct buf *b, uint32_t base, uint32_t offset, uint32_t len) {
    struct expr_at at;
    if (expr_begin(b, "payload", &at) != 0 || attr_be32(b, NFTA_PAYLOAD_DREG, NFT_REG_1) != 0 ||
        attr_be32(b, NFTA_PAYLOAD_BASE, base) != 0 || attr_be32(b, NFTA_PAYLOAD_OFFSET, offset) != 0 ||
        attr_be32(b, NFTA_PAYLOAD_LEN, len) != 0)
        return -1;
    expr_end(b, &at);
    return 0;
}

/* [ cmp op reg 1 value ] */
static int expr_cmp(struct buf *b, uint32_t op, const void *value, size_t len) {
    struct expr_at at;
    if (expr_begin(b, "cmp", &at) != 0 || attr_be32(b, NFTA_CMP_SREG, NFT_REG_1) != 0 ||
        attr_be32(b, NFTA_CMP_OP, op) != 0 || data_value(b, NFTA_CMP_DATA, value, len) != 0)
        return -1;
    expr_end(b, &at);
    return 0;
}

/* [ bitwise reg 1 = ( reg 1 & mask ) ^ 0 ] */
static int expr_mask(struct buf *b, const void *mask, size_t len) {
    static const char zero[16];
    struct expr_at at;
    if (expr_begin(b, "bitwise", &at) != 0 || attr_be32(b, NFTA_BITWISE_SREG, NFT_REG_1) != 0 ||
        attr_be32(b, NFTA_BITWISE_DREG, NFT_REG_1) != 0 || attr_be32(b, NFTA_BITWISE_LEN, (uint32_t)len) != 0 ||
        data_value(b, NFTA_BITWISE_MASK, mask, len) != 0 || data_value(b, NFTA_BITWISE_XOR, zero, len) != 0)
        return -1;
    expr_end(b, &at);
    return 0;
}

/* An IPv4 address match at `offset` of the network header, as iptables-nft writes `-s`/`-d`: a
 * mask of whole bytes loads and compares just those bytes (1 for /8); any other mask loads all
 * four and masks them first. */
static int match_addr(struct buf *b, uint32_t offset, uint32_t addr, uint32_t mask) {
    const unsigned char *m = (const unsigned char *)&mask;
    size_t full = 0;
    while (full < 4 && m[full] == 0xff) full++;
    int bitwise = 0;
    for (size_t i = full; i < 4; i++) bitwise |= m[i] != 0;
    size_t len = bitwise ? 4 : full;
    if (len == 0) return 0;  /* /0: matches everything, as iptables writes nothing */
    if (expr_payload(b, NFT_PAYLOAD_NETWORK_HEADER, offset, (uint32_t)len) != 0) return -1;
    if (bitwise && expr_mask(b, &mask, 4) != 0) return -1;
    uint32_t masked = addr & mask;
    return expr_cmp(b, NFT_CMP_EQ, &masked, len);
}

/* `-i NAME` / `-o NAME` (`! -i`): the name with its NUL, as iptables-nft compares it. */
static int match_ifname(struct buf *b, uint32_t key, const char *name, int invert) {
    char value[IFNAMSIZ] = {0};
    size_t n = strlen(name);
    if (n == 0 || n >= IFNAMSIZ) { errno = EINVAL; return -1; }
    memcpy(value, name, n);
    if (expr_meta(b, key) != 0) return -1;
    return expr_cmp(b, invert ? NFT_CMP_NEQ : NFT_CMP_EQ, value, n + 1);
}

/* An xtables extension through nft_compat (match or target) with its info blob. */
static int expr_xt(struct buf *b, int target, const char *name, uint32_t rev, const void *info, size_t len) {
    struct expr_at at;
    if (expr_begin(b, target ? "target" : "match", &at) != 0 ||
        msg_attr_str(b, target ? NFTA_TARGET_NAME : NFTA_MATCH_NAME, name) != 0 ||
        attr_be32(b, target ? NFTA_TARGET_REV : NFTA_MATCH_REV, rev) != 0 ||
        msg_attr(b, target ? NFTA_TARGET_INFO : NFTA_MATCH_INFO, info, len) != 0)
        return -1;
    expr_end(b, &at);
    return 0;
}

#define XT_ALIGNED(n) (((n) + 7u) & ~7u)

/* The rule's expressions, in the order iptables-nft 1.8 writes them: interfaces, protocol,
 * addresses, the port (native payload), the comment match, a counter, the target. */
static int rule_exprs(struct buf *b, const struct berth_nft_port_rule *r) {
    long list = nest_begin(b, NFTA_RULE_EXPRESSIONS);
    if (list < 0) return -1;
    if (r->iifname && match_ifname(b, NFT_META_IIFNAME, r->iifname, r->iif_invert) != 0) return -1;
    if (r->oifname && match_ifname(b, NFT_META_OIFNAME, r->oifname, 0) != 0) return -1;
    uint8_t proto = r->l4proto;
    if (expr_meta(b, NFT_META_L4PROTO) != 0 || expr_cmp(b, NFT_CMP_EQ, &proto, 1) != 0) return -1;
    if (r->smask && match_addr(b, 12, r->saddr, r->smask) != 0) return -1;
    if (r->dmask && match_addr(b, 16, r->daddr, r->dmask) != 0) return -1;
    if (r->dport) {
        uint16_t port = htons(r->dport);
        if (expr_payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2) != 0 || expr_cmp(b, NFT_CMP_EQ, &port, 2) != 0) return -1;
    }
    char comment[COMMENT_MAX] = {0};  /* struct xt_comment_info */
    size_t n = strlen(r->comment);
    if (n == 0 || n >= COMMENT_MAX) { errno = EINVAL; return -1; }
    memcpy(comment, r->comment, n);
    if (expr_xt(b, 0, "comment", 0, comment, sizeof comment) != 0) return -1;
    struct expr_at at;
    uint64_t zero = 0;
    if (expr_begin(b, "counter", &at) != 0 || msg_attr(b, NFTA_COUNTER_BYTES, &zero, 8) != 0 ||
        msg_attr(b, NFTA_COUNTER_PACKETS, &zero, 8) != 0)
        return -1;
    expr_end(b, &at);
    switch (r->target) {
    case BERTH_NFT_ACCEPT: {
        if (expr_begin(b, "immediate", &at) != 0 || attr_be32(b, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT) != 0) return -1;
        long data = nest_begin(b, NFTA_IMMEDIATE_DATA);
        long verdict = data < 0 ? -1 : nest_begin(b, NFTA_DATA_VERDICT);
        if (verdict < 0 || attr_be32(b, NFTA_VERDICT_CODE, NF_ACCEPT) != 0) return -1;
        nest_end(b, verdict);
        nest_end(b, data);
        expr_end(b, &at);
        break;
    }
    case BERTH_NFT_DNAT: {
        /* xt_DNAT revision 2: struct nf_nat_range2 { u32 flags; nf_inet_addr min, max;
         * u16 min_proto, max_proto, base_proto; } (42 bytes, 48 aligned). */
        unsigned char info[XT_ALIGNED(42)] = {0};
        uint32_t flags = 1 /* NF_NAT_RANGE_MAP_IPS */ | (r->to_port ? 2 /* NF_NAT_RANGE_PROTO_SPECIFIED */ : 0);
        uint16_t port = htons(r->to_port);
        memcpy(info, &flags, 4);
        memcpy(info + 4, &r->to_addr, 4);
        memcpy(info + 20, &r->to_addr, 4);
        memcpy(info + 36, &port, 2);
        memcpy(info + 38, &port, 2);
        if (expr_xt(b, 1, "DNAT", 2, info, sizeof info) != 0) return -1;
        break;
    }
    case BERTH_NFT_MASQUERADE: {
        /* xt_MASQUERADE revision 0: struct nf_nat_ipv4_multi_range_compat { u32 rangesize;
         * { u32 flags; be32 min_ip, max_ip; u16 min, max; } range[1]; } (20 bytes, 24 aligned). */
        unsigned char info[XT_ALIGNED(20)] = {0};
        uint32_t one = 1;
        memcpy(info, &one, 4);
        if (expr_xt(b, 1, "MASQUERADE", 0, info, sizeof info) != 0) return -1;
        break;
    }
    default:
        errno = EINVAL;
        return -1;
    }
    nest_end(b, list);
    return 0;
}

int berth_nft_add_rules(const struct berth_nft_port_rule *rules, size_t count) {
    if (count == 0) return 0;
    struct buf b = {0};
    int fd = -1, saved = 0;
    uint32_t seq = 0;
    char *rbuf = NULL;

    long at = msg_begin(&b, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, ++seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    if (at < 0) goto fail;
    msg_end(&b, at);
    uint32_t first = seq + 1;
    for (size_t i = 0; i < count; i++) {
        const struct berth_nft_port_rule *r = &rules[i];
        if (!r->table || !r->chain || !r->comment) { errno = EINVAL; goto fail; }
        uint16_t flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (r->insert ? 0 : NLM_F_APPEND);
        at = msg_begin(&b, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE, flags, ++seq, NFPROTO_IPV4, 0);
        if (at < 0 || msg_attr_str(&b, NFTA_RULE_TABLE, r->table) != 0 || msg_attr_str(&b, NFTA_RULE_CHAIN, r->chain) != 0 ||
            rule_exprs(&b, r) != 0)
            goto fail;
        /* As iptables-nft: the protocol for the xtables extensions' checks. */
        long compat = nest_begin(&b, NFTA_RULE_COMPAT);
        if (compat < 0 || attr_be32(&b, NFTA_RULE_COMPAT_PROTO, r->l4proto) != 0 || attr_be32(&b, NFTA_RULE_COMPAT_FLAGS, 0) != 0)
            goto fail;
        nest_end(&b, compat);
        msg_end(&b, at);
    }
    uint32_t last = seq;
    at = msg_begin(&b, NFNL_MSG_BATCH_END, NLM_F_REQUEST, ++seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    if (at < 0) goto fail;
    msg_end(&b, at);

    fd = nft_socket();
    rbuf = malloc(RECV_SIZE);
    if (fd < 0 || !rbuf || commit_batch(fd, &b, rbuf, first, last) != 0) goto fail;
    free(b.data);
    free(rbuf);
    /* A socket closed within a grace period of someone's rule deletion waits for it. */
    close_in_background(fd);
    return 0;
fail:
    saved = errno;
    free(b.data);
    free(rbuf);
    if (fd >= 0) close_in_background(fd);
    errno = saved;
    return -1;
}
