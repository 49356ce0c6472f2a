/*
 * Buffer-type and buffer commands: baseline 10..14, 16..21 and EXT_BUFFER_* / EXT_TENSOR_*.
 *
 * Every tensor comes through tensor.c (type, shape, extent inside its buffer), every range
 * through vgpu_range_check / vgpu_res_range, and zero-copy buffers are re-checked before use,
 * all before the backend's buffer functions are called.
 */
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "dispatch.h"
#include "ext.h"
#include "tensor.h"
#include "wire.h"

/* ---- helpers --------------------------------------------------------------------------------------- */

/* A single tensor (transfers, copies, init): in a buffer, no sources, built as a data leaf. */
static uint32_t one_tensor(struct vgpu_ctx *ctx, const struct vgpu_tdesc *d, struct ggml_tensor *t,
                           struct vgpu_tinfo *ti)
{
    uint32_t r = vgpu_tensor_build(ctx, d, VGPU_TENSOR_BUFFER_REQUIRED, t, ti, 0);
    if (r != VGPU_OK)
        return r;
    vgpu_tensor_make_leaf(t);
    return vgpu_buffer_check_live(ctx, ti->buf);
}

static uint32_t wire_tensor(struct vgpu_ctx *ctx, const struct vgpu_wire_tensor *w, struct ggml_tensor *t,
                            struct vgpu_tinfo *ti)
{
    struct vgpu_tdesc d;
    if (!vgpu_tdesc_from_wire(w, 0, &d))
        return vgpu_fail(ctx, VGPU_INVALID, "a single tensor cannot have sources or a view source");
    return one_tensor(ctx, &d, t, ti);
}

/* Baseline: src and view_src ids (guest pointers) are not needed to move data and are ignored. */
static uint32_t rpc_tensor(struct vgpu_ctx *ctx, const struct vgpu_rpc_tensor *rt, struct ggml_tensor *t,
                           struct vgpu_tinfo *ti)
{
    struct vgpu_tdesc d;
    vgpu_tdesc_from_rpc(rt, &d);
    return one_tensor(ctx, &d, t, ti);
}

/* ---- async copies inside batches -------------------------------------------------------------------- */

/*
 * The backend whose stream may carry a copy into or out of t without waiting: only inside a
 * batch (the dispatcher waits at its end and before any command that is not a transfer or a
 * graph compute), only for buffers of the device's own buffer type (what the backend's async
 * copies accept), and only when the backend has them. NULL: copy synchronously.
 */
static ggml_backend_t async_backend(struct vgpu_ctx *ctx, const struct ggml_tensor *t, const struct vgpu_tinfo *ti,
                                    bool set, bool two_d)
{
    if (!ctx->in_batch || !ti || !ti->buf || ti->buf->zero_copy)
        return NULL;
    uint32_t dev = ti->buf->dev;
    if (dev >= ctx->n_devices || dev >= 64)
        return NULL;
    struct vgpu_device *d = &ctx->devices[dev];
    if (!d->buft || t->buffer->buft != d->buft)
        return NULL;
    ggml_backend_t be;
    if (vgpu_ctx_backend(ctx, dev, &be) != VGPU_OK)
        return NULL;
    bool has = set ? (two_d ? be->iface.set_tensor_2d_async != NULL : be->iface.set_tensor_async != NULL)
                   : (two_d ? be->iface.get_tensor_2d_async != NULL : be->iface.get_tensor_async != NULL);
    if (!has)
        return NULL;
    vgpu_ctx_mark_async(ctx, dev);
    return be;
}

void vgpu_ctx_async_wait(struct vgpu_ctx *ctx)
{
    uint64_t m = ctx->async_devs;
    ctx->async_devs = 0;
    ctx->async_guest_mem = false;
    ctx->keep_used = 0;
    ctx->wait_epoch++;
    uint64_t t0 = m ? vgpu_prof_now(&ctx->prof) : 0;
    for (uint32_t i = 0; m && i < ctx->n_devices && i < 64; i++) {
        if ((m & (1ull << i)) && ctx->devices[i].backend)
            ggml_backend_synchronize(ctx->devices[i].backend);
    }
    if (m)
        vgpu_prof_phase(&ctx->prof, VGPU_PROF_ASYNC_WAIT, t0);
}

