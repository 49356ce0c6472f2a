/*
 * Attacks that no hole of the peers maps to: malicious use of the extension commands that
 * neither the upstream host nor ggml-rpc has, and guest strings in the host's log, as crafted
 * messages through the real library:
 *
 *   test_ext_before_hello_and_bad_hello    extension ids before a successful EXT_HELLO; HELLOs
 *                                          with version 0 or another ggml ABI
 *   test_ext_batch_framing                 EXT_BATCH headers and entries that lie about their
 *                                          sizes, nest, batch EXT_HELLO, or count 0 / too many
 *   test_ext_batch_stop_skip_resume        a failing entry stops the batch and nothing after it
 *                                          runs (SKIPPED) until a RESUME; unknown and truncated
 *                                          entries make the context fatal; the reply area ends
 *   test_ext_host_buffer_register_abuse    EXT_HOST_BUFFER_REGISTER ranges past or wrapping
 *                                          around the resource, twice, too many, resources
 *                                          destroyed while registered
 *   test_ext_set_n_threads_bounds          0, 2^32 - 1 threads, a device that does not exist
 *   test_log_injection_through_names       tensor names with newlines and escapes, quoted in
 *                                          the host's log lines (both protocols)
 *
 * As everywhere in this suite: every refusal is an error reply (or, for a batch, an error code
 * in its entry), the host survives, and the context works afterwards (sec_check_alive) or,
 * for a protocol violation, is fatal while a new context works (sec_check_fatal_then_new).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "sec-common.h"

#define EXPECT(call, code)                                                                          \
    do {                                                                                            \
        uint32_t r_ = (call);                                                                       \
        if (r_ != (uint32_t)(code))                                                                 \
            fail_msg("%s:%d: %s answered %u (%s), expected %u (%s)", __FILE__, __LINE__, #call, r_, \
                     vgpu_status_name(r_), (uint32_t)(code), vgpu_status_name(code));              \
    } while (0)

static uint32_t ext_nop(struct apir_harness *h)
{
    apir_harness_req(h);
    return apir_harness_send(h, VGPU_CMD_EXT_NOP, NULL);
}

/* EXT_BUFFER_CLEAR(buf, value) as request bytes (12). */
static size_t clear_req(uint8_t *out, uint64_t buf, uint32_t value)
{
    struct vgpu_enc e;
    vgpu_enc_init(&e, out, 12);
    vgpu_enc_u64(&e, buf);
    vgpu_enc_u32(&e, value);
    return vgpu_enc_used(&e);
}

/* The first n bytes of buffer `buf` read back (inline GET); each must equal `value`. */
static void expect_bytes(struct apir_harness *h, uint64_t buf, uint8_t value, size_t n)
{
    uint8_t back[256];
    assert_true(n <= sizeof(back));
    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_I8, (int64_t)n, 1, 1, 1, buf, 0);
    EXPECT(apir_harness_get(h, &w, 0, back, n), VGPU_OK);
    for (size_t i = 0; i < n; i++) {
        if (back[i] != value)
            fail_msg("buffer byte %zu is 0x%02x, expected 0x%02x", i, back[i], value);
    }
}

/* ===== extension commands before EXT_HELLO; bad HELLOs ============================================ */

static uint32_t hello_with(struct apir_harness *h, uint32_t version, uint64_t hash_xor, size_t *reply_len)
{
    struct vgpu_abi_info abi;
    vgpu_abi_info_get(&abi);
    struct vgpu_hello req = { version, 0, abi.hash ^ hash_xor, abi.n_ops, abi.n_types, abi.tensor_size, 0, 0, 0 };
    vgpu_enc_hello_request(apir_harness_req(h), &req);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, VGPU_CMD_EXT_HELLO, &d);
    *reply_len = apir_harness_reply_len(h);
    struct vgpu_hello rep;
    assert_true(vgpu_dec_hello_reply(&d, &rep)); /* always written: the guest reports both sides */
    assert_int_equal(rep.abi_hash, abi.hash);
    return r;
}

