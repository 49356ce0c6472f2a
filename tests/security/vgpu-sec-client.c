/*
 * vgpu-sec-client: a raw client of the unix transport (docs/PROTOCOL.md §1) for the isolation
 * and leak tests. It speaks the protocol through tests/support/unix-client.h and misbehaves on
 * purpose.
 *
 *   vgpu-sec-client sigbus SOCKET
 *       Registers a memfd that cannot be sealed, shrinks it to 0 behind the server's back and
 *       asks the host to read it: the worker serving this client dies of SIGBUS (nothing the
 *       library can validate: the memory vanishes under a valid mapping). Exit 0 when the
 *       connection dropped without a reply, 3 if a reply came.
 *   vgpu-sec-client hang SOCKET
 *       Submits a graph that computes for a few seconds, prints "SUBMITTED" and waits (the
 *       test kills it with SIGKILL mid-call).
 *   vgpu-sec-client cycles N SOCKET [--pid PID] [--warmup W] [--full-every K] [--max-growth-kb KB]
 *       N connect/disconnect cycles. Every cycle says HELLO, maps a reply resource and does a
 *       HANDSHAKE; every K-th (default 1) also loads the library and works: EXT_HELLO, buffers
 *       (host-allocated and zero-copy), transfers, a cached graph computed twice; some cycles
 *       then break the protocol, leave everything allocated, or skip RESOURCE_DESTROY. Each
 *       cycle waits until the server has closed the connection (its context is gone). With
 *       --pid, PID's memory (/proc/PID/status) is read after cycle W (default N/10) and at the
 *       end; exit 1 if RssAnon grew by more than KB (default 1024).
 *   vgpu-sec-client leak-selftest
 *       Leaks 4 KiB on purpose and exits 0: in a sanitizer build LeakSanitizer must report it
 *       (the leak test's proof that LSan works where it runs).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "abi.h"
#include "apir-harness.h"
#include "apir.h"
#include "codec.h"
#include "ext.h"
#include "ggml.h"
#include "unix-client.h"
#include "unix.h"
#include "wire.h"

#define TIMEOUT_MS 30000
#define REPLY_SIZE (64 * 1024)

static int die(const char *what, int rc)
{
    fprintf(stderr, "vgpu-sec-client: %s: %d (%s)\n", what, rc, strerror(rc < 0 ? -rc : rc));
    return 1;
}

/* FORWARD; returns the handler code, or a value >= 1000 for a transport error. */
static uint32_t forward(struct uc_session *s, uint32_t cmd, const void *payload, size_t n)
{
    uint32_t ret = 0;
    int rc = uc_call(s->fd, &s->reply, APIR_COMMAND_TYPE_FORWARD, (int32_t)cmd, payload, n, TIMEOUT_MS, &ret);
    if (rc)
        return 1000 + (uint32_t)(-rc);
    return ret >= APIR_FORWARD_BASE_INDEX ? ret - APIR_FORWARD_BASE_INDEX : 900 + ret;
}

static const uint8_t *reply_payload(const struct uc_session *s)
{
    return s->reply.map + APIR_REPLY_PAYLOAD_OFFSET;
}

static uint32_t ext_hello(struct uc_session *s)
{
    struct vgpu_abi_info abi;
    vgpu_abi_info_get(&abi);
    struct vgpu_hello req = { VGPU_EXT_VERSION, 0, abi.hash, abi.n_ops, abi.n_types, abi.tensor_size, 0, 0, 0 };
    uint8_t buf[64];
    struct vgpu_enc e;
    vgpu_enc_init(&e, buf, sizeof(buf));
    vgpu_enc_hello_request(&e, &req);
    return forward(s, VGPU_CMD_EXT_HELLO, buf, vgpu_enc_used(&e));
}

