/*
 * Host buffers (docs/PROTOCOL.md §4.5): EXT_HOST_BUFFER_REGISTER / _UNREGISTER.
 *
 * A guest's host buffer type allocates shared resources; tensor data then moves between
 * them and device buffers with EXT_TENSOR_SET/GET naming (res_id, offset), with no copy on
 * the guest side. Registering a resource lets the host pin it, so that a GPU backend copies
 * to and from it by DMA at full speed instead of through the driver's bounce buffers.
 *
 * Pinning, read-write: ggml-cuda's reg offers "ggml_backend_register_host_buffer", but it
 * registers with cudaHostRegisterReadOnly (device-to-host copies into such memory fault) and
 * only when GGML_CUDA_REGISTER_HOST is set, so it suits weights, not logits. We use the GPU
 * runtime that the backend library itself links (dlsym on its handle searches its
 * dependencies): cudaHostRegister(ptr, size, cudaHostRegisterPortable), or hipHostRegister
 * for a HIP build. A backend without either (CPU, Vulkan, Metal, a static cudart) pins
 * nothing: registration still succeeds and the copies run from pageable memory.
 *
 * Pinned bytes are bounded per context (config ggml-virtgpu.quota.pinned-bytes, default
 * 8 GiB); over the bound a buffer is registered unpinned. A buffer is unpinned when the guest
 * unregisters it or the context ends, whatever the guest did to the resource meanwhile (the
 * runtime's mapping may be gone: the runtime releases the pin by address). A resource id is
 * registered at most once at a time, and at most 1024 are.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "dispatch.h"
#include "ext.h"

#define VGPU_CFG_QUOTA_PINNED      "ggml-virtgpu.quota.pinned-bytes"
#define VGPU_DEFAULT_QUOTA_PINNED  (8ull << 30)
#define VGPU_MAX_HOST_BUFFERS      1024u

/* cudaHostRegisterPortable and hipHostRegisterPortable are both 1. */
#define GPU_HOST_REGISTER_PORTABLE 1u

struct host_buffer {
    uint32_t res_id;
    uint8_t *ptr;
    uint64_t size;
    bool     pinned;
};

struct vgpu_host_buffers {
    struct host_buffer *e;
    uint32_t            n;
    uint32_t            cap;
    uint64_t            pinned_bytes;
    uint64_t            quota;
    bool                resolved;
    const char         *api; /* "cuda", "hip" or NULL */
    int (*reg)(void *ptr, size_t size, unsigned int flags);
    int (*unreg)(void *ptr);
    int (*last_error)(void);
    void    *private_ptr; /* host-private memory pinned by vgpu_host_pin_private */
    uint64_t private_size;
};

static struct vgpu_host_buffers *table(struct vgpu_ctx *ctx)
{
    if (!ctx->host_buffers) {
        struct vgpu_host_buffers *t = calloc(1, sizeof(*t));
        if (!t)
            return NULL;
        t->quota = VGPU_DEFAULT_QUOTA_PINNED;
        const char *q = ctx->get_config ? ctx->get_config(ctx->id, VGPU_CFG_QUOTA_PINNED) : NULL;
        if (q) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(q, &end, 10);
            if (!errno && end != q && !*end && q[0] != '-')
                t->quota = v; /* 0: never pin */
            else
                vgpu_log(ctx, VGPU_LOG_WARN, "config %s='%s' is not a number; using %llu", VGPU_CFG_QUOTA_PINNED, q,
                         (unsigned long long)t->quota);
        }
        ctx->host_buffers = t;
    }
    return ctx->host_buffers;
}

/* Finds the GPU runtime's registration functions in the backend library's dependencies. */
static void resolve_pinning(struct vgpu_ctx *ctx, struct vgpu_host_buffers *t)
{
    if (t->resolved)
        return;
    t->resolved = true;
    if (!ctx->lib)
        return;
    static const struct {
        const char *api, *reg, *unreg, *err;
    } apis[] = {
        { "cuda", "cudaHostRegister", "cudaHostUnregister", "cudaGetLastError" },
        { "hip", "hipHostRegister", "hipHostUnregister", "hipGetLastError" },
    };
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++) {
        void *r = dlsym(ctx->lib, apis[i].reg);
        void *u = dlsym(ctx->lib, apis[i].unreg);
        if (!r || !u)
            continue;
        *(void **)&t->reg = r;
        *(void **)&t->unreg = u;
        *(void **)&t->last_error = dlsym(ctx->lib, apis[i].err);
        t->api = apis[i].api;
        vgpu_log(ctx, VGPU_LOG_INFO, "host buffers are pinned with %s", apis[i].reg);
        return;
    }
}

static void unpin(struct vgpu_host_buffers *t, struct host_buffer *b)
{
    if (!b->pinned)
        return;
    if (t->unreg(b->ptr) != 0 && t->last_error)
        (void)t->last_error(); /* clear the runtime's sticky "last error" */
    t->pinned_bytes -= b->size;
    b->pinned = false;
}