static void test_ext_before_hello_and_bad_hello(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false); /* initialised, no EXT_HELLO */
    uint8_t req[64];
    memset(req, 0, sizeof(req));
    const uint32_t cmds[] = { VGPU_CMD_EXT_NOP, VGPU_CMD_EXT_BUFFER_ALLOC, VGPU_CMD_EXT_GRAPH_COMPUTE,
                              VGPU_CMD_EXT_BATCH, VGPU_CMD_EXT_HOST_BUFFER_REGISTER, VGPU_CMD_EXT_SET_N_THREADS };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        EXPECT(apir_harness_call(h, cmds[i], req, sizeof(req), NULL), VGPU_INVALID);
        assert_int_equal(apir_harness_reply_len(h), 0);
    }
    /* Refused, not fatal: the baseline protocol keeps working. */
    sec_check_alive(h, false);
    size_t len;
    EXPECT(hello_with(h, 0, 0, &len), VGPU_INVALID);
    assert_true(len > 0);
    EXPECT(ext_nop(h), VGPU_INVALID);
    EXPECT(hello_with(h, 1, 0x5A5A, &len), VGPU_ABI_MISMATCH);
    assert_true(len > 0);
    EXPECT(ext_nop(h), VGPU_INVALID);
    /* A short HELLO is a decoder overrun: fatal. Before that, a good one works. */
    EXPECT(hello_with(h, 1, 0, &len), VGPU_OK);
    sec_check_alive(h, true);
    EXPECT(apir_harness_call(h, VGPU_CMD_EXT_HELLO, req, 12, NULL), VGPU_INVALID);
    sec_check_fatal_then_new(h, true);
}

/* ===== EXT_BATCH framing ============================================================================ */

/* A batch request under construction in the harness's command buffer. */
static struct vgpu_enc *batch_begin(struct apir_harness *h, uint32_t n, uint32_t flags)
{
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, n);
    vgpu_enc_u32(e, flags);
    return e;
}

/* One entry: cmd, the declared size, then `len` payload bytes (which may differ on purpose). */
static void batch_entry(struct vgpu_enc *e, uint32_t cmd, uint32_t declared, const void *payload, size_t len)
{
    vgpu_enc_u32(e, cmd);
    vgpu_enc_u32(e, declared);
    if (len)
        vgpu_enc_raw(e, payload, len);
}

/* A parsed batch reply. */
struct batch_reply {
    uint32_t n_run, status;
    uint32_t code[8];
    uint32_t len[8];
    const uint8_t *data[8];
};

/* Sends the batch; when it answers OK, parses its reply (at most 8 entries are kept). */
static uint32_t batch_send(struct apir_harness *h, struct batch_reply *br)
{
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, VGPU_CMD_EXT_BATCH, &d);
    memset(br, 0, sizeof(*br));
    if (r != VGPU_OK) {
        assert_int_equal(apir_harness_reply_len(h), 0);
        return r;
    }
    br->n_run = vgpu_dec_u32(&d);
    br->status = vgpu_dec_u32(&d);
    for (uint32_t i = 0; i < br->n_run; i++) {
        uint32_t code = vgpu_dec_u32(&d);
        uint32_t len = vgpu_dec_u32(&d);
        assert_true(vgpu_dec_ok(&d));
        assert_true(len <= vgpu_dec_left(&d));
        assert_int_equal(len % 4, 0);
        if (i < 8) {
            br->code[i] = code;
            br->len[i] = len;
            br->data[i] = (const uint8_t *)d.cur;
        }
        d.cur += len;
    }
    assert_true(vgpu_dec_ok(&d));
    return r;
}

