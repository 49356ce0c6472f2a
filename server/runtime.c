/*
 * The APIR runtime: contexts, their config tables and resources, and the three APIR command
 * types, as virglrenderer's APIR component implements them (docs/PROTOCOL.md §2). Contracts
 * in runtime.h.
 *
 * Locking: one process-wide mutex protects the context table and every context's resource
 * array, because the library's callbacks look resources up by (ctx_id, res_id) from whatever
 * thread it calls them on. The mutex is never held while the library runs.
 */
#include "runtime.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "apir.h"
#include "codec.h"
#include "log.h"

/* Virglrenderer's name for the APIR library path; set for information only. */
#define SRV_CFG_APIR_LIBRARY "apir.load_library.path"
#define SRV_RT_MAX_CONFIG 12

struct srv_resource {
    uint32_t id;
    void    *addr;
    size_t   size;
    uint64_t charged; /* size rounded up to pages, counted against max_resource_bytes */
};

struct srv_cfg_entry {
    char *key;
    char *value;
};

struct srv_rt {
    uint32_t       ctx_id;
    struct srv_rt *next; /* context table link */

    struct srv_cfg_entry cfg[SRV_RT_MAX_CONFIG];
    size_t               n_cfg;

    struct srv_resource *res; /* sorted by id */
    size_t               n_res;
    size_t               cap_res;
    uint64_t             res_bytes;
    uint64_t             max_res_bytes;

    char                      *apir_library;
    void                      *lib;
    apir_backend_dispatcher_fn dispatch;
    apir_backend_deinit_fn     deinit;
    struct vgpu_apir_callbacks cbs; /* what the library gets; per context, so never shared */
};

/* The process-wide ctx_id -> context table (the runtime's one piece of global state). */
static struct {
    pthread_mutex_t lock;
    struct srv_rt  *head;
} ctx_table = { PTHREAD_MUTEX_INITIALIZER, NULL };

/* ---- table and resource lookups (callers hold ctx_table.lock) --------------------------- */

/* The context with this id, or NULL. */
static struct srv_rt *table_find_locked(uint32_t ctx_id)
{
    for (struct srv_rt *rt = ctx_table.head; rt; rt = rt->next)
        if (rt->ctx_id == ctx_id)
            return rt;
    return NULL;
}

