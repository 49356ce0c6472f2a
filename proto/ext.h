/*
 * Extension FORWARD commands (ids 64+), negotiated by EXT_HELLO. docs/PROTOCOL.md §4 gives
 * every request and reply layout; the encoders/decoders that both sides share are in wire.h.
 */
#ifndef VGPU_PROTO_EXT_H
#define VGPU_PROTO_EXT_H

#define VGPU_EXT_VERSION 1u

enum vgpu_ext_command_id {
    VGPU_CMD_EXT_HELLO          = 64,
    VGPU_CMD_EXT_DEVICE_INFO    = 65,
    VGPU_CMD_EXT_DEVICE_MEMORY  = 66,
    VGPU_CMD_EXT_BUFFER_ALLOC   = 67,
    VGPU_CMD_EXT_BUFFER_FREE    = 68,
    VGPU_CMD_EXT_BUFFER_CLEAR   = 69,
    VGPU_CMD_EXT_TENSOR_SET     = 70,
    VGPU_CMD_EXT_TENSOR_GET     = 71,
    VGPU_CMD_EXT_TENSOR_MEMSET  = 72,
    VGPU_CMD_EXT_TENSOR_COPY    = 73,
    VGPU_CMD_EXT_TENSOR_INIT    = 74,
    VGPU_CMD_EXT_GET_ALLOC_SIZE = 75,
    VGPU_CMD_EXT_SUPPORTS_OP    = 76,
    VGPU_CMD_EXT_OFFLOAD_OP     = 77,
    VGPU_CMD_EXT_GRAPH_COMPUTE  = 78,
    VGPU_CMD_EXT_GRAPH_OPTIMIZE = 79,
    VGPU_CMD_EXT_SET_N_THREADS  = 80,
    VGPU_CMD_EXT_NOP            = 81,
    VGPU_CMD_EXT_END            = 82, /* one past the last id */
};
#define VGPU_CMD_EXT_FIRST VGPU_CMD_EXT_HELLO

/* EXT_DEVICE_INFO caps bits (ggml_backend_dev_caps). */
#define VGPU_CAP_ASYNC                (1u << 0)
#define VGPU_CAP_HOST_BUFFER          (1u << 1)
#define VGPU_CAP_BUFFER_FROM_HOST_PTR (1u << 2)
#define VGPU_CAP_EVENTS               (1u << 3)
#define VGPU_CAP_MMAP_SUPPORT         (1u << 4)

/* EXT_DEVICE_INFO buft_flags bits. */
#define VGPU_BUFT_IS_HOST        (1u << 0)
#define VGPU_BUFT_ZERO_COPY      (1u << 1)
#define VGPU_BUFT_NEEDS_INIT     (1u << 2)
#define VGPU_BUFT_ALLOC_SIZE     (1u << 3)
#define VGPU_BUFT_GRAPH_OPTIMIZE (1u << 4)

/* EXT_BUFFER_ALLOC request and reply flags. */
#define VGPU_ALLOC_ZERO_COPY (1u << 0)

/* EXT_GRAPH_COMPUTE reply `result`. */
#define VGPU_GRAPH_COMPUTED   0u
#define VGPU_GRAPH_NOT_CACHED 1u

/* Graph image magic, "VGG1" little-endian. */
#define VGPU_GRAPH_MAGIC 0x31474756u

/* Upper bounds that the protocol itself fixes (quotas may be lower). */
#define VGPU_MAX_NAME_LEN     256u      /* device / buffer-type names and descriptions */
#define VGPU_MAX_TENSOR_LIST  11u       /* an op and its GGML_MAX_SRC sources */

#endif /* VGPU_PROTO_EXT_H */
