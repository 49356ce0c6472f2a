/*
 * Graph images → validated host graphs, compute, optimise, cache; contracts in graph.h.
 */
#include "graph.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "context.h"
#include "ext.h"
#include "ggml-backend-impl.h"
#include "ggml-impl.h"
#include "index-guard.h"
#include "kernel-cpu.h"
#include "tensor.h"
#include "validate-op.h"
#include "wire.h"

bool vgpu_device_supports_op(struct vgpu_device *d, const struct ggml_tensor *t, char *why,
                             size_t why_size)
{
    if (why && why_size)
        why[0] = '\0';
    if (!ggml_backend_dev_supports_op(d->dev, t))
        return false;
    /*
     * ggml-cpu's supports_op accepts nearly every node and leaves its kernels to GGML_ABORT on
     * the types and layouts they do not handle (a MUL of a view whose src0 elements are not
     * adjacent, an I8 ADD, a quantizing copy whose rows overflow the work buffer): the CPU
     * contract refuses those before any kernel runs (kernel-cpu.h).
     */
    if (ggml_backend_dev_type(d->dev) == GGML_BACKEND_DEVICE_TYPE_CPU)
        return vgpu_kernel_cpu_ok(t, why, why_size);
    return true;
}

struct vgpu_graph *vgpu_graph_new(void)
{
    return calloc(1, sizeof(struct vgpu_graph));
}

void vgpu_graph_reset(struct vgpu_graph *g)
{
    if (g->gctx)
        ggml_free(g->gctx); /* frees the context struct only; gmem is ours */
    g->gctx = NULL;
    g->cgraph = NULL;
    g->valid = false;
    vgpu_index_guard_reset(g->guard);
    g->n_bufs = 0;
    g->n_shadows = 0;
    g->n_tensors = 0;
    g->n_nodes = 0;
    g->uid = 0;
}

void vgpu_graph_free(struct vgpu_graph *g)
{
    if (!g)
        return;
    vgpu_graph_reset(g);
    vgpu_index_guard_free(g->guard);
    free(g->tensors);
    free(g->gmem);
    free(g->bufs);
    free(g->bufs_written);
    free(g->shadows);
    free(g);
}

static uint64_t max_image_size(const struct vgpu_ctx *ctx)
{
    uint64_t a = vgpu_graph_image_size(ctx->quota.graph_tensors, ctx->quota.graph_nodes);
    uint64_t b = vgpu_rpc_graph_size(ctx->quota.graph_nodes, ctx->quota.graph_tensors);
    return a > b ? a : b;
}

uint32_t vgpu_graph_load(struct vgpu_ctx *ctx, const void *src, uint64_t size, const uint8_t **img)
{
    if (size == 0)
        return vgpu_fail(ctx, VGPU_INVALID, "empty graph image");
    if (size > max_image_size(ctx))
        return vgpu_fail(ctx, VGPU_QUOTA, "graph image of %llu bytes exceeds the graph quota",
                         (unsigned long long)size);
    void *p = vgpu_scratch_get(&ctx->img, (size_t)size);
    if (!p)
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "no memory for a graph image of %llu bytes",
                         (unsigned long long)size);
    memcpy(p, src, (size_t)size);
    *img = p;
    return VGPU_OK;
}

/* ---- building ------------------------------------------------------------------------------------ */

/* Per-tensor bookkeeping of one build, in ctx->aux. */
struct build {
    struct vgpu_ctx    *ctx;
    struct vgpu_graph  *g;
    struct vgpu_tinfo  *info;
    uint32_t           *node_pos;  /* 1 + position in the node list, 0 = not a node */
    int32_t            *wire_use;  /* use counts from the wire (ext) */
    uint32_t           *local_use; /* uses by this graph's nodes */
    uint32_t           *needed;    /* read or written by the computation */
    uint32_t           *nodes;     /* node list as tensor indices */
    uint32_t            n_tensors;
    uint32_t            n_nodes;
    bool                wire_counts;
};

