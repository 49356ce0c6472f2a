/*
 * Malicious graphs and object ids, in the baseline and the extension protocol:
 *
 *   test_graph_cycle_*                    source and view references forming cycles
 *   test_graph_unknown_ids_*              references and node ids naming nothing
 *   test_graph_huge_node_count_*          counts that overflow, exceed the quota, or lie
 *   test_graph_deep_chain_100k_*          a 100 000-deep dependency chain, built and computed on
 *                                         a thread with a 512 KiB stack (no recursion anywhere)
 *   test_ids_forged_stale_wrong_type_*    forged, stale (freed, reused slot) and wrong-type ids
 *
 * Every refusal is an error reply; the host survives and the context works afterwards, or,
 * for type confusion (a protocol violation), the context is fatal and a new one works.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sec-common.h"

#define EXPECT(call, code)                                                                          \
    do {                                                                                            \
        uint32_t r_ = (call);                                                                       \
        if (r_ != (uint32_t)(code))                                                                 \
            fail_msg("%s:%d: %s answered %u (%s), expected %u (%s)", __FILE__, __LINE__, #call, r_, \
                     vgpu_status_name(r_), (uint32_t)(code), vgpu_status_name(code));              \
    } while (0)

static struct vgpu_wire_tensor op_of(struct vgpu_wire_tensor w, uint32_t op, uint32_t s0, uint32_t s1)
{
    w.op = op;
    w.src[0] = s0;
    w.src[1] = s1;
    w.flags = GGML_TENSOR_FLAG_COMPUTE;
    return w;
}

/* ===== cycles ===================================================================================== */

static void test_graph_cycle_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    for (int k = 0; k < 7; k++) {
        struct vgpu_rpc_tensor a = sec_rpc(0x100, GGML_TYPE_F32, buf, 4, 1, 0);
        struct vgpu_rpc_tensor b = sec_rpc(0x200, GGML_TYPE_F32, buf, 4, 1, 64);
        struct vgpu_rpc_tensor c = sec_rpc(0x300, GGML_TYPE_F32, buf, 4, 1, 128);
        b.op = GGML_OP_ADD;
        b.src[0] = a.id;
        b.src[1] = a.id;
        b.flags = GGML_TENSOR_FLAG_COMPUTE;
        c.op = GGML_OP_ADD;
        c.src[0] = b.id;
        c.src[1] = a.id;
        c.flags = GGML_TENSOR_FLAG_COMPUTE;
        uint32_t expect = VGPU_INVALID;
        switch (k) {
        case 0: expect = VGPU_OK; break;
        case 1: b.src[1] = c.id; break;            /* b <- c <- b */
        case 2: c.src[0] = c.id; break;            /* a node that is its own source (not CPY src[1]) */
        case 3: a.view_src = c.id; a.data = 128; break; /* a view of a later node */
        case 4: a.view_src = a.id; break;           /* a view of itself */
        case 5: c.op = GGML_OP_CPY; c.src[0] = c.id; c.src[1] = b.id; break; /* CPY self in src[0] */
        case 6: a.src[0] = c.id; a.op = GGML_OP_ADD; a.src[1] = a.id; break;  /* leaf cycle */
        default: break;
        }
        struct vgpu_rpc_tensor t[3] = { a, b, c };
        uint64_t nodes[2] = { b.id, c.id };
        uint32_t r = sec_bl_graph(h, 30, 4096, nodes, 2, t, 3, 0, NULL);
        if (r != expect)
            fail_msg("case %d: answered %u, expected %u", k, r, expect);
        sec_check_alive(h, false);
    }
    /* The one self-reference ggml builds: ggml_cast's CPY with src[1] = the node itself. */
    struct vgpu_rpc_tensor a = sec_rpc(0x100, GGML_TYPE_F32, buf, 4, 1, 0);
    struct vgpu_rpc_tensor c = sec_rpc(0x300, GGML_TYPE_F16, buf, 4, 1, 128);
    c.op = GGML_OP_CPY;
    c.src[0] = a.id;
    c.src[1] = c.id;
    c.flags = GGML_TENSOR_FLAG_COMPUTE;
    struct vgpu_rpc_tensor t[2] = { a, c };
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, t, 2, 0, NULL), VGPU_OK);
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_graph_cycle_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    for (int k = 0; k < 7; k++) {
        struct vgpu_wire_tensor a = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
        struct vgpu_wire_tensor b = op_of(sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 64), GGML_OP_ADD, 1, 1);
        struct vgpu_wire_tensor c = op_of(sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 128), GGML_OP_ADD, 2, 1);
        uint32_t expect = VGPU_INVALID;
        switch (k) {
        case 0: expect = VGPU_OK; break;
        case 1: b.src[1] = 3; break;                     /* forward */
        case 2: c.src[0] = 3; break;                     /* itself */
        case 3: a.view_src = 3; a.data = 128; break;
        case 4: a.view_src = 1; break;
        case 5: c.op = GGML_OP_CPY; c.src[0] = 3; c.src[1] = 2; break;
        case 6: a.op = GGML_OP_ADD; a.src[0] = 3; a.src[1] = 1; break;
        default: break;
        }
        struct sec_graph g;
        sec_graph_init(&g, 3);
        g_add(&g, a);
        sec_graph_node(&g, g_add(&g, b));
        sec_graph_node(&g, g_add(&g, c));
        uint32_t r = sec_ext_graph(h, &g, 0, NULL, NULL);
        if (r != expect)
            fail_msg("case %d: answered %u, expected %u", k, r, expect);
        size_t n;
        uint8_t *img = sec_graph_image(&g, &n);
        r = sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_OPTIMIZE, img, n, 0, 0, NULL, NULL);
        free(img);
        if (r != expect)
            fail_msg("case %d (optimize): answered %u, expected %u", k, r, expect);
        sec_graph_free(&g);
        sec_check_alive(h, true);
    }
    struct sec_graph g;
    sec_graph_init(&g, 2);
    g_add(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0));
    sec_graph_node(&g, g_add(&g, op_of(sec_wire(GGML_TYPE_F16, 4, 1, 1, 1, buf, 128), GGML_OP_CPY, 1, 2)));
    EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_OK);
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== unknown ids =================================================================================== */

