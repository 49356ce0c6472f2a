/*
 * Index guard: checks of index data before the kernels use it; contracts and the design in
 * index-guard.h.
 */
#include "index-guard.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "ggml-impl.h"
#include "graph.h"
#include "kernel-cpu.h"
#include "tensor.h"

/* One index operand of one node. */
struct use {
    uint32_t pos;    /* the consumer's position in the node list */
    uint32_t x;      /* the index tensor (index into g->tensors) */
    uint32_t slot;   /* its src slot in the consumer */
    int32_t  last_w; /* last node before pos that writes any index byte, -1: none */
    int32_t  next_w; /* first node after pos that writes any (non-CPU devices only), -1: none */
    int32_t  chk;    /* its check (index into checks before they are sorted), -1: provable */
    int64_t  bound;  /* every value must lie in [0, bound) */
    uint64_t lo, hi; /* the index bytes, in the graph's address space */
};

/* One group of uses checked together at run time. */
struct check {
    uint32_t at;     /* 0: before the compute; else the position of the segment it precedes */
    uint32_t x;      /* the index tensor */
    uint32_t node;   /* the consumer with the smallest bound (for the log line) */
    int32_t  shadow; /* the private copy the consumers read, -1: none (checked in place) */
    bool     on_dev; /* the copy is in device memory, uploaded from its staging after the check */
    const struct vgpu_buffer *xbuf; /* where the index bytes are (captures, vgpu_captures_find) */
    uint64_t xoff;
    size_t   stage;  /* offset in shadow_mem of the checked values (a host copy's data itself) */
    int64_t  bound;  /* the smallest bound of the group */
};

/* A byte range some node writes. */
struct ival {
    uint32_t pos;
    uint64_t lo, hi;
};

/* A buffer's place in the graph's address space. */
struct bufbase {
    uintptr_t key; /* the struct vgpu_buffer */
    uint64_t  base;
};

struct vgpu_index_guard {
    bool                          planned;
    struct vgpu_index_guard_stats stats;

    struct check *checks; /* sorted by `at` */
    uint32_t      n_checks, cap_checks;
    uint32_t     *splits; /* positions where a new segment starts, ascending, all > 0 */
    uint32_t      n_splits, cap_splits;
    uint64_t     *seg_uid; /* n_splits + 1 */
    uint32_t      cap_uid;

    struct ggml_tensor *shadows; /* exactly sized per plan: consumers point into it */
    uint32_t            n_shadows;
    uint8_t            *shadow_mem; /* host copies, and the staging of device copies */
    size_t              shadow_cap;
    /* Device memory of the device copies, kept across plans of this storage while it fits. */
    ggml_backend_buffer_t dev_buf;
    ggml_backend_t        dev_be;   /* synchronized before dev_buf goes: a compute may read it */
    bool                  staged;   /* uploads from shadow_mem were queued ... */
    uint64_t              staged_epoch; /* ... before this many vgpu_ctx_async_wait calls */
    uint64_t             *dev_acct; /* the context's bytes_used, which dev_buf is charged to */

    /* planning scratch, kept */
    struct use     *uses;
    uint32_t        n_uses, cap_uses;
    struct ival    *ivals;
    uint32_t        n_ivals, cap_ivals;
    uint64_t       *coords;
    size_t          cap_coords;
    int32_t        *tree; /* 2 x 4 x leaves: max, tag */
    size_t          cap_tree;
    struct bufbase *bases;
    uint32_t        n_bases, cap_bases;
};

/* ---- small helpers ------------------------------------------------------------------------------ */

/* Grows *p (elements of `size` bytes) to hold at least n; false on overflow or no memory. */
static bool grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return true;
    size_t c = *cap ? *cap : 16;
    while (c < n) {
        if (c > SIZE_MAX / 2)
            return false;
        c *= 2;
    }
    if (c > SIZE_MAX / size)
        return false;
    void *q = realloc(*p, c * size);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

/* Same for a uint32_t capacity. */
static bool grow32(void **p, uint32_t *cap, size_t n, size_t size)
{
    size_t c = *cap;
    if (n > UINT32_MAX)
        return false;
    if (!grow(p, &c, n, size))
        return false;
    *cap = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
    return true;
}

void vgpu_index_guard_reset(struct vgpu_index_guard *ig)
{
    if (!ig)
        return;
    ig->planned = false;
    memset(&ig->stats, 0, sizeof(ig->stats));
    ig->n_checks = 0;
    ig->n_splits = 0;
    ig->n_shadows = 0;
    ig->n_uses = 0;
    ig->n_ivals = 0;
    ig->n_bases = 0;
}

/* Releases the device copies' memory, once no queued work can read it. */
static void drop_dev_buf(struct vgpu_index_guard *ig)
{
    if (!ig->dev_buf)
        return;
    if (ig->dev_be)
        ggml_backend_synchronize(ig->dev_be);
    if (ig->dev_acct)
        *ig->dev_acct -= ggml_backend_buffer_get_size(ig->dev_buf);
    ggml_backend_buffer_free(ig->dev_buf);
    ig->dev_buf = NULL;
    ig->dev_be = NULL;
}

void vgpu_index_guard_free(struct vgpu_index_guard *ig)
{
    if (!ig)
        return;
    drop_dev_buf(ig);
    free(ig->checks);
    free(ig->splits);
    free(ig->seg_uid);
    free(ig->shadows);
    free(ig->shadow_mem);
    free(ig->uses);
    free(ig->ivals);
    free(ig->coords);
    free(ig->tree);
    free(ig->bases);
    free(ig);
}

struct vgpu_index_guard_stats vgpu_index_guard_stats(const struct vgpu_index_guard *ig)
{
    struct vgpu_index_guard_stats s;
    memset(&s, 0, sizeof(s));
    if (ig && ig->planned)
        s = ig->stats;
    return s;
}

/*
 * The index operand of node t, if its op has one: the src slot and the exclusive bound of its
 * values (see the table in index-guard.h). False for every other op.
 */