static uint32_t check_counts(struct vgpu_ctx *ctx, uint64_t n_tensors, uint64_t n_nodes)
{
    if (n_nodes > ctx->quota.graph_nodes)
        return vgpu_fail(ctx, VGPU_QUOTA, "graph of %llu nodes exceeds the quota of %llu",
                         (unsigned long long)n_nodes, (unsigned long long)ctx->quota.graph_nodes);
    if (n_tensors > ctx->quota.graph_tensors)
        return vgpu_fail(ctx, VGPU_QUOTA, "graph of %llu tensors exceeds the quota of %llu",
                         (unsigned long long)n_tensors, (unsigned long long)ctx->quota.graph_tensors);
    if (n_nodes > n_tensors)
        return vgpu_fail(ctx, VGPU_INVALID, "graph has more nodes (%llu) than tensors (%llu)",
                         (unsigned long long)n_nodes, (unsigned long long)n_tensors);
    return VGPU_OK;
}

static uint32_t build_begin(struct build *b, struct vgpu_ctx *ctx, struct vgpu_graph *g, uint32_t n_tensors,
                            uint32_t n_nodes)
{
    memset(b, 0, sizeof(*b));
    b->ctx = ctx;
    b->g = g;
    b->n_tensors = n_tensors;
    b->n_nodes = n_nodes;

    size_t n = n_tensors ? n_tensors : 1;
    size_t need = n * (sizeof(struct vgpu_tinfo) + 4 * sizeof(uint32_t)) + (size_t)(n_nodes + 1) * sizeof(uint32_t);
    uint8_t *aux = vgpu_scratch_get(&ctx->aux, need);
    if (!aux)
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "no memory to build a graph of %u tensors", n_tensors);
    b->info = (struct vgpu_tinfo *)aux;
    b->node_pos = (uint32_t *)(aux + n * sizeof(struct vgpu_tinfo));
    b->wire_use = (int32_t *)(b->node_pos + n);
    b->local_use = (uint32_t *)(b->wire_use + n);
    b->needed = b->local_use + n;
    b->nodes = b->needed + n;
    memset(b->node_pos, 0, n * sizeof(uint32_t));
    memset(b->wire_use, 0, n * sizeof(int32_t));
    memset(b->local_use, 0, n * sizeof(uint32_t));
    memset(b->needed, 0, n * sizeof(uint32_t));

    if (g->cap_tensors < n) {
        free(g->tensors);
        g->tensors = malloc(n * sizeof(struct ggml_tensor));
        g->cap_tensors = g->tensors ? (uint32_t)n : 0;
        if (!g->tensors)
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "no memory for %u tensors", n_tensors);
    }
    return VGPU_OK;
}

static uint32_t mark_node(struct build *b, uint32_t pos, uint32_t idx)
{
    if (idx >= b->n_tensors)
        return vgpu_fail(b->ctx, VGPU_INVALID, "node %u names tensor %u of %u", pos, idx, b->n_tensors);
    if (b->node_pos[idx])
        return vgpu_fail(b->ctx, VGPU_INVALID, "tensor %u is listed twice as a node", idx);
    b->node_pos[idx] = pos + 1;
    b->nodes[pos] = idx;
    return VGPU_OK;
}

static bool op_is_layout_only(enum ggml_op op)
{
    return op == GGML_OP_NONE || op == GGML_OP_VIEW || op == GGML_OP_RESHAPE || op == GGML_OP_PERMUTE ||
           op == GGML_OP_TRANSPOSE;
}

