/*
 * The CPU backend's kernel contract; see kernel-cpu.h.
 *
 * Why a second table next to validate-op.c: the validator encodes what ggml's constructors
 * guarantee, which is what every backend may rely on. ggml-cpu's kernels rely on more, and its
 * supports_op does not say so: it answers true for almost every node, and the kernels then
 * dispatch on types with a GGML_ABORT default ("fatal error"), GGML_ASSERT strides the
 * constructors leave open (ggml_mul accepts any types and any view as src0; the binary kernels
 * GGML_ASSERT nb00 == sizeof(src0_t)), call type-trait functions that are NULL for some types
 * (from_float of IQ2_XXS, to_float of Q8_1, vec_dot of Q8_K), or size their work buffer with
 * one tensor's ne and index it with another's. A guest that builds such a node reaches the
 * kernel directly, so for a CPU device every node must also pass this contract (graph builds
 * and supports_op answers alike). Each rule below names the kernel behaviour it prevents.
 *
 * The rules are for the pinned ggml-cpu (ggml/src/ggml-cpu/ops.cpp, binary-ops.cpp,
 * unary-ops.cpp, ggml-cpu.c); tests/validate-op/sweep-cpu.c checks them against the real
 * kernels: every mutant of every legit node (types, layouts, op_params) that the validator,
 * supports_op and this contract accept is computed in a child process with guard pages.
 *
 * Only metadata is read (types, ne, nb, op_params); index values are the index guard's.
 */
#include "kernel-cpu.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

_Static_assert(GGML_OP_COUNT == 101, "GGML_OP_COUNT changed: review the CPU kernel contract");
_Static_assert(GGML_TYPE_COUNT == 43, "GGML_TYPE_COUNT changed: review the CPU type traits below");

/* ---- reporting ------------------------------------------------------------------------------ */

struct kc {
    const char *op;
    char       *why;
    size_t      why_size;
};

__attribute__((format(printf, 2, 3)))
static bool fail(struct kc *k, const char *fmt, ...)
{
    if (k->why == NULL || k->why_size == 0) {
        return false;
    }
    int n = snprintf(k->why, k->why_size, "%s: CPU kernel: ", k->op);
    if (n < 0 || (size_t) n >= k->why_size) {
        return false;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->why + n, k->why_size - (size_t) n, fmt, ap);
    va_end(ap);
    return false;
}

#define REQ(cond, ...)                   \
    do {                                 \
        if (!(cond)) {                   \
            return fail(k, __VA_ARGS__); \
        }                                \
    } while (0)

#define T0 (t->src[0])
#define T1 (t->src[1])
#define T2 (t->src[2])
#define T3 (t->src[3])

/* op_params[i] as int32. */
static int32_t pi32(const struct ggml_tensor *t, int i)
{
    int32_t x;
    memcpy(&x, (const char *) t->op_params + 4 * (size_t) i, sizeof x);
    return x;
}

static const char *tn(const struct ggml_tensor *x)
{
    return ggml_type_name(x->type);
}

/* ---- the CPU type traits the kernels call through (ggml-cpu.c type_traits_cpu) ---------------- */

/*
 * type_traits_cpu[type].from_float is set (quantize_row_* / conversions). NULL for the integer
 * types but I32, F64, and the IQ types whose quantization needs ggml_quantize_init.
 */
static bool cpu_from_float(enum ggml_type type)
{
    switch (type) {
        case GGML_TYPE_F32:
        case GGML_TYPE_F16:
        case GGML_TYPE_BF16:
        case GGML_TYPE_Q1_0:
        case GGML_TYPE_Q2_0:
        case GGML_TYPE_Q4_0:
        case GGML_TYPE_Q4_1:
        case GGML_TYPE_Q5_0:
        case GGML_TYPE_Q5_1:
        case GGML_TYPE_Q8_0:
        case GGML_TYPE_Q8_1:
        case GGML_TYPE_MXFP4:
        case GGML_TYPE_NVFP4:
        case GGML_TYPE_Q2_K:
        case GGML_TYPE_Q3_K:
        case GGML_TYPE_Q4_K:
        case GGML_TYPE_Q5_K:
        case GGML_TYPE_Q6_K:
        case GGML_TYPE_IQ4_NL:
        case GGML_TYPE_IQ4_XS:
        case GGML_TYPE_Q8_K:
        case GGML_TYPE_TQ1_0:
        case GGML_TYPE_TQ2_0:
        case GGML_TYPE_I32:
            return true;
        default:
            return false;
    }
}

/* type_traits_cpu[type].vec_dot is set: the types MUL_MAT, MUL_MAT_ID and FLASH_ATTN_EXT (K)
 * can take as src0 (Q8_1, Q8_K and the integer types have none). */
static bool cpu_vec_dot(enum ggml_type type)
{
    switch (type) {
        case GGML_TYPE_Q8_1:
        case GGML_TYPE_Q8_K:
        case GGML_TYPE_I8:
        case GGML_TYPE_I16:
        case GGML_TYPE_I32:
        case GGML_TYPE_I64:
        case GGML_TYPE_F64:
            return false;
        default:
            return true;
    }
}

/* type_traits_cpu[type].vec_dot_type (F32, the zero value, where the table leaves it unset). */
static enum ggml_type cpu_vec_dot_type(enum ggml_type type)
{
    switch (type) {
        case GGML_TYPE_F16:
            return GGML_TYPE_F16;
        case GGML_TYPE_BF16:
            return GGML_TYPE_BF16;
        case GGML_TYPE_Q1_0:
        case GGML_TYPE_Q2_0:
        case GGML_TYPE_Q4_0:
        case GGML_TYPE_Q5_0:
        case GGML_TYPE_Q8_0:
        case GGML_TYPE_MXFP4:
        case GGML_TYPE_NVFP4:
        case GGML_TYPE_IQ4_NL:
            return GGML_TYPE_Q8_0;
        case GGML_TYPE_Q4_1:
        case GGML_TYPE_Q5_1:
        case GGML_TYPE_Q8_1:
            return GGML_TYPE_Q8_1;
        case GGML_TYPE_Q2_K:
        case GGML_TYPE_Q3_K:
        case GGML_TYPE_Q4_K:
        case GGML_TYPE_Q5_K:
        case GGML_TYPE_Q6_K:
        case GGML_TYPE_IQ2_XXS:
        case GGML_TYPE_IQ2_XS:
        case GGML_TYPE_IQ3_XXS:
        case GGML_TYPE_IQ3_S:
        case GGML_TYPE_IQ2_S:
        case GGML_TYPE_IQ1_S:
        case GGML_TYPE_IQ1_M:
        case GGML_TYPE_IQ4_XS:
        case GGML_TYPE_TQ1_0:
        case GGML_TYPE_TQ2_0:
            return GGML_TYPE_Q8_K;
        default:
            return GGML_TYPE_F32;
    }
}

/* Test hook (not in the header): the three tables above, so that sweep-cpu.c can compare them
 * with the real ggml_get_type_traits_cpu of the pinned build. */
void vgpu_kernel_cpu_traits(enum ggml_type type, bool *from_float, bool *vec_dot,
                            enum ggml_type *vec_dot_type);

