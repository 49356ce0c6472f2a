/*
 * Per-op validation of host tensors built from guest descriptions (DESIGN §4.4).
 *
 * The rules come from three places, in this order of authority:
 *   1. what ggml's constructor for the op asserts (GGML_ASSERT in ggml/src/ggml.c) and how it
 *      builds the result: its type, its ne, its layout (a fresh ggml_new_tensor is exactly
 *      packed, an _inplace variant is a view with src0's strides) and its op_params;
 *   2. what the kernels index with without checking (CPU ops.cpp / ggml-cpu.c, where many
 *      relations are only assert()ed and vanish with NDEBUG; CUDA/Metal/Vulkan read the same
 *      fields), where the constructor leaves it open; such rules are marked "kernel:" below;
 *   3. one generic layout rule for every tensor a kernel reads or writes (check_layout_sanity).
 * A rule never rejects something ggml's constructors build for a graph that a backend can run
 * (tests/validate-op/replay-backend-ops.c runs test-backend-ops through it).
 *
 * The table at the end has one entry per op: required and optional sources (every other src
 * must be NULL), the result's layout rule, whether a backend computes it, and the op's check.
 *
 * Out of scope (data-dependent, needs tensor contents): the values of index tensors
 * (GET_ROWS / GET_ROWS_BACK / SET_ROWS rows, MUL_MAT_ID / ADD_ID expert ids, SSM_SCAN
 * sequence ids, ROPE positions). Those bounds are the kernels' business at run time.
 *
 * Nothing here reads tensor data, allocates, or calls a ggml function that can assert on
 * malformed input: only ggml's pure queries that index by type (after the type is checked)
 * or compare fields.
 */
#include "validate-op.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The op enum is part of the wire ABI; a new ggml must revisit this table. */
_Static_assert(GGML_OP_COUNT == 101, "GGML_OP_COUNT changed: update the rule table");
_Static_assert(GGML_UNARY_OP_COUNT == 22, "GGML_UNARY_OP_COUNT changed: review UNARY");
_Static_assert(GGML_GLU_OP_COUNT == 7, "GGML_GLU_OP_COUNT changed: review GLU");
_Static_assert(GGML_MAX_SRC == 10, "GGML_MAX_SRC changed: review the source masks");
_Static_assert(GGML_MAX_DIMS == 4, "GGML_MAX_DIMS changed: the shape helpers assume 4");

/* ---- reporting ---------------------------------------------------------------------------- */

/* The state of one validation: the node, its op's name, and where to write the reason. */
struct vo {
    const struct ggml_tensor *t;
    const char               *op;
    char                     *why;
    size_t                    why_size;
};

/* Writes "OP: <formatted>" into v->why (if there is room) and returns false. */
__attribute__((format(printf, 2, 3)))
static bool fail(struct vo *v, const char *fmt, ...)
{
    if (v->why == NULL || v->why_size == 0) {
        return false;
    }
    int n = snprintf(v->why, v->why_size, "%s: ", v->op);
    if (n < 0 || (size_t) n >= v->why_size) {
        return false;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why + n, v->why_size - (size_t) n, fmt, ap);
    va_end(ap);
    return false;
}

/* Returns false with the formatted reason when `cond` does not hold. */
#define REQ(cond, ...)                   \
    do {                                 \
        if (!(cond)) {                   \
            return fail(v, __VA_ARGS__); \
        }                                \
    } while (0)

#define SHP    "[%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 "]"
#define SHA(x) (x)->ne[0], (x)->ne[1], (x)->ne[2], (x)->ne[3]
#define I64    "%" PRId64

/* ---- op_params ---------------------------------------------------------------------------- */

/* op_params[i] as int32 (i < 16). */
static int32_t pi32(const struct ggml_tensor *t, int i)
{
    int32_t x;
    memcpy(&x, (const char *) t->op_params + 4 * (size_t) i, sizeof x);
    return x;
}

/* op_params[i] as float (i < 16). */
static float pf32(const struct ggml_tensor *t, int i)
{
    float x;
    memcpy(&x, (const char *) t->op_params + 4 * (size_t) i, sizeof x);
    return x;
}

/* ---- checked arithmetic ------------------------------------------------------------------- */

/* *r = a * b; false on int64 overflow. */
static bool mul64(int64_t a, int64_t b, int64_t *r)
{
    return !__builtin_mul_overflow(a, b, r);
}

/* *r = a + b; false on int64 overflow. */
static bool add64(int64_t a, int64_t b, int64_t *r)
{
    return !__builtin_add_overflow(a, b, r);
}

/* *r = a - b; false on int64 overflow. */
static bool sub64(int64_t a, int64_t b, int64_t *r)
{
    return !__builtin_sub_overflow(a, b, r);
}

/* ---- tensor predicates (all assume a type already checked to be valid) --------------------- */

/* Element count; only called on tensors whose product was checked not to overflow. */
static int64_t nel(const struct ggml_tensor *x)
{
    return x->ne[0] * x->ne[1] * x->ne[2] * x->ne[3];
}

/* True if the product of x's ne fits in int64. */
static bool nel_fits(const struct ggml_tensor *x)
{
    int64_t n = x->ne[0];
    for (int i = 1; i < 4; i++) {
        if (!mul64(n, x->ne[i], &n)) {
            return false;
        }
    }
    return true;
}

/* True if a and b have the same ne. */
static bool same_shape(const struct ggml_tensor *a, const struct ggml_tensor *b)
{
    return ggml_are_same_shape(a, b);
}

/* True if a and b have the same nb. */
static bool same_stride(const struct ggml_tensor *a, const struct ggml_tensor *b)
{
    return ggml_are_same_stride(a, b);
}

/* True if x's ne equal (n0, n1, n2, n3). */
static bool shape_is(const struct ggml_tensor *x, int64_t n0, int64_t n1, int64_t n2, int64_t n3)
{
    return x->ne[0] == n0 && x->ne[1] == n1 && x->ne[2] == n2 && x->ne[3] == n3;
}

/* ggml_can_repeat(a, b): b is a whole repetition of a (no division by a zero ne: an empty a
 * only repeats into an empty b). */
static bool can_repeat(const struct ggml_tensor *a, const struct ggml_tensor *b)
{
    return ggml_can_repeat(a, b);
}

/* The constructors' ggml_can_repeat_rows(a, b): same ne0 and b a repetition of a. */
static bool can_repeat_rows(const struct ggml_tensor *a, const struct ggml_tensor *b)
{
    return a->ne[0] == b->ne[0] && can_repeat(a, b);
}

/* x % d == 0 with d > 0 (a zero divisor makes the constructor divide by zero). */
static bool divisible(int64_t x, int64_t d)
{
    return d > 0 && x % d == 0;
}

/* ggml_is_contiguous (dims of size 1 may have any stride). */
static bool contig(const struct ggml_tensor *x)
{
    return ggml_is_contiguous(x);
}

/* Row elements adjacent: ne0 is one block or nb0 is the type size. */
static bool contig_rows(const struct ggml_tensor *x)
{
    return ggml_is_contiguous_rows(x);
}

/*
 * True if x has exactly the strides ggml_new_tensor gives a fresh tensor of its type and ne,
 * in every dimension (size-1 ones included). Stronger than ggml_is_contiguous, which lets a
 * size-1 dim carry any stride; some kernels step through memory by such strides anyway (the
 * CPU POOL_2D walks its input plane by plane by nb[2] until the input's byte size and writes a
 * packed plane of dst per step), so results and packed-plane inputs must be exact. Every result
 * a constructor creates with ggml_new_tensor satisfies it.
 */
static bool is_packed(const struct ggml_tensor *x)
{
    int64_t nb = (int64_t) ggml_type_size(x->type);
    if ((int64_t) x->nb[0] != nb) {
        return false;
    }
    if (!mul64(nb, x->ne[0] / ggml_blck_size(x->type), &nb)) {
        return false;
    }
    for (int i = 1; i < 4; i++) {
        if ((int64_t) x->nb[i] != nb) {
            return false;
        }
        if (!mul64(nb, x->ne[i], &nb)) {
            return false;
        }
    }
    return true;
}

/*
 * True if a kernel that walks x's rows as a flat array (row r at r*nb[1] for r < nrows, the
 * CPU pattern of LEAKY_RELU, SILU_BACK, ARGSORT, TOP_K, POOL_1D, CROSS_ENTROPY_LOSS, ...)
 * stays inside x's extent: each outer stride covers the flattened rows below it.
 */
static bool flat_rows_ok(const struct ggml_tensor *x)
{
    if (nel(x) == 0) {
        return true;
    }
    int64_t span = 1; /* rows below dimension i */
    for (int i = 2; i < 4; i++) {
        if (!mul64(span, x->ne[i - 1], &span)) {
            return false;
        }
        int64_t need;
        if (!mul64(span, (int64_t) x->nb[1], &need)) {
            return false;
        }
        if (x->ne[i] > 1 && (int64_t) x->nb[i] < need) {
            return false;
        }
    }
    return true;
}

/* A vector the kernels read as a plain array: ne1..3 == 1 and adjacent elements. */
static bool is_plain_vector(const struct ggml_tensor *x)
{
    return ggml_is_vector(x) && contig_rows(x);
}

/* Byte size of x if it were packed (nelements / block * type size); false on overflow. */
static bool packed_bytes(const struct ggml_tensor *x, int64_t *out)
{
    int64_t n = x->ne[0] / ggml_blck_size(x->type);
    for (int i = 1; i < 4; i++) {
        if (!mul64(n, x->ne[i], &n)) {
            return false;
        }
    }
    return mul64(n, (int64_t) ggml_type_size(x->type), out);
}

static const char *tname(const struct ggml_tensor *x)
{
    return ggml_type_name(x->type);
}

/* ---- shared checks ------------------------------------------------------------------------ */

/* The result's type and ne are exactly (type, n0..n3). */
static bool expect_dst(struct vo *v, enum ggml_type type, int64_t n0, int64_t n1, int64_t n2,
                       int64_t n3)
{
    const struct ggml_tensor *t = v->t;
    REQ(t->type == type, "dst type %s, expected %s", tname(t), ggml_type_name(type));
    REQ(shape_is(t, n0, n1, n2, n3), "dst ne " SHP " != expected [" I64 "," I64 "," I64 "," I64 "]",
        SHA(t), n0, n1, n2, n3);
    return true;
}

/* The result has src's type and ne (ggml_dup_tensor / ggml_view_tensor of src). */
static bool expect_dst_like(struct vo *v, const struct ggml_tensor *src)
{
    return expect_dst(v, src->type, src->ne[0], src->ne[1], src->ne[2], src->ne[3]);
}

/* Tensor x (named `what`) has type `type`. */
static bool expect_type(struct vo *v, const char *what, const struct ggml_tensor *x,
                        enum ggml_type type)
{
    REQ(x->type == type, "%s type %s, expected %s", what, tname(x), ggml_type_name(type));
    return true;
}

/* Tensor x (named `what`) is F32 or F16. */
static bool expect_f32_f16(struct vo *v, const char *what, const struct ggml_tensor *x)
{
    REQ(x->type == GGML_TYPE_F32 || x->type == GGML_TYPE_F16, "%s type %s, expected F32 or F16",
        what, tname(x));
    return true;
}

/* The result has a fresh tensor's layout (see is_packed). */
static bool dst_fresh(struct vo *v)
{
    REQ(is_packed(v->t), "dst is not a packed tensor (nb [%zu,%zu,%zu,%zu])", v->t->nb[0],
        v->t->nb[1], v->t->nb[2], v->t->nb[3]);
    return true;
}

/* The result is fresh, or an in-place view of src (same ne and nb). */
static bool dst_fresh_or_view_of(struct vo *v, const struct ggml_tensor *src)
{
    const struct ggml_tensor *t = v->t;
    REQ(is_packed(t) || (same_shape(t, src) && same_stride(t, src)),
        "dst is neither packed nor an in-place view of src0 (nb [%zu,%zu,%zu,%zu] vs "
        "[%zu,%zu,%zu,%zu])",
        t->nb[0], t->nb[1], t->nb[2], t->nb[3], src->nb[0], src->nb[1], src->nb[2], src->nb[3]);
    return true;
}

/*
 * Generic layout sanity for a tensor a kernel reads or writes (x named `what`): if a row holds
 * more than one block, its elements do not overlap (nb0 >= type size), so a kernel that reads a
 * row as consecutive elements (most CPU kernels do when nb0 is the type size, many without
 * checking) stays inside the row's extent. Every layout ggml's views and permutations build
 * from ordinary tensors satisfies it: only a stride smaller than one element (a stride-0
 * broadcast view, permuted into dim 0) fails it. Overlapping rows (sliding-window views) are
 * allowed; kernels that read a source as a packed array check packed_extent_ok.
 */
static bool check_layout_sanity(struct vo *v, const char *what, const struct ggml_tensor *x)
{
    if (nel(x) == 0) {
        return true;
    }
    const int64_t ts = (int64_t) ggml_type_size(x->type);
    REQ(x->ne[0] <= ggml_blck_size(x->type) || (int64_t) x->nb[0] >= ts,
        "%s: row elements overlap (nb0 %zu < type size " I64 ")", what, x->nb[0], ts);
    return true;
}

/* x's extent covers its elements packed (nelements/block * type size), so a kernel reading it
 * as a plain packed array (WIN_PART, WIN_UNPART, GET_REL_POS, IM2COL_BACK: no constructor
 * asserts its layout) stays inside it. */
static bool packed_extent_ok(const struct ggml_tensor *x)
{
    int64_t packed;
    return nel(x) == 0 || (packed_bytes(x, &packed) && (int64_t) ggml_nbytes(x) >= packed);
}

/* ---- the table ---------------------------------------------------------------------------- */

typedef bool (*check_fn)(struct vo *v, const struct ggml_tensor *t);

/* How the op's result is laid out; checked before the op's own function runs. */
enum dst_rule {
    DST_NONE,    /* no result rule (NONE, views, CPY, SET_ROWS, CONV_2D_DW: in the check) */
    DST_FRESH,   /* ggml_new_tensor: packed */
    DST_INPLACE, /* ggml_dup_tensor or, for the _inplace variant, ggml_view_tensor(src0) */
};

