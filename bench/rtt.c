/*
 * vgpu-bench-rtt: round-trip latency of one empty remote call, next to the IPC it is made of.
 *
 * Tests (each a series of timed round trips after a warm-up; percentiles in microseconds):
 *   nop     EXT_NOP (FORWARD id 81) through the guest's real call layer (guest/channel.c over
 *           guest/transport-unix.c) to a running ggml-virtgpu-server: the floor of every
 *           remote call, a decode step included.
 *   socket  two processes, a SOCK_SEQPACKET socket pair, blocking send/recv of a 16-byte
 *           message each way.
 *   hybrid  the unix transport's own pattern without APIR: the request is a 16-byte socket
 *           message, the answer a word in shared memory that the waiter spins on for 20 µs
 *           and then futex-waits on (as transport-unix.c does); nop minus hybrid is the cost
 *           of the server's framing and dispatch.
 *   futex   two processes, a futex ping-pong over a shared page (no spinning).
 *
 * Usage: vgpu-bench-rtt [--socket PATH] [-n ITERS] [-w WARMUP] [--tests LIST] [--csv FILE]
 *   --socket  the server (default $GGML_VIRTGPU_SOCKET); needed by "nop" only
 *   -n        timed round trips per test (default 20000)
 *   -w        untimed round trips first (default 2000)
 *   --tests   comma-separated subset of nop,socket,hybrid,futex (default: all four)
 *   --csv     also write "test,iters,p50_us,p90_us,p99_us,max_us,mean_us" rows to FILE
 * Exit status: 0 all requested tests ran, 1 a test failed (the message says which), 2 usage.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "abi.h"
#include "apir.h"
#include "channel.h"
#include "ext.h"
#include "remote.h"
#include "transport.h"
#include "wire.h"

#define MSG_SIZE 16
#define SPIN_NS  20000ll /* the unix transport's spin before it blocks */

struct options {
    const char *socket;
    long        iters;
    long        warmup;
    const char *tests;
    const char *csv;
};