static void test_ext_batch_framing(void **state)
{
    (void)state;
    enum { TRUNC_HEADER, MISSING_ENTRY, SIZE_PAST_END, SIZE_HUGE, SIZE_NOT_4, NESTED, HELLO, COUNT_0, COUNT_MAX,
           FLAGS, CASES };
    static const struct {
        const char *what;
        bool        fatal;
    } cases[CASES] = {
        [TRUNC_HEADER] = { "batch header of 4 bytes", true },
        [MISSING_ENTRY] = { "2 entries announced, 1 present", true },
        [SIZE_PAST_END] = { "entry of 1000 bytes, 8 present", true },
        [SIZE_HUGE] = { "entry of 2^32 - 4 bytes", true },
        [SIZE_NOT_4] = { "entry size not a multiple of 4", false },
        [NESTED] = { "EXT_BATCH inside EXT_BATCH", false },
        [HELLO] = { "EXT_HELLO inside EXT_BATCH", false },
        [COUNT_0] = { "0 entries", false },
        [COUNT_MAX] = { "VGPU_BATCH_MAX_ENTRIES + 1 entries", false },
        [FLAGS] = { "unknown batch flags", false },
    };
    for (int k = 0; k < CASES; k++) {
        struct apir_harness *h = sec_open(true);
        uint64_t buf = sec_ext_alloc_ok(h, 4096);
        /* Every batch starts with an entry that would clear the buffer to 0x11: it must not run. */
        uint8_t clr[12];
        size_t clr_len = clear_req(clr, buf, 0x11);
        uint8_t pad[16] = { 0 };
        struct vgpu_enc *e;
        switch (k) {
        case TRUNC_HEADER:
            e = apir_harness_req(h);
            vgpu_enc_u32(e, 1);
            break;
        case MISSING_ENTRY:
            e = batch_begin(h, 2, 0);
            batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, (uint32_t)clr_len, clr, clr_len);
            break;
        case SIZE_PAST_END:
            e = batch_begin(h, 2, 0);
            batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, (uint32_t)clr_len, clr, clr_len);
            batch_entry(e, VGPU_CMD_EXT_NOP, 1000, pad, 8);
            break;
        case SIZE_HUGE:
            e = batch_begin(h, 2, 0);
            batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, (uint32_t)clr_len, clr, clr_len);
            batch_entry(e, VGPU_CMD_EXT_NOP, 0xFFFFFFFCu, pad, 16);
            break;
        case SIZE_NOT_4:
            e = batch_begin(h, 2, 0);
            batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, (uint32_t)clr_len, clr, clr_len);
            batch_entry(e, VGPU_CMD_EXT_NOP, 2, pad, 4);
            break;
        case NESTED: {
            uint8_t inner[8 + 8];
            struct vgpu_enc ie;
            vgpu_enc_init(&ie, inner, sizeof(inner));
            vgpu_enc_u32(&ie, 1);
            vgpu_enc_u32(&ie, 0);
            vgpu_enc_u32(&ie, VGPU_CMD_EXT_NOP);
            vgpu_enc_u32(&ie, 0);
            e = batch_begin(h, 2, 0);
            batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, (uint32_t)clr_len, clr, clr_len);
            batch_entry(e, VGPU_CMD_EXT_BATCH, sizeof(inner), inner, sizeof(inner));
            break;
        }
        case HELLO:
            e = batch_begin(h, 2, 0);
            batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, (uint32_t)clr_len, clr, clr_len);
            batch_entry(e, VGPU_CMD_EXT_HELLO, 16, pad, 16);
            break;
        case COUNT_0:
            e = batch_begin(h, 0, 0);
            batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, (uint32_t)clr_len, clr, clr_len);
            break;
        case COUNT_MAX:
            e = batch_begin(h, VGPU_BATCH_MAX_ENTRIES + 1, 0);
            batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, (uint32_t)clr_len, clr, clr_len);
            for (uint32_t i = 1; i < VGPU_BATCH_MAX_ENTRIES + 1; i++)
                batch_entry(e, VGPU_CMD_EXT_NOP, 0, NULL, 0);
            break;
        default: /* FLAGS */
            e = batch_begin(h, 1, 0x4); /* after RESUME (1) and NO_WAIT (2) */
            batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, (uint32_t)clr_len, clr, clr_len);
            break;
        }
        assert_true(vgpu_enc_ok(e));
        struct batch_reply br;
        uint32_t r = batch_send(h, &br);
        if (r != VGPU_INVALID)
            fail_msg("%s: answered %u (%s), expected INVALID", cases[k].what, r, vgpu_status_name(r));
        if (cases[k].fatal) {
            sec_check_fatal_then_new(h, true);
            continue;
        }
        /* Not fatal and not stopped: nothing of the batch ran. */
        EXPECT(ext_nop(h), VGPU_OK);
        expect_bytes(h, buf, 0, 64);
        EXPECT(apir_harness_free(h, buf), VGPU_OK);
        sec_check_alive(h, true);
        sec_close(h);
    }
}

/* ===== EXT_BATCH: a failing entry stops it; SKIPPED until RESUME ====================================== */

