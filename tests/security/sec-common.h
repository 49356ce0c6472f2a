/*
 * Shared helpers of the malicious-message regression suite (tests/security/test-holes-*.c,
 * test-quotas.c). Everything drives the real host library through its APIR ABI with the fake
 * runtime of tests/support/apir-harness.[ch] (real memfd resources followed by guard pages,
 * the real CPU backend), in both protocols:
 *
 *   baseline  - APIR 0.2 ids 0..22, the byte layouts an unmodified llama.cpp v0.5.0 guest sends
 *   extension - EXT_HELLO first, then ids 64+
 *
 * The helpers here use cmocka assertions (they fail the running test), except where noted.
 * Expected values come from docs/PROTOCOL.md, ggml's public API or plain arithmetic, never
 * from the library under test.
 */
#ifndef VGPU_TESTS_SEC_COMMON_H
#define VGPU_TESTS_SEC_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "apir-harness.h"
#include "ext.h"
#include "ggml.h"
#include "wire.h"

/* ---- contexts ------------------------------------------------------------------------------- */

/* A fresh, initialised context with a new ctx_id; `ext`: EXT_HELLO done. Never NULL. */
struct apir_harness *sec_open(bool ext);
/* Same with config keys (NULL-terminated key, value, key, value, ..., NULL). */
struct apir_harness *sec_open_cfg(bool ext, const char *const *kv);
/* Closes a context; fails the test if any reply carried a host address. */
void sec_close(struct apir_harness *h);

/*
 * "The host survived and the context still works": a no-op command, then a real round trip
 * (allocate a buffer, upload two vectors, compute their sum on the CPU backend, read it back,
 * compare, free), in the context's protocol.
 */
void sec_check_alive(struct apir_harness *h, bool ext);
/*
 * "A protocol violation: the context is fatal but the process survives": the next command
 * answers VGPU_FATAL with no reply bytes; the context is closed; a brand-new context works.
 */
void sec_check_fatal_then_new(struct apir_harness *h, bool ext);

/* ---- baseline (APIR 0.2) helpers ------------------------------------------------------------ */

/* DEVICE_GET_BUFFER_TYPE. */
uint64_t sec_bl_buft(struct apir_harness *h);
/* BUFFER_TYPE_ALLOC_BUFFER of `size`; the handler code; *id = the buffer id (0 on failure). */
uint32_t sec_bl_alloc(struct apir_harness *h, uint64_t size, uint64_t *id);
/* Same, asserting success. */
uint64_t sec_bl_alloc_ok(struct apir_harness *h, uint64_t size);
/* BUFFER_FREE_BUFFER. */
uint32_t sec_bl_free(struct apir_harness *h, uint64_t id);
/* An rpc tensor of contiguous `type` [ne0, ne1, 1, 1] at offset `data` of `buffer`. */
struct vgpu_rpc_tensor sec_rpc(uint64_t id, uint32_t type, uint64_t buffer, uint32_t ne0, uint32_t ne1,
                               uint64_t data);
/* BUFFER_SET_TENSOR / BUFFER_GET_TENSOR (cmd): u64 buffer, rpc tensor, u32 res_id, u64 offset, u64 size. */
uint32_t sec_bl_transfer(struct apir_harness *h, uint32_t cmd, uint64_t buffer, const struct vgpu_rpc_tensor *t,
                         uint32_t res_id, uint64_t offset, uint64_t size);
/* BUFFER_CPY_TENSOR; *answer gets the bool reply when OK (may be NULL). */
uint32_t sec_bl_copy(struct apir_harness *h, uint64_t buffer, const struct vgpu_rpc_tensor *src,
                     const struct vgpu_rpc_tensor *dst, bool *answer);
/*
 * Baseline graph: writes `u32 n_nodes | u64 node_ids | u32 n | rpc tensors` at byte 0 of
 * resource res_id (created on first use with res_size bytes) and sends BACKEND_GRAPH_COMPUTE
 * with the image's true size (size_override != 0: that size instead). *status gets the
 * ggml_status reply when OK (may be NULL).
 */
uint32_t sec_bl_graph(struct apir_harness *h, uint32_t res_id, size_t res_size, const uint64_t *node_ids,
                      uint32_t n_nodes, const struct vgpu_rpc_tensor *t, uint32_t n, uint64_t size_override,
                      int32_t *status);

/* ---- extension helpers ---------------------------------------------------------------------- */

/* EXT_BUFFER_ALLOC (normal buffer), asserting success. */
uint64_t sec_ext_alloc_ok(struct apir_harness *h, uint64_t size);
/* A zero-copy buffer of `size` bytes over a new resource res_id of exactly that size (a guard
 * page follows it); *mem gets the shared memory. Asserts success. */
uint64_t sec_ext_alloc_zc(struct apir_harness *h, uint32_t res_id, uint64_t size, uint8_t **mem);
/* EXT_TENSOR_SET/GET with all transfer fields; inline data (res_id 0) as a blob when data != NULL. */
uint32_t sec_ext_transfer(struct apir_harness *h, uint32_t cmd, const struct vgpu_wire_tensor *w, uint64_t offset,
                          uint64_t size, uint64_t n_copies, uint64_t stride_tensor, uint64_t stride_data,
                          uint32_t res_id, uint64_t res_offset, const void *data, size_t data_len);
