/*
 * Device interface: one guest device per host device, with cached information and host
 * answers (supports_op, offload_op) cached per op signature.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "apir.h"
#include "ext.h"
#include "ggml-impl.h"
#include "guest.h"

/* ---- answer cache ---------------------------------------------------------------------------- */

void vgpu_op_cache_init(struct vgpu_op_cache *c, size_t max_entries)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->max_entries = max_entries ? max_entries : 1;
}

static void cache_clear(struct vgpu_op_cache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        free(c->slots[i].key);
    free(c->slots);
    c->slots = NULL;
    c->cap = 0;
    c->used = 0;
}

void vgpu_op_cache_free(struct vgpu_op_cache *c)
{
    cache_clear(c);
    pthread_mutex_destroy(&c->lock);
}

/* Slot holding key, or the empty slot where it would go (cap > 0, never full). */
static struct vgpu_op_cache_entry *cache_find(struct vgpu_op_cache *c, const uint8_t *key, size_t key_size, uint64_t h)
{
    for (size_t i = (size_t)h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        struct vgpu_op_cache_entry *e = &c->slots[i];
        if (!e->key)
            return e;
        if (e->hash == h && e->key_size == key_size && memcmp(e->key, key, key_size) == 0)
            return e;
    }
}

void vgpu_op_cache_lookup(struct vgpu_op_cache *c, const uint8_t *key, size_t key_size, struct vgpu_op_answer *a)
{
    memset(a, 0, sizeof(*a));
    uint64_t h = vgpu_fnv1a64(VGPU_FNV_OFFSET, key, key_size);
    pthread_mutex_lock(&c->lock);
    if (c->cap) {
        struct vgpu_op_cache_entry *e = cache_find(c, key, key_size, h);
        if (e->key)
            *a = e->answer;
    }
    pthread_mutex_unlock(&c->lock);
}

/* Doubles the table (rehashing); false if out of memory. */
static bool cache_grow(struct vgpu_op_cache *c)
{
    size_t cap = c->cap ? c->cap * 2 : 256;
    struct vgpu_op_cache_entry *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return false;
    struct vgpu_op_cache_entry *old = c->slots;
    size_t old_cap = c->cap;
    c->slots = slots;
    c->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key)
            *cache_find(c, old[i].key, old[i].key_size, old[i].hash) = old[i];
    }
    free(old);
    return true;
}

void vgpu_op_cache_store(struct vgpu_op_cache *c, const uint8_t *key, size_t key_size, const struct vgpu_op_answer *a)
{
    if (!a->known || key_size > UINT32_MAX)
        return;
    uint64_t h = vgpu_fnv1a64(VGPU_FNV_OFFSET, key, key_size);
    pthread_mutex_lock(&c->lock);
    if (c->cap) {
        struct vgpu_op_cache_entry *e = cache_find(c, key, key_size, h);
        if (e->key) {
            if (a->known & VGPU_OPC_SUPPORTS)
                e->answer.supports = a->supports;
            if (a->known & VGPU_OPC_OFFLOAD)
                e->answer.offload = a->offload;
            if (a->known & VGPU_OPC_ALLOC_SIZE)
                e->answer.alloc_size = a->alloc_size;
            e->answer.known |= a->known;
            pthread_mutex_unlock(&c->lock);
            return;
        }
    }
    if (c->used >= c->max_entries)
        cache_clear(c); /* bounded: start over rather than grow without limit */
    if ((c->used + 1) * 2 > c->cap && !cache_grow(c)) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    uint8_t *copy = malloc(key_size ? key_size : 1);
    if (copy) {
        memcpy(copy, key, key_size);
        struct vgpu_op_cache_entry *e = cache_find(c, key, key_size, h);
        e->hash = h;
        e->key = copy;
        e->key_size = (uint32_t)key_size;
        e->answer = *a;
        c->used++;
    }
    pthread_mutex_unlock(&c->lock);
}

/* ---- device interface -------------------------------------------------------------------------- */

#define VGPU_OP_CACHE_MAX 16384u

static struct vgpu_device *dev_of(ggml_backend_dev_t gdev)
{
    return gdev->context;
}

static const char *dev_get_name(ggml_backend_dev_t gdev)
{
    return dev_of(gdev)->name;
}

static const char *dev_get_description(ggml_backend_dev_t gdev)
{
    return dev_of(gdev)->description;
}

/* Forwarded on every call so the scheduler and llama.cpp see fresh numbers. */
static void dev_get_memory(ggml_backend_dev_t gdev, size_t *free_b, size_t *total_b)
{
    struct vgpu_device *dev = dev_of(gdev);
    uint64_t f, t;
    if (vgpu_remote_device_memory(dev->state->ch, dev->state->baseline, dev->index, &f, &t) == VGPU_OK) {
        __atomic_store_n(&dev->mem_free, f, __ATOMIC_RELAXED);
        __atomic_store_n(&dev->mem_total, t, __ATOMIC_RELAXED);
    }
    *free_b = (size_t)__atomic_load_n(&dev->mem_free, __ATOMIC_RELAXED);
    *total_b = (size_t)__atomic_load_n(&dev->mem_total, __ATOMIC_RELAXED);
}

