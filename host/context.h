/*
 * Per-context state of the APIR library (one per runtime ctx_id): the loaded GGML backend,
 * its devices, the object table, quotas, the sticky fatal flag, logging and scratch memory.
 *
 * Nothing here is process-global; apir-entry.c owns the only global (the ctx_id table). A
 * context's commands are serialised (by the runtime, and by a per-context mutex in
 * apir-entry.c), so nothing below locks.
 */
#ifndef VGPU_HOST_CONTEXT_H
#define VGPU_HOST_CONTEXT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apir.h"
#include "cpu-compute.h"
#include "cpu-repack.h"
#include "ggml-backend-impl.h"
#include "ggml-backend.h"
#include "objects.h"
#include "profile.h"
#include "trace.h"
#include "resources.h"

struct vgpu_graph;
struct vgpu_host_buffers;

/* Graph cache slots per device (EXT_HELLO graph_cache_slots). */
#define VGPU_GRAPH_CACHE_SLOTS 8u

/* Quota defaults (DESIGN §4.6). */
#define VGPU_DEFAULT_QUOTA_BUFFERS       4096u
#define VGPU_DEFAULT_QUOTA_GRAPH_NODES   262144u
#define VGPU_DEFAULT_QUOTA_COMMAND_BYTES (1u << 20)
#define VGPU_DEFAULT_DEVICE_MEMORY       (64ull << 30) /* per device that reports 0 */

/* Bounded scratch for copies that go through host memory (COPY fallback, MEMSET fallback). */
#define VGPU_COPY_CHUNK (4u << 20)

enum vgpu_log_level {
    VGPU_LOG_ERROR = 0,
    VGPU_LOG_WARN  = 1,
    VGPU_LOG_INFO  = 2,
    VGPU_LOG_DEBUG = 3,
};

struct vgpu_device {
    ggml_backend_dev_t         dev;
    ggml_backend_t             backend;   /* created on first use */
    ggml_backend_buffer_type_t buft;      /* default buffer type (NULL: cannot allocate) */
    uint64_t                   buft_id;   /* its handle (0 if buft is NULL) */
    uint32_t                   caps;      /* VGPU_CAP_* */
    bool                       can_wrap;  /* caps.buffer_from_host_ptr and the iface function */
    bool                       zero_copy; /* can_wrap and its default buft is_host */
    bool                       probed;    /* buft_flags computed */
    uint32_t                   buft_flags;
    struct vgpu_graph         *cache[VGPU_GRAPH_CACHE_SLOTS];
    struct vgpu_cpu_work       cpu;       /* ggml-cpu backends: computed by cpu-compute.c */
    struct vgpu_repack         repack;    /* ggml-cpu backends: repacked weights (cpu-repack.c) */
};

/* A guest-visible buffer (object type VGPU_OBJ_BUFFER). */
struct vgpu_buffer {
    ggml_backend_buffer_t buf;
    uint64_t              id;
    uint32_t              dev;
    uint64_t              size; /* ggml_backend_buffer_get_size */
    uint8_t              *base; /* host base; NULL when size is 0 */
    bool                  zero_copy;
    uint32_t              res_id; /* zero-copy: the resource that is the buffer's memory */
    const void           *res_ptr;
    uint64_t              res_size;
    uint64_t              mark;  /* graph builder bookkeeping (epoch of the last visit) */
    uint64_t              wmark; /* same: epoch of the last build whose nodes write it */
    uint64_t              wgen;  /* writes seen so far (cpu-repack.h); wraps harmlessly */
};

struct vgpu_quotas {
    uint64_t buffer_bytes;
    uint64_t buffers;
    uint64_t graph_nodes;
    uint64_t graph_tensors; /* 4 x graph_nodes */
    uint64_t command_bytes;
};

struct vgpu_scratch {
    void  *p;
    size_t cap;
};

/*
 * The bytes of recent EXT_TENSOR_SETs (cmd-buffer.c): what device memory holds in those ranges,
 * as long as no other command could have written it since. The index guard checks graph inputs
 * on such bytes instead of reading them back from the device (index-guard.c). Small sets only:
 * index inputs are a few KiB.
 */
#define VGPU_CAPTURE_SLOTS     16
#define VGPU_CAPTURE_MAX_SET   (8u << 10)
#define VGPU_CAPTURE_BYTES     (64u << 10)

struct vgpu_capture {
    const struct vgpu_buffer *buf;
    uint64_t                  off, size; /* the range in buf */
    uint32_t                  at;        /* its bytes in vgpu_captures.bytes */
};

struct vgpu_captures {
    struct vgpu_capture c[VGPU_CAPTURE_SLOTS];
    uint32_t            n;
    uint32_t            used;
    uint8_t             bytes[VGPU_CAPTURE_BYTES];
};

