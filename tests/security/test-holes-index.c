/*
 * Data-dependent indices: the VALUES of index tensors (row numbers, expert ids) that no static
 * check can see (host/index-guard.h). The CPU kernels GGML_ASSERT some of them (GET_ROWS,
 * SET_ROWS, ADD_ID: an abort of the host), only assert() others (MUL_MAT_ID: a heap write
 * with NDEBUG) or check nothing (GET_ROWS_BACK: an out-of-bounds write).
 *
 * Every case expects VGPU_INVALID for an out-of-range value, with nothing written outside the
 * tensors (destinations sit at the end of zero-copy buffers followed by a guard page), and the
 * context usable afterwards. Each runs in a child process (a re-exec of this binary), so that
 * a host that still aborts or faults fails that test only.
 *
 *   test_index_get_rows_out_of_range_{baseline,ext}
 *   test_index_set_rows_out_of_range_{baseline,ext}
 *   test_index_get_rows_back_out_of_range_ext
 *   test_index_mul_mat_id_out_of_range_ext
 *   test_index_add_id_out_of_range_ext
 *   test_index_changed_between_recomputes_ext     a cached graph recomputed with new inputs
 *   test_index_written_by_graph_ext               indices produced inside the graph (CPY to
 *                                                 I32 from guest floats; ARGSORT as a control)
 *   test_index_toctou_zero_copy_ext               the guest flips a shared index during computes
 *   test_index_toctou_changed_after_check_ext     the guest rewrites a shared index after the
 *                                                 check and before the consumer reads it
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sec-common.h"

/* In children: report and return non-zero instead of asserting. */
#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "index child: " __VA_ARGS__);  \
            fprintf(stderr, " (line %d)\n", __LINE__);     \
            return 1;                                      \
        }                                                  \
    } while (0)

#define BUF 4096u

static void put_f32(uint8_t *mem, uint64_t off, int n, float base)
{
    for (int i = 0; i < n; i++) {
        float v = base + (float)i;
        memcpy(mem + off + 4 * (uint64_t)i, &v, 4);
    }
}

static float get_f32(const uint8_t *mem, uint64_t off)
{
    float v;
    memcpy(&v, mem + off, 4);
    return v;
}

static void put_i32(uint8_t *mem, uint64_t off, const int32_t *v, int n)
{
    memcpy(mem + off, v, 4 * (size_t)n);
}

/* Computes g; returns the handler code (status must be SUCCESS when OK). */
static uint32_t run(struct apir_harness *h, struct sec_graph *g, uint64_t uid)
{
    uint32_t result = 99;
    int32_t status = -99;
    uint32_t r = sec_ext_graph(h, g, uid, &result, &status);
    if (r == VGPU_OK && (result != VGPU_GRAPH_COMPUTED || status != GGML_STATUS_SUCCESS))
        fprintf(stderr, "index child: computed with result %u status %d\n", result, status);
    return r;
}

/* ===== GET_ROWS ===================================================================================== */

/* src0 F32 [4, 3] at 0, rows I32 [2] at 256, dst F32 [4, 2] at the end of the buffer. */
#define GR_DST (BUF - 32)

static int child_get_rows_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, 12, 1.0f);
    const int32_t good[2] = { 2, 0 };
    const int32_t bad[][2] = { { 1, 3 }, { -1, 0 }, { 0, INT32_MAX }, { INT32_MIN, 1 }, { 3, 3 } };
    struct sec_graph g;
    sec_graph_init(&g, 3);
    uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, 0));
    uint32_t b = g_add(&g, sec_wire(GGML_TYPE_I32, 2, 1, 1, 1, buf, 256));
    g_op(&g, sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, GR_DST), GGML_OP_GET_ROWS, (int32_t)a, (int32_t)b, -1);
    put_i32(mem, 256, good, 2);
    CHECK(run(h, &g, 0) == VGPU_OK, "valid rows refused");
    CHECK(get_f32(mem, GR_DST) == 9.0f && get_f32(mem, GR_DST + 16) == 1.0f, "wrong rows");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(mem + GR_DST, 0x5A, 32);
        put_i32(mem, 256, bad[i], 2);
        uint32_t r = run(h, &g, 0);
        CHECK(r == VGPU_INVALID, "rows {%d, %d} of 3: answered %u (%s), expected INVALID", bad[i][0], bad[i][1], r,
              vgpu_status_name(r));
        /* The consumer did not run: its result is untouched. */
        for (int k = 0; k < 32; k++)
            CHECK(mem[GR_DST + k] == 0x5A, "rows {%d, %d}: the result was written", bad[i][0], bad[i][1]);
    }
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

