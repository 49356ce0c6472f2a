/*
 * Fake APIR runtime for tests; contracts in apir-harness.h.
 */
#include "apir-harness.h"

#include "abi.h"
#include "ext.h"
#include "ggml.h"
#include "wire.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_HARNESSES 16
#define MAX_KEYS      32
/* Resources per harness: above the library's 1024 host-buffer registrations (security tests). */
#define MAX_RES       1100

struct res {
    uint32_t id;
    void    *ptr;
    size_t   size;
    size_t   map_len; /* mapping incl. guard page */
};

struct apir_harness {
    uint32_t ctx_id;
    void    *lib;
    apir_backend_initialize_fn init;
    apir_backend_dispatcher_fn dispatch;
    apir_backend_deinit_fn     deinit;
    bool                       inited;
    bool                       size_cb;
    bool                       scan;

    char *keys[MAX_KEYS];
    char *values[MAX_KEYS];

    struct res res[MAX_RES];

    struct vgpu_apir_callbacks cbs;

    uint8_t        *cmd;
    size_t          cmd_cap;
    struct vgpu_enc enc;
    uint8_t        *reply;
    size_t          reply_cap;
    size_t          reply_len;
    size_t          pointer_hits;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct apir_harness *registry[MAX_HARNESSES];

static struct apir_harness *lookup(uint32_t ctx_id)
{
    struct apir_harness *h = NULL;
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < MAX_HARNESSES; i++) {
        if (registry[i] && registry[i]->ctx_id == ctx_id)
            h = registry[i];
    }
    pthread_mutex_unlock(&reg_mu);
    return h;
}

static const char *cb_get_config(uint32_t ctx_id, const char *key)
{
    struct apir_harness *h = lookup(ctx_id);
    if (!h)
        return NULL;
    for (int i = 0; i < MAX_KEYS; i++) {
        if (h->keys[i] && !strcmp(h->keys[i], key))
            return h->values[i];
    }
    return NULL;
}

static struct res *find_res(struct apir_harness *h, uint32_t res_id)
{
    for (int i = 0; i < MAX_RES; i++) {
        if (h->res[i].ptr && h->res[i].id == res_id)
            return &h->res[i];
    }
    return NULL;
}

static void *cb_get_shmem_ptr(uint32_t ctx_id, uint32_t res_id)
{
    struct apir_harness *h = lookup(ctx_id);
    struct res *r = h ? find_res(h, res_id) : NULL;
    return r ? r->ptr : NULL;
}

static int cb_get_shmem_size(uint32_t ctx_id, uint32_t res_id, uint64_t *size)
{
    struct apir_harness *h = lookup(ctx_id);
    struct res *r = h ? find_res(h, res_id) : NULL;
    if (!r)
        return -1;
    *size = r->size;
    return 0;
}

void apir_harness_config(struct apir_harness *h, const char *key, const char *value)
{
    int free_slot = -1;
    for (int i = 0; i < MAX_KEYS; i++) {
        if (h->keys[i] && !strcmp(h->keys[i], key)) {
            free(h->values[i]);
            if (value) {
                h->values[i] = strdup(value);
            } else {
                free(h->keys[i]);
                h->keys[i] = NULL;
                h->values[i] = NULL;
            }
            return;
        }
        if (!h->keys[i] && free_slot < 0)
            free_slot = i;
    }
    if (value && free_slot >= 0) {
        h->keys[free_slot] = strdup(key);
        h->values[free_slot] = strdup(value);
    }
}

