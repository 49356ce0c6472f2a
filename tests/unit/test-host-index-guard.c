/*
 * Index data of guest graphs (host/index-guard.[ch]), through the APIR ABI on the real CPU
 * backend: for every op that indexes memory with tensor values (GET_ROWS, GET_ROWS_BACK,
 * SET_ROWS, MUL_MAT_ID, ADD_ID, SSM_SCAN), out-of-range values (negative, == bound, huge, I64
 * values that would truncate into range) as graph inputs, as in-graph results that are not
 * provably in range (CPY F32 -> I32, an alias of a node's bytes, an ARGSORT over more rows than
 * the consumer has), in guest-shared (zero-copy) memory, and after a recompute of a cached
 * graph, answer VGPU_INVALID with nothing written past the failing node (the whole buffer is
 * compared); the context keeps working. A provably safe ARGSORT -> MUL_MAT_ID graph computes
 * the right numbers without being segmented (the plan's debug line says so).
 *
 * With VGPU_TEST_RPC_ENDPOINT=HOST:PORT and VGPU_TEST_RPC_BACKEND=libggml-rpc.so (CTest
 * index-guard.device, tests/integration/test-index-guard-device.sh) the device is a ggml-rpc
 * device, which is not a CPU device: the tests of graph inputs run there, where their consumers
 * read device copies of the checked indices (index-guard.h) instead of the indices in place.
 */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "apir-harness.h"
#include "ext.h"
#include "ggml.h"
#include "wire.h"

#define CTX_ID  4401
#define BUF_SZ  16384
#define SENTRY  0xA5

static struct apir_harness *H;
static const char *rpc_endpoint; /* set: the device is a ggml-rpc device (not a CPU device) */

static int setup(void **state)
{
    (void)state;
    struct apir_harness_opts o = { 0 };
    o.backend_path = rpc_endpoint ? getenv("VGPU_TEST_RPC_BACKEND") : NULL;
    H = apir_harness_open(CTX_ID, &o);
    if (!H)
        return -1;
    apir_harness_config(H, VGPU_CFG_LOG_LEVEL, "debug");
    if (rpc_endpoint)
        apir_harness_config(H, VGPU_CFG_RPC_SERVERS, rpc_endpoint);
    if (apir_harness_init(H) != 0 || apir_harness_hello(H) != VGPU_OK)
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

/* ---- graphs ------------------------------------------------------------------------------------------ */

struct tg {
    struct vgpu_wire_tensor t[32];
    uint32_t                n;
    uint32_t                nodes[32];
    uint32_t                n_nodes;
    uint64_t                buf;
    uint64_t                next; /* bump allocator in buf */
};

static void tg_init(struct tg *g, uint64_t buf)
{
    memset(g, 0, sizeof(*g));
    g->buf = buf;
}

/* A tensor at an explicit offset (packed strides). */
static uint32_t tensor_at(struct tg *g, enum ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3,
                          uint64_t off)
{
    assert_true(g->n < 32);
    uint32_t i = g->n++;
    apir_harness_wire(&g->t[i], type, ne0, ne1, ne2, ne3, g->buf, off);
    snprintf(g->t[i].name, sizeof(g->t[i].name), "t%u", i);
    return i;
}

/* A fresh tensor from the bump allocator (64-byte aligned). */
static uint32_t tensor(struct tg *g, enum ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3)
{
    uint32_t i = tensor_at(g, type, ne0, ne1, ne2, ne3, g->next);
    uint64_t bytes = g->t[i].nb[3] * (uint64_t)ne3;
    g->next += (bytes + 63) & ~63ull;
    assert_true(g->next <= BUF_SZ / 2); /* the upper half is spare (canary) */
    return i;
}

/* Makes tensor i a node computing `op` from sources (index, or -1). */
static void op(struct tg *g, uint32_t i, enum ggml_op o, int s0, int s1, int s2)
{
    const int s[3] = { s0, s1, s2 };
    g->t[i].op = o;
    for (int k = 0; k < 3; k++)
        g->t[i].src[k] = s[k] >= 0 ? (uint32_t)s[k] + 1 : 0;
    g->t[i].flags = GGML_TENSOR_FLAG_COMPUTE;
    g->nodes[g->n_nodes++] = i;
}

/* Makes tensor i a view of tensor v (same buffer; data = v's + offs), op VIEW from v. */
static void view_of(struct tg *g, uint32_t i, uint32_t v, uint64_t offs)
{
    g->t[i].view_src = v + 1;
    g->t[i].view_offs = offs;
    g->t[i].data = g->t[v].data + offs;
}

static size_t encode(const struct tg *g, uint8_t *out, size_t cap)
{
    size_t n = apir_harness_graph_image(g->t, g->n, g->nodes, g->n_nodes, out, cap);
    assert_true(n > 0);
    return n;
}

/* EXT_GRAPH_COMPUTE of g (NULL: recompute uid). On OK the graph must have computed successfully. */
static uint32_t compute(const struct tg *g, uint64_t uid)
{
    static uint8_t img[65536];
    size_t n = g ? encode(g, img, sizeof(img)) : 0;
    struct vgpu_graph_request q = { 0, 0, uid, 0, 0, n };
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_graph_request(e, &q);
    if (n)
        vgpu_enc_blob(e, img, n);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(H, VGPU_CMD_EXT_GRAPH_COMPUTE, &d);
    if (r == VGPU_OK) {
        assert_int_equal(vgpu_dec_u32(&d), VGPU_GRAPH_COMPUTED);
        assert_int_equal(vgpu_dec_i32(&d), GGML_STATUS_SUCCESS);
    } else {
        assert_int_equal(apir_harness_reply_len(H), 0);
    }
    return r;
}

/* Computes and returns the plan's debug line ("" if none). */
static uint32_t compute_logged(const struct tg *g, uint64_t uid, const char **log)
{
    static char text[65536];
    assert_int_equal(apir_harness_capture_begin(), 0);
    uint32_t r = compute(g, uid);
    assert_int_equal(apir_harness_capture_end(text, sizeof(text)), 0);
    fputs(text, stderr); /* still shown in the test's output */
    *log = text;
    return r;
}

static void put(uint64_t buf, uint64_t off, const void *p, size_t n)
{
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_I8, (int64_t)n, 1, 1, 1, buf, off);
    assert_int_equal(apir_harness_set(H, &w, 0, p, n), VGPU_OK);
}