void vgpu_kernel_cpu_traits(enum ggml_type type, bool *from_float, bool *vec_dot,
                            enum ggml_type *vec_dot_type)
{
    *from_float   = cpu_from_float(type);
    *vec_dot      = cpu_vec_dot(type);
    *vec_dot_type = cpu_vec_dot_type(type);
}

/* ggml_get_type_traits(type)->to_float (ggml-base, the host links it): dequantization. */
static bool base_to_float(enum ggml_type type)
{
    return ggml_get_type_traits(type)->to_float != NULL;
}

/* The quantized types the kernels' switch statements list (ADD, OUT_PROD, GET_ROWS, ...):
 * every quantized type but Q8_1 and Q8_K. */
static bool listed_quant(enum ggml_type type)
{
    return ggml_is_quantized(type) && type != GGML_TYPE_Q8_1 && type != GGML_TYPE_Q8_K;
}

static bool is_f32_f16(const struct ggml_tensor *x)
{
    return x->type == GGML_TYPE_F32 || x->type == GGML_TYPE_F16;
}

static bool is_float3(const struct ggml_tensor *x)
{
    return x->type == GGML_TYPE_F32 || x->type == GGML_TYPE_F16 || x->type == GGML_TYPE_BF16;
}

/* ---- layout predicates ------------------------------------------------------------------------ */

static int64_t nelem(const struct ggml_tensor *x)
{
    return x->ne[0] * x->ne[1] * x->ne[2] * x->ne[3];
}

/* nb0 is the element size: what every "GGML_ASSERT(nb0 == sizeof(T))" asks. */
static bool elem0(const struct ggml_tensor *x)
{
    return x->nb[0] == ggml_type_size(x->type);
}

/*
 * Kernels that walk rows 0..nrows-1 as i*nb[1] and read or write ne0 adjacent elements from
 * each (CLAMP, SOFT_MAX_BACK): that walk stays inside x's extent. (For a packed tensor it is
 * the tensor itself; a permuted one usually leaves it; the kernel then gets other rows than
 * dims 2 and 3 say, which is wrong but harmless as long as they lie inside.)
 */
static bool flat_walk_inside(const struct ggml_tensor *x)
{
    if (nelem(x) == 0) {
        return true;
    }
    const int64_t rows = x->ne[1] * x->ne[2] * x->ne[3];
    int64_t       end;
    return !__builtin_mul_overflow(rows - 1, (int64_t) x->nb[1], &end) &&
           !__builtin_add_overflow(end, x->ne[0] * (int64_t) ggml_type_size(x->type), &end) &&
           end <= (int64_t) ggml_nbytes(x);
}

/* dst cannot be transposed or permuted (nb0 <= nb1 <= nb2 <= nb3). */
static bool monotone(const struct ggml_tensor *x)
{
    return x->nb[0] <= x->nb[1] && x->nb[1] <= x->nb[2] && x->nb[2] <= x->nb[3];
}

/* ---- element-wise ----------------------------------------------------------------------------- */

/*
 * binary-ops.cpp binary_op (ADD of F32/F16/BF16, SUB, MUL, DIV): one of seven (src0, src1,
 * dst) type triples or GGML_ABORT "unsupported types"; GGML_ASSERT nb0 == sizeof(dst_t) and
 * nb00 == sizeof(src0_t). The CPU fuses RMS_NORM + MUL into a kernel that writes the MUL's
 * result as a packed F32 row: the same dst rule covers it.
 */
static bool binary_types(struct kc *k, const struct ggml_tensor *t)
{
    const enum ggml_type a = T0->type, b = T1->type, d = t->type;
    const bool ok = (a == b && b == d && is_float3(T0)) ||
                    (a == GGML_TYPE_BF16 && b == GGML_TYPE_F32 &&
                     (d == GGML_TYPE_BF16 || d == GGML_TYPE_F32)) ||
                    (a == GGML_TYPE_F16 && b == GGML_TYPE_F32 &&
                     (d == GGML_TYPE_F16 || d == GGML_TYPE_F32));
    REQ(ok, "no binary kernel for dst %s, src0 %s, src1 %s", tn(t), tn(T0), tn(T1));
    REQ(elem0(t) && elem0(T0), "dst and src0 elements must be adjacent (nb0 %zu, nb00 %zu)",
        t->nb[0], T0->nb[0]);
    return true;
}

/*
 * ADD: float src0 as binary_types; a quantized src0 (ggml_add_cast) goes to add_q_f32, which
 * GGML_ASSERTs src1 F32 of src0's very shape (no broadcast), nb10 == 4, a monotone dst, and
 * re-quantizes each row with dst's from_float, or memcpy's ne0 * nb0 bytes of its F32 scratch
 * row when dst has none (past the row and the scratch for a block type): dst needs a CPU
 * from_float. Q8_1, Q8_K and the integer types abort.
 */
static bool k_add(struct kc *k, const struct ggml_tensor *t)
{
    if (is_float3(T0)) {
        return binary_types(k, t);
    }
    REQ(listed_quant(T0->type), "no ADD kernel for src0 %s", tn(T0));
    REQ(T1->type == GGML_TYPE_F32, "quantized ADD needs an F32 src1, not %s", tn(T1));
    REQ(ggml_are_same_shape(T0, T1), "quantized ADD does not broadcast src1");
    REQ(elem0(T1), "src1 elements must be adjacent");
    REQ(monotone(t), "dst transposed or permuted");
    REQ(cpu_from_float(t->type), "no CPU conversion from F32 to dst type %s", tn(t));
    return true;
}

/* ADD_ID: add_id_f32 only (GGML_ABORT otherwise), GGML_ASSERTs F32 a, b, dst, I32 ids and
 * adjacent elements in a, b and dst. */
static bool k_add_id(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32 && T1->type == GGML_TYPE_F32 && t->type == GGML_TYPE_F32,
        "ADD_ID is F32 only (dst %s, a %s, b %s)", tn(t), tn(T0), tn(T1));
    REQ(elem0(t) && elem0(T0) && elem0(T1), "elements must be adjacent");
    return true;
}

/*
 * ADD1: F32 src0 reads the scalar src1 as a float (an F16 scalar is read 2 bytes past its
 * end); F16 / BF16 src0 take an F16 / BF16 or F32 scalar (GGML_ABORT otherwise); each
 * GGML_ASSERTs nb0 and nb00 the element size. A quantized src0 dequantizes with to_float
 * (NULL for Q8_1) and re-quantizes with the CPU from_float (NULL for the IQ2/IQ1/IQ3 types),
 * needs an F32 scalar and a monotone dst.
 */
static bool k_add1(struct kc *k, const struct ggml_tensor *t)
{
    switch (T0->type) {
        case GGML_TYPE_F32:
            REQ(T1->type == GGML_TYPE_F32, "F32 ADD1 reads an F32 scalar, not %s", tn(T1));
            break;
        case GGML_TYPE_F16:
        case GGML_TYPE_BF16:
            REQ(T1->type == T0->type || T1->type == GGML_TYPE_F32,
                "%s ADD1 takes a %s or F32 scalar, not %s", tn(T0), tn(T0), tn(T1));
            break;
        default:
            REQ(ggml_is_quantized(T0->type) && T0->type != GGML_TYPE_Q8_K,
                "no ADD1 kernel for %s", tn(T0));
            REQ(base_to_float(T0->type) && cpu_from_float(T0->type),
                "%s cannot be converted to and from F32 on the CPU", tn(T0));
            REQ(T1->type == GGML_TYPE_F32, "quantized ADD1 needs an F32 scalar");
            REQ(monotone(t), "dst transposed or permuted");
            return true;
    }
    REQ(elem0(t) && elem0(T0), "dst and src0 elements must be adjacent");
    return true;
}

