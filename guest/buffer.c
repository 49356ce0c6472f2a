/*
 * Buffer type and buffer interfaces.
 *
 * Two kinds of device buffers:
 * - zero-copy: the buffer's memory is a shared resource the host backend computes on; the
 *   base is our mapping, the buffer type is a host one (is_host) and every data access is a
 *   local memcpy/memset (after everything outstanding has completed);
 * - host-allocated: the memory exists only on the host; the base is a nominal address
 *   (never dereferenced) from which tensor offsets are measured, and data moves through
 *   the channel (deferred inline when small, by reference from or to a host buffer,
 *   through pipelined staging otherwise).
 *
 * And the host buffer type of a device without zero-copy (batching hosts): plain guest
 * memory in a shared resource, registered with the host (which may pin it). llama.cpp puts
 * its CPU compute buffers and its output buffer there, so inputs computed on the guest CPU
 * and the logits move between them and device buffers with no copy on the guest side.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apir.h"
#include "ext.h"
#include "ggml-impl.h"
#include "guest.h"

static struct vgpu_channel *ch_of(const struct vgpu_buffer *b)
{
    return b->dev->state->ch;
}

static bool baseline_of(const struct vgpu_buffer *b)
{
    return b->dev->state->baseline;
}

/* ---- locating tensors --------------------------------------------------------------------- */

static void buffer_free(ggml_backend_buffer_t buffer);

bool vgpu_buffer_is_ours(ggml_backend_buffer_t buffer)
{
    return buffer && buffer->iface.free_buffer == buffer_free;
}

bool vgpu_buffer_lookup(void *user, ggml_backend_buffer_t buffer, uint64_t *id, uintptr_t *base)
{
    (void)user;
    if (!vgpu_buffer_is_ours(buffer))
        return false;
    const struct vgpu_buffer *b = buffer->context;
    *id = b->remote.id;
    *base = (uintptr_t)b->base;
    return true;
}

/* Flags the tensors of weight buffers (llama.cpp marks its model buffers so), see guest.h. */
static bool buffer_weights(void *user, ggml_backend_buffer_t buffer)
{
    (void)user;
    if (!vgpu_buffer_is_ours(buffer) || ggml_backend_buffer_get_usage(buffer) != GGML_BACKEND_BUFFER_USAGE_WEIGHTS)
        return false;
    struct vgpu_buffer *b = buffer->context;
    if (!b->dev->weights_hint)
        return false;
    __atomic_store_n(&b->weights_used, true, __ATOMIC_RELEASE);
    return true;
}

const struct vgpu_locator vgpu_locator = { vgpu_buffer_lookup, NULL, buffer_weights };

/* Data changes of this zero-copy buffer are local memory operations (not host commands). */
static bool local_writes(struct vgpu_buffer *b)
{
    return b->remote.zero_copy && !__atomic_load_n(&b->weights_used, __ATOMIC_ACQUIRE);
}

void vgpu_tensor_ref_from(const struct ggml_tensor *t, struct vgpu_tensor_ref *ref)
{
    memset(ref, 0, sizeof(*ref));
    vgpu_wire_from_tensor(t, &vgpu_locator, &ref->wire);
    ref->buffer = ref->wire.buffer;
    ref->rpc_ok = vgpu_rpc_from_tensor(t, &vgpu_locator, 1, &ref->rpc);
}

/* Logs a failed data operation: once if the host is gone, every time otherwise (a bug). */
static void report(struct vgpu_buffer *b, const char *what, const struct ggml_tensor *t, int code)
{
    if (code == VGPU_OK)
        return;
    if (code < 0 && vgpu_channel_is_lost(ch_of(b))) {
        vgpu_channel_log_transfer_failure(ch_of(b), what);
        return;
    }
    GGML_LOG_ERROR("ggml-virtgpu: %s: %s of tensor '%s' failed: %s\n", b->dev->name, what, t ? t->name : "",
                   code >= 0 ? vgpu_status_name((uint32_t)code) : strerror(-code));
}

/* ---- buffer interface ----------------------------------------------------------------------- */

static void buffer_free(ggml_backend_buffer_t buffer)
{
    struct vgpu_buffer *b = buffer->context;
    vgpu_remote_buffer_free(ch_of(b), baseline_of(b), &b->remote);
    /* The host drops the graphs that used it: its cache no longer matches our mirror. */
    vgpu_backend_graphs_dropped(b->dev);
    free(b);
}