static void get(uint64_t buf, uint64_t off, void *p, size_t n)
{
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_I8, (int64_t)n, 1, 1, 1, buf, off);
    assert_int_equal(apir_harness_get(H, &w, 0, p, n), VGPU_OK);
}

/* One EXT_TENSOR_SET of `rows` rows of `row` bytes from p, `stride` bytes apart in buf from off. */
static void put_rows(uint64_t buf, uint64_t off, const void *p, size_t row, uint64_t rows, uint64_t stride)
{
    struct vgpu_transfer x;
    memset(&x, 0, sizeof(x));
    apir_harness_wire(&x.tensor, GGML_TYPE_I8, (int64_t)((rows - 1) * stride + row), 1, 1, 1, buf, off);
    x.size = row;
    x.n_copies = rows;
    x.stride_tensor = stride;
    x.stride_data = row;
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_transfer(e, &x);
    vgpu_enc_blob(e, p, row * rows);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_TENSOR_SET, NULL), VGPU_OK);
}

static void put_t(const struct tg *g, uint32_t i, const void *p, size_t n)
{
    put(g->buf, g->t[i].data, p, n);
}

static void get_t(const struct tg *g, uint32_t i, void *p, size_t n)
{
    get(g->buf, g->t[i].data, p, n);
}

static uint64_t alloc_buf(void)
{
    uint64_t id = 0;
    assert_int_equal(apir_harness_alloc(H, 0, BUF_SZ, 0, &id, NULL), VGPU_OK);
    static uint8_t fill[BUF_SZ];
    memset(fill, SENTRY, sizeof(fill));
    put(id, 0, fill, sizeof(fill));
    return id;
}

/* The whole buffer, to prove that a refused compute wrote nothing. */
static uint8_t *snapshot(uint64_t buf)
{
    uint8_t *p = malloc(BUF_SZ);
    assert_non_null(p);
    get(buf, 0, p, BUF_SZ);
    return p;
}

/* The buffer equals `before` except in the byte ranges of tensors `except` (-1 terminated). */
static void expect_unchanged(const struct tg *g, const uint8_t *before, const int *except)
{
    uint8_t *now = snapshot(g->buf);
    for (size_t b = 0; b < BUF_SZ; b++) {
        bool skip = false;
        for (const int *e = except; e && *e >= 0; e++) {
            const struct vgpu_wire_tensor *t = &g->t[*e];
            uint64_t end = t->data + t->nb[3] * (uint64_t)t->ne[3];
            if (b >= t->data && b < end)
                skip = true;
        }
        if (!skip && now[b] != before[b])
            fail_msg("byte %zu changed: 0x%02x -> 0x%02x", b, before[b], now[b]);
    }
    free(now);
}

/*
 * A refused compute of g (sent as an image, or with `recompute` by uid only): VGPU_INVALID, a
 * log line naming the op and the bound, nothing written but the tensors in `except`.
 */
static void expect_refused_ex(const struct tg *g, uint64_t uid, bool recompute, const char *op_name,
                              const int *except)
{
    uint8_t *before = snapshot(g->buf);
    const char *log;
    uint32_t r = compute_logged(recompute ? NULL : g, uid, &log);
    if (r != VGPU_INVALID)
        fail_msg("%s: code %u, expected INVALID", op_name, r);
    if (!strstr(log, op_name) || !strstr(log, "is outside [0, "))
        fail_msg("%s: no log line naming the op and the bound: %s", op_name, log);
    expect_unchanged(g, before, except);
    free(before);
    assert_int_equal(nop(), VGPU_OK);
}

static void expect_refused(const struct tg *g, uint64_t uid, const char *op_name, const int *except)
{
    expect_refused_ex(g, uid, false, op_name, except);
}

static void fill_f32(float *p, int n, int seed)
{
    for (int i = 0; i < n; i++)
        p[i] = (float)((i * 7 + seed * 3) % 11) - 5.0f + 0.25f * (float)seed;
}

/* A value no compute of these tests writes: a refused compute must leave it. */
static void fill_sentinel(float *p, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = 777.0f;
}

/*
 * The plan line of a graph whose one index operand is a graph input: checked before the
 * compute, read from a device copy on a device that is not a CPU, no segment boundary.
 */
static void expect_input_plan(const char *log)
{
    assert_non_null(strstr(log, "1 checked before compute, 0 between segments"));
    assert_non_null(strstr(log, rpc_endpoint ? "1 private copies (1 on the device)" : "0 private copies"));
    assert_non_null(strstr(log, "0 segment boundaries"));
}

static void expect_close(const float *got, const float *want, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        if (fabsf(got[i] - want[i]) > 1e-4f)
            fail_msg("%s[%d] = %g, expected %g", what, i, (double)got[i], (double)want[i]);
    }
}

/* ---- GET_ROWS ------------------------------------------------------------------------------------------ */

enum { GR_NC = 4, GR_NR = 5, GR_N = 3 };

/* rows = get_rows(A [4, 5], ids I32 [3]) */
static void make_get_rows(struct tg *g, uint64_t buf, uint32_t *a, uint32_t *ids, uint32_t *dst)
{
    tg_init(g, buf);
    *a = tensor(g, GGML_TYPE_F32, GR_NC, GR_NR, 1, 1);
    *ids = tensor(g, GGML_TYPE_I32, GR_N, 1, 1, 1);
    *dst = tensor(g, GGML_TYPE_F32, GR_NC, GR_N, 1, 1);
    op(g, *dst, GGML_OP_GET_ROWS, (int)*a, (int)*ids, -1);
}

