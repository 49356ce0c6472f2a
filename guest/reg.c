/*
 * The backend registration and the module's exported entry points.
 *
 * Start-up runs once per process (on the first ggml_backend_virtgpu_reg call, thread-safe):
 * connect -> HANDSHAKE -> LOADLIBRARY -> EXT_HELLO (unless GGML_VIRTGPU_BASELINE) ->
 * EXT_DEVICE_INFO per device (or the baseline queries for its one device). If no host
 * answers, the reg lists zero devices and exactly one line says why; the application runs on.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "apir.h"
#include "ext.h"
#include "ggml-impl.h"
#include "ggml-virtgpu.h"
#include "guest.h"
#include "transport.h"

static struct vgpu_state g_state;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

bool vgpu_env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static int env_timeout_ms(void)
{
    const char *v = getenv("GGML_VIRTGPU_TIMEOUT_MS");
    if (!v || !*v)
        return 0;
    char *end;
    long ms = strtol(v, &end, 10);
    if (*end || ms < 0 || ms > INT_MAX) {
        GGML_LOG_WARN("ggml-virtgpu: ignoring GGML_VIRTGPU_TIMEOUT_MS='%s' (not a number of milliseconds)\n", v);
        return 0;
    }
    return (int)ms;
}

/* ---- reg interface --------------------------------------------------------------------------- */

static const char *reg_get_name(ggml_backend_reg_t reg)
{
    (void)reg;
    return "VirtGPU";
}

static size_t reg_get_device_count(ggml_backend_reg_t reg)
{
    struct vgpu_state *st = reg->context;
    return st->n_devices;
}

static ggml_backend_dev_t reg_get_device(ggml_backend_reg_t reg, size_t index)
{
    struct vgpu_state *st = reg->context;
    return index < st->n_devices ? &st->devices[index].gdev : NULL;
}

static void *reg_get_proc_address(ggml_backend_reg_t reg, const char *name)
{
    (void)reg;
    if (name && strcmp(name, "ggml_backend_set_n_threads") == 0)
        return (void *)vgpu_backend_set_n_threads;
    return NULL;
}

static const struct ggml_backend_reg_i reg_iface = {
    .get_name = reg_get_name,
    .get_device_count = reg_get_device_count,
    .get_device = reg_get_device,
    .get_proc_address = reg_get_proc_address,
};

/* ---- start-up ------------------------------------------------------------------------------- */

static const char *load_library_reason(uint32_t code)
{
    switch (code) {
    case APIR_LOAD_LIBRARY_HYPERCALL_INITIALIZATION_ERROR: return "transport error";
    case APIR_LOAD_LIBRARY_ALREADY_LOADED: return "already loaded";
    case APIR_LOAD_LIBRARY_CFG_KEY_MISSING: return "the host has no ggml.library.path configured";
    case APIR_LOAD_LIBRARY_CANNOT_OPEN: return "the host cannot open its library";
    case APIR_LOAD_LIBRARY_SYMBOL_MISSING: return "a symbol is missing in the host library";
    default: return code >= APIR_LOAD_LIBRARY_INIT_BASE_INDEX ? "the host library failed to initialise" : "unknown";
    }
}