/* ---- captures of small sets ---------------------------------------------------------------------- */

void vgpu_captures_clear(struct vgpu_ctx *ctx)
{
    ctx->captures.n = 0;
    ctx->captures.used = 0;
}

const uint8_t *vgpu_captures_find(const struct vgpu_ctx *ctx, const struct vgpu_buffer *buf, uint64_t off,
                                  uint64_t size)
{
    const struct vgpu_captures *cs = &ctx->captures;
    for (uint32_t i = 0; i < cs->n; i++) {
        const struct vgpu_capture *c = &cs->c[i];
        if (c->buf == buf && off >= c->off && size <= c->size && off - c->off <= c->size - size)
            return cs->bytes + c->at + (off - c->off);
    }
    return NULL;
}

/*
 * An EXT_TENSOR_SET writes [off, off + span) of buf: captures overlapping it no longer say what
 * the memory holds and go; the set's own bytes (one contiguous row: `data`, span bytes) become
 * a capture when small and there is room.
 */
static void captures_note_set(struct vgpu_ctx *ctx, const struct vgpu_buffer *buf, uint64_t off, uint64_t span,
                              const uint8_t *contiguous)
{
    struct vgpu_captures *cs = &ctx->captures;
    uint32_t k = 0;
    for (uint32_t i = 0; i < cs->n; i++) {
        const struct vgpu_capture *c = &cs->c[i];
        if (!(c->buf == buf && c->off < off + span && off < c->off + c->size))
            cs->c[k++] = *c; /* bytes of dropped captures stay used until the next clear */
    }
    cs->n = k;
    if (!contiguous || span == 0 || span > VGPU_CAPTURE_MAX_SET || cs->n == VGPU_CAPTURE_SLOTS ||
        span > VGPU_CAPTURE_BYTES - cs->used)
        return;
    memcpy(cs->bytes + cs->used, contiguous, (size_t)span);
    cs->c[cs->n++] = (struct vgpu_capture){ buf, off, span, cs->used };
    cs->used += (uint32_t)span;
}

/*
 * A queued copy uses `data` (n rows of size bytes, sd apart): unless that is pinned host buffer
 * memory (vgpu_host_buffer_pinned), it must be done before the reply (VGPU_BATCH_NO_WAIT).
 */
static void note_guest_mem(struct vgpu_ctx *ctx, const uint8_t *data, uint64_t size, uint64_t n, uint64_t sd)
{
    if (!vgpu_host_buffer_pinned(ctx, data, (n - 1) * sd + size))
        ctx->async_guest_mem = true;
}

/*
 * The source of a queued set: pinned host buffer memory as it is; other bytes (the request's, a
 * staging resource's, an unpinned host buffer's) copied into ctx->keep, which lives until the
 * next wait, when they fit (VGPU_KEEP_BYTES a wait); else `data`, which the reply must then wait
 * for (VGPU_BATCH_NO_WAIT). The keep area is pinned where the GPU runtime allows: llama.cpp's
 * small per-token inputs then go by DMA, as they do natively from its pinned input buffers.
 */
#define VGPU_KEEP_BYTES (1u << 20)
static uint8_t *keep_area(struct vgpu_ctx *ctx)
{
    if (!ctx->keep) {
        void *p = NULL;
        if (posix_memalign(&p, 4096, VGPU_KEEP_BYTES) != 0)
            return NULL;
        ctx->keep = p;
        if (vgpu_host_pin_private(ctx, p, VGPU_KEEP_BYTES))
            vgpu_log(ctx, VGPU_LOG_DEBUG, "the %u-byte set staging area is pinned", VGPU_KEEP_BYTES);
    }
    return ctx->keep;
}
static const uint8_t *set_source(struct vgpu_ctx *ctx, const uint8_t *data, uint64_t size, uint64_t n, uint64_t sd)
{
    uint64_t span = (n - 1) * sd + size;
    if (vgpu_host_buffer_pinned(ctx, data, span))
        return data;
    uint8_t *k = span <= VGPU_KEEP_BYTES - ctx->keep_used ? keep_area(ctx) : NULL;
    if (!k) {
        ctx->async_guest_mem = true;
        return data;
    }
    k += ctx->keep_used;
    memcpy(k, data, (size_t)span);
    ctx->keep_used += ((size_t)span + 63) & ~(size_t)63;
    if (ctx->keep_used > VGPU_KEEP_BYTES)
        ctx->keep_used = VGPU_KEEP_BYTES;
    return k;
}

