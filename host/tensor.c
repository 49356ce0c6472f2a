/*
 * Wire tensors → validated host tensors; contracts in tensor.h.
 */
#include "tensor.h"

#include <string.h>

#include "context.h"
#include "ext.h"

#define KNOWN_FLAGS (GGML_TENSOR_FLAG_INPUT | GGML_TENSOR_FLAG_OUTPUT | GGML_TENSOR_FLAG_PARAM | \
                     GGML_TENSOR_FLAG_LOSS | GGML_TENSOR_FLAG_COMPUTE)

_Static_assert(GGML_MAX_NAME == VGPU_MAX_NAME, "name size");
_Static_assert(GGML_MAX_SRC == VGPU_MAX_SRC, "src count");
_Static_assert(GGML_MAX_OP_PARAMS / sizeof(int32_t) == VGPU_OP_PARAMS_I32, "op_params");

static bool mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static bool add_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }

uint32_t vgpu_tensor_shape(const struct vgpu_ctx *ctx, uint32_t type, const int64_t ne[GGML_MAX_DIMS],
                           const uint64_t nb[GGML_MAX_DIMS], uint64_t *extent)
{
    if (type >= GGML_TYPE_COUNT)
        return vgpu_fail(ctx, VGPU_INVALID, "tensor type %u out of range", type);
    const uint64_t tsize = ggml_type_size((enum ggml_type)type);
    const int64_t blck = ggml_blck_size((enum ggml_type)type);
    if (tsize == 0 || blck <= 0)
        return vgpu_fail(ctx, VGPU_INVALID, "tensor type %u has no size (removed type)", type);

    int64_t nel = 1;
    bool empty = false;
    for (int i = 0; i < GGML_MAX_DIMS; i++) {
        if (ne[i] < 0 || ne[i] > VGPU_MAX_NE)
            return vgpu_fail(ctx, VGPU_INVALID, "ne[%d] = %lld out of range", i, (long long)ne[i]);
        if (nb[i] > VGPU_MAX_NB)
            return vgpu_fail(ctx, VGPU_INVALID, "nb[%d] = %llu out of range", i,
                             (unsigned long long)nb[i]);
        if (ne[i] == 0)
            empty = true;
        else if (!empty && (__builtin_mul_overflow(nel, ne[i], &nel) || nel > VGPU_MAX_NELEMENTS))
            return vgpu_fail(ctx, VGPU_INVALID, "too many elements");
    }
    if (ne[0] % blck != 0)
        return vgpu_fail(ctx, VGPU_INVALID, "ne[0] = %lld is not a multiple of the block size %lld of %s",
                         (long long)ne[0], (long long)blck, ggml_type_name((enum ggml_type)type));
    if (blck > 1 && nb[0] != tsize)
        return vgpu_fail(ctx, VGPU_INVALID, "nb[0] = %llu differs from the block size %llu of %s",
                         (unsigned long long)nb[0], (unsigned long long)tsize,
                         ggml_type_name((enum ggml_type)type));

    /* Every dimension takes part, size-1 ones included; an empty tensor has no bytes. */
    uint64_t ext;
    int first;
    if (blck == 1) {
        ext = tsize;
        first = 0;
    } else if (!mul_u64((uint64_t)(ne[0] / blck), tsize, &ext)) {
        return vgpu_fail(ctx, VGPU_INVALID, "tensor extent overflows");
    } else {
        first = 1;
    }
    for (int i = first; i < GGML_MAX_DIMS; i++) {
        uint64_t span;
        if (ne[i] == 0)
            continue;
        if (!mul_u64((uint64_t)(ne[i] - 1), nb[i], &span) || !add_u64(ext, span, &ext))
            return vgpu_fail(ctx, VGPU_INVALID, "tensor extent overflows");
    }
    if (empty)
        ext = 0;
    *extent = ext;
    return VGPU_OK;
}

uint32_t vgpu_tensor_build(struct vgpu_ctx *ctx, const struct vgpu_tdesc *d, enum vgpu_tensor_mode mode,
                           struct ggml_tensor *arr, struct vgpu_tinfo *info, uint32_t idx)
{
    uint64_t extent;
    uint32_t r = vgpu_tensor_shape(ctx, d->type, d->ne, d->nb, &extent);
    if (r != VGPU_OK)
        return r;
    if (d->op >= GGML_OP_COUNT)
        return vgpu_fail(ctx, VGPU_INVALID, "tensor op %u out of range", d->op);
    /*
     * Sources point back, which rules out cycles. The one exception is what ggml itself builds:
     * ggml_cast() makes a CPY whose src[1] (the destination) is the result tensor.
     */
    for (int i = 0; i < GGML_MAX_SRC; i++) {
        bool self_ok = d->op == GGML_OP_CPY && i == 1 && d->src[i] == (int32_t)idx;
        if ((d->src[i] >= (int32_t)idx && !self_ok) || d->src[i] < -1)
            return vgpu_fail(ctx, VGPU_INVALID, "tensor %u: src[%d] is not an earlier tensor", idx, i);
    }
    if (d->view_src >= (int32_t)idx || d->view_src < -1)
        return vgpu_fail(ctx, VGPU_INVALID, "tensor %u: view_src is not an earlier tensor", idx);