struct op_rule {
    const char   *name;
    uint16_t      req;   /* bit i: src[i] must be present */
    uint16_t      opt;   /* bit i: src[i] may be present; every other src must be NULL */
    enum dst_rule dst;
    bool          compute; /* a backend computes it (not NONE or a view op) */
    check_fn      check;   /* NULL: the op is refused */
};

/* Source masks. */
#define S(i)  ((uint16_t) (1u << (i)))
#define S01   (S(0) | S(1))
#define S012  (S(0) | S(1) | S(2))
#define SN(n) ((uint16_t) ((1u << (n)) - 1u))

#define T0 (t->src[0])
#define T1 (t->src[1])
#define T2 (t->src[2])
#define T3 (t->src[3])
#define T4 (t->src[4])
#define T5 (t->src[5])
#define T6 (t->src[6])

/* ---- element-wise and broadcast family ---------------------------------------------------- */

/* NONE: a leaf; no sources, nothing to check. */
static bool chk_none(struct vo *v, const struct ggml_tensor *t)
{
    (void) v;
    (void) t;
    return true;
}

/* DUP, SQR, SQRT, LOG, SIN, COS, CLAMP, NORM-less unaries: result = src0's type and ne. */
static bool chk_same_as_src0(struct vo *v, const struct ggml_tensor *t)
{
    return expect_dst_like(v, T0);
}

/* ADD: b repeats into a; result a's ne, a's type (ggml_add) or any type when a is quantized,
 * F16 or BF16 and b repeats rows of a (ggml_add_cast). */
static bool chk_add(struct vo *v, const struct ggml_tensor *t)
{
    REQ(can_repeat(T1, T0), "src1 " SHP " cannot repeat into src0 " SHP, SHA(T1), SHA(T0));
    REQ(shape_is(t, T0->ne[0], T0->ne[1], T0->ne[2], T0->ne[3]),
        "dst ne " SHP " != src0 ne " SHP, SHA(t), SHA(T0));
    if (t->type != T0->type) {
        const bool castable = ggml_is_quantized(T0->type) || T0->type == GGML_TYPE_F16 ||
                              T0->type == GGML_TYPE_BF16;
        REQ(castable && can_repeat_rows(T1, T0),
            "dst type %s != src0 type %s and not an add_cast (src0 quantized/F16/BF16, rows "
            "repeat)",
            tname(t), tname(T0));
    }
    return true;
}

/* SUB, MUL, DIV: b repeats into a; result = a. */
static bool chk_binary(struct vo *v, const struct ggml_tensor *t)
{
    REQ(can_repeat(T1, T0), "src1 " SHP " cannot repeat into src0 " SHP, SHA(T1), SHA(T0));
    return expect_dst_like(v, T0);
}

/* ADD_ID: a [n, e_used, tok], b [n, n_expert], ids I32 [e_used, tok]; result = a. */
static bool chk_add_id(struct vo *v, const struct ggml_tensor *t)
{
    REQ(T0->ne[0] == T1->ne[0], "a ne0 " I64 " != b ne0 " I64, T0->ne[0], T1->ne[0]);
    REQ(T0->ne[1] == T2->ne[0], "a ne1 " I64 " != ids ne0 " I64, T0->ne[1], T2->ne[0]);
    REQ(T0->ne[2] == T2->ne[1], "a ne2 " I64 " != ids ne1 " I64, T0->ne[2], T2->ne[1]);
    if (!expect_type(v, "ids", T2, GGML_TYPE_I32)) {
        return false;
    }
    return expect_dst_like(v, T0);
}

/* The constructors' ggml_is_padded_1d: packed above dimension 1. */
static bool padded_1d(const struct ggml_tensor *x)
{
    return x->nb[0] == ggml_type_size(x->type) && x->nb[2] == x->nb[1] * (size_t) x->ne[1] &&
           x->nb[3] == x->nb[2] * (size_t) x->ne[2];
}

/* ADD1: b scalar, a padded 1d; result = a. */
static bool chk_add1(struct vo *v, const struct ggml_tensor *t)
{
    REQ(ggml_is_scalar(T1), "src1 " SHP " is not a scalar", SHA(T1));
    REQ(padded_1d(T0), "src0 is not padded-1d");
    return expect_dst_like(v, T0);
}

/*
 * ACC / SET: b written into a view of the result given by op_params
 * (nb1, nb2, nb3, offset, inplace) in bytes. The last element of b lands at
 * offset + sum((ne1i-1)*nbi) (nb0 = dst's element size) and must end inside the result
 * (the CPU kernel GGML_ASSERTs a weaker "start < nbytes"; CUDA checks nothing).
 */
static bool check_acc_set_window(struct vo *v, const struct ggml_tensor *t)
{
    const int32_t nb1 = pi32(t, 0), nb2 = pi32(t, 1), nb3 = pi32(t, 2), off = pi32(t, 3);
    REQ(nb1 >= 0 && nb2 >= 0 && nb3 >= 0 && off >= 0,
        "negative stride/offset params (nb1=%d, nb2=%d, nb3=%d, offset=%d)", nb1, nb2, nb3, off);
    if (nel(T1) == 0) {
        return true;
    }
    const int64_t es     = (int64_t) ggml_type_size(t->type);
    const int64_t str[4] = {es, nb1, nb2, nb3};
    int64_t       last   = off;
    for (int i = 0; i < 4; i++) {
        int64_t d;
        REQ(mul64(T1->ne[i] - 1, str[i], &d) && add64(last, d, &last), "window overflows");
    }
    REQ(add64(last, es, &last) && last <= (int64_t) ggml_nbytes(t),
        "window of src1 " SHP " at offset %d (nb1=%d, nb2=%d, nb3=%d) ends at " I64
        " beyond dst's %zu bytes",
        SHA(T1), off, nb1, nb2, nb3, last, ggml_nbytes(t));
    return true;
}

/* ACC: F32 a (contiguous) and b, nelements(b) <= nelements(a); result = a; window inside. */
static bool chk_acc(struct vo *v, const struct ggml_tensor *t)
{
    REQ(nel(T1) <= nel(T0), "src1 has more elements than src0 (" I64 " > " I64 ")", nel(T1),
        nel(T0));
    REQ(contig(T0), "src0 not contiguous");
    if (!expect_type(v, "src0", T0, GGML_TYPE_F32) || !expect_type(v, "src1", T1, GGML_TYPE_F32)) {
        return false;
    }
    if (!expect_dst_like(v, T0)) {
        return false;
    }
    return check_acc_set_window(v, t);
}

/* SET: nelements(b) <= nelements(a), offset < 2^30; result = a; window inside. */
static bool chk_set(struct vo *v, const struct ggml_tensor *t)
{
    REQ(nel(T1) <= nel(T0), "src1 has more elements than src0 (" I64 " > " I64 ")", nel(T1),
        nel(T0));
    REQ(pi32(t, 3) < (1 << 30), "offset %d >= 2^30", pi32(t, 3));
    if (!expect_dst_like(v, T0)) {
        return false;
    }
    return check_acc_set_window(v, t);
}

/* ---- reductions ----------------------------------------------------------------------------- */

/* SUM: result [1,1,1,1] of a's type. */
static bool chk_sum(struct vo *v, const struct ggml_tensor *t)
{
    return expect_dst(v, T0->type, 1, 1, 1, 1);
}

/* SUM_ROWS: result [1, a1, a2, a3] of a's type. */
static bool chk_sum_rows(struct vo *v, const struct ggml_tensor *t)
{
    return expect_dst(v, T0->type, 1, T0->ne[1], T0->ne[2], T0->ne[3]);
}

/* CUMSUM: F32 a; result = a. */
static bool chk_cumsum(struct vo *v, const struct ggml_tensor *t)
{
    return expect_type(v, "src0", T0, GGML_TYPE_F32) && expect_dst_like(v, T0);
}

/* MEAN: result F32 [1, a1, a2, a3]. */
static bool chk_mean(struct vo *v, const struct ggml_tensor *t)
{
    return expect_dst(v, GGML_TYPE_F32, 1, T0->ne[1], T0->ne[2], T0->ne[3]);
}

/* ARGMAX: a matrix with ne0 <= INT32_MAX; result I32 [a1]. */
static bool chk_argmax(struct vo *v, const struct ggml_tensor *t)
{
    REQ(ggml_is_matrix(T0), "src0 " SHP " is not a matrix", SHA(T0));
    REQ(T0->ne[0] <= INT32_MAX, "src0 ne0 " I64 " > INT32_MAX", T0->ne[0]);
    return expect_dst(v, GGML_TYPE_I32, T0->ne[1], 1, 1, 1);
}

/* COUNT_EQUAL: same shapes; result I64 [1]. */
static bool chk_count_equal(struct vo *v, const struct ggml_tensor *t)
{
    REQ(same_shape(T0, T1), "src0 " SHP " and src1 " SHP " differ", SHA(T0), SHA(T1));
    return expect_dst(v, GGML_TYPE_I64, 1, 1, 1, 1);
}

/* REPEAT: the result (a's type) is a whole repetition of a. (ggml_repeat_4d also lets an
 * empty a "repeat" into a non-empty result, which every kernel then divides by zero on.) */
static bool chk_repeat(struct vo *v, const struct ggml_tensor *t)
{
    REQ(t->type == T0->type, "dst type %s != src0 type %s", tname(t), tname(T0));
    REQ(can_repeat(T0, t), "src0 " SHP " cannot repeat into dst " SHP, SHA(T0), SHA(t));
    return true;
}

/* REPEAT_BACK: a is a whole repetition of the result (a's type). */
static bool chk_repeat_back(struct vo *v, const struct ggml_tensor *t)
{
    REQ(t->type == T0->type, "dst type %s != src0 type %s", tname(t), tname(T0));
    REQ(can_repeat(t, T0), "dst " SHP " cannot repeat into src0 " SHP, SHA(t), SHA(T0));
    return true;
}

/* CONCAT: dim in [0,4), same types, equal ne except along dim; result the sum there. */
static bool chk_concat(struct vo *v, const struct ggml_tensor *t)
{
    const int32_t dim = pi32(t, 0);
    REQ(dim >= 0 && dim < 4, "dim %d out of [0,4)", dim);
    REQ(T0->type == T1->type, "src types differ (%s, %s)", tname(T0), tname(T1));
    int64_t ne[4];
    for (int d = 0; d < 4; d++) {
        if (d == dim) {
            REQ(add64(T0->ne[d], T1->ne[d], &ne[d]), "ne%d overflows", d);
        } else {
            REQ(T0->ne[d] == T1->ne[d], "src0 ne%d " I64 " != src1 ne%d " I64, d, T0->ne[d], d,
                T1->ne[d]);
            ne[d] = T0->ne[d];
        }
    }
    return expect_dst(v, T0->type, ne[0], ne[1], ne[2], ne[3]);
}

/* SILU_BACK: grad and x of the same shape; result = grad. kernel: flat rows. */
static bool chk_silu_back(struct vo *v, const struct ggml_tensor *t)
{
    REQ(same_shape(T0, T1), "src0 " SHP " and src1 " SHP " differ", SHA(T0), SHA(T1));
    REQ(flat_rows_ok(T0) && flat_rows_ok(T1), "sources are not row-flat (kernel walks rows)");
    return expect_dst_like(v, T0);
}

/* ---- normalisation -------------------------------------------------------------------------- */

/* NORM, RMS_NORM, L2_NORM: result = a; eps (param 0) >= 0 (the CPU kernels GGML_ASSERT it). */
static bool chk_norm(struct vo *v, const struct ggml_tensor *t)
{
    const float eps = pf32(t, 0);
    REQ(eps >= 0.0f, "eps %g is negative or NaN", (double) eps);
    return expect_dst_like(v, T0);
}

/* RMS_NORM_BACK: same shapes (the kernel walks both with src0's shape); result = a. */
static bool chk_rms_norm_back(struct vo *v, const struct ggml_tensor *t)
{
    REQ(same_shape(T0, T1), "src0 " SHP " and src1 " SHP " differ", SHA(T0), SHA(T1));
    REQ(pf32(t, 0) >= 0.0f, "eps %g is negative or NaN", (double) pf32(t, 0));
    return expect_dst_like(v, T0);
}

/* GROUP_NORM: n_groups (param 0) >= 1 (the kernels divide by it); result = a. */
static bool chk_group_norm(struct vo *v, const struct ggml_tensor *t)
{
    REQ(pi32(t, 0) >= 1, "n_groups %d < 1", pi32(t, 0));
    return expect_dst_like(v, T0);
}

/* ---- matrix products ------------------------------------------------------------------------ */

/* MUL_MAT: a [k, m, A2, A3] not transposed, b [k, n, B2, B3] with A2|B2, A3|B3;
 * result F32 [m, n, B2, B3]. */
static bool chk_mul_mat(struct vo *v, const struct ggml_tensor *t)
{
    REQ(T0->ne[0] == T1->ne[0], "src0 ne0 " I64 " != src1 ne0 " I64, T0->ne[0], T1->ne[0]);
    REQ(divisible(T1->ne[2], T0->ne[2]) && divisible(T1->ne[3], T0->ne[3]),
        "src0 " SHP " does not broadcast into src1 " SHP, SHA(T0), SHA(T1));
    REQ(!ggml_is_transposed(T0), "src0 is transposed (nb0 %zu > nb1 %zu)", T0->nb[0], T0->nb[1]);
    return expect_dst(v, GGML_TYPE_F32, T0->ne[1], T1->ne[1], T1->ne[2], T1->ne[3]);
}

/* MUL_MAT_ID: as [k, m, n_expert] not transposed, b [k, b1, tok], ids I32 [n_used, tok] with
 * b1 | n_used; result F32 [m, n_used, tok]. */
static bool chk_mul_mat_id(struct vo *v, const struct ggml_tensor *t)
{
    REQ(!ggml_is_transposed(T0), "as is transposed");
    if (!expect_type(v, "ids", T2, GGML_TYPE_I32)) {
        return false;
    }
    REQ(T0->ne[3] == 1, "as ne3 " I64 " != 1", T0->ne[3]);
    REQ(T1->ne[3] == 1, "b ne3 " I64 " != 1", T1->ne[3]);
    REQ(T2->ne[2] == 1 && T2->ne[3] == 1, "ids " SHP " is not 2-D", SHA(T2));
    REQ(T2->ne[1] == T1->ne[2], "ids ne1 " I64 " != b ne2 " I64, T2->ne[1], T1->ne[2]);
    REQ(T0->ne[0] == T1->ne[0], "as ne0 " I64 " != b ne0 " I64, T0->ne[0], T1->ne[0]);
    REQ(divisible(T2->ne[0], T1->ne[1]), "b ne1 " I64 " does not divide ids ne0 " I64,
        T1->ne[1], T2->ne[0]);
    return expect_dst(v, GGML_TYPE_F32, T0->ne[1], T2->ne[0], T1->ne[2], 1);
}