static bool index_operand(const struct ggml_tensor *t, uint32_t *slot, int64_t *bound)
{
    switch (t->op) {
    case GGML_OP_GET_ROWS:
        *slot = 1;
        *bound = t->src[0]->ne[1];
        return true;
    case GGML_OP_GET_ROWS_BACK:
    case GGML_OP_SET_ROWS:
        *slot = 1;
        *bound = t->ne[1];
        return true;
    case GGML_OP_MUL_MAT_ID:
        *slot = 2;
        *bound = t->src[0]->ne[2];
        return true;
    case GGML_OP_ADD_ID:
        *slot = 2;
        *bound = t->src[1]->ne[1];
        return true;
    case GGML_OP_SSM_SCAN:
        *slot = 6;
        *bound = t->src[0]->ne[3];
        return true;
    default:
        return false;
    }
}

/*
 * True for ops whose kernels (CPU and CUDA) read the index tensor as a packed row (element i
 * at i * element size), whatever its nb[0] says.
 */
static bool reads_packed_row(enum ggml_op op)
{
    return op == GGML_OP_MUL_MAT_ID || op == GGML_OP_ADD_ID || op == GGML_OP_SSM_SCAN ||
           op == GGML_OP_GET_ROWS_BACK;
}

static bool op_is_layout_only(enum ggml_op op)
{
    return op == GGML_OP_NONE || op == GGML_OP_VIEW || op == GGML_OP_RESHAPE || op == GGML_OP_PERMUTE ||
           op == GGML_OP_TRANSPOSE;
}

/*
 * The tensors whose bytes node t writes: its own, plus the sources the optimiser steps update
 * in place (AdamW's parameter and moments, SGD's parameter). Returns how many (<= 4).
 */
static int node_writes(const struct ggml_tensor *t, const struct ggml_tensor *out[4])
{
    int n = 0;
    if (op_is_layout_only(t->op))
        return 0;
    out[n++] = t;
    if (t->op == GGML_OP_OPT_STEP_ADAMW) {
        out[n++] = t->src[0];
        out[n++] = t->src[2];
        out[n++] = t->src[3];
    } else if (t->op == GGML_OP_OPT_STEP_SGD) {
        out[n++] = t->src[0];
    }
    return n;
}

/*
 * The bytes a node writes into tensor w (described by wi): its extent or, for a tensor with
 * its own allocation in a buffer type that pads (get_alloc_size, e.g. CUDA's quantized rows),
 * that allocation, whichever is larger: what a kernel may touch.
 */
static uint64_t write_extent(const struct ggml_tensor *w, const struct vgpu_tinfo *wi)
{
    uint64_t n = wi->extent;
    ggml_backend_buffer_type_t buft = wi->buf->buf->buft;
    if (!w->view_src && buft && buft->iface.get_alloc_size) {
        uint64_t a = buft->iface.get_alloc_size(buft, w);
        if (a > n && a <= wi->buf->size - wi->off) /* checked at build; never past the buffer */
            n = a;
    }
    return n;
}

