/*
 * Fuzz target: the FORWARD dispatcher as a whole, through the library's real ABI
 * (apir_backend_initialize / _dispatcher / _deinit), against a live context on the real CPU
 * backend with real buffers and shared resources.
 *
 * Input:  u8 flags, then records {u16 cmd, u16 len, len bytes} executed in order.
 *   flags bit 0  leave the context without EXT_HELLO (set-up runs it, then revokes it)
 *         bit 1  no pre-allocated buffers
 *         bit 2  a 48-byte reply area (replies that do not fit)
 *         bit 3  no get_shmem_size: the library sizes resources from /proc/self/maps
 *   cmd < 0xff00  FORWARD command `cmd` with the record's bytes as its request
 *   0xff00 FILL   u8 res, u8 pad[3], u32 offset, bytes: writes into resource res (graph images
 *                 for BACKEND_GRAPH_COMPUTE / EXT_GRAPH_COMPUTE live there)
 *   0xff01 RES    u8 res, u8 action (0 destroy, 1 restore, 2 report u32 size at byte 4)
 *   0xff02 CMD32  u32 cmd, request: any 32-bit command id
 *   0xff03 LIFE   deinitialise the context, or initialise it again (no set-up) if it is gone
 * Id markers (fuzz.h) in requests and FILL bytes become real ids: entry 0 is the device's
 * buffer type, 1..4 the pre-allocated buffers, then every new id a reply has carried.
 *
 * Each input gets a fresh context (set up in a few hundred microseconds) and zeroed
 * resources, so every crash reproduces from its input alone. Pre-allocated buffers:
 * 1 zero-copy 256 KiB (all of resource 1), 2 host 64 KiB, 3 zero-copy 64 KiB (resource 4),
 * 4 host 256 B. Quotas keep each input fast: 1 MiB of host buffers, 32 buffers, 128 graph
 * nodes, 48 KiB requests. Resources: 1 and 2 of 256 KiB, 3 of 1 MiB, 4 of 64 KiB, each between
 * guard pages; ids 1..65535 resolve to them (id - 1) % 4.
 *
 * Properties checked on every command: enc_cur_after stays inside the reply area, a failing
 * command (but EXT_HELLO) writes no reply, the code is a documented one, an uninitialised
 * context answers INVALID, a fatal context answers FATAL from then on, and no reply (but
 * EXT_TENSOR_GET's data) carries an address of a resource or a host buffer. ASan/UBSan, the
 * guard pages around every resource and host buffer, and LeakSanitizer check the rest.
 */
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "codec.h"
#include "ext.h"
#include "fuzz.h"
#include "wire.h"

uint32_t apir_backend_initialize(uint32_t ctx_id, struct virgl_apir_callbacks *cbs);
uint32_t apir_backend_dispatcher(uint32_t ctx_id, struct virgl_apir_callbacks *cbs, uint32_t cmd_id,
                                 char *dec_cur, const char *dec_end, char *enc_cur, const char *enc_end,
                                 char **enc_cur_after);
void     apir_backend_deinit(uint32_t ctx_id);

#define CTX_ID 7u

enum {
    F_NO_HELLO    = 1,
    F_NO_PREALLOC = 2,
    F_SMALL_REPLY = 4,
    F_MAPS_SIZING = 8,
};

enum {
    OP_FILL  = 0xff00,
    OP_RES   = 0xff01,
    OP_CMD32 = 0xff02,
    OP_LIFE  = 0xff03,
};

#define REPLY_CAP       (64u << 10)
#define SMALL_REPLY_CAP 48u

struct session {
    struct virgl_apir_callbacks *cbs;
    struct fz_ids                ids;
    bool                         inited;
    bool                         fatal; /* the context must answer FATAL from now on */
    uint8_t                     *reply;
    size_t                       reply_cap;
};

static const char *g_log_level = "error";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_log_level = fz_process_setup();
    struct fz_runtime *rt = fz_rt();
    fz_runtime_init(rt, CTX_ID);
    fz_res_add(rt, 256u << 10);
    fz_res_add(rt, 256u << 10);
    fz_res_add(rt, 1u << 20);
    fz_res_add(rt, 64u << 10);
    fz_config(rt, VGPU_CFG_LIBRARY_PATH, fz_backend_path());
    fz_config(rt, VGPU_CFG_LOG_LEVEL, g_log_level);
    fz_config_u64(rt, VGPU_CFG_QUOTA_BYTES, 1u << 20);
    fz_config_u64(rt, VGPU_CFG_QUOTA_BUFFERS, 32);
    fz_config_u64(rt, VGPU_CFG_QUOTA_NODES, 128);
    fz_config_u64(rt, VGPU_CFG_QUOTA_COMMAND, 48u << 10);
    return 0;
}