/*
 * Always GPU, whatever the host device is: llama.cpp offloads layers only to devices of
 * type GPU (or IGPU when there is no GPU) and handles CPU/ACCEL devices as the local CPU
 * (src/llama.cpp, the device loop of llama_model_load: "skip CPU backends since they are
 * handled separately"). A remote CPU must be offered as a GPU to receive any layers.
 */
static enum ggml_backend_dev_type dev_get_type(ggml_backend_dev_t gdev)
{
    (void)gdev;
    return GGML_BACKEND_DEVICE_TYPE_GPU;
}

static void dev_get_props(ggml_backend_dev_t gdev, struct ggml_backend_dev_props *props)
{
    memset(props, 0, sizeof(*props));
    props->name = dev_get_name(gdev);
    props->description = dev_get_description(gdev);
    dev_get_memory(gdev, &props->memory_free, &props->memory_total);
    props->type = dev_get_type(gdev);
    /* No id: two host devices of one PCI device must not be merged by llama.cpp. */
    props->device_id = NULL;
    struct vgpu_device *dev = dev_of(gdev);
    /* With a batching host, computes and async moves return before the host is done. */
    props->caps.async = !dev->state->baseline && vgpu_channel_batching(dev->state->ch);
    props->caps.host_buffer = dev->host_buffers; /* shared memory the host moves data by reference */
    props->caps.buffer_from_host_ptr = false;    /* guest memory cannot become host memory */
    props->caps.events = false;
    props->caps.mmap_support = true; /* the guest maps the file and uploads from it */
}

static ggml_backend_t dev_init_backend(ggml_backend_dev_t gdev, const char *params)
{
    (void)params;
    struct vgpu_device *dev = dev_of(gdev);
    if (vgpu_channel_is_lost(dev->state->ch)) {
        GGML_LOG_ERROR("ggml-virtgpu: %s: cannot start a backend: the host is gone\n", dev->name);
        return NULL;
    }
    return vgpu_backend_new(dev);
}

static ggml_backend_buffer_type_t dev_get_buffer_type(ggml_backend_dev_t gdev)
{
    return &dev_of(gdev)->buft;
}

/* Only where device buffers are not already shared memory (zero-copy), and the host has batches. */
static ggml_backend_buffer_type_t dev_get_host_buffer_type(ggml_backend_dev_t gdev)
{
    struct vgpu_device *dev = dev_of(gdev);
    return dev->host_buffers ? &dev->host_buft : NULL;
}

static bool op_is_remotable(const struct ggml_tensor *op)
{
    /* These carry guest function pointers in op_params: they can never run on the host. */
    switch (op->op) {
    case GGML_OP_MAP_CUSTOM1:
    case GGML_OP_MAP_CUSTOM2:
    case GGML_OP_MAP_CUSTOM3:
    case GGML_OP_CUSTOM:
        return false;
    default:
        return true;
    }
}

/* Asks the host (or the cache) about op; which = VGPU_OPC_SUPPORTS or VGPU_OPC_OFFLOAD. */
static bool op_query(struct vgpu_device *dev, const struct ggml_tensor *op, uint8_t which)
{
    struct vgpu_state *st = dev->state;
    if (!op_is_remotable(op) || vgpu_channel_is_lost(st->ch))
        return false;
    /*
     * NONE, VIEW, RESHAPE, PERMUTE and TRANSPOSE compute nothing: every backend supports them
     * and the host runs them without asking its backend. Answered here, with no round trip;
     * this also covers the baseline, whose images carry no view_src for the host to check.
     */
    if (which == VGPU_OPC_SUPPORTS && ggml_op_is_empty(op->op)) {
        if (!st->baseline)
            return true;
        /* ... if a baseline graph can describe it at all (32-bit shapes and strides). */
        bool fits = vgpu_tensor_fits_rpc(op) && (!op->view_src || vgpu_tensor_fits_rpc(op->view_src));
        for (int i = 0; fits && i < GGML_MAX_SRC; i++)
            fits = !op->src[i] || vgpu_tensor_fits_rpc(op->src[i]);
        return fits;
    }
    if (st->baseline && which == VGPU_OPC_OFFLOAD)
        return false; /* no such command in APIR 0.2 */

    uint8_t key[VGPU_OP_KEY_MAX];
    size_t n = vgpu_op_key(op, key);
    struct vgpu_op_answer a;
    vgpu_op_cache_lookup(&dev->ops, key, n, &a);
    if (a.known & which)
        return which == VGPU_OPC_SUPPORTS ? a.supports : a.offload;

    bool answer = false;
    int code;
    if (st->baseline) {
        struct vgpu_inline_tensor it;
        if (!vgpu_inline_from_op(op, &it))
            code = VGPU_OK; /* cannot be described to (or run by) a baseline host: a "no" */
        else
            code = vgpu_remote_base_supports_op(st->ch, &it, &answer);
    } else {
        uint32_t cmd = which == VGPU_OPC_SUPPORTS ? VGPU_CMD_EXT_SUPPORTS_OP : VGPU_CMD_EXT_OFFLOAD_OP;
        code = vgpu_remote_op_query(st->ch, cmd, dev->index, key, n, &answer);
    }
    if (code < 0)
        return false; /* no answer: do not remember */
    if (code != VGPU_OK && code != VGPU_UNSUPPORTED) {
        /* The host rejected the description itself: that is a "no" too (remembered). */
        GGML_LOG_DEBUG("ggml-virtgpu: %s: %s(%s) refused by the host: %s\n", dev->name, ggml_op_desc(op), op->name,
                       vgpu_status_name((uint32_t)code));
    }
    if (code != VGPU_OK)
        answer = false;
    memset(&a, 0, sizeof(a));
    a.known = which;
    a.supports = answer;
    a.offload = answer;
    vgpu_op_cache_store(&dev->ops, key, n, &a);
    return answer;
}