static int cmp_bufbase(const void *a, const void *b)
{
    const struct bufbase *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Uses grouped by index tensor, then last writer, then position. */
static int cmp_use_group(const void *a, const void *b)
{
    const struct use *x = a, *y = b;
    if (x->x != y->x)
        return x->x < y->x ? -1 : 1;
    if (x->last_w != y->last_w)
        return x->last_w < y->last_w ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos ? 1 : 0;
}

static int cmp_check(const void *a, const void *b)
{
    const struct check *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at ? 1 : 0;
}

/* ---- the graph's address space ----------------------------------------------------------------- */

/*
 * Every buffer the graph touches gets a disjoint range [base, base + size] of one 64-bit space,
 * so byte ranges of different buffers never compare as overlapping (device pointers cannot be
 * used: some backends give every buffer the same nominal base).
 */
static uint32_t build_bases(struct vgpu_ctx *ctx, struct vgpu_index_guard *ig, const struct vgpu_tinfo *info,
                            uint32_t n_tensors)
{
    ig->n_bases = 0;
    for (uint32_t i = 0; i < n_tensors; i++) {
        if (!info[i].buf)
            continue;
        if (!grow32((void **)&ig->bases, &ig->cap_bases, (size_t)ig->n_bases + 1, sizeof(*ig->bases)))
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: out of host memory");
        ig->bases[ig->n_bases++] = (struct bufbase){ (uintptr_t)info[i].buf, 0 };
    }
    if (ig->n_bases > 1) /* qsort's base must not be NULL, even for 0 elements */
        qsort(ig->bases, ig->n_bases, sizeof(*ig->bases), cmp_bufbase);
    uint32_t n = 0;
    uint64_t next = 0;
    for (uint32_t i = 0; i < ig->n_bases; i++) {
        if (n && ig->bases[n - 1].key == ig->bases[i].key)
            continue;
        const struct vgpu_buffer *b = (const struct vgpu_buffer *)ig->bases[i].key;
        ig->bases[n].key = ig->bases[i].key;
        ig->bases[n].base = next;
        if (__builtin_add_overflow(next, b->size, &next) || __builtin_add_overflow(next, 1, &next))
            return vgpu_fail(ctx, VGPU_INVALID, "index guard: the graph's buffers are too large");
        n++;
    }
    ig->n_bases = n;
    return VGPU_OK;
}

/* The address of tensor i's first byte (it has a buffer). */
static uint64_t vaddr(const struct vgpu_index_guard *ig, const struct vgpu_tinfo *ti)
{
    struct bufbase key = { (uintptr_t)ti->buf, 0 };
    const struct bufbase *b = bsearch(&key, ig->bases, ig->n_bases, sizeof(key), cmp_bufbase);
    return b->base + ti->off; /* every buffer of the graph is in the table */
}

/* ---- last / next writer: a sweep over a max segment tree ---------------------------------------- */

/*
 * A segment tree over the elementary intervals between sorted coordinates, with range "raise to
 * at least v" and range maximum. Sweeping the nodes in order and raising the ranges each node
 * writes to its position + 1, a query over an index range just before its consumer gives the
 * last writer of any of its bytes; sweeping backwards with n - position gives the next one.
 */
struct segtree {
    int32_t *mx; /* max over the subtree, tags included */
    int32_t *tg; /* raise applied to the whole subtree */
};

static void st_raise(struct segtree *t, uint32_t node, uint32_t l, uint32_t r, uint32_t ql, uint32_t qr, int32_t v)
{
    if (qr <= l || r <= ql)
        return;
    if (ql <= l && r <= qr) {
        if (t->tg[node] < v)
            t->tg[node] = v;
        if (t->mx[node] < v)
            t->mx[node] = v;
        return;
    }
    uint32_t m = l + (r - l) / 2;
    st_raise(t, 2 * node, l, m, ql, qr, v);
    st_raise(t, 2 * node + 1, m, r, ql, qr, v);
    int32_t c = t->mx[2 * node] > t->mx[2 * node + 1] ? t->mx[2 * node] : t->mx[2 * node + 1];
    t->mx[node] = c > t->tg[node] ? c : t->tg[node];
}

static int32_t st_max(const struct segtree *t, uint32_t node, uint32_t l, uint32_t r, uint32_t ql, uint32_t qr)
{
    if (qr <= l || r <= ql)
        return 0;
    if (ql <= l && r <= qr)
        return t->mx[node];
    uint32_t m = l + (r - l) / 2;
    int32_t a = st_max(t, 2 * node, l, m, ql, qr);
    int32_t b = st_max(t, 2 * node + 1, m, r, ql, qr);
    int32_t c = a > b ? a : b;
    return c > t->tg[node] ? c : t->tg[node];
}

/* Index of coordinate v in the sorted unique coords (it is there). */
static uint32_t coord_index(const uint64_t *coords, uint32_t n, uint64_t v)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (coords[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Fills last_w (and, if `next`, next_w) of every use. ivals are sorted by position, uses too.
 */
static uint32_t find_writers(struct vgpu_ctx *ctx, struct vgpu_index_guard *ig, uint32_t n_nodes, bool next)
{
    size_t nc = 2 * ((size_t)ig->n_ivals + ig->n_uses);
    if (!grow((void **)&ig->coords, &ig->cap_coords, nc, sizeof(uint64_t)))
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: out of host memory");
    size_t k = 0;
    for (uint32_t i = 0; i < ig->n_ivals; i++) {
        ig->coords[k++] = ig->ivals[i].lo;
        ig->coords[k++] = ig->ivals[i].hi;
    }
    for (uint32_t i = 0; i < ig->n_uses; i++) {
        ig->coords[k++] = ig->uses[i].lo;
        ig->coords[k++] = ig->uses[i].hi;
    }
    if (k > 1)
        qsort(ig->coords, k, sizeof(uint64_t), cmp_u64);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (!m || ig->coords[m - 1] != ig->coords[i])
            ig->coords[m++] = ig->coords[i];
    }
    if (m > UINT32_MAX / 8)
        return vgpu_fail(ctx, VGPU_QUOTA, "index guard: graph too large");
    uint32_t nm = (uint32_t)m;
    uint32_t leaves = nm - 1; /* >= 1: every range is non-empty */
    size_t tree_n = 4 * (size_t)leaves + 4;
    if (!grow((void **)&ig->tree, &ig->cap_tree, 2 * tree_n, sizeof(int32_t)))
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: out of host memory");
    struct segtree st = { ig->tree, ig->tree + tree_n };

    /* Forward: last writer before each use. */
    memset(ig->tree, 0, 2 * tree_n * sizeof(int32_t));
    uint32_t u = 0, w = 0;
    for (uint32_t p = 0; p < n_nodes; p++) {
        for (; u < ig->n_uses && ig->uses[u].pos == p; u++) {
            struct use *us = &ig->uses[u];
            uint32_t a = coord_index(ig->coords, nm, us->lo), b = coord_index(ig->coords, nm, us->hi);
            us->last_w = st_max(&st, 1, 0, leaves, a, b) - 1;
            us->next_w = -1;
        }
        for (; w < ig->n_ivals && ig->ivals[w].pos == p; w++) {
            uint32_t a = coord_index(ig->coords, nm, ig->ivals[w].lo), b = coord_index(ig->coords, nm, ig->ivals[w].hi);
            st_raise(&st, 1, 0, leaves, a, b, (int32_t)p + 1);
        }
    }
    if (!next)
        return VGPU_OK;

    /* Backward: first writer after each use (value n - position: the larger, the earlier). */
    memset(ig->tree, 0, 2 * tree_n * sizeof(int32_t));
    int64_t ui = (int64_t)ig->n_uses - 1, wi = (int64_t)ig->n_ivals - 1;
    for (int64_t p = (int64_t)n_nodes - 1; p >= 0; p--) {
        for (; ui >= 0 && ig->uses[ui].pos == (uint32_t)p; ui--) {
            struct use *us = &ig->uses[ui];
            uint32_t a = coord_index(ig->coords, nm, us->lo), b = coord_index(ig->coords, nm, us->hi);
            int32_t v = st_max(&st, 1, 0, leaves, a, b);
            us->next_w = v ? (int32_t)n_nodes - v : -1;
        }
        for (; wi >= 0 && ig->ivals[wi].pos == (uint32_t)p; wi--) {
            uint32_t a = coord_index(ig->coords, nm, ig->ivals[wi].lo);
            uint32_t b = coord_index(ig->coords, nm, ig->ivals[wi].hi);
            st_raise(&st, 1, 0, leaves, a, b, (int32_t)(n_nodes - (uint32_t)p));
        }
    }
    return VGPU_OK;
}

/* ---- planning ------------------------------------------------------------------------------------ */

/*
 * True if the index bytes of `us` are provably in range: they all come from producer node P
 * (the last writer before the consumer), an ARGSORT, TOP_K or ARGMAX whose packed I32 result
 * contains them at whole-element positions, and the producer's value range fits the bound.
 * The caller has excluded guest-shared memory and untrusted devices.
 */
static bool provable(const struct vgpu_index_guard *ig, const struct ggml_tensor *P, const struct vgpu_tinfo *pinfo,
                     const struct ggml_tensor *X, const struct use *us, int64_t bound)
{
    int64_t hi;
    switch (P->op) {
    case GGML_OP_ARGSORT:
    case GGML_OP_TOP_K:
        hi = P->src[0]->ne[0];
        break;
    case GGML_OP_ARGMAX:
        hi = P->src[0]->ne[0] > 1 ? P->src[0]->ne[0] : 1;
        break;
    default:
        return false;
    }
    if (P->type != GGML_TYPE_I32 || X->type != GGML_TYPE_I32 || hi > bound || !pinfo->buf)
        return false;
    uint64_t plo = vaddr(ig, pinfo), phi = plo + pinfo->extent;
    if (us->lo < plo || us->hi > phi || (us->lo - plo) % sizeof(int32_t) != 0)
        return false;
    for (int i = 0; i < GGML_MAX_DIMS; i++) {
        if (X->ne[i] > 1 && X->nb[i] % sizeof(int32_t) != 0)
            return false;
    }
    return true;
}

/* The layout rules of an index tensor (see the comment at the call). */
static uint32_t check_index_layout(struct vgpu_ctx *ctx, const struct ggml_tensor *t, uint32_t pos,
                                   const struct ggml_tensor *X, const struct vgpu_tinfo *xi)
{
    const size_t es = ggml_type_size(X->type);
    if (X->type != GGML_TYPE_I32 && X->type != GGML_TYPE_I64)
        return vgpu_fail(ctx, VGPU_INVALID, "node %u (%s '%s'): index tensor '%s' has type %s", pos, vgpu_op_name(t),
                         t->name, X->name, ggml_type_name(X->type));
    if (xi->off % es != 0)
        return vgpu_fail(ctx, VGPU_INVALID, "node %u (%s '%s'): index tensor '%s' is not aligned to its elements",
                         pos, vgpu_op_name(t), t->name, X->name);
    for (int i = 0; i < GGML_MAX_DIMS; i++) {
        if (X->ne[i] > 1 && X->nb[i] % es != 0)
            return vgpu_fail(ctx, VGPU_INVALID, "node %u (%s '%s'): index tensor '%s' has nb[%d] = %zu, not a "
                             "multiple of its element size", pos, vgpu_op_name(t), t->name, X->name, i, X->nb[i]);
    }
    if (reads_packed_row(t->op) && X->ne[0] > 1 && X->nb[0] != es)
        return vgpu_fail(ctx, VGPU_INVALID, "node %u (%s '%s'): index tensor '%s' elements are not adjacent (the "
                         "kernels read them packed)", pos, vgpu_op_name(t), t->name, X->name);
    return VGPU_OK;
}

static uint32_t add_split(struct vgpu_ctx *ctx, struct vgpu_index_guard *ig, uint32_t pos)
{
    if (!grow32((void **)&ig->splits, &ig->cap_splits, (size_t)ig->n_splits + 1, sizeof(uint32_t)))
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: out of host memory");
    ig->splits[ig->n_splits++] = pos;
    return VGPU_OK;
}

/*
 * Gives every device copy of the plan its place in one buffer of device dev's own type, reusing
 * the storage's buffer when it is of that type and large enough. Its bytes count against the
 * context's buffer quota like a guest buffer's.
 */
static uint32_t place_dev_copies(struct vgpu_ctx *ctx, struct vgpu_index_guard *ig, uint32_t dev)
{
    const struct vgpu_device *d = &ctx->devices[dev];
    ggml_backend_t be;
    uint32_t r = vgpu_ctx_backend(ctx, dev, &be);
    if (r != VGPU_OK)
        return r;
    const size_t align = ggml_backend_buft_get_alignment(d->buft);
    size_t need = 0;
    for (uint32_t k = 0; k < ig->n_checks; k++) {
        const struct check *c = &ig->checks[k];
        if (c->shadow < 0 || !c->on_dev)
            continue;
        need = (need + align - 1) / align * align + ggml_backend_buft_get_alloc_size(d->buft, &ig->shadows[c->shadow]);
    }
    if (!ig->dev_buf || ig->dev_buf->buft != d->buft || ggml_backend_buffer_get_size(ig->dev_buf) < need) {
        /* Profiled with the release of the old one, which synchronizes the backend. */
        uint64_t t0 = vgpu_prof_now(&ctx->prof);
        drop_dev_buf(ig);
        if (need > ctx->quota.buffer_bytes || ctx->bytes_used > ctx->quota.buffer_bytes - need)
            return vgpu_fail(ctx, VGPU_QUOTA, "index guard: %zu bytes of device copies of index tensors exceed "
                             "the buffer quota", need);
        ig->dev_buf = ggml_backend_buft_alloc_buffer(d->buft, need);
        vgpu_prof_phase(&ctx->prof, VGPU_PROF_GUARD_ALLOC, t0);
        if (!ig->dev_buf)
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: no device memory for %zu bytes of index copies",
                             need);
        ggml_backend_buffer_set_usage(ig->dev_buf, GGML_BACKEND_BUFFER_USAGE_COMPUTE);
        ig->dev_acct = &ctx->bytes_used;
        ctx->bytes_used += ggml_backend_buffer_get_size(ig->dev_buf);
    }
    ig->dev_be = be;
    uint8_t *base = ggml_backend_buffer_get_base(ig->dev_buf);
    size_t off = 0;
    for (uint32_t k = 0; k < ig->n_checks; k++) {
        const struct check *c = &ig->checks[k];
        if (c->shadow < 0 || !c->on_dev)
            continue;
        struct ggml_tensor *s = &ig->shadows[c->shadow];
        off = (off + align - 1) / align * align;
        if (ggml_backend_tensor_alloc(ig->dev_buf, s, base + off) != GGML_STATUS_SUCCESS)
            return vgpu_fail(ctx, VGPU_BACKEND, "index guard: device copy of '%s' could not be placed", s->name);
        off += ggml_backend_buft_get_alloc_size(d->buft, s);
    }
    return VGPU_OK;
}

/* The plan's last step: segment boundaries sorted and unique, each segment with its own uid. */
static uint32_t finish_plan(struct vgpu_ctx *ctx, struct vgpu_graph *g, struct vgpu_index_guard *ig)
{
    const uint32_t n_nodes = g->n_nodes;
    if (ig->n_checks > 1)
        qsort(ig->checks, ig->n_checks, sizeof(*ig->checks), cmp_check);
    if (ig->n_splits > 1)
        qsort(ig->splits, ig->n_splits, sizeof(uint32_t), cmp_u32);
    uint32_t ns = 0;
    for (uint32_t i = 0; i < ig->n_splits; i++) {
        if (ig->splits[i] > 0 && ig->splits[i] < n_nodes && (!ns || ig->splits[ns - 1] != ig->splits[i]))
            ig->splits[ns++] = ig->splits[i];
    }
    ig->n_splits = ns;
    ig->stats.splits = ns;
    if (!grow32((void **)&ig->seg_uid, &ig->cap_uid, (size_t)ns + 1, sizeof(uint64_t)))
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: out of host memory");
    for (uint32_t i = 0; i <= ns; i++)
        ig->seg_uid[i] = ns ? ggml_graph_next_uid() : g->cgraph->uid;

    ig->planned = true;
    vgpu_log(ctx, VGPU_LOG_DEBUG,
             "index guard: %u index operands: %u provable, %u checked before compute, %u between segments, "
             "%u private copies (%u on the device), %u segment boundaries",
             ig->stats.uses, ig->stats.provable, ig->stats.inputs, ig->stats.segmented, ig->stats.shadows,
             ig->stats.dev_shadows, ig->stats.splits);
    return VGPU_OK;
}

uint32_t vgpu_index_guard_plan(struct vgpu_ctx *ctx, struct vgpu_graph *g, const struct vgpu_tinfo *info)
{
    if (!g->guard) {
        g->guard = calloc(1, sizeof(*g->guard));
        if (!g->guard)
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: out of host memory");
    }
    struct vgpu_index_guard *ig = g->guard;
    if (ig->staged && ig->staged_epoch == ctx->wait_epoch)
        vgpu_ctx_async_wait(ctx); /* queued uploads may still read the staging this plan reuses */
    ig->staged = false;
    vgpu_index_guard_reset(ig);
    struct ggml_tensor *T = g->tensors;
    struct ggml_tensor **nodes = g->cgraph->nodes;
    const uint32_t n_nodes = g->n_nodes;
    uint32_t r;

    /* The index operands. Their layout rules: every stride a multiple of the element size and
     * the data aligned to it (CUDA derives element strides by division and faults on
     * misaligned loads), and adjacent elements where the kernels read a packed row (the CPU
     * SSM_SCAN would GGML_ASSERT it; CUDA's ADD_ID and MUL_MAT_ID read the bytes the
     * check would not see otherwise). */
    for (uint32_t p = 0; p < n_nodes; p++) {
        const struct ggml_tensor *t = nodes[p];
        uint32_t slot;
        int64_t bound;
        if (!index_operand(t, &slot, &bound))
            continue;
        const struct ggml_tensor *X = t->src[slot];
        const uint32_t x = (uint32_t)(X - T);
        if (info[x].extent == 0)
            continue; /* no element: nothing is read */
        if ((r = check_index_layout(ctx, t, p, X, &info[x])) != VGPU_OK)
            return r;
        if (!grow32((void **)&ig->uses, &ig->cap_uses, (size_t)ig->n_uses + 1, sizeof(*ig->uses)))
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: out of host memory");
        ig->uses[ig->n_uses++] = (struct use){ p, x, slot, -1, -1, -1, bound, 0, 0 };
    }
    ig->stats.uses = ig->n_uses;

    /*
     * CPU nodes that must be computed in a graph of their own (kernel-cpu.h): a segment each.
     * ggml-cpu runs every node of a graph on the thread count of its most parallel node, and
     * sizes a node's work buffer by its own task count: alone, a one-task node runs on one
     * thread (ggml_graph_plan: n_threads = min(max_tasks, n_threads)).
     */
    const struct vgpu_device *d = &ctx->devices[g->dev];
    const bool cpu = ggml_backend_dev_type(d->dev) == GGML_BACKEND_DEVICE_TYPE_CPU;
    for (uint32_t p = 0; cpu && p < n_nodes; p++) {
        if (!vgpu_kernel_cpu_alone(nodes[p]))
            continue;
        if ((p > 0 && (r = add_split(ctx, ig, p)) != VGPU_OK) ||
            (p + 1 < n_nodes && (r = add_split(ctx, ig, p + 1)) != VGPU_OK))
            return r;
    }

    if (ig->n_uses == 0) {
        if (ig->n_splits == 0) {
            ig->planned = true;
            return VGPU_OK;
        }
        return finish_plan(ctx, g, ig);
    }

    if ((r = build_bases(ctx, ig, info, g->n_tensors)) != VGPU_OK)
        return r;
    for (uint32_t i = 0; i < ig->n_uses; i++) {
        struct use *us = &ig->uses[i];
        us->lo = vaddr(ig, &info[us->x]);
        us->hi = us->lo + info[us->x].extent;
    }
    /* What each node writes, in node order. */
    for (uint32_t p = 0; p < n_nodes; p++) {
        const struct ggml_tensor *wt[4];
        int n = node_writes(nodes[p], wt);
        for (int k = 0; k < n; k++) {
            const struct vgpu_tinfo *ti = &info[wt[k] - T];
            if (!ti->buf || ti->extent == 0)
                continue;
            if (!grow32((void **)&ig->ivals, &ig->cap_ivals, (size_t)ig->n_ivals + 1, sizeof(*ig->ivals)))
                return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: out of host memory");
            uint64_t lo = vaddr(ig, ti);
            ig->ivals[ig->n_ivals++] = (struct ival){ p, lo, lo + write_extent(wt[k], ti) };
        }
    }
    /* A consumer never writes its own index bytes (while its threads read them). */
    for (uint32_t i = 0; i < ig->n_uses; i++) {
        const struct use *us = &ig->uses[i];
        const struct ggml_tensor *t = nodes[us->pos];
        const struct ggml_tensor *wt[4];
        int n = node_writes(t, wt);
        for (int k = 0; k < n; k++) {
            const struct vgpu_tinfo *ti = &info[wt[k] - T];
            if (!ti->buf || ti->extent == 0)
                continue;
            uint64_t lo = vaddr(ig, ti), hi = lo + write_extent(wt[k], ti);
            if (lo < us->hi && us->lo < hi)
                return vgpu_fail(ctx, VGPU_INVALID, "node %u (%s '%s') writes over its own index tensor '%s'",
                                 us->pos, vgpu_op_name(t), t->name, T[us->x].name);
        }
    }

    if ((r = find_writers(ctx, ig, n_nodes, !cpu)) != VGPU_OK)
        return r;

    /*
     * Fused kernels on other devices: a boundary after a consumer whose indices are overwritten
     * soon. Not for graph inputs there: their consumers read a device copy that no node writes
     * (llama.cpp's allocator reuses the memory of the KV-cache row ids and of the output ids
     * right after their last reader; boundaries there would cut every decode graph in three).
     */
    const bool dev_copies = !cpu && d->buft;
    if (!cpu) {
        for (uint32_t i = 0; i < ig->n_uses; i++) {
            const struct use *us = &ig->uses[i];
            if (dev_copies && us->last_w < 0)
                continue;
            if (us->next_w >= 0 && (uint32_t)us->next_w <= us->pos + VGPU_INDEX_GUARD_FUSE_WINDOW &&
                us->pos + 1 < n_nodes && (r = add_split(ctx, ig, us->pos + 1)) != VGPU_OK)
                return r;
        }
    }

    /* Groups: the same index tensor with the same last writer share one check. */
    if (ig->n_uses > 1)
        qsort(ig->uses, ig->n_uses, sizeof(*ig->uses), cmp_use_group);
    size_t shadow_bytes = 0;
    for (uint32_t i = 0; i < ig->n_uses;) {
        uint32_t j = i;
        const struct use *first = &ig->uses[i];
        int64_t bound = first->bound;
        uint32_t node = first->pos;
        for (; j < ig->n_uses && ig->uses[j].x == first->x && ig->uses[j].last_w == first->last_w; j++) {
            if (ig->uses[j].bound < bound) {
                bound = ig->uses[j].bound;
                node = ig->uses[j].pos;
            }
        }
        const struct ggml_tensor *X = &T[first->x];
        const struct vgpu_tinfo *xi = &info[first->x];
        const bool shared = xi->buf->zero_copy;
        if (first->last_w >= 0 && cpu && !shared) {
            const struct ggml_tensor *P = nodes[first->last_w];
            if (provable(ig, P, &info[P - T], X, first, bound)) {
                ig->stats.provable++;
                i = j;
                continue;
            }
        }
        if (!grow32((void **)&ig->checks, &ig->cap_checks, (size_t)ig->n_checks + 1, sizeof(*ig->checks)))
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: out of host memory");
        for (uint32_t u = i; u < j; u++)
            ig->uses[u].chk = (int32_t)ig->n_checks;
        struct check *c = &ig->checks[ig->n_checks++];
        /* uses of a group are sorted by position: the first is the earliest consumer */
        c->at = first->last_w >= 0 ? first->pos : 0;
        c->x = first->x;
        c->node = node;
        c->bound = bound;
        c->shadow = -1;
        c->on_dev = dev_copies && first->last_w < 0;
        c->stage = 0;
        c->xbuf = xi->buf;
        c->xoff = xi->off;
        if (first->last_w >= 0) {
            ig->stats.segmented++;
            if ((r = add_split(ctx, ig, first->pos)) != VGPU_OK)
                return r;
        } else {
            ig->stats.inputs++;
        }
        if (shared || c->on_dev) {
            size_t bytes = (size_t)ggml_nelements(X) * ggml_type_size(X->type);
            c->shadow = (int32_t)ig->n_shadows++;
            c->stage = shadow_bytes;
            shadow_bytes += (bytes + 63) & ~(size_t)63;
            if (shadow_bytes > VGPU_INDEX_GUARD_MAX_SHADOW)
                return vgpu_fail(ctx, VGPU_QUOTA, "index guard: private copies of guest-shared index tensors "
                                 "exceed %llu bytes", (unsigned long long)VGPU_INDEX_GUARD_MAX_SHADOW);
        }
        i = j;
    }
    ig->stats.shadows = ig->n_shadows;

    /* Private copies: the consumers of a guest-shared index tensor, or of a graph input on a
     * device other than the CPU, read them instead. */
    if (ig->n_shadows) {
        free(ig->shadows);
        ig->shadows = calloc(ig->n_shadows, sizeof(struct ggml_tensor));
        if (!ig->shadows || !grow((void **)&ig->shadow_mem, &ig->shadow_cap, shadow_bytes, 1)) {
            ig->n_shadows = 0;
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: out of host memory");
        }
        for (uint32_t k = 0; k < ig->n_checks; k++) {
            const struct check *c = &ig->checks[k];
            if (c->shadow < 0)
                continue;
            const struct ggml_tensor *X = &T[c->x];
            struct ggml_tensor *s = &ig->shadows[c->shadow];
            size_t es = ggml_type_size(X->type);
            memset(s, 0, sizeof(*s));
            s->type = X->type;
            s->buffer = X->buffer; /* kernels that look at buffers see the original's */
            for (int i = 0; i < GGML_MAX_DIMS; i++)
                s->ne[i] = X->ne[i];
            s->nb[0] = es;
            for (int i = 1; i < GGML_MAX_DIMS; i++)
                s->nb[i] = s->nb[i - 1] * (size_t)s->ne[i - 1];
            s->op = GGML_OP_NONE;
            memcpy(s->name, X->name, sizeof(s->name));
            if (c->on_dev) {
                s->buffer = NULL; /* placed by place_dev_copies */
                ig->stats.dev_shadows++;
            } else {
                s->data = ig->shadow_mem + c->stage;
            }
        }
        if (ig->stats.dev_shadows && (r = place_dev_copies(ctx, ig, g->dev)) != VGPU_OK)
            return r;
        /* Redirect: every consumer in a shadowed group. */
        for (uint32_t u = 0; u < ig->n_uses; u++) {
            const struct use *us = &ig->uses[u];
            if (us->chk >= 0 && ig->checks[us->chk].shadow >= 0)
                nodes[us->pos]->src[us->slot] = &ig->shadows[ig->checks[us->chk].shadow];
        }
    }

    return finish_plan(ctx, g, ig);
}

/* ---- run time --------------------------------------------------------------------------------------- */

/* Reads element `e` (of size es) at p and reports whether it is in [0, bound). */
static inline bool in_range(const uint8_t *p, size_t es, int64_t bound, int64_t *v)
{
    if (es == sizeof(int32_t)) {
        int32_t x;
        memcpy(&x, p, sizeof(x));
        *v = x;
    } else {
        memcpy(v, p, sizeof(*v));
    }
    return *v >= 0 && *v < bound;
}

static uint32_t report(struct vgpu_ctx *ctx, const struct vgpu_graph *g, const struct check *c, int64_t v,
                       const int64_t i[4])
{
    const struct ggml_tensor *t = g->cgraph->nodes[c->node];
    return vgpu_fail(ctx, VGPU_INVALID,
                     "node %u (%s '%s'): index %" PRId64 " at [%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64
                     "] of '%s' is outside [0, %" PRId64 "); graph not computed past it",
                     c->node, vgpu_op_name(t), t->name, v, i[0], i[1], i[2], i[3], g->tensors[c->x].name, c->bound);
}

/*
 * Checks every element of the check's index tensor X against its bound. X's bytes are read once
 * into private memory: given as `fetched` (the whole extent, read by the caller), else read here
 * through the backend (ggml_backend_tensor_get: any buffer kind) into scratch, the whole extent
 * at once when it fits in VGPU_COPY_CHUNK, else row by row (element by element for rows larger
 * than that). With a private copy, each value read is also stored, packed, at the check's
 * staging offset: the copy itself, or what is uploaded to the device copy afterwards.
 */
static uint32_t run_check(struct vgpu_ctx *ctx, const struct vgpu_graph *g, const struct vgpu_index_guard *ig,
                          const struct check *c, const uint8_t *fetched)
{
    struct ggml_tensor *X = &g->tensors[c->x];
    const size_t es = ggml_type_size(X->type);
    const size_t extent = ggml_nbytes(X);
    uint8_t *out = c->shadow >= 0 ? ig->shadow_mem + c->stage : NULL;
    const bool whole = fetched || extent <= VGPU_COPY_CHUNK;
    uint8_t *scratch = NULL; /* reads into it; every read when the bytes are not `fetched` */
    if (!fetched) {
        scratch = vgpu_scratch_get(&ctx->copy, whole ? extent : VGPU_COPY_CHUNK);
        if (!scratch)
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "index guard: no memory to read index tensor '%s'", X->name);
        if (whole)
            ggml_backend_tensor_get(X, scratch, 0, extent);
    }
    const uint8_t *buf = fetched ? fetched : scratch;
    const size_t row_span = (size_t)(X->ne[0] - 1) * X->nb[0] + es;
    int64_t i[4], v;
    for (i[3] = 0; i[3] < X->ne[3]; i[3]++) {
        for (i[2] = 0; i[2] < X->ne[2]; i[2]++) {
            for (i[1] = 0; i[1] < X->ne[1]; i[1]++) {
                const size_t row = (size_t)i[1] * X->nb[1] + (size_t)i[2] * X->nb[2] + (size_t)i[3] * X->nb[3];
                const uint8_t *base = buf + (whole ? row : 0);
                const bool by_element = !whole && row_span > VGPU_COPY_CHUNK;
                if (!whole && !by_element)
                    ggml_backend_tensor_get(X, scratch, row, row_span);
                for (i[0] = 0; i[0] < X->ne[0]; i[0]++) {
                    const uint8_t *p = base + (size_t)i[0] * X->nb[0];
                    if (by_element) {
                        ggml_backend_tensor_get(X, scratch, row + (size_t)i[0] * X->nb[0], es);
                        p = buf;
                    }
                    if (!in_range(p, es, c->bound, &v))
                        return report(ctx, g, c, v, i);
                    if (out) {
                        memcpy(out, p, es);
                        out += es;
                    }
                }
            }
        }
    }
    return VGPU_OK;
}

