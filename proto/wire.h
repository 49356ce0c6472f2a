/*
 * Tensor and graph images and the multi-field extension messages, shared by guest and host
 * so that the two sides cannot disagree on a layout (docs/PROTOCOL.md §3.1, §3.2, §4).
 *
 * Every image is packed and unpacked field by field at fixed offsets; nothing is cast from
 * wire bytes, so a malformed image can only produce wrong values, which the host validates.
 * This layer knows no ggml types: the GGML_MAX_* values below are those of ggml 0.25.1, and
 * the guest and host check them against their ggml headers at compile time.
 */
#ifndef VGPU_PROTO_WIRE_H
#define VGPU_PROTO_WIRE_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "ext.h"

#define VGPU_MAX_DIMS       4
#define VGPU_MAX_SRC        10
#define VGPU_OP_PARAMS_I32  16 /* GGML_MAX_OP_PARAMS / sizeof(int32_t) */
#define VGPU_MAX_NAME       64

/* ---- extension wire tensor (280 bytes) ------------------------------------------------- */

#define VGPU_WIRE_TENSOR_SIZE 280u

struct vgpu_wire_tensor {
    uint32_t type;
    uint32_t op;
    int32_t  flags;
    int32_t  use_count;
    int64_t  ne[VGPU_MAX_DIMS];
    uint64_t nb[VGPU_MAX_DIMS];
    int32_t  op_params[VGPU_OP_PARAMS_I32];
    uint64_t buffer;               /* opaque buffer id, 0 = none */
    uint64_t data;                 /* offset from the buffer's start */
    uint32_t src[VGPU_MAX_SRC];    /* 1 + index of an earlier list entry, 0 = none */
    uint32_t view_src;             /* same encoding */
    uint64_t view_offs;
    char     name[VGPU_MAX_NAME];  /* always NUL-terminated after decoding */
};

void vgpu_enc_wire_tensor(struct vgpu_enc *enc, const struct vgpu_wire_tensor *t);
/* Decodes one wire tensor; false (and a zeroed *t) on overrun. Forces name's NUL. */
bool vgpu_dec_wire_tensor(struct vgpu_dec *dec, struct vgpu_wire_tensor *t);

/* ---- baseline rpc tensor (304 bytes, APIR 0.2) ------------------------------------------- */

#define VGPU_RPC_TENSOR_SIZE 304u

struct vgpu_rpc_tensor {
    uint64_t id;
    uint32_t type;
    uint64_t buffer;
    uint32_t ne[VGPU_MAX_DIMS];
    uint32_t nb[VGPU_MAX_DIMS];
    uint32_t op;
    int32_t  op_params[VGPU_OP_PARAMS_I32];
    int32_t  flags;
    uint64_t src[VGPU_MAX_SRC];
    uint64_t view_src;
    uint64_t view_offs;
    uint64_t data;
    char     name[VGPU_MAX_NAME];
};

void vgpu_rpc_tensor_pack(const struct vgpu_rpc_tensor *t, uint8_t out[VGPU_RPC_TENSOR_SIZE]);
void vgpu_rpc_tensor_unpack(const uint8_t in[VGPU_RPC_TENSOR_SIZE], struct vgpu_rpc_tensor *t);
void vgpu_enc_rpc_tensor(struct vgpu_enc *enc, const struct vgpu_rpc_tensor *t);
bool vgpu_dec_rpc_tensor(struct vgpu_dec *dec, struct vgpu_rpc_tensor *t);

/* Baseline graph image: u32 n_nodes | u64 ids[n_nodes] | u32 n_tensors | rpc[n_tensors]. */
/* Bytes of a baseline graph image, or 0 if the counts overflow. */
uint64_t vgpu_rpc_graph_size(uint64_t n_nodes, uint64_t n_tensors);

/* ---- raw struct ggml_tensor image (baseline SUPPORTS_OP / GET_ALLOC_SIZE, 336 bytes) ----- */

#define VGPU_RAW_TENSOR_SIZE 336u

/* Field offsets of struct ggml_tensor in ggml 0.25.1 (checked against offsetof by users). */
#define VGPU_RAW_OFF_TYPE      0u
#define VGPU_RAW_OFF_BUFFER    8u
#define VGPU_RAW_OFF_NE        16u
#define VGPU_RAW_OFF_NB        48u
#define VGPU_RAW_OFF_OP        80u
#define VGPU_RAW_OFF_OP_PARAMS 84u
#define VGPU_RAW_OFF_FLAGS     148u
#define VGPU_RAW_OFF_SRC       152u
#define VGPU_RAW_OFF_VIEW_SRC  232u
#define VGPU_RAW_OFF_VIEW_OFFS 240u
#define VGPU_RAW_OFF_DATA      248u
#define VGPU_RAW_OFF_NAME      256u
#define VGPU_RAW_OFF_EXTRA     320u

