/*
 * Unit tests of host/validate-op.c (per-op validation, DESIGN §4.4).
 *
 * Positive cases build real graphs with ggml's own constructors in a no_alloc context (the
 * shapes and parameters of tests/test-backend-ops.cpp's test cases, plus views, permutations,
 * broadcasts, in-place and quantized variants) and require every node of the graph to pass.
 * Negative cases take such a legit node, break one relation (a missing or extra source, a
 * wrong type, a mismatched ne, an out-of-range op_param, a bad layout, a forbidden op) and
 * require a rejection with a reason. The last test checks that the positive cases reached every
 * op of the enum that ggml can build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ggml.h"
#include "validate-op.h"

/* Deprecated constructors (ggml_add1, ggml_upscale_ext) still build graphs a guest may send. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#ifdef VGPU_SEED_HOOK
/* tests/validate-op/sweep-cpu.c compiles this file in and takes every legit node as a seed. */
void vgpu_seed_hook(const struct ggml_tensor *t);
#endif

/* Test hook exported by validate-op.c (not part of the header). */
const char *vgpu_validate_op_rule_name(int op);

static struct ggml_context *ctx;
static int                  n_pos, n_neg;
static bool                 seen[GGML_OP_COUNT];
static bool                 verbose;

static int setup(void **state)
{
    (void) state;
    struct ggml_init_params p = {256u << 20, NULL, true};
    ctx = ggml_init(p);
    return ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void) state;
    ggml_free(ctx);
    ctx = NULL;
    return 0;
}

/* ---- helpers --------------------------------------------------------------------------------- */

/* Requires every node (and leaf) of out's forward graph to pass the validator. */
static void accept_at(struct ggml_tensor *out, const char *file, int line)
{
    struct ggml_init_params gp = {ggml_graph_overhead_custom(4096, false), NULL, true};
    struct ggml_context    *gctx = ggml_init(gp);
    assert_non_null(gctx);
    struct ggml_cgraph *gf = ggml_new_graph_custom(gctx, 4096, false);
    ggml_build_forward_expand(gf, out);
    const int n = ggml_graph_n_nodes(gf);
    for (int i = 0; i < n; i++) {
        struct ggml_tensor *t = ggml_graph_node(gf, i);
        char                why[256];
        if (!vgpu_validate_op(t, why, sizeof why)) {
            print_error("%s:%d: legit node %d (%s, %s) rejected: %s\n", file, line, i,
                        ggml_op_desc(t), t->name, why);
            _fail(file, line);
        }
        seen[t->op] = true;
        n_pos++;
#ifdef VGPU_SEED_HOOK
        vgpu_seed_hook(t);
#endif
    }
    ggml_free(gctx);
}
#define ACCEPT(t) accept_at((t), __FILE__, __LINE__)

/* Requires the validator to refuse t with a non-empty reason naming an op. */
static void reject_at(const struct ggml_tensor *t, const char *what, const char *file, int line)
{
    char why[256];
    memset(why, 0, sizeof why);
    if (vgpu_validate_op(t, why, sizeof why)) {
        print_error("%s:%d: broken node accepted (%s)\n", file, line, what);
        _fail(file, line);
    }
    if (why[0] == '\0' || strchr(why, ':') == NULL) {
        print_error("%s:%d: rejection without a reason (%s): '%s'\n", file, line, what, why);
        _fail(file, line);
    }
    if (verbose) {
        print_message("  reject %-40s -> %s\n", what, why);
    }
    n_neg++;
}
#define REJECT(t, what) reject_at((t), (what), __FILE__, __LINE__)

/* Gives t the strides of a fresh tensor of its (changed) type and ne, so that a broken shape or
 * type is the only thing wrong with it. */
static void repack(struct ggml_tensor *t)
{
    t->nb[0] = ggml_type_size(t->type);
    t->nb[1] = t->nb[0] * (size_t) (t->ne[0] / ggml_blck_size(t->type));
    for (int i = 2; i < 4; i++) {
        t->nb[i] = t->nb[i - 1] * (size_t) t->ne[i - 1];
    }
}

/* A copy of t to break. */
static struct ggml_tensor mut(const struct ggml_tensor *t)
{
    return *t;
}

static struct ggml_tensor *new4(enum ggml_type type, int64_t a, int64_t b, int64_t c, int64_t d)
{
    return ggml_new_tensor_4d(ctx, type, a, b, c, d);
}

static struct ggml_tensor *f32(int64_t a, int64_t b, int64_t c, int64_t d)
{
    return new4(GGML_TYPE_F32, a, b, c, d);
}

/* A view of a fresh tensor twice as large in dims 0..2 (non-contiguous, like test-backend-ops'
 * "v" variants). */
static struct ggml_tensor *strided(enum ggml_type type, int64_t a, int64_t b, int64_t c, int64_t d)
{
    struct ggml_tensor *big = new4(type, 2 * a, 2 * b, 2 * c, d);
    return ggml_view_4d(ctx, big, a, b, c, d, big->nb[1], big->nb[2], big->nb[3], 0);
}

static void set_i32(struct ggml_tensor *t, int i, int32_t v)
{
    memcpy((char *) t->op_params + 4 * i, &v, 4);
}

static void set_f32(struct ggml_tensor *t, int i, float v)
{
    memcpy((char *) t->op_params + 4 * i, &v, 4);
}

static const enum ggml_type quant_types[] = {
    GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0,
    GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
    GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS, GGML_TYPE_MXFP4, GGML_TYPE_IQ2_XXS, GGML_TYPE_TQ2_0,
};
#define N_QUANT (sizeof quant_types / sizeof quant_types[0])

/* ---- the table ------------------------------------------------------------------------------- */

/* Every op of the enum has a rule, named like ggml names the op (so the table is in enum
 * order), and ops outside the enum are refused. */
static void test_table_covers_every_op(void **state)
{
    (void) state;
    for (int op = 0; op < GGML_OP_COUNT; op++) {
        const char *name = vgpu_validate_op_rule_name(op);
        assert_non_null(name);
        assert_string_equal(name, ggml_op_name((enum ggml_op) op));
    }
    assert_null(vgpu_validate_op_rule_name(GGML_OP_COUNT));
    assert_null(vgpu_validate_op_rule_name(-1));

    struct ggml_tensor *a = f32(4, 4, 1, 1);
    struct ggml_tensor *t = ggml_add(ctx, a, a);
    struct ggml_tensor  m = mut(t);
    m.op = GGML_OP_COUNT;
    REJECT(&m, "op == GGML_OP_COUNT");
    m.op = (enum ggml_op) 1000;
    REJECT(&m, "op 1000");
    m.op = (enum ggml_op) -1;
    REJECT(&m, "op -1");

    char why[64] = "x";
    assert_false(vgpu_validate_op(NULL, why, sizeof why));
    assert_true(why[0] != '\0');
    /* a reason buffer of size 0 or NULL is never written */
    assert_false(vgpu_validate_op(&m, NULL, 0));
    char one = 'z';
    assert_false(vgpu_validate_op(&m, &one, 0));
    assert_int_equal(one, 'z');
    /* a short buffer is truncated, still terminated */
    char small[6];
    assert_false(vgpu_validate_op(&m, small, sizeof small));
    assert_true(strlen(small) < sizeof small);
}

/* ---- forbidden ops ------------------------------------------------------------------------- */

static void custom1(struct ggml_tensor *dst, const struct ggml_tensor *a, int ith, int nth,
                    void *ud)
{
    (void) dst, (void) a, (void) ith, (void) nth, (void) ud;
}
static void custom2(struct ggml_tensor *dst, const struct ggml_tensor *a,
                    const struct ggml_tensor *b, int ith, int nth, void *ud)
{
    (void) dst, (void) a, (void) b, (void) ith, (void) nth, (void) ud;
}
static void custom3(struct ggml_tensor *dst, const struct ggml_tensor *a,
                    const struct ggml_tensor *b, const struct ggml_tensor *c, int ith, int nth,
                    void *ud)
{
    (void) dst, (void) a, (void) b, (void) c, (void) ith, (void) nth, (void) ud;
}
static void custom(struct ggml_tensor *dst, int ith, int nth, void *ud)
{
    (void) dst, (void) ith, (void) nth, (void) ud;
}

/* CUSTOM and MAP_CUSTOM1/2/3 carry function pointers in op_params (llama.cpp #25289) and
 * FLASH_ATTN_BACK cannot be built: all refused, whatever their shapes. */
static void test_forbidden_ops(void **state)
{
    (void) state;
    struct ggml_tensor *a = f32(8, 4, 1, 1), *b = f32(8, 4, 1, 1), *c = f32(8, 4, 1, 1);
    REJECT(ggml_map_custom1(ctx, a, custom1, 1, NULL), "MAP_CUSTOM1");
    REJECT(ggml_map_custom2(ctx, a, b, custom2, 1, NULL), "MAP_CUSTOM2");
    REJECT(ggml_map_custom3(ctx, a, b, c, custom3, 1, NULL), "MAP_CUSTOM3");
    struct ggml_tensor *args[2] = {a, b};
    REJECT(ggml_custom_4d(ctx, GGML_TYPE_F32, 8, 4, 1, 1, args, 2, custom, 1, NULL), "CUSTOM");
    REJECT(ggml_custom_inplace(ctx, a, args, 1, custom, 1, NULL), "CUSTOM inplace");

    /* an ordinary node re-labelled as a custom op is still refused */
    struct ggml_tensor m = mut(ggml_add(ctx, a, b));
    m.op = GGML_OP_MAP_CUSTOM2;
    REJECT(&m, "ADD relabelled MAP_CUSTOM2");
    m.op = GGML_OP_CUSTOM;
    REJECT(&m, "ADD relabelled CUSTOM");
    m.op = GGML_OP_FLASH_ATTN_BACK;
    REJECT(&m, "ADD relabelled FLASH_ATTN_BACK");
}

/* ---- element-wise ---------------------------------------------------------------------------- */

static void test_binary_broadcast(void **state)
{
    (void) state;
    typedef struct ggml_tensor *(*bin_t)(struct ggml_context *, struct ggml_tensor *,
                                          struct ggml_tensor *);
    const bin_t ops[]   = {ggml_add, ggml_sub, ggml_mul, ggml_div,
                           ggml_add_inplace, ggml_sub_inplace, ggml_mul_inplace, ggml_div_inplace};
    const int64_t ne[][4] = {{16, 10, 10, 10}, {10, 5, 4, 3}, {1, 1, 1, 1}, {64, 1, 1, 1}};
    const int     nr[][4] = {{1, 1, 1, 1}, {2, 1, 1, 1}, {1, 2, 1, 1}, {1, 1, 2, 1},
                             {1, 1, 1, 2}, {2, 2, 2, 2}};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (size_t s = 0; s < sizeof ne / sizeof ne[0]; s++) {
            for (size_t r = 0; r < sizeof nr / sizeof nr[0]; r++) {
                struct ggml_tensor *a = f32(ne[s][0] * nr[r][0], ne[s][1] * nr[r][1],
                                            ne[s][2] * nr[r][2], ne[s][3] * nr[r][3]);
                struct ggml_tensor *b = f32(ne[s][0], ne[s][1], ne[s][2], ne[s][3]);
                ACCEPT(ops[o](ctx, a, b));
            }
        }
    }
    /* F16 / BF16, views, permuted b (test_bin_bcast perm1), overlapping source views */
    const enum ggml_type ft[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16};
    for (size_t i = 0; i < 3; i++) {
        struct ggml_tensor *a = strided(ft[i], 10, 5, 4, 3);
        struct ggml_tensor *b = ggml_permute(ctx, new4(ft[i], 5, 10, 4, 3), 1, 0, 2, 3);
        ACCEPT(ggml_add(ctx, a, b));
        ACCEPT(ggml_mul(ctx, a, ggml_view_4d(ctx, b, 10, 5, 1, 1, b->nb[1], b->nb[2], b->nb[3], 0)));
        struct ggml_tensor *base = new4(ft[i], 16, 16, 4, 1);
        struct ggml_tensor *v0 = ggml_view_3d(ctx, base, 16, 8, 4, base->nb[1], base->nb[2], 0);
        struct ggml_tensor *v1 =
            ggml_view_3d(ctx, base, 16, 8, 4, base->nb[1], base->nb[2], 4 * base->nb[1]);
        ACCEPT(ggml_add(ctx, v0, v1));
    }
    /* add_cast: quantized / F16 / BF16 input, any result type */
    for (size_t q = 0; q < N_QUANT; q++) {
        struct ggml_tensor *a = new4(quant_types[q], 256, 4, 2, 1);
        ACCEPT(ggml_add_cast(ctx, a, f32(256, 1, 1, 1), GGML_TYPE_F32));
        ACCEPT(ggml_add_cast(ctx, a, f32(256, 4, 2, 1), GGML_TYPE_F16));
    }
    ACCEPT(ggml_add_cast(ctx, new4(GGML_TYPE_F16, 32, 4, 1, 1), f32(32, 4, 1, 1), GGML_TYPE_F32));
    ACCEPT(ggml_add_cast(ctx, new4(GGML_TYPE_BF16, 32, 4, 1, 1), f32(32, 1, 1, 1), GGML_TYPE_Q8_0));
    /* empty tensors */
    ACCEPT(ggml_add(ctx, f32(0, 4, 1, 1), f32(0, 4, 1, 1)));
    ACCEPT(ggml_mul(ctx, f32(8, 0, 3, 1), f32(8, 1, 1, 1)));

    /* negatives */
    struct ggml_tensor *a = f32(16, 10, 4, 2), *b = f32(16, 5, 1, 1);
    struct ggml_tensor *t = ggml_add(ctx, a, b);
    struct ggml_tensor  m;
    m = mut(t), m.src[1] = f32(16, 3, 1, 1);
    REJECT(&m, "ADD src1 that does not repeat");
    m = mut(t), m.src[1] = f32(32, 5, 1, 1);
    REJECT(&m, "ADD src1 larger than src0");
    m = mut(t), m.src[1] = NULL;
    REJECT(&m, "ADD without src1");
    m = mut(t), m.src[0] = NULL;
    REJECT(&m, "ADD without src0");
    m = mut(t), m.src[2] = b;
    REJECT(&m, "ADD with an extra src2");
    m = mut(t), m.src[9] = b;
    REJECT(&m, "ADD with an extra src9");
    m = mut(t), m.ne[1] = 20, m.nb[2] *= 2, m.nb[3] *= 2;
    REJECT(&m, "ADD dst rows beyond src0");
    m = mut(t), m.type = GGML_TYPE_F16;
    REJECT(&m, "ADD F32->F16 is no add_cast");
    m = mut(t), m.nb[1] = 0, m.nb[2] = 0, m.nb[3] = 0;
    REJECT(&m, "ADD dst with zero strides");
    m = mut(t), m.nb[2] = m.nb[1];
    REJECT(&m, "ADD dst with overlapping planes");
    m = mut(ggml_add_cast(ctx, new4(GGML_TYPE_Q4_0, 256, 4, 1, 1), f32(256, 1, 1, 1), GGML_TYPE_F32));
    m.src[1] = f32(128, 1, 1, 1);
    REJECT(&m, "ADD cast with a src1 of another row length");

    t = ggml_mul(ctx, a, b);
    m = mut(t), m.type = GGML_TYPE_F16;
    REJECT(&m, "MUL dst type");
    m = mut(t), m.src[1] = f32(3, 1, 1, 1);
    REJECT(&m, "MUL src1 ne0 3 into 16");
    m = mut(ggml_div(ctx, a, f32(16, 5, 4, 1)));
    m.src[1] = f32(16, 5, 0, 1);
    REJECT(&m, "DIV empty src1 into a non-empty src0");

    /* the generic layout rule: a source whose row elements overlap */
    m = mut(ggml_sub(ctx, a, b));
    struct ggml_tensor bz = *b;
    bz.nb[0] = 0;
    m.src[1] = &bz;
    REJECT(&m, "SUB src1 with nb0 == 0");
    /* overlapping rows are legal (sliding-window views), the kernels read through nb */
    struct ggml_tensor *win = f32(8 * 57, 1, 1, 1); /* view_impl wants the packed size inside */
    ACCEPT(ggml_sqr(ctx, ggml_view_2d(ctx, win, 8, 57, 4, 0)));
}