/* Everything after the tensors are built and the nodes are known; shared by both formats. */
static uint32_t build_finish(struct build *b, uint32_t dev, enum vgpu_graph_purpose purpose)
{
    struct vgpu_ctx *ctx = b->ctx;
    struct vgpu_graph *g = b->g;
    struct ggml_tensor *T = g->tensors;
    struct vgpu_device *d = &ctx->devices[dev];
    uint32_t r;
    /* Profiled for compute builds only (an optimize build counts whole, cmd-graph.c). */
    const bool prof = purpose == VGPU_GRAPH_FOR_COMPUTE;
    uint64_t t0 = prof ? vgpu_prof_now(&ctx->prof) : 0;

    /* Non-nodes are plain data: nothing in them is computed, so nothing of their op is kept. */
    for (uint32_t i = 0; i < b->n_tensors; i++) {
        if (!b->node_pos[i]) {
            vgpu_tensor_make_leaf(&T[i]);
            if ((r = vgpu_tensor_check_alloc(ctx, &T[i], &b->info[i])) != VGPU_OK)
                return r;
        }
    }

    /* Every node is checked before any backend code sees the graph. */
    char why[256];
    for (uint32_t p = 0; p < b->n_nodes; p++) {
        struct ggml_tensor *t = &T[b->nodes[p]];
        why[0] = '\0';
        if (!vgpu_validate_op(t, why, sizeof(why)))
            return vgpu_fail(ctx, VGPU_INVALID, "node %u (%s '%s'): %s", p, vgpu_op_name(t), t->name, why);
        if ((r = vgpu_tensor_check_alloc(ctx, t, &b->info[b->nodes[p]])) != VGPU_OK)
            return r;
        for (int s = 0; s < GGML_MAX_SRC; s++) {
            if (t->src[s])
                b->local_use[t->src[s] - T]++;
        }
    }
    if (purpose == VGPU_GRAPH_FOR_COMPUTE) {
        /*
         * What the computation touches: nodes, their sources and, through views, the tensors
         * that hold their bytes. All of it must be in buffers. (Other entries, such as the
         * sources of a leaf, are carried by guests that serialise recursively; they are
         * validated but never used.)
         */
        for (uint32_t p = 0; p < b->n_nodes; p++) {
            struct ggml_tensor *t = &T[b->nodes[p]];
            b->needed[b->nodes[p]] = 1;
            for (int s = 0; s < GGML_MAX_SRC; s++) {
                if (t->src[s])
                    b->needed[t->src[s] - T] = 1;
            }
        }
        for (uint32_t i = b->n_tensors; i-- > 0;) { /* a view source precedes its view */
            if (b->needed[i] && T[i].view_src)
                b->needed[T[i].view_src - T] = 1;
        }
        for (uint32_t i = 0; i < b->n_tensors; i++) {
            if (b->needed[i] && !b->info[i].buf)
                return vgpu_fail(ctx, VGPU_INVALID, "tensor %u '%s' is used by the graph but has no buffer", i,
                                 T[i].name);
        }
        const bool cpu = ggml_backend_dev_type(d->dev) == GGML_BACKEND_DEVICE_TYPE_CPU;
        for (uint32_t p = 0; p < b->n_nodes; p++) {
            struct ggml_tensor *t = &T[b->nodes[p]];
            if (op_is_layout_only(t->op))
                continue;
            if (!vgpu_device_supports_op(d, t, why, sizeof(why)))
                return vgpu_fail(ctx, VGPU_UNSUPPORTED, "node %u (%s '%s') is not supported by device %u%s%s", p,
                                 vgpu_op_name(t), t->name, dev, why[0] ? ": " : "", why);
            /* A CPU kernel that reads past a source (kernel-cpu.h): only inside its buffer. */
            for (int s = 0; cpu && s < GGML_MAX_SRC; s++) {
                uint64_t over = t->src[s] ? vgpu_kernel_cpu_overread(t, s) : 0;
                const struct vgpu_tinfo *si = over ? &b->info[t->src[s] - T] : NULL;
                if (si && (si->off > si->buf->size || si->buf->size - si->off < si->extent ||
                           si->buf->size - si->off - si->extent < over))
                    return vgpu_fail(ctx, VGPU_UNSUPPORTED,
                                     "node %u (%s '%s'): the CPU kernel reads %llu bytes past src%d, beyond its "
                                     "buffer", p, vgpu_op_name(t), t->name, (unsigned long long)over, s);
            }
        }
    }

    /* The buffers the graph uses, each once, and those its nodes write (wmark). */
    ctx->epoch++;
    for (uint32_t p = 0; p < b->n_nodes; p++) {
        struct vgpu_buffer *buf = b->info[b->nodes[p]].buf;
        if (buf && !op_is_layout_only(T[b->nodes[p]].op))
            buf->wmark = ctx->epoch;
    }
    g->n_bufs = 0;
    for (uint32_t i = 0; i < b->n_tensors; i++) {
        struct vgpu_buffer *buf = b->info[i].buf;
        if (!buf || buf->mark == ctx->epoch)
            continue;
        buf->mark = ctx->epoch;
        if (purpose == VGPU_GRAPH_FOR_COMPUTE && !ggml_backend_dev_supports_buft(d->dev, buf->buf->buft))
            return vgpu_fail(ctx, VGPU_UNSUPPORTED, "device %u cannot compute on buffer 0x%llx", dev,
                             (unsigned long long)buf->id);
        if ((r = vgpu_buffer_check_live(ctx, buf)) != VGPU_OK)
            return r;
        if (g->n_bufs == g->cap_bufs) {
            uint32_t cap = g->cap_bufs ? 2 * g->cap_bufs : 16;
            uint64_t *nb = realloc(g->bufs, cap * sizeof(*nb));
            if (nb)
                g->bufs = nb;
            bool *nw = nb ? realloc(g->bufs_written, cap * sizeof(*nw)) : NULL;
            if (!nw)
                return vgpu_fail(ctx, VGPU_NO_MEMORY, "out of host memory");
            g->bufs_written = nw;
            g->cap_bufs = cap;
        }
        g->bufs_written[g->n_bufs] = buf->wmark == ctx->epoch;
        g->bufs[g->n_bufs++] = buf->id;
    }

    if (prof) {
        vgpu_prof_phase(&ctx->prof, VGPU_PROF_BUILD_CHECKS, t0);
        t0 = vgpu_prof_now(&ctx->prof);
    }

    /* The cgraph, in a ggml context over memory the graph owns. */
    size_t size = b->n_tensors ? b->n_tensors : 1;
    size_t gsize = ggml_graph_overhead_custom(size, false);
    if (g->gmem_cap < gsize) {
        free(g->gmem);
        g->gmem = NULL;
        g->gmem_cap = 0;
        if (posix_memalign(&g->gmem, 64, gsize) != 0) {
            g->gmem = NULL;
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "no memory for a graph of %u tensors", b->n_tensors);
        }
        g->gmem_cap = gsize;
    }
    struct ggml_init_params params = { gsize, g->gmem, true };
    g->gctx = ggml_init(params);
    if (!g->gctx)
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "ggml_init failed");
    struct ggml_cgraph *cg = ggml_new_graph_custom(g->gctx, size, false);
    struct ggml_hash_set *hs = &cg->visited_hash_set;
    memset(cg->use_counts, 0, hs->size * sizeof(int32_t));
    for (uint32_t i = 0; i < b->n_tensors; i++) {
        size_t pos = ggml_hash_insert(hs, &T[i]);
        if (pos == GGML_HASHSET_ALREADY_EXISTS || pos == GGML_HASHSET_FULL)
            return vgpu_fail(ctx, VGPU_BACKEND, "graph hash set inconsistency");
        /*
         * Use counts let backends fuse. The wire's (which may count uses in other parts of
         * the guest's graph) are kept, never below the uses by this graph's own nodes.
         */
        if (b->wire_counts) {
            int64_t u = b->wire_use[i] > 0 ? b->wire_use[i] : 0;
            if (u < b->local_use[i])
                u = b->local_use[i];
            cg->use_counts[pos] = (int32_t)(u > INT32_MAX ? INT32_MAX : u);
        }
    }
    for (uint32_t p = 0; p < b->n_nodes; p++)
        cg->nodes[p] = &T[b->nodes[p]];
    cg->n_nodes = (int)b->n_nodes;
    cg->n_leafs = 0;
    cg->uid = ggml_graph_next_uid();

    g->cgraph = cg;
    g->n_tensors = b->n_tensors;
    g->n_nodes = b->n_nodes;
    g->dev = dev;
    g->valid = true;
    if (!prof)
        return VGPU_OK;
    vgpu_prof_phase(&ctx->prof, VGPU_PROF_BUILD_CGRAPH, t0);
    /* Index data: how each index operand is checked at compute time (index-guard.h). */
    t0 = vgpu_prof_now(&ctx->prof);
    r = vgpu_index_guard_plan(ctx, g, b->info);
    vgpu_prof_phase(&ctx->prof, VGPU_PROF_GUARD_PLAN, t0);
    if (r != VGPU_OK)
        return r;
    /* Last, as it points sources outside g->tensors: repacked weights (cpu-repack.h). */
    return vgpu_repack_graph(ctx, g, b->info);
}

