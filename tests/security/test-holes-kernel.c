/*
 * Nodes the per-op validator accepts (ggml's constructors allow them) that the CPU backend's
 * kernels abort on, call a NULL type trait for, or overrun a buffer with: ggml-cpu's
 * supports_op says yes to all of them. The host refuses them as "not supported" through the
 * CPU kernel contract (host/kernel-cpu.h) before any kernel runs. End to end, through the
 * extension protocol on the real CPU backend:
 *
 *   test_kernel_mul_src0_strided_ext    the dispatch fuzzer's finding: a MUL whose src0 elements
 *                                       are 2052 bytes apart (binary-ops.cpp GGML_ASSERTs
 *                                       nb00 == sizeof(float)); regress-mul-src0-strided-elements
 *   test_kernel_types_ext               an I8 ADD, an F32 / F16 DIV (binary_op: GGML_ABORT)
 *   test_kernel_copy_rows_ext           a quantizing CPY whose source rows are longer than the
 *                                       destination's (the per-thread scratch rows of the work
 *                                       buffer are sized by the destination's ne0)
 *   test_kernel_count_equal_3d_ext      COUNT_EQUAL over [4,2,3] (its row indexing reads before
 *                                       the sources)
 *   test_kernel_hadamard_ext            MUL_MAT with the Hadamard hint and a 16x8 src0 (writes
 *                                       16 values into result rows of 8)
 *   test_kernel_pool_window_ext         POOL_2D with a 2^31 window (a hang, not a crash)
 *   test_kernel_rope_freq_factors_ext   partial rotary with n_dims/2 freq factors: the CPU
 *                                       reads ne0/2 of them, so the factors need that much room
 *                                       in their buffer; at the buffer's very end: refused
 *   test_kernel_set_rows_alone_ext      SET_ROWS of F16 rows into F32 after a MUL_MAT: its work
 *                                       rows are sized for one thread, so the host computes it
 *                                       in a segment of its own (one thread), and right
 *
 * Each refusal is VGPU_UNSUPPORTED, each control computes, and the context works afterwards.
 * Every case runs in a child process (a re-exec of this binary), so that a host that still
 * aborts fails that test only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sec-common.h"

/* In children: report and return non-zero instead of asserting. */
#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "kernel child: " __VA_ARGS__); \
            fprintf(stderr, " (line %d)\n", __LINE__);     \
            return 1;                                      \
        }                                                  \
    } while (0)

#define BUF 16384u

/* Computes g; VGPU_OK only when it computed with GGML_STATUS_SUCCESS. */
static uint32_t run(struct apir_harness *h, struct sec_graph *g)
{
    uint32_t result = 99;
    int32_t status = -99;
    uint32_t r = sec_ext_graph(h, g, 0, &result, &status);
    if (r == VGPU_OK && (result != VGPU_GRAPH_COMPUTED || status != GGML_STATUS_SUCCESS))
        return VGPU_BACKEND;
    return r;
}

static void put_f32(uint8_t *mem, uint64_t off, int n, float v)
{
    for (int i = 0; i < n; i++)
        memcpy(mem + off + 4 * (uint64_t)i, &v, 4);
}

/* A wire tensor with explicit strides. */
static struct vgpu_wire_tensor strided(uint32_t type, const int64_t ne[4], const uint64_t nb[4], uint64_t buf,
                                       uint64_t off)
{
    struct vgpu_wire_tensor w = sec_wire(type, ne[0], ne[1], ne[2], ne[3], buf, off);
    memcpy(w.nb, nb, sizeof(w.nb));
    return w;
}