static void test_unary_family(void **state)
{
    (void) state;
    typedef struct ggml_tensor *(*un_t)(struct ggml_context *, struct ggml_tensor *);
    const un_t ops[] = {ggml_dup,  ggml_sqr,  ggml_sqrt, ggml_log,  ggml_sin,  ggml_cos,
                        ggml_abs,  ggml_sgn,  ggml_neg,  ggml_step, ggml_tanh, ggml_elu,
                        ggml_relu, ggml_sigmoid, ggml_gelu, ggml_gelu_quick, ggml_silu,
                        ggml_hardswish, ggml_hardsigmoid, ggml_exp, ggml_expm1, ggml_softplus,
                        ggml_gelu_erf, ggml_floor, ggml_ceil, ggml_round, ggml_trunc,
                        ggml_dup_inplace, ggml_sqr_inplace, ggml_relu_inplace, ggml_exp_inplace,
                        ggml_cont};
    const enum ggml_type types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (size_t ty = 0; ty < 3; ty++) {
            ACCEPT(ops[o](ctx, new4(types[ty], 128, 2, 2, 2)));
            ACCEPT(ops[o](ctx, new4(types[ty], 5, 7, 11, 13)));
            ACCEPT(ops[o](ctx, strided(types[ty], 16, 4, 3, 2)));
        }
    }
    ACCEPT(ggml_xielu(ctx, f32(64, 4, 1, 1), 0.8f, 0.8f, 0.5f, 1e-6f));
    ACCEPT(ggml_clamp(ctx, f32(10, 5, 4, 3), -0.5f, 0.5f));
    ACCEPT(ggml_clamp_inplace(ctx, strided(GGML_TYPE_F32, 10, 5, 4, 3), -0.5f, 0.5f));
    ACCEPT(ggml_leaky_relu(ctx, f32(10, 5, 4, 3), 0.1f, true));
    ACCEPT(ggml_leaky_relu(ctx, new4(GGML_TYPE_F16, 10, 5, 4, 3), 0.1f, false));
    ACCEPT(ggml_scale(ctx, f32(10, 10, 10, 10), 2.0f));
    ACCEPT(ggml_scale_bias_inplace(ctx, f32(10, 10, 10, 10), 2.0f, 1.0f));
    ACCEPT(ggml_fill(ctx, f32(10, 10, 4, 3), 2.0f));
    ACCEPT(ggml_fill_inplace(ctx, new4(GGML_TYPE_F16, 303, 2, 1, 1), -1.0f));
    ACCEPT(ggml_cumsum(ctx, f32(10, 5, 4, 3)));
    ACCEPT(ggml_cumsum(ctx, f32(2049, 3, 1, 1)));
    for (int tt = GGML_TRI_TYPE_UPPER_DIAG; tt <= GGML_TRI_TYPE_LOWER; tt++) {
        ACCEPT(ggml_tri(ctx, f32(8, 8, 4, 2), (enum ggml_tri_type) tt));
    }
    /* ggml_unary asserts contiguous rows: a transposed input cannot be built, a permuted one
     * that keeps dim 0 can */
    ACCEPT(ggml_gelu(ctx, ggml_permute(ctx, f32(16, 4, 3, 2), 0, 2, 1, 3)));

    /* negatives */
    struct ggml_tensor *a = f32(16, 4, 3, 2);
    struct ggml_tensor  m = mut(ggml_gelu(ctx, a));
    set_i32(&m, 0, GGML_UNARY_OP_COUNT);
    REJECT(&m, "UNARY sub-op == COUNT");
    set_i32(&m, 0, -1);
    REJECT(&m, "UNARY sub-op -1");
    m = mut(ggml_gelu(ctx, f32(16, 16, 1, 1)));
    m.src[0] = ggml_transpose(ctx, f32(16, 16, 1, 1));
    REJECT(&m, "UNARY on a transposed input");
    m = mut(ggml_gelu(ctx, a));
    m.ne[0] = 32, repack(&m);
    REJECT(&m, "UNARY dst longer rows");
    m = mut(ggml_silu(ctx, a));
    m.src[1] = a;
    REJECT(&m, "UNARY with a src1");
    m = mut(ggml_sqr(ctx, a));
    m.ne[3] = 4;
    REJECT(&m, "SQR dst more planes");
    m = mut(ggml_sqr(ctx, a));
    m.type = GGML_TYPE_I32;
    REJECT(&m, "SQR dst type");
    m = mut(ggml_dup(ctx, a));
    m.src[0] = NULL;
    REJECT(&m, "DUP without src");
    m = mut(ggml_cont(ctx, a));
    m.ne[0] = 8, repack(&m);
    REJECT(&m, "CONT element count");
    m = mut(ggml_cont(ctx, a));
    m.type = GGML_TYPE_F16, repack(&m);
    REJECT(&m, "CONT type");
    m = mut(ggml_scale(ctx, a, 2.0f));
    m.src[0] = ggml_permute(ctx, f32(16, 4, 3, 2), 0, 2, 1, 3);
    m.ne[1] = 3, m.ne[2] = 4, repack(&m);
    REJECT(&m, "SCALE non-padded input");
    m = mut(ggml_leaky_relu(ctx, a, 0.1f, false));
    m.src[0] = ggml_permute(ctx, f32(16, 4, 3, 2), 0, 2, 1, 3);
    m.ne[1] = 3, m.ne[2] = 4, repack(&m);
    REJECT(&m, "LEAKY_RELU input not row-flat");
    m = mut(ggml_tri(ctx, f32(8, 8, 1, 1), GGML_TRI_TYPE_LOWER));
    set_i32(&m, 0, 4);
    REJECT(&m, "TRI type 4");
    m = mut(ggml_tri(ctx, f32(8, 8, 1, 1), GGML_TRI_TYPE_LOWER));
    m.src[0] = f32(8, 4, 2, 1);
    m.ne[1] = 4, m.ne[2] = 2, repack(&m);
    REJECT(&m, "TRI non-square");
    m = mut(ggml_fill(ctx, f32(8, 8, 1, 1), 1.0f));
    m.src[0] = new4(GGML_TYPE_I32, 8, 8, 1, 1);
    m.type = GGML_TYPE_I32;
    REJECT(&m, "FILL I32");
    m = mut(ggml_cumsum(ctx, f32(8, 8, 1, 1)));
    m.src[0] = new4(GGML_TYPE_F16, 8, 8, 1, 1);
    REJECT(&m, "CUMSUM F16 src");
}

static void test_glu(void **state)
{
    (void) state;
    for (int op = 0; op < GGML_GLU_OP_COUNT; op++) {
        for (int sw = 0; sw < 2; sw++) {
            ACCEPT(ggml_glu(ctx, f32(128, 2, 2, 2), (enum ggml_glu_op) op, sw));
            ACCEPT(ggml_glu(ctx, new4(GGML_TYPE_F16, 5, 7, 11, 13), (enum ggml_glu_op) op, sw));
        }
        ACCEPT(ggml_glu_split(ctx, f32(128, 2, 2, 2), f32(128, 2, 2, 2), (enum ggml_glu_op) op));
        /* test_glu's non-contiguous variant: a view with contiguous rows */
        struct ggml_tensor *big = f32(256, 4, 2, 1);
        struct ggml_tensor *v = ggml_view_3d(ctx, big, 128, 4, 2, big->nb[1], big->nb[2], 0);
        ACCEPT(ggml_glu(ctx, v, (enum ggml_glu_op) op, false));
    }
    ACCEPT(ggml_swiglu_oai(ctx, f32(64, 4, 1, 1), f32(64, 4, 1, 1), 1.702f, 7.0f));
    ACCEPT(ggml_swiglu_clamp(ctx, f32(64, 4, 1, 1), f32(64, 4, 1, 1), 7.0f));
    ACCEPT(ggml_swiglu(ctx, f32(63, 4, 1, 1)));

    struct ggml_tensor *a = f32(64, 4, 2, 1), *b = f32(64, 4, 2, 1);
    struct ggml_tensor  m = mut(ggml_swiglu(ctx, a));
    set_i32(&m, 0, GGML_GLU_OP_COUNT);
    REJECT(&m, "GLU sub-op == COUNT");
    m = mut(ggml_swiglu(ctx, a));
    m.ne[0] = 64, repack(&m);
    REJECT(&m, "GLU unsplit dst not halved");
    m = mut(ggml_glu_split(ctx, a, b, GGML_GLU_OP_GEGLU));
    m.ne[0] = 32, repack(&m);
    REJECT(&m, "GLU split dst halved");
    m = mut(ggml_glu_split(ctx, a, b, GGML_GLU_OP_GEGLU));
    m.src[1] = f32(64, 2, 2, 1);
    REJECT(&m, "GLU split shape mismatch");
    m = mut(ggml_glu_split(ctx, a, b, GGML_GLU_OP_GEGLU));
    m.src[1] = new4(GGML_TYPE_F16, 64, 4, 2, 1);
    REJECT(&m, "GLU split type mismatch");
    m = mut(ggml_glu_split(ctx, a, b, GGML_GLU_OP_GEGLU));
    m.src[1] = ggml_permute(ctx, f32(64, 2, 4, 1), 0, 2, 1, 3);
    REJECT(&m, "GLU split src1 not contiguous_1");
    m = mut(ggml_swiglu(ctx, a));
    m.src[2] = b;
    REJECT(&m, "GLU with src2");
}

static void test_add_id_add1_acc_set(void **state)
{
    (void) state;
    /* ADD_ID: test_add_id shapes */
    for (int n_mats = 1; n_mats <= 8; n_mats *= 2) {
        for (int n_used = 1; n_used <= n_mats; n_used *= 2) {
            struct ggml_tensor *a   = f32(64, n_used, 32, 1);
            struct ggml_tensor *b   = f32(64, n_mats, 1, 1);
            struct ggml_tensor *ids = new4(GGML_TYPE_I32, n_used, 32, 1, 1);
            ACCEPT(ggml_add_id(ctx, a, b, ids));
        }
    }
    struct ggml_tensor *a = f32(64, 4, 32, 1), *b = f32(64, 8, 1, 1);
    struct ggml_tensor *ids = new4(GGML_TYPE_I32, 4, 32, 1, 1);
    struct ggml_tensor  m   = mut(ggml_add_id(ctx, a, b, ids));
    m.src[2] = new4(GGML_TYPE_I64, 4, 32, 1, 1);
    REJECT(&m, "ADD_ID I64 ids");
    m = mut(ggml_add_id(ctx, a, b, ids));
    m.src[2] = new4(GGML_TYPE_I32, 4, 16, 1, 1);
    REJECT(&m, "ADD_ID ids rows != tokens");
    m = mut(ggml_add_id(ctx, a, b, ids));
    m.src[1] = f32(32, 8, 1, 1);
    REJECT(&m, "ADD_ID bias width");
    m = mut(ggml_add_id(ctx, a, b, ids));
    m.src[2] = NULL;
    REJECT(&m, "ADD_ID without ids");

    /* ADD1 */
    ACCEPT(ggml_add1(ctx, f32(10, 5, 4, 3), f32(1, 1, 1, 1)));
    ACCEPT(ggml_add1_inplace(ctx, new4(GGML_TYPE_F16, 10, 5, 4, 3), new4(GGML_TYPE_F16, 1, 1, 1, 1)));
    m = mut(ggml_add1(ctx, f32(10, 5, 4, 3), f32(1, 1, 1, 1)));
    m.src[1] = f32(2, 1, 1, 1);
    REJECT(&m, "ADD1 non-scalar src1");

    /* ACC: test_acc shapes, in place and not, offsets inside */
    struct ggml_tensor *x = f32(256, 17, 2, 3), *y = f32(256, 16, 2, 3);
    ACCEPT(ggml_acc(ctx, x, y, x->nb[1], x->nb[2], x->nb[3], x->nb[1]));
    ACCEPT(ggml_acc_inplace(ctx, x, y, x->nb[1], x->nb[2], x->nb[3], 0));
    ACCEPT(ggml_acc(ctx, f32(64, 64, 1, 1), f32(32, 32, 1, 1), 64 * 4, 64 * 64 * 4, 64 * 64 * 4,
                    (32 * 64 + 32) * 4));
    struct ggml_tensor *t = ggml_acc(ctx, x, y, x->nb[1], x->nb[2], x->nb[3], x->nb[1]);
    m = mut(t);
    set_i32(&m, 3, (int32_t) (2 * x->nb[1]));
    REJECT(&m, "ACC window one row past the end");
    m = mut(t);
    set_i32(&m, 3, (int32_t) (x->nb[1] + 4));
    REJECT(&m, "ACC window one element past the end");
    m = mut(t);
    set_i32(&m, 0, -4);
    REJECT(&m, "ACC negative nb1");
    m = mut(t);
    set_i32(&m, 2, (int32_t) (x->nb[3] * 2));
    REJECT(&m, "ACC nb3 doubled");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_F16, 256, 16, 2, 3);
    REJECT(&m, "ACC F16 src1");
    m = mut(t);
    m.src[1] = f32(256, 18, 2, 3);
    REJECT(&m, "ACC src1 larger than src0");
    m = mut(ggml_acc(ctx, x, y, x->nb[1], x->nb[2], x->nb[3], 0));
    m.src[0] = ggml_permute(ctx, f32(256, 2, 17, 3), 0, 2, 1, 3);
    REJECT(&m, "ACC non-contiguous src0");

    /* SET: test_set shapes for each dim, inplace and not, I32 too */
    for (int dim = 1; dim <= 4; dim++) {
        const int64_t ne[4] = {6, 5, 4, 3};
        int64_t       ns[4] = {6, 5, 4, 3};
        ns[dim - 1]         = 2;
        struct ggml_tensor *dst = f32(ne[0], ne[1], ne[2], ne[3]);
        struct ggml_tensor *src = f32(ns[0], ns[1], ns[2], ns[3]);
        const size_t offs = dim > 1 ? dst->nb[dim - 1] : 4;
        ACCEPT(ggml_set(ctx, dst, src, dst->nb[1], dst->nb[2], dst->nb[3], offs));
        ACCEPT(ggml_set_inplace(ctx, dst, src, dst->nb[1], dst->nb[2], dst->nb[3], 0));
    }
    ACCEPT(ggml_set_1d(ctx, new4(GGML_TYPE_I32, 10, 1, 1, 1), new4(GGML_TYPE_I32, 5, 1, 1, 1), 20));
    ACCEPT(ggml_set_2d_inplace(ctx, f32(8, 8, 1, 1), f32(4, 4, 1, 1), 32, 16));
    t = ggml_set_1d(ctx, f32(10, 1, 1, 1), f32(5, 1, 1, 1), 20);
    m = mut(t);
    set_i32(&m, 3, 24);
    REJECT(&m, "SET_1D window past the end (CPU asserts only its start)");
    m = mut(t);
    set_i32(&m, 3, 1 << 30);
    REJECT(&m, "SET offset 2^30");
    m = mut(t);
    m.src[1] = f32(11, 1, 1, 1);
    REJECT(&m, "SET src1 larger");
}

/* ---- reductions and shape ops ------------------------------------------------------------- */

static void test_reductions(void **state)
{
    (void) state;
    const enum ggml_type types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16};
    for (size_t i = 0; i < 3; i++) {
        ACCEPT(ggml_sum(ctx, new4(types[i], 10, 5, 4, 3)));
        ACCEPT(ggml_sum(ctx, ggml_permute(ctx, new4(types[i], 10, 5, 4, 3), 0, 2, 1, 3)));
        ACCEPT(ggml_sum_rows(ctx, new4(types[i], 10, 5, 4, 3)));
        ACCEPT(ggml_mean(ctx, new4(types[i], 33, 1, 1, 1)));
    }
    ACCEPT(ggml_sum_rows(ctx, strided(GGML_TYPE_F32, 10, 5, 4, 3)));
    ACCEPT(ggml_argmax(ctx, f32(100, 10, 1, 1)));
    ACCEPT(ggml_argmax(ctx, f32(1024, 12, 1, 1)));
    ACCEPT(ggml_count_equal(ctx, new4(GGML_TYPE_I32, 4, 500, 1, 1), new4(GGML_TYPE_I32, 4, 500, 1, 1)));
    ACCEPT(ggml_count_equal(ctx, ggml_argmax(ctx, f32(100, 10, 1, 1)),
                            ggml_argmax(ctx, f32(100, 10, 1, 1))));

    struct ggml_tensor *a = f32(10, 5, 4, 3);
    struct ggml_tensor  m = mut(ggml_sum(ctx, a));
    m.ne[0] = 2, repack(&m);
    REJECT(&m, "SUM dst of 2");
    m = mut(ggml_sum_rows(ctx, a));
    m.ne[0] = 10, repack(&m);
    REJECT(&m, "SUM_ROWS dst not reduced");
    m = mut(ggml_mean(ctx, a));
    m.type = GGML_TYPE_F16, repack(&m);
    REJECT(&m, "MEAN dst F16");
    m = mut(ggml_argmax(ctx, f32(100, 10, 1, 1)));
    m.src[0] = f32(100, 10, 2, 1);
    REJECT(&m, "ARGMAX 3-D src");
    m = mut(ggml_argmax(ctx, f32(100, 10, 1, 1)));
    m.type = GGML_TYPE_F32;
    REJECT(&m, "ARGMAX F32 dst");
    m = mut(ggml_argmax(ctx, f32(100, 10, 1, 1)));
    m.ne[0] = 11, repack(&m);
    REJECT(&m, "ARGMAX dst longer than rows");
    m = mut(ggml_count_equal(ctx, new4(GGML_TYPE_I32, 4, 5, 1, 1), new4(GGML_TYPE_I32, 4, 5, 1, 1)));
    m.src[1] = new4(GGML_TYPE_I32, 4, 6, 1, 1);
    REJECT(&m, "COUNT_EQUAL shapes differ");
    m = mut(ggml_count_equal(ctx, new4(GGML_TYPE_I32, 4, 5, 1, 1), new4(GGML_TYPE_I32, 4, 5, 1, 1)));
    m.type = GGML_TYPE_I32, repack(&m);
    REJECT(&m, "COUNT_EQUAL I32 dst");
}