static uint32_t build_ext(struct vgpu_ctx *ctx, struct vgpu_graph *g, uint32_t dev, const uint8_t *img,
                          uint64_t size, enum vgpu_graph_purpose purpose)
{
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, img, (size_t)size);
    uint32_t magic = vgpu_dec_u32(&dec);
    uint32_t n_tensors = vgpu_dec_u32(&dec);
    uint32_t n_nodes = vgpu_dec_u32(&dec);
    uint32_t flags = vgpu_dec_u32(&dec);
    if (!vgpu_dec_ok(&dec))
        return vgpu_fail(ctx, VGPU_INVALID, "graph image of %llu bytes has no header", (unsigned long long)size);
    if (magic != VGPU_GRAPH_MAGIC)
        return vgpu_fail(ctx, VGPU_INVALID, "graph image has magic 0x%08x", magic);
    if (flags != 0)
        return vgpu_fail(ctx, VGPU_INVALID, "graph image has unknown flags 0x%x", flags);
    uint32_t r = check_counts(ctx, n_tensors, n_nodes);
    if (r != VGPU_OK)
        return r;
    if (vgpu_graph_image_size(n_tensors, n_nodes) != size)
        return vgpu_fail(ctx, VGPU_INVALID, "graph image is %llu bytes, its counts need %llu",
                         (unsigned long long)size, (unsigned long long)vgpu_graph_image_size(n_tensors, n_nodes));

    struct build b;
    if ((r = build_begin(&b, ctx, g, n_tensors, n_nodes)) != VGPU_OK)
        return r;
    b.wire_counts = true;
    uint64_t t0 = purpose == VGPU_GRAPH_FOR_COMPUTE ? vgpu_prof_now(&ctx->prof) : 0;
    for (uint32_t i = 0; i < n_tensors; i++) {
        struct vgpu_wire_tensor w;
        struct vgpu_tdesc d;
        vgpu_dec_wire_tensor(&dec, &w);
        if (!vgpu_tdesc_from_wire(&w, i, &d))
            return vgpu_fail(ctx, VGPU_INVALID, "tensor %u refers to a tensor that does not precede it", i);
        if ((r = vgpu_tensor_build(ctx, &d, VGPU_TENSOR_BUFFER_OPTIONAL, g->tensors, b.info, i)) != VGPU_OK)
            return r;
        b.wire_use[i] = d.use_count;
    }
    for (uint32_t p = 0; p < n_nodes; p++) {
        if ((r = mark_node(&b, p, vgpu_dec_u32(&dec))) != VGPU_OK)
            return r;
    }
    if (!vgpu_dec_ok(&dec))
        return vgpu_fail(ctx, VGPU_INVALID, "graph image truncated");
    if (purpose == VGPU_GRAPH_FOR_COMPUTE)
        vgpu_prof_phase(&ctx->prof, VGPU_PROF_BUILD_TENSORS, t0);
    return build_finish(&b, dev, purpose);
}

