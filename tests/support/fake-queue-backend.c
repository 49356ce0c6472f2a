/*
 * A GGML backend for tests whose asynchronous operations really are deferred: set/get_async
 * and graph_compute only queue, and ggml_backend_synchronize runs the queue. A copy reads its
 * source at that moment, not when it was queued, as ggml-vulkan's deferred staging copies do,
 * so a host that reuses or frees a queued copy's source before it waits is caught (wrong bytes,
 * or a use-after-free under ASan). The host's NO_WAIT rules (host/dispatch.c) are tested with it
 * (tests/unit/test-host-nowait.c); on the CPU or CUDA those hazards would go unnoticed.
 *
 * One device "FAKEQ0": a non-host buffer type over malloc'd memory, caps.async, no ops
 * supported. fake_queue_stats() reports the queue. Test code: process-wide state is fine here.
 * Its buffers' init_tensor fills a tensor (not a view) with FAKEQ_INIT_BYTE, so that a test
 * reading it back sees whether, and when, the host initialised it (tests/support/async-order.c).
 */
#include <stdlib.h>
#include <string.h>

#include "ggml-backend-impl.h"

#define FAKEQ_MAX_JOBS 1024
#define FAKEQ_INIT_BYTE 0x5a

struct job {
    void       *dst;
    const void *src;
    size_t      size;
};

/* The two symbols this library exports. */
__attribute__((visibility("default"))) void fake_queue_stats(unsigned *pending, unsigned *syncs, unsigned *computes);
__attribute__((visibility("default"))) ggml_backend_reg_t ggml_backend_init(void);

static struct {
    struct job jobs[FAKEQ_MAX_JOBS];
    unsigned   n_jobs;
    unsigned   n_syncs;    /* synchronize calls that found work queued */
    unsigned   n_computes; /* graph computes queued so far */
} Q;

void fake_queue_stats(unsigned *pending, unsigned *syncs, unsigned *computes)
{
    *pending = Q.n_jobs;
    *syncs = Q.n_syncs;
    *computes = Q.n_computes;
}

static void push(void *dst, const void *src, size_t size)
{
    if (Q.n_jobs == FAKEQ_MAX_JOBS)
        abort(); /* a test that queues this much without waiting is itself wrong */
    Q.jobs[Q.n_jobs++] = (struct job){ dst, src, size };
}

/* ---- buffer ------------------------------------------------------------------------------------ */

static void buf_free(ggml_backend_buffer_t b) { free(b->context); }
static void *buf_base(ggml_backend_buffer_t b) { return b->context; }

static void buf_memset(ggml_backend_buffer_t b, struct ggml_tensor *t, uint8_t v, size_t off, size_t size)
{
    (void)b;
    memset((char *)t->data + off, v, size);
}

static void buf_set(ggml_backend_buffer_t b, struct ggml_tensor *t, const void *data, size_t off, size_t size)
{
    (void)b;
    memcpy((char *)t->data + off, data, size);
}

static void buf_get(ggml_backend_buffer_t b, const struct ggml_tensor *t, void *data, size_t off, size_t size)
{
    (void)b;
    memcpy(data, (const char *)t->data + off, size);
}

static void buf_clear(ggml_backend_buffer_t b, uint8_t v) { memset(b->context, v, b->size); }

static enum ggml_status buf_init(ggml_backend_buffer_t b, struct ggml_tensor *t)
{
    (void)b;
    if (!t->view_src)
        memset(t->data, FAKEQ_INIT_BYTE, ggml_nbytes(t));
    return GGML_STATUS_SUCCESS;
}

static const struct ggml_backend_buffer_i buf_iface = {
    .free_buffer = buf_free,
    .get_base = buf_base,
    .init_tensor = buf_init,
    .memset_tensor = buf_memset,
    .set_tensor = buf_set,
    .get_tensor = buf_get,
    .clear = buf_clear,
};

/* ---- buffer type --------------------------------------------------------------------------------- */

static const char *buft_name(ggml_backend_buffer_type_t t)
{
    (void)t;
    return "FAKEQ";
}

static ggml_backend_buffer_t buft_alloc(ggml_backend_buffer_type_t t, size_t size)
{
    void *p = aligned_alloc(64, size ? (size + 63) & ~(size_t)63 : 64);
    if (!p)
        return NULL;
    return ggml_backend_buffer_init(t, buf_iface, p, size);
}

static size_t buft_align(ggml_backend_buffer_type_t t)
{
    (void)t;
    return 32;
}

static size_t buft_max(ggml_backend_buffer_type_t t)
{
    (void)t;
    return (size_t)1 << 30;
}

static bool buft_is_host(ggml_backend_buffer_type_t t)
{
    (void)t;
    return false;
}

