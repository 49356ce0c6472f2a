/*
 * Tensor/graph images and extension messages; contracts in wire.h, layouts in
 * docs/PROTOCOL.md. Images are built in a local byte array and moved with one raw codec
 * call, so a short input fails as a whole instead of leaving a half-decoded tensor.
 */
#include "wire.h"

#include <string.h>

static void put32(uint8_t *b, size_t off, uint32_t v) { memcpy(b + off, &v, 4); }
static void put64(uint8_t *b, size_t off, uint64_t v) { memcpy(b + off, &v, 8); }

static uint32_t get32(const uint8_t *b, size_t off)
{
    uint32_t v;
    memcpy(&v, b + off, 4);
    return v;
}

static uint64_t get64(const uint8_t *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

/* Copies a name into a fixed field, truncating and always leaving a NUL. */
static void put_name(uint8_t *b, size_t off, const char *name)
{
    size_t n = strnlen(name, VGPU_MAX_NAME - 1);
    memset(b + off, 0, VGPU_MAX_NAME);
    memcpy(b + off, name, n);
}

static void get_name(const uint8_t *b, size_t off, char *name)
{
    memcpy(name, b + off, VGPU_MAX_NAME);
    name[VGPU_MAX_NAME - 1] = '\0';
}

/* ---- extension wire tensor ------------------------------------------------------------ */

enum {
    WT_TYPE = 0, WT_OP = 4, WT_FLAGS = 8, WT_USE_COUNT = 12, WT_NE = 16, WT_NB = 48,
    WT_OP_PARAMS = 80, WT_BUFFER = 144, WT_DATA = 152, WT_SRC = 160, WT_VIEW_SRC = 200,
    WT_RESERVED = 204, WT_VIEW_OFFS = 208, WT_NAME = 216,
};
_Static_assert(WT_NAME + VGPU_MAX_NAME == VGPU_WIRE_TENSOR_SIZE, "wire tensor layout");

void vgpu_enc_wire_tensor(struct vgpu_enc *enc, const struct vgpu_wire_tensor *t)
{
    uint8_t b[VGPU_WIRE_TENSOR_SIZE];
    put32(b, WT_TYPE, t->type);
    put32(b, WT_OP, t->op);
    put32(b, WT_FLAGS, (uint32_t)t->flags);
    put32(b, WT_USE_COUNT, (uint32_t)t->use_count);
    for (int i = 0; i < VGPU_MAX_DIMS; i++) {
        put64(b, WT_NE + 8 * i, (uint64_t)t->ne[i]);
        put64(b, WT_NB + 8 * i, t->nb[i]);
    }
    for (int i = 0; i < VGPU_OP_PARAMS_I32; i++)
        put32(b, WT_OP_PARAMS + 4 * i, (uint32_t)t->op_params[i]);
    put64(b, WT_BUFFER, t->buffer);
    put64(b, WT_DATA, t->data);
    for (int i = 0; i < VGPU_MAX_SRC; i++)
        put32(b, WT_SRC + 4 * i, t->src[i]);
    put32(b, WT_VIEW_SRC, t->view_src);
    put32(b, WT_RESERVED, 0);
    put64(b, WT_VIEW_OFFS, t->view_offs);
    put_name(b, WT_NAME, t->name);
    vgpu_enc_raw(enc, b, sizeof(b));
}

bool vgpu_dec_wire_tensor(struct vgpu_dec *dec, struct vgpu_wire_tensor *t)
{
    uint8_t b[VGPU_WIRE_TENSOR_SIZE];
    memset(t, 0, sizeof(*t));
    if (!vgpu_dec_raw(dec, b, sizeof(b)))
        return false;
    t->type = get32(b, WT_TYPE);
    t->op = get32(b, WT_OP);
    t->flags = (int32_t)get32(b, WT_FLAGS);
    t->use_count = (int32_t)get32(b, WT_USE_COUNT);
    for (int i = 0; i < VGPU_MAX_DIMS; i++) {
        t->ne[i] = (int64_t)get64(b, WT_NE + 8 * i);
        t->nb[i] = get64(b, WT_NB + 8 * i);
    }
    for (int i = 0; i < VGPU_OP_PARAMS_I32; i++)
        t->op_params[i] = (int32_t)get32(b, WT_OP_PARAMS + 4 * i);
    t->buffer = get64(b, WT_BUFFER);
    t->data = get64(b, WT_DATA);
    for (int i = 0; i < VGPU_MAX_SRC; i++)
        t->src[i] = get32(b, WT_SRC + 4 * i);
    t->view_src = get32(b, WT_VIEW_SRC);
    t->view_offs = get64(b, WT_VIEW_OFFS);
    get_name(b, WT_NAME, t->name);
    return true;
}

/* ---- baseline rpc tensor -------------------------------------------------------------- */

enum {
    RT_ID = 0, RT_TYPE = 8, RT_BUFFER = 16, RT_NE = 24, RT_NB = 40, RT_OP = 56,
    RT_OP_PARAMS = 60, RT_FLAGS = 124, RT_SRC = 128, RT_VIEW_SRC = 208, RT_VIEW_OFFS = 216,
    RT_DATA = 224, RT_NAME = 232, RT_END = 296,
};
_Static_assert(RT_END + 8 == VGPU_RPC_TENSOR_SIZE, "rpc tensor layout");

void vgpu_rpc_tensor_pack(const struct vgpu_rpc_tensor *t, uint8_t out[VGPU_RPC_TENSOR_SIZE])
{
    /* Padding is zeroed: upstream sends uninitialised bytes there, we never do. */
    memset(out, 0, VGPU_RPC_TENSOR_SIZE);
    put64(out, RT_ID, t->id);
    put32(out, RT_TYPE, t->type);
    put64(out, RT_BUFFER, t->buffer);
    for (int i = 0; i < VGPU_MAX_DIMS; i++) {
        put32(out, RT_NE + 4 * i, t->ne[i]);
        put32(out, RT_NB + 4 * i, t->nb[i]);
    }
    put32(out, RT_OP, t->op);
    for (int i = 0; i < VGPU_OP_PARAMS_I32; i++)
        put32(out, RT_OP_PARAMS + 4 * i, (uint32_t)t->op_params[i]);
    put32(out, RT_FLAGS, (uint32_t)t->flags);
    for (int i = 0; i < VGPU_MAX_SRC; i++)
        put64(out, RT_SRC + 8 * i, t->src[i]);
    put64(out, RT_VIEW_SRC, t->view_src);
    put64(out, RT_VIEW_OFFS, t->view_offs);
    put64(out, RT_DATA, t->data);
    put_name(out, RT_NAME, t->name);
}

void vgpu_rpc_tensor_unpack(const uint8_t in[VGPU_RPC_TENSOR_SIZE], struct vgpu_rpc_tensor *t)
{
    memset(t, 0, sizeof(*t));
    t->id = get64(in, RT_ID);
    t->type = get32(in, RT_TYPE);
    t->buffer = get64(in, RT_BUFFER);
    for (int i = 0; i < VGPU_MAX_DIMS; i++) {
        t->ne[i] = get32(in, RT_NE + 4 * i);
        t->nb[i] = get32(in, RT_NB + 4 * i);
    }
    t->op = get32(in, RT_OP);
    for (int i = 0; i < VGPU_OP_PARAMS_I32; i++)
        t->op_params[i] = (int32_t)get32(in, RT_OP_PARAMS + 4 * i);
    t->flags = (int32_t)get32(in, RT_FLAGS);
    for (int i = 0; i < VGPU_MAX_SRC; i++)
        t->src[i] = get64(in, RT_SRC + 8 * i);
    t->view_src = get64(in, RT_VIEW_SRC);
    t->view_offs = get64(in, RT_VIEW_OFFS);
    t->data = get64(in, RT_DATA);
    get_name(in, RT_NAME, t->name);
}

void vgpu_enc_rpc_tensor(struct vgpu_enc *enc, const struct vgpu_rpc_tensor *t)
{
    uint8_t b[VGPU_RPC_TENSOR_SIZE];
    vgpu_rpc_tensor_pack(t, b);
    vgpu_enc_raw(enc, b, sizeof(b));
}

bool vgpu_dec_rpc_tensor(struct vgpu_dec *dec, struct vgpu_rpc_tensor *t)
{
    uint8_t b[VGPU_RPC_TENSOR_SIZE];
    if (!vgpu_dec_raw(dec, b, sizeof(b))) {
        memset(t, 0, sizeof(*t));
        return false;
    }
    vgpu_rpc_tensor_unpack(b, t);
    return true;
}

uint64_t vgpu_rpc_graph_size(uint64_t n_nodes, uint64_t n_tensors)
{
    /* Counts are u32 on the wire, so these products cannot overflow 64 bits. */
    if (n_nodes > UINT32_MAX || n_tensors > UINT32_MAX)
        return 0;
    return 4 + 8 * n_nodes + 4 + (uint64_t)VGPU_RPC_TENSOR_SIZE * n_tensors;
}

/* ---- raw struct ggml_tensor image ------------------------------------------------------- */

void vgpu_raw_tensor_pack(const struct vgpu_raw_tensor *t, uint8_t out[VGPU_RAW_TENSOR_SIZE])
{
    memset(out, 0, VGPU_RAW_TENSOR_SIZE);
    put32(out, VGPU_RAW_OFF_TYPE, t->type);
    put64(out, VGPU_RAW_OFF_BUFFER, t->buffer);
    for (int i = 0; i < VGPU_MAX_DIMS; i++) {
        put64(out, VGPU_RAW_OFF_NE + 8 * i, (uint64_t)t->ne[i]);
        put64(out, VGPU_RAW_OFF_NB + 8 * i, t->nb[i]);
    }
    put32(out, VGPU_RAW_OFF_OP, t->op);
    for (int i = 0; i < VGPU_OP_PARAMS_I32; i++)
        put32(out, VGPU_RAW_OFF_OP_PARAMS + 4 * i, (uint32_t)t->op_params[i]);
    put32(out, VGPU_RAW_OFF_FLAGS, (uint32_t)t->flags);
    for (int i = 0; i < VGPU_MAX_SRC; i++)
        put64(out, VGPU_RAW_OFF_SRC + 8 * i, t->src[i]);
    put64(out, VGPU_RAW_OFF_VIEW_SRC, t->view_src);
    put64(out, VGPU_RAW_OFF_VIEW_OFFS, t->view_offs);
    put64(out, VGPU_RAW_OFF_DATA, t->data);
    put_name(out, VGPU_RAW_OFF_NAME, t->name);
    put64(out, VGPU_RAW_OFF_EXTRA, t->extra);
}

void vgpu_raw_tensor_unpack(const uint8_t in[VGPU_RAW_TENSOR_SIZE], struct vgpu_raw_tensor *t)
{
    memset(t, 0, sizeof(*t));
    t->type = get32(in, VGPU_RAW_OFF_TYPE);
    t->buffer = get64(in, VGPU_RAW_OFF_BUFFER);
    for (int i = 0; i < VGPU_MAX_DIMS; i++) {
        t->ne[i] = (int64_t)get64(in, VGPU_RAW_OFF_NE + 8 * i);
        t->nb[i] = get64(in, VGPU_RAW_OFF_NB + 8 * i);
    }
    t->op = get32(in, VGPU_RAW_OFF_OP);
    for (int i = 0; i < VGPU_OP_PARAMS_I32; i++)
        t->op_params[i] = (int32_t)get32(in, VGPU_RAW_OFF_OP_PARAMS + 4 * i);
    t->flags = (int32_t)get32(in, VGPU_RAW_OFF_FLAGS);
    for (int i = 0; i < VGPU_MAX_SRC; i++)
        t->src[i] = get64(in, VGPU_RAW_OFF_SRC + 8 * i);
    t->view_src = get64(in, VGPU_RAW_OFF_VIEW_SRC);
    t->view_offs = get64(in, VGPU_RAW_OFF_VIEW_OFFS);
    t->data = get64(in, VGPU_RAW_OFF_DATA);
    get_name(in, VGPU_RAW_OFF_NAME, t->name);
    t->extra = get64(in, VGPU_RAW_OFF_EXTRA);
}

static bool dec_raw_tensor(struct vgpu_dec *dec, struct vgpu_raw_tensor *t)
{
    uint8_t b[VGPU_RAW_TENSOR_SIZE];
    if (!vgpu_dec_raw(dec, b, sizeof(b))) {
        memset(t, 0, sizeof(*t));
        return false;
    }
    vgpu_raw_tensor_unpack(b, t);
    return true;
}

static void enc_raw_tensor(struct vgpu_enc *enc, const struct vgpu_raw_tensor *t)
{
    uint8_t b[VGPU_RAW_TENSOR_SIZE];
    vgpu_raw_tensor_pack(t, b);
    vgpu_enc_raw(enc, b, sizeof(b));
}

bool vgpu_dec_inline_tensor(struct vgpu_dec *dec, struct vgpu_inline_tensor *t)
{
    memset(t, 0, sizeof(*t));
    if (!dec_raw_tensor(dec, &t->op))
        return false;
    if (t->op.buffer) {
        t->has_buffer = true;
        t->buffer_handle = vgpu_dec_u64(dec);
    }
    if (t->op.view_src) {
        t->has_view_src = true;
        dec_raw_tensor(dec, &t->view_src);
    }
    /* The upstream encoder stops at the first NULL src; a full array is bounded here. */
    while (t->n_src < VGPU_MAX_SRC && t->op.src[t->n_src]) {
        if (!dec_raw_tensor(dec, &t->src[t->n_src]))
            break;
        t->n_src++;
    }
    return vgpu_dec_ok(dec);
}

void vgpu_enc_inline_tensor(struct vgpu_enc *enc, const struct vgpu_inline_tensor *t)
{
    enc_raw_tensor(enc, &t->op);
    if (t->op.buffer)
        vgpu_enc_u64(enc, t->buffer_handle);
    if (t->op.view_src)
        enc_raw_tensor(enc, &t->view_src);
    for (int i = 0; i < VGPU_MAX_SRC && t->op.src[i]; i++)
        enc_raw_tensor(enc, &t->src[i]);
}

/* ---- extension graph image ---------------------------------------------------------------- */

uint64_t vgpu_graph_image_size(uint64_t n_tensors, uint64_t n_nodes)
{
    if (n_tensors > UINT32_MAX || n_nodes > UINT32_MAX)
        return 0;
    return VGPU_GRAPH_HEADER_SIZE + (uint64_t)VGPU_WIRE_TENSOR_SIZE * n_tensors + 4 * n_nodes;
}

/* ---- extension messages ---------------------------------------------------------------------- */

void vgpu_enc_hello_request(struct vgpu_enc *enc, const struct vgpu_hello *h)
{
    vgpu_enc_u32(enc, h->ext_version);
    vgpu_enc_u32(enc, h->features);
    vgpu_enc_u64(enc, h->abi_hash);
    vgpu_enc_u32(enc, h->n_ops);
    vgpu_enc_u32(enc, h->n_types);
    vgpu_enc_u32(enc, h->tensor_size);
    vgpu_enc_u32(enc, 0);
}

bool vgpu_dec_hello_request(struct vgpu_dec *dec, struct vgpu_hello *h)
{
    memset(h, 0, sizeof(*h));
    h->ext_version = vgpu_dec_u32(dec);
    h->features = vgpu_dec_u32(dec);
    h->abi_hash = vgpu_dec_u64(dec);
    h->n_ops = vgpu_dec_u32(dec);
    h->n_types = vgpu_dec_u32(dec);
    h->tensor_size = vgpu_dec_u32(dec);
    (void)vgpu_dec_u32(dec);
    return vgpu_dec_ok(dec);
}

void vgpu_enc_hello_reply(struct vgpu_enc *enc, const struct vgpu_hello *h)
{
    vgpu_enc_u32(enc, h->ext_version);
    vgpu_enc_u32(enc, h->features);
    vgpu_enc_u64(enc, h->abi_hash);
    vgpu_enc_u32(enc, h->n_ops);
    vgpu_enc_u32(enc, h->n_types);
    vgpu_enc_u32(enc, h->tensor_size);
    vgpu_enc_u32(enc, h->n_devices);
    vgpu_enc_u32(enc, h->graph_cache_slots);
    vgpu_enc_u32(enc, 0);
    vgpu_enc_u64(enc, h->max_command_size);
}

bool vgpu_dec_hello_reply(struct vgpu_dec *dec, struct vgpu_hello *h)
{
    memset(h, 0, sizeof(*h));
    h->ext_version = vgpu_dec_u32(dec);
    h->features = vgpu_dec_u32(dec);
    h->abi_hash = vgpu_dec_u64(dec);
    h->n_ops = vgpu_dec_u32(dec);
    h->n_types = vgpu_dec_u32(dec);
    h->tensor_size = vgpu_dec_u32(dec);
    h->n_devices = vgpu_dec_u32(dec);
    h->graph_cache_slots = vgpu_dec_u32(dec);
    (void)vgpu_dec_u32(dec);
    h->max_command_size = vgpu_dec_u64(dec);
    return vgpu_dec_ok(dec);
}

void vgpu_enc_device_info(struct vgpu_enc *enc, const struct vgpu_device_info *d)
{
    vgpu_enc_string(enc, d->name);
    vgpu_enc_string(enc, d->description);
    vgpu_enc_u32(enc, d->type);
    vgpu_enc_u32(enc, d->caps);
    vgpu_enc_u64(enc, d->mem_free);
    vgpu_enc_u64(enc, d->mem_total);
    vgpu_enc_u64(enc, d->buft_id);
    vgpu_enc_string(enc, d->buft_name);
    vgpu_enc_u64(enc, d->alignment);
    vgpu_enc_u64(enc, d->max_size);
    vgpu_enc_u32(enc, d->buft_flags);
}

bool vgpu_dec_device_info(struct vgpu_dec *dec, struct vgpu_device_info *d)
{
    memset(d, 0, sizeof(*d));
    vgpu_dec_string(dec, d->name, sizeof(d->name));
    vgpu_dec_string(dec, d->description, sizeof(d->description));
    d->type = vgpu_dec_u32(dec);
    d->caps = vgpu_dec_u32(dec);
    d->mem_free = vgpu_dec_u64(dec);
    d->mem_total = vgpu_dec_u64(dec);
    d->buft_id = vgpu_dec_u64(dec);
    vgpu_dec_string(dec, d->buft_name, sizeof(d->buft_name));
    d->alignment = vgpu_dec_u64(dec);
    d->max_size = vgpu_dec_u64(dec);
    d->buft_flags = vgpu_dec_u32(dec);
    return vgpu_dec_ok(dec);
}

void vgpu_enc_transfer(struct vgpu_enc *enc, const struct vgpu_transfer *x)
{
    vgpu_enc_wire_tensor(enc, &x->tensor);
    vgpu_enc_u64(enc, x->offset);
    vgpu_enc_u64(enc, x->size);
    vgpu_enc_u64(enc, x->n_copies);
    vgpu_enc_u64(enc, x->stride_tensor);
    vgpu_enc_u64(enc, x->stride_data);
    vgpu_enc_u32(enc, x->res_id);
    vgpu_enc_u32(enc, 0);
    vgpu_enc_u64(enc, x->res_offset);
}

bool vgpu_dec_transfer(struct vgpu_dec *dec, struct vgpu_transfer *x)
{
    memset(x, 0, sizeof(*x));
    vgpu_dec_wire_tensor(dec, &x->tensor);
    x->offset = vgpu_dec_u64(dec);
    x->size = vgpu_dec_u64(dec);
    x->n_copies = vgpu_dec_u64(dec);
    x->stride_tensor = vgpu_dec_u64(dec);
    x->stride_data = vgpu_dec_u64(dec);
    x->res_id = vgpu_dec_u32(dec);
    (void)vgpu_dec_u32(dec);
    x->res_offset = vgpu_dec_u64(dec);
    return vgpu_dec_ok(dec);
}

void vgpu_enc_graph_request(struct vgpu_enc *enc, const struct vgpu_graph_request *g)
{
    vgpu_enc_u32(enc, g->dev);
    vgpu_enc_u32(enc, g->flags);
    vgpu_enc_u64(enc, g->uid);
    vgpu_enc_u32(enc, g->res_id);
    vgpu_enc_u32(enc, 0);
    vgpu_enc_u64(enc, g->res_offset);
    vgpu_enc_u64(enc, g->size);
}

bool vgpu_dec_graph_request(struct vgpu_dec *dec, struct vgpu_graph_request *g)
{
    memset(g, 0, sizeof(*g));
    g->dev = vgpu_dec_u32(dec);
    g->flags = vgpu_dec_u32(dec);
    g->uid = vgpu_dec_u64(dec);
    g->res_id = vgpu_dec_u32(dec);
    (void)vgpu_dec_u32(dec);
    g->res_offset = vgpu_dec_u64(dec);
    g->size = vgpu_dec_u64(dec);
    return vgpu_dec_ok(dec);
}