struct id_entry {
    uint64_t id;
    uint32_t idx;
};

static int cmp_id(const void *a, const void *b)
{
    const struct id_entry *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

/* Index of the tensor with this id, or -1. */
static int64_t find_id(const struct id_entry *map, uint32_t n, uint64_t id)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (map[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && map[lo].id == id ? (int64_t)map[lo].idx : -1;
}

static uint32_t build_baseline(struct vgpu_ctx *ctx, struct vgpu_graph *g, uint32_t dev, const uint8_t *img,
                               uint64_t size)
{
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, img, (size_t)size);
    uint32_t n_nodes = vgpu_dec_u32(&dec);
    if (!vgpu_dec_ok(&dec) || (uint64_t)n_nodes * 8 > vgpu_dec_left(&dec))
        return vgpu_fail(ctx, VGPU_INVALID, "graph image of %llu bytes is too short for %u nodes",
                         (unsigned long long)size, n_nodes);
    const uint8_t *node_ids = vgpu_dec_view(&dec, (size_t)n_nodes * 8);
    uint32_t n_tensors = vgpu_dec_u32(&dec);
    if (!vgpu_dec_ok(&dec))
        return vgpu_fail(ctx, VGPU_INVALID, "graph image truncated");
    uint32_t r = check_counts(ctx, n_tensors, n_nodes);
    if (r != VGPU_OK)
        return r;
    if (vgpu_rpc_graph_size(n_nodes, n_tensors) != size)
        return vgpu_fail(ctx, VGPU_INVALID, "graph image is %llu bytes, its counts need %llu",
                         (unsigned long long)size, (unsigned long long)vgpu_rpc_graph_size(n_nodes, n_tensors));

    struct build b;
    if ((r = build_begin(&b, ctx, g, n_tensors, n_nodes)) != VGPU_OK)
        return r;

    /* Guest ids → indices: a sorted table (no guest-steerable hashing), duplicates refused. */
    uint64_t t0 = vgpu_prof_now(&ctx->prof);
    struct id_entry *map = vgpu_scratch_get(&ctx->aux2, (size_t)(n_tensors ? n_tensors : 1) * sizeof(*map));
    if (!map)
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "no memory to build a graph of %u tensors", n_tensors);
    const uint8_t *tensors = dec.cur;
    for (uint32_t i = 0; i < n_tensors; i++) {
        uint64_t id;
        memcpy(&id, tensors + (size_t)i * VGPU_RPC_TENSOR_SIZE, 8);
        if (id == 0)
            return vgpu_fail(ctx, VGPU_INVALID, "tensor %u has id 0", i);
        map[i] = (struct id_entry){ id, i };
    }
    qsort(map, n_tensors, sizeof(*map), cmp_id);
    for (uint32_t i = 1; i < n_tensors; i++) {
        if (map[i].id == map[i - 1].id)
            return vgpu_fail(ctx, VGPU_INVALID, "tensor id 0x%llx appears twice", (unsigned long long)map[i].id);
    }

    for (uint32_t i = 0; i < n_tensors; i++) {
        struct vgpu_rpc_tensor rt;
        struct vgpu_tdesc d;
        vgpu_dec_rpc_tensor(&dec, &rt);
        vgpu_tdesc_from_rpc(&rt, &d);
        for (int s = 0; s <= GGML_MAX_SRC; s++) {
            uint64_t id = s < GGML_MAX_SRC ? rt.src[s] : rt.view_src;
            if (!id)
                continue;
            int64_t idx = find_id(map, n_tensors, id);
            /* Only a source may name the tensor itself (ggml_cast), never a view source. */
            int64_t limit = s < GGML_MAX_SRC ? (int64_t)i + 1 : (int64_t)i;
            if (idx < 0 || idx >= limit)
                return vgpu_fail(ctx, VGPU_INVALID, "tensor %u refers to id 0x%llx, not an earlier tensor", i,
                                 (unsigned long long)id);
            if (s < GGML_MAX_SRC)
                d.src[s] = (int32_t)idx;
            else
                d.view_src = (int32_t)idx;
        }
        if ((r = vgpu_tensor_build(ctx, &d, VGPU_TENSOR_BUFFER_OPTIONAL, g->tensors, b.info, i)) != VGPU_OK)
            return r;
    }
    for (uint32_t p = 0; p < n_nodes; p++) {
        uint64_t id;
        memcpy(&id, node_ids + (size_t)p * 8, 8);
        int64_t idx = find_id(map, n_tensors, id);
        if (idx < 0)
            return vgpu_fail(ctx, VGPU_INVALID, "node %u names unknown id 0x%llx", p, (unsigned long long)id);
        if ((r = mark_node(&b, p, (uint32_t)idx)) != VGPU_OK)
            return r;
    }
    if (!vgpu_dec_ok(&dec))
        return vgpu_fail(ctx, VGPU_INVALID, "graph image truncated");
    vgpu_prof_phase(&ctx->prof, VGPU_PROF_BUILD_TENSORS, t0);
    /* No use counts on the baseline wire: left at 0, so no backend fuses on guesses. */
    b.wire_counts = false;
    return build_finish(&b, dev, VGPU_GRAPH_FOR_COMPUTE);
}