/* EXT_BUFFER_ALLOC; zero-copy over res_id when res_id != 0. */
static uint32_t ext_alloc(struct uc_session *s, uint64_t size, uint32_t res_id, uint64_t *id)
{
    uint8_t buf[40];
    struct vgpu_enc e;
    vgpu_enc_init(&e, buf, sizeof(buf));
    vgpu_enc_u32(&e, 0);
    vgpu_enc_u32(&e, res_id ? VGPU_ALLOC_ZERO_COPY : 0);
    vgpu_enc_u64(&e, 0);
    vgpu_enc_u64(&e, size);
    vgpu_enc_u32(&e, res_id);
    vgpu_enc_u32(&e, 0);
    uint32_t r = forward(s, VGPU_CMD_EXT_BUFFER_ALLOC, buf, vgpu_enc_used(&e));
    if (r == VGPU_OK)
        memcpy(id, reply_payload(s), 8);
    return r;
}

static struct vgpu_wire_tensor wire_f32(int64_t ne0, int64_t ne1, uint64_t buffer, uint64_t off)
{
    struct vgpu_wire_tensor w;
    memset(&w, 0, sizeof(w));
    w.type = GGML_TYPE_F32;
    w.ne[0] = ne0;
    w.ne[1] = ne1;
    w.ne[2] = w.ne[3] = 1;
    w.nb[0] = 4;
    w.nb[1] = 4 * (uint64_t)ne0;
    w.nb[2] = w.nb[3] = w.nb[1] * (uint64_t)ne1;
    w.buffer = buffer;
    w.data = off;
    return w;
}

/* EXT_GRAPH_COMPUTE of an inline image (NULL: recompute uid). */
static uint32_t ext_graph(struct uc_session *s, const uint8_t *img, size_t n, uint64_t uid, uint32_t res_id)
{
    size_t cap = 64 + n;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return 2000;
    struct vgpu_enc e;
    vgpu_enc_init(&e, buf, cap);
    struct vgpu_graph_request q = { 0, 0, uid, res_id, 0, img ? n : 0 };
    vgpu_enc_graph_request(&e, &q);
    if (img && !res_id)
        vgpu_enc_blob(&e, img, n);
    uint32_t r = forward(s, VGPU_CMD_EXT_GRAPH_COMPUTE, buf, vgpu_enc_used(&e));
    free(buf);
    return r;
}

/* "VGG1" image of tensors t[n] with nodes[n_nodes]; returns its malloc'd bytes. */
static uint8_t *image(const struct vgpu_wire_tensor *t, uint32_t n, const uint32_t *nodes, uint32_t n_nodes,
                      size_t *size)
{
    size_t cap = VGPU_GRAPH_HEADER_SIZE + (size_t)n * VGPU_WIRE_TENSOR_SIZE + 4 * (size_t)n_nodes;
    uint8_t *img = malloc(cap);
    if (!img)
        return NULL;
    *size = apir_harness_graph_image(t, n, nodes, n_nodes, img, cap);
    if (!*size) {
        free(img);
        return NULL;
    }
    return img;
}

/* ---- sigbus ---------------------------------------------------------------------------------- */

