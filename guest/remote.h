/*
 * One function per host command (docs/PROTOCOL.md §2-§4), extension and baseline variants.
 * Each takes the channel lock for the whole exchange (several FORWARDs for a chunked
 * transfer), so callers need no locking.
 *
 * Return values: a handler code >= 0 (VGPU_OK on success, docs/PROTOCOL.md §2.1), or < 0
 * when no answer came (the channel is lost, or the request could not be formed).
 */
#ifndef VGPU_GUEST_REMOTE_H
#define VGPU_GUEST_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "wire.h"

/* Data moves up to this size travel inside the command (or reply) instead of staging. */
#define VGPU_INLINE_DATA_MAX  (16u * 1024u)
/* Extension graph images up to this size travel inside the command. */
#define VGPU_INLINE_GRAPH_MAX (64u * 1024u)

/* A tensor as the host sees it, in both protocol forms. */
struct vgpu_tensor_ref {
    uint64_t                buffer; /* remote buffer id (also in wire.buffer / rpc.buffer) */
    struct vgpu_wire_tensor wire;   /* extension description (no references) */
    bool                    rpc_ok; /* rpc holds a baseline description (shape fits 32 bits) */
    struct vgpu_rpc_tensor  rpc;
};

/* ---- start-up --------------------------------------------------------------------------- */

/* HANDSHAKE: 0 with the host's answer (magic = return code, version), or < 0. */
int vgpu_remote_handshake(struct vgpu_channel *ch, uint32_t *magic, uint32_t *major, uint32_t *minor);
/* LOADLIBRARY: 0 with the runtime's code (0 success), or < 0. */
int vgpu_remote_load_library(struct vgpu_channel *ch, uint32_t *code);
/* EXT_HELLO: the reply is decoded for VGPU_OK and VGPU_ABI_MISMATCH. */
int vgpu_remote_ext_hello(struct vgpu_channel *ch, const struct vgpu_hello *req, struct vgpu_hello *rep);
int vgpu_remote_ext_device_info(struct vgpu_channel *ch, uint32_t dev, struct vgpu_device_info *info);
/*
 * Baseline device description from commands 2, 3, 4, 5, 7, 8, 10, 11, 12, in the form of
 * EXT_DEVICE_INFO: caps from DEVICE_GET_PROPS, buft_flags ZERO_COPY if the host can wrap
 * shared memory (buffer_from_host_ptr), ALLOC_SIZE always (the baseline cannot tell).
 */
int vgpu_remote_base_device_info(struct vgpu_channel *ch, struct vgpu_device_info *info);

/* ---- devices ---------------------------------------------------------------------------- */

int vgpu_remote_device_memory(struct vgpu_channel *ch, bool baseline, uint32_t dev, uint64_t *free_b,
                              uint64_t *total_b);
/* EXT_SUPPORTS_OP / EXT_OFFLOAD_OP (cmd) with an op signature (vgpu_op_key) as the list. */
int vgpu_remote_op_query(struct vgpu_channel *ch, uint32_t cmd, uint32_t dev, const uint8_t *key, size_t key_size,
                         bool *answer);
int vgpu_remote_alloc_size(struct vgpu_channel *ch, uint32_t dev, uint64_t buft, const uint8_t *key, size_t key_size,
                           uint64_t *size);
int vgpu_remote_base_supports_op(struct vgpu_channel *ch, const struct vgpu_inline_tensor *it, bool *answer);
int vgpu_remote_base_alloc_size(struct vgpu_channel *ch, uint64_t buft, const struct vgpu_inline_tensor *it,
                                uint64_t *size);
int vgpu_remote_set_n_threads(struct vgpu_channel *ch, uint32_t dev, uint32_t n_threads);

/* ---- buffers ---------------------------------------------------------------------------- */

struct vgpu_remote_buffer {
    uint64_t             id;
    uint64_t             size;      /* what the host allocated (>= the request) */
    uint64_t             host_base; /* baseline, host-allocated: BUFFER_GET_BASE's answer */
    bool                 zero_copy; /* the host computes on res */
    struct vgpu_resource res;       /* zero-copy memory, mapped here */
};

/*
 * Allocates a buffer. With zero_copy, first creates a shared resource of `size` bytes and
 * asks the host to use it as the buffer's memory (EXT_BUFFER_ALLOC flag 1, or baseline
 * DEVICE_BUFFER_FROM_PTR); it fails (and cleans up) if the host does not grant that.
 */
int  vgpu_remote_buffer_alloc(struct vgpu_channel *ch, bool baseline, uint32_t dev, uint64_t buft, uint64_t size,
                              bool zero_copy, struct vgpu_remote_buffer *b);
/* Frees the host buffer and unmaps/destroys its resource (also when the host is gone). */
void vgpu_remote_buffer_free(struct vgpu_channel *ch, bool baseline, struct vgpu_remote_buffer *b);
int  vgpu_remote_buffer_clear(struct vgpu_channel *ch, bool baseline, uint64_t id, uint8_t value);

/* ---- tensor data (host-allocated buffers) ----------------------------------------------------- */

