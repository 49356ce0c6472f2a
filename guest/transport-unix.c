/*
 * The unix-socket transport (docs/PROTOCOL.md §1): SOCK_SEQPACKET to ggml-virtgpu-server,
 * resources are memfds passed with SCM_RIGHTS and mapped by both sides, completion is the
 * reply word in the reply resource, waited on by a short spin and then futex(FUTEX_WAIT) in
 * bounded slices with a poll() of the socket in between, so a dead server (hang-up) or a
 * FATAL message ends the wait within one slice. No sleeps anywhere.
 */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "unix.h"

/* Longest single futex sleep: a hang-up is noticed at most this late. */
#define VGPU_SLICE_NS       100000000ll
/* Start-up limit for HELLO_REPLY when no GGML_VIRTGPU_TIMEOUT_MS is given. */
#define VGPU_STARTUP_MS     10000
/* Largest message the server sends us (FATAL with its text). */
#define VGPU_UNIX_RECV_MAX  (VGPU_UNIX_HEADER_SIZE + 4 + VGPU_UNIX_FATAL_MAX_TEXT + 64)

struct vgpu_unix {
    struct vgpu_transport base;
    int      fd;
    uint32_t next_res_id;
    uint32_t ctx_id;
};

static void set_error(struct vgpu_transport *tp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct vgpu_transport *tp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tp->error, sizeof(tp->error), fmt, ap);
    va_end(ap);
}

size_t vgpu_page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ---- messages ----------------------------------------------------------------------------- */

/* Sends header + body (+ one fd). Returns 0 or -errno. */
static int send_msg(struct vgpu_unix *u, uint32_t type, const void *body, size_t body_size,
                    const void *extra, size_t extra_size, int pass_fd)
{
    uint8_t hdr[VGPU_UNIX_HEADER_SIZE];
    uint64_t total = VGPU_UNIX_HEADER_SIZE + (uint64_t)body_size + extra_size;
    if (total > UINT32_MAX)
        return -EMSGSIZE;
    uint32_t t32 = (uint32_t)total;
    memcpy(hdr, &type, 4);
    memcpy(hdr + 4, &t32, 4);

    struct iovec iov[3];
    int n = 0;
    iov[n].iov_base = hdr;
    iov[n++].iov_len = sizeof(hdr);
    if (body_size) {
        iov[n].iov_base = (void *)body;
        iov[n++].iov_len = body_size;
    }
    if (extra_size) {
        iov[n].iov_base = (void *)extra;
        iov[n++].iov_len = extra_size;
    }

    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } cmsg;
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)n;
    if (pass_fd >= 0) {
        memset(&cmsg, 0, sizeof(cmsg));
        msg.msg_control = cmsg.buf;
        msg.msg_controllen = sizeof(cmsg.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }

    for (;;) {
        ssize_t r = sendmsg(u->fd, &msg, MSG_NOSIGNAL);
        if (r >= 0)
            return (uint64_t)r == total ? 0 : -EPROTO;
        if (errno == EINTR)
            continue;
        return -errno;
    }
}

/*
 * Receives one message into buf (at most cap bytes) within timeout_ms (< 0: wait forever,
 * in slices). Returns its size, or -errno: -EPIPE on hang-up, -ETIMEDOUT, -EPROTO on a
 * malformed message. Passed fds are closed: the server never sends any.
 */