struct apir_harness *apir_harness_open(uint32_t ctx_id, const struct apir_harness_opts *opts)
{
    struct apir_harness_opts o;
    memset(&o, 0, sizeof(o));
    if (opts)
        o = *opts;
    struct apir_harness *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->ctx_id = ctx_id;
    h->size_cb = !o.no_size_callback;
    h->scan = !o.no_pointer_scan;
    h->cmd_cap = o.command_size ? o.command_size : (4u << 20);
    h->reply_cap = o.reply_size ? o.reply_size : (4u << 20);
    h->cmd = malloc(h->cmd_cap);
    h->reply = malloc(h->reply_cap);
    const char *lib = o.library_path ? o.library_path : VGPU_HOST_LIBRARY_PATH;
    h->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h->cmd || !h->reply || !h->lib) {
        fprintf(stderr, "apir-harness: cannot load %s: %s\n", lib, dlerror());
        free(h->cmd);
        free(h->reply);
        if (h->lib)
            dlclose(h->lib);
        free(h);
        return NULL;
    }
    *(void **)&h->init = dlsym(h->lib, "apir_backend_initialize");
    *(void **)&h->dispatch = dlsym(h->lib, "apir_backend_dispatcher");
    *(void **)&h->deinit = dlsym(h->lib, "apir_backend_deinit");

    if (!o.omit_backend_path)
        apir_harness_config(h, VGPU_CFG_LIBRARY_PATH, o.backend_path ? o.backend_path : VGPU_DEFAULT_BACKEND_PATH);
    if (o.backend_reg)
        apir_harness_config(h, VGPU_CFG_LIBRARY_REG, o.backend_reg);
    if (h->size_cb) {
        char n[32];
        snprintf(n, sizeof(n), "%zu", sizeof(struct vgpu_apir_callbacks));
        apir_harness_config(h, VGPU_CFG_CALLBACKS_SIZE, n);
    }
    h->cbs.base.get_config = cb_get_config;
    h->cbs.base.get_shmem_ptr = cb_get_shmem_ptr;
    h->cbs.get_shmem_size = h->size_cb ? cb_get_shmem_size : NULL;

    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < MAX_HARNESSES; i++) {
        if (!registry[i]) {
            registry[i] = h;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    vgpu_enc_init(&h->enc, h->cmd, h->cmd_cap);
    return h;
}

uint32_t apir_harness_ctx_id(const struct apir_harness *h)
{
    return h->ctx_id;
}

uint32_t apir_harness_init(struct apir_harness *h)
{
    uint32_t r = h->init(h->ctx_id, &h->cbs.base);
    h->inited = r == 0;
    return r;
}

void apir_harness_deinit(struct apir_harness *h)
{
    if (h->inited)
        h->deinit(h->ctx_id);
    h->inited = false;
}

void apir_harness_close(struct apir_harness *h)
{
    if (!h)
        return;
    apir_harness_deinit(h);
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < MAX_HARNESSES; i++) {
        if (registry[i] == h)
            registry[i] = NULL;
    }
    pthread_mutex_unlock(&reg_mu);
    for (int i = 0; i < MAX_RES; i++) {
        if (h->res[i].ptr)
            munmap(h->res[i].ptr, h->res[i].map_len);
    }
    for (int i = 0; i < MAX_KEYS; i++) {
        free(h->keys[i]);
        free(h->values[i]);
    }
    dlclose(h->lib);
    free(h->cmd);
    free(h->reply);
    free(h);
}

void *apir_harness_res_create(struct apir_harness *h, uint32_t res_id, size_t size)
{
    return apir_harness_res_create_at(h, res_id, size, NULL);
}

void *apir_harness_res_create_at(struct apir_harness *h, uint32_t res_id, size_t size, void *addr)
{
    if (find_res(h, res_id))
        return NULL;
    struct res *slot = NULL;
    for (int i = 0; i < MAX_RES && !slot; i++) {
        if (!h->res[i].ptr)
            slot = &h->res[i];
    }
    if (!slot || size == 0)
        return NULL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = (size + page - 1) / page * page;
    int fd = memfd_create("apir-harness-res", MFD_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (ftruncate(fd, (off_t)len) != 0) {
        close(fd);
        return NULL;
    }
    /* Reserve the resource plus a guard page, then map the memfd over the front. */
    uint8_t *area = mmap(addr, len + page, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | (addr ? MAP_FIXED_NOREPLACE : 0), -1, 0);
    if (area == MAP_FAILED || (addr && area != addr)) {
        if (area != MAP_FAILED)
            munmap(area, len + page);
        close(fd);
        return NULL;
    }
    void *p = mmap(area, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        munmap(area, len + page);
        return NULL;
    }
    memset(p, 0, len);
    slot->id = res_id;
    slot->ptr = p;
    slot->size = size;
    slot->map_len = len + page;
    return p;
}

void apir_harness_res_destroy(struct apir_harness *h, uint32_t res_id)
{
    struct res *r = find_res(h, res_id);
    if (!r)
        return;
    munmap(r->ptr, r->map_len);
    memset(r, 0, sizeof(*r));
}

void *apir_harness_res_ptr(struct apir_harness *h, uint32_t res_id)
{
    struct res *r = find_res(h, res_id);
    return r ? r->ptr : NULL;
}

struct vgpu_enc *apir_harness_req(struct apir_harness *h)
{
    vgpu_enc_init(&h->enc, h->cmd, h->cmd_cap);
    return &h->enc;
}

/* ---- pointer scan ---------------------------------------------------------------------------------- */

struct range {
    uint64_t lo, hi;
};

static size_t read_maps(struct range *r, size_t cap)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    size_t n = 0;
    char line[512];
    while (n < cap && fgets(line, sizeof(line), f)) {
        unsigned long long lo, hi;
        if (sscanf(line, "%llx-%llx", &lo, &hi) != 2)
            continue;
        /* Sanitizer shadow and gap regions are huge and span small integers: skip them. */
        if (hi - lo >= (256ull << 20))
            continue;
        r[n].lo = lo;
        r[n].hi = hi;
        n++;
    }
    fclose(f);
    return n;
}