    struct vgpu_tinfo ti = { NULL, 0, extent, (d->flags & VGPU_TENSOR_FLAG_WEIGHTS) != 0 };
    uint8_t *data = NULL;
    if (mode != VGPU_TENSOR_NO_BUFFER) {
        if (d->buffer == 0) {
            if (mode == VGPU_TENSOR_BUFFER_REQUIRED)
                return vgpu_fail(ctx, VGPU_INVALID, "tensor %u '%s' has no buffer", idx, d->name);
            if (d->data != 0)
                return vgpu_fail(ctx, VGPU_INVALID, "tensor %u has data 0x%llx but no buffer", idx,
                                 (unsigned long long)d->data);
        } else {
            struct vgpu_buffer *b;
            r = vgpu_ctx_buffer(ctx, d->buffer, &b);
            if (r != VGPU_OK)
                return r;
            if (d->data > b->size || extent > b->size - d->data)
                return vgpu_fail(ctx, VGPU_INVALID,
                                 "tensor %u '%s': [%llu, +%llu) leaves its buffer of %llu bytes", idx,
                                 d->name, (unsigned long long)d->data, (unsigned long long)extent,
                                 (unsigned long long)b->size);
            ti.buf = b;
            ti.off = d->data;
            data = b->base ? b->base + d->data : NULL;
        }
        if (d->view_src >= 0) {
            const struct vgpu_tinfo *vs = &info[d->view_src];
            if (vs->buf != ti.buf)
                return vgpu_fail(ctx, VGPU_INVALID, "tensor %u: view in another buffer than its source", idx);
            uint64_t want;
            if (ti.buf && (!add_u64(vs->off, d->view_offs, &want) || want != ti.off))
                return vgpu_fail(ctx, VGPU_INVALID,
                                 "tensor %u: view data is not its source's data + view_offs", idx);
        }
    }

    struct ggml_tensor *t = &arr[idx];
    memset(t, 0, sizeof(*t));
    t->type = (enum ggml_type)d->type;
    t->buffer = ti.buf ? ti.buf->buf : NULL;
    for (int i = 0; i < GGML_MAX_DIMS; i++) {
        t->ne[i] = d->ne[i];
        t->nb[i] = (size_t)d->nb[i];
    }
    t->op = (enum ggml_op)d->op;
    memcpy(t->op_params, d->op_params, sizeof(t->op_params));
    t->flags = d->flags & KNOWN_FLAGS;
    for (int i = 0; i < GGML_MAX_SRC; i++)
        t->src[i] = d->src[i] >= 0 ? &arr[d->src[i]] : NULL;
    t->view_src = d->view_src >= 0 ? &arr[d->view_src] : NULL;
    t->view_offs = (size_t)d->view_offs;
    t->data = data;
    memcpy(t->name, d->name, sizeof(t->name));
    t->name[sizeof(t->name) - 1] = '\0';
    info[idx] = ti;
    return VGPU_OK;
}

uint32_t vgpu_tensor_check_alloc(struct vgpu_ctx *ctx, const struct ggml_tensor *t,
                                 const struct vgpu_tinfo *info)
{
    if (!info->buf || t->view_src)
        return VGPU_OK;
    ggml_backend_buffer_type_t buft = info->buf->buf->buft;
    if (!buft || !buft->iface.get_alloc_size)
        return VGPU_OK;
    uint64_t need = buft->iface.get_alloc_size(buft, t);
    if (need > info->buf->size || info->off > info->buf->size - need)
        return vgpu_fail(ctx, VGPU_INVALID,
                         "tensor '%s': allocation of %llu bytes at %llu leaves its buffer of %llu bytes",
                         t->name, (unsigned long long)need, (unsigned long long)info->off,
                         (unsigned long long)info->buf->size);
    return VGPU_OK;
}

const char *vgpu_op_name(const struct ggml_tensor *t)
{
    return (unsigned)t->op < GGML_OP_COUNT ? ggml_op_name(t->op) : "?";
}