/* OUT_PROD: a [m, k, A2, A3] not transposed, b [n, k, B2, B3], A2|B2, A3|B3;
 * result F32 [m, n, B2, B3]. */
static bool chk_out_prod(struct vo *v, const struct ggml_tensor *t)
{
    REQ(T0->ne[1] == T1->ne[1], "src0 ne1 " I64 " != src1 ne1 " I64, T0->ne[1], T1->ne[1]);
    REQ(divisible(T1->ne[2], T0->ne[2]) && divisible(T1->ne[3], T0->ne[3]),
        "src0 " SHP " does not broadcast into src1 " SHP, SHA(T0), SHA(T1));
    REQ(!ggml_is_transposed(T0), "src0 is transposed");
    return expect_dst(v, GGML_TYPE_F32, T0->ne[0], T1->ne[0], T1->ne[2], T1->ne[3]);
}

/* SCALE: a padded 1d; result = a. */
static bool chk_scale(struct vo *v, const struct ggml_tensor *t)
{
    REQ(padded_1d(T0), "src0 is not padded-1d");
    return expect_dst_like(v, T0);
}

/* ---- copies and views ----------------------------------------------------------------------- */

/* CPY: same element counts; the result is (a view of) src1: src1's type and ne. Its layout
 * is free: CPU writes through dst's strides, CUDA through src1's, each validated. */
static bool chk_cpy(struct vo *v, const struct ggml_tensor *t)
{
    REQ(nel(T0) == nel(T1), "element counts differ (src0 " I64 ", src1 " I64 ")", nel(T0),
        nel(T1));
    return expect_dst_like(v, T1);
}

/* CONT: a's type, same element count, packed (checked by the dst rule). */
static bool chk_cont(struct vo *v, const struct ggml_tensor *t)
{
    REQ(t->type == T0->type, "dst type %s != src0 type %s", tname(t), tname(T0));
    REQ(nel(t) == nel(T0), "element counts differ (dst " I64 ", src0 " I64 ")", nel(t), nel(T0));
    return true;
}

/* Shared by the view ops: a view_src exists and the type is src0's. */
static bool check_view_common(struct vo *v, const struct ggml_tensor *t)
{
    REQ(t->view_src != NULL, "no view_src");
    REQ(t->type == T0->type, "dst type %s != src0 type %s", tname(t), tname(T0));
    return true;
}

/* RESHAPE: contiguous a, same element count, packed result, a view. */
static bool chk_reshape(struct vo *v, const struct ggml_tensor *t)
{
    if (!check_view_common(v, t)) {
        return false;
    }
    REQ(contig(T0), "src0 not contiguous");
    REQ(nel(t) == nel(T0), "element counts differ (dst " I64 ", src0 " I64 ")", nel(t), nel(T0));
    REQ(is_packed(t), "dst is not packed");
    return true;
}

/* VIEW: a view of src0's type; its bounds inside view_src are checked per tensor. */
static bool chk_view(struct vo *v, const struct ggml_tensor *t)
{
    return check_view_common(v, t);
}

/* PERMUTE: axes (params 0..3) a permutation of 0..3; dst ne/nb = src0's, permuted. */
static bool chk_permute(struct vo *v, const struct ggml_tensor *t)
{
    if (!check_view_common(v, t)) {
        return false;
    }
    int  ax[4];
    bool seen[4] = {false, false, false, false};
    for (int i = 0; i < 4; i++) {
        ax[i] = pi32(t, i);
        REQ(ax[i] >= 0 && ax[i] < 4, "axis%d = %d out of [0,4)", i, ax[i]);
        REQ(!seen[ax[i]], "axis %d repeated", ax[i]);
        seen[ax[i]] = true;
    }
    for (int i = 0; i < 4; i++) {
        REQ(t->ne[ax[i]] == T0->ne[i] && t->nb[ax[i]] == T0->nb[i],
            "dst dim %d (ne " I64 ", nb %zu) is not src0 dim %d (ne " I64 ", nb %zu)", ax[i],
            t->ne[ax[i]], t->nb[ax[i]], i, T0->ne[i], T0->nb[i]);
    }
    return true;
}

/* TRANSPOSE: dst = src0 with dims 0 and 1 swapped (ne and nb). */
static bool chk_transpose(struct vo *v, const struct ggml_tensor *t)
{
    if (!check_view_common(v, t)) {
        return false;
    }
    REQ(shape_is(t, T0->ne[1], T0->ne[0], T0->ne[2], T0->ne[3]) && t->nb[0] == T0->nb[1] &&
            t->nb[1] == T0->nb[0] && t->nb[2] == T0->nb[2] && t->nb[3] == T0->nb[3],
        "dst " SHP " is not src0 " SHP " transposed", SHA(t), SHA(T0));
    return true;
}

/* ---- rows ----------------------------------------------------------------------------------- */

/*
 * GET_ROWS: a [n, r, A2, A3], b I32 [m, A2, A3, 1]; result [n, m, A2, A3], F32 (I32 for I32 a).
 * These shape relations are what ggml-rpc's CPU kernel only assert()ed (llama.cpp #26825):
 * without them dst rows or src0 planes are indexed past their ends. The row values in b are
 * data and out of scope (the CPU kernel GGML_ASSERTs them).
 */
static bool chk_get_rows(struct vo *v, const struct ggml_tensor *t)
{
    REQ(T0->ne[2] == T1->ne[1], "src0 ne2 " I64 " != src1 ne1 " I64, T0->ne[2], T1->ne[1]);
    REQ(T0->ne[3] == T1->ne[2], "src0 ne3 " I64 " != src1 ne2 " I64, T0->ne[3], T1->ne[2]);
    REQ(T1->ne[3] == 1, "src1 ne3 " I64 " != 1", T1->ne[3]);
    if (!expect_type(v, "src1", T1, GGML_TYPE_I32)) {
        return false;
    }
    const enum ggml_type type = T0->type == GGML_TYPE_I32 ? GGML_TYPE_I32 : GGML_TYPE_F32;
    return expect_dst(v, type, T0->ne[0], T1->ne[0], T1->ne[1], T1->ne[2]);
}

/* GET_ROWS_BACK: grad a matrix, rows b an I32 vector, result F32 matrix with a's ne0.
 * kernel: row i of a for i < nelements(b) (a ne1 >= that), b read as a plain array. The
 * row values (scatter targets) are data: the CPU kernel does not check them. */
static bool chk_get_rows_back(struct vo *v, const struct ggml_tensor *t)
{
    REQ(ggml_is_matrix(T0), "src0 " SHP " is not a matrix", SHA(T0));
    REQ(ggml_is_vector(T1), "src1 " SHP " is not a vector", SHA(T1));
    if (!expect_type(v, "src1", T1, GGML_TYPE_I32)) {
        return false;
    }
    REQ(T0->ne[1] >= T1->ne[0], "src0 ne1 " I64 " < rows " I64, T0->ne[1], T1->ne[0]);
    REQ(contig_rows(T1), "src1 elements not adjacent");
    REQ(t->type == GGML_TYPE_F32, "dst type %s, expected F32", tname(t));
    REQ(ggml_is_matrix(t) && t->ne[0] == T0->ne[0], "dst " SHP " is not a matrix of width " I64,
        SHA(t), T0->ne[0]);
    return true;
}

/*
 * SET_ROWS: src0 = values b [n, r, B2, B3] F32/F16, src1 = rows c I64/I32 [r, C1, C2, 1] with
 * C1|B2, C2|B3, src2 = destination a [n, R, B2, B3]; the result is a view of a: a's type and
 * ne, adjacent row elements (llama.cpp #26912: the CPU kernel only assert()ed these). The row
 * values in c are data (GGML_ASSERTed by the CPU kernel).
 */
static bool chk_set_rows(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *b = T0, *c = T1, *a = T2;
    REQ(a->ne[0] == b->ne[0], "dest ne0 " I64 " != values ne0 " I64, a->ne[0], b->ne[0]);
    REQ(a->ne[2] == b->ne[2] && a->ne[3] == b->ne[3], "dest " SHP " and values " SHP " differ in "
        "ne2/ne3", SHA(a), SHA(b));
    REQ(b->ne[1] == c->ne[0], "values ne1 " I64 " != rows ne0 " I64, b->ne[1], c->ne[0]);
    REQ(divisible(b->ne[2], c->ne[1]) && divisible(b->ne[3], c->ne[2]),
        "rows " SHP " do not broadcast over values " SHP, SHA(c), SHA(b));
    REQ(c->ne[3] == 1, "rows ne3 " I64 " != 1", c->ne[3]);
    if (!expect_f32_f16(v, "values", b)) {
        return false;
    }
    REQ(c->type == GGML_TYPE_I64 || c->type == GGML_TYPE_I32, "rows type %s, expected I64 or I32",
        tname(c));
    REQ(contig_rows(a) && contig_rows(b), "dest or values rows not contiguous");
    if (!expect_dst_like(v, a)) {
        return false;
    }
    REQ(contig_rows(t), "dst rows not contiguous");
    return true;
}

/* DIAG: a [n, 1, A2, A3]; result [n, n, A2, A3] of a's type. */
static bool chk_diag(struct vo *v, const struct ggml_tensor *t)
{
    REQ(T0->ne[1] == 1, "src0 ne1 " I64 " != 1", T0->ne[1]);
    return expect_dst(v, T0->type, T0->ne[0], T0->ne[0], T0->ne[2], T0->ne[3]);
}

/* DIAG_MASK_INF / _ZERO: n_past (param 0) >= 0 (CPU GGML_ASSERT); result = a. */
static bool chk_diag_mask(struct vo *v, const struct ggml_tensor *t)
{
    REQ(pi32(t, 0) >= 0, "n_past %d < 0", pi32(t, 0));
    return expect_dst_like(v, T0);
}

/* ---- softmax and attention ------------------------------------------------------------------ */

/*
 * SOFT_MAX: contiguous a; optional mask (F16/F32, contiguous, mask ne0 == a ne0,
 * mask ne1 >= a ne1, broadcast over ne2/ne3); max_bias (param 1) > 0 needs the mask; optional
 * sinks (F32, one per head: ne0 == a ne2; kernel: read as a plain array); result = a.
 */
static bool chk_soft_max(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0, *mask = T1, *sinks = T2;
    REQ(contig(a), "src0 not contiguous");
    if (mask != NULL) {
        if (!expect_f32_f16(v, "mask", mask)) {
            return false;
        }
        REQ(contig(mask), "mask not contiguous");
        REQ(mask->ne[0] == a->ne[0], "mask ne0 " I64 " != src0 ne0 " I64, mask->ne[0], a->ne[0]);
        REQ(mask->ne[1] >= a->ne[1], "mask ne1 " I64 " < src0 ne1 " I64, mask->ne[1], a->ne[1]);
        REQ(divisible(a->ne[2], mask->ne[2]) && divisible(a->ne[3], mask->ne[3]),
            "mask " SHP " does not broadcast over src0 " SHP, SHA(mask), SHA(a));
    }
    const float max_bias = pf32(t, 1);
    REQ(!(max_bias > 0.0f) || mask != NULL, "max_bias %g > 0 without a mask", (double) max_bias);
    if (sinks != NULL) {
        if (!expect_type(v, "sinks", sinks, GGML_TYPE_F32)) {
            return false;
        }
        REQ(sinks->ne[0] == a->ne[2], "sinks ne0 " I64 " != src0 ne2 " I64, sinks->ne[0],
            a->ne[2]);
        REQ(contig_rows(sinks), "sinks elements not adjacent");
    }
    return expect_dst_like(v, a);
}

/* SOFT_MAX_BACK: dy and y of one shape, walked as flat rows by the kernels; result = dy. */
static bool chk_soft_max_back(struct vo *v, const struct ggml_tensor *t)
{
    REQ(same_shape(T0, T1), "src0 " SHP " and src1 " SHP " differ", SHA(T0), SHA(T1));
    REQ(flat_rows_ok(T0) && flat_rows_ok(T1), "sources are not row-flat");
    return expect_dst_like(v, T0);
}

/*
 * FLASH_ATTN_EXT: q [dk, n_q, H, S], k [dk, n_kv, Hk, S] (Hk | H), v [dv, n_kv', Hv, S];
 * optional mask F16 contiguous broadcast over H, S; optional sinks F32 [H]; result F32
 * [dv, H, n_q, S]. The constructor leaves v and the mask's first dims open; the kernels read
 * v rows and mask columns for every kv index and a mask row per query, and divide heads by
 * Hv, so (kernel:) v ne1 >= n_kv, Hv | H, mask ne0 >= n_kv, mask ne1 >= n_q.
 * op_params: scale, max_bias (> 0 needs the mask), softcap, prec, n_kv_max (>= 0).
 */
static bool chk_flash_attn_ext(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *q = T0, *k = T1, *vv = T2, *mask = T3, *sinks = T4;
    REQ(k->ne[0] == q->ne[0], "k ne0 " I64 " != q ne0 " I64, k->ne[0], q->ne[0]);
    REQ(divisible(q->ne[2], k->ne[2]) && divisible(q->ne[3], k->ne[3]),
        "k " SHP " does not broadcast over q " SHP, SHA(k), SHA(q));
    REQ(q->ne[3] == k->ne[3] && q->ne[3] == vv->ne[3], "q/k/v ne3 differ (" I64 "/" I64 "/" I64
        ")", q->ne[3], k->ne[3], vv->ne[3]);
    REQ(vv->ne[1] >= k->ne[1], "v ne1 " I64 " < k ne1 " I64, vv->ne[1], k->ne[1]);
    REQ(divisible(q->ne[2], vv->ne[2]), "v heads " I64 " do not divide q heads " I64, vv->ne[2],
        q->ne[2]);
    if (mask != NULL) {
        if (!expect_type(v, "mask", mask, GGML_TYPE_F16)) {
            return false;
        }
        REQ(contig(mask), "mask not contiguous");
        REQ(divisible(q->ne[2], mask->ne[2]) && divisible(q->ne[3], mask->ne[3]),
            "mask " SHP " does not broadcast over q " SHP, SHA(mask), SHA(q));
        REQ(mask->ne[0] >= k->ne[1], "mask ne0 " I64 " < n_kv " I64, mask->ne[0], k->ne[1]);
        REQ(mask->ne[1] >= q->ne[1], "mask ne1 " I64 " < n_q " I64, mask->ne[1], q->ne[1]);
    }
    const float max_bias = pf32(t, 1);
    REQ(!(max_bias > 0.0f) || mask != NULL, "max_bias %g > 0 without a mask", (double) max_bias);
    REQ(pi32(t, 4) >= 0, "n_kv_max %d < 0", pi32(t, 4));
    if (sinks != NULL) {
        if (!expect_type(v, "sinks", sinks, GGML_TYPE_F32)) {
            return false;
        }
        REQ(sinks->ne[0] == q->ne[2], "sinks ne0 " I64 " != q ne2 " I64, sinks->ne[0], q->ne[2]);
        REQ(contig_rows(sinks), "sinks elements not adjacent");
    }
    return expect_dst(v, GGML_TYPE_F32, vv->ne[0], q->ne[2], q->ne[1], q->ne[3]);
}