static void check_get_rows(const struct tg *g, uint32_t a, uint32_t dst, const int32_t *idx)
{
    float A[GR_NC * GR_NR], D[GR_NC * GR_N], want[GR_NC * GR_N];
    get_t(g, a, A, sizeof(A));
    get_t(g, dst, D, sizeof(D));
    for (int r = 0; r < GR_N; r++)
        memcpy(&want[r * GR_NC], &A[idx[r] * GR_NC], GR_NC * sizeof(float));
    expect_close(D, want, GR_NC * GR_N, "get_rows");
}

static void test_get_rows_input(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    struct tg g;
    uint32_t a, ids, dst;
    make_get_rows(&g, buf, &a, &ids, &dst);
    float A[GR_NC * GR_NR];
    fill_f32(A, GR_NC * GR_NR, 1);
    put_t(&g, a, A, sizeof(A));

    const int32_t good[GR_N] = { 4, 0, 2 };
    put_t(&g, ids, good, sizeof(good));
    const char *log;
    assert_int_equal(compute_logged(&g, 0, &log), VGPU_OK);
    expect_input_plan(log);
    check_get_rows(&g, a, dst, good);

    const int32_t bad[][GR_N] = { { -1, 0, 0 }, { 0, GR_NR, 0 }, { 0, 0, INT32_MAX }, { INT32_MIN, 1, 1 } };
    float sentinel[GR_NC * GR_N];
    fill_sentinel(sentinel, GR_NC * GR_N);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        put_t(&g, dst, sentinel, sizeof(sentinel));
        put_t(&g, ids, bad[k], sizeof(bad[k]));
        expect_refused(&g, 0, "GET_ROWS", NULL);
    }
    /* The context still computes. */
    put_t(&g, ids, good, sizeof(good));
    assert_int_equal(compute(&g, 0), VGPU_OK);
    check_get_rows(&g, a, dst, good);
}

/*
 * get_rows(A, ids), then a node whose result reuses the ids' bytes (llama.cpp's allocator does
 * that with the KV-cache row ids and the output ids). On the CPU the ids are checked in place;
 * on another device, where kernels may be fused, the consumer reads a device copy of the
 * checked ids, and no segment boundary follows it. Recomputes by uid upload the new ids.
 */
static void test_input_overwritten(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    struct tg g;
    uint32_t a, ids, dst;
    make_get_rows(&g, buf, &a, &ids, &dst);
    uint32_t c = tensor(&g, GGML_TYPE_F32, GR_N, 1, 1, 1);
    uint32_t w = tensor_at(&g, GGML_TYPE_F32, GR_N, 1, 1, 1, g.t[ids].data);
    op(&g, w, GGML_OP_ADD, (int)c, (int)c, -1);
    float A[GR_NC * GR_NR];
    fill_f32(A, GR_NC * GR_NR, 5);
    put_t(&g, a, A, sizeof(A));
    const float C[GR_N] = { 1.0f, 2.0f, 3.0f }, twice[GR_N] = { 2.0f, 4.0f, 6.0f };
    put_t(&g, c, C, sizeof(C));

    const int32_t good[GR_N] = { 3, 1, 4 };
    put_t(&g, ids, good, sizeof(good));
    const char *log;
    assert_int_equal(compute_logged(&g, 61, &log), VGPU_OK);
    expect_input_plan(log);
    check_get_rows(&g, a, dst, good);
    float W[GR_N];
    get_t(&g, w, W, sizeof(W));
    expect_close(W, twice, GR_N, "add over the ids");

    /* The ids' bytes now hold floats; the guest writes new ids and recomputes by uid. */
    const int32_t next[GR_N] = { 0, 4, 4 };
    put_t(&g, ids, next, sizeof(next));
    assert_int_equal(compute(NULL, 61), VGPU_OK);
    check_get_rows(&g, a, dst, next);

    /* Set, then another command before the compute: the ids are read back (no capture). */
    put_t(&g, ids, good, sizeof(good));
    assert_int_equal(nop(), VGPU_OK);
    assert_int_equal(compute(NULL, 61), VGPU_OK);
    check_get_rows(&g, a, dst, good);

    const int32_t bad[GR_N] = { 0, GR_NR, 0 };
    float sentinel[GR_NC * GR_N];
    fill_sentinel(sentinel, GR_NC * GR_N);
    put_t(&g, dst, sentinel, sizeof(sentinel));
    put_t(&g, ids, bad, sizeof(bad));
    expect_refused_ex(&g, 61, true, "GET_ROWS", NULL);
    put_t(&g, ids, bad, sizeof(bad));
    assert_int_equal(nop(), VGPU_OK);
    expect_refused_ex(&g, 61, true, "GET_ROWS", NULL);
    /* Good ids set, then a bad one written over them by a later set that covers more (two rows,
     * the second one on ids[1]), or by a set of the bad element alone: refused either way. */
    const int32_t bad1 = GR_NR;
    const int32_t rows2[2] = { 0, bad1 };
    put_t(&g, ids, good, sizeof(good));
    put_rows(buf, g.t[ids].data - 4, rows2, 4, 2, 8);
    expect_refused_ex(&g, 61, true, "GET_ROWS", NULL);
    put_t(&g, ids, good, sizeof(good));
    put(buf, g.t[ids].data + 4, &bad1, 4);
    expect_refused_ex(&g, 61, true, "GET_ROWS", NULL);
    /* Good ids set, then bad ones copied over them on the device (EXT_TENSOR_COPY): refused. */
    const int32_t bad_src[GR_N] = { 1, 2, -7 };
    uint64_t spare = BUF_SZ / 2; /* the upper half of the buffer is unused by the graph */
    put(buf, spare, bad_src, sizeof(bad_src));
    put_t(&g, ids, good, sizeof(good));
    struct vgpu_enc *e = apir_harness_req(H);
    struct vgpu_wire_tensor from = g.t[ids];
    from.data = spare;
    vgpu_enc_wire_tensor(e, &from);
    vgpu_enc_wire_tensor(e, &g.t[ids]);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_TENSOR_COPY, NULL), VGPU_OK);
    expect_refused_ex(&g, 61, true, "GET_ROWS", NULL);
    put_t(&g, ids, good, sizeof(good));
    assert_int_equal(compute(NULL, 61), VGPU_OK);
    check_get_rows(&g, a, dst, good);
}