/* Builds and runs a one-node graph of `op` over two sources and expects `expect`. */
static int one_node(struct apir_harness *h, uint32_t op, struct vgpu_wire_tensor a, struct vgpu_wire_tensor b,
                    struct vgpu_wire_tensor d, uint32_t expect, const char *what)
{
    struct sec_graph g;
    sec_graph_init(&g, 3);
    uint32_t ia = g_add(&g, a), ib = g_add(&g, b);
    g_op(&g, d, op, (int32_t)ia, (int32_t)ib, -1);
    uint32_t r = run(h, &g);
    sec_graph_free(&g);
    CHECK(r == expect, "%s: answered %u (%s), expected %u (%s)", what, r, vgpu_status_name(r), expect,
          vgpu_status_name(expect));
    return 0;
}

/* ===== the fuzz finding ============================================================================ */

static int child_mul_src0_strided_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, BUF / 4, 1.0f);
    /* src0 F32 [4, 2]: elements 2052 bytes apart, rows 16 bytes apart (extent 6172 bytes). */
    const int64_t ne[4] = { 4, 2, 1, 1 };
    const uint64_t bad[4] = { 2052, 16, 32, 32 }, good[4] = { 4, 16, 32, 32 };
    struct vgpu_wire_tensor b = sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, 8192);
    struct vgpu_wire_tensor d = sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, 8256);
    if (one_node(h, GGML_OP_MUL, strided(GGML_TYPE_F32, ne, bad, buf, 0), b, d, VGPU_UNSUPPORTED,
                 "MUL, src0 nb0 2052") ||
        one_node(h, GGML_OP_MUL, strided(GGML_TYPE_F32, ne, good, buf, 0), b, d, VGPU_OK, "MUL, src0 nb0 4"))
        return 1;
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== types ======================================================================================= */

static int child_types_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    memset(mem, 0, BUF);
    struct vgpu_wire_tensor i8a = sec_wire(GGML_TYPE_I8, 16, 2, 1, 1, buf, 0);
    struct vgpu_wire_tensor i8b = sec_wire(GGML_TYPE_I8, 16, 2, 1, 1, buf, 64);
    struct vgpu_wire_tensor i8d = sec_wire(GGML_TYPE_I8, 16, 2, 1, 1, buf, 128);
    struct vgpu_wire_tensor fa = sec_wire(GGML_TYPE_F32, 16, 2, 1, 1, buf, 256);
    struct vgpu_wire_tensor hb = sec_wire(GGML_TYPE_F16, 16, 2, 1, 1, buf, 512);
    struct vgpu_wire_tensor fb = sec_wire(GGML_TYPE_F32, 16, 2, 1, 1, buf, 640);
    struct vgpu_wire_tensor fd = sec_wire(GGML_TYPE_F32, 16, 2, 1, 1, buf, 1024);
    put_f32(mem, 640, 32, 2.0f);
    if (one_node(h, GGML_OP_ADD, i8a, i8b, i8d, VGPU_UNSUPPORTED, "ADD I8") ||
        one_node(h, GGML_OP_DIV, fa, hb, fd, VGPU_UNSUPPORTED, "DIV F32 / F16") ||
        one_node(h, GGML_OP_DIV, fa, fb, fd, VGPU_OK, "DIV F32 / F32"))
        return 1;
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== a quantizing copy ============================================================================ */

static int child_copy_rows_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, 1024, 0.5f);
    /* F32 [1024, 2] into Q4_0 [512, 4] (same element count, shorter rows) or [1024, 2]. */
    struct vgpu_wire_tensor src = sec_wire(GGML_TYPE_F32, 1024, 2, 1, 1, buf, 0);
    struct vgpu_wire_tensor q_short = sec_wire(GGML_TYPE_Q4_0, 512, 4, 1, 1, buf, 8192);
    struct vgpu_wire_tensor q_same = sec_wire(GGML_TYPE_Q4_0, 1024, 2, 1, 1, buf, 8192);
    if (one_node(h, GGML_OP_CPY, src, q_short, q_short, VGPU_UNSUPPORTED, "CPY F32 [1024,2] -> Q4_0 [512,4]") ||
        one_node(h, GGML_OP_CPY, src, q_same, q_same, VGPU_OK, "CPY F32 [1024,2] -> Q4_0 [1024,2]"))
        return 1;
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== COUNT_EQUAL ================================================================================== */

