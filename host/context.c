/*
 * Per-context state; contracts in context.h.
 */
#include "context.h"

#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ext.h"
#include "graph.h"

/* ---- logging --------------------------------------------------------------------------------- */

static enum vgpu_log_level parse_level(const char *s, enum vgpu_log_level dflt);

__attribute__((format(printf, 4, 0)))
static void vlog_line(const struct vgpu_ctx *ctx, uint32_t ctx_id, enum vgpu_log_level level, const char *fmt,
                      va_list ap)
{
    enum vgpu_log_level max = ctx ? ctx->log_level : parse_level(getenv("GGML_VIRTGPU_LOG_LEVEL"), VGPU_LOG_WARN);
    if (level > max)
        return;
    char text[512];
    vsnprintf(text, sizeof(text), fmt, ap);
    /*
     * Log lines quote guest-chosen strings (tensor names, up to 63 bytes): without this a guest
     * could put a newline and a whole forged line (or terminal escapes) into the host's log.
     */
    for (char *p = text; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    /* One write per line so that lines of concurrent contexts do not interleave. */
    char line[640];
    int n = snprintf(line, sizeof(line), "ggml-virtgpu-backend[ctx %u]: %s: %s\n", ctx ? ctx->id : ctx_id,
                     ctx && ctx->cmd_name ? ctx->cmd_name : "init", text);
    if (n > 0) {
        size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
        if (len == sizeof(line) - 1)
            line[len - 1] = '\n';
        ssize_t w = write(STDERR_FILENO, line, len);
        (void)w;
    }
}

void vgpu_log(const struct vgpu_ctx *ctx, enum vgpu_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_line(ctx, 0, level, fmt, ap);
    va_end(ap);
}

void vgpu_log_id(uint32_t ctx_id, enum vgpu_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_line(NULL, ctx_id, level, fmt, ap);
    va_end(ap);
}

uint32_t vgpu_fail(const struct vgpu_ctx *ctx, uint32_t code, const char *fmt, ...)
{
    enum vgpu_log_level level =
        (code == VGPU_NO_MEMORY || code == VGPU_BACKEND) ? VGPU_LOG_ERROR : VGPU_LOG_WARN;
    va_list ap;
    va_start(ap, fmt);
    vlog_line(ctx, 0, level, fmt, ap);
    va_end(ap);
    return code;
}

uint32_t vgpu_set_fatal(struct vgpu_ctx *ctx, uint32_t code, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ctx->fatal = true;
    vgpu_log(ctx, VGPU_LOG_ERROR, "%s; the context is now fatal", text);
    return code;
}

static enum vgpu_log_level parse_level(const char *s, enum vgpu_log_level dflt)
{
    if (!s || !*s)
        return dflt;
    if (!strcasecmp(s, "error"))
        return VGPU_LOG_ERROR;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
        return VGPU_LOG_WARN;
    if (!strcasecmp(s, "info"))
        return VGPU_LOG_INFO;
    if (!strcasecmp(s, "debug"))
        return VGPU_LOG_DEBUG;
    return dflt;
}

/*
 * ggml's own log lines (ggml-cpu prints one per repacked weight, backends list their devices)
 * go through the host's log at the level of GGML_VIRTGPU_LOG_LEVEL (default warn): ggml's
 * default callback prints every level, debug included. Stateless, because ggml's logger is
 * one per process and contexts come and go: continuation pieces count as debug.
 */
static void ggml_log_to_host(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    enum vgpu_log_level l = level == GGML_LOG_LEVEL_ERROR  ? VGPU_LOG_ERROR
                            : level == GGML_LOG_LEVEL_WARN ? VGPU_LOG_WARN
                            : level == GGML_LOG_LEVEL_INFO ? VGPU_LOG_INFO
                                                           : VGPU_LOG_DEBUG;
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n')
        n--;
    if (n > 0)
        vgpu_log_id(0, l, "ggml: %.*s", (int)(n > 400 ? 400 : n), text);
}

/* ---- scratch ------------------------------------------------------------------------------------ */

void *vgpu_scratch_get(struct vgpu_scratch *s, size_t n)
{
    if (n <= s->cap && s->p)
        return s->p;
    if (n > SIZE_MAX - 63)
        return NULL;
    size_t cap = (n + 63) & ~(size_t)63;
    if (cap < 4096)
        cap = 4096;
    void *p = NULL;
    if (posix_memalign(&p, 64, cap) != 0)
        return NULL;
    free(s->p);
    s->p = p;
    s->cap = cap;
    return p;
}

static void scratch_free(struct vgpu_scratch *s)
{
    free(s->p);
    s->p = NULL;
    s->cap = 0;
}

/* ---- config ---------------------------------------------------------------------------------------- */

static const char *config(const struct vgpu_ctx *ctx, const char *key)
{
    return ctx->get_config ? ctx->get_config(ctx->id, key) : NULL;
}

/* Parses a positive decimal config value; dflt if absent, malformed (logged) or 0. */
static uint64_t config_u64(const struct vgpu_ctx *ctx, const char *key, uint64_t dflt)
{
    const char *s = config(ctx, key);
    if (!s)
        return dflt;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0 || s[0] == '-') {
        vgpu_log(ctx, VGPU_LOG_WARN, "config %s='%s' is not a positive number; using %llu", key, s,
                 (unsigned long long)dflt);
        return dflt;
    }
    return v;
}