struct vgpu_ctx {
    uint32_t id;

    /* runtime callbacks, copied at initialisation */
    const char *(*get_config)(uint32_t ctx_id, const char *key);
    void *(*get_shmem_ptr)(uint32_t ctx_id, uint32_t res_id);
    int (*get_shmem_size)(uint32_t ctx_id, uint32_t res_id, uint64_t *size); /* may be NULL */

    enum vgpu_log_level log_level;
    const char         *cmd_name; /* command being served, for log lines */
    char                cmd_buf[24];

    void              *lib; /* dlopen handle of the GGML backend */
    ggml_backend_reg_t reg;
    void (*set_n_threads)(ggml_backend_t backend, int n_threads); /* reg proc address or NULL */
    struct vgpu_cpu_api cpu_api;
    bool                cpu_repack; /* config VGPU_CFG_CPU_REPACK (default on) */

    uint32_t            n_devices;
    struct vgpu_device *devices;

    struct vgpu_objects objects;
    struct vgpu_quotas  quota;
    uint64_t            bytes_used; /* host-allocated buffer bytes */
    uint32_t            n_buffers;

    bool fatal; /* sticky: every command answers VGPU_FATAL */
    bool hello; /* EXT_HELLO succeeded */

    struct vgpu_res_cache res_cache;

    /* graph building */
    struct vgpu_graph  *scratch_graph; /* storage for uncached builds (reused) */
    uint64_t            lru_clock;
    uint64_t            epoch;
    struct vgpu_scratch img;   /* private copy of a graph image */
    struct vgpu_scratch aux;   /* per-tensor bookkeeping during a build */
    struct vgpu_scratch aux2;  /* id hash map (baseline) / optimize deps */
    struct vgpu_scratch copy;  /* bounded copy scratch (VGPU_COPY_CHUNK) */

    struct vgpu_trace trace; /* test facility, off unless configured (trace.h) */
    struct vgpu_profile prof; /* measuring facility, off unless GGML_VIRTGPU_PROFILE (profile.h) */

    /* EXT_BATCH (dispatch.c) */
    bool     batch_stopped; /* a batch stopped early: commands answer SKIPPED until a RESUME */
    bool     in_batch;      /* serving batch entries: transfers may queue async backend copies */
    uint64_t async_devs;    /* devices (bit = index) with queued async copies (cmd-buffer.c) */
    bool     left_running;  /* the command being served is a NO_WAIT batch whose work runs on */
    bool     async_guest_mem; /* one of them uses guest memory other than a pinned host buffer */
    uint8_t *keep;          /* sources of queued sets, copied out of the request (cmd-buffer.c) */
    size_t   keep_used;
    uint64_t wait_epoch;    /* vgpu_ctx_async_wait calls so far */
    struct vgpu_captures captures; /* recent EXT_TENSOR_SET bytes (cmd-buffer.c) */
    /* registered host buffers and pinning (cmd-host-buffer.c) */
    struct vgpu_host_buffers *host_buffers;
};

/*
 * Creates a context. Returns 0 or an apir_backend_initialize() return value (3, 4, 5 or
 * 6 + APIR_BACKEND_INITIALIZE_*), having logged why.
 */
uint32_t vgpu_ctx_create(uint32_t ctx_id, const struct virgl_apir_callbacks *cbs, struct vgpu_ctx **out);
/* Frees everything the context owns, whatever its state. */
void vgpu_ctx_destroy(struct vgpu_ctx *ctx);

/* Forgets every capture: called before any command that may write device memory other than
 * through EXT_TENSOR_SET, and after each graph compute (dispatch.c). */
void vgpu_captures_clear(struct vgpu_ctx *ctx);
/*
 * The bytes that device memory of buf holds in [off, off + size), if a capture contains that
 * range; NULL otherwise.
 */
const uint8_t *vgpu_captures_find(const struct vgpu_ctx *ctx, const struct vgpu_buffer *buf, uint64_t off,
                                  uint64_t size);

/*
 * Logging: "ggml-virtgpu-backend[ctx N]: <cmd>: <text>" on stderr, filtered by level.
 * vgpu_log_id is for lines without a context (its level comes from GGML_VIRTGPU_LOG_LEVEL).
 */