static void *buffer_get_base(ggml_backend_buffer_t buffer)
{
    struct vgpu_buffer *b = buffer->context;
    return b->base;
}

static enum ggml_status buffer_init_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor)
{
    struct vgpu_buffer *b = buffer->context;
    if (baseline_of(b) || !(b->dev->info.buft_flags & VGPU_BUFT_NEEDS_INIT))
        return GGML_STATUS_SUCCESS;
    struct vgpu_tensor_ref ref;
    vgpu_tensor_ref_from(tensor, &ref);
    /*
     * Deferred once the host has initialised one tensor of this device: ggml's graph allocator
     * initialises every tensor of every new graph (hundreds per llama.cpp ubatch when a prompt
     * takes several), and waiting for each cost a round trip apiece, milliseconds per ubatch on
     * a GPU host (docs/PERFORMANCE.md). The first waits so that a backend that cannot keep
     * host tensors' state (UNSUPPORTED, below) keeps its synchronous path and one log line.
     * gallocr ignores the status; a later failure is latched for the next compute instead.
     */
    bool defer = __atomic_load_n(&b->dev->init_deferred, __ATOMIC_ACQUIRE) != 0;
    uint64_t t0 = vgpu_gprof_now(&ch_of(b)->prof);
    int code = vgpu_remote_tensor_init(ch_of(b), &ref, defer);
    vgpu_gprof_phase(&ch_of(b)->prof, VGPU_GPROF_INIT_TENSOR, t0);
    if (code == VGPU_OK && !defer)
        __atomic_store_n(&b->dev->init_deferred, 1, __ATOMIC_RELEASE);
    if (code == VGPU_UNSUPPORTED) {
        /* The host backend keeps per-tensor state that cannot live on the host: say it once. */
        static int logged;
        if (__atomic_exchange_n(&logged, 1, __ATOMIC_ACQ_REL) == 0)
            GGML_LOG_WARN("ggml-virtgpu: %s: the host cannot initialise tensors of this buffer type "
                          "(first: '%s'); they are used uninitialised\n", b->dev->name, tensor->name);
        return GGML_STATUS_FAILED;
    }
    report(b, "init_tensor", tensor, code);
    return code == VGPU_OK ? GGML_STATUS_SUCCESS : GGML_STATUS_FAILED;
}

static void buffer_memset_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, uint8_t value,
                                 size_t offset, size_t size)
{
    struct vgpu_buffer *b = buffer->context;
    if (local_writes(b)) {
        vgpu_channel_quiesce(ch_of(b));
        memset((uint8_t *)tensor->data + offset, value, size);
        return;
    }
    struct vgpu_tensor_ref ref;
    vgpu_tensor_ref_from(tensor, &ref);
    report(b, "memset", tensor, vgpu_remote_tensor_memset(ch_of(b), baseline_of(b), &ref, offset, size, value));
}

/* The guest side of a move: ptr, and where it lies if it is in one of our host buffers. */
static void xfer_data(struct vgpu_buffer *b, const void *data, size_t size, size_t n_copies, size_t stride_data,
                      bool async, struct vgpu_xfer_data *d)
{
    memset(d, 0, sizeof(*d));
    d->ptr = (uint8_t *)data;
    d->stride = n_copies > 1 ? stride_data : size;
    d->async = async;
    uint64_t span = (uint64_t)(n_copies - 1) * stride_data + size;
    (void)vgpu_host_ptr(b->dev->state, data, span, &d->res_id, &d->res_offset);
}

void vgpu_buffer_set(struct ggml_tensor *tensor, const void *data, size_t offset, size_t size, size_t n_copies,
                     size_t stride_tensor, size_t stride_data, bool async)
{
    ggml_backend_buffer_t buffer = vgpu_tensor_buffer(tensor);
    struct vgpu_buffer *b = buffer->context;
    if (size == 0 || n_copies == 0)
        return;
    if (local_writes(b)) {
        vgpu_channel_quiesce(ch_of(b));
        for (size_t i = 0; i < n_copies; i++)
            memcpy((uint8_t *)tensor->data + offset + i * stride_tensor, (const uint8_t *)data + i * stride_data,
                   size);
        return;
    }
    struct vgpu_tensor_ref ref;
    vgpu_tensor_ref_from(tensor, &ref);
    struct vgpu_xfer_data d;
    xfer_data(b, data, size, n_copies, stride_data, async, &d);
    report(b, "set_tensor", tensor,
           vgpu_remote_tensor_set(ch_of(b), baseline_of(b), &ref, &d, offset, size, n_copies, stride_tensor));
}