/* ---- rope ----------------------------------------------------------------------------------- */

/*
 * ROPE / ROPE_BACK: op_params {0, n_dims, mode, 0, n_ctx_orig, 6 floats, sections[4], n_offs}.
 * Constructor: (mode & 1) == 0; positions b an I32 vector with a ne2 (x4 for M-RoPE) entries;
 * optional freq factors c F32 with ne0 >= n_dims/2; result = a. The CPU kernel also requires
 * (GGML_ASSERT / abort on anything else) a known mode, 0 <= n_dims <= ne0, n_dims even,
 * n_offs even and >= 0, n_offs + n_dims <= ne0; vision: n_dims == ne0/2, n_offs == 0; M-RoPE
 * sections summing to 1..ne0. kernel: positions and factors are read as plain arrays.
 */
static bool chk_rope(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0, *b = T1, *c = T2;
    const int32_t n_dims = pi32(t, 1), mode = pi32(t, 2), n_offs = pi32(t, 15);
    REQ(mode == GGML_ROPE_TYPE_NORMAL || mode == GGML_ROPE_TYPE_NEOX ||
            mode == GGML_ROPE_TYPE_MROPE || mode == GGML_ROPE_TYPE_VISION ||
            mode == GGML_ROPE_TYPE_IMROPE,
        "mode %d unknown", mode);
    const bool mrope  = (mode & GGML_ROPE_TYPE_MROPE) != 0;
    const bool vision = mode == GGML_ROPE_TYPE_VISION;

    if (!expect_type(v, "positions", b, GGML_TYPE_I32)) {
        return false;
    }
    REQ(is_plain_vector(b), "positions " SHP " not a plain vector", SHA(b));
    int64_t n_pos = a->ne[2];
    if (mrope) {
        REQ(mul64(a->ne[2], 4, &n_pos), "ne2 overflows");
    }
    REQ(b->ne[0] == n_pos, "positions " I64 " != " I64 " (src0 ne2 " I64 "%s)", b->ne[0], n_pos,
        a->ne[2], mrope ? " x4" : "");

    REQ(n_dims >= 0 && n_dims % 2 == 0 && n_dims <= a->ne[0], "n_dims %d not even in [0, ne0 " I64
        "]", n_dims, a->ne[0]);
    REQ(n_offs >= 0 && n_offs % 2 == 0 && (int64_t) n_offs + n_dims <= a->ne[0],
        "n_offs %d invalid for n_dims %d, ne0 " I64, n_offs, n_dims, a->ne[0]);
    if (vision) {
        REQ((int64_t) n_dims == a->ne[0] / 2 && n_offs == 0,
            "vision needs n_dims == ne0/2 and n_offs 0 (n_dims %d, ne0 " I64 ", n_offs %d)",
            n_dims, a->ne[0], n_offs);
    }
    if (mrope) {
        int64_t sum = 0;
        for (int i = 0; i < 4; i++) {
            const int32_t s = pi32(t, 11 + i);
            REQ(s >= 0, "section %d = %d < 0", i, s);
            sum += s;
        }
        REQ(sum > 0 && sum <= a->ne[0], "sections sum " I64 " not in [1, ne0 " I64 "]", sum,
            a->ne[0]);
    }
    if (c != NULL) {
        if (!expect_type(v, "freq factors", c, GGML_TYPE_F32)) {
            return false;
        }
        REQ(c->ne[0] >= n_dims / 2, "freq factors ne0 " I64 " < n_dims/2 (%d)", c->ne[0],
            n_dims / 2);
        REQ(contig_rows(c), "freq factors not adjacent");
    }
    return expect_dst_like(v, a);
}

/* ---- convolution, pooling, image ops -------------------------------------------------------- */

/* ggml's conv output size: (in + 2p - d(k-1) - 1)/s + 1 (s > 0 checked by the caller). */
static bool conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int64_t *out)
{
    int64_t x, y;
    if (!mul64(2, p, &y) || !add64(in, y, &x) || !mul64(d, k - 1, &y) || !sub64(x, y, &x) ||
        !sub64(x, 1, &x)) {
        return false;
    }
    *out = x / s + 1;
    return true;
}

/* CONV_TRANSPOSE_1D: a [K, Cout, Cin, 1], b [L, Cin] matrix; p0 == 0, d0 == 1; s0 >= 1
 * (kernel: a non-positive stride writes before dst); result F32 [(L-1)s + K, Cout, b2, 1]. */
static bool chk_conv_transpose_1d(struct vo *v, const struct ggml_tensor *t)
{
    const int32_t s0 = pi32(t, 0), p0 = pi32(t, 1), d0 = pi32(t, 2);
    REQ(ggml_is_matrix(T1), "src1 " SHP " is not a matrix", SHA(T1));
    REQ(T0->ne[2] == T1->ne[1], "src0 ne2 " I64 " != src1 ne1 " I64, T0->ne[2], T1->ne[1]);
    REQ(T0->ne[3] == 1, "src0 ne3 " I64 " != 1", T0->ne[3]);
    REQ(p0 == 0 && d0 == 1, "p0 %d / d0 %d must be 0 / 1", p0, d0);
    REQ(s0 >= 1, "stride %d < 1", s0);
    int64_t ow;
    REQ(T1->ne[0] >= 1 && mul64(T1->ne[0] - 1, s0, &ow) && add64(ow, T0->ne[0], &ow),
        "output length overflows or input empty");
    return expect_dst(v, GGML_TYPE_F32, ow, T0->ne[1], T1->ne[2], 1);
}

/*
 * IM2COL: params {s0, s1, p0, p1, d0, d1, is_2D}. 2-D: a [KW, KH, IC, OC], b [IW, IH, IC, N],
 * result [IC*KH*KW, OW, OH, N]; 1-D: a [KW, IC, ..], b [IW, IC, N, 1], result [IC*KW, OW, N, 1].
 * Strides > 0 (the constructor divides by them), OW (and OH) > 0. kernel: CPU and CUDA read
 * each input plane as a packed [IH][IW] array: b contiguous in its first two (one) dims.
 */
static bool chk_im2col(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0, *b = T1;
    const int32_t s0 = pi32(t, 0), s1 = pi32(t, 1), p0 = pi32(t, 2), p1 = pi32(t, 3);
    const int32_t d0 = pi32(t, 4), d1 = pi32(t, 5), is2 = pi32(t, 6);
    REQ(is2 == 0 || is2 == 1, "is_2D %d not 0/1", is2);
    const bool is_2d = is2 == 1;
    REQ(s0 > 0 && (!is_2d || s1 > 0), "stride (%d, %d) not positive", s0, s1);
    if (is_2d) {
        REQ(a->ne[2] == b->ne[2], "kernel ne2 " I64 " != input ne2 " I64, a->ne[2], b->ne[2]);
        REQ(ggml_is_contiguous_to_2(b), "input planes not packed");
    } else {
        REQ(b->ne[1] == a->ne[1], "input ne1 " I64 " != kernel ne1 " I64, b->ne[1], a->ne[1]);
        REQ(b->ne[3] == 1, "input ne3 " I64 " != 1", b->ne[3]);
        REQ(contig_rows(b), "input rows not packed");
    }
    int64_t ow, oh = 0;
    REQ(conv_out(b->ne[0], a->ne[0], s0, p0, d0, &ow), "OW overflows");
    if (is_2d) {
        REQ(conv_out(b->ne[1], a->ne[1], s1, p1, d1, &oh), "OH overflows");
    }
    REQ(ow > 0 && (!is_2d || oh > 0), "input too small for the kernel (OW " I64 ", OH " I64 ")",
        ow, oh);
    int64_t n0;
    REQ(mul64(a->ne[0], a->ne[1], &n0) && (!is_2d || mul64(n0, a->ne[2], &n0)), "ne0 overflows");
    if (is_2d) {
        return expect_dst(v, t->type, n0, ow, oh, b->ne[3]);
    }
    return expect_dst(v, t->type, n0, ow, b->ne[2], 1);
}

/*
 * IM2COL_BACK: the constructor checks nothing (result F32 of any ne). kernel: strides > 0 (it
 * takes remainders by them), and it reads the gradient a as packed
 * [IC*KH*KW, OW, OH, N] with IC, N from the result and KH, KW from the kernel b.
 */
static bool chk_im2col_back(struct vo *v, const struct ggml_tensor *t)
{
    const int32_t is2 = pi32(t, 6);
    const bool    is_2d = is2 == 1;
    REQ(pi32(t, 0) > 0 && (!is_2d || pi32(t, 1) > 0), "stride (%d, %d) not positive", pi32(t, 0),
        pi32(t, 1));
    REQ(t->type == GGML_TYPE_F32, "dst type %s, expected F32", tname(t));
    const int64_t n_img = is_2d ? t->ne[3] : t->ne[2], ic = is_2d ? t->ne[2] : t->ne[1];
    const int64_t kh = is_2d ? T1->ne[1] : 1, kw = T1->ne[0];
    const int64_t oh = is_2d ? T0->ne[2] : 1, ow = T0->ne[1];
    int64_t need, col;
    REQ(mul64(ic, kh, &col) && mul64(col, kw, &col) && mul64(col, n_img, &need) &&
            mul64(need, oh, &need) && mul64(need, ow, &need),
        "size overflows");
    REQ(T0->ne[0] == col, "grad ne0 " I64 " != IC*KH*KW " I64, T0->ne[0], col);
    REQ(nel(T0) >= need, "grad has " I64 " elements, kernel reads " I64, nel(T0), need);
    REQ(packed_extent_ok(T0), "grad extent smaller than its elements (read packed)");
    return true;
}

/*
 * IM2COL_3D: params {s0, s1, s2, p0, p1, p2, d0, d1, d2, IC}; a [KW, KH, KD, OC*IC],
 * b [IW, IH, ID, N*IC]; IC > 0 and strides > 0 (the constructor divides by them);
 * result [KW*KH*KD*IC, OW, OH, OD*N], OD/OH/OW > 0.
 */
static bool chk_im2col_3d(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0, *b = T1;
    int32_t s[3], p[3], d[3];
    for (int i = 0; i < 3; i++) {
        s[i] = pi32(t, i);
        p[i] = pi32(t, 3 + i);
        d[i] = pi32(t, 6 + i);
        REQ(s[i] > 0, "stride%d = %d not positive", i, s[i]);
    }
    const int32_t ic = pi32(t, 9);
    REQ(ic > 0, "IC %d not positive", ic);
    int64_t o[3];
    for (int i = 0; i < 3; i++) {
        REQ(conv_out(b->ne[i], a->ne[i], s[i], p[i], d[i], &o[i]), "output size overflows");
        REQ(o[i] > 0, "input too small for the kernel (out dim %d = " I64 ")", i, o[i]);
    }
    int64_t n0, n3;
    REQ(mul64(a->ne[0], a->ne[1], &n0) && mul64(n0, a->ne[2], &n0) && mul64(n0, ic, &n0) &&
            mul64(o[2], b->ne[3] / ic, &n3),
        "size overflows");
    return expect_dst(v, t->type, n0, o[0], o[1], n3);
}

/* COL2IM_1D: a contiguous F32/F16/BF16 matrix [K*oc, T_in]; params {s0 > 0, oc > 0, p0 >= 0};
 * K = ne0/oc exact and > 0; result a's type [(T_in-1)s0 + K - 2p0 (> 0), oc]. */
static bool chk_col2im_1d(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0;
    const int32_t s0 = pi32(t, 0), oc = pi32(t, 1), p0 = pi32(t, 2);
    REQ(ggml_is_matrix(a) && contig(a), "src0 " SHP " not a contiguous matrix", SHA(a));
    REQ(a->type == GGML_TYPE_F32 || a->type == GGML_TYPE_F16 || a->type == GGML_TYPE_BF16,
        "src0 type %s not F32/F16/BF16", tname(a));
    REQ(s0 > 0 && oc > 0 && p0 >= 0, "params s0 %d, oc %d, p0 %d out of range", s0, oc, p0);
    const int64_t k = a->ne[0] / oc;
    REQ(k > 0 && a->ne[0] == k * oc, "ne0 " I64 " not a positive multiple of oc %d", a->ne[0], oc);
    int64_t tout;
    REQ(a->ne[1] >= 1 && mul64(a->ne[1] - 1, s0, &tout) && add64(tout, k, &tout) &&
            sub64(tout, 2 * (int64_t) p0, &tout),
        "output length overflows");
    REQ(tout > 0, "output length " I64 " not positive", tout);
    return expect_dst(v, a->type, tout, oc, 1, 1);
}

/* Shared by the direct convolutions: the input (and so the result) F32, the kernel F16/F32,
 * as every backend's conv kernel assumes (CPU reads the input as float with no check). */
static bool check_conv_types(struct vo *v, const struct ggml_tensor *t)
{
    if (!expect_f32_f16(v, "kernel", T0) || !expect_type(v, "input", T1, GGML_TYPE_F32)) {
        return false;
    }
    return true;
}

/* CONV_2D: a [KW, KH, IC, OC], b [W, H, IC, N]; params {s0, s1, p0, p1, d0, d1}, strides > 0;
 * result b's type [OW, OH, OC, N]. kernel: a contiguous (every backend reads it packed). */
