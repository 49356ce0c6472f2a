/*
 * GGML ABI fingerprint; contract in abi.h. Links ggml-base for the op and type tables.
 */
#include "abi.h"

#include <stdio.h>
#include <string.h>

#include "ggml.h"
#include "wire.h"

_Static_assert(GGML_MAX_DIMS == VGPU_MAX_DIMS, "wire format assumes GGML_MAX_DIMS 4");
_Static_assert(GGML_MAX_SRC == VGPU_MAX_SRC, "wire format assumes GGML_MAX_SRC 10");
_Static_assert(GGML_MAX_OP_PARAMS / sizeof(int32_t) == VGPU_OP_PARAMS_I32, "op_params size");
_Static_assert(GGML_MAX_NAME == VGPU_MAX_NAME, "wire format assumes GGML_MAX_NAME 64");

uint64_t vgpu_fnv1a64(uint64_t h, const void *p, uint64_t n)
{
    const uint8_t *b = p;
    for (uint64_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Hashes one line of the canonical description (the text is hashed, never stored). */
static uint64_t hash_line(uint64_t h, const char *line)
{
    h = vgpu_fnv1a64(h, line, strlen(line));
    return vgpu_fnv1a64(h, "\n", 1);
}

void vgpu_abi_info_get(struct vgpu_abi_info *info)
{
    char line[256];
    uint64_t h = VGPU_FNV_OFFSET;

    snprintf(line, sizeof(line), "ggml-virtgpu-abi 1 dims %d src %d op_params %d name %d tensor %zu",
             GGML_MAX_DIMS, GGML_MAX_SRC, GGML_MAX_OP_PARAMS, GGML_MAX_NAME,
             sizeof(struct ggml_tensor));
    h = hash_line(h, line);
    for (int i = 0; i < GGML_OP_COUNT; i++) {
        snprintf(line, sizeof(line), "op %d %s", i, ggml_op_name((enum ggml_op)i));
        h = hash_line(h, line);
    }
    for (int i = 0; i < GGML_UNARY_OP_COUNT; i++) {
        snprintf(line, sizeof(line), "unary %d %s", i, ggml_unary_op_name((enum ggml_unary_op)i));
        h = hash_line(h, line);
    }
    for (int i = 0; i < GGML_GLU_OP_COUNT; i++) {
        snprintf(line, sizeof(line), "glu %d %s", i, ggml_glu_op_name((enum ggml_glu_op)i));
        h = hash_line(h, line);
    }
    for (int i = 0; i < GGML_TYPE_COUNT; i++) {
        const char *name = ggml_type_name((enum ggml_type)i);
        snprintf(line, sizeof(line), "type %d %s %zu %lld", i, name ? name : "-",
                 ggml_type_size((enum ggml_type)i), (long long)ggml_blck_size((enum ggml_type)i));
        h = hash_line(h, line);
    }
    info->hash = h;
    info->n_ops = GGML_OP_COUNT;
    info->n_types = GGML_TYPE_COUNT;
    info->tensor_size = (uint32_t)sizeof(struct ggml_tensor);
}
