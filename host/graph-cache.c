/*
 * The per-device LRU cache of built graphs by guest uid, and its context-wide tensor budget;
 * contracts in graph.h.
 */
#include "context.h"
#include "graph.h"

/* ---- cache --------------------------------------------------------------------------------------------- */

struct vgpu_graph *vgpu_graph_cache_find(struct vgpu_ctx *ctx, uint32_t dev, uint64_t uid)
{
    if (dev >= ctx->n_devices || uid == 0)
        return NULL;
    struct vgpu_device *d = &ctx->devices[dev];
    for (uint32_t s = 0; s < VGPU_GRAPH_CACHE_SLOTS; s++) {
        struct vgpu_graph *g = d->cache[s];
        if (g && g->valid && g->uid == uid) {
            g->lru = ++ctx->lru_clock;
            return g;
        }
    }
    return NULL;
}

/*
 * All cached graphs of a context together hold at most quota.graph_tensors tensors (host
 * memory per cached tensor is ~0.4 KiB): the least recently used go first, `keep` never.
 */
static void enforce_cache_budget(struct vgpu_ctx *ctx, const struct vgpu_graph *keep)
{
    for (;;) {
        uint64_t total = 0;
        struct vgpu_graph **lru = NULL;
        for (uint32_t dv = 0; dv < ctx->n_devices; dv++) {
            for (uint32_t s = 0; s < VGPU_GRAPH_CACHE_SLOTS; s++) {
                struct vgpu_graph **slot = &ctx->devices[dv].cache[s];
                if (!*slot || !(*slot)->valid)
                    continue;
                total += (*slot)->n_tensors;
                if (*slot != keep && (!lru || (*slot)->lru < (*lru)->lru))
                    lru = slot;
            }
        }
        if (total <= ctx->quota.graph_tensors || !lru)
            return;
        vgpu_log(ctx, VGPU_LOG_DEBUG, "graph cache over %llu tensors: dropping uid %llu",
                 (unsigned long long)ctx->quota.graph_tensors, (unsigned long long)(*lru)->uid);
        vgpu_graph_free(*lru);
        *lru = NULL;
    }
}

void vgpu_graph_cache_put(struct vgpu_ctx *ctx, uint32_t dev, uint64_t uid)
{
    struct vgpu_graph *g = ctx->scratch_graph;
    if (!g || !g->valid || uid == 0 || dev >= ctx->n_devices)
        return;
    struct vgpu_device *d = &ctx->devices[dev];
    /* Slot: the same uid, else an empty or invalid one, else the least recently used. */
    uint32_t slot = VGPU_GRAPH_CACHE_SLOTS;
    for (uint32_t s = 0; s < VGPU_GRAPH_CACHE_SLOTS && slot == VGPU_GRAPH_CACHE_SLOTS; s++) {
        if (d->cache[s] && d->cache[s]->valid && d->cache[s]->uid == uid)
            slot = s;
    }
    for (uint32_t s = 0; s < VGPU_GRAPH_CACHE_SLOTS && slot == VGPU_GRAPH_CACHE_SLOTS; s++) {
        if (!d->cache[s] || !d->cache[s]->valid)
            slot = s;
    }
    if (slot == VGPU_GRAPH_CACHE_SLOTS) {
        slot = 0;
        for (uint32_t s = 1; s < VGPU_GRAPH_CACHE_SLOTS; s++) {
            if (d->cache[s]->lru < d->cache[slot]->lru)
                slot = s;
        }
    }
    /* The evicted graph's storage becomes the next scratch graph. */
    struct vgpu_graph *victim = d->cache[slot];
    if (!victim) {
        victim = vgpu_graph_new();
        if (!victim) {
            vgpu_log(ctx, VGPU_LOG_WARN, "no memory to cache graph uid %llu", (unsigned long long)uid);
            return;
        }
    }
    vgpu_graph_reset(victim);
    g->uid = uid;
    g->lru = ++ctx->lru_clock;
    d->cache[slot] = g;
    ctx->scratch_graph = victim;
    enforce_cache_budget(ctx, g);
}

static bool uses_buffer(const struct vgpu_graph *g, uint64_t id)
{
    for (uint32_t i = 0; i < g->n_bufs; i++) {
        if (g->bufs[i] == id)
            return true;
    }
    return false;
}

void vgpu_graph_cache_drop_buffer(struct vgpu_ctx *ctx, const struct vgpu_buffer *b)
{
    for (uint32_t dv = 0; dv < ctx->n_devices; dv++) {
        struct vgpu_device *d = &ctx->devices[dv];
        for (uint32_t s = 0; s < VGPU_GRAPH_CACHE_SLOTS; s++) {
            struct vgpu_graph *g = d->cache[s];
            if (g && g->valid && uses_buffer(g, b->id)) {
                vgpu_log(ctx, VGPU_LOG_DEBUG, "dropping cached graph uid %llu (buffer freed)",
                         (unsigned long long)g->uid);
                vgpu_graph_free(g);
                d->cache[s] = NULL;
            }
        }
    }
    if (ctx->scratch_graph && ctx->scratch_graph->valid && uses_buffer(ctx->scratch_graph, b->id))
        vgpu_graph_reset(ctx->scratch_graph);
}