static void test_ext_batch_stop_skip_resume(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    uint8_t c11[12], c22[12], c33[12];
    clear_req(c11, buf, 0x11);
    clear_req(c22, buf, 0x22);
    clear_req(c33, buf, 0x33);
    /* A transfer past its tensor, as entry bytes. */
    uint8_t bad[512];
    struct vgpu_enc be;
    vgpu_enc_init(&be, bad, sizeof(bad));
    struct vgpu_transfer x = { sec_wire(GGML_TYPE_I8, 64, 1, 1, 1, buf, 0), 60, 8, 1, 0, 0, 0, 0 };
    vgpu_enc_transfer(&be, &x);
    vgpu_enc_blob(&be, "abcdefgh", 8);
    assert_true(vgpu_enc_ok(&be));
    uint32_t bad_len = (uint32_t)vgpu_enc_used(&be);
    assert_int_equal(bad_len % 4, 0);

    struct batch_reply br;
    struct vgpu_enc *e = batch_begin(h, 3, 0);
    batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, 12, c11, 12);
    batch_entry(e, VGPU_CMD_EXT_TENSOR_SET, bad_len, bad, bad_len);
    batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, 12, c22, 12);
    EXPECT(batch_send(h, &br), VGPU_OK);
    assert_int_equal(br.n_run, 2);
    assert_int_equal(br.status, VGPU_BATCH_STOPPED);
    assert_int_equal(br.code[0], VGPU_OK);
    assert_int_equal(br.code[1], VGPU_INVALID);
    assert_int_equal(br.len[1], 0);
    /* Everything is skipped now, batches included, until a batch resumes. */
    EXPECT(ext_nop(h), VGPU_SKIPPED);
    apir_harness_req(h);
    EXPECT(apir_harness_send(h, APIR_CMD_DEVICE_GET_COUNT, NULL), VGPU_SKIPPED);
    uint8_t d[16];
    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_I8, 16, 1, 1, 1, buf, 0);
    EXPECT(apir_harness_get(h, &w, 0, d, 16), VGPU_SKIPPED);
    e = batch_begin(h, 1, 0);
    batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, 12, c33, 12);
    EXPECT(batch_send(h, &br), VGPU_SKIPPED);
    /* RESUME: the first CLEAR ran, the one after the failure did not, nor the skipped one. */
    e = batch_begin(h, 1, VGPU_BATCH_RESUME);
    batch_entry(e, VGPU_CMD_EXT_NOP, 0, NULL, 0);
    EXPECT(batch_send(h, &br), VGPU_OK);
    assert_int_equal(br.n_run, 1);
    assert_int_equal(br.status, VGPU_BATCH_ALL_RUN);
    expect_bytes(h, buf, 0x11, 64);

    /* A recompute of a graph the host does not hold stops the batch too. */
    uint8_t gq[64];
    struct vgpu_enc ge;
    vgpu_enc_init(&ge, gq, sizeof(gq));
    struct vgpu_graph_request q = { 0, 0, 0xABCDEF, 0, 0, 0 };
    vgpu_enc_graph_request(&ge, &q);
    uint32_t gq_len = (uint32_t)vgpu_enc_used(&ge);
    e = batch_begin(h, 2, 0);
    batch_entry(e, VGPU_CMD_EXT_GRAPH_COMPUTE, gq_len, gq, gq_len);
    batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, 12, c22, 12);
    EXPECT(batch_send(h, &br), VGPU_OK);
    assert_int_equal(br.n_run, 1);
    assert_int_equal(br.status, VGPU_BATCH_STOPPED);
    assert_int_equal(br.code[0], VGPU_OK);
    assert_true(br.len[0] >= 4);
    uint32_t result;
    memcpy(&result, br.data[0], 4);
    assert_int_equal(result, VGPU_GRAPH_NOT_CACHED);
    EXPECT(ext_nop(h), VGPU_SKIPPED);
    /* A RESUME batch whose own entry fails is stopped again. */
    e = batch_begin(h, 2, VGPU_BATCH_RESUME);
    batch_entry(e, VGPU_CMD_EXT_TENSOR_SET, bad_len, bad, bad_len);
    batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, 12, c22, 12);
    EXPECT(batch_send(h, &br), VGPU_OK);
    assert_int_equal(br.n_run, 1);
    assert_int_equal(br.status, VGPU_BATCH_STOPPED);
    e = batch_begin(h, 1, VGPU_BATCH_RESUME);
    batch_entry(e, VGPU_CMD_EXT_NOP, 0, NULL, 0);
    EXPECT(batch_send(h, &br), VGPU_OK);
    expect_bytes(h, buf, 0x11, 64);

    /* The most entries a batch may have, all run. */
    e = batch_begin(h, VGPU_BATCH_MAX_ENTRIES, 0);
    for (uint32_t i = 0; i < VGPU_BATCH_MAX_ENTRIES; i++)
        batch_entry(e, VGPU_CMD_EXT_NOP, 0, NULL, 0);
    EXPECT(batch_send(h, &br), VGPU_OK);
    assert_int_equal(br.n_run, VGPU_BATCH_MAX_ENTRIES);
    assert_int_equal(br.status, VGPU_BATCH_ALL_RUN);
    EXPECT(apir_harness_free(h, buf), VGPU_OK);
    sec_check_alive(h, true);
    sec_close(h);

    /* An entry with an unknown command id, and one whose payload is truncated: the context
     * becomes fatal inside the batch, which stops there. */
    for (int k = 0; k < 2; k++) {
        h = sec_open(true);
        buf = sec_ext_alloc_ok(h, 4096);
        clear_req(c11, buf, 0x11);
        e = batch_begin(h, 3, 0);
        batch_entry(e, VGPU_CMD_EXT_NOP, 0, NULL, 0);
        if (k == 0)
            batch_entry(e, 50, 4, "\0\0\0\0", 4);
        else
            batch_entry(e, VGPU_CMD_EXT_BUFFER_FREE, 4, "\0\0\0\0", 4); /* a u64 id: 4 bytes short */
        batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, 12, c11, 12);
        EXPECT(batch_send(h, &br), VGPU_OK);
        assert_int_equal(br.n_run, 2);
        assert_int_equal(br.status, VGPU_BATCH_STOPPED);
        assert_int_equal(br.code[0], VGPU_OK);
        assert_int_equal(br.code[1], k == 0 ? VGPU_UNKNOWN_COMMAND : VGPU_INVALID);
        sec_check_fatal_then_new(h, true);
    }

    /* A reply area of 52 bytes (EXT_HELLO's 48-byte reply fits): the batch header and five
     * entry headers fill it, so the sixth entry is not run (no room to report it) and the batch
     * stops before it. */
    struct apir_harness_opts o;
    memset(&o, 0, sizeof(o));
    o.library_path = getenv("VGPU_SEC_HOST_LIBRARY");
    o.reply_size = 52;
    h = apir_harness_open(sec_next_ctx_id(), &o);
    assert_non_null(h);
    assert_int_equal(apir_harness_init(h), 0);
    EXPECT(apir_harness_hello(h), VGPU_OK);
    buf = sec_ext_alloc_ok(h, 4096);
    clear_req(c11, buf, 0x11);
    e = batch_begin(h, 7, 0);
    for (int i = 0; i < 5; i++)
        batch_entry(e, VGPU_CMD_EXT_NOP, 0, NULL, 0);
    batch_entry(e, VGPU_CMD_EXT_BUFFER_CLEAR, 12, c11, 12);
    batch_entry(e, VGPU_CMD_EXT_NOP, 0, NULL, 0);
    EXPECT(batch_send(h, &br), VGPU_OK);
    assert_int_equal(br.n_run, 5);
    assert_int_equal(br.status, VGPU_BATCH_STOPPED);
    EXPECT(ext_nop(h), VGPU_SKIPPED);
    e = batch_begin(h, 1, VGPU_BATCH_RESUME);
    batch_entry(e, VGPU_CMD_EXT_NOP, 0, NULL, 0);
    EXPECT(batch_send(h, &br), VGPU_OK);
    /* A GET whose inline reply does not fit the area is refused, not truncated or overrun. */
    uint8_t big[64];
    struct vgpu_wire_tensor wb = sec_wire(GGML_TYPE_I8, 64, 1, 1, 1, buf, 0);
    EXPECT(apir_harness_get(h, &wb, 0, big, 64), VGPU_INVALID);
    expect_bytes(h, buf, 0, 16);
    sec_close(h);
}

