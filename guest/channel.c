/*
 * The call layer; contracts in channel.h.
 */
#include "channel.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apir.h"
#include "ggml-impl.h"

struct vgpu_channel *vgpu_channel_create(struct vgpu_transport *tp, char *why, size_t why_size)
{
    struct vgpu_channel *ch = calloc(1, sizeof(*ch));
    if (!ch) {
        snprintf(why, why_size, "out of memory");
        tp->ops->destroy(tp);
        return NULL;
    }
    pthread_mutex_init(&ch->lock, NULL);
    ch->tp = tp;
    ch->cmd_cap = tp->max_command_size;
    ch->cmd = malloc(ch->cmd_cap);
    if (!ch->cmd) {
        snprintf(why, why_size, "out of memory (%zu-byte command buffer)", ch->cmd_cap);
        vgpu_channel_destroy(ch);
        return NULL;
    }
    int r = tp->ops->resource_create(tp, VGPU_REPLY_SIZE, &ch->reply);
    if (r != 0) {
        snprintf(why, why_size, "creating the reply resource: %s", tp->error);
        vgpu_channel_destroy(ch);
        return NULL;
    }
    return ch;
}

void vgpu_channel_destroy(struct vgpu_channel *ch)
{
    if (!ch)
        return;
    if (ch->tp) {
        ch->tp->ops->resource_destroy(ch->tp, &ch->big);
        ch->tp->ops->resource_destroy(ch->tp, &ch->staging);
        ch->tp->ops->resource_destroy(ch->tp, &ch->reply);
        ch->tp->ops->destroy(ch->tp);
    }
    free(ch->cmd);
    pthread_mutex_destroy(&ch->lock);
    free(ch);
}

void vgpu_channel_limit_command(struct vgpu_channel *ch, uint64_t max_command_size)
{
    pthread_mutex_lock(&ch->lock);
    /* The host library's limit counts the APIR command; the transport's is already applied. */
    if (max_command_size >= 4096 && max_command_size < ch->cmd_cap)
        ch->cmd_cap = (size_t)max_command_size;
    pthread_mutex_unlock(&ch->lock);
}

bool vgpu_channel_is_lost(struct vgpu_channel *ch)
{
    return __atomic_load_n(&ch->lost, __ATOMIC_ACQUIRE) != 0;
}