static int child_get_rows_baseline(void)
{
    struct apir_harness *h = sec_open(false);
    uint8_t *res = apir_harness_res_create(h, 3, 4096);
    CHECK(res != NULL, "resource");
    uint64_t buf = sec_bl_alloc_ok(h, BUF);
    struct vgpu_rpc_tensor a = sec_rpc(0x10, GGML_TYPE_F32, buf, 4, 3, 0);
    struct vgpu_rpc_tensor b = sec_rpc(0x20, GGML_TYPE_I32, buf, 2, 1, 256);
    struct vgpu_rpc_tensor c = sec_rpc(0x30, GGML_TYPE_F32, buf, 4, 2, GR_DST);
    c.op = GGML_OP_GET_ROWS;
    c.src[0] = a.id;
    c.src[1] = b.id;
    c.flags = GGML_TENSOR_FLAG_COMPUTE;
    put_f32(res, 0, 12, 1.0f);
    CHECK(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &a, 3, 0, 48) == VGPU_OK, "set a");
    const int32_t rows[][2] = { { 2, 0 }, { 1, 3 }, { -1, 0 }, { 0, INT32_MAX } };
    struct vgpu_rpc_tensor t[3] = { a, b, c };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        put_i32(res, 0, rows[i], 2);
        CHECK(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &b, 3, 0, 8) == VGPU_OK, "set rows");
        int32_t status = -1;
        uint32_t r = sec_bl_graph(h, 30, 4096, &c.id, 1, t, 3, 0, &status);
        uint32_t expect = i == 0 ? VGPU_OK : VGPU_INVALID;
        CHECK(r == expect, "rows {%d, %d}: answered %u (%s), expected %u", rows[i][0], rows[i][1], r,
              vgpu_status_name(r), expect);
    }
    sec_check_alive(h, false);
    sec_close(h);
    return 0;
}

/* ===== SET_ROWS ===================================================================================== */

/* values F32 [4, 2] at 0, rows at 256, destination F32 [4, 3] at the end of the buffer. */
#define SR_DST (BUF - 48)

static int set_rows_ext(uint32_t idx_type)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, 8, 100.0f);
    struct sec_graph g;
    sec_graph_init(&g, 4);
    uint32_t vb = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, 0));
    uint32_t rc = g_add(&g, sec_wire(idx_type, 2, 1, 1, 1, buf, 256));
    struct vgpu_wire_tensor dst = sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, SR_DST);
    uint32_t da = g_add(&g, dst);
    dst.view_src = da + 1;
    g_op(&g, dst, GGML_OP_SET_ROWS, (int32_t)vb, (int32_t)rc, (int32_t)da);
    const int64_t rows[][2] = { { 2, 0 }, { 0, 3 }, { -1, 1 }, { 1ll << 40, 0 }, { 1, INT64_MIN } };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (idx_type == GGML_TYPE_I32 && (rows[i][0] != (int32_t)rows[i][0] || rows[i][1] != (int32_t)rows[i][1]))
            continue;
        if (idx_type == GGML_TYPE_I64) {
            memcpy(mem + 256, rows[i], 16);
        } else {
            int32_t r32[2] = { (int32_t)rows[i][0], (int32_t)rows[i][1] };
            put_i32(mem, 256, r32, 2);
        }
        memset(mem + SR_DST, 0x5A, 48);
        uint32_t r = run(h, &g, 0);
        if (i == 0) {
            CHECK(r == VGPU_OK, "valid rows refused (%u)", r);
            CHECK(get_f32(mem, SR_DST + 32) == 100.0f && get_f32(mem, SR_DST) == 104.0f, "wrong rows written");
            continue;
        }
        CHECK(r == VGPU_INVALID, "%s rows {%lld, %lld} of 3: answered %u (%s), expected INVALID",
              idx_type == GGML_TYPE_I64 ? "I64" : "I32", (long long)rows[i][0], (long long)rows[i][1], r,
              vgpu_status_name(r));
        for (int k = 0; k < 48; k++)
            CHECK(mem[SR_DST + k] == 0x5A, "rows {%lld, %lld}: the destination was written", (long long)rows[i][0],
                  (long long)rows[i][1]);
    }
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