void vgpu_buffer_get(const struct ggml_tensor *tensor, void *data, size_t offset, size_t size, size_t n_copies,
                     size_t stride_tensor, size_t stride_data, bool async)
{
    ggml_backend_buffer_t buffer = vgpu_tensor_buffer(tensor);
    struct vgpu_buffer *b = buffer->context;
    if (size == 0 || n_copies == 0)
        return;
    if (b->remote.zero_copy) {
        const uint8_t *src = (const uint8_t *)tensor->data + offset;
        struct vgpu_local_copy c = { data, src, size, n_copies, n_copies > 1 ? stride_data : size,
                                     n_copies > 1 ? stride_tensor : size };
        /* Async: copied once what is outstanding (a graph computing it) has completed. */
        if (async && vgpu_channel_batching(ch_of(b)) && vgpu_channel_lock(ch_of(b))) {
            int r = vgpu_channel_local_copy(ch_of(b), &c);
            vgpu_channel_unlock(ch_of(b));
            if (r == 0)
                return;
        }
        vgpu_channel_quiesce(ch_of(b));
        for (size_t i = 0; i < n_copies; i++)
            memcpy((uint8_t *)data + i * c.dst_stride, src + i * c.src_stride, size);
        return;
    }
    struct vgpu_tensor_ref ref;
    vgpu_tensor_ref_from(tensor, &ref);
    struct vgpu_xfer_data d;
    xfer_data(b, data, size, n_copies, stride_data, async, &d);
    int code = vgpu_remote_tensor_get(ch_of(b), baseline_of(b), &ref, &d, offset, size, n_copies, stride_tensor);
    if (code != VGPU_OK) {
        /* Never hand back stale or uninitialised bytes as if they were results. */
        for (size_t i = 0; i < n_copies; i++)
            memset((uint8_t *)data + i * stride_data, 0, size);
    }
    report(b, "get_tensor", tensor, code);
}

static void buffer_set_tensor_2d(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, const void *data,
                                 size_t offset, size_t size, size_t n_copies, size_t stride_tensor,
                                 size_t stride_data)
{
    (void)buffer;
    vgpu_buffer_set(tensor, data, offset, size, n_copies, stride_tensor, stride_data, false);
}

static void buffer_get_tensor_2d(ggml_backend_buffer_t buffer, const struct ggml_tensor *tensor, void *data,
                                 size_t offset, size_t size, size_t n_copies, size_t stride_tensor,
                                 size_t stride_data)
{
    (void)buffer;
    vgpu_buffer_get(tensor, data, offset, size, n_copies, stride_tensor, stride_data, false);
}

static void buffer_set_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, const void *data,
                              size_t offset, size_t size)
{
    buffer_set_tensor_2d(buffer, tensor, data, offset, size, 1, 0, size);
}

static void buffer_get_tensor(ggml_backend_buffer_t buffer, const struct ggml_tensor *tensor, void *data,
                              size_t offset, size_t size)
{
    buffer_get_tensor_2d(buffer, tensor, data, offset, size, 1, 0, size);
}

/* dst is in this buffer; src may be anywhere: only our own buffers can be copied by the host. */
static bool buffer_cpy_tensor(ggml_backend_buffer_t buffer, const struct ggml_tensor *src, struct ggml_tensor *dst)
{
    struct vgpu_buffer *b = buffer->context;
    ggml_backend_buffer_t sbuf = vgpu_tensor_buffer(src);
    if (!vgpu_buffer_is_ours(sbuf) || !src->data || !dst->data)
        return false;
    struct vgpu_buffer *sb = sbuf->context;
    if (sb->dev->state != b->dev->state)
        return false;
    if (local_writes(b) && sb->remote.zero_copy) {
        vgpu_channel_quiesce(ch_of(b));
        memmove(dst->data, src->data, ggml_nbytes(src));
        return true;
    }
    struct vgpu_tensor_ref s, d;
    vgpu_tensor_ref_from(src, &s);
    vgpu_tensor_ref_from(dst, &d);
    int code = vgpu_remote_tensor_copy(ch_of(b), baseline_of(b), &s, &d);
    if (code < 0 && vgpu_channel_is_lost(ch_of(b)))
        vgpu_channel_log_transfer_failure(ch_of(b), "cpy_tensor");
    return code == VGPU_OK;
}