static int child_count_equal_3d_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    memset(mem, 0, BUF);
    struct vgpu_wire_tensor a3 = sec_wire(GGML_TYPE_I32, 4, 2, 3, 1, buf, 0);
    struct vgpu_wire_tensor b3 = sec_wire(GGML_TYPE_I32, 4, 2, 3, 1, buf, 128);
    struct vgpu_wire_tensor a2 = sec_wire(GGML_TYPE_I32, 4, 6, 1, 1, buf, 0);
    struct vgpu_wire_tensor b2 = sec_wire(GGML_TYPE_I32, 4, 6, 1, 1, buf, 128);
    struct vgpu_wire_tensor d = sec_wire(GGML_TYPE_I64, 1, 1, 1, 1, buf, BUF - 8);
    if (one_node(h, GGML_OP_COUNT_EQUAL, a3, b3, d, VGPU_UNSUPPORTED, "COUNT_EQUAL [4,2,3]") ||
        one_node(h, GGML_OP_COUNT_EQUAL, a2, b2, d, VGPU_OK, "COUNT_EQUAL [4,6]"))
        return 1;
    int64_t n;
    memcpy(&n, mem + BUF - 8, 8);
    CHECK(n == 24, "COUNT_EQUAL counted %lld of 24", (long long)n);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== the Hadamard hint ============================================================================ */

static int hadamard(struct apir_harness *h, uint64_t buf, int64_t rows, uint32_t expect, const char *what)
{
    struct sec_graph g;
    sec_graph_init(&g, 3);
    uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 16, rows, 1, 1, buf, 0));
    uint32_t b = g_add(&g, sec_wire(GGML_TYPE_F32, 16, 2, 1, 1, buf, 2048));
    struct vgpu_wire_tensor d = sec_wire(GGML_TYPE_F32, rows, 2, 1, 1, buf, BUF - 8 * (uint64_t)rows);
    d.op_params[1] = GGML_HINT_SRC0_IS_HADAMARD;
    g_op(&g, d, GGML_OP_MUL_MAT, (int32_t)a, (int32_t)b, -1);
    uint32_t r = run(h, &g);
    sec_graph_free(&g);
    CHECK(r == expect, "%s: answered %u (%s), expected %u", what, r, vgpu_status_name(r), expect);
    return 0;
}

static int child_hadamard_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, BUF / 4, 1.0f);
    /* The result ends at the buffer's end, before a guard page: rows of 16 written into a
     * [8, 2] result would run 32 bytes past it. */
    if (hadamard(h, buf, 8, VGPU_UNSUPPORTED, "Hadamard, src0 16x8") ||
        hadamard(h, buf, 16, VGPU_OK, "Hadamard, src0 16x16"))
        return 1;
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== a pooling window of 2^31 ======================================================================== */

static int child_pool_window_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    put_f32(mem, 0, 300, 1.0f);
    const int32_t k0[] = { INT32_MAX, 3 };
    for (int i = 0; i < 2; i++) {
        struct sec_graph g;
        sec_graph_init(&g, 2);
        uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 10, 10, 3, 1, buf, 0));
        struct vgpu_wire_tensor d = sec_wire(GGML_TYPE_F32, 8, 8, 3, 1, buf, 4096);
        const int32_t p[7] = { GGML_OP_POOL_AVG, k0[i], 3, 1, 1, 0, 0 };
        memcpy(d.op_params, p, sizeof(p));
        g_op(&g, d, GGML_OP_POOL_2D, (int32_t)a, -1, -1);
        uint32_t r = run(h, &g);
        sec_graph_free(&g);
        uint32_t expect = i == 0 ? VGPU_UNSUPPORTED : VGPU_OK;
        CHECK(r == expect, "POOL_2D window %d: answered %u (%s), expected %u", k0[i], r, vgpu_status_name(r),
              expect);
    }
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== RoPE freq factors ================================================================================ */