/* Recompute of a cached graph after the guest changed its index data. */
static void test_recompute_cached(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    struct tg g;
    uint32_t a, ids, dst;
    make_get_rows(&g, buf, &a, &ids, &dst);
    float A[GR_NC * GR_NR];
    fill_f32(A, GR_NC * GR_NR, 2);
    put_t(&g, a, A, sizeof(A));
    int32_t idx[GR_N] = { 1, 2, 3 };
    put_t(&g, ids, idx, sizeof(idx));
    assert_int_equal(compute(&g, 55), VGPU_OK);
    check_get_rows(&g, a, dst, idx);

    for (int round = 0; round < 3; round++) {
        idx[round] = GR_NR + round; /* out of range */
        put_t(&g, ids, idx, sizeof(idx));
        expect_refused_ex(&g, 55, true, "GET_ROWS", NULL);
        idx[round] = round; /* back in range */
        put_t(&g, ids, idx, sizeof(idx));
        assert_int_equal(compute(NULL, 55), VGPU_OK);
        check_get_rows(&g, a, dst, idx);
    }
}

/* ---- SET_ROWS --------------------------------------------------------------------------------------------- */

enum { SR_NC = 4, SR_N = 3, SR_R = 6 };

static void set_rows_case(enum ggml_type itype)
{
    uint64_t buf = alloc_buf();
    struct tg g;
    tg_init(&g, buf);
    uint32_t vals = tensor(&g, GGML_TYPE_F32, SR_NC, SR_N, 1, 1);
    uint32_t idx = tensor(&g, itype, SR_N, 1, 1, 1);
    uint32_t dest = tensor(&g, GGML_TYPE_F32, SR_NC, SR_R, 1, 1);
    uint32_t node = tensor_at(&g, GGML_TYPE_F32, SR_NC, SR_R, 1, 1, g.t[dest].data);
    view_of(&g, node, dest, 0);
    op(&g, node, GGML_OP_SET_ROWS, (int)vals, (int)idx, (int)dest);

    float V[SR_NC * SR_N], D0[SR_NC * SR_R], D[SR_NC * SR_R];
    fill_f32(V, SR_NC * SR_N, 3);
    fill_f32(D0, SR_NC * SR_R, 9);
    put_t(&g, vals, V, sizeof(V));
    put_t(&g, dest, D0, sizeof(D0));
    const int64_t good[SR_N] = { 5, 0, 3 };
    uint8_t raw[SR_N * 8];
    for (int i = 0; i < SR_N; i++) {
        if (itype == GGML_TYPE_I64)
            memcpy(raw + 8 * i, &good[i], 8);
        else {
            int32_t v = (int32_t)good[i];
            memcpy(raw + 4 * i, &v, 4);
        }
    }
    put_t(&g, idx, raw, (size_t)SR_N * ggml_type_size(itype));
    assert_int_equal(compute(&g, 0), VGPU_OK);
    get_t(&g, dest, D, sizeof(D));
    float want[SR_NC * SR_R];
    memcpy(want, D0, sizeof(want));
    for (int i = 0; i < SR_N; i++)
        memcpy(&want[good[i] * SR_NC], &V[i * SR_NC], SR_NC * sizeof(float));
    expect_close(D, want, SR_NC * SR_R, "set_rows");

    if (itype == GGML_TYPE_I64) {
        /* 2^32 and 2^32 + 1 would be 0 and 1 if truncated to 32 bits. */
        const int64_t bad[] = { -1, SR_R, 1ll << 32, (1ll << 32) + 1, 1ll << 40, INT64_MIN, INT64_MAX };
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            int64_t v[SR_N] = { 0, bad[k], 1 };
            put_t(&g, idx, v, sizeof(v));
            expect_refused(&g, 0, "SET_ROWS", NULL);
        }
    } else {
        const int32_t bad[] = { -1, SR_R, INT32_MAX, INT32_MIN };
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            int32_t v[SR_N] = { bad[k], 0, 1 };
            put_t(&g, idx, v, sizeof(v));
            expect_refused(&g, 0, "SET_ROWS", NULL);
        }
    }
    put_t(&g, idx, raw, (size_t)SR_N * ggml_type_size(itype));
    assert_int_equal(compute(&g, 0), VGPU_OK);
}

static void test_set_rows_i64(void **state)
{
    (void)state;
    set_rows_case(GGML_TYPE_I64);
}

static void test_set_rows_i32(void **state)
{
    (void)state;
    set_rows_case(GGML_TYPE_I32);
}

/* ---- MUL_MAT_ID and ADD_ID ------------------------------------------------------------------------------- */

enum { MK = 4, MM = 3, ME = 4, MU = 2, MT = 2 };

struct mmid {
    uint32_t as, b, ids, dst;
};

/* dst = mul_mat_id(as [K, M, E], b [K, 1, T], ids [U, T]); ids given (or -1: a fresh input). */
static void make_mmid(struct tg *g, struct mmid *m, int ids)
{
    m->as = tensor(g, GGML_TYPE_F32, MK, MM, ME, 1);
    m->b = tensor(g, GGML_TYPE_F32, MK, 1, MT, 1);
    m->ids = ids >= 0 ? (uint32_t)ids : tensor(g, GGML_TYPE_I32, MU, MT, 1, 1);
    m->dst = tensor(g, GGML_TYPE_F32, MM, MU, MT, 1);
    op(g, m->dst, GGML_OP_MUL_MAT_ID, (int)m->as, (int)m->b, (int)m->ids);
}

static void load_mmid(const struct tg *g, const struct mmid *m, int seed)
{
    float as[MK * MM * ME], b[MK * MT];
    fill_f32(as, MK * MM * ME, seed);
    fill_f32(b, MK * MT, seed + 1);
    put_t(g, m->as, as, sizeof(as));
    put_t(g, m->b, b, sizeof(b));
}