static void test_repeat_concat(void **state)
{
    (void) state;
    const int64_t ne[] = {10, 5, 4, 3};
    const int     nr[][4] = {{2, 1, 1, 1}, {1, 2, 1, 1}, {1, 1, 2, 1}, {1, 1, 1, 2}, {2, 2, 2, 2}};
    for (size_t r = 0; r < 5; r++) {
        struct ggml_tensor *a = f32(ne[0], ne[1], ne[2], ne[3]);
        struct ggml_tensor *b =
            f32(ne[0] * nr[r][0], ne[1] * nr[r][1], ne[2] * nr[r][2], ne[3] * nr[r][3]);
        ACCEPT(ggml_repeat(ctx, a, b));
        ACCEPT(ggml_repeat(ctx, strided(GGML_TYPE_F16, 10, 5, 4, 3), b));
        ACCEPT(ggml_repeat_4d(ctx, new4(GGML_TYPE_I32, 10, 5, 4, 3), b->ne[0], b->ne[1], b->ne[2],
                              b->ne[3]));
        ACCEPT(ggml_repeat_back(ctx, b, a));
    }
    for (int dim = 0; dim < 4; dim++) {
        int64_t nb_[4] = {10, 5, 4, 3};
        nb_[dim]       = 7;
        ACCEPT(ggml_concat(ctx, f32(10, 5, 4, 3), f32(nb_[0], nb_[1], nb_[2], nb_[3]), dim));
        ACCEPT(ggml_concat(ctx, strided(GGML_TYPE_F32, 10, 5, 4, 3),
                           f32(nb_[0], nb_[1], nb_[2], nb_[3]), dim));
        ACCEPT(ggml_concat(ctx, new4(GGML_TYPE_I32, 10, 5, 4, 3),
                           new4(GGML_TYPE_I32, nb_[0], nb_[1], nb_[2], nb_[3]), dim));
    }

    struct ggml_tensor *a = f32(10, 5, 4, 3), *b = f32(20, 5, 4, 3);
    struct ggml_tensor  m = mut(ggml_repeat(ctx, a, b));
    m.ne[0] = 15, m.nb[1] = m.nb[0] * 15, m.nb[2] = m.nb[1] * 5, m.nb[3] = m.nb[2] * 4;
    REJECT(&m, "REPEAT into a non-multiple");
    m = mut(ggml_repeat(ctx, a, b));
    m.src[0] = f32(0, 5, 4, 3);
    REJECT(&m, "REPEAT of an empty tensor into a non-empty one");
    m = mut(ggml_repeat(ctx, a, b));
    m.type = GGML_TYPE_F16, repack(&m);
    REJECT(&m, "REPEAT type change");
    m = mut(ggml_repeat_back(ctx, b, a));
    m.src[0] = f32(15, 5, 4, 3);
    REJECT(&m, "REPEAT_BACK of a non-multiple");

    struct ggml_tensor *c = ggml_concat(ctx, a, f32(7, 5, 4, 3), 0);
    m = mut(c);
    set_i32(&m, 0, 4);
    REJECT(&m, "CONCAT dim 4");
    m = mut(c);
    set_i32(&m, 0, -1);
    REJECT(&m, "CONCAT dim -1");
    m = mut(c);
    set_i32(&m, 0, 1);
    REJECT(&m, "CONCAT dim 1 with ne0 differing");
    m = mut(c);
    m.src[1] = new4(GGML_TYPE_F16, 7, 5, 4, 3);
    REJECT(&m, "CONCAT types differ");
    m = mut(c);
    m.ne[0] = 18, m.nb[1] = 4 * 18, m.nb[2] = m.nb[1] * 5, m.nb[3] = m.nb[2] * 4;
    REJECT(&m, "CONCAT dst too long");
}

static void test_argsort_top_k(void **state)
{
    (void) state;
    for (int order = 0; order < 2; order++) {
        ACCEPT(ggml_argsort(ctx, f32(16, 10, 10, 10), (enum ggml_sort_order) order));
        ACCEPT(ggml_argsort(ctx, f32(60, 10, 10, 10), (enum ggml_sort_order) order));
        ACCEPT(ggml_argsort(ctx, f32(1025, 2, 1, 1), (enum ggml_sort_order) order));
    }
    ACCEPT(ggml_top_k(ctx, f32(16, 10, 10, 10), 5));
    ACCEPT(ggml_top_k(ctx, f32(2048, 4, 1, 1), 2048));
    ACCEPT(ggml_argsort_top_k(ctx, f32(256, 32, 1, 1), 8));

    struct ggml_tensor *a = f32(16, 10, 1, 1);
    struct ggml_tensor  m = mut(ggml_argsort(ctx, a, GGML_SORT_ORDER_ASC));
    set_i32(&m, 0, 2);
    REJECT(&m, "ARGSORT order 2");
    m = mut(ggml_argsort(ctx, a, GGML_SORT_ORDER_ASC));
    m.type = GGML_TYPE_F32;
    REJECT(&m, "ARGSORT F32 dst");
    m = mut(ggml_argsort(ctx, a, GGML_SORT_ORDER_ASC));
    m.src[0] = ggml_permute(ctx, f32(16, 2, 5, 1), 0, 2, 1, 3);
    m.ne[1] = 5, m.ne[2] = 2, m.nb[2] = m.nb[1] * 5;
    REJECT(&m, "ARGSORT permuted (not row-flat) src");
    m = mut(ggml_top_k(ctx, a, 5));
    m.ne[0] = 17, m.nb[1] = 17 * 4, m.nb[2] = m.nb[1] * 10, m.nb[3] = m.nb[2];
    REJECT(&m, "TOP_K k > ne0");
}

/* ---- norms, softmax ------------------------------------------------------------------------ */

static void test_norms(void **state)
{
    (void) state;
    ACCEPT(ggml_norm(ctx, f32(64, 5, 4, 3), 1e-6f));
    ACCEPT(ggml_norm_inplace(ctx, strided(GGML_TYPE_F32, 64, 5, 4, 3), 1e-5f));
    ACCEPT(ggml_rms_norm(ctx, f32(64, 5, 4, 3), 1e-6f));
    ACCEPT(ggml_rms_norm(ctx, ggml_permute(ctx, f32(64, 5, 4, 3), 0, 2, 1, 3), 0.0f));
    ACCEPT(ggml_rms_norm_inplace(ctx, f32(64, 5, 4, 3), 1e-6f));
    ACCEPT(ggml_rms_norm_back(ctx, f32(64, 5, 4, 3), f32(64, 5, 4, 3), 1e-6f));
    ACCEPT(ggml_l2_norm(ctx, f32(64, 5, 4, 3), 1e-12f));
    ACCEPT(ggml_l2_norm_inplace(ctx, f32(128, 16, 16, 1), 1e-12f));
    ACCEPT(ggml_group_norm(ctx, f32(64, 64, 320, 1), 32, 1e-6f));
    ACCEPT(ggml_group_norm_inplace(ctx, f32(9, 9, 1280, 1), 32, 1e-6f));
    ACCEPT(ggml_silu_back(ctx, f32(64, 5, 4, 3), f32(64, 5, 4, 3)));
    ACCEPT(ggml_diag_mask_inf(ctx, f32(10, 10, 3, 2), 5));
    ACCEPT(ggml_diag_mask_zero_inplace(ctx, f32(10, 10, 3, 2), 0));
    ACCEPT(ggml_diag(ctx, f32(10, 1, 3, 2)));

    struct ggml_tensor *a = f32(64, 5, 4, 3);
    struct ggml_tensor  m = mut(ggml_norm(ctx, a, 1e-6f));
    set_f32(&m, 0, -1.0f);
    REJECT(&m, "NORM negative eps");
    set_f32(&m, 0, NAN);
    REJECT(&m, "NORM NaN eps");
    m = mut(ggml_rms_norm(ctx, a, 1e-6f));
    m.ne[0] = 32, repack(&m);
    REJECT(&m, "RMS_NORM dst narrower");
    m = mut(ggml_rms_norm_back(ctx, a, a, 1e-6f));
    m.src[1] = f32(64, 5, 4, 1);
    REJECT(&m, "RMS_NORM_BACK shapes differ");
    m = mut(ggml_group_norm(ctx, a, 2, 1e-6f));
    set_i32(&m, 0, 0);
    REJECT(&m, "GROUP_NORM 0 groups");
    m = mut(ggml_silu_back(ctx, a, a));
    m.src[1] = f32(64, 5, 4, 1);
    REJECT(&m, "SILU_BACK shapes differ");
    m = mut(ggml_diag_mask_inf(ctx, f32(10, 10, 1, 1), 2));
    set_i32(&m, 0, -1);
    REJECT(&m, "DIAG_MASK_INF negative n_past");
    m = mut(ggml_diag(ctx, f32(10, 1, 3, 2)));
    m.src[0] = f32(10, 2, 3, 2);
    REJECT(&m, "DIAG of a matrix");
}

static void test_soft_max(void **state)
{
    (void) state;
    /* test_soft_max: masks F32/F16 with broadcast, sinks, max_bias, in place */
    const int64_t ne[][4] = {{16, 2, 32, 1}, {32, 2, 32, 1}, {1024, 16, 4, 2}};
    const int     nr[][2] = {{1, 1}, {4, 1}, {2, 3}};
    for (size_t s = 0; s < 3; s++) {
        for (size_t r = 0; r < 3; r++) {
            for (int mp = 0; mp < 2; mp++) {
                const enum ggml_type mt = mp ? GGML_TYPE_F16 : GGML_TYPE_F32;
                struct ggml_tensor *a = f32(ne[s][0], ne[s][1], ne[s][2] * nr[r][0],
                                            ne[s][3] * nr[r][1]);
                struct ggml_tensor *mask = new4(mt, ne[s][0], ne[s][1], ne[s][2], ne[s][3]);
                struct ggml_tensor *sinks = f32(ne[s][2] * nr[r][0], 1, 1, 1);
                struct ggml_tensor *out = ggml_soft_max_ext(ctx, a, mask, 0.1f, 8.0f);
                ggml_soft_max_add_sinks(out, sinks);
                ACCEPT(out);
                ACCEPT(ggml_soft_max_ext_inplace(ctx, f32(ne[s][0], ne[s][1], ne[s][2], ne[s][3]),
                                                 mask, 1.0f, 0.0f));
            }
        }
    }
    ACCEPT(ggml_soft_max(ctx, f32(1024, 1024, 1, 1)));
    ACCEPT(ggml_soft_max_inplace(ctx, f32(10, 10, 10, 10)));
    /* mask with more rows than the input (padded KQ mask) */
    ACCEPT(ggml_soft_max_ext(ctx, f32(32, 7, 4, 1), new4(GGML_TYPE_F16, 32, 64, 1, 1), 1.0f, 0.0f));
    /* sinks without a mask */
    struct ggml_tensor *o = ggml_soft_max_ext(ctx, f32(32, 7, 4, 1), NULL, 1.0f, 0.0f);
    ggml_soft_max_add_sinks(o, f32(4, 1, 1, 1));
    ACCEPT(o);
    ACCEPT(ggml_soft_max_ext_back(ctx, f32(16, 16, 2, 1), f32(16, 16, 2, 1), 1.0f, 0.0f));
    ACCEPT(ggml_soft_max_ext_back_inplace(ctx, f32(16, 16, 2, 1), f32(16, 16, 2, 1), 0.5f, 0.0f));

    struct ggml_tensor *a = f32(32, 7, 4, 2), *mask = new4(GGML_TYPE_F16, 32, 7, 2, 1);
    struct ggml_tensor *t = ggml_soft_max_ext(ctx, a, mask, 1.0f, 8.0f);
    struct ggml_tensor  m = mut(t);
    m.src[1] = new4(GGML_TYPE_F16, 32, 6, 2, 1);
    REJECT(&m, "SOFT_MAX mask with fewer rows");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_F16, 16, 7, 2, 1);
    REJECT(&m, "SOFT_MAX mask narrower");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_F16, 32, 7, 3, 1);
    REJECT(&m, "SOFT_MAX mask heads do not divide");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_BF16, 32, 7, 2, 1);
    REJECT(&m, "SOFT_MAX BF16 mask");
    m = mut(t);
    m.src[1] = ggml_transpose(ctx, new4(GGML_TYPE_F16, 7, 32, 1, 1));
    REJECT(&m, "SOFT_MAX transposed mask");
    m = mut(t);
    m.src[1] = NULL;
    REJECT(&m, "SOFT_MAX max_bias without mask");
    m = mut(t);
    m.src[0] = ggml_permute(ctx, f32(32, 4, 7, 2), 0, 2, 1, 3);
    REJECT(&m, "SOFT_MAX permuted input");
    m = mut(t);
    m.src[2] = f32(3, 1, 1, 1);
    REJECT(&m, "SOFT_MAX sinks for 3 heads of 4");
    m = mut(t);
    m.src[2] = new4(GGML_TYPE_F16, 4, 1, 1, 1);
    REJECT(&m, "SOFT_MAX F16 sinks");
    struct ggml_tensor sk = *f32(4, 1, 1, 1);
    sk.nb[0] = 0;
    m = mut(t);
    m.src[2] = &sk;
    REJECT(&m, "SOFT_MAX sinks with stride 0 (read as an array)");
    m = mut(t);
    m.src[3] = a;
    REJECT(&m, "SOFT_MAX src3");
    m = mut(ggml_soft_max_ext_back(ctx, f32(16, 16, 2, 1), f32(16, 16, 2, 1), 1.0f, 0.0f));
    m.src[1] = f32(16, 8, 2, 1);
    REJECT(&m, "SOFT_MAX_BACK shapes differ");
}

/* ---- matrix products ----------------------------------------------------------------------- */

