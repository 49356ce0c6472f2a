/*
 * Repacked copies of weight matrices on ggml-cpu devices; see cpu-repack.h.
 *
 * Everything here goes through ggml's public backend API: the extra buffer types come from the
 * registry's "ggml_backend_dev_get_extra_bufts", whether one of them computes a node is the
 * device's own supports_op answer with the weight placed (as llama.cpp probes it) in an empty
 * buffer of that type, and a copy is a tensor allocated in a buffer of that type and written
 * with ggml_backend_tensor_set, which is where ggml-cpu repacks.
 */
#include "cpu-repack.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "ggml-impl.h"
#include "graph.h"
#include "tensor.h"

struct vgpu_shadow {
    const struct vgpu_buffer *src;  /* the guest's buffer holding the plain bytes */
    uint64_t                  off;  /* the tensor's offset in it */
    uint64_t                  gen;  /* src->wgen when last repacked */
    struct ggml_context      *tctx; /* holds t's metadata */
    ggml_backend_buffer_t     buf;  /* t's memory, of one of the device's extra buffer types */
    struct ggml_tensor       *t;
};

void vgpu_repack_attach(struct vgpu_repack *r, ggml_backend_reg_t reg, ggml_backend_dev_t dev)
{
    ggml_backend_dev_get_extra_bufts_t get = NULL;
    *(void **)&get = ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
    ggml_backend_buffer_type_t *list = get ? get(dev) : NULL;
    for (; list && *list && r->n_bufts < VGPU_REPACK_MAX_BUFTS; list++) {
        ggml_backend_buffer_t probe = ggml_backend_buft_alloc_buffer(*list, 0);
        if (!probe)
            continue;
        r->bufts[r->n_bufts] = *list;
        r->probe[r->n_bufts++] = probe;
    }
}

static void shadow_free(struct vgpu_shadow *sh, uint64_t *bytes_used)
{
    if (sh->buf) {
        *bytes_used -= ggml_backend_buffer_get_size(sh->buf);
        ggml_backend_buffer_free(sh->buf);
    }
    if (sh->tctx)
        ggml_free(sh->tctx);
    free(sh);
}

void vgpu_repack_free(struct vgpu_repack *r, uint64_t *bytes_used)
{
    for (uint32_t i = 0; i < r->n; i++)
        shadow_free(r->v[i], bytes_used);
    free(r->v);
    for (uint32_t k = 0; k < r->n_bufts; k++)
        ggml_backend_buffer_free(r->probe[k]);
    memset(r, 0, sizeof(*r));
}

void vgpu_repack_drop_buffer(struct vgpu_ctx *ctx, const struct vgpu_buffer *b)
{
    struct vgpu_repack *r = &ctx->devices[b->dev].repack;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->v[i]->src == b)
            shadow_free(r->v[i], &ctx->bytes_used);
        else
            r->v[kept++] = r->v[i];
    }
    r->n = kept;
}

/*
 * ggml-cpu's repack routines count rows and blocks in int and refuse (by aborting) a row
 * length that is not a multiple of 8: only tensors well inside both limits get a copy.
 */
static bool repack_can_count(const struct ggml_tensor *s)
{
    int64_t bs = ggml_blck_size(s->type);
    if (bs <= 0 || s->ne[0] % bs != 0 || s->ne[0] % 8 != 0)
        return false;
    return ggml_nrows(s) <= INT_MAX && ggml_nelements(s) / bs <= INT_MAX;
}

/* Source 0 of `node` could be computed on a copy, whatever its type (the device decides that). */
static bool eligible(const struct vgpu_ctx *ctx, const struct ggml_tensor *node, const struct vgpu_tinfo *si)
{
    const struct ggml_tensor *s = node->src[0];
    if (node->op != GGML_OP_MUL_MAT && node->op != GGML_OP_MUL_MAT_ID)
        return false;
    /* Not written by this same graph: its nodes would read the copy made before they ran. */
    return si->weights && si->buf && si->buf->wmark != ctx->epoch && s->op == GGML_OP_NONE && !s->view_src &&
           !(s->flags & GGML_TENSOR_FLAG_PARAM) && s->data && ggml_is_contiguous(s) && repack_can_count(s);
}

/* Index of the first extra buffer type whose kernels compute `node` with source 0 in it, or -1. */
static int choose_buft(const struct vgpu_repack *r, ggml_backend_dev_t dev, const struct ggml_tensor *node)
{
    struct ggml_tensor src0 = *node->src[0];
    struct ggml_tensor op = *node;
    src0.extra = NULL;
    op.src[0] = &src0;
    for (uint32_t k = 0; k < r->n_bufts; k++) {
        src0.buffer = r->probe[k];
        if (ggml_backend_dev_supports_op(dev, &op))
            return (int)k;
    }
    return -1;
}

static struct vgpu_shadow *find(const struct vgpu_repack *r, const struct vgpu_tinfo *si,
                                const struct ggml_tensor *s, ggml_backend_buffer_type_t buft)
{
    for (uint32_t i = 0; i < r->n; i++) {
        const struct vgpu_shadow *sh = r->v[i];
        if (sh->src == si->buf && sh->off == si->off && sh->t->type == s->type &&
            memcmp(sh->t->ne, s->ne, sizeof(s->ne)) == 0 && ggml_backend_buffer_get_type(sh->buf) == buft)
            return r->v[i];
    }
    return NULL;
}

