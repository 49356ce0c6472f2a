/*
 * Extension FORWARD commands (ids 64+), negotiated by EXT_HELLO. docs/PROTOCOL.md §4 gives
 * every request and reply layout; the encoders/decoders that both sides share are in wire.h.
 */
#ifndef VGPU_PROTO_EXT_H
#define VGPU_PROTO_EXT_H

/*
 * Extension version. 2 adds EXT_BATCH, the host-buffer commands and the SKIPPED code; a
 * guest uses them only when EXT_HELLO answers at least 2 (a version-1 host treats their ids
 * as unknown commands, which is fatal). 3 adds the EXT_BATCH flag VGPU_BATCH_NO_WAIT (a
 * version-2 host refuses unknown batch flags).
 */
#define VGPU_EXT_VERSION 3u
#define VGPU_EXT_VERSION_BATCH 2u
#define VGPU_EXT_VERSION_NO_WAIT 3u

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
    /* version 2 */
    VGPU_CMD_EXT_BATCH                 = 82,
    VGPU_CMD_EXT_HOST_BUFFER_REGISTER   = 83,
    VGPU_CMD_EXT_HOST_BUFFER_UNREGISTER = 84,
    VGPU_CMD_EXT_END                    = 85, /* one past the last id */
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

/*
 * Wire-only bit of a wire tensor's `flags` (ggml's own flags use the low bits): the tensor lies in
 * a buffer the application marked GGML_BACKEND_BUFFER_USAGE_WEIGHTS. A hint, never trusted for
 * safety: a CPU host may compute matrix products on a repacked copy of such a tensor
 * (docs/PROTOCOL.md §4.1). Hosts that do not know it ignore it with the other unknown bits.
 */
#define VGPU_TENSOR_FLAG_WEIGHTS (1 << 30)

/* EXT_BUFFER_ALLOC request and reply flags. */
#define VGPU_ALLOC_ZERO_COPY (1u << 0)

/* EXT_GRAPH_COMPUTE reply `result`. */
#define VGPU_GRAPH_COMPUTED   0u
#define VGPU_GRAPH_NOT_CACHED 1u

/*
 * Extension handler code (docs/PROTOCOL.md §4.4): not run, because an earlier EXT_BATCH
 * stopped before its end and the context waits for an EXT_BATCH with VGPU_BATCH_RESUME.
 */
#define VGPU_SKIPPED 14u

/*
 * EXT_BATCH (docs/PROTOCOL.md §4.4). Request: u32 n_entries, u32 flags, then per entry
 * u32 cmd, u32 size, size bytes (a multiple of 4). Reply: u32 n_run, u32 status, then per
 * entry run u32 code, u32 reply_size, reply bytes padded to 4.
 */
#define VGPU_BATCH_RESUME       (1u << 0) /* request flag: clears the stopped state first */
/*
 * Request flag: the reply need not wait for the computes and the copies of pinned host buffer
 * memory that the batch queued (ggml's async API keeps those valid until a synchronize); the
 * host still completes, before replying, every copy that reads the request or touches other
 * guest memory (PROTOCOL.md §4.4 "Ordering"). The guest's next command without the flag waits
 * for all.
 */
#define VGPU_BATCH_NO_WAIT      (1u << 1)
#define VGPU_BATCH_MAX_ENTRIES  4096u
#define VGPU_BATCH_HEADER_SIZE  8u
#define VGPU_BATCH_ENTRY_HEADER 8u
/* Reply status. */
#define VGPU_BATCH_ALL_RUN 0u /* every entry ran and answered OK */
/*
 * Stopped after entry n_run - 1 (it failed, or recomputed a graph the host does not hold)
 * or before entry n_run (no reply room): the context now answers VGPU_SKIPPED to everything
 * until an EXT_BATCH with VGPU_BATCH_RESUME.
 */
#define VGPU_BATCH_STOPPED 1u

/* EXT_HOST_BUFFER_REGISTER reply flags. */
#define VGPU_HOST_BUFFER_PINNED (1u << 0)

/* Graph image magic, "VGG1" little-endian. */
#define VGPU_GRAPH_MAGIC 0x31474756u

/* Upper bounds that the protocol itself fixes (quotas may be lower). */
#define VGPU_MAX_NAME_LEN     256u      /* device / buffer-type names and descriptions */
#define VGPU_MAX_TENSOR_LIST  11u       /* an op and its GGML_MAX_SRC sources */

#endif /* VGPU_PROTO_EXT_H */