static void test_mul_mat(void **state)
{
    (void) state;
    const enum ggml_type ta[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16};
    for (size_t i = 0; i < 3 + N_QUANT; i++) {
        const enum ggml_type type = i < 3 ? ta[i] : quant_types[i - 3];
        for (int bs = 1; bs <= 3; bs++) {
            struct ggml_tensor *a = new4(type, 256, 16, 2, 1);
            struct ggml_tensor *b = f32(256, 7, 2 * bs, 2);
            ACCEPT(ggml_mul_mat(ctx, a, b));
        }
        /* test_mul_mat's permuted b and the k-view of a shared base */
        struct ggml_tensor *a  = new4(type, 256, 16, 3, 2);
        struct ggml_tensor *bp = ggml_permute(ctx, f32(256, 3, 7, 2), 0, 2, 1, 3);
        ACCEPT(ggml_mul_mat(ctx, a, bp));
    }
    /* non-contiguous a (a view with a larger row stride), transposed b */
    struct ggml_tensor *base = new4(GGML_TYPE_F16, 128, 64, 4, 1);
    struct ggml_tensor *av = ggml_view_3d(ctx, base, 64, 64, 4, base->nb[1], base->nb[2], 0);
    ACCEPT(ggml_mul_mat(ctx, av, f32(64, 9, 4, 1)));
    ACCEPT(ggml_mul_mat(ctx, f32(16, 32, 1, 1), ggml_transpose(ctx, f32(8, 16, 1, 1))));
    struct ggml_tensor *h = ggml_mul_mat(ctx, f32(64, 64, 1, 1), f32(64, 5, 1, 1));
    ggml_mul_mat_set_hint(h, GGML_HINT_SRC0_IS_HADAMARD);
    ggml_prec_set_acc(h, GGML_PREC_F32);
    ACCEPT(h);

    struct ggml_tensor *a = new4(GGML_TYPE_Q4_0, 256, 16, 2, 1), *b = f32(256, 7, 4, 2);
    struct ggml_tensor *t = ggml_mul_mat(ctx, a, b);
    struct ggml_tensor  m = mut(t);
    m.src[1] = f32(128, 7, 4, 2);
    REJECT(&m, "MUL_MAT inner dims differ");
    m = mut(t);
    m.src[1] = f32(256, 7, 3, 2);
    REJECT(&m, "MUL_MAT src0 planes do not divide");
    m = mut(t);
    m.ne[0] = 32, m.nb[1] = 32 * 4, m.nb[2] = m.nb[1] * 7, m.nb[3] = m.nb[2] * 4;
    REJECT(&m, "MUL_MAT dst rows too long");
    m = mut(t);
    m.type = GGML_TYPE_F16, m.nb[0] = 2, m.nb[1] = 32, m.nb[2] = 32 * 7, m.nb[3] = 32 * 7 * 4;
    REJECT(&m, "MUL_MAT F16 dst");
    m = mut(t);
    m.src[0] = ggml_transpose(ctx, f32(16, 256, 2, 1));
    REJECT(&m, "MUL_MAT transposed src0");
    m = mut(t);
    m.nb[1] = m.nb[0];
    REJECT(&m, "MUL_MAT dst rows overlapping");
    m = mut(t);
    m.src[2] = b;
    REJECT(&m, "MUL_MAT src2");
    m = mut(ggml_mul_mat(ctx, a, b));
    m.src[1] = NULL;
    REJECT(&m, "MUL_MAT without src1");

    /* MUL_MAT_ID: test_mul_mat_id shapes, including b broadcast over n_used */
    for (int n_mats = 2; n_mats <= 8; n_mats *= 2) {
        for (int n_used = 1; n_used <= n_mats && n_used <= 4; n_used *= 2) {
            for (int bcast = 0; bcast < 2; bcast++) {
                struct ggml_tensor *as  = new4(GGML_TYPE_Q4_0, 256, 16, n_mats, 1);
                struct ggml_tensor *ids = new4(GGML_TYPE_I32, n_used, 32, 1, 1);
                struct ggml_tensor *bb  = f32(256, bcast ? 1 : n_used, 32, 1);
                ACCEPT(ggml_mul_mat_id(ctx, as, bb, ids));
            }
        }
    }
    struct ggml_tensor *ids_base = new4(GGML_TYPE_I32, 8, 32, 1, 1);
    struct ggml_tensor *ids_view = ggml_view_2d(ctx, ids_base, 4, 32, ids_base->nb[1], 0);
    ACCEPT(ggml_mul_mat_id(ctx, new4(GGML_TYPE_F16, 64, 16, 8, 1), f32(64, 4, 32, 1), ids_view));

    struct ggml_tensor *as = new4(GGML_TYPE_F32, 64, 16, 8, 1);
    struct ggml_tensor *ids = new4(GGML_TYPE_I32, 4, 32, 1, 1);
    t = ggml_mul_mat_id(ctx, as, f32(64, 4, 32, 1), ids);
    m = mut(t);
    m.src[2] = new4(GGML_TYPE_I64, 4, 32, 1, 1);
    REJECT(&m, "MUL_MAT_ID I64 ids");
    m = mut(t);
    m.src[2] = new4(GGML_TYPE_I32, 4, 16, 1, 1);
    REJECT(&m, "MUL_MAT_ID ids for fewer tokens");
    m = mut(t);
    m.src[1] = f32(64, 3, 32, 1);
    REJECT(&m, "MUL_MAT_ID b rows do not divide n_used");
    m = mut(t);
    m.src[0] = new4(GGML_TYPE_F32, 64, 16, 8, 2);
    REJECT(&m, "MUL_MAT_ID 4-D experts");
    m = mut(t);
    m.src[2] = NULL;
    REJECT(&m, "MUL_MAT_ID without ids");
    m = mut(t);
    m.ne[1] = 8, m.nb[2] = m.nb[1] * 8, m.nb[3] = m.nb[2] * 32;
    REJECT(&m, "MUL_MAT_ID dst with more experts than ids");

    /* OUT_PROD */
    ACCEPT(ggml_out_prod(ctx, f32(256, 16, 1, 1), f32(32, 16, 1, 1)));
    ACCEPT(ggml_out_prod(ctx, new4(GGML_TYPE_Q4_0, 256, 16, 2, 1), f32(32, 16, 4, 2)));
    ACCEPT(ggml_out_prod(ctx, f32(256, 16, 1, 1), ggml_transpose(ctx, f32(16, 32, 1, 1))));
    m = mut(ggml_out_prod(ctx, f32(256, 16, 1, 1), f32(32, 16, 1, 1)));
    m.src[1] = f32(32, 8, 1, 1);
    REJECT(&m, "OUT_PROD k differs");
    m = mut(ggml_out_prod(ctx, f32(256, 16, 1, 1), f32(32, 16, 1, 1)));
    m.src[0] = ggml_transpose(ctx, f32(16, 256, 1, 1));
    REJECT(&m, "OUT_PROD transposed src0");
}

/* ---- copies and views ---------------------------------------------------------------------- */

static void test_copies_and_views(void **state)
{
    (void) state;
    /* test_cpy: type conversions, permuted source and destination, strided dst */
    const enum ggml_type tt[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                 GGML_TYPE_Q4_0, GGML_TYPE_IQ4_NL, GGML_TYPE_I32};
    for (size_t i = 0; i < sizeof tt / sizeof tt[0]; i++) {
        ACCEPT(ggml_cpy(ctx, f32(256, 4, 4, 4), new4(tt[i], 256, 4, 4, 4)));
        ACCEPT(ggml_cast(ctx, f32(256, 4, 4, 4), tt[i]));
    }
    ACCEPT(ggml_cpy(ctx, ggml_permute(ctx, f32(256, 2, 3, 4), 0, 2, 1, 3), f32(256, 3, 2, 4)));
    ACCEPT(ggml_cpy(ctx, f32(256, 2, 3, 4),
                    ggml_permute(ctx, new4(GGML_TYPE_F16, 256, 3, 2, 4), 0, 2, 1, 3)));
    ACCEPT(ggml_cpy(ctx, ggml_transpose(ctx, f32(16, 8, 1, 1)), f32(8, 16, 1, 1)));
    struct ggml_tensor *dbuf = f32(32, 8, 4, 1);
    ACCEPT(ggml_cpy(ctx, f32(16, 4, 4, 1),
                    ggml_view_4d(ctx, dbuf, 16, 4, 4, 1, dbuf->nb[1], dbuf->nb[2], dbuf->nb[3], 0)));
    ACCEPT(ggml_cpy(ctx, f32(128, 2, 1, 1), f32(64, 4, 1, 1))); /* reshaping copy */
    /* test_cont, cont_Nd */
    ACCEPT(ggml_cont(ctx, ggml_transpose(ctx, f32(10, 10, 10, 1))));
    ACCEPT(ggml_cont(ctx, ggml_permute(ctx, new4(GGML_TYPE_BF16, 2, 3, 5, 7), 2, 0, 3, 1)));
    struct ggml_tensor *s = f32(10, 10, 10, 1);
    ACCEPT(ggml_cont(ctx, ggml_view_4d(ctx, s, 10, 1, 10, 1, s->nb[1], s->nb[2], s->nb[3], 9 * s->nb[1])));
    ACCEPT(ggml_cont_2d(ctx, ggml_transpose(ctx, f32(6, 4, 1, 1)), 12, 2));
    ACCEPT(ggml_cont_4d(ctx, f32(6, 4, 2, 1), 3, 2, 4, 2));
    /* reshapes, views, permutations */
    struct ggml_tensor *a = f32(24, 1, 1, 1);
    ACCEPT(ggml_reshape_1d(ctx, f32(4, 6, 1, 1), 24));
    ACCEPT(ggml_reshape_2d(ctx, a, 4, 6));
    ACCEPT(ggml_reshape_3d(ctx, a, 2, 3, 4));
    ACCEPT(ggml_reshape_4d(ctx, new4(GGML_TYPE_Q4_0, 256, 4, 1, 1), 256, 2, 2, 1));
    ACCEPT(ggml_reshape(ctx, a, ggml_transpose(ctx, f32(4, 6, 1, 1))));
    ACCEPT(ggml_view_1d(ctx, a, 8, 16));
    ACCEPT(ggml_view_2d(ctx, f32(8, 8, 1, 1), 4, 4, 32, 16));
    ACCEPT(ggml_view_3d(ctx, f32(8, 8, 4, 1), 4, 4, 2, 32, 256, 16));
    ACCEPT(ggml_view_4d(ctx, f32(8, 8, 4, 2), 8, 4, 2, 2, 32, 256, 1024, 0));
    ACCEPT(ggml_sqr(ctx, ggml_view_tensor(ctx, f32(8, 8, 4, 2))));
    int perms[][4] = {{0, 1, 2, 3}, {1, 0, 2, 3}, {0, 2, 1, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}, {1, 3, 0, 2}};
    for (size_t p = 0; p < 6; p++) {
        ACCEPT(ggml_cont(ctx, ggml_permute(ctx, f32(2, 3, 4, 5), perms[p][0], perms[p][1],
                                           perms[p][2], perms[p][3])));
    }
    ACCEPT(ggml_cont(ctx, ggml_transpose(ctx, ggml_permute(ctx, f32(2, 3, 4, 5), 0, 2, 1, 3))));

    struct ggml_tensor *src = f32(256, 4, 4, 4);
    struct ggml_tensor *t = ggml_cpy(ctx, src, new4(GGML_TYPE_F16, 256, 4, 4, 4));
    struct ggml_tensor  m = mut(t);
    m.src[1] = new4(GGML_TYPE_F16, 256, 4, 4, 2);
    REJECT(&m, "CPY element counts differ");
    m = mut(t);
    m.type = GGML_TYPE_F32, repack(&m);
    REJECT(&m, "CPY dst type != src1 type");
    m = mut(t);
    m.ne[1] = 8, m.ne[2] = 2;
    REJECT(&m, "CPY dst shape != src1 shape");
    m = mut(t);
    m.src[1] = NULL;
    REJECT(&m, "CPY without src1");

    t = ggml_reshape_2d(ctx, a, 4, 6);
    m = mut(t);
    m.ne[1] = 8;
    REJECT(&m, "RESHAPE element count");
    m = mut(t);
    m.view_src = NULL;
    REJECT(&m, "RESHAPE without view_src");
    m = mut(t);
    m.src[0] = ggml_transpose(ctx, f32(6, 4, 1, 1));
    REJECT(&m, "RESHAPE of a non-contiguous tensor");
    m = mut(t);
    m.nb[1] = 4;
    REJECT(&m, "RESHAPE result not packed");
    m = mut(t);
    m.type = GGML_TYPE_I32;
    REJECT(&m, "RESHAPE type change");

    t = ggml_view_2d(ctx, f32(8, 8, 1, 1), 4, 4, 32, 16);
    m = mut(t);
    m.type = GGML_TYPE_F16;
    REJECT(&m, "VIEW type change");
    m = mut(t);
    m.view_src = NULL;
    REJECT(&m, "VIEW without view_src");
    m = mut(t);
    m.src[1] = a;
    REJECT(&m, "VIEW with src1");

    t = ggml_permute(ctx, f32(2, 3, 4, 5), 2, 0, 3, 1);
    m = mut(t);
    set_i32(&m, 1, 2);
    REJECT(&m, "PERMUTE repeated axis");
    m = mut(t);
    set_i32(&m, 3, 4);
    REJECT(&m, "PERMUTE axis 4");
    m = mut(t);
    set_i32(&m, 0, -1);
    REJECT(&m, "PERMUTE axis -1");
    m = mut(t);
    m.ne[0] = 5;
    REJECT(&m, "PERMUTE ne not permuted");
    m = mut(t);
    m.nb[2] = 8;
    REJECT(&m, "PERMUTE nb not permuted");
    t = ggml_transpose(ctx, f32(2, 3, 4, 5));
    m = mut(t);
    m.nb[0] = 4;
    REJECT(&m, "TRANSPOSE nb not swapped");
    m = mut(t);
    m.ne[0] = 2, m.ne[1] = 3;
    REJECT(&m, "TRANSPOSE ne not swapped");
}

static void test_rows(void **state)
{
    (void) state;
    /* test_get_rows: quantized / F16 / I32 sources, batched, views of the rows */
    const enum ggml_type tt[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_I32,
                                 GGML_TYPE_Q4_0, GGML_TYPE_Q8_0, GGML_TYPE_Q6_K, GGML_TYPE_IQ4_XS};
    for (size_t i = 0; i < sizeof tt / sizeof tt[0]; i++) {
        const int64_t n = ggml_blck_size(tt[i]) * 2;
        ACCEPT(ggml_get_rows(ctx, new4(tt[i], n, 10, 1, 1), new4(GGML_TYPE_I32, 5, 1, 1, 1)));
        ACCEPT(ggml_get_rows(ctx, new4(tt[i], n, 10, 3, 2), new4(GGML_TYPE_I32, 5, 3, 2, 1)));
        struct ggml_tensor *rows = new4(GGML_TYPE_I32, 10, 3, 1, 1);
        ACCEPT(ggml_get_rows(ctx, new4(tt[i], n, 10, 3, 1),
                             ggml_view_2d(ctx, rows, 5, 3, rows->nb[1], 0)));
        struct ggml_tensor *big = new4(tt[i], 2 * n, 10, 3, 1);
        ACCEPT(ggml_get_rows(ctx, ggml_view_3d(ctx, big, n, 10, 3, big->nb[1], big->nb[2], 0),
                             new4(GGML_TYPE_I32, 7, 3, 1, 1)));
    }
    /* test_get_rows_back */
    ACCEPT(ggml_get_rows_back(ctx, f32(16, 5, 1, 1), new4(GGML_TYPE_I32, 5, 1, 1, 1), f32(16, 10, 1, 1)));
    struct ggml_tensor *rb = new4(GGML_TYPE_I32, 10, 1, 1, 1);
    ACCEPT(ggml_get_rows_back(ctx, f32(16, 10, 1, 1), ggml_view_1d(ctx, rb, 5, 0), f32(16, 20, 1, 1)));
    /* test_set_rows: F32/F16 values, I64/I32 rows, quantized destinations, broadcast rows */
    const enum ggml_type dt[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                 GGML_TYPE_Q4_0, GGML_TYPE_IQ4_NL};
    for (size_t i = 0; i < sizeof dt / sizeof dt[0]; i++) {
        for (int it = 0; it < 2; it++) {
            const enum ggml_type itype = it ? GGML_TYPE_I32 : GGML_TYPE_I64;
            const int64_t        n     = 256;
            struct ggml_tensor *dst  = new4(dt[i], n, 20, 6, 2);
            struct ggml_tensor *vals = f32(n, 5, 6, 2);
            ACCEPT(ggml_set_rows(ctx, dst, vals, new4(itype, 5, 6, 2, 1)));
            ACCEPT(ggml_set_rows(ctx, dst, vals, new4(itype, 5, 3, 1, 1)));
            ACCEPT(ggml_set_rows(ctx, dst, new4(GGML_TYPE_F16, n, 5, 6, 2), new4(itype, 5, 2, 2, 1)));
            /* into a view of the destination (the KV-cache pattern) */
            struct ggml_tensor *big = new4(dt[i], 2 * n, 20, 6, 2);
            struct ggml_tensor *dv  = ggml_view_4d(ctx, big, n, 20, 6, 2, big->nb[1], big->nb[2],
                                                   big->nb[3], 0);
            ACCEPT(ggml_set_rows(ctx, dv, vals, new4(itype, 5, 6, 2, 1)));
        }
    }

    /* negatives: the ggml-rpc CVE classes (llama.cpp #26825 / #26912) */
    struct ggml_tensor *a = f32(16, 10, 3, 2), *ids = new4(GGML_TYPE_I32, 5, 3, 2, 1);
    struct ggml_tensor *t = ggml_get_rows(ctx, a, ids);
    struct ggml_tensor  m = mut(t);
    m.src[1] = new4(GGML_TYPE_I32, 5, 4, 2, 1);
    m.ne[2] = 4, m.nb[3] = m.nb[2] * 4;
    REJECT(&m, "GET_ROWS rows for more planes than src0 has (OOB read)");
    m = mut(t);
    m.ne[1] = 2, m.nb[2] = m.nb[1] * 2, m.nb[3] = m.nb[2] * 3;
    REJECT(&m, "GET_ROWS dst with fewer rows than ids (OOB write)");
    m = mut(t);
    m.ne[0] = 32, m.nb[1] = 128, m.nb[2] = 128 * 5, m.nb[3] = 128 * 15;
    REJECT(&m, "GET_ROWS dst rows wider than src0 rows");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I64, 5, 3, 2, 1);
    REJECT(&m, "GET_ROWS I64 ids");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_F32, 5, 3, 2, 1);
    REJECT(&m, "GET_ROWS F32 ids");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I32, 5, 3, 2, 2);
    REJECT(&m, "GET_ROWS 4-D ids");
    m = mut(t);
    m.type = GGML_TYPE_F16, m.nb[0] = 2, m.nb[1] = 32, m.nb[2] = 160, m.nb[3] = 480;
    REJECT(&m, "GET_ROWS F16 dst");
    /* a size-1 dim with a huge stride (ggml_nbytes ignores it) does not pass for a packed dst */
    m = mut(ggml_get_rows(ctx, f32(16, 10, 1, 1), new4(GGML_TYPE_I32, 5, 1, 1, 1)));
    m.nb[2] = (size_t) 1 << 40;
    REJECT(&m, "GET_ROWS dst size-1 dim with a huge stride");

    struct ggml_tensor *dst = new4(GGML_TYPE_F16, 64, 20, 6, 2), *vals = f32(64, 5, 6, 2);
    struct ggml_tensor *rows = new4(GGML_TYPE_I64, 5, 3, 2, 1);
    t = ggml_set_rows(ctx, dst, vals, rows);
    m = mut(t);
    m.src[2] = new4(GGML_TYPE_F16, 64, 20, 3, 2);
    REJECT(&m, "SET_ROWS dest with fewer planes than the values (OOB write)");
    m = mut(t);
    m.ne[2] = 12, m.nb[3] = m.nb[2] * 12;
    REJECT(&m, "SET_ROWS dst larger than dest");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I64, 6, 3, 2, 1);
    REJECT(&m, "SET_ROWS more rows than values");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I64, 5, 4, 2, 1);
    REJECT(&m, "SET_ROWS rows do not broadcast");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I64, 5, 0, 2, 1);
    REJECT(&m, "SET_ROWS rows with a zero broadcast dim");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I16, 5, 3, 2, 1);
    REJECT(&m, "SET_ROWS I16 rows");
    m = mut(t);
    m.src[0] = new4(GGML_TYPE_BF16, 64, 5, 6, 2);
    REJECT(&m, "SET_ROWS BF16 values");
    m = mut(t);
    m.src[0] = f32(32, 5, 6, 2);
    REJECT(&m, "SET_ROWS values narrower than dest rows");
    m = mut(t);
    m.src[2] = NULL;
    REJECT(&m, "SET_ROWS without dest");
    m = mut(t);
    m.src[0] = ggml_transpose(ctx, f32(5, 64, 6, 2));
    REJECT(&m, "SET_ROWS transposed values");
    m = mut(t);
    m.type = GGML_TYPE_F32, repack(&m);
    REJECT(&m, "SET_ROWS dst type != dest type");

    t = ggml_get_rows_back(ctx, f32(16, 5, 1, 1), new4(GGML_TYPE_I32, 5, 1, 1, 1), f32(16, 10, 1, 1));
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I32, 8, 1, 1, 1);
    REJECT(&m, "GET_ROWS_BACK more rows than grad rows");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I32, 5, 2, 1, 1);
    REJECT(&m, "GET_ROWS_BACK 2-D rows");
    m = mut(t);
    m.ne[0] = 8, repack(&m);
    REJECT(&m, "GET_ROWS_BACK dst width");
}