/* Logs the single "no host" line and drops the connection. */
static void no_host(struct vgpu_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void no_host(struct vgpu_state *st, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    GGML_LOG_WARN("ggml-virtgpu: no host: %s; 0 devices\n", text);
    if (st->ch) {
        vgpu_channel_destroy(st->ch);
        st->ch = NULL;
    }
    st->n_devices = 0;
}

static void startup(void)
{
    struct vgpu_state *st = &g_state;
    pthread_mutex_init(&st->hb_lock, NULL);
    st->reg.api_version = GGML_BACKEND_API_VERSION;
    st->reg.iface = reg_iface;
    st->reg.context = st;

    const char *path = getenv("GGML_VIRTGPU_SOCKET");
    if (!path || !*path) {
        GGML_LOG_WARN("ggml-virtgpu: no host: GGML_VIRTGPU_SOCKET is not set (the unix-socket transport to "
                      "ggml-virtgpu-server is the only one available); 0 devices\n");
        return;
    }

    char why[512];
    struct vgpu_transport *tp;
    if (vgpu_unix_open(path, env_timeout_ms(), &tp, why, sizeof(why)) != 0) {
        no_host(st, "%s", why);
        return;
    }
    st->ch = vgpu_channel_create(tp, why, sizeof(why));
    if (!st->ch) {
        no_host(st, "%s: %s", path, why);
        return;
    }

    uint32_t magic = 0, major = 0, minor = 0;
    if (vgpu_remote_handshake(st->ch, &magic, &major, &minor) != 0) {
        no_host(st, "%s: HANDSHAKE failed: %s", path, st->ch->lost_reason);
        return;
    }
    if (magic != APIR_HANDSHAKE_MAGIC) {
        no_host(st, "%s: HANDSHAKE answered 0x%x instead of 0x%x", path, magic, APIR_HANDSHAKE_MAGIC);
        return;
    }
    if (major != APIR_PROTOCOL_MAJOR)
        GGML_LOG_WARN("ggml-virtgpu: the host speaks APIR %u.%u, this guest %d.%d (different major version)\n",
                      major, minor, APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR);
    else if (minor != APIR_PROTOCOL_MINOR)
        GGML_LOG_WARN("ggml-virtgpu: the host speaks APIR %u.%u, this guest %d.%d\n", major, minor,
                      APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR);

    uint32_t code = 0;
    if (vgpu_remote_load_library(st->ch, &code) != 0) {
        no_host(st, "%s: LOADLIBRARY failed: %s", path, st->ch->lost_reason);
        return;
    }
    if (code != APIR_LOAD_LIBRARY_SUCCESS && code != APIR_LOAD_LIBRARY_ALREADY_LOADED) {
        no_host(st, "%s: LOADLIBRARY answered %u (%s)", path, code, load_library_reason(code));
        return;
    }

    st->baseline = vgpu_env_flag("GGML_VIRTGPU_BASELINE");
    uint32_t n_devices = 1;
    if (!st->baseline) {
        struct vgpu_abi_info abi;
        vgpu_abi_info_get(&abi);
        struct vgpu_hello req = { 0 }, rep;
        req.ext_version = VGPU_EXT_VERSION; /* hosts accept any version >= 1 and answer theirs */
        req.features = 0;
        req.abi_hash = abi.hash;
        req.n_ops = abi.n_ops;
        req.n_types = abi.n_types;
        req.tensor_size = abi.tensor_size;
        int hc = vgpu_remote_ext_hello(st->ch, &req, &rep);
        if (hc == VGPU_OK) {
            n_devices = rep.n_devices;
            st->graph_cache_slots = rep.graph_cache_slots;
            vgpu_channel_limit_command(st->ch, rep.max_command_size);
            /* Version 2 hosts take EXT_BATCH: deferred commands, async computes, host buffers. */
            if (rep.ext_version >= VGPU_EXT_VERSION_BATCH && !vgpu_env_flag("GGML_VIRTGPU_NO_BATCH")) {
                vgpu_channel_enable_batching(st->ch);
                if (rep.ext_version >= VGPU_EXT_VERSION_NO_WAIT)
                    vgpu_channel_enable_no_wait(st->ch);
            }
        } else if (hc == VGPU_ABI_MISMATCH) {
            no_host(st,
                    "%s: ggml ABI mismatch: this guest's ggml has %u ops, %u types, %u-byte tensors (hash "
                    "%016llx), the host's %u ops, %u types, %u-byte tensors (hash %016llx); build both against "
                    "the same ggml",
                    path, abi.n_ops, abi.n_types, abi.tensor_size, (unsigned long long)abi.hash, rep.n_ops,
                    rep.n_types, rep.tensor_size, (unsigned long long)rep.abi_hash);
            return;
        } else if (hc == VGPU_UNKNOWN_COMMAND) {
            st->baseline = true;
            GGML_LOG_INFO("ggml-virtgpu: the host library has no extensions: using the APIR 0.2 baseline\n");
        } else if (hc < 0) {
            no_host(st, "%s: EXT_HELLO failed: %s", path,
                    vgpu_channel_is_lost(st->ch) ? st->ch->lost_reason : "no answer");
            return;
        } else {
            st->baseline = true;
            GGML_LOG_WARN("ggml-virtgpu: EXT_HELLO refused (%s): using the APIR 0.2 baseline\n",
                          vgpu_status_name((uint32_t)hc));
        }
    }

    if (n_devices > 64) {
        GGML_LOG_WARN("ggml-virtgpu: the host reports %u devices; using the first 64\n", n_devices);
        n_devices = 64;
    }
    if (n_devices == 0) {
        no_host(st, "%s: the host has no devices", path);
        return;
    }
    struct vgpu_device_info *infos = calloc(n_devices, sizeof(*infos));
    st->devices = calloc(n_devices, sizeof(*st->devices));
    if (!infos || !st->devices) {
        free(infos);
        free(st->devices);
        st->devices = NULL;
        no_host(st, "out of memory");
        return;
    }
    for (uint32_t i = 0; i < n_devices; i++) {
        int dc = st->baseline ? vgpu_remote_base_device_info(st->ch, &infos[i])
                              : vgpu_remote_ext_device_info(st->ch, i, &infos[i]);
        if (dc != VGPU_OK) {
            free(infos);
            free(st->devices);
            st->devices = NULL;
            no_host(st, "%s: device %u: %s", path, i,
                    dc > 0 ? vgpu_status_name((uint32_t)dc)
                           : vgpu_channel_is_lost(st->ch) ? st->ch->lost_reason : "malformed answer");
            return;
        }
    }
    for (uint32_t i = 0; i < n_devices; i++)
        vgpu_device_init(&st->devices[i], st, i, &infos[i]);
    st->n_devices = n_devices;
    free(infos);

    GGML_LOG_INFO("ggml-virtgpu: %s: %zu device%s (%s)\n", st->ch->tp->endpoint, st->n_devices,
                  st->n_devices == 1 ? "" : "s",
                  st->baseline ? "APIR 0.2 baseline"
                               : vgpu_channel_batching(st->ch) ? "extensions v2, batched" : "extensions v1");
    for (size_t i = 0; i < st->n_devices; i++) {
        struct vgpu_device *d = &st->devices[i];
        GGML_LOG_INFO("ggml-virtgpu:   %s: %s, %s buffers%s\n", d->name, d->description,
                      d->zero_copy ? "zero-copy" : "host-allocated", d->host_buffers ? ", host buffer type" : "");
    }
}

ggml_backend_reg_t ggml_backend_virtgpu_reg(void)
{
    pthread_once(&g_once, startup);
    return &g_state.reg;
}

/* 1, not 0: a score of 0 makes ggml's loader skip the module without a word. */
static int vgpu_score(void)
{
    return 1;
}

GGML_BACKEND_DL_IMPL(ggml_backend_virtgpu_reg)
GGML_BACKEND_DL_SCORE_IMPL(vgpu_score)
