/*
 * The fake server of test-guest-fakehost.h.
 */
#include "test-guest-fakehost.h"

#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

double fake_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct fake_res *fake_host_res(struct fake_host *h, uint32_t id)
{
    for (int i = 0; i < FAKE_MAX_RES; i++) {
        if (h->res[i].id == id && id)
            return &h->res[i];
    }
    return NULL;
}

static void put_u32(uint8_t *b, uint32_t v) { memcpy(b, &v, 4); }

static int send_simple(int fd, uint32_t type, const void *body, uint32_t n)
{
    uint8_t buf[512];
    put_u32(buf, type);
    put_u32(buf + 4, 8 + n);
    memcpy(buf + 8, body, n);
    return send(fd, buf, 8 + n, MSG_NOSIGNAL) == (ssize_t)(8 + n) ? 0 : -1;
}

static void serve_submit(struct fake_host *h, const uint8_t *msg, size_t len, bool *close_conn)
{
    if (len < 8 + 12)
        return;
    int32_t type, flags;
    uint32_t reply_id;
    memcpy(&type, msg + 8, 4);
    memcpy(&flags, msg + 12, 4);
    memcpy(&reply_id, msg + 16, 4);
    __atomic_add_fetch(&h->n_submits, 1, __ATOMIC_SEQ_CST);
    struct fake_res *r = fake_host_res(h, reply_id);
    if (!r) {
        *close_conn = true;
        return;
    }
    if (h->reply_delay_ms) {
        struct timespec ts = { h->reply_delay_ms / 1000, (long)(h->reply_delay_ms % 1000) * 1000000l };
        nanosleep(&ts, NULL);
    }
    struct vgpu_dec req;
    vgpu_dec_init(&req, msg + 20, len - 20);
    struct vgpu_enc rep;
    vgpu_enc_init(&rep, r->ptr + 4, r->size - 4);
    uint32_t ret = 0;
    enum fake_action a = h->handler(h, type, flags, &req, &rep, &ret);
    switch (a) {
    case FAKE_REPLY:
        __atomic_store_n((uint32_t *)r->ptr, ret + 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, (uint32_t *)r->ptr, FUTEX_WAKE, 1, NULL, NULL, 0);
        break;
    case FAKE_CLOSE:
        *close_conn = true;
        break;
    case FAKE_HANG:
        break;
    case FAKE_FATAL_CLOSE: {
        uint8_t body[256];
        int32_t reason = 7;
        memcpy(body, &reason, 4);
        size_t n = strlen(h->fatal_text ? h->fatal_text : "fatal") + 1;
        memcpy(body + 4, h->fatal_text ? h->fatal_text : "fatal", n);
        send_simple(h->conn_fd, 0xff, body, (uint32_t)(4 + n));
        *close_conn = true;
        break;
    }
    }
}

static void serve_message(struct fake_host *h, const uint8_t *msg, size_t len, int fd_in, bool *close_conn)
{
    uint32_t type, size;
    memcpy(&type, msg, 4);
    memcpy(&size, msg + 4, 4);
    if (size != len) {
        *close_conn = true;
        return;
    }
    if (type == 1) { /* HELLO */
        uint8_t body[16];
        uint32_t v = 1, ctx = 7;
        memcpy(body, &v, 4);
        memcpy(body + 4, &h->hello_status, 4);
        memcpy(body + 8, &ctx, 4);
        memcpy(body + 12, &h->max_command_size, 4);
        send_simple(h->conn_fd, 0x81, body, 16);
    } else if (type == 2 && len == 24) { /* RESOURCE_CREATE */
        uint32_t id;
        uint64_t rsize;
        memcpy(&id, msg + 8, 4);
        memcpy(&rsize, msg + 16, 8);
        int32_t status = 0;
        void *p = MAP_FAILED;
        if (fd_in < 0)
            status = -EINVAL;
        else
            p = mmap(NULL, rsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd_in, 0);
        if (status == 0 && p == MAP_FAILED)
            status = -EINVAL;
        int slot = -1;
        for (int i = 0; i < FAKE_MAX_RES && status == 0; i++) {
            if (!h->res[i].id) {
                slot = i;
                break;
            }
        }
        if (status == 0 && slot < 0)
            status = -EDQUOT;
        if (status == 0) {
            h->res[slot].id = id;
            h->res[slot].ptr = p;
            h->res[slot].size = rsize;
            __atomic_add_fetch(&h->n_resources, 1, __ATOMIC_SEQ_CST);
        } else if (p != MAP_FAILED) {
            munmap(p, rsize);
        }
        uint8_t body[8];
        memcpy(body, &id, 4);
        memcpy(body + 4, &status, 4);
        send_simple(h->conn_fd, 0x82, body, 8);
    } else if (type == 3 && len == 16) { /* RESOURCE_DESTROY */
        uint32_t id;
        memcpy(&id, msg + 8, 4);
        struct fake_res *r = fake_host_res(h, id);
        if (r) {
            munmap(r->ptr, r->size);
            memset(r, 0, sizeof(*r));
            __atomic_add_fetch(&h->n_destroyed, 1, __ATOMIC_SEQ_CST);
        }
    } else if (type == 4) {
        serve_submit(h, msg, len, close_conn);
    } else {
        *close_conn = true;
    }
}

