/*
 * A tiny APIR library for the server tests: the three APIR entry points with scripted
 * FORWARD behaviours (fake-apir-lib.h). It keeps per-context state like a real library, so
 * that several contexts can share one process (--no-fork). Built twice: normally, and with
 * FAKE_NO_DISPATCHER (no apir_backend_dispatcher: LOADLIBRARY must answer 5).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apir.h"
#include "codec.h"
#include "ext.h"
#include "fake-apir-lib.h"
#include "wire.h"

#define FAKE_EXPORT __attribute__((visibility("default")))
#define FAKE_MAX_CTX 256
#define FAKE_MAX_KEY 128

uint32_t apir_backend_initialize(uint32_t ctx_id, struct virgl_apir_callbacks *cbs);
uint32_t apir_backend_dispatcher(uint32_t ctx_id, struct virgl_apir_callbacks *cbs,
                                 uint32_t cmd_id, char *dec_cur, const char *dec_end,
                                 char *enc_cur, const char *enc_end, char **enc_cur_after);
void apir_backend_deinit(uint32_t ctx_id);

struct fake_ctx {
    uint32_t ctx_id;
    uint32_t cb_size; /* apir.callbacks.size as the runtime announced it */
    struct virgl_apir_callbacks *cbs;
};

static struct {
    pthread_mutex_t lock;
    struct fake_ctx ctx[FAKE_MAX_CTX];
    uint32_t        n;
} fake = { PTHREAD_MUTEX_INITIALIZER, { { 0, 0, NULL } }, 0 };

/* Records a new context; returns the init code (0, or 6 + 7 "already initialised"). */
static uint32_t add_ctx(uint32_t ctx_id, uint32_t cb_size, struct virgl_apir_callbacks *cbs)
{
    uint32_t rc = 0;
    pthread_mutex_lock(&fake.lock);
    for (uint32_t i = 0; i < fake.n; i++)
        if (fake.ctx[i].ctx_id == ctx_id)
            rc = APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_ALREADY_INITED;
    if (rc == 0 && fake.n == FAKE_MAX_CTX)
        rc = APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_BACKEND_INIT_FAILED;
    if (rc == 0)
        fake.ctx[fake.n++] = (struct fake_ctx){ ctx_id, cb_size, cbs };
    pthread_mutex_unlock(&fake.lock);
    return rc;
}

/*
 * Records the context (answering 6, "6 + success", which the runtime must take as success),
 * or returns $FAKE_APIR_INIT_RET; 3 if ggml.library.path is missing, like the real library.
 */
FAKE_EXPORT uint32_t apir_backend_initialize(uint32_t ctx_id, struct virgl_apir_callbacks *cbs)
{
    const char *forced = getenv(FAKE_ENV_INIT_RET);
    if (forced)
        return (uint32_t)strtoul(forced, NULL, 10);
    /* like the real library: the backend path is required */
    if (!cbs->get_config(ctx_id, VGPU_CFG_LIBRARY_PATH))
        return APIR_LOAD_LIBRARY_CFG_KEY_MISSING;
    const char *size = cbs->get_config(ctx_id, VGPU_CFG_CALLBACKS_SIZE);
    uint32_t cb_size = size ? (uint32_t)strtoul(size, NULL, 10) : 0;
    uint32_t rc = add_ctx(ctx_id, cb_size, cbs);
    /* 6 = "6 + success", which the runtime must also take as success */
    return rc ? rc : APIR_LOAD_LIBRARY_INIT_BASE_INDEX;
}

/* Forgets the context and logs "deinit <ctx_id>" to $FAKE_APIR_DEINIT_LOG if set. */
FAKE_EXPORT void apir_backend_deinit(uint32_t ctx_id)
{
    pthread_mutex_lock(&fake.lock);
    for (uint32_t i = 0; i < fake.n; i++) {
        if (fake.ctx[i].ctx_id == ctx_id) {
            fake.ctx[i] = fake.ctx[--fake.n];
            break;
        }
    }
    pthread_mutex_unlock(&fake.lock);
    const char *path = getenv(FAKE_ENV_DEINIT_LOG);
    if (!path)
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    char line[32];
    int n = snprintf(line, sizeof(line), "deinit %u\n", ctx_id);
    if (write(fd, line, (size_t)n) != n)
        (void)0;
    close(fd);
}