/* Index of the first resource with id >= res_id (binary search over the sorted array). */
static size_t res_lower_bound(const struct srv_rt *rt, uint32_t res_id)
{
    size_t lo = 0, hi = rt->n_res;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rt->res[mid].id < res_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The resource res_id of rt, or NULL. */
static struct srv_resource *res_find_locked(struct srv_rt *rt, uint32_t res_id)
{
    size_t i = res_lower_bound(rt, res_id);
    return i < rt->n_res && rt->res[i].id == res_id ? &rt->res[i] : NULL;
}

/* ---- the callbacks the library calls --------------------------------------------------- */

/* get_config: the value of `key` in context ctx_id's table, or NULL. */
static const char *cb_get_config(uint32_t ctx_id, const char *key)
{
    const char *value = NULL;
    if (!key)
        return NULL;
    pthread_mutex_lock(&ctx_table.lock);
    struct srv_rt *rt = table_find_locked(ctx_id);
    for (size_t i = 0; rt && i < rt->n_cfg; i++) {
        if (strcmp(rt->cfg[i].key, key) == 0) {
            value = rt->cfg[i].value; /* immutable until the context ends */
            break;
        }
    }
    pthread_mutex_unlock(&ctx_table.lock);
    return value;
}

/* get_shmem_ptr: the host mapping of resource res_id of context ctx_id, or NULL. */
static void *cb_get_shmem_ptr(uint32_t ctx_id, uint32_t res_id)
{
    void *addr = NULL;
    pthread_mutex_lock(&ctx_table.lock);
    struct srv_rt *rt = table_find_locked(ctx_id);
    struct srv_resource *r = rt ? res_find_locked(rt, res_id) : NULL;
    if (r)
        addr = r->addr;
    pthread_mutex_unlock(&ctx_table.lock);
    return addr;
}

/* get_shmem_size: 0 and the size of resource res_id in *size, or -1 if it is unknown. */
static int cb_get_shmem_size(uint32_t ctx_id, uint32_t res_id, uint64_t *size)
{
    int rc = -1;
    pthread_mutex_lock(&ctx_table.lock);
    struct srv_rt *rt = table_find_locked(ctx_id);
    struct srv_resource *r = rt ? res_find_locked(rt, res_id) : NULL;
    if (r && size) {
        *size = r->size;
        rc = 0;
    }
    pthread_mutex_unlock(&ctx_table.lock);
    return rc;
}

/* ---- context life cycle ------------------------------------------------------------------ */

/* Appends key = value to rt's config table (both copied). Returns 0 or -ENOMEM. */
static int cfg_add(struct srv_rt *rt, const char *key, const char *value)
{
    if (rt->n_cfg >= SRV_RT_MAX_CONFIG)
        return -ENOMEM;
    char *k = strdup(key);
    char *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    rt->cfg[rt->n_cfg].key = k;
    rt->cfg[rt->n_cfg].value = v;
    rt->n_cfg++;
    return 0;
}

/* Appends key = decimal value unless value is SRV_RT_UNSET. Returns 0 or -ENOMEM. */
static int cfg_add_u64(struct srv_rt *rt, const char *key, uint64_t value)
{
    char buf[24];
    if (value == SRV_RT_UNSET)
        return 0;
    snprintf(buf, sizeof(buf), "%" PRIu64, value);
    return cfg_add(rt, key, buf);
}

/* Fills rt's config table from params (docs/PROTOCOL.md §2). Returns 0 or -ENOMEM. */
static int cfg_fill(struct srv_rt *rt, const struct srv_rt_params *p)
{
    int rc = 0;
    rc = rc ? rc : cfg_add(rt, VGPU_CFG_LIBRARY_PATH, p->backend);
    rc = rc ? rc : cfg_add(rt, VGPU_CFG_LIBRARY_REG, p->backend_reg);
    rc = rc ? rc : cfg_add(rt, SRV_CFG_APIR_LIBRARY, p->apir_library);
    if (p->rpc_servers)
        rc = rc ? rc : cfg_add(rt, VGPU_CFG_RPC_SERVERS, p->rpc_servers);
    rc = rc ? rc : cfg_add_u64(rt, VGPU_CFG_CALLBACKS_SIZE, sizeof(struct vgpu_apir_callbacks));
    rc = rc ? rc : cfg_add_u64(rt, VGPU_CFG_QUOTA_BUFFERS, p->quota_buffers);
    rc = rc ? rc : cfg_add_u64(rt, VGPU_CFG_QUOTA_BYTES, p->quota_buffer_bytes);
    rc = rc ? rc : cfg_add_u64(rt, VGPU_CFG_QUOTA_NODES, p->quota_graph_nodes);
    rc = rc ? rc : cfg_add_u64(rt, VGPU_CFG_QUOTA_COMMAND, p->quota_command_bytes);
    if (p->log_level)
        rc = rc ? rc : cfg_add(rt, VGPU_CFG_LOG_LEVEL, p->log_level);
    if (p->no_cpu_repack)
        rc = rc ? rc : cfg_add(rt, VGPU_CFG_CPU_REPACK, "0");
    return rc;
}

/* Frees what srv_rt_create allocated (config, resource array, path) and rt itself. */
static void rt_free(struct srv_rt *rt)
{
    for (size_t i = 0; i < rt->n_cfg; i++) {
        free(rt->cfg[i].key);
        free(rt->cfg[i].value);
    }
    free(rt->res);
    free(rt->apir_library);
    free(rt);
}

int srv_rt_create(uint32_t ctx_id, const struct srv_rt_params *params, struct srv_rt **out)
{
    int rc = -EINVAL;
    if (!params || !params->apir_library || !params->backend || !params->backend_reg || !out)
        return -EINVAL;
    struct srv_rt *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return -ENOMEM;
    rt->ctx_id = ctx_id;
    rt->max_res_bytes = params->max_resource_bytes;
    rt->cbs.base.get_config = cb_get_config;
    rt->cbs.base.get_shmem_ptr = cb_get_shmem_ptr;
    rt->cbs.get_shmem_size = cb_get_shmem_size;
    rt->apir_library = strdup(params->apir_library);
    rc = rt->apir_library ? cfg_fill(rt, params) : -ENOMEM;
    if (rc)
        goto fail;

    pthread_mutex_lock(&ctx_table.lock);
    if (table_find_locked(ctx_id)) {
        pthread_mutex_unlock(&ctx_table.lock);
        rc = -EEXIST;
        goto fail;
    }
    rt->next = ctx_table.head;
    ctx_table.head = rt;
    pthread_mutex_unlock(&ctx_table.lock);
    *out = rt;
    return 0;

fail:
    rt_free(rt);
    return rc;
}

/* Removes rt from the context table (no-op if it is not there). */
static void table_remove(struct srv_rt *rt)
{
    pthread_mutex_lock(&ctx_table.lock);
    for (struct srv_rt **pp = &ctx_table.head; *pp; pp = &(*pp)->next) {
        if (*pp == rt) {
            *pp = rt->next;
            break;
        }
    }
    pthread_mutex_unlock(&ctx_table.lock);
}

void srv_rt_destroy(struct srv_rt *rt)
{
    if (!rt)
        return;
    /* The library may still use the callbacks while it tears down: stay in the table. */
    if (rt->lib && rt->deinit)
        rt->deinit(rt->ctx_id);
    if (rt->lib)
        dlclose(rt->lib);
    table_remove(rt);
    for (size_t i = 0; i < rt->n_res; i++)
        munmap(rt->res[i].addr, rt->res[i].size);
    rt_free(rt);
}

uint32_t srv_rt_ctx_id(const struct srv_rt *rt)
{
    return rt->ctx_id;
}

/* ---- resources ----------------------------------------------------------------------------- */

/*
 * Seals a memfd against shrinking if it is not already; best effort (files that cannot be
 * sealed are accepted: a client that shrinks one only crashes its own worker).
 */
static void seal_shrink(int fd, uint32_t res_id)
{
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals >= 0 && (seals & F_SEAL_SHRINK))
        return;
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0)
        SRV_DEBUG("resource %" PRIu32 ": not sealed against shrinking (%s)", res_id,
                  strerror(errno));
}

