/*
 * Tensor and graph serialization; contracts in serialize.h.
 */
#include "serialize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext.h"
#include "ggml-impl.h"

_Static_assert(GGML_MAX_SRC == VGPU_MAX_SRC, "wire format assumes GGML_MAX_SRC 10");
_Static_assert(GGML_MAX_DIMS == VGPU_MAX_DIMS, "wire format assumes GGML_MAX_DIMS 4");
_Static_assert(GGML_MAX_NAME == VGPU_MAX_NAME, "wire format assumes GGML_MAX_NAME 64");
_Static_assert(GGML_MAX_OP_PARAMS == 4 * VGPU_OP_PARAMS_I32, "wire format assumes 64 bytes of op_params");
_Static_assert(sizeof(struct ggml_tensor) == VGPU_RAW_TENSOR_SIZE, "raw tensor image is ggml 0.25.1's");
_Static_assert(offsetof(struct ggml_tensor, ne) == VGPU_RAW_OFF_NE, "raw image layout");
_Static_assert(offsetof(struct ggml_tensor, op_params) == VGPU_RAW_OFF_OP_PARAMS, "raw image layout");
_Static_assert(offsetof(struct ggml_tensor, src) == VGPU_RAW_OFF_SRC, "raw image layout");
_Static_assert(offsetof(struct ggml_tensor, view_src) == VGPU_RAW_OFF_VIEW_SRC, "raw image layout");
_Static_assert(offsetof(struct ggml_tensor, data) == VGPU_RAW_OFF_DATA, "raw image layout");
_Static_assert(offsetof(struct ggml_tensor, extra) == VGPU_RAW_OFF_EXTRA, "raw image layout");

/* DFS frame: a tensor and the next reference to look at (0..9 src, 10 view_src). */
struct vgpu_dfs_frame {
    const struct ggml_tensor *t;
    uint32_t                  next;
};

#define DFS_VIEW_SRC   VGPU_MAX_SRC
#define MAP_IN_WALK    UINT32_MAX /* on the DFS stack, not yet written */
#define MAP_ABSENT     (UINT32_MAX - 1)

ggml_backend_buffer_t vgpu_tensor_buffer(const struct ggml_tensor *t)
{
    return t->view_src ? t->view_src->buffer : t->buffer;
}

void vgpu_tensor_location(const struct ggml_tensor *t, const struct vgpu_locator *loc, uint64_t *buffer,
                          uint64_t *offset)
{
    *buffer = 0;
    *offset = 0;
    ggml_backend_buffer_t buf = vgpu_tensor_buffer(t);
    if (!buf || !t->data || !loc || !loc->lookup)
        return;
    uint64_t id;
    uintptr_t base;
    if (!loc->lookup(loc->user, buf, &id, &base))
        return;
    uintptr_t p = (uintptr_t)t->data;
    if (p < base)
        return;
    *buffer = id;
    *offset = (uint64_t)(p - base);
}

/* Plain fields of a wire tensor; location, references and name left zero. */
static void wire_plain(const struct ggml_tensor *t, struct vgpu_wire_tensor *w)
{
    memset(w, 0, sizeof(*w));
    w->type = (uint32_t)t->type;
    w->op = (uint32_t)t->op;
    w->flags = t->flags;
    for (int i = 0; i < VGPU_MAX_DIMS; i++) {
        w->ne[i] = t->ne[i];
        w->nb[i] = (uint64_t)t->nb[i];
    }
    memcpy(w->op_params, t->op_params, sizeof(w->op_params));
    w->view_offs = (uint64_t)t->view_offs;
}

