/*
 * Repacked weight copies on the CPU host (host/cpu-repack.c), through the library's ABI with
 * the real ggml-cpu backend: which matrices get a copy (the debug log line says so), that a
 * product computed on one is exact, and that the copy follows the guest's bytes after sets,
 * graph writes, a freed and reallocated buffer, and never exceeds the quota.
 *
 * Values are chosen so that every result is exact in float on both the plain and the repacked
 * kernels: Q4_0 weights are integers in [-8, 7] with scale 1, and activations are integers in
 * [-127, 127] with 127 in every 32-value block, so their Q8_0 form has scale 1 too.
 *
 * Needs a CPU with one of ggml-cpu's repacked Q4_0 kernels (AVX2 on x86, NEON on ARM); on
 * another, the cases that expect a copy are skipped with a message, the others still run.
 */
#include <dlfcn.h>
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

#define CTX_ID 4701

enum { K = 256, M = 16, N = 5, QB = 18 /* bytes of a Q4_0 block */ };
#define W_BYTES   ((size_t)M * (K / 32) * QB)
#define OFF_X     0
#define OFF_Y     8192
#define OFF_SRC   16384 /* a Q4_0 matrix in the activations buffer (source of a graph copy) */
#define OFF_W2    4096  /* a second matrix in the weights buffer */

static struct apir_harness *H;
static uint64_t W, A; /* weights buffer, activations buffer */

/* A CPU feature test of the ggml-cpu library the host loads (the same instance: RTLD_NODELETE). */
static bool cpu_has(const char *feature)
{
    void *lib = dlopen(VGPU_DEFAULT_BACKEND_PATH, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    int (*fn)(void) = NULL;
    char sym[64];
    snprintf(sym, sizeof(sym), "ggml_cpu_has_%s", feature);
    if (lib)
        *(void **)&fn = dlsym(lib, sym);
    int has = fn ? fn() : 0;
    if (lib)
        dlclose(lib);
    return has != 0;
}

static bool repack_kernels(void)
{
    return cpu_has("avx2") || cpu_has("neon");
}

static uint64_t alloc(uint64_t size)
{
    uint64_t id = 0;
    assert_int_equal(apir_harness_alloc(H, 0, size, 0, &id, NULL), VGPU_OK);
    return id;
}

static int open_ctx(const char *key, const char *value)
{
    H = apir_harness_open(CTX_ID, NULL);
    if (!H)
        return -1;
    apir_harness_config(H, VGPU_CFG_LOG_LEVEL, "debug");
    if (key)
        apir_harness_config(H, key, value);
    if (apir_harness_init(H) != 0 || apir_harness_hello(H) != VGPU_OK)
        return -1;
    W = alloc(8192);
    A = alloc(32768);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return open_ctx(NULL, NULL);
}

static int teardown(void **state)
{
    (void)state;
    size_t hits = apir_harness_pointer_hits(H);
    apir_harness_close(H);
    H = NULL;
    return hits == 0 ? 0 : -1;
}

/* ---- data ------------------------------------------------------------------------------------------- */

/* Weight (m, k) of matrix `seed`, an integer in [-8, 7]. */
static int w_val(int seed, int m, int k)
{
    return (m * 5 + k * 3 + seed * 7) % 16 - 8;
}

/* Activation (n, k): 127 at the start of every 32-value block, so each block's scale is 1. */
static int x_val(int n, int k)
{
    return k % 32 == 0 ? 127 : (n * 31 + k * 17) % 255 - 127;
}

/* Q4_0 blocks of matrix `seed`: scale 1.0 (F16 0x3C00), nibble q = value + 8. */
static void q4_matrix(int seed, uint8_t out[W_BYTES])
{
    for (int m = 0; m < M; m++) {
        for (int b = 0; b < K / 32; b++) {
            uint8_t *blk = out + ((size_t)m * (K / 32) + b) * QB;
            blk[0] = 0x00;
            blk[1] = 0x3C;
            for (int j = 0; j < 16; j++) {
                int lo = w_val(seed, m, b * 32 + j) + 8, hi = w_val(seed, m, b * 32 + j + 16) + 8;
                blk[2 + j] = (uint8_t)(lo | hi << 4);
            }
        }
    }
}

static void put(uint64_t buf, uint64_t off, const void *data, size_t n)
{
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_I8, (int64_t)n, 1, 1, 1, buf, off);
    assert_int_equal(apir_harness_set(H, &w, 0, data, n), VGPU_OK);
}