static void test_graph_unknown_ids_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    const uint64_t unknown[] = { 0x999, UINT64_MAX, 0x8000000000000000ull, (uint64_t)(uintptr_t)h, 0x101 };
    for (size_t u = 0; u < sizeof(unknown) / sizeof(unknown[0]); u++) {
        for (int where = 0; where < 5; where++) {
            struct vgpu_rpc_tensor a = sec_rpc(0x100, GGML_TYPE_F32, buf, 4, 1, 0);
            struct vgpu_rpc_tensor c = sec_rpc(0x300, GGML_TYPE_F32, buf, 4, 1, 128);
            c.op = GGML_OP_ADD;
            c.src[0] = a.id;
            c.src[1] = a.id;
            c.flags = GGML_TENSOR_FLAG_COMPUTE;
            uint64_t nodes[2] = { c.id, 0 };
            uint32_t n_nodes = 1;
            switch (where) {
            case 0: c.src[1] = unknown[u]; break;
            case 1: c.src[9] = unknown[u]; break;
            case 2: c.view_src = unknown[u]; break;
            case 3: nodes[0] = unknown[u]; break;
            case 4: nodes[1] = c.id; n_nodes = 2; c.src[5] = unknown[u]; break; /* node listed twice too */
            default: break;
            }
            struct vgpu_rpc_tensor t[2] = { a, c };
            uint32_t r = sec_bl_graph(h, 30, 4096, nodes, n_nodes, t, 2, 0, NULL);
            if (r != VGPU_INVALID)
                fail_msg("id 0x%llx at %d: answered %u", (unsigned long long)unknown[u], where, r);
        }
    }
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_graph_unknown_ids_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    const uint32_t unknown[] = { 3, 4, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu };
    for (size_t u = 0; u < sizeof(unknown) / sizeof(unknown[0]); u++) {
        for (int where = 0; where < 5; where++) {
            struct vgpu_wire_tensor a = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
            struct vgpu_wire_tensor c = op_of(sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 128), GGML_OP_ADD, 1, 1);
            struct sec_graph g;
            sec_graph_init(&g, 2);
            switch (where) {
            case 0: c.src[1] = unknown[u]; break;
            case 1: c.src[9] = unknown[u]; break;
            case 2: c.view_src = unknown[u]; break;
            default: break;
            }
            g_add(&g, a);
            uint32_t ic = g_add(&g, c);
            if (where == 3)
                sec_graph_node(&g, unknown[u]); /* an index past the array */
            else
                sec_graph_node(&g, ic);
            if (where == 4)
                sec_graph_node(&g, ic); /* a node listed twice */
            uint32_t r = sec_ext_graph(h, &g, 0, NULL, NULL);
            if (r != VGPU_INVALID)
                fail_msg("reference %u at %d: answered %u", unknown[u], where, r);
            sec_graph_free(&g);
        }
    }
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== huge node counts ============================================================================= */