/* ACC: acc_f32 GGML_ASSERTs a contiguous dst and nb10 == sizeof(float). */
static bool k_acc(struct kc *k, const struct ggml_tensor *t)
{
    REQ(ggml_is_contiguous(t), "dst not contiguous");
    REQ(elem0(T1), "src1 elements must be adjacent");
    return true;
}

/*
 * unary-ops.cpp unary_op (SQR, SQRT, LOG, SIN, COS and the UNARY ops it serves): (src0, dst)
 * F32/F32, F16/F16, BF16/BF16, BF16/F32 or F16/F32, else GGML_ABORT; GGML_ASSERT contiguous
 * rows in both and nb0 / nb00 the element size. `functor` (XIELU) asks contiguous_1 instead.
 */
static bool unary_types(struct kc *k, const struct ggml_tensor *t, bool functor)
{
    const enum ggml_type a = T0->type, d = t->type;
    const bool ok = (a == d && is_float3(T0)) ||
                    (d == GGML_TYPE_F32 && (a == GGML_TYPE_F16 || a == GGML_TYPE_BF16));
    REQ(ok, "no unary kernel for dst %s, src0 %s", tn(t), tn(T0));
    if (functor) {
        REQ(ggml_is_contiguous_1(T0) && ggml_is_contiguous_1(t), "src0 or dst not contiguous_1");
    } else {
        REQ(ggml_is_contiguous_rows(T0) && ggml_is_contiguous_rows(t),
            "src0 or dst rows not contiguous");
    }
    REQ(elem0(t) && elem0(T0), "dst and src0 elements must be adjacent");
    return true;
}

static bool k_unary_std(struct kc *k, const struct ggml_tensor *t)
{
    return unary_types(k, t, false);
}

/* ops.cpp kernels switched on src0's type with a GGML_ABORT default and no layout assert:
 * F32 and F16 (GELU, GELU_ERF, GELU_QUICK, SILU, LEAKY_RELU, FILL). */
static bool f32_f16_only(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(T0), "F32 or F16 only, not %s", tn(T0));
    return true;
}

/* F32 only (TRI, MEAN, ARGMAX, NORM, L2_NORM, SOFT_MAX, UPSCALE, PAD, ROLL, ARGSORT, TOP_K,
 * WIN_PART, WIN_UNPART, ADD_REL_POS, ...). */
static bool f32_only(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32, "F32 only, not %s", tn(T0));
    return true;
}

/* UNARY: unary_op for everything but the ops.cpp kernels (GELU*, SILU: F32/F16 by src0) and
 * XIELU (a functor: contiguous_1). */
static bool k_unary(struct kc *k, const struct ggml_tensor *t)
{
    switch ((enum ggml_unary_op) pi32(t, 0)) {
        case GGML_UNARY_OP_GELU:
        case GGML_UNARY_OP_GELU_ERF:
        case GGML_UNARY_OP_GELU_QUICK:
        case GGML_UNARY_OP_SILU:
            return f32_f16_only(k, t);
        case GGML_UNARY_OP_XIELU:
            return unary_types(k, t, true);
        default:
            return unary_types(k, t, false);
    }
}

/* GLU: the ops.cpp kernels switch on src0 F32/F16 (SWIGLU_OAI: F32 only) and GGML_ASSERT
 * src0 and src1 of one type. */
static bool k_glu(struct kc *k, const struct ggml_tensor *t)
{
    if (pi32(t, 0) == GGML_GLU_OP_SWIGLU_OAI) {
        REQ(T0->type == GGML_TYPE_F32, "SWIGLU_OAI is F32 only, not %s", tn(T0));
    } else {
        REQ(is_f32_f16(T0), "GLU is F32 or F16 only, not %s", tn(T0));
    }
    REQ(T1 == NULL || T1->type == T0->type, "src1 type %s != src0 type %s", tn(T1), tn(T0));
    REQ(t->type == T0->type, "dst type %s != src0 type %s", tn(t), tn(T0));
    return true;
}

/* SILU_BACK: F32/F16 by src0; src1 is read as src0's type (a narrower src1 past its end). */
static bool k_silu_back(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(T0), "F32 or F16 only, not %s", tn(T0));
    REQ(T1->type == T0->type, "src1 type %s != src0 type %s", tn(T1), tn(T0));
    return true;
}

/* CLAMP: F32/F16; GGML_ASSERT nb0 / nb00 the element size; rows walked as j*nb1 (inside). */
static bool k_clamp(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(T0), "F32 or F16 only, not %s", tn(T0));
    REQ(elem0(t) && elem0(T0), "dst and src0 elements must be adjacent");
    REQ(flat_walk_inside(T0) && flat_walk_inside(t), "rows walked as i*nb1 leave the tensors");
    return true;
}

/* SCALE: F32; GGML_ASSERT contiguous src0 and dst. */
static bool k_scale(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32, "F32 only, not %s", tn(T0));
    REQ(ggml_is_contiguous(T0) && ggml_is_contiguous(t), "src0 or dst not contiguous");
    return true;
}

/* ---- reductions ---------------------------------------------------------------------------------- */

/* SUM: F32, F16, BF16. */
static bool k_sum(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_float3(T0), "F32, F16 or BF16 only, not %s", tn(T0));
    return true;
}

/* SUM_ROWS, CUMSUM, REPEAT_BACK: F32; GGML_ASSERT nb0 of src0 and dst == sizeof(float). */
static bool f32_elem0(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32, "F32 only, not %s", tn(T0));
    REQ(elem0(T0) && elem0(t), "src0 and dst elements must be adjacent");
    return true;
}

/*
 * COUNT_EQUAL: I32 sources. The kernel derives (i02, i01) from the flat row index as
 * (ir - i03*ne03)/ne01 and ir - i03*ne03 - i02*ne02 (sic), which leaves the sources unless
 * ne3 == 1 and (ne2 == 1 or ne2 == ne1): refused otherwise (reads before the sources).
 */
static bool k_count_equal(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_I32 && T1->type == GGML_TYPE_I32, "I32 sources only");
    REQ(T0->ne[3] == 1 && (T0->ne[2] == 1 || T0->ne[2] == T0->ne[1]),
        "the kernel's row indexing is only right for ne3 == 1 and ne2 in {1, ne1}");
    return true;
}

/* REPEAT: 2- and 4-byte element types (F16, BF16, I16, F32, I32); GGML_ASSERT nb0 / nb00. */
static bool k_repeat(struct kc *k, const struct ggml_tensor *t)
{
    const enum ggml_type a = T0->type;
    REQ(a == GGML_TYPE_F16 || a == GGML_TYPE_BF16 || a == GGML_TYPE_I16 || a == GGML_TYPE_F32 ||
            a == GGML_TYPE_I32,
        "no REPEAT kernel for %s", tn(T0));
    REQ(elem0(t) && elem0(T0), "dst and src0 elements must be adjacent");
    return true;
}

