/*
 * Messages of the unix-socket transport (docs/PROTOCOL.md §1), shared by the guest
 * transport and ggml-virtgpu-server. Each message is one SOCK_SEQPACKET datagram that
 * starts with {u32 type, u32 size}; bodies use the slot codec.
 */
#ifndef VGPU_PROTO_UNIX_H
#define VGPU_PROTO_UNIX_H

#include <stdint.h>

#define VGPU_UNIX_VERSION 1u
#define VGPU_UNIX_HEADER_SIZE 8u

enum vgpu_unix_msg_type {
    VGPU_UNIX_HELLO            = 0x01,
    VGPU_UNIX_RESOURCE_CREATE  = 0x02,
    VGPU_UNIX_RESOURCE_DESTROY = 0x03,
    VGPU_UNIX_SUBMIT           = 0x04,
    VGPU_UNIX_HELLO_REPLY      = 0x81,
    VGPU_UNIX_RESOURCE_REPLY   = 0x82,
    VGPU_UNIX_FATAL            = 0xff,
};

/* Body sizes of the fixed-size messages (header excluded). */
#define VGPU_UNIX_HELLO_BODY            8u  /* u32 version, u32 flags */
#define VGPU_UNIX_HELLO_REPLY_BODY      16u /* u32 version, i32 status, u32 ctx_id, u32 max_cmd */
#define VGPU_UNIX_RESOURCE_CREATE_BODY  16u /* u32 res_id, u32 flags, u64 size (+ 1 fd) */
#define VGPU_UNIX_RESOURCE_REPLY_BODY   8u  /* u32 res_id, i32 status */
#define VGPU_UNIX_RESOURCE_DESTROY_BODY 8u  /* u32 res_id, u32 pad */
#define VGPU_UNIX_FATAL_MAX_TEXT        200u

/* Default bound on one SUBMIT message (server flag --max-command-size). */
#define VGPU_UNIX_DEFAULT_MAX_COMMAND (1u << 20)

#endif /* VGPU_PROTO_UNIX_H */