/* ROPE NORMAL of x F32 [128, 2, 3] (64 of 128 dims), positions I32 [3], 32 freq factors at
 * byte `ff` of the buffer. */
static int rope(struct apir_harness *h, uint64_t buf, uint64_t ff, uint32_t expect, const char *what)
{
    struct sec_graph g;
    sec_graph_init(&g, 4);
    uint32_t x = g_add(&g, sec_wire(GGML_TYPE_F32, 128, 2, 3, 1, buf, 0));
    uint32_t pos = g_add(&g, sec_wire(GGML_TYPE_I32, 3, 1, 1, 1, buf, 4096));
    uint32_t f = g_add(&g, sec_wire(GGML_TYPE_F32, 32, 1, 1, 1, buf, ff));
    struct vgpu_wire_tensor d = sec_wire(GGML_TYPE_F32, 128, 2, 3, 1, buf, 8192);
    float base = 10000.0f, one = 1.0f, zero = 0.0f, bf = 32.0f;
    d.op_params[1] = 64;   /* n_dims */
    d.op_params[4] = 4096; /* n_ctx_orig */
    memcpy(&d.op_params[5], &base, 4);
    memcpy(&d.op_params[6], &one, 4);
    memcpy(&d.op_params[7], &zero, 4);
    memcpy(&d.op_params[8], &one, 4);
    memcpy(&d.op_params[9], &bf, 4);
    memcpy(&d.op_params[10], &one, 4);
    g_op(&g, d, GGML_OP_ROPE, (int32_t)x, (int32_t)pos, (int32_t)f);
    uint32_t r = run(h, &g);
    sec_graph_free(&g);
    CHECK(r == expect, "%s: answered %u (%s), expected %u", what, r, vgpu_status_name(r), expect);
    return 0;
}

static int child_rope_freq_factors_ext(void)
{
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, BUF, &mem);
    memset(mem, 0, BUF);
    put_f32(mem, 0, 768, 1.0f);
    put_f32(mem, BUF - 128, 32, 1.0f);
    put_f32(mem, 6144, 64, 1.0f);
    /* The CPU reads 64 factors: from the last 128 bytes of the buffer that is 128 bytes into
     * the guard page; with room after them it is harmless (the extra values are unused). */
    if (rope(h, buf, BUF - 128, VGPU_UNSUPPORTED, "ROPE, freq factors at the buffer's end") ||
        rope(h, buf, 6144, VGPU_OK, "ROPE, freq factors with room after them"))
        return 1;
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== SET_ROWS computed alone ============================================================================ */

