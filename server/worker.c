/*
 * The message loop of one client (docs/PROTOCOL.md §1): HELLO, resources, SUBMIT; anything
 * else ends the connection with FATAL. Contracts in server.h and worker.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "server.h"
#include "unix.h"

/* A client that stops reading its replies for this long is dropped. */
#define SEND_TIMEOUT_S 10
/* Control-buffer room for a few fds, so that a message with several is seen and cleaned up. */
#define MAX_FDS_SEEN 4

struct conn {
    int                       fd;
    uint32_t                  ctx_id;
    const struct srv_options *opts;
    struct srv_rt            *rt;
    bool                      hello_done;
    uint8_t                  *buf; /* private copy of the current message */
    size_t                    cap;
    int64_t                   poll_ns; /* socket polling after each message; 0 = none */
};

/* Sends one message; 0, or a negative errno (the socket is unusable). */
static int send_msg(int fd, const void *buf, size_t n)
{
    ssize_t w;
    do
        w = send(fd, buf, n, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return -errno;
    return (size_t)w == n ? 0 : -EIO;
}

int srv_send_fatal(int fd, int32_t reason, const char *text)
{
    uint8_t msg[VGPU_UNIX_HEADER_SIZE + 4 + VGPU_UNIX_FATAL_MAX_TEXT];
    size_t len = strnlen(text, VGPU_UNIX_FATAL_MAX_TEXT - 1);
    size_t size = VGPU_UNIX_HEADER_SIZE + 4 + len + 1;
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, msg, sizeof(msg));
    vgpu_enc_u32(&enc, VGPU_UNIX_FATAL);
    vgpu_enc_u32(&enc, (uint32_t)size);
    vgpu_enc_i32(&enc, reason);
    vgpu_enc_raw(&enc, text, len);
    vgpu_enc_raw(&enc, "", 1);
    return send_msg(fd, msg, size);
}

/*
 * Takes the fds passed with a message: returns the first (or -1) and closes every other one,
 * so that nothing a client sends can pile up in the worker's fd table.
 */
static int take_fds(struct msghdr *msg)
{
    int kept = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (kept < 0) {
                kept = fd;
            } else {
                SRV_DEBUG("closing an extra file descriptor passed by the client");
                close(fd);
            }
        }
    }
    return kept;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * recvmsg that first polls for up to c->poll_ns. A guest usually sends its next message within
 * tens of microseconds of a reply (the rest of a prompt's inputs, the next token's graph);
 * a worker asleep in recvmsg then pays a wake-up, 20 to 55 us on a virtual machine whose idle
 * CPUs halt, several times per prompt. Polling yields between tries, so that it takes only a
 * CPU nobody else wants; still, the default is off on small machines (SRV_POLL_AUTO_MIN_CPUS),
 * where the guest and the host backend need every CPU and a yield is not free. Returns as
 * recvmsg does (errno set on -1).
 */
