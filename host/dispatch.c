/*
 * The FORWARD command table and dispatcher; contracts in dispatch.h.
 */
#include "dispatch.h"

#include <stddef.h>
#include <stdio.h>

#include "apir.h"
#include "context.h"
#include "ext.h"

struct command {
    const char     *name;
    vgpu_handler_fn fn;
};

static const struct command baseline[APIR_CMD_BASELINE_COUNT] = {
    [APIR_CMD_DEVICE_GET_DEVICE_COUNT]    = { "DEVICE_GET_DEVICE_COUNT", vgpu_cmd_device_get_count },
    [APIR_CMD_DEVICE_GET_COUNT]           = { "DEVICE_GET_COUNT", vgpu_cmd_device_get_count },
    [APIR_CMD_DEVICE_GET_NAME]            = { "DEVICE_GET_NAME", vgpu_cmd_device_get_name },
    [APIR_CMD_DEVICE_GET_DESCRIPTION]     = { "DEVICE_GET_DESCRIPTION", vgpu_cmd_device_get_description },
    [APIR_CMD_DEVICE_GET_TYPE]            = { "DEVICE_GET_TYPE", vgpu_cmd_device_get_type },
    [APIR_CMD_DEVICE_GET_MEMORY]          = { "DEVICE_GET_MEMORY", vgpu_cmd_device_get_memory },
    [APIR_CMD_DEVICE_SUPPORTS_OP]         = { "DEVICE_SUPPORTS_OP", vgpu_cmd_device_supports_op },
    [APIR_CMD_DEVICE_GET_BUFFER_TYPE]     = { "DEVICE_GET_BUFFER_TYPE", vgpu_cmd_device_get_buffer_type },
    [APIR_CMD_DEVICE_GET_PROPS]           = { "DEVICE_GET_PROPS", vgpu_cmd_device_get_props },
    [APIR_CMD_DEVICE_BUFFER_FROM_PTR]     = { "DEVICE_BUFFER_FROM_PTR", vgpu_cmd_device_buffer_from_ptr },
    [APIR_CMD_BUFFER_TYPE_GET_NAME]       = { "BUFFER_TYPE_GET_NAME", vgpu_cmd_buft_get_name },
    [APIR_CMD_BUFFER_TYPE_GET_ALIGNMENT]  = { "BUFFER_TYPE_GET_ALIGNMENT", vgpu_cmd_buft_get_alignment },
    [APIR_CMD_BUFFER_TYPE_GET_MAX_SIZE]   = { "BUFFER_TYPE_GET_MAX_SIZE", vgpu_cmd_buft_get_max_size },
    [APIR_CMD_BUFFER_TYPE_IS_HOST]        = { "BUFFER_TYPE_IS_HOST", vgpu_cmd_buft_is_host },
    [APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER]   = { "BUFFER_TYPE_ALLOC_BUFFER", vgpu_cmd_buft_alloc_buffer },
    [APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE] = { "BUFFER_TYPE_GET_ALLOC_SIZE", vgpu_cmd_buft_get_alloc_size },
    [APIR_CMD_BUFFER_GET_BASE]            = { "BUFFER_GET_BASE", vgpu_cmd_buffer_get_base },
    [APIR_CMD_BUFFER_SET_TENSOR]          = { "BUFFER_SET_TENSOR", vgpu_cmd_buffer_set_tensor },
    [APIR_CMD_BUFFER_GET_TENSOR]          = { "BUFFER_GET_TENSOR", vgpu_cmd_buffer_get_tensor },
    [APIR_CMD_BUFFER_CPY_TENSOR]          = { "BUFFER_CPY_TENSOR", vgpu_cmd_buffer_cpy_tensor },
    [APIR_CMD_BUFFER_CLEAR]               = { "BUFFER_CLEAR", vgpu_cmd_buffer_clear },
    [APIR_CMD_BUFFER_FREE_BUFFER]         = { "BUFFER_FREE_BUFFER", vgpu_cmd_buffer_free },
    [APIR_CMD_BACKEND_GRAPH_COMPUTE]      = { "BACKEND_GRAPH_COMPUTE", vgpu_cmd_graph_compute },
};