void vgpu_log_id(uint32_t ctx_id, enum vgpu_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void vgpu_log(const struct vgpu_ctx *ctx, enum vgpu_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Logs one line for a failure and returns `code`. Guest errors log at warn, host failures
 * (NO_MEMORY, BACKEND) at error.
 */
uint32_t vgpu_fail(const struct vgpu_ctx *ctx, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Marks the context fatal (sticky) with one error line; returns `code`. */
uint32_t vgpu_set_fatal(struct vgpu_ctx *ctx, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Device by index: VGPU_INVALID (logged) if out of range. */
uint32_t vgpu_ctx_device(struct vgpu_ctx *ctx, uint32_t dev, struct vgpu_device **out);
/* The device's backend, created on first use. */
uint32_t vgpu_ctx_backend(struct vgpu_ctx *ctx, uint32_t dev, ggml_backend_t *out);
/*
 * Starts computing `cgraph` on device `dev`, whose backend is `backend`: through cpu-compute.c
 * on a ggml-cpu backend (synchronous), else ggml_backend_graph_compute_async.
 */
enum ggml_status vgpu_ctx_compute(struct vgpu_ctx *ctx, uint32_t dev, ggml_backend_t backend,
                                  struct ggml_cgraph *cgraph);
/* Computes the device's buft_flags once (may allocate a probe buffer). */
void vgpu_ctx_probe_device(struct vgpu_ctx *ctx, uint32_t dev);

/*
 * Buffer by id. Missing → VGPU_NOT_FOUND; an id of another live object type → VGPU_NOT_FOUND
 * and the context becomes fatal. All logged.
 */
uint32_t vgpu_ctx_buffer(struct vgpu_ctx *ctx, uint64_t id, struct vgpu_buffer **out);
/*
 * Same, for a buffer about to be read or written: a zero-copy buffer's resource is
 * re-resolved and must still be mapped where it was, at least as large.
 */
uint32_t vgpu_ctx_buffer_live(struct vgpu_ctx *ctx, uint64_t id, struct vgpu_buffer **out);
uint32_t vgpu_buffer_check_live(struct vgpu_ctx *ctx, const struct vgpu_buffer *b);
/* Buffer type id → device index (each device's default buft has its own id). */
uint32_t vgpu_ctx_buft(struct vgpu_ctx *ctx, uint64_t id, uint32_t *dev_out);

/*
 * Allocates a buffer on a device: normal (res_ptr NULL) or zero-copy over [res_ptr, +size).
 * Checks quotas; clears host-allocated memory so no stale host data reaches the guest.
 */
uint32_t vgpu_ctx_buffer_alloc(struct vgpu_ctx *ctx, uint32_t dev, uint64_t size, uint32_t res_id,
                               void *res_ptr, uint64_t res_size, uint64_t max_tensor_size,
                               struct vgpu_buffer **out);
/* Frees a buffer: drops cached graphs that use it, then the ggml buffer and its handle. */
uint32_t vgpu_ctx_buffer_free(struct vgpu_ctx *ctx, uint64_t id);

/* Waits for the async copies queued on the devices' backends (cmd-buffer.c); idempotent. */
void vgpu_ctx_async_wait(struct vgpu_ctx *ctx);
/* Work was queued on device dev's backend: the next vgpu_ctx_async_wait waits for it (a context
 * has at most 64 devices). */
static inline void vgpu_ctx_mark_async(struct vgpu_ctx *ctx, uint32_t dev)
{
    if (dev < 64)
        ctx->async_devs |= 1ull << dev;
}
/* Unpins and forgets every registered host buffer (cmd-host-buffer.c). */
void vgpu_host_buffers_destroy(struct vgpu_ctx *ctx);
/*
 * Pins host-private memory [p, p + n) (page-aligned) with the backend's GPU runtime, like a
 * registered host buffer and within the same pinned-bytes quota, until the context ends
 * (vgpu_host_buffers_destroy, before the memory is freed). One region per context; false when
 * it cannot (no GPU runtime, quota, an error).
 */
bool vgpu_host_pin_private(struct vgpu_ctx *ctx, void *p, uint64_t n);
/*
 * True if [p, p + n) lies in one registered host buffer that is pinned (cmd-host-buffer.c).
 * Queued copies may use such memory after the reply of a NO_WAIT batch: the GPU reaches it by
 * DMA on pages the pin keeps, even if the guest destroys the resource meanwhile. Unpinned
 * memory is only used before a reply (a backend may copy it at synchronize, as Vulkan does).
 */
bool vgpu_host_buffer_pinned(const struct vgpu_ctx *ctx, const uint8_t *p, uint64_t n);

/* Grows a scratch area to at least n bytes (64-byte aligned); NULL (not logged) on failure. */
void *vgpu_scratch_get(struct vgpu_scratch *s, size_t n);

/* Baseline nominal base of a buffer: (slot + 1) << 40. */
static inline uint64_t vgpu_nominal_base(uint64_t buffer_id)
{
    return ((uint64_t)vgpu_handle_slot(buffer_id) + 1) << 40;
}

#endif /* VGPU_HOST_CONTEXT_H */
