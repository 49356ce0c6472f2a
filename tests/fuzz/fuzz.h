/*
 * Shared pieces of the libFuzzer targets (tests/fuzz/README.md).
 *
 * Every target is one C file defining LLVMFuzzerTestOneInput (and LLVMFuzzerInitialize when it
 * needs set-up). The same file links either with libFuzzer (-fsanitize=fuzzer, clang, the fuzz
 * build) or with replay.c, a plain main() that runs the entry point over corpus files (any
 * compiler, every build), so committed corpora are regression tests everywhere.
 *
 * fuzz-runtime.c is an in-process APIR runtime for the targets that drive the host library:
 * config keys, shared resources (memfds between PROT_NONE guard pages, resettable between
 * inputs), the get_config / get_shmem_ptr / get_shmem_size callbacks, the id table that lets
 * inputs name real object ids, and a guard-page allocator that replaces ggml_aligned_malloc so
 * that the uninstrumented CPU kernels fault on the first byte past a host buffer.
 */
#ifndef VGPU_FUZZ_H
#define VGPU_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apir.h"

/* libFuzzer entry points (the replay driver calls them too). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reports a violated property and aborts (a crash for libFuzzer, a failure for replay). */
#define FZ_CHECK(cond, ...)                                  \
    do {                                                     \
        if (!(cond))                                         \
            fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
    } while (0)

/* Prints "FUZZ PROPERTY FAILED at file:line: cond: <formatted>" and aborts. */
_Noreturn void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- process set-up -------------------------------------------------------------------------- */

/*
 * Environment for every target, called from LLVMFuzzerInitialize: host tracing off, OpenMP
 * threads passive (no spinning on 2 cores), and ggml's own log lines silenced unless
 * GGML_VIRTGPU_FUZZ_VERBOSE is set. Returns the log level to configure for host contexts.
 */
const char *fz_process_setup(void);

/* Path of the real GGML backend the host loads (the CPU backend of the dependency). */
const char *fz_backend_path(void);

/* ---- the runtime --------------------------------------------------------------------------- */

#define FZ_MAX_KEYS 16
#define FZ_MAX_RES  8
/* Resource ids 1..FZ_RES_ID_SPAN resolve (id - 1) % n_res (guests number resources upwards);
 * every other id is unknown. */
#define FZ_RES_ID_SPAN 65535u

struct fz_res {
    uint8_t *area;     /* guard page, data pages, guard page */
    size_t   area_len;
    uint8_t *base;     /* first data byte (page-aligned) */
    size_t   size;     /* bytes the runtime reports (an input may lower it) */
    size_t   full;     /* bytes it was created with */
    size_t   map_size; /* data bytes mapped (whole pages) */
    int      fd;
    bool     live;     /* false after fz_res_destroy */
};

struct fz_runtime {
    uint32_t                   ctx_id;
    const char                *keys[FZ_MAX_KEYS];
    char                       vals[FZ_MAX_KEYS][512];
    int                        n_keys;
    struct fz_res              res[FZ_MAX_RES];
    int                        n_res;
    bool                       size_cb; /* offer get_shmem_size (else /proc/self/maps sizing) */
    struct vgpu_apir_callbacks cbs;
};

/* The process's one runtime (targets are single-context per input). */
struct fz_runtime *fz_rt(void);

/* Clears the runtime for ctx_id (keys and resources stay as they are). */
void fz_runtime_init(struct fz_runtime *rt, uint32_t ctx_id);
/* Sets config key `key` (a string literal) to the decimal or string value. */
void fz_config(struct fz_runtime *rt, const char *key, const char *value);
void fz_config_u64(struct fz_runtime *rt, const char *key, uint64_t value);
/* Publishes the callbacks: with or without the get_shmem_size extension. */
struct virgl_apir_callbacks *fz_callbacks(struct fz_runtime *rt, bool size_cb);

/* Adds a resource of `size` bytes (id = index + 1); aborts if it cannot be created. */
uint32_t fz_res_add(struct fz_runtime *rt, size_t size);
/* Resource by id as the host sees it (NULL: unknown or destroyed). */
struct fz_res *fz_res_by_id(struct fz_runtime *rt, uint32_t res_id);
/* Unmaps a resource's data pages (the id stops resolving; the address becomes a fault). */
void fz_res_destroy(struct fz_res *r);
/* Maps it again, zeroed, at the same address. */
void fz_res_restore(struct fz_res *r);
/* Zeroes its contents (punches the memfd), restores it if destroyed and its reported size. */
void fz_res_reset(struct fz_res *r);
/* Copies n bytes to offset `off`, clipped to the mapped resource. */
void fz_res_fill(struct fz_res *r, size_t off, const uint8_t *p, size_t n);

/*
 * True if v is an address inside a resource or a block of the guard-page allocator (host
 * buffers): such a value in a reply would be a host pointer leaking to the guest.
 */
bool fz_is_known_address(uint64_t v);

/* ---- object ids ------------------------------------------------------------------------------ */

/*
 * Inputs cannot know real object ids up front, so they name them through markers: a u64 whose
 * top 56 bits are FZ_ID_MARKER is replaced, before the host sees the bytes, by entry
 * fz_ids_index(low byte) of the id table. The table starts with the ids a target creates at
 * set-up (entry 0: the buffer type) and grows with every new id a reply carries (in order of
 * first appearance), which the corpus converter mirrors (corpus-tool.c).
 */
#define FZ_ID_MARKER    0xFDFDFDFDFDFDFD00ull
#define FZ_ID_MARK_MASK 0xFFFFFFFFFFFFFF00ull
#define FZ_MAX_IDS      64u

struct fz_ids {
    uint64_t v[FZ_MAX_IDS];
    uint32_t n;
};

/* True for a value with the host's id layout (type 'B' or 'T', generation != 0). */
bool fz_looks_like_id(uint64_t v);
/*
 * Table entry for marker k: k itself when it exists, else one of entries 1..n-1 (k wraps
 * around them, so a marker past the end still names a buffer, not the buffer type).
 */
uint32_t fz_ids_index(const struct fz_ids *ids, uint32_t k);
/* Appends id if new and there is room. */
void fz_ids_add(struct fz_ids *ids, uint64_t id);
/* Replaces every marker at a 4-byte-aligned offset of buf[len] (no-op with an empty table). */
void fz_ids_patch(const struct fz_ids *ids, uint8_t *buf, size_t len);
/* Adds every id-like u64 at a 4-byte-aligned offset of a reply. */
void fz_ids_learn(struct fz_ids *ids, const uint8_t *reply, size_t len);

/* ---- byte helpers ------------------------------------------------------------------------------ */

static inline uint16_t fz_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
uint32_t fz_get32(const uint8_t *p);
uint64_t fz_get64(const uint8_t *p);
void     fz_put32(uint8_t *p, uint32_t v);
void     fz_put64(uint8_t *p, uint64_t v);

#endif /* VGPU_FUZZ_H */