/* A valid chain graph of n ADD nodes over a constant: x_{i+1} = x_i + one. */
static void chain_ext(struct sec_graph *g, uint32_t n, uint64_t buf)
{
    sec_graph_init(g, n + 2);
    g_add(g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0));  /* one */
    g_add(g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 16)); /* x_0 */
    for (uint32_t i = 0; i < n; i++) {
        struct vgpu_wire_tensor x = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 32 + 16 * (uint64_t)i);
        sec_graph_node(g, g_add(g, op_of(x, GGML_OP_ADD, i + 2, 1)));
    }
}

static void test_graph_huge_node_count_ext(void **state)
{
    (void)state;
    static const char *const kv[] = { VGPU_CFG_QUOTA_NODES, "1000", NULL };
    struct apir_harness *h = sec_open_cfg(true, kv);
    uint64_t buf = sec_ext_alloc_ok(h, 65536);
    struct sec_graph g;
    chain_ext(&g, 1000, buf);
    EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_OK);
    sec_graph_free(&g);
    chain_ext(&g, 1001, buf);
    EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_QUOTA);
    sec_graph_free(&g);
    /* Counts that lie about a small image. */
    const uint32_t counts[][2] = { { 0xFFFFFFFFu, 0xFFFFFFFFu }, { 4000, 1000 }, { 4001, 1 }, { 3, 1000 },
                                   { 0x80000000u, 1 }, { 0, 0xFFFFFFFFu } };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        uint8_t img[16 + 280 + 4];
        memset(img, 0, sizeof(img));
        uint32_t hdr[4] = { VGPU_GRAPH_MAGIC, counts[i][0], counts[i][1], 0 };
        memcpy(img, hdr, 16);
        uint32_t r = sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, img, sizeof(img), 0, 0, NULL, NULL);
        if (r != VGPU_INVALID && r != VGPU_QUOTA)
            fail_msg("counts %u/%u: answered %u", counts[i][0], counts[i][1], r);
    }
    /* An image larger than any graph the quota allows is refused before it is copied. */
    struct vgpu_graph_request q = { 0, 0, 0, 0, 0, 1ull << 40 };
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_graph_request(e, &q);
    vgpu_enc_blob(e, "x", 1);
    uint32_t r = apir_harness_send(h, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL);
    if (r != VGPU_INVALID && r != VGPU_QUOTA)
        fail_msg("a 1 TiB inline graph: answered %u", r);
    sec_check_alive(h, true);
    sec_close(h);
}