/* ---- rope ----------------------------------------------------------------------------------- */

static struct ggml_tensor *rope_of(struct ggml_tensor *a, int n_dims, int mode, bool ff, bool inplace,
                                   bool back)
{
    const bool is_mrope = mode & GGML_ROPE_TYPE_MROPE, is_vision = mode == GGML_ROPE_TYPE_VISION;
    struct ggml_tensor *pos = new4(GGML_TYPE_I32, a->ne[2] * (is_mrope ? 4 : 1), 1, 1, 1);
    struct ggml_tensor *freq = ff ? f32(n_dims / 2, 1, 1, 1) : NULL;
    if (is_vision) {
        int sec[4] = {n_dims / 4, n_dims / 4, 0, 0};
        return back ? ggml_rope_multi_back(ctx, a, pos, freq, n_dims / 2, sec, mode, 0, 1e4f, 1, 0, 1, 1, 1)
               : inplace ? ggml_rope_multi_inplace(ctx, a, pos, freq, n_dims / 2, sec, mode, 0, 1e4f, 1, 0, 1, 1, 1)
                         : ggml_rope_multi(ctx, a, pos, freq, n_dims / 2, sec, mode, 0, 1e4f, 1, 0, 1, 1, 1);
    }
    if (is_mrope) {
        int sec[4] = {n_dims / 3, n_dims / 3, n_dims / 3, 0};
        return back ? ggml_rope_multi_back(ctx, a, pos, freq, n_dims, sec, mode, 0, 1e4f, 1, 0, 1, 1, 1)
               : inplace ? ggml_rope_multi_inplace(ctx, a, pos, freq, n_dims, sec, mode, 0, 1e4f, 1, 0, 1, 1, 1)
                         : ggml_rope_multi(ctx, a, pos, freq, n_dims, sec, mode, 0, 1e4f, 1, 0, 1, 1, 1);
    }
    return back ? ggml_rope_ext_back(ctx, a, pos, freq, n_dims, mode, 512, 1e4f, 1, 0, 1, 32, 1)
           : inplace ? ggml_rope_ext_inplace(ctx, a, pos, freq, n_dims, mode, 512, 1e4f, 1, 0, 1, 32, 1)
                     : ggml_rope_ext(ctx, a, pos, freq, n_dims, mode, 512, 1e4f, 1, 0, 1, 32, 1);
}

static void test_rope(void **state)
{
    (void) state;
    const int modes[] = {GGML_ROPE_TYPE_NORMAL, GGML_ROPE_TYPE_NEOX, GGML_ROPE_TYPE_MROPE,
                         GGML_ROPE_TYPE_IMROPE, GGML_ROPE_TYPE_VISION};
    const struct { int64_t ne0; int n_dims; } dims[] = {{128, 128}, {128, 64}, {64, 64}, {80, 80},
                                                        {120, 120}};
    const enum ggml_type types[] = {GGML_TYPE_F32, GGML_TYPE_F16};
    for (size_t mo = 0; mo < 5; mo++) {
        for (size_t d = 0; d < 5; d++) {
            if (modes[mo] == GGML_ROPE_TYPE_VISION && dims[d].n_dims != dims[d].ne0) {
                continue;
            }
            for (size_t ty = 0; ty < 2; ty++) {
                for (int ff = 0; ff < 2; ff++) {
                    for (int v = 0; v < 3; v++) {
                        struct ggml_tensor *a =
                            v == 1 ? strided(types[ty], dims[d].ne0, 32, 2, 1)
                                   : new4(types[ty], dims[d].ne0, 32, 2, 1);
                        ACCEPT(rope_of(a, dims[d].n_dims, modes[mo], ff, v == 2, false));
                        ACCEPT(rope_of(new4(types[ty], dims[d].ne0, 4, 7, 1), dims[d].n_dims,
                                       modes[mo], ff, false, true));
                    }
                }
            }
        }
    }
    /* rotated window offset (ggml_rope_set_offset) */
    struct ggml_tensor *o = rope_of(f32(128, 8, 3, 1), 64, GGML_ROPE_TYPE_NEOX, false, false, false);
    ggml_rope_set_offset(o, 64);
    ACCEPT(o);
    /* rope of a view of a fused QKV tensor (the llama.cpp pattern) */
    struct ggml_tensor *qkv = f32(3 * 4096, 7, 1, 1);
    struct ggml_tensor *q = ggml_view_3d(ctx, qkv, 128, 32, 7, 128 * 4, qkv->nb[1], 0);
    ACCEPT(ggml_rope_ext(ctx, q, new4(GGML_TYPE_I32, 7, 1, 1, 1), NULL, 128, GGML_ROPE_TYPE_NEOX, 4096,
                         1e4f, 1, 0, 1, 32, 1));

    struct ggml_tensor *a = f32(128, 32, 2, 1);
    struct ggml_tensor *t = rope_of(a, 64, GGML_ROPE_TYPE_NEOX, true, false, false);
    struct ggml_tensor  m = mut(t);
    set_i32(&m, 1, 130);
    REJECT(&m, "ROPE n_dims > ne0");
    set_i32(&m, 1, 63);
    REJECT(&m, "ROPE odd n_dims");
    set_i32(&m, 1, -2);
    REJECT(&m, "ROPE negative n_dims");
    m = mut(t);
    set_i32(&m, 2, 1);
    REJECT(&m, "ROPE mode 1");
    set_i32(&m, 2, 4);
    REJECT(&m, "ROPE mode 4");
    m = mut(t);
    set_i32(&m, 15, 96);
    REJECT(&m, "ROPE n_offs + n_dims > ne0");
    set_i32(&m, 15, 3);
    REJECT(&m, "ROPE odd n_offs");
    set_i32(&m, 15, -2);
    REJECT(&m, "ROPE negative n_offs");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I32, 3, 1, 1, 1);
    REJECT(&m, "ROPE too few positions");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I64, 2, 1, 1, 1);
    REJECT(&m, "ROPE I64 positions");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I32, 2, 2, 1, 1);
    REJECT(&m, "ROPE 2-D positions");
    struct ggml_tensor pz = *new4(GGML_TYPE_I32, 2, 1, 1, 1);
    pz.nb[0] = 0;
    m = mut(t);
    m.src[1] = &pz;
    REJECT(&m, "ROPE positions with stride 0");
    m = mut(t);
    m.src[2] = f32(16, 1, 1, 1);
    REJECT(&m, "ROPE freq factors shorter than n_dims/2");
    m = mut(t);
    m.src[2] = new4(GGML_TYPE_F16, 32, 1, 1, 1);
    REJECT(&m, "ROPE F16 freq factors");
    m = mut(t);
    m.src[1] = NULL;
    REJECT(&m, "ROPE without positions");
    m = mut(t);
    m.src[3] = a;
    REJECT(&m, "ROPE src3");
    m = mut(t);
    m.type = GGML_TYPE_F16;
    REJECT(&m, "ROPE dst type");

    t = rope_of(f32(128, 32, 2, 1), 96, GGML_ROPE_TYPE_MROPE, false, false, false);
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_I32, 2, 1, 1, 1);
    REJECT(&m, "MROPE one position per token");
    m = mut(t);
    set_i32(&m, 11, 0), set_i32(&m, 12, 0), set_i32(&m, 13, 0), set_i32(&m, 14, 0);
    REJECT(&m, "MROPE empty sections");
    m = mut(t);
    set_i32(&m, 11, 100), set_i32(&m, 12, 100);
    REJECT(&m, "MROPE sections beyond ne0");
    m = mut(t);
    set_i32(&m, 11, -32), set_i32(&m, 12, 64);
    REJECT(&m, "MROPE negative section");
    t = rope_of(f32(128, 32, 2, 1), 128, GGML_ROPE_TYPE_VISION, false, false, false);
    m = mut(t);
    set_i32(&m, 1, 32);
    REJECT(&m, "VISION n_dims != ne0/2");
}

/* ---- attention ------------------------------------------------------------------------------ */

static struct ggml_tensor *fa_of(int64_t hsk, int64_t hsv, int64_t nh, int nr2, int nr3, int64_t kv,
                                 int64_t nb, bool mask, bool sinks, float max_bias, float softcap,
                                 enum ggml_type tk, enum ggml_type tv, bool permute, bool kv_view,
                                 bool v_of_k)
{
    const int64_t hskp = (hsk + ggml_blck_size(tk) - 1) / ggml_blck_size(tk) * ggml_blck_size(tk);
    const int64_t hsvp = (hsv + ggml_blck_size(tv) - 1) / ggml_blck_size(tv) * ggml_blck_size(tv);
    struct ggml_tensor *q, *k, *v;
    if (permute) {
        q = ggml_permute(ctx, f32(hskp, nh * nr2, nb, nr3), 0, 2, 1, 3);
    } else {
        q = f32(hskp, nb, nh * nr2, nr3);
    }
    if (kv_view) {
        struct ggml_tensor *k0 = new4(tk, hskp, 2 * kv, nh, nr3);
        k = ggml_view_4d(ctx, k0, hskp, kv, nh, nr3, k0->nb[1], k0->nb[2], k0->nb[3], 0);
    } else {
        k = new4(tk, hskp, kv, nh, nr3);
    }
    if (v_of_k) {
        v = ggml_view_4d(ctx, k, hsvp, kv, nh, nr3, k->nb[1], k->nb[2], k->nb[3], 0);
    } else {
        v = new4(tv, hsvp, kv, nh, nr3);
    }
    struct ggml_tensor *m = mask ? new4(GGML_TYPE_F16, kv, nb, 1, nr3) : NULL;
    struct ggml_tensor *out = ggml_flash_attn_ext(ctx, q, k, v, m, 0.125f, max_bias, softcap);
    if (sinks) {
        ggml_flash_attn_ext_add_sinks(out, f32(q->ne[2], 1, 1, 1));
    }
    ggml_prec_set_acc(out, GGML_PREC_F32);
    return out;
}

static void test_flash_attn_ext(void **state)
{
    (void) state;
    const int64_t hs[][2] = {{40, 40}, {64, 64}, {128, 128}, {192, 128}, {576, 512}, {256, 256}};
    const enum ggml_type kt[] = {GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
                                 GGML_TYPE_F32};
    for (size_t h = 0; h < 6; h++) {
        for (int mask = 0; mask < 2; mask++) {
            for (int sinks = 0; sinks < 2; sinks++) {
                for (int nr2 = 1; nr2 <= 4; nr2 *= 4) {
                    const float mb = mask ? 8.0f : 0.0f;
                    ACCEPT(fa_of(hs[h][0], hs[h][1], 4, nr2, 1, 113, 7, mask, sinks, mb, 0.0f,
                                 GGML_TYPE_F16, GGML_TYPE_F16, false, false, false));
                    ACCEPT(fa_of(hs[h][0], hs[h][1], 4, nr2, 3, 512, 1, mask, sinks, 0.0f, 10.0f,
                                 GGML_TYPE_F16, GGML_TYPE_F16, true, true, false));
                }
            }
        }
    }
    for (size_t i = 0; i < 5; i++) {
        ACCEPT(fa_of(128, 128, 8, 4, 1, 1024, 35, true, false, 0, 0, kt[i], kt[i], false, true,
                     false));
    }
    ACCEPT(fa_of(576, 512, 16, 1, 1, 256, 4, true, false, 0, 0, GGML_TYPE_F16, GGML_TYPE_F16,
                 false, true, true)); /* MLA: v a view of k */
    struct ggml_tensor *nk = fa_of(64, 64, 4, 1, 1, 256, 8, true, false, 0, 0, GGML_TYPE_F16,
                                   GGML_TYPE_F16, false, false, false);
    ggml_flash_attn_ext_set_n_kv_max(nk, 32);
    ACCEPT(nk);

    struct ggml_tensor *t = fa_of(64, 64, 4, 2, 1, 128, 7, true, true, 8.0f, 0.0f, GGML_TYPE_F16,
                                  GGML_TYPE_F16, false, false, false);
    struct ggml_tensor *q = t->src[0], *k = t->src[1], *v = t->src[2];
    struct ggml_tensor  m = mut(t);
    m.src[3] = new4(GGML_TYPE_F16, 100, 7, 1, 1);
    REJECT(&m, "FA mask narrower than n_kv");
    m = mut(t);
    m.src[3] = new4(GGML_TYPE_F16, 128, 6, 1, 1);
    REJECT(&m, "FA mask with fewer rows than queries");
    m = mut(t);
    m.src[3] = new4(GGML_TYPE_F32, 128, 7, 1, 1);
    REJECT(&m, "FA F32 mask");
    m = mut(t);
    m.src[3] = new4(GGML_TYPE_F16, 128, 7, 3, 1);
    REJECT(&m, "FA mask heads do not divide");
    m = mut(t);
    m.src[3] = NULL;
    REJECT(&m, "FA max_bias without mask");
    m = mut(t);
    m.src[2] = new4(GGML_TYPE_F16, 64, 100, 4, 1);
    REJECT(&m, "FA v with fewer rows than k");
    m = mut(t);
    m.src[2] = new4(GGML_TYPE_F16, 64, 128, 3, 1);
    REJECT(&m, "FA v heads do not divide q heads");
    m = mut(t);
    m.src[2] = new4(GGML_TYPE_F16, 64, 128, 16, 1);
    REJECT(&m, "FA v with more heads than q (division by zero)");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_F16, 32, 128, 4, 1);
    REJECT(&m, "FA k head size != q head size");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_F16, 64, 128, 3, 1);
    REJECT(&m, "FA k heads do not divide");
    m = mut(t);
    m.src[2] = NULL;
    REJECT(&m, "FA without v");
    m = mut(t);
    m.src[4] = f32(4, 1, 1, 1);
    REJECT(&m, "FA sinks for half the heads");
    m = mut(t);
    m.src[5] = q;
    REJECT(&m, "FA src5");
    m = mut(t);
    set_i32(&m, 4, -1);
    REJECT(&m, "FA negative n_kv_max");
    m = mut(t);
    m.ne[0] = 128, m.nb[1] = 512, m.nb[2] = 512 * 8, m.nb[3] = 512 * 8 * 7;
    REJECT(&m, "FA dst wider than v");
    m = mut(t);
    m.ne[1] = 4, m.nb[2] = m.nb[1] * 4, m.nb[3] = m.nb[2] * 7;
    REJECT(&m, "FA dst with fewer heads than q");
    (void) k, (void) v;
}