static int recv_msg(struct vgpu_unix *u, uint8_t *buf, size_t cap, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? vgpu_now_ns() + (int64_t)timeout_ms * 1000000ll : 0;
    for (;;) {
        int wait_ms = 100;
        bool last = false;
        if (timeout_ms >= 0) {
            int64_t left = deadline - vgpu_now_ns();
            if (left <= 0) {
                wait_ms = 0; /* one look at what is already there */
                last = true;
            } else if (left / 1000000ll < wait_ms) {
                wait_ms = (int)(left / 1000000ll) + 1;
            }
        }
        struct pollfd p = { .fd = u->fd, .events = POLLIN };
        int pr = poll(&p, 1, wait_ms);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (pr == 0) {
            if (last)
                return -ETIMEDOUT;
            continue;
        }
        if (!(p.revents & POLLIN) && (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
            return -EPIPE;

        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * 8)];
        } cmsg;
        struct iovec iov = { .iov_base = buf, .iov_len = cap };
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.buf;
        msg.msg_controllen = sizeof(cmsg.buf);
        ssize_t r = recvmsg(u->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return errno == ECONNRESET ? -EPIPE : -errno;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < nfd; i++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    close(fd);
                }
            }
        }
        if (r == 0)
            return -EPIPE;
        if (msg.msg_flags & MSG_TRUNC)
            return -EPROTO;
        if ((size_t)r < VGPU_UNIX_HEADER_SIZE)
            return -EPROTO;
        uint32_t size;
        memcpy(&size, buf + 4, 4);
        if (size != (uint32_t)r)
            return -EPROTO;
        return (int)r;
    }
}

static uint32_t msg_type(const uint8_t *buf)
{
    uint32_t t;
    memcpy(&t, buf, 4);
    return t;
}

/* Records a FATAL message's text (or a generic hang-up) as the transport error. */
static int note_fatal(struct vgpu_unix *u, const uint8_t *buf, int len)
{
    if (len >= (int)(VGPU_UNIX_HEADER_SIZE + 4) && msg_type(buf) == VGPU_UNIX_FATAL) {
        int32_t reason;
        memcpy(&reason, buf + VGPU_UNIX_HEADER_SIZE, 4);
        char text[VGPU_UNIX_FATAL_MAX_TEXT + 1];
        size_t n = (size_t)len - VGPU_UNIX_HEADER_SIZE - 4;
        if (n > VGPU_UNIX_FATAL_MAX_TEXT)
            n = VGPU_UNIX_FATAL_MAX_TEXT;
        memcpy(text, buf + VGPU_UNIX_HEADER_SIZE + 4, n);
        text[n] = '\0';
        set_error(&u->base, "server sent FATAL (reason %d): %s", reason, text);
        return -EPIPE;
    }
    set_error(&u->base, "unexpected message type 0x%x from the server", msg_type(buf));
    return -EPROTO;
}

/* Receives the answer of type `want`, treating FATAL and hang-ups as failures. */
static int recv_answer(struct vgpu_unix *u, uint32_t want, uint8_t *buf, size_t cap, int timeout_ms,
                       const char *what)
{
    int r = recv_msg(u, buf, cap, timeout_ms);
    if (r == -EPIPE) {
        set_error(&u->base, "server closed the connection (waiting for %s)", what);
        return r;
    }
    if (r == -ETIMEDOUT) {
        set_error(&u->base, "no %s from the server within %d ms", what, timeout_ms);
        return r;
    }
    if (r < 0) {
        set_error(&u->base, "receiving %s: %s", what, strerror(-r));
        return r;
    }
    if (msg_type(buf) != want)
        return note_fatal(u, buf, r);
    return r;
}

/* ---- transport operations ----------------------------------------------------------------- */

