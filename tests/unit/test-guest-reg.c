/*
 * The whole guest module through ggml's public API, against an in-test fake host that
 * speaks docs/PROTOCOL.md (extension and baseline commands) over the fake server of
 * test-guest-fakehost.c. The reg starts once per process, so every scenario runs in a
 * child process and reports through its exit status.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "apir.h"
#include "ext.h"
#include "ggml-alloc.h"
#include "ggml-backend-impl.h"
#include "ggml-impl.h"
#include "ggml-backend.h"
#include "ggml-virtgpu.h"
#include "ggml.h"
#include "test-guest-fakehost.h"
#include "wire.h"

/* The module's GGML_BACKEND_DL entry points (no header declares them). */
ggml_backend_reg_t ggml_backend_init(void);
int ggml_backend_score(void);

#define CHECK(c)                                                                         \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);        \
            fflush(stderr);                                                              \
            _exit(1);                                                                    \
        }                                                                                \
    } while (0)

/* Runs fn in a child process; asserts it exits with 0. */
static void in_child(void (*fn)(void))
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn();
        exit(0); /* exit, not _exit: a leak checker (ASan builds) looks at the child too */
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- the fake host ------------------------------------------------------------------------- */

enum mode { MODE_EXT, MODE_ABI_MISMATCH, MODE_BASELINE };

#define MAX_BUF 64
struct fbuf {
    uint64_t id;
    uint8_t *mem;
    uint64_t size;
    uint32_t res; /* zero-copy resource, 0 = malloc'd */
};

struct fake {
    enum mode   mode;
    struct fbuf bufs[MAX_BUF];
    uint64_t    next_id;
    uint64_t    cached[16];
    int         n_cached;
    /* what the guest did (atomic counters) */
    int         n_supports, n_offload, n_memory, n_alloc_size, n_init, n_set, n_get, n_memset, n_copy, n_clear;
    int         n_free, n_graph_full, n_graph_reuse, n_graph_not_cached, n_optimize, n_threads, n_set_inline;
    int         n_get_inline;
    uint64_t    last_uid;
    uint32_t    last_graph_nodes;
    int         die_on_graph; /* close the connection at the next graph */
};

static struct fake g_fake;

static void bump(int *c)
{
    __atomic_add_fetch(c, 1, __ATOMIC_SEQ_CST);
}

static int get(int *c)
{
    return __atomic_load_n(c, __ATOMIC_SEQ_CST);
}

static struct fbuf *fbuf_of(uint64_t id)
{
    for (int i = 0; i < MAX_BUF; i++)
        if (g_fake.bufs[i].id == id && id)
            return &g_fake.bufs[i];
    return NULL;
}

static uint64_t fbuf_new(struct fake_host *h, uint64_t size, uint32_t res)
{
    for (int i = 0; i < MAX_BUF; i++) {
        struct fbuf *b = &g_fake.bufs[i];
        if (b->id)
            continue;
        if (res) {
            struct fake_res *r = fake_host_res(h, res);
            if (!r || r->size < size)
                return 0;
            b->mem = r->ptr;
        } else {
            b->mem = calloc(1, size);
        }
        b->id = ++g_fake.next_id + 0x1000;
        b->size = size;
        b->res = res;
        return b->id;
    }
    return 0;
}

static void fbuf_free(uint64_t id)
{
    struct fbuf *b = fbuf_of(id);
    if (!b)
        return;
    if (!b->res)
        free(b->mem);
    memset(b, 0, sizeof(*b));
}

/* Bytes [off, off+n) of a tensor described at `data` in buffer id, or NULL. */
static uint8_t *fmem(uint64_t id, uint64_t data, uint64_t off, uint64_t n)
{
    struct fbuf *b = fbuf_of(id);
    if (!b || data + off + n > b->size)
        return NULL;
    return b->mem + data + off;
}

static void enc_string(struct vgpu_enc *e, const char *s)
{
    vgpu_enc_string(e, s);
}

