/*
 * APIR framing, return codes and the runtime <-> library ABI.
 *
 * These values are fixed by virglrenderer's APIR component and by llama.cpp v0.5.0's
 * ggml-virtgpu (docs/PROTOCOL.md §2, §3); changing any of them breaks interoperability.
 */
#ifndef VGPU_PROTO_APIR_H
#define VGPU_PROTO_APIR_H

#include <stdint.h>

/* Protocol version a guest announces in HANDSHAKE (v0.5.0: 0.2). */
#define APIR_PROTOCOL_MAJOR 0
#define APIR_PROTOCOL_MINOR 2
#define APIR_HANDSHAKE_MAGIC 0xab1eu

/* Command types (cmd_type of the 12-byte header). */
enum apir_command_type {
    APIR_COMMAND_TYPE_HANDSHAKE   = 0,
    APIR_COMMAND_TYPE_LOADLIBRARY = 1,
    APIR_COMMAND_TYPE_FORWARD     = 2,
    APIR_COMMAND_TYPE_COUNT       = 3,
};
/* Offset added to cmd_type on virglrenderer's Venus route (DRM transport, capset 4). */
#define APIR_VENUS_COMMAND_TYPE_OFFSET 331

#define APIR_HEADER_SIZE 12u
/* The reply word sits at offset 0 of the reply resource, the reply payload at offset 4. */
#define APIR_REPLY_PAYLOAD_OFFSET 4u

/* LOADLIBRARY results. */
enum apir_load_library_code {
    APIR_LOAD_LIBRARY_SUCCESS                        = 0,
    APIR_LOAD_LIBRARY_HYPERCALL_INITIALIZATION_ERROR = 1,
    APIR_LOAD_LIBRARY_ALREADY_LOADED                 = 2,
    APIR_LOAD_LIBRARY_CFG_KEY_MISSING                = 3,
    APIR_LOAD_LIBRARY_CANNOT_OPEN                    = 4,
    APIR_LOAD_LIBRARY_SYMBOL_MISSING                 = 5,
    APIR_LOAD_LIBRARY_INIT_BASE_INDEX                = 6, /* 6 + library init code */
};

/* FORWARD results as the runtime reports them. */
enum apir_forward_code {
    APIR_FORWARD_SUCCESS                = 0,
    APIR_FORWARD_NO_DISPATCH_FN         = 1,
    APIR_FORWARD_TIMEOUT                = 2,
    APIR_FORWARD_FAILED_TO_SYNC_STREAMS = 3,
    APIR_FORWARD_BASE_INDEX             = 4, /* 4 + handler code (vgpu_status) */
};

/* Library init codes (apir_backend_initialize returns 6 + one of these, or 3/4/5 itself). */
enum apir_backend_init_code {
    APIR_BACKEND_INITIALIZE_SUCCESS             = 0,
    APIR_BACKEND_INITIALIZE_BACKEND_REG_FAILED  = 6,
    APIR_BACKEND_INITIALIZE_ALREADY_INITED      = 7,
    APIR_BACKEND_INITIALIZE_NO_DEVICE           = 8,
    APIR_BACKEND_INITIALIZE_BACKEND_INIT_FAILED = 9,
};

/* Baseline FORWARD command ids (APIR 0.2). */
enum apir_command_id {
    APIR_CMD_DEVICE_GET_DEVICE_COUNT    = 0,
    APIR_CMD_DEVICE_GET_COUNT           = 1,
    APIR_CMD_DEVICE_GET_NAME            = 2,
    APIR_CMD_DEVICE_GET_DESCRIPTION     = 3,
    APIR_CMD_DEVICE_GET_TYPE            = 4,
    APIR_CMD_DEVICE_GET_MEMORY          = 5,
    APIR_CMD_DEVICE_SUPPORTS_OP         = 6,
    APIR_CMD_DEVICE_GET_BUFFER_TYPE     = 7,
    APIR_CMD_DEVICE_GET_PROPS           = 8,
    APIR_CMD_DEVICE_BUFFER_FROM_PTR     = 9,
    APIR_CMD_BUFFER_TYPE_GET_NAME       = 10,
    APIR_CMD_BUFFER_TYPE_GET_ALIGNMENT  = 11,
    APIR_CMD_BUFFER_TYPE_GET_MAX_SIZE   = 12,
    APIR_CMD_BUFFER_TYPE_IS_HOST        = 13,
    APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER   = 14,
    APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE = 15,
    APIR_CMD_BUFFER_GET_BASE            = 16,
    APIR_CMD_BUFFER_SET_TENSOR          = 17,
    APIR_CMD_BUFFER_GET_TENSOR          = 18,
    APIR_CMD_BUFFER_CPY_TENSOR          = 19,
    APIR_CMD_BUFFER_CLEAR               = 20,
    APIR_CMD_BUFFER_FREE_BUFFER         = 21,
    APIR_CMD_BACKEND_GRAPH_COMPUTE      = 22,
    APIR_CMD_BASELINE_COUNT             = 23,
};

