/*
 * The FORWARD command table (baseline ids 0..22, extension ids 64..84) and the dispatcher:
 * fatal state, command-size quota, "extensions only after EXT_HELLO", decoder overruns and
 * reply-on-success-only (docs/PROTOCOL.md §2.1), and EXT_BATCH (§4.4): its entries run in
 * order through the same checks as top-level commands; the first one that does not answer
 * OK stops the batch, and until an EXT_BATCH with VGPU_BATCH_RESUME every command answers
 * VGPU_SKIPPED, so that nothing the guest sent after the stopped entries runs before them.
 *
 * Handler contract: decode the whole request with the sticky decoder; on a decoder overrun
 * return VGPU_INVALID without logging (the dispatcher logs it and makes the context fatal);
 * on any other failure return vgpu_fail(...) (one log line). Reply bytes written by a failing
 * handler are discarded (except EXT_HELLO's).
 */
#ifndef VGPU_HOST_DISPATCH_H
#define VGPU_HOST_DISPATCH_H

#include <stdint.h>

#include "codec.h"

struct vgpu_ctx;

typedef uint32_t (*vgpu_handler_fn)(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc);

uint32_t vgpu_dispatch(struct vgpu_ctx *ctx, uint32_t cmd, const char *dec_cur, const char *dec_end,
                       char *enc_cur, const char *enc_end, char **enc_cur_after);

/* Name of a command id for logs ("cmd-N" style names are never returned: unknown → "unknown"). */
const char *vgpu_command_name(uint32_t cmd);

/* Returns VGPU_INVALID (unlogged) when the decoder overran: the dispatcher reports it. */
#define VGPU_DEC_CHECK(dec)              \
    do {                                 \
        if (!vgpu_dec_ok(dec))           \
            return VGPU_INVALID;         \
    } while (0)

/* cmd-device.c */
uint32_t vgpu_cmd_device_get_count(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_device_get_name(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_device_get_description(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_device_get_type(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_device_get_memory(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_device_supports_op(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_device_get_buffer_type(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_device_get_props(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_device_buffer_from_ptr(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buft_get_alloc_size(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_hello(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_device_info(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_device_memory(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_get_alloc_size(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_supports_op(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_offload_op(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_set_n_threads(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_nop(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);

/* cmd-buffer.c */
uint32_t vgpu_cmd_buft_get_name(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buft_get_alignment(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buft_get_max_size(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buft_is_host(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buft_alloc_buffer(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buffer_get_base(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buffer_set_tensor(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buffer_get_tensor(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buffer_cpy_tensor(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buffer_clear(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_buffer_free(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_buffer_alloc(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_buffer_free(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_buffer_clear(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_tensor_set(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_tensor_get(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_tensor_memset(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_tensor_copy(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_tensor_init(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);

/* cmd-host-buffer.c */
uint32_t vgpu_cmd_ext_host_buffer_register(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_host_buffer_unregister(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);

/* cmd-graph.c */
uint32_t vgpu_cmd_graph_compute(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_graph_compute(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);
uint32_t vgpu_cmd_ext_graph_optimize(struct vgpu_ctx *, struct vgpu_dec *, struct vgpu_enc *);

#endif /* VGPU_HOST_DISPATCH_H */