/* ---- convolutions, pooling, padding ------------------------------------------------------ */

static void test_conv(void **state)
{
    (void) state;
    /* test_im2col: 1-D and 2-D, F16/F32 results, strides, paddings, dilations */
    const enum ggml_type dt[] = {GGML_TYPE_F32, GGML_TYPE_F16};
    for (int d = 0; d < 2; d++) {
        for (int s = 1; s <= 2; s++) {
            for (int p = 0; p <= 1; p++) {
                for (int dil = 1; dil <= 2; dil++) {
                    ACCEPT(ggml_im2col(ctx, new4(GGML_TYPE_F16, 3, 3, 3, 10), f32(10, 10, 3, 1), s, s,
                                       p, p, dil, dil, true, dt[d]));
                    ACCEPT(ggml_im2col(ctx, new4(GGML_TYPE_F16, 3, 2, 1, 1), f32(10, 2, 2, 1), s, 0,
                                       p, 0, dil, 0, false, dt[d]));
                }
            }
        }
    }
    ACCEPT(ggml_im2col(ctx, f32(3, 3, 1, 32), f32(12, 12, 1, 32), 1, 1, 1, 1, 1, 1, true, GGML_TYPE_F32));
    /* composite convolutions (im2col + mul_mat + reshape/permute/cont) */
    ACCEPT(ggml_conv_1d(ctx, new4(GGML_TYPE_F16, 3, 80, 384, 1), f32(3000, 80, 1, 1), 1, 1, 1));
    ACCEPT(ggml_conv_1d_dw(ctx, new4(GGML_TYPE_F16, 3, 1, 24, 1), f32(20, 24, 1, 1), 1, 1, 1));
    ACCEPT(ggml_conv_2d(ctx, new4(GGML_TYPE_F16, 3, 3, 16, 32), f32(20, 20, 16, 2), 1, 1, 1, 1, 1, 1));
    ACCEPT(ggml_conv_2d_sk_p0(ctx, new4(GGML_TYPE_F16, 14, 14, 3, 64), f32(224, 224, 3, 1)));
    ACCEPT(ggml_conv_2d_dw(ctx, new4(GGML_TYPE_F16, 3, 3, 1, 8), f32(17, 17, 8, 2), 1, 1, 1, 1, 1, 1));
    ACCEPT(ggml_conv_3d(ctx, new4(GGML_TYPE_F16, 3, 3, 3, 2 * 4), f32(8, 8, 8, 2 * 3), 2, 1, 1, 1,
                        0, 0, 0, 1, 1, 1));
    /* im2col_3d, im2col_back */
    ACCEPT(ggml_im2col_3d(ctx, new4(GGML_TYPE_F16, 3, 3, 3, 6), f32(10, 10, 10, 6), 3, 1, 1, 1, 1, 1, 1,
                          1, 1, 1, GGML_TYPE_F32));
    {
        struct ggml_tensor *kern = new4(GGML_TYPE_F16, 3, 3, 4, 8), *in = f32(10, 9, 4, 2);
        struct ggml_tensor *col  = ggml_im2col(ctx, kern, in, 1, 2, 1, 0, 1, 1, true, GGML_TYPE_F32);
        ACCEPT(ggml_im2col_back(ctx, col, kern, in->ne, 1, 2, 1, 0, 1, 1, true));
        struct ggml_tensor *k1 = new4(GGML_TYPE_F16, 3, 4, 1, 1), *in1 = f32(12, 4, 3, 1);
        struct ggml_tensor *c1 = ggml_im2col(ctx, k1, in1, 2, 0, 1, 0, 1, 0, false, GGML_TYPE_F32);
        ACCEPT(ggml_im2col_back(ctx, c1, k1, in1->ne, 2, 0, 1, 0, 1, 0, false));
    }
    /* direct convolutions */
    for (int s = 1; s <= 2; s++) {
        ACCEPT(ggml_conv_2d_direct(ctx, new4(GGML_TYPE_F16, 3, 3, 8, 16), f32(19, 17, 8, 2), s, s, 1,
                                   0, 1, 2));
        ACCEPT(ggml_conv_2d_direct(ctx, f32(1, 1, 8, 16), f32(19, 17, 8, 2), s, s, 0, 0, 1, 1));
        ACCEPT(ggml_conv_3d_direct(ctx, f32(3, 3, 3, 4 * 5), f32(9, 9, 9, 4 * 2), s, s, s, 1, 1, 1, 1,
                                   1, 1, 4, 2, 5));
        ACCEPT(ggml_conv_3d_direct(ctx, new4(GGML_TYPE_F16, 2, 2, 2, 3), f32(9, 9, 9, 3), s, 1, 1, 0,
                                   0, 0, 1, 1, 1, 3, 1, 1));
    }
    ACCEPT(ggml_conv_2d_direct(ctx, f32(3, 3, 8, 16), ggml_permute(ctx, f32(8, 19, 17, 2), 2, 0, 1, 3),
                               1, 1, 1, 1, 1, 1));
    /* test_conv_2d_dw: WHCN and CWHN */
    for (int cwhn = 0; cwhn < 2; cwhn++) {
        for (int s = 1; s <= 2; s++) {
            struct ggml_tensor *in = f32(17, 13, 8, 2), *kern = new4(GGML_TYPE_F16, 3, 3, 1, 8);
            if (cwhn) {
                in = ggml_permute(ctx, ggml_cont(ctx, ggml_permute(ctx, in, 1, 2, 0, 3)), 2, 0, 1, 3);
                kern = ggml_permute(ctx, ggml_cont(ctx, ggml_permute(ctx, kern, 2, 3, 1, 0)), 3, 2, 0, 1);
            }
            ACCEPT(ggml_conv_2d_dw_direct(ctx, kern, in, s, s, 1, 1, 1, 1));
        }
    }
    /* transposed convolutions, col2im */
    ACCEPT(ggml_conv_transpose_1d(ctx, f32(3, 2, 2, 1), f32(197, 2, 1, 1), 1, 0, 1));
    ACCEPT(ggml_conv_transpose_1d(ctx, new4(GGML_TYPE_F16, 16, 32, 64, 1), f32(100, 64, 1, 1), 3, 0, 1));
    ACCEPT(ggml_conv_transpose_2d_p0(ctx, new4(GGML_TYPE_F16, 3, 2, 3, 1), f32(10, 10, 1, 1), 1));
    ACCEPT(ggml_conv_transpose_2d_p0(ctx, f32(3, 2, 3, 4), f32(3, 2, 4, 2), 2));
    ACCEPT(ggml_col2im_1d(ctx, f32(4 * 3, 10, 1, 1), 2, 3, 1));
    ACCEPT(ggml_col2im_1d(ctx, new4(GGML_TYPE_F16, 16 * 8, 50, 1, 1), 4, 8, 6));

    /* negatives */
    struct ggml_tensor *kern = new4(GGML_TYPE_F16, 3, 3, 3, 10), *in = f32(10, 10, 3, 1);
    struct ggml_tensor *t = ggml_im2col(ctx, kern, in, 1, 1, 1, 1, 1, 1, true, GGML_TYPE_F16);
    struct ggml_tensor  m = mut(t);
    set_i32(&m, 0, 0);
    REJECT(&m, "IM2COL stride 0");
    m = mut(t);
    set_i32(&m, 1, -1);
    REJECT(&m, "IM2COL negative stride");
    m = mut(t);
    set_i32(&m, 6, 2);
    REJECT(&m, "IM2COL is_2D 2");
    m = mut(t);
    set_i32(&m, 2, 0);
    REJECT(&m, "IM2COL padding changed: OW mismatch");
    m = mut(t);
    m.src[1] = f32(10, 10, 4, 1);
    REJECT(&m, "IM2COL channels differ");
    m = mut(t);
    m.src[1] = ggml_transpose(ctx, f32(10, 10, 3, 1));
    REJECT(&m, "IM2COL transposed input planes");
    m = mut(t);
    m.ne[0] = 28, m.nb[1] = 56, m.nb[2] = 56 * 10, m.nb[3] = 56 * 100;
    REJECT(&m, "IM2COL dst ne0 != IC*KH*KW");
    m = mut(t);
    m.src[1] = f32(2, 2, 3, 1);
    REJECT(&m, "IM2COL input smaller than kernel");

    t = ggml_conv_2d_direct(ctx, new4(GGML_TYPE_F16, 3, 3, 8, 16), f32(19, 17, 8, 2), 1, 1, 1, 0, 1, 2);
    m = mut(t);
    set_i32(&m, 0, 0);
    REJECT(&m, "CONV_2D stride 0");
    m = mut(t);
    set_i32(&m, 3, 1);
    REJECT(&m, "CONV_2D padding changed: OH mismatch");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_F16, 19, 17, 8, 2);
    m.type = GGML_TYPE_F16, repack(&m);
    REJECT(&m, "CONV_2D F16 input (CPU reads it as float)");
    m = mut(t);
    m.src[0] = ggml_permute(ctx, new4(GGML_TYPE_F16, 3, 3, 16, 8), 0, 1, 3, 2);
    REJECT(&m, "CONV_2D non-contiguous kernel");
    m = mut(t);
    m.src[0] = new4(GGML_TYPE_F16, 3, 3, 4, 16);
    REJECT(&m, "CONV_2D channels differ");

    t = ggml_conv_3d_direct(ctx, f32(3, 3, 3, 4 * 5), f32(9, 9, 9, 4 * 2), 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            4, 2, 5);
    m = mut(t);
    set_i32(&m, 9, -4), set_i32(&m, 10, -2), set_i32(&m, 11, -5);
    REJECT(&m, "CONV_3D negative c/n/oc");
    m = mut(t);
    set_i32(&m, 9, 2);
    REJECT(&m, "CONV_3D c*oc != kernel ne3");
    m = mut(t);
    set_i32(&m, 2, 0);
    REJECT(&m, "CONV_3D stride 0");

    t = ggml_conv_2d_dw_direct(ctx, new4(GGML_TYPE_F16, 3, 3, 1, 8), f32(17, 13, 8, 2), 1, 1, 1, 1, 1, 1);
    m = mut(t);
    m.src[0] = new4(GGML_TYPE_F16, 3, 3, 1, 4);
    REJECT(&m, "CONV_2D_DW kernel channels differ");
    m = mut(t);
    m.src[1] = ggml_permute(ctx, f32(17, 8, 13, 2), 0, 2, 1, 3);
    REJECT(&m, "CONV_2D_DW input neither WHCN nor CWHN");
    m = mut(t);
    m.nb[0] = 8 * 4, m.nb[1] = 17 * 8 * 4, m.nb[2] = 4;
    REJECT(&m, "CONV_2D_DW CWHN dst for a WHCN input");
    m = mut(t);
    set_i32(&m, 1, 0);
    REJECT(&m, "CONV_2D_DW stride 0");

    t = ggml_conv_transpose_1d(ctx, f32(3, 2, 2, 1), f32(197, 2, 1, 1), 2, 0, 1);
    m = mut(t);
    set_i32(&m, 0, -1);
    REJECT(&m, "CONV_TRANSPOSE_1D negative stride (writes before dst)");
    m = mut(t);
    set_i32(&m, 1, 1);
    REJECT(&m, "CONV_TRANSPOSE_1D p0 1");
    m = mut(t);
    m.src[1] = f32(197, 3, 1, 1);
    REJECT(&m, "CONV_TRANSPOSE_1D channels differ");
    t = ggml_conv_transpose_2d_p0(ctx, f32(3, 2, 3, 4), f32(3, 2, 4, 2), 2);
    m = mut(t);
    set_i32(&m, 0, 0);
    REJECT(&m, "CONV_TRANSPOSE_2D stride 0");
    m = mut(t);
    set_i32(&m, 0, 3);
    REJECT(&m, "CONV_TRANSPOSE_2D stride changed: size mismatch");

    t = ggml_col2im_1d(ctx, f32(4 * 3, 10, 1, 1), 2, 3, 1);
    m = mut(t);
    set_i32(&m, 1, 5);
    REJECT(&m, "COL2IM_1D oc not dividing ne0");
    m = mut(t);
    set_i32(&m, 0, 0);
    REJECT(&m, "COL2IM_1D stride 0");
    m = mut(t);
    set_i32(&m, 2, -1);
    REJECT(&m, "COL2IM_1D negative padding");

    struct ggml_tensor *kk = new4(GGML_TYPE_F16, 3, 3, 4, 8), *ii = f32(10, 9, 4, 2);
    struct ggml_tensor *col = ggml_im2col(ctx, kk, ii, 1, 1, 1, 1, 1, 1, true, GGML_TYPE_F32);
    t = ggml_im2col_back(ctx, col, kk, ii->ne, 1, 1, 1, 1, 1, 1, true);
    m = mut(t);
    set_i32(&m, 0, 0);
    REJECT(&m, "IM2COL_BACK stride 0 (remainder by zero)");
    m = mut(t);
    m.ne[3] = 4, m.nb[3] = m.nb[2] * 4;
    REJECT(&m, "IM2COL_BACK more images than the gradient holds");
    m = mut(t);
    m.src[1] = new4(GGML_TYPE_F16, 5, 3, 4, 8);
    REJECT(&m, "IM2COL_BACK kernel width != gradient columns");

    t = ggml_im2col_3d(ctx, new4(GGML_TYPE_F16, 3, 3, 3, 6), f32(10, 10, 10, 6), 3, 1, 1, 1, 1, 1,
                       1, 1, 1, 1, GGML_TYPE_F32);
    m = mut(t);
    set_i32(&m, 9, 0);
    REJECT(&m, "IM2COL_3D IC 0");
    m = mut(t);
    set_i32(&m, 1, 0);
    REJECT(&m, "IM2COL_3D stride 0");
}