/* ===== EXT_HOST_BUFFER_REGISTER / _UNREGISTER ======================================================= */

static uint32_t hb_register(struct apir_harness *h, uint32_t res_id, uint32_t flags, uint64_t offset, uint64_t size)
{
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, res_id);
    vgpu_enc_u32(e, flags);
    vgpu_enc_u64(e, offset);
    vgpu_enc_u64(e, size);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, VGPU_CMD_EXT_HOST_BUFFER_REGISTER, &d);
    if (r == VGPU_OK) {
        uint32_t f = vgpu_dec_u32(&d);
        assert_true(vgpu_dec_ok(&d));
        assert_int_equal(f & ~VGPU_HOST_BUFFER_PINNED, 0);
    } else {
        assert_int_equal(apir_harness_reply_len(h), 0);
    }
    return r;
}

static uint32_t hb_unregister(struct apir_harness *h, uint32_t res_id)
{
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, res_id);
    vgpu_enc_u32(e, 0);
    return apir_harness_send(h, VGPU_CMD_EXT_HOST_BUFFER_UNREGISTER, NULL);
}

#define HB_MAX 1024u /* host/cmd-host-buffer.c: VGPU_MAX_HOST_BUFFERS */

static void test_ext_host_buffer_register_abuse(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint8_t *res = apir_harness_res_create(h, 5, 16384); /* a guard page follows it */
    assert_non_null(res);
    const struct {
        uint32_t res_id, flags;
        uint64_t off, size;
        uint32_t code;
    } bad[] = {
        { 99, 0, 0, 4096, VGPU_NOT_FOUND },            /* unknown resource */
        { 0, 0, 0, 4096, VGPU_NOT_FOUND },             /* resource 0 */
        { 5, 0, 0, 16385, VGPU_INVALID },              /* one byte past */
        { 5, 0, 16384, 1, VGPU_INVALID },              /* starts at the end */
        { 5, 0, 8192, 8193, VGPU_INVALID },            /* straddles the end */
        { 5, 0, UINT64_MAX - 10, 100, VGPU_INVALID },  /* offset + size wraps */
        { 5, 0, 8, UINT64_MAX - 4, VGPU_INVALID },     /* size wraps */
        { 5, 0, 0, 0, VGPU_INVALID },                  /* empty */
        { 5, 1, 0, 4096, VGPU_INVALID },               /* unknown flags */
        { 5, 0x80000000u, 0, 4096, VGPU_INVALID },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint32_t r = hb_register(h, bad[i].res_id, bad[i].flags, bad[i].off, bad[i].size);
        if (r != bad[i].code)
            fail_msg("register case %zu: answered %u (%s), expected %u", i, r, vgpu_status_name(r), bad[i].code);
    }
    /* Nothing was registered by the refusals. */
    EXPECT(hb_unregister(h, 5), VGPU_NOT_FOUND);
    EXPECT(hb_unregister(h, 99), VGPU_NOT_FOUND);
    /* A good one; the same resource twice; unregistered twice. */
    EXPECT(hb_register(h, 5, 0, 4096, 8192), VGPU_OK);
    EXPECT(hb_register(h, 5, 0, 0, 4096), VGPU_INVALID);
    EXPECT(hb_unregister(h, 5), VGPU_OK);
    EXPECT(hb_unregister(h, 5), VGPU_NOT_FOUND);
    /* Registered, then the guest destroys the resource (and reuses its id, smaller): the
     * registration goes away cleanly, and transfers through the new resource are bounded by it. */
    EXPECT(hb_register(h, 5, 0, 0, 16384), VGPU_OK);
    apir_harness_res_destroy(h, 5);
    uint8_t *small = apir_harness_res_create(h, 5, 4096);
    assert_non_null(small);
    uint64_t buf = sec_ext_alloc_ok(h, 16384);
    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_I8, 16384, 1, 1, 1, buf, 0);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 16384, 1, 0, 0, 5, 0, NULL, 0), VGPU_INVALID);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 4096, 1, 0, 0, 5, 0, NULL, 0), VGPU_OK);
    EXPECT(hb_unregister(h, 5), VGPU_OK);
    EXPECT(apir_harness_free(h, buf), VGPU_OK);
    sec_check_alive(h, true);

    /* At most HB_MAX registrations at once. */
    for (uint32_t i = 0; i <= HB_MAX; i++)
        assert_non_null(apir_harness_res_create(h, 1000 + i, 4096));
    for (uint32_t i = 0; i < HB_MAX; i++) {
        uint32_t r = hb_register(h, 1000 + i, 0, 0, 4096);
        if (r != VGPU_OK)
            fail_msg("registration %u of %u: answered %u", i + 1, HB_MAX, r);
    }
    EXPECT(hb_register(h, 1000 + HB_MAX, 0, 0, 4096), VGPU_QUOTA);
    EXPECT(hb_unregister(h, 1000), VGPU_OK);
    EXPECT(hb_register(h, 1000 + HB_MAX, 0, 0, 4096), VGPU_OK);
    /* Half of them lose their resource; the context ends with all of them registered. */
    for (uint32_t i = 0; i <= HB_MAX; i += 2)
        apir_harness_res_destroy(h, 1000 + i);
    sec_check_alive(h, true);
    /* A truncated request is a protocol violation. */
    EXPECT(apir_harness_call(h, VGPU_CMD_EXT_HOST_BUFFER_REGISTER, "\5\0\0\0\0\0\0\0", 8, NULL), VGPU_INVALID);
    sec_check_fatal_then_new(h, true);
}