struct stats {
    double p50, p90, p99, max, mean; /* microseconds */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of n sorted samples (n > 0), in µs. */
static double pct(const int64_t *s, long n, double p)
{
    long i = (long)(p * (double)(n - 1) + 0.5);
    return (double)s[i] / 1000.0;
}

/* Sorts the n samples (ns) and summarises them. */
static struct stats summarise(int64_t *s, long n)
{
    qsort(s, (size_t)n, sizeof(*s), cmp_i64);
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += (double)s[i];
    struct stats st = { pct(s, n, 0.50), pct(s, n, 0.90), pct(s, n, 0.99), (double)s[n - 1] / 1000.0,
                        sum / (double)n / 1000.0 };
    return st;
}

static long futex_op(_Atomic uint32_t *word, int op, uint32_t val)
{
    /* Shared futexes: the word lives in memory that two processes map. */
    return syscall(SYS_futex, (uint32_t *)(void *)word, op, val, NULL, NULL, 0);
}

/* Blocks until *word != old; returns the new value. */
static uint32_t futex_wait_change(_Atomic uint32_t *word, uint32_t old)
{
    uint32_t v;
    while ((v = atomic_load_explicit(word, memory_order_acquire)) == old)
        (void)futex_op(word, FUTEX_WAIT, old);
    return v;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* One round trip of a test; returns 0 or -1 (a message printed). */
typedef int (*round_trip_fn)(void *ctx);

/* Runs warm-up + iters round trips of fn, timing each; fills *st. 0 or -1. */
static int measure(round_trip_fn fn, void *ctx, const struct options *o, struct stats *st)
{
    for (long i = 0; i < o->warmup; i++)
        if (fn(ctx) != 0)
            return -1;
    int64_t *s = malloc((size_t)o->iters * sizeof(*s));
    if (!s) {
        fprintf(stderr, "rtt: out of memory\n");
        return -1;
    }
    for (long i = 0; i < o->iters; i++) {
        int64_t t0 = now_ns();
        if (fn(ctx) != 0) {
            free(s);
            return -1;
        }
        s[i] = now_ns() - t0;
    }
    *st = summarise(s, o->iters);
    free(s);
    return 0;
}

/* ---- nop: the guest call layer ---------------------------------------------------------------- */

static int nop_call(void *ctx)
{
    struct vgpu_channel *ch = ctx;
    if (!vgpu_channel_lock(ch)) {
        fprintf(stderr, "rtt: the channel is lost: %s\n", ch->lost_reason);
        return -1;
    }
    struct vgpu_enc enc;
    vgpu_channel_begin(ch, &enc, APIR_COMMAND_TYPE_FORWARD, VGPU_CMD_EXT_NOP);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    vgpu_channel_unlock(ch);
    if (code != VGPU_OK) {
        fprintf(stderr, "rtt: EXT_NOP answered %d (%s)\n", code, vgpu_channel_is_lost(ch) ? ch->lost_reason : "");
        return -1;
    }
    return 0;
}

/* Connects and runs the start-up a guest runs (HANDSHAKE, LOADLIBRARY, EXT_HELLO). NULL on failure. */
static struct vgpu_channel *nop_connect(const char *path)
{
    char why[512];
    struct vgpu_transport *tp;
    if (vgpu_unix_open(path, 0, &tp, why, sizeof(why)) != 0) {
        fprintf(stderr, "rtt: %s\n", why);
        return NULL;
    }
    struct vgpu_channel *ch = vgpu_channel_create(tp, why, sizeof(why));
    if (!ch) {
        fprintf(stderr, "rtt: %s: %s\n", path, why);
        return NULL;
    }
    uint32_t magic = 0, major = 0, minor = 0, code = 0;
    if (vgpu_remote_handshake(ch, &magic, &major, &minor) != 0 || magic != APIR_HANDSHAKE_MAGIC) {
        fprintf(stderr, "rtt: %s: HANDSHAKE failed\n", path);
        goto fail;
    }
    if (vgpu_remote_load_library(ch, &code) != 0 ||
        (code != APIR_LOAD_LIBRARY_SUCCESS && code != APIR_LOAD_LIBRARY_ALREADY_LOADED)) {
        fprintf(stderr, "rtt: %s: LOADLIBRARY failed (code %u)\n", path, code);
        goto fail;
    }
    struct vgpu_abi_info abi;
    vgpu_abi_info_get(&abi);
    struct vgpu_hello req = { 0 }, rep;
    req.ext_version = VGPU_EXT_VERSION;
    req.abi_hash = abi.hash;
    req.n_ops = abi.n_ops;
    req.n_types = abi.n_types;
    req.tensor_size = abi.tensor_size;
    int hc = vgpu_remote_ext_hello(ch, &req, &rep);
    if (hc != VGPU_OK) {
        fprintf(stderr, "rtt: %s: EXT_HELLO answered %d (EXT_NOP needs the extensions)\n", path, hc);
        goto fail;
    }
    vgpu_channel_limit_command(ch, rep.max_command_size);
    return ch;
fail:
    vgpu_channel_destroy(ch);
    return NULL;
}

static int test_nop(const struct options *o, struct stats *st)
{
    if (!o->socket || !*o->socket) {
        fprintf(stderr, "rtt: nop needs --socket or GGML_VIRTGPU_SOCKET\n");
        return -1;
    }
    struct vgpu_channel *ch = nop_connect(o->socket);
    if (!ch)
        return -1;
    int r = measure(nop_call, ch, o, st);
    vgpu_channel_destroy(ch);
    return r;
}

/* ---- two-process ping-pongs ------------------------------------------------------------------- */

struct shared_page {
    _Atomic uint32_t seq;  /* futex: odd = request pending, even = answered */
    _Atomic uint32_t done; /* hybrid: the answer word */
    _Atomic uint32_t stop;
};

struct pingpong {
    int                 fd; /* our end of the socket pair, or -1 */
    struct shared_page *page;
    uint32_t            seq;
};

static int send_all(int fd, const void *buf, size_t n)
{
    ssize_t r;
    do
        r = send(fd, buf, n, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)n) {
        fprintf(stderr, "rtt: send: %s\n", r < 0 ? strerror(errno) : "short");
        return -1;
    }
    return 0;
}

static int recv_msg(int fd, void *buf, size_t n)
{
    ssize_t r;
    do
        r = recv(fd, buf, n, 0);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)n)
        return -1;
    return 0;
}