static uint32_t ext_command(struct fake_host *h, uint32_t cmd, struct vgpu_dec *req, struct vgpu_enc *rep)
{
    switch (cmd) {
    case VGPU_CMD_EXT_HELLO: {
        struct vgpu_hello q, r = { 0 };
        if (!vgpu_dec_hello_request(req, &q) || q.ext_version != VGPU_EXT_VERSION ||
            q.tensor_size != sizeof(struct ggml_tensor))
            return VGPU_INVALID;
        if (g_fake.mode == MODE_BASELINE)
            return VGPU_UNKNOWN_COMMAND;
        r.ext_version = 1; /* a version-1 host: the guest must not batch (no EXT_BATCH here) */
        r.abi_hash = q.abi_hash;
        r.n_ops = q.n_ops;
        r.n_types = q.n_types;
        r.tensor_size = q.tensor_size;
        r.n_devices = 2;
        r.graph_cache_slots = 4;
        r.max_command_size = 1u << 20;
        if (g_fake.mode == MODE_ABI_MISMATCH) {
            r.abi_hash ^= 1;
            r.n_ops = q.n_ops + 3;
            vgpu_enc_hello_reply(rep, &r);
            return VGPU_ABI_MISMATCH;
        }
        vgpu_enc_hello_reply(rep, &r);
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_DEVICE_INFO: {
        uint32_t dev = vgpu_dec_u32(req);
        if (dev > 1)
            return VGPU_INVALID;
        struct vgpu_device_info d = { 0 };
        snprintf(d.name, sizeof(d.name), "Fake%u", dev);
        snprintf(d.description, sizeof(d.description), "Fake device %u", dev);
        d.type = 0; /* a CPU: the guest must still call it a GPU */
        d.mem_free = 1000;
        d.mem_total = 2000;
        d.buft_id = 0x100 + dev;
        snprintf(d.buft_name, sizeof(d.buft_name), "FAKEBUF");
        d.alignment = 64;
        d.max_size = (uint64_t)1 << 40;
        d.buft_flags = dev == 0 ? (VGPU_BUFT_ALLOC_SIZE | VGPU_BUFT_GRAPH_OPTIMIZE)
                                : (VGPU_BUFT_ZERO_COPY | VGPU_BUFT_IS_HOST | VGPU_BUFT_NEEDS_INIT);
        vgpu_enc_device_info(rep, &d);
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_DEVICE_MEMORY:
        bump(&g_fake.n_memory);
        vgpu_enc_u64(rep, 500 + (uint64_t)get(&g_fake.n_memory));
        vgpu_enc_u64(rep, 2000);
        return VGPU_OK;
    case VGPU_CMD_EXT_BUFFER_ALLOC: {
        uint32_t dev = vgpu_dec_u32(req);
        uint32_t flags = vgpu_dec_u32(req);
        uint64_t buft = vgpu_dec_u64(req);
        uint64_t size = vgpu_dec_u64(req);
        uint32_t res = vgpu_dec_u32(req);
        if (!vgpu_dec_ok(req) || buft != 0x100 + dev)
            return VGPU_INVALID;
        if ((flags & VGPU_ALLOC_ZERO_COPY) != (dev == 1 ? VGPU_ALLOC_ZERO_COPY : 0))
            return VGPU_INVALID;
        uint64_t id = fbuf_new(h, size, (flags & VGPU_ALLOC_ZERO_COPY) ? res : 0);
        if (!id)
            return VGPU_NO_MEMORY;
        vgpu_enc_u64(rep, id);
        vgpu_enc_u64(rep, size);
        vgpu_enc_u32(rep, flags & VGPU_ALLOC_ZERO_COPY);
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_BUFFER_FREE:
        bump(&g_fake.n_free);
        fbuf_free(vgpu_dec_u64(req));
        return VGPU_OK;
    case VGPU_CMD_EXT_BUFFER_CLEAR: {
        bump(&g_fake.n_clear);
        struct fbuf *b = fbuf_of(vgpu_dec_u64(req));
        uint32_t v = vgpu_dec_u32(req);
        if (!b)
            return VGPU_NOT_FOUND;
        memset(b->mem, (int)v, b->size);
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_TENSOR_SET:
    case VGPU_CMD_EXT_TENSOR_GET: {
        struct vgpu_transfer x;
        if (!vgpu_dec_transfer(req, &x) || x.n_copies == 0)
            return VGPU_INVALID;
        bool set = cmd == VGPU_CMD_EXT_TENSOR_SET;
        bump(set ? &g_fake.n_set : &g_fake.n_get);
        uint64_t total = x.size * x.n_copies;
        const uint8_t *in = NULL;
        uint8_t *io = NULL;
        if (x.res_id) {
            struct fake_res *r = fake_host_res(h, x.res_id);
            uint64_t extent = x.res_offset + (x.n_copies - 1) * x.stride_data + x.size;
            if (!r || extent > r->size)
                return VGPU_INVALID;
            io = r->ptr + x.res_offset;
            in = io;
        } else if (set) {
            size_t n;
            bump(&g_fake.n_set_inline);
            in = vgpu_dec_blob(req, vgpu_dec_left(req), &n);
            if (!in || n != total || (x.n_copies > 1 && x.stride_data != x.size))
                return VGPU_INVALID;
        } else {
            bump(&g_fake.n_get_inline);
            vgpu_enc_u64(rep, total);
            io = vgpu_enc_reserve(rep, total);
            if (!io)
                return VGPU_INVALID;
            x.stride_data = x.size;
        }
        uint64_t sd = x.n_copies > 1 ? x.stride_data : 0;
        for (uint64_t i = 0; i < x.n_copies; i++) {
            uint8_t *t = fmem(x.tensor.buffer, x.tensor.data, x.offset + i * x.stride_tensor, x.size);
            if (!t)
                return VGPU_INVALID;
            if (set)
                memcpy(t, in + i * sd, x.size);
            else
                memcpy(io + i * (x.res_id ? sd : x.size), t, x.size);
        }
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_TENSOR_MEMSET: {
        bump(&g_fake.n_memset);
        struct vgpu_wire_tensor w;
        vgpu_dec_wire_tensor(req, &w);
        uint64_t off = vgpu_dec_u64(req), n = vgpu_dec_u64(req);
        uint32_t v = vgpu_dec_u32(req);
        uint8_t *t = fmem(w.buffer, w.data, off, n);
        if (!vgpu_dec_ok(req) || !t)
            return VGPU_INVALID;
        memset(t, (int)v, n);
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_TENSOR_COPY: {
        bump(&g_fake.n_copy);
        struct vgpu_wire_tensor s, d;
        vgpu_dec_wire_tensor(req, &s);
        vgpu_dec_wire_tensor(req, &d);
        uint64_t n = (uint64_t)s.ne[0] * s.ne[1] * s.ne[2] * s.ne[3] * 4; /* F32 only here */
        uint8_t *ps = fmem(s.buffer, s.data, 0, n), *pd = fmem(d.buffer, d.data, 0, n);
        if (!ps || !pd)
            return VGPU_INVALID;
        memmove(pd, ps, n);
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_TENSOR_INIT:
        bump(&g_fake.n_init);
        return VGPU_OK;
    case VGPU_CMD_EXT_GET_ALLOC_SIZE: {
        bump(&g_fake.n_alloc_size);
        (void)vgpu_dec_u32(req);
        (void)vgpu_dec_u64(req);
        uint32_t n = vgpu_dec_u32(req);
        struct vgpu_wire_tensor w;
        for (uint32_t i = 0; i < n; i++)
            vgpu_dec_wire_tensor(req, &w);
        if (!vgpu_dec_ok(req) || n == 0)
            return VGPU_INVALID;
        vgpu_enc_u64(rep, w.nb[3] * (uint64_t)w.ne[3] + 256); /* contiguous: nbytes + 256 */
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_SUPPORTS_OP:
    case VGPU_CMD_EXT_OFFLOAD_OP: {
        bump(cmd == VGPU_CMD_EXT_SUPPORTS_OP ? &g_fake.n_supports : &g_fake.n_offload);
        (void)vgpu_dec_u32(req);
        uint32_t n = vgpu_dec_u32(req);
        struct vgpu_wire_tensor w;
        for (uint32_t i = 0; i < n; i++)
            vgpu_dec_wire_tensor(req, &w);
        if (!vgpu_dec_ok(req) || n == 0 || n > 11)
            return VGPU_INVALID;
        vgpu_enc_u32(rep, w.op != GGML_OP_DIV);
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_GRAPH_COMPUTE: {
        struct vgpu_graph_request g;
        vgpu_dec_graph_request(req, &g);
        if (__atomic_load_n(&g_fake.die_on_graph, __ATOMIC_SEQ_CST))
            return 1000; /* see ext_handler: close */
        g_fake.last_uid = g.uid;
        if (g.size == 0) {
            bool held = false;
            for (int i = 0; i < g_fake.n_cached; i++)
                held |= g_fake.cached[i] == g.uid;
            vgpu_enc_u32(rep, held ? VGPU_GRAPH_COMPUTED : VGPU_GRAPH_NOT_CACHED);
            vgpu_enc_i32(rep, 0);
            bump(held ? &g_fake.n_graph_reuse : &g_fake.n_graph_not_cached);
            return VGPU_OK;
        }
        const uint8_t *img;
        if (g.res_id) {
            struct fake_res *r = fake_host_res(h, g.res_id);
            if (!r || g.res_offset + g.size > r->size)
                return VGPU_INVALID;
            img = r->ptr + g.res_offset;
        } else {
            size_t n;
            img = vgpu_dec_blob(req, g.size, &n);
            if (!img || n != g.size)
                return VGPU_INVALID;
        }
        uint32_t magic, nn;
        memcpy(&magic, img, 4);
        memcpy(&nn, img + 8, 4);
        if (magic != VGPU_GRAPH_MAGIC)
            return VGPU_INVALID;
        g_fake.last_graph_nodes = nn;
        bump(&g_fake.n_graph_full);
        if (g.uid && g_fake.n_cached < 16)
            g_fake.cached[g_fake.n_cached++] = g.uid;
        vgpu_enc_u32(rep, VGPU_GRAPH_COMPUTED);
        vgpu_enc_i32(rep, 0);
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_GRAPH_OPTIMIZE: {
        bump(&g_fake.n_optimize);
        struct vgpu_graph_request g;
        vgpu_dec_graph_request(req, &g);
        const uint8_t *img;
        size_t n;
        if (g.res_id)
            return VGPU_INVALID; /* small graphs come inline */
        img = vgpu_dec_blob(req, g.size, &n);
        if (!img)
            return VGPU_INVALID;
        uint32_t nt, nn;
        memcpy(&nt, img + 4, 4);
        memcpy(&nn, img + 8, 4);
        /* Swap the last two nodes (independent in the test graph); one dependency. */
        vgpu_enc_u32(rep, nn);
        for (uint32_t i = 0; i < nn; i++)
            vgpu_enc_u32(rep, i + 2 == nn ? nn - 1 : i + 1 == nn ? nn - 2 : i);
        vgpu_enc_u32(rep, 1);
        vgpu_enc_u32(rep, 0);
        vgpu_enc_u32(rep, nt - 1);
        return VGPU_OK;
    }
    case VGPU_CMD_EXT_SET_N_THREADS:
        (void)vgpu_dec_u32(req);
        __atomic_store_n(&g_fake.n_threads, (int)vgpu_dec_u32(req), __ATOMIC_SEQ_CST);
        return VGPU_OK;
    default:
        return VGPU_UNKNOWN_COMMAND;
    }
}

static uint32_t base_command(struct fake_host *h, uint32_t cmd, struct vgpu_dec *req, struct vgpu_enc *rep)
{
    switch (cmd) {
    case APIR_CMD_DEVICE_GET_NAME: enc_string(rep, "BaseDev"); return VGPU_OK;
    case APIR_CMD_DEVICE_GET_DESCRIPTION: enc_string(rep, "Baseline device"); return VGPU_OK;
    case APIR_CMD_DEVICE_GET_TYPE: vgpu_enc_u32(rep, 1); return VGPU_OK;
    case APIR_CMD_DEVICE_GET_MEMORY:
        bump(&g_fake.n_memory);
        vgpu_enc_u64(rep, 7000);
        vgpu_enc_u64(rep, 8000);
        return VGPU_OK;
    case APIR_CMD_DEVICE_GET_BUFFER_TYPE: vgpu_enc_u64(rep, 0x77); return VGPU_OK;
    case APIR_CMD_DEVICE_GET_PROPS:
        for (int i = 0; i < 5; i++)
            vgpu_enc_bool(rep, false); /* no buffer_from_host_ptr: host-allocated buffers */
        return VGPU_OK;
    case APIR_CMD_BUFFER_TYPE_GET_NAME: enc_string(rep, "BASEBUF"); return VGPU_OK;
    case APIR_CMD_BUFFER_TYPE_GET_ALIGNMENT: vgpu_enc_u64(rep, 32); return VGPU_OK;
    case APIR_CMD_BUFFER_TYPE_GET_MAX_SIZE: vgpu_enc_u64(rep, UINT64_MAX); return VGPU_OK;
    case APIR_CMD_DEVICE_SUPPORTS_OP: {
        bump(&g_fake.n_supports);
        struct vgpu_inline_tensor it;
        if (!vgpu_dec_inline_tensor(req, &it))
            return VGPU_INVALID;
        /* What an upstream host would dereference must not be there. */
        if (it.op.buffer || it.op.view_src || it.op.data || it.op.extra || it.has_buffer)
            return VGPU_INVALID;
        vgpu_enc_bool(rep, it.op.op != GGML_OP_DIV);
        return VGPU_OK;
    }
    case APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE: {
        bump(&g_fake.n_alloc_size);
        (void)vgpu_dec_u64(req);
        struct vgpu_inline_tensor it;
        if (!vgpu_dec_inline_tensor(req, &it))
            return VGPU_INVALID;
        vgpu_enc_u64(rep, it.op.nb[3] * (uint64_t)it.op.ne[3]);
        return VGPU_OK;
    }
    case APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER: {
        uint64_t buft = vgpu_dec_u64(req), size = vgpu_dec_u64(req);
        vgpu_enc_u64(rep, buft == 0x77 ? fbuf_new(h, size, 0) : 0);
        return VGPU_OK;
    }
    case APIR_CMD_BUFFER_GET_BASE: {
        uint64_t id = vgpu_dec_u64(req);
        vgpu_enc_u64(rep, fbuf_of(id) ? (id << 32) : 0);
        return VGPU_OK;
    }
    case APIR_CMD_BUFFER_SET_TENSOR:
    case APIR_CMD_BUFFER_GET_TENSOR: {
        bump(cmd == APIR_CMD_BUFFER_SET_TENSOR ? &g_fake.n_set : &g_fake.n_get);
        uint64_t buf = vgpu_dec_u64(req);
        struct vgpu_rpc_tensor r;
        vgpu_dec_rpc_tensor(req, &r);
        uint32_t res = vgpu_dec_u32(req);
        uint64_t off = vgpu_dec_u64(req), n = vgpu_dec_u64(req);
        struct fake_res *fr = fake_host_res(h, res);
        uint8_t *t = fmem(buf, r.data, off, n);
        if (!vgpu_dec_ok(req) || !fr || n > fr->size || !t || r.buffer != buf)
            return VGPU_INVALID;
        if (cmd == APIR_CMD_BUFFER_SET_TENSOR)
            memcpy(t, fr->ptr, n);
        else
            memcpy(fr->ptr, t, n);
        return VGPU_OK;
    }
    case APIR_CMD_BUFFER_CLEAR: {
        bump(&g_fake.n_clear);
        struct fbuf *b = fbuf_of(vgpu_dec_u64(req));
        uint8_t v = vgpu_dec_u8(req);
        if (!b)
            return VGPU_INVALID;
        memset(b->mem, v, b->size);
        return VGPU_OK;
    }
    case APIR_CMD_BUFFER_FREE_BUFFER:
        bump(&g_fake.n_free);
        fbuf_free(vgpu_dec_u64(req));
        return VGPU_OK;
    case APIR_CMD_BACKEND_GRAPH_COMPUTE: {
        uint32_t res = vgpu_dec_u32(req);
        uint64_t size = vgpu_dec_u64(req);
        struct fake_res *fr = fake_host_res(h, res);
        if (!fr || size > fr->size)
            return VGPU_INVALID;
        uint32_t nn;
        memcpy(&nn, fr->ptr, 4);
        g_fake.last_graph_nodes = nn;
        bump(&g_fake.n_graph_full);
        vgpu_enc_i32(rep, 0);
        return VGPU_OK;
    }
    default:
        return VGPU_UNKNOWN_COMMAND; /* includes every extension id */
    }
}

static enum fake_action apir_handler(struct fake_host *h, int32_t type, int32_t flags, struct vgpu_dec *req,
                                     struct vgpu_enc *rep, uint32_t *ret)
{
    if (type == APIR_COMMAND_TYPE_HANDSHAKE) {
        vgpu_enc_u32(rep, 0);
        vgpu_enc_u32(rep, 2);
        *ret = APIR_HANDSHAKE_MAGIC;
        return FAKE_REPLY;
    }
    if (type == APIR_COMMAND_TYPE_LOADLIBRARY) {
        *ret = 0;
        return FAKE_REPLY;
    }
    if (type != APIR_COMMAND_TYPE_FORWARD)
        return FAKE_CLOSE;
    uint32_t code;
    if (g_fake.mode == MODE_BASELINE && flags >= VGPU_CMD_EXT_FIRST)
        code = VGPU_UNKNOWN_COMMAND;
    else if (flags >= VGPU_CMD_EXT_FIRST)
        code = ext_command(h, (uint32_t)flags, req, rep);
    else
        code = base_command(h, (uint32_t)flags, req, rep);
    if (code == 1000)
        return FAKE_CLOSE;
    *ret = APIR_FORWARD_BASE_INDEX + code;
    return FAKE_REPLY;
}

static struct fake_host g_host;

static ggml_backend_reg_t start(enum mode mode)
{
    memset(&g_fake, 0, sizeof(g_fake));
    g_fake.mode = mode;
    memset(&g_host, 0, sizeof(g_host));
    CHECK(fake_host_start(&g_host, apir_handler, NULL) == 0);
    setenv("GGML_VIRTGPU_SOCKET", g_host.path, 1);
    return ggml_backend_virtgpu_reg();
}

/* ---- scenarios --------------------------------------------------------------------------------- */

static void no_socket(void)
{
    unsetenv("GGML_VIRTGPU_SOCKET");
    ggml_backend_reg_t reg = ggml_backend_virtgpu_reg();
    CHECK(reg != NULL);
    CHECK(reg->api_version == GGML_BACKEND_API_VERSION);
    CHECK(strcmp(ggml_backend_reg_name(reg), "VirtGPU") == 0);
    CHECK(ggml_backend_reg_dev_count(reg) == 0);
    CHECK(reg->iface.get_device(reg, 0) == NULL);
    CHECK(ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads") != NULL);
    CHECK(ggml_backend_reg_get_proc_address(reg, "no_such_function") == NULL);
    CHECK(ggml_backend_init() == reg); /* the GGML_BACKEND_DL entry points */
    CHECK(ggml_backend_score() == 1);
    /* set_n_threads with a foreign backend does nothing */
    ggml_backend_set_n_threads_t fn =
        (ggml_backend_set_n_threads_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
    fn(NULL, 4);
}

static void connect_refused(void)
{
    setenv("GGML_VIRTGPU_SOCKET", "/tmp/vgpu-no-such-socket-here.sock", 1);
    ggml_backend_reg_t reg = ggml_backend_virtgpu_reg();
    CHECK(ggml_backend_reg_dev_count(reg) == 0);
}

static void abi_mismatch(void)
{
    ggml_backend_reg_t reg = start(MODE_ABI_MISMATCH);
    CHECK(ggml_backend_reg_dev_count(reg) == 0);
    fake_host_stop(&g_host);
}

static struct ggml_context *ctx_new(void)
{
    struct ggml_init_params p = { 256 * ggml_tensor_overhead() + ggml_graph_overhead(), NULL, true };
    return ggml_init(p);
}

static void ext_devices(void)
{
    ggml_backend_reg_t reg = start(MODE_EXT);
    CHECK(ggml_backend_reg_dev_count(reg) == 2);
    ggml_backend_dev_t d0 = ggml_backend_reg_dev_get(reg, 0), d1 = ggml_backend_reg_dev_get(reg, 1);
    CHECK(strcmp(ggml_backend_dev_name(d0), "VirtGPU0") == 0);
    CHECK(strcmp(ggml_backend_dev_name(d1), "VirtGPU1") == 0);
    CHECK(strcmp(ggml_backend_dev_description(d1), "[virtgpu] Fake device 1 (Fake1)") == 0);
    CHECK(ggml_backend_dev_type(d0) == GGML_BACKEND_DEVICE_TYPE_GPU);
    CHECK(ggml_backend_dev_backend_reg(d0) == reg);

    /* get_memory goes to the host every time */
    size_t f1, t1, f2, t2;
    ggml_backend_dev_memory(d0, &f1, &t1);
    ggml_backend_dev_memory(d0, &f2, &t2);
    CHECK(get(&g_fake.n_memory) == 2);
    CHECK(f1 == 501 && f2 == 502 && t1 == 2000);

    /* supports_op: asked once per signature */
    struct ggml_context *ctx = ctx_new();
    struct ggml_tensor *a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 16, 4);
    struct ggml_tensor *b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 16, 4);
    struct ggml_tensor *add1 = ggml_add(ctx, a, b), *add2 = ggml_add(ctx, b, a);
    CHECK(ggml_backend_dev_supports_op(d0, add1));
    CHECK(ggml_backend_dev_supports_op(d0, add2));
    CHECK(ggml_backend_dev_supports_op(d0, add1));
    CHECK(get(&g_fake.n_supports) == 1);
    CHECK(!ggml_backend_dev_supports_op(d0, ggml_div(ctx, a, b)));
    CHECK(get(&g_fake.n_supports) == 2);
    CHECK(ggml_backend_dev_supports_op(d1, add1)); /* per device */
    CHECK(get(&g_fake.n_supports) == 3);
    /* ops that compute nothing are supported everywhere, without a round trip */
    CHECK(ggml_backend_dev_supports_op(d0, ggml_view_1d(ctx, a, 8, 0)));
    CHECK(ggml_backend_dev_supports_op(d0, ggml_transpose(ctx, a)));
    CHECK(ggml_backend_dev_supports_op(d0, a));
    CHECK(get(&g_fake.n_supports) == 3);
    CHECK(ggml_backend_dev_offload_op(d0, add1));
    CHECK(ggml_backend_dev_offload_op(d0, add1));
    CHECK(get(&g_fake.n_offload) == 1);
    CHECK(ggml_backend_dev_supports_buft(d0, ggml_backend_dev_buffer_type(d0)));
    CHECK(!ggml_backend_dev_supports_buft(d0, ggml_backend_dev_buffer_type(d1)));
    CHECK(!ggml_backend_dev_supports_buft(d0, ggml_backend_cpu_buffer_type()));

    /* get_alloc_size: ggml_nbytes for a plain F32 op, the host's answer (cached) otherwise */
    ggml_backend_buffer_type_t bt0 = ggml_backend_dev_buffer_type(d0);
    CHECK(ggml_backend_buft_get_alloc_size(bt0, add1) == ggml_nbytes(add1));
    CHECK(get(&g_fake.n_alloc_size) == 0);
    struct ggml_tensor *q = ggml_new_tensor_2d(ctx, GGML_TYPE_Q4_0, 64, 4);
    CHECK(ggml_backend_buft_get_alloc_size(bt0, q) == ggml_nbytes(q) + 256);
    CHECK(ggml_backend_buft_get_alloc_size(bt0, q) == ggml_nbytes(q) + 256);
    CHECK(get(&g_fake.n_alloc_size) == 1);
    CHECK(!ggml_backend_buft_is_host(bt0));
    CHECK(ggml_backend_buft_is_host(ggml_backend_dev_buffer_type(d1)));
    CHECK(ggml_backend_buft_get_alignment(bt0) == 64);
    ggml_free(ctx);
    fake_host_stop(&g_host);
}

static void fill(float *p, size_t n, float k)
{
    for (size_t i = 0; i < n; i++)
        p[i] = k + (float)i;
}

/* Host-allocated buffers: data through the command (small) or staging (large, chunked). */
static void ext_host_buffers(void)
{
    ggml_backend_reg_t reg = start(MODE_EXT);
    ggml_backend_dev_t d0 = ggml_backend_reg_dev_get(reg, 0);
    struct ggml_context *ctx = ctx_new();
    struct ggml_tensor *small = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 1000);
    struct ggml_tensor *big = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 10 * 1024 * 1024); /* 40 MiB */
    struct ggml_tensor *m = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 64, 64);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_dev_buffer_type(d0));
    CHECK(buf != NULL);
    CHECK(!ggml_backend_buffer_is_host(buf));
    CHECK(ggml_backend_buffer_get_base(buf) != NULL);

    float in[1000], out[1000];
    fill(in, 1000, 1.5f);
    ggml_backend_tensor_set(small, in, 0, sizeof(in));
    CHECK(get(&g_fake.n_set_inline) == 1);
    memset(out, 0, sizeof(out));
    ggml_backend_tensor_get(small, out, 0, sizeof(out));
    CHECK(get(&g_fake.n_get_inline) == 1);
    CHECK(memcmp(in, out, sizeof(in)) == 0);

    size_t nb = ggml_nbytes(big);
    float *bin = malloc(nb), *bout = malloc(nb);
    fill(bin, nb / 4, -7.0f);
    int sets = get(&g_fake.n_set);
    ggml_backend_tensor_set(big, bin, 0, nb);
    CHECK(get(&g_fake.n_set) - sets == 2); /* 40 MiB through a 32 MiB staging area */
    ggml_backend_tensor_get(big, bout, 0, nb);
    CHECK(memcmp(bin, bout, nb) == 0);
    /* memset through the host */
    ggml_backend_tensor_memset(big, 0xAB, 100, 1000);
    ggml_backend_tensor_get(big, bout, 0, 2048);
    CHECK(((uint8_t *)bout)[99] == ((uint8_t *)bin)[99] && ((uint8_t *)bout)[100] == 0xAB &&
          ((uint8_t *)bout)[1099] == 0xAB && ((uint8_t *)bout)[1100] == ((uint8_t *)bin)[1100]);

    /* 2-D: 64 rows of 16 floats, every other row of the tensor */
    float rows[64 * 16], back[64 * 16];
    fill(rows, 64 * 16, 100.0f);
    ggml_backend_tensor_set_2d(m, rows, 0, 16 * 4, 32, 2 * m->nb[1], 16 * 4);
    memset(back, 0, sizeof(back));
    ggml_backend_tensor_get_2d(m, back, 0, 16 * 4, 32, 2 * m->nb[1], 16 * 4);
    CHECK(memcmp(rows, back, 32 * 16 * 4) == 0);
    float row2[64];
    ggml_backend_tensor_get(m, row2, 2 * m->nb[1], 64 * 4);
    CHECK(memcmp(row2, rows + 16, 16 * 4) == 0);

    /* copy between our tensors: done by the host */
    struct ggml_context *ctx2 = ctx_new();
    struct ggml_tensor *small2 = ggml_new_tensor_1d(ctx2, GGML_TYPE_F32, 1000);
    ggml_backend_buffer_t buf2 = ggml_backend_alloc_ctx_tensors_from_buft(ctx2, ggml_backend_dev_buffer_type(d0));
    ggml_backend_tensor_copy(small, small2);
    CHECK(get(&g_fake.n_copy) == 1);
    ggml_backend_tensor_get(small2, out, 0, sizeof(out));
    CHECK(memcmp(in, out, sizeof(in)) == 0);

    ggml_backend_buffer_clear(buf2, 0);
    ggml_backend_tensor_get(small2, out, 0, sizeof(out));
    CHECK(out[0] == 0.0f && out[999] == 0.0f && get(&g_fake.n_clear) == 1);

    /* a foreign (CPU) source: not ours to copy, ggml falls back to set */
    struct ggml_context *ctx3 = ctx_new();
    struct ggml_tensor *cpu = ggml_new_tensor_1d(ctx3, GGML_TYPE_F32, 1000);
    ggml_backend_buffer_t buf3 = ggml_backend_alloc_ctx_tensors_from_buft(ctx3, ggml_backend_cpu_buffer_type());
    CHECK(!buf->iface.cpy_tensor(buf2, cpu, small2));

    ggml_backend_buffer_free(buf3);
    ggml_backend_buffer_free(buf2);
    ggml_backend_buffer_free(buf);
    CHECK(get(&g_fake.n_free) == 2);
    free(bin);
    free(bout);
    ggml_free(ctx3);
    ggml_free(ctx2);
    ggml_free(ctx);
    fake_host_stop(&g_host);
}

/* Zero-copy buffers: the host's mapping of our resource is the tensor memory. */
static void ext_zero_copy(void)
{
    ggml_backend_reg_t reg = start(MODE_EXT);
    ggml_backend_dev_t d1 = ggml_backend_reg_dev_get(reg, 1);
    struct ggml_context *ctx = ctx_new();
    struct ggml_tensor *t = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 4096);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_dev_buffer_type(d1));
    CHECK(buf != NULL);
    CHECK(ggml_backend_buffer_is_host(buf));
    CHECK(get(&g_fake.n_init) >= 1); /* the host buffer type needs init_tensor */
    float in[4096];
    fill(in, 4096, 3.0f);
    int sets = get(&g_fake.n_set);
    ggml_backend_tensor_set(t, in, 0, sizeof(in));
    CHECK(get(&g_fake.n_set) == sets); /* a local copy, no command */
    /* the host sees the bytes at the tensor's offset in its own mapping */
    struct fbuf *fb = NULL;
    for (int i = 0; i < MAX_BUF; i++)
        if (g_fake.bufs[i].id && g_fake.bufs[i].res)
            fb = &g_fake.bufs[i];
    CHECK(fb != NULL);
    size_t off = (size_t)((uint8_t *)t->data - (uint8_t *)ggml_backend_buffer_get_base(buf));
    CHECK(memcmp(fb->mem + off, in, sizeof(in)) == 0);
    /* and we see what the host writes */
    ((float *)(fb->mem + off))[5] = -1.0f;
    float out[8];
    ggml_backend_tensor_get(t, out, 0, sizeof(out));
    CHECK(out[5] == -1.0f && out[4] == in[4]);
    int destroyed = g_host.n_destroyed;
    ggml_backend_buffer_free(buf);
    /* the resource is given back (upstream leaked it) */
    for (int i = 0; i < 100 && __atomic_load_n(&g_host.n_destroyed, __ATOMIC_SEQ_CST) == destroyed; i++)
        usleep(10000);
    CHECK(__atomic_load_n(&g_host.n_destroyed, __ATOMIC_SEQ_CST) == destroyed + 1);
    ggml_free(ctx);
    fake_host_stop(&g_host);
}

static void add_dep(void *user, struct ggml_tensor *tensor, struct ggml_tensor *until)
{
    struct ggml_tensor **p = user;
    p[0] = tensor;
    p[1] = until;
}

/* Graphs: the image, reuse by uid, resend when the host forgot, graph_optimize, threads. */
static void ext_graphs(void)
{
    ggml_backend_reg_t reg = start(MODE_EXT);
    ggml_backend_dev_t d0 = ggml_backend_reg_dev_get(reg, 0);
    ggml_backend_t be = ggml_backend_dev_init(d0, NULL);
    CHECK(be != NULL);
    CHECK(strcmp(ggml_backend_name(be), "VirtGPU0") == 0);
    struct ggml_context *ctx = ctx_new();
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 64);
    struct ggml_tensor *x = ggml_neg(ctx, a);
    struct ggml_tensor *y = ggml_abs(ctx, a);
    struct ggml_tensor *o = ggml_add(ctx, x, y);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, o);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be);
    CHECK(buf != NULL);

    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS);
    CHECK(get(&g_fake.n_graph_full) == 1 && g_fake.last_graph_nodes == 3 && g_fake.last_uid == 0);
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS);
    CHECK(get(&g_fake.n_graph_full) == 2); /* uid 0: never reused */

    gf->uid = 777;
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS);
    CHECK(get(&g_fake.n_graph_full) == 3 && g_fake.last_uid == 777);
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS);
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS);
    CHECK(get(&g_fake.n_graph_full) == 3 && get(&g_fake.n_graph_reuse) == 2);
    g_fake.n_cached = 0; /* the host forgets (e.g. a buffer was freed) */
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS);
    CHECK(get(&g_fake.n_graph_not_cached) == 1 && get(&g_fake.n_graph_full) == 4);
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS);
    CHECK(get(&g_fake.n_graph_reuse) == 3);

    /* graph_optimize: the host's order and dependencies are applied */
    struct ggml_tensor *dep[2] = { NULL, NULL };
    struct ggml_backend_graph_optimize_params params = { add_dep, dep };
    struct ggml_tensor *n1 = gf->nodes[1], *n2 = gf->nodes[2];
    be->iface.graph_optimize(be, gf, &params);
    CHECK(get(&g_fake.n_optimize) == 1);
    CHECK(gf->nodes[1] == n2 && gf->nodes[2] == n1);
    CHECK(dep[0] == a && dep[1] == o);
    /* The same graph again (as llama.cpp builds it for each ubatch): the answer is reused. */
    struct ggml_init_params p2 = { 2 * ggml_graph_overhead() + 4 * ggml_tensor_overhead(), NULL, true };
    struct ggml_context *ctx2 = ggml_init(p2);
    struct ggml_cgraph *gf2 = ggml_new_graph(ctx2);
    ggml_build_forward_expand(gf2, o);
    dep[0] = dep[1] = NULL;
    be->iface.graph_optimize(be, gf2, &params);
    CHECK(get(&g_fake.n_optimize) == 1);
    CHECK(gf2->nodes[1] == n2 && gf2->nodes[2] == n1);
    CHECK(dep[0] == a && dep[1] == o);
    /* Another graph is asked for. */
    struct ggml_cgraph *gf3 = ggml_new_graph(ctx2);
    ggml_build_forward_expand(gf3, ggml_sqr(ctx2, o));
    be->iface.graph_optimize(be, gf3, &params);
    CHECK(get(&g_fake.n_optimize) == 2);
    ggml_free(ctx2);

    ggml_backend_set_n_threads_t fn =
        (ggml_backend_set_n_threads_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
    fn(be, 6);
    CHECK(__atomic_load_n(&g_fake.n_threads, __ATOMIC_SEQ_CST) == 6);

    ggml_backend_buffer_free(buf);
    ggml_backend_free(be);
    ggml_free(ctx);
    fake_host_stop(&g_host);
}