/* CONCAT: 1/2/4-byte types element by element; any other type through concat_any, which
 * GGML_ASSERTs contiguous rows in both sources. */
static bool k_concat(struct kc *k, const struct ggml_tensor *t)
{
    switch (T0->type) {
        case GGML_TYPE_F16:
        case GGML_TYPE_BF16:
        case GGML_TYPE_I16:
        case GGML_TYPE_I8:
        case GGML_TYPE_F32:
        case GGML_TYPE_I32:
            return true;
        default:
            REQ(ggml_is_contiguous_rows(T0) && ggml_is_contiguous_rows(T1),
                "source rows not contiguous");
            return true;
    }
}

/* ---- normalisation -------------------------------------------------------------------------------- */

/* RMS_NORM, TIMESTEP_EMBEDDING: F32; GGML_ASSERT src0->nb[0] == sizeof(float). */
static bool f32_src_elem0(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32, "F32 only, not %s", tn(T0));
    REQ(elem0(T0), "src0 elements must be adjacent");
    return true;
}

/* RMS_NORM_BACK: F32 (src1 read as float); GGML_ASSERT nb0 of both sources. */
/* GROUP_NORM: as RMS_NORM; the kernel loops over every group, so more groups than channels
 * (empty groups) is only work: at most ne2. */
static bool k_group_norm(struct kc *k, const struct ggml_tensor *t)
{
    if (!f32_src_elem0(k, t)) {
        return false;
    }
    REQ(pi32(t, 0) <= (T0->ne[2] > 1 ? T0->ne[2] : 1), "%d groups of %" PRId64 " channels",
        pi32(t, 0), T0->ne[2]);
    return true;
}

static bool k_rms_norm_back(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32 && T1->type == GGML_TYPE_F32, "F32 only");
    REQ(elem0(T0) && elem0(T1), "source elements must be adjacent");
    return true;
}

/* ---- matrix products -------------------------------------------------------------------------------- */

/*
 * MUL_MAT. With the Hadamard hint (op_params[1]) it is a fast Walsh-Hadamard transform of
 * src1's rows: src1 F32 or F16 (GGML_ABORT), a power-of-two row length (GGML_ASSERT) and rows
 * of ne10 values written into dst rows of ne01 (past them unless ne01 >= ne10). Otherwise:
 * src0 needs a vec_dot (a NULL call for Q8_1, Q8_K and the integer types), src1 is converted
 * to its vec_dot_type (F32 only; supports_op admits nothing else), nb00 and nb10 the element
 * size, a packed F32 dst (GGML_ASSERTed; the validator builds it so).
 */
static bool k_mul_mat(struct kc *k, const struct ggml_tensor *t)
{
    if (pi32(t, 1) == GGML_HINT_SRC0_IS_HADAMARD) {
        REQ(is_f32_f16(T1), "Hadamard transform of %s", tn(T1));
        REQ((T1->ne[0] & (T1->ne[0] - 1)) == 0, "Hadamard row length " "%" PRId64
            " not a power of two", T1->ne[0]);
        REQ(T0->ne[1] >= T1->ne[0], "Hadamard rows of %" PRId64 " written into rows of %" PRId64,
            T1->ne[0], T0->ne[1]);
        return true;
    }
    REQ(cpu_vec_dot(T0->type), "no CPU dot product for %s", tn(T0));
    REQ(T1->type == cpu_vec_dot_type(T0->type) || T1->type == GGML_TYPE_F32,
        "src1 %s is neither F32 nor %s's dot type", tn(T1), tn(T0));
    REQ(elem0(T0) && elem0(T1), "source elements must be adjacent");
    REQ(elem0(t) && monotone(t), "dst transposed or permuted");
    return true;
}

/* MUL_MAT_ID: as MUL_MAT, and a src1 that is not the dot type must be F32 (GGML_ASSERT). */
static bool k_mul_mat_id(struct kc *k, const struct ggml_tensor *t)
{
    REQ(cpu_vec_dot(T0->type), "no CPU dot product for %s", tn(T0));
    REQ(T1->type == cpu_vec_dot_type(T0->type) || T1->type == GGML_TYPE_F32,
        "src1 %s is neither F32 nor %s's dot type", tn(T1), tn(T0));
    REQ(elem0(T0) && elem0(T1), "source elements must be adjacent");
    REQ(elem0(t) && monotone(t), "dst transposed or permuted");
    return true;
}

/*
 * OUT_PROD: F32 src0 broadcasts over src1's planes; F16 and the listed quantized types
 * (dequantized with to_float) GGML_ASSERT the same planes. All read src1 as float and
 * GGML_ASSERT nb00 the element size.
 */
static bool k_out_prod(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32 || T0->type == GGML_TYPE_F16 ||
            (listed_quant(T0->type) && base_to_float(T0->type)),
        "no OUT_PROD kernel for %s", tn(T0));
    REQ(T1->type == GGML_TYPE_F32, "src1 must be F32, not %s", tn(T1));
    REQ(elem0(T0), "src0 elements must be adjacent");
    if (T0->type != GGML_TYPE_F32) {
        REQ(T0->ne[2] == T1->ne[2] && T0->ne[3] == T1->ne[3],
            "F16/quantized OUT_PROD does not broadcast");
    }
    return true;
}

/* ---- copies ------------------------------------------------------------------------------------ */

/*
 * DUP, CONT, CPY (ops.cpp ggml_compute_forward_dup). Same types: a byte copy. F16/BF16/F32 to
 * a float type (and F32 <-> I32): element conversion. A float source to any other type goes
 * through dup_to_q: it needs a contiguous dst, adjacent source elements and the CPU from_float
 * of the dst type (GGML_ABORT "not implemented"), converts each source row into a per-thread
 * F32 row of ne00 floats in the work buffer that ggml_graph_plan sized by dst's ne0 (and only
 * for a quantized dst): src0's ne0 must not exceed dst's and dst must be quantized, with whole
 * blocks per row. A quantized source to F32 is dup_from_q (CPY only): to_float (NULL for Q8_1
 * and Q8_K), adjacent dst elements (GGML_ASSERT), whole blocks per dst row or a contiguous dst
 * (GGML_ASSERT), and it places rows by src1's strides in dst's memory, so dst must have
 * src1's strides (a view of src1, as ggml_cpy builds it). Everything else aborts.
 */