/* Rewrites the copy from the guest's bytes (ggml-cpu repacks in set_tensor). */
static void repack(struct vgpu_repack *r, struct vgpu_shadow *sh)
{
    ggml_backend_tensor_set(sh->t, sh->src->base + sh->off, 0, ggml_nbytes(sh->t));
    sh->gen = sh->src->wgen;
    r->repacks++;
}

/* A new copy of s in buffer type k; NULL (logged at debug) when the quota or memory says no. */
static struct vgpu_shadow *make(struct vgpu_ctx *ctx, struct vgpu_repack *r, const struct vgpu_tinfo *si,
                                const struct ggml_tensor *s, uint32_t k)
{
    size_t need = ggml_backend_buft_get_alloc_size(r->bufts[k], s);
    if (need > ctx->quota.buffer_bytes || ctx->bytes_used > ctx->quota.buffer_bytes - need) {
        vgpu_log(ctx, VGPU_LOG_DEBUG, "no repacked copy of '%s': buffer bytes quota", s->name);
        return NULL;
    }
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? 2 * r->cap : 64;
        struct vgpu_shadow **v = realloc(r->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        r->v = v;
        r->cap = cap;
    }
    struct vgpu_shadow *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return NULL;
    struct ggml_init_params ip = { ggml_tensor_overhead(), NULL, true };
    sh->tctx = ggml_init(ip);
    sh->t = sh->tctx ? ggml_new_tensor(sh->tctx, s->type, GGML_MAX_DIMS, s->ne) : NULL;
    sh->buf = sh->t ? ggml_backend_buft_alloc_buffer(r->bufts[k], need) : NULL;
    if (!sh->buf || ggml_backend_tensor_alloc(sh->buf, sh->t, ggml_backend_buffer_get_base(sh->buf)) !=
                        GGML_STATUS_SUCCESS) {
        uint64_t none = sh->buf ? ggml_backend_buffer_get_size(sh->buf) : 0;
        shadow_free(sh, &none);
        vgpu_log(ctx, VGPU_LOG_DEBUG, "no repacked copy of '%s': out of memory", s->name);
        return NULL;
    }
    ctx->bytes_used += ggml_backend_buffer_get_size(sh->buf);
    ggml_set_name(sh->t, s->name);
    sh->src = si->buf;
    sh->off = si->off;
    repack(r, sh);
    r->v[r->n++] = sh;
    vgpu_log(ctx, VGPU_LOG_DEBUG, "repacked '%s' (%s %lld x %lld) into %s", s->name, ggml_type_name(s->type),
             (long long)s->ne[0], (long long)s->ne[1], ggml_backend_buft_name(r->bufts[k]));
    return sh;
}

static uint32_t graph_note(struct vgpu_ctx *ctx, struct vgpu_graph *g, struct vgpu_shadow *sh)
{
    if (g->n_shadows == g->cap_shadows) {
        uint32_t cap = g->cap_shadows ? 2 * g->cap_shadows : 64;
        struct vgpu_shadow **v = realloc(g->shadows, cap * sizeof(*v));
        if (!v)
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "out of host memory");
        g->shadows = v;
        g->cap_shadows = cap;
    }
    g->shadows[g->n_shadows++] = sh;
    return VGPU_OK;
}

uint32_t vgpu_repack_graph(struct vgpu_ctx *ctx, struct vgpu_graph *g, const struct vgpu_tinfo *info)
{
    struct vgpu_device *d = &ctx->devices[g->dev];
    struct vgpu_repack *r = &d->repack;
    ggml_backend_t backend;
    g->n_shadows = 0;
    /* The device's backend (its creation attaches `r`) computes the graph next anyway. */
    uint32_t rc = vgpu_ctx_backend(ctx, g->dev, &backend);
    if (rc != VGPU_OK || !r->n_bufts)
        return rc;
    for (int p = 0; p < g->cgraph->n_nodes; p++) {
        struct ggml_tensor *node = g->cgraph->nodes[p];
        const struct vgpu_tinfo *si = node->src[0] ? &info[node->src[0] - g->tensors] : NULL;
        if (!si || !eligible(ctx, node, si))
            continue;
        int k = choose_buft(r, d->dev, node);
        if (k < 0)
            continue;
        struct vgpu_shadow *sh = find(r, si, node->src[0], r->bufts[k]);
        if (!sh && !(sh = make(ctx, r, si, node->src[0], (uint32_t)k)))
            continue;
        if ((rc = graph_note(ctx, g, sh)) != VGPU_OK)
            return rc;
        node->src[0] = sh->t;
    }
    return VGPU_OK;
}

void vgpu_repack_refresh(struct vgpu_ctx *ctx, const struct vgpu_graph *g)
{
    struct vgpu_repack *r = &ctx->devices[g->dev].repack;
    for (uint32_t i = 0; i < g->n_shadows; i++) {
        if (g->shadows[i]->gen != g->shadows[i]->src->wgen)
            repack(r, g->shadows[i]);
    }
}