static int child_set_rows_ext(void)
{
    int rc = set_rows_ext(GGML_TYPE_I64);
    return rc ? rc : set_rows_ext(GGML_TYPE_I32);
}

static int child_set_rows_baseline(void)
{
    struct apir_harness *h = sec_open(false);
    uint8_t *res = apir_harness_res_create(h, 3, 4096);
    CHECK(res != NULL, "resource");
    uint64_t buf = sec_bl_alloc_ok(h, BUF);
    struct vgpu_rpc_tensor b = sec_rpc(0x10, GGML_TYPE_F32, buf, 4, 2, 0);
    struct vgpu_rpc_tensor c = sec_rpc(0x20, GGML_TYPE_I64, buf, 2, 1, 256);
    struct vgpu_rpc_tensor a = sec_rpc(0x30, GGML_TYPE_F32, buf, 4, 3, SR_DST);
    struct vgpu_rpc_tensor r = a;
    r.id = 0x40;
    r.op = GGML_OP_SET_ROWS;
    r.src[0] = b.id;
    r.src[1] = c.id;
    r.src[2] = a.id;
    r.view_src = a.id;
    r.flags = GGML_TENSOR_FLAG_COMPUTE;
    const int64_t rows[][2] = { { 2, 0 }, { 0, 3 }, { -1, 1 }, { 1ll << 40, 0 } };
    struct vgpu_rpc_tensor t[4] = { b, c, a, r };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        memcpy(res, rows[i], 16);
        CHECK(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &c, 3, 0, 16) == VGPU_OK, "set rows");
        uint32_t code = sec_bl_graph(h, 30, 4096, &r.id, 1, t, 4, 0, NULL);
        uint32_t expect = i == 0 ? VGPU_OK : VGPU_INVALID;
        CHECK(code == expect, "rows {%lld, %lld}: answered %u (%s), expected %u", (long long)rows[i][0],
              (long long)rows[i][1], code, vgpu_status_name(code), expect);
    }
    sec_check_alive(h, false);
    sec_close(h);
    return 0;
}

/* ===== GET_ROWS_BACK, MUL_MAT_ID, ADD_ID =============================================================== */

static int child_get_rows_back_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, 8, 1.0f);
    struct sec_graph g;
    sec_graph_init(&g, 4);
    uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, 0));   /* gradient rows */
    uint32_t b = g_add(&g, sec_wire(GGML_TYPE_I32, 2, 1, 1, 1, buf, 256)); /* their row numbers */
    /* ggml_get_rows_back(a, b, c) takes only c's shape: the result [4, 3] (3 rows). */
    g_op(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, SR_DST), GGML_OP_GET_ROWS_BACK, (int32_t)a, (int32_t)b, -1);
    const int32_t rows[][2] = { { 2, 0 }, { 0, 3 }, { -1, 0 }, { 0, 1 << 24 } };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        put_i32(mem, 256, rows[i], 2);
        uint32_t r = run(h, &g, 0);
        uint32_t expect = i == 0 ? VGPU_OK : VGPU_INVALID;
        CHECK(r == expect, "rows {%d, %d} of 3: answered %u (%s), expected %u", rows[i][0], rows[i][1], r,
              vgpu_status_name(r), expect);
    }
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

static int child_mul_mat_id_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, 16, 1.0f);  /* 2 experts of [4 x 2] */
    put_f32(mem, 128, 4, 0.5f); /* b [4, 1, 1] */
    struct sec_graph g;
    sec_graph_init(&g, 4);
    uint32_t as = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 2, 2, 1, buf, 0));
    uint32_t b = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 128));
    uint32_t ids = g_add(&g, sec_wire(GGML_TYPE_I32, 1, 1, 1, 1, buf, 256));
    g_op(&g, sec_wire(GGML_TYPE_F32, 2, 1, 1, 1, buf, BUF - 8), GGML_OP_MUL_MAT_ID, (int32_t)as, (int32_t)b,
         (int32_t)ids);
    const int32_t experts[] = { 1, 2, -1, 1 << 20, INT32_MIN };
    for (size_t i = 0; i < sizeof(experts) / sizeof(experts[0]); i++) {
        put_i32(mem, 256, &experts[i], 1);
        uint32_t r = run(h, &g, 0);
        uint32_t expect = i == 0 ? VGPU_OK : VGPU_INVALID;
        CHECK(r == expect, "expert %d of 2: answered %u (%s), expected %u", experts[i], r, vgpu_status_name(r),
              expect);
    }
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

