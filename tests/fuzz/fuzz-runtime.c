/*
 * The in-process APIR runtime and helpers shared by the fuzz targets; contracts in fuzz.h.
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ggml.h"

#ifndef VGPU_DEFAULT_BACKEND_PATH
#error "VGPU_DEFAULT_BACKEND_PATH must name the dependency's libggml-cpu.so"
#endif

/* A copy of stderr taken at set-up: libFuzzer's -close_fd_mask=2 closes fd 2 afterwards. */
static int g_err_fd = STDERR_FILENO;

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char text[512], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    int n = snprintf(msg, sizeof(msg), "FUZZ PROPERTY FAILED at %s:%d: %s: %s\n", file, line, cond, text);
    if (n > 0) {
        ssize_t w = write(g_err_fd, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
        (void)w;
    }
    abort();
}

/* ---- byte helpers ------------------------------------------------------------------------------ */

uint32_t fz_get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

uint64_t fz_get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

void fz_put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
void fz_put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* ---- process set-up ------------------------------------------------------------------------------ */

/* ggml log sink: drops everything (the host's own lines go through its log level). */
static void quiet_log(enum ggml_log_level level, const char *text, void *user)
{
    (void)level;
    (void)text;
    (void)user;
}

const char *fz_process_setup(void)
{
    bool verbose = getenv("GGML_VIRTGPU_FUZZ_VERBOSE") != NULL;
    int fd = dup(STDERR_FILENO);
    if (fd >= 0)
        g_err_fd = fd;
    /* Never trace from a fuzzer: it would write files per input. */
    unsetenv("GGML_VIRTGPU_TRACE");
    /* libgomp (ggml-cpu) reads this when the backend is loaded; no spinning threads. */
    setenv("OMP_WAIT_POLICY", "passive", 0);
    if (!verbose)
        ggml_log_set(quiet_log, NULL);
    return verbose ? "debug" : "error";
}

const char *fz_backend_path(void)
{
    const char *p = getenv("GGML_VIRTGPU_FUZZ_BACKEND");
    return p && *p ? p : VGPU_DEFAULT_BACKEND_PATH;
}

/* ---- the runtime ------------------------------------------------------------------------------------ */

static struct fz_runtime g_rt;

struct fz_runtime *fz_rt(void)
{
    return &g_rt;
}

void fz_runtime_init(struct fz_runtime *rt, uint32_t ctx_id)
{
    rt->ctx_id = ctx_id;
}

void fz_config(struct fz_runtime *rt, const char *key, const char *value)
{
    int i = 0;
    while (i < rt->n_keys && strcmp(rt->keys[i], key) != 0)
        i++;
    if (i == rt->n_keys) {
        FZ_CHECK(rt->n_keys < FZ_MAX_KEYS, "too many config keys");
        rt->keys[rt->n_keys++] = key;
    }
    snprintf(rt->vals[i], sizeof(rt->vals[i]), "%s", value);
}

void fz_config_u64(struct fz_runtime *rt, const char *key, uint64_t value)
{
    char s[32];
    snprintf(s, sizeof(s), "%llu", (unsigned long long)value);
    fz_config(rt, key, s);
}

/* get_config: the runtime's keys; NULL for anything else. */
static const char *cb_get_config(uint32_t ctx_id, const char *key)
{
    struct fz_runtime *rt = &g_rt;
    if (ctx_id != rt->ctx_id)
        return NULL;
    for (int i = 0; i < rt->n_keys; i++) {
        if (strcmp(rt->keys[i], key) == 0)
            return rt->vals[i];
    }
    return NULL;
}

struct fz_res *fz_res_by_id(struct fz_runtime *rt, uint32_t res_id)
{
    if (res_id == 0 || res_id > FZ_RES_ID_SPAN || rt->n_res == 0)
        return NULL;
    struct fz_res *r = &rt->res[(res_id - 1) % (uint32_t)rt->n_res];
    return r->live ? r : NULL;
}

/* get_shmem_ptr: the resource's first byte, NULL if unknown or destroyed. */
static void *cb_get_shmem_ptr(uint32_t ctx_id, uint32_t res_id)
{
    struct fz_res *r = ctx_id == g_rt.ctx_id ? fz_res_by_id(&g_rt, res_id) : NULL;
    return r ? r->base : NULL;
}