/*
 * The guest-side bytes of a transfer must not lie in the tensor's own buffer memory. A zero-copy
 * buffer's memory is a guest resource, so a guest can name that same resource as the data of a
 * set or get; the copy would then run between overlapping ranges (memcpy's undefined
 * behaviour; found by fuzz-dispatch). Our guest never does that: it copies zero-copy data
 * itself.
 */
static uint32_t check_no_alias(struct vgpu_ctx *ctx, const struct ggml_tensor *t, const uint8_t *data, uint64_t span)
{
    size_t bsize = ggml_backend_buffer_get_size(t->buffer);
    const uint8_t *base = bsize ? ggml_backend_buffer_get_base(t->buffer) : NULL;
    if (!base || (uintptr_t)data >= (uintptr_t)base + bsize || (uintptr_t)base >= (uintptr_t)data + span)
        return VGPU_OK;
    return vgpu_fail(ctx, VGPU_INVALID, "transfer data overlaps the memory of the tensor's own buffer");
}

static uint32_t do_set(struct vgpu_ctx *ctx, struct ggml_tensor *t, const struct vgpu_tinfo *ti, const uint8_t *data,
                       uint64_t offset, uint64_t size, uint64_t n, uint64_t st, uint64_t sd)
{
    ggml_backend_buffer_t b = t->buffer;
    if (size == 0)
        return VGPU_OK;
    uint32_t r = check_no_alias(ctx, t, data, (n - 1) * sd + size);
    if (r != VGPU_OK)
        return r;
    ggml_backend_t be = async_backend(ctx, t, ti, true, n > 1);
    if (be) {
        data = set_source(ctx, data, size, n, sd);
        if (n > 1)
            be->iface.set_tensor_2d_async(be, t, data, offset, size, n, st, sd);
        else
            be->iface.set_tensor_async(be, t, data, offset, size);
        return VGPU_OK;
    }
    vgpu_ctx_async_wait(ctx); /* queued copies or computes may use this memory */
    if (n > 1 && b->iface.set_tensor_2d) {
        b->iface.set_tensor_2d(b, t, data, offset, size, n, st, sd);
        return VGPU_OK;
    }
    if (!b->iface.set_tensor)
        return vgpu_fail(ctx, VGPU_BACKEND, "buffer has no set_tensor");
    for (uint64_t i = 0; i < n; i++)
        b->iface.set_tensor(b, t, data + i * sd, offset + i * st, size);
    return VGPU_OK;
}

static uint32_t do_get(struct vgpu_ctx *ctx, const struct ggml_tensor *t, const struct vgpu_tinfo *ti, uint8_t *data,
                       uint64_t offset, uint64_t size, uint64_t n, uint64_t st, uint64_t sd)
{
    ggml_backend_buffer_t b = t->buffer;
    if (size == 0)
        return VGPU_OK;
    uint32_t r = check_no_alias(ctx, t, data, (n - 1) * sd + size);
    if (r != VGPU_OK)
        return r;
    ggml_backend_t be = async_backend(ctx, t, ti, false, n > 1);
    if (be) {
        if (n > 1)
            be->iface.get_tensor_2d_async(be, t, data, offset, size, n, st, sd);
        else
            be->iface.get_tensor_async(be, t, data, offset, size);
        note_guest_mem(ctx, data, size, n, sd);
        return VGPU_OK;
    }
    vgpu_ctx_async_wait(ctx);
    if (n > 1 && b->iface.get_tensor_2d) {
        b->iface.get_tensor_2d(b, t, data, offset, size, n, st, sd);
        return VGPU_OK;
    }
    if (!b->iface.get_tensor)
        return vgpu_fail(ctx, VGPU_BACKEND, "buffer has no get_tensor");
    for (uint64_t i = 0; i < n; i++)
        b->iface.get_tensor(b, t, data + i * sd, offset + i * st, size);
    return VGPU_OK;
}