#ifndef FAKE_NO_DISPATCHER

/* A copy of context ctx_id's record in *out; 0, or -1 if it is not initialised. */
static int find_ctx(uint32_t ctx_id, struct fake_ctx *out)
{
    int rc = -1;
    pthread_mutex_lock(&fake.lock);
    for (uint32_t i = 0; i < fake.n; i++) {
        if (fake.ctx[i].ctx_id == ctx_id) {
            *out = fake.ctx[i];
            rc = 0;
        }
    }
    pthread_mutex_unlock(&fake.lock);
    return rc;
}

/* Copies the rest of the request into the reply. */
static uint32_t do_echo(struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    size_t n = vgpu_dec_left(dec);
    vgpu_enc_raw(enc, dec->cur, n);
    return vgpu_enc_ok(enc) ? VGPU_OK : VGPU_INVALID;
}

/* Looks a resource up through both callbacks and checksums it. */
static uint32_t do_resource(const struct fake_ctx *fc, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t res_id = vgpu_dec_u32(dec);
    uint8_t *p = fc->cbs->get_shmem_ptr(fc->ctx_id, res_id);
    uint64_t size = 0;
    int status = -1;
    if (fc->cb_size >= sizeof(struct vgpu_apir_callbacks)) {
        const struct vgpu_apir_callbacks *ext = (const void *)fc->cbs;
        status = ext->get_shmem_size(fc->ctx_id, res_id, &size);
    }
    vgpu_enc_u32(enc, p != NULL);
    vgpu_enc_i32(enc, status);
    vgpu_enc_u64(enc, size);
    vgpu_enc_u64(enc, p && status == 0 ? fake_checksum(p, (size_t)size) : 0);
    return VGPU_OK;
}

/* Fills a resource with one byte value. */
static uint32_t do_fill(const struct fake_ctx *fc, struct vgpu_dec *dec)
{
    uint32_t res_id = vgpu_dec_u32(dec);
    uint32_t value = vgpu_dec_u32(dec);
    uint8_t *p = fc->cbs->get_shmem_ptr(fc->ctx_id, res_id);
    uint64_t size = 0;
    const struct vgpu_apir_callbacks *ext = (const void *)fc->cbs;
    if (!p || fc->cb_size < sizeof(*ext) || ext->get_shmem_size(fc->ctx_id, res_id, &size))
        return VGPU_NOT_FOUND;
    memset(p, (int)value, (size_t)size);
    return VGPU_OK;
}

/* Reads a config value of this or another context. */
static uint32_t do_config(const struct fake_ctx *fc, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    char key[FAKE_MAX_KEY];
    uint32_t ctx_id = vgpu_dec_u32(dec);
    if (!vgpu_dec_string(dec, key, sizeof(key)))
        return VGPU_INVALID;
    const char *value = fc->cbs->get_config(ctx_id ? ctx_id : fc->ctx_id, key);
    vgpu_enc_u32(enc, value != NULL);
    vgpu_enc_string(enc, value ? value : "");
    return vgpu_enc_ok(enc) ? VGPU_OK : VGPU_INVALID;
}

/* Identifies the context and the process. */
static uint32_t do_info(const struct fake_ctx *fc, struct vgpu_enc *enc)
{
    pthread_mutex_lock(&fake.lock);
    uint32_t live = fake.n;
    pthread_mutex_unlock(&fake.lock);
    vgpu_enc_u32(enc, fc->ctx_id);
    vgpu_enc_u32(enc, (uint32_t)getpid());
    vgpu_enc_u32(enc, live);
    vgpu_enc_u32(enc, fc->cb_size);
    return VGPU_OK;
}

/* Sleeps the requested milliseconds. */
static uint32_t do_sleep(const struct fake_ctx *fc, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t ms = vgpu_dec_u32(dec);
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return do_info(fc, enc);
}

