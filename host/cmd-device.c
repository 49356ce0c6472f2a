/*
 * Device commands: baseline 0..9 and 15, EXT_HELLO, EXT_DEVICE_INFO/MEMORY, op queries
 * (SUPPORTS_OP, OFFLOAD_OP, GET_ALLOC_SIZE), EXT_SET_N_THREADS, EXT_NOP.
 */
#include <string.h>
#include <unistd.h>

#include "abi.h"
#include "context.h"
#include "dispatch.h"
#include "ext.h"
#include "graph.h"
#include "tensor.h"
#include "validate-op.h"
#include "wire.h"

/* The baseline addresses one device: the backend's first. */
#define BASELINE_DEV 0u

/* ---- op queries ------------------------------------------------------------------------------------- */

/* Room for an op, its GGML_MAX_SRC sources and a view source (baseline raw form). */
#define OPQ_MAX (GGML_MAX_SRC + 2)

struct op_query {
    struct ggml_tensor t[OPQ_MAX];
    struct vgpu_tinfo  info[OPQ_MAX];
    uint32_t           n;     /* the subject is t[n - 1] */
    bool               valid; /* the subject passed vgpu_validate_op */
    char               why[256];
};

static struct ggml_tensor *subject(struct op_query *q) { return &q->t[q->n - 1]; }

static void finish_query(struct op_query *q)
{
    for (uint32_t i = 0; i + 1 < q->n; i++)
        vgpu_tensor_make_leaf(&q->t[i]);
    q->why[0] = '\0';
    q->valid = vgpu_validate_op(subject(q), q->why, sizeof(q->why));
}

/* Extension tensor list: u32 n, then n wire tensors (sources first, the subject last). */
static uint32_t decode_list(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct op_query *q)
{
    uint32_t n = vgpu_dec_u32(dec);
    VGPU_DEC_CHECK(dec);
    if (n == 0 || n > VGPU_MAX_TENSOR_LIST)
        return vgpu_fail(ctx, VGPU_INVALID, "tensor list of %u entries", n);
    for (uint32_t i = 0; i < n; i++) {
        struct vgpu_wire_tensor w;
        struct vgpu_tdesc d;
        if (!vgpu_dec_wire_tensor(dec, &w))
            return VGPU_INVALID;
        if (!vgpu_tdesc_from_wire(&w, i, &d))
            return vgpu_fail(ctx, VGPU_INVALID, "list entry %u refers to an entry that does not precede it", i);
        uint32_t r = vgpu_tensor_build(ctx, &d, VGPU_TENSOR_BUFFER_OPTIONAL, q->t, q->info, i);
        if (r != VGPU_OK)
            return r;
    }
    q->n = n;
    finish_query(q);
    return VGPU_OK;
}

/*
 * Baseline inline form: raw ggml_tensor images. Pointer fields only say whether a part is
 * present; the buffer handle an upstream guest sends (a stack address) is ignored; no data.
 */
static uint32_t decode_inline(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct op_query *q)
{
    struct vgpu_inline_tensor it;
    if (!vgpu_dec_inline_tensor(dec, &it))
        return VGPU_INVALID;
    struct vgpu_tdesc d;
    uint32_t n = 0, r;
    for (int i = 0; i < it.n_src; i++) {
        vgpu_tdesc_from_raw(&it.src[i], &d);
        if ((r = vgpu_tensor_build(ctx, &d, VGPU_TENSOR_NO_BUFFER, q->t, q->info, n++)) != VGPU_OK)
            return r;
    }
    int32_t view = -1;
    if (it.has_view_src) {
        vgpu_tdesc_from_raw(&it.view_src, &d);
        view = (int32_t)n;
        if ((r = vgpu_tensor_build(ctx, &d, VGPU_TENSOR_NO_BUFFER, q->t, q->info, n++)) != VGPU_OK)
            return r;
    }
    vgpu_tdesc_from_raw(&it.op, &d);
    for (int i = 0; i < it.n_src; i++)
        d.src[i] = i;
    d.view_src = view;
    if ((r = vgpu_tensor_build(ctx, &d, VGPU_TENSOR_NO_BUFFER, q->t, q->info, n++)) != VGPU_OK)
        return r;
    q->n = n;
    finish_query(q);
    return VGPU_OK;
}