static void buffer_clear(ggml_backend_buffer_t buffer, uint8_t value)
{
    struct vgpu_buffer *b = buffer->context;
    if (local_writes(b)) {
        vgpu_channel_quiesce(ch_of(b));
        memset(b->base, value, buffer->size);
        return;
    }
    report(b, "clear", NULL, vgpu_remote_buffer_clear(ch_of(b), baseline_of(b), b->remote.id, value));
}

/*
 * Nothing to reset here: we keep no per-tensor state, and host-side tensor state made by
 * init_tensor belongs to the host buffer, which the protocol has no command to reset.
 */
static void buffer_reset(ggml_backend_buffer_t buffer)
{
    (void)buffer;
}

static const struct ggml_backend_buffer_i buffer_iface = {
    .free_buffer = buffer_free,
    .get_base = buffer_get_base,
    .init_tensor = buffer_init_tensor,
    .memset_tensor = buffer_memset_tensor,
    .set_tensor = buffer_set_tensor,
    .get_tensor = buffer_get_tensor,
    .set_tensor_2d = buffer_set_tensor_2d,
    .get_tensor_2d = buffer_get_tensor_2d,
    .cpy_tensor = buffer_cpy_tensor,
    .clear = buffer_clear,
    .reset = buffer_reset,
};

/* ---- buffer type interface -------------------------------------------------------------------- */

static struct vgpu_device *buft_dev(ggml_backend_buffer_type_t buft)
{
    return buft->context;
}

static const char *buft_get_name(ggml_backend_buffer_type_t buft)
{
    return buft_dev(buft)->name;
}

/*
 * A distinct nominal base per buffer, 1 TiB apart, so that tensors of different buffers
 * never share an address (ggml compares data pointers); never dereferenced.
 */
static uint8_t *nominal_base(void)
{
    static uint64_t counter;
    uint64_t n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) % (1u << 22);
    return (uint8_t *)(uintptr_t)((n + 1) << 40);
}

static ggml_backend_buffer_t buft_alloc_buffer(ggml_backend_buffer_type_t buft, size_t size)
{
    struct vgpu_device *dev = buft_dev(buft);
    struct vgpu_state *st = dev->state;
    struct vgpu_buffer *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->dev = dev;
    int code = vgpu_remote_buffer_alloc(st->ch, st->baseline, dev->index, dev->info.buft_id, size, dev->zero_copy,
                                        &b->remote);
    if (code != VGPU_OK) {
        GGML_LOG_ERROR("ggml-virtgpu: %s: cannot allocate a %zu-byte buffer: %s\n", dev->name, size,
                       code >= 0 ? vgpu_status_name((uint32_t)code)
                                 : vgpu_channel_is_lost(st->ch) ? "the host is gone" : strerror(-code));
        free(b);
        return NULL;
    }
    if (b->remote.zero_copy)
        b->base = b->remote.res.ptr;
    else if (st->baseline && b->remote.host_base)
        b->base = (uint8_t *)(uintptr_t)b->remote.host_base;
    else
        b->base = nominal_base();
    ggml_backend_buffer_t buffer = ggml_backend_buffer_init(buft, buffer_iface, b, size);
    if (!buffer) {
        vgpu_remote_buffer_free(st->ch, st->baseline, &b->remote);
        free(b);
    }
    return buffer;
}

static size_t buft_get_alignment(ggml_backend_buffer_type_t buft)
{
    uint64_t a = buft_dev(buft)->info.alignment;
    return a ? (size_t)a : 32;
}

static size_t buft_get_max_size(ggml_backend_buffer_type_t buft)
{
    uint64_t m = buft_dev(buft)->info.max_size;
    return m && m < SIZE_MAX ? (size_t)m : SIZE_MAX;
}

/*
 * ggml_nbytes unless the host's answer may differ. ggml itself only allows a larger size for
 * quantized tensors, ops that may expand (ggml_op_alloc_size_may_expand) and empty ops
 * (ggml_backend_buft_get_alloc_size asserts it), so only those are asked, once per op
 * signature, and only when the host buffer type has its own get_alloc_size (always in the
 * baseline, which cannot tell).
 */