void vgpu_tensor_make_leaf(struct ggml_tensor *t)
{
    t->op = GGML_OP_NONE;
    memset(t->op_params, 0, sizeof(t->op_params));
    for (int i = 0; i < GGML_MAX_SRC; i++)
        t->src[i] = NULL;
}

uint32_t vgpu_range_check(const struct vgpu_ctx *ctx, const char *what, uint64_t offset, uint64_t size,
                          uint64_t n_copies, uint64_t stride, uint64_t limit, uint64_t *end)
{
    uint64_t last, e;
    if (n_copies == 0)
        return vgpu_fail(ctx, VGPU_INVALID, "%s: n_copies is 0", what);
    if (!mul_u64(n_copies - 1, stride, &last) || !add_u64(offset, last, &e) || !add_u64(e, size, &e))
        return vgpu_fail(ctx, VGPU_INVALID, "%s: range overflows", what);
    if (e > limit)
        return vgpu_fail(ctx, VGPU_INVALID, "%s: range ends at %llu, past %llu", what,
                         (unsigned long long)e, (unsigned long long)limit);
    /* Copies that move more bytes than the range holds overlap: only host time would be spent. */
    if (size && n_copies > limit / size)
        return vgpu_fail(ctx, VGPU_INVALID, "%s: %llu copies of %llu bytes exceed %llu", what,
                         (unsigned long long)n_copies, (unsigned long long)size, (unsigned long long)limit);
    *end = e;
    return VGPU_OK;
}

bool vgpu_tdesc_from_wire(const struct vgpu_wire_tensor *w, uint32_t idx, struct vgpu_tdesc *d)
{
    memset(d, 0, sizeof(*d));
    d->type = w->type;
    d->op = w->op;
    d->flags = w->flags;
    d->use_count = w->use_count;
    for (int i = 0; i < GGML_MAX_DIMS; i++) {
        d->ne[i] = w->ne[i];
        d->nb[i] = w->nb[i];
    }
    memcpy(d->op_params, w->op_params, sizeof(d->op_params));
    d->buffer = w->buffer;
    d->data = w->data;
    bool ok = true;
    for (int i = 0; i < GGML_MAX_SRC; i++) {
        d->src[i] = (int32_t)(w->src[i] - 1u); /* unsigned: no overflow for any wire value */
        if (w->src[i] > idx + 1) /* 1 + index with index < idx, or idx itself (see below) */
            ok = false;
    }
    d->view_src = (int32_t)(w->view_src - 1u);
    if (w->view_src > idx)
        ok = false;
    if (!ok) { /* keep the values harmless whatever the caller does */
        for (int i = 0; i < GGML_MAX_SRC; i++)
            d->src[i] = -1;
        d->view_src = -1;
    }
    d->view_offs = w->view_offs;
    memcpy(d->name, w->name, sizeof(d->name));
    d->name[sizeof(d->name) - 1] = '\0';
    return ok;
}

void vgpu_tdesc_from_rpc(const struct vgpu_rpc_tensor *r, struct vgpu_tdesc *d)
{
    memset(d, 0, sizeof(*d));
    d->type = r->type;
    d->op = r->op;
    d->flags = r->flags;
    for (int i = 0; i < GGML_MAX_DIMS; i++) {
        d->ne[i] = r->ne[i];
        d->nb[i] = r->nb[i];
    }
    memcpy(d->op_params, r->op_params, sizeof(d->op_params));
    d->buffer = r->buffer;
    d->data = r->data;
    for (int i = 0; i < GGML_MAX_SRC; i++)
        d->src[i] = -1;
    d->view_src = -1;
    d->view_offs = r->view_offs;
    memcpy(d->name, r->name, sizeof(d->name));
    d->name[sizeof(d->name) - 1] = '\0';
}

void vgpu_tdesc_from_raw(const struct vgpu_raw_tensor *r, struct vgpu_tdesc *d)
{
    memset(d, 0, sizeof(*d));
    d->type = r->type;
    d->op = r->op;
    d->flags = r->flags;
    for (int i = 0; i < GGML_MAX_DIMS; i++) {
        d->ne[i] = r->ne[i];
        d->nb[i] = r->nb[i];
    }
    memcpy(d->op_params, r->op_params, sizeof(d->op_params));
    for (int i = 0; i < GGML_MAX_SRC; i++)
        d->src[i] = -1;
    d->view_src = -1;
    d->view_offs = r->view_offs;
    memcpy(d->name, r->name, sizeof(d->name));
    d->name[sizeof(d->name) - 1] = '\0';
}