static void put_weights(uint64_t buf, uint64_t off, int seed)
{
    uint8_t q[W_BYTES];
    q4_matrix(seed, q);
    put(buf, off, q, sizeof(q));
}

static void put_x(void)
{
    static float x[N * K];
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            x[n * K + k] = (float)x_val(n, k);
    put(A, OFF_X, x, sizeof(x));
}

/* y = mul_mat(the first `rows` rows of weights `seed`, x) must hold exactly the integer products. */
static void check_rows(int seed, int rows, int n_cols)
{
    float y[M * N];
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_F32, rows * n_cols, 1, 1, 1, A, OFF_Y);
    assert_int_equal(apir_harness_get(H, &w, 0, y, (size_t)rows * n_cols * sizeof(float)), VGPU_OK);
    for (int n = 0; n < n_cols; n++) {
        for (int m = 0; m < rows; m++) {
            long s = 0;
            for (int k = 0; k < K; k++)
                s += (long)w_val(seed, m, k) * x_val(n, k);
            if (y[n * rows + m] != (float)s)
                fail_msg("y[%d][%d] = %g, expected %ld (weights %d)", n, m, (double)y[n * rows + m], s, seed);
        }
    }
}

static void check_y(int seed, int n_cols)
{
    check_rows(seed, M, n_cols);
}

/* ---- graphs ------------------------------------------------------------------------------------------ */

struct graph {
    struct vgpu_wire_tensor t[8];
    uint32_t                n;
    uint32_t                nodes[8];
    uint32_t                n_nodes;
};

static uint32_t add(struct graph *g, uint32_t type, int64_t ne0, int64_t ne1, uint64_t buf, uint64_t off)
{
    apir_harness_wire(&g->t[g->n], type, ne0, ne1, 1, 1, buf, off);
    return g->n++;
}

static void node(struct graph *g, uint32_t i, uint32_t op, uint32_t src0, uint32_t src1)
{
    g->t[i].op = op;
    g->t[i].src[0] = 1 + src0;
    g->t[i].src[1] = 1 + src1;
    g->t[i].flags |= GGML_TENSOR_FLAG_COMPUTE;
    g->nodes[g->n_nodes++] = i;
}

/* y = mul_mat(w, x) with w [K, rows] Q4_0 at `off` of buffer `wbuf`, flagged as weights or not. */
static void matmul_graph(struct graph *g, uint64_t wbuf, uint64_t off, int64_t rows, int n_cols, bool flag)
{
    memset(g, 0, sizeof(*g));
    uint32_t w = add(g, GGML_TYPE_Q4_0, K, rows, wbuf, off);
    snprintf(g->t[w].name, sizeof(g->t[w].name), "w");
    if (flag)
        g->t[w].flags |= VGPU_TENSOR_FLAG_WEIGHTS;
    uint32_t x = add(g, GGML_TYPE_F32, K, n_cols, A, OFF_X);
    uint32_t y = add(g, GGML_TYPE_F32, rows, n_cols, A, OFF_Y);
    node(g, y, GGML_OP_MUL_MAT, w, x);
}

/* A CPY node writing the Q4_0 matrix at OFF_SRC of A into [off, +W_BYTES) of buffer W. */
static void add_copy_into_w(struct graph *g, uint64_t off)
{
    uint32_t src = add(g, GGML_TYPE_Q4_0, K, M, A, OFF_SRC);
    uint32_t dst = add(g, GGML_TYPE_Q4_0, K, M, W, off);
    uint32_t c = add(g, GGML_TYPE_Q4_0, K, M, W, off);
    g->t[c].view_src = 1 + dst;
    node(g, c, GGML_OP_CPY, src, dst);
}