/* True for the codes docs/PROTOCOL.md §2.1 lists (those proto/apir.c has a name for). */
static bool known_code(uint32_t code)
{
    return strcmp(vgpu_status_name(code), vgpu_status_name(UINT32_MAX)) != 0;
}

/* No 8-byte value at a 4-byte step of the reply may be a resource or host-buffer address. */
static void check_no_addresses(uint32_t cmd, const uint8_t *reply, size_t len)
{
    if (cmd == VGPU_CMD_EXT_TENSOR_GET) /* tensor data: the guest's own bytes */
        return;
    for (size_t off = 0; off + 8 <= len; off += 4) {
        uint64_t v = fz_get64(reply + off);
        FZ_CHECK(!fz_is_known_address(v), "command %u: reply byte %zu carries host address 0x%llx", cmd, off,
                 (unsigned long long)v);
    }
}

/*
 * Sends one FORWARD command (the request copied into an exactly sized heap block, markers
 * patched), checks the properties above, learns new ids from a successful reply. Returns the
 * handler code; *reply_len (if non-NULL) gets the reply's length.
 */
static uint32_t call(struct session *s, uint32_t cmd, const uint8_t *req, size_t len, size_t *reply_len)
{
    uint8_t *copy = malloc(len ? len : 1);
    FZ_CHECK(copy, "out of memory");
    if (len)
        memcpy(copy, req, len);
    fz_ids_patch(&s->ids, copy, len);
    char *start = (char *)s->reply;
    char *after = start + 1; /* must be overwritten */
    uint32_t code = apir_backend_dispatcher(CTX_ID, s->cbs, cmd, (char *)copy, (char *)copy + len, start,
                                            start + s->reply_cap, &after);
    free(copy);

    FZ_CHECK(after >= start && after <= start + s->reply_cap, "command %u: enc_cur_after outside the reply", cmd);
    size_t n = (size_t)(after - start);
    FZ_CHECK(known_code(code), "command %u: undocumented code %u", cmd, code);
    FZ_CHECK(code == VGPU_OK || cmd == VGPU_CMD_EXT_HELLO || n == 0, "command %u failed (%u) with a %zu-byte reply",
             cmd, code, n);
    if (!s->inited) {
        FZ_CHECK(code == VGPU_INVALID, "command %u to an uninitialised context answered %u", cmd, code);
    } else if (s->fatal) {
        FZ_CHECK(code == VGPU_FATAL, "command %u to a fatal context answered %u", cmd, code);
    }
    if (code == VGPU_FATAL || code == VGPU_UNKNOWN_COMMAND)
        s->fatal = true;
    check_no_addresses(cmd, s->reply, n);
    if (code == VGPU_OK)
        fz_ids_learn(&s->ids, s->reply, n);
    if (reply_len)
        *reply_len = n;
    return code;
}

/* A set-up command that must succeed. */
static void setup_call(struct session *s, uint32_t cmd, const void *req, size_t len)
{
    uint32_t code = call(s, cmd, req, len, NULL);
    FZ_CHECK(code == VGPU_OK, "set-up command %u failed with %u", cmd, code);
}

static void setup_alloc(struct session *s, uint64_t size)
{
    uint8_t req[16];
    fz_put64(req, s->ids.v[0]); /* the buffer type */
    fz_put64(req + 8, size);
    setup_call(s, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER, req, sizeof(req));
}

static void setup_wrap(struct session *s, uint32_t res_id, uint64_t size)
{
    uint8_t req[20];
    fz_put32(req, res_id);
    fz_put64(req + 4, size);
    fz_put64(req + 12, 0);
    setup_call(s, APIR_CMD_DEVICE_BUFFER_FROM_PTR, req, sizeof(req));
}

/* EXT_HELLO with this build's ABI and `version` (0 revokes the extensions: INVALID). */
static uint32_t setup_hello(struct session *s, uint32_t version)
{
    struct vgpu_abi_info abi;
    vgpu_abi_info_get(&abi);
    struct vgpu_hello h = { version, 0, abi.hash, abi.n_ops, abi.n_types, abi.tensor_size, 0, 0, 0 };
    uint8_t req[32];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, req, sizeof(req));
    vgpu_enc_hello_request(&enc, &h);
    FZ_CHECK(vgpu_enc_ok(&enc) && vgpu_enc_used(&enc) == sizeof(req), "hello request");
    return call(s, VGPU_CMD_EXT_HELLO, req, sizeof(req), NULL);
}

static void session_init(struct session *s)
{
    uint32_t r = apir_backend_initialize(CTX_ID, s->cbs);
    FZ_CHECK(r == 0, "apir_backend_initialize failed with %u (backend %s)", r, fz_backend_path());
    s->inited = true;
    s->fatal = false;
}

