/*
 * Host commands; contracts in remote.h, layouts in docs/PROTOCOL.md.
 */
#include "remote.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apir.h"
#include "ext.h"
#include "ggml-impl.h"

/* Bytes of an encoded vgpu_graph_request and vgpu_transfer (wire.c). */
#define GRAPH_REQUEST_SIZE 40u
#define TRANSFER_SIZE      (VGPU_WIRE_TENSOR_SIZE + 56u)

#define NOT_LOCKED (-EPIPE)

static void begin_forward(struct vgpu_channel *ch, struct vgpu_enc *enc, uint32_t cmd)
{
    vgpu_channel_begin(ch, enc, APIR_COMMAND_TYPE_FORWARD, (int32_t)cmd);
}

/* A reply that did not decode is a broken host: report it like a transport failure. */
static int bad_reply(struct vgpu_channel *ch, uint32_t cmd)
{
    GGML_LOG_ERROR("ggml-virtgpu: malformed reply to command %u\n", cmd);
    (void)ch;
    return -EPROTO;
}

/* ---- start-up --------------------------------------------------------------------------- */

int vgpu_remote_handshake(struct vgpu_channel *ch, uint32_t *magic, uint32_t *major, uint32_t *minor)
{
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    vgpu_channel_begin(ch, &enc, APIR_COMMAND_TYPE_HANDSHAKE, 0);
    vgpu_enc_u32(&enc, APIR_PROTOCOL_MAJOR);
    vgpu_enc_u32(&enc, APIR_PROTOCOL_MINOR);
    struct vgpu_dec dec;
    int r = vgpu_channel_call(ch, &enc, magic, &dec);
    if (r == 0) {
        *major = vgpu_dec_u32(&dec);
        *minor = vgpu_dec_u32(&dec);
    }
    vgpu_channel_unlock(ch);
    return r;
}

int vgpu_remote_load_library(struct vgpu_channel *ch, uint32_t *code)
{
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    vgpu_channel_begin(ch, &enc, APIR_COMMAND_TYPE_LOADLIBRARY, 0);
    struct vgpu_dec dec;
    int r = vgpu_channel_call(ch, &enc, code, &dec);
    vgpu_channel_unlock(ch);
    return r;
}

int vgpu_remote_ext_hello(struct vgpu_channel *ch, const struct vgpu_hello *req, struct vgpu_hello *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, VGPU_CMD_EXT_HELLO);
    vgpu_enc_hello_request(&enc, req);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    if ((code == VGPU_OK || code == VGPU_ABI_MISMATCH) && !vgpu_dec_hello_reply(&dec, rep))
        code = bad_reply(ch, VGPU_CMD_EXT_HELLO);
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_ext_device_info(struct vgpu_channel *ch, uint32_t dev, struct vgpu_device_info *info)
{
    memset(info, 0, sizeof(*info));
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, VGPU_CMD_EXT_DEVICE_INFO);
    vgpu_enc_u32(&enc, dev);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    if (code == VGPU_OK && !vgpu_dec_device_info(&dec, info))
        code = bad_reply(ch, VGPU_CMD_EXT_DEVICE_INFO);
    vgpu_channel_unlock(ch);
    return code;
}

/* One baseline query under the lock: cmd with an optional u64 argument. */
static int base_query(struct vgpu_channel *ch, uint32_t cmd, const uint64_t *arg, struct vgpu_dec *dec)
{
    struct vgpu_enc enc;
    begin_forward(ch, &enc, cmd);
    if (arg)
        vgpu_enc_u64(&enc, *arg);
    return vgpu_channel_forward(ch, &enc, dec);
}

