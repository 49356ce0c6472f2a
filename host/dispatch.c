/*
 * The FORWARD command table and dispatcher; contracts in dispatch.h.
 */
#include "dispatch.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

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

/* EXT_BATCH is served by the dispatcher itself (run_batch): its entry has no handler. */
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
    [VGPU_CMD_EXT_BATCH - VGPU_CMD_EXT_FIRST]          = { "EXT_BATCH", NULL },
    [VGPU_CMD_EXT_HOST_BUFFER_REGISTER - VGPU_CMD_EXT_FIRST] =
        { "EXT_HOST_BUFFER_REGISTER", vgpu_cmd_ext_host_buffer_register },
    [VGPU_CMD_EXT_HOST_BUFFER_UNREGISTER - VGPU_CMD_EXT_FIRST] =
        { "EXT_HOST_BUFFER_UNREGISTER", vgpu_cmd_ext_host_buffer_unregister },
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

/*
 * Commands that may start while work is queued on a backend (async copies, computes; a NO_WAIT
 * batch leaves them queued past its reply): the transfers queue their own behind it on the same
 * stream or wait before they copy synchronously (cmd-buffer.c), a graph compute runs behind it
 * on that stream, a batch leaves the decision to each of its entries, and graph_optimize reads
 * no device memory. Every other command first waits for the queued work.
 * Why graph_optimize: llama.cpp asks for it while it builds the next ubatch's graph; waiting
 * there for the previous ubatch's compute would serialise the guest's work with the GPU's.
 */
static bool runs_beside_queued(uint32_t cmd)
{
    return cmd == VGPU_CMD_EXT_TENSOR_SET || cmd == VGPU_CMD_EXT_TENSOR_GET || cmd == VGPU_CMD_EXT_GRAPH_COMPUTE ||
           cmd == VGPU_CMD_EXT_BATCH || cmd == VGPU_CMD_EXT_GRAPH_OPTIMIZE;
}

/* The flags word of an EXT_BATCH request (0 when too short: the batch then fails to decode). */
static uint32_t batch_flags(const uint8_t *req, size_t len)
{
    uint32_t f = 0;
    if (len >= VGPU_BATCH_HEADER_SIZE)
        memcpy(&f, req + 4, 4);
    return f;
}

static uint32_t run_batch(struct vgpu_ctx *ctx, const uint8_t *req, size_t len, struct vgpu_enc *enc);

/*
 * One command, top-level or a batch entry: every check of docs/PROTOCOL.md §2.1 and §4.4,
 * then the handler. The reply goes to [out, out + out_cap); *out_len is its length when it
 * counts (success, or EXT_HELLO), else 0.
 */
static uint32_t serve_one(struct vgpu_ctx *ctx, uint32_t cmd, const uint8_t *req, size_t req_len, uint8_t *out,
                          size_t out_cap, size_t *out_len, bool in_batch)
{
    *out_len = 0;
    const struct command *c = find(cmd);
    if (c) {
        ctx->cmd_name = c->name;
    } else {
        snprintf(ctx->cmd_buf, sizeof(ctx->cmd_buf), "command %u", cmd);
        ctx->cmd_name = ctx->cmd_buf;
    }
    if (ctx->fatal) {
        vgpu_log(ctx, VGPU_LOG_INFO, "refused: the context is fatal");
        return VGPU_FATAL;
    }
    if (!c)
        return vgpu_set_fatal(ctx, VGPU_UNKNOWN_COMMAND, "unknown command id %u", cmd);
    if (req_len > ctx->quota.command_bytes)
        return vgpu_fail(ctx, VGPU_QUOTA, "command of %zu bytes exceeds the quota of %llu", req_len,
                         (unsigned long long)ctx->quota.command_bytes);
    if (cmd >= VGPU_CMD_EXT_FIRST && cmd != VGPU_CMD_EXT_HELLO && !ctx->hello)
        return vgpu_fail(ctx, VGPU_INVALID, "extension command before a successful EXT_HELLO");
    bool resume = cmd == VGPU_CMD_EXT_BATCH && (batch_flags(req, req_len) & VGPU_BATCH_RESUME);
    if (ctx->batch_stopped && !resume) {
        vgpu_log(ctx, VGPU_LOG_DEBUG, "skipped: an earlier batch stopped and no EXT_BATCH resumed yet");
        return VGPU_SKIPPED;
    }
    if (!runs_beside_queued(cmd))
        vgpu_ctx_async_wait(ctx);
    /* Captured set bytes stay true only while nothing but sets writes device memory. */
    if (cmd != VGPU_CMD_EXT_TENSOR_SET && cmd != VGPU_CMD_EXT_TENSOR_GET && cmd != VGPU_CMD_EXT_GRAPH_COMPUTE &&
        cmd != VGPU_CMD_EXT_BATCH)
        vgpu_captures_clear(ctx);

    struct vgpu_enc enc;
    static uint8_t empty[4];
    vgpu_enc_init(&enc, out ? (void *)out : (void *)empty, out ? out_cap : 0);
    uint32_t code;
    if (cmd == VGPU_CMD_EXT_BATCH) {
        if (in_batch) /* the framing check refuses this before anything runs; kept as a guard */
            return vgpu_fail(ctx, VGPU_INVALID, "EXT_BATCH inside EXT_BATCH");
        code = run_batch(ctx, req, req_len, &enc);
        ctx->cmd_name = c->name;
    } else {
        struct vgpu_dec dec;
        vgpu_dec_init(&dec, req ? (const void *)req : (const void *)empty, req_len);
        code = c->fn(ctx, &dec, &enc);
        if (cmd == VGPU_CMD_EXT_GRAPH_COMPUTE)
            vgpu_captures_clear(ctx); /* its nodes may write anywhere in its buffers */
        if (!vgpu_dec_ok(&dec)) {
            vgpu_set_fatal(ctx, 0, "request truncated or malformed (%zu bytes)", req_len);
            if (code == VGPU_OK)
                code = VGPU_INVALID;
        } else if (code == VGPU_OK && !vgpu_enc_ok(&enc)) {
            code = vgpu_fail(ctx, VGPU_INVALID, "the reply does not fit in %zu bytes", out ? out_cap : (size_t)0);
        }
    }
    if ((code == VGPU_OK || cmd == VGPU_CMD_EXT_HELLO) && out && vgpu_enc_ok(&enc))
        *out_len = vgpu_enc_used(&enc);
    return code;
}