void vgpu_channel_lose(struct vgpu_channel *ch, const char *fmt, ...)
{
    char text[sizeof(ch->lost_reason)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    int expected = 0;
    if (__atomic_compare_exchange_n(&ch->lost, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        memcpy(ch->lost_reason, text, sizeof(text));
        GGML_LOG_ERROR("ggml-virtgpu: host lost (%s): %s; every further call fails\n", ch->tp->endpoint, text);
    }
}

void vgpu_channel_log_transfer_failure(struct vgpu_channel *ch, const char *what)
{
    if (__atomic_exchange_n(&ch->transfer_logged, 1, __ATOMIC_ACQ_REL) == 0)
        GGML_LOG_ERROR("ggml-virtgpu: %s failed: the host is gone; tensor data is no longer moved "
                       "(logged once)\n", what);
}

bool vgpu_channel_lock(struct vgpu_channel *ch)
{
    if (vgpu_channel_is_lost(ch))
        return false;
    pthread_mutex_lock(&ch->lock);
    if (vgpu_channel_is_lost(ch)) {
        pthread_mutex_unlock(&ch->lock);
        return false;
    }
    return true;
}

void vgpu_channel_unlock(struct vgpu_channel *ch)
{
    pthread_mutex_unlock(&ch->lock);
}

void vgpu_channel_quiesce(struct vgpu_channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    pthread_mutex_unlock(&ch->lock);
}

void vgpu_channel_begin(struct vgpu_channel *ch, struct vgpu_enc *enc, int32_t cmd_type, int32_t cmd_flags)
{
    vgpu_enc_init(enc, ch->cmd, ch->cmd_cap);
    vgpu_enc_i32(enc, cmd_type + ch->tp->cmd_type_offset);
    vgpu_enc_i32(enc, cmd_flags);
    vgpu_enc_u32(enc, ch->reply.id);
}

size_t vgpu_channel_room(const struct vgpu_enc *enc)
{
    return enc->fatal ? 0 : vgpu_enc_left(enc);
}

int vgpu_channel_call(struct vgpu_channel *ch, struct vgpu_enc *enc, uint32_t *ret, struct vgpu_dec *reply)
{
    *ret = 0;
    vgpu_dec_init(reply, NULL, 0);
    if (!vgpu_enc_ok(enc)) {
        GGML_LOG_ERROR("ggml-virtgpu: internal error: a command exceeds the %zu-byte limit\n", ch->cmd_cap);
        return -EMSGSIZE;
    }
    uint32_t *word = ch->reply.ptr;
    __atomic_store_n(word, 0, __ATOMIC_SEQ_CST);
    struct vgpu_transport *tp = ch->tp;
    int r = tp->ops->submit(tp, enc->start, vgpu_enc_used(enc));
    if (r == -EMSGSIZE) {
        GGML_LOG_ERROR("ggml-virtgpu: %s\n", tp->error);
        return r;
    }
    if (r == 0) {
        uint32_t v = 0;
        r = tp->ops->wait_reply(tp, &ch->reply, &v);
        if (r == 0) {
            *ret = v - 1;
            vgpu_dec_init(reply, (uint8_t *)ch->reply.ptr + APIR_REPLY_PAYLOAD_OFFSET,
                          ch->reply.size - APIR_REPLY_PAYLOAD_OFFSET);
            return 0;
        }
    }
    vgpu_channel_lose(ch, "%s", tp->error);
    return r;
}

int vgpu_channel_forward(struct vgpu_channel *ch, struct vgpu_enc *enc, struct vgpu_dec *reply)
{
    uint32_t ret;
    int32_t cmd_id;
    memcpy(&cmd_id, enc->start + 4, 4);
    int r = vgpu_channel_call(ch, enc, &ret, reply);
    if (r < 0)
        return r;
    if (ret < APIR_FORWARD_BASE_INDEX) {
        GGML_LOG_ERROR("ggml-virtgpu: command %d was not run by the host (forward code %u: %s)\n", cmd_id, ret,
                       ret == APIR_FORWARD_NO_DISPATCH_FN ? "no library loaded or reply overflow" : "transport error");
        return -EIO;
    }
    uint32_t code = ret - APIR_FORWARD_BASE_INDEX;
    if (code == VGPU_FATAL)
        vgpu_channel_lose(ch, "the host context is in the fatal state (command %d refused)", cmd_id);
    return (int)code;
}

int vgpu_channel_resource_create(struct vgpu_channel *ch, size_t size, struct vgpu_resource *res)
{
    int r = ch->tp->ops->resource_create(ch->tp, size, res);
    if (r == -EPIPE || r == -ETIMEDOUT || r == -EPROTO)
        vgpu_channel_lose(ch, "%s", ch->tp->error);
    else if (r != 0)
        GGML_LOG_ERROR("ggml-virtgpu: %s\n", ch->tp->error);
    return r;
}

void vgpu_channel_resource_destroy(struct vgpu_channel *ch, struct vgpu_resource *res)
{
    ch->tp->ops->resource_destroy(ch->tp, res);
}

struct vgpu_resource *vgpu_channel_staging(struct vgpu_channel *ch)
{
    if (!ch->staging.id && vgpu_channel_resource_create(ch, VGPU_STAGING_SIZE, &ch->staging) != 0)
        return NULL;
    return &ch->staging;
}

struct vgpu_resource *vgpu_channel_area(struct vgpu_channel *ch, size_t size)
{
    if (size <= VGPU_STAGING_SIZE)
        return vgpu_channel_staging(ch);
    if (ch->big.id && ch->big.size >= size)
        return &ch->big;
    vgpu_channel_resource_destroy(ch, &ch->big);
    /* Grow geometrically so a slowly growing graph does not recreate it every time. */
    size_t want = size + size / 4;
    if (want < size)
        want = size;
    if (vgpu_channel_resource_create(ch, want, &ch->big) != 0)
        return NULL;
    return &ch->big;
}