/* ---- creation ------------------------------------------------------------------------------------- */

/* Most devices one context serves (guest device indices are small). */
#define VGPU_MAX_DEVICES 64u

/*
 * Collects the devices of reg into out[*n..max). Returns false if reg names a device it
 * then does not have.
 */
static bool add_reg_devices(ggml_backend_reg_t reg, ggml_backend_dev_t *out, size_t *n, size_t max)
{
    size_t count = ggml_backend_reg_dev_count(reg);
    for (size_t i = 0; i < count && *n < max; i++) {
        out[*n] = ggml_backend_reg_dev_get(reg, i);
        if (!out[*n])
            return false;
        (*n)++;
    }
    return true;
}

/*
 * The real backend's devices. A ggml-rpc backend enumerates none by itself: with the config
 * key ggml-virtgpu.rpc-servers (comma-separated endpoints) each listed server adds its
 * devices through the backend's "ggml_backend_rpc_add_server", in the listed order. That
 * lets one context drive the devices of several machines, and lets tests stand several CPU
 * servers in for a multi-GPU host. Returns the count, or 0 after logging why there is none.
 */
static size_t list_devices(struct vgpu_ctx *ctx, ggml_backend_dev_t *out, size_t max)
{
    size_t n = 0;
    const char *servers = config(ctx, VGPU_CFG_RPC_SERVERS);
    if (!servers) {
        if (!add_reg_devices(ctx->reg, out, &n, max))
            vgpu_log(ctx, VGPU_LOG_ERROR, "the GGML backend lists a device it does not have");
        else if (n == 0)
            vgpu_log(ctx, VGPU_LOG_ERROR, "the GGML backend has no device");
        return n;
    }
    ggml_backend_reg_t (*add_server)(const char *);
    *(void **)&add_server = ggml_backend_reg_get_proc_address(ctx->reg, "ggml_backend_rpc_add_server");
    if (!add_server) {
        vgpu_log(ctx, VGPU_LOG_ERROR, "config %s is set but the GGML backend is not ggml-rpc", VGPU_CFG_RPC_SERVERS);
        return 0;
    }
    char endpoint[256];
    for (const char *p = servers; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof(endpoint)) {
            vgpu_log(ctx, VGPU_LOG_ERROR, "config %s='%s': bad endpoint list", VGPU_CFG_RPC_SERVERS, servers);
            return 0;
        }
        memcpy(endpoint, p, len);
        endpoint[len] = '\0';
        ggml_backend_reg_t reg = add_server(endpoint);
        size_t before = n;
        if (!reg || !add_reg_devices(reg, out, &n, max) || n == before) {
            vgpu_log(ctx, VGPU_LOG_ERROR, "rpc server %s has no device", endpoint);
            return 0;
        }
        p += len;
        p += *p == ',';
    }
    return n;
}