static bool k_dup(struct kc *k, const struct ggml_tensor *t)
{
    const enum ggml_type a = T0->type, d = t->type;
    if (a == d) {
        return true;
    }
    const bool flt_src = a == GGML_TYPE_F32 || a == GGML_TYPE_F16 || a == GGML_TYPE_BF16;
    if (flt_src && (d == GGML_TYPE_F32 || d == GGML_TYPE_F16 || d == GGML_TYPE_BF16)) {
        return true;
    }
    if ((a == GGML_TYPE_F32 && d == GGML_TYPE_I32) || (a == GGML_TYPE_I32 && d == GGML_TYPE_F32)) {
        return true;
    }
    if (flt_src) {
        REQ(ggml_is_quantized(d) && cpu_from_float(d), "no CPU conversion from %s to %s", tn(T0),
            tn(t));
        REQ(ggml_is_contiguous(t), "a quantizing copy needs a contiguous dst");
        REQ(elem0(T0), "a quantizing copy needs adjacent source elements");
        REQ(T0->ne[0] <= t->ne[0], "source rows of %" PRId64 " overflow the work rows of %" PRId64,
            T0->ne[0], t->ne[0]);
        REQ(T0->ne[0] % ggml_blck_size(d) == 0, "source rows are not whole %s blocks", tn(t));
        return true;
    }
    REQ(ggml_is_quantized(a) && d == GGML_TYPE_F32 && t->op == GGML_OP_CPY && T1 != NULL,
        "no CPU conversion from %s to %s", tn(T0), tn(t));
    REQ(base_to_float(a), "%s cannot be dequantized", tn(T0));
    REQ(ggml_are_same_stride(t, T1) && elem0(T1), "dst must be a packed-element view of src1");
    REQ(T1->ne[0] % ggml_blck_size(a) == 0 || ggml_is_contiguous(t),
        "dst rows are not whole %s blocks and dst is not contiguous", tn(T0));
    return true;
}

/* SET: F32 and I32 only; GGML_ASSERT contiguous src0 and dst, nb10 the element size; src1 is
 * read as dst's type. */
static bool k_set(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32 || T0->type == GGML_TYPE_I32, "F32 or I32 only, not %s", tn(T0));
    REQ(T1->type == T0->type, "src1 type %s != src0 type %s", tn(T1), tn(T0));
    REQ(ggml_is_contiguous(T0) && ggml_is_contiguous(t), "src0 or dst not contiguous");
    REQ(elem0(T1), "src1 elements must be adjacent");
    return true;
}

/* ---- rows ------------------------------------------------------------------------------------------- */

/* GET_ROWS: F32, I32, F16, BF16 or a listed quantized type with a to_float (not Q8_1). */
static bool k_get_rows(struct kc *k, const struct ggml_tensor *t)
{
    const enum ggml_type a = T0->type;
    REQ(a == GGML_TYPE_F32 || a == GGML_TYPE_I32 || a == GGML_TYPE_F16 || a == GGML_TYPE_BF16 ||
            (ggml_is_quantized(a) && a != GGML_TYPE_Q8_K && base_to_float(a)),
        "no GET_ROWS kernel for %s", tn(T0));
    return true;
}

/* GET_ROWS_BACK: F32/F16; GGML_ASSERT a contiguous dst and nb00 the element size. */
static bool k_get_rows_back(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(T0), "F32 or F16 only, not %s", tn(T0));
    REQ(elem0(T0), "src0 elements must be adjacent");
    REQ(ggml_is_contiguous(t), "dst not contiguous");
    return true;
}

/*
 * SET_ROWS: rows are converted with dst's CPU from_float (NULL for the integer types but I32,
 * a NULL call). An F16 source into a non-F16 dst goes through a per-thread F32 row at
 * wdata + (ne00 + 16) * ith, but ggml_get_n_tasks gives SET_ROWS one task, so
 * ggml_graph_plan sizes that scratch for one thread while every thread of a graph whose other
 * nodes have more tasks runs the kernel and writes rows past the work buffer: such a node is
 * computed alone (vgpu_kernel_cpu_alone), on one thread.
 */
static bool k_set_rows(struct kc *k, const struct ggml_tensor *t)
{
    REQ(cpu_from_float(t->type), "no CPU conversion from F32 to %s", tn(t));
    return true;
}

bool vgpu_kernel_cpu_alone(const struct ggml_tensor *t)
{
    return t != NULL && t->op == GGML_OP_SET_ROWS && t->src[0] != NULL &&
           t->src[0]->type == GGML_TYPE_F16 && t->type != GGML_TYPE_F16 && t->src[0]->ne[1] > 1;
}

/* DIAG: F32; GGML_ASSERT nb00 and nb0 == sizeof(float). */
static bool k_diag(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32, "F32 only, not %s", tn(T0));
    REQ(elem0(T0) && elem0(t), "src0 and dst elements must be adjacent");
    return true;
}

/* DIAG_MASK_INF/ZERO: F32; GGML_ASSERT nb0 of both; a copy into a separate dst GGML_ASSERTs
 * both contiguous (required whatever the data pointers); planes walked as k*nb2. */
static bool k_diag_mask(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32, "F32 only, not %s", tn(T0));
    REQ(elem0(T0) && elem0(t), "src0 and dst elements must be adjacent");
    REQ(ggml_is_contiguous(T0) && ggml_is_contiguous(t), "src0 or dst not contiguous");
    REQ(t->ne[3] <= 1 || t->nb[3] == t->nb[2] * (size_t) t->ne[2], "dst planes not flat");
    return true;
}

/* SOFT_MAX_BACK: F32; GGML_ASSERT contiguous src0, src1, dst; rows walked as i*nb1, which a
 * size-1 dim's free stride can send anywhere: inside the tensors. */
static bool k_soft_max_back(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32 && T1->type == GGML_TYPE_F32, "F32 only");
    REQ(ggml_is_contiguous(T0) && ggml_is_contiguous(T1) && ggml_is_contiguous(t),
        "src0, src1 or dst not contiguous");
    REQ(flat_walk_inside(T0) && flat_walk_inside(T1) && flat_walk_inside(t),
        "rows walked as i*nb1 leave the tensors");
    return true;
}

/*
 * ROPE / ROPE_BACK: F32/F16; GGML_ASSERT nb0 == nb00 == the element size; n_dims > 0 (see
 * below); M-RoPE GGML_ASSERTs one of the first three sections positive. The cache reads
 * freq_factors[i0/2] for every i0 < ne0 (ggml_rope_cache_init), not only the n_dims/2 the
 * constructor asks: the factors must be one plain F32 row (validated) and what lies past them
 * is the caller's to check (vgpu_kernel_cpu_overread).
 */
static bool k_rope(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(T0), "F32 or F16 only, not %s", tn(T0));
    REQ(elem0(T0) && t->nb[0] == T0->nb[0], "src0 and dst elements must be adjacent");
    const int32_t mode = pi32(t, 2);
    /* The loop that copies the unrotated channels steps i0 back by 2 at i0 == n_offs when
     * n_dims is 0: it never ends. */
    REQ(pi32(t, 1) > 0 || mode == GGML_ROPE_TYPE_VISION || pi32(t, 15) >= T0->ne[0],
        "n_dims 0 loops forever");
    if (mode & GGML_ROPE_TYPE_MROPE) {
        REQ(pi32(t, 11) > 0 || pi32(t, 12) > 0 || pi32(t, 13) > 0,
            "M-RoPE needs one of the first three sections");
    }
    return true;
}

uint64_t vgpu_kernel_cpu_overread(const struct ggml_tensor *t, int i)
{
    if (t == NULL || i != 2 || (t->op != GGML_OP_ROPE && t->op != GGML_OP_ROPE_BACK) ||
        t->src[0] == NULL || t->src[2] == NULL || t->src[2]->type != GGML_TYPE_F32) {
        return 0;
    }
    const int64_t need = (t->src[0]->ne[0] + 1) / 2, have = t->src[2]->ne[0];
    return need > have && have > 0 ? (uint64_t) (need - have) * sizeof(float) : 0;
}