static void test_graph_huge_node_count_baseline(void **state)
{
    (void)state;
    static const char *const kv[] = { VGPU_CFG_QUOTA_NODES, "1000", NULL };
    struct apir_harness *h = sec_open_cfg(false, kv);
    uint64_t buf = sec_bl_alloc_ok(h, 65536);
    for (uint32_t n = 1000; n <= 1001; n++) {
        struct vgpu_rpc_tensor *t = calloc(n + 2, sizeof(*t));
        uint64_t *ids = calloc(n, sizeof(*ids));
        assert_non_null(t);
        assert_non_null(ids);
        t[0] = sec_rpc(1, GGML_TYPE_F32, buf, 4, 1, 0);
        t[1] = sec_rpc(2, GGML_TYPE_F32, buf, 4, 1, 16);
        for (uint32_t i = 0; i < n; i++) {
            t[i + 2] = sec_rpc(3 + i, GGML_TYPE_F32, buf, 4, 1, 32 + 16 * (uint64_t)i);
            t[i + 2].op = GGML_OP_ADD;
            t[i + 2].src[0] = 2 + i;
            t[i + 2].src[1] = 1;
            t[i + 2].flags = GGML_TENSOR_FLAG_COMPUTE;
            ids[i] = 3 + i;
        }
        EXPECT(sec_bl_graph(h, 30, 0, ids, n, t, n + 2, 0, NULL), n == 1000 ? VGPU_OK : VGPU_QUOTA);
        free(t);
        free(ids);
    }
    /* Declared sizes far beyond the resource or the quota. */
    uint8_t *res = apir_harness_res_create(h, 31, 4096);
    assert_non_null(res);
    const uint64_t sizes[] = { 1ull << 32, 1ull << 62, UINT64_MAX, 4097 };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u32(e, 31);
        vgpu_enc_u64(e, sizes[i]);
        uint32_t r = apir_harness_send(h, APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL);
        if (r != VGPU_INVALID && r != VGPU_QUOTA)
            fail_msg("size %llu: answered %u", (unsigned long long)sizes[i], r);
    }
    sec_check_alive(h, false);
    sec_close(h);
}

/* ===== a 100 000-deep chain ========================================================================== */

#define DEEP 100000u

struct deep_call {
    struct apir_harness *h;
    uint32_t             cmd;
    const void          *req;
    size_t               len;
    uint32_t             code;
    int32_t              status;
    size_t               reply_len;
};

/* Runs on the small-stack thread: only the dispatch itself. */
static void deep_dispatch(void *arg)
{
    struct deep_call *c = arg;
    struct vgpu_dec d;
    c->code = apir_harness_call(c->h, c->cmd, c->req, c->len, &d);
    c->reply_len = apir_harness_reply_len(c->h);
    c->status = -100;
    if (c->code == VGPU_OK && c->cmd == APIR_CMD_BACKEND_GRAPH_COMPUTE)
        c->status = vgpu_dec_i32(&d);
    else if (c->code == VGPU_OK && c->cmd == VGPU_CMD_EXT_GRAPH_COMPUTE) {
        (void)vgpu_dec_u32(&d);
        c->status = vgpu_dec_i32(&d);
    }
}