/* Handler result codes (FORWARD reports 4 + code). docs/PROTOCOL.md §2.1. */
enum vgpu_status {
    VGPU_OK              = 0,
    VGPU_INVALID         = 1,
    VGPU_UNKNOWN_COMMAND = 6,
    VGPU_FATAL           = 7,
    VGPU_QUOTA           = 8,
    VGPU_NO_MEMORY       = 9,
    VGPU_ABI_MISMATCH    = 10,
    VGPU_UNSUPPORTED     = 11,
    VGPU_NOT_FOUND       = 12,
    VGPU_BACKEND         = 13,
};

/* Human-readable name of a handler code (never NULL). */
const char *vgpu_status_name(uint32_t code);

/*
 * The runtime <-> APIR library ABI. The layout of virgl_apir_callbacks is virglrenderer's
 * and must not change. Runtimes that know resource sizes pass vgpu_apir_callbacks instead
 * and announce it with config key VGPU_CFG_CALLBACKS_SIZE (decimal sizeof).
 */
struct virgl_apir_callbacks {
    const char *(*get_config)(uint32_t ctx_id, const char *key);
    void *(*get_shmem_ptr)(uint32_t ctx_id, uint32_t res_id);
};

struct vgpu_apir_callbacks {
    struct virgl_apir_callbacks base;
    /* Size of resource res_id in *size; returns 0 if the resource is known, -1 otherwise. */
    int (*get_shmem_size)(uint32_t ctx_id, uint32_t res_id, uint64_t *size);
};

#define VGPU_CFG_CALLBACKS_SIZE "apir.callbacks.size"
#define VGPU_CFG_LIBRARY_PATH   "ggml.library.path"
#define VGPU_CFG_LIBRARY_REG    "ggml.library.reg"
#define VGPU_CFG_QUOTA_BYTES    "ggml-virtgpu.quota.buffer-bytes"
#define VGPU_CFG_QUOTA_BUFFERS  "ggml-virtgpu.quota.buffers"
#define VGPU_CFG_QUOTA_NODES    "ggml-virtgpu.quota.graph-nodes"
#define VGPU_CFG_QUOTA_COMMAND  "ggml-virtgpu.quota.command-bytes"
#define VGPU_CFG_LOG_LEVEL      "ggml-virtgpu.log-level"
#define VGPU_CFG_TRACE          "ggml-virtgpu.trace" /* test facility, host/trace.h */
/* "0": no repacked weight copies on ggml-cpu devices (host/cpu-repack.h); anything else: on */
#define VGPU_CFG_CPU_REPACK     "ggml-virtgpu.cpu-repack"
/* ggml-rpc backend only: comma-separated endpoints whose devices the context serves */
#define VGPU_CFG_RPC_SERVERS    "ggml-virtgpu.rpc-servers"

typedef uint32_t (*apir_backend_initialize_fn)(uint32_t ctx_id, struct virgl_apir_callbacks *cbs);
typedef uint32_t (*apir_backend_dispatcher_fn)(uint32_t ctx_id, struct virgl_apir_callbacks *cbs,
                                               uint32_t cmd_id, char *dec_cur, const char *dec_end,
                                               char *enc_cur, const char *enc_end,
                                               char **enc_cur_after);
typedef void (*apir_backend_deinit_fn)(uint32_t ctx_id);

#endif /* VGPU_PROTO_APIR_H */