static uint32_t init_devices(struct vgpu_ctx *ctx)
{
    ggml_backend_dev_t devs[VGPU_MAX_DEVICES];
    size_t n = list_devices(ctx, devs, VGPU_MAX_DEVICES);
    if (n == 0)
        return APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_NO_DEVICE;
    ctx->devices = calloc(n, sizeof(*ctx->devices));
    if (!ctx->devices)
        return APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_BACKEND_INIT_FAILED;
    ctx->n_devices = (uint32_t)n;

    uint64_t total_bytes = 0;
    for (uint32_t i = 0; i < ctx->n_devices; i++) {
        struct vgpu_device *d = &ctx->devices[i];
        d->dev = devs[i];
        struct ggml_backend_dev_props props;
        ggml_backend_dev_get_props(d->dev, &props);
        d->caps = (props.caps.async ? VGPU_CAP_ASYNC : 0) |
                  (props.caps.host_buffer ? VGPU_CAP_HOST_BUFFER : 0) |
                  (props.caps.buffer_from_host_ptr ? VGPU_CAP_BUFFER_FROM_HOST_PTR : 0) |
                  (props.caps.events ? VGPU_CAP_EVENTS : 0) |
                  (props.caps.mmap_support ? VGPU_CAP_MMAP_SUPPORT : 0);
        d->buft = d->dev->iface.get_buffer_type ? d->dev->iface.get_buffer_type(d->dev) : NULL;
        if (d->buft) {
            d->buft_id = vgpu_objects_add(&ctx->objects, VGPU_OBJ_BUFT, d);
            if (!d->buft_id)
                return APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_BACKEND_INIT_FAILED;
        }
        bool is_host = d->buft && d->buft->iface.is_host && d->buft->iface.is_host(d->buft);
        d->can_wrap = props.caps.buffer_from_host_ptr && d->dev->iface.buffer_from_host_ptr;
        d->zero_copy = d->can_wrap && is_host;
        uint64_t dev_total = props.memory_total ? props.memory_total : VGPU_DEFAULT_DEVICE_MEMORY;
        total_bytes = total_bytes > UINT64_MAX - dev_total ? UINT64_MAX : total_bytes + dev_total;
    }
    ctx->quota.buffer_bytes = config_u64(ctx, VGPU_CFG_QUOTA_BYTES, total_bytes);
    return 0;
}