int vgpu_remote_base_device_info(struct vgpu_channel *ch, struct vgpu_device_info *info)
{
    memset(info, 0, sizeof(*info));
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_dec dec;
    int code;
    uint32_t failed = 0;

#define QUERY(cmd, arg, body)                         \
    do {                                              \
        code = base_query(ch, (cmd), (arg), &dec);    \
        if (code != VGPU_OK) {                        \
            failed = (cmd);                           \
            goto out;                                 \
        }                                             \
        body;                                         \
        if (!vgpu_dec_ok(&dec)) {                     \
            failed = (cmd);                           \
            code = -EPROTO;                           \
            goto out;                                 \
        }                                             \
    } while (0)

    QUERY(APIR_CMD_DEVICE_GET_NAME, NULL, vgpu_dec_string(&dec, info->name, sizeof(info->name)));
    QUERY(APIR_CMD_DEVICE_GET_DESCRIPTION, NULL,
          vgpu_dec_string(&dec, info->description, sizeof(info->description)));
    QUERY(APIR_CMD_DEVICE_GET_TYPE, NULL, info->type = vgpu_dec_u32(&dec));
    QUERY(APIR_CMD_DEVICE_GET_MEMORY, NULL, {
        info->mem_free = vgpu_dec_u64(&dec);
        info->mem_total = vgpu_dec_u64(&dec);
    });
    QUERY(APIR_CMD_DEVICE_GET_BUFFER_TYPE, NULL, info->buft_id = vgpu_dec_u64(&dec));
    QUERY(APIR_CMD_DEVICE_GET_PROPS, NULL, {
        bool caps[5];
        for (int i = 0; i < 5; i++)
            caps[i] = vgpu_dec_bool(&dec);
        info->caps = (caps[0] ? VGPU_CAP_ASYNC : 0) | (caps[1] ? VGPU_CAP_HOST_BUFFER : 0) |
                     (caps[2] ? VGPU_CAP_BUFFER_FROM_HOST_PTR : 0) | (caps[3] ? VGPU_CAP_EVENTS : 0) |
                     (caps[4] ? VGPU_CAP_MMAP_SUPPORT : 0);
    });
    uint64_t buft = info->buft_id;
    QUERY(APIR_CMD_BUFFER_TYPE_GET_NAME, &buft, vgpu_dec_string(&dec, info->buft_name, sizeof(info->buft_name)));
    QUERY(APIR_CMD_BUFFER_TYPE_GET_ALIGNMENT, &buft, info->alignment = vgpu_dec_u64(&dec));
    QUERY(APIR_CMD_BUFFER_TYPE_GET_MAX_SIZE, &buft, info->max_size = vgpu_dec_u64(&dec));
#undef QUERY

    info->buft_flags = VGPU_BUFT_ALLOC_SIZE;
    if (info->caps & VGPU_CAP_BUFFER_FROM_HOST_PTR)
        info->buft_flags |= VGPU_BUFT_ZERO_COPY;
out:
    vgpu_channel_unlock(ch);
    if (code != VGPU_OK)
        GGML_LOG_ERROR("ggml-virtgpu: baseline command %u failed (%d: %s)\n", failed, code,
                       code >= 0 ? vgpu_status_name((uint32_t)code) : "no answer");
    return code;
}

/* ---- devices ---------------------------------------------------------------------------- */