/* The host dies in the middle of a graph: fail fast and stay failed, never crash or hang. */
static void ext_host_dies(void)
{
    ggml_backend_reg_t reg = start(MODE_EXT);
    ggml_backend_dev_t d0 = ggml_backend_reg_dev_get(reg, 0);
    ggml_backend_t be = ggml_backend_dev_init(d0, NULL);
    struct ggml_context *ctx = ctx_new();
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 64);
    struct ggml_tensor *o = ggml_neg(ctx, a);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, o);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be);
    CHECK(buf != NULL);
    __atomic_store_n(&g_fake.die_on_graph, 1, __ATOMIC_SEQ_CST);
    double t0 = fake_now_ms();
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_FAILED);
    CHECK(fake_now_ms() - t0 < 2000.0);
    t0 = fake_now_ms();
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_FAILED);
    float v[64];
    ggml_backend_tensor_set(a, v, 0, sizeof(v));
    ggml_backend_tensor_get(o, v, 0, sizeof(v));
    CHECK(v[0] == 0.0f);
    CHECK(ggml_backend_buft_alloc_buffer(ggml_backend_dev_buffer_type(d0), 4096) == NULL);
    CHECK(!ggml_backend_dev_supports_op(d0, ggml_abs(ctx, a)));
    size_t f, t;
    ggml_backend_dev_memory(d0, &f, &t); /* the last known numbers */
    CHECK(t == 2000);
    CHECK(ggml_backend_dev_init(d0, NULL) == NULL);
    CHECK(fake_now_ms() - t0 < 100.0); /* all of it without waiting */
    ggml_backend_buffer_free(buf);
    ggml_backend_free(be);
    ggml_free(ctx);
    fake_host_stop(&g_host);
}