uint32_t vgpu_ctx_create(uint32_t ctx_id, const struct virgl_apir_callbacks *cbs, struct vgpu_ctx **out)
{
    *out = NULL;
    struct vgpu_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_BACKEND_INIT_FAILED;
    ctx->id = ctx_id;
    ctx->get_config = cbs ? cbs->get_config : NULL;
    ctx->get_shmem_ptr = cbs ? cbs->get_shmem_ptr : NULL;
    ctx->log_level = parse_level(getenv("GGML_VIRTGPU_LOG_LEVEL"), VGPU_LOG_WARN);
    ctx->log_level = parse_level(config(ctx, VGPU_CFG_LOG_LEVEL), ctx->log_level);
    ggml_log_set(ggml_log_to_host, NULL);
    vgpu_prof_init(&ctx->prof);

    /* The size extension is used only when the runtime says its struct is large enough. */
    const char *cbsize = config(ctx, VGPU_CFG_CALLBACKS_SIZE);
    if (cbs && cbsize) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cbsize, &end, 10);
        if (!errno && end != cbsize && !*end && v >= sizeof(struct vgpu_apir_callbacks))
            ctx->get_shmem_size = ((const struct vgpu_apir_callbacks *)cbs)->get_shmem_size;
    }

    ctx->quota.buffers = config_u64(ctx, VGPU_CFG_QUOTA_BUFFERS, VGPU_DEFAULT_QUOTA_BUFFERS);
    if (ctx->quota.buffers > VGPU_OBJECTS_MAX_SLOTS - 64)
        ctx->quota.buffers = VGPU_OBJECTS_MAX_SLOTS - 64;
    ctx->quota.graph_nodes = config_u64(ctx, VGPU_CFG_QUOTA_NODES, VGPU_DEFAULT_QUOTA_GRAPH_NODES);
    if (ctx->quota.graph_nodes > (1u << 26))
        ctx->quota.graph_nodes = 1u << 26;
    ctx->quota.graph_tensors = 4 * ctx->quota.graph_nodes;
    ctx->quota.command_bytes = config_u64(ctx, VGPU_CFG_QUOTA_COMMAND, VGPU_DEFAULT_QUOTA_COMMAND_BYTES);
    const char *repack = config(ctx, VGPU_CFG_CPU_REPACK);
    ctx->cpu_repack = !repack || strcmp(repack, "0") != 0;
    vgpu_objects_init(&ctx->objects, (uint32_t)ctx->quota.buffers + 64);

    uint32_t ret;
    const char *path = config(ctx, VGPU_CFG_LIBRARY_PATH);
    if (!path) {
        vgpu_log(ctx, VGPU_LOG_ERROR, "config key %s is missing", VGPU_CFG_LIBRARY_PATH);
        ret = APIR_LOAD_LIBRARY_CFG_KEY_MISSING;
        goto fail;
    }
    const char *sym = config(ctx, VGPU_CFG_LIBRARY_REG);
    if (!sym)
        sym = "ggml_backend_init";

    /* GGML backends cannot be unloaded safely: keep them mapped for the process lifetime. */
    ctx->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!ctx->lib) {
        const char *e = dlerror();
        vgpu_log(ctx, VGPU_LOG_ERROR, "cannot open %s: %s", path, e ? e : "?");
        ret = APIR_LOAD_LIBRARY_CANNOT_OPEN;
        goto fail;
    }
    ggml_backend_reg_t (*reg_fn)(void);
    *(void **)&reg_fn = dlsym(ctx->lib, sym);
    if (!reg_fn) {
        vgpu_log(ctx, VGPU_LOG_ERROR, "%s has no symbol %s", path, sym);
        ret = APIR_LOAD_LIBRARY_SYMBOL_MISSING;
        goto fail;
    }
    ctx->reg = reg_fn();
    if (!ctx->reg) {
        vgpu_log(ctx, VGPU_LOG_ERROR, "%s() returned no backend", sym);
        ret = APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_BACKEND_REG_FAILED;
        goto fail;
    }
    if (ctx->reg->api_version != GGML_BACKEND_API_VERSION) {
        vgpu_log(ctx, VGPU_LOG_ERROR, "%s has GGML backend API version %d, this library needs %d", path,
                 ctx->reg->api_version, GGML_BACKEND_API_VERSION);
        ctx->reg = NULL;
        ret = APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_BACKEND_REG_FAILED;
        goto fail;
    }
    ret = init_devices(ctx);
    if (ret)
        goto fail;
    *(void **)&ctx->set_n_threads = ggml_backend_reg_get_proc_address(ctx->reg, "ggml_backend_set_n_threads");
    vgpu_cpu_api_load(&ctx->cpu_api, ctx->lib);

    ctx->scratch_graph = vgpu_graph_new();
    if (!ctx->scratch_graph) {
        ret = APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_BACKEND_INIT_FAILED;
        goto fail;
    }
    const char *trace = config(ctx, VGPU_CFG_TRACE);
    vgpu_trace_open(&ctx->trace, trace ? trace : getenv("GGML_VIRTGPU_TRACE"), ctx_id);
    vgpu_log(ctx, VGPU_LOG_INFO, "loaded %s (%s): %u device(s), buffer quota %llu bytes", path,
             ggml_backend_reg_name(ctx->reg), ctx->n_devices, (unsigned long long)ctx->quota.buffer_bytes);
    *out = ctx;
    return 0;

fail:
    vgpu_ctx_destroy(ctx);
    return ret;
}

void vgpu_ctx_destroy(struct vgpu_ctx *ctx)
{
    if (!ctx)
        return;
    /* Queued async copies finish and pinned host memory is released before anything goes. */
    vgpu_ctx_async_wait(ctx);
    vgpu_prof_report(&ctx->prof, ctx->id);
    vgpu_prof_free(&ctx->prof);
    vgpu_host_buffers_destroy(ctx);
    /* Cached graphs first (they point at buffers), then buffers, then backends. */
    for (uint32_t i = 0; i < ctx->n_devices; i++) {
        for (uint32_t s = 0; s < VGPU_GRAPH_CACHE_SLOTS; s++) {
            vgpu_graph_free(ctx->devices[i].cache[s]);
            ctx->devices[i].cache[s] = NULL;
        }
    }
    vgpu_graph_free(ctx->scratch_graph);
    ctx->scratch_graph = NULL;
    vgpu_trace_close(&ctx->trace);

    uint32_t cur = 0;
    void *p;
    while (vgpu_objects_next(&ctx->objects, &cur, VGPU_OBJ_BUFFER, NULL, &p)) {
        struct vgpu_buffer *b = p;
        ggml_backend_buffer_free(b->buf);
        free(b);
    }
    for (uint32_t i = 0; i < ctx->n_devices; i++) {
        if (ctx->devices[i].backend)
            ggml_backend_free(ctx->devices[i].backend);
        vgpu_cpu_work_free(&ctx->devices[i].cpu);
        vgpu_repack_free(&ctx->devices[i].repack, &ctx->bytes_used);
    }
    free(ctx->devices);
    vgpu_objects_fini(&ctx->objects);
    scratch_free(&ctx->img);
    scratch_free(&ctx->aux);
    scratch_free(&ctx->aux2);
    scratch_free(&ctx->copy);
    free(ctx->keep); /* unpinned by vgpu_host_buffers_destroy above */
    if (ctx->lib)
        dlclose(ctx->lib); /* RTLD_NODELETE: only drops the reference */
    free(ctx);
}

