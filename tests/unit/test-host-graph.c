/*
 * Graph commands of the host APIR library (EXT_GRAPH_COMPUTE, EXT_GRAPH_OPTIMIZE; the baseline
 * graph is in test-host-baseline.c): results of a real CPU compute checked against plain C
 * loops, graph reuse by uid, the LRU cache, invalidation on buffer free and on a destroyed
 * zero-copy resource, and malformed images.
 */
#include <malloc.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apir-harness.h"
#include "ext.h"
#include "ggml.h"
#include "wire.h"

#define CTX_ID 4301
enum { K = 4, M = 3, N = 2 };

static struct apir_harness *H;

static int setup(void **state)
{
    (void)state;
    H = apir_harness_open(CTX_ID, NULL);
    if (!H || apir_harness_init(H) != 0 || apir_harness_hello(H) != VGPU_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    size_t hits = apir_harness_pointer_hits(H);
    apir_harness_close(H);
    H = NULL;
    return hits == 0 ? 0 : -1;
}

static uint32_t nop(void)
{
    apir_harness_req(H);
    return apir_harness_send(H, VGPU_CMD_EXT_NOP, NULL);
}

/* ---- a small graph: D = mul_mat(A, B) + E ------------------------------------------------------- */

struct graph {
    struct vgpu_wire_tensor t[16];
    uint32_t                n;
    uint32_t                nodes[16];
    uint32_t                n_nodes;
};

enum { TA, TB, TEB, TE, TC, TD }; /* tensor indices */
#define OFF_A  0
#define OFF_B  64
#define OFF_EB 128
#define OFF_C  192
#define OFF_D  256

/* E is a view of 6 floats inside EB (12 floats), starting 2 floats in. */
static void make_graph(struct graph *g, uint64_t buf)
{
    memset(g, 0, sizeof(*g));
    apir_harness_wire(&g->t[TA], GGML_TYPE_F32, K, M, 1, 1, buf, OFF_A);
    apir_harness_wire(&g->t[TB], GGML_TYPE_F32, K, N, 1, 1, buf, OFF_B);
    apir_harness_wire(&g->t[TEB], GGML_TYPE_F32, 12, 1, 1, 1, buf, OFF_EB);
    apir_harness_wire(&g->t[TE], GGML_TYPE_F32, M, N, 1, 1, buf, OFF_EB + 8);
    g->t[TE].view_src = 1 + TEB;
    g->t[TE].view_offs = 8;
    apir_harness_wire(&g->t[TC], GGML_TYPE_F32, M, N, 1, 1, buf, OFF_C);
    g->t[TC].op = GGML_OP_MUL_MAT;
    g->t[TC].src[0] = 1 + TA;
    g->t[TC].src[1] = 1 + TB;
    g->t[TC].flags = GGML_TENSOR_FLAG_COMPUTE;
    g->t[TC].use_count = 1;
    apir_harness_wire(&g->t[TD], GGML_TYPE_F32, M, N, 1, 1, buf, OFF_D);
    g->t[TD].op = GGML_OP_ADD;
    g->t[TD].src[0] = 1 + TC;
    g->t[TD].src[1] = 1 + TE;
    g->t[TD].flags = GGML_TENSOR_FLAG_COMPUTE | GGML_TENSOR_FLAG_OUTPUT;
    g->n = 6;
    g->nodes[0] = TC;
    g->nodes[1] = TD;
    g->n_nodes = 2;
}

static size_t encode_image(const struct graph *g, uint8_t *out, size_t cap)
{
    size_t n = apir_harness_graph_image(g->t, g->n, g->nodes, g->n_nodes, out, cap);
    assert_true(n > 0);
    return n;
}

/* EXT_GRAPH_COMPUTE (or OPTIMIZE) with an inline image (or none: size 0). */
static uint32_t send_graph(uint32_t cmd, const struct graph *g, uint64_t uid, int32_t *status, uint32_t *result,
                           struct vgpu_dec *reply)
{
    static uint8_t img[65536];
    size_t n = g ? encode_image(g, img, sizeof(img)) : 0;
    struct vgpu_graph_request q = { 0, 0, uid, 0, 0, n };
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_graph_request(e, &q);
    if (n)
        vgpu_enc_blob(e, img, n);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(H, cmd, &d);
    if (r == VGPU_OK && cmd == VGPU_CMD_EXT_GRAPH_COMPUTE) {
        uint32_t res = vgpu_dec_u32(&d);
        int32_t st = vgpu_dec_i32(&d);
        assert_true(vgpu_dec_ok(&d));
        assert_int_equal(vgpu_dec_left(&d), 0);
        if (result)
            *result = res;
        if (status)
            *status = st;
    }
    if (reply)
        *reply = d;
    return r;
}

static uint32_t compute(const struct graph *g, uint64_t uid, uint32_t *result)
{
    int32_t status = -100;
    uint32_t res = 99;
    uint32_t r = send_graph(VGPU_CMD_EXT_GRAPH_COMPUTE, g, uid, &status, &res, NULL);
    if (r == VGPU_OK && res == VGPU_GRAPH_COMPUTED)
        assert_int_equal(status, GGML_STATUS_SUCCESS);
    if (result)
        *result = res;
    return r;
}

static void put_floats(uint64_t buf, uint64_t off, const float *v, int n)
{
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_F32, n, 1, 1, 1, buf, off);
    assert_int_equal(apir_harness_set(H, &w, 0, v, (size_t)n * sizeof(float)), VGPU_OK);
}