uint32_t vgpu_graph_build(struct vgpu_ctx *ctx, struct vgpu_graph *g, uint32_t dev, const uint8_t *img,
                          uint64_t size, enum vgpu_graph_format fmt, enum vgpu_graph_purpose purpose)
{
    vgpu_graph_reset(g);
    if (dev >= ctx->n_devices)
        return vgpu_fail(ctx, VGPU_INVALID, "device %u does not exist", dev);
    uint32_t r = fmt == VGPU_GRAPH_FORMAT_EXT ? build_ext(ctx, g, dev, img, size, purpose)
                                              : build_baseline(ctx, g, dev, img, size);
    if (r != VGPU_OK)
        vgpu_graph_reset(g);
    return r;
}

/* ---- compute --------------------------------------------------------------------------------------- */

uint32_t vgpu_graph_compute(struct vgpu_ctx *ctx, struct vgpu_graph *g, enum ggml_status *status)
{
    if (!g->valid)
        return vgpu_fail(ctx, VGPU_INVALID, "no graph");
    uint32_t r;
    for (uint32_t i = 0; i < g->n_bufs; i++) {
        struct vgpu_buffer *b;
        /* Freed buffers drop the graphs that use them, so every id here resolves. */
        if ((r = vgpu_ctx_buffer_live(ctx, g->bufs[i], &b)) != VGPU_OK)
            return r;
        b->wgen += g->bufs_written[i];
    }
    vgpu_repack_refresh(ctx, g);
    ggml_backend_t backend;
    if ((r = vgpu_ctx_backend(ctx, g->dev, &backend)) != VGPU_OK)
        return r;
    /* The compute is queued (the dispatcher waits for it before its reply); the index checks
     * order their reads after copies queued into the indices (index-guard.c). */
    if ((r = vgpu_index_guard_compute(ctx, g, backend, status)) != VGPU_OK)
        return r;
    if (*status != GGML_STATUS_SUCCESS)
        vgpu_log(ctx, VGPU_LOG_WARN, "graph compute returned ggml status %d", (int)*status);
    return VGPU_OK;
}