/* EXT_HELLO: two devices, the guest's fingerprint accepted as it is. */
static uint32_t do_ext_hello(struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    struct vgpu_hello h;
    if (!vgpu_dec_hello_request(dec, &h))
        return VGPU_INVALID;
    h.ext_version = VGPU_EXT_VERSION;
    h.features = 0;
    h.n_devices = FAKE_N_DEVICES;
    h.graph_cache_slots = 0;
    h.max_command_size = 0;
    vgpu_enc_hello_reply(enc, &h);
    return VGPU_OK;
}

/* EXT_DEVICE_INFO of the two fake devices. */
static uint32_t do_ext_device_info(struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t dev = vgpu_dec_u32(dec);
    struct vgpu_device_info d;
    if (dev >= FAKE_N_DEVICES)
        return VGPU_NOT_FOUND;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "FakeDev%u", dev);
    snprintf(d.description, sizeof(d.description), "Fake device %s", dev ? "one" : "zero");
    snprintf(d.buft_name, sizeof(d.buft_name), "FAKE%u", dev);
    d.mem_free = dev ? 512ull << 20 : 1024ull << 20;
    d.mem_total = dev ? 512ull << 20 : 2048ull << 20;
    d.alignment = 32;
    d.max_size = UINT64_MAX;
    d.buft_flags = dev ? 0 : VGPU_BUFT_ZERO_COPY;
    vgpu_enc_device_info(enc, &d);
    return VGPU_OK;
}

/* Runs one scripted command. */
static uint32_t dispatch(const struct fake_ctx *fc, uint32_t cmd, struct vgpu_dec *dec,
                         struct vgpu_enc *enc)
{
    switch (cmd) {
    case FAKE_CMD_ECHO: return do_echo(dec, enc);
    case FAKE_CMD_RETURN: return vgpu_dec_u32(dec);
    case FAKE_CMD_RESOURCE: return do_resource(fc, dec, enc);
    case FAKE_CMD_SLEEP: return do_sleep(fc, dec, enc);
    case FAKE_CMD_ABORT: abort();
    case FAKE_CMD_CONFIG: return do_config(fc, dec, enc);
    case FAKE_CMD_INFO: return do_info(fc, enc);
    case FAKE_CMD_FILL: return do_fill(fc, dec);
    case VGPU_CMD_EXT_HELLO: return do_ext_hello(dec, enc);
    case VGPU_CMD_EXT_DEVICE_INFO: return do_ext_device_info(dec, enc);
    default: return VGPU_UNKNOWN_COMMAND;
    }
}

/*
 * Runs a scripted command (fake-apir-lib.h) for an initialised context called with the
 * callbacks it was initialised with; VGPU_FATAL otherwise.
 */
FAKE_EXPORT uint32_t apir_backend_dispatcher(uint32_t ctx_id, struct virgl_apir_callbacks *cbs,
                                             uint32_t cmd_id, char *dec_cur, const char *dec_end,
                                             char *enc_cur, const char *enc_end,
                                             char **enc_cur_after)
{
    struct fake_ctx fc;
    struct vgpu_dec dec;
    struct vgpu_enc enc;
    *enc_cur_after = enc_cur;
    if (find_ctx(ctx_id, &fc) != 0 || fc.cbs != cbs)
        return VGPU_FATAL;
    if (cmd_id == FAKE_CMD_BAD_AFTER) {
        *enc_cur_after = (char *)enc_end + 1;
        return VGPU_OK;
    }
    vgpu_dec_init(&dec, dec_cur, (size_t)(dec_end - dec_cur));
    vgpu_enc_init(&enc, enc_cur, (size_t)(enc_end - enc_cur));
    uint32_t rc = dispatch(&fc, cmd_id, &dec, &enc);
    if (!vgpu_enc_ok(&enc))
        return VGPU_INVALID;
    *enc_cur_after = enc_cur + vgpu_enc_used(&enc);
    return rc;
}

#endif /* FAKE_NO_DISPATCHER */