static int child_add_id_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, 8, 1.0f);    /* a [4, 2, 1] */
    put_f32(mem, 64, 12, 10.0f); /* b [4, 3]: 3 biases */
    struct sec_graph g;
    sec_graph_init(&g, 4);
    uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, 0));
    uint32_t b = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, 64));
    uint32_t ids = g_add(&g, sec_wire(GGML_TYPE_I32, 2, 1, 1, 1, buf, 256));
    g_op(&g, sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, BUF - 32), GGML_OP_ADD_ID, (int32_t)a, (int32_t)b,
         (int32_t)ids);
    const int32_t sel[][2] = { { 2, 0 }, { 0, 3 }, { -1, 0 }, { 1 << 30, 1 } };
    for (size_t i = 0; i < sizeof(sel) / sizeof(sel[0]); i++) {
        put_i32(mem, 256, sel[i], 2);
        uint32_t r = run(h, &g, 0);
        uint32_t expect = i == 0 ? VGPU_OK : VGPU_INVALID;
        CHECK(r == expect, "ids {%d, %d} of 3: answered %u (%s), expected %u", sel[i][0], sel[i][1], r,
              vgpu_status_name(r), expect);
    }
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== inputs that change between recomputes of a cached graph ======================================= */

static int child_recompute_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, 12, 1.0f);
    struct sec_graph g;
    sec_graph_init(&g, 3);
    uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, 0));
    uint32_t b = g_add(&g, sec_wire(GGML_TYPE_I32, 2, 1, 1, 1, buf, 256));
    g_op(&g, sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, GR_DST), GGML_OP_GET_ROWS, (int32_t)a, (int32_t)b, -1);
    const int32_t good[2] = { 1, 2 }, bad[2] = { 1, 3 };
    put_i32(mem, 256, good, 2);
    CHECK(run(h, &g, 900) == VGPU_OK, "first compute");
    for (int i = 0; i < 3; i++) {
        uint32_t result = 99;
        put_i32(mem, 256, bad, 2);
        uint32_t r = sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL, 0, 900, 0, &result, NULL);
        CHECK(r == VGPU_INVALID, "recompute with row 3 of 3: answered %u (%s) result %u", r, vgpu_status_name(r),
              result);
        put_i32(mem, 256, good, 2);
        r = sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL, 0, 900, 0, &result, NULL);
        CHECK(r == VGPU_OK && (result == VGPU_GRAPH_COMPUTED || result == VGPU_GRAPH_NOT_CACHED),
              "recompute with good rows: %u", r);
        if (result == VGPU_GRAPH_NOT_CACHED)
            CHECK(run(h, &g, 900) == VGPU_OK, "re-send");
    }
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== indices written inside the graph ================================================================ */

