/*
 * Backend (stream) interface: graph compute with graph reuse by cgraph->uid, graph_optimize
 * forwarded to the host backend, synchronous data access.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apir.h"
#include "ext.h"
#include "ggml-impl.h"
#include "guest.h"

/* ---- mirror of the host's graph cache ------------------------------------------------------- */

void vgpu_graph_lru_init(struct vgpu_graph_lru *l, uint32_t slots)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
    if (slots) {
        l->e = calloc(slots, sizeof(*l->e));
        if (l->e)
            l->cap = slots;
    }
}

void vgpu_graph_lru_clear(struct vgpu_graph_lru *l)
{
    pthread_mutex_lock(&l->lock);
    for (uint32_t i = 0; i < l->n; i++) {
        free(l->e[i].image);
        l->e[i].image = NULL;
    }
    l->n = 0;
    pthread_mutex_unlock(&l->lock);
}

void vgpu_graph_lru_free(struct vgpu_graph_lru *l)
{
    vgpu_graph_lru_clear(l);
    free(l->e);
    pthread_mutex_destroy(&l->lock);
    memset(l, 0, sizeof(*l));
}

/* Position of uid, or -1 (lock held). */
static int lru_find(const struct vgpu_graph_lru *l, uint64_t uid)
{
    for (uint32_t i = 0; i < l->n; i++) {
        if (l->e[i].uid == uid)
            return (int)i;
    }
    return -1;
}

/* Moves entry i to the front (lock held). */
static void lru_front(struct vgpu_graph_lru *l, uint32_t i)
{
    struct vgpu_graph_slot e = l->e[i];
    memmove(l->e + 1, l->e, (size_t)i * sizeof(*l->e));
    l->e[0] = e;
}

bool vgpu_graph_lru_touch(struct vgpu_graph_lru *l, uint64_t uid)
{
    pthread_mutex_lock(&l->lock);
    int i = lru_find(l, uid);
    if (i > 0)
        lru_front(l, (uint32_t)i);
    pthread_mutex_unlock(&l->lock);
    return i >= 0;
}

void vgpu_graph_lru_insert_image(struct vgpu_graph_lru *l, uint64_t uid, const uint8_t *image, size_t size)
{
    uint8_t *copy = NULL;
    if (image && size) {
        copy = malloc(size);
        if (copy)
            memcpy(copy, image, size);
    }
    pthread_mutex_lock(&l->lock);
    if (!l->cap) {
        pthread_mutex_unlock(&l->lock);
        free(copy);
        return;
    }
    int i = lru_find(l, uid);
    if (i < 0) {
        if (l->n == l->cap) {
            free(l->e[l->n - 1].image); /* the least recent goes, as on the host */
            l->n--;
        }
        l->e[l->n].uid = uid;
        l->e[l->n].image = NULL;
        i = (int)l->n++;
    }
    free(l->e[i].image);
    l->e[i].image = copy;
    l->e[i].size = copy ? size : 0;
    lru_front(l, (uint32_t)i);
    pthread_mutex_unlock(&l->lock);
}

void vgpu_graph_lru_insert(struct vgpu_graph_lru *l, uint64_t uid)
{
    vgpu_graph_lru_insert_image(l, uid, NULL, 0);
}

bool vgpu_graph_lru_has_image(struct vgpu_graph_lru *l, uint64_t uid)
{
    pthread_mutex_lock(&l->lock);
    int i = lru_find(l, uid);
    bool has = i >= 0 && l->e[i].image;
    pthread_mutex_unlock(&l->lock);
    return has;
}

uint64_t vgpu_graph_lru_find_image(struct vgpu_graph_lru *l, const uint8_t *image, size_t size)
{
    uint64_t uid = 0;
    pthread_mutex_lock(&l->lock);
    for (uint32_t i = 0; i < l->n && !uid; i++) {
        if (l->e[i].image && l->e[i].size == size && memcmp(l->e[i].image, image, size) == 0) {
            uid = l->e[i].uid;
            lru_front(l, i);
        }
    }
    pthread_mutex_unlock(&l->lock);
    return uid;
}

