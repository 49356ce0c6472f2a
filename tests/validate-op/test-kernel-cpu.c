/*
 * Unit tests of host/kernel-cpu.c, the CPU kernel contract.
 *
 * Every refused case is a node that vgpu_validate_op accepts (ggml's constructors build it,
 * or a guest can describe it) and that the pinned ggml-cpu GGML_ABORTs / GGML_ASSERTs on, calls
 * a NULL type trait for, or overruns a buffer with: the contract alone stands between it and
 * the kernel. Each comes with a control the contract accepts. The first case is the dispatch
 * fuzzer's finding (tests/fuzz/corpus/dispatch/regress-mul-src0-strided-elements): a MUL whose
 * src0 elements are 2052 bytes apart, which binary-ops.cpp GGML_ASSERTs (nb00 == sizeof(float)).
 *
 * The contract's copy of the CPU type traits is compared with the real ones of the pinned
 * libggml-cpu. tests/validate-op/sweep-cpu.c checks the contract against the kernels at large.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ggml-cpu.h"
#include "ggml.h"
#include "kernel-cpu.h"
#include "validate-op.h"

/* Deprecated constructors (ggml_add1) still build graphs a guest may send. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* Test hook exported by kernel-cpu.c (not part of the header). */
void vgpu_kernel_cpu_traits(enum ggml_type type, bool *from_float, bool *vec_dot,
                            enum ggml_type *vec_dot_type);

static struct ggml_context *ctx;
static int                  n_refused, n_accepted;

static int setup(void **state)
{
    (void) state;
    struct ggml_init_params p = {64u << 20, NULL, true};
    ctx = ggml_init(p);
    return ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void) state;
    ggml_free(ctx);
    return 0;
}

static struct ggml_tensor *new4(enum ggml_type type, int64_t a, int64_t b, int64_t c, int64_t d)
{
    return ggml_new_tensor_4d(ctx, type, a, b, c, d);
}

static struct ggml_tensor *f32(int64_t a, int64_t b, int64_t c, int64_t d)
{
    return new4(GGML_TYPE_F32, a, b, c, d);
}

static void set_i32(struct ggml_tensor *t, int i, int32_t v)
{
    memcpy((char *) t->op_params + 4 * i, &v, 4);
}

/* The validator accepts t (so only the contract can refuse it). */
static void valid_at(const struct ggml_tensor *t, const char *what, const char *file, int line)
{
    char why[256];
    if (!vgpu_validate_op(t, why, sizeof why)) {
        print_error("%s:%d: %s: the validator refuses it (%s); not a contract case\n", file, line,
                    what, why);
        _fail(file, line);
    }
}

/* The contract refuses t, with a reason naming the op. */
static void refused_at(const struct ggml_tensor *t, const char *what, const char *file, int line)
{
    valid_at(t, what, file, line);
    char why[256] = "";
    if (vgpu_kernel_cpu_ok(t, why, sizeof why)) {
        print_error("%s:%d: %s: accepted by the CPU contract\n", file, line, what);
        _fail(file, line);
    }
    if (strstr(why, "CPU kernel") == NULL) {
        print_error("%s:%d: %s: refused without a reason ('%s')\n", file, line, what, why);
        _fail(file, line);
    }
    n_refused++;
}
#define REFUSED(t, what) refused_at((t), (what), __FILE__, __LINE__)

/* The contract accepts t. */
static void accepted_at(const struct ggml_tensor *t, const char *what, const char *file, int line)
{
    valid_at(t, what, file, line);
    char why[256] = "";
    if (!vgpu_kernel_cpu_ok(t, why, sizeof why)) {
        print_error("%s:%d: %s: refused by the CPU contract: %s\n", file, line, what, why);
        _fail(file, line);
    }
    n_accepted++;
}
#define ACCEPTED(t, what) accepted_at((t), (what), __FILE__, __LINE__)

/* ---- the fuzz finding and the binary kernels ---------------------------------------------------- */