/* ---- convolution, pooling, image ------------------------------------------------------------------ */

/* Byte offsets the im2col kernels keep in an int. */
static bool int_strides(const struct ggml_tensor *x)
{
    return x->nb[1] <= INT32_MAX && x->nb[2] <= INT32_MAX && x->nb[3] <= INT32_MAX;
}

/* CONV_TRANSPOSE_1D: (F16 or F32 kernel, F32 input), else GGML_ABORT in ggml_graph_plan or the
 * kernel; GGML_ASSERT nb00 and nb10 the element size. */
static bool k_conv_transpose_1d(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(T0) && T1->type == GGML_TYPE_F32, "kernel %s / input %s", tn(T0), tn(T1));
    REQ(elem0(T0) && elem0(T1), "source elements must be adjacent");
    return true;
}

/* IM2COL: F32 dst from an F32 image, F16 dst from an F16/F32 image (GGML_ASSERT / ABORT);
 * GGML_ASSERT nb10 the element size; image strides kept in an int. */
static bool k_im2col(struct kc *k, const struct ggml_tensor *t)
{
    if (t->type == GGML_TYPE_F32) {
        REQ(T1->type == GGML_TYPE_F32, "F32 im2col of a %s image", tn(T1));
    } else {
        REQ(t->type == GGML_TYPE_F16 && is_f32_f16(T1), "im2col %s -> %s", tn(T1), tn(t));
    }
    REQ(elem0(T1) && int_strides(T1), "image elements not adjacent or strides too large");
    return true;
}

/* IM2COL_BACK: F32 gradient, F32/F16 kernel, F32 dst (GGML_ASSERT), nb0 == 4; dst strides kept
 * in an int. */
static bool k_im2col_back(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32 && is_f32_f16(T1) && t->type == GGML_TYPE_F32,
        "types %s, %s -> %s", tn(T0), tn(T1), tn(t));
    REQ(elem0(t) && int_strides(t), "dst elements not adjacent or strides too large");
    return true;
}

/* IM2COL_3D: F32 image into an F32 or F16 dst; GGML_ASSERT nb10 == 4. */
static bool k_im2col_3d(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(t) && T1->type == GGML_TYPE_F32, "im2col_3d %s -> %s", tn(T1), tn(t));
    REQ(elem0(T1) && int_strides(T1), "image elements not adjacent or strides too large");
    return true;
}

/* COL2IM_1D: F32/F16/BF16, dst written as src0's type; GGML_ASSERT contiguous both. */
static bool k_col2im_1d(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_float3(T0) && t->type == T0->type, "col2im %s -> %s", tn(T0), tn(t));
    REQ(ggml_is_contiguous(T0) && ggml_is_contiguous(t), "src0 or dst not contiguous");
    return true;
}

/*
 * CONV_2D / CONV_3D (direct): a contiguous F16/F32 kernel (GGML_ASSERT), an F32 input and dst,
 * and one patch (kernel volume per output channel in the kernel's type plus c_out floats)
 * must fit the fixed GGML_IM2COL_WORK_SIZE (16 MiB) work buffer, which the kernel divides by
 * it: GGML_ASSERT(patches_per_batch > 0) when it is larger, a division by zero when it is 0.
 */
static bool k_conv_direct(struct kc *k, const struct ggml_tensor *t, int64_t knl_n, int64_t c_out)
{
    REQ(is_f32_f16(T0), "kernel %s", tn(T0));
    REQ(ggml_is_contiguous(T0), "kernel not contiguous");
    REQ(T1->type == GGML_TYPE_F32 && t->type == GGML_TYPE_F32, "input %s, dst %s", tn(T1), tn(t));
    int64_t patch;
    REQ(knl_n >= 0 && c_out >= 0 && !__builtin_mul_overflow(knl_n, (int64_t) ggml_type_size(T0->type), &patch) &&
            !__builtin_add_overflow(patch, 4 * c_out, &patch) && patch > 0 &&
            patch <= 16 * 1024 * 1024,
        "one patch (%" PRId64 " kernel values, %" PRId64 " outputs) does not fit the 16 MiB work "
        "buffer", knl_n, c_out);
    return true;
}

/* CONV_2D: kernel [KW, KH, IC, OC]. */
static bool k_conv_2d(struct kc *k, const struct ggml_tensor *t)
{
    return k_conv_direct(k, t, T0->ne[0] * T0->ne[1] * T1->ne[2], T0->ne[3]);
}

/* CONV_3D: kernel [KW, KH, KD, IC*OC], IC and OC in op_params 9 and 11. */
static bool k_conv_3d(struct kc *k, const struct ggml_tensor *t)
{
    return k_conv_direct(k, t, T0->ne[0] * T0->ne[1] * T0->ne[2] * pi32(t, 9),
                         pi32(t, 11));
}

/* CONV_2D_DW: F32/F16 kernel (GGML_ASSERT), an input contiguous or channels-contiguous
 * (GGML_ABORT otherwise). */
static bool k_conv_2d_dw(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(T0), "kernel %s", tn(T0));
    REQ(ggml_is_contiguous(T1) || ggml_is_contiguous_channels(T1),
        "input neither contiguous nor channels-contiguous");
    if (!ggml_is_contiguous(T1)) {
        REQ(T0->nb[0] >= T0->nb[2] && T0->nb[1] >= T0->nb[0], "kernel layout for a CWHN input");
    }
    return true;
}

/* CONV_TRANSPOSE_2D: F16/F32 kernel, F32 input and dst (GGML_ASSERT); nb00 and nb10 the
 * element size; each kernel plane is read as ne01 packed rows (src[i01*ne00 + i00]). */
static bool k_conv_transpose_2d(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(T0) && T1->type == GGML_TYPE_F32 && t->type == GGML_TYPE_F32,
        "types %s, %s -> %s", tn(T0), tn(T1), tn(t));
    REQ(elem0(T0) && elem0(T1), "source elements must be adjacent");
    REQ(T0->ne[1] <= 1 || T0->nb[1] == T0->nb[0] * (size_t) T0->ne[0], "kernel rows not packed");
    return true;
}

/*
 * POOL_1D / POOL_2D: F32 or F16 input (anything else is read as F16 past its end). The kernel
 * loops over the whole window for every output, so a window far beyond the padded input is
 * only work: k <= input + 2 * padding and padding <= input (what a meaningful pool has).
 */
static bool pool_window(struct kc *k, int32_t kk, int32_t p, int64_t in)
{
    REQ(p <= in && (int64_t) kk <= in + 2 * (int64_t) (p > 0 ? p : 0),
        "window %d / padding %d beyond the input of %" PRId64, kk, p, in);
    return true;
}

static bool k_pool_1d(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(T0), "F32 or F16 input only, not %s", tn(T0));
    return pool_window(k, pi32(t, 1), pi32(t, 3), T0->ne[0]);
}

static bool k_pool_2d(struct kc *k, const struct ggml_tensor *t)
{
    REQ(is_f32_f16(T0), "F32 or F16 input only, not %s", tn(T0));
    return pool_window(k, pi32(t, 1), pi32(t, 5), T0->ne[0]) &&
           pool_window(k, pi32(t, 2), pi32(t, 6), T0->ne[1]);
}