/* ---- optimise ---------------------------------------------------------------------------------------- */

struct opt_deps {
    uint32_t  *pairs; /* tensor, until */
    uint32_t   n;
    uint32_t   cap;
    bool       bad;
    uintptr_t  base;
    uint32_t   n_tensors;
};

static bool tensor_index(const struct opt_deps *d, const struct ggml_tensor *t, uint32_t *idx)
{
    uintptr_t p = (uintptr_t)t;
    if (p < d->base || (p - d->base) % sizeof(struct ggml_tensor) != 0)
        return false;
    uintptr_t i = (p - d->base) / sizeof(struct ggml_tensor);
    if (i >= d->n_tensors)
        return false;
    *idx = (uint32_t)i;
    return true;
}

static void add_alloc_dep(void *user, struct ggml_tensor *tensor, struct ggml_tensor *until)
{
    struct opt_deps *d = user;
    uint32_t a, b;
    if (!tensor_index(d, tensor, &a) || !tensor_index(d, until, &b)) {
        d->bad = true;
        return;
    }
    for (uint32_t i = 0; i < d->n; i++) {
        if (d->pairs[2 * i] == a && d->pairs[2 * i + 1] == b)
            return;
    }
    if (d->n == d->cap) {
        d->bad = true;
        return;
    }
    d->pairs[2 * d->n] = a;
    d->pairs[2 * d->n + 1] = b;
    d->n++;
}

