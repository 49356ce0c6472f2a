/*
 * The CPU backend's kernel contract (DESIGN §4.4): what ggml-cpu's kernels need of a node
 * beyond what its constructor guarantees (host/validate-op.c).
 *
 * ggml-cpu's supports_op answers true for nearly every op whatever its types and layout, but
 * its kernels dispatch on types with a GGML_ABORT default and GGML_ASSERT layouts the
 * constructors leave open (ggml_mul accepts any types; a view may give src0 any stride). A
 * guest reaches those kernels directly, so a node that would abort the host is refused here,
 * as "not supported", before any kernel sees it.
 */
#ifndef VGPU_HOST_KERNEL_CPU_H
#define VGPU_HOST_KERNEL_CPU_H

#include <stdbool.h>
#include <stddef.h>

#include "ggml.h"

/*
 * True if the pinned ggml-cpu computes node `t` without a GGML_ABORT / GGML_ASSERT on its
 * metadata (types, shapes, strides, op_params) and without indexing past its tensors or its
 * work buffer. Precondition: vgpu_validate_op(t) accepted it. Otherwise false, with a one-line
 * reason in why[why_size]. Pure, thread-safe; reads no tensor data.
 */
bool vgpu_kernel_cpu_ok(const struct ggml_tensor *t, char *why, size_t why_size);

/*
 * Bytes past the end of src[i]'s extent (ggml_nbytes) that the CPU kernel of node t reads from
 * it, where the contract lets that pass because the caller can check that they stay inside the
 * source's buffer: ROPE reads one freq factor per channel pair of the row, also beyond the
 * n_dims/2 that ggml_rope_ext asks for (partial rotary with freq factors; the extra values are
 * never used). 0 everywhere else. A caller that cannot see the buffer (a supports_op query)
 * may ignore it; a graph build must refuse the node when the bytes leave the buffer.
 */
uint64_t vgpu_kernel_cpu_overread(const struct ggml_tensor *t, int i);

/*
 * True if the CPU must compute node t in a graph of its own, not among other nodes: a SET_ROWS
 * of F16 rows into another type, whose per-thread scratch rows ggml_graph_plan sizes for the
 * one task ggml_get_n_tasks gives SET_ROWS, while in a larger graph every thread of the most
 * parallel node runs it (a write past the work buffer). Alone, it runs on one thread. The
 * index guard's plan puts such nodes in segments of their own (index-guard.h).
 */
bool vgpu_kernel_cpu_alone(const struct ggml_tensor *t);

#endif /* VGPU_HOST_KERNEL_CPU_H */