/* ---- devices --------------------------------------------------------------------------------------- */

uint32_t vgpu_ctx_device(struct vgpu_ctx *ctx, uint32_t dev, struct vgpu_device **out)
{
    if (dev >= ctx->n_devices)
        return vgpu_fail(ctx, VGPU_INVALID, "device %u does not exist (%u devices)", dev, ctx->n_devices);
    *out = &ctx->devices[dev];
    return VGPU_OK;
}

uint32_t vgpu_ctx_backend(struct vgpu_ctx *ctx, uint32_t dev, ggml_backend_t *out)
{
    struct vgpu_device *d = NULL;
    uint32_t r = vgpu_ctx_device(ctx, dev, &d);
    if (r != VGPU_OK)
        return r;
    if (!d->backend) {
        d->backend = ggml_backend_dev_init(d->dev, NULL);
        if (!d->backend)
            return vgpu_fail(ctx, VGPU_BACKEND, "device %u: backend initialisation failed", dev);
        vgpu_cpu_work_attach(&d->cpu, &ctx->cpu_api, d->backend);
        if (d->cpu.on && ctx->cpu_repack)
            vgpu_repack_attach(&d->repack, ctx->reg, d->dev);
    }
    *out = d->backend;
    return VGPU_OK;
}

enum ggml_status vgpu_ctx_compute(struct vgpu_ctx *ctx, uint32_t dev, ggml_backend_t backend,
                                  struct ggml_cgraph *cgraph)
{
    struct vgpu_device *d = &ctx->devices[dev];
    assert(dev < ctx->n_devices && d->backend == backend);
    uint64_t t0 = vgpu_prof_now(&ctx->prof);
    enum ggml_status st;
    if (d->cpu.on) {
        st = vgpu_cpu_compute(&d->cpu, &ctx->cpu_api, cgraph);
    } else {
        vgpu_ctx_mark_async(ctx, dev);
        st = ggml_backend_graph_compute_async(backend, cgraph);
    }
    vgpu_prof_phase(&ctx->prof, VGPU_PROF_COMPUTE, t0);
    return st;
}

void vgpu_ctx_probe_device(struct vgpu_ctx *ctx, uint32_t dev)
{
    struct vgpu_device *d = &ctx->devices[dev];
    if (d->probed)
        return;
    uint32_t f = 0;
    if (d->buft) {
        if (d->buft->iface.is_host && d->buft->iface.is_host(d->buft))
            f |= VGPU_BUFT_IS_HOST;
        if (d->buft->iface.get_alloc_size)
            f |= VGPU_BUFT_ALLOC_SIZE;
        /* Whether tensors need init_tensor is a property of the buffers: look at one. */
        size_t probe = ggml_backend_buft_get_alignment(d->buft);
        if (probe == 0 || probe > (1u << 20))
            probe = 256;
        ggml_backend_buffer_t b = d->buft->iface.alloc_buffer(d->buft, probe);
        if (b) {
            if (b->iface.init_tensor)
                f |= VGPU_BUFT_NEEDS_INIT;
            ggml_backend_buffer_free(b);
        } else {
            vgpu_log(ctx, VGPU_LOG_WARN, "device %u: probe allocation failed; assuming init_tensor", dev);
            f |= VGPU_BUFT_NEEDS_INIT;
        }
    }
    if (d->zero_copy)
        f |= VGPU_BUFT_ZERO_COPY;
    ggml_backend_t be;
    if (vgpu_ctx_backend(ctx, dev, &be) == VGPU_OK && be->iface.graph_optimize)
        f |= VGPU_BUFT_GRAPH_OPTIMIZE;
    d->buft_flags = f;
    d->probed = true;
}