static void test_binary(void **state)
{
    (void) state;
    /* The reproducer's node: MUL, F32 [10,5,8,3], src0's elements 2052 bytes apart. */
    struct ggml_tensor *a = f32(10, 5, 8, 3), *b = f32(10, 5, 4, 3);
    struct ggml_tensor *t = ggml_mul(ctx, a, b);
    ACCEPTED(t, "MUL F32");
    struct ggml_tensor sa = *a;
    sa.nb[0] = 2052;
    struct ggml_tensor m = *t;
    m.src[0] = &sa;
    REFUSED(&m, "MUL with src0 elements 2052 bytes apart (the fuzz finding)");
    /* What a constructor builds the same way: a transposed src0. */
    REFUSED(ggml_mul(ctx, ggml_transpose(ctx, f32(8, 8, 1, 1)), f32(8, 8, 1, 1)),
            "MUL of a transposed src0");
    REFUSED(ggml_sub(ctx, ggml_transpose(ctx, f32(8, 8, 1, 1)), f32(8, 1, 1, 1)),
            "SUB of a transposed src0");
    ACCEPTED(ggml_mul(ctx, f32(8, 8, 1, 1), ggml_transpose(ctx, f32(8, 8, 1, 1))),
             "MUL of a transposed src1 (read by its strides)");

    /* Types: binary_op has seven triples, everything else GGML_ABORTs. */
    REFUSED(ggml_add(ctx, new4(GGML_TYPE_I8, 16, 4, 1, 1), new4(GGML_TYPE_I8, 16, 4, 1, 1)),
            "ADD I8");
    REFUSED(ggml_mul(ctx, new4(GGML_TYPE_I32, 16, 4, 1, 1), new4(GGML_TYPE_I32, 16, 1, 1, 1)),
            "MUL I32");
    REFUSED(ggml_div(ctx, f32(16, 4, 1, 1), new4(GGML_TYPE_F16, 16, 4, 1, 1)),
            "DIV F32 by F16");
    ACCEPTED(ggml_div(ctx, new4(GGML_TYPE_F16, 16, 4, 1, 1), f32(16, 4, 1, 1)),
             "DIV F16 by F32");
    ACCEPTED(ggml_add(ctx, new4(GGML_TYPE_BF16, 16, 4, 1, 1), f32(16, 1, 1, 1)),
             "ADD BF16 + F32");
    REFUSED(ggml_add(ctx, new4(GGML_TYPE_F64, 16, 4, 1, 1), new4(GGML_TYPE_F64, 16, 4, 1, 1)),
            "ADD F64");

    /* Quantized ADD (ggml_add_cast): no broadcast, F32 src1, a dst with a CPU from_float. */
    struct ggml_tensor *q = new4(GGML_TYPE_Q4_0, 64, 4, 1, 1);
    ACCEPTED(ggml_add_cast(ctx, q, f32(64, 4, 1, 1), GGML_TYPE_F32), "ADD Q4_0 + F32 -> F32");
    REFUSED(ggml_add_cast(ctx, q, f32(64, 1, 1, 1), GGML_TYPE_F32), "ADD Q4_0 + broadcast F32");
    REFUSED(ggml_add_cast(ctx, new4(GGML_TYPE_Q4_K, 256, 1, 1, 1), f32(256, 1, 1, 1),
                          GGML_TYPE_IQ2_XXS),
            "ADD Q4_K -> IQ2_XXS (no from_float: memcpy past the row)");
    REFUSED(ggml_add(ctx, new4(GGML_TYPE_Q8_1, 64, 1, 1, 1), f32(64, 1, 1, 1)), "ADD Q8_1");

    /* ADD1: the scalar is read as the kernel's type; quantized needs to_float and from_float. */
    REFUSED(ggml_add1(ctx, f32(16, 4, 1, 1), new4(GGML_TYPE_F16, 1, 1, 1, 1)),
            "ADD1 F32 + F16 scalar (read as a float)");
    ACCEPTED(ggml_add1(ctx, new4(GGML_TYPE_F16, 16, 4, 1, 1), f32(1, 1, 1, 1)), "ADD1 F16 + F32");
    REFUSED(ggml_add1(ctx, new4(GGML_TYPE_Q8_1, 64, 1, 1, 1), f32(1, 1, 1, 1)),
            "ADD1 Q8_1 (no to_float)");
    REFUSED(ggml_add1(ctx, new4(GGML_TYPE_IQ2_XXS, 256, 1, 1, 1), f32(1, 1, 1, 1)),
            "ADD1 IQ2_XXS (no CPU from_float)");
    ACCEPTED(ggml_add1(ctx, new4(GGML_TYPE_Q4_0, 64, 1, 1, 1), f32(1, 1, 1, 1)), "ADD1 Q4_0");

    /* Unary family: (src0, dst) type pairs, contiguous rows. */
    REFUSED(ggml_sqr(ctx, new4(GGML_TYPE_I32, 8, 2, 1, 1)), "SQR I32");
    REFUSED(ggml_exp(ctx, new4(GGML_TYPE_Q8_0, 32, 2, 1, 1)), "EXP Q8_0");
    ACCEPTED(ggml_exp(ctx, new4(GGML_TYPE_BF16, 8, 2, 1, 1)), "EXP BF16");
    REFUSED(ggml_gelu(ctx, new4(GGML_TYPE_BF16, 8, 2, 1, 1)), "GELU BF16 (F32/F16 only)");
    REFUSED(ggml_silu_back(ctx, f32(8, 2, 1, 1), new4(GGML_TYPE_F16, 8, 2, 1, 1)),
            "SILU_BACK with an F16 x (read as float)");
    REFUSED(ggml_clamp(ctx, ggml_permute(ctx, f32(8, 3, 4, 1), 0, 2, 1, 3), -1.0f, 1.0f),
            "CLAMP of a permuted tensor (rows walked as i*nb1)");
    ACCEPTED(ggml_clamp(ctx, f32(8, 3, 4, 1), -1.0f, 1.0f), "CLAMP");
}