static bool chk_conv_2d(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0, *b = T1;
    REQ(a->ne[2] == b->ne[2], "kernel ne2 " I64 " != input ne2 " I64, a->ne[2], b->ne[2]);
    if (!check_conv_types(v, t)) {
        return false;
    }
    REQ(pi32(t, 0) > 0 && pi32(t, 1) > 0, "strides (%d, %d) not positive", pi32(t, 0), pi32(t, 1));
    REQ(contig(a), "kernel not contiguous");
    int64_t ow, oh;
    REQ(conv_out(b->ne[0], a->ne[0], pi32(t, 0), pi32(t, 2), pi32(t, 4), &ow) &&
            conv_out(b->ne[1], a->ne[1], pi32(t, 1), pi32(t, 3), pi32(t, 5), &oh),
        "output size overflows");
    return expect_dst(v, b->type, ow, oh, a->ne[3], b->ne[3]);
}

/* CONV_3D: a [KW, KH, KD, c*oc], b [W, H, D, c*n]; params {s0..2, p0..2, d0..2, c, n, oc},
 * strides > 0, c/n/oc >= 0 (the kernels index with them); result F32 [OW, OH, OD, oc*n]. */
static bool chk_conv_3d(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0, *b = T1;
    const int32_t c = pi32(t, 9), n = pi32(t, 10), oc = pi32(t, 11);
    REQ(c >= 0 && n >= 0 && oc >= 0, "c %d, n %d, oc %d negative", c, n, oc);
    REQ(a->ne[3] == (int64_t) c * oc, "kernel ne3 " I64 " != c*oc (%d*%d)", a->ne[3], c, oc);
    REQ(b->ne[3] == (int64_t) c * n, "input ne3 " I64 " != c*n (%d*%d)", b->ne[3], c, n);
    if (!check_conv_types(v, t)) {
        return false;
    }
    REQ(contig(a), "kernel not contiguous");
    int64_t o[3];
    for (int i = 0; i < 3; i++) {
        REQ(pi32(t, i) > 0, "stride%d = %d not positive", i, pi32(t, i));
        REQ(conv_out(b->ne[i], a->ne[i], pi32(t, i), pi32(t, 3 + i), pi32(t, 6 + i), &o[i]),
            "output size overflows");
    }
    return expect_dst(v, GGML_TYPE_F32, o[0], o[1], o[2], (int64_t) oc * n);
}

/*
 * CONV_2D_DW: a [KW, KH, 1, C], b [W, H, C, N]; params {s0, s1, p0, p1, d0, d1}, strides > 0;
 * result b's type [OW, OH, C, N], packed, or in b's channels-first (CWHN) order when b is
 * ggml_is_contiguous_channels (the constructor then gives it the strides
 * {C*ts, OW*C*ts, ts, OW*OH*C*ts}). kernel: b contiguous or CWHN; the CWHN kernel reads the
 * kernel a channels-first too (the CPU GGML_ASSERTs its stride order).
 */
static bool chk_conv_2d_dw(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0, *b = T1;
    REQ(a->ne[2] == 1, "kernel ne2 " I64 " != 1", a->ne[2]);
    REQ(a->ne[3] == b->ne[2], "kernel ne3 " I64 " != channels " I64, a->ne[3], b->ne[2]);
    if (!check_conv_types(v, t)) {
        return false;
    }
    REQ(pi32(t, 0) > 0 && pi32(t, 1) > 0, "strides (%d, %d) not positive", pi32(t, 0), pi32(t, 1));
    int64_t ow, oh;
    REQ(conv_out(b->ne[0], a->ne[0], pi32(t, 0), pi32(t, 2), pi32(t, 4), &ow) &&
            conv_out(b->ne[1], a->ne[1], pi32(t, 1), pi32(t, 3), pi32(t, 5), &oh),
        "output size overflows");
    if (!expect_dst(v, b->type, ow, oh, b->ne[2], b->ne[3])) {
        return false;
    }
    if (ggml_is_contiguous_channels(b)) {
        const size_t ts = ggml_type_size(t->type);
        const size_t c  = (size_t) t->ne[2];
        REQ(t->nb[0] == c * ts && t->nb[1] == (size_t) t->ne[0] * c * ts && t->nb[2] == ts &&
                t->nb[3] == (size_t) t->ne[0] * (size_t) t->ne[1] * c * ts,
            "dst is not in the input's channels-first layout");
        REQ(contig(a) || (a->nb[0] >= a->nb[2] && a->nb[1] >= a->nb[0]),
            "kernel layout does not match a channels-first input");
        return true;
    }
    REQ(contig(b), "input neither contiguous nor channels-first");
    REQ(contig(a), "kernel not contiguous");
    return dst_fresh(v);
}

/* CONV_TRANSPOSE_2D: a [KW, KH, Cout, Cin], b [W, H, Cin, N]; stride (param 0) >= 1 (kernel:
 * non-positive strides write outside dst); result F32 [(W-1)s + KW, (H-1)s + KH, Cout, N]. */
static bool chk_conv_transpose_2d(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0, *b = T1;
    const int32_t s = pi32(t, 0);
    REQ(a->ne[3] == b->ne[2], "kernel ne3 " I64 " != input ne2 " I64, a->ne[3], b->ne[2]);
    REQ(s >= 1, "stride %d < 1", s);
    int64_t ow, oh;
    REQ(b->ne[0] >= 1 && b->ne[1] >= 1 && mul64(b->ne[0] - 1, s, &ow) &&
            add64(ow, a->ne[0], &ow) && mul64(b->ne[1] - 1, s, &oh) && add64(oh, a->ne[1], &oh),
        "output size overflows or input empty");
    return expect_dst(v, GGML_TYPE_F32, ow, oh, a->ne[2], b->ne[3]);
}

/* The pool op (param 0) is MAX or AVG (the kernels abort on COUNT, leave others undefined). */
static bool check_pool_op(struct vo *v, const struct ggml_tensor *t)
{
    const int32_t op = pi32(t, 0);
    REQ(op == GGML_OP_POOL_MAX || op == GGML_OP_POOL_AVG, "pool op %d not MAX/AVG", op);
    return true;
}

/* POOL_1D: params {op, k0, s0 > 0, p0}; result F32 [(n + 2p - k)/s + 1 > 0, a1, a2, a3].
 * kernel: src walked as flat rows. */
static bool chk_pool_1d(struct vo *v, const struct ggml_tensor *t)
{
    if (!check_pool_op(v, t)) {
        return false;
    }
    const int32_t k = pi32(t, 1), s = pi32(t, 2), p = pi32(t, 3);
    REQ(s > 0, "stride %d not positive", s);
    int64_t ow;
    REQ(add64(T0->ne[0], 2 * (int64_t) p - k, &ow), "output width overflows");
    ow = ow / s + 1;
    REQ(ow > 0, "output width " I64 " not positive", ow);
    REQ(flat_rows_ok(T0), "src0 not row-flat (kernel walks rows)");
    return expect_dst(v, GGML_TYPE_F32, ow, T0->ne[1], T0->ne[2], T0->ne[3]);
}

/* POOL_2D: params {op, k0, k1, s0, s1, p0, p1}; strides > 0; result F32 [OW > 0, OH > 0, a2,
 * a3] (the constructor's paddings are floats truncated into op_params, so OW/OH are not
 * recomputed). kernel: the CPU walks the input plane by plane by nb[2] until its byte size, so
 * the input must be exactly packed. */
static bool chk_pool_2d(struct vo *v, const struct ggml_tensor *t)
{
    if (!check_pool_op(v, t)) {
        return false;
    }
    REQ(pi32(t, 3) > 0 && pi32(t, 4) > 0, "strides (%d, %d) not positive", pi32(t, 3), pi32(t, 4));
    REQ(t->ne[0] > 0 && t->ne[1] > 0, "output " SHP " empty", SHA(t));
    REQ(is_packed(T0), "src0 not packed (kernel walks planes by nb2)");
    return expect_dst(v, GGML_TYPE_F32, t->ne[0], t->ne[1], T0->ne[2], T0->ne[3]);
}

/* POOL_2D_BACK: grad a, forward input af; result F32 with af's ne. kernel: a read as packed
 * planes (a ne2/ne3 == af's), af read with the result's strides and type. */
static bool chk_pool_2d_back(struct vo *v, const struct ggml_tensor *t)
{
    if (!check_pool_op(v, t)) {
        return false;
    }
    REQ(T0->ne[2] == T1->ne[2] && T0->ne[3] == T1->ne[3],
        "grad " SHP " and forward input " SHP " differ in planes", SHA(T0), SHA(T1));
    REQ(is_packed(T0), "grad not packed");
    REQ(is_packed(T1) && T1->type == GGML_TYPE_F32, "forward input not a packed F32 tensor");
    return expect_dst(v, GGML_TYPE_F32, T1->ne[0], T1->ne[1], T1->ne[2], T1->ne[3]);
}

/* UPSCALE: F32 a; mode (param 0): (mode & 0xFF) a known scale mode, antialias only with
 * bilinear; result F32 of any ne (kernel: a non-empty result needs a non-empty a). */