/*
 * The bytes the guest last set into the index tensor of input check c, when they are captured
 * (context.h: nothing else has written that memory since) and the consumers read a device copy:
 * the check then needs no read-back. NULL otherwise.
 */
static const uint8_t *captured(const struct vgpu_ctx *ctx, const struct vgpu_graph *g, const struct check *c)
{
    if (!c->on_dev || c->shadow < 0)
        return NULL;
    return vgpu_captures_find(ctx, c->xbuf, c->xoff, ggml_nbytes(&g->tensors[c->x]));
}

/*
 * Input checks[0, n) on bytes read from the index tensors. When every index tensor is in a
 * buffer of the device's own type and all fit in one scratch chunk, they are read on the
 * backend's stream, ordered after the copies queued into them, with one wait for all; otherwise
 * queued copies land first and each is read synchronously.
 */
static uint32_t check_read_inputs(struct vgpu_ctx *ctx, const struct vgpu_graph *g,
                                  const struct vgpu_index_guard *ig, ggml_backend_t backend, uint32_t n)
{
    const ggml_backend_buffer_type_t buft = ctx->devices[g->dev].buft;
    size_t total = 0;
    bool fast = true;
    for (uint32_t k = 0; k < n && fast; k++) {
        const struct ggml_tensor *X = &g->tensors[ig->checks[k].x];
        fast = X->buffer && X->buffer->buft == buft;
        total += (ggml_nbytes(X) + 63) & ~(size_t)63;
    }
    fast = fast && total <= VGPU_COPY_CHUNK;
    uint8_t *buf = fast ? vgpu_scratch_get(&ctx->copy, total) : NULL;
    if (buf) {
        size_t off = 0;
        for (uint32_t k = 0; k < n; k++) {
            struct ggml_tensor *X = &g->tensors[ig->checks[k].x];
            ggml_backend_tensor_get_async(backend, X, buf + off, 0, ggml_nbytes(X));
            off += (ggml_nbytes(X) + 63) & ~(size_t)63;
        }
        ggml_backend_synchronize(backend);
    } else {
        /* ggml_backend_tensor_get may copy on another stream than the one queued copies use */
        vgpu_ctx_async_wait(ctx);
    }
    size_t off = 0;
    for (uint32_t k = 0; k < n; k++) {
        const struct check *c = &ig->checks[k];
        uint32_t r = run_check(ctx, g, ig, c, buf ? buf + off : NULL);
        if (r != VGPU_OK)
            return r;
        off += (ggml_nbytes(&g->tensors[c->x]) + 63) & ~(size_t)63;
    }
    return VGPU_OK;
}