static int socket_call(void *ctx)
{
    struct pingpong *pp = ctx;
    uint8_t msg[MSG_SIZE] = { 1 };
    if (send_all(pp->fd, msg, sizeof(msg)) != 0)
        return -1;
    if (recv_msg(pp->fd, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "rtt: the socket peer went away\n");
        return -1;
    }
    return 0;
}

static int hybrid_call(void *ctx)
{
    struct pingpong *pp = ctx;
    atomic_store_explicit(&pp->page->done, 0, memory_order_relaxed);
    uint8_t msg[MSG_SIZE] = { 1 };
    if (send_all(pp->fd, msg, sizeof(msg)) != 0)
        return -1;
    int64_t start = now_ns();
    do {
        if (atomic_load_explicit(&pp->page->done, memory_order_acquire))
            return 0;
        cpu_relax();
    } while (now_ns() - start < SPIN_NS);
    (void)futex_wait_change(&pp->page->done, 0);
    return 0;
}

static int futex_call(void *ctx)
{
    struct pingpong *pp = ctx;
    uint32_t req = pp->seq + 1;
    atomic_store_explicit(&pp->page->seq, req, memory_order_release);
    (void)futex_op(&pp->page->seq, FUTEX_WAKE, 1);
    pp->seq = futex_wait_change(&pp->page->seq, req);
    return 0;
}

/* The peer process of socket/hybrid/futex; never returns. */
static void peer(const char *test, int fd, struct shared_page *page)
{
    uint8_t msg[MSG_SIZE];
    if (strcmp(test, "futex") == 0) {
        uint32_t seen = 0;
        for (;;) {
            seen = futex_wait_change(&page->seq, seen);
            if (atomic_load_explicit(&page->stop, memory_order_acquire))
                _exit(0);
            seen++;
            atomic_store_explicit(&page->seq, seen, memory_order_release);
            (void)futex_op(&page->seq, FUTEX_WAKE, 1);
        }
    }
    for (;;) {
        if (recv_msg(fd, msg, sizeof(msg)) != 0)
            _exit(0); /* the other end closed: done */
        if (strcmp(test, "socket") == 0) {
            if (send_all(fd, msg, sizeof(msg)) != 0)
                _exit(1);
        } else {
            atomic_store_explicit(&page->done, 1, memory_order_release);
            (void)futex_op(&page->done, FUTEX_WAKE, 1);
        }
    }
}