static uint32_t compute(const struct graph *g, uint64_t uid)
{
    static uint8_t img[16384];
    size_t n = apir_harness_graph_image(g->t, g->n, g->nodes, g->n_nodes, img, sizeof(img));
    assert_true(n > 0);
    struct vgpu_graph_request q = { 0, 0, uid, 0, 0, n };
    struct vgpu_enc *r = apir_harness_req(H);
    vgpu_enc_graph_request(r, &q);
    vgpu_enc_blob(r, img, n);
    struct vgpu_dec d;
    uint32_t code = apir_harness_send(H, VGPU_CMD_EXT_GRAPH_COMPUTE, &d);
    if (code == VGPU_OK) {
        assert_int_equal(vgpu_dec_u32(&d), VGPU_GRAPH_COMPUTED);
        assert_int_equal(vgpu_dec_i32(&d), GGML_STATUS_SUCCESS);
    }
    return code;
}

/* Computes g (uid) and returns how many copies of 'w' the host made meanwhile (its log says). */
static int compute_counting(const struct graph *g, uint64_t uid)
{
    static char log[65536];
    assert_int_equal(apir_harness_capture_begin(), 0);
    uint32_t code = compute(g, uid);
    assert_int_equal(apir_harness_capture_end(log, sizeof(log)), 0);
    assert_int_equal(code, VGPU_OK);
    int n = 0;
    for (const char *p = log; (p = strstr(p, "repacked 'w'")) != NULL; p++)
        n++;
    return n;
}

#define NEED_KERNELS()                                                                          \
    do {                                                                                       \
        if (!repack_kernels()) {                                                               \
            print_message("skipped: this CPU has no repacked Q4_0 kernel in ggml-cpu\n");      \
            skip();                                                                            \
        }                                                                                      \
    } while (0)

/* ---- tests ------------------------------------------------------------------------------------------- */

/* A flagged matrix gets one copy, made on first use and kept for the cached graph and for a
 * second graph over the same bytes; decode (1 column) and batch (5) products are exact. */
static void test_copy_made_once(void **state)
{
    (void)state;
    NEED_KERNELS();
    struct graph g1, g5;
    put_weights(W, 0, 1);
    put_x();
    matmul_graph(&g1, W, 0, M, 1, true);
    matmul_graph(&g5, W, 0, M, N, true);
    assert_int_equal(compute_counting(&g1, 11), 1);
    check_y(1, 1);
    assert_int_equal(compute_counting(&g1, 11), 0); /* cached graph */
    assert_int_equal(compute_counting(&g5, 12), 0); /* another graph, same matrix */
    check_y(1, N);
}

/* Unflagged, or flagged but with a row count the kernels cannot interleave: no copy, and the
 * product is still exact (the plain kernels). */
static void test_no_copy(void **state)
{
    (void)state;
    struct graph g;
    put_weights(W, 0, 2);
    put_x();
    matmul_graph(&g, W, 0, M, N, false);
    assert_int_equal(compute_counting(&g, 21), 0);
    check_y(2, N);
    /* 12 rows: x86's kernel interleaves 8 (ARM's 4, which 12 suits). */
    matmul_graph(&g, W, 0, 12, N, true);
    int made = compute_counting(&g, 22);
    if (cpu_has("avx2"))
        assert_int_equal(made, 0);
    check_rows(2, 12, N);
}

/* A set into the weights buffer after the copy was made: the next compute sees the new bytes. */
static void test_set_refreshes(void **state)
{
    (void)state;
    NEED_KERNELS();
    struct graph g;
    put_weights(W, 0, 3);
    put_x();
    matmul_graph(&g, W, 0, M, 1, true);
    assert_int_equal(compute_counting(&g, 31), 1);
    check_y(3, 1);
    put_weights(W, 0, 4);
    assert_int_equal(compute_counting(&g, 31), 0); /* same copy, repacked again */
    check_y(4, 1);
    /* A write elsewhere in the same buffer also counts (the host tracks buffers, not ranges). */
    put_weights(W, OFF_W2, 9);
    assert_int_equal(compute_counting(&g, 31), 0);
    check_y(4, 1);
}