/*
 * The checks that run before the compute (checks[0, n), graph inputs): on the bytes the guest
 * set when every one of them has them captured (a llama.cpp decode step sets its indices just
 * before the compute: no read-back, no wait), else on bytes read back (check_read_inputs).
 * Device copies are then uploaded on the backend's stream, ahead of the kernels that read them:
 * what the consumers read is what was checked.
 */
static uint32_t run_input_checks(struct vgpu_ctx *ctx, const struct vgpu_graph *g, struct vgpu_index_guard *ig,
                                 ggml_backend_t backend, uint32_t n)
{
    /* The staging is rewritten below: uploads queued from it by an earlier compute that nothing
     * has waited for yet (a NO_WAIT batch, two computes in one batch) must have read it. */
    if (ig->staged && ig->staged_epoch == ctx->wait_epoch)
        vgpu_ctx_async_wait(ctx);
    ig->staged = false;
    uint32_t r = VGPU_OK, k = 0;
    while (k < n && captured(ctx, g, &ig->checks[k]))
        k++;
    if (k < n) {
        r = check_read_inputs(ctx, g, ig, backend, n);
    } else {
        for (k = 0; k < n && r == VGPU_OK; k++)
            r = run_check(ctx, g, ig, &ig->checks[k], captured(ctx, g, &ig->checks[k]));
    }
    if (r != VGPU_OK)
        return r;
    for (k = 0; k < n; k++) {
        const struct check *c = &ig->checks[k];
        if (c->shadow >= 0 && c->on_dev) {
            struct ggml_tensor *s = &ig->shadows[c->shadow];
            ggml_backend_tensor_set_async(backend, s, ig->shadow_mem + c->stage, 0, ggml_nbytes(s));
            ig->staged = true;
            ig->staged_epoch = ctx->wait_epoch;
        }
    }
    return VGPU_OK;
}