size_t apir_harness_scan(const void *p, size_t len, const char *what)
{
    static struct range ranges[8192];
    size_t nr = read_maps(ranges, 8192);
    size_t hits = 0;
    const uint8_t *b = p;
    for (size_t off = 0; off + 8 <= len; off += 4) {
        uint64_t v;
        memcpy(&v, b + off, 8);
        if (v < 0x10000)
            continue;
        for (size_t i = 0; i < nr; i++) {
            if (v >= ranges[i].lo && v < ranges[i].hi) {
                fprintf(stderr, "apir-harness: %s: host address 0x%016" PRIx64 " at byte %zu\n", what, v, off);
                hits++;
                break;
            }
        }
    }
    return hits;
}

size_t apir_harness_pointer_hits(const struct apir_harness *h)
{
    return h->pointer_hits;
}

/* ---- sending ------------------------------------------------------------------------------------------ */

uint32_t apir_harness_call(struct apir_harness *h, uint32_t cmd, const void *req, size_t len,
                           struct vgpu_dec *reply)
{
    /* An exactly sized copy: reading past the request is an ASan error, not stale bytes. */
    char *copy = malloc(len ? len : 1);
    if (len)
        memcpy(copy, req, len);
    memset(h->reply, 0xEE, h->reply_cap < 4096 ? h->reply_cap : 4096);
    char *after = (char *)h->reply + 12345; /* must be overwritten */
    uint32_t code = h->dispatch(h->ctx_id, &h->cbs.base, cmd, copy, copy + len, (char *)h->reply,
                                (const char *)h->reply + h->reply_cap, &after);
    free(copy);
    if (after < (char *)h->reply || after > (char *)h->reply + h->reply_cap) {
        fprintf(stderr, "apir-harness: enc_cur_after outside the reply buffer\n");
        abort();
    }
    h->reply_len = (size_t)(after - (char *)h->reply);
    if (h->scan)
        h->pointer_hits += apir_harness_scan(h->reply, h->reply_len, "reply");
    if (reply)
        vgpu_dec_init(reply, h->reply, h->reply_len);
    return code;
}

uint32_t apir_harness_send(struct apir_harness *h, uint32_t cmd, struct vgpu_dec *reply)
{
    if (!vgpu_enc_ok(&h->enc)) {
        fprintf(stderr, "apir-harness: request does not fit in the command buffer\n");
        abort();
    }
    return apir_harness_call(h, cmd, h->cmd, vgpu_enc_used(&h->enc), reply);
}

size_t apir_harness_reply_len(const struct apir_harness *h)
{
    return h->reply_len;
}

/* ---- extension helpers ------------------------------------------------------------------------------ */

uint32_t apir_harness_hello(struct apir_harness *h)
{
    struct vgpu_abi_info abi;
    vgpu_abi_info_get(&abi);
    struct vgpu_hello req = { VGPU_EXT_VERSION, 0, abi.hash, abi.n_ops, abi.n_types, abi.tensor_size, 0, 0, 0 };
    vgpu_enc_hello_request(apir_harness_req(h), &req);
    return apir_harness_send(h, VGPU_CMD_EXT_HELLO, NULL);
}

uint32_t apir_harness_alloc(struct apir_harness *h, uint32_t dev, uint64_t size, uint32_t zc_res_id,
                            uint64_t *id, uint32_t *granted)
{
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, dev);
    vgpu_enc_u32(e, zc_res_id ? VGPU_ALLOC_ZERO_COPY : 0);
    vgpu_enc_u64(e, 0);
    vgpu_enc_u64(e, size);
    vgpu_enc_u32(e, zc_res_id);
    vgpu_enc_u32(e, 0);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, VGPU_CMD_EXT_BUFFER_ALLOC, &d);
    uint64_t bid = vgpu_dec_u64(&d);
    (void)vgpu_dec_u64(&d);
    uint32_t fl = vgpu_dec_u32(&d);
    if (id)
        *id = r == 0 ? bid : 0;
    if (granted)
        *granted = r == 0 ? fl : 0;
    return r;
}

