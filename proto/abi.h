/*
 * The GGML ABI fingerprint exchanged in EXT_HELLO (docs/PROTOCOL.md §4.3).
 *
 * The wire carries ggml enum values (ops, types) and constants (GGML_MAX_*), so a guest and
 * a host built against different ggml versions would compute wrong numbers without noticing.
 * Both sides hash what they were built with and compare.
 */
#ifndef VGPU_PROTO_ABI_H
#define VGPU_PROTO_ABI_H

#include <stdint.h>

struct vgpu_abi_info {
    uint64_t hash;        /* FNV-1a-64 of the canonical description */
    uint32_t n_ops;       /* GGML_OP_COUNT */
    uint32_t n_types;     /* GGML_TYPE_COUNT */
    uint32_t tensor_size; /* sizeof(struct ggml_tensor) */
};

/* Describes the ggml this program is linked with. Pure function of ggml; thread-safe. */
void vgpu_abi_info_get(struct vgpu_abi_info *info);

/* FNV-1a-64 of n bytes, continuing from `h` (start with VGPU_FNV_OFFSET). */
#define VGPU_FNV_OFFSET 0xcbf29ce484222325ull
uint64_t vgpu_fnv1a64(uint64_t h, const void *p, uint64_t n);

#endif /* VGPU_PROTO_ABI_H */
