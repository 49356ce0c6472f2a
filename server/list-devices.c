/*
 * --list-devices: loads the APIR library in this process through the runtime (the same ABI
 * and code path a worker uses), then asks it for its devices with EXT_HELLO and
 * EXT_DEVICE_INFO and prints them as a guest will name them. Contract in server.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "abi.h"
#include "apir.h"
#include "codec.h"
#include "ext.h"
#include "server.h"
#include "wire.h"

#define LIST_CTX_ID 1u
#define LIST_REPLY_RES 1u
#define LIST_REPLY_SIZE (64u * 1024u)
#define LIST_MAX_PAYLOAD 64u

/* The in-process "guest": a context and its reply resource. */
struct lister {
    struct srv_rt *rt;
    uint8_t       *reply;
    size_t         reply_size;
};

/*
 * Runs one APIR command through the runtime and reads its result into *ret. Returns 0, or -1
 * after printing why (a command the runtime refused).
 */
static int call(struct lister *ls, int32_t type, uint32_t flags, const void *payload, size_t n,
                uint32_t *ret)
{
    uint8_t cmd[APIR_HEADER_SIZE + LIST_MAX_PAYLOAD];
    char why[256];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, cmd, sizeof(cmd));
    vgpu_enc_i32(&enc, type);
    vgpu_enc_u32(&enc, flags);
    vgpu_enc_u32(&enc, LIST_REPLY_RES);
    vgpu_enc_raw(&enc, payload, n);
    if (!vgpu_enc_ok(&enc))
        return -1;
    _Atomic uint32_t *word = (_Atomic uint32_t *)(void *)ls->reply;
    atomic_store_explicit(word, 0, memory_order_relaxed);
    if (srv_rt_submit(ls->rt, cmd, vgpu_enc_used(&enc), why, sizeof(why)) != 0) {
        fprintf(stderr, SRV_NAME ": command refused: %s\n", why);
        return -1;
    }
    *ret = atomic_load_explicit(word, memory_order_acquire) - 1u;
    return 0;
}

/* What a failed LOADLIBRARY code means, for the error message. */
static const char *load_error_text(uint32_t code)
{
    switch (code) {
    case APIR_LOAD_LIBRARY_CANNOT_OPEN: return "cannot open the APIR library (--apir-library)";
    case APIR_LOAD_LIBRARY_SYMBOL_MISSING: return "the APIR library lacks the APIR entry points";
    case APIR_LOAD_LIBRARY_INIT_BASE_INDEX + 3: return "the APIR library misses a config key";
    case APIR_LOAD_LIBRARY_INIT_BASE_INDEX + 4:
        return "the APIR library cannot open the GGML backend (--backend)";
    case APIR_LOAD_LIBRARY_INIT_BASE_INDEX + 5:
        return "the GGML backend lacks its registration symbol (--backend-reg)";
    default: return "the APIR library failed to initialise";
    }
}

/* HANDSHAKE then LOADLIBRARY. Returns 0, or -1 after printing why. */
static int load(struct lister *ls, const struct srv_options *opts)
{
    uint32_t ret = 0;
    uint8_t version[8];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, version, sizeof(version));
    vgpu_enc_u32(&enc, APIR_PROTOCOL_MAJOR);
    vgpu_enc_u32(&enc, APIR_PROTOCOL_MINOR);
    if (call(ls, APIR_COMMAND_TYPE_HANDSHAKE, 0, version, sizeof(version), &ret))
        return -1;
    if (ret != APIR_HANDSHAKE_MAGIC) {
        fprintf(stderr, SRV_NAME ": HANDSHAKE answered %" PRIu32 "\n", ret);
        return -1;
    }
    if (call(ls, APIR_COMMAND_TYPE_LOADLIBRARY, 0, NULL, 0, &ret))
        return -1;
    if (ret != APIR_LOAD_LIBRARY_SUCCESS) {
        fprintf(stderr,
                SRV_NAME ": LOADLIBRARY failed with code %" PRIu32 ": %s (%s, backend %s)\n", ret,
                load_error_text(ret), opts->apir_library, opts->backend);
        return -1;
    }
    return 0;
}