uint32_t apir_harness_free(struct apir_harness *h, uint64_t id)
{
    vgpu_enc_u64(apir_harness_req(h), id);
    return apir_harness_send(h, VGPU_CMD_EXT_BUFFER_FREE, NULL);
}

size_t apir_harness_graph_image(const struct vgpu_wire_tensor *t, uint32_t n, const uint32_t *nodes,
                                uint32_t n_nodes, uint8_t *out, size_t cap)
{
    struct vgpu_enc e;
    vgpu_enc_init(&e, out, cap);
    vgpu_enc_u32(&e, VGPU_GRAPH_MAGIC);
    vgpu_enc_u32(&e, n);
    vgpu_enc_u32(&e, n_nodes);
    vgpu_enc_u32(&e, 0);
    for (uint32_t i = 0; i < n; i++)
        vgpu_enc_wire_tensor(&e, &t[i]);
    for (uint32_t i = 0; i < n_nodes; i++)
        vgpu_enc_u32(&e, nodes[i]);
    return vgpu_enc_ok(&e) ? vgpu_enc_used(&e) : 0;
}

void apir_harness_wire(struct vgpu_wire_tensor *w, uint32_t type, int64_t ne0, int64_t ne1, int64_t ne2,
                       int64_t ne3, uint64_t buffer, uint64_t offset)
{
    memset(w, 0, sizeof(*w));
    w->type = type;
    w->ne[0] = ne0;
    w->ne[1] = ne1;
    w->ne[2] = ne2;
    w->ne[3] = ne3;
    w->nb[0] = ggml_type_size((enum ggml_type)type);
    w->nb[1] = w->nb[0] * (uint64_t)(ne0 / ggml_blck_size((enum ggml_type)type));
    w->nb[2] = w->nb[1] * (uint64_t)ne1;
    w->nb[3] = w->nb[2] * (uint64_t)ne2;
    w->buffer = buffer;
    w->data = offset;
}

static void enc_transfer(struct vgpu_enc *e, const struct vgpu_wire_tensor *w, uint64_t offset, size_t n)
{
    struct vgpu_transfer x;
    memset(&x, 0, sizeof(x));
    x.tensor = *w;
    x.offset = offset;
    x.size = n;
    x.n_copies = 1;
    vgpu_enc_transfer(e, &x);
}

uint32_t apir_harness_set(struct apir_harness *h, const struct vgpu_wire_tensor *w, uint64_t offset,
                          const void *data, size_t n)
{
    struct vgpu_enc *e = apir_harness_req(h);
    enc_transfer(e, w, offset, n);
    vgpu_enc_blob(e, data, n);
    return apir_harness_send(h, VGPU_CMD_EXT_TENSOR_SET, NULL);
}

uint32_t apir_harness_get(struct apir_harness *h, const struct vgpu_wire_tensor *w, uint64_t offset, void *data,
                          size_t n)
{
    enc_transfer(apir_harness_req(h), w, offset, n);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, VGPU_CMD_EXT_TENSOR_GET, &d);
    if (r != 0)
        return r;
    size_t len;
    const void *p = vgpu_dec_blob(&d, n, &len);
    if (!p || len != n)
        return 0xdeadu;
    memcpy(data, p, n);
    return 0;
}

/* ---- stderr capture ------------------------------------------------------------------------------ */

static int   capture_saved_fd = -1;
static FILE *capture_file;

int apir_harness_capture_begin(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    if (!capture_file)
        return -errno;
    capture_saved_fd = dup(STDERR_FILENO);
    if (capture_saved_fd < 0 || dup2(fileno(capture_file), STDERR_FILENO) < 0) {
        int e = -errno;
        if (capture_saved_fd >= 0)
            close(capture_saved_fd);
        capture_saved_fd = -1;
        fclose(capture_file);
        capture_file = NULL;
        return e;
    }
    return 0;
}

int apir_harness_capture_end(char *text, size_t cap)
{
    if (!capture_file || cap == 0)
        return -EINVAL;
    fflush(stderr);
    int rc = dup2(capture_saved_fd, STDERR_FILENO) < 0 ? -errno : 0;
    close(capture_saved_fd);
    capture_saved_fd = -1;
    rewind(capture_file);
    size_t n = fread(text, 1, cap - 1, capture_file);
    text[n] = '\0';
    fclose(capture_file);
    capture_file = NULL;
    return rc;
}