static int test_pingpong(const char *test, const struct options *o, struct stats *st)
{
    int sv[2] = { -1, -1 };
    if (strcmp(test, "futex") != 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        fprintf(stderr, "rtt: socketpair: %s\n", strerror(errno));
        return -1;
    }
    struct shared_page *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        fprintf(stderr, "rtt: mmap: %s\n", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "rtt: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        if (sv[0] >= 0)
            close(sv[0]);
        peer(test, sv[1], page);
    }
    if (sv[1] >= 0)
        close(sv[1]);
    struct pingpong pp = { .fd = sv[0], .page = page, .seq = 0 };
    round_trip_fn fn = strcmp(test, "socket") == 0 ? socket_call : strcmp(test, "hybrid") == 0 ? hybrid_call : futex_call;
    int r = measure(fn, &pp, o, st);

    /* Stop the peer: close the socket, or raise `stop` and hand it one more request. */
    if (sv[0] >= 0) {
        close(sv[0]);
    } else {
        atomic_store_explicit(&page->stop, 1, memory_order_release);
        atomic_store_explicit(&page->seq, pp.seq + 1, memory_order_release);
        (void)futex_op(&page->seq, FUTEX_WAKE, 1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    munmap(page, 4096);
    return r;
}

/* ---- main --------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *label;
} k_tests[] = {
    { "nop", "virtgpu EXT_NOP (guest call layer, server)" },
    { "socket", "unix SEQPACKET ping-pong (blocking)" },
    { "hybrid", "socket request + futex reply (transport floor)" },
    { "futex", "futex ping-pong (shared memory)" },
};
#define N_TESTS (sizeof(k_tests) / sizeof(k_tests[0]))

static bool wanted(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len + (e ? 1 : 0);
    }
    return false;
}

static void usage(void)
{
    fprintf(stderr, "usage: vgpu-bench-rtt [--socket PATH] [-n ITERS] [-w WARMUP] "
                    "[--tests nop,socket,hybrid,futex] [--csv FILE]\n");
}

static int parse(int argc, char **argv, struct options *o)
{
    o->socket = getenv("GGML_VIRTGPU_SOCKET");
    o->iters = 20000;
    o->warmup = 2000;
    o->tests = "nop,socket,hybrid,futex";
    o->csv = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return -1;
        const char *v = argv[++i];
        if (!strcmp(a, "--socket"))
            o->socket = v;
        else if (!strcmp(a, "-n"))
            o->iters = strtol(v, NULL, 10);
        else if (!strcmp(a, "-w"))
            o->warmup = strtol(v, NULL, 10);
        else if (!strcmp(a, "--tests"))
            o->tests = v;
        else if (!strcmp(a, "--csv"))
            o->csv = v;
        else
            return -1;
    }
    if (o->iters <= 0 || o->iters > 100000000 || o->warmup < 0)
        return -1;
    for (const char *p = o->tests; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool known = false;
        for (size_t t = 0; t < N_TESTS; t++)
            known |= strlen(k_tests[t].name) == len && strncmp(p, k_tests[t].name, len) == 0;
        if (!known)
            return -1;
        p += len + (e ? 1 : 0);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    FILE *csv = NULL;
    if (o.csv) {
        csv = fopen(o.csv, "w");
        if (!csv) {
            fprintf(stderr, "rtt: %s: %s\n", o.csv, strerror(errno));
            return 1;
        }
        fprintf(csv, "test,iters,p50_us,p90_us,p99_us,max_us,mean_us\n");
    }
    printf("round trip, microseconds (%ld timed after %ld warm-up)\n", o.iters, o.warmup);
    printf("%-48s %9s %9s %9s %9s %9s\n", "", "p50", "p90", "p99", "max", "mean");
    int status = 0;
    for (size_t t = 0; t < N_TESTS; t++) {
        if (!wanted(o.tests, k_tests[t].name))
            continue;
        struct stats st;
        int r = t == 0 ? test_nop(&o, &st) : test_pingpong(k_tests[t].name, &o, &st);
        if (r != 0) {
            printf("%-48s %9s\n", k_tests[t].label, "failed");
            status = 1;
            continue;
        }
        printf("%-48s %9.2f %9.2f %9.2f %9.2f %9.2f\n", k_tests[t].label, st.p50, st.p90, st.p99, st.max, st.mean);
        fflush(stdout);
        if (csv)
            fprintf(csv, "%s,%ld,%.3f,%.3f,%.3f,%.3f,%.3f\n", k_tests[t].name, o.iters, st.p50, st.p90, st.p99,
                    st.max, st.mean);
    }
    if (csv && fclose(csv) != 0) {
        fprintf(stderr, "rtt: writing %s failed\n", o.csv);
        status = 1;
    }
    return status;
}