/* A graph that writes the weights buffer: its own product reads no copy, and another graph's
 * copy follows what it wrote. */
static void test_graph_writes(void **state)
{
    (void)state;
    NEED_KERNELS();
    struct graph g, w;
    put_weights(W, 0, 5);
    put_x();
    matmul_graph(&g, W, 0, M, 1, true);
    assert_int_equal(compute_counting(&g, 41), 1);
    check_y(5, 1);

    /* w: copies matrix 6 into W at 0, a separate graph. */
    uint8_t q[W_BYTES];
    q4_matrix(6, q);
    put(A, OFF_SRC, q, sizeof(q));
    memset(&w, 0, sizeof(w));
    add_copy_into_w(&w, 0);
    assert_int_equal(compute(&w, 42), VGPU_OK);
    assert_int_equal(compute_counting(&g, 41), 0);
    check_y(6, 1);
}

/* A graph that writes the weights buffer (at OFF_W2) and multiplies with the matrix at 0 reads
 * the guest's bytes, not a copy made before its own writes. */
static void test_graph_writes_own_buffer(void **state)
{
    (void)state;
    NEED_KERNELS();
    uint8_t q[W_BYTES];
    q4_matrix(6, q);
    put(A, OFF_SRC, q, sizeof(q));
    put_weights(W, 0, 5);
    put_x();
    struct graph both;
    matmul_graph(&both, W, 0, M, 1, true);
    add_copy_into_w(&both, OFF_W2);
    assert_int_equal(compute_counting(&both, 43), 0);
    check_y(5, 1);
}

/* Freeing the weights buffer frees its copies: with a quota of the two buffers and one copy, a
 * new buffer gets its own copy of its own bytes only if the old copy's bytes came back. */
static void test_buffer_freed(void **state)
{
    (void)state;
    NEED_KERNELS();
    struct graph g;
    put_weights(W, 0, 7);
    put_x();
    matmul_graph(&g, W, 0, M, 1, true);
    assert_int_equal(compute_counting(&g, 51), 1);
    check_y(7, 1);
    assert_int_equal(apir_harness_free(H, W), VGPU_OK);
    W = alloc(8192);
    put_weights(W, 0, 8);
    matmul_graph(&g, W, 0, M, 1, true);
    assert_int_equal(compute_counting(&g, 52), 1);
    check_y(8, 1);
}

static int setup_quota_one_copy(void **state)
{
    (void)state;
    char q[32];
    snprintf(q, sizeof(q), "%zu", 8192 + 32768 + W_BYTES);
    return open_ctx(VGPU_CFG_QUOTA_BYTES, q);
}

/* With the buffer-bytes quota exactly used by the two buffers, no copy fits: exact anyway. */
static int setup_quota(void **state)
{
    (void)state;
    return open_ctx(VGPU_CFG_QUOTA_BYTES, "40960");
}

/* Config "0": off. */
static int setup_off(void **state)
{
    (void)state;
    return open_ctx(VGPU_CFG_CPU_REPACK, "0");
}

static void test_without_copies(void **state)
{
    (void)state;
    struct graph g;
    put_weights(W, 0, 10);
    put_x();
    matmul_graph(&g, W, 0, M, N, true);
    assert_int_equal(compute_counting(&g, 61), 0);
    check_y(10, N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_made_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_refreshes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_writes_own_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_freed, setup_quota_one_copy, teardown),
        cmocka_unit_test_setup_teardown(test_without_copies, setup_quota, teardown),
        cmocka_unit_test_setup_teardown(test_without_copies, setup_off, teardown),
    };
    return cmocka_run_group_tests_name("test-host-repack", tests, NULL, NULL);
}