/* serve_one, timed per command when profiling (profile.h). */
static uint32_t dispatch_one(struct vgpu_ctx *ctx, uint32_t cmd, const uint8_t *req, size_t req_len, uint8_t *out,
                             size_t out_cap, size_t *out_len, bool in_batch)
{
    uint64_t t0 = vgpu_prof_now(&ctx->prof);
    uint32_t code = serve_one(ctx, cmd, req, req_len, out, out_cap, out_len, in_batch);
    vgpu_prof_command(&ctx->prof, cmd, !in_batch, req_len, t0);
    return code;
}

/*
 * EXT_BATCH. The framing of every entry is checked before any entry runs: a truncated
 * header or an entry that overruns the request is a decoder overrun (fatal); a size that is
 * not a multiple of 4, a nested EXT_BATCH or an EXT_HELLO answers INVALID, nothing run.
 */
static uint32_t run_batch(struct vgpu_ctx *ctx, const uint8_t *req, size_t len, struct vgpu_enc *enc)
{
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, req, len);
    uint32_t n = vgpu_dec_u32(&dec);
    uint32_t flags = vgpu_dec_u32(&dec);
    if (!vgpu_dec_ok(&dec))
        return vgpu_set_fatal(ctx, VGPU_INVALID, "batch header truncated (%zu bytes)", len);
    if (flags & ~(VGPU_BATCH_RESUME | VGPU_BATCH_NO_WAIT))
        return vgpu_fail(ctx, VGPU_INVALID, "unknown batch flags 0x%x", flags);
    if (n == 0 || n > VGPU_BATCH_MAX_ENTRIES)
        return vgpu_fail(ctx, VGPU_INVALID, "batch of %u entries (1..%u)", n, VGPU_BATCH_MAX_ENTRIES);
    const uint8_t *first = dec.cur;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t cmd = vgpu_dec_u32(&dec);
        uint32_t size = vgpu_dec_u32(&dec);
        if (!vgpu_dec_ok(&dec))
            return vgpu_set_fatal(ctx, VGPU_INVALID, "batch entry %u: header truncated", i);
        if (size > vgpu_dec_left(&dec))
            return vgpu_set_fatal(ctx, VGPU_INVALID, "batch entry %u: %u bytes, %zu left in the batch", i, size,
                                  vgpu_dec_left(&dec));
        if (size % 4)
            return vgpu_fail(ctx, VGPU_INVALID, "batch entry %u: size %u is not a multiple of 4", i, size);
        if (cmd == VGPU_CMD_EXT_BATCH || cmd == VGPU_CMD_EXT_HELLO)
            return vgpu_fail(ctx, VGPU_INVALID, "batch entry %u: %s cannot be batched", i, vgpu_command_name(cmd));
        dec.cur += size;
    }
    /* Trailing bytes after the last entry are ignored, as after any complete request. */

    uint8_t *head = vgpu_enc_reserve(enc, VGPU_BATCH_HEADER_SIZE);
    if (!head)
        return vgpu_fail(ctx, VGPU_INVALID, "no reply room for a batch");
    /* Only a batch that runs resumes: a refused one leaves the context stopped. */
    if (flags & VGPU_BATCH_RESUME)
        ctx->batch_stopped = false;

    const char *batch_name = ctx->cmd_name;
    vgpu_dec_init(&dec, first, (size_t)(req + len - first));
    uint32_t n_run = 0;
    bool stop = false;
    ctx->in_batch = true;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t cmd = vgpu_dec_u32(&dec);
        uint32_t size = vgpu_dec_u32(&dec);
        const uint8_t *payload = dec.cur;
        dec.cur += size;
        if (vgpu_enc_left(enc) < VGPU_BATCH_ENTRY_HEADER) {
            stop = true; /* no room to report it: stop before it */
            break;
        }
        uint8_t *eh = enc->cur;
        enc->cur += VGPU_BATCH_ENTRY_HEADER;
        size_t rlen = 0;
        uint32_t code = dispatch_one(ctx, cmd, payload, size, enc->cur, vgpu_enc_left(enc), &rlen, true);
        ctx->cmd_name = batch_name;
        uint32_t r32 = (uint32_t)rlen;
        memcpy(eh, &code, 4);
        memcpy(eh + 4, &r32, 4);
        enc->cur += rlen; /* the codec writes whole slots: rlen is a multiple of 4 */
        n_run++;
        /*
         * A failed entry stops the batch, and so does the recompute of a graph the host does
         * not hold: what follows (its outputs read back, say) must not run before the guest
         * sent the graph again.
         */
        uint32_t result = 0;
        if (code == VGPU_OK && cmd == VGPU_CMD_EXT_GRAPH_COMPUTE && r32 >= 4)
            memcpy(&result, eh + VGPU_BATCH_ENTRY_HEADER, 4);
        if (code != VGPU_OK || ctx->fatal || result == VGPU_GRAPH_NOT_CACHED) {
            stop = true;
            break;
        }
    }
    /* What reads the request or touches guest memory other than pinned host buffers is done
     * before the reply hands those bytes back; the rest of a NO_WAIT batch may run on (ext.h). */
    if ((flags & VGPU_BATCH_NO_WAIT) && !ctx->async_guest_mem && !stop)
        ctx->left_running = ctx->async_devs != 0;
    else
        vgpu_ctx_async_wait(ctx); /* a stopped batch (or a fatal context) leaves nothing behind */
    ctx->in_batch = false;

    uint32_t status = stop ? VGPU_BATCH_STOPPED : VGPU_BATCH_ALL_RUN;
    if (stop) {
        ctx->batch_stopped = true;
        vgpu_log(ctx, VGPU_LOG_DEBUG, "stopped after entry %u of %u; commands are skipped until a resume", n_run,
                 n);
    }
    memcpy(head, &n_run, 4);
    memcpy(head + 4, &status, 4);
    return VGPU_OK;
}