static void get_floats(uint64_t buf, uint64_t off, float *v, int n)
{
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_F32, n, 1, 1, 1, buf, off);
    assert_int_equal(apir_harness_get(H, &w, 0, v, (size_t)n * sizeof(float)), VGPU_OK);
}

/* Inputs from a seed; returns the expected D computed with plain loops. */
static void load_inputs(uint64_t buf, int seed, float expect[M * N])
{
    float a[K * M], b[K * N], eb[12];
    for (int i = 0; i < K * M; i++)
        a[i] = (float)((i * 3 + seed) % 7) - 3.0f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)((i * 5 + 2 * seed) % 9) * 0.5f - 1.0f;
    for (int i = 0; i < 12; i++)
        eb[i] = (float)(i + seed) * 0.25f;
    put_floats(buf, OFF_A, a, K * M);
    put_floats(buf, OFF_B, b, K * N);
    put_floats(buf, OFF_EB, eb, 12);
    for (int n = 0; n < N; n++) {
        for (int m = 0; m < M; m++) {
            float s = 0;
            for (int k = 0; k < K; k++)
                s += a[m * K + k] * b[n * K + k];
            expect[n * M + m] = s + eb[2 + n * M + m];
        }
    }
}

static void check_d(uint64_t buf, const float expect[M * N])
{
    float d[M * N];
    get_floats(buf, OFF_D, d, M * N);
    for (int i = 0; i < M * N; i++) {
        if (fabsf(d[i] - expect[i]) > 1e-5f)
            fail_msg("D[%d] = %g, expected %g", i, (double)d[i], (double)expect[i]);
    }
}

static uint64_t alloc(uint64_t size)
{
    uint64_t id = 0;
    assert_int_equal(apir_harness_alloc(H, 0, size, 0, &id, NULL), VGPU_OK);
    return id;
}

/* ---- tests ------------------------------------------------------------------------------------------ */