void vgpu_graph_lru_remove(struct vgpu_graph_lru *l, uint64_t uid)
{
    pthread_mutex_lock(&l->lock);
    int i = lru_find(l, uid);
    if (i >= 0) {
        free(l->e[i].image);
        memmove(l->e + i, l->e + i + 1, (size_t)(l->n - (uint32_t)i - 1) * sizeof(*l->e));
        l->n--;
    }
    pthread_mutex_unlock(&l->lock);
}

/* ---- graph_optimize answers by image ------------------------------------------------------ */

void vgpu_opt_cache_init(struct vgpu_opt_cache *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
}

static void opt_answer_free(struct vgpu_opt_answer *a)
{
    free(a->image);
    free(a->order);
    free(a->deps);
    memset(a, 0, sizeof(*a));
}

void vgpu_opt_cache_free(struct vgpu_opt_cache *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        opt_answer_free(&c->e[i]);
    pthread_mutex_destroy(&c->lock);
    memset(c, 0, sizeof(*c));
}

/*
 * The answer for exactly these image bytes: order[n_nodes] filled, *deps malloc'd (NULL when
 * none) and *n_deps set; false when none is held (or no memory).
 */
static bool opt_cache_get(struct vgpu_opt_cache *c, const struct vgpu_graph_image *img, uint32_t *order,
                          uint32_t **deps, uint32_t *n_deps)
{
    bool hit = false;
    pthread_mutex_lock(&c->lock);
    for (uint32_t i = 0; i < c->n && !hit; i++) {
        struct vgpu_opt_answer *a = &c->e[i];
        if (a->size != img->size || a->n_nodes != img->n_nodes || memcmp(a->image, img->data, img->size) != 0)
            continue;
        uint32_t *d = NULL;
        if (a->n_deps && !(d = malloc((size_t)a->n_deps * 2 * sizeof(*d))))
            break;
        if (d)
            memcpy(d, a->deps, (size_t)a->n_deps * 2 * sizeof(*d));
        memcpy(order, a->order, (size_t)a->n_nodes * sizeof(*order));
        *deps = d;
        *n_deps = a->n_deps;
        struct vgpu_opt_answer keep = *a; /* most recent first */
        memmove(c->e + 1, c->e, (size_t)i * sizeof(*c->e));
        c->e[0] = keep;
        hit = true;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

/* Keeps the host's answer for this image (nothing when memory is short). */
static void opt_cache_put(struct vgpu_opt_cache *c, const struct vgpu_graph_image *img, const uint32_t *order,
                          const uint32_t *deps, uint32_t n_deps)
{
    struct vgpu_opt_answer a = { 0 };
    a.size = img->size;
    a.n_nodes = img->n_nodes;
    a.n_deps = n_deps;
    a.image = malloc(img->size);
    a.order = malloc((size_t)img->n_nodes * sizeof(*order));
    a.deps = n_deps ? malloc((size_t)n_deps * 2 * sizeof(*deps)) : NULL;
    if (!a.image || !a.order || (n_deps && !a.deps)) {
        opt_answer_free(&a);
        return;
    }
    memcpy(a.image, img->data, img->size);
    memcpy(a.order, order, (size_t)img->n_nodes * sizeof(*order));
    if (n_deps)
        memcpy(a.deps, deps, (size_t)n_deps * 2 * sizeof(*deps));
    pthread_mutex_lock(&c->lock);
    if (c->n == VGPU_OPT_CACHE_SLOTS)
        opt_answer_free(&c->e[--c->n]); /* the least recent goes */
    memmove(c->e + 1, c->e, (size_t)c->n * sizeof(*c->e));
    c->e[0] = a;
    c->n++;
    pthread_mutex_unlock(&c->lock);
}

void vgpu_backend_graphs_dropped(struct vgpu_device *dev)
{
    vgpu_graph_lru_clear(&dev->graphs);
}

/*
 * Resend hook (channel.h): the host no longer held uid when its recompute arrived. Called
 * under the channel lock; takes the LRU lock (never the other way round).
 */
static int resend_graph(struct vgpu_channel *ch, void *user, uint64_t uid, struct vgpu_enc *enc)
{
    struct vgpu_device *dev = user;
    struct vgpu_graph_lru *l = &dev->graphs;
    pthread_mutex_lock(&l->lock);
    int i = lru_find(l, uid);
    int r = -ESTALE;
    if (i >= 0 && l->e[i].image)
        r = vgpu_remote_encode_graph_request(ch, enc, dev->index, uid, l->e[i].image, l->e[i].size);
    pthread_mutex_unlock(&l->lock);
    return r;
}

/* ---- backend interface ------------------------------------------------------------------------- */

struct vgpu_backend_ctx {
    struct vgpu_device     *dev;
    struct vgpu_graph_image img;       /* serialization scratch, reused */
    int                     n_threads; /* last value the host accepted (0: none yet) */
    bool                    n_threads_unsupported;
};

/* Our own backend GUID (not upstream's: the two backends are different implementations). */
static ggml_guid vgpu_guid = { 0x5a, 0x9c, 0x31, 0xe4, 0x7b, 0x02, 0x4d, 0x8f,
                               0xa6, 0x1e, 0xc3, 0x57, 0x90, 0x2b, 0x64, 0xd8 };

static struct vgpu_backend_ctx *ctx_of(ggml_backend_t backend)
{
    return backend->context;
}

static const char *backend_get_name(ggml_backend_t backend)
{
    return ctx_of(backend)->dev->name;
}

static void backend_free(ggml_backend_t backend)
{
    struct vgpu_backend_ctx *ctx = ctx_of(backend);
    vgpu_gprof_report(&ctx->dev->state->ch->prof, ctx->dev->name);
    vgpu_graph_image_free(&ctx->img);
    free(ctx);
    free(backend);
}

/*
 * Async data moves (the data stays valid until synchronize): on our device buffers, a
 * batching host gets them deferred (by reference for host-buffer memory, inline when small),
 * a zero-copy buffer's read is copied at synchronize; anything else is done now, in order
 * after everything outstanding.
 */
static bool async_ok(ggml_backend_t backend, const struct ggml_tensor *tensor)
{
    ggml_backend_buffer_t buf = vgpu_tensor_buffer(tensor);
    return vgpu_buffer_is_ours(buf) && ((struct vgpu_buffer *)buf->context)->dev == ctx_of(backend)->dev;
}

static void backend_set_tensor_2d_async(ggml_backend_t backend, struct ggml_tensor *tensor, const void *data,
                                        size_t offset, size_t size, size_t n_copies, size_t stride_tensor,
                                        size_t stride_data)
{
    if (async_ok(backend, tensor)) {
        vgpu_buffer_set(tensor, data, offset, size, n_copies, stride_tensor, stride_data, true);
        return;
    }
    vgpu_channel_quiesce(ctx_of(backend)->dev->state->ch);
    ggml_backend_tensor_set_2d(tensor, data, offset, size, n_copies, stride_tensor, stride_data);
}

static void backend_get_tensor_2d_async(ggml_backend_t backend, const struct ggml_tensor *tensor, void *data,
                                        size_t offset, size_t size, size_t n_copies, size_t stride_tensor,
                                        size_t stride_data)
{
    if (async_ok(backend, tensor)) {
        vgpu_buffer_get(tensor, data, offset, size, n_copies, stride_tensor, stride_data, true);
        return;
    }
    vgpu_channel_quiesce(ctx_of(backend)->dev->state->ch);
    ggml_backend_tensor_get_2d(tensor, data, offset, size, n_copies, stride_tensor, stride_data);
}

static void backend_set_tensor_async(ggml_backend_t backend, struct ggml_tensor *tensor, const void *data,
                                     size_t offset, size_t size)
{
    backend_set_tensor_2d_async(backend, tensor, data, offset, size, 1, 0, size);
}

static void backend_get_tensor_async(ggml_backend_t backend, const struct ggml_tensor *tensor, void *data,
                                     size_t offset, size_t size)
{
    backend_get_tensor_2d_async(backend, tensor, data, offset, size, 1, 0, size);
}

/*
 * Waits for what the guest could observe: async reads, graph computes (their outputs in
 * zero-copy or host-buffer memory) and queued local copies. Deferred writes into host-
 * allocated buffers stay queued: only our own later commands can see them, in order.
 */
static void backend_synchronize(ggml_backend_t backend)
{
    struct vgpu_state *st = ctx_of(backend)->dev->state;
    uint64_t t0 = vgpu_gprof_now(&st->ch->prof);
    (void)vgpu_remote_sync(st->ch, true);
    vgpu_gprof_phase(&st->ch->prof, VGPU_GPROF_SYNCHRONIZE, t0);
}

static enum ggml_status to_ggml_status(int32_t s)
{
    switch (s) {
    case GGML_STATUS_SUCCESS:
    case GGML_STATUS_ABORTED:
    case GGML_STATUS_ALLOC_FAILED:
    case GGML_STATUS_FAILED:
        return (enum ggml_status)s;
    default:
        return GGML_STATUS_FAILED;
    }
}

static enum ggml_status compute_failed(struct vgpu_device *dev, const char *what, int code)
{
    if (code < 0 && vgpu_channel_is_lost(dev->state->ch))
        return GGML_STATUS_FAILED; /* already reported once by the channel */
    GGML_LOG_ERROR("ggml-virtgpu: %s: graph compute failed: %s%s%s\n", dev->name, what, code == 0 ? "" : ": ",
                   code == 0 ? "" : code > 0 ? vgpu_status_name((uint32_t)code) : strerror(-code));
    return GGML_STATUS_FAILED;
}

/* The bookkeeping of a queued compute of uid: what a deferred error names. */
static void graph_meta(const struct vgpu_device *dev, uint64_t uid, struct vgpu_entry_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->uid = uid;
    snprintf(m->what, sizeof(m->what), "%s: graph compute (uid %llu)", dev->name, (unsigned long long)uid);
}

/* After ctx->img went to the host under uid: mirrored, with the image kept for resends (async
 * recomputes of a graph the host dropped) when there is room to resend it from. */
static void remember_graph(struct vgpu_backend_ctx *ctx, uint64_t uid)
{
    struct vgpu_device *dev = ctx->dev;
    struct vgpu_channel *ch = dev->state->ch;
    if (!uid)
        return;
    bool keep = false;
    if (vgpu_channel_batching(ch) && vgpu_channel_lock(ch)) {
        keep = vgpu_channel_reserve_resend(ch, ctx->img.size) == 0;
        vgpu_channel_unlock(ch);
    }
    if (keep)
        vgpu_graph_lru_insert_image(&dev->graphs, uid, ctx->img.data, ctx->img.size);
    else
        vgpu_graph_lru_insert(&dev->graphs, uid);
}

static enum ggml_status compute_graph(ggml_backend_t backend, struct ggml_cgraph *cgraph);

/* Queues the recompute of uid, which the mirror holds with its image (batching hosts):
 * submitted now, completed by synchronize (or any later command). */
static enum ggml_status recompute_async(struct vgpu_device *dev, uint64_t uid, bool no_wait)
{
    struct vgpu_entry_meta m;
    graph_meta(dev, uid, &m);
    m.resend = resend_graph;
    m.resend_user = dev;
    int code = vgpu_remote_graph_compute_async(dev->state->ch, dev->index, uid, NULL, 0, &m, no_wait);
    if (code != VGPU_OK)
        return compute_failed(dev, "host error", code);
    return GGML_STATUS_SUCCESS;
}

static enum ggml_status backend_graph_compute(ggml_backend_t backend, struct ggml_cgraph *cgraph)
{
    struct vgpu_gprof *prof = &ctx_of(backend)->dev->state->ch->prof;
    uint64_t t0 = vgpu_gprof_now(prof);
    enum ggml_status st = compute_graph(backend, cgraph);
    vgpu_gprof_phase(prof, VGPU_GPROF_COMPUTE, t0);
    return st;
}

/* backend_graph_compute, untimed. */
static enum ggml_status compute_graph(ggml_backend_t backend, struct ggml_cgraph *cgraph)
{
    struct vgpu_backend_ctx *ctx = ctx_of(backend);
    struct vgpu_device *dev = ctx->dev;
    struct vgpu_state *st = dev->state;
    if (cgraph->n_nodes <= 0)
        return GGML_STATUS_SUCCESS;
    if (vgpu_channel_is_lost(st->ch))
        return GGML_STATUS_FAILED;

    char why[256];
    int32_t status;
    if (st->baseline) {
        if (vgpu_graph_serialize(&ctx->img, cgraph, &vgpu_locator, VGPU_GRAPH_FORM_BASELINE, why, sizeof(why)) != 0)
            return compute_failed(dev, why, 0);
        int code = vgpu_remote_base_graph_compute(st->ch, ctx->img.data, ctx->img.size, &status);
        if (code != VGPU_OK)
            return compute_failed(dev, "host error", code);
        return to_ggml_status(status);
    }

    /* A deferred command failed since the last compute: this is where ggml hears of it. */
    if (vgpu_channel_batching(st->ch)) {
        int e = 0;
        if (vgpu_channel_lock(st->ch)) {
            e = vgpu_channel_take_error(st->ch);
            vgpu_channel_unlock(st->ch);
        }
        if (e)
            return compute_failed(dev, "an earlier deferred command failed", e);
    }

    /* Graph reuse: a uid the host holds is recomputed without sending the graph again. */
    uint64_t uid = st->graph_cache_slots ? cgraph->uid : 0;
    /* A backend without async operations (the CPU's) has computed by the time it answers any
     * batch: NO_WAIT would only add the round trip that a sync then needs. */
    const bool batching = vgpu_channel_batching(st->ch);
    const bool no_wait = (dev->info.caps & VGPU_CAP_ASYNC) != 0;
    uint32_t result;
    if (uid && batching && vgpu_graph_lru_touch(&dev->graphs, uid) && vgpu_graph_lru_has_image(&dev->graphs, uid))
        return recompute_async(dev, uid, no_wait);
    if (uid && vgpu_graph_lru_touch(&dev->graphs, uid)) {
        int code = vgpu_remote_graph_compute(st->ch, dev->index, uid, NULL, 0, &result, &status);
        if (code != VGPU_OK)
            return compute_failed(dev, "host error", code);
        if (result == VGPU_GRAPH_COMPUTED)
            return to_ggml_status(status);
        /* The host dropped it (evicted, or one of its buffers was freed): send it again. */
        vgpu_graph_lru_remove(&dev->graphs, uid);
    }
    uint64_t t0 = vgpu_gprof_now(&st->ch->prof);
    if (vgpu_graph_serialize(&ctx->img, cgraph, &vgpu_locator, VGPU_GRAPH_FORM_EXT, why, sizeof(why)) != 0)
        return compute_failed(dev, why, 0);
    vgpu_gprof_phase(&st->ch->prof, VGPU_GPROF_SERIALIZE, t0);
    if (batching) {
        /*
         * The same graph under another uid: llama.cpp builds a new graph (a new uid) for every
         * ubatch of a prompt that takes several, yet ubatches of the same shape give the same
         * graph, byte for byte. When the host holds one built from exactly these bytes, it is
         * recomputed under that uid: nothing is sent, and the host's build and validation (all
         * of it while the device idles, between two ubatches) are not repeated. The host
         * validated these very bytes, against the same buffers (freeing any buffer clears the
         * mirror), and still runs its per-compute checks (index data, zero-copy buffers).
         */
        uint64_t same = st->graph_cache_slots ? vgpu_graph_lru_find_image(&dev->graphs, ctx->img.data, ctx->img.size)
                                              : 0;
        if (same)
            return recompute_async(dev, same, no_wait);
        /* A new graph is queued like a recompute when it fits one command, so that the guest
         * prepares the next one (a prompt's next ubatch) while the host computes this one. */
        struct vgpu_entry_meta m;
        graph_meta(dev, uid, &m);
        int code = vgpu_remote_graph_compute_async(st->ch, dev->index, uid, ctx->img.data, ctx->img.size, &m, no_wait);
        if (code == VGPU_OK) {
            remember_graph(ctx, uid);
            return GGML_STATUS_SUCCESS;
        }
        if (code != -EMSGSIZE)
            return compute_failed(dev, "host error", code);
    }
    int code = vgpu_remote_graph_compute(st->ch, dev->index, uid, ctx->img.data, ctx->img.size, &result, &status);
    if (code != VGPU_OK)
        return compute_failed(dev, "host error", code);
    if (result != VGPU_GRAPH_COMPUTED)
        return compute_failed(dev, "the host did not compute the graph it was sent", 0);
    remember_graph(ctx, uid);
    return to_ggml_status(status);
}

/*
 * Runs the host backend's graph_optimize: the host answers a new node order and the
 * allocation dependencies its reordering needs; both are applied here. A no-op when the
 * host backend has none, in the baseline, or on any failure (the original order is valid).
 */
static void backend_graph_optimize(ggml_backend_t backend, struct ggml_cgraph *cgraph,
                                   struct ggml_backend_graph_optimize_params *params)
{
    struct vgpu_backend_ctx *ctx = ctx_of(backend);
    struct vgpu_device *dev = ctx->dev;
    struct vgpu_state *st = dev->state;
    if (st->baseline || !(dev->info.buft_flags & VGPU_BUFT_GRAPH_OPTIMIZE) || cgraph->n_nodes < 2 ||
        vgpu_channel_is_lost(st->ch))
        return;
    char why[256];
    uint64_t t0 = vgpu_gprof_now(&st->ch->prof);
    if (vgpu_graph_serialize(&ctx->img, cgraph, &vgpu_locator, VGPU_GRAPH_FORM_EXT, why, sizeof(why)) != 0) {
        GGML_LOG_WARN("ggml-virtgpu: %s: graph_optimize skipped: %s\n", dev->name, why);
        return;
    }
    vgpu_gprof_phase(&st->ch->prof, VGPU_GPROF_OPT_SERIALIZE, t0);
    uint32_t n = ctx->img.n_nodes;
    uint32_t *order = malloc((size_t)n * sizeof(*order));
    struct ggml_tensor **nodes = malloc((size_t)n * sizeof(*nodes));
    uint32_t *deps = NULL, n_deps = 0;
    /*
     * llama.cpp asks again for every ubatch of a prompt that takes several (a new graph each
     * time, of one of two shapes): the host's answer for the same image bytes is reused, a round
     * trip and a host build (behind the previous ubatch's compute) less each time. An answer is
     * a valid order for every graph with that image, the host having checked it is a
     * permutation of the nodes.
     */
    int code = -ENOMEM;
    if (order && nodes && opt_cache_get(&dev->opt, &ctx->img, order, &deps, &n_deps)) {
        code = VGPU_OK;
    } else if (order && nodes) {
        code = vgpu_remote_graph_optimize(st->ch, dev->index, ctx->img.data, ctx->img.size, n, ctx->img.n_tensors,
                                          order, &deps, &n_deps);
        if (code == VGPU_OK)
            opt_cache_put(&dev->opt, &ctx->img, order, deps, n_deps);
    }
    if (code == VGPU_OK) {
        memcpy(nodes, cgraph->nodes, (size_t)n * sizeof(*nodes));
        for (uint32_t i = 0; i < n; i++)
            cgraph->nodes[i] = nodes[order[i]];
        if (params && params->add_alloc_dep) {
            for (uint32_t i = 0; i < n_deps; i++)
                params->add_alloc_dep(params->user_data, (struct ggml_tensor *)ctx->img.tensors[deps[2 * i]],
                                      (struct ggml_tensor *)ctx->img.tensors[deps[2 * i + 1]]);
        }
    } else if (!(code < 0 && vgpu_channel_is_lost(st->ch))) {
        GGML_LOG_WARN("ggml-virtgpu: %s: graph_optimize skipped: %s\n", dev->name,
                      code > 0 ? vgpu_status_name((uint32_t)code) : strerror(-code));
    }
    free(deps);
    free(nodes);
    free(order);
    vgpu_gprof_phase(&st->ch->prof, VGPU_GPROF_OPTIMIZE, t0);
}

static const struct ggml_backend_i backend_iface = {
    .get_name = backend_get_name,
    .free = backend_free,
    .set_tensor_async = backend_set_tensor_async,
    .get_tensor_async = backend_get_tensor_async,
    .set_tensor_2d_async = backend_set_tensor_2d_async,
    .get_tensor_2d_async = backend_get_tensor_2d_async,
    .cpy_tensor_async = NULL,
    .synchronize = backend_synchronize,
    .graph_plan_create = NULL,
    .graph_plan_free = NULL,
    .graph_plan_update = NULL,
    .graph_plan_compute = NULL,
    .graph_compute = backend_graph_compute,
    .event_record = NULL,
    .event_wait = NULL,
    .graph_optimize = backend_graph_optimize,
};

ggml_backend_t vgpu_backend_new(struct vgpu_device *dev)
{
    struct vgpu_backend_ctx *ctx = calloc(1, sizeof(*ctx));
    ggml_backend_t backend = calloc(1, sizeof(*backend));
    if (!ctx || !backend) {
        free(ctx);
        free(backend);
        return NULL;
    }
    ctx->dev = dev;
    backend->guid = &vgpu_guid;
    backend->iface = backend_iface;
    backend->device = &dev->gdev;
    backend->context = ctx;
    return backend;
}

void vgpu_backend_set_n_threads(ggml_backend_t backend, int n_threads)
{
    if (!backend || !ggml_guid_matches(backend->guid, &vgpu_guid) || n_threads <= 0)
        return;
    struct vgpu_backend_ctx *ctx = ctx_of(backend);
    struct vgpu_device *dev = ctx->dev;
    /* llama.cpp calls this before every graph: only a change costs a round trip. */
    if (dev->state->baseline || ctx->n_threads_unsupported || ctx->n_threads == n_threads)
        return; /* APIR 0.2 has no such command: the host keeps its own default */
    int code = vgpu_remote_set_n_threads(dev->state->ch, dev->index, (uint32_t)n_threads);
    if (code == VGPU_OK) {
        ctx->n_threads = n_threads;
    } else if (code == VGPU_UNSUPPORTED) {
        ctx->n_threads_unsupported = true; /* the host backend has no thread setting */
    } else if (!(code < 0 && vgpu_channel_is_lost(dev->state->ch))) {
        GGML_LOG_WARN("ggml-virtgpu: %s: set_n_threads(%d) failed: %s\n", dev->name, n_threads,
                      code > 0 ? vgpu_status_name((uint32_t)code) : strerror(-code));
    }
}