static int unix_resource_create(struct vgpu_transport *tp, size_t size, struct vgpu_resource *res)
{
    struct vgpu_unix *u = (struct vgpu_unix *)tp;
    memset(res, 0, sizeof(*res));
    size_t page = vgpu_page_size();
    if (size == 0 || size > SIZE_MAX - page) {
        set_error(tp, "invalid resource size %zu", size);
        return -EINVAL;
    }
    size = (size + page - 1) / page * page;

    /* Sealable: the server seals it against shrinking, so its mapping can never lose pages. */
    int fd = memfd_create("ggml-virtgpu", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        int e = errno;
        set_error(tp, "memfd_create: %s", strerror(e));
        return -e;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        set_error(tp, "ftruncate(memfd, %zu): %s", size, strerror(e));
        close(fd);
        return -e;
    }
    void *ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ptr == MAP_FAILED) {
        int e = errno;
        set_error(tp, "mmap(%zu bytes): %s", size, strerror(e));
        close(fd);
        return -e;
    }

    uint32_t id = u->next_res_id++;
    if (u->next_res_id == 0)
        u->next_res_id = 1;
    uint8_t body[VGPU_UNIX_RESOURCE_CREATE_BODY];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, body, sizeof(body));
    vgpu_enc_u32(&enc, id);
    vgpu_enc_u32(&enc, 0);
    vgpu_enc_u64(&enc, size);
    int r = send_msg(u, VGPU_UNIX_RESOURCE_CREATE, body, sizeof(body), NULL, 0, fd);
    close(fd); /* the message holds its own reference */
    if (r != 0) {
        set_error(tp, "sending RESOURCE_CREATE: %s", strerror(-r));
        munmap(ptr, size);
        return r == -ECONNRESET ? -EPIPE : r;
    }

    uint8_t buf[VGPU_UNIX_RECV_MAX];
    r = recv_answer(u, VGPU_UNIX_RESOURCE_REPLY, buf, sizeof(buf), tp->timeout_ms ? tp->timeout_ms : -1,
                    "RESOURCE_REPLY");
    if (r < 0) {
        munmap(ptr, size);
        return r;
    }
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf + VGPU_UNIX_HEADER_SIZE, (size_t)r - VGPU_UNIX_HEADER_SIZE);
    uint32_t rid = vgpu_dec_u32(&dec);
    int32_t status = vgpu_dec_i32(&dec);
    if (!vgpu_dec_ok(&dec) || rid != id) {
        set_error(tp, "malformed RESOURCE_REPLY (id %u for %u)", rid, id);
        munmap(ptr, size);
        return -EPROTO;
    }
    if (status != 0) {
        set_error(tp, "server refused a %zu-byte resource: %s", size,
                  status < 0 ? strerror(-status) : "unknown status");
        munmap(ptr, size);
        return status < 0 ? status : -EIO;
    }
    res->id = id;
    res->ptr = ptr;
    res->size = size;
    return 0;
}

static void unix_resource_destroy(struct vgpu_transport *tp, struct vgpu_resource *res)
{
    struct vgpu_unix *u = (struct vgpu_unix *)tp;
    if (!res->id)
        return;
    uint8_t body[VGPU_UNIX_RESOURCE_DESTROY_BODY];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, body, sizeof(body));
    vgpu_enc_u32(&enc, res->id);
    vgpu_enc_u32(&enc, 0);
    (void)send_msg(u, VGPU_UNIX_RESOURCE_DESTROY, body, sizeof(body), NULL, 0, -1);
    munmap(res->ptr, res->size);
    memset(res, 0, sizeof(*res));
}

static int unix_submit(struct vgpu_transport *tp, const void *cmd, size_t size)
{
    struct vgpu_unix *u = (struct vgpu_unix *)tp;
    int r = send_msg(u, VGPU_UNIX_SUBMIT, cmd, size, NULL, 0, -1);
    if (r == 0)
        return 0;
    if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
        set_error(tp, "server closed the connection");
        return -EPIPE;
    }
    set_error(tp, "sending a %zu-byte command: %s", size, strerror(-r));
    return r;
}

static long futex_wait(uint32_t *word, uint32_t expected, int64_t ns)
{
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ll), .tv_nsec = (long)(ns % 1000000000ll) };
    /* Shared (not FUTEX_PRIVATE_FLAG): the word lives in memory mapped by the server too. */
    return syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
}

/* Reads the reply word; true (and *out) once the host has answered. */
static bool reply_ready(const uint32_t *word, uint32_t *out)
{
    uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    *out = v;
    return v != 0;
}

/*
 * The planned part of a wait (transport.h): spin, nap, watch. True once the reply is there.
 * The nap ends by nap_cap at the latest, so that the caller's loop still notices a dead host
 * and its time limit.
 */
