/*
 * A fake APIR runtime for tests: it loads libggml-virtgpu-backend.so through its real ABI
 * (dlopen + the three symbols), answers get_config / get_shmem_ptr / get_shmem_size, owns
 * shared resources backed by memfds (each followed by an inaccessible guard page), and sends
 * FORWARD commands built with the proto/ codec.
 *
 * Every reply is scanned for 8-byte values that fall inside this process's mappings (a host
 * pointer leaking to the guest); hits are counted in pointer_hits and printed.
 *
 * Not thread-safe per harness; several harnesses (contexts) may exist at once.
 */
#ifndef VGPU_TESTS_APIR_HARNESS_H
#define VGPU_TESTS_APIR_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apir.h"
#include "codec.h"

struct apir_harness_opts {
    const char *library_path;      /* default: VGPU_HOST_LIBRARY_PATH */
    const char *backend_path;      /* ggml.library.path; default VGPU_DEFAULT_BACKEND_PATH */
    bool        omit_backend_path; /* leave ggml.library.path unset */
    const char *backend_reg;       /* ggml.library.reg; NULL: unset */
    bool        no_size_callback;  /* plain virgl_apir_callbacks, no apir.callbacks.size */
    size_t      reply_size;        /* reply buffer bytes; default 4 MiB */
    size_t      command_size;      /* request buffer bytes; default 4 MiB */
    bool        no_pointer_scan;
};

struct apir_harness;

/* Loads the library and registers the runtime side for ctx_id (NULL opts: defaults). */
struct apir_harness *apir_harness_open(uint32_t ctx_id, const struct apir_harness_opts *opts);
/* Sets (or with value NULL removes) a config key before apir_harness_init. */
void apir_harness_config(struct apir_harness *h, const char *key, const char *value);
/* apir_backend_initialize(ctx_id, callbacks). */
uint32_t apir_harness_init(struct apir_harness *h);
/* apir_backend_deinit (if initialised), resources unmapped, library closed. */
void apir_harness_close(struct apir_harness *h);
/* apir_backend_deinit only (the harness stays usable for a new init). */
void apir_harness_deinit(struct apir_harness *h);

uint32_t apir_harness_ctx_id(const struct apir_harness *h);

/* Resources: memfd of `size` bytes mapped shared, then a PROT_NONE guard page. */
void *apir_harness_res_create(struct apir_harness *h, uint32_t res_id, size_t size);
/* Same, mapped at `addr` exactly (which must be free), or NULL. */
void *apir_harness_res_create_at(struct apir_harness *h, uint32_t res_id, size_t size, void *addr);
void  apir_harness_res_destroy(struct apir_harness *h, uint32_t res_id);
void *apir_harness_res_ptr(struct apir_harness *h, uint32_t res_id);

/* Starts a request: an encoder over the harness's command buffer. */
struct vgpu_enc *apir_harness_req(struct apir_harness *h);
/*
 * Sends the request built since apir_harness_req() as FORWARD command `cmd` (copied into an
 * exactly sized heap block, so a read past its end is caught by ASan). Returns the handler
 * code; *reply (if non-NULL) decodes [reply start, enc_cur_after).
 */
uint32_t apir_harness_send(struct apir_harness *h, uint32_t cmd, struct vgpu_dec *reply);
/* Sends raw request bytes. */
uint32_t apir_harness_call(struct apir_harness *h, uint32_t cmd, const void *req, size_t len,
                           struct vgpu_dec *reply);
/* Bytes of the last reply (enc_cur_after - reply start). */
size_t apir_harness_reply_len(const struct apir_harness *h);

/*
 * Counts 8-byte values at 4-byte steps of [p, p + n) that point into a mapping of this
 * process (excluding sanitizer shadow-sized regions of 256 MiB and more). Prints each hit.
 */
size_t apir_harness_scan(const void *p, size_t n, const char *what);
/* Hits found in all replies so far. */
size_t apir_harness_pointer_hits(const struct apir_harness *h);

/* ---- helpers for extension-protocol tests (docs/PROTOCOL.md §4) ----------------------------- */

struct vgpu_wire_tensor;

/* EXT_HELLO with this build's ggml ABI; returns the handler code. */
uint32_t apir_harness_hello(struct apir_harness *h);
/* EXT_BUFFER_ALLOC; zc_res_id != 0 asks for a zero-copy buffer over that resource. */
uint32_t apir_harness_alloc(struct apir_harness *h, uint32_t dev, uint64_t size, uint32_t zc_res_id,
                            uint64_t *id, uint32_t *granted);
/* EXT_BUFFER_FREE. */
uint32_t apir_harness_free(struct apir_harness *h, uint64_t id);
/* A contiguous wire tensor (ne[i] = 0 for unused dims is NOT implied: pass 1). */
void apir_harness_wire(struct vgpu_wire_tensor *w, uint32_t type, int64_t ne0, int64_t ne1, int64_t ne2,
                       int64_t ne3, uint64_t buffer, uint64_t offset);
/*
 * An extension graph image ("VGG1", PROTOCOL.md §4.1) of n wire tensors and n_nodes node indices
 * into out[cap]; returns its size, or 0 if it does not fit.
 */
size_t apir_harness_graph_image(const struct vgpu_wire_tensor *t, uint32_t n, const uint32_t *nodes,
                                uint32_t n_nodes, uint8_t *out, size_t cap);
/* EXT_TENSOR_SET / EXT_TENSOR_GET of n bytes at offset, data inline, one copy. */
uint32_t apir_harness_set(struct apir_harness *h, const struct vgpu_wire_tensor *w, uint64_t offset,
                          const void *data, size_t n);
uint32_t apir_harness_get(struct apir_harness *h, const struct vgpu_wire_tensor *w, uint64_t offset, void *data,
                          size_t n);

/*
 * Captures this process's stderr (the library logs with write(2) on fd 2) from _begin until
 * _end, which restores it and copies what was written into text[cap] (cut to cap - 1 bytes,
 * NUL-terminated). One capture at a time. Both return 0 or a negative errno.
 */
int apir_harness_capture_begin(void);
int apir_harness_capture_end(char *text, size_t cap);

#endif /* VGPU_TESTS_APIR_HARNESS_H */