/* Checks dst against plain loops for expert ids[u + U*t]. */
static void check_mmid(const struct tg *g, const struct mmid *m, const int32_t *ids)
{
    float as[MK * MM * ME], b[MK * MT], d[MM * MU * MT], want[MM * MU * MT];
    get_t(g, m->as, as, sizeof(as));
    get_t(g, m->b, b, sizeof(b));
    get_t(g, m->dst, d, sizeof(d));
    for (int t = 0; t < MT; t++) {
        for (int u = 0; u < MU; u++) {
            int e = ids[u + MU * t];
            for (int r = 0; r < MM; r++) {
                float s = 0;
                for (int k = 0; k < MK; k++)
                    s += as[k + MK * (r + MM * e)] * b[k + MK * t];
                want[r + MM * (u + MU * t)] = s;
            }
        }
    }
    expect_close(d, want, MM * MU * MT, "mul_mat_id");
}

static void test_mul_mat_id_input(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    struct tg g;
    tg_init(&g, buf);
    struct mmid m;
    make_mmid(&g, &m, -1);
    load_mmid(&g, &m, 1);
    const int32_t good[MU * MT] = { 3, 0, 1, 2 };
    put_t(&g, m.ids, good, sizeof(good));
    assert_int_equal(compute(&g, 0), VGPU_OK);
    check_mmid(&g, &m, good);
    const int32_t bad[] = { ME, -1, 1000000, INT32_MIN };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int32_t v[MU * MT] = { 0, 1, 2, 3 };
        v[k % (MU * MT)] = bad[k];
        put_t(&g, m.ids, v, sizeof(v));
        expect_refused(&g, 0, "MUL_MAT_ID", NULL);
    }
    put_t(&g, m.ids, good, sizeof(good));
    assert_int_equal(compute(&g, 0), VGPU_OK);
    check_mmid(&g, &m, good);
}

enum { AN = 4, AE = 3 };

static void test_add_id_input(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    struct tg g;
    tg_init(&g, buf);
    uint32_t a = tensor(&g, GGML_TYPE_F32, AN, MU, MT, 1);
    uint32_t b = tensor(&g, GGML_TYPE_F32, AN, AE, 1, 1);
    uint32_t ids = tensor(&g, GGML_TYPE_I32, MU, MT, 1, 1);
    uint32_t dst = tensor(&g, GGML_TYPE_F32, AN, MU, MT, 1);
    op(&g, dst, GGML_OP_ADD_ID, (int)a, (int)b, (int)ids);
    float A[AN * MU * MT], B[AN * AE], D[AN * MU * MT], want[AN * MU * MT];
    fill_f32(A, AN * MU * MT, 4);
    fill_f32(B, AN * AE, 5);
    put_t(&g, a, A, sizeof(A));
    put_t(&g, b, B, sizeof(B));
    const int32_t good[MU * MT] = { 2, 0, 1, 1 };
    put_t(&g, ids, good, sizeof(good));
    assert_int_equal(compute(&g, 0), VGPU_OK);
    get_t(&g, dst, D, sizeof(D));
    for (int t = 0; t < MT; t++)
        for (int u = 0; u < MU; u++)
            for (int i = 0; i < AN; i++)
                want[i + AN * (u + MU * t)] = A[i + AN * (u + MU * t)] + B[i + AN * good[u + MU * t]];
    expect_close(D, want, AN * MU * MT, "add_id");
    const int32_t bad[] = { AE, -1, INT32_MAX };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int32_t v[MU * MT] = { 0, 1, 2, 0 };
        v[3 - k] = bad[k];
        put_t(&g, ids, v, sizeof(v));
        expect_refused(&g, 0, "ADD_ID", NULL);
    }
}

/* ---- GET_ROWS_BACK (the CPU kernel writes out of bounds with a bad row) ----------------------------------- */

enum { GB_NC = 4, GB_N = 3, GB_R = 5 };

static void test_get_rows_back_input(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    struct tg g;
    tg_init(&g, buf);
    uint32_t grad = tensor(&g, GGML_TYPE_F32, GB_NC, GB_N, 1, 1);
    uint32_t rows = tensor(&g, GGML_TYPE_I32, GB_N, 1, 1, 1);
    uint32_t dst = tensor(&g, GGML_TYPE_F32, GB_NC, GB_R, 1, 1);
    op(&g, dst, GGML_OP_GET_ROWS_BACK, (int)grad, (int)rows, -1);
    float G[GB_NC * GB_N], D[GB_NC * GB_R], want[GB_NC * GB_R];
    fill_f32(G, GB_NC * GB_N, 6);
    put_t(&g, grad, G, sizeof(G));
    const int32_t good[GB_N] = { 4, 1, 4 };
    put_t(&g, rows, good, sizeof(good));
    assert_int_equal(compute(&g, 0), VGPU_OK);
    get_t(&g, dst, D, sizeof(D));
    memset(want, 0, sizeof(want));
    for (int i = 0; i < GB_N; i++)
        for (int j = 0; j < GB_NC; j++)
            want[good[i] * GB_NC + j] += G[i * GB_NC + j];
    expect_close(D, want, GB_NC * GB_R, "get_rows_back");
    /* Row GB_R would be written just past dst: the bytes there must stay as they are. */
    const int32_t bad[] = { GB_R, -1, 64, INT32_MIN };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int32_t v[GB_N] = { 0, bad[k], 2 };
        put_t(&g, rows, v, sizeof(v));
        expect_refused(&g, 0, "GET_ROWS_BACK", NULL);
    }
}

/* ---- SSM_SCAN (sequence ids select state planes; the CPU kernel reads out of bounds) ---------------------- */

enum { SS_DS = 4, SS_HD = 2, SS_NH = 2, SS_NG = 1, SS_NT = 1, SS_NS = 2, SS_NRS = 3 };