int vgpu_remote_device_memory(struct vgpu_channel *ch, bool baseline, uint32_t dev, uint64_t *free_b,
                              uint64_t *total_b)
{
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, baseline ? APIR_CMD_DEVICE_GET_MEMORY : VGPU_CMD_EXT_DEVICE_MEMORY);
    if (!baseline)
        vgpu_enc_u32(&enc, dev);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    if (code == VGPU_OK) {
        uint64_t f = vgpu_dec_u64(&dec);
        uint64_t t = vgpu_dec_u64(&dec);
        if (vgpu_dec_ok(&dec)) {
            *free_b = f;
            *total_b = t;
        } else {
            code = bad_reply(ch, VGPU_CMD_EXT_DEVICE_MEMORY);
        }
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_op_query(struct vgpu_channel *ch, uint32_t cmd, uint32_t dev, const uint8_t *key, size_t key_size,
                         bool *answer)
{
    *answer = false;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, cmd);
    vgpu_enc_u32(&enc, dev);
    vgpu_enc_raw(&enc, key, key_size);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    if (code == VGPU_OK) {
        uint32_t v = vgpu_dec_u32(&dec);
        if (vgpu_dec_ok(&dec))
            *answer = v != 0;
        else
            code = bad_reply(ch, cmd);
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_alloc_size(struct vgpu_channel *ch, uint32_t dev, uint64_t buft, const uint8_t *key, size_t key_size,
                           uint64_t *size)
{
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, VGPU_CMD_EXT_GET_ALLOC_SIZE);
    vgpu_enc_u32(&enc, dev);
    vgpu_enc_u64(&enc, buft);
    vgpu_enc_raw(&enc, key, key_size);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    if (code == VGPU_OK) {
        uint64_t v = vgpu_dec_u64(&dec);
        if (vgpu_dec_ok(&dec))
            *size = v;
        else
            code = bad_reply(ch, VGPU_CMD_EXT_GET_ALLOC_SIZE);
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_base_supports_op(struct vgpu_channel *ch, const struct vgpu_inline_tensor *it, bool *answer)
{
    *answer = false;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, APIR_CMD_DEVICE_SUPPORTS_OP);
    vgpu_enc_inline_tensor(&enc, it);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    if (code == VGPU_OK) {
        bool v = vgpu_dec_bool(&dec);
        if (vgpu_dec_ok(&dec))
            *answer = v;
        else
            code = bad_reply(ch, APIR_CMD_DEVICE_SUPPORTS_OP);
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_base_alloc_size(struct vgpu_channel *ch, uint64_t buft, const struct vgpu_inline_tensor *it,
                                uint64_t *size)
{
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE);
    vgpu_enc_u64(&enc, buft);
    vgpu_enc_inline_tensor(&enc, it);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    if (code == VGPU_OK) {
        uint64_t v = vgpu_dec_u64(&dec);
        if (vgpu_dec_ok(&dec))
            *size = v;
        else
            code = bad_reply(ch, APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE);
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_set_n_threads(struct vgpu_channel *ch, uint32_t dev, uint32_t n_threads)
{
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, VGPU_CMD_EXT_SET_N_THREADS);
    vgpu_enc_u32(&enc, dev);
    vgpu_enc_u32(&enc, n_threads);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    vgpu_channel_unlock(ch);
    return code;
}

/* ---- buffers ---------------------------------------------------------------------------- */

/* Frees host buffer `id` (lock held). */
static int free_locked(struct vgpu_channel *ch, bool baseline, uint64_t id)
{
    struct vgpu_enc enc;
    begin_forward(ch, &enc, baseline ? APIR_CMD_BUFFER_FREE_BUFFER : VGPU_CMD_EXT_BUFFER_FREE);
    vgpu_enc_u64(&enc, id);
    struct vgpu_dec dec;
    return vgpu_channel_forward(ch, &enc, &dec);
}

int vgpu_remote_buffer_alloc(struct vgpu_channel *ch, bool baseline, uint32_t dev, uint64_t buft, uint64_t size,
                             bool zero_copy, struct vgpu_remote_buffer *b)
{
    memset(b, 0, sizeof(*b));
    if (size > SIZE_MAX)
        return VGPU_NO_MEMORY;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    int code;
    if (zero_copy) {
        code = vgpu_channel_resource_create(ch, (size_t)size, &b->res);
        if (code != 0) {
            vgpu_channel_unlock(ch);
            return code;
        }
    }
    struct vgpu_enc enc;
    struct vgpu_dec dec;
    if (!baseline) {
        begin_forward(ch, &enc, VGPU_CMD_EXT_BUFFER_ALLOC);
        vgpu_enc_u32(&enc, dev);
        vgpu_enc_u32(&enc, zero_copy ? VGPU_ALLOC_ZERO_COPY : 0);
        vgpu_enc_u64(&enc, buft);
        vgpu_enc_u64(&enc, size);
        vgpu_enc_u32(&enc, b->res.id);
        vgpu_enc_u32(&enc, 0);
        code = vgpu_channel_forward(ch, &enc, &dec);
        if (code == VGPU_OK) {
            b->id = vgpu_dec_u64(&dec);
            b->size = vgpu_dec_u64(&dec);
            uint32_t flags = vgpu_dec_u32(&dec);
            b->zero_copy = (flags & VGPU_ALLOC_ZERO_COPY) != 0;
            if (!vgpu_dec_ok(&dec) || b->id == 0) {
                code = bad_reply(ch, VGPU_CMD_EXT_BUFFER_ALLOC);
            } else if (b->size < size || b->zero_copy != zero_copy) {
                GGML_LOG_ERROR("ggml-virtgpu: the host allocated %llu bytes%s for a %llu-byte%s request\n",
                               (unsigned long long)b->size, b->zero_copy ? " (zero-copy)" : "",
                               (unsigned long long)size, zero_copy ? " zero-copy" : "");
                (void)free_locked(ch, false, b->id);
                b->id = 0;
                code = VGPU_UNSUPPORTED;
            }
        }
    } else if (zero_copy) {
        begin_forward(ch, &enc, APIR_CMD_DEVICE_BUFFER_FROM_PTR);
        vgpu_enc_u32(&enc, b->res.id);
        vgpu_enc_u64(&enc, size);
        vgpu_enc_u64(&enc, size);
        code = vgpu_channel_forward(ch, &enc, &dec);
        if (code == VGPU_OK) {
            b->id = vgpu_dec_u64(&dec);
            (void)vgpu_dec_u64(&dec); /* buffer type handle: the one we already know */
            if (!vgpu_dec_ok(&dec))
                code = bad_reply(ch, APIR_CMD_DEVICE_BUFFER_FROM_PTR);
            else if (b->id == 0)
                code = VGPU_NO_MEMORY;
            b->size = size;
            b->zero_copy = true;
        }
    } else {
        begin_forward(ch, &enc, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER);
        vgpu_enc_u64(&enc, buft);
        vgpu_enc_u64(&enc, size);
        code = vgpu_channel_forward(ch, &enc, &dec);
        if (code == VGPU_OK) {
            b->id = vgpu_dec_u64(&dec);
            if (!vgpu_dec_ok(&dec))
                code = bad_reply(ch, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER);
            else if (b->id == 0)
                code = VGPU_NO_MEMORY; /* upstream hosts answer handle 0 when out of memory */
            b->size = size;
        }
        if (code == VGPU_OK) {
            uint64_t id = b->id;
            code = base_query(ch, APIR_CMD_BUFFER_GET_BASE, &id, &dec);
            if (code == VGPU_OK) {
                b->host_base = vgpu_dec_u64(&dec);
                if (!vgpu_dec_ok(&dec))
                    code = bad_reply(ch, APIR_CMD_BUFFER_GET_BASE);
            }
            if (code != VGPU_OK && code >= 0) {
                (void)free_locked(ch, true, b->id);
                b->id = 0;
            }
        }
    }
    if (code != VGPU_OK)
        vgpu_channel_resource_destroy(ch, &b->res);
    vgpu_channel_unlock(ch);
    return code;
}

void vgpu_remote_buffer_free(struct vgpu_channel *ch, bool baseline, struct vgpu_remote_buffer *b)
{
    if (vgpu_channel_lock(ch)) {
        if (b->id)
            (void)free_locked(ch, baseline, b->id);
        vgpu_channel_resource_destroy(ch, &b->res);
        vgpu_channel_unlock(ch);
    } else {
        /* The host is gone: nothing to tell it, but the mapping is still ours to undo. */
        vgpu_channel_resource_destroy(ch, &b->res);
    }
    b->id = 0;
}

int vgpu_remote_buffer_clear(struct vgpu_channel *ch, bool baseline, uint64_t id, uint8_t value)
{
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, baseline ? APIR_CMD_BUFFER_CLEAR : VGPU_CMD_EXT_BUFFER_CLEAR);
    vgpu_enc_u64(&enc, id);
    if (baseline)
        vgpu_enc_u8(&enc, value);
    else
        vgpu_enc_u32(&enc, value);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    vgpu_channel_unlock(ch);
    return code;
}

/* ---- tensor data --------------------------------------------------------------------------- */

static bool mul_overflows(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* One EXT_TENSOR_SET/GET of `rows` rows through resource res (lock held). */
static int ext_xfer_res(struct vgpu_channel *ch, uint32_t cmd, const struct vgpu_tensor_ref *t, uint64_t offset,
                        uint64_t size, uint64_t rows, uint64_t stride_tensor, const struct vgpu_resource *res)
{
    struct vgpu_transfer x;
    memset(&x, 0, sizeof(x));
    x.tensor = t->wire;
    x.offset = offset;
    x.size = size;
    x.n_copies = rows;
    x.stride_tensor = rows > 1 ? stride_tensor : 0;
    x.stride_data = rows > 1 ? size : 0;
    x.res_id = res->id;
    x.res_offset = 0;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, cmd);
    vgpu_enc_transfer(&enc, &x);
    struct vgpu_dec dec;
    return vgpu_channel_forward(ch, &enc, &dec);
}

/*
 * Moves rows through the staging resource, as many whole rows per command as fit, rows
 * larger than staging in pieces. `set` selects the direction (lock held).
 */
static int ext_xfer_staged(struct vgpu_channel *ch, bool set, const struct vgpu_tensor_ref *t, uint8_t *data,
                           uint64_t offset, uint64_t size, uint64_t n_copies, uint64_t stride_tensor,
                           uint64_t stride_data)
{
    struct vgpu_resource *stg = vgpu_channel_staging(ch);
    if (!stg)
        return -ENOMEM;
    uint32_t cmd = set ? VGPU_CMD_EXT_TENSOR_SET : VGPU_CMD_EXT_TENSOR_GET;
    uint8_t *area = stg->ptr;
    if (size <= stg->size) {
        uint64_t per = stg->size / size;
        for (uint64_t i = 0; i < n_copies;) {
            uint64_t k = n_copies - i < per ? n_copies - i : per;
            if (set) {
                for (uint64_t j = 0; j < k; j++)
                    memcpy(area + j * size, data + (i + j) * stride_data, (size_t)size);
            }
            int code = ext_xfer_res(ch, cmd, t, offset + i * stride_tensor, size, k, stride_tensor, stg);
            if (code != VGPU_OK)
                return code;
            if (!set) {
                for (uint64_t j = 0; j < k; j++)
                    memcpy(data + (i + j) * stride_data, area + j * size, (size_t)size);
            }
            i += k;
        }
        return VGPU_OK;
    }
    for (uint64_t i = 0; i < n_copies; i++) {
        for (uint64_t done = 0; done < size;) {
            uint64_t n = size - done < stg->size ? size - done : stg->size;
            if (set)
                memcpy(area, data + i * stride_data + done, (size_t)n);
            int code = ext_xfer_res(ch, cmd, t, offset + i * stride_tensor + done, n, 1, 0, stg);
            if (code != VGPU_OK)
                return code;
            if (!set)
                memcpy(data + i * stride_data + done, area, (size_t)n);
            done += n;
        }
    }
    return VGPU_OK;
}

/* Baseline rpc tensor for a transfer: the tensor itself, or a flat byte range of it. */
static void base_xfer_tensor(const struct vgpu_tensor_ref *t, uint64_t at, uint64_t n, struct vgpu_rpc_tensor *r,
                             uint64_t *offset)
{
    if (t->rpc_ok) {
        *r = t->rpc;
        *offset = at;
        return;
    }
    /* Shapes above 32 bits: describe just the bytes moved, as an I8 row at their address. */
    memset(r, 0, sizeof(*r));
    r->id = 1;
    r->type = GGML_TYPE_I8;
    r->buffer = t->buffer;
    r->ne[0] = (uint32_t)n;
    r->ne[1] = r->ne[2] = r->ne[3] = 1;
    r->nb[0] = 1;
    r->nb[1] = r->nb[2] = r->nb[3] = (uint32_t)n;
    r->data = t->wire.data + at;
    *offset = 0;
}

/* One baseline SET/GET of n bytes at tensor byte `at`, data at byte 0 of res (lock held). */
static int base_xfer(struct vgpu_channel *ch, uint32_t cmd, const struct vgpu_tensor_ref *t, uint64_t at, uint64_t n,
                     const struct vgpu_resource *res)
{
    struct vgpu_rpc_tensor r;
    uint64_t off;
    base_xfer_tensor(t, at, n, &r, &off);
    struct vgpu_enc enc;
    begin_forward(ch, &enc, cmd);
    vgpu_enc_u64(&enc, t->buffer);
    vgpu_enc_rpc_tensor(&enc, &r);
    vgpu_enc_u32(&enc, res->id);
    vgpu_enc_u64(&enc, off);
    vgpu_enc_u64(&enc, n);
    struct vgpu_dec dec;
    return vgpu_channel_forward(ch, &enc, &dec);
}

static int base_xfer_rows(struct vgpu_channel *ch, bool set, const struct vgpu_tensor_ref *t, uint8_t *data,
                          uint64_t offset, uint64_t size, uint64_t n_copies, uint64_t stride_tensor,
                          uint64_t stride_data)
{
    struct vgpu_resource *stg = vgpu_channel_staging(ch);
    if (!stg)
        return -ENOMEM;
    uint32_t cmd = set ? APIR_CMD_BUFFER_SET_TENSOR : APIR_CMD_BUFFER_GET_TENSOR;
    for (uint64_t i = 0; i < n_copies; i++) {
        for (uint64_t done = 0; done < size;) {
            uint64_t n = size - done < stg->size ? size - done : stg->size;
            if (set)
                memcpy(stg->ptr, data + i * stride_data + done, (size_t)n);
            int code = base_xfer(ch, cmd, t, offset + i * stride_tensor + done, n, stg);
            if (code != VGPU_OK)
                return code;
            if (!set)
                memcpy(data + i * stride_data + done, stg->ptr, (size_t)n);
            done += n;
        }
    }
    return VGPU_OK;
}

int vgpu_remote_tensor_set(struct vgpu_channel *ch, bool baseline, const struct vgpu_tensor_ref *t, const void *data,
                           uint64_t offset, uint64_t size, uint64_t n_copies, uint64_t stride_tensor,
                           uint64_t stride_data)
{
    uint64_t total;
    if (size == 0 || n_copies == 0)
        return VGPU_OK;
    if (mul_overflows(size, n_copies, &total) || total > SIZE_MAX)
        return -EINVAL;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    int code;
    if (baseline) {
        code = base_xfer_rows(ch, true, t, (uint8_t *)data, offset, size, n_copies, stride_tensor, stride_data);
        vgpu_channel_unlock(ch);
        return code;
    }
    if (total <= VGPU_INLINE_DATA_MAX && 12 + TRANSFER_SIZE + 8 + vgpu_pad4((size_t)total) <= ch->cmd_cap) {
        struct vgpu_transfer x;
        memset(&x, 0, sizeof(x));
        x.tensor = t->wire;
        x.offset = offset;
        x.size = size;
        x.n_copies = n_copies;
        x.stride_tensor = n_copies > 1 ? stride_tensor : 0;
        x.stride_data = n_copies > 1 ? size : 0;
        struct vgpu_enc enc;
        begin_forward(ch, &enc, VGPU_CMD_EXT_TENSOR_SET);
        vgpu_enc_transfer(&enc, &x);
        vgpu_enc_u64(&enc, total);
        uint8_t *dst = vgpu_enc_reserve(&enc, (size_t)total);
        if (dst) {
            for (uint64_t i = 0; i < n_copies; i++)
                memcpy(dst + i * size, (const uint8_t *)data + i * stride_data, (size_t)size);
        }
        struct vgpu_dec dec;
        code = vgpu_channel_forward(ch, &enc, &dec);
    } else {
        code = ext_xfer_staged(ch, true, t, (uint8_t *)data, offset, size, n_copies, stride_tensor, stride_data);
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_tensor_get(struct vgpu_channel *ch, bool baseline, const struct vgpu_tensor_ref *t, void *data,
                           uint64_t offset, uint64_t size, uint64_t n_copies, uint64_t stride_tensor,
                           uint64_t stride_data)
{
    uint64_t total;
    if (size == 0 || n_copies == 0)
        return VGPU_OK;
    if (mul_overflows(size, n_copies, &total) || total > SIZE_MAX)
        return -EINVAL;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    int code;
    if (baseline) {
        code = base_xfer_rows(ch, false, t, data, offset, size, n_copies, stride_tensor, stride_data);
        vgpu_channel_unlock(ch);
        return code;
    }
    if (total <= VGPU_INLINE_DATA_MAX && 8 + vgpu_pad4((size_t)total) <= ch->reply.size - APIR_REPLY_PAYLOAD_OFFSET) {
        struct vgpu_transfer x; /* res_id 0: the data comes back inline, rows packed */
        memset(&x, 0, sizeof(x));
        x.tensor = t->wire;
        x.offset = offset;
        x.size = size;
        x.n_copies = n_copies;
        x.stride_tensor = n_copies > 1 ? stride_tensor : 0;
        x.stride_data = n_copies > 1 ? size : 0;
        struct vgpu_enc enc;
        begin_forward(ch, &enc, VGPU_CMD_EXT_TENSOR_GET);
        vgpu_enc_transfer(&enc, &x);
        struct vgpu_dec dec;
        code = vgpu_channel_forward(ch, &enc, &dec);
        if (code == VGPU_OK) {
            size_t n = 0;
            const uint8_t *src = vgpu_dec_blob(&dec, (size_t)total, &n);
            if (!src || n != total) {
                code = bad_reply(ch, VGPU_CMD_EXT_TENSOR_GET);
            } else {
                for (uint64_t i = 0; i < n_copies; i++)
                    memcpy((uint8_t *)data + i * stride_data, src + i * size, (size_t)size);
            }
        }
    } else {
        code = ext_xfer_staged(ch, false, t, data, offset, size, n_copies, stride_tensor, stride_data);
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_tensor_memset(struct vgpu_channel *ch, bool baseline, const struct vgpu_tensor_ref *t,
                              uint64_t offset, uint64_t size, uint8_t value)
{
    if (size == 0)
        return VGPU_OK;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    int code;
    if (!baseline) {
        struct vgpu_enc enc;
        begin_forward(ch, &enc, VGPU_CMD_EXT_TENSOR_MEMSET);
        vgpu_enc_wire_tensor(&enc, &t->wire);
        vgpu_enc_u64(&enc, offset);
        vgpu_enc_u64(&enc, size);
        vgpu_enc_u32(&enc, value);
        struct vgpu_dec dec;
        code = vgpu_channel_forward(ch, &enc, &dec);
    } else {
        struct vgpu_resource *stg = vgpu_channel_staging(ch);
        code = stg ? VGPU_OK : -ENOMEM;
        if (stg) {
            uint64_t fill = size < stg->size ? size : stg->size;
            memset(stg->ptr, value, (size_t)fill);
            for (uint64_t done = 0; done < size && code == VGPU_OK;) {
                uint64_t n = size - done < fill ? size - done : fill;
                code = base_xfer(ch, APIR_CMD_BUFFER_SET_TENSOR, t, offset + done, n, stg);
                done += n;
            }
        }
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_tensor_copy(struct vgpu_channel *ch, bool baseline, const struct vgpu_tensor_ref *src,
                            const struct vgpu_tensor_ref *dst)
{
    if (baseline && (!src->rpc_ok || !dst->rpc_ok))
        return VGPU_UNSUPPORTED;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    struct vgpu_dec dec;
    int code;
    if (!baseline) {
        begin_forward(ch, &enc, VGPU_CMD_EXT_TENSOR_COPY);
        vgpu_enc_wire_tensor(&enc, &src->wire);
        vgpu_enc_wire_tensor(&enc, &dst->wire);
        code = vgpu_channel_forward(ch, &enc, &dec);
    } else {
        struct vgpu_rpc_tensor s = src->rpc, d = dst->rpc;
        s.id = 1;
        d.id = 2;
        begin_forward(ch, &enc, APIR_CMD_BUFFER_CPY_TENSOR);
        vgpu_enc_u64(&enc, dst->buffer);
        vgpu_enc_rpc_tensor(&enc, &s);
        vgpu_enc_rpc_tensor(&enc, &d);
        code = vgpu_channel_forward(ch, &enc, &dec);
        if (code == VGPU_OK) {
            bool ok = vgpu_dec_bool(&dec);
            if (!vgpu_dec_ok(&dec))
                code = bad_reply(ch, APIR_CMD_BUFFER_CPY_TENSOR);
            else if (!ok)
                code = VGPU_UNSUPPORTED;
        }
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_tensor_init(struct vgpu_channel *ch, const struct vgpu_tensor_ref *t)
{
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, VGPU_CMD_EXT_TENSOR_INIT);
    vgpu_enc_wire_tensor(&enc, &t->wire);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    vgpu_channel_unlock(ch);
    return code;
}

/* ---- graphs --------------------------------------------------------------------------------- */

/*
 * Encodes a graph request for cmd with the image inline (small) or in a shared area
 * (lock held). Returns 0 or < 0.
 */
static int encode_graph(struct vgpu_channel *ch, struct vgpu_enc *enc, uint32_t cmd, uint32_t dev, uint64_t uid,
                        const uint8_t *image, size_t size)
{
    struct vgpu_graph_request g;
    memset(&g, 0, sizeof(g));
    g.dev = dev;
    g.uid = uid;
    g.size = size;
    bool inline_image = size > 0 && size <= VGPU_INLINE_GRAPH_MAX &&
                        12 + GRAPH_REQUEST_SIZE + 8 + vgpu_pad4(size) <= ch->cmd_cap;
    if (size > 0 && !inline_image) {
        struct vgpu_resource *area = vgpu_channel_area(ch, size);
        if (!area)
            return -ENOMEM;
        memcpy(area->ptr, image, size);
        g.res_id = area->id;
    }
    begin_forward(ch, enc, cmd);
    vgpu_enc_graph_request(enc, &g);
    if (inline_image)
        vgpu_enc_blob(enc, image, size);
    return 0;
}

int vgpu_remote_graph_compute(struct vgpu_channel *ch, uint32_t dev, uint64_t uid, const uint8_t *image,
                              size_t size, uint32_t *result, int32_t *status)
{
    *result = VGPU_GRAPH_NOT_CACHED;
    *status = GGML_STATUS_FAILED;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    int code = encode_graph(ch, &enc, VGPU_CMD_EXT_GRAPH_COMPUTE, dev, uid, image, size);
    if (code == 0) {
        struct vgpu_dec dec;
        code = vgpu_channel_forward(ch, &enc, &dec);
        if (code == VGPU_OK) {
            uint32_t r = vgpu_dec_u32(&dec);
            int32_t s = vgpu_dec_i32(&dec);
            if (!vgpu_dec_ok(&dec)) {
                code = bad_reply(ch, VGPU_CMD_EXT_GRAPH_COMPUTE);
            } else {
                *result = r;
                *status = s;
            }
        }
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_base_graph_compute(struct vgpu_channel *ch, const uint8_t *image, size_t size, int32_t *status)
{
    *status = GGML_STATUS_FAILED;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    int code = -ENOMEM;
    struct vgpu_resource *area = vgpu_channel_area(ch, size);
    if (area) {
        memcpy(area->ptr, image, size);
        struct vgpu_enc enc;
        begin_forward(ch, &enc, APIR_CMD_BACKEND_GRAPH_COMPUTE);
        vgpu_enc_u32(&enc, area->id);
        vgpu_enc_u64(&enc, size);
        struct vgpu_dec dec;
        code = vgpu_channel_forward(ch, &enc, &dec);
        if (code == VGPU_OK) {
            int32_t s = vgpu_dec_i32(&dec);
            if (vgpu_dec_ok(&dec))
                *status = s;
            else
                code = bad_reply(ch, APIR_CMD_BACKEND_GRAPH_COMPUTE);
        }
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_graph_optimize(struct vgpu_channel *ch, uint32_t dev, const uint8_t *image, size_t size,
                               uint32_t n_nodes, uint32_t n_tensors, uint32_t *order, uint32_t **deps,
                               uint32_t *n_deps)
{
    *deps = NULL;
    *n_deps = 0;
    uint8_t *seen = calloc((size_t)n_nodes + 1, 1);
    if (!seen)
        return -ENOMEM;
    if (!vgpu_channel_lock(ch)) {
        free(seen);
        return NOT_LOCKED;
    }
    struct vgpu_enc enc;
    int code = encode_graph(ch, &enc, VGPU_CMD_EXT_GRAPH_OPTIMIZE, dev, 0, image, size);
    if (code == 0) {
        struct vgpu_dec dec;
        code = vgpu_channel_forward(ch, &enc, &dec);
        if (code == VGPU_OK) {
            bool ok = vgpu_dec_u32(&dec) == n_nodes;
            for (uint32_t i = 0; ok && i < n_nodes; i++) {
                uint32_t v = vgpu_dec_u32(&dec);
                ok = vgpu_dec_ok(&dec) && v < n_nodes && !seen[v];
                if (ok) {
                    seen[v] = 1;
                    order[i] = v;
                }
            }
            uint32_t nd = ok ? vgpu_dec_u32(&dec) : 0;
            ok = ok && vgpu_dec_ok(&dec) && nd <= vgpu_dec_left(&dec) / 8;
            if (ok && nd) {
                *deps = malloc((size_t)nd * 2 * sizeof(uint32_t));
                if (!*deps) {
                    code = -ENOMEM;
                    ok = false;
                }
                for (uint32_t i = 0; ok && i < 2 * nd; i++) {
                    (*deps)[i] = vgpu_dec_u32(&dec);
                    ok = (*deps)[i] < n_tensors;
                }
                *n_deps = nd;
            }
            if (!ok || !vgpu_dec_ok(&dec)) {
                free(*deps);
                *deps = NULL;
                *n_deps = 0;
                if (code == VGPU_OK)
                    code = bad_reply(ch, VGPU_CMD_EXT_GRAPH_OPTIMIZE);
            }
        }
    }
    vgpu_channel_unlock(ch);
    free(seen);
    return code;
}