/* get_shmem_size: what the runtime reports (may be less than what is mapped). */
static int cb_get_shmem_size(uint32_t ctx_id, uint32_t res_id, uint64_t *size)
{
    struct fz_res *r = ctx_id == g_rt.ctx_id ? fz_res_by_id(&g_rt, res_id) : NULL;
    if (!r)
        return -1;
    *size = r->size;
    return 0;
}

struct virgl_apir_callbacks *fz_callbacks(struct fz_runtime *rt, bool size_cb)
{
    rt->size_cb = size_cb;
    rt->cbs.base.get_config = cb_get_config;
    rt->cbs.base.get_shmem_ptr = cb_get_shmem_ptr;
    rt->cbs.get_shmem_size = size_cb ? cb_get_shmem_size : NULL;
    if (size_cb)
        fz_config_u64(rt, VGPU_CFG_CALLBACKS_SIZE, sizeof(struct vgpu_apir_callbacks));
    else
        fz_config(rt, VGPU_CFG_CALLBACKS_SIZE, "0"); /* too small: the library ignores the extension */
    return &rt->cbs.base;
}

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

/* Maps the memfd over the resource's data pages (MAP_FIXED inside its reserved area). */
static void map_data(struct fz_res *r)
{
    void *p = mmap(r->base, r->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, 0);
    FZ_CHECK(p == r->base, "cannot map a resource: %s", strerror(errno));
    r->live = true;
}

uint32_t fz_res_add(struct fz_runtime *rt, size_t size)
{
    FZ_CHECK(rt->n_res < FZ_MAX_RES && size > 0, "bad resource request");
    struct fz_res *r = &rt->res[rt->n_res];
    size_t ps = page_size();
    r->size = size;
    r->full = size;
    r->map_size = (size + ps - 1) / ps * ps;
    r->area_len = r->map_size + 2 * ps;
    r->fd = memfd_create("fuzz-res", MFD_CLOEXEC);
    FZ_CHECK(r->fd >= 0 && ftruncate(r->fd, (off_t)r->map_size) == 0, "memfd: %s", strerror(errno));
    r->area = mmap(NULL, r->area_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    FZ_CHECK(r->area != MAP_FAILED, "cannot reserve a resource: %s", strerror(errno));
    r->base = r->area + ps;
    map_data(r);
    rt->n_res++;
    return (uint32_t)rt->n_res;
}

void fz_res_destroy(struct fz_res *r)
{
    if (!r->live)
        return;
    /* The range stays reserved (PROT_NONE), so a stale pointer faults instead of aliasing. */
    void *p = mmap(r->base, r->map_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    FZ_CHECK(p == r->base, "cannot unmap a resource: %s", strerror(errno));
    r->live = false;
}

/* Drops every page of the memfd: the contents read as zeros again. */
static void punch(struct fz_res *r)
{
    FZ_CHECK(fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)r->map_size) == 0,
             "punch: %s", strerror(errno));
}

void fz_res_restore(struct fz_res *r)
{
    if (r->live)
        return;
    punch(r);
    map_data(r);
}

void fz_res_reset(struct fz_res *r)
{
    if (r->live)
        punch(r);
    else
        fz_res_restore(r);
    r->size = r->full;
}

void fz_res_fill(struct fz_res *r, size_t off, const uint8_t *p, size_t n)
{
    if (!r->live || off >= r->map_size)
        return;
    if (n > r->map_size - off)
        n = r->map_size - off;
    memcpy(r->base + off, p, n);
}

/* ---- object ids -------------------------------------------------------------------------------- */

bool fz_looks_like_id(uint64_t v)
{
    uint8_t type = (uint8_t)(v >> 56);
    uint32_t gen = (uint32_t)(v >> 32) & 0xffffffu;
    uint32_t slot = (uint32_t)v;
    return (type == 0x42 || type == 0x54) && gen != 0 && gen < 0x10000u && slot < (1u << 22);
}

void fz_ids_add(struct fz_ids *ids, uint64_t id)
{
    for (uint32_t i = 0; i < ids->n; i++) {
        if (ids->v[i] == id)
            return;
    }
    if (ids->n < FZ_MAX_IDS)
        ids->v[ids->n++] = id;
}

uint32_t fz_ids_index(const struct fz_ids *ids, uint32_t k)
{
    if (k < ids->n || ids->n <= 1)
        return k < ids->n ? k : 0;
    return 1 + (k - 1) % (ids->n - 1);
}