/* The plain fields of a raw image; pointer fields are kept only as "present" values. */
struct vgpu_raw_tensor {
    uint32_t type;
    uint64_t buffer;
    int64_t  ne[VGPU_MAX_DIMS];
    uint64_t nb[VGPU_MAX_DIMS];
    uint32_t op;
    int32_t  op_params[VGPU_OP_PARAMS_I32];
    int32_t  flags;
    uint64_t src[VGPU_MAX_SRC];
    uint64_t view_src;
    uint64_t view_offs;
    uint64_t data;
    char     name[VGPU_MAX_NAME];
    uint64_t extra;
};

void vgpu_raw_tensor_pack(const struct vgpu_raw_tensor *t, uint8_t out[VGPU_RAW_TENSOR_SIZE]);
void vgpu_raw_tensor_unpack(const uint8_t in[VGPU_RAW_TENSOR_SIZE], struct vgpu_raw_tensor *t);

/*
 * The inline tensor sequence: op image, [u64 buffer handle], [view_src image],
 * src images up to the first NULL src (at most VGPU_MAX_SRC).
 */
struct vgpu_inline_tensor {
    struct vgpu_raw_tensor op;
    bool                   has_buffer;
    uint64_t               buffer_handle;
    bool                   has_view_src;
    struct vgpu_raw_tensor view_src;
    int                    n_src;                 /* leading non-NULL srcs decoded */
    struct vgpu_raw_tensor src[VGPU_MAX_SRC];
};

/* Decodes an inline tensor sequence; false (fatal) on overrun. */
bool vgpu_dec_inline_tensor(struct vgpu_dec *dec, struct vgpu_inline_tensor *t);
/*
 * Encodes one: the op image (with its own pointer fields as given), then the optional
 * parts as the op's non-zero buffer / view_src / src[i] fields announce them.
 */
void vgpu_enc_inline_tensor(struct vgpu_enc *enc, const struct vgpu_inline_tensor *t);

/* ---- extension graph image ----------------------------------------------------------------- */

#define VGPU_GRAPH_HEADER_SIZE 16u

struct vgpu_graph_header {
    uint32_t magic;
    uint32_t n_tensors;
    uint32_t n_nodes;
    uint32_t flags;
};

/* Bytes of a graph image with these counts, or 0 if they overflow. */
uint64_t vgpu_graph_image_size(uint64_t n_tensors, uint64_t n_nodes);

/* ---- extension messages with several fields ---------------------------------------------- */

struct vgpu_hello {
    uint32_t ext_version;
    uint32_t features;
    uint64_t abi_hash;
    uint32_t n_ops;
    uint32_t n_types;
    uint32_t tensor_size;
    /* reply only */
    uint32_t n_devices;
    uint32_t graph_cache_slots;
    uint64_t max_command_size;
};

void vgpu_enc_hello_request(struct vgpu_enc *enc, const struct vgpu_hello *h);
bool vgpu_dec_hello_request(struct vgpu_dec *dec, struct vgpu_hello *h);
void vgpu_enc_hello_reply(struct vgpu_enc *enc, const struct vgpu_hello *h);
bool vgpu_dec_hello_reply(struct vgpu_dec *dec, struct vgpu_hello *h);

struct vgpu_device_info {
    char     name[VGPU_MAX_NAME_LEN];
    char     description[VGPU_MAX_NAME_LEN];
    uint32_t type;
    uint32_t caps;
    uint64_t mem_free;
    uint64_t mem_total;
    uint64_t buft_id;
    char     buft_name[VGPU_MAX_NAME_LEN];
    uint64_t alignment;
    uint64_t max_size;
    uint32_t buft_flags;
};

void vgpu_enc_device_info(struct vgpu_enc *enc, const struct vgpu_device_info *d);
bool vgpu_dec_device_info(struct vgpu_dec *dec, struct vgpu_device_info *d);

/* EXT_TENSOR_SET / EXT_TENSOR_GET request (without inline data). */
struct vgpu_transfer {
    struct vgpu_wire_tensor tensor;
    uint64_t offset;
    uint64_t size;
    uint64_t n_copies;
    uint64_t stride_tensor;
    uint64_t stride_data;
    uint32_t res_id;
    uint64_t res_offset;
};

void vgpu_enc_transfer(struct vgpu_enc *enc, const struct vgpu_transfer *x);
bool vgpu_dec_transfer(struct vgpu_dec *dec, struct vgpu_transfer *x);

/* EXT_GRAPH_COMPUTE / EXT_GRAPH_OPTIMIZE request (without an inline image). */
struct vgpu_graph_request {
    uint32_t dev;
    uint32_t flags;
    uint64_t uid;
    uint32_t res_id;
    uint64_t res_offset;
    uint64_t size;
};

void vgpu_enc_graph_request(struct vgpu_enc *enc, const struct vgpu_graph_request *g);
bool vgpu_dec_graph_request(struct vgpu_dec *dec, struct vgpu_graph_request *g);

#endif /* VGPU_PROTO_WIRE_H */