uint32_t vgpu_dispatch(struct vgpu_ctx *ctx, uint32_t cmd, const char *dec_cur, const char *dec_end,
                       char *enc_cur, const char *enc_end, char **enc_cur_after)
{
    if (enc_cur_after)
        *enc_cur_after = enc_cur;
    vgpu_prof_top_begin(&ctx->prof, vgpu_prof_now(&ctx->prof));
    if (dec_cur && dec_end >= dec_cur)
        vgpu_trace_request(&ctx->trace, cmd, dec_cur, (size_t)(dec_end - dec_cur));
    uint32_t code;

    if ((!dec_cur && dec_end) || (dec_cur && dec_end < dec_cur) || !enc_cur_after ||
        (enc_cur && enc_end < enc_cur)) {
        const struct command *c = find(cmd);
        ctx->cmd_name = c ? c->name : "command";
        if (ctx->fatal) {
            vgpu_log(ctx, VGPU_LOG_INFO, "refused: the context is fatal");
            code = VGPU_FATAL;
        } else if (!c) {
            code = vgpu_set_fatal(ctx, VGPU_UNKNOWN_COMMAND, "unknown command id %u", cmd);
        } else {
            code = vgpu_fail(ctx, VGPU_INVALID, "bad command or reply bounds from the runtime");
        }
        goto out;
    }
    size_t req = dec_cur ? (size_t)(dec_end - dec_cur) : 0;
    size_t out_len = 0;
    code = dispatch_one(ctx, cmd, (const uint8_t *)dec_cur, req, (uint8_t *)enc_cur,
                        enc_cur ? (size_t)(enc_end - enc_cur) : 0, &out_len, false);
    /* Nothing a command queued outlives it, but what a NO_WAIT batch left running (run_batch);
     * graph_optimize queues nothing and leaves earlier work running too. */
    if (!ctx->left_running && cmd != VGPU_CMD_EXT_GRAPH_OPTIMIZE)
        vgpu_ctx_async_wait(ctx);
    ctx->left_running = false;
    if (enc_cur && out_len)
        *enc_cur_after = enc_cur + out_len;
out:
    ctx->cmd_name = NULL;
    vgpu_trace_reply(&ctx->trace, cmd, code, enc_cur,
                     enc_cur_after && *enc_cur_after ? (size_t)(*enc_cur_after - enc_cur) : 0);
    vgpu_prof_top_end(&ctx->prof);
    return code;
}