/* POOL_2D_BACK: the gradient is read as float; window offsets are int products of the
 * strides (positive, as POOL_2D's). */
static bool k_pool_2d_back(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32, "F32 gradient only, not %s", tn(T0));
    REQ(pi32(t, 3) > 0 && pi32(t, 4) > 0, "strides (%d, %d) not positive", pi32(t, 3), pi32(t, 4));
    return pool_window(k, pi32(t, 1), pi32(t, 5), t->ne[0]) &&
           pool_window(k, pi32(t, 2), pi32(t, 6), t->ne[1]);
}

/* PAD_REFLECT_1D: F32 source and dst (GGML_ASSERT). */
static bool k_pad_reflect_1d(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32 && t->type == GGML_TYPE_F32, "F32 only");
    return true;
}

/* ARANGE: F32 dst, nb0 == 4 (GGML_ASSERT). */
static bool k_arange(struct kc *k, const struct ggml_tensor *t)
{
    REQ(t->type == GGML_TYPE_F32 && elem0(t), "F32 packed dst only");
    return true;
}

/* GET_REL_POS: F16/BF16. */
static bool k_get_rel_pos(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F16 || T0->type == GGML_TYPE_BF16, "F16 or BF16 only, not %s",
        tn(T0));
    return true;
}

/* ---- attention and sequence models ---------------------------------------------------------------- */

/*
 * FLASH_ATTN_EXT: precision DEFAULT or F32 (GGML_ABORT); q F32 (converted from float to K's
 * dot type); K with a vec_dot and a from_float for its dot type (GGML_ASSERT / NULL call); V F32
 * or with a to_float (GGML_ASSERT); adjacent q/k/v elements (GGML_ASSERT).
 */
static bool k_flash_attn_ext(struct kc *k, const struct ggml_tensor *t)
{
    const int32_t prec = pi32(t, 3);
    REQ(prec == GGML_PREC_DEFAULT || prec == GGML_PREC_F32, "precision %d", prec);
    REQ(T0->type == GGML_TYPE_F32, "q must be F32, not %s", tn(T0));
    REQ(cpu_vec_dot(T1->type) && cpu_from_float(cpu_vec_dot_type(T1->type)), "no CPU dot product "
        "for K %s", tn(T1));
    REQ(T2->type == GGML_TYPE_F32 || base_to_float(T2->type), "V %s cannot be dequantized",
        tn(T2));
    REQ(elem0(T0) && elem0(T1) && elem0(T2), "q, k, v elements must be adjacent");
    return true;
}

/* SSM_CONV: F32 (read as float); GGML_ASSERT nb0 of both and packed src0 rows; the weights
 * are read as packed rows too (c[i0 + i1*nc]). */
static bool k_ssm_conv(struct kc *k, const struct ggml_tensor *t)
{
    REQ(T0->type == GGML_TYPE_F32 && T1->type == GGML_TYPE_F32, "F32 only");
    REQ(elem0(T0) && elem0(T1), "source elements must be adjacent");
    REQ(T0->nb[1] == T0->nb[0] * (size_t) T0->ne[0], "src0 rows not packed");
    REQ(T1->ne[1] <= 1 || T1->nb[1] == T1->nb[0] * (size_t) T1->ne[0], "weight rows not packed");
    return true;
}

/* SSM_SCAN: F32 (GGML_ABORT), every source's elements adjacent (GGML_ASSERT). */
static bool k_ssm_scan(struct kc *k, const struct ggml_tensor *t)
{
    for (int i = 0; i < 6; i++) {
        REQ(t->src[i]->type == GGML_TYPE_F32, "src%d must be F32, not %s", i, tn(t->src[i]));
    }
    for (int i = 0; i < 7; i++) {
        REQ(elem0(t->src[i]), "src%d elements must be adjacent", i);
    }
    return true;
}

/* RWKV_WKV6, GATED_LINEAR_ATTN, RWKV_WKV7, GATED_DELTA_NET, SOLVE_TRI, DSV4_*,
 * CROSS_ENTROPY_LOSS(_BACK), OPT_STEP_*: the kernels are F32 throughout (GGML_ABORT /
 * GGML_ASSERT) and read every source as float. */
static bool all_f32(struct kc *k, const struct ggml_tensor *t)
{
    REQ(t->type == GGML_TYPE_F32 || t->op == GGML_OP_OPT_STEP_ADAMW || t->op == GGML_OP_OPT_STEP_SGD,
        "dst must be F32, not %s", tn(t));
    for (int i = 0; i < GGML_MAX_SRC && t->src[i] != NULL; i++) {
        REQ(t->src[i]->type == GGML_TYPE_F32, "src%d must be F32, not %s", i, tn(t->src[i]));
    }
    return true;
}

/* DSV4_HC_COMB: F32; n_iter (op_params[1]) Sinkhorn iterations per token: beyond 4096 (models
 * use ~20) it is only work. */
static bool k_dsv4_hc_comb(struct kc *k, const struct ggml_tensor *t)
{
    if (!all_f32(k, t)) {
        return false;
    }
    REQ(pi32(t, 1) <= 4096, "%d iterations", pi32(t, 1));
    return true;
}

/* CROSS_ENTROPY_LOSS: F32, GGML_ASSERT nb0 of both sources. */
static bool k_ce_loss(struct kc *k, const struct ggml_tensor *t)
{
    if (!all_f32(k, t)) {
        return false;
    }
    REQ(elem0(T0) && elem0(T1), "source elements must be adjacent");
    return true;
}

/* CROSS_ENTROPY_LOSS_BACK: F32; GGML_ASSERT contiguous dst and sources. */
static bool k_ce_loss_back(struct kc *k, const struct ggml_tensor *t)
{
    if (!all_f32(k, t)) {
        return false;
    }
    REQ(ggml_is_contiguous(t) && ggml_is_contiguous(T0) && ggml_is_contiguous(T1) &&
            ggml_is_contiguous(T2),
        "dst or sources not contiguous");
    return true;
}

/* OPT_STEP_ADAMW / SGD: F32 (GGML_ABORT), GGML_ASSERT nb00 == sizeof(float). */
static bool k_opt_step(struct kc *k, const struct ggml_tensor *t)
{
    if (!all_f32(k, t)) {
        return false;
    }
    REQ(elem0(T0), "parameter elements must be adjacent");
    return true;
}

/* GATED_DELTA_NET: F32; GGML_ASSERT contiguous rows of q, k, v and contiguous g, beta, state. */
static bool k_gated_delta_net(struct kc *k, const struct ggml_tensor *t)
{
    if (!all_f32(k, t)) {
        return false;
    }
    REQ(ggml_is_contiguous_rows(T0) && ggml_is_contiguous_rows(T1) &&
            ggml_is_contiguous_rows(T2),
        "q, k, v rows not contiguous");
    REQ(ggml_is_contiguous(t->src[3]) && ggml_is_contiguous(t->src[4]) &&
            ggml_is_contiguous(t->src[5]),
        "g, beta, state not contiguous");
    return true;
}

/* LIGHTNING_INDEXER: F32 q, weights, dst, F16 mask (GGML_ASSERT), K F32 or with a to_float;
 * every element adjacent (GGML_ASSERT). */