static int child_written_by_graph_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, 12, 1.0f); /* src0 [4, 3] */
    /* Floats from the guest, cast to I32 inside the graph, used as row numbers. */
    const float rowsf[][2] = { { 2.0f, 1.0f }, { 1.0f, 7.0f }, { -1.0f, 0.0f } };
    for (size_t i = 0; i < sizeof(rowsf) / sizeof(rowsf[0]); i++) {
        memcpy(mem + 128, rowsf[i], 8);
        struct sec_graph g;
        sec_graph_init(&g, 5);
        uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, 0));
        uint32_t xf = g_add(&g, sec_wire(GGML_TYPE_F32, 2, 1, 1, 1, buf, 128));
        uint32_t xi_dst = g_add(&g, sec_wire(GGML_TYPE_I32, 2, 1, 1, 1, buf, 256));
        struct vgpu_wire_tensor cp = sec_wire(GGML_TYPE_I32, 2, 1, 1, 1, buf, 256);
        cp.view_src = xi_dst + 1;
        uint32_t xi = g_op(&g, cp, GGML_OP_CPY, (int32_t)xf, (int32_t)xi_dst, -1);
        g_op(&g, sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, GR_DST), GGML_OP_GET_ROWS, (int32_t)a, (int32_t)xi, -1);
        uint32_t r = run(h, &g, 0);
        sec_graph_free(&g);
        if (r == VGPU_UNSUPPORTED) {
            fprintf(stderr, "index child: CPY F32 -> I32 is not supported by this backend; case skipped\n");
            break;
        }
        uint32_t expect = i == 0 ? VGPU_OK : VGPU_INVALID;
        CHECK(r == expect, "rows {%g, %g} via CPY: answered %u (%s), expected %u", (double)rowsf[i][0],
              (double)rowsf[i][1], r, vgpu_status_name(r), expect);
        if (i == 0)
            CHECK(get_f32(mem, GR_DST) == 9.0f && get_f32(mem, GR_DST + 16) == 5.0f, "wrong rows");
    }
    /* Control: ARGSORT's result is always in range (no run-time check needed): it computes. */
    put_f32(mem, 128, 3, 0.0f);
    float sc[3] = { 3.0f, -1.0f, 2.0f };
    memcpy(mem + 128, sc, 12);
    struct sec_graph g;
    sec_graph_init(&g, 4);
    uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, 0));
    uint32_t s = g_add(&g, sec_wire(GGML_TYPE_F32, 3, 1, 1, 1, buf, 128));
    struct vgpu_wire_tensor as = sec_wire(GGML_TYPE_I32, 3, 1, 1, 1, buf, 256);
    as.op_params[0] = GGML_SORT_ORDER_ASC;
    uint32_t idx = g_op(&g, as, GGML_OP_ARGSORT, (int32_t)s, -1, -1);
    g_op(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, BUF - 48), GGML_OP_GET_ROWS, (int32_t)a, (int32_t)idx, -1);
    uint32_t r = run(h, &g, 0);
    CHECK(r == VGPU_OK, "argsort -> get_rows: answered %u (%s)", r, vgpu_status_name(r));
    CHECK(get_f32(mem, BUF - 48) == 5.0f && get_f32(mem, BUF - 32) == 9.0f && get_f32(mem, BUF - 16) == 1.0f,
          "argsort -> get_rows: wrong rows");
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== the guest changes a shared index while the host checks and computes ============================== */

struct flip {
    volatile int32_t *p;
    atomic_int        stop;
};

static void *flip_main(void *arg)
{
    struct flip *f = arg;
    while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
        *f->p = 1 << 28;
        *f->p = 0;
    }
    return NULL;
}

static int child_toctou_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, 12, 1.0f);
    struct sec_graph g;
    sec_graph_init(&g, 3);
    uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, 0));
    uint32_t b = g_add(&g, sec_wire(GGML_TYPE_I32, 1, 1, 1, 1, buf, 256));
    g_op(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, BUF - 16), GGML_OP_GET_ROWS, (int32_t)a, (int32_t)b, -1);
    memset(mem + 256, 0, 4);
    CHECK(run(h, &g, 901) == VGPU_OK, "first compute");
    struct flip f = { (volatile int32_t *)(void *)(mem + 256), 0 };
    pthread_t th;
    CHECK(pthread_create(&th, NULL, flip_main, &f) == 0, "thread");
    int ok = 0, refused = 0, other = 0;
    for (int i = 0; i < 2000; i++) {
        uint32_t result = 99;
        uint32_t r = sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL, 0, 901, 0, &result, NULL);
        if (r == VGPU_OK && result == VGPU_GRAPH_COMPUTED) {
            ok++;
            /* Row 0 is the only valid row number the guest ever writes. */
            if (get_f32(mem, BUF - 16) != 1.0f)
                other++;
        } else if (r == VGPU_INVALID) {
            refused++;
        } else if (r == VGPU_OK && result == VGPU_GRAPH_NOT_CACHED) {
            if (run(h, &g, 901) != VGPU_OK)
                refused++;
        } else {
            atomic_store(&f.stop, 1);
            pthread_join(th, NULL);
            CHECK(0, "iteration %d: answered %u", i, r);
        }
    }
    atomic_store(&f.stop, 1);
    pthread_join(th, NULL);
    fprintf(stderr, "index child: TOCTOU: %d computed, %d refused\n", ok, refused);
    CHECK(other == 0, "%d computes used a row other than 0", other);
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/*
 * The same, made deterministic: the guest rewrites the index only once the host has checked it
 * and started computing, and while the consumer has certainly not read it yet. The graph is a
 * slow MUL_MAT followed by the GET_ROWS consumer (the CPU backend computes nodes in order, with
 * a barrier between them). A writer thread waits until the MUL_MAT's result region (filled
 * with a sentinel) starts to change, which happens after the index check, stores an
 * out-of-range row, and then (after a full fence) still finds part of the MUL_MAT result
 * unwritten: the GET_ROWS has not run yet. The consumer must read the checked private copy
 * (index-guard.h: shadow tensors) and produce row 0; reading the shared bytes instead trips the
 * CPU kernel's GGML_ASSERT (the child dies) or, in other kernels, reads out of bounds. An
 * attempt where the writer came too late proves nothing and is repeated.
 */