static void test_compute(void **state)
{
    (void)state;
    uint64_t buf = alloc(1024);
    struct graph g;
    make_graph(&g, buf);
    float expect[M * N];
    load_inputs(buf, 1, expect);
    uint32_t result;
    assert_int_equal(compute(&g, 0, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    check_d(buf, expect);

    /* The same graph from a resource at an offset. */
    load_inputs(buf, 2, expect);
    uint8_t *res = apir_harness_res_create(H, 12, 65536);
    assert_non_null(res);
    size_t n = encode_image(&g, res + 128, 65536 - 128);
    struct vgpu_graph_request q = { 0, 0, 0, 12, 128, n };
    vgpu_enc_graph_request(apir_harness_req(H), &q);
    struct vgpu_dec d;
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_GRAPH_COMPUTE, &d), VGPU_OK);
    assert_int_equal(vgpu_dec_u32(&d), VGPU_GRAPH_COMPUTED);
    assert_int_equal(vgpu_dec_i32(&d), GGML_STATUS_SUCCESS);
    check_d(buf, expect);
    /* An image that runs past its resource. */
    q.res_offset = 65536 - n + 4;
    vgpu_enc_graph_request(apir_harness_req(H), &q);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);
}

/*
 * Guests that serialise recursively also send a leaf's own sources, which may not be in any
 * remote buffer: such entries are carried, never used, and do not make the graph invalid.
 */
static void test_unused_entries(void **state)
{
    (void)state;
    uint64_t buf = alloc(1024);
    struct graph g, h;
    make_graph(&g, buf);
    memset(&h, 0, sizeof(h));
    apir_harness_wire(&h.t[0], GGML_TYPE_F32, 12, 1, 1, 1, 0, 0); /* no buffer, no data */
    for (uint32_t i = 0; i < g.n; i++) {
        h.t[i + 1] = g.t[i];
        for (int s = 0; s < 10; s++)
            h.t[i + 1].src[s] += h.t[i + 1].src[s] ? 1 : 0;
        h.t[i + 1].view_src += h.t[i + 1].view_src ? 1 : 0;
    }
    /* EB (a leaf here) claims to be computed from it. */
    h.t[1 + TEB].op = GGML_OP_ADD;
    h.t[1 + TEB].src[0] = 1;
    h.t[1 + TEB].src[1] = 1;
    h.n = g.n + 1;
    h.n_nodes = g.n_nodes;
    for (uint32_t i = 0; i < g.n_nodes; i++)
        h.nodes[i] = g.nodes[i] + 1;
    float expect[M * N];
    load_inputs(buf, 10, expect);
    assert_int_equal(compute(&h, 0, NULL), VGPU_OK);
    check_d(buf, expect);
    /* Still refused when something the computation reads lacks a buffer. */
    h.nodes[0] = 1 + TEB; /* now EB is computed from the unbuffered tensor */
    h.nodes[1] = 1 + TC;
    h.n_nodes = 2;
    assert_int_equal(compute(&h, 0, NULL), VGPU_INVALID);
    /* An unbuffered entry must not claim data. */
    make_graph(&g, buf);
    h.nodes[0] = 1 + TC;
    h.nodes[1] = 1 + TD;
    h.t[0].data = 64;
    assert_int_equal(compute(&h, 0, NULL), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);
}