static void test_pool_pad_misc(void **state)
{
    (void) state;
    for (int op = 0; op < 2; op++) {
        for (int k = 1; k <= 3; k++) {
            for (int s = 1; s <= 2; s++) {
                for (int p = 0; p <= 1; p++) {
                    ACCEPT(ggml_pool_1d(ctx, f32(10, 3, 2, 1), (enum ggml_op_pool) op, k, s, p));
                    ACCEPT(ggml_pool_2d(ctx, f32(10, 10, 3, 1), (enum ggml_op_pool) op, k, k, s, s,
                                        (float) p, (float) p));
                    ACCEPT(ggml_pool_1d(ctx, new4(GGML_TYPE_F16, 10, 3, 2, 1), (enum ggml_op_pool) op,
                                        k, s, p));
                }
            }
        }
        struct ggml_tensor *in = f32(10, 10, 3, 2);
        struct ggml_tensor *po = ggml_pool_2d(ctx, in, (enum ggml_op_pool) op, 2, 2, 2, 2, 0, 0);
        ACCEPT(ggml_pool_2d_back(ctx, po, in, (enum ggml_op_pool) op, 2, 2, 2, 2, 0, 0));
    }
    ACCEPT(ggml_pool_2d(ctx, f32(9, 9, 3, 1), GGML_OP_POOL_AVG, 2, 2, 2, 2, 0.5f, 0.5f));
    /* upscale / interpolate */
    const uint32_t modes[] = {GGML_SCALE_MODE_NEAREST, GGML_SCALE_MODE_BILINEAR,
                              GGML_SCALE_MODE_BICUBIC,
                              GGML_SCALE_MODE_BILINEAR | GGML_SCALE_FLAG_ALIGN_CORNERS,
                              GGML_SCALE_MODE_BILINEAR | GGML_SCALE_FLAG_ANTIALIAS};
    for (size_t i = 0; i < 5; i++) {
        ACCEPT(ggml_upscale(ctx, f32(512, 512, 3, 2), 2, (enum ggml_scale_mode) modes[i]));
        ACCEPT(ggml_interpolate(ctx, f32(5, 7, 11, 13), 2, 4, 1, 13, modes[i]));
        ACCEPT(ggml_upscale_ext(ctx, f32(2, 5, 7, 11), 5, 7, 11, 13, (enum ggml_scale_mode) modes[i]));
    }
    /* pads */
    ACCEPT(ggml_pad(ctx, f32(512, 512, 1, 1), 1, 1, 0, 0));
    ACCEPT(ggml_pad_ext(ctx, f32(11, 22, 33, 44), 1, 2, 3, 4, 5, 6, 7, 8));
    ACCEPT(ggml_pad_ext(ctx, strided(GGML_TYPE_F32, 11, 22, 33, 2), 1, 2, 3, 4, 5, 6, 7, 8));
    ACCEPT(ggml_pad_circular(ctx, f32(8, 8, 2, 1), 3, 3, 0, 0));
    ACCEPT(ggml_pad_ext_circular(ctx, f32(8, 8, 2, 1), 2, 3, 1, 1, 0, 0, 0, 0));
    ACCEPT(ggml_pad_reflect_1d(ctx, f32(512, 34, 2, 1), 10, 9));
    ACCEPT(ggml_pad_reflect_1d(ctx, f32(3000, 384, 4, 1), 10, 9));
    ACCEPT(ggml_pad_reflect_1d(ctx, f32(4, 1, 1, 1), 3, 3));
    ACCEPT(ggml_roll(ctx, f32(10, 5, 4, 3), 3, -2, 1, 0));
    ACCEPT(ggml_roll(ctx, ggml_permute(ctx, f32(10, 5, 4, 3), 0, 2, 1, 3), -9, 3, -4, 2));
    ACCEPT(ggml_arange(ctx, 0.0f, 10.0f, 1.0f));
    ACCEPT(ggml_arange(ctx, -1.5f, 3.0f, 0.7f));
    ACCEPT(ggml_timestep_embedding(ctx, f32(2, 1, 1, 1), 320, 10000));
    ACCEPT(ggml_timestep_embedding(ctx, f32(7, 1, 1, 1), 129, 10000));
    /* SAM-style window partition and relative positions */
    struct ggml_tensor *img = f32(64, 30, 30, 1);
    struct ggml_tensor *wp  = ggml_win_part(ctx, img, 14);
    ACCEPT(wp);
    ACCEPT(ggml_win_unpart(ctx, wp, 30, 30, 14));
    ACCEPT(ggml_win_unpart(ctx, ggml_win_part(ctx, f32(8, 28, 14, 1), 14), 28, 14, 14));
    ACCEPT(ggml_get_rel_pos(ctx, new4(GGML_TYPE_F16, 64, 27, 1, 1), 14, 14));
    {
        struct ggml_tensor *attn = f32(196, 196, 12, 1);
        struct ggml_tensor *pw = f32(14, 14, 14, 12), *ph = f32(14, 14, 14, 12);
        ACCEPT(ggml_add_rel_pos(ctx, attn, pw, ph));
        ACCEPT(ggml_add_rel_pos_inplace(ctx, attn, pw, ph));
    }

    /* negatives */
    struct ggml_tensor *t = ggml_pool_1d(ctx, f32(10, 3, 2, 1), GGML_OP_POOL_MAX, 3, 2, 1);
    struct ggml_tensor  m = mut(t);
    set_i32(&m, 0, GGML_OP_POOL_COUNT);
    REJECT(&m, "POOL_1D op COUNT");
    m = mut(t);
    set_i32(&m, 2, 0);
    REJECT(&m, "POOL_1D stride 0");
    m = mut(t);
    set_i32(&m, 1, 1);
    REJECT(&m, "POOL_1D kernel changed: width mismatch");
    m = mut(t);
    m.src[0] = ggml_permute(ctx, f32(10, 2, 3, 1), 0, 2, 1, 3);
    REJECT(&m, "POOL_1D input not row-flat");
    t = ggml_pool_2d(ctx, f32(10, 10, 3, 2), GGML_OP_POOL_AVG, 2, 2, 2, 2, 0, 0);
    m = mut(t);
    set_i32(&m, 0, 7);
    REJECT(&m, "POOL_2D op 7");
    m = mut(t);
    set_i32(&m, 4, 0);
    REJECT(&m, "POOL_2D stride 0");
    struct ggml_tensor pin = *f32(10, 10, 1, 2);
    pin.nb[2] = 4; /* size-1 dim with a small stride: contiguous to ggml, but the kernel walks
                    * planes by nb[2] until the byte size -> writes far past dst */
    m = mut(ggml_pool_2d(ctx, f32(10, 10, 1, 2), GGML_OP_POOL_AVG, 2, 2, 2, 2, 0, 0));
    m.src[0] = &pin;
    REJECT(&m, "POOL_2D input plane stride not packed");
    m = mut(t);
    m.ne[2] = 6, m.nb[3] = m.nb[2] * 6;
    REJECT(&m, "POOL_2D dst with more planes");
    {
        struct ggml_tensor *in = f32(10, 10, 3, 2);
        struct ggml_tensor *po = ggml_pool_2d(ctx, in, GGML_OP_POOL_MAX, 2, 2, 2, 2, 0, 0);
        t = ggml_pool_2d_back(ctx, po, in, GGML_OP_POOL_MAX, 2, 2, 2, 2, 0, 0);
        m = mut(t);
        m.src[1] = new4(GGML_TYPE_F16, 10, 10, 3, 2);
        REJECT(&m, "POOL_2D_BACK F16 forward input (read as dst type)");
        m = mut(t);
        m.src[0] = f32(5, 5, 6, 2);
        REJECT(&m, "POOL_2D_BACK grad planes differ");
    }
    t = ggml_upscale(ctx, f32(8, 8, 3, 1), 2, GGML_SCALE_MODE_NEAREST);
    m = mut(t);
    set_i32(&m, 0, GGML_SCALE_MODE_COUNT);
    REJECT(&m, "UPSCALE mode COUNT");
    m = mut(t);
    set_i32(&m, 0, GGML_SCALE_MODE_NEAREST | GGML_SCALE_FLAG_ANTIALIAS);
    REJECT(&m, "UPSCALE antialias with nearest");
    m = mut(t);
    m.src[0] = f32(8, 0, 3, 1);
    REJECT(&m, "UPSCALE of an empty input");
    m = mut(t);
    m.src[0] = new4(GGML_TYPE_F16, 8, 8, 3, 1);
    REJECT(&m, "UPSCALE F16 input");

    t = ggml_pad_ext(ctx, f32(11, 22, 33, 4), 1, 2, 3, 4, 5, 6, 7, 8);
    m = mut(t);
    set_i32(&m, 1, 3);
    REJECT(&m, "PAD padding changed: ne0 mismatch");
    m = mut(t);
    m.type = GGML_TYPE_F16, repack(&m);
    REJECT(&m, "PAD dst type");
    t = ggml_pad_circular(ctx, f32(8, 8, 2, 1), 3, 3, 0, 0);
    m = mut(t);
    m.src[0] = f32(0, 8, 2, 1);
    set_i32(&m, 1, 11); /* ne0 0 + 0 + 11 */
    REJECT(&m, "PAD circular around an empty input (remainder by zero)");

    t = ggml_pad_reflect_1d(ctx, f32(512, 34, 2, 1), 10, 9);
    m = mut(t);
    set_i32(&m, 0, 600), set_i32(&m, 1, 0);
    m.ne[0] = 1112, m.nb[1] = 1112 * 4, m.nb[2] = m.nb[1] * 34, m.nb[3] = m.nb[2] * 2;
    REJECT(&m, "PAD_REFLECT_1D p0 beyond ne0 (the ggml-rpc OOB write)");
    m = mut(t);
    set_i32(&m, 0, -5), set_i32(&m, 1, 24);
    REJECT(&m, "PAD_REFLECT_1D negative p0");
    m = mut(t);
    set_i32(&m, 1, 10);
    REJECT(&m, "PAD_REFLECT_1D params do not match dst");
    m = mut(t);
    m.src[0] = ggml_permute(ctx, f32(512, 2, 34, 1), 0, 2, 1, 3);
    REJECT(&m, "PAD_REFLECT_1D non-contiguous input");
    m = mut(t);
    m.src[0] = new4(GGML_TYPE_F16, 512, 34, 2, 1);
    REJECT(&m, "PAD_REFLECT_1D F16 input");

    t = ggml_roll(ctx, f32(10, 5, 4, 3), 3, -2, 1, 0);
    m = mut(t);
    set_i32(&m, 0, 10);
    REJECT(&m, "ROLL shift == ne0");
    m = mut(t);
    set_i32(&m, 1, -5);
    REJECT(&m, "ROLL shift == -ne1");
    m = mut(t);
    set_i32(&m, 2, INT32_MIN);
    REJECT(&m, "ROLL shift INT32_MIN");

    t = ggml_arange(ctx, 0.0f, 10.0f, 1.0f);
    m = mut(t);
    set_f32(&m, 1, -1.0f);
    REJECT(&m, "ARANGE stop < start");
    m = mut(t);
    m.ne[0] = 11, m.nb[1] = 44, m.nb[2] = 44, m.nb[3] = 44;
    REJECT(&m, "ARANGE count mismatch");
    m = mut(t);
    set_f32(&m, 2, 0.0f);
    REJECT(&m, "ARANGE step 0");
    m = mut(t);
    m.src[0] = f32(10, 1, 1, 1);
    REJECT(&m, "ARANGE with a source");

    t = ggml_timestep_embedding(ctx, f32(2, 1, 1, 1), 320, 10000);
    m = mut(t);
    set_i32(&m, 0, 640);
    REJECT(&m, "TIMESTEP_EMBEDDING dim != dst ne0");

    t = ggml_win_part(ctx, f32(64, 30, 30, 1), 14);
    m = mut(t);
    set_i32(&m, 2, 0);
    REJECT(&m, "WIN_PART w 0");
    m = mut(t);
    set_i32(&m, 0, 4);
    REJECT(&m, "WIN_PART npx mismatch");
    t = ggml_win_unpart(ctx, ggml_win_part(ctx, f32(64, 30, 30, 1), 14), 30, 30, 14);
    m = mut(t);
    m.src[0] = f32(64, 14, 14, 4);
    REJECT(&m, "WIN_UNPART too few windows (OOB read)");
    m = mut(t);
    set_i32(&m, 0, 0);
    REJECT(&m, "WIN_UNPART w 0");
    m = mut(t);
    set_i32(&m, 0, 20);
    REJECT(&m, "WIN_UNPART windows larger than the source windows");

    t = ggml_get_rel_pos(ctx, new4(GGML_TYPE_F16, 64, 27, 1, 1), 14, 14);
    m = mut(t);
    m.src[0] = new4(GGML_TYPE_F16, 64, 20, 1, 1);
    REJECT(&m, "GET_REL_POS table too short (OOB read)");
    m = mut(t);
    m.ne[1] = 13, m.nb[2] = 64 * 2 * 13, m.nb[3] = m.nb[2] * 14;
    REJECT(&m, "GET_REL_POS non-square");

    {
        struct ggml_tensor *attn = f32(196, 196, 12, 1);
        struct ggml_tensor *pw = f32(14, 14, 14, 12), *ph = f32(14, 14, 14, 12);
        t = ggml_add_rel_pos(ctx, attn, pw, ph);
        m = mut(t);
        m.src[2] = f32(14, 14, 14, 6);
        REJECT(&m, "ADD_REL_POS ph shape");
        m = mut(t);
        m.src[1] = f32(15, 14, 14, 12), m.src[2] = f32(15, 14, 14, 12);
        REJECT(&m, "ADD_REL_POS pw0^2 != ne0");
    }
}

/* ---- state-space, linear attention, misc ------------------------------------------------- */