static const struct command extension[VGPU_CMD_EXT_END - VGPU_CMD_EXT_FIRST] = {
    [VGPU_CMD_EXT_HELLO - VGPU_CMD_EXT_FIRST]          = { "EXT_HELLO", vgpu_cmd_ext_hello },
    [VGPU_CMD_EXT_DEVICE_INFO - VGPU_CMD_EXT_FIRST]    = { "EXT_DEVICE_INFO", vgpu_cmd_ext_device_info },
    [VGPU_CMD_EXT_DEVICE_MEMORY - VGPU_CMD_EXT_FIRST]  = { "EXT_DEVICE_MEMORY", vgpu_cmd_ext_device_memory },
    [VGPU_CMD_EXT_BUFFER_ALLOC - VGPU_CMD_EXT_FIRST]   = { "EXT_BUFFER_ALLOC", vgpu_cmd_ext_buffer_alloc },
    [VGPU_CMD_EXT_BUFFER_FREE - VGPU_CMD_EXT_FIRST]    = { "EXT_BUFFER_FREE", vgpu_cmd_ext_buffer_free },
    [VGPU_CMD_EXT_BUFFER_CLEAR - VGPU_CMD_EXT_FIRST]   = { "EXT_BUFFER_CLEAR", vgpu_cmd_ext_buffer_clear },
    [VGPU_CMD_EXT_TENSOR_SET - VGPU_CMD_EXT_FIRST]     = { "EXT_TENSOR_SET", vgpu_cmd_ext_tensor_set },
    [VGPU_CMD_EXT_TENSOR_GET - VGPU_CMD_EXT_FIRST]     = { "EXT_TENSOR_GET", vgpu_cmd_ext_tensor_get },
    [VGPU_CMD_EXT_TENSOR_MEMSET - VGPU_CMD_EXT_FIRST]  = { "EXT_TENSOR_MEMSET", vgpu_cmd_ext_tensor_memset },
    [VGPU_CMD_EXT_TENSOR_COPY - VGPU_CMD_EXT_FIRST]    = { "EXT_TENSOR_COPY", vgpu_cmd_ext_tensor_copy },
    [VGPU_CMD_EXT_TENSOR_INIT - VGPU_CMD_EXT_FIRST]    = { "EXT_TENSOR_INIT", vgpu_cmd_ext_tensor_init },
    [VGPU_CMD_EXT_GET_ALLOC_SIZE - VGPU_CMD_EXT_FIRST] = { "EXT_GET_ALLOC_SIZE", vgpu_cmd_ext_get_alloc_size },
    [VGPU_CMD_EXT_SUPPORTS_OP - VGPU_CMD_EXT_FIRST]    = { "EXT_SUPPORTS_OP", vgpu_cmd_ext_supports_op },
    [VGPU_CMD_EXT_OFFLOAD_OP - VGPU_CMD_EXT_FIRST]     = { "EXT_OFFLOAD_OP", vgpu_cmd_ext_offload_op },
    [VGPU_CMD_EXT_GRAPH_COMPUTE - VGPU_CMD_EXT_FIRST]  = { "EXT_GRAPH_COMPUTE", vgpu_cmd_ext_graph_compute },
    [VGPU_CMD_EXT_GRAPH_OPTIMIZE - VGPU_CMD_EXT_FIRST] = { "EXT_GRAPH_OPTIMIZE", vgpu_cmd_ext_graph_optimize },
    [VGPU_CMD_EXT_SET_N_THREADS - VGPU_CMD_EXT_FIRST]  = { "EXT_SET_N_THREADS", vgpu_cmd_ext_set_n_threads },
    [VGPU_CMD_EXT_NOP - VGPU_CMD_EXT_FIRST]            = { "EXT_NOP", vgpu_cmd_ext_nop },
};