static void test_ssm_scan_input(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    struct tg g;
    tg_init(&g, buf);
    uint32_t s = tensor(&g, GGML_TYPE_F32, SS_DS, SS_HD, SS_NH, SS_NRS);
    uint32_t x = tensor(&g, GGML_TYPE_F32, SS_HD, SS_NH, SS_NT, SS_NS);
    uint32_t dt = tensor(&g, GGML_TYPE_F32, SS_NH, SS_NT, SS_NS, 1);
    uint32_t A = tensor(&g, GGML_TYPE_F32, 1, SS_NH, 1, 1);
    uint32_t B = tensor(&g, GGML_TYPE_F32, SS_DS, SS_NG, SS_NT, SS_NS);
    uint32_t C = tensor(&g, GGML_TYPE_F32, SS_DS, SS_NG, SS_NT, SS_NS);
    uint32_t ids = tensor(&g, GGML_TYPE_I32, SS_NS, 1, 1, 1);
    const int64_t n_out = SS_HD * SS_NH * SS_NT * SS_NS + SS_DS * SS_HD * SS_NH * SS_NS;
    uint32_t dst = tensor(&g, GGML_TYPE_F32, n_out, 1, 1, 1);
    op(&g, dst, GGML_OP_SSM_SCAN, (int)s, (int)x, (int)dt);
    g.t[dst].src[3] = A + 1;
    g.t[dst].src[4] = B + 1;
    g.t[dst].src[5] = C + 1;
    g.t[dst].src[6] = ids + 1;
    g.t[dst].op_params[0] = 1; /* K */
    const uint32_t ins[] = { s, x, dt, A, B, C };
    for (size_t k = 0; k < sizeof(ins) / sizeof(ins[0]); k++) {
        const struct vgpu_wire_tensor *w = &g.t[ins[k]];
        size_t n = (size_t)(w->nb[3] * (uint64_t)w->ne[3] / sizeof(float));
        float v[64];
        assert_true(n <= 64);
        fill_f32(v, (int)n, (int)k);
        for (size_t i = 0; i < n; i++)
            v[i] *= 0.1f;
        put_t(&g, ins[k], v, n * sizeof(float));
    }
    const int32_t good[SS_NS] = { 2, 0 };
    put_t(&g, ids, good, sizeof(good));
    assert_int_equal(compute(&g, 0), VGPU_OK);
    const int32_t bad[] = { SS_NRS, -1, 1 << 20 };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int32_t v[SS_NS] = { bad[k], 1 };
        put_t(&g, ids, v, sizeof(v));
        expect_refused(&g, 0, "SSM_SCAN", NULL);
    }
    /* Sequence ids the kernels would read packed must be adjacent. On the CPU the kernel
     * contract (host/kernel-cpu.h: ssm_scan GGML_ASSERTs src6->nb[0] == 4, also for one
     * sequence) refuses the node before the index guard's layout rule sees it. */
    g.t[ids].nb[0] = 8;
    assert_int_equal(compute(&g, 0), VGPU_UNSUPPORTED);
    assert_int_equal(nop(), VGPU_OK);
}

/* ---- in-graph producers ------------------------------------------------------------------------------------- */

/* get_rows(A, cpy(F [3] -> I32)): the indices come from a CPY of guest floats. */
static void test_in_graph_cpy(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    struct tg g;
    tg_init(&g, buf);
    uint32_t a = tensor(&g, GGML_TYPE_F32, GR_NC, GR_NR, 1, 1);
    uint32_t f = tensor(&g, GGML_TYPE_F32, GR_N, 1, 1, 1);
    uint32_t ileaf = tensor(&g, GGML_TYPE_I32, GR_N, 1, 1, 1);
    uint32_t icpy = tensor_at(&g, GGML_TYPE_I32, GR_N, 1, 1, 1, g.t[ileaf].data);
    view_of(&g, icpy, ileaf, 0);
    op(&g, icpy, GGML_OP_CPY, (int)f, (int)ileaf, -1);
    uint32_t dst = tensor(&g, GGML_TYPE_F32, GR_NC, GR_N, 1, 1);
    op(&g, dst, GGML_OP_GET_ROWS, (int)a, (int)icpy, -1);
    float A[GR_NC * GR_NR];
    fill_f32(A, GR_NC * GR_NR, 7);
    put_t(&g, a, A, sizeof(A));

    const float fgood[GR_N] = { 4.0f, 0.0f, 2.0f };
    const int32_t igood[GR_N] = { 4, 0, 2 };
    put_t(&g, f, fgood, sizeof(fgood));
    const char *log;
    assert_int_equal(compute_logged(&g, 0, &log), VGPU_OK);
    assert_non_null(strstr(log, "0 provable, 0 checked before compute, 1 between segments"));
    assert_non_null(strstr(log, "1 segment boundaries"));
    check_get_rows(&g, a, dst, igood);

    const float fbad[][GR_N] = { { 1.0f, 5.0f, 0.0f }, { -1.0f, 0.0f, 0.0f }, { 0.0f, 0.0f, 3.0e9f } };
    float sentinel[GR_NC * GR_N];
    fill_sentinel(sentinel, GR_NC * GR_N);
    const int cpy_ran[] = { (int)ileaf, -1 }; /* the CPY (before the consumer) has run */
    for (size_t k = 0; k < sizeof(fbad) / sizeof(fbad[0]); k++) {
        put_t(&g, f, fbad[k], sizeof(fbad[k]));
        put_t(&g, dst, sentinel, sizeof(sentinel));
        expect_refused(&g, 0, "GET_ROWS", cpy_ran);
    }

    /* The same with the index described as a plain leaf aliasing the CPY's bytes (no view): the
     * writer is found by address. */
    struct tg h = g;
    h.t[dst].src[1] = ileaf + 1;
    put_t(&h, f, fbad[0], sizeof(fbad[0]));
    expect_refused(&h, 0, "GET_ROWS", cpy_ran);
    put_t(&h, f, fgood, sizeof(fgood));
    assert_int_equal(compute(&h, 0), VGPU_OK);
    check_get_rows(&h, a, dst, igood);
}

/* Expert selection as llama.cpp builds it: view(argsort(logits, DESC), top U) -> MUL_MAT_ID. */
struct moe {
    struct tg g;
    uint32_t  logits, sorted, top;
    struct mmid m;
};