/* The same answer a graph build gives (vgpu_device_supports_op: the CPU kernel contract too). */
static bool query_supported(struct vgpu_device *d, struct op_query *q)
{
    char why[256];
    return q->valid && vgpu_device_supports_op(d, subject(q), why, sizeof(why));
}

static uint32_t alloc_size(struct vgpu_ctx *ctx, uint32_t dev, struct op_query *q, uint64_t *out)
{
    if (!q->valid)
        return vgpu_fail(ctx, VGPU_INVALID, "%s '%s': %s", vgpu_op_name(subject(q)), subject(q)->name, q->why);
    ggml_backend_buffer_type_t buft = ctx->devices[dev].buft;
    if (buft && buft->iface.get_alloc_size)
        *out = buft->iface.get_alloc_size(buft, subject(q));
    else
        *out = q->info[q->n - 1].extent; /* ggml_nbytes */
    return VGPU_OK;
}

uint32_t vgpu_cmd_device_supports_op(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    struct op_query q;
    uint32_t r = decode_inline(ctx, dec, &q);
    if (r != VGPU_OK)
        return r;
    vgpu_enc_bool(enc, query_supported(&ctx->devices[BASELINE_DEV], &q));
    return VGPU_OK;
}

uint32_t vgpu_cmd_buft_get_alloc_size(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint64_t buft = vgpu_dec_u64(dec);
    struct op_query q;
    uint32_t r = decode_inline(ctx, dec, &q);
    if (r != VGPU_OK)
        return r;
    uint32_t dev;
    if ((r = vgpu_ctx_buft(ctx, buft, &dev)) != VGPU_OK)
        return r;
    uint64_t size;
    if ((r = alloc_size(ctx, dev, &q, &size)) != VGPU_OK)
        return r;
    vgpu_enc_u64(enc, size);
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_get_alloc_size(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t dev = vgpu_dec_u32(dec);
    uint64_t buft = vgpu_dec_u64(dec);
    VGPU_DEC_CHECK(dec);
    struct op_query q;
    uint32_t r = decode_list(ctx, dec, &q);
    if (r != VGPU_OK)
        return r;
    struct vgpu_device *d;
    if ((r = vgpu_ctx_device(ctx, dev, &d)) != VGPU_OK)
        return r;
    uint32_t bdev;
    if ((r = vgpu_ctx_buft(ctx, buft, &bdev)) != VGPU_OK)
        return r;
    if (bdev != dev)
        return vgpu_fail(ctx, VGPU_INVALID, "buffer type of device %u used with device %u", bdev, dev);
    uint64_t size;
    if ((r = alloc_size(ctx, dev, &q, &size)) != VGPU_OK)
        return r;
    vgpu_enc_u64(enc, size);
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_supports_op(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t dev = vgpu_dec_u32(dec);
    VGPU_DEC_CHECK(dec);
    struct op_query q;
    uint32_t r = decode_list(ctx, dec, &q);
    if (r != VGPU_OK)
        return r;
    struct vgpu_device *d;
    if ((r = vgpu_ctx_device(ctx, dev, &d)) != VGPU_OK)
        return r;
    bool ok = query_supported(d, &q);
    if (!q.valid)
        vgpu_log(ctx, VGPU_LOG_DEBUG, "%s '%s' refused: %s", vgpu_op_name(subject(&q)), subject(&q)->name, q.why);
    vgpu_enc_u32(enc, ok ? 1 : 0);
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_offload_op(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t dev = vgpu_dec_u32(dec);
    VGPU_DEC_CHECK(dec);
    struct op_query q;
    uint32_t r = decode_list(ctx, dec, &q);
    if (r != VGPU_OK)
        return r;
    struct vgpu_device *d;
    if ((r = vgpu_ctx_device(ctx, dev, &d)) != VGPU_OK)
        return r;
    bool ok = q.valid && d->dev->iface.offload_op && d->dev->iface.offload_op(d->dev, subject(&q));
    vgpu_enc_u32(enc, ok ? 1 : 0);
    return VGPU_OK;
}

/* ---- baseline device commands ---------------------------------------------------------------------- */

uint32_t vgpu_cmd_device_get_count(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)ctx;
    (void)dec;
    vgpu_enc_i32(enc, 1);
    return VGPU_OK;
}

uint32_t vgpu_cmd_device_get_name(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)dec;
    vgpu_enc_string(enc, ggml_backend_dev_name(ctx->devices[BASELINE_DEV].dev));
    return VGPU_OK;
}

uint32_t vgpu_cmd_device_get_description(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)dec;
    vgpu_enc_string(enc, ggml_backend_dev_description(ctx->devices[BASELINE_DEV].dev));
    return VGPU_OK;
}