/* ===== EXT_SET_N_THREADS =============================================================================== */

static uint32_t set_threads(struct apir_harness *h, uint32_t dev, uint32_t n)
{
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, dev);
    vgpu_enc_u32(e, n);
    return apir_harness_send(h, VGPU_CMD_EXT_SET_N_THREADS, NULL);
}

static void test_ext_set_n_threads_bounds(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    EXPECT(set_threads(h, 0, 0), VGPU_INVALID);
    EXPECT(set_threads(h, 1, 2), VGPU_INVALID);          /* the CPU backend has one device */
    EXPECT(set_threads(h, 0xFFFFFFFFu, 2), VGPU_INVALID);
    /* A guest counting 2^32 - 1 vCPUs gets the host's CPU count, not 4 billion threads. */
    EXPECT(set_threads(h, 0, 0xFFFFFFFFu), VGPU_OK);
    EXPECT(set_threads(h, 0, 0x80000000u), VGPU_OK);
    sec_check_alive(h, true);
    EXPECT(set_threads(h, 0, 1), VGPU_OK);
    sec_check_alive(h, true);
    EXPECT(apir_harness_call(h, VGPU_CMD_EXT_SET_N_THREADS, "\0\0\0\0", 4, NULL), VGPU_INVALID);
    sec_check_fatal_then_new(h, true);
}