static void close_conn_fd(struct fake_host *h)
{
    for (int i = 0; i < FAKE_MAX_RES; i++) {
        if (h->res[i].id) {
            munmap(h->res[i].ptr, h->res[i].size);
            memset(&h->res[i], 0, sizeof(h->res[i]));
        }
    }
    close(h->conn_fd);
    h->conn_fd = -1;
}

static void *serve(void *arg)
{
    struct fake_host *h = arg;
    size_t cap = (size_t)h->max_command_size + 64;
    uint8_t *buf = malloc(cap);
    while (!h->stop) {
        struct pollfd p = { .fd = h->conn_fd >= 0 ? h->conn_fd : h->listen_fd, .events = POLLIN };
        int pr = poll(&p, 1, 20);
        if (pr <= 0)
            continue;
        if (h->conn_fd < 0) {
            h->conn_fd = accept(h->listen_fd, NULL, NULL);
            if (h->conn_fd >= 0)
                __atomic_add_fetch(&h->n_connections, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        union {
            struct cmsghdr align;
            char b[CMSG_SPACE(sizeof(int))];
        } cm;
        struct iovec iov = { buf, cap };
        struct msghdr m;
        memset(&m, 0, sizeof(m));
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = cm.b;
        m.msg_controllen = sizeof(cm.b);
        ssize_t n = recvmsg(h->conn_fd, &m, 0);
        if (n <= 0) {
            close_conn_fd(h);
            continue;
        }
        int fd_in = -1;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        if (c && c->cmsg_type == SCM_RIGHTS)
            memcpy(&fd_in, CMSG_DATA(c), sizeof(int));
        bool close_conn = false;
        if (n >= 8)
            serve_message(h, buf, (size_t)n, fd_in, &close_conn);
        else
            close_conn = true;
        if (fd_in >= 0)
            close(fd_in);
        if (close_conn)
            close_conn_fd(h);
    }
    if (h->conn_fd >= 0)
        close_conn_fd(h);
    free(buf);
    return NULL;
}

int fake_host_start(struct fake_host *h, fake_handler handler, void *user)
{
    static int seq;
    memset(h->res, 0, sizeof(h->res));
    h->handler = handler;
    h->user = user;
    h->stop = 0;
    h->conn_fd = -1;
    if (!h->max_command_size)
        h->max_command_size = 1u << 20;
    snprintf(h->path, sizeof(h->path), "/tmp/vgpu-fake-%d-%d.sock", (int)getpid(), seq++);
    unlink(h->path);
    h->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, h->path, strlen(h->path));
    if (bind(h->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(h->listen_fd, 4) != 0)
        return -1;
    return pthread_create(&h->thread, NULL, serve, h);
}

void fake_host_stop(struct fake_host *h)
{
    h->stop = 1;
    pthread_join(h->thread, NULL);
    close(h->listen_fd);
    unlink(h->path);
}