/* EXT_HELLO with this program's ggml fingerprint; the device count in *n. 0 or -1 (printed). */
static int hello(struct lister *ls, uint32_t *n)
{
    struct vgpu_abi_info abi;
    struct vgpu_hello h = { .ext_version = VGPU_EXT_VERSION };
    uint8_t req[LIST_MAX_PAYLOAD];
    uint32_t ret = 0;
    vgpu_abi_info_get(&abi);
    h.abi_hash = abi.hash;
    h.n_ops = abi.n_ops;
    h.n_types = abi.n_types;
    h.tensor_size = abi.tensor_size;
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, req, sizeof(req));
    vgpu_enc_hello_request(&enc, &h);
    if (call(ls, APIR_COMMAND_TYPE_FORWARD, VGPU_CMD_EXT_HELLO, req, vgpu_enc_used(&enc), &ret))
        return -1;
    if (ret != APIR_FORWARD_BASE_INDEX + VGPU_OK) {
        fprintf(stderr, SRV_NAME ": EXT_HELLO failed: %s (code %" PRIu32 ")\n",
                ret >= APIR_FORWARD_BASE_INDEX ? vgpu_status_name(ret - APIR_FORWARD_BASE_INDEX)
                                               : "no dispatcher",
                ret);
        return -1;
    }
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, ls->reply + APIR_REPLY_PAYLOAD_OFFSET,
                  ls->reply_size - APIR_REPLY_PAYLOAD_OFFSET);
    if (!vgpu_dec_hello_reply(&dec, &h)) {
        fprintf(stderr, SRV_NAME ": malformed EXT_HELLO reply\n");
        return -1;
    }
    *n = h.n_devices;
    return 0;
}

/* EXT_DEVICE_INFO for dev, printed as the guest names it. 0 or -1 (printed). */
static int print_device(struct lister *ls, uint32_t dev)
{
    struct vgpu_device_info info;
    uint8_t req[4];
    uint32_t ret = 0;
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, req, sizeof(req));
    vgpu_enc_u32(&enc, dev);
    if (call(ls, APIR_COMMAND_TYPE_FORWARD, VGPU_CMD_EXT_DEVICE_INFO, req, sizeof(req), &ret))
        return -1;
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, ls->reply + APIR_REPLY_PAYLOAD_OFFSET,
                  ls->reply_size - APIR_REPLY_PAYLOAD_OFFSET);
    if (ret != APIR_FORWARD_BASE_INDEX + VGPU_OK || !vgpu_dec_device_info(&dec, &info)) {
        fprintf(stderr, SRV_NAME ": EXT_DEVICE_INFO %" PRIu32 " failed (code %" PRIu32 ")\n", dev,
                ret);
        return -1;
    }
    printf("VirtGPU%" PRIu32 ": %s - %s, %" PRIu64 "/%" PRIu64 " MiB, buffer type %s%s\n", dev,
           info.name, info.description, info.mem_free >> 20, info.mem_total >> 20, info.buft_name,
           (info.buft_flags & VGPU_BUFT_ZERO_COPY) ? ", zero-copy" : "");
    return 0;
}

/* Creates the context and its reply resource (a memfd, as a guest would pass). 0 or -1. */
static int lister_open(struct lister *ls, const struct srv_options *opts)
{
    struct srv_rt_params params;
    uint64_t size = 0;
    srv_options_rt_params(opts, &params);
    int rc = srv_rt_create(LIST_CTX_ID, &params, &ls->rt);
    int fd = rc ? -1 : memfd_create("ggml-virtgpu-list", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd >= 0 && ftruncate(fd, LIST_REPLY_SIZE) == 0)
        rc = srv_rt_resource_import(ls->rt, LIST_REPLY_RES, fd, LIST_REPLY_SIZE);
    else
        rc = rc ? rc : -errno;
    if (fd >= 0)
        close(fd);
    ls->reply = rc ? NULL : srv_rt_resource_ptr(ls->rt, LIST_REPLY_RES, &size);
    ls->reply_size = (size_t)size;
    if (!ls->reply) {
        fprintf(stderr, SRV_NAME ": cannot set up a context: %s\n", strerror(rc ? -rc : EINVAL));
        return -1;
    }
    return 0;
}

int srv_list_devices(const struct srv_options *opts)
{
    struct lister ls = { 0 };
    uint32_t n = 0;
    int rc = 1;
    if (lister_open(&ls, opts) || load(&ls, opts) || hello(&ls, &n))
        goto out;
    if (n == 0) {
        fprintf(stderr, SRV_NAME ": the backend %s has no devices\n", opts->backend);
        goto out;
    }
    for (uint32_t dev = 0; dev < n; dev++)
        if (print_device(&ls, dev))
            goto out;
    rc = 0;
out:
    fflush(stdout);
    srv_rt_destroy(ls.rt);
    return rc;
}