static size_t buft_get_alloc_size(ggml_backend_buffer_type_t buft, const struct ggml_tensor *tensor)
{
    struct vgpu_device *dev = buft_dev(buft);
    struct vgpu_state *st = dev->state;
    size_t nbytes = ggml_nbytes(tensor);
    if (!ggml_is_quantized(tensor->type) && !ggml_op_alloc_size_may_expand(tensor->op) && !ggml_op_is_empty(tensor->op))
        return nbytes;
    if (!(dev->info.buft_flags & VGPU_BUFT_ALLOC_SIZE) || vgpu_channel_is_lost(st->ch))
        return nbytes;

    uint8_t key[VGPU_OP_KEY_MAX];
    size_t n = vgpu_op_key(tensor, key);
    struct vgpu_op_answer a;
    vgpu_op_cache_lookup(&dev->ops, key, n, &a);
    if (a.known & VGPU_OPC_ALLOC_SIZE)
        return a.alloc_size > nbytes ? (size_t)a.alloc_size : nbytes;

    uint64_t size = nbytes;
    int code;
    if (st->baseline) {
        struct vgpu_inline_tensor it;
        if (!vgpu_inline_from_op(tensor, &it))
            return nbytes;
        code = vgpu_remote_base_alloc_size(st->ch, dev->info.buft_id, &it, &size);
    } else {
        code = vgpu_remote_alloc_size(st->ch, dev->index, dev->info.buft_id, key, n, &size);
    }
    if (code != VGPU_OK)
        return nbytes;
    if (size < nbytes || size > SIZE_MAX)
        size = nbytes;
    memset(&a, 0, sizeof(a));
    a.known = VGPU_OPC_ALLOC_SIZE;
    a.alloc_size = size;
    vgpu_op_cache_store(&dev->ops, key, n, &a);
    return (size_t)size;
}

static bool buft_is_host(ggml_backend_buffer_type_t buft)
{
    return buft_dev(buft)->zero_copy;
}

const struct ggml_backend_buffer_type_i vgpu_buft_iface = {
    .get_name = buft_get_name,
    .alloc_buffer = buft_alloc_buffer,
    .get_alignment = buft_get_alignment,
    .get_max_size = buft_get_max_size,
    .get_alloc_size = buft_get_alloc_size,
    .is_host = buft_is_host,
};

/* ---- host buffer type --------------------------------------------------------------------------- */

bool vgpu_host_ptr(struct vgpu_state *st, const void *p, uint64_t span, uint32_t *res_id, uint64_t *offset)
{
    bool found = false;
    uintptr_t a = (uintptr_t)p;
    pthread_mutex_lock(&st->hb_lock);
    for (size_t i = 0; i < st->n_hbufs && !found; i++) {
        const struct vgpu_host_buf *h = st->hbufs[i];
        uintptr_t base = (uintptr_t)h->res.ptr;
        if (a >= base && a - base <= h->res.size && span <= h->res.size - (a - base)) {
            *res_id = h->res.id;
            *offset = (uint64_t)(a - base);
            found = true;
        }
    }
    pthread_mutex_unlock(&st->hb_lock);
    return found;
}

static void host_buffer_free(ggml_backend_buffer_t buffer)
{
    struct vgpu_host_buf *h = buffer->context;
    struct vgpu_state *st = h->dev->state;
    pthread_mutex_lock(&st->hb_lock);
    for (size_t i = 0; i < st->n_hbufs; i++) {
        if (st->hbufs[i] == h) {
            st->hbufs[i] = st->hbufs[--st->n_hbufs];
            break;
        }
    }
    pthread_mutex_unlock(&st->hb_lock);
    /* Unregistered (the host unpins it) once nothing outstanding names it, then destroyed. */
    vgpu_remote_host_buffer_free(st->ch, &h->res, h->registered);
    free(h);
}

static void *host_buffer_get_base(ggml_backend_buffer_t buffer)
{
    struct vgpu_host_buf *h = buffer->context;
    return h->res.ptr;
}

/*
 * Plain memory for the guest. Ordering with the host follows ggml's contract: an async move
 * naming this memory completes at the backend's synchronize, which callers do before they
 * touch it.
 */
static void host_buffer_memset_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, uint8_t value,
                                      size_t offset, size_t size)
{
    (void)buffer;
    memset((uint8_t *)tensor->data + offset, value, size);
}

static void host_buffer_set_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, const void *data,
                                   size_t offset, size_t size)
{
    (void)buffer;
    memcpy((uint8_t *)tensor->data + offset, data, size);
}