uint32_t vgpu_graph_optimize(struct vgpu_ctx *ctx, struct vgpu_graph *g, struct vgpu_enc *enc)
{
    if (!g->valid)
        return vgpu_fail(ctx, VGPU_INVALID, "no graph");
    ggml_backend_t backend;
    uint32_t r = vgpu_ctx_backend(ctx, g->dev, &backend);
    if (r != VGPU_OK)
        return r;

    struct opt_deps deps = { NULL, 0, 0, false, (uintptr_t)g->tensors, g->n_tensors };
    size_t n = g->n_tensors ? g->n_tensors : 1;
    /* pos[i]: 1 + position of tensor i in the request's node list (0: not a node). */
    uint32_t *pos = vgpu_scratch_get(&ctx->aux, n * sizeof(uint32_t));
    deps.cap = (uint32_t)(4 * n + 64);
    deps.pairs = vgpu_scratch_get(&ctx->aux2, (size_t)deps.cap * 2 * sizeof(uint32_t));
    if (!pos || !deps.pairs)
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "no memory to optimise a graph");
    memset(pos, 0, n * sizeof(uint32_t));
    for (uint32_t p = 0; p < g->n_nodes; p++)
        pos[g->cgraph->nodes[p] - g->tensors] = p + 1;

    if (backend->iface.graph_optimize) {
        struct ggml_backend_graph_optimize_params params = { add_alloc_dep, &deps };
        backend->iface.graph_optimize(backend, g->cgraph, &params);
        /* The result must be a permutation of the same nodes. */
        if (g->cgraph->n_nodes != (int)g->n_nodes || deps.bad) {
            g->valid = false;
            return vgpu_fail(ctx, VGPU_BACKEND, "graph_optimize changed the node set");
        }
        for (uint32_t p = 0; p < g->n_nodes; p++) {
            uint32_t idx;
            if (!tensor_index(&deps, g->cgraph->nodes[p], &idx) || !pos[idx] || (pos[idx] & 0x80000000u)) {
                g->valid = false;
                return vgpu_fail(ctx, VGPU_BACKEND, "graph_optimize changed the node set");
            }
            pos[idx] |= 0x80000000u;
        }
    }

    vgpu_enc_u32(enc, g->n_nodes);
    for (uint32_t p = 0; p < g->n_nodes; p++) {
        uint32_t idx = (uint32_t)(g->cgraph->nodes[p] - g->tensors);
        vgpu_enc_u32(enc, (pos[idx] & 0x7fffffffu) - 1);
    }
    vgpu_enc_u32(enc, deps.n);
    for (uint32_t i = 0; i < deps.n; i++) {
        vgpu_enc_u32(enc, deps.pairs[2 * i]);
        vgpu_enc_u32(enc, deps.pairs[2 * i + 1]);
    }
    /* The scratch graph was reordered in place: it is not reused. */
    g->valid = false;
    return VGPU_OK;
}