void fz_ids_patch(const struct fz_ids *ids, uint8_t *buf, size_t len)
{
    if (ids->n == 0)
        return;
    for (size_t off = 0; off + 8 <= len; off += 4) {
        uint64_t v = fz_get64(buf + off);
        if ((v & FZ_ID_MARK_MASK) == FZ_ID_MARKER) {
            fz_put64(buf + off, ids->v[fz_ids_index(ids, (uint32_t)(v & 0xffu))]);
            off += 4;
        }
    }
}

void fz_ids_learn(struct fz_ids *ids, const uint8_t *reply, size_t len)
{
    for (size_t off = 0; off + 8 <= len; off += 4) {
        uint64_t v = fz_get64(reply + off);
        if (fz_looks_like_id(v))
            fz_ids_add(ids, v);
    }
}

/* ---- guard-page allocator for ggml_aligned_malloc ----------------------------------------------- */

/*
 * ggml's CPU kernels are not instrumented, so ASan cannot see them overrun a host buffer.
 * This definition interposes ggml_aligned_malloc / ggml_aligned_free (libggml-base calls them
 * through its PLT, and the fuzz executables export these two symbols): every block ends
 * (within its 64-byte alignment) at a PROT_NONE page and starts after one, so the first byte
 * read or written past either end faults.
 */
#define FZ_EXPORT __attribute__((visibility("default")))
FZ_EXPORT void *ggml_aligned_malloc(size_t size);
FZ_EXPORT void  ggml_aligned_free(void *ptr, size_t size);

#define GUARD_SLOTS 4096

struct guarded {
    uint8_t *block;
    uint8_t *area;
    size_t   area_len;
};

static pthread_mutex_t guard_mu = PTHREAD_MUTEX_INITIALIZER;
static struct guarded  guard_tab[GUARD_SLOTS];
static int             guard_hw; /* 1 + the highest slot ever used */

/* Records a mapping; false if the table is full. */
static bool guard_put(uint8_t *block, uint8_t *area, size_t len)
{
    bool ok = false;
    pthread_mutex_lock(&guard_mu);
    for (int i = 0; i < GUARD_SLOTS && !ok; i++) {
        if (!guard_tab[i].block) {
            guard_tab[i] = (struct guarded){ block, area, len };
            ok = true;
            if (i >= guard_hw)
                guard_hw = i + 1;
        }
    }
    pthread_mutex_unlock(&guard_mu);
    return ok;
}

/* Removes the mapping of `block` into *out; false if it is not ours. */
static bool guard_take(const void *block, struct guarded *out)
{
    bool found = false;
    pthread_mutex_lock(&guard_mu);
    for (int i = 0; i < guard_hw && !found; i++) {
        if (guard_tab[i].block == block) {
            *out = guard_tab[i];
            memset(&guard_tab[i], 0, sizeof(guard_tab[i]));
            found = true;
        }
    }
    pthread_mutex_unlock(&guard_mu);
    return found;
}

FZ_EXPORT void *ggml_aligned_malloc(size_t size)
{
    if (size == 0 || size > ((size_t)1 << 40))
        return NULL;
    size_t ps = page_size();
    size_t rounded = (size + 63) & ~(size_t)63;
    size_t data = (rounded + ps - 1) / ps * ps;
    size_t len = data + 2 * ps;
    uint8_t *area = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED)
        return NULL;
    if (mprotect(area + ps, data, PROT_READ | PROT_WRITE) != 0) {
        munmap(area, len);
        return NULL;
    }
    uint8_t *block = area + ps + data - rounded;
    if (!guard_put(block, area, len)) {
        munmap(area, len);
        void *p = NULL;
        return posix_memalign(&p, 64, size) == 0 ? p : NULL;
    }
    return block;
}

bool fz_is_known_address(uint64_t v)
{
    for (int i = 0; i < g_rt.n_res; i++) {
        uint64_t a = (uint64_t)(uintptr_t)g_rt.res[i].area;
        if (v >= a && v - a < g_rt.res[i].area_len)
            return true;
    }
    bool hit = false;
    pthread_mutex_lock(&guard_mu);
    for (int i = 0; i < guard_hw && !hit; i++) {
        uint64_t a = (uint64_t)(uintptr_t)guard_tab[i].area;
        hit = guard_tab[i].block && v >= a && v - a < guard_tab[i].area_len;
    }
    pthread_mutex_unlock(&guard_mu);
    return hit;
}

FZ_EXPORT void ggml_aligned_free(void *ptr, size_t size)
{
    (void)size;
    if (!ptr)
        return;
    struct guarded g;
    if (guard_take(ptr, &g))
        munmap(g.area, g.area_len);
    else
        free(ptr);
}