static bool dev_supports_op(ggml_backend_dev_t gdev, const struct ggml_tensor *op)
{
    return op_query(dev_of(gdev), op, VGPU_OPC_SUPPORTS);
}

static bool dev_supports_buft(ggml_backend_dev_t gdev, ggml_backend_buffer_type_t buft)
{
    return buft == &dev_of(gdev)->buft;
}

static bool dev_offload_op(ggml_backend_dev_t gdev, const struct ggml_tensor *op)
{
    return op_query(dev_of(gdev), op, VGPU_OPC_OFFLOAD);
}

static const struct ggml_backend_device_i dev_iface = {
    .get_name = dev_get_name,
    .get_description = dev_get_description,
    .get_memory = dev_get_memory,
    .get_type = dev_get_type,
    .get_props = dev_get_props,
    .init_backend = dev_init_backend,
    .get_buffer_type = dev_get_buffer_type,
    .get_host_buffer_type = dev_get_host_buffer_type,
    .buffer_from_host_ptr = NULL,
    .supports_op = dev_supports_op,
    .supports_buft = dev_supports_buft,
    .offload_op = dev_offload_op,
    .event_new = NULL,
    .event_free = NULL,
    .event_synchronize = NULL,
};

void vgpu_device_init(struct vgpu_device *dev, struct vgpu_state *st, uint32_t index,
                      const struct vgpu_device_info *info)
{
    memset(dev, 0, sizeof(*dev));
    dev->state = st;
    dev->index = index;
    dev->info = *info;
    snprintf(dev->name, sizeof(dev->name), "VirtGPU%u", index);
    snprintf(dev->description, sizeof(dev->description), "[virtgpu] %s (%s)", info->description, info->name);
    dev->mem_free = info->mem_free;
    dev->mem_total = info->mem_total;
    dev->zero_copy = (info->buft_flags & VGPU_BUFT_ZERO_COPY) != 0 && !vgpu_env_flag("GGML_VIRTGPU_NO_ZERO_COPY");
    dev->weights_hint = !st->baseline && !vgpu_env_flag("GGML_VIRTGPU_NO_REPACK");
    dev->host_buffers = !dev->zero_copy && !st->baseline && vgpu_channel_batching(st->ch) &&
                        !vgpu_env_flag("GGML_VIRTGPU_NO_HOST_BUFFER");
    snprintf(dev->host_name, sizeof(dev->host_name), "%s_Host", dev->name);
    vgpu_op_cache_init(&dev->ops, VGPU_OP_CACHE_MAX);
    vgpu_graph_lru_init(&dev->graphs, st->graph_cache_slots);
    vgpu_opt_cache_init(&dev->opt);

    dev->gdev.iface = dev_iface;
    dev->gdev.reg = &st->reg;
    dev->gdev.context = dev;
    dev->buft.iface = vgpu_buft_iface;
    dev->buft.device = &dev->gdev;
    dev->buft.context = dev;
    dev->host_buft.iface = vgpu_host_buft_iface;
    dev->host_buft.device = &dev->gdev;
    dev->host_buft.context = dev;
}

void vgpu_device_free(struct vgpu_device *dev)
{
    vgpu_op_cache_free(&dev->ops);
    vgpu_graph_lru_free(&dev->graphs);
    vgpu_opt_cache_free(&dev->opt);
}
