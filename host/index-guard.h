/*
 * Index guard: the bounds of index DATA, which no static check can see (DESIGN §4.5, §4.3).
 *
 * The host validates every tensor and op of a guest graph before computing it, but some ops
 * take a tensor whose *values* are row, expert or sequence numbers, and the kernels index
 * memory with them without checking (or only assert() / GGML_ASSERT them: heap corruption in a
 * release build, or an abort of the host worker). The consumers and their bounds:
 *
 *   op              index source        value range checked          CPU kernel on a bad value
 *   GET_ROWS        src1 (I32)          [0, src0->ne[1])             GGML_ASSERT (abort)
 *   GET_ROWS_BACK   src1 (I32)          [0, dst->ne[1])              none: out-of-bounds write
 *   SET_ROWS        src1 (I32 or I64)   [0, dst->ne[1])              GGML_ASSERT (abort)
 *   MUL_MAT_ID      src2 (I32)          [0, src0->ne[2])             assert(): heap write
 *   ADD_ID          src2 (I32)          [0, src1->ne[1])             GGML_ASSERT (abort)
 *   SSM_SCAN        src6 (I32)          [0, src0->ne[3])             none: out-of-bounds read
 *
 * (The CUDA kernels check none of them.) Every element of the index tensor is read by its
 * consumer, so every element is checked.
 *
 * Planning, once per built graph (kept with it in the cache): each (index tensor, last writer)
 * pair becomes one check group, classified by where the index bytes come from:
 *   - PROVABLE: the last node before the consumer that writes any of the index bytes is an
 *     ARGSORT, TOP_K or ARGMAX whose packed I32 result contains them all (element-aligned),
 *     its value range [0, n) fits the bound, the device is a CPU device (whose kernels were
 *     audited to produce in-range values even for NaN inputs: not CUDA's fused top-k MoE
 *     kernel, for one) and the bytes are not guest-shared. Nothing is done at run time.
 *   - INPUT: no node before the consumer writes the index bytes: they are checked before
 *     every compute (recomputes of cached graphs included: the guest changes inputs between
 *     runs).
 *   - SEGMENT: written in-graph by anything else: the graph is computed in segments (views of
 *     the host cgraph, each with its own uid), and the check runs between the segment that
 *     ends just before the first consumer and the next one.
 * Index bytes in a zero-copy buffer (guest-shared memory) could be changed by the guest between
 * the check and the kernel's read. Their consumers are redirected, once at planning, to a
 * private shadow tensor: each check copies the index elements once into host-private memory,
 * checks the copy, and the kernel reads the copy. On devices other than the CPU every INPUT
 * group is redirected so, to a copy in device memory (a buffer of the device's own type that
 * the guard owns, charged to the context's buffer quota): the checked values are uploaded on
 * the backend's stream ahead of the kernels. No node writes such a copy, so neither a later
 * overwrite of the original bytes nor a fused kernel can change what the consumer reads.
 * Writers are found by byte-range overlap in a per-graph address space (buffer, offset), so an
 * index tensor described as an alias of other memory is treated by what really writes it.
 * A consumer whose own result overlaps its index bytes is refused (no ggml graph does that).
 * On devices other than CPU, backends fuse consecutive nodes into one kernel; a node within
 * VGPU_INDEX_GUARD_FUSE_WINDOW nodes after a consumer that overwrites its index bytes gets a
 * segment boundary right after the consumer, so no fused kernel can reorder the two (SEGMENT
 * groups only: INPUT groups read their device copy).
 *
 * A bad value stops the compute before the consumer runs (nodes before it may have run) and
 * the command answers VGPU_INVALID with a log line naming the node, its op, the index and the
 * bound. Graphs without index consumers cost nothing; dense llama decode graphs are never
 * segmented (their indices are graph inputs): on a GPU they cost one read of the index inputs
 * on the backend's stream, one wait and one small upload per input.
 */
#ifndef VGPU_HOST_INDEX_GUARD_H
#define VGPU_HOST_INDEX_GUARD_H

#include <stdint.h>

#include "ggml-backend.h"
#include "ggml.h"

struct vgpu_ctx;
struct vgpu_graph;
struct vgpu_tinfo;
struct vgpu_index_guard;

/* Nodes after a consumer within which a non-CPU backend may fuse an overwrite of its indices. */
#define VGPU_INDEX_GUARD_FUSE_WINDOW 16
/* Bound on the private shadow copies of one graph's guest-shared index tensors. */
#define VGPU_INDEX_GUARD_MAX_SHADOW (64ull << 20)

/* What a plan decided (for logs and tests). */
struct vgpu_index_guard_stats {
    uint32_t uses;      /* index operands of nodes (non-empty ones) */
    uint32_t provable;  /* check groups needing nothing at run time */
    uint32_t inputs;    /* check groups run before every compute */
    uint32_t segmented; /* check groups run between segments */
    uint32_t shadows;   /* groups that read a private copy (guest-shared bytes, inputs off the CPU) */
    uint32_t dev_shadows; /* of those, copies in device memory */
    uint32_t splits;    /* segment boundaries (segments = splits + 1) */
};

/* Frees a guard (NULL is fine). */
void vgpu_index_guard_free(struct vgpu_index_guard *ig);
/* Forgets the plan (the graph is being rebuilt or dropped); keeps the storage. NULL is fine. */
void vgpu_index_guard_reset(struct vgpu_index_guard *ig);

/*
 * Plans the index checks of g, a graph just built FOR_COMPUTE on device g->dev whose cgraph,
 * nodes and tensors are final: `info` is the builder's per-tensor array (buffer, offset,
 * extent) parallel to g->tensors. Allocates g->guard on first use. May redirect index sources
 * of nodes to shadow tensors the guard owns (they live as long as the plan).
 * Returns VGPU_OK; VGPU_INVALID (logged) if a consumer's result overlaps its index bytes;
 * VGPU_QUOTA if the shadow copies would exceed VGPU_INDEX_GUARD_MAX_SHADOW; VGPU_NO_MEMORY.
 * On failure the caller drops the graph.
 */
uint32_t vgpu_index_guard_plan(struct vgpu_ctx *ctx, struct vgpu_graph *g, const struct vgpu_tinfo *info);

/*
 * Queues the compute of g (valid, planned) on `backend` (its device marked in ctx->async_devs),
 * running its index checks where planned: returns VGPU_OK with the backend's status (a failing
 * segment stops the compute and is returned), or VGPU_INVALID (logged) when an index is out of
 * range, the consumer not having run. Steady state allocates nothing (scratch: ctx->copy).
 */
uint32_t vgpu_index_guard_compute(struct vgpu_ctx *ctx, struct vgpu_graph *g, ggml_backend_t backend,
                                  enum ggml_status *status);

/* The current plan's counts (all zero without a plan). */
struct vgpu_index_guard_stats vgpu_index_guard_stats(const struct vgpu_index_guard *ig);

#endif /* VGPU_HOST_INDEX_GUARD_H */
