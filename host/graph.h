/*
 * Graph images (extension and baseline forms) → validated host graphs, and the per-device
 * LRU cache of built graphs by guest uid (docs/PROTOCOL.md §3.1, §4.1, §4.2).
 *
 * A build reads only a private copy of the image. Tensors are built into the graph's own
 * array (never with ggml constructors), every reference points strictly backwards, the
 * cgraph lives in a ggml context over memory the graph owns, and every node passes
 * vgpu_validate_op() and vgpu_device_supports_op() before any backend computes it. Graph
 * storage is reused from build to build, so steady-state compute allocates nothing.
 */
#ifndef VGPU_HOST_GRAPH_H
#define VGPU_HOST_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ggml-backend.h"
#include "ggml.h"

struct vgpu_ctx;
struct vgpu_buffer;
struct vgpu_device;
struct vgpu_index_guard;
struct vgpu_shadow;

struct vgpu_graph {
    /* storage, kept across builds */
    struct ggml_tensor  *tensors;
    uint32_t             cap_tensors;
    void                *gmem;
    size_t               gmem_cap;
    struct ggml_context *gctx;
    uint64_t            *bufs; /* ids of the buffers the graph uses */
    bool                *bufs_written; /* per entry of bufs: a node of the graph writes it */
    uint32_t             n_bufs;
    uint32_t             cap_bufs;
    struct vgpu_shadow **shadows; /* repacked weights its nodes read (cpu-repack.h) */
    uint32_t             n_shadows;
    uint32_t             cap_shadows;
    struct vgpu_index_guard *guard; /* index-data checks of the graph held (index-guard.h) */

    /* the graph held (valid only if `valid`) */
    bool                valid;
    struct ggml_cgraph *cgraph;
    uint32_t            n_tensors;
    uint32_t            n_nodes;
    uint32_t            dev;
    uint64_t            uid; /* guest uid (cache key; 0 = uncached) */
    uint64_t            lru;
};

enum vgpu_graph_format {
    VGPU_GRAPH_FORMAT_EXT,      /* "VGG1" image of wire tensors */
    VGPU_GRAPH_FORMAT_BASELINE, /* u32 n_nodes | u64 ids | u32 n_tensors | rpc tensors */
};

enum vgpu_graph_purpose {
    VGPU_GRAPH_FOR_COMPUTE,  /* every tensor in a buffer; nodes must be supported */
    VGPU_GRAPH_FOR_OPTIMIZE, /* tensors may lack buffers (not yet allocated) */
};

/*
 * True if device d computes node t, which vgpu_validate_op() accepted: its backend's
 * supports_op and, on a CPU device, the CPU kernel contract (kernel-cpu.h), whose reason is
 * written into why[why_size] (empty when the backend itself declines). Graph builds and the
 * guest's supports_op queries both ask this, so the guest is never told "supported" for a
 * node a build would refuse.
 */
bool vgpu_device_supports_op(struct vgpu_device *d, const struct ggml_tensor *t, char *why,
                             size_t why_size);

struct vgpu_graph *vgpu_graph_new(void);
void               vgpu_graph_free(struct vgpu_graph *g);
/* Drops what g holds (it becomes invalid) but keeps its storage for the next build. */
void               vgpu_graph_reset(struct vgpu_graph *g);

/*
 * Copies `size` bytes of an image into the context's private image scratch. `src` may be
 * guest-shared memory: it is read exactly once, here.
 */
uint32_t vgpu_graph_load(struct vgpu_ctx *ctx, const void *src, uint64_t size, const uint8_t **img);

/* Builds g from a private image for device `dev`. On failure g is left invalid. */
uint32_t vgpu_graph_build(struct vgpu_ctx *ctx, struct vgpu_graph *g, uint32_t dev, const uint8_t *img,
                          uint64_t size, enum vgpu_graph_format fmt, enum vgpu_graph_purpose purpose);

/*
 * Re-checks the graph's zero-copy buffers, then queues its compute on its device's backend
 * (ggml_backend_graph_compute_async; the device is marked for vgpu_ctx_async_wait, which the
 * dispatcher calls before it replies), with the index checks planned at build (index-guard.h):
 * VGPU_INVALID if index data is out of range.
 */
uint32_t vgpu_graph_compute(struct vgpu_ctx *ctx, struct vgpu_graph *g, enum ggml_status *status);

/*
 * Runs the backend's graph_optimize on g (built FOR_OPTIMIZE) and encodes the EXT_GRAPH_OPTIMIZE
 * reply: the new node order as positions in the request's node list, and the allocation
 * dependencies as pairs of tensor indices. Identity order and no dependencies if the backend
 * has no graph_optimize.
 */
struct vgpu_enc;
uint32_t vgpu_graph_optimize(struct vgpu_ctx *ctx, struct vgpu_graph *g, struct vgpu_enc *enc);

/* Cache (graph-cache.c; per device, VGPU_GRAPH_CACHE_SLOTS entries, LRU). */
struct vgpu_graph *vgpu_graph_cache_find(struct vgpu_ctx *ctx, uint32_t dev, uint64_t uid);
/* Moves the context's scratch graph (valid, built for dev) into the cache under uid. */
void vgpu_graph_cache_put(struct vgpu_ctx *ctx, uint32_t dev, uint64_t uid);
/* Drops every cached graph (and the scratch graph) that uses buffer b. */
void vgpu_graph_cache_drop_buffer(struct vgpu_ctx *ctx, const struct vgpu_buffer *b);

#endif /* VGPU_HOST_GRAPH_H */