static bool chk_upscale(struct vo *v, const struct ggml_tensor *t)
{
    const uint32_t mode = (uint32_t) pi32(t, 0);
    REQ((mode & 0xFF) < GGML_SCALE_MODE_COUNT, "mode %u unknown", mode & 0xFF);
    REQ(!(mode & GGML_SCALE_FLAG_ANTIALIAS) || (mode & 0xFF) == GGML_SCALE_MODE_BILINEAR,
        "antialias needs bilinear mode");
    if (!expect_type(v, "src0", T0, GGML_TYPE_F32)) {
        return false;
    }
    REQ(nel(t) == 0 || nel(T0) > 0, "empty src0 scaled to " SHP, SHA(t));
    return expect_dst(v, GGML_TYPE_F32, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
}

/* PAD: params {lp0, rp0, lp1, rp1, lp2, rp2, lp3, rp3, circular}; result a's type
 * [a_i + lp_i + rp_i]. kernel: circular padding takes remainders by a's ne (non-empty a). */
static bool chk_pad(struct vo *v, const struct ggml_tensor *t)
{
    int64_t ne[4];
    for (int i = 0; i < 4; i++) {
        REQ(add64(T0->ne[i], pi32(t, 2 * i), &ne[i]) && add64(ne[i], pi32(t, 2 * i + 1), &ne[i]),
            "ne%d overflows", i);
    }
    REQ(pi32(t, 8) == 0 || nel(t) == 0 || nel(T0) > 0, "circular padding of an empty src0");
    return expect_dst(v, T0->type, ne[0], ne[1], ne[2], ne[3]);
}

/* PAD_REFLECT_1D: 0 <= p0, p1 < a ne0 (the reflection reads inside the row), contiguous F32 a;
 * result F32 [a0 + p0 + p1, a1, a2, a3]. The ggml-rpc CPU OOB-write class. */
static bool chk_pad_reflect_1d(struct vo *v, const struct ggml_tensor *t)
{
    const int32_t p0 = pi32(t, 0), p1 = pi32(t, 1);
    REQ(p0 >= 0 && p1 >= 0, "negative padding (%d, %d)", p0, p1);
    REQ(p0 < T0->ne[0] && p1 < T0->ne[0], "padding (%d, %d) not below ne0 " I64, p0, p1,
        T0->ne[0]);
    REQ(contig(T0), "src0 not contiguous");
    if (!expect_type(v, "src0", T0, GGML_TYPE_F32)) {
        return false;
    }
    int64_t n0;
    REQ(add64(T0->ne[0], (int64_t) p0 + p1, &n0), "ne0 overflows");
    return expect_dst(v, GGML_TYPE_F32, n0, T0->ne[1], T0->ne[2], T0->ne[3]);
}

/* ROLL: a's row elements adjacent, |shift_i| < ne_i; result = a. */
static bool chk_roll(struct vo *v, const struct ggml_tensor *t)
{
    REQ(T0->nb[0] == ggml_type_size(T0->type), "src0 nb0 %zu != type size", T0->nb[0]);
    for (int i = 0; i < 4; i++) {
        const int64_t s = pi32(t, i);
        REQ((s < 0 ? -s : s) < T0->ne[i], "|shift%d| %" PRId64 " >= ne " I64, i, s, T0->ne[i]);
    }
    return expect_dst_like(v, T0);
}

/* ARANGE: no sources; params {start, stop, step} with stop > start; result F32 1-D with
 * ceil((stop - start)/step) elements (the CPU kernel GGML_ASSERTs the count). */
static bool chk_arange(struct vo *v, const struct ggml_tensor *t)
{
    const float start = pf32(t, 0), stop = pf32(t, 1), step = pf32(t, 2);
    REQ(stop > start, "stop %g <= start %g", (double) stop, (double) start);
    const float steps = ceilf((stop - start) / step);
    REQ(isfinite(steps) && steps >= 0.0f && steps < 9.0e18f, "step %g gives no finite count",
        (double) step);
    return expect_dst(v, GGML_TYPE_F32, (int64_t) steps, 1, 1, 1);
}

/* TIMESTEP_EMBEDDING: params {dim, max_period}; result F32 [dim, a0]. */
static bool chk_timestep_embedding(struct vo *v, const struct ggml_tensor *t)
{
    return expect_dst(v, GGML_TYPE_F32, pi32(t, 0), T0->ne[0], 1, 1);
}

/* ARGSORT: a ne0 <= INT32_MAX; order (param 0) ASC or DESC; result I32 with a's ne.
 * kernel: src walked as flat rows. */
static bool chk_argsort(struct vo *v, const struct ggml_tensor *t)
{
    REQ(T0->ne[0] <= INT32_MAX, "src0 ne0 " I64 " > INT32_MAX", T0->ne[0]);
    REQ(pi32(t, 0) == GGML_SORT_ORDER_ASC || pi32(t, 0) == GGML_SORT_ORDER_DESC,
        "order %d unknown", pi32(t, 0));
    REQ(flat_rows_ok(T0), "src0 not row-flat");
    return expect_dst(v, GGML_TYPE_I32, T0->ne[0], T0->ne[1], T0->ne[2], T0->ne[3]);
}

/* TOP_K: k = result ne0 <= a ne0; result I32 [k, a1, a2, a3]. kernel: flat rows. */
static bool chk_top_k(struct vo *v, const struct ggml_tensor *t)
{
    REQ(t->ne[0] <= T0->ne[0], "k " I64 " > src0 ne0 " I64, t->ne[0], T0->ne[0]);
    REQ(T0->ne[0] <= INT32_MAX, "src0 ne0 " I64 " > INT32_MAX", T0->ne[0]);
    REQ(flat_rows_ok(T0), "src0 not row-flat");
    return expect_dst(v, GGML_TYPE_I32, t->ne[0], T0->ne[1], T0->ne[2], T0->ne[3]);
}

/* LEAKY_RELU: result = a. kernel: flat rows. */
static bool chk_leaky_relu(struct vo *v, const struct ggml_tensor *t)
{
    REQ(flat_rows_ok(T0), "src0 not row-flat");
    return expect_dst_like(v, T0);
}

/* TRI: contiguous square F32 a; type (param 0) one of the four; result = a. */
static bool chk_tri(struct vo *v, const struct ggml_tensor *t)
{
    if (!expect_type(v, "src0", T0, GGML_TYPE_F32)) {
        return false;
    }
    REQ(contig(T0), "src0 not contiguous");
    REQ(T0->ne[0] == T0->ne[1], "src0 " SHP " not square", SHA(T0));
    REQ(pi32(t, 0) >= GGML_TRI_TYPE_UPPER_DIAG && pi32(t, 0) <= GGML_TRI_TYPE_LOWER,
        "tri type %d unknown", pi32(t, 0));
    return expect_dst_like(v, T0);
}

/* FILL: contiguous F32/F16 a; result = a. */
static bool chk_fill(struct vo *v, const struct ggml_tensor *t)
{
    if (!expect_f32_f16(v, "src0", T0)) {
        return false;
    }
    REQ(contig(T0), "src0 not contiguous");
    return expect_dst_like(v, T0);
}

/* ---- state-space and linear-attention ops --------------------------------------------------- */

/* SSM_CONV: sx [d_conv - 1 + n_t, d_inner, n_s] (3-D), c [d_conv, d_inner] matrix, n_t >= 0;
 * result F32 [d_inner, n_t, n_s]. */
static bool chk_ssm_conv(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *sx = T0, *c = T1;
    REQ(ggml_is_3d(sx), "sx " SHP " not 3-D", SHA(sx));
    REQ(ggml_is_matrix(c), "c " SHP " not a matrix", SHA(c));
    int64_t n_t = sx->ne[0] - c->ne[0]; /* both >= 0: no overflow */
    REQ(add64(n_t, 1, &n_t) && n_t >= 0, "sx ne0 " I64 " shorter than d_conv - 1 (" I64 ")",
        sx->ne[0], c->ne[0] - 1);
    REQ(sx->ne[1] == c->ne[1], "sx ne1 " I64 " != d_inner " I64, sx->ne[1], c->ne[1]);
    return expect_dst(v, GGML_TYPE_F32, c->ne[1], n_t, sx->ne[2], 1);
}

/*
 * SSM_SCAN: s, x, dt, A, B, C, ids (see ggml_ssm_scan); K (param 0) in [1, INT32_MAX]
 * (>1 only with scalar A); result F32 1-D of nelements(x) + K*d_state*head_dim*n_head*n_seqs.
 * kernel: n_group (B ne1) > 0 and divides n_head (the CPU takes the remainder first).
 */
static bool chk_ssm_scan(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *s = T0, *x = T1, *dt = T2, *A = T3, *B = T4, *C = T5, *ids = T6;
    const int32_t K = pi32(t, 0);
    REQ(K >= 1, "K %d < 1", K);
    REQ(contig(s) && contig(dt) && contig(A), "s, dt or A not contiguous");
    REQ(x->nb[0] == ggml_type_size(x->type) && B->nb[0] == ggml_type_size(B->type) &&
            C->nb[0] == ggml_type_size(C->type),
        "x, B or C elements not adjacent");
    REQ(x->nb[1] == (size_t) x->ne[0] * x->nb[0] && B->nb[1] == (size_t) B->ne[0] * B->nb[0] &&
            C->nb[1] == (size_t) C->ne[0] * C->nb[0],
        "x, B or C rows not packed");
    REQ(same_shape(B, C), "B " SHP " and C " SHP " differ", SHA(B), SHA(C));
    if (!expect_type(v, "ids", ids, GGML_TYPE_I32)) {
        return false;
    }
    const int64_t d_state = s->ne[0], head_dim = x->ne[0], n_head = x->ne[1];
    const int64_t n_seq_tokens = x->ne[2], n_seqs = x->ne[3];
    REQ(shape_is(dt, n_head, n_seq_tokens, n_seqs, 1), "dt " SHP " != [n_head, tokens, seqs]",
        SHA(dt));
    REQ(s->ne[1] == head_dim && s->ne[2] == n_head, "s " SHP " != [d_state, head_dim, n_head]",
        SHA(s));
    REQ(B->ne[0] == d_state && B->ne[2] == n_seq_tokens && B->ne[3] == n_seqs,
        "B " SHP " does not match d_state/tokens/seqs", SHA(B));
    REQ(ids->ne[0] == n_seqs && ggml_is_vector(ids), "ids " SHP " != [n_seqs]", SHA(ids));
    REQ(A->ne[1] == n_head && ggml_is_matrix(A), "A " SHP " != [*, n_head]", SHA(A));
    if (A->ne[0] != 1) {
        REQ(A->ne[0] == d_state && K == 1, "A ne0 " I64 " needs d_state and K == 1", A->ne[0]);
    }
    REQ(B->ne[1] > 0 && n_head % B->ne[1] == 0, "n_group " I64 " does not divide n_head " I64,
        B->ne[1], n_head);
    int64_t n = K;
    REQ(mul64(n, d_state, &n) && mul64(n, head_dim, &n) && mul64(n, n_head, &n) &&
            mul64(n, ids->ne[0], &n) && add64(n, nel(x), &n),
        "size overflows");
    return expect_dst(v, GGML_TYPE_F32, n, 1, 1, 1);
}

/* WIN_PART: F32 a [C, W, H, 1]; w (param 2) > 0; params {npx, npy, w} as the constructor
 * computes them; result F32 [C, w, w, npx*npy]. */
static bool chk_win_part(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0;
    REQ(a->ne[3] == 1, "src0 ne3 " I64 " != 1", a->ne[3]);
    if (!expect_type(v, "src0", a, GGML_TYPE_F32)) {
        return false;
    }
    const int64_t w = pi32(t, 2);
    REQ(w > 0, "w " I64 " not positive", w);
    REQ(packed_extent_ok(a), "src0 extent smaller than its elements (read packed)");
    const int64_t px = (w - a->ne[1] % w) % w, py = (w - a->ne[2] % w) % w;
    int64_t npx, npy;
    REQ(add64(px, a->ne[1], &npx) && add64(py, a->ne[2], &npy), "size overflows");
    npx /= w;
    npy /= w;
    REQ(pi32(t, 0) == npx && pi32(t, 1) == npy, "npx/npy (%d, %d) != (" I64 ", " I64 ")",
        pi32(t, 0), pi32(t, 1), npx, npy);
    int64_t np;
    REQ(mul64(npx, npy, &np), "window count overflows");
    return expect_dst(v, GGML_TYPE_F32, a->ne[0], w, w, np);
}

/* WIN_UNPART: F32 a (windows [C, w, w, n]); w (param 0) > 0; result F32 [C, w0, h0, 1].
 * kernel (the constructor checks nothing else): the windows it reads, up to
 * ((h0-1)/w * npx + (w0-1)/w) with rows/cols below min(w, w0/h0), lie inside a. */
static bool chk_win_unpart(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0;
    if (!expect_type(v, "src0", a, GGML_TYPE_F32)) {
        return false;
    }
    const int64_t w = pi32(t, 0);
    REQ(w > 0, "w " I64 " not positive", w);
    REQ(packed_extent_ok(a), "src0 extent smaller than its elements (read packed)");
    if (!expect_dst(v, GGML_TYPE_F32, a->ne[0], t->ne[1], t->ne[2], 1)) {
        return false;
    }
    if (nel(t) == 0) {
        return true;
    }
    const int64_t npx = t->ne[1] / w + (t->ne[1] % w != 0); /* ceil(w0 / w) */
    const int64_t win = ((t->ne[2] - 1) / w) * npx + (t->ne[1] - 1) / w;
    const int64_t r2  = (t->ne[2] < w ? t->ne[2] : w) - 1, r1 = (t->ne[1] < w ? t->ne[1] : w) - 1;
    int64_t last, x;
    REQ(mul64(win, a->ne[2], &last) && add64(last, r2, &last) && mul64(last, a->ne[1], &last) &&
            add64(last, r1, &last) && mul64(last, a->ne[0], &last) &&
            add64(last, a->ne[0] - 1, &x),
        "index overflows");
    REQ(r1 < a->ne[1] && r2 < a->ne[2] && x < nel(a),
        "windows of src0 " SHP " too small for dst " SHP " with w " I64, SHA(a), SHA(t), w);
    return true;
}

/* GET_REL_POS: a [C, 2q-1]; result F16 [C, q, q] (q == kh == qh, not stored). */
static bool chk_get_rel_pos(struct vo *v, const struct ggml_tensor *t)
{
    REQ(t->ne[1] == t->ne[2], "dst ne1 " I64 " != ne2 " I64, t->ne[1], t->ne[2]);
    REQ(packed_extent_ok(T0), "src0 extent smaller than its elements (read packed)");
    int64_t n;
    REQ(t->ne[1] >= 1 && mul64(t->ne[1], 2, &n) && n - 1 == T0->ne[1],
        "src0 ne1 " I64 " != 2*" I64 " - 1", T0->ne[1], t->ne[1]);
    return expect_dst(v, GGML_TYPE_F16, T0->ne[0], t->ne[1], t->ne[2], 1);
}

/* ADD_REL_POS: contiguous a, F32 contiguous pw and ph of one shape with pw0^2 == a0,
 * pw1*pw2 == a1, pw3 == a2; result = a. */
static bool chk_add_rel_pos(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0, *pw = T1, *ph = T2;
    REQ(same_shape(pw, ph), "pw " SHP " and ph " SHP " differ", SHA(pw), SHA(ph));
    REQ(contig(a) && contig(pw) && contig(ph), "sources not contiguous");
    if (!expect_type(v, "pw", pw, GGML_TYPE_F32) || !expect_type(v, "ph", ph, GGML_TYPE_F32)) {
        return false;
    }
    int64_t sq, hw;
    REQ(mul64(pw->ne[0], pw->ne[0], &sq) && mul64(pw->ne[1], pw->ne[2], &hw), "size overflows");
    REQ(pw->ne[3] == a->ne[2] && sq == a->ne[0] && hw == a->ne[1],
        "pw " SHP " does not match src0 " SHP, SHA(pw), SHA(a));
    return expect_dst_like(v, a);
}

/*
 * Shared by RWKV_WKV6 / GATED_LINEAR_ATTN / RWKV_WKV7: contiguous sources; `n_like` of them
 * (from index `first`) are [S, H, T] like k = src[k_index]; state has S*S*H*n_seqs elements
 * (n_seqs = state ne1); result F32 [S*H, T + S*n_seqs]. kernel: the tokens split evenly over
 * the sequences (T/n_seqs, T % n_seqs).
 */
static bool check_linear_attn(struct vo *v, const struct ggml_tensor *t, int n_src, int k_index,
                              uint16_t like_mask, const struct ggml_tensor *state)
{
    for (int i = 0; i < n_src; i++) {
        REQ(contig(t->src[i]), "src%d not contiguous", i);
    }
    const struct ggml_tensor *k = t->src[k_index];
    const int64_t hs = k->ne[0], H = k->ne[1], T = k->ne[2], n_seqs = state->ne[1];
    for (int i = 0; i < n_src; i++) {
        if (like_mask & S(i)) {
            const struct ggml_tensor *x = t->src[i];
            REQ(x->ne[0] == hs && x->ne[1] == H && x->ne[2] == T, "src%d " SHP " != [S, H, T] of "
                "k " SHP, i, SHA(x), SHA(k));
        }
    }
    int64_t n;
    REQ(mul64(hs, hs, &n) && mul64(n, H, &n) && mul64(n, n_seqs, &n) && nel(state) == n,
        "state " SHP " does not hold S*S*H*n_seqs elements", SHA(state));
    REQ(T == 0 || (n_seqs > 0 && T % n_seqs == 0), "tokens " I64 " not split over " I64
        " sequences", T, n_seqs);
    int64_t n0, n1;
    REQ(mul64(hs, H, &n0) && mul64(hs, n_seqs, &n1) && add64(n1, T, &n1), "size overflows");
    return expect_dst(v, GGML_TYPE_F32, n0, n1, 1, 1);
}

/* RWKV_WKV6: k, v, r, tf, td, state. kernel: tf holds S*H entries (read as a plain array). */
static bool chk_rwkv_wkv6(struct vo *v, const struct ggml_tensor *t)
{
    if (!check_linear_attn(v, t, 6, 0, S(1) | S(2) | S(4), T5)) {
        return false;
    }
    int64_t sh;
    REQ(mul64(T0->ne[0], T0->ne[1], &sh) && nel(T3) >= sh, "tf has " I64 " elements, kernel reads "
        "S*H", nel(T3));
    return true;
}

/* GATED_LINEAR_ATTN: k, v, q, g, state; scale param. */
static bool chk_gla(struct vo *v, const struct ggml_tensor *t)
{
    return check_linear_attn(v, t, 5, 0, S(1) | S(2) | S(3), T4);
}

/* RWKV_WKV7: r, w, k, v, a, b, state. */
static bool chk_rwkv_wkv7(struct vo *v, const struct ggml_tensor *t)
{
    return check_linear_attn(v, t, 7, 2, S(0) | S(1) | S(3) | S(4) | S(5), T6);
}

/* SOLVE_TRI: contiguous F32 a [n, n, B2, B3] and b [m, n, B2, B3]; result F32 like b. */
static bool chk_solve_tri(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = T0, *b = T1;
    if (!expect_type(v, "a", a, GGML_TYPE_F32) || !expect_type(v, "b", b, GGML_TYPE_F32)) {
        return false;
    }
    REQ(a->ne[0] == a->ne[1], "a " SHP " not square", SHA(a));
    REQ(a->ne[1] == b->ne[1] && a->ne[2] == b->ne[2] && a->ne[3] == b->ne[3],
        "a " SHP " and b " SHP " do not match", SHA(a), SHA(b));
    REQ(contig(a) && contig(b), "a or b not contiguous");
    return expect_dst(v, GGML_TYPE_F32, b->ne[0], b->ne[1], b->ne[2], b->ne[3]);
}

/*
 * GATED_DELTA_NET: q, k, v [S_v, H, T, n_seqs], g, beta, state; all F32; K (param 0) >= 1;
 * result F32 [S_v*H, T*n_seqs + K*S_v*n_seqs]. The constructor relates only v, g, beta and
 * state; kernel: q and k rows hold S_v values for every token, their heads (ne1 > 0) and
 * sequences (ne3 dividing n_seqs) broadcast, and g / beta cover every (head, token, seq).
 */
static bool chk_gated_delta_net(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *q = T0, *k = T1, *vv = T2, *g = T3, *beta = T4, *state = T5;
    for (int i = 0; i < 6; i++) {
        if (!expect_type(v, "source", t->src[i], GGML_TYPE_F32)) {
            return false;
        }
    }
    REQ(contig_rows(q) && contig_rows(k) && contig_rows(vv), "q, k or v rows not contiguous");
    REQ(contig(g) && contig(beta) && contig(state), "g, beta or state not contiguous");
    const int64_t S_v = vv->ne[0], H = vv->ne[1], T = vv->ne[2], n_seqs = vv->ne[3];
    REQ(g->ne[0] == 1 || g->ne[0] == S_v, "g ne0 " I64 " not 1 or S_v", g->ne[0]);
    REQ(beta->ne[0] == 1, "beta ne0 " I64 " != 1", beta->ne[0]);
    REQ(shape_is(state, S_v, S_v, H, n_seqs), "state " SHP " != [S_v, S_v, H, n_seqs]",
        SHA(state));
    const int32_t K = pi32(t, 0);
    REQ(K >= 1, "K %d < 1", K);
    const struct ggml_tensor *qk[2] = {q, k};
    for (int i = 0; i < 2; i++) {
        const struct ggml_tensor *x = qk[i];
        REQ(x->ne[0] >= S_v && x->ne[1] > 0 && x->ne[2] >= T &&
                (n_seqs == 0 || divisible(n_seqs, x->ne[3])),
            "%s " SHP " does not cover v " SHP, i ? "k" : "q", SHA(x), SHA(vv));
    }
    REQ(g->ne[1] >= H && g->ne[2] >= T && g->ne[3] >= n_seqs, "g " SHP " does not cover v " SHP,
        SHA(g), SHA(vv));
    REQ(beta->ne[1] >= H && beta->ne[2] >= T && beta->ne[3] >= n_seqs,
        "beta " SHP " does not cover v " SHP, SHA(beta), SHA(vv));
    int64_t n0, n1, n2;
    REQ(mul64(S_v, H, &n0) && mul64(T, n_seqs, &n1) && mul64(K, S_v, &n2) &&
            mul64(n2, n_seqs, &n2) && add64(n1, n2, &n1),
        "size overflows");
    return expect_dst(v, GGML_TYPE_F32, n0, n1, 1, 1);
}

/* LIGHTNING_INDEXER: q F32 [e, h, tok, s], k [e, 1, kv, s], weights F32 [h, tok, 1, s],
 * mask F16 [kv, tok, 1, m3] with m3 | s; result F32 [kv, tok, 1, s]. */
static bool chk_lightning_indexer(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *q = T0, *k = T1, *w = T2, *m = T3;
    if (!expect_type(v, "q", q, GGML_TYPE_F32) || !expect_type(v, "weights", w, GGML_TYPE_F32) ||
        !expect_type(v, "mask", m, GGML_TYPE_F16)) {
        return false;
    }
    REQ(q->ne[0] == k->ne[0] && m->ne[0] == k->ne[2] && q->ne[1] == w->ne[0] && k->ne[1] == 1 &&
            m->ne[1] == q->ne[2] && q->ne[2] == w->ne[1] && w->ne[2] == 1 && m->ne[2] == 1 &&
            q->ne[3] == k->ne[3] && k->ne[3] == w->ne[3] && divisible(w->ne[3], m->ne[3]),
        "shapes q " SHP ", k " SHP ", w " SHP ", mask " SHP " do not match", SHA(q), SHA(k),
        SHA(w), SHA(m));
    return expect_dst(v, GGML_TYPE_F32, k->ne[2], q->ne[2], 1, q->ne[3]);
}

/* DSV4_HC_COMB: F32 mixes [(2+hc)hc = 24, tok], scale [>= 3], base [24]; n_iter (param 1) > 0;
 * result F32 [4, 4, tok]. */
static bool chk_dsv4_hc_comb(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *mixes = T0, *scale = T1, *base = T2;
    for (int i = 0; i < 3; i++) {
        if (!expect_type(v, "source", t->src[i], GGML_TYPE_F32)) {
            return false;
        }
    }
    REQ(pi32(t, 1) > 0, "n_iter %d not positive", pi32(t, 1));
    REQ(mixes->ne[0] == 24 && mixes->ne[2] == 1 && mixes->ne[3] == 1,
        "mixes " SHP " != [24, tokens] (hc must be 4)", SHA(mixes));
    REQ(scale->ne[0] >= 3 && scale->ne[1] == 1 && scale->ne[2] == 1 && scale->ne[3] == 1,
        "scale " SHP " != [>=3]", SHA(scale));
    REQ(shape_is(base, 24, 1, 1, 1), "base " SHP " != [24]", SHA(base));
    return expect_dst(v, GGML_TYPE_F32, 4, 4, mixes->ne[1], 1);
}

/* DSV4_HC_PRE: F32 x [n_embd, hc > 0, tok, 1]; gated (param 1): weights [n_embd, hc, tok, 1],
 * else [hc, tok, 1, 1]; result F32 [n_embd, tok]. */
static bool chk_dsv4_hc_pre(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *x = T0, *w = T1;
    if (!expect_type(v, "x", x, GGML_TYPE_F32) || !expect_type(v, "weights", w, GGML_TYPE_F32)) {
        return false;
    }
    const int32_t gated = pi32(t, 1);
    REQ(gated == 0 || gated == 1, "gated %d not 0/1", gated);
    REQ(x->ne[1] > 0 && x->ne[3] == 1, "x " SHP " invalid", SHA(x));
    if (gated) {
        REQ(shape_is(w, x->ne[0], x->ne[1], x->ne[2], 1), "weights " SHP " != x " SHP, SHA(w),
            SHA(x));
    } else {
        REQ(shape_is(w, x->ne[1], x->ne[2], 1, 1), "weights " SHP " != [hc, tokens]", SHA(w));
    }
    return expect_dst(v, GGML_TYPE_F32, x->ne[0], x->ne[2], 1, 1);
}

/* DSV4_HC_POST: F32 x [n_embd, tok], residual [n_embd, hc > 0, tok], post [hc, tok], optional
 * comb F32 [hc, hc, tok]; result F32 [n_embd, hc, tok]. */
static bool chk_dsv4_hc_post(struct vo *v, const struct ggml_tensor *t)
{
    const struct ggml_tensor *x = T0, *res = T1, *post = T2, *comb = T3;
    if (!expect_type(v, "x", x, GGML_TYPE_F32) || !expect_type(v, "residual", res, GGML_TYPE_F32) ||
        !expect_type(v, "post", post, GGML_TYPE_F32)) {
        return false;
    }
    const int64_t n_embd = x->ne[0], n_tok = x->ne[1], hc = res->ne[1];
    REQ(hc > 0, "hc " I64 " not positive", hc);
    REQ(x->ne[2] == 1 && x->ne[3] == 1, "x " SHP " not 2-D", SHA(x));
    REQ(res->ne[0] == n_embd && res->ne[2] == n_tok && res->ne[3] == 1,
        "residual " SHP " does not match x " SHP, SHA(res), SHA(x));
    REQ(shape_is(post, hc, n_tok, 1, 1), "post " SHP " != [hc, tokens]", SHA(post));
    if (comb != NULL) {
        if (!expect_type(v, "comb", comb, GGML_TYPE_F32)) {
            return false;
        }
        REQ(shape_is(comb, hc, hc, n_tok, 1), "comb " SHP " != [hc, hc, tokens]", SHA(comb));
    }
    return expect_dst(v, GGML_TYPE_F32, n_embd, hc, n_tok, 1);
}

/* ---- unary / GLU / training ----------------------------------------------------------------- */

/* UNARY: sub-op (param 0) < GGML_UNARY_OP_COUNT; a's row elements adjacent; result = a. */
static bool chk_unary(struct vo *v, const struct ggml_tensor *t)
{
    const int32_t op = pi32(t, 0);
    REQ(op >= 0 && op < GGML_UNARY_OP_COUNT, "unary op %d out of range", op);
    REQ(contig_rows(T0), "src0 rows not contiguous");
    return expect_dst_like(v, T0);
}

/* GLU: sub-op (param 0) < GGML_GLU_OP_COUNT; a contiguous_1; with b: b contiguous_1, same shape
 * and type, result a's ne; without: result [a0/2, a1, a2, a3]; a's type. */
static bool chk_glu(struct vo *v, const struct ggml_tensor *t)
{
    const int32_t op = pi32(t, 0);
    REQ(op >= 0 && op < GGML_GLU_OP_COUNT, "glu op %d out of range", op);
    REQ(ggml_is_contiguous_1(T0), "src0 not contiguous_1");
    if (T1 != NULL) {
        REQ(ggml_is_contiguous_1(T1), "src1 not contiguous_1");
        REQ(same_shape(T0, T1), "src0 " SHP " and src1 " SHP " differ", SHA(T0), SHA(T1));
        REQ(T0->type == T1->type, "src types differ (%s, %s)", tname(T0), tname(T1));
        return expect_dst_like(v, T0);
    }
    return expect_dst(v, T0->type, T0->ne[0] / 2, T0->ne[1], T0->ne[2], T0->ne[3]);
}

/* CROSS_ENTROPY_LOSS: logits and labels of one shape (walked as flat rows by the kernels);
 * result [1] of the logits' type. */
static bool chk_cross_entropy_loss(struct vo *v, const struct ggml_tensor *t)
{
    REQ(same_shape(T0, T1), "src0 " SHP " and src1 " SHP " differ", SHA(T0), SHA(T1));
    REQ(flat_rows_ok(T0) && flat_rows_ok(T1), "sources not row-flat");
    return expect_dst(v, T0->type, 1, 1, 1, 1);
}

/* CROSS_ENTROPY_LOSS_BACK: scalar grad a, b and c of one shape (flat rows); result = b. */
static bool chk_ce_loss_back(struct vo *v, const struct ggml_tensor *t)
{
    REQ(ggml_is_scalar(T0), "src0 " SHP " not a scalar", SHA(T0));
    REQ(same_shape(T1, T2), "src1 " SHP " and src2 " SHP " differ", SHA(T1), SHA(T2));
    REQ(flat_rows_ok(T1) && flat_rows_ok(T2), "sources not row-flat");
    return expect_dst_like(v, T1);
}

/* x (named what) is laid out like a for the optimizer kernels, which address x with a's
 * strides: same ne and (same strides, or both packed with the same element size). */
static bool check_like_param(struct vo *v, const char *what, const struct ggml_tensor *x,
                             const struct ggml_tensor *a)
{
    REQ(same_shape(a, x), "%s " SHP " differs from the parameter " SHP, what, SHA(x), SHA(a));
    REQ(same_stride(a, x) ||
            (is_packed(a) && is_packed(x) && ggml_type_size(x->type) == ggml_type_size(a->type) &&
             ggml_blck_size(x->type) == ggml_blck_size(a->type)),
        "%s strides differ from the parameter's", what);
    return true;
}

/* OPT_STEP_ADAMW: param a, grad, m, v laid out like a, params F32 with 7 elements (a plain
 * array); the result is a view of a. (The constructor also asserts a's PARAM flag; that flag
 * guards nothing in the kernels and is not checked.) */
static bool chk_opt_step_adamw(struct vo *v, const struct ggml_tensor *t)
{
    if (!check_like_param(v, "grad", T1, T0) || !check_like_param(v, "m", T2, T0) ||
        !check_like_param(v, "v", T3, T0) || !expect_type(v, "params", T4, GGML_TYPE_F32)) {
        return false;
    }
    REQ(nel(T4) == 7 && contig(T4), "params " SHP " not 7 contiguous values", SHA(T4));
    return expect_dst_like(v, T0);
}

/* OPT_STEP_SGD: param a, grad laid out like a, params F32 with 2 elements; result a view of a. */
static bool chk_opt_step_sgd(struct vo *v, const struct ggml_tensor *t)
{
    if (!check_like_param(v, "grad", T1, T0) || !expect_type(v, "params", T2, GGML_TYPE_F32)) {
        return false;
    }
    REQ(nel(T2) == 2 && contig(T2), "params " SHP " not 2 contiguous values", SHA(T2));
    return expect_dst_like(v, T0);
}

/* ---- the rule table ------------------------------------------------------------------------- */

/*
 * One entry per ggml op, in enum order: X(op, required srcs, optional srcs, result rule,
 * computed, check). A NULL check refuses the op. The entry count is checked against
 * GGML_OP_COUNT below and -Woverride-init (in -Wextra) rejects a duplicated op, so every op
 * has exactly one rule.
 */
#define VO_OPS(X)                                                                              \
    X(NONE,                    0,     0,           DST_NONE,    false, chk_none)               \
    X(DUP,                     S(0),  0,           DST_INPLACE, true,  chk_same_as_src0)       \
    X(ADD,                     S01,   0,           DST_INPLACE, true,  chk_add)                \
    X(ADD_ID,                  S012,  0,           DST_FRESH,   true,  chk_add_id)             \
    X(ADD1,                    S01,   0,           DST_INPLACE, true,  chk_add1)               \
    X(ACC,                     S01,   0,           DST_INPLACE, true,  chk_acc)                \
    X(SUB,                     S01,   0,           DST_INPLACE, true,  chk_binary)             \
    X(MUL,                     S01,   0,           DST_INPLACE, true,  chk_binary)             \
    X(DIV,                     S01,   0,           DST_INPLACE, true,  chk_binary)             \
    X(SQR,                     S(0),  0,           DST_INPLACE, true,  chk_same_as_src0)       \
    X(SQRT,                    S(0),  0,           DST_INPLACE, true,  chk_same_as_src0)       \
    X(LOG,                     S(0),  0,           DST_INPLACE, true,  chk_same_as_src0)       \
    X(SIN,                     S(0),  0,           DST_INPLACE, true,  chk_same_as_src0)       \
    X(COS,                     S(0),  0,           DST_INPLACE, true,  chk_same_as_src0)       \
    X(SUM,                     S(0),  0,           DST_FRESH,   true,  chk_sum)                \
    X(SUM_ROWS,                S(0),  0,           DST_FRESH,   true,  chk_sum_rows)           \
    X(CUMSUM,                  S(0),  0,           DST_FRESH,   true,  chk_cumsum)             \
    X(MEAN,                    S(0),  0,           DST_FRESH,   true,  chk_mean)               \
    X(ARGMAX,                  S(0),  0,           DST_FRESH,   true,  chk_argmax)             \
    X(COUNT_EQUAL,             S01,   0,           DST_FRESH,   true,  chk_count_equal)        \
    X(REPEAT,                  S(0),  0,           DST_FRESH,   true,  chk_repeat)             \
    X(REPEAT_BACK,             S(0),  0,           DST_FRESH,   true,  chk_repeat_back)        \
    X(CONCAT,                  S01,   0,           DST_FRESH,   true,  chk_concat)             \
    X(SILU_BACK,               S01,   0,           DST_FRESH,   true,  chk_silu_back)          \
    X(NORM,                    S(0),  0,           DST_INPLACE, true,  chk_norm)               \
    X(RMS_NORM,                S(0),  0,           DST_INPLACE, true,  chk_norm)               \
    X(RMS_NORM_BACK,           S01,   0,           DST_FRESH,   true,  chk_rms_norm_back)      \
    X(GROUP_NORM,              S(0),  0,           DST_INPLACE, true,  chk_group_norm)         \
    X(L2_NORM,                 S(0),  0,           DST_INPLACE, true,  chk_norm)               \
    X(MUL_MAT,                 S01,   0,           DST_FRESH,   true,  chk_mul_mat)            \
    X(MUL_MAT_ID,              S012,  0,           DST_FRESH,   true,  chk_mul_mat_id)         \
    X(OUT_PROD,                S01,   0,           DST_FRESH,   true,  chk_out_prod)           \
    X(SCALE,                   S(0),  0,           DST_INPLACE, true,  chk_scale)              \
    X(SET,                     S01,   0,           DST_INPLACE, true,  chk_set)                \
    X(CPY,                     S01,   0,           DST_NONE,    true,  chk_cpy)                \
    X(CONT,                    S(0),  0,           DST_FRESH,   true,  chk_cont)               \
    X(RESHAPE,                 S(0),  0,           DST_NONE,    false, chk_reshape)            \
    X(VIEW,                    S(0),  0,           DST_NONE,    false, chk_view)               \
    X(PERMUTE,                 S(0),  0,           DST_NONE,    false, chk_permute)            \
    X(TRANSPOSE,               S(0),  0,           DST_NONE,    false, chk_transpose)          \
    X(GET_ROWS,                S01,   0,           DST_FRESH,   true,  chk_get_rows)           \
    X(GET_ROWS_BACK,           S01,   0,           DST_FRESH,   true,  chk_get_rows_back)      \
    X(SET_ROWS,                S012,  0,           DST_NONE,    true,  chk_set_rows)           \
    X(DIAG,                    S(0),  0,           DST_FRESH,   true,  chk_diag)               \
    X(DIAG_MASK_INF,           S(0),  0,           DST_INPLACE, true,  chk_diag_mask)          \
    X(DIAG_MASK_ZERO,          S(0),  0,           DST_INPLACE, true,  chk_diag_mask)          \
    X(SOFT_MAX,                S(0),  S(1) | S(2), DST_INPLACE, true,  chk_soft_max)           \
    X(SOFT_MAX_BACK,           S01,   0,           DST_INPLACE, true,  chk_soft_max_back)      \
    X(ROPE,                    S01,   S(2),        DST_INPLACE, true,  chk_rope)               \
    X(ROPE_BACK,               S01,   S(2),        DST_INPLACE, true,  chk_rope)               \
    X(CLAMP,                   S(0),  0,           DST_INPLACE, true,  chk_same_as_src0)       \
    X(CONV_TRANSPOSE_1D,       S01,   0,           DST_FRESH,   true,  chk_conv_transpose_1d)  \
    X(IM2COL,                  S01,   0,           DST_FRESH,   true,  chk_im2col)             \
    X(IM2COL_BACK,             S01,   0,           DST_FRESH,   true,  chk_im2col_back)        \
    X(IM2COL_3D,               S01,   0,           DST_FRESH,   true,  chk_im2col_3d)          \
    X(COL2IM_1D,               S(0),  0,           DST_FRESH,   true,  chk_col2im_1d)          \
    X(CONV_2D,                 S01,   0,           DST_FRESH,   true,  chk_conv_2d)            \
    X(CONV_3D,                 S01,   0,           DST_FRESH,   true,  chk_conv_3d)            \
    X(CONV_2D_DW,              S01,   0,           DST_NONE,    true,  chk_conv_2d_dw)         \
    X(CONV_TRANSPOSE_2D,       S01,   0,           DST_FRESH,   true,  chk_conv_transpose_2d)  \
    X(POOL_1D,                 S(0),  0,           DST_FRESH,   true,  chk_pool_1d)            \
    X(POOL_2D,                 S(0),  0,           DST_FRESH,   true,  chk_pool_2d)            \
    X(POOL_2D_BACK,            S01,   0,           DST_FRESH,   true,  chk_pool_2d_back)       \
    X(UPSCALE,                 S(0),  0,           DST_FRESH,   true,  chk_upscale)            \
    X(PAD,                     S(0),  0,           DST_FRESH,   true,  chk_pad)                \
    X(PAD_REFLECT_1D,          S(0),  0,           DST_FRESH,   true,  chk_pad_reflect_1d)     \
    X(ROLL,                    S(0),  0,           DST_FRESH,   true,  chk_roll)               \
    X(ARANGE,                  0,     0,           DST_FRESH,   true,  chk_arange)             \
    X(TIMESTEP_EMBEDDING,      S(0),  0,           DST_FRESH,   true,  chk_timestep_embedding) \
    X(ARGSORT,                 S(0),  0,           DST_FRESH,   true,  chk_argsort)            \
    X(TOP_K,                   S(0),  0,           DST_FRESH,   true,  chk_top_k)              \
    X(LEAKY_RELU,              S(0),  0,           DST_INPLACE, true,  chk_leaky_relu)         \
    X(TRI,                     S(0),  0,           DST_FRESH,   true,  chk_tri)                \
    X(FILL,                    S(0),  0,           DST_INPLACE, true,  chk_fill)               \
    X(FLASH_ATTN_EXT,          S012,  S(3) | S(4), DST_FRESH,   true,  chk_flash_attn_ext)     \
    X(FLASH_ATTN_BACK,         0,     0,           DST_NONE,    true,  NULL)                   \
    X(SSM_CONV,                S01,   0,           DST_FRESH,   true,  chk_ssm_conv)           \
    X(SSM_SCAN,                SN(7), 0,           DST_FRESH,   true,  chk_ssm_scan)           \
    X(WIN_PART,                S(0),  0,           DST_FRESH,   true,  chk_win_part)           \
    X(WIN_UNPART,              S(0),  0,           DST_FRESH,   true,  chk_win_unpart)         \
    X(GET_REL_POS,             S(0),  0,           DST_FRESH,   true,  chk_get_rel_pos)        \
    X(ADD_REL_POS,             S012,  0,           DST_INPLACE, true,  chk_add_rel_pos)        \
    X(RWKV_WKV6,               SN(6), 0,           DST_FRESH,   true,  chk_rwkv_wkv6)          \
    X(GATED_LINEAR_ATTN,       SN(5), 0,           DST_FRESH,   true,  chk_gla)                \
    X(RWKV_WKV7,               SN(7), 0,           DST_FRESH,   true,  chk_rwkv_wkv7)          \
    X(SOLVE_TRI,               S01,   0,           DST_FRESH,   true,  chk_solve_tri)          \
    X(GATED_DELTA_NET,         SN(6), 0,           DST_FRESH,   true,  chk_gated_delta_net)    \
    X(LIGHTNING_INDEXER,       SN(4), 0,           DST_FRESH,   true,  chk_lightning_indexer)  \
    X(DSV4_HC_COMB,            S012,  0,           DST_FRESH,   true,  chk_dsv4_hc_comb)       \
    X(DSV4_HC_PRE,             S01,   0,           DST_FRESH,   true,  chk_dsv4_hc_pre)        \
    X(DSV4_HC_POST,            S012,  S(3),        DST_FRESH,   true,  chk_dsv4_hc_post)       \
    X(UNARY,                   S(0),  0,           DST_INPLACE, true,  chk_unary)              \
    X(MAP_CUSTOM1,             0,     0,           DST_NONE,    true,  NULL)                   \
    X(MAP_CUSTOM2,             0,     0,           DST_NONE,    true,  NULL)                   \
    X(MAP_CUSTOM3,             0,     0,           DST_NONE,    true,  NULL)                   \
    X(CUSTOM,                  0,     0,           DST_NONE,    true,  NULL)                   \
    X(CROSS_ENTROPY_LOSS,      S01,   0,           DST_FRESH,   true,  chk_cross_entropy_loss) \
    X(CROSS_ENTROPY_LOSS_BACK, S012,  0,           DST_FRESH,   true,  chk_ce_loss_back)       \
    X(OPT_STEP_ADAMW,          SN(5), 0,           DST_INPLACE, true,  chk_opt_step_adamw)     \
    X(OPT_STEP_SGD,            S012,  0,           DST_INPLACE, true,  chk_opt_step_sgd)       \
    X(GLU,                     S(0),  S(1),        DST_FRESH,   true,  chk_glu)

#define VO_COUNT_ONE(op, req, opt, dst, compute, check) +1
#define VO_ENTRY(op, req, opt, dst, compute, check) \
    [GGML_OP_##op] = {#op, (req), (opt), (dst), (compute), (check)},

static const struct op_rule RULES[GGML_OP_COUNT] = {VO_OPS(VO_ENTRY)};

_Static_assert(0 VO_OPS(VO_COUNT_ONE) == GGML_OP_COUNT,
               "the rule table must have exactly one entry per ggml op");

/* Why a refused op is refused. */
static const char *refusal(enum ggml_op op)
{
    switch (op) {
        case GGML_OP_FLASH_ATTN_BACK:
            return "not constructible (ggml_flash_attn_back aborts)";
        case GGML_OP_MAP_CUSTOM1:
        case GGML_OP_MAP_CUSTOM2:
        case GGML_OP_MAP_CUSTOM3:
        case GGML_OP_CUSTOM:
            return "refused: op_params carry a function pointer";
        default:
            return "refused";
    }
}

/* Test hook, not in the header: the table's name for op (< 0 or >= GGML_OP_COUNT: NULL), so a
 * unit test can check that every op has a rule. */
const char *vgpu_validate_op_rule_name(int op);

const char *vgpu_validate_op_rule_name(int op)
{
    if (op < 0 || op >= GGML_OP_COUNT) {
        return NULL;
    }
    return RULES[op].name;
}

/* ---- entry point ---------------------------------------------------------------------------- */

/* Checks x (named what) has a valid type and an element count that fits in int64. */
static bool check_tensor_basics(struct vo *v, const char *what, const struct ggml_tensor *x)
{
    REQ((int) x->type >= 0 && x->type < GGML_TYPE_COUNT && ggml_blck_size(x->type) > 0,
        "%s type %d invalid", what, (int) x->type);
    for (int i = 0; i < 4; i++) {
        REQ(x->ne[i] >= 0, "%s ne%d " I64 " negative", what, i, x->ne[i]);
    }
    REQ(nel_fits(x), "%s element count overflows", what);
    return true;
}

bool vgpu_validate_op(const struct ggml_tensor *t, char *why, size_t why_size)
{
    struct vo vv = {t, "?", why, why_size};
    struct vo *v = &vv;
    if (why != NULL && why_size > 0) {
        why[0] = '\0';
    }
    if (t == NULL) {
        return fail(v, "NULL tensor");
    }
    char op_num[24];
    snprintf(op_num, sizeof op_num, "op %d", (int) t->op);
    v->op = op_num;
    REQ((int) t->op >= 0 && t->op < GGML_OP_COUNT, "out of range (GGML_OP_COUNT %d)", GGML_OP_COUNT);
    const struct op_rule *r = &RULES[t->op];
    if (r->name == NULL) { /* unreachable: the table is complete */
        return fail(v, "op %d has no rule", (int) t->op);
    }
    v->op = r->name;
    if (r->check == NULL) {
        return fail(v, "%s", refusal(t->op));
    }

    if (!check_tensor_basics(v, "dst", t)) {
        return false;
    }
    if (t->view_src != NULL && !check_tensor_basics(v, "view_src", t->view_src)) {
        return false;
    }
    for (int i = 0; i < GGML_MAX_SRC; i++) {
        const struct ggml_tensor *s = t->src[i];
        const uint16_t            bit = S(i);
        if (s == NULL) {
            REQ(!(r->req & bit), "required src%d missing", i);
            continue;
        }
        REQ((r->req | r->opt) & bit, "unexpected src%d", i);
        char what[16];
        snprintf(what, sizeof what, "src%d", i);
        if (!check_tensor_basics(v, what, s)) {
            return false;
        }
    }

    if (r->compute) {
        if (!check_layout_sanity(v, "dst", t)) {
            return false;
        }
        for (int i = 0; i < GGML_MAX_SRC; i++) {
            if (t->src[i] != NULL) {
                char what[16];
                snprintf(what, sizeof what, "src%d", i);
                if (!check_layout_sanity(v, what, t->src[i])) {
                    return false;
                }
            }
        }
    }

    switch (r->dst) {
        case DST_NONE:
            break;
        case DST_FRESH:
            if (!dst_fresh(v)) {
                return false;
            }
            break;
        case DST_INPLACE:
            if (!dst_fresh_or_view_of(v, t->src[0])) {
                return false;
            }
            break;
    }
    return r->check(v, t);
}