/* ---- objects ----------------------------------------------------------------------------------------- */

static uint32_t lookup(struct vgpu_ctx *ctx, uint64_t id, enum vgpu_obj_type type, const char *what, void **out)
{
    enum vgpu_obj_lookup r = vgpu_objects_get(&ctx->objects, id, type, out);
    if (r == VGPU_OBJ_FOUND)
        return VGPU_OK;
    if (r == VGPU_OBJ_WRONG_TYPE)
        return vgpu_set_fatal(ctx, VGPU_NOT_FOUND, "id 0x%016" PRIx64 " is not a %s (type confusion)", id, what);
    return vgpu_fail(ctx, VGPU_NOT_FOUND, "unknown or stale %s id 0x%016" PRIx64, what, id);
}

uint32_t vgpu_ctx_buffer(struct vgpu_ctx *ctx, uint64_t id, struct vgpu_buffer **out)
{
    void *p;
    uint32_t r = lookup(ctx, id, VGPU_OBJ_BUFFER, "buffer", &p);
    if (r == VGPU_OK)
        *out = p;
    return r;
}

uint32_t vgpu_buffer_check_live(struct vgpu_ctx *ctx, const struct vgpu_buffer *b)
{
    if (!b->zero_copy)
        return VGPU_OK;
    void *p = ctx->get_shmem_ptr ? ctx->get_shmem_ptr(ctx->id, b->res_id) : NULL;
    if (p != b->res_ptr)
        return vgpu_fail(ctx, VGPU_NOT_FOUND, "zero-copy buffer: resource %u was destroyed or remapped",
                         b->res_id);
    uint8_t *q;
    uint64_t size;
    if (vgpu_res_get(ctx, b->res_id, &q, &size) != VGPU_OK)
        return VGPU_NOT_FOUND;
    if (q != b->res_ptr || size < b->res_size)
        return vgpu_fail(ctx, VGPU_NOT_FOUND, "zero-copy buffer: resource %u shrank", b->res_id);
    return VGPU_OK;
}

uint32_t vgpu_ctx_buffer_live(struct vgpu_ctx *ctx, uint64_t id, struct vgpu_buffer **out)
{
    uint32_t r = vgpu_ctx_buffer(ctx, id, out);
    if (r != VGPU_OK)
        return r;
    return vgpu_buffer_check_live(ctx, *out);
}

uint32_t vgpu_ctx_buft(struct vgpu_ctx *ctx, uint64_t id, uint32_t *dev_out)
{
    void *p;
    uint32_t r = lookup(ctx, id, VGPU_OBJ_BUFT, "buffer type", &p);
    if (r == VGPU_OK)
        *dev_out = (uint32_t)((struct vgpu_device *)p - ctx->devices);
    return r;
}

uint32_t vgpu_ctx_buffer_alloc(struct vgpu_ctx *ctx, uint32_t dev, uint64_t size, uint32_t res_id,
                               void *res_ptr, uint64_t res_size, uint64_t max_tensor_size,
                               struct vgpu_buffer **out)
{
    struct vgpu_device *d = NULL;
    uint32_t r = vgpu_ctx_device(ctx, dev, &d);
    if (r != VGPU_OK)
        return r;
    if (ctx->n_buffers >= ctx->quota.buffers)
        return vgpu_fail(ctx, VGPU_QUOTA, "buffer count quota (%llu) reached",
                         (unsigned long long)ctx->quota.buffers);
    if (size > SIZE_MAX)
        return vgpu_fail(ctx, VGPU_INVALID, "buffer size %llu", (unsigned long long)size);

