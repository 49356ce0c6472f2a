/*
 * Per-op validation of host tensors built from guest descriptions (DESIGN §4.4).
 *
 * ggml's kernels trust the invariants that ggml's graph constructors (ggml_add, ggml_mul_mat,
 * ggml_rope_ext, ...) enforce with GGML_ASSERT, and many CPU kernels only assert() them. A
 * guest bypasses the constructors, so the host re-checks them here, before any backend sees
 * the tensor (supports_op included: some backends' supports_op dereferences sources).
 */
#ifndef VGPU_HOST_VALIDATE_OP_H
#define VGPU_HOST_VALIDATE_OP_H

#include <stdbool.h>
#include <stddef.h>

#include "ggml.h"

/*
 * Checks that node `t` is a well-formed instance of its op: the op (and unary/GLU sub-op)
 * is allowed (never GGML_OP_CUSTOM or GGML_OP_MAP_CUSTOM*, which carry function pointers),
 * the required sources are present and no others, and types, shapes, strides and op_params
 * satisfy what ggml's constructor for that op guarantees and its kernels rely on.
 *
 * Preconditions (checked by the caller, host/tensor.c): t and every non-NULL t->src[i] and
 * t->view_src have a valid type (block size > 0), ne[i] >= 0, ne[0] a multiple of the block
 * size, and byte extents that do not overflow. Data pointers and buffers may be NULL (op
 * queries carry no data); this function never reads tensor data.
 *
 * Returns true if the node is acceptable. Otherwise returns false and writes a one-line
 * reason (naming the op and the violated relation) into why[why_size]. Pure and thread-safe.
 */
bool vgpu_validate_op(const struct ggml_tensor *t, char *why, size_t why_size);

#endif /* VGPU_HOST_VALIDATE_OP_H */