static struct host_buffer *find(struct vgpu_host_buffers *t, uint32_t res_id)
{
    for (uint32_t i = 0; t && i < t->n; i++) {
        if (t->e[i].res_id == res_id)
            return &t->e[i];
    }
    return NULL;
}

bool vgpu_host_buffer_pinned(const struct vgpu_ctx *ctx, const uint8_t *p, uint64_t n)
{
    const struct vgpu_host_buffers *t = ctx->host_buffers;
    for (uint32_t i = 0; t && i < t->n; i++) {
        const struct host_buffer *b = &t->e[i];
        if (p >= b->ptr && n <= b->size && (uint64_t)(p - b->ptr) <= b->size - n)
            return b->pinned;
    }
    return false;
}

bool vgpu_host_pin_private(struct vgpu_ctx *ctx, void *p, uint64_t n)
{
    struct vgpu_host_buffers *t = table(ctx);
    if (!t || t->private_ptr)
        return false;
    resolve_pinning(ctx, t);
    if (!t->reg || n > t->quota || t->pinned_bytes > t->quota - n)
        return false;
    if (t->reg(p, (size_t)n, GPU_HOST_REGISTER_PORTABLE) != 0) {
        if (t->last_error)
            (void)t->last_error();
        return false;
    }
    t->private_ptr = p;
    t->private_size = n;
    t->pinned_bytes += n;
    return true;
}

void vgpu_host_buffers_destroy(struct vgpu_ctx *ctx)
{
    struct vgpu_host_buffers *t = ctx->host_buffers;
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n; i++)
        unpin(t, &t->e[i]);
    if (t->private_ptr && t->unreg(t->private_ptr) != 0 && t->last_error)
        (void)t->last_error();
    free(t->e);
    free(t);
    ctx->host_buffers = NULL;
}

/* u32 res_id, u32 flags (0), u64 offset, u64 size → u32 flags (VGPU_HOST_BUFFER_PINNED). */
uint32_t vgpu_cmd_ext_host_buffer_register(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t res_id = vgpu_dec_u32(dec);
    uint32_t flags = vgpu_dec_u32(dec);
    uint64_t offset = vgpu_dec_u64(dec);
    uint64_t size = vgpu_dec_u64(dec);
    VGPU_DEC_CHECK(dec);
    if (flags != 0)
        return vgpu_fail(ctx, VGPU_INVALID, "unknown host buffer flags 0x%x", flags);
    if (size == 0)
        return vgpu_fail(ctx, VGPU_INVALID, "host buffer of 0 bytes");
    uint8_t *p;
    uint32_t r = vgpu_res_range(ctx, res_id, offset, size, &p);
    if (r != VGPU_OK)
        return r;
    struct vgpu_host_buffers *t = table(ctx);
    if (!t)
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "out of host memory");
    if (find(t, res_id))
        return vgpu_fail(ctx, VGPU_INVALID, "resource %u is already a registered host buffer", res_id);
    if (t->n >= VGPU_MAX_HOST_BUFFERS)
        return vgpu_fail(ctx, VGPU_QUOTA, "more than %u host buffers", VGPU_MAX_HOST_BUFFERS);
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? 2 * t->cap : 16;
        struct host_buffer *e = realloc(t->e, cap * sizeof(*e));
        if (!e)
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "out of host memory");
        t->e = e;
        t->cap = cap;
    }
    struct host_buffer *b = &t->e[t->n];
    b->res_id = res_id;
    b->ptr = p;
    b->size = size;
    b->pinned = false;

    resolve_pinning(ctx, t);
    if (t->reg && size <= t->quota && t->pinned_bytes <= t->quota - size) {
        if (t->reg(p, (size_t)size, GPU_HOST_REGISTER_PORTABLE) == 0) {
            b->pinned = true;
            t->pinned_bytes += size;
        } else {
            if (t->last_error)
                (void)t->last_error();
            vgpu_log(ctx, VGPU_LOG_INFO, "%s could not pin resource %u (%llu bytes): copies run unpinned",
                     t->api, res_id, (unsigned long long)size);
        }
    } else if (t->reg) {
        vgpu_log(ctx, VGPU_LOG_INFO, "pinned-bytes quota (%llu) reached: resource %u stays unpinned",
                 (unsigned long long)t->quota, res_id);
    }
    t->n++;
    vgpu_enc_u32(enc, b->pinned ? VGPU_HOST_BUFFER_PINNED : 0);
    return VGPU_OK;
}

/* u32 res_id, u32 pad. */
uint32_t vgpu_cmd_ext_host_buffer_unregister(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    (void)enc;
    uint32_t res_id = vgpu_dec_u32(dec);
    (void)vgpu_dec_u32(dec);
    VGPU_DEC_CHECK(dec);
    struct vgpu_host_buffers *t = ctx->host_buffers;
    struct host_buffer *b = find(t, res_id);
    if (!b)
        return vgpu_fail(ctx, VGPU_NOT_FOUND, "resource %u is not a registered host buffer", res_id);
    unpin(t, b);
    *b = t->e[--t->n];
    return VGPU_OK;
}