static bool wait_planned(uint32_t *word, const struct vgpu_wait_plan *plan, int64_t start, int64_t nap_cap,
                         uint32_t *out)
{
    /* Spin while the reply is expected soon (the caller's budget), reading the clock rarely. */
    while (plan->spin_ns > 0) {
        for (int i = 0; i < 64; i++) {
            if (reply_ready(word, out))
                return true;
            cpu_relax();
        }
        if (vgpu_now_ns() - start >= plan->spin_ns)
            break;
    }
    if (plan->watch_until <= 0)
        return false;
    int64_t nap_end = plan->nap_until < nap_cap ? plan->nap_until : nap_cap;
    for (int64_t now = vgpu_now_ns(); now < nap_end; now = vgpu_now_ns()) {
        if (reply_ready(word, out))
            return true;
        (void)futex_wait(word, 0, nap_end - now);
    }
    /* Watch: the reply is due about now. Yielding leaves the CPU to any thread that has work. */
    while (vgpu_now_ns() < plan->watch_until) {
        if (reply_ready(word, out))
            return true;
        sched_yield();
    }
    return reply_ready(word, out);
}

static int unix_wait_reply(struct vgpu_transport *tp, const struct vgpu_resource *reply, uint32_t *word_out,
                           const struct vgpu_wait_plan *plan)
{
    struct vgpu_unix *u = (struct vgpu_unix *)tp;
    uint32_t *word = reply->ptr;
    int64_t start = vgpu_now_ns();
    int64_t deadline = tp->timeout_ms > 0 ? start + (int64_t)tp->timeout_ms * 1000000ll : 0;
    int64_t nap_cap = start + VGPU_SLICE_NS;
    if (deadline && deadline < nap_cap)
        nap_cap = deadline;
    uint32_t v;
    if (wait_planned(word, plan, start, nap_cap, &v)) {
        *word_out = v;
        return 0;
    }

    for (;;) {
        int64_t slice = VGPU_SLICE_NS;
        if (deadline) {
            int64_t left = deadline - vgpu_now_ns();
            if (left <= 0) {
                set_error(tp, "no reply within %d ms (GGML_VIRTGPU_TIMEOUT_MS)", tp->timeout_ms);
                return -ETIMEDOUT;
            }
            if (left < slice)
                slice = left;
        }
        (void)futex_wait(word, 0, slice);
        v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
        if (v) {
            *word_out = v;
            return 0;
        }
        /* Still pending: is the server alive? */
        struct pollfd p = { .fd = u->fd, .events = POLLIN };
        int pr = poll(&p, 1, 0);
        if (pr > 0) {
            v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
            if (v) {
                *word_out = v;
                return 0;
            }
            if (p.revents & POLLIN) {
                uint8_t buf[VGPU_UNIX_RECV_MAX];
                int r = recv_msg(u, buf, sizeof(buf), 0);
                if (r > 0)
                    return note_fatal(u, buf, r);
                if (r == -ETIMEDOUT)
                    continue;
                set_error(tp, "server closed the connection during a call");
                return -EPIPE;
            }
            set_error(tp, "server closed the connection during a call");
            return -EPIPE;
        }
    }
}

static void unix_destroy(struct vgpu_transport *tp)
{
    struct vgpu_unix *u = (struct vgpu_unix *)tp;
    if (!u)
        return;
    if (u->fd >= 0)
        close(u->fd);
    free(u);
}

static const struct vgpu_transport_ops unix_ops = {
    .resource_create = unix_resource_create,
    .resource_destroy = unix_resource_destroy,
    .submit = unix_submit,
    .wait_reply = unix_wait_reply,
    .destroy = unix_destroy,
};

/*
 * A SEQPACKET message cannot exceed the sender's SO_SNDBUF (less 32 bytes of kernel
 * accounting). Raises the buffer to fit `want` bytes if allowed and returns what fits.
 */
static size_t socket_message_limit(int fd, size_t want)
{
    if (want < INT_MAX / 2 - 4096) {
        int v = (int)want + 4096;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    }
    int got = 0;
    socklen_t len = sizeof(got);
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len) != 0 || got <= 1024)
        return 64 * 1024; /* conservative: below any default */
    return (size_t)got - 512;
}