static int cmd_sigbus(const char *path)
{
    struct uc_session s;
    int rc = uc_session_open(&s, path, REPLY_SIZE, true);
    if (rc)
        return die("session", rc);
    /* A memfd created without MFD_ALLOW_SEALING: the server cannot seal it against shrinking. */
    const size_t size = 65536;
    int memfd = memfd_create("vgpu-sec-unsealable", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, (off_t)size) != 0)
        return die("memfd", -errno);
    int32_t status = 0;
    rc = uc_resource_create_raw(s.fd, 2, size, 0, memfd, &status);
    if (rc || status)
        return die("RESOURCE_CREATE", rc ? rc : status);
    /* A buffer to write into, through the baseline protocol. */
    if (forward(&s, APIR_CMD_DEVICE_GET_BUFFER_TYPE, NULL, 0) != VGPU_OK)
        return die("GET_BUFFER_TYPE", -EPROTO);
    uint64_t buft;
    memcpy(&buft, reply_payload(&s), 8);
    uint8_t req[344];
    struct vgpu_enc e;
    vgpu_enc_init(&e, req, sizeof(req));
    vgpu_enc_u64(&e, buft);
    vgpu_enc_u64(&e, size);
    if (forward(&s, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER, req, vgpu_enc_used(&e)) != VGPU_OK)
        return die("ALLOC_BUFFER", -EPROTO);
    uint64_t buf;
    memcpy(&buf, reply_payload(&s), 8);
    /* The pages go away under the server's valid mapping. */
    if (ftruncate(memfd, 0) != 0)
        return die("ftruncate", -errno);
    struct vgpu_rpc_tensor t;
    memset(&t, 0, sizeof(t));
    t.id = 1;
    t.type = GGML_TYPE_I8;
    t.buffer = buf;
    t.ne[0] = (uint32_t)size;
    t.ne[1] = t.ne[2] = t.ne[3] = 1;
    t.nb[0] = 1;
    t.nb[1] = t.nb[2] = t.nb[3] = (uint32_t)size;
    vgpu_enc_init(&e, req, sizeof(req));
    vgpu_enc_u64(&e, buf);
    vgpu_enc_rpc_tensor(&e, &t);
    vgpu_enc_u32(&e, 2);
    vgpu_enc_u64(&e, 0);
    vgpu_enc_u64(&e, size);
    uint32_t ret = 0;
    rc = uc_call(s.fd, &s.reply, APIR_COMMAND_TYPE_FORWARD, APIR_CMD_BUFFER_SET_TENSOR, req, vgpu_enc_used(&e),
                 TIMEOUT_MS, &ret);
    close(memfd);
    uc_session_close(&s);
    if (rc == -EPIPE) {
        printf("vgpu-sec-client: the worker died reading the shrunk resource (connection dropped)\n");
        return 0;
    }
    if (rc == 0) {
        printf("vgpu-sec-client: the host answered %u: it survived a shrunk resource\n", ret);
        return 3;
    }
    return die("SET_TENSOR", rc);
}

/* ---- hang ----------------------------------------------------------------------------------- */

static int cmd_hang(const char *path)
{
    struct uc_session s;
    int rc = uc_session_open(&s, path, REPLY_SIZE, true);
    if (rc)
        return die("session", rc);
    if (ext_hello(&s) != VGPU_OK)
        return die("EXT_HELLO", -EPROTO);
    /* C = A x C, ping-ponging between two regions: 2048 multiplications of 512x512 by 512x128. */
    enum { K = 512, M = 128, STEPS = 2048 };
    const uint64_t a_off = 0, c0 = 4ull * K * K, c1 = c0 + 4ull * K * M, total = c1 + 4ull * K * M;
    struct uc_resource res;
    int32_t st = 0;
    rc = uc_resource_create(s.fd, &res, 2, total, &st);
    if (rc || st)
        return die("RESOURCE_CREATE", rc ? rc : st);
    for (uint64_t i = 0; i < total / 4; i++) {
        float v = (float)((i * 7) % 13) * 0.01f;
        memcpy(res.map + 4 * i, &v, 4);
    }
    uint64_t buf;
    if (ext_alloc(&s, total, 2, &buf) != VGPU_OK)
        return die("EXT_BUFFER_ALLOC", -EPROTO);
    struct vgpu_wire_tensor *t = calloc(STEPS + 2, sizeof(*t));
    uint32_t *nodes = calloc(STEPS, sizeof(*nodes));
    if (!t || !nodes)
        return die("calloc", -ENOMEM);
    t[0] = wire_f32(K, K, buf, a_off);
    t[1] = wire_f32(K, M, buf, c0);
    for (uint32_t i = 0; i < STEPS; i++) {
        t[i + 2] = wire_f32(K, M, buf, (i % 2) ? c0 : c1);
        t[i + 2].op = GGML_OP_MUL_MAT;
        t[i + 2].src[0] = 1;
        t[i + 2].src[1] = i + 2; /* the previous result */
        t[i + 2].flags = GGML_TENSOR_FLAG_COMPUTE;
        nodes[i] = i + 2;
    }
    size_t n;
    uint8_t *img = image(t, STEPS + 2, nodes, STEPS, &n);
    if (!img)
        return die("image", -ENOMEM);
    /* The image travels in a resource (it is larger than one socket message). */
    struct uc_resource gres;
    rc = uc_resource_create(s.fd, &gres, 3, n, &st);
    if (rc || st)
        return die("RESOURCE_CREATE", rc ? rc : st);
    memcpy(gres.map, img, n);
    uint8_t req[64];
    struct vgpu_enc e;
    vgpu_enc_init(&e, req, sizeof(req));
    struct vgpu_graph_request q = { 0, 0, 0, 3, 0, n };
    vgpu_enc_graph_request(&e, &q);
    memset(s.reply.map, 0, 4); /* the reply word: pending */
    rc = uc_submit(s.fd, APIR_COMMAND_TYPE_FORWARD, VGPU_CMD_EXT_GRAPH_COMPUTE, s.reply.id, req, vgpu_enc_used(&e));
    if (rc)
        return die("SUBMIT", rc);
    printf("SUBMITTED\n");
    fflush(stdout);
    uint32_t ret = 0;
    rc = uc_wait_reply(s.fd, &s.reply, 600000, &ret);
    printf("vgpu-sec-client: the graph finished (%d, %u): nobody killed this client\n", rc, ret);
    return 2;
}