static void test_ssm_and_linear_attention(void **state)
{
    (void) state;
    /* test_ssm_conv */
    ACCEPT(ggml_ssm_conv(ctx, f32(3 + 4, 1536, 4, 1), f32(4, 1536, 1, 1)));
    ACCEPT(ggml_ssm_conv(ctx, f32(3 + 1, 1536, 1, 1), f32(4, 1536, 1, 1)));
    /* test_ssm_scan: Mamba-1 (A [d_state, n_head]) and Mamba-2 (scalar A, groups) */
    for (int mamba2 = 0; mamba2 < 2; mamba2++) {
        const int64_t d_state = mamba2 ? 128 : 16, head_dim = mamba2 ? 64 : 1,
                      n_head = mamba2 ? 32 : 1536, n_group = mamba2 ? 2 : 1, n_tok = 4, n_seqs = 3;
        struct ggml_tensor *s   = f32(d_state, head_dim, n_head, n_seqs + 2);
        struct ggml_tensor *x   = f32(head_dim, n_head, n_tok, n_seqs);
        struct ggml_tensor *dt  = f32(n_head, n_tok, n_seqs, 1);
        struct ggml_tensor *A   = f32(mamba2 ? 1 : d_state, n_head, 1, 1);
        struct ggml_tensor *B   = f32(d_state, n_group, n_tok, n_seqs);
        struct ggml_tensor *C   = f32(d_state, n_group, n_tok, n_seqs);
        struct ggml_tensor *ids = new4(GGML_TYPE_I32, n_seqs, 1, 1, 1);
        ACCEPT(ggml_ssm_scan(ctx, s, x, dt, A, B, C, ids, 1));
        if (mamba2) {
            ACCEPT(ggml_ssm_scan(ctx, s, x, dt, A, B, C, ids, 4));
        }
    }
    /* test_rwkv_wkv6 / test_gla / test_rwkv_wkv7 */
    for (int n_seqs = 1; n_seqs <= 4; n_seqs *= 2) {
        const int64_t S = 64, H = 32, T = 32 * n_seqs;
        struct ggml_tensor *st = f32(S * S * H, n_seqs, 1, 1);
        ACCEPT(ggml_rwkv_wkv6(ctx, f32(S, H, T, 1), f32(S, H, T, 1), f32(S, H, T, 1), f32(S, H, 1, 1),
                              f32(S, H, T, 1), st));
        ACCEPT(ggml_gated_linear_attn(ctx, f32(S, H, T, 1), f32(S, H, T, 1), f32(S, H, T, 1),
                                      f32(S, H, T, 1), st, 0.125f));
        ACCEPT(ggml_rwkv_wkv7(ctx, f32(S, H, T, 1), f32(S, H, T, 1), f32(S, H, T, 1), f32(S, H, T, 1),
                              f32(S, H, T, 1), f32(S, H, T, 1), st));
    }
    /* test_gated_delta_net: heads broadcast (v_repeat), permuted q/k/v, KDA gate, K slots */
    for (int v_repeat = 1; v_repeat <= 2; v_repeat++) {
        for (int perm = 0; perm < 2; perm++) {
            for (int kda = 0; kda < 2; kda++) {
                const int64_t H = 4, hs = 16, T = 3, B = 2;
                struct ggml_tensor *q, *k, *v;
                if (perm) {
                    q = ggml_permute(ctx, f32(hs, T, H, B), 0, 2, 1, 3);
                    k = ggml_permute(ctx, f32(hs, T, H, B), 0, 2, 1, 3);
                    v = ggml_permute(ctx, f32(hs, T, H * v_repeat, B), 0, 2, 1, 3);
                } else {
                    q = f32(hs, H, T, B), k = f32(hs, H, T, B), v = f32(hs, H * v_repeat, T, B);
                }
                struct ggml_tensor *g = f32(kda ? hs : 1, H * v_repeat, T, B);
                struct ggml_tensor *beta = f32(1, H * v_repeat, T, B);
                struct ggml_tensor *st = f32(hs, hs, H * v_repeat, B);
                ACCEPT(ggml_gated_delta_net(ctx, ggml_l2_norm(ctx, q, 1e-6f),
                                            ggml_l2_norm(ctx, k, 1e-6f), v, g, beta, st, 1));
                ACCEPT(ggml_gated_delta_net(ctx, q, k, v, g, beta, st, 3));
            }
        }
    }
    /* SOLVE_TRI */
    ACCEPT(ggml_solve_tri(ctx, f32(10, 10, 4, 3), f32(5, 10, 4, 3), true, true, false));
    /* LIGHTNING_INDEXER */
    ACCEPT(ggml_lightning_indexer(ctx, f32(128, 64, 7, 2), new4(GGML_TYPE_F16, 128, 1, 300, 2),
                                  f32(64, 7, 1, 2), new4(GGML_TYPE_F16, 300, 7, 1, 1)));
    /* DSV4 hyper-connections */
    ACCEPT(ggml_dsv4_hc_comb(ctx, f32(24, 9, 1, 1), f32(3, 1, 1, 1), f32(24, 1, 1, 1), 1e-6f, 20));
    ACCEPT(ggml_dsv4_hc_pre(ctx, f32(64, 4, 9, 1), f32(4, 9, 1, 1)));
    ACCEPT(ggml_dsv4_hc_pre_gated(ctx, f32(64, 4, 9, 1), f32(64, 4, 9, 1), 0.5f));
    ACCEPT(ggml_dsv4_hc_post(ctx, f32(64, 9, 1, 1), f32(64, 4, 9, 1), f32(4, 9, 1, 1),
                             f32(4, 4, 9, 1)));
    ACCEPT(ggml_dsv4_hc_post(ctx, f32(64, 9, 1, 1), f32(64, 4, 9, 1), f32(4, 9, 1, 1), NULL));

    /* negatives */
    struct ggml_tensor *t = ggml_ssm_conv(ctx, f32(3 + 4, 64, 4, 1), f32(4, 64, 1, 1));
    struct ggml_tensor  m = mut(t);
    m.src[1] = f32(4, 32, 1, 1);
    REJECT(&m, "SSM_CONV d_inner differs");
    m = mut(t);
    m.src[1] = f32(9, 64, 1, 1);
    REJECT(&m, "SSM_CONV d_conv longer than sx");
    m = mut(t);
    m.ne[1] = 5, m.nb[2] = m.nb[1] * 5, m.nb[3] = m.nb[2] * 4;
    REJECT(&m, "SSM_CONV dst tokens");
    {
        struct ggml_tensor *s = f32(128, 64, 32, 5), *x = f32(64, 32, 4, 3);
        struct ggml_tensor *dt = f32(32, 4, 3, 1), *A = f32(1, 32, 1, 1);
        struct ggml_tensor *B = f32(128, 2, 4, 3), *C = f32(128, 2, 4, 3);
        struct ggml_tensor *ids = new4(GGML_TYPE_I32, 3, 1, 1, 1);
        t = ggml_ssm_scan(ctx, s, x, dt, A, B, C, ids, 1);
        m = mut(t);
        set_i32(&m, 0, 0);
        REJECT(&m, "SSM_SCAN K 0");
        m = mut(t);
        m.src[4] = f32(128, 3, 4, 3), m.src[5] = f32(128, 3, 4, 3);
        REJECT(&m, "SSM_SCAN groups do not divide heads");
        m = mut(t);
        m.src[4] = f32(128, 0, 4, 3), m.src[5] = f32(128, 0, 4, 3);
        REJECT(&m, "SSM_SCAN zero groups (remainder by zero)");
        m = mut(t);
        m.src[6] = new4(GGML_TYPE_I32, 2, 1, 1, 1);
        REJECT(&m, "SSM_SCAN ids for fewer sequences");
        m = mut(t);
        m.src[6] = NULL;
        REJECT(&m, "SSM_SCAN without ids");
        m = mut(t);
        m.ne[0] += 1, repack(&m);
        REJECT(&m, "SSM_SCAN dst size");
        m = mut(t);
        m.src[3] = f32(128, 32, 1, 1);
        set_i32(&m, 0, 2);
        REJECT(&m, "SSM_SCAN Mamba-1 A with K 2");
    }
    {
        const int64_t S = 64, H = 4, T = 8;
        struct ggml_tensor *st = f32(S * S * H, 2, 1, 1);
        t = ggml_rwkv_wkv6(ctx, f32(S, H, T, 1), f32(S, H, T, 1), f32(S, H, T, 1), f32(S, H, 1, 1),
                           f32(S, H, T, 1), st);
        m = mut(t);
        m.src[5] = f32(S * S * H, 3, 1, 1);
        m.ne[1] = T + S * 3, m.nb[2] = m.nb[1] * m.ne[1], m.nb[3] = m.nb[2];
        REJECT(&m, "RWKV_WKV6 tokens not split over sequences");
        m = mut(t);
        m.src[3] = f32(S, 2, 1, 1);
        REJECT(&m, "RWKV_WKV6 time_faaaa too short");
        m = mut(t);
        m.src[1] = f32(S, H, T - 1, 1);
        REJECT(&m, "RWKV_WKV6 v tokens differ");
        m = mut(t);
        m.src[5] = f32(S * S * H + 1, 2, 1, 1);
        REJECT(&m, "RWKV_WKV6 state size");
        m = mut(t);
        m.src[0] = ggml_permute(ctx, f32(S, T, H, 1), 0, 2, 1, 3);
        REJECT(&m, "RWKV_WKV6 non-contiguous k");
        t = ggml_gated_linear_attn(ctx, f32(S, H, T, 1), f32(S, H, T, 1), f32(S, H, T, 1),
                                   f32(S, H, T, 1), st, 0.5f);
        m = mut(t);
        m.src[5] = st;
        REJECT(&m, "GATED_LINEAR_ATTN src5");
        m = mut(t);
        m.src[4] = f32(S * S * H, 0, 1, 1);
        REJECT(&m, "GATED_LINEAR_ATTN zero sequences");
        t = ggml_rwkv_wkv7(ctx, f32(S, H, T, 1), f32(S, H, T, 1), f32(S, H, T, 1), f32(S, H, T, 1),
                           f32(S, H, T, 1), f32(S, H, T, 1), st);
        m = mut(t);
        m.src[4] = f32(S, H, 2, 1);
        REJECT(&m, "RWKV_WKV7 a tokens differ");
        m = mut(t);
        m.src[6] = NULL;
        REJECT(&m, "RWKV_WKV7 without state");
    }
    {
        const int64_t H = 4, hs = 16, T = 3, B = 2;
        struct ggml_tensor *q = f32(hs, H, T, B), *k = f32(hs, H, T, B), *v = f32(hs, H, T, B);
        struct ggml_tensor *g = f32(1, H, T, B), *beta = f32(1, H, T, B), *st = f32(hs, hs, H, B);
        t = ggml_gated_delta_net(ctx, q, k, v, g, beta, st, 1);
        m = mut(t);
        set_i32(&m, 0, 0);
        REJECT(&m, "GATED_DELTA_NET K 0");
        m = mut(t);
        m.src[0] = f32(8, H, T, B);
        REJECT(&m, "GATED_DELTA_NET q rows shorter than S_v");
        m = mut(t);
        m.src[1] = f32(hs, H, T, 3);
        REJECT(&m, "GATED_DELTA_NET k sequences do not divide");
        m = mut(t);
        m.src[3] = f32(1, 2, T, B);
        REJECT(&m, "GATED_DELTA_NET g for fewer heads");
        m = mut(t);
        m.src[4] = f32(1, H, 1, B);
        REJECT(&m, "GATED_DELTA_NET beta for fewer tokens");
        m = mut(t);
        m.src[5] = f32(hs, hs, H, 1);
        REJECT(&m, "GATED_DELTA_NET state for fewer sequences");
        m = mut(t);
        m.src[2] = new4(GGML_TYPE_F16, hs, H, T, B);
        REJECT(&m, "GATED_DELTA_NET F16 v");
    }
    t = ggml_solve_tri(ctx, f32(10, 10, 4, 3), f32(5, 10, 4, 3), true, true, false);
    m = mut(t);
    m.src[0] = f32(10, 9, 4, 3);
    REJECT(&m, "SOLVE_TRI non-square a");
    m = mut(t);
    m.src[1] = f32(5, 10, 2, 3);
    REJECT(&m, "SOLVE_TRI batch differs");
    t = ggml_lightning_indexer(ctx, f32(128, 64, 7, 2), new4(GGML_TYPE_F16, 128, 1, 300, 2),
                               f32(64, 7, 1, 2), new4(GGML_TYPE_F16, 300, 7, 1, 1));
    m = mut(t);
    m.src[3] = new4(GGML_TYPE_F16, 200, 7, 1, 1);
    REJECT(&m, "LIGHTNING_INDEXER mask narrower than n_kv");
    m = mut(t);
    m.src[3] = NULL;
    REJECT(&m, "LIGHTNING_INDEXER without mask");
    t = ggml_dsv4_hc_comb(ctx, f32(24, 9, 1, 1), f32(3, 1, 1, 1), f32(24, 1, 1, 1), 1e-6f, 20);
    m = mut(t);
    set_i32(&m, 1, 0);
    REJECT(&m, "DSV4_HC_COMB n_iter 0");
    m = mut(t);
    m.src[0] = f32(15, 9, 1, 1);
    REJECT(&m, "DSV4_HC_COMB hc 3");
    t = ggml_dsv4_hc_pre(ctx, f32(64, 4, 9, 1), f32(4, 9, 1, 1));
    m = mut(t);
    set_i32(&m, 1, 1);
    REJECT(&m, "DSV4_HC_PRE gated flag with ungated weights");
    m = mut(t);
    set_i32(&m, 1, 2);
    REJECT(&m, "DSV4_HC_PRE gated 2");
    t = ggml_dsv4_hc_post(ctx, f32(64, 9, 1, 1), f32(64, 4, 9, 1), f32(4, 9, 1, 1), f32(4, 4, 9, 1));
    m = mut(t);
    m.src[3] = f32(4, 4, 8, 1);
    REJECT(&m, "DSV4_HC_POST comb for fewer tokens");
    m = mut(t);
    m.src[2] = NULL;
    REJECT(&m, "DSV4_HC_POST without post (comb present)");
}

static void test_training_ops(void **state)
{
    (void) state;
    ACCEPT(ggml_cross_entropy_loss(ctx, f32(10, 5, 4, 3), ggml_soft_max(ctx, f32(10, 5, 4, 3))));
    ACCEPT(ggml_cross_entropy_loss(ctx, f32(30000, 1, 1, 1), f32(30000, 1, 1, 1)));
    ACCEPT(ggml_cross_entropy_loss_back(ctx, f32(1, 1, 1, 1), f32(10, 5, 4, 3), f32(10, 5, 4, 3)));
    struct ggml_tensor *w = f32(10, 5, 4, 3);
    ggml_set_param(w);
    ACCEPT(ggml_opt_step_adamw(ctx, w, f32(10, 5, 4, 3), f32(10, 5, 4, 3), f32(10, 5, 4, 3),
                               f32(7, 1, 1, 1)));
    struct ggml_tensor *w2 = f32(10, 5, 4, 3);
    ggml_set_param(w2);
    ACCEPT(ggml_opt_step_sgd(ctx, w2, f32(10, 5, 4, 3), f32(2, 1, 1, 1)));

    struct ggml_tensor *t = ggml_cross_entropy_loss(ctx, f32(10, 5, 4, 3), f32(10, 5, 4, 3));
    struct ggml_tensor  m = mut(t);
    m.src[1] = f32(10, 5, 4, 1);
    REJECT(&m, "CROSS_ENTROPY_LOSS shapes differ");
    m = mut(t);
    m.src[0] = ggml_permute(ctx, f32(10, 4, 5, 3), 0, 2, 1, 3);
    REJECT(&m, "CROSS_ENTROPY_LOSS permuted logits (not row-flat)");
    m = mut(t);
    m.ne[0] = 2, m.nb[1] = 8, m.nb[2] = 8, m.nb[3] = 8;
    REJECT(&m, "CROSS_ENTROPY_LOSS dst of 2");
    t = ggml_cross_entropy_loss_back(ctx, f32(1, 1, 1, 1), f32(10, 5, 4, 3), f32(10, 5, 4, 3));
    m = mut(t);
    m.src[0] = f32(2, 1, 1, 1);
    REJECT(&m, "CROSS_ENTROPY_LOSS_BACK non-scalar grad");
    t = ggml_opt_step_adamw(ctx, w, f32(10, 5, 4, 3), f32(10, 5, 4, 3), f32(10, 5, 4, 3),
                            f32(7, 1, 1, 1));
    m = mut(t);
    m.src[4] = f32(6, 1, 1, 1);
    REJECT(&m, "OPT_STEP_ADAMW 6 params");
    m = mut(t);
    m.src[2] = f32(10, 5, 4, 1);
    REJECT(&m, "OPT_STEP_ADAMW m shape");
    m = mut(t);
    m.src[1] = ggml_permute(ctx, f32(10, 4, 5, 3), 0, 2, 1, 3);
    REJECT(&m, "OPT_STEP_ADAMW grad strides differ (read with the param's strides)");
    m = mut(t);
    m.src[4] = NULL;
    REJECT(&m, "OPT_STEP_ADAMW without params");
    t = ggml_opt_step_sgd(ctx, w2, f32(10, 5, 4, 3), f32(2, 1, 1, 1));
    m = mut(t);
    m.src[2] = new4(GGML_TYPE_F16, 2, 1, 1, 1);
    REJECT(&m, "OPT_STEP_SGD F16 params");
}

/* ---- generic preconditions ----------------------------------------------------------------- */

static void test_generic(void **state)
{
    (void) state;
    struct ggml_tensor *a = f32(16, 4, 1, 1), *b = f32(16, 4, 1, 1);
    struct ggml_tensor *t = ggml_add(ctx, a, b);
    struct ggml_tensor  m;
    /* invalid types / ne (the caller checks them too) */
    m = mut(t), m.type = GGML_TYPE_COUNT;
    REJECT(&m, "dst type COUNT");
    m = mut(t), m.type = (enum ggml_type) 31; /* removed Q4_0_4_4: block size 0 */
    REJECT(&m, "dst type with block size 0");
    struct ggml_tensor bad = *b;
    bad.type = (enum ggml_type) 99;
    m = mut(t), m.src[1] = &bad;
    REJECT(&m, "src1 type 99");
    m = mut(t), m.ne[1] = -4;
    REJECT(&m, "negative ne");
    /* element counts that overflow int64 */
    struct ggml_tensor huge = *b;
    huge.ne[0] = INT64_C(1) << 32, huge.ne[1] = INT64_C(1) << 32, huge.nb[0] = 0, huge.nb[1] = 0;
    m = mut(t), m.src[1] = &huge;
    REJECT(&m, "src1 element count overflows");
    /* NONE is a leaf */
    struct ggml_tensor leaf = *a;
    assert_true(vgpu_validate_op(&leaf, NULL, 0));
    leaf.src[0] = b;
    REJECT(&leaf, "NONE with a source");
}

/* Every op ggml can build was reached by a positive case. */
static void test_all_ops_covered(void **state)
{
    (void) state;
    int missing = 0;
    for (int op = 0; op < GGML_OP_COUNT; op++) {
        const bool refused = op == GGML_OP_CUSTOM || op == GGML_OP_MAP_CUSTOM1 ||
                             op == GGML_OP_MAP_CUSTOM2 || op == GGML_OP_MAP_CUSTOM3 ||
                             op == GGML_OP_FLASH_ATTN_BACK;
        if (!refused && !seen[op]) {
            print_error("no positive case reached %s\n", ggml_op_name((enum ggml_op) op));
            missing++;
        }
    }
    print_message("validate-op: %d legit nodes accepted, %d broken nodes rejected\n", n_pos,
                  n_neg);
    assert_int_equal(missing, 0);
}

int main(void)
{
    verbose = getenv("VGPU_TEST_VERBOSE") != NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_covers_every_op),
        cmocka_unit_test(test_forbidden_ops),
        cmocka_unit_test(test_binary_broadcast),
        cmocka_unit_test(test_unary_family),
        cmocka_unit_test(test_glu),
        cmocka_unit_test(test_add_id_add1_acc_set),
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_repeat_concat),
        cmocka_unit_test(test_argsort_top_k),
        cmocka_unit_test(test_norms),
        cmocka_unit_test(test_soft_max),
        cmocka_unit_test(test_mul_mat),
        cmocka_unit_test(test_copies_and_views),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_flash_attn_ext),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_pool_pad_misc),
        cmocka_unit_test(test_ssm_and_linear_attention),
        cmocka_unit_test(test_training_ops),
        cmocka_unit_test(test_generic),
        cmocka_unit_test(test_all_ops_covered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