static ssize_t recv_polling(struct conn *c, struct msghdr *msg)
{
    ssize_t n;
    if (c->poll_ns > 0) {
        int64_t until = now_ns() + c->poll_ns;
        do {
            n = recvmsg(c->fd, msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
            if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                return n;
            sched_yield(); /* a thread with work on this CPU goes first */
        } while (now_ns() < until);
    }
    do
        n = recvmsg(c->fd, msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    return n;
}

/* The --poll-us budget in ns: as given, or from the CPUs this process may use. */
static int64_t poll_budget_ns(const struct srv_options *opts)
{
    if (opts->poll_us != SRV_POLL_AUTO)
        return (int64_t)opts->poll_us * 1000;
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
    return cpus >= SRV_POLL_AUTO_MIN_CPUS ? (int64_t)SRV_POLL_AUTO_US * 1000 : 0;
}

/*
 * Receives one message into c->buf. Returns its length (> 0), 0 at the end of the stream, or
 * a negative errno: a protocol violation (truncated message or control data) fills why; a
 * socket error leaves it empty. *fd_out gets the passed fd or -1 (the caller closes it).
 */
static ssize_t conn_recv(struct conn *c, int *fd_out, char *why, size_t why_size)
{
    union {
        struct cmsghdr align;
        char           buf[CMSG_SPACE(sizeof(int) * MAX_FDS_SEEN)];
    } ctl;
    struct iovec iov = { .iov_base = c->buf, .iov_len = c->cap };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    ssize_t n = recv_polling(c, &msg);
    if (n < 0)
        return -errno;
    *fd_out = take_fds(&msg);
    if (msg.msg_flags & MSG_CTRUNC) {
        snprintf(why, why_size, "too many file descriptors in one message");
        return -EPROTO;
    }
    if (msg.msg_flags & MSG_TRUNC) {
        snprintf(why, why_size, "message larger than max_command_size (%zu bytes)", c->cap);
        return -EMSGSIZE;
    }
    return n;
}

/* HELLO: answers the transport version, the context id and the command-size bound. */
static int on_hello(struct conn *c, struct vgpu_dec *dec, char *why, size_t why_size)
{
    uint32_t version = vgpu_dec_u32(dec);
    (void)vgpu_dec_u32(dec); /* flags: none defined, ignored for forward compatibility */
    int32_t status = version == VGPU_UNIX_VERSION ? 0 : -EPROTONOSUPPORT;
    uint8_t msg[VGPU_UNIX_HEADER_SIZE + VGPU_UNIX_HELLO_REPLY_BODY];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, msg, sizeof(msg));
    vgpu_enc_u32(&enc, VGPU_UNIX_HELLO_REPLY);
    vgpu_enc_u32(&enc, sizeof(msg));
    vgpu_enc_u32(&enc, VGPU_UNIX_VERSION);
    vgpu_enc_i32(&enc, status);
    vgpu_enc_u32(&enc, c->ctx_id);
    vgpu_enc_u32(&enc, c->opts->max_command_size);
    int rc = send_msg(c->fd, msg, sizeof(msg));
    if (rc)
        return rc;
    if (status) {
        snprintf(why, why_size, "unsupported transport version %" PRIu32, version);
        return status;
    }
    c->hello_done = true;
    return 0;
}

/* RESOURCE_CREATE: maps the passed fd as a resource and answers with the status. */
static int on_resource_create(struct conn *c, struct vgpu_dec *dec, int fd)
{
    uint32_t res_id = vgpu_dec_u32(dec);
    uint32_t flags = vgpu_dec_u32(dec);
    uint64_t size = vgpu_dec_u64(dec);
    int32_t status;
    if (fd < 0 || flags != 0)
        status = -EINVAL;
    else
        status = srv_rt_resource_import(c->rt, res_id, fd, size);
    SRV_DEBUG("ctx %" PRIu32 ": RESOURCE_CREATE %" PRIu32 " (%" PRIu64 " bytes): %" PRId32,
              c->ctx_id, res_id, size, status);
    uint8_t msg[VGPU_UNIX_HEADER_SIZE + VGPU_UNIX_RESOURCE_REPLY_BODY];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, msg, sizeof(msg));
    vgpu_enc_u32(&enc, VGPU_UNIX_RESOURCE_REPLY);
    vgpu_enc_u32(&enc, sizeof(msg));
    vgpu_enc_u32(&enc, res_id);
    vgpu_enc_i32(&enc, status);
    return send_msg(c->fd, msg, sizeof(msg));
}

/* RESOURCE_DESTROY: unmaps the resource; an unknown id is only logged. Never fails. */
static int on_resource_destroy(struct conn *c, struct vgpu_dec *dec)
{
    uint32_t res_id = vgpu_dec_u32(dec);
    if (srv_rt_resource_destroy(c->rt, res_id) != 0)
        SRV_DEBUG("ctx %" PRIu32 ": RESOURCE_DESTROY of unknown resource %" PRIu32 " ignored",
                  c->ctx_id, res_id);
    return 0;
}

/* Checks a fixed-size message's length; 0, or -EPROTO with a reason. */
static int check_body(uint32_t type, size_t n, size_t body, char *why, size_t why_size)
{
    if (n == VGPU_UNIX_HEADER_SIZE + body)
        return 0;
    snprintf(why, why_size, "message type 0x%" PRIx32 " of %zu bytes, expected %zu", type, n,
             VGPU_UNIX_HEADER_SIZE + body);
    return -EPROTO;
}

/*
 * Handles one received message of n bytes (fd: the passed fd or -1, not consumed).
 * Returns 0 to go on; a negative errno ends the connection, with FATAL if why was filled.
 */