    ggml_backend_buffer_t buf;
    if (res_ptr) {
        if (!d->can_wrap)
            return vgpu_fail(ctx, VGPU_UNSUPPORTED, "device %u cannot wrap host memory", dev);
        if (size > res_size)
            return vgpu_fail(ctx, VGPU_INVALID, "zero-copy buffer of %llu bytes in resource %u of %llu bytes",
                             (unsigned long long)size, res_id, (unsigned long long)res_size);
        if (size == 0)
            return vgpu_fail(ctx, VGPU_INVALID, "zero-copy buffer of 0 bytes");
        size_t align = d->buft ? ggml_backend_buft_get_alignment(d->buft) : 64;
        if (align < 64)
            align = 64;
        if ((uintptr_t)res_ptr % align != 0)
            return vgpu_fail(ctx, VGPU_INVALID, "resource %u is not aligned to %zu bytes", res_id, align);
        if (max_tensor_size == 0 || max_tensor_size > size)
            max_tensor_size = size;
        buf = d->dev->iface.buffer_from_host_ptr(d->dev, res_ptr, (size_t)size, (size_t)max_tensor_size);
        if (!buf)
            return vgpu_fail(ctx, VGPU_BACKEND, "device %u: buffer_from_host_ptr failed", dev);
    } else {
        if (!d->buft)
            return vgpu_fail(ctx, VGPU_UNSUPPORTED, "device %u has no buffer type", dev);
        uint64_t max = ggml_backend_buft_get_max_size(d->buft);
        if (size > max)
            return vgpu_fail(ctx, VGPU_INVALID, "buffer of %llu bytes exceeds the maximum %llu",
                             (unsigned long long)size, (unsigned long long)max);
        if (size > ctx->quota.buffer_bytes || ctx->bytes_used > ctx->quota.buffer_bytes - size)
            return vgpu_fail(ctx, VGPU_QUOTA, "buffer bytes quota: %llu in use + %llu > %llu",
                             (unsigned long long)ctx->bytes_used, (unsigned long long)size,
                             (unsigned long long)ctx->quota.buffer_bytes);
        buf = ggml_backend_buft_alloc_buffer(d->buft, (size_t)size);
        if (!buf)
            return vgpu_fail(ctx, VGPU_NO_MEMORY, "device %u: cannot allocate %llu bytes", dev,
                             (unsigned long long)size);
    }

    struct vgpu_buffer *b = calloc(1, sizeof(*b));
    if (!b) {
        ggml_backend_buffer_free(buf);
        return vgpu_fail(ctx, VGPU_NO_MEMORY, "out of host memory");
    }
    b->buf = buf;
    b->dev = dev;
    b->size = ggml_backend_buffer_get_size(buf);
    b->base = b->size ? ggml_backend_buffer_get_base(buf) : NULL;
    if (b->size && !b->base) {
        free(b);
        ggml_backend_buffer_free(buf);
        return vgpu_fail(ctx, VGPU_BACKEND, "device %u: buffer without a base", dev);
    }
    if (res_ptr) {
        b->zero_copy = true;
        b->res_id = res_id;
        b->res_ptr = res_ptr;
        b->res_size = res_size;
        /* The backend must wrap the resource itself, never a copy or a larger range. */
        if (b->size > size || (b->base && ((uint8_t *)b->base < (uint8_t *)res_ptr ||
                                           (uint64_t)((uint8_t *)b->base - (uint8_t *)res_ptr) > size - b->size))) {
            free(b);
            ggml_backend_buffer_free(buf);
            return vgpu_fail(ctx, VGPU_BACKEND, "device %u: wrapped buffer is not inside the resource", dev);
        }
    }
    b->id = vgpu_objects_add(&ctx->objects, VGPU_OBJ_BUFFER, b);
    if (!b->id) {
        free(b);
        ggml_backend_buffer_free(buf);
        return vgpu_fail(ctx, VGPU_QUOTA, "handle table full");
    }
    if (!res_ptr) {
        /* Fresh host memory may hold another user's data: never let the guest read it. */
        if (b->size && buf->iface.clear)
            buf->iface.clear(buf, 0);
        ctx->bytes_used += b->size;
    }
    ctx->n_buffers++;
    *out = b;
    return VGPU_OK;
}

uint32_t vgpu_ctx_buffer_free(struct vgpu_ctx *ctx, uint64_t id)
{
    struct vgpu_buffer *b;
    uint32_t r = vgpu_ctx_buffer(ctx, id, &b);
    if (r != VGPU_OK)
        return r;
    vgpu_graph_cache_drop_buffer(ctx, b);
    vgpu_repack_drop_buffer(ctx, b);
    void *p;
    vgpu_objects_remove(&ctx->objects, id, VGPU_OBJ_BUFFER, &p);
    if (!b->zero_copy)
        ctx->bytes_used -= b->size;
    ctx->n_buffers--;
    ggml_backend_buffer_free(b->buf);
    free(b);
    return VGPU_OK;
}
