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
    if (code == VGPU_OK)
        vgpu_channel_set_host_threads(ch, (int)n_threads); /* the wait policy leaves them their cores */
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
    struct vgpu_entry_meta m;
    memset(&m, 0, sizeof(m));
    snprintf(m.what, sizeof(m.what), "clear of a buffer");
    int code = !baseline && vgpu_channel_batching(ch) ? vgpu_channel_defer(ch, &enc, &m) : -EMSGSIZE;
    struct vgpu_dec dec;
    if (code == -EMSGSIZE)
        code = vgpu_channel_forward(ch, &enc, &dec);
    vgpu_channel_unlock(ch);
    return code;
}

/* ---- tensor data --------------------------------------------------------------------------- */

static bool mul_overflows(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* The transfer request for rows [first, first + rows) of a move (data location filled by the caller). */
static void xfer_rows(struct vgpu_transfer *x, const struct vgpu_tensor_ref *t, uint64_t offset, uint64_t size,
                      uint64_t rows, uint64_t stride_tensor)
{
    memset(x, 0, sizeof(*x));
    x->tensor = t->wire;
    x->offset = offset;
    x->size = size;
    x->n_copies = rows;
    x->stride_tensor = rows > 1 ? stride_tensor : 0;
}

/* One EXT_TENSOR_SET/GET of `rows` rows through resource res (lock held). */
static int ext_xfer_res(struct vgpu_channel *ch, uint32_t cmd, const struct vgpu_tensor_ref *t, uint64_t offset,
                        uint64_t size, uint64_t rows, uint64_t stride_tensor, const struct vgpu_resource *res)
{
    struct vgpu_transfer x;
    xfer_rows(&x, t, offset, size, rows, stride_tensor);
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
 * larger than staging in pieces, one command at a time (hosts without batches). `set`
 * selects the direction (lock held).
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

/*
 * A staged chunk: `rows` rows of `n` bytes, tensor bytes at `at` (rows stride_tensor apart),
 * guest bytes at `src` (rows stride_data apart).
 */
struct chunk {
    uint64_t at;
    uint64_t n;
    uint64_t rows;
    uint8_t *data;
    uint32_t slot;
    uint64_t seq;
};

/* Splits a move into staging chunks: calls fn for each, in order, until it fails. */
typedef int (*chunk_fn)(struct vgpu_channel *ch, void *user, struct chunk *c);

static int for_each_chunk(struct vgpu_channel *ch, uint8_t *data, uint64_t offset, uint64_t size, uint64_t n_copies,
                          uint64_t stride_tensor, uint64_t stride_data, chunk_fn fn, void *user)
{
    const uint64_t C = VGPU_STAGING_CHUNK;
    uint32_t k = 0;
    if (size <= C) {
        uint64_t per = C / size;
        for (uint64_t i = 0; i < n_copies;) {
            struct chunk c = { offset + i * stride_tensor, size, n_copies - i < per ? n_copies - i : per,
                               data + i * stride_data, k++ % VGPU_RING, 0 };
            int r = fn(ch, user, &c);
            if (r != VGPU_OK)
                return r;
            i += c.rows;
        }
        return VGPU_OK;
    }
    for (uint64_t i = 0; i < n_copies; i++) {
        for (uint64_t done = 0; done < size;) {
            struct chunk c = { offset + i * stride_tensor + done, size - done < C ? size - done : C, 1,
                               data + i * stride_data + done, k++ % VGPU_RING, 0 };
            int r = fn(ch, user, &c);
            if (r != VGPU_OK)
                return r;
            done += c.n;
        }
    }
    return VGPU_OK;
}

struct pipe_ctx {
    int                           code[VGPU_RING]; /* GET: each chunk's answer */
    const struct vgpu_tensor_ref *t;
    uint64_t                      stride_tensor;
    uint64_t                      stride_data;
    bool                          set;
    struct chunk                  win[VGPU_RING]; /* GET: chunks not copied out yet, by slot */
    bool                          live[VGPU_RING];
};

/* GET: waits for chunk c (in flight in its slot) and copies it out. */
static int pipe_drain(struct vgpu_channel *ch, struct pipe_ctx *p, uint32_t slot)
{
    if (!p->live[slot])
        return VGPU_OK;
    struct chunk *c = &p->win[slot];
    p->live[slot] = false;
    int r = vgpu_channel_wait_seq(ch, c->seq);
    if (r < 0)
        return r;
    if (p->code[slot] != VGPU_OK)
        return p->code[slot];
    const uint8_t *area = (const uint8_t *)ch->staging.ptr + (uint64_t)slot * VGPU_STAGING_CHUNK;
    for (uint64_t j = 0; j < c->rows; j++)
        memcpy(c->data + j * p->stride_data, area + j * c->n, (size_t)c->n);
    return VGPU_OK;
}

static int pipe_chunk(struct vgpu_channel *ch, void *user, struct chunk *c)
{
    struct pipe_ctx *p = user;
    if (!p->set) {
        int r = pipe_drain(ch, p, c->slot);
        if (r != VGPU_OK)
            return r;
    }
    uint64_t res_offset;
    uint32_t res_id;
    uint8_t *area = vgpu_channel_staging_chunk(ch, c->slot, &res_offset, &res_id);
    if (!area)
        return vgpu_channel_is_lost(ch) ? NOT_LOCKED : -ENOMEM;
    if (p->set) {
        for (uint64_t j = 0; j < c->rows; j++)
            memcpy(area + j * c->n, c->data + j * p->stride_data, (size_t)c->n);
    }
    struct vgpu_transfer x;
    xfer_rows(&x, p->t, c->at, c->n, c->rows, p->stride_tensor);
    x.stride_data = c->rows > 1 ? c->n : 0;
    x.res_id = res_id;
    x.res_offset = res_offset;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, p->set ? VGPU_CMD_EXT_TENSOR_SET : VGPU_CMD_EXT_TENSOR_GET);
    vgpu_enc_transfer(&enc, &x);
    struct vgpu_entry_meta m;
    memset(&m, 0, sizeof(m));
    m.long_wait = true;
    m.bytes = c->n * c->rows;
    snprintf(m.what, sizeof(m.what), "%s (staged) of tensor '%s'", p->set ? "set_tensor" : "get_tensor",
             p->t->wire.name);
    if (!p->set) {
        p->code[c->slot] = -EIO;
        m.result = &p->code[c->slot];
    }
    int r = vgpu_channel_defer(ch, &enc, &m);
    if (r < 0)
        return r;
    c->seq = vgpu_channel_kick(ch);
    if (!c->seq)
        return NOT_LOCKED;
    vgpu_channel_staging_used(ch, c->slot, c->seq);
    if (!p->set) {
        p->win[c->slot] = *c;
        p->live[c->slot] = true;
    }
    return VGPU_OK;
}

/*
 * Pipelined staging (batching hosts): the move is cut into staging chunks, each submitted
 * as soon as it is filled, so the guest fills chunk k + 1 while the host copies chunk k
 * (SET), or copies chunk k out while the host fills the next ones (GET). A SET returns once
 * its last chunk is submitted (the data is ours by then; failures are deferred errors); a
 * GET returns when every chunk was copied out, with the first failure.
 */
static int ext_xfer_pipelined(struct vgpu_channel *ch, bool set, const struct vgpu_tensor_ref *t, uint8_t *data,
                              uint64_t offset, uint64_t size, uint64_t n_copies, uint64_t stride_tensor,
                              uint64_t stride_data)
{
    struct pipe_ctx p;
    memset(&p, 0, sizeof(p));
    p.t = t;
    p.stride_tensor = stride_tensor;
    p.stride_data = stride_data;
    p.set = set;
    int r = for_each_chunk(ch, data, offset, size, n_copies, stride_tensor, stride_data, pipe_chunk, &p);
    if (!set) {
        /* Copy out what is in flight in submission order (slots were used round-robin). */
        uint64_t order[VGPU_RING];
        uint32_t n = 0;
        for (uint32_t i = 0; i < VGPU_RING; i++)
            if (p.live[i])
                order[n++] = ((uint64_t)p.win[i].seq << 8) | i;
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = i; j > 0 && order[j - 1] > order[j]; j--) {
                uint64_t tmp = order[j];
                order[j] = order[j - 1];
                order[j - 1] = tmp;
            }
        for (uint32_t i = 0; i < n; i++) {
            int d = pipe_drain(ch, &p, (uint32_t)(order[i] & 0xff));
            if (r == VGPU_OK)
                r = d;
        }
    }
    return r;
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

/* A move's data in one of our shared resources (a host buffer): the request names it directly. */
static void xfer_by_ref(struct vgpu_transfer *x, const struct vgpu_xfer_data *d, uint64_t n_copies)
{
    x->stride_data = n_copies > 1 ? d->stride : 0;
    x->res_id = d->res_id;
    x->res_offset = d->res_offset;
}

static void what(char *out, size_t cap, const char *op, const struct vgpu_tensor_ref *t)
{
    snprintf(out, cap, "%s of tensor '%s'", op, t->wire.name);
}

int vgpu_remote_tensor_set(struct vgpu_channel *ch, bool baseline, const struct vgpu_tensor_ref *t,
                           const struct vgpu_xfer_data *d, uint64_t offset, uint64_t size, uint64_t n_copies,
                           uint64_t stride_tensor)
{
    uint64_t total;
    if (size == 0 || n_copies == 0)
        return VGPU_OK;
    if (mul_overflows(size, n_copies, &total) || total > SIZE_MAX)
        return -EINVAL;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    int code;
    uint8_t *data = d->ptr;
    if (baseline) {
        code = base_xfer_rows(ch, true, t, data, offset, size, n_copies, stride_tensor, d->stride);
        vgpu_channel_unlock(ch);
        return code;
    }
    bool batching = vgpu_channel_batching(ch);
    struct vgpu_transfer x;
    xfer_rows(&x, t, offset, size, n_copies, stride_tensor);
    struct vgpu_enc enc;
    struct vgpu_dec dec;
    struct vgpu_entry_meta m;
    memset(&m, 0, sizeof(m));
    what(m.what, sizeof(m.what), "set_tensor", t);
    if (d->res_id && (d->async || !batching || total > VGPU_INLINE_DATA_MAX)) {
        /* From a host buffer: the host reads it there. Deferred only when the caller keeps it. */
        xfer_by_ref(&x, d, n_copies);
        begin_forward(ch, &enc, VGPU_CMD_EXT_TENSOR_SET);
        vgpu_enc_transfer(&enc, &x);
        if (batching && d->async) {
            m.long_wait = total > VGPU_INLINE_DATA_MAX;
            m.bytes = total;
            m.reads_caller = true; /* the caller's memory must stay put until synchronize */
            code = vgpu_channel_defer(ch, &enc, &m);
        } else {
            code = vgpu_channel_forward(ch, &enc, &dec);
        }
    } else if (total <= VGPU_INLINE_DATA_MAX && 12 + TRANSFER_SIZE + 8 + vgpu_pad4((size_t)total) <= ch->cmd_cap) {
        /* Small: the data travels in the command (copied now, so the caller may reuse it). */
        x.stride_data = n_copies > 1 ? size : 0;
        begin_forward(ch, &enc, VGPU_CMD_EXT_TENSOR_SET);
        vgpu_enc_transfer(&enc, &x);
        vgpu_enc_u64(&enc, total);
        uint8_t *dst = vgpu_enc_reserve(&enc, (size_t)total);
        if (dst) {
            for (uint64_t i = 0; i < n_copies; i++)
                memcpy(dst + i * size, data + i * d->stride, (size_t)size);
        }
        code = batching ? vgpu_channel_defer(ch, &enc, &m) : -EMSGSIZE;
        if (code == -EMSGSIZE)
            code = vgpu_channel_forward(ch, &enc, &dec);
    } else if (batching) {
        code = ext_xfer_pipelined(ch, true, t, data, offset, size, n_copies, stride_tensor, d->stride);
    } else {
        code = ext_xfer_staged(ch, true, t, data, offset, size, n_copies, stride_tensor, d->stride);
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_tensor_get(struct vgpu_channel *ch, bool baseline, const struct vgpu_tensor_ref *t,
                           const struct vgpu_xfer_data *d, uint64_t offset, uint64_t size, uint64_t n_copies,
                           uint64_t stride_tensor)
{
    uint64_t total;
    if (size == 0 || n_copies == 0)
        return VGPU_OK;
    if (mul_overflows(size, n_copies, &total) || total > SIZE_MAX)
        return -EINVAL;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    int code;
    uint8_t *data = d->ptr;
    if (baseline) {
        code = base_xfer_rows(ch, false, t, data, offset, size, n_copies, stride_tensor, d->stride);
        vgpu_channel_unlock(ch);
        return code;
    }
    bool batching = vgpu_channel_batching(ch);
    struct vgpu_transfer x;
    xfer_rows(&x, t, offset, size, n_copies, stride_tensor);
    struct vgpu_enc enc;
    struct vgpu_dec dec;
    struct vgpu_entry_meta m;
    memset(&m, 0, sizeof(m));
    what(m.what, sizeof(m.what), "get_tensor", t);
    bool fits_inline = total <= VGPU_INLINE_DATA_MAX &&
                       8 + vgpu_pad4((size_t)total) <= ch->reply.size - APIR_REPLY_PAYLOAD_OFFSET;
    if (d->res_id) {
        /* Into a host buffer: the host writes it there; asynchronously if the caller allows. */
        xfer_by_ref(&x, d, n_copies);
        begin_forward(ch, &enc, VGPU_CMD_EXT_TENSOR_GET);
        vgpu_enc_transfer(&enc, &x);
        if (batching && d->async) {
            m.long_wait = total > VGPU_INLINE_DATA_MAX;
            m.bytes = total;
            code = vgpu_channel_defer(ch, &enc, &m);
        } else {
            code = vgpu_channel_forward(ch, &enc, &dec);
        }
    } else if (fits_inline) {
        /* res_id 0: the data comes back inline, rows packed */
        x.stride_data = n_copies > 1 ? size : 0;
        begin_forward(ch, &enc, VGPU_CMD_EXT_TENSOR_GET);
        vgpu_enc_transfer(&enc, &x);
        code = -EMSGSIZE;
        if (batching && d->async) {
            m.kind = VGPU_ENTRY_GET_INLINE;
            m.reply_max = 8 + (uint32_t)vgpu_pad4((size_t)total);
            m.dst = data;
            m.row_size = size;
            m.n_rows = n_copies;
            m.dst_stride = d->stride;
            code = vgpu_channel_defer(ch, &enc, &m);
        }
        if (code == -EMSGSIZE) {
            code = vgpu_channel_forward(ch, &enc, &dec);
            if (code == VGPU_OK) {
                size_t n = 0;
                const uint8_t *src = vgpu_dec_blob(&dec, (size_t)total, &n);
                if (!src || n != total) {
                    code = bad_reply(ch, VGPU_CMD_EXT_TENSOR_GET);
                } else {
                    for (uint64_t i = 0; i < n_copies; i++)
                        memcpy(data + i * d->stride, src + i * size, (size_t)size);
                }
            }
        }
    } else if (batching) {
        code = ext_xfer_pipelined(ch, false, t, data, offset, size, n_copies, stride_tensor, d->stride);
    } else {
        code = ext_xfer_staged(ch, false, t, data, offset, size, n_copies, stride_tensor, d->stride);
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
        struct vgpu_entry_meta m;
        memset(&m, 0, sizeof(m));
        what(m.what, sizeof(m.what), "memset", t);
        code = vgpu_channel_batching(ch) ? vgpu_channel_defer(ch, &enc, &m) : -EMSGSIZE;
        if (code == -EMSGSIZE) {
            struct vgpu_dec dec;
            code = vgpu_channel_forward(ch, &enc, &dec);
        }
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
        /* The host copies (through its memory if it must): the answer can wait. */
        struct vgpu_entry_meta m;
        memset(&m, 0, sizeof(m));
        what(m.what, sizeof(m.what), "cpy_tensor", dst);
        code = vgpu_channel_batching(ch) ? vgpu_channel_defer(ch, &enc, &m) : -EMSGSIZE;
        if (code == -EMSGSIZE)
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

int vgpu_remote_tensor_init(struct vgpu_channel *ch, const struct vgpu_tensor_ref *t, bool defer)
{
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, VGPU_CMD_EXT_TENSOR_INIT);
    vgpu_enc_wire_tensor(&enc, &t->wire);
    int code = -EMSGSIZE;
    if (defer && vgpu_channel_batching(ch)) {
        struct vgpu_entry_meta m;
        memset(&m, 0, sizeof(m));
        what(m.what, sizeof(m.what), "init_tensor", t);
        code = vgpu_channel_defer(ch, &enc, &m);
    }
    if (code == -EMSGSIZE) {
        struct vgpu_dec dec;
        code = vgpu_channel_forward(ch, &enc, &dec);
    }
    vgpu_channel_unlock(ch);
    return code;
}

/* ---- graphs --------------------------------------------------------------------------------- */

/*
 * Encodes a graph request for cmd (lock held). The image goes inline when it is at most
 * inline_max bytes and fits one command, else through the channel's shared area, which only a
 * waited command may use (the next user rewrites it); inline_max SIZE_MAX allows no area:
 * -EMSGSIZE when the image does not fit. Returns 0 or < 0.
 */
static int encode_graph_body(struct vgpu_channel *ch, struct vgpu_enc *enc, bool begin, uint32_t cmd, uint32_t dev,
                             uint64_t uid, const uint8_t *image, size_t size, size_t inline_max)
{
    struct vgpu_graph_request g;
    memset(&g, 0, sizeof(g));
    g.dev = dev;
    g.uid = uid;
    g.size = size;
    /* 12 + 8 + 8: the APIR header and, in a batch, the batch and entry headers. */
    bool inline_image = size > 0 && size <= inline_max &&
                        12 + 16 + GRAPH_REQUEST_SIZE + 8 + vgpu_pad4(size) <= ch->cmd_cap;
    if (size > 0 && !inline_image && inline_max == SIZE_MAX)
        return -EMSGSIZE;
    if (size > 0 && !inline_image) {
        struct vgpu_resource *area = vgpu_channel_area(ch, size);
        if (!area)
            return -ENOMEM;
        memcpy(area->ptr, image, size);
        g.res_id = area->id;
    }
    if (begin)
        begin_forward(ch, enc, cmd);
    vgpu_enc_graph_request(enc, &g);
    if (inline_image)
        vgpu_enc_blob(enc, image, size);
    return 0;
}

static int encode_graph(struct vgpu_channel *ch, struct vgpu_enc *enc, uint32_t cmd, uint32_t dev, uint64_t uid,
                        const uint8_t *image, size_t size)
{
    return encode_graph_body(ch, enc, true, cmd, dev, uid, image, size, VGPU_INLINE_GRAPH_MAX);
}

int vgpu_remote_encode_graph_request(struct vgpu_channel *ch, struct vgpu_enc *enc, uint32_t dev, uint64_t uid,
                                     const uint8_t *image, size_t size)
{
    return encode_graph_body(ch, enc, false, VGPU_CMD_EXT_GRAPH_COMPUTE, dev, uid, image, size,
                             VGPU_INLINE_GRAPH_MAX);
}

int vgpu_remote_graph_compute_async(struct vgpu_channel *ch, uint32_t dev, uint64_t uid, const uint8_t *image,
                                    size_t size, const struct vgpu_entry_meta *meta, bool no_wait)
{
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    int code = encode_graph_body(ch, &enc, true, VGPU_CMD_EXT_GRAPH_COMPUTE, dev, uid, image, size, SIZE_MAX);
    if (code == 0) {
        struct vgpu_entry_meta m = *meta;
        m.kind = VGPU_ENTRY_GRAPH;
        m.long_wait = true;
        code = vgpu_channel_defer(ch, &enc, &m);
        /* Start it now: the host computes while the guest goes on (with no_wait it replies
         * without waiting for the compute, and the next sync waits). */
        if (code == 0 && !(no_wait ? vgpu_channel_kick_no_wait(ch) : vgpu_channel_kick(ch)))
            code = NOT_LOCKED;
    }
    vgpu_channel_unlock(ch);
    return code;
}

int vgpu_remote_sync(struct vgpu_channel *ch, bool only_observable)
{
    if (!vgpu_channel_lock(ch)) {
        /* Lost: nothing will complete, but queued local copies still can be done. */
        vgpu_channel_quiesce(ch);
        return NOT_LOCKED;
    }
    int r = vgpu_channel_sync(ch, only_observable);
    vgpu_channel_unlock(ch);
    return r;
}

int vgpu_remote_host_buffer_register(struct vgpu_channel *ch, const struct vgpu_resource *res, bool *pinned)
{
    *pinned = false;
    if (!vgpu_channel_lock(ch))
        return NOT_LOCKED;
    struct vgpu_enc enc;
    begin_forward(ch, &enc, VGPU_CMD_EXT_HOST_BUFFER_REGISTER);
    vgpu_enc_u32(&enc, res->id);
    vgpu_enc_u32(&enc, 0);
    vgpu_enc_u64(&enc, 0);
    vgpu_enc_u64(&enc, res->size);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    if (code == VGPU_OK) {
        uint32_t f = vgpu_dec_u32(&dec);
        if (!vgpu_dec_ok(&dec))
            code = bad_reply(ch, VGPU_CMD_EXT_HOST_BUFFER_REGISTER);
        else
            *pinned = (f & VGPU_HOST_BUFFER_PINNED) != 0;
    }
    vgpu_channel_unlock(ch);
    return code;
}

void vgpu_remote_host_buffer_free(struct vgpu_channel *ch, struct vgpu_resource *res, bool registered)
{
    if (vgpu_channel_lock(ch)) {
        if (registered) {
            struct vgpu_enc enc;
            begin_forward(ch, &enc, VGPU_CMD_EXT_HOST_BUFFER_UNREGISTER);
            vgpu_enc_u32(&enc, res->id);
            vgpu_enc_u32(&enc, 0);
            struct vgpu_dec dec;
            int code = vgpu_channel_forward(ch, &enc, &dec);
            if (code != VGPU_OK && code >= 0)
                GGML_LOG_WARN("ggml-virtgpu: unregistering a host buffer failed: %s\n", vgpu_status_name((uint32_t)code));
        } else {
            /* Still, nothing queued may name it once it is gone. */
            (void)vgpu_channel_sync(ch, false);
        }
        vgpu_channel_resource_destroy(ch, res);
        vgpu_channel_unlock(ch);
    } else {
        vgpu_channel_resource_destroy(ch, res);
    }
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