/* ---- copies ----------------------------------------------------------------------------------- */

static void test_copies(void **state)
{
    (void) state;
    ACCEPTED(ggml_cpy(ctx, f32(64, 2, 1, 1), new4(GGML_TYPE_Q4_0, 64, 2, 1, 1)),
             "CPY F32 -> Q4_0");
    REFUSED(ggml_cpy(ctx, f32(64, 2, 1, 1), new4(GGML_TYPE_Q4_0, 32, 4, 1, 1)),
            "CPY F32 [64,2] -> Q4_0 [32,4] (work rows sized by dst's ne0)");
    REFUSED(ggml_cpy(ctx, f32(48, 2, 1, 1), new4(GGML_TYPE_Q4_0, 96, 1, 1, 1)),
            "CPY F32 rows of 48 -> Q4_0 (partial blocks)");
    REFUSED(ggml_cpy(ctx, f32(16, 2, 1, 1), new4(GGML_TYPE_I16, 16, 2, 1, 1)),
            "CPY F32 -> I16 (no from_float)");
    REFUSED(ggml_cpy(ctx, new4(GGML_TYPE_I32, 16, 2, 1, 1), new4(GGML_TYPE_F16, 16, 2, 1, 1)),
            "CPY I32 -> F16");
    REFUSED(ggml_cpy(ctx, new4(GGML_TYPE_Q4_0, 64, 2, 1, 1), new4(GGML_TYPE_F16, 64, 2, 1, 1)),
            "CPY Q4_0 -> F16");
    ACCEPTED(ggml_cpy(ctx, new4(GGML_TYPE_Q4_0, 64, 2, 1, 1), f32(64, 2, 1, 1)),
             "CPY Q4_0 -> F32");
    REFUSED(ggml_cpy(ctx, new4(GGML_TYPE_Q8_1, 64, 2, 1, 1), f32(64, 2, 1, 1)),
            "CPY Q8_1 -> F32 (no to_float)");
    /* A dequantizing copy places rows by src1's strides in dst's memory. */
    struct ggml_tensor *t = ggml_cpy(ctx, new4(GGML_TYPE_Q4_0, 64, 2, 1, 1), f32(64, 2, 1, 1));
    struct ggml_tensor  m = *t;
    m.nb[1] = 512, m.nb[2] = 1024, m.nb[3] = 1024;
    REFUSED(&m, "CPY Q4_0 -> F32 whose dst strides are not src1's");
    ACCEPTED(ggml_cast(ctx, f32(16, 2, 1, 1), GGML_TYPE_BF16), "CAST F32 -> BF16");

    /* SET_ROWS: dst's from_float; F16 rows into another type overflow the work buffer. */
    struct ggml_tensor *idx = new4(GGML_TYPE_I64, 3, 1, 1, 1), *idx1 = new4(GGML_TYPE_I64, 1, 1, 1, 1);
    ACCEPTED(ggml_set_rows(ctx, new4(GGML_TYPE_Q8_0, 32, 8, 1, 1), f32(32, 3, 1, 1), idx),
             "SET_ROWS F32 -> Q8_0");
    struct ggml_tensor *sr = ggml_set_rows(ctx, new4(GGML_TYPE_Q8_0, 32, 8, 1, 1),
                                           new4(GGML_TYPE_F16, 32, 3, 1, 1), idx);
    ACCEPTED(sr, "SET_ROWS F16 -> Q8_0");
    assert_true(vgpu_kernel_cpu_alone(sr)); /* per-thread rows in a one-thread work buffer */
    assert_false(vgpu_kernel_cpu_alone(ggml_set_rows(ctx, new4(GGML_TYPE_Q8_0, 32, 8, 1, 1),
                                                     f32(32, 3, 1, 1), idx)));
    assert_false(vgpu_kernel_cpu_alone(ggml_set_rows(ctx, new4(GGML_TYPE_Q8_0, 32, 8, 1, 1),
                                                     new4(GGML_TYPE_F16, 32, 1, 1, 1), idx1)));
    ACCEPTED(ggml_set_rows(ctx, new4(GGML_TYPE_F16, 32, 8, 1, 1),
                           new4(GGML_TYPE_F16, 32, 3, 1, 1), idx),
             "SET_ROWS F16 -> F16");
    REFUSED(ggml_set_rows(ctx, new4(GGML_TYPE_I16, 32, 8, 1, 1), f32(32, 3, 1, 1), idx),
            "SET_ROWS F32 -> I16 (no from_float)");

    REFUSED(ggml_get_rows(ctx, new4(GGML_TYPE_Q8_1, 32, 8, 1, 1), new4(GGML_TYPE_I32, 3, 1, 1, 1)),
            "GET_ROWS Q8_1 (no to_float)");
    REFUSED(ggml_set(ctx, new4(GGML_TYPE_F16, 8, 8, 1, 1), new4(GGML_TYPE_F16, 4, 4, 1, 1), 16, 128,
                     128, 0),
            "SET F16");
}