/* ---- cycles ------------------------------------------------------------------------------- */

struct mem {
    long rss, anon, file, shmem;
};

static bool read_mem(int pid, struct mem *m)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    memset(m, 0, sizeof(*m));
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "VmRSS: %ld", &m->rss);
        sscanf(line, "RssAnon: %ld", &m->anon);
        sscanf(line, "RssFile: %ld", &m->file);
        sscanf(line, "RssShmem: %ld", &m->shmem);
    }
    fclose(f);
    return true;
}

/* Ends a session so that the server has torn the context down when this returns. */
static void end_session(struct uc_session *s)
{
    shutdown(s->fd, SHUT_WR);
    uc_expect_eof(s->fd, TIMEOUT_MS);
    uc_session_close(s);
}

/* One cycle (the i-th full one when `full`); returns 0 or an error code for the report. */
static int cycle(const char *path, int i, bool full)
{
    struct uc_session s;
    int rc;
    for (int tries = 0;; tries++) {
        rc = uc_session_open(&s, path, REPLY_SIZE, full);
        if (rc != -EPIPE && rc != -ECONNRESET && rc != -EPROTO)
            break;
        if (tries == 100)
            return rc;
        usleep(10000); /* the server is at --max-clients while the previous worker exits */
    }
    if (rc)
        return rc;
    if (!full) {
        end_session(&s);
        return 0;
    }
    if (ext_hello(&s) != VGPU_OK)
        return -EPROTO;
    uint64_t host_buf, zc_buf = 0;
    if (ext_alloc(&s, 4096, 0, &host_buf) != VGPU_OK)
        return -EPROTO;
    struct uc_resource zc;
    memset(&zc, 0, sizeof(zc));
    int32_t st = 0;
    bool have_zc = (i % 2) == 1;
    if (have_zc) {
        rc = uc_resource_create(s.fd, &zc, 2, 8192, &st);
        if (rc || st || ext_alloc(&s, 8192, 2, &zc_buf) != VGPU_OK)
            return -EPROTO;
    }
    uint64_t b = have_zc ? zc_buf : host_buf;
    /* Upload a and b inline, compute c = a + b under a uid, recompute it. */
    uint8_t req[512];
    struct vgpu_enc e;
    float v[16];
    for (int k = 0; k < 16; k++)
        v[k] = (float)(i + k);
    for (int which = 0; which < 2; which++) {
        struct vgpu_transfer x;
        memset(&x, 0, sizeof(x));
        x.tensor = wire_f32(16, 1, b, 64 * (uint64_t)which);
        x.size = 64;
        x.n_copies = 1;
        vgpu_enc_init(&e, req, sizeof(req));
        vgpu_enc_transfer(&e, &x);
        vgpu_enc_blob(&e, v, 64);
        if (forward(&s, VGPU_CMD_EXT_TENSOR_SET, req, vgpu_enc_used(&e)) != VGPU_OK)
            return -EPROTO;
    }
    struct vgpu_wire_tensor t[3] = { wire_f32(16, 1, b, 0), wire_f32(16, 1, b, 64), wire_f32(16, 1, b, 128) };
    t[2].op = GGML_OP_ADD;
    t[2].src[0] = 1;
    t[2].src[1] = 2;
    t[2].flags = GGML_TENSOR_FLAG_COMPUTE;
    uint32_t node = 2;
    size_t n;
    uint8_t *img = image(t, 3, &node, 1, &n);
    if (!img || ext_graph(&s, img, n, 7 + (uint64_t)i, 0) != VGPU_OK || ext_graph(&s, NULL, 0, 7 + (uint64_t)i, 0) != VGPU_OK) {
        free(img);
        return -EPROTO;
    }
    free(img);
    switch (i % 4) {
    case 0: /* tidy: free everything, destroy the resource */
        vgpu_enc_init(&e, req, sizeof(req));
        vgpu_enc_u64(&e, host_buf);
        if (forward(&s, VGPU_CMD_EXT_BUFFER_FREE, req, 8) != VGPU_OK)
            return -EPROTO;
        break;
    case 1: /* leave the buffers, the cached graph and the resource to the context's end */
        break;
    case 2: /* break the protocol (fatal context) first */
        forward(&s, 50, NULL, 0);
        break;
    default: /* a truncated request, then free only the zero-copy buffer */
        forward(&s, VGPU_CMD_EXT_BUFFER_ALLOC, req, 3);
        break;
    }
    if (have_zc && i % 4 == 3) {
        uc_resource_destroy(s.fd, 2);
    }
    end_session(&s);
    if (have_zc)
        uc_resource_free(&zc);
    return 0;
}