static struct ggml_backend_device Dev;
static struct ggml_backend_buffer_type Buft = {
    { buft_name, buft_alloc, buft_align, buft_max, NULL, buft_is_host }, &Dev, NULL
};

/* ---- backend -------------------------------------------------------------------------------------- */

static const char *be_name(ggml_backend_t be)
{
    (void)be;
    return "FAKEQ0";
}

static void be_free(ggml_backend_t be) { free(be); }

static void be_set_async(ggml_backend_t be, struct ggml_tensor *t, const void *data, size_t off, size_t size)
{
    (void)be;
    push((char *)t->data + off, data, size);
}

static void be_get_async(ggml_backend_t be, const struct ggml_tensor *t, void *data, size_t off, size_t size)
{
    (void)be;
    push(data, (const char *)t->data + off, size);
}

static void be_sync(ggml_backend_t be)
{
    (void)be;
    if (Q.n_jobs)
        Q.n_syncs++;
    for (unsigned i = 0; i < Q.n_jobs; i++) {
        if (Q.jobs[i].size)
            memcpy(Q.jobs[i].dst, Q.jobs[i].src, Q.jobs[i].size);
    }
    Q.n_jobs = 0;
}

static enum ggml_status be_compute(ggml_backend_t be, struct ggml_cgraph *g)
{
    (void)be;
    (void)g;
    Q.n_computes++;
    push(NULL, NULL, 0);
    return GGML_STATUS_SUCCESS;
}

static const struct ggml_backend_i be_iface = {
    .get_name = be_name,
    .free = be_free,
    .set_tensor_async = be_set_async,
    .get_tensor_async = be_get_async,
    .synchronize = be_sync,
    .graph_compute = be_compute,
};

static ggml_guid Guid = { 0x66, 0x61, 0x6b, 0x65, 0x71, 0x75, 0x65, 0x75, 0x65, 0x2d, 0x62, 0x61, 0x63, 0x6b, 0x65, 0x6e };

/* ---- device and reg --------------------------------------------------------------------------------- */

static const char *dev_name(ggml_backend_dev_t d)
{
    (void)d;
    return "FAKEQ0";
}

static void dev_memory(ggml_backend_dev_t d, size_t *free_b, size_t *total)
{
    (void)d;
    *free_b = *total = (size_t)1 << 30;
}

static enum ggml_backend_dev_type dev_type(ggml_backend_dev_t d)
{
    (void)d;
    return GGML_BACKEND_DEVICE_TYPE_GPU;
}

static void dev_props(ggml_backend_dev_t d, struct ggml_backend_dev_props *p)
{
    memset(p, 0, sizeof(*p));
    p->name = dev_name(d);
    p->description = "deferred-queue test backend";
    dev_memory(d, &p->memory_free, &p->memory_total);
    p->type = GGML_BACKEND_DEVICE_TYPE_GPU;
    p->caps.async = true;
}

static ggml_backend_t dev_init(ggml_backend_dev_t d, const char *params)
{
    (void)params;
    ggml_backend_t be = calloc(1, sizeof(*be));
    if (!be)
        return NULL;
    be->guid = &Guid;
    be->iface = be_iface;
    be->device = d;
    return be;
}

static ggml_backend_buffer_type_t dev_buft(ggml_backend_dev_t d)
{
    (void)d;
    return &Buft;
}

static bool dev_supports_op(ggml_backend_dev_t d, const struct ggml_tensor *op)
{
    (void)d;
    (void)op;
    return false;
}

static bool dev_supports_buft(ggml_backend_dev_t d, ggml_backend_buffer_type_t t)
{
    (void)d;
    return t == &Buft;
}

static const char *reg_name(ggml_backend_reg_t r)
{
    (void)r;
    return "FAKEQ";
}

static size_t reg_count(ggml_backend_reg_t r)
{
    (void)r;
    return 1;
}

static ggml_backend_dev_t reg_dev(ggml_backend_reg_t r, size_t i)
{
    (void)r;
    return i == 0 ? &Dev : NULL;
}

static void *reg_proc(ggml_backend_reg_t r, const char *name)
{
    (void)r;
    (void)name;
    return NULL;
}

static struct ggml_backend_reg Reg = { GGML_BACKEND_API_VERSION, { reg_name, reg_count, reg_dev, reg_proc }, NULL };

static struct ggml_backend_device Dev = {
    { .get_name = dev_name,
      .get_description = dev_name,
      .get_memory = dev_memory,
      .get_type = dev_type,
      .get_props = dev_props,
      .init_backend = dev_init,
      .get_buffer_type = dev_buft,
      .supports_op = dev_supports_op,
      .supports_buft = dev_supports_buft },
    &Reg,
    NULL
};

ggml_backend_reg_t ggml_backend_init(void) { return &Reg; }