/* ---- products, reductions, normalisation ------------------------------------------------------- */

static void test_products(void **state)
{
    (void) state;
    ACCEPTED(ggml_mul_mat(ctx, new4(GGML_TYPE_Q4_K, 256, 4, 1, 1), f32(256, 2, 1, 1)),
             "MUL_MAT Q4_K x F32");
    REFUSED(ggml_mul_mat(ctx, new4(GGML_TYPE_Q8_K, 256, 4, 1, 1), f32(256, 2, 1, 1)),
            "MUL_MAT Q8_K (no vec_dot)");
    REFUSED(ggml_mul_mat(ctx, new4(GGML_TYPE_I32, 16, 4, 1, 1), f32(16, 2, 1, 1)),
            "MUL_MAT I32 (no vec_dot)");
    REFUSED(ggml_mul_mat_id(ctx, f32(16, 4, 3, 1), new4(GGML_TYPE_F16, 16, 2, 2, 1),
                            new4(GGML_TYPE_I32, 2, 2, 1, 1)),
            "MUL_MAT_ID F32 x F16 (GGML_ASSERT src1 F32)");
    ACCEPTED(ggml_mul_mat_id(ctx, f32(16, 4, 3, 1), f32(16, 2, 2, 1), new4(GGML_TYPE_I32, 2, 2, 1, 1)),
             "MUL_MAT_ID F32");

    /* The Hadamard hint: rows of ne10 written into dst rows of ne01. */
    struct ggml_tensor *h = ggml_mul_mat(ctx, f32(16, 16, 1, 1), f32(16, 2, 1, 1));
    set_i32(h, 1, GGML_HINT_SRC0_IS_HADAMARD);
    ACCEPTED(h, "Hadamard 16x16");
    struct ggml_tensor *hn = ggml_mul_mat(ctx, f32(16, 8, 1, 1), f32(16, 2, 1, 1));
    set_i32(hn, 1, GGML_HINT_SRC0_IS_HADAMARD);
    REFUSED(hn, "Hadamard hint with a 16x8 src0 (writes 16 values into rows of 8)");
    struct ggml_tensor *hp = ggml_mul_mat(ctx, f32(12, 12, 1, 1), f32(12, 2, 1, 1));
    set_i32(hp, 1, GGML_HINT_SRC0_IS_HADAMARD);
    REFUSED(hp, "Hadamard of rows of 12 (GGML_ASSERT power of two)");

    REFUSED(ggml_out_prod(ctx, new4(GGML_TYPE_F16, 16, 4, 1, 1), f32(8, 4, 2, 1)),
            "OUT_PROD F16 broadcast (GGML_ASSERT ne02 == ne12)");
    ACCEPTED(ggml_out_prod(ctx, f32(16, 4, 1, 1), f32(8, 4, 2, 1)), "OUT_PROD F32 broadcast");

    REFUSED(ggml_count_equal(ctx, new4(GGML_TYPE_I32, 4, 2, 3, 1), new4(GGML_TYPE_I32, 4, 2, 3, 1)),
            "COUNT_EQUAL [4,2,3] (the kernel's row indexing leaves the sources)");
    ACCEPTED(ggml_count_equal(ctx, new4(GGML_TYPE_I32, 4, 500, 1, 1),
                              new4(GGML_TYPE_I32, 4, 500, 1, 1)),
             "COUNT_EQUAL [4,500]");
    REFUSED(ggml_sum_rows(ctx, new4(GGML_TYPE_F16, 8, 2, 1, 1)), "SUM_ROWS F16");
    REFUSED(ggml_argmax(ctx, new4(GGML_TYPE_F16, 8, 2, 1, 1)), "ARGMAX F16");
    REFUSED(ggml_repeat(ctx, new4(GGML_TYPE_Q4_0, 32, 1, 1, 1), new4(GGML_TYPE_Q4_0, 32, 2, 1, 1)),
            "REPEAT Q4_0");
    REFUSED(ggml_rms_norm(ctx, new4(GGML_TYPE_F16, 8, 2, 1, 1), 1e-6f), "RMS_NORM F16");
    REFUSED(ggml_rms_norm(ctx, ggml_transpose(ctx, f32(8, 8, 1, 1)), 1e-6f),
            "RMS_NORM of a transposed tensor (GGML_ASSERT nb00)");
    REFUSED(ggml_group_norm(ctx, f32(4, 4, 8, 1), 1 << 30, 1e-6f),
            "GROUP_NORM with 2^30 groups of 8 channels (a loop over 2^30 empty groups)");
    ACCEPTED(ggml_group_norm(ctx, f32(4, 4, 8, 1), 2, 1e-6f), "GROUP_NORM");
    REFUSED(ggml_diag_mask_inf(ctx, ggml_permute(ctx, f32(8, 8, 2, 1), 0, 2, 1, 3), 1),
            "DIAG_MASK_INF of a permuted tensor");
}