/* The child: builds a 100k chain, dispatches it on a 512 KiB stack, checks the result. */
static int deep_child(bool ext)
{
    struct apir_harness *h = sec_open(ext);
    const uint64_t bytes = 32 + 16 * (uint64_t)DEEP;
    uint8_t *mem;
    uint64_t buf;
    if (ext) {
        buf = sec_ext_alloc_zc(h, 50, bytes, &mem);
    } else {
        struct vgpu_enc *e = apir_harness_req(h);
        mem = apir_harness_res_create(h, 50, bytes);
        assert_non_null(mem);
        vgpu_enc_u32(e, 50);
        vgpu_enc_u64(e, bytes);
        vgpu_enc_u64(e, bytes);
        struct vgpu_dec d;
        assert_int_equal(apir_harness_send(h, APIR_CMD_DEVICE_BUFFER_FROM_PTR, &d), VGPU_OK);
        buf = vgpu_dec_u64(&d);
    }
    float one[4] = { 1, 1, 1, 1 }, x0[4] = { 0.5f, -3.0f, 7.0f, 1000.0f };
    memcpy(mem, one, 16);
    memcpy(mem + 16, x0, 16);

    uint8_t req[64];
    struct vgpu_enc e;
    vgpu_enc_init(&e, req, sizeof(req));
    struct deep_call call = { h, 0, req, 0, 0, 0, 0 };
    if (ext) {
        struct sec_graph g;
        chain_ext(&g, DEEP, buf);
        size_t n;
        uint8_t *img = sec_graph_image(&g, &n);
        sec_graph_free(&g);
        uint8_t *res = apir_harness_res_create(h, 51, n);
        assert_non_null(res);
        memcpy(res, img, n);
        free(img);
        struct vgpu_graph_request q = { 0, 0, 0, 51, 0, n };
        vgpu_enc_graph_request(&e, &q);
        call.cmd = VGPU_CMD_EXT_GRAPH_COMPUTE;
    } else {
        size_t n = 8 + 8 * (size_t)DEEP + (size_t)VGPU_RPC_TENSOR_SIZE * (DEEP + 2);
        uint8_t *res = apir_harness_res_create(h, 51, n);
        assert_non_null(res);
        struct vgpu_enc ge;
        vgpu_enc_init(&ge, res, n);
        vgpu_enc_u32(&ge, DEEP);
        for (uint32_t i = 0; i < DEEP; i++)
            vgpu_enc_u64(&ge, 3 + (uint64_t)i);
        vgpu_enc_u32(&ge, DEEP + 2);
        struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, buf, 4, 1, 0);
        vgpu_enc_rpc_tensor(&ge, &t);
        t = sec_rpc(2, GGML_TYPE_F32, buf, 4, 1, 16);
        vgpu_enc_rpc_tensor(&ge, &t);
        for (uint32_t i = 0; i < DEEP; i++) {
            t = sec_rpc(3 + (uint64_t)i, GGML_TYPE_F32, buf, 4, 1, 32 + 16 * (uint64_t)i);
            t.op = GGML_OP_ADD;
            t.src[0] = 2 + (uint64_t)i;
            t.src[1] = 1;
            t.flags = GGML_TENSOR_FLAG_COMPUTE;
            vgpu_enc_rpc_tensor(&ge, &t);
        }
        assert_true(vgpu_enc_ok(&ge));
        assert_int_equal(vgpu_enc_used(&ge), n);
        vgpu_enc_u32(&e, 51);
        vgpu_enc_u64(&e, n);
        call.cmd = APIR_CMD_BACKEND_GRAPH_COMPUTE;
    }
    call.len = vgpu_enc_used(&e);
    sec_run_on_small_stack(deep_dispatch, &call, 512u << 10);
    if (call.code != VGPU_OK || call.status != GGML_STATUS_SUCCESS) {
        fprintf(stderr, "deep chain (%s): code %u, status %d\n", ext ? "ext" : "baseline", call.code, call.status);
        return 1;
    }
    float last[4];
    memcpy(last, mem + 32 + 16 * (uint64_t)(DEEP - 1), 16);
    for (int i = 0; i < 4; i++) {
        if (last[i] != x0[i] + (float)DEEP) {
            fprintf(stderr, "deep chain: x[%u][%d] = %g, expected %g\n", DEEP, i, (double)last[i],
                    (double)(x0[i] + (float)DEEP));
            return 2;
        }
    }
    sec_check_alive(h, ext);
    sec_close(h);
    return 0;
}

static int deep_child_baseline(void)
{
    return deep_child(false);
}

static int deep_child_ext(void)
{
    return deep_child(true);
}

static void test_graph_deep_chain_100k_baseline(void **state)
{
    (void)state;
    sec_expect_child_ok("deep-baseline", 300);
}

static void test_graph_deep_chain_100k_ext(void **state)
{
    (void)state;
    sec_expect_child_ok("deep-ext", 300);
}

/* ===== forged, stale and wrong-type ids ============================================================= */

static void forged_ids(uint64_t valid, uint64_t *out, size_t *n)
{
    size_t k = 0;
    out[k++] = 0;
    out[k++] = UINT64_MAX;
    out[k++] = valid ^ (1ull << 32);                       /* another generation */
    out[k++] = (valid & ~0xFFFFFFFFull) | 0x3FFFFFu;       /* a slot never issued */
    out[k++] = (valid & ~0xFFFFFFFFull) | 0xFFFFFFFFu;     /* a slot past the table */
    out[k++] = valid & 0xFF000000FFFFFFFFull;              /* generation 0 */
    out[k++] = (valid & 0x00FFFFFFFFFFFFFFull) | (0x41ull << 56); /* another type tag */
    out[k++] = (uint64_t)(uintptr_t)&k;                    /* a host address */
    *n = k;
}