static void copy_name(char *dst, const char *src)
{
    size_t n = strnlen(src, VGPU_MAX_NAME - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void vgpu_wire_from_tensor(const struct ggml_tensor *t, const struct vgpu_locator *loc, struct vgpu_wire_tensor *w)
{
    wire_plain(t, w);
    vgpu_tensor_location(t, loc, &w->buffer, &w->data);
    copy_name(w->name, t->name);
}

bool vgpu_tensor_fits_rpc(const struct ggml_tensor *t)
{
    for (int i = 0; i < VGPU_MAX_DIMS; i++) {
        if (t->ne[i] < 0 || (uint64_t)t->ne[i] > UINT32_MAX || (uint64_t)t->nb[i] > UINT32_MAX)
            return false;
    }
    return true;
}

/* Baseline rpc tensor without references. */
static bool rpc_plain(const struct ggml_tensor *t, const struct vgpu_locator *loc, uint64_t id,
                      struct vgpu_rpc_tensor *r)
{
    memset(r, 0, sizeof(*r));
    if (!vgpu_tensor_fits_rpc(t))
        return false;
    r->id = id;
    r->type = (uint32_t)t->type;
    for (int i = 0; i < VGPU_MAX_DIMS; i++) {
        r->ne[i] = (uint32_t)t->ne[i];
        r->nb[i] = (uint32_t)t->nb[i];
    }
    r->op = (uint32_t)t->op;
    memcpy(r->op_params, t->op_params, sizeof(r->op_params));
    r->flags = t->flags;
    r->view_offs = (uint64_t)t->view_offs;
    vgpu_tensor_location(t, loc, &r->buffer, &r->data);
    copy_name(r->name, t->name);
    return true;
}

bool vgpu_rpc_from_tensor(const struct ggml_tensor *t, const struct vgpu_locator *loc, uint64_t id,
                          struct vgpu_rpc_tensor *r)
{
    return rpc_plain(t, loc, id, r);
}

/* ---- op signature ---------------------------------------------------------------------- */

static int list_find(const struct ggml_tensor *const *list, uint32_t n, const struct ggml_tensor *t)
{
    for (uint32_t i = 0; i < n; i++) {
        if (list[i] == t)
            return (int)i;
    }
    return -1;
}

size_t vgpu_op_key(const struct ggml_tensor *op, uint8_t out[VGPU_OP_KEY_MAX])
{
    const struct ggml_tensor *list[VGPU_MAX_TENSOR_LIST];
    uint32_t n = 0;
    struct vgpu_wire_tensor subject;
    wire_plain(op, &subject);

    for (int i = 0; i < VGPU_MAX_SRC; i++) {
        const struct ggml_tensor *s = op->src[i];
        if (!s)
            continue;
        int j = list_find(list, n, s);
        if (j < 0) {
            j = (int)n;
            list[n++] = s;
        }
        subject.src[i] = (uint32_t)j + 1;
    }
    if (op->view_src) {
        int j = list_find(list, n, op->view_src);
        if (j < 0 && n < VGPU_MAX_TENSOR_LIST - 1) {
            j = (int)n;
            list[n++] = op->view_src;
        }
        /* With ten distinct sources already listed a distinct view source cannot be named. */
        subject.view_src = j >= 0 ? (uint32_t)j + 1 : 0;
    }

    struct vgpu_enc enc;
    vgpu_enc_init(&enc, out, VGPU_OP_KEY_MAX);
    vgpu_enc_u32(&enc, n + 1);
    for (uint32_t i = 0; i < n; i++) {
        struct vgpu_wire_tensor w;
        wire_plain(list[i], &w);
        vgpu_enc_wire_tensor(&enc, &w);
    }
    vgpu_enc_wire_tensor(&enc, &subject);
    return vgpu_enc_used(&enc);
}

/* ---- baseline inline tensor ------------------------------------------------------------------- */

static void raw_plain(const struct ggml_tensor *t, struct vgpu_raw_tensor *r)
{
    memset(r, 0, sizeof(*r));
    r->type = (uint32_t)t->type;
    for (int i = 0; i < VGPU_MAX_DIMS; i++) {
        r->ne[i] = t->ne[i];
        r->nb[i] = (uint64_t)t->nb[i];
    }
    r->op = (uint32_t)t->op;
    memcpy(r->op_params, t->op_params, sizeof(r->op_params));
    r->flags = t->flags;
    r->view_offs = (uint64_t)t->view_offs;
}

bool vgpu_inline_from_op(const struct ggml_tensor *op, struct vgpu_inline_tensor *it)
{
    memset(it, 0, sizeof(*it));
    if (!vgpu_tensor_fits_rpc(op))
        return false;
    raw_plain(op, &it->op);
    bool gap = false;
    for (int i = 0; i < VGPU_MAX_SRC; i++) {
        const struct ggml_tensor *s = op->src[i];
        if (!s) {
            gap = true;
            continue;
        }
        if (gap || !vgpu_tensor_fits_rpc(s))
            return false;
        it->op.src[i] = (uint64_t)i + 1; /* presence marker, never an address */
        raw_plain(s, &it->src[it->n_src++]);
    }
    return true;
}

/* ---- graphs ------------------------------------------------------------------------------------- */

int32_t vgpu_graph_use_count(const struct ggml_cgraph *g, const struct ggml_tensor *t)
{
    if (!g->use_counts || !g->visited_hash_set.keys || !g->visited_hash_set.used || g->visited_hash_set.size == 0)
        return 0;
    size_t i = ggml_hash_find(&g->visited_hash_set, t);
    if (i == GGML_HASHSET_FULL || !ggml_bitset_get(g->visited_hash_set.used, i) || g->visited_hash_set.keys[i] != t)
        return 0;
    return g->use_counts[i];
}

static size_t map_slot(const struct vgpu_graph_image *img, const struct ggml_tensor *t)
{
    uint64_t h = (uint64_t)(uintptr_t)t;
    h ^= h >> 29;
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 32;
    return (size_t)h & (img->map_cap - 1);
}

static uint32_t map_get(const struct vgpu_graph_image *img, const struct ggml_tensor *t)
{
    if (!img->map_cap)
        return MAP_ABSENT;
    for (size_t i = map_slot(img, t);; i = (i + 1) & (img->map_cap - 1)) {
        if (img->map_keys[i] == t)
            return img->map_vals[i];
        if (!img->map_keys[i])
            return MAP_ABSENT;
    }
}

/* Inserts or updates; the table never fills (kept at most half full). */
static void map_put(struct vgpu_graph_image *img, const struct ggml_tensor *t, uint32_t v)
{
    for (size_t i = map_slot(img, t);; i = (i + 1) & (img->map_cap - 1)) {
        if (img->map_keys[i] == t || !img->map_keys[i]) {
            img->map_keys[i] = t;
            img->map_vals[i] = v;
            return;
        }
    }
}

/* Makes room for `entries` keys at load <= 1/2, emptying the map. */
static bool map_reset(struct vgpu_graph_image *img, size_t entries)
{
    size_t cap = 64;
    while (cap < 2 * entries + 2) {
        if (cap > SIZE_MAX / 4)
            return false;
        cap *= 2;
    }
    if (cap > img->map_cap) {
        const struct ggml_tensor **k = realloc(img->map_keys, cap * sizeof(*k));
        if (!k)
            return false;
        img->map_keys = k;
        uint32_t *v = realloc(img->map_vals, cap * sizeof(*v));
        if (!v)
            return false;
        img->map_vals = v;
        img->map_cap = cap;
    }
    memset(img->map_keys, 0, img->map_cap * sizeof(*img->map_keys));
    return true;
}

static bool map_grow(struct vgpu_graph_image *img, size_t entries)
{
    if (2 * entries + 2 <= img->map_cap)
        return true;
    const struct ggml_tensor **old_k = img->map_keys;
    uint32_t *old_v = img->map_vals;
    size_t old_cap = img->map_cap;
    img->map_keys = NULL;
    img->map_vals = NULL;
    img->map_cap = 0;
    if (!map_reset(img, entries * 2)) {
        free(img->map_keys);
        free(img->map_vals);
        img->map_keys = old_k;
        img->map_vals = old_v;
        img->map_cap = old_cap;
        return false;
    }
    for (size_t i = 0; i < old_cap; i++) {
        if (old_k[i])
            map_put(img, old_k[i], old_v[i]);
    }
    free(old_k);
    free(old_v);
    return true;
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem)
            return false;
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

/* Tensors reached so far (written or on the stack). */
static size_t seen_count(const struct vgpu_graph_image *img, size_t depth)
{
    return (size_t)img->n_tensors + depth;
}

/* Walks from root, appending every not-yet-written tensor after its references. */
static int walk(struct vgpu_graph_image *img, const struct ggml_tensor *root, char *why, size_t why_size)
{
    uint32_t st = map_get(img, root);
    if (st != MAP_ABSENT) {
        if (st == MAP_IN_WALK) {
            snprintf(why, why_size, "the graph has a cycle through '%s'", root->name);
            return -1;
        }
        return 0;
    }
    size_t depth = 0;
    if (!grow((void **)&img->stack, &img->stack_cap, 1, sizeof(*img->stack)) || !map_grow(img, seen_count(img, 1)))
        goto oom;
    img->stack[depth++] = (struct vgpu_dfs_frame){ root, 0 };
    map_put(img, root, MAP_IN_WALK);

    while (depth) {
        struct vgpu_dfs_frame *f = &img->stack[depth - 1];
        if (f->next <= DFS_VIEW_SRC) {
            const struct ggml_tensor *c = f->next == DFS_VIEW_SRC ? f->t->view_src : f->t->src[f->next];
            f->next++;
            /* ggml_cast makes a CPY node whose src[1] is the node itself: a self-reference,
             * written as the tensor's own index (docs/PROTOCOL.md), not a cycle. */
            if (!c || c == f->t)
                continue;
            uint32_t cs = map_get(img, c);
            if (cs == MAP_IN_WALK) {
                snprintf(why, why_size, "the graph has a cycle through '%s'", c->name);
                return -1;
            }
            if (cs != MAP_ABSENT)
                continue;
            if (!grow((void **)&img->stack, &img->stack_cap, depth + 1, sizeof(*img->stack)) ||
                !map_grow(img, seen_count(img, depth + 1)))
                goto oom;
            img->stack[depth++] = (struct vgpu_dfs_frame){ c, 0 };
            map_put(img, c, MAP_IN_WALK);
            continue;
        }
        /* Every reference is written: write this one. */
        if (img->n_tensors >= UINT32_MAX - 2) {
            snprintf(why, why_size, "the graph has too many tensors");
            return -1;
        }
        if (!grow((void **)&img->tensors, &img->tensors_cap, (size_t)img->n_tensors + 1, sizeof(*img->tensors)))
            goto oom;
        img->tensors[img->n_tensors] = f->t;
        map_put(img, f->t, img->n_tensors);
        img->n_tensors++;
        depth--;
    }
    return 0;
oom:
    snprintf(why, why_size, "out of memory serializing the graph");
    return -1;
}

uint32_t vgpu_graph_index_of(const struct vgpu_graph_image *img, const struct ggml_tensor *t)
{
    uint32_t v = map_get(img, t);
    return v >= MAP_ABSENT ? UINT32_MAX : v;
}

static uint32_t ref_of(const struct vgpu_graph_image *img, const struct ggml_tensor *t)
{
    return t ? map_get(img, t) + 1 : 0;
}

static int write_ext(struct vgpu_graph_image *img, const struct ggml_cgraph *g, const struct vgpu_locator *loc)
{
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, img->data, img->size);
    vgpu_enc_u32(&enc, VGPU_GRAPH_MAGIC);
    vgpu_enc_u32(&enc, img->n_tensors);
    vgpu_enc_u32(&enc, img->n_nodes);
    vgpu_enc_u32(&enc, 0);
    for (uint32_t i = 0; i < img->n_tensors; i++) {
        const struct ggml_tensor *t = img->tensors[i];
        struct vgpu_wire_tensor w;
        vgpu_wire_from_tensor(t, loc, &w);
        if (w.buffer && loc->weights && loc->weights(loc->user, vgpu_tensor_buffer(t)))
            w.flags |= VGPU_TENSOR_FLAG_WEIGHTS;
        w.use_count = vgpu_graph_use_count(g, t);
        for (int s = 0; s < VGPU_MAX_SRC; s++)
            w.src[s] = ref_of(img, t->src[s]);
        w.view_src = ref_of(img, t->view_src);
        vgpu_enc_wire_tensor(&enc, &w);
    }
    for (uint32_t i = 0; i < img->n_nodes; i++)
        vgpu_enc_u32(&enc, map_get(img, g->nodes[i]));
    return vgpu_enc_ok(&enc) && vgpu_enc_used(&enc) == img->size ? 0 : -1;
}

static int write_baseline(struct vgpu_graph_image *img, const struct ggml_cgraph *g, const struct vgpu_locator *loc,
                          char *why, size_t why_size)
{
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, img->data, img->size);
    vgpu_enc_u32(&enc, img->n_nodes);
    for (uint32_t i = 0; i < img->n_nodes; i++)
        vgpu_enc_u64(&enc, (uint64_t)map_get(img, g->nodes[i]) + 1);
    vgpu_enc_u32(&enc, img->n_tensors);
    for (uint32_t i = 0; i < img->n_tensors; i++) {
        const struct ggml_tensor *t = img->tensors[i];
        struct vgpu_rpc_tensor r;
        if (!rpc_plain(t, loc, (uint64_t)i + 1, &r)) {
            snprintf(why, why_size, "tensor '%s' has a shape or stride above 32 bits, which the baseline "
                     "protocol cannot carry", t->name);
            return -1;
        }
        for (int s = 0; s < VGPU_MAX_SRC; s++)
            r.src[s] = ref_of(img, t->src[s]);
        r.view_src = ref_of(img, t->view_src);
        vgpu_enc_rpc_tensor(&enc, &r);
    }
    if (!vgpu_enc_ok(&enc) || vgpu_enc_used(&enc) != img->size) {
        snprintf(why, why_size, "internal error: graph image size");
        return -1;
    }
    return 0;
}