static void session_deinit(struct session *s)
{
    if (s->inited)
        apir_backend_deinit(CTX_ID);
    s->inited = false;
    s->fatal = false;
}

/*
 * A fresh context: its buffer type learnt (id entry 0), one CPU thread (the backend's default
 * would start threads per compute), and unless the flags say otherwise the extensions and
 * four buffers (entries 1..4).
 */
static void session_begin(struct session *s, uint8_t flags)
{
    memset(s, 0, sizeof(*s));
    struct fz_runtime *rt = fz_rt();
    s->cbs = fz_callbacks(rt, !(flags & F_MAPS_SIZING));
    /* Exactly sized reply areas: a write past enc_end is an ASan report. */
    size_t cap = (flags & F_SMALL_REPLY) ? SMALL_REPLY_CAP : REPLY_CAP;
    uint8_t *final_reply = malloc(cap);
    s->reply = malloc(REPLY_CAP);
    s->reply_cap = REPLY_CAP;
    FZ_CHECK(s->reply && final_reply, "out of memory");
    session_init(s);

    setup_call(s, APIR_CMD_DEVICE_GET_BUFFER_TYPE, NULL, 0);
    FZ_CHECK(s->ids.n == 1, "no buffer type id");
    FZ_CHECK(setup_hello(s, VGPU_EXT_VERSION) == VGPU_OK, "EXT_HELLO failed");
    uint8_t threads[8];
    fz_put32(threads, 0);
    fz_put32(threads + 4, 1);
    setup_call(s, VGPU_CMD_EXT_SET_N_THREADS, threads, sizeof(threads));
    if (!(flags & F_NO_PREALLOC)) {
        setup_wrap(s, 1, 256u << 10);
        setup_alloc(s, 64u << 10);
        setup_wrap(s, 4, 64u << 10);
        setup_alloc(s, 256);
        FZ_CHECK(s->ids.n == 5, "pre-allocated buffers: %u ids", s->ids.n);
    }
    if (flags & F_NO_HELLO)
        FZ_CHECK(setup_hello(s, 0) == VGPU_INVALID, "revoking EXT_HELLO");
    free(s->reply);
    s->reply = final_reply;
    s->reply_cap = cap;
}

/* Frees the context and zeroes every resource, so the next input starts from scratch. */
static void session_end(struct session *s)
{
    session_deinit(s);
    free(s->reply);
    struct fz_runtime *rt = fz_rt();
    for (int i = 0; i < rt->n_res; i++)
        fz_res_reset(&rt->res[i]);
}

static void op_fill(const uint8_t *p, size_t len)
{
    if (len < 8)
        return;
    struct fz_runtime *rt = fz_rt();
    struct fz_res *r = &rt->res[p[0] % rt->n_res];
    fz_res_fill(r, fz_get32(p + 4), p + 8, len - 8);
}

static void op_res(const uint8_t *p, size_t len)
{
    if (len < 2)
        return;
    struct fz_runtime *rt = fz_rt();
    struct fz_res *r = &rt->res[p[0] % rt->n_res];
    switch (p[1] % 3) {
    case 0:
        fz_res_destroy(r);
        break;
    case 1:
        fz_res_restore(r);
        break;
    default:
        if (len >= 8)
            r->size = fz_get32(p + 4) % (r->full + 1);
        break;
    }
}

/* FILL's bytes are patched like requests: graph images in resources name buffers by marker. */
static void run_record(struct session *s, uint16_t cmd, const uint8_t *p, size_t len)
{
    switch (cmd) {
    case OP_FILL: {
        uint8_t *copy = malloc(len ? len : 1);
        FZ_CHECK(copy, "out of memory");
        memcpy(copy, p, len);
        if (len > 8)
            fz_ids_patch(&s->ids, copy + 8, len - 8);
        op_fill(copy, len);
        free(copy);
        break;
    }
    case OP_RES:
        op_res(p, len);
        break;
    case OP_CMD32:
        if (len >= 4)
            call(s, fz_get32(p), p + 4, len - 4, NULL);
        break;
    case OP_LIFE:
        if (s->inited)
            session_deinit(s);
        else
            session_init(s);
        break;
    default:
        if (cmd < 0xff00)
            call(s, cmd, p, len, NULL);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct session s;
    session_begin(&s, data[0]);
    const uint8_t *p = data + 1, *end = data + size;
    while (end - p >= 4) {
        uint16_t cmd = fz_get16(p);
        size_t len = fz_get16(p + 2);
        p += 4;
        if (len > (size_t)(end - p))
            len = (size_t)(end - p);
        run_record(&s, cmd, p, len);
        p += len;
    }
    session_end(&s);
    return 0;
}