static const struct command *find(uint32_t cmd)
{
    if (cmd < APIR_CMD_BASELINE_COUNT)
        return &baseline[cmd];
    if (cmd >= VGPU_CMD_EXT_FIRST && cmd < VGPU_CMD_EXT_END)
        return &extension[cmd - VGPU_CMD_EXT_FIRST];
    return NULL;
}

const char *vgpu_command_name(uint32_t cmd)
{
    const struct command *c = find(cmd);
    return c ? c->name : "unknown";
}

uint32_t vgpu_dispatch(struct vgpu_ctx *ctx, uint32_t cmd, const char *dec_cur, const char *dec_end,
                       char *enc_cur, const char *enc_end, char **enc_cur_after)
{
    if (enc_cur_after)
        *enc_cur_after = enc_cur;
    if (dec_cur && dec_end >= dec_cur)
        vgpu_trace_request(&ctx->trace, cmd, dec_cur, (size_t)(dec_end - dec_cur));
    const struct command *c = find(cmd);
    if (c) {
        ctx->cmd_name = c->name;
    } else {
        snprintf(ctx->cmd_buf, sizeof(ctx->cmd_buf), "command %u", cmd);
        ctx->cmd_name = ctx->cmd_buf;
    }
    uint32_t code;

    if (ctx->fatal) {
        vgpu_log(ctx, VGPU_LOG_INFO, "refused: the context is fatal");
        code = VGPU_FATAL;
        goto out;
    }
    if (!c) {
        code = vgpu_set_fatal(ctx, VGPU_UNKNOWN_COMMAND, "unknown command id %u", cmd);
        goto out;
    }
    if ((!dec_cur && dec_end) || (dec_cur && dec_end < dec_cur) || !enc_cur_after ||
        (enc_cur && enc_end < enc_cur)) {
        code = vgpu_fail(ctx, VGPU_INVALID, "bad command or reply bounds from the runtime");
        goto out;
    }
    size_t req = dec_cur ? (size_t)(dec_end - dec_cur) : 0;
    if (req > ctx->quota.command_bytes) {
        code = vgpu_fail(ctx, VGPU_QUOTA, "command of %zu bytes exceeds the quota of %llu", req,
                         (unsigned long long)ctx->quota.command_bytes);
        goto out;
    }
    if (cmd >= VGPU_CMD_EXT_FIRST && cmd != VGPU_CMD_EXT_HELLO && !ctx->hello) {
        code = vgpu_fail(ctx, VGPU_INVALID, "extension command before a successful EXT_HELLO");
        goto out;
    }

    struct vgpu_dec dec;
    struct vgpu_enc enc;
    static const uint8_t empty[4];
    vgpu_dec_init(&dec, dec_cur ? (const void *)dec_cur : (const void *)empty, req);
    vgpu_enc_init(&enc, enc_cur ? (void *)enc_cur : (void *)empty, enc_cur ? (size_t)(enc_end - enc_cur) : 0);

    code = c->fn(ctx, &dec, &enc);

    if (!vgpu_dec_ok(&dec)) {
        vgpu_set_fatal(ctx, 0, "request truncated or malformed (%zu bytes)", req);
        if (code == VGPU_OK)
            code = VGPU_INVALID;
    } else if (code == VGPU_OK && !vgpu_enc_ok(&enc)) {
        code = vgpu_fail(ctx, VGPU_INVALID, "the reply does not fit in %zu bytes",
                         enc_cur ? (size_t)(enc_end - enc_cur) : (size_t)0);
    }
    if ((code == VGPU_OK || cmd == VGPU_CMD_EXT_HELLO) && enc_cur && vgpu_enc_ok(&enc))
        *enc_cur_after = (char *)enc.cur;
out:
    ctx->cmd_name = NULL;
    vgpu_trace_reply(&ctx->trace, cmd, code, enc_cur,
                     enc_cur_after && *enc_cur_after ? (size_t)(*enc_cur_after - enc_cur) : 0);
    return code;
}