static void test_ids_forged_stale_wrong_type_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint64_t ids[16];
    size_t n;
    forged_ids(buf, ids, &n);
    assert_non_null(apir_harness_res_create(h, 3, 4096));
    for (size_t i = 0; i < n; i++) {
        vgpu_enc_u64(apir_harness_req(h), ids[i]);
        EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_GET_BASE, NULL), VGPU_NOT_FOUND);
        struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, ids[i], 4, 1, 0);
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, ids[i], &t, 3, 0, 16), VGPU_NOT_FOUND);
        EXPECT(sec_bl_free(h, ids[i]), VGPU_NOT_FOUND);
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u64(e, ids[i]);
        vgpu_enc_u64(e, 64);
        EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER, NULL), VGPU_NOT_FOUND);
        t.buffer = ids[i];
        struct vgpu_rpc_tensor c = sec_rpc(2, GGML_TYPE_F32, buf, 4, 1, 64);
        c.op = GGML_OP_ADD;
        c.src[0] = c.src[1] = 1;
        c.flags = GGML_TENSOR_FLAG_COMPUTE;
        struct vgpu_rpc_tensor g[2] = { t, c };
        uint32_t r = sec_bl_graph(h, 30, 4096, &c.id, 1, g, 2, 0, NULL);
        if (r != VGPU_NOT_FOUND && !(ids[i] == 0 && r == VGPU_INVALID))
            fail_msg("graph with buffer id 0x%llx: answered %u", (unsigned long long)ids[i], r);
    }
    /* Stale: freed; freed and its slot reused; freed twice. */
    EXPECT(sec_bl_free(h, buf), VGPU_OK);
    EXPECT(sec_bl_free(h, buf), VGPU_NOT_FOUND);
    uint64_t reuse = sec_bl_alloc_ok(h, 4096);
    assert_int_equal((uint32_t)reuse, (uint32_t)buf);
    vgpu_enc_u64(apir_harness_req(h), buf);
    EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_GET_BASE, NULL), VGPU_NOT_FOUND);
    struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, buf, 4, 1, 0);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 16), VGPU_NOT_FOUND);
    sec_check_alive(h, false);
    sec_close(h);

    /* Wrong type: a buffer-type id as a buffer id and the reverse (type confusion is fatal). */
    h = sec_open(false);
    uint64_t buft = sec_bl_buft(h);
    vgpu_enc_u64(apir_harness_req(h), buft);
    EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_GET_BASE, NULL), VGPU_NOT_FOUND);
    sec_check_fatal_then_new(h, false);
    h = sec_open(false);
    buf = sec_bl_alloc_ok(h, 64);
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u64(e, buf);
    vgpu_enc_u64(e, 64);
    EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER, NULL), VGPU_NOT_FOUND);
    sec_check_fatal_then_new(h, false);
    h = sec_open(false);
    buft = sec_bl_buft(h);
    t = sec_rpc(1, GGML_TYPE_F32, buft, 4, 1, 0);
    EXPECT(sec_bl_graph(h, 30, 4096, &t.id, 1, &t, 1, 0, NULL), VGPU_NOT_FOUND);
    sec_check_fatal_then_new(h, false);
}