/* A host without extensions: the guest speaks APIR 0.2 only. */
static void baseline_host(void)
{
    ggml_backend_reg_t reg = start(MODE_BASELINE);
    CHECK(ggml_backend_reg_dev_count(reg) == 1);
    ggml_backend_dev_t d = ggml_backend_reg_dev_get(reg, 0);
    CHECK(strcmp(ggml_backend_dev_name(d), "VirtGPU0") == 0);
    CHECK(strcmp(ggml_backend_dev_description(d), "[virtgpu] Baseline device (BaseDev)") == 0);
    size_t f, t;
    ggml_backend_dev_memory(d, &f, &t);
    CHECK(f == 7000 && t == 8000);

    struct ggml_context *ctx = ctx_new();
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 3000);
    struct ggml_tensor *o = ggml_neg(ctx, a);
    CHECK(ggml_backend_dev_supports_op(d, o));
    CHECK(ggml_backend_dev_supports_op(d, o));
    CHECK(get(&g_fake.n_supports) == 1);
    CHECK(!ggml_backend_dev_supports_op(d, ggml_div(ctx, a, a)));
    CHECK(!ggml_backend_dev_offload_op(d, o)); /* no such command in the baseline */
    struct ggml_tensor *wide = ggml_new_tensor_1d(ctx, GGML_TYPE_I8, (int64_t)1 << 33);
    CHECK(!ggml_backend_dev_supports_op(d, ggml_neg(ctx, wide)));
    CHECK(get(&g_fake.n_supports) == 2); /* the wide one never reached the host */

    ggml_backend_t be = ggml_backend_dev_init(d, NULL);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, o);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be);
    CHECK(buf != NULL);
    float in[3000], out[3000];
    fill(in, 3000, 2.0f);
    ggml_backend_tensor_set(a, in, 0, sizeof(in));
    ggml_backend_tensor_get(a, out, 0, sizeof(out));
    CHECK(memcmp(in, out, sizeof(in)) == 0);
    ggml_backend_tensor_memset(a, 0, 400, 800);
    ggml_backend_tensor_get(a, out, 0, sizeof(out));
    CHECK(out[99] == in[99] && out[100] == 0.0f && out[299] == 0.0f && out[300] == in[300]);
    gf->uid = 5;
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS);
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS);
    CHECK(get(&g_fake.n_graph_full) == 2 && g_fake.last_graph_nodes == 1);
    ggml_backend_buffer_free(buf);
    CHECK(get(&g_fake.n_free) == 1);
    ggml_backend_free(be);
    ggml_free(ctx);
    fake_host_stop(&g_host);
}

static void test_no_socket(void **state) { (void)state; in_child(no_socket); }
static void test_connect_refused(void **state) { (void)state; in_child(connect_refused); }
static void test_abi_mismatch(void **state) { (void)state; in_child(abi_mismatch); }
static void test_ext_devices(void **state) { (void)state; in_child(ext_devices); }
static void test_ext_host_buffers(void **state) { (void)state; in_child(ext_host_buffers); }
static void test_ext_zero_copy(void **state) { (void)state; in_child(ext_zero_copy); }
static void test_ext_graphs(void **state) { (void)state; in_child(ext_graphs); }
static void test_ext_host_dies(void **state) { (void)state; in_child(ext_host_dies); }
static void test_baseline(void **state) { (void)state; in_child(baseline_host); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_socket),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_abi_mismatch),
        cmocka_unit_test(test_ext_devices),
        cmocka_unit_test(test_ext_host_buffers),
        cmocka_unit_test(test_ext_zero_copy),
        cmocka_unit_test(test_ext_graphs),
        cmocka_unit_test(test_ext_host_dies),
        cmocka_unit_test(test_baseline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