#define TW_K 512
#define TW_MAT ((uint64_t)TW_K * TW_K * 4)
#define TW_C (2 * TW_MAT)               /* the MUL_MAT result */
#define TW_T (3 * TW_MAT)               /* GET_ROWS source F32 [4, 3] */
#define TW_IDX (TW_T + 64)              /* its row number, I32 [1] */
#define TW_OUT (TW_T + 128)             /* GET_ROWS result F32 [4, 1] */
#define TW_SIZE (3 * TW_MAT + 4096)

struct tw_writer {
    uint8_t         *mem;
    atomic_int       stop;     /* the compute returned */
    atomic_int       wrote;    /* the bad row was stored after the compute had started */
    atomic_int       in_time;  /* ... and before the MUL_MAT had finished */
};

static bool tw_any(const uint8_t *p, size_t n, bool sentinel)
{
    const volatile uint32_t *w = (const volatile uint32_t *)(const void *)p;
    for (size_t i = 0; i < n / 4; i++) {
        if ((w[i] == 0xFFFFFFFFu) == sentinel)
            return true;
    }
    return false;
}

static void *tw_main(void *arg)
{
    struct tw_writer *tw = arg;
    /* The compute has started (the index check is behind it) once any result word changed. */
    while (!atomic_load(&tw->stop)) {
        if (tw_any(tw->mem + TW_C, TW_MAT, false)) {
            *(volatile int32_t *)(void *)(tw->mem + TW_IDX) = 1 << 28;
            atomic_thread_fence(memory_order_seq_cst);
            atomic_store(&tw->wrote, 1);
            atomic_store(&tw->in_time, tw_any(tw->mem + TW_C, TW_MAT, true));
            break;
        }
    }
    return NULL;
}

static int child_toctou_window_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, TW_SIZE, &mem);
    for (uint64_t i = 0; i < 2 * (uint64_t)TW_K * TW_K; i++) {
        float v = 0.001f * (float)(i % 7);
        memcpy(mem + 4 * i, &v, 4);
    }
    put_f32(mem, TW_T, 12, 1.0f);
    struct sec_graph g;
    sec_graph_init(&g, 5);
    uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, TW_K, TW_K, 1, 1, buf, 0));
    uint32_t b = g_add(&g, sec_wire(GGML_TYPE_F32, TW_K, TW_K, 1, 1, buf, TW_MAT));
    g_op(&g, sec_wire(GGML_TYPE_F32, TW_K, TW_K, 1, 1, buf, TW_C), GGML_OP_MUL_MAT, (int32_t)a, (int32_t)b, -1);
    uint32_t t = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, TW_T));
    uint32_t x = g_add(&g, sec_wire(GGML_TYPE_I32, 1, 1, 1, 1, buf, TW_IDX));
    g_op(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, TW_OUT), GGML_OP_GET_ROWS, (int32_t)t, (int32_t)x, -1);
    int hit = 0, attempts = 0;
    /* Up to 200 attempts: on a loaded 2-core machine most come too late. */
    for (; attempts < 200 && hit < 3; attempts++) {
        memset(mem + TW_C, 0xFF, TW_MAT);
        memset(mem + TW_OUT, 0, 16);
        memset(mem + TW_IDX, 0, 4); /* row 0: valid */
        struct tw_writer tw = { mem, 0, 0, 0 };
        pthread_t th;
        CHECK(pthread_create(&th, NULL, tw_main, &tw) == 0, "thread");
        uint32_t r = run(h, &g, 0);
        atomic_store(&tw.stop, 1);
        pthread_join(th, NULL);
        CHECK(r == VGPU_OK, "attempt %d: answered %u (%s): the check saw the row written after it", attempts, r,
              vgpu_status_name(r));
        CHECK(!tw_any(mem + TW_C, TW_MAT, true), "attempt %d: the MUL_MAT did not complete", attempts);
        /* Whatever the guest wrote, the consumer used the row that was checked: row 0. */
        for (int k = 0; k < 4; k++)
            CHECK(get_f32(mem, TW_OUT + 4 * (uint64_t)k) == 1.0f + (float)k,
                  "attempt %d: GET_ROWS produced %g at %d, not row 0 (wrote %d, in time %d)", attempts,
                  (double)get_f32(mem, TW_OUT + 4 * (uint64_t)k), k, atomic_load(&tw.wrote),
                  atomic_load(&tw.in_time));
        if (atomic_load(&tw.in_time))
            hit++;
    }
    fprintf(stderr, "index child: TOCTOU window: the row changed after the check and before its use in %d of %d "
                    "computes\n", hit, attempts);
    CHECK(hit > 0, "the writer never changed the row inside the window (machine too loaded?)");
    /* The next compute sees the row the guest left (1 << 28) and refuses it. */
    CHECK(run(h, &g, 0) == VGPU_INVALID, "out-of-range row accepted");
    memset(mem + TW_IDX, 0, 4);
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== tests ============================================================================================= */

