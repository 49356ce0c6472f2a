/*
 * ggml tensors and graphs to wire images (docs/PROTOCOL.md §3.1, §3.2, §4.1), both forms:
 * the extension images (64-bit shapes, list indices, use counts) and the baseline ones
 * (rpc tensors, raw ggml_tensor images) that an upstream host library understands.
 *
 * Nothing here does I/O or knows about devices: where a tensor's bytes live comes from a
 * locator callback, so the code is testable with ordinary ggml buffers.
 */
#ifndef VGPU_GUEST_SERIALIZE_H
#define VGPU_GUEST_SERIALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ggml-backend.h"
#include "ggml.h"
#include "wire.h"

struct ggml_cgraph;
struct vgpu_dfs_frame;

/*
 * Resolves a ggml buffer to the host's id for it and the guest address its offsets are
 * measured from. Returns false for buffers the host does not know (foreign backends).
 */
typedef bool (*vgpu_buffer_lookup_fn)(void *user, ggml_backend_buffer_t buffer, uint64_t *id, uintptr_t *base);

/*
 * Optional: true if the tensors of `buffer` go into graph images flagged
 * VGPU_TENSOR_FLAG_WEIGHTS. Asked for every tensor of an extension image that has a buffer, so
 * it may also note that a graph has used the buffer.
 */
typedef bool (*vgpu_buffer_weights_fn)(void *user, ggml_backend_buffer_t buffer);

struct vgpu_locator {
    vgpu_buffer_lookup_fn  lookup;
    void                  *user;
    vgpu_buffer_weights_fn weights; /* NULL: nothing is flagged */
};

/* The buffer that holds t's bytes (its view source's for views), or NULL. */
ggml_backend_buffer_t vgpu_tensor_buffer(const struct ggml_tensor *t);

/*
 * t's buffer id and byte offset from that buffer's base; (0, 0) when t has no data or its
 * buffer is not a remote one.
 */
void vgpu_tensor_location(const struct ggml_tensor *t, const struct vgpu_locator *loc, uint64_t *buffer,
                          uint64_t *offset);

/* Extension wire tensor of a standalone tensor: plain fields and location, no references. */
void vgpu_wire_from_tensor(const struct ggml_tensor *t, const struct vgpu_locator *loc, struct vgpu_wire_tensor *w);

/* True if every ne[i] and nb[i] fits the 32-bit fields of the baseline rpc tensor. */
bool vgpu_tensor_fits_rpc(const struct ggml_tensor *t);

/* Baseline rpc tensor of a standalone tensor with the given id; false if it does not fit. */
bool vgpu_rpc_from_tensor(const struct ggml_tensor *t, const struct vgpu_locator *loc, uint64_t id,
                          struct vgpu_rpc_tensor *r);

/*
 * The op signature: the extension tensor list of `op` (its distinct sources first, then op
 * itself, whose src/view_src name them by 1 + index) with every buffer id, data offset and
 * name zeroed. It is both the EXT_SUPPORTS_OP / EXT_OFFLOAD_OP / EXT_GET_ALLOC_SIZE request
 * body and the guest's cache key: equal bytes mean the host must give equal answers.
 * Returns the number of bytes written (at most VGPU_OP_KEY_MAX).
 */
#define VGPU_OP_KEY_MAX (4u + VGPU_MAX_TENSOR_LIST * VGPU_WIRE_TENSOR_SIZE)
size_t vgpu_op_key(const struct ggml_tensor *op, uint8_t out[VGPU_OP_KEY_MAX]);

/*
 * Baseline inline tensor (DEVICE_SUPPORTS_OP, BUFFER_TYPE_GET_ALLOC_SIZE) for `op`: plain
 * fields only; buffer, data, extra and view_src are zero in every image, src[i] of op is a
 * presence marker, the sources' own pointers are zero. False when op cannot be described
 * safely to an upstream host: a shape or stride needs more than 32 bits (the baseline graph
 * could not carry it), or a source follows a NULL source (upstream decoders stop there).
 */
bool vgpu_inline_from_op(const struct ggml_tensor *op, struct vgpu_inline_tensor *it);

/* Graph use count of t (cgraph->use_counts through its hash set); 0 if t is not in it. */
int32_t vgpu_graph_use_count(const struct ggml_cgraph *g, const struct ggml_tensor *t);

enum vgpu_graph_form {
    VGPU_GRAPH_FORM_EXT,      /* docs/PROTOCOL.md §4.1 graph image */
    VGPU_GRAPH_FORM_BASELINE, /* docs/PROTOCOL.md §3.1 graph image */
};

/*
 * A serialized graph plus what the caller needs to interpret host answers about it.
 * Reusable: vgpu_graph_serialize keeps the allocations between calls.
 */
struct vgpu_graph_image {
    uint8_t                   *data;      /* the image */
    size_t                     size;
    const struct ggml_tensor **tensors;   /* image index -> tensor */
    uint32_t                   n_tensors;
    uint32_t                   n_nodes;
    /* private */
    size_t                     data_cap;
    size_t                     tensors_cap;
    const struct ggml_tensor **map_keys;  /* open addressing, pointer -> index */
    uint32_t                  *map_vals;
    size_t                     map_cap;
    struct vgpu_dfs_frame     *stack;
    size_t                     stack_cap;
};

/*
 * Serializes g: an iterative depth-first walk (no recursion, any depth) from every node over
 * src[0..9] and view_src, writing each tensor after everything it references. Returns 0, or
 * -1 with a reason in why (out of memory, a cycle, a tensor the baseline cannot describe).
 */
int  vgpu_graph_serialize(struct vgpu_graph_image *img, const struct ggml_cgraph *g, const struct vgpu_locator *loc,
                          enum vgpu_graph_form form, char *why, size_t why_size);
/* Image index of t after vgpu_graph_serialize, or UINT32_MAX. */
uint32_t vgpu_graph_index_of(const struct vgpu_graph_image *img, const struct ggml_tensor *t);
void vgpu_graph_image_free(struct vgpu_graph_image *img);

#endif /* VGPU_GUEST_SERIALIZE_H */