static int conn_handle(struct conn *c, size_t n, int fd, char *why, size_t why_size)
{
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, c->buf, n);
    uint32_t type = vgpu_dec_u32(&dec);
    uint32_t size = vgpu_dec_u32(&dec);
    if (!vgpu_dec_ok(&dec)) {
        snprintf(why, why_size, "message of %zu bytes, shorter than its header", n);
        return -EPROTO;
    }
    if (size != n) {
        snprintf(why, why_size, "message of %zu bytes with size field %" PRIu32, n, size);
        return -EPROTO;
    }
    if (!c->hello_done && type != VGPU_UNIX_HELLO) {
        snprintf(why, why_size, "message type 0x%" PRIx32 " before HELLO", type);
        return -EPROTO;
    }
    int rc;
    switch (type) {
    case VGPU_UNIX_HELLO:
        if (c->hello_done) {
            snprintf(why, why_size, "second HELLO");
            return -EPROTO;
        }
        rc = check_body(type, n, VGPU_UNIX_HELLO_BODY, why, why_size);
        return rc ? rc : on_hello(c, &dec, why, why_size);
    case VGPU_UNIX_RESOURCE_CREATE:
        rc = check_body(type, n, VGPU_UNIX_RESOURCE_CREATE_BODY, why, why_size);
        return rc ? rc : on_resource_create(c, &dec, fd);
    case VGPU_UNIX_RESOURCE_DESTROY:
        rc = check_body(type, n, VGPU_UNIX_RESOURCE_DESTROY_BODY, why, why_size);
        return rc ? rc : on_resource_destroy(c, &dec);
    case VGPU_UNIX_SUBMIT:
        return srv_rt_submit(c->rt, c->buf + VGPU_UNIX_HEADER_SIZE, n - VGPU_UNIX_HEADER_SIZE,
                             why, why_size);
    default:
        snprintf(why, why_size, "unknown message type 0x%" PRIx32, type);
        return -EPROTO;
    }
}

/* Serves messages until the client leaves or breaks the protocol. */
static void conn_loop(struct conn *c)
{
    char why[VGPU_UNIX_FATAL_MAX_TEXT];
    for (;;) {
        int fd = -1;
        why[0] = '\0';
        ssize_t n = conn_recv(c, &fd, why, sizeof(why));
        int rc = n > 0 ? conn_handle(c, (size_t)n, fd, why, sizeof(why)) : (int)n;
        if (fd >= 0)
            close(fd);
        if (n == 0) {
            SRV_INFO("ctx %" PRIu32 ": client disconnected", c->ctx_id);
            return;
        }
        if (rc == 0)
            continue;
        if (why[0]) {
            SRV_WARN("ctx %" PRIu32 ": protocol violation, closing: %s", c->ctx_id, why);
            srv_send_fatal(c->fd, rc, why);
        } else {
            SRV_INFO("ctx %" PRIu32 ": connection lost: %s", c->ctx_id, strerror(-rc));
        }
        return;
    }
}

/* Logs who connected (SO_PEERCRED), for matching contexts to client processes. */
static void log_peer(int fd, uint32_t ctx_id)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
        SRV_INFO("ctx %" PRIu32 ": client connected (pid %ld, uid %ld)", ctx_id, (long)cred.pid,
                 (long)cred.uid);
    else
        SRV_INFO("ctx %" PRIu32 ": client connected", ctx_id);
}

int srv_worker_serve(const struct srv_options *opts, int fd, uint32_t ctx_id)
{
    struct conn c = { .fd = fd, .ctx_id = ctx_id, .opts = opts, .cap = opts->max_command_size,
                      .poll_ns = poll_budget_ns(opts) };
    struct srv_rt_params params;
    struct timeval tv = { .tv_sec = SEND_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    log_peer(fd, ctx_id);
    SRV_DEBUG("ctx %" PRIu32 ": polling %" PRId64 " us for each next message", ctx_id,
              c.poll_ns / 1000);
    srv_options_rt_params(opts, &params);
    int rc = srv_rt_create(ctx_id, &params, &c.rt);
    if (rc)
        goto fail;
    c.buf = malloc(c.cap);
    if (!c.buf) {
        rc = -ENOMEM;
        goto fail;
    }
    conn_loop(&c);
    free(c.buf);
    srv_rt_destroy(c.rt);
    return 0;

fail:
    SRV_ERROR("ctx %" PRIu32 ": cannot set up the context: %s", ctx_id, strerror(-rc));
    srv_send_fatal(fd, rc, "the server cannot set up a context");
    srv_rt_destroy(c.rt);
    return rc;
}
