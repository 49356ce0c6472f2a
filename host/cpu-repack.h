/*
 * Repacked copies ("shadows") of weight matrices on ggml-cpu devices (cpu-repack.c).
 *
 * A llama.cpp process on the CPU puts its quantized weight matrices in ggml-cpu's extra
 * buffer types (CPU_REPACK and others), whose set_tensor rearranges the blocks so that the
 * matrix kernels read several rows at once: on x86 with AVX2, a Q4_0 decode runs about 15 %
 * faster than on the plain layout. Through VirtGPU the weights live in the device's ordinary
 * buffer, because llama.cpp never offers a GPU-type device's extra buffer types. So the host
 * keeps, for each weight matrix a graph multiplies with, a repacked copy in an extra buffer
 * type of its own, and computes that node on the copy. The guest's bytes stay as they were
 * (get_tensor still returns them; other ops still read them).
 *
 * Which tensors: sources 0 of MUL_MAT / MUL_MAT_ID nodes that the guest flagged as weights
 * (VGPU_TENSOR_FLAG_WEIGHTS: its buffer's usage is GGML_BACKEND_BUFFER_USAGE_WEIGHTS), that are
 * plain contiguous leaves, not trainable parameters, in a buffer the same graph does not write,
 * and for which ggml-cpu itself says that one of its extra buffer types computes the node.
 *
 * Staleness: every buffer counts the writes the host sees into it (vgpu_buffer.wgen: sets,
 * memsets, copies, clears, tensor inits, graphs with nodes in it); a copy made at an older count
 * is repacked again before the next graph that uses it. Writes the host cannot see (a guest
 * writing a zero-copy buffer's memory itself) are the guest's to route through the host once a
 * graph has used the buffer's weights, as ours does (guest/buffer.c); a guest that does not only
 * gets stale numbers for itself.
 *
 * Cost: host memory for the copies, charged to the context's buffer-bytes quota (over the quota
 * a node simply computes on the guest's bytes); one repack per tensor, on the first graph that
 * uses it. Off with config key VGPU_CFG_CPU_REPACK (apir.h) = "0".
 */
#ifndef VGPU_HOST_CPU_REPACK_H
#define VGPU_HOST_CPU_REPACK_H

#include <stdbool.h>
#include <stdint.h>

#include "ggml-backend.h"
#include "ggml.h"

struct vgpu_ctx;
struct vgpu_buffer;
struct vgpu_graph;
struct vgpu_tinfo;
struct vgpu_shadow;

/* Extra buffer types considered per device (ggml-cpu has at most a handful). */
#define VGPU_REPACK_MAX_BUFTS 8

/* One device's shadows. Zeroed = off. */
struct vgpu_repack {
    uint32_t                   n_bufts;
    ggml_backend_buffer_type_t bufts[VGPU_REPACK_MAX_BUFTS];
    ggml_backend_buffer_t      probe[VGPU_REPACK_MAX_BUFTS]; /* empty buffers, for supports_op */
    struct vgpu_shadow       **v;
    uint32_t                   n, cap;
    uint64_t                   repacks; /* repack operations done (statistics for tests) */
};

/*
 * Turns shadows on for device `dev` (a ggml-cpu device whose graphs cpu-compute.c computes:
 * synchronously, so no queued work reads a shadow while it is repacked) when `reg` offers the
 * device extra buffer types. `r` starts zeroed.
 */
void vgpu_repack_attach(struct vgpu_repack *r, ggml_backend_reg_t reg, ggml_backend_dev_t dev);
/* Frees every shadow and probe buffer, giving their bytes back to *bytes_used; `r` is zeroed. */
void vgpu_repack_free(struct vgpu_repack *r, uint64_t *bytes_used);
/* Frees the shadows of buffer b (being freed; the graphs that use it are already dropped). */
void vgpu_repack_drop_buffer(struct vgpu_ctx *ctx, const struct vgpu_buffer *b);

/*
 * Last step of a compute graph's build on device g->dev: points each eligible node's source 0 at
 * a shadow (found or made; making one repacks the guest's bytes) and records the shadows the
 * graph uses. `info[i]` describes g->tensors[i]; a buffer whose `wmark` is ctx->epoch is written
 * by a node of this graph. A node without a shadow computes on the guest's bytes, so the only
 * error is VGPU_NO_MEMORY for the graph's shadow list (logged).
 */
uint32_t vgpu_repack_graph(struct vgpu_ctx *ctx, struct vgpu_graph *g, const struct vgpu_tinfo *info);
/* Before computing g: repacks again each shadow g uses whose buffer was written since. */
void vgpu_repack_refresh(struct vgpu_ctx *ctx, const struct vgpu_graph *g);

#endif /* VGPU_HOST_CPU_REPACK_H */