/* The guest side of a move. */
struct vgpu_xfer_data {
    uint8_t *ptr;        /* row 0 */
    uint64_t stride;     /* bytes between rows */
    uint32_t res_id;     /* non-zero: ptr lies in this shared resource (a host buffer) ... */
    uint64_t res_offset; /* ... at this offset: the host reads or writes it there */
    bool     async;      /* the caller keeps the data valid, and does not read it, until a sync */
};

/*
 * n_copies rows of `size` bytes: row i is tensor bytes [offset + i*stride_tensor, +size) and
 * data bytes [i*d->stride, +size). With a batching host: data in a host buffer moves by
 * reference (deferred when d->async), small moves are deferred inline (a GET only when
 * d->async: its bytes land at the next sync), large ones go through pipelined staging
 * chunks. Without batching: inline when small, staged otherwise; the baseline moves each
 * row through the staging resource. A deferred move's failure is a deferred error.
 */
int vgpu_remote_tensor_set(struct vgpu_channel *ch, bool baseline, const struct vgpu_tensor_ref *t,
                           const struct vgpu_xfer_data *d, uint64_t offset, uint64_t size, uint64_t n_copies,
                           uint64_t stride_tensor);
int vgpu_remote_tensor_get(struct vgpu_channel *ch, bool baseline, const struct vgpu_tensor_ref *t,
                           const struct vgpu_xfer_data *d, uint64_t offset, uint64_t size, uint64_t n_copies,
                           uint64_t stride_tensor);
/* Baseline: emulated with SET_TENSOR of a filled staging area. */
int vgpu_remote_tensor_memset(struct vgpu_channel *ch, bool baseline, const struct vgpu_tensor_ref *t,
                              uint64_t offset, uint64_t size, uint8_t value);
/* VGPU_OK when the host copied; anything else means "not copied" (ggml falls back). */
int vgpu_remote_tensor_copy(struct vgpu_channel *ch, bool baseline, const struct vgpu_tensor_ref *src,
                            const struct vgpu_tensor_ref *dst);
/*
 * EXT_TENSOR_INIT. With `defer` on a batching host it is deferred (VGPU_OK at once; a failure is
 * latched for the next graph compute, as for every deferred command), else waited for.
 */
int vgpu_remote_tensor_init(struct vgpu_channel *ch, const struct vgpu_tensor_ref *t, bool defer);

/* ---- graphs ------------------------------------------------------------------------------- */

/*
 * EXT_GRAPH_COMPUTE. size 0 = recompute the graph cached under uid. On VGPU_OK, *result is
 * VGPU_GRAPH_COMPUTED (with *status) or VGPU_GRAPH_NOT_CACHED.
 */
int vgpu_remote_graph_compute(struct vgpu_channel *ch, uint32_t dev, uint64_t uid, const uint8_t *image,
                              size_t size, uint32_t *result, int32_t *status);
int vgpu_remote_base_graph_compute(struct vgpu_channel *ch, const uint8_t *image, size_t size, int32_t *status);
/*
 * Batching hosts: queues EXT_GRAPH_COMPUTE (the graph cached under uid when size is 0, else
 * the image, which must fit one command inline: -EMSGSIZE otherwise, nothing queued) and
 * submits it without waiting. meta (kind GRAPH set here) carries the resend hook for a host
 * that no longer holds a cached graph. Its outcome is a deferred error. no_wait: the batch
 * carries VGPU_BATCH_NO_WAIT (the host answers before the compute ends; a later sync costs
 * one more round trip), worth it only where the host backend computes asynchronously.
 */
int vgpu_remote_graph_compute_async(struct vgpu_channel *ch, uint32_t dev, uint64_t uid, const uint8_t *image,
                                    size_t size, const struct vgpu_entry_meta *meta, bool no_wait);
/* The EXT_GRAPH_COMPUTE request of a full image (for a resend hook), without the APIR header. */
int vgpu_remote_encode_graph_request(struct vgpu_channel *ch, struct vgpu_enc *enc, uint32_t dev, uint64_t uid,
                                     const uint8_t *image, size_t size);
/* Completes what is outstanding (vgpu_channel_sync under the lock). */
int vgpu_remote_sync(struct vgpu_channel *ch, bool only_observable);

/* ---- host buffers ---------------------------------------------------------------------------- */

/* EXT_HOST_BUFFER_REGISTER of a whole resource; *pinned: the host pinned it. */
int  vgpu_remote_host_buffer_register(struct vgpu_channel *ch, const struct vgpu_resource *res, bool *pinned);
/* Unregisters it (when registered), once nothing outstanding names it, and destroys it. */
void vgpu_remote_host_buffer_free(struct vgpu_channel *ch, struct vgpu_resource *res, bool registered);
/*
 * EXT_GRAPH_OPTIMIZE. On VGPU_OK: order[n_nodes] is a permutation of node positions (checked
 * here), *deps a malloc'd array of *n_deps (tensor, until) pairs of image indices.
 */
int vgpu_remote_graph_optimize(struct vgpu_channel *ch, uint32_t dev, const uint8_t *image, size_t size,
                               uint32_t n_nodes, uint32_t n_tensors, uint32_t *order, uint32_t **deps,
                               uint32_t *n_deps);

#endif /* VGPU_GUEST_REMOTE_H */