#define CHILD_TEST(fn, child)                 \
    static void fn(void **state)              \
    {                                         \
        (void)state;                          \
        sec_expect_child_ok(child, 120);      \
    }

CHILD_TEST(test_index_get_rows_out_of_range_baseline, "get-rows-baseline")
CHILD_TEST(test_index_get_rows_out_of_range_ext, "get-rows-ext")
CHILD_TEST(test_index_set_rows_out_of_range_baseline, "set-rows-baseline")
CHILD_TEST(test_index_set_rows_out_of_range_ext, "set-rows-ext")
CHILD_TEST(test_index_get_rows_back_out_of_range_ext, "get-rows-back-ext")
CHILD_TEST(test_index_mul_mat_id_out_of_range_ext, "mul-mat-id-ext")
CHILD_TEST(test_index_add_id_out_of_range_ext, "add-id-ext")
CHILD_TEST(test_index_changed_between_recomputes_ext, "recompute-ext")
CHILD_TEST(test_index_written_by_graph_ext, "written-by-graph-ext")
CHILD_TEST(test_index_toctou_zero_copy_ext, "toctou-ext")
CHILD_TEST(test_index_toctou_changed_after_check_ext, "toctou-window-ext")

int main(void)
{
    static const struct sec_child children[] = {
        { "get-rows-baseline", child_get_rows_baseline },
        { "get-rows-ext", child_get_rows_ext },
        { "set-rows-baseline", child_set_rows_baseline },
        { "set-rows-ext", child_set_rows_ext },
        { "get-rows-back-ext", child_get_rows_back_ext },
        { "mul-mat-id-ext", child_mul_mat_id_ext },
        { "add-id-ext", child_add_id_ext },
        { "recompute-ext", child_recompute_ext },
        { "written-by-graph-ext", child_written_by_graph_ext },
        { "toctou-ext", child_toctou_ext },
        { "toctou-window-ext", child_toctou_window_ext },
    };
    int rc = sec_child_main(children, sizeof(children) / sizeof(children[0]));
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_get_rows_out_of_range_baseline),
        cmocka_unit_test(test_index_get_rows_out_of_range_ext),
        cmocka_unit_test(test_index_set_rows_out_of_range_baseline),
        cmocka_unit_test(test_index_set_rows_out_of_range_ext),
        cmocka_unit_test(test_index_get_rows_back_out_of_range_ext),
        cmocka_unit_test(test_index_mul_mat_id_out_of_range_ext),
        cmocka_unit_test(test_index_add_id_out_of_range_ext),
        cmocka_unit_test(test_index_changed_between_recomputes_ext),
        cmocka_unit_test(test_index_written_by_graph_ext),
        cmocka_unit_test(test_index_toctou_zero_copy_ext),
        cmocka_unit_test(test_index_toctou_changed_after_check_ext),
    };
    sec_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
