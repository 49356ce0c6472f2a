/*
 * Tensors from the wire → validated host tensors (DESIGN §4.3).
 *
 * Every wire form (extension wire tensor, baseline rpc tensor, raw ggml_tensor image) is
 * first turned into a vgpu_tdesc, with references to other tensors already resolved to
 * indices of earlier entries of the same array. vgpu_tensor_build() then checks type,
 * shape, strides, the 64-bit byte extent, the buffer (typed id) and the data range, and the
 * view relation, and only then fills a struct ggml_tensor in the caller's array. No
 * ggml constructor is called on unvalidated input and no pointer is formed before its range
 * is proven.
 */
#ifndef VGPU_HOST_TENSOR_H
#define VGPU_HOST_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "ggml.h"
#include "wire.h"

struct vgpu_ctx;
struct vgpu_buffer;

/* Sanity bounds: far above any real tensor, low enough that no product overflows. */
#define VGPU_MAX_NE        (1ll << 40)  /* per dimension */
#define VGPU_MAX_NELEMENTS (1ll << 50)  /* ne[0]·ne[1]·ne[2]·ne[3] */
#define VGPU_MAX_NB        (1ull << 50) /* per stride */

struct vgpu_tdesc {
    uint32_t type;
    uint32_t op;
    int32_t  flags;
    int32_t  use_count;
    int64_t  ne[GGML_MAX_DIMS];
    uint64_t nb[GGML_MAX_DIMS];
    int32_t  op_params[GGML_MAX_OP_PARAMS / sizeof(int32_t)];
    uint64_t buffer;              /* buffer id, 0 = none */
    uint64_t data;                /* byte offset from the buffer's start */
    int32_t  src[GGML_MAX_SRC];   /* index of an earlier tensor, -1 = none */
    int32_t  view_src;            /* same */
    uint64_t view_offs;
    char     name[GGML_MAX_NAME];
};

enum vgpu_tensor_mode {
    VGPU_TENSOR_BUFFER_REQUIRED, /* graphs to compute, transfers */
    VGPU_TENSOR_BUFFER_OPTIONAL, /* op queries, graph optimisation */
    VGPU_TENSOR_NO_BUFFER,       /* baseline raw images: buffer and data are never used */
};

/* What the builder learnt about each tensor (parallel to the tensor array). */
struct vgpu_tinfo {
    struct vgpu_buffer *buf; /* NULL without a buffer */
    uint64_t            off; /* data offset in buf */
    uint64_t            extent;
    bool                weights; /* the guest flagged it VGPU_TENSOR_FLAG_WEIGHTS */
};

/*
 * Checks type, ne and nb and computes the byte extent (what ggml_nbytes would return, with
 * every step overflow-checked). VGPU_OK or VGPU_INVALID (logged).
 */
uint32_t vgpu_tensor_shape(const struct vgpu_ctx *ctx, uint32_t type, const int64_t ne[GGML_MAX_DIMS],
                           const uint64_t nb[GGML_MAX_DIMS], uint64_t *extent);

/*
 * Validates d as entry `idx` and fills arr[idx] and info[idx]. References must point to
 * entries before idx (already built). Errors: VGPU_INVALID, VGPU_NOT_FOUND (buffer id),
 * all logged; a wrong-type buffer id also makes the context fatal.
 */
uint32_t vgpu_tensor_build(struct vgpu_ctx *ctx, const struct vgpu_tdesc *d, enum vgpu_tensor_mode mode,
                           struct ggml_tensor *arr, struct vgpu_tinfo *info, uint32_t idx);

/*
 * For a tensor in a buffer whose type has get_alloc_size (e.g. CUDA pads quantized rows and
 * its kernels touch the padding): the allocation size must fit in the buffer too. Call only
 * once `t`'s op has passed vgpu_validate_op (or is GGML_OP_NONE).
 */
uint32_t vgpu_tensor_check_alloc(struct vgpu_ctx *ctx, const struct ggml_tensor *t,
                                 const struct vgpu_tinfo *info);

/*
 * Name of a built tensor's op for log lines. Never ggml_op_desc(): it indexes the unary/GLU
 * name tables with op_params[0], which the guest controls.
 */
const char *vgpu_op_name(const struct ggml_tensor *t);

/* Turns a tensor into a plain data leaf: op NONE, no op_params, no sources (view kept). */
void vgpu_tensor_make_leaf(struct ggml_tensor *t);

/*
 * Transfer range: n_copies (>= 1) ranges of `size` bytes at offset + i·stride inside a
 * tensor of `extent` bytes (`limit`), moving at most `limit` bytes in all (n_copies · size:
 * more means overlapping copies, e.g. stride 0, whose only effect is host time). Returns the
 * span (offset of the end of the last range) in *end, or VGPU_INVALID (logged) on overflow
 * or overrun.
 */
uint32_t vgpu_range_check(const struct vgpu_ctx *ctx, const char *what, uint64_t offset, uint64_t size,
                          uint64_t n_copies, uint64_t stride, uint64_t limit, uint64_t *end);

/* Conversions to a tdesc. */
/* Extension wire tensor as entry idx of a list: false if a reference is not to an earlier entry. */
bool vgpu_tdesc_from_wire(const struct vgpu_wire_tensor *w, uint32_t idx, struct vgpu_tdesc *d);
/* Baseline rpc tensor; references are left unset (-1): the caller resolves ids. */
void vgpu_tdesc_from_rpc(const struct vgpu_rpc_tensor *r, struct vgpu_tdesc *d);
/* Raw ggml_tensor image; no buffer, no data, references unset. */
void vgpu_tdesc_from_raw(const struct vgpu_raw_tensor *r, struct vgpu_tdesc *d);

#endif /* VGPU_HOST_TENSOR_H */