static void make_moe(struct moe *o, uint64_t buf, int n_logits)
{
    struct tg *g = &o->g;
    tg_init(g, buf);
    o->logits = tensor(g, GGML_TYPE_F32, n_logits, MT, 1, 1);
    o->sorted = tensor(g, GGML_TYPE_I32, n_logits, MT, 1, 1);
    op(g, o->sorted, GGML_OP_ARGSORT, (int)o->logits, -1, -1);
    g->t[o->sorted].op_params[0] = GGML_SORT_ORDER_DESC;
    o->top = tensor_at(g, GGML_TYPE_I32, MU, MT, 1, 1, g->t[o->sorted].data);
    g->t[o->top].nb[1] = g->t[o->sorted].nb[1];
    g->t[o->top].nb[2] = g->t[o->sorted].nb[2];
    g->t[o->top].nb[3] = g->t[o->sorted].nb[3];
    view_of(g, o->top, o->sorted, 0);
    op(g, o->top, GGML_OP_VIEW, (int)o->sorted, -1, -1);
    make_mmid(g, &o->m, (int)o->top);
}

/* The top-U indices of each row of logits [n, T], descending (distinct values). */
static void top_ids(const float *logits, int n, int32_t *ids)
{
    for (int t = 0; t < MT; t++) {
        bool used[16] = { false };
        for (int u = 0; u < MU; u++) {
            int best = -1;
            for (int e = 0; e < n; e++)
                if (!used[e] && (best < 0 || logits[t * n + e] > logits[t * n + best]))
                    best = e;
            used[best] = true;
            ids[u + MU * t] = best;
        }
    }
}

static void test_argsort_provable(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    static struct moe o;
    make_moe(&o, buf, ME);
    load_mmid(&o.g, &o.m, 2);
    const float logits[ME * MT] = { 0.1f, 0.9f, -0.3f, 0.5f, 2.0f, -1.0f, 3.0f, 0.0f };
    put_t(&o.g, o.logits, logits, sizeof(logits));
    const char *log;
    assert_int_equal(compute_logged(&o.g, 0, &log), VGPU_OK);
    assert_non_null(strstr(log, "1 index operands: 1 provable, 0 checked before compute, 0 between segments"));
    assert_non_null(strstr(log, "0 segment boundaries"));
    int32_t ids[MU * MT];
    top_ids(logits, ME, ids);
    check_mmid(&o.g, &o.m, ids);
    /* Cached and recomputed with other logits: still right. */
    assert_int_equal(compute(&o.g, 91), VGPU_OK);
    const float logits2[ME * MT] = { -5.0f, 1.0f, 2.0f, 3.0f, 9.0f, 8.0f, -7.0f, 0.5f };
    put_t(&o.g, o.logits, logits2, sizeof(logits2));
    assert_int_equal(compute(NULL, 91), VGPU_OK);
    top_ids(logits2, ME, ids);
    check_mmid(&o.g, &o.m, ids);
}

/* An ARGSORT over more values than the consumer has experts is not provably in range: checked. */
static void test_argsort_too_wide(void **state)
{
    (void)state;
    enum { N = 6 };
    uint64_t buf = alloc_buf();
    static struct moe o;
    make_moe(&o, buf, N);
    load_mmid(&o.g, &o.m, 3);
    const float fine[N * MT] = { 0.1f, 0.9f, -0.3f, 0.5f, -2.0f, -1.0f, 3.0f, 2.0f, 1.0f, 0.0f, -1.0f, -2.0f };
    put_t(&o.g, o.logits, fine, sizeof(fine));
    const char *log;
    assert_int_equal(compute_logged(&o.g, 0, &log), VGPU_OK);
    assert_non_null(strstr(log, "0 provable, 0 checked before compute, 1 between segments"));
    int32_t ids[MU * MT];
    top_ids(fine, N, ids);
    check_mmid(&o.g, &o.m, ids);
    const float bad[N * MT] = { 0.1f, 0.9f, -0.3f, 0.5f, 4.0f, -1.0f, 3.0f, 2.0f, 1.0f, 0.0f, -1.0f, -2.0f };
    put_t(&o.g, o.logits, bad, sizeof(bad));
    const int ran[] = { (int)o.sorted, -1 };
    float sentinel[MM * MU * MT];
    fill_sentinel(sentinel, MM * MU * MT);
    put_t(&o.g, o.m.dst, sentinel, sizeof(sentinel));
    expect_refused(&o.g, 0, "MUL_MAT_ID", ran);
    float d[MM * MU * MT];
    get_t(&o.g, o.m.dst, d, sizeof(d));
    expect_close(d, sentinel, MM * MU * MT, "untouched mul_mat_id result");
}

/* An ARGSORT result overwritten (by a CPY of guest floats) before its consumer reads it. */
static void test_argsort_overwritten(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    static struct moe o;
    make_moe(&o, buf, ME);
    struct tg *g = &o.g;
    /* Insert, between the VIEW and the MUL_MAT_ID, cpy(F [U*T] -> the first U*T ints of the
     * argsort result), through a leaf aliasing those bytes. */
    uint32_t f = tensor(g, GGML_TYPE_F32, MU * MT, 1, 1, 1);
    uint32_t tgt = tensor_at(g, GGML_TYPE_I32, MU * MT, 1, 1, 1, g->t[o.sorted].data);
    uint32_t over = tensor_at(g, GGML_TYPE_I32, MU * MT, 1, 1, 1, g->t[o.sorted].data);
    view_of(g, over, tgt, 0);
    g->t[over].op = GGML_OP_CPY;
    g->t[over].src[0] = f + 1;
    g->t[over].src[1] = tgt + 1;
    g->t[over].flags = GGML_TENSOR_FLAG_COMPUTE;
    /* nodes: argsort, view, mul_mat_id -> argsort, view, cpy, mul_mat_id */
    g->nodes[3] = g->nodes[2];
    g->nodes[2] = over;
    g->n_nodes = 4;
    load_mmid(g, &o.m, 4);
    const float logits[ME * MT] = { 0.1f, 0.9f, -0.3f, 0.5f, 2.0f, -1.0f, 3.0f, 0.0f };
    put_t(g, o.logits, logits, sizeof(logits));
    const float fgood[MU * MT] = { 3.0f, 2.0f, 1.0f, 0.0f };
    put_t(g, f, fgood, sizeof(fgood));
    const char *log;
    assert_int_equal(compute_logged(g, 0, &log), VGPU_OK);
    assert_non_null(strstr(log, "0 provable, 0 checked before compute, 1 between segments"));
    /* The CPY wrote 3, 2 | 1, 0 over the first U*T ints of the argsort result: row t of the
     * view starts at t * N ints. */
    int32_t raw[ME * MT];
    get_t(g, o.sorted, raw, sizeof(raw));
    int32_t ids[MU * MT] = { raw[0], raw[1], raw[ME], raw[ME + 1] };
    check_mmid(g, &o.m, ids);
    const float fbad[MU * MT] = { 9.0f, 2.0f, 1.0f, 0.0f }; /* 9 lands in the view's first element */
    put_t(g, f, fbad, sizeof(fbad));
    const int ran[] = { (int)o.sorted, -1 };
    expect_refused(g, 0, "MUL_MAT_ID", ran);
}