/* ===== guest strings in the host's log ============================================================== */

static void test_log_injection_through_names(void **state)
{
    (void)state;
    static const char evil[] = "x\nggml-virtgpu-server[1]: worker 1 killed by signal 9\r\x1b[2J";
    for (int ext = 0; ext < 2; ext++) {
        struct apir_harness *h = sec_open(ext);
        uint32_t r;
        sec_stderr_begin();
        if (ext) {
            uint64_t buf = sec_ext_alloc_ok(h, 4096);
            struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 64, 1, 1, 1, buf, 4096 - 128);
            memcpy(w.name, evil, sizeof(evil));
            r = sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 8, 1, 0, 0, 0, 0, NULL, 0);
        } else {
            uint64_t buf = sec_bl_alloc_ok(h, 4096);
            assert_non_null(apir_harness_res_create(h, 3, 4096));
            struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, buf, 64, 1, 4096 - 128);
            memcpy(t.name, evil, sizeof(evil));
            r = sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 8);
        }
        char *log = sec_stderr_end();
        EXPECT(r, VGPU_INVALID);
        /* The refusal is logged with the name, on one line, without control characters. */
        const char *line = strstr(log, "leaves its buffer");
        if (!line)
            fail_msg("no log line for the refusal:\n%s", log);
        bool forged = strstr(log, "\nggml-virtgpu-server[1]") != NULL;
        bool ctl = false;
        for (const char *p = log; *p; p++) {
            if (((unsigned char)*p < 0x20 && *p != '\n') || *p == 0x7f)
                ctl = true;
        }
        free(log);
        if (forged || ctl)
            fail_msg("a guest tensor name %s the host's log", forged ? "forged a line in" : "put control characters in");
        sec_check_alive(h, ext);
        sec_close(h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ext_before_hello_and_bad_hello),
        cmocka_unit_test(test_ext_batch_framing),
        cmocka_unit_test(test_ext_batch_stop_skip_resume),
        cmocka_unit_test(test_ext_host_buffer_register_abuse),
        cmocka_unit_test(test_ext_set_n_threads_bounds),
        cmocka_unit_test(test_log_injection_through_names),
    };
    sec_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