/* EXT_TENSOR_COPY. */
uint32_t sec_ext_copy(struct apir_harness *h, const struct vgpu_wire_tensor *src, const struct vgpu_wire_tensor *dst);
/* EXT_DEVICE_INFO of device 0: its buffer-type id. */
uint64_t sec_ext_buft(struct apir_harness *h);

/* An extension graph under construction (tensor array + node list), heap-allocated. */
struct sec_graph {
    struct vgpu_wire_tensor *t;
    uint32_t                 n, cap;
    uint32_t                *nodes;
    uint32_t                 n_nodes, cap_nodes;
};

void     sec_graph_init(struct sec_graph *g, uint32_t cap);
void     sec_graph_free(struct sec_graph *g);
/* Appends a tensor; returns its index. */
uint32_t sec_graph_add(struct sec_graph *g, const struct vgpu_wire_tensor *w);
/* Appends a node (tensor index). */
void     sec_graph_node(struct sec_graph *g, uint32_t idx);

/* Appends a leaf tensor (by value, for compound literals); returns its index. */
static inline uint32_t g_add(struct sec_graph *g, struct vgpu_wire_tensor w)
{
    return sec_graph_add(g, &w);
}

/* Appends node w = op(s0, s1, s2) (tensor indices, -1: none) with the compute flag. */
static inline uint32_t g_op(struct sec_graph *g, struct vgpu_wire_tensor w, uint32_t op, int32_t s0, int32_t s1,
                            int32_t s2)
{
    w.op = op;
    w.src[0] = s0 >= 0 ? (uint32_t)s0 + 1 : 0;
    w.src[1] = s1 >= 0 ? (uint32_t)s1 + 1 : 0;
    w.src[2] = s2 >= 0 ? (uint32_t)s2 + 1 : 0;
    w.flags = GGML_TENSOR_FLAG_COMPUTE;
    uint32_t i = sec_graph_add(g, &w);
    sec_graph_node(g, i);
    return i;
}
/* Encodes the "VGG1" image (malloc'd) and its size. */
uint8_t *sec_graph_image(const struct sec_graph *g, size_t *size);
/*
 * EXT_GRAPH_COMPUTE of an image (img NULL + size 0: recompute uid). Inline when it fits in
 * 512 KiB and res_id is 0, else through resource res_id (created as needed). *result and
 * *status get the reply fields when OK (may be NULL).
 */
uint32_t sec_ext_graph_raw(struct apir_harness *h, uint32_t cmd, const uint8_t *img, size_t size, uint64_t uid,
                           uint32_t res_id, uint32_t *result, int32_t *status);
/* Encodes g and sends it (EXT_GRAPH_COMPUTE, inline or via res 60 when large). */
uint32_t sec_ext_graph(struct apir_harness *h, const struct sec_graph *g, uint64_t uid, uint32_t *result,
                       int32_t *status);

/* A wire tensor: contiguous `type` [ne0, ne1, ne2, ne3] at offset `off` of buffer `buf`. */
struct vgpu_wire_tensor sec_wire(uint32_t type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3, uint64_t buf,
                                 uint64_t off);

/* ---- misc ------------------------------------------------------------------------------------ */

/* Types this ggml has removed (type or block size 0); returns how many were put in out[cap]. */
uint32_t sec_removed_types(uint32_t *out, uint32_t cap);

/*
 * Captures what the process writes to fd 2 between begin and end (the library logs there).
 * end returns a malloc'd NUL-terminated copy (the caller frees it) and restores fd 2.
 */
void  sec_stderr_begin(void);
char *sec_stderr_end(void);

/*
 * Isolated children: a test binary re-executes itself (/proc/self/exe, a fresh process: no
 * inherited threads, OpenMP pools or allocator state) to run one named function, for checks
 * that may crash or abort the host today; the test binary keeps running and reports it.
 * main() calls sec_child_main() first: in a child it runs the function named by the
 * environment and returns its exit code (>= 0); in the test binary it returns -1.
 * Inside a child, a failing cmocka assertion exits with status 255 (no test is running).
 */
struct sec_child {
    const char *name;
    int (*fn)(void);
};
int sec_child_main(const struct sec_child *children, size_t n);
/* Runs child `name` (killed by SIGALRM after timeout_s) and returns its wait status. */
int sec_run_child(const char *name, int timeout_s);
/* Runs child `name` and fails the test unless it exits with 0. */
void sec_expect_child_ok(const char *name, int timeout_s);
/* Describes a wait status ("exit 3", "signal 6 (Aborted)", ...) in buf. */
const char *sec_describe_status(int status, char *buf, size_t cap);

/* When SEC_TEST_FILTER is set, runs only the tests whose names match it (cmocka's * and ?
 * wildcards): e.g. SEC_TEST_FILTER='test_h3_*' to run one hole's tests, or one test after a
 * host crash stopped a whole binary. Call at the start of main(). */
void sec_filter_from_env(void);

/* Runs fn(arg) on a new thread with a stack of stack_bytes and waits for it. */
void sec_run_on_small_stack(void (*fn)(void *), void *arg, size_t stack_bytes);

/* A fresh ctx_id for this process (every test gets its own contexts). */
uint32_t sec_next_ctx_id(void);

#endif /* VGPU_TESTS_SEC_COMMON_H */