/* ---- guest-shared (zero-copy) index data --------------------------------------------------------------- */

static void test_zero_copy(void **state)
{
    (void)state;
    uint8_t *res = apir_harness_res_create(H, 30, BUF_SZ);
    assert_non_null(res);
    uint64_t buf;
    uint32_t granted;
    assert_int_equal(apir_harness_alloc(H, 0, BUF_SZ, 30, &buf, &granted), VGPU_OK);
    assert_int_equal(granted, VGPU_ALLOC_ZERO_COPY);
    memset(res, SENTRY, BUF_SZ);

    /* A graph input in shared memory: the consumer reads a private copy, checked. */
    struct tg g;
    uint32_t a, ids, dst;
    make_get_rows(&g, buf, &a, &ids, &dst);
    float A[GR_NC * GR_NR];
    fill_f32(A, GR_NC * GR_NR, 8);
    memcpy(res + g.t[a].data, A, sizeof(A));
    const int32_t good[GR_N] = { 3, 3, 1 };
    memcpy(res + g.t[ids].data, good, sizeof(good));
    const char *log;
    assert_int_equal(compute_logged(&g, 40, &log), VGPU_OK);
    assert_non_null(strstr(log, "1 checked before compute, 0 between segments, 1 private copies"));
    check_get_rows(&g, a, dst, good);
    const int32_t bad[GR_N] = { 3, GR_NR, 1 };
    memcpy(res + g.t[ids].data, bad, sizeof(bad));
    expect_refused_ex(&g, 40, true, "GET_ROWS", NULL);
    memcpy(res + g.t[ids].data, good, sizeof(good));
    assert_int_equal(compute(NULL, 40), VGPU_OK);
    check_get_rows(&g, a, dst, good);

    /* ARGSORT results in shared memory: not trusted (the guest may rewrite them mid-graph),
     * copied privately after the argsort and checked. */
    static struct moe o;
    make_moe(&o, buf, ME);
    load_mmid(&o.g, &o.m, 5);
    const float logits[ME * MT] = { 1.0f, 0.9f, -0.3f, 0.5f, 2.0f, -1.0f, 3.0f, 0.0f };
    put_t(&o.g, o.logits, logits, sizeof(logits));
    assert_int_equal(compute_logged(&o.g, 0, &log), VGPU_OK);
    assert_non_null(strstr(log, "0 provable, 0 checked before compute, 1 between segments, 1 private copies"));
    int32_t sel[MU * MT];
    top_ids(logits, ME, sel);
    check_mmid(&o.g, &o.m, sel);

    assert_int_equal(apir_harness_free(H, buf), VGPU_OK);
    apir_harness_res_destroy(H, 30);
    assert_int_equal(nop(), VGPU_OK);
}

/* ---- malformed index operands ------------------------------------------------------------------------- */

static void test_bad_layouts(void **state)
{
    (void)state;
    uint64_t buf = alloc_buf();
    struct tg g;
    uint32_t a, ids, dst;
    make_get_rows(&g, buf, &a, &ids, &dst);
    const int32_t good[GR_N] = { 0, 1, 2 };
    put_t(&g, ids, good, sizeof(good));

    /* The result overlaps its own index bytes. */
    struct tg h = g;
    h.t[dst].data = h.t[ids].data - 4 * GR_NC;
    assert_int_equal(compute(&h, 0), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);
    /* Index data not aligned to its elements. */
    h = g;
    h.t[ids].data += 2;
    assert_int_equal(compute(&h, 0), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);
    /* A stride that is not a multiple of the element size. */
    h = g;
    h.t[ids].nb[0] = 6;
    assert_int_equal(compute(&h, 0), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);
    /* MUL_MAT_ID ids with non-adjacent elements (the kernels read rows packed). */
    struct tg k;
    tg_init(&k, buf);
    struct mmid m;
    make_mmid(&k, &m, -1);
    k.t[m.ids].nb[0] = 8;
    k.t[m.ids].nb[1] = 16;
    assert_int_equal(compute(&k, 0), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);
    /* Still fine. */
    assert_int_equal(compute(&g, 0), VGPU_OK);
}

int main(void)
{
    /* Graph inputs: every device kind. */
    const struct CMUnitTest inputs[] = {
        cmocka_unit_test_setup_teardown(test_get_rows_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_overwritten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recompute_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_rows_i64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_rows_i32, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mul_mat_id_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_id_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_rows_back_input, setup, teardown),
    };
    rpc_endpoint = getenv("VGPU_TEST_RPC_ENDPOINT");
    if (rpc_endpoint) {
        if (!getenv("VGPU_TEST_RPC_BACKEND")) {
            fprintf(stderr, "VGPU_TEST_RPC_ENDPOINT needs VGPU_TEST_RPC_BACKEND (libggml-rpc.so)\n");
            return 1;
        }
        return cmocka_run_group_tests(inputs, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_rows_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_overwritten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recompute_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_rows_i64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_rows_i32, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mul_mat_id_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_id_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_rows_back_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ssm_scan_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_graph_cpy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_argsort_provable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_argsort_too_wide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_argsort_overwritten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_layouts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