static uint32_t buft_device(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_device **out)
{
    uint64_t id = vgpu_dec_u64(dec);
    VGPU_DEC_CHECK(dec);
    uint32_t dev;
    uint32_t r = vgpu_ctx_buft(ctx, id, &dev);
    if (r == VGPU_OK)
        *out = &ctx->devices[dev];
    return r;
}

/* ---- baseline buffer types ----------------------------------------------------------------------- */

uint32_t vgpu_cmd_buft_get_name(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    struct vgpu_device *d;
    uint32_t r = buft_device(ctx, dec, &d);
    if (r != VGPU_OK)
        return r;
    vgpu_enc_string(enc, ggml_backend_buft_name(d->buft));
    return VGPU_OK;
}

uint32_t vgpu_cmd_buft_get_alignment(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    struct vgpu_device *d;
    uint32_t r = buft_device(ctx, dec, &d);
    if (r != VGPU_OK)
        return r;
    vgpu_enc_u64(enc, ggml_backend_buft_get_alignment(d->buft));
    return VGPU_OK;
}

uint32_t vgpu_cmd_buft_get_max_size(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    struct vgpu_device *d;
    uint32_t r = buft_device(ctx, dec, &d);
    if (r != VGPU_OK)
        return r;
    vgpu_enc_u64(enc, ggml_backend_buft_get_max_size(d->buft));
    return VGPU_OK;
}

uint32_t vgpu_cmd_buft_is_host(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    /* Deprecated upstream; its request is ignored and the answer is always false. */
    (void)ctx;
    (void)dec;
    vgpu_enc_bool(enc, false);
    return VGPU_OK;
}

uint32_t vgpu_cmd_buft_alloc_buffer(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    struct vgpu_device *d;
    uint32_t r = buft_device(ctx, dec, &d);
    uint64_t size = vgpu_dec_u64(dec);
    VGPU_DEC_CHECK(dec);
    if (r != VGPU_OK)
        return r;
    struct vgpu_buffer *b;
    if ((r = vgpu_ctx_buffer_alloc(ctx, (uint32_t)(d - ctx->devices), size, 0, NULL, 0, 0, &b)) != VGPU_OK)
        return r;
    vgpu_enc_u64(enc, b->id);
    return VGPU_OK;
}

/* ---- baseline buffers ---------------------------------------------------------------------------- */

uint32_t vgpu_cmd_buffer_get_base(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint64_t id = vgpu_dec_u64(dec);
    VGPU_DEC_CHECK(dec);
    struct vgpu_buffer *b;
    uint32_t r = vgpu_ctx_buffer(ctx, id, &b);
    if (r != VGPU_OK)
        return r;
    /* A nominal base: guests only turn tensor->data back into offsets with it. */
    vgpu_enc_u64(enc, vgpu_nominal_base(b->id));
    return VGPU_OK;
}