static int cmd_cycles(int argc, char **argv)
{
    if (argc < 4)
        return die("usage: cycles N SOCKET [--pid PID] [--warmup W] [--full-every K] [--max-growth-kb KB]", -EINVAL);
    int n = atoi(argv[2]);
    const char *path = argv[3];
    int pid = 0, warmup = n / 10, every = 1;
    long max_kb = 1024;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--pid"))
            pid = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup"))
            warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--full-every"))
            every = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-growth-kb"))
            max_kb = atol(argv[i + 1]);
    }
    if (every < 1)
        every = 1;
    struct mem m0 = { 0 }, m1 = { 0 };
    int64_t t0 = uc_now_ms();
    for (int i = 0; i < n; i++) {
        if (pid && i == warmup) {
            if (!read_mem(pid, &m0))
                return die("read /proc/PID/status", -errno);
        }
        int rc = cycle(path, i / every, i % every == 0);
        if (rc)
            return die("cycle", rc);
    }
    int64_t t1 = uc_now_ms();
    printf("vgpu-sec-client: %d cycles (%d full) in %.1f s\n", n, (n + every - 1) / every, (double)(t1 - t0) / 1e3);
    if (!pid)
        return 0;
    usleep(200000); /* the listener reaps the last worker */
    if (!read_mem(pid, &m1))
        return die("read /proc/PID/status", -errno);
    long growth = m1.anon - m0.anon;
    printf("RSS pid %d after %d cycles (settled): VmRSS %ld kB, RssAnon %ld kB, RssFile %ld kB, RssShmem %ld kB\n",
           pid, warmup, m0.rss, m0.anon, m0.file, m0.shmem);
    printf("RSS pid %d after %d cycles:           VmRSS %ld kB, RssAnon %ld kB, RssFile %ld kB, RssShmem %ld kB\n",
           pid, n, m1.rss, m1.anon, m1.file, m1.shmem);
    printf("RSS growth over %d cycles: VmRSS %+ld kB, RssAnon %+ld kB (limit %ld kB)\n", n - warmup,
           m1.rss - m0.rss, growth, max_kb);
    return growth > max_kb ? 1 : 0;
}

/* ---- leak self-test -------------------------------------------------------------------------- */

static void *volatile leak_sink;

static int cmd_leak_selftest(void)
{
    leak_sink = malloc(4096);
    memset(leak_sink, 1, 4096);
    leak_sink = NULL;
    printf("vgpu-sec-client: leaked 4096 bytes on purpose\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && !strcmp(argv[1], "sigbus"))
        return cmd_sigbus(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "hang"))
        return cmd_hang(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "cycles"))
        return cmd_cycles(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "leak-selftest"))
        return cmd_leak_selftest();
    fprintf(stderr, "usage: vgpu-sec-client sigbus SOCKET | hang SOCKET | cycles N SOCKET [...] | leak-selftest\n");
    return 1;
}