/* ---- rope, attention, convolution, pooling ------------------------------------------------------ */

static void test_rope_attention(void **state)
{
    (void) state;
    struct ggml_tensor *pos = new4(GGML_TYPE_I32, 3, 1, 1, 1);
    struct ggml_tensor *r   = ggml_rope_ext(ctx, f32(128, 2, 3, 1), pos, NULL, 128, 0, 4096,
                                            10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f);
    ACCEPTED(r, "ROPE");
    assert_int_equal(vgpu_kernel_cpu_overread(r, 2), 0);
    struct ggml_tensor m = *r;
    set_i32(&m, 1, 0);
    REFUSED(&m, "ROPE with n_dims 0 (the channel copy loop never ends)");
    /* Partial rotary with n_dims/2 freq factors: the cache reads ne0/2 of them. Accepted,
     * with the extra bytes reported for the caller's buffer check. */
    struct ggml_tensor *ff = f32(32, 1, 1, 1);
    struct ggml_tensor *rp = ggml_rope_ext(ctx, f32(128, 2, 3, 1), pos, ff, 64, 0, 4096, 10000.0f,
                                           1.0f, 0.0f, 1.0f, 32.0f, 1.0f);
    ACCEPTED(rp, "ROPE, 64 of 128 dims, 32 freq factors");
    assert_int_equal(vgpu_kernel_cpu_overread(rp, 2), 32 * sizeof(float));
    assert_int_equal(vgpu_kernel_cpu_overread(rp, 0), 0);
    assert_int_equal(vgpu_kernel_cpu_overread(rp, 1), 0);
    REFUSED(ggml_rope_ext(ctx, new4(GGML_TYPE_BF16, 128, 2, 3, 1), pos, NULL, 128, 0, 4096, 10000.0f,
                          1.0f, 0.0f, 1.0f, 32.0f, 1.0f),
            "ROPE BF16");

    struct ggml_tensor *q = f32(64, 4, 2, 1), *k = new4(GGML_TYPE_F16, 64, 32, 2, 1),
                       *v = new4(GGML_TYPE_F16, 64, 32, 2, 1);
    struct ggml_tensor *fa = ggml_flash_attn_ext(ctx, q, k, v, NULL, 0.125f, 0.0f, 0.0f);
    ACCEPTED(fa, "FLASH_ATTN_EXT");
    m = *fa;
    set_i32(&m, 3, 3);
    REFUSED(&m, "FLASH_ATTN_EXT with precision 3 (GGML_ABORT)");
    REFUSED(ggml_flash_attn_ext(ctx, new4(GGML_TYPE_F16, 64, 4, 2, 1), k, v, NULL, 0.125f, 0.0f, 0.0f),
            "FLASH_ATTN_EXT with an F16 q (read as float)");
    REFUSED(ggml_flash_attn_ext(ctx, f32(256, 4, 2, 1), new4(GGML_TYPE_Q8_K, 256, 32, 2, 1),
                                new4(GGML_TYPE_F16, 64, 32, 2, 1), NULL, 0.125f, 0.0f, 0.0f),
            "FLASH_ATTN_EXT with a Q8_K K (no vec_dot)");
}