uint32_t vgpu_cmd_device_get_type(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)dec;
    vgpu_enc_u32(enc, (uint32_t)ggml_backend_dev_type(ctx->devices[BASELINE_DEV].dev));
    return VGPU_OK;
}

static void device_memory(struct vgpu_device *d, uint64_t *free_b, uint64_t *total)
{
    size_t f = 0, t = 0;
    ggml_backend_dev_memory(d->dev, &f, &t);
    *free_b = f;
    *total = t;
}

uint32_t vgpu_cmd_device_get_memory(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)dec;
    uint64_t f, t;
    device_memory(&ctx->devices[BASELINE_DEV], &f, &t);
    vgpu_enc_u64(enc, f);
    vgpu_enc_u64(enc, t);
    return VGPU_OK;
}

uint32_t vgpu_cmd_device_get_buffer_type(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)dec;
    struct vgpu_device *d = &ctx->devices[BASELINE_DEV];
    if (!d->buft_id)
        return vgpu_fail(ctx, VGPU_UNSUPPORTED, "device 0 has no buffer type");
    vgpu_enc_u64(enc, d->buft_id);
    return VGPU_OK;
}

uint32_t vgpu_cmd_device_get_props(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)dec;
    uint32_t caps = ctx->devices[BASELINE_DEV].caps;
    vgpu_enc_bool(enc, caps & VGPU_CAP_ASYNC);
    vgpu_enc_bool(enc, caps & VGPU_CAP_HOST_BUFFER);
    vgpu_enc_bool(enc, caps & VGPU_CAP_BUFFER_FROM_HOST_PTR);
    vgpu_enc_bool(enc, caps & VGPU_CAP_EVENTS);
    vgpu_enc_bool(enc, caps & VGPU_CAP_MMAP_SUPPORT);
    return VGPU_OK;
}

uint32_t vgpu_cmd_device_buffer_from_ptr(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t res_id = vgpu_dec_u32(dec);
    uint64_t size = vgpu_dec_u64(dec);
    uint64_t max_tensor = vgpu_dec_u64(dec);
    VGPU_DEC_CHECK(dec);
    struct vgpu_device *d = &ctx->devices[BASELINE_DEV];
    if (!d->can_wrap)
        return vgpu_fail(ctx, VGPU_UNSUPPORTED, "device 0 cannot wrap host memory");
    uint8_t *p;
    uint64_t res_size;
    uint32_t r = vgpu_res_get(ctx, res_id, &p, &res_size);
    if (r != VGPU_OK)
        return r;
    struct vgpu_buffer *b;
    if ((r = vgpu_ctx_buffer_alloc(ctx, BASELINE_DEV, size, res_id, p, res_size, max_tensor, &b)) != VGPU_OK)
        return r;
    vgpu_enc_u64(enc, b->id);
    /* The device's buffer type id: a handle, never the wrapped buffer's host buft pointer. */
    vgpu_enc_u64(enc, d->buft_id);
    return VGPU_OK;
}

/* ---- extension device commands -------------------------------------------------------------------- */