static void test_ids_forged_stale_wrong_type_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    uint64_t ids[16];
    size_t n;
    forged_ids(buf, ids, &n);
    uint8_t d[16] = { 0 };
    for (size_t i = 0; i < n; i++) {
        struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, ids[i], 0);
        uint32_t expect = ids[i] ? VGPU_NOT_FOUND : VGPU_INVALID; /* 0 means "no buffer" */
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 16, 1, 0, 0, 0, 0, d, 16), expect);
        EXPECT(apir_harness_free(h, ids[i]), VGPU_NOT_FOUND);
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u64(e, ids[i]);
        vgpu_enc_u32(e, 0);
        EXPECT(apir_harness_send(h, VGPU_CMD_EXT_BUFFER_CLEAR, NULL), VGPU_NOT_FOUND);
        struct sec_graph g;
        sec_graph_init(&g, 2);
        g_add(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, ids[i], 0));
        sec_graph_node(&g, g_add(&g, op_of(sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 64), GGML_OP_ADD, 1, 1)));
        EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), expect);
        sec_graph_free(&g);
        /* As a buffer-type id (0 means "the device's"). */
        if (ids[i]) {
            e = apir_harness_req(h);
            vgpu_enc_u32(e, 0);
            vgpu_enc_u32(e, 0);
            vgpu_enc_u64(e, ids[i]);
            vgpu_enc_u64(e, 64);
            vgpu_enc_u32(e, 0);
            vgpu_enc_u32(e, 0);
            EXPECT(apir_harness_send(h, VGPU_CMD_EXT_BUFFER_ALLOC, NULL), VGPU_NOT_FOUND);
        }
    }
    /* Stale. */
    EXPECT(apir_harness_free(h, buf), VGPU_OK);
    EXPECT(apir_harness_free(h, buf), VGPU_NOT_FOUND);
    uint64_t reuse = sec_ext_alloc_ok(h, 4096);
    assert_int_equal((uint32_t)reuse, (uint32_t)buf);
    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 16, 1, 0, 0, 0, 0, NULL, 0), VGPU_NOT_FOUND);
    uint64_t zc = sec_ext_alloc_zc(h, 7, 4096, NULL);
    apir_harness_res_destroy(h, 7);
    w = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, zc, 0);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 16, 1, 0, 0, 0, 0, NULL, 0), VGPU_NOT_FOUND);
    sec_check_alive(h, true);
    sec_close(h);

    /* Wrong type, each in its own context (fatal). */
    for (int k = 0; k < 4; k++) {
        h = sec_open(true);
        uint64_t buft = sec_ext_buft(h);
        uint64_t b = sec_ext_alloc_ok(h, 64);
        struct vgpu_enc *e;
        switch (k) {
        case 0:
            EXPECT(apir_harness_free(h, buft), VGPU_NOT_FOUND);
            break;
        case 1:
            e = apir_harness_req(h);
            vgpu_enc_u32(e, 0);
            vgpu_enc_u32(e, 0);
            vgpu_enc_u64(e, b);
            vgpu_enc_u64(e, 64);
            vgpu_enc_u32(e, 0);
            vgpu_enc_u32(e, 0);
            EXPECT(apir_harness_send(h, VGPU_CMD_EXT_BUFFER_ALLOC, NULL), VGPU_NOT_FOUND);
            break;
        case 2:
            w = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buft, 0);
            EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 16, 1, 0, 0, 0, 0, d, 16), VGPU_NOT_FOUND);
            break;
        default: {
            struct sec_graph g;
            sec_graph_init(&g, 1);
            sec_graph_node(&g, g_add(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buft, 0)));
            EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_NOT_FOUND);
            sec_graph_free(&g);
            break;
        }
        }
        sec_check_fatal_then_new(h, true);
    }
}

int main(void)
{
    static const struct sec_child children[] = {
        { "deep-baseline", deep_child_baseline },
        { "deep-ext", deep_child_ext },
    };
    int rc = sec_child_main(children, sizeof(children) / sizeof(children[0]));
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_cycle_baseline),
        cmocka_unit_test(test_graph_cycle_ext),
        cmocka_unit_test(test_graph_unknown_ids_baseline),
        cmocka_unit_test(test_graph_unknown_ids_ext),
        cmocka_unit_test(test_graph_huge_node_count_baseline),
        cmocka_unit_test(test_graph_huge_node_count_ext),
        cmocka_unit_test(test_graph_deep_chain_100k_baseline),
        cmocka_unit_test(test_graph_deep_chain_100k_ext),
        cmocka_unit_test(test_ids_forged_stale_wrong_type_baseline),
        cmocka_unit_test(test_ids_forged_stale_wrong_type_ext),
    };
    sec_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