/*
 * Checks that fd is a regular file of at least size bytes and computes the page-rounded
 * size to charge in *charged. Returns 0 or -EINVAL.
 */
static int check_resource_fd(int fd, uint64_t size, uint64_t *charged)
{
    struct stat st;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    if (size == 0 || size > (uint64_t)SIZE_MAX - page || size > (uint64_t)INT64_MAX)
        return -EINVAL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (uint64_t)st.st_size < size)
        return -EINVAL;
    *charged = (size + page - 1) / page * page;
    return 0;
}

/*
 * Checks under the lock that res_id is new and that `charged` more bytes fit the quotas, and
 * grows the resource array so that one insertion cannot fail. Returns 0, -EEXIST, -EDQUOT or
 * -ENOMEM.
 */
static int res_reserve(struct srv_rt *rt, uint32_t res_id, uint64_t charged)
{
    int rc = 0;
    pthread_mutex_lock(&ctx_table.lock);
    if (res_find_locked(rt, res_id)) {
        rc = -EEXIST;
    } else if (rt->n_res >= SRV_RT_MAX_RESOURCES ||
               (rt->max_res_bytes && charged > rt->max_res_bytes - rt->res_bytes)) {
        rc = -EDQUOT;
    } else if (rt->n_res == rt->cap_res) {
        size_t cap = rt->cap_res ? rt->cap_res * 2 : 16;
        struct srv_resource *grown = realloc(rt->res, cap * sizeof(*grown));
        if (grown) {
            rt->res = grown;
            rt->cap_res = cap;
        } else {
            rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&ctx_table.lock);
    return rc;
}

/* Inserts a resource whose room res_reserve made, keeping the array sorted. */
static void res_insert(struct srv_rt *rt, const struct srv_resource *r)
{
    pthread_mutex_lock(&ctx_table.lock);
    size_t i = res_lower_bound(rt, r->id);
    memmove(&rt->res[i + 1], &rt->res[i], (rt->n_res - i) * sizeof(rt->res[0]));
    rt->res[i] = *r;
    rt->n_res++;
    rt->res_bytes += r->charged;
    pthread_mutex_unlock(&ctx_table.lock);
}

int srv_rt_resource_import(struct srv_rt *rt, uint32_t res_id, int fd, uint64_t size)
{
    struct srv_resource r = { .id = res_id, .size = (size_t)size };
    if (res_id == 0)
        return -EINVAL;
    int rc = check_resource_fd(fd, size, &r.charged);
    if (rc)
        return rc;
    /* Only the owning thread inserts, so what res_reserve checked still holds after mmap. */
    rc = res_reserve(rt, res_id, r.charged);
    if (rc)
        return rc;
    seal_shrink(fd, res_id);
    r.addr = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (r.addr == MAP_FAILED) {
        rc = errno == ENOMEM ? -ENOMEM : -EINVAL;
        SRV_DEBUG("resource %" PRIu32 ": mmap of %" PRIu64 " bytes failed: %s", res_id, size,
                  strerror(errno));
        return rc;
    }
    res_insert(rt, &r);
    return 0;
}

int srv_rt_resource_destroy(struct srv_rt *rt, uint32_t res_id)
{
    struct srv_resource gone = { 0 };
    pthread_mutex_lock(&ctx_table.lock);
    size_t i = res_lower_bound(rt, res_id);
    bool found = i < rt->n_res && rt->res[i].id == res_id;
    if (found) {
        gone = rt->res[i];
        memmove(&rt->res[i], &rt->res[i + 1], (rt->n_res - i - 1) * sizeof(rt->res[0]));
        rt->n_res--;
        rt->res_bytes -= gone.charged;
    }
    pthread_mutex_unlock(&ctx_table.lock);
    if (!found)
        return -ENOENT;
    munmap(gone.addr, gone.size);
    return 0;
}

void *srv_rt_resource_ptr(struct srv_rt *rt, uint32_t res_id, uint64_t *size)
{
    void *addr = NULL;
    pthread_mutex_lock(&ctx_table.lock);
    struct srv_resource *r = res_find_locked(rt, res_id);
    if (r) {
        addr = r->addr;
        if (size)
            *size = r->size;
    }
    pthread_mutex_unlock(&ctx_table.lock);
    return addr;
}

/* ---- commands ------------------------------------------------------------------------------ */

/* The parsed command: header fields, payload, and the resolved reply resource. */
struct srv_cmd {
    int32_t  type;
    uint32_t flags;
    uint32_t reply_id;
    char    *payload;
    size_t   payload_size;
    uint8_t *reply;
    size_t   reply_size;
};

/*
 * Publishes a reply: stores 1 + ret into the reply word with release semantics (everything
 * written to the reply payload before becomes visible first), then wakes every waiter. The
 * futex is not private: the word lives in memory shared with another process.
 */
static void write_reply_word(uint8_t *reply, uint32_t ret)
{
    _Atomic uint32_t *word = (_Atomic uint32_t *)(void *)reply;
    atomic_store_explicit(word, ret + 1u, memory_order_release);
    syscall(SYS_futex, (uint32_t *)(void *)reply, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* HANDSHAKE: logs the guest's version, answers the protocol version and the magic. */
static int cmd_handshake(struct srv_rt *rt, const struct srv_cmd *c, uint32_t *ret, char *why,
                         size_t why_size)
{
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, c->payload, c->payload_size);
    uint32_t major = vgpu_dec_u32(&dec);
    uint32_t minor = vgpu_dec_u32(&dec);
    if (!vgpu_dec_ok(&dec)) {
        snprintf(why, why_size, "HANDSHAKE without a protocol version");
        return -EPROTO;
    }
    if (c->reply_size < APIR_REPLY_PAYLOAD_OFFSET + 8) {
        snprintf(why, why_size, "reply resource %" PRIu32 " too small for HANDSHAKE", c->reply_id);
        return -EPROTO;
    }
    if (major != APIR_PROTOCOL_MAJOR)
        SRV_WARN("ctx %" PRIu32 ": guest speaks APIR %" PRIu32 ".%" PRIu32 ", host %d.%d",
                 rt->ctx_id, major, minor, APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR);
    else
        SRV_DEBUG("ctx %" PRIu32 ": HANDSHAKE, guest APIR %" PRIu32 ".%" PRIu32, rt->ctx_id,
                  major, minor);
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, c->reply + APIR_REPLY_PAYLOAD_OFFSET, 8);
    vgpu_enc_u32(&enc, APIR_PROTOCOL_MAJOR);
    vgpu_enc_u32(&enc, APIR_PROTOCOL_MINOR);
    *ret = APIR_HANDSHAKE_MAGIC;
    return 0;
}

/*
 * Opens the APIR library and resolves its entry points into *lib, *init, rt->dispatch and
 * rt->deinit. Returns 0 or the LOADLIBRARY code (CANNOT_OPEN, SYMBOL_MISSING).
 */
static uint32_t open_library(struct srv_rt *rt, void **lib, apir_backend_initialize_fn *init)
{
    *lib = dlopen(rt->apir_library, RTLD_NOW | RTLD_LOCAL);
    if (!*lib) {
        SRV_WARN("ctx %" PRIu32 ": cannot open APIR library: %s", rt->ctx_id, dlerror());
        return APIR_LOAD_LIBRARY_CANNOT_OPEN;
    }
    *init = (apir_backend_initialize_fn)dlsym(*lib, "apir_backend_initialize");
    rt->dispatch = (apir_backend_dispatcher_fn)dlsym(*lib, "apir_backend_dispatcher");
    rt->deinit = (apir_backend_deinit_fn)dlsym(*lib, "apir_backend_deinit");
    if (!*init || !rt->dispatch) {
        SRV_WARN("ctx %" PRIu32 ": %s lacks apir_backend_initialize or apir_backend_dispatcher",
                 rt->ctx_id, rt->apir_library);
        rt->dispatch = NULL;
        rt->deinit = NULL;
        dlclose(*lib);
        return APIR_LOAD_LIBRARY_SYMBOL_MISSING;
    }
    return 0;
}

/*
 * LOADLIBRARY: loads and initialises the APIR library once per context. The library's init
 * code 0 or 6 (= 6 + its own success) is success; any other code k answers 6 + k.
 */
static uint32_t cmd_load_library(struct srv_rt *rt)
{
    void *lib = NULL;
    apir_backend_initialize_fn init = NULL;
    if (rt->lib)
        return APIR_LOAD_LIBRARY_ALREADY_LOADED;
    uint32_t code = open_library(rt, &lib, &init);
    if (code)
        return code;
    uint32_t r = init(rt->ctx_id, &rt->cbs.base);
    if (r != APIR_LOAD_LIBRARY_SUCCESS && r != APIR_LOAD_LIBRARY_INIT_BASE_INDEX) {
        SRV_WARN("ctx %" PRIu32 ": apir_backend_initialize failed with code %" PRIu32,
                 rt->ctx_id, r);
        rt->dispatch = NULL;
        rt->deinit = NULL;
        dlclose(lib);
        if (r > UINT32_MAX - 2 - APIR_LOAD_LIBRARY_INIT_BASE_INDEX)
            return APIR_LOAD_LIBRARY_HYPERCALL_INITIALIZATION_ERROR; /* would wrap the word */
        return APIR_LOAD_LIBRARY_INIT_BASE_INDEX + r;
    }
    rt->lib = lib;
    SRV_INFO("ctx %" PRIu32 ": APIR library loaded (%s)", rt->ctx_id, rt->apir_library);
    return APIR_LOAD_LIBRARY_SUCCESS;
}

/*
 * FORWARD: runs the library's dispatcher with the payload as input and the reply resource
 * after the reply word as output. 1 without a library or when the dispatcher reports an end
 * outside the reply area; otherwise 4 + the handler's code.
 */
static uint32_t cmd_forward(struct srv_rt *rt, const struct srv_cmd *c)
{
    if (!rt->dispatch)
        return APIR_FORWARD_NO_DISPATCH_FN;
    char *enc = (char *)c->reply + APIR_REPLY_PAYLOAD_OFFSET;
    char *end = (char *)c->reply + c->reply_size;
    char *after = enc;
    uint32_t r = rt->dispatch(rt->ctx_id, &rt->cbs.base, c->flags, c->payload,
                              c->payload + c->payload_size, enc, end, &after);
    if ((uintptr_t)after < (uintptr_t)enc || (uintptr_t)after > (uintptr_t)end) {
        SRV_WARN("ctx %" PRIu32 ": command %" PRIu32 " reported a reply end outside the reply "
                 "resource", rt->ctx_id, c->flags);
        return APIR_FORWARD_NO_DISPATCH_FN;
    }
    if (r > UINT32_MAX - 2 - APIR_FORWARD_BASE_INDEX)
        return APIR_FORWARD_NO_DISPATCH_FN; /* 1 + 4 + r would wrap to "pending" */
    return APIR_FORWARD_BASE_INDEX + r;
}

/*
 * Decodes the 12-byte header, maps the Venus route's types down, and resolves the reply
 * resource. Returns 0 or a protocol error with a reason.
 */
static int parse_command(struct srv_rt *rt, void *cmd, size_t size, struct srv_cmd *c, char *why,
                         size_t why_size)
{
    if (size < APIR_HEADER_SIZE) {
        snprintf(why, why_size, "APIR command of %zu bytes, shorter than its header", size);
        return -EPROTO;
    }
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, cmd, APIR_HEADER_SIZE);
    c->type = vgpu_dec_i32(&dec);
    c->flags = (uint32_t)vgpu_dec_i32(&dec);
    c->reply_id = vgpu_dec_u32(&dec);
    if (c->type >= APIR_VENUS_COMMAND_TYPE_OFFSET)
        c->type -= APIR_VENUS_COMMAND_TYPE_OFFSET;
    c->payload = (char *)cmd + APIR_HEADER_SIZE;
    c->payload_size = size - APIR_HEADER_SIZE;

    uint64_t reply_size = 0;
    c->reply = srv_rt_resource_ptr(rt, c->reply_id, &reply_size);
    c->reply_size = (size_t)reply_size;
    if (!c->reply) {
        snprintf(why, why_size, "unknown reply resource %" PRIu32, c->reply_id);
        return -ENOENT;
    }
    if (c->reply_size < APIR_REPLY_PAYLOAD_OFFSET) {
        snprintf(why, why_size, "reply resource %" PRIu32 " smaller than the reply word",
                 c->reply_id);
        return -EPROTO;
    }
    return 0;
}

int srv_rt_submit(struct srv_rt *rt, void *cmd, size_t size, char *why, size_t why_size)
{
    struct srv_cmd c;
    uint32_t ret = 0;
    int rc = parse_command(rt, cmd, size, &c, why, why_size);
    if (rc)
        return rc;
    switch (c.type) {
    case APIR_COMMAND_TYPE_HANDSHAKE:
        rc = cmd_handshake(rt, &c, &ret, why, why_size);
        break;
    case APIR_COMMAND_TYPE_LOADLIBRARY:
        ret = cmd_load_library(rt);
        break;
    case APIR_COMMAND_TYPE_FORWARD:
        ret = cmd_forward(rt, &c);
        break;
    default:
        snprintf(why, why_size, "unknown APIR command type %" PRId32, c.type);
        rc = -EPROTO;
        break;
    }
    if (rc)
        return rc;
    write_reply_word(c.reply, ret);
    return 0;
}