static void test_conv_pool(void **state)
{
    (void) state;
    ACCEPTED(ggml_conv_2d_direct(ctx, f32(3, 3, 8, 16), f32(19, 17, 8, 2), 1, 1, 1, 1, 1, 1),
             "CONV_2D");
    /* One patch of a 3x3x600000 F32 kernel is 21.6 MB: more than the 16 MiB work buffer. */
    REFUSED(ggml_conv_2d_direct(ctx, f32(3, 3, 600000, 1), f32(4, 4, 600000, 1), 1, 1, 0, 0, 1, 1),
            "CONV_2D whose patch does not fit the work buffer (GGML_ASSERT)");
    REFUSED(ggml_conv_transpose_1d(ctx, new4(GGML_TYPE_BF16, 3, 2, 2, 1), f32(10, 2, 1, 1), 1, 0, 1),
            "CONV_TRANSPOSE_1D BF16 (ggml_graph_plan: fatal error)");
    ACCEPTED(ggml_pool_2d(ctx, f32(10, 10, 3, 1), GGML_OP_POOL_MAX, 3, 3, 1, 1, 1, 1), "POOL_2D");
    struct ggml_tensor *p = ggml_pool_2d(ctx, f32(10, 10, 3, 1), GGML_OP_POOL_AVG, 2, 2, 1, 1, 0, 0);
    struct ggml_tensor  m = *p;
    set_i32(&m, 1, INT32_MAX);
    REFUSED(&m, "POOL_2D with a 2^31 window on a 10x10 input (hours of loops)");
    REFUSED(ggml_pool_1d(ctx, new4(GGML_TYPE_I8, 10, 2, 1, 1), GGML_OP_POOL_MAX, 3, 1, 0),
            "POOL_1D I8 (read as F16)");
    REFUSED(ggml_ssm_conv(ctx, f32(7, 64, 4, 1),
                          ggml_view_2d(ctx, f32(4, 64, 1, 1), 4, 64, 4, 0)),
            "SSM_CONV with overlapping weight rows");
}

/* ---- the type traits are the real ones ------------------------------------------------------------ */

static void test_traits_match_cpu(void **state)
{
    (void) state;
    for (int i = 0; i < GGML_TYPE_COUNT; i++) {
        const enum ggml_type type = (enum ggml_type) i;
        if (ggml_blck_size(type) == 0 || ggml_type_size(type) == 0) {
            continue;
        }
        const struct ggml_type_traits_cpu *tr = ggml_get_type_traits_cpu(type);
        bool           ff, vd;
        enum ggml_type vdt;
        vgpu_kernel_cpu_traits(type, &ff, &vd, &vdt);
        if (ff != (tr->from_float != NULL) || vd != (tr->vec_dot != NULL) ||
            (vd && vdt != tr->vec_dot_type)) {
            print_error("%s: contract from_float %d vec_dot %d vec_dot_type %s; CPU %d %d %s\n",
                        ggml_type_name(type), ff, vd, ggml_type_name(vdt), tr->from_float != NULL,
                        tr->vec_dot != NULL, ggml_type_name(tr->vec_dot_type));
            fail();
        }
    }
    char why[64] = "x";
    assert_false(vgpu_kernel_cpu_ok(NULL, why, sizeof why));
    assert_true(why[0] != '\0');
    print_message("kernel-cpu: %d nodes refused, %d accepted\n", n_refused, n_accepted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary),         cmocka_unit_test(test_copies),
        cmocka_unit_test(test_products),       cmocka_unit_test(test_rope_attention),
        cmocka_unit_test(test_conv_pool),      cmocka_unit_test(test_traits_match_cpu),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