uint32_t vgpu_index_guard_compute(struct vgpu_ctx *ctx, struct vgpu_graph *g, ggml_backend_t backend,
                                  enum ggml_status *status)
{
    struct vgpu_index_guard *ig = g->guard;
    *status = GGML_STATUS_SUCCESS;
    if (!ig || !ig->planned || (ig->n_checks == 0 && ig->n_splits == 0)) {
        if (g->n_nodes) {
            *status = vgpu_ctx_compute(ctx, g->dev, backend, g->cgraph);
        }
        return VGPU_OK;
    }
    uint32_t ci = 0, start = 0, r;
    while (ci < ig->n_checks && ig->checks[ci].at == 0)
        ci++;
    uint64_t t0 = vgpu_prof_now(&ctx->prof);
    if (ci && (r = run_input_checks(ctx, g, ig, backend, ci)) != VGPU_OK)
        return r;
    if (ci)
        vgpu_prof_phase(&ctx->prof, VGPU_PROF_GUARD_CHECKS, t0);
    for (uint32_t s = 0; s <= ig->n_splits; s++) {
        const uint32_t end = s < ig->n_splits ? ig->splits[s] : g->n_nodes;
        if (ci < ig->n_checks && ig->checks[ci].at == start)
            vgpu_ctx_async_wait(ctx); /* the segments before have written the indices */
        for (; ci < ig->n_checks && ig->checks[ci].at == start; ci++) {
            if ((r = run_check(ctx, g, ig, &ig->checks[ci], NULL)) != VGPU_OK)
                return r;
        }
        if (end > start) {
            struct ggml_cgraph view = ig->n_splits ? ggml_graph_view(g->cgraph, (int)start, (int)end) : *g->cgraph;
            view.uid = ig->seg_uid[s];
            *status = vgpu_ctx_compute(ctx, g->dev, backend, &view);
            if (*status != GGML_STATUS_SUCCESS)
                return VGPU_OK;
        }
        start = end;
    }
    return VGPU_OK;
}