int vgpu_graph_serialize(struct vgpu_graph_image *img, const struct ggml_cgraph *g, const struct vgpu_locator *loc,
                         enum vgpu_graph_form form, char *why, size_t why_size)
{
    img->size = 0;
    img->n_tensors = 0;
    img->n_nodes = 0;
    if (g->n_nodes < 0) {
        snprintf(why, why_size, "invalid graph");
        return -1;
    }
    img->n_nodes = (uint32_t)g->n_nodes;
    /* Typical graphs reach about twice as many tensors as they have nodes. */
    if (!map_reset(img, (size_t)img->n_nodes * 2 + 16)) {
        snprintf(why, why_size, "out of memory serializing the graph");
        return -1;
    }
    for (uint32_t i = 0; i < img->n_nodes; i++) {
        if (!g->nodes[i]) {
            snprintf(why, why_size, "graph node %u is NULL", i);
            return -1;
        }
        if (walk(img, g->nodes[i], why, why_size) != 0)
            return -1;
    }

    uint64_t size = form == VGPU_GRAPH_FORM_EXT ? vgpu_graph_image_size(img->n_tensors, img->n_nodes)
                                                : vgpu_rpc_graph_size(img->n_nodes, img->n_tensors);
    if (size == 0 || size > SIZE_MAX) {
        snprintf(why, why_size, "the graph is too large");
        return -1;
    }
    if (!grow((void **)&img->data, &img->data_cap, (size_t)size, 1)) {
        snprintf(why, why_size, "out of memory (%llu-byte graph image)", (unsigned long long)size);
        return -1;
    }
    img->size = (size_t)size;
    if (form == VGPU_GRAPH_FORM_EXT) {
        if (write_ext(img, g, loc) != 0) {
            snprintf(why, why_size, "internal error: graph image size");
            return -1;
        }
        return 0;
    }
    return write_baseline(img, g, loc, why, why_size);
}

void vgpu_graph_image_free(struct vgpu_graph_image *img)
{
    free(img->data);
    free(img->tensors);
    free(img->map_keys);
    free(img->map_vals);
    free(img->stack);
    memset(img, 0, sizeof(*img));
}