uint32_t vgpu_cmd_ext_hello(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    struct vgpu_hello req;
    vgpu_dec_hello_request(dec, &req);

    /* The reply is written whatever the outcome, so that a guest can report both sides. */
    struct vgpu_abi_info abi;
    vgpu_abi_info_get(&abi);
    struct vgpu_hello rep;
    memset(&rep, 0, sizeof(rep));
    rep.ext_version = VGPU_EXT_VERSION;
    rep.features = 0;
    rep.abi_hash = abi.hash;
    rep.n_ops = abi.n_ops;
    rep.n_types = abi.n_types;
    rep.tensor_size = abi.tensor_size;
    rep.n_devices = ctx->n_devices;
    rep.graph_cache_slots = VGPU_GRAPH_CACHE_SLOTS;
    rep.max_command_size = ctx->quota.command_bytes;
    vgpu_enc_hello_reply(enc, &rep);
    VGPU_DEC_CHECK(dec);

    if (req.ext_version < 1) {
        ctx->hello = false;
        return vgpu_fail(ctx, VGPU_INVALID, "extension version %u", req.ext_version);
    }
    if (req.abi_hash != abi.hash || req.n_ops != abi.n_ops || req.n_types != abi.n_types ||
        req.tensor_size != abi.tensor_size) {
        ctx->hello = false;
        return vgpu_fail(ctx, VGPU_ABI_MISMATCH,
                         "guest ggml (%u ops, %u types, tensor %u B, hash %016llx) differs from the host's "
                         "(%u ops, %u types, tensor %u B, hash %016llx)",
                         req.n_ops, req.n_types, req.tensor_size, (unsigned long long)req.abi_hash, abi.n_ops,
                         abi.n_types, abi.tensor_size, (unsigned long long)abi.hash);
    }
    ctx->hello = true;
    vgpu_log(ctx, VGPU_LOG_INFO, "extensions enabled (guest version %u, features 0x%x)", req.ext_version,
             req.features);
    return VGPU_OK;
}

static void copy_name(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

uint32_t vgpu_cmd_ext_device_info(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t dev = vgpu_dec_u32(dec);
    VGPU_DEC_CHECK(dec);
    struct vgpu_device *d;
    uint32_t r = vgpu_ctx_device(ctx, dev, &d);
    if (r != VGPU_OK)
        return r;
    vgpu_ctx_probe_device(ctx, dev);

    struct vgpu_device_info info;
    memset(&info, 0, sizeof(info));
    copy_name(info.name, sizeof(info.name), ggml_backend_dev_name(d->dev));
    copy_name(info.description, sizeof(info.description), ggml_backend_dev_description(d->dev));
    info.type = (uint32_t)ggml_backend_dev_type(d->dev);
    info.caps = d->caps;
    device_memory(d, &info.mem_free, &info.mem_total);
    info.buft_id = d->buft_id;
    if (d->buft) {
        copy_name(info.buft_name, sizeof(info.buft_name), ggml_backend_buft_name(d->buft));
        info.alignment = ggml_backend_buft_get_alignment(d->buft);
        info.max_size = ggml_backend_buft_get_max_size(d->buft);
    }
    info.buft_flags = d->buft_flags;
    vgpu_enc_device_info(enc, &info);
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_device_memory(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t dev = vgpu_dec_u32(dec);
    VGPU_DEC_CHECK(dec);
    struct vgpu_device *d;
    uint32_t r = vgpu_ctx_device(ctx, dev, &d);
    if (r != VGPU_OK)
        return r;
    uint64_t f, t;
    device_memory(d, &f, &t);
    vgpu_enc_u64(enc, f);
    vgpu_enc_u64(enc, t);
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_set_n_threads(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    uint32_t dev = vgpu_dec_u32(dec);
    uint32_t n = vgpu_dec_u32(dec);
    VGPU_DEC_CHECK(dec);
    if (!ctx->set_n_threads)
        return vgpu_fail(ctx, VGPU_UNSUPPORTED, "the backend has no ggml_backend_set_n_threads");
    if (n == 0)
        return vgpu_fail(ctx, VGPU_INVALID, "0 threads");
    /* A guest may count its own vCPUs: never run more threads than the host has. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    if (n > (uint32_t)cpus) {
        vgpu_log(ctx, VGPU_LOG_DEBUG, "%u threads requested, using %ld", n, cpus);
        n = (uint32_t)cpus;
    }
    ggml_backend_t be;
    uint32_t r = vgpu_ctx_backend(ctx, dev, &be);
    if (r != VGPU_OK)
        return r;
    ctx->set_n_threads(be, (int)n);
    ctx->devices[dev].cpu.n_threads = (int)n;
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_nop(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)ctx;
    (void)dec;
    (void)enc;
    return VGPU_OK;
}