static void test_reuse(void **state)
{
    (void)state;
    uint64_t buf = alloc(1024);
    struct graph g;
    make_graph(&g, buf);
    float expect[M * N];
    load_inputs(buf, 3, expect);
    uint32_t result;
    assert_int_equal(compute(&g, 77, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    check_d(buf, expect);

    /* New inputs, recompute by uid only. */
    load_inputs(buf, 4, expect);
    assert_int_equal(compute(NULL, 77, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    check_d(buf, expect);
    /* Unknown uid: not cached, nothing computed. */
    assert_int_equal(compute(NULL, 78, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_NOT_CACHED);
    /* Recompute needs a uid. */
    assert_int_equal(compute(NULL, 0, &result), VGPU_INVALID);

    /* Freeing a buffer the graph uses drops it. */
    uint64_t other = alloc(64);
    assert_int_equal(apir_harness_free(H, other), VGPU_OK);
    assert_int_equal(compute(NULL, 77, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    assert_int_equal(apir_harness_free(H, buf), VGPU_OK);
    assert_int_equal(compute(NULL, 77, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_NOT_CACHED);
    assert_int_equal(nop(), VGPU_OK);
}

static void test_lru(void **state)
{
    (void)state;
    uint64_t buf = alloc(1024);
    struct graph g;
    make_graph(&g, buf);
    float expect[M * N];
    load_inputs(buf, 5, expect);
    uint32_t result;
    for (uint64_t uid = 1; uid <= 9; uid++) {
        assert_int_equal(compute(&g, uid, &result), VGPU_OK);
        assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    }
    /* 8 slots: the oldest is gone, the others are there. */
    assert_int_equal(compute(NULL, 1, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_NOT_CACHED);
    for (uint64_t uid = 2; uid <= 9; uid++) {
        assert_int_equal(compute(NULL, uid, &result), VGPU_OK);
        assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    }
    /* Re-sending a cached uid replaces it in place. */
    assert_int_equal(compute(&g, 5, &result), VGPU_OK);
    for (uint64_t uid = 2; uid <= 9; uid++) {
        assert_int_equal(compute(NULL, uid, &result), VGPU_OK);
        assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    }
    check_d(buf, expect);
}

static void expect_invalid(struct graph *g, uint32_t code, const char *what)
{
    uint32_t r = compute(g, 0, NULL);
    if (r != code)
        fail_msg("%s: code %u, expected %u", what, r, code);
    assert_int_equal(apir_harness_reply_len(H), 0);
    assert_int_equal(nop(), VGPU_OK);
}

static void test_bad_graphs(void **state)
{
    (void)state;
    uint64_t buf = alloc(1024);
    struct graph g;

    make_graph(&g, buf);
    g.t[TC].src[1] = 1 + TC; /* itself */
    expect_invalid(&g, VGPU_INVALID, "self reference");
    make_graph(&g, buf);
    g.t[TC].src[1] = 1 + TD; /* a later tensor */
    expect_invalid(&g, VGPU_INVALID, "forward reference");
    make_graph(&g, buf);
    g.t[TE].view_src = 1 + TD;
    expect_invalid(&g, VGPU_INVALID, "forward view");
    make_graph(&g, buf);
    g.t[TE].data += 4; /* not view_src.data + view_offs */
    expect_invalid(&g, VGPU_INVALID, "view data");
    make_graph(&g, buf);
    g.nodes[1] = 6;
    expect_invalid(&g, VGPU_INVALID, "node out of range");
    make_graph(&g, buf);
    g.nodes[1] = TC;
    expect_invalid(&g, VGPU_INVALID, "duplicate node");
    make_graph(&g, buf);
    g.t[TB].buffer = 0;
    g.t[TB].data = 0;
    expect_invalid(&g, VGPU_INVALID, "tensor without a buffer");
    make_graph(&g, buf);
    g.t[TD].data = 1024 - 8;
    expect_invalid(&g, VGPU_INVALID, "node past its buffer");
    make_graph(&g, buf);
    g.t[TD].op = GGML_OP_CUSTOM;
    expect_invalid(&g, VGPU_INVALID, "custom op");
    make_graph(&g, buf);
    g.t[TD].op = GGML_OP_COUNT + 3;
    expect_invalid(&g, VGPU_INVALID, "op out of range");
    make_graph(&g, buf);
    g.t[TC].ne[0] = 5; /* mul_mat shape relation broken */
    expect_invalid(&g, VGPU_INVALID, "mul_mat shapes");
    make_graph(&g, buf);
    g.t[TD].src[1] = 0; /* add without src1 */
    expect_invalid(&g, VGPU_INVALID, "missing source");

    /* Header and size. */
    static uint8_t img[8192];
    make_graph(&g, buf);
    size_t n = encode_image(&g, img, sizeof(img));
    struct {
        size_t off;
        uint32_t val;
        size_t len;
        const char *what;
    } hdr[] = {
        { 0, 0x12345678, 0, "magic" },    { 12, 1, 0, "flags" },
        { 4, 7, 0, "n_tensors vs size" }, { 8, 3, 0, "n_nodes vs size" },
        { 8, 7, 0, "more nodes than tensors" }, { 0, VGPU_GRAPH_MAGIC, 1, "size one short" },
    };
    for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++) {
        static uint8_t copy[8192];
        memcpy(copy, img, n);
        memcpy(copy + hdr[i].off, &hdr[i].val, 4);
        size_t len = n - hdr[i].len;
        struct vgpu_graph_request q = { 0, 0, 0, 0, 0, len };
        struct vgpu_enc *e = apir_harness_req(H);
        vgpu_enc_graph_request(e, &q);
        vgpu_enc_blob(e, copy, len);
        uint32_t r = apir_harness_send(H, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL);
        if (r != VGPU_INVALID)
            fail_msg("%s: code %u", hdr[i].what, r);
        assert_int_equal(nop(), VGPU_OK);
    }
    /* Unknown request flags; another device; a blob that disagrees with size. */
    struct vgpu_graph_request q = { 0, 1, 0, 0, 0, n };
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_graph_request(e, &q);
    vgpu_enc_blob(e, img, n);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL), VGPU_INVALID);
    q.flags = 0;
    q.dev = 1;
    e = apir_harness_req(H);
    vgpu_enc_graph_request(e, &q);
    vgpu_enc_blob(e, img, n);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL), VGPU_INVALID);
    q.dev = 0;
    q.size = n + 4;
    e = apir_harness_req(H);
    vgpu_enc_graph_request(e, &q);
    vgpu_enc_blob(e, img, n);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);

    /* The graph still computes correctly after all that. */
    float expect[M * N];
    load_inputs(buf, 6, expect);
    make_graph(&g, buf);
    assert_int_equal(compute(&g, 0, NULL), VGPU_OK);
    check_d(buf, expect);
}

static void test_node_quota(void **state)
{
    (void)state;
    struct apir_harness *h = apir_harness_open(CTX_ID + 1, NULL);
    assert_non_null(h);
    apir_harness_config(h, VGPU_CFG_QUOTA_NODES, "1");
    assert_int_equal(apir_harness_init(h), 0);
    assert_int_equal(apir_harness_hello(h), VGPU_OK);
    struct apir_harness *saved = H;
    H = h;
    uint64_t buf = alloc(1024);
    struct graph g;
    make_graph(&g, buf);
    assert_int_equal(compute(&g, 0, NULL), VGPU_QUOTA); /* 2 nodes */
    g.n_nodes = 1;
    assert_int_equal(compute(&g, 0, NULL), VGPU_QUOTA); /* 6 tensors > 4 x 1 */
    g.n = 3;                                            /* A, B, EB; node: EB */
    g.nodes[0] = TEB;
    assert_int_equal(compute(&g, 0, NULL), VGPU_OK);
    H = saved;
    assert_int_equal(apir_harness_pointer_hits(h), 0);
    apir_harness_close(h);
}

static void test_cache_budget(void **state)
{
    (void)state;
    /* Node quota 2: graphs of at most 8 tensors, and 8 cached tensors in all. */
    struct apir_harness *h = apir_harness_open(CTX_ID + 2, NULL);
    assert_non_null(h);
    apir_harness_config(h, VGPU_CFG_QUOTA_NODES, "2");
    assert_int_equal(apir_harness_init(h), 0);
    assert_int_equal(apir_harness_hello(h), VGPU_OK);
    struct apir_harness *saved = H;
    H = h;
    uint64_t buf = alloc(1024);
    struct graph g;
    make_graph(&g, buf); /* 6 tensors */
    float expect[M * N];
    load_inputs(buf, 9, expect);
    uint32_t result;
    assert_int_equal(compute(&g, 1, &result), VGPU_OK);
    assert_int_equal(compute(NULL, 1, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    assert_int_equal(compute(&g, 2, &result), VGPU_OK); /* 12 > 8: uid 1 goes */
    assert_int_equal(compute(NULL, 1, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_NOT_CACHED);
    assert_int_equal(compute(NULL, 2, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    check_d(buf, expect);
    H = saved;
    assert_int_equal(apir_harness_pointer_hits(h), 0);
    apir_harness_close(h);
}

static void test_optimize(void **state)
{
    (void)state;
    /* Before allocation: tensors without buffers. */
    struct graph g;
    make_graph(&g, 0);
    for (uint32_t i = 0; i < g.n; i++)
        g.t[i].data = 0;
    struct vgpu_dec d;
    assert_int_equal(send_graph(VGPU_CMD_EXT_GRAPH_OPTIMIZE, &g, 0, NULL, NULL, &d), VGPU_OK);
    /* The CPU backend has no graph_optimize: identity order, no dependencies. */
    assert_int_equal(vgpu_dec_u32(&d), 2);
    assert_int_equal(vgpu_dec_u32(&d), 0);
    assert_int_equal(vgpu_dec_u32(&d), 1);
    assert_int_equal(vgpu_dec_u32(&d), 0);
    assert_true(vgpu_dec_ok(&d));
    assert_int_equal(vgpu_dec_left(&d), 0);
    /* Malformed graphs are refused here too; a graph image is required. */
    g.t[TC].src[0] = 1 + TD;
    assert_int_equal(send_graph(VGPU_CMD_EXT_GRAPH_OPTIMIZE, &g, 0, NULL, NULL, NULL), VGPU_INVALID);
    assert_int_equal(send_graph(VGPU_CMD_EXT_GRAPH_OPTIMIZE, NULL, 0, NULL, NULL, NULL), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);
}

static void test_zero_copy_graph(void **state)
{
    (void)state;
    uint8_t *res = apir_harness_res_create(H, 20, 4096);
    assert_non_null(res);
    uint64_t buf;
    uint32_t granted;
    assert_int_equal(apir_harness_alloc(H, 0, 4096, 20, &buf, &granted), VGPU_OK);
    assert_int_equal(granted, VGPU_ALLOC_ZERO_COPY);
    struct graph g;
    make_graph(&g, buf);
    float expect[M * N];
    load_inputs(buf, 7, expect);
    uint32_t result;
    assert_int_equal(compute(&g, 11, &result), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    /* The result is in the shared memory itself. */
    float d[M * N];
    memcpy(d, res + OFF_D, sizeof(d));
    for (int i = 0; i < M * N; i++)
        assert_true(fabsf(d[i] - expect[i]) <= 1e-5f);
    /* Resource destroyed under the cached graph: refused, never computed. */
    apir_harness_res_destroy(H, 20);
    assert_int_equal(compute(NULL, 11, &result), VGPU_NOT_FOUND);
    assert_int_equal(compute(&g, 0, &result), VGPU_NOT_FOUND);
    assert_int_equal(apir_harness_free(H, buf), VGPU_OK);
    assert_int_equal(nop(), VGPU_OK);
}

static void test_no_growth(void **state)
{
    (void)state;
    uint64_t buf = alloc(1024);
    struct graph g;
    make_graph(&g, buf);
    float expect[M * N];
    load_inputs(buf, 8, expect);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(compute(&g, 0, NULL), VGPU_OK);
        assert_int_equal(compute(&g, 100 + (uint64_t)(i % 3), NULL), VGPU_OK);
    }
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 300; i++) {
        assert_int_equal(compute(&g, 0, NULL), VGPU_OK);
        assert_int_equal(compute(&g, 100 + (uint64_t)(i % 3), NULL), VGPU_OK);
        assert_int_equal(compute(NULL, 100 + (uint64_t)(i % 3), NULL), VGPU_OK);
    }
    struct mallinfo2 after = mallinfo2();
    /* 900 builds and computes: no per-call growth (allowing for allocator noise). */
    if (after.uordblks > before.uordblks + 65536)
        fail_msg("heap grew by %zu bytes", after.uordblks - before.uordblks);
    check_d(buf, expect);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_compute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unused_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_graphs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_optimize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_copy_graph, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_growth, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