/* BUFFER_SET_TENSOR / BUFFER_GET_TENSOR: u64 buffer, rpc tensor, u32 res_id, u64 offset, u64 size. */
static uint32_t baseline_transfer(struct vgpu_ctx *ctx, struct vgpu_dec *dec, bool set)
{
    uint64_t buffer = vgpu_dec_u64(dec);
    struct vgpu_rpc_tensor rt;
    vgpu_dec_rpc_tensor(dec, &rt);
    uint32_t res_id = vgpu_dec_u32(dec);
    uint64_t offset = vgpu_dec_u64(dec);
    uint64_t size = vgpu_dec_u64(dec);
    VGPU_DEC_CHECK(dec);

    struct vgpu_buffer *b;
    uint32_t r = vgpu_ctx_buffer(ctx, buffer, &b);
    if (r != VGPU_OK)
        return r;
    if (rt.buffer != buffer)
        return vgpu_fail(ctx, VGPU_INVALID, "tensor '%s' is not in the command's buffer", rt.name);
    struct ggml_tensor t;
    struct vgpu_tinfo ti;
    if ((r = rpc_tensor(ctx, &rt, &t, &ti)) != VGPU_OK)
        return r;
    uint64_t end;
    if ((r = vgpu_range_check(ctx, "tensor range", offset, size, 1, 0, ti.extent, &end)) != VGPU_OK)
        return r;
    uint8_t *data;
    if ((r = vgpu_res_range(ctx, res_id, 0, size, &data)) != VGPU_OK)
        return r;
    if (!set)
        return do_get(ctx, &t, NULL, data, offset, size, 1, 0, 0);
    ti.buf->wgen++; /* repacked copies of its weights are stale (cpu-repack.h), as below */
    return do_set(ctx, &t, NULL, data, offset, size, 1, 0, 0);
}

uint32_t vgpu_cmd_buffer_set_tensor(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    return baseline_transfer(ctx, dec, true);
}

uint32_t vgpu_cmd_buffer_get_tensor(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    return baseline_transfer(ctx, dec, false);
}

/* src and dst must have the same byte extent and must not partly overlap (H11). */
static uint32_t check_copy(struct vgpu_ctx *ctx, const struct vgpu_tinfo *s, const struct vgpu_tinfo *d,
                           bool *same)
{
    *same = false;
    if (s->extent != d->extent)
        return vgpu_fail(ctx, VGPU_INVALID, "copy of %llu bytes into a tensor of %llu bytes",
                         (unsigned long long)s->extent, (unsigned long long)d->extent);
    if (s->buf == d->buf && s->extent) {
        if (s->off == d->off) {
            *same = true;
            return VGPU_OK;
        }
        if (s->off < d->off + d->extent && d->off < s->off + s->extent)
            return vgpu_fail(ctx, VGPU_INVALID, "copy between overlapping tensors");
    }
    return VGPU_OK;
}

uint32_t vgpu_cmd_buffer_cpy_tensor(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint64_t buffer = vgpu_dec_u64(dec);
    struct vgpu_rpc_tensor rs, rd;
    vgpu_dec_rpc_tensor(dec, &rs);
    vgpu_dec_rpc_tensor(dec, &rd);
    VGPU_DEC_CHECK(dec);

    struct vgpu_buffer *b;
    uint32_t r = vgpu_ctx_buffer(ctx, buffer, &b);
    if (r != VGPU_OK)
        return r;
    if (rd.buffer != buffer)
        return vgpu_fail(ctx, VGPU_INVALID, "destination '%s' is not in the command's buffer", rd.name);
    struct ggml_tensor src, dst;
    struct vgpu_tinfo si, di;
    if ((r = rpc_tensor(ctx, &rs, &src, &si)) != VGPU_OK || (r = rpc_tensor(ctx, &rd, &dst, &di)) != VGPU_OK)
        return r;
    bool same;
    if ((r = check_copy(ctx, &si, &di, &same)) != VGPU_OK)
        return r;
    bool ok = true;
    if (!same && si.extent) {
        ggml_backend_buffer_t db = dst.buffer;
        di.buf->wgen++;
        ok = db->iface.cpy_tensor && db->iface.cpy_tensor(db, &src, &dst);
    }
    vgpu_enc_bool(enc, ok);
    return VGPU_OK;
}

static uint32_t clear_buffer(struct vgpu_ctx *ctx, uint64_t id, uint32_t value)
{
    struct vgpu_buffer *b;
    uint32_t r = vgpu_ctx_buffer_live(ctx, id, &b);
    if (r != VGPU_OK)
        return r;
    if (value > 255)
        return vgpu_fail(ctx, VGPU_INVALID, "clear value %u", value);
    b->wgen++;
    if (b->size && b->buf->iface.clear)
        b->buf->iface.clear(b->buf, (uint8_t)value);
    return VGPU_OK;
}

