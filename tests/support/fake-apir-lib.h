/*
 * A scripted APIR library for the server tests (fake-apir-lib.c). It implements the three
 * APIR entry points; what FORWARD does is chosen by the command id below. Shared between the
 * library and the tests so that both agree on ids and layouts.
 */
#ifndef VGPU_TEST_FAKE_APIR_LIB_H
#define VGPU_TEST_FAKE_APIR_LIB_H

#include <stddef.h>
#include <stdint.h>

enum fake_apir_cmd {
    /* payload copied into the reply; handler code 0 (VGPU_INVALID if it does not fit) */
    FAKE_CMD_ECHO = 1000,
    /* payload u32 code: returns that handler code, writes nothing */
    FAKE_CMD_RETURN = 1001,
    /* payload u32 res_id: reply u32 found (get_shmem_ptr != NULL), i32 get_shmem_size result,
     * u64 size, u64 fake_checksum of the whole resource (0 if unknown) */
    FAKE_CMD_RESOURCE = 1002,
    /* payload u32 ms: sleeps, then replies like FAKE_CMD_INFO */
    FAKE_CMD_SLEEP = 1003,
    /* abort(): crashes the process that runs the library */
    FAKE_CMD_ABORT = 1004,
    /* payload u32 ctx_id (0 = the caller's), string key: reply u32 present, string value */
    FAKE_CMD_CONFIG = 1005,
    /* reports a reply end one byte past the reply area */
    FAKE_CMD_BAD_AFTER = 1006,
    /* reply u32 ctx_id, u32 pid, u32 live contexts in this process, u32 callbacks size */
    FAKE_CMD_INFO = 1007,
    /* payload u32 res_id, u32 byte: fills the resource with byte through get_shmem_ptr */
    FAKE_CMD_FILL = 1008,
};

/*
 * Besides these, EXT_HELLO (64) and EXT_DEVICE_INFO (65) describe two fake devices, so that
 * --list-devices can be tested without a GGML backend:
 *   VirtGPU0: FakeDev0 - Fake device zero, 1024/2048 MiB, buffer type FAKE0, zero-copy
 *   VirtGPU1: FakeDev1 - Fake device one, 512/512 MiB, buffer type FAKE1
 */
#define FAKE_N_DEVICES 2u

/* Environment: apir_backend_initialize returns this code (decimal) instead of succeeding. */
#define FAKE_ENV_INIT_RET "FAKE_APIR_INIT_RET"
/* Environment: apir_backend_deinit appends "deinit <ctx_id>\n" to this file. */
#define FAKE_ENV_DEINIT_LOG "FAKE_APIR_DEINIT_LOG"

/* The checksum FAKE_CMD_RESOURCE reports: FNV-1a-64 of the bytes. */
static inline uint64_t fake_checksum(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#endif /* VGPU_TEST_FAKE_APIR_LIB_H */