static int child_set_rows_alone_ext(void)
{
    static const char *const cfg[] = { VGPU_CFG_LOG_LEVEL, "debug", NULL };
    struct apir_harness *h = sec_open_cfg(true, cfg);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 10, 2 * BUF, &mem);
    memset(mem, 0, 2 * BUF);
    put_f32(mem, 0, 2048, 1.0f); /* MUL_MAT sources */
    for (int i = 0; i < 3 * 256; i++) {
        const uint16_t half = 0x3800; /* 0.5 */
        memcpy(mem + 8448 + 2 * i, &half, 2);
    }
    const int64_t rows[3] = { 5, 0, 7 };
    memcpy(mem + 10240, rows, sizeof(rows));
    struct sec_graph g;
    sec_graph_init(&g, 8);
    /* MUL_MAT F32 [256, 4] x [256, 4]: many tasks, so the graph runs on every thread. */
    uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 256, 4, 1, 1, buf, 0));
    uint32_t b = g_add(&g, sec_wire(GGML_TYPE_F32, 256, 4, 1, 1, buf, 4096));
    g_op(&g, sec_wire(GGML_TYPE_F32, 4, 4, 1, 1, buf, 8192), GGML_OP_MUL_MAT, (int32_t)a, (int32_t)b, -1);
    /* SET_ROWS: F16 values [256, 3], I64 rows [3], into F32 [256, 8] (the node is that tensor). */
    uint32_t v = g_add(&g, sec_wire(GGML_TYPE_F16, 256, 3, 1, 1, buf, 8448));
    uint32_t r = g_add(&g, sec_wire(GGML_TYPE_I64, 3, 1, 1, 1, buf, 10240));
    uint32_t d = g_add(&g, sec_wire(GGML_TYPE_F32, 256, 8, 1, 1, buf, 2 * BUF - 8192));
    g_op(&g, sec_wire(GGML_TYPE_F32, 256, 8, 1, 1, buf, 2 * BUF - 8192), GGML_OP_SET_ROWS, (int32_t)v, (int32_t)r,
         (int32_t)d);
    sec_stderr_begin();
    uint32_t code = run(h, &g);
    char *log = sec_stderr_end();
    sec_graph_free(&g);
    CHECK(code == VGPU_OK, "answered %u (%s)", code, vgpu_status_name(code));
    CHECK(strstr(log, "1 segment boundaries") != NULL, "SET_ROWS not in a segment of its own: %s", log);
    free(log);
    for (int row = 0; row < 8; row++) {
        float x;
        memcpy(&x, mem + 2 * BUF - 8192 + 1024 * (uint64_t)row + 4 * 255, 4);
        float expect = row == 5 || row == 0 || row == 7 ? 0.5f : 0.0f;
        CHECK(x == expect, "row %d holds %g, expected %g", row, (double)x, (double)expect);
    }
    float m;
    memcpy(&m, mem + 8192, 4);
    CHECK(m == 256.0f, "MUL_MAT gave %g", (double)m);
    sec_check_alive(h, true);
    sec_close(h);
    return 0;
}

/* ===== the tests ========================================================================================== */

#define CHILD_TEST(fn, name)                    \
    static void fn(void **state)                \
    {                                           \
        (void)state;                            \
        sec_expect_child_ok(name, 120);         \
    }

CHILD_TEST(test_kernel_mul_src0_strided_ext, "mul-src0-strided-ext")
CHILD_TEST(test_kernel_types_ext, "types-ext")
CHILD_TEST(test_kernel_copy_rows_ext, "copy-rows-ext")
CHILD_TEST(test_kernel_count_equal_3d_ext, "count-equal-3d-ext")
CHILD_TEST(test_kernel_hadamard_ext, "hadamard-ext")
CHILD_TEST(test_kernel_pool_window_ext, "pool-window-ext")
CHILD_TEST(test_kernel_rope_freq_factors_ext, "rope-freq-factors-ext")
CHILD_TEST(test_kernel_set_rows_alone_ext, "set-rows-alone-ext")

int main(void)
{
    static const struct sec_child children[] = {
        { "mul-src0-strided-ext", child_mul_src0_strided_ext },
        { "types-ext", child_types_ext },
        { "copy-rows-ext", child_copy_rows_ext },
        { "count-equal-3d-ext", child_count_equal_3d_ext },
        { "hadamard-ext", child_hadamard_ext },
        { "pool-window-ext", child_pool_window_ext },
        { "rope-freq-factors-ext", child_rope_freq_factors_ext },
        { "set-rows-alone-ext", child_set_rows_alone_ext },
    };
    int rc = sec_child_main(children, sizeof(children) / sizeof(children[0]));
    if (rc >= 0)
        return rc;
    sec_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_mul_src0_strided_ext),
        cmocka_unit_test(test_kernel_types_ext),
        cmocka_unit_test(test_kernel_copy_rows_ext),
        cmocka_unit_test(test_kernel_count_equal_3d_ext),
        cmocka_unit_test(test_kernel_hadamard_ext),
        cmocka_unit_test(test_kernel_pool_window_ext),
        cmocka_unit_test(test_kernel_rope_freq_factors_ext),
        cmocka_unit_test(test_kernel_set_rows_alone_ext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