static void host_buffer_get_tensor(ggml_backend_buffer_t buffer, const struct ggml_tensor *tensor, void *data,
                                   size_t offset, size_t size)
{
    (void)buffer;
    memcpy(data, (const uint8_t *)tensor->data + offset, size);
}

static bool host_buffer_cpy_tensor(ggml_backend_buffer_t buffer, const struct ggml_tensor *src, struct ggml_tensor *dst)
{
    (void)buffer;
    if (src->buffer && ggml_backend_buffer_is_host(src->buffer)) {
        memcpy(dst->data, src->data, ggml_nbytes(src));
        return true;
    }
    return false;
}

static void host_buffer_clear(ggml_backend_buffer_t buffer, uint8_t value)
{
    struct vgpu_host_buf *h = buffer->context;
    memset(h->res.ptr, value, buffer->size);
}

static const struct ggml_backend_buffer_i host_buffer_iface = {
    .free_buffer = host_buffer_free,
    .get_base = host_buffer_get_base,
    .init_tensor = NULL,
    .memset_tensor = host_buffer_memset_tensor,
    .set_tensor = host_buffer_set_tensor,
    .get_tensor = host_buffer_get_tensor,
    .set_tensor_2d = NULL,
    .get_tensor_2d = NULL,
    .cpy_tensor = host_buffer_cpy_tensor,
    .clear = host_buffer_clear,
    .reset = NULL,
};

static const char *host_buft_get_name(ggml_backend_buffer_type_t buft)
{
    return buft_dev(buft)->host_name;
}

static ggml_backend_buffer_t host_buft_alloc_buffer(ggml_backend_buffer_type_t buft, size_t size)
{
    struct vgpu_device *dev = buft_dev(buft);
    struct vgpu_state *st = dev->state;
    struct vgpu_host_buf *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->dev = dev;
    /* ggml asks for 0-byte buffers too; a resource has at least a page. */
    int r = -EPIPE;
    if (vgpu_channel_lock(st->ch)) {
        r = vgpu_channel_resource_create(st->ch, size ? size : 1, &h->res);
        vgpu_channel_unlock(st->ch);
    }
    if (r != 0) {
        GGML_LOG_ERROR("ggml-virtgpu: %s: cannot allocate a %zu-byte host buffer: %s\n", dev->name, size,
                       vgpu_channel_is_lost(st->ch) ? "the host is gone" : strerror(-r));
        free(h);
        return NULL;
    }
    int code = vgpu_remote_host_buffer_register(st->ch, &h->res, &h->pinned);
    h->registered = code == VGPU_OK;
    if (code != VGPU_OK && code >= 0)
        GGML_LOG_WARN("ggml-virtgpu: %s: registering a host buffer failed (%s): it works unpinned\n", dev->name,
                      vgpu_status_name((uint32_t)code));
    pthread_mutex_lock(&st->hb_lock);
    if (st->n_hbufs == st->cap_hbufs) {
        size_t cap = st->cap_hbufs ? 2 * st->cap_hbufs : 16;
        struct vgpu_host_buf **p = realloc(st->hbufs, cap * sizeof(*p));
        if (p) {
            st->hbufs = p;
            st->cap_hbufs = cap;
        }
    }
    bool listed = st->n_hbufs < st->cap_hbufs;
    if (listed)
        st->hbufs[st->n_hbufs++] = h;
    pthread_mutex_unlock(&st->hb_lock);
    if (!listed) {
        vgpu_remote_host_buffer_free(st->ch, &h->res, h->registered);
        free(h);
        return NULL;
    }
    ggml_backend_buffer_t buffer = ggml_backend_buffer_init(buft, host_buffer_iface, h, size);
    if (!buffer)
        host_buffer_free(&(struct ggml_backend_buffer){ .context = h });
    return buffer;
}

static size_t host_buft_get_alignment(ggml_backend_buffer_type_t buft)
{
    (void)buft;
    return 64;
}

static bool host_buft_is_host(ggml_backend_buffer_type_t buft)
{
    (void)buft;
    return true;
}

const struct ggml_backend_buffer_type_i vgpu_host_buft_iface = {
    .get_name = host_buft_get_name,
    .alloc_buffer = host_buft_alloc_buffer,
    .get_alignment = host_buft_get_alignment,
    .get_max_size = NULL,
    .get_alloc_size = NULL,
    .is_host = host_buft_is_host,
};