uint32_t vgpu_cmd_buffer_clear(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    uint64_t id = vgpu_dec_u64(dec);
    uint8_t value = vgpu_dec_u8(dec);
    VGPU_DEC_CHECK(dec);
    return clear_buffer(ctx, id, value);
}

uint32_t vgpu_cmd_buffer_free(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    uint64_t id = vgpu_dec_u64(dec);
    VGPU_DEC_CHECK(dec);
    return vgpu_ctx_buffer_free(ctx, id);
}

/* ---- extension buffers ----------------------------------------------------------------------------- */

uint32_t vgpu_cmd_ext_buffer_alloc(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t dev = vgpu_dec_u32(dec);
    uint32_t flags = vgpu_dec_u32(dec);
    uint64_t buft = vgpu_dec_u64(dec);
    uint64_t size = vgpu_dec_u64(dec);
    uint32_t res_id = vgpu_dec_u32(dec);
    (void)vgpu_dec_u32(dec);
    VGPU_DEC_CHECK(dec);

    struct vgpu_device *d;
    uint32_t r = vgpu_ctx_device(ctx, dev, &d);
    if (r != VGPU_OK)
        return r;
    if (flags & ~VGPU_ALLOC_ZERO_COPY)
        return vgpu_fail(ctx, VGPU_INVALID, "unknown allocation flags 0x%x", flags);
    if (buft != 0) {
        uint32_t bdev;
        if ((r = vgpu_ctx_buft(ctx, buft, &bdev)) != VGPU_OK)
            return r;
        if (bdev != dev)
            return vgpu_fail(ctx, VGPU_INVALID, "buffer type of device %u used with device %u", bdev, dev);
    }
    struct vgpu_buffer *b;
    uint32_t granted = 0;
    if ((flags & VGPU_ALLOC_ZERO_COPY) && d->zero_copy) {
        uint8_t *p;
        uint64_t res_size;
        if ((r = vgpu_res_get(ctx, res_id, &p, &res_size)) != VGPU_OK)
            return r;
        r = vgpu_ctx_buffer_alloc(ctx, dev, size, res_id, p, res_size, size, &b);
        granted = VGPU_ALLOC_ZERO_COPY;
    } else {
        /* Zero-copy asked of a device that cannot do it: an ordinary buffer, flag 0 in the reply. */
        r = vgpu_ctx_buffer_alloc(ctx, dev, size, 0, NULL, 0, 0, &b);
    }
    if (r != VGPU_OK)
        return r;
    vgpu_enc_u64(enc, b->id);
    vgpu_enc_u64(enc, b->size);
    vgpu_enc_u32(enc, granted);
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_buffer_free(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    return vgpu_cmd_buffer_free(ctx, dec, enc);
}

uint32_t vgpu_cmd_ext_buffer_clear(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    uint64_t id = vgpu_dec_u64(dec);
    uint32_t value = vgpu_dec_u32(dec);
    VGPU_DEC_CHECK(dec);
    return clear_buffer(ctx, id, value);
}

/*
 * Checks a transfer against its tensor and returns the span of its data (end of the last
 * copy in the data), which lies either in a resource or inline.
 */
static uint32_t ext_transfer_check(struct vgpu_ctx *ctx, const struct vgpu_transfer *x, struct ggml_tensor *t,
                                   struct vgpu_tinfo *ti, uint64_t *span)
{
    uint32_t r = wire_tensor(ctx, &x->tensor, t, ti);
    if (r != VGPU_OK)
        return r;
    uint64_t end;
    if ((r = vgpu_range_check(ctx, "tensor range", x->offset, x->size, x->n_copies, x->stride_tensor, ti->extent,
                              &end)) != VGPU_OK)
        return r;
    if ((r = vgpu_range_check(ctx, "data range", 0, x->size, x->n_copies, x->stride_data, UINT64_MAX, span)) !=
        VGPU_OK)
        return r;
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_tensor_set(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    struct vgpu_transfer x;
    vgpu_dec_transfer(dec, &x);
    const uint8_t *inl = NULL;
    size_t inl_len = 0;
    if (x.res_id == 0)
        inl = vgpu_dec_blob(dec, vgpu_dec_left(dec), &inl_len);
    VGPU_DEC_CHECK(dec);

    struct ggml_tensor t;
    struct vgpu_tinfo ti;
    uint64_t span;
    uint32_t r = ext_transfer_check(ctx, &x, &t, &ti, &span);
    if (r != VGPU_OK)
        return r;
    const uint8_t *data;
    if (x.res_id) {
        uint8_t *p;
        if ((r = vgpu_res_range(ctx, x.res_id, x.res_offset, span, &p)) != VGPU_OK)
            return r;
        data = p;
    } else {
        if (inl_len != span)
            return vgpu_fail(ctx, VGPU_INVALID, "inline data of %zu bytes for a transfer of %llu", inl_len,
                             (unsigned long long)span);
        data = inl;
    }
    /* [offset, offset + (n - 1) * stride + size) of the tensor: checked by ext_transfer_check */
    uint64_t written = (x.n_copies - 1) * x.stride_tensor + x.size;
    /* A resource that is also the memory of a zero-copy destination: the ranges must not meet
     * (the copy is a memcpy; found by fuzz-dispatch). */
    if (x.n_copies && ti.buf->base) {
        const uint8_t *dst = ti.buf->base + ti.off + x.offset;
        if (data < dst + written && dst < data + span)
            return vgpu_fail(ctx, VGPU_INVALID, "the source of the set overlaps its destination");
    }
    /* (Zero-copy memory changes without commands: never captured.) */
    captures_note_set(ctx, ti.buf, ti.off + x.offset, x.n_copies ? written : 0,
                      x.n_copies == 1 && !ti.buf->zero_copy ? data : NULL);
    ti.buf->wgen++;
    return do_set(ctx, &t, &ti, data, x.offset, x.size, x.n_copies, x.stride_tensor, x.stride_data);
}

uint32_t vgpu_cmd_ext_tensor_get(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    struct vgpu_transfer x;
    vgpu_dec_transfer(dec, &x);
    VGPU_DEC_CHECK(dec);

    struct ggml_tensor t;
    struct vgpu_tinfo ti;
    uint64_t span;
    uint32_t r = ext_transfer_check(ctx, &x, &t, &ti, &span);
    if (r != VGPU_OK)
        return r;
    uint8_t *data;
    if (x.res_id) {
        if ((r = vgpu_res_range(ctx, x.res_id, x.res_offset, span, &data)) != VGPU_OK)
            return r;
    } else {
        if (span > vgpu_enc_left(enc) || 8 + vgpu_pad4((size_t)span) > vgpu_enc_left(enc))
            return vgpu_fail(ctx, VGPU_INVALID, "%llu bytes of inline data do not fit in the reply",
                             (unsigned long long)span);
        vgpu_enc_u64(enc, span);
        data = vgpu_enc_reserve(enc, (size_t)span); /* zero-filled: gaps between copies stay 0 */
        if (!data)
            return vgpu_fail(ctx, VGPU_INVALID, "inline data does not fit in the reply");
    }
    return do_get(ctx, &t, &ti, data, x.offset, x.size, x.n_copies, x.stride_tensor, x.stride_data);
}

uint32_t vgpu_cmd_ext_tensor_memset(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    struct vgpu_wire_tensor w;
    vgpu_dec_wire_tensor(dec, &w);
    uint64_t offset = vgpu_dec_u64(dec);
    uint64_t size = vgpu_dec_u64(dec);
    uint32_t value = vgpu_dec_u32(dec);
    VGPU_DEC_CHECK(dec);

    struct ggml_tensor t;
    struct vgpu_tinfo ti;
    uint32_t r = wire_tensor(ctx, &w, &t, &ti);
    if (r != VGPU_OK)
        return r;
    if (value > 255)
        return vgpu_fail(ctx, VGPU_INVALID, "memset value %u", value);
    uint64_t end;
    if ((r = vgpu_range_check(ctx, "tensor range", offset, size, 1, 0, ti.extent, &end)) != VGPU_OK)
        return r;
    if (size == 0)
        return VGPU_OK;
    ti.buf->wgen++;
    ggml_backend_buffer_t b = t.buffer;
    if (b->iface.memset_tensor) {
        b->iface.memset_tensor(b, &t, (uint8_t)value, offset, size);
        return VGPU_OK;
    }
    /* No memset in this buffer type: set from a bounded filled chunk. */
    size_t chunk = size < VGPU_COPY_CHUNK ? (size_t)size : VGPU_COPY_CHUNK;
    uint8_t *fill = vgpu_scratch_get(&ctx->copy, chunk);
    if (!fill)
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "no memory for a memset chunk");
    memset(fill, (int)value, chunk);
    for (uint64_t done = 0; done < size; done += chunk) {
        uint64_t n = size - done < chunk ? size - done : chunk;
        if ((r = do_set(ctx, &t, NULL, fill, offset + done, n, 1, 0, 0)) != VGPU_OK)
            return r;
    }
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_tensor_copy(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    struct vgpu_wire_tensor ws, wd;
    vgpu_dec_wire_tensor(dec, &ws);
    vgpu_dec_wire_tensor(dec, &wd);
    VGPU_DEC_CHECK(dec);

    struct ggml_tensor src, dst;
    struct vgpu_tinfo si, di;
    uint32_t r;
    if ((r = wire_tensor(ctx, &ws, &src, &si)) != VGPU_OK || (r = wire_tensor(ctx, &wd, &dst, &di)) != VGPU_OK)
        return r;
    bool same;
    if ((r = check_copy(ctx, &si, &di, &same)) != VGPU_OK)
        return r;
    if (same || si.extent == 0)
        return VGPU_OK;
    di.buf->wgen++;
    ggml_backend_buffer_t db = dst.buffer;
    if (db->iface.cpy_tensor && db->iface.cpy_tensor(db, &src, &dst))
        return VGPU_OK;
    /* The destination cannot copy from this source directly: through host memory, bounded. */
    size_t chunk = si.extent < VGPU_COPY_CHUNK ? (size_t)si.extent : VGPU_COPY_CHUNK;
    uint8_t *tmp = vgpu_scratch_get(&ctx->copy, chunk);
    if (!tmp)
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "no memory for a copy chunk");
    for (uint64_t done = 0; done < si.extent; done += chunk) {
        uint64_t n = si.extent - done < chunk ? si.extent - done : chunk;
        if ((r = do_get(ctx, &src, NULL, tmp, done, n, 1, 0, 0)) != VGPU_OK ||
            (r = do_set(ctx, &dst, NULL, tmp, done, n, 1, 0, 0)) != VGPU_OK)
            return r;
    }
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_tensor_init(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    struct vgpu_wire_tensor w;
    vgpu_dec_wire_tensor(dec, &w);
    VGPU_DEC_CHECK(dec);

    struct ggml_tensor t;
    struct vgpu_tinfo ti;
    uint32_t r = wire_tensor(ctx, &w, &t, &ti);
    if (r != VGPU_OK)
        return r;
    /* init_tensor may touch the padding that get_alloc_size adds: it must be in the buffer too. */
    if ((r = vgpu_tensor_check_alloc(ctx, &t, &ti)) != VGPU_OK)
        return r;
    ggml_backend_buffer_t b = t.buffer;
    if (!b->iface.init_tensor)
        return VGPU_OK;
    ti.buf->wgen++;
    enum ggml_status st = b->iface.init_tensor(b, &t);
    if (st != GGML_STATUS_SUCCESS)
        return vgpu_fail(ctx, VGPU_BACKEND, "init_tensor of '%s' returned status %d", t.name, (int)st);
    if (t.extra)
        return vgpu_fail(ctx, VGPU_UNSUPPORTED,
                         "init_tensor of '%s' attached backend state, which host tensors cannot keep", t.name);
    return VGPU_OK;
}