static bool k_lightning_indexer(struct kc *k, const struct ggml_tensor *t)
{
    REQ(t->type == GGML_TYPE_F32 && T0->type == GGML_TYPE_F32 && T2->type == GGML_TYPE_F32 &&
            T3->type == GGML_TYPE_F16,
        "types");
    REQ(T1->type == GGML_TYPE_F32 || base_to_float(T1->type), "K %s cannot be dequantized",
        tn(T1));
    REQ(elem0(t) && elem0(T0) && elem0(T1) && elem0(T2) && elem0(T3), "elements must be adjacent");
    return true;
}

/* ---- the table --------------------------------------------------------------------------------- */

typedef bool (*kc_fn)(struct kc *k, const struct ggml_tensor *t);

/* NULL: nothing beyond the validator (the kernel takes whatever the validator lets through). */
static kc_fn rule(enum ggml_op op)
{
    switch (op) {
        case GGML_OP_DUP:
        case GGML_OP_CONT:
        case GGML_OP_CPY:
            return k_dup;
        case GGML_OP_ADD:
            return k_add;
        case GGML_OP_ADD_ID:
            return k_add_id;
        case GGML_OP_ADD1:
            return k_add1;
        case GGML_OP_ACC:
            return k_acc;
        case GGML_OP_SUB:
        case GGML_OP_MUL:
        case GGML_OP_DIV:
            return binary_types;
        case GGML_OP_SQR:
        case GGML_OP_SQRT:
        case GGML_OP_LOG:
        case GGML_OP_SIN:
        case GGML_OP_COS:
            return k_unary_std;
        case GGML_OP_SUM:
            return k_sum;
        case GGML_OP_SUM_ROWS:
        case GGML_OP_CUMSUM:
            return f32_elem0;
        case GGML_OP_MEAN:
        case GGML_OP_ARGMAX:
        case GGML_OP_NORM:
        case GGML_OP_L2_NORM:
        case GGML_OP_SOFT_MAX:
        case GGML_OP_TRI:
        case GGML_OP_UPSCALE:
        case GGML_OP_PAD:
        case GGML_OP_ROLL:
        case GGML_OP_ARGSORT:
        case GGML_OP_TOP_K:
        case GGML_OP_WIN_PART:
        case GGML_OP_WIN_UNPART:
        case GGML_OP_ADD_REL_POS:
            return f32_only;
        case GGML_OP_COUNT_EQUAL:
            return k_count_equal;
        case GGML_OP_REPEAT:
            return k_repeat;
        case GGML_OP_REPEAT_BACK:
            return f32_elem0;
        case GGML_OP_CONCAT:
            return k_concat;
        case GGML_OP_SILU_BACK:
            return k_silu_back;
        case GGML_OP_RMS_NORM:
        case GGML_OP_TIMESTEP_EMBEDDING:
            return f32_src_elem0;
        case GGML_OP_GROUP_NORM:
            return k_group_norm;
        case GGML_OP_RMS_NORM_BACK:
            return k_rms_norm_back;
        case GGML_OP_MUL_MAT:
            return k_mul_mat;
        case GGML_OP_MUL_MAT_ID:
            return k_mul_mat_id;
        case GGML_OP_OUT_PROD:
            return k_out_prod;
        case GGML_OP_SCALE:
            return k_scale;
        case GGML_OP_SET:
            return k_set;
        case GGML_OP_GET_ROWS:
            return k_get_rows;
        case GGML_OP_GET_ROWS_BACK:
            return k_get_rows_back;
        case GGML_OP_SET_ROWS:
            return k_set_rows;
        case GGML_OP_DIAG:
            return k_diag;
        case GGML_OP_DIAG_MASK_INF:
        case GGML_OP_DIAG_MASK_ZERO:
            return k_diag_mask;
        case GGML_OP_SOFT_MAX_BACK:
            return k_soft_max_back;
        case GGML_OP_ROPE:
        case GGML_OP_ROPE_BACK:
            return k_rope;
        case GGML_OP_CLAMP:
            return k_clamp;
        case GGML_OP_CONV_TRANSPOSE_1D:
            return k_conv_transpose_1d;
        case GGML_OP_IM2COL:
            return k_im2col;
        case GGML_OP_IM2COL_BACK:
            return k_im2col_back;
        case GGML_OP_IM2COL_3D:
            return k_im2col_3d;
        case GGML_OP_COL2IM_1D:
            return k_col2im_1d;
        case GGML_OP_CONV_2D:
            return k_conv_2d;
        case GGML_OP_CONV_3D:
            return k_conv_3d;
        case GGML_OP_CONV_2D_DW:
            return k_conv_2d_dw;
        case GGML_OP_CONV_TRANSPOSE_2D:
            return k_conv_transpose_2d;
        case GGML_OP_POOL_1D:
            return k_pool_1d;
        case GGML_OP_POOL_2D:
            return k_pool_2d;
        case GGML_OP_POOL_2D_BACK:
            return k_pool_2d_back;
        case GGML_OP_PAD_REFLECT_1D:
            return k_pad_reflect_1d;
        case GGML_OP_ARANGE:
            return k_arange;
        case GGML_OP_LEAKY_RELU:
        case GGML_OP_FILL:
            return f32_f16_only;
        case GGML_OP_FLASH_ATTN_EXT:
            return k_flash_attn_ext;
        case GGML_OP_SSM_CONV:
            return k_ssm_conv;
        case GGML_OP_SSM_SCAN:
            return k_ssm_scan;
        case GGML_OP_GET_REL_POS:
            return k_get_rel_pos;
        case GGML_OP_RWKV_WKV6:
        case GGML_OP_GATED_LINEAR_ATTN:
        case GGML_OP_RWKV_WKV7:
        case GGML_OP_SOLVE_TRI:
        case GGML_OP_DSV4_HC_PRE:
        case GGML_OP_DSV4_HC_POST:
            return all_f32;
        case GGML_OP_DSV4_HC_COMB:
            return k_dsv4_hc_comb;
        case GGML_OP_GATED_DELTA_NET:
            return k_gated_delta_net;
        case GGML_OP_LIGHTNING_INDEXER:
            return k_lightning_indexer;
        case GGML_OP_UNARY:
            return k_unary;
        case GGML_OP_GLU:
            return k_glu;
        case GGML_OP_CROSS_ENTROPY_LOSS:
            return k_ce_loss;
        case GGML_OP_CROSS_ENTROPY_LOSS_BACK:
            return k_ce_loss_back;
        case GGML_OP_OPT_STEP_ADAMW:
        case GGML_OP_OPT_STEP_SGD:
            return k_opt_step;
        default:
            return NULL;
    }
}

bool vgpu_kernel_cpu_ok(const struct ggml_tensor *t, char *why, size_t why_size)
{
    struct kc kk = {"?", why, why_size};
    struct kc *k = &kk;
    if (why != NULL && why_size > 0) {
        why[0] = '\0';
    }
    if (t == NULL || (int) t->op < 0 || t->op >= GGML_OP_COUNT) {
        return fail(k, "no op");
    }
    k->op = ggml_op_desc(t);
    /* Applied to empty results too: ggml_compute_forward skips them, but ggml_graph_plan does
     * not (its CONV_TRANSPOSE_* cases GGML_ASSERT types). */
    const kc_fn fn = rule(t->op);
    return fn == NULL || fn(k, t);
}