int vgpu_unix_open(const char *path, int call_timeout_ms, struct vgpu_transport **out, char *why, size_t why_size)
{
    *out = NULL;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (!path || !*path || strlen(path) >= sizeof(addr.sun_path)) {
        snprintf(why, why_size, "invalid socket path '%s'", path ? path : "");
        return -EINVAL;
    }
    memcpy(addr.sun_path, path, strlen(path));

    struct vgpu_unix *u = calloc(1, sizeof(*u));
    if (!u) {
        snprintf(why, why_size, "out of memory");
        return -ENOMEM;
    }
    u->base.ops = &unix_ops;
    u->base.timeout_ms = call_timeout_ms > 0 ? call_timeout_ms : 0;
    u->next_res_id = 1;
    snprintf(u->base.endpoint, sizeof(u->base.endpoint), "unix:%s", path);

    u->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        int e = errno;
        snprintf(why, why_size, "socket(AF_UNIX, SOCK_SEQPACKET): %s", strerror(e));
        free(u);
        return -e;
    }
    int r;
    do {
        r = connect(u->fd, (struct sockaddr *)&addr, sizeof(addr));
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
        int e = errno;
        snprintf(why, why_size, "connect(%s): %s", path, strerror(e));
        unix_destroy(&u->base);
        return -e;
    }

    uint8_t body[VGPU_UNIX_HELLO_BODY];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, body, sizeof(body));
    vgpu_enc_u32(&enc, VGPU_UNIX_VERSION);
    vgpu_enc_u32(&enc, 0);
    r = send_msg(u, VGPU_UNIX_HELLO, body, sizeof(body), NULL, 0, -1);
    if (r != 0) {
        snprintf(why, why_size, "%s: sending HELLO: %s", path, strerror(-r));
        unix_destroy(&u->base);
        return r;
    }
    uint8_t buf[VGPU_UNIX_RECV_MAX];
    int startup_ms = call_timeout_ms > 0 ? call_timeout_ms : VGPU_STARTUP_MS;
    r = recv_answer(u, VGPU_UNIX_HELLO_REPLY, buf, sizeof(buf), startup_ms, "HELLO_REPLY");
    if (r < 0) {
        snprintf(why, why_size, "%s: %s", path, u->base.error);
        unix_destroy(&u->base);
        return r;
    }
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf + VGPU_UNIX_HEADER_SIZE, (size_t)r - VGPU_UNIX_HEADER_SIZE);
    uint32_t version = vgpu_dec_u32(&dec);
    int32_t status = vgpu_dec_i32(&dec);
    u->ctx_id = vgpu_dec_u32(&dec);
    uint32_t max_cmd = vgpu_dec_u32(&dec);
    if (!vgpu_dec_ok(&dec)) {
        snprintf(why, why_size, "%s: malformed HELLO_REPLY", path);
        unix_destroy(&u->base);
        return -EPROTO;
    }
    if (status != 0) {
        snprintf(why, why_size, "%s: server refused the connection (status %d%s%s)", path, status,
                 status < 0 ? ": " : "", status < 0 ? strerror(-status) : "");
        unix_destroy(&u->base);
        return -ECONNREFUSED;
    }
    if (version != VGPU_UNIX_VERSION) {
        snprintf(why, why_size, "%s: server speaks transport version %u, this guest %u", path, version,
                 VGPU_UNIX_VERSION);
        unix_destroy(&u->base);
        return -EPROTO;
    }
    if (max_cmd == 0)
        max_cmd = VGPU_UNIX_DEFAULT_MAX_COMMAND;
    if (max_cmd < 4096) {
        snprintf(why, why_size, "%s: server's max_command_size %u is too small", path, max_cmd);
        unix_destroy(&u->base);
        return -EPROTO;
    }
    /* max_command_size bounds the whole SUBMIT message, our 8-byte header included. */
    size_t limit = socket_message_limit(u->fd, max_cmd);
    size_t msg = max_cmd < limit ? max_cmd : limit;
    size_t cap = msg - VGPU_UNIX_HEADER_SIZE;
    u->base.max_command_size = cap;
    *out = &u->base;
    return 0;
}
