/*
 * Fuzz target: the shared codec (proto/codec.c) and wire images and messages (proto/wire.c).
 *
 * Input: u8 kind, then the bytes to decode.
 *   0 PRIMS   u8 n, n op bytes, then a buffer decoded by those ops (u32, i32, u64, u8, bool,
 *             raw, view, blob, string with lengths from the op byte): the decoder never leaves
 *             its buffer, used + left is its size, errors are sticky, a failed read yields
 *             zeros, strings come out NUL-terminated inside their capacity
 *   1 WIRE    extension wire tensor         2 RPC     baseline rpc tensor
 *   3 INLINE  baseline inline tensor (raw ggml_tensor images)
 *   4 HELLO_Q EXT_HELLO request             5 HELLO_R EXT_HELLO reply
 *   6 DEVINFO EXT_DEVICE_INFO reply         7 XFER    EXT_TENSOR_SET/GET transfer
 *   8 GRAPHQ  EXT_GRAPH_COMPUTE request     9 ENC     encoder ops into a buffer of input-chosen size
 *  10 SIZES   image size arithmetic (vgpu_graph_image_size, vgpu_rpc_graph_size, vgpu_pad4)
 * For every message kind: what decodes re-encodes to the canonical form of the bytes it
 * consumed (padding and reserved fields zero, names cut at their NUL), and decode -> encode ->
 * decode -> encode is stable. Every input buffer is an exactly sized heap copy, every output
 * buffer too, so any over-read or over-write is an ASan report.
 */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"
#include "wire.h"

enum kind {
    K_PRIMS, K_WIRE, K_RPC, K_INLINE, K_HELLO_Q, K_HELLO_R, K_DEVINFO, K_XFER, K_GRAPHQ, K_ENC, K_SIZES,
    K_COUNT
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_process_setup();
    return 0;
}

/* An exactly sized heap copy (at least one byte, so that a zero-size buffer is a real block). */
static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *b = calloc(n ? n : 1, 1);
    FZ_CHECK(b, "out of memory");
    if (n)
        memcpy(b, p, n);
    return b;
}

/* ---- PRIMS ------------------------------------------------------------------------------------ */

/* Checks the decoder's bookkeeping after one operation. */
static void check_dec_state(const struct vgpu_dec *d, size_t size, bool was_fatal)
{
    FZ_CHECK(d->cur >= d->start && d->cur <= d->end, "cursor left the buffer");
    FZ_CHECK(vgpu_dec_used(d) + vgpu_dec_left(d) == size, "used + left != size");
    FZ_CHECK(!was_fatal || d->fatal, "a fatal decoder recovered");
}

/* Applies op byte `op` to the decoder, checking what a failed read must produce. */
static void prim_op(struct vgpu_dec *d, uint8_t op)
{
    size_t n = (size_t)(op / 9) * 3; /* 0..84 */
    bool was_fatal = d->fatal;
    const uint8_t *before = d->cur;
    uint8_t out[96];
    switch (op % 9) {
    case 0: {
        uint32_t v = vgpu_dec_u32(d);
        FZ_CHECK(!d->fatal || v == 0, "failed u32 read is %u", v);
        break;
    }
    case 1: {
        int32_t v = vgpu_dec_i32(d);
        FZ_CHECK(!d->fatal || v == 0, "failed i32 read is %d", v);
        break;
    }
    case 2: {
        uint64_t v = vgpu_dec_u64(d);
        FZ_CHECK(!d->fatal || v == 0, "failed u64 read");
        break;
    }
    case 3: {
        uint8_t v = vgpu_dec_u8(d);
        FZ_CHECK(!d->fatal || v == 0, "failed u8 read");
        break;
    }
    case 4: {
        bool v = vgpu_dec_bool(d);
        FZ_CHECK(!d->fatal || !v, "failed bool read");
        break;
    }
    case 5: {
        memset(out, 0xa5, sizeof(out));
        bool ok = vgpu_dec_raw(d, out, n);
        for (size_t i = 0; !ok && i < n; i++)
            FZ_CHECK(out[i] == 0, "failed raw read left byte %zu", i);
        FZ_CHECK(out[n] == 0xa5, "raw read wrote past its length");
        break;
    }
    case 6: {
        const uint8_t *v = vgpu_dec_view(d, n);
        FZ_CHECK(!v || (v == before && v + n <= d->end), "view outside the buffer");
        FZ_CHECK(v || d->fatal, "a NULL view without an error");
        break;
    }
    case 7: {
        size_t len = 12345;
        const uint8_t *v = vgpu_dec_blob(d, n, &len);
        FZ_CHECK(v ? (len <= n && v + len <= d->end && v >= d->start) : len == 0, "bad blob");
        break;
    }
    default: {
        char s[96];
        memset(s, 'x', sizeof(s));
        bool ok = vgpu_dec_string(d, s, n + 1);
        FZ_CHECK(memchr(s, '\0', n + 1) != NULL, "string not terminated inside its capacity");
        FZ_CHECK(ok || s[0] == '\0', "failed string read is not empty");
        FZ_CHECK(s[n + 1] == 'x' || n + 1 >= sizeof(s), "string written past its capacity");
        break;
    }
    }
    check_dec_state(d, (size_t)(d->end - d->start), was_fatal);
    FZ_CHECK(!was_fatal || d->cur == before, "a fatal decoder advanced");
}

static void fuzz_prims(const uint8_t *p, size_t n)
{
    if (n < 1)
        return;
    size_t n_ops = p[0];
    if (n_ops > n - 1)
        n_ops = n - 1;
    const uint8_t *ops = p + 1;
    uint8_t *buf = dup_bytes(p + 1 + n_ops, n - 1 - n_ops);
    struct vgpu_dec d;
    vgpu_dec_init(&d, buf, n - 1 - n_ops);
    for (size_t i = 0; i < n_ops; i++)
        prim_op(&d, ops[i]);
    free(buf);
}

/* ---- canonical forms ------------------------------------------------------------------------------ */

/* Zeroes a name field after its first NUL and forces its last byte to NUL. */
static void canon_name(uint8_t *name)
{
    name[VGPU_MAX_NAME - 1] = 0;
    uint8_t *nul = memchr(name, 0, VGPU_MAX_NAME);
    memset(nul, 0, (size_t)(name + VGPU_MAX_NAME - nul));
}

static void canon_wire(uint8_t *b)
{
    memset(b + 204, 0, 4); /* reserved */
    canon_name(b + 216);
}

static void canon_rpc(uint8_t *b)
{
    memset(b + 12, 0, 4); /* padding after type */
    canon_name(b + 232);
    memset(b + 296, 0, 8); /* tail padding */
}

static void canon_raw(uint8_t *b)
{
    memset(b + 4, 0, 4);     /* padding after type */
    canon_name(b + VGPU_RAW_OFF_NAME);
    memset(b + 328, 0, 8);   /* after extra */
}

/* Encodes with enc_fn into an exactly sized buffer of `cap` bytes; returns it (caller frees). */
#define ENCODE(buf, cap, used, call)                                  \
    do {                                                              \
        struct vgpu_enc e_;                                           \
        (buf) = malloc((cap) ? (cap) : 1);                            \
        FZ_CHECK((buf), "out of memory");                             \
        vgpu_enc_init(&e_, (buf), (cap));                             \
        call;                                                         \
        FZ_CHECK(vgpu_enc_ok(&e_), "re-encoding did not fit");        \
        (used) = vgpu_enc_used(&e_);                                  \
    } while (0)

/* What was consumed, canonicalised, must equal the re-encoding. */
static void check_equal(const char *what, const uint8_t *canon, size_t n, const uint8_t *enc, size_t m)
{
    FZ_CHECK(n == m, "%s: consumed %zu bytes, re-encoded %zu", what, n, m);
    for (size_t i = 0; i < n; i++)
        FZ_CHECK(canon[i] == enc[i], "%s: byte %zu differs (%02x vs %02x)", what, i, canon[i], enc[i]);
}

/* A decoded name: bytes after its NUL carry nothing (encoders write zeros there). */
static void canon_struct_name(char *name)
{
    canon_name((uint8_t *)name);
}

/* ---- tensors -------------------------------------------------------------------------------------- */

static void fuzz_wire(const uint8_t *p, size_t n)
{
    uint8_t *in = dup_bytes(p, n);
    struct vgpu_dec d;
    vgpu_dec_init(&d, in, n);
    struct vgpu_wire_tensor t, t2;
    bool ok = vgpu_dec_wire_tensor(&d, &t);
    FZ_CHECK(ok == (n >= VGPU_WIRE_TENSOR_SIZE), "wire tensor decode %d for %zu bytes", ok, n);
    if (ok) {
        FZ_CHECK(memchr(t.name, 0, sizeof(t.name)), "name not terminated");
        uint8_t *out;
        size_t used;
        ENCODE(out, VGPU_WIRE_TENSOR_SIZE, used, vgpu_enc_wire_tensor(&e_, &t));
        canon_wire(in);
        check_equal("wire tensor", in, VGPU_WIRE_TENSOR_SIZE, out, used);
        vgpu_dec_init(&d, out, used);
        FZ_CHECK(vgpu_dec_wire_tensor(&d, &t2) && vgpu_dec_left(&d) == 0, "re-decode");
        canon_struct_name(t.name);
        FZ_CHECK(memcmp(&t, &t2, sizeof(t)) == 0, "wire tensor decode -> encode -> decode differs");
        free(out);
    }
    free(in);
}

static void fuzz_rpc(const uint8_t *p, size_t n)
{
    uint8_t *in = dup_bytes(p, n);
    struct vgpu_dec d;
    vgpu_dec_init(&d, in, n);
    struct vgpu_rpc_tensor t, t2;
    bool ok = vgpu_dec_rpc_tensor(&d, &t);
    FZ_CHECK(ok == (n >= VGPU_RPC_TENSOR_SIZE), "rpc tensor decode %d for %zu bytes", ok, n);
    if (ok) {
        uint8_t *out;
        size_t used;
        ENCODE(out, VGPU_RPC_TENSOR_SIZE, used, vgpu_enc_rpc_tensor(&e_, &t));
        canon_rpc(in);
        check_equal("rpc tensor", in, VGPU_RPC_TENSOR_SIZE, out, used);
        vgpu_rpc_tensor_unpack(out, &t2);
        canon_struct_name(t.name);
        FZ_CHECK(memcmp(&t, &t2, sizeof(t)) == 0, "rpc tensor unpack -> pack -> unpack differs");
        free(out);
    }
    free(in);
}

/* Canonical form of a decoded inline sequence: each raw image canonicalised in place. */
static void canon_inline(uint8_t *b, const struct vgpu_inline_tensor *t)
{
    size_t off = 0;
    canon_raw(b);
    off += VGPU_RAW_TENSOR_SIZE;
    if (t->has_buffer)
        off += 8;
    if (t->has_view_src) {
        canon_raw(b + off);
        off += VGPU_RAW_TENSOR_SIZE;
    }
    for (int i = 0; i < t->n_src; i++) {
        canon_raw(b + off);
        off += VGPU_RAW_TENSOR_SIZE;
    }
}

static void fuzz_inline(const uint8_t *p, size_t n)
{
    uint8_t *in = dup_bytes(p, n);
    struct vgpu_dec d;
    vgpu_dec_init(&d, in, n);
    struct vgpu_inline_tensor *t = malloc(sizeof(*t)), *t2 = malloc(sizeof(*t2));
    FZ_CHECK(t && t2, "out of memory");
    bool ok = vgpu_dec_inline_tensor(&d, t);
    FZ_CHECK(t->n_src >= 0 && t->n_src <= VGPU_MAX_SRC, "n_src %d", t->n_src);
    if (ok) {
        size_t used_in = vgpu_dec_used(&d);
        uint8_t *out;
        size_t used;
        ENCODE(out, used_in, used, vgpu_enc_inline_tensor(&e_, t));
        canon_inline(in, t);
        check_equal("inline tensor", in, used_in, out, used);
        struct vgpu_dec d2;
        vgpu_dec_init(&d2, out, used);
        FZ_CHECK(vgpu_dec_inline_tensor(&d2, t2) && vgpu_dec_left(&d2) == 0, "re-decode");
        FZ_CHECK(t2->n_src == t->n_src && t2->has_buffer == t->has_buffer && t2->has_view_src == t->has_view_src,
                 "inline tensor structure changed");
        free(out);
    }
    free(t);
    free(t2);
    free(in);
}

/* ---- messages --------------------------------------------------------------------------------------- */

/*
 * Shared shape of the message checks: decode from the input, re-encode (into a buffer exactly
 * as large as what was consumed, since every message re-encodes to at most its input), compare
 * with the canonical bytes, decode and encode again and compare the two encodings.
 */
#define MESSAGE_CHECK(what, type, dec_fn, enc_fn, canon)                                         \
    do {                                                                                         \
        uint8_t *in = dup_bytes(p, n);                                                           \
        struct vgpu_dec d;                                                                       \
        vgpu_dec_init(&d, in, n);                                                                \
        type m, m2;                                                                              \
        if (dec_fn(&d, &m)) {                                                                    \
            size_t used_in = vgpu_dec_used(&d), used, used2;                                     \
            uint8_t *out, *out2;                                                                 \
            ENCODE(out, used_in, used, enc_fn(&e_, &m));                                         \
            canon;                                                                               \
            struct vgpu_dec d2;                                                                  \
            vgpu_dec_init(&d2, out, used);                                                       \
            FZ_CHECK(dec_fn(&d2, &m2) && vgpu_dec_left(&d2) == 0, what ": re-decode");          \
            ENCODE(out2, used, used2, enc_fn(&e_, &m2));                                         \
            check_equal(what " (stable)", out, used, out2, used2);                               \
            free(out);                                                                           \
            free(out2);                                                                          \
        } else {                                                                                 \
            FZ_CHECK(d.fatal, what ": failed without an error");                                 \
        }                                                                                        \
        free(in);                                                                                \
    } while (0)

static void fuzz_hello_q(const uint8_t *p, size_t n)
{
    MESSAGE_CHECK("hello request", struct vgpu_hello, vgpu_dec_hello_request, vgpu_enc_hello_request, {
        memset(in + 28, 0, 4);
        check_equal("hello request", in, used_in, out, used);
    });
}

static void fuzz_hello_r(const uint8_t *p, size_t n)
{
    MESSAGE_CHECK("hello reply", struct vgpu_hello, vgpu_dec_hello_reply, vgpu_enc_hello_reply, {
        memset(in + 36, 0, 4);
        check_equal("hello reply", in, used_in, out, used);
    });
}

/* Strings re-encode up to their first NUL, so only stability is checked for device info. */
static void fuzz_devinfo(const uint8_t *p, size_t n)
{
    MESSAGE_CHECK("device info", struct vgpu_device_info, vgpu_dec_device_info, vgpu_enc_device_info, {
        FZ_CHECK(used <= used_in, "device info grew when re-encoded");
        FZ_CHECK(memchr(m.name, 0, sizeof(m.name)) && memchr(m.description, 0, sizeof(m.description)) &&
                     memchr(m.buft_name, 0, sizeof(m.buft_name)),
                 "device info string not terminated");
    });
}

static void fuzz_xfer(const uint8_t *p, size_t n)
{
    MESSAGE_CHECK("transfer", struct vgpu_transfer, vgpu_dec_transfer, vgpu_enc_transfer, {
        canon_wire(in);
        memset(in + VGPU_WIRE_TENSOR_SIZE + 44, 0, 4);
        check_equal("transfer", in, used_in, out, used);
    });
}

static void fuzz_graphq(const uint8_t *p, size_t n)
{
    MESSAGE_CHECK("graph request", struct vgpu_graph_request, vgpu_dec_graph_request, vgpu_enc_graph_request, {
        memset(in + 20, 0, 4);
        check_equal("graph request", in, used_in, out, used);
    });
}

/* ---- encoder --------------------------------------------------------------------------------------- */

/*
 * u16 capacity, then op bytes: each encodes one item (lengths from the op byte) into a buffer of
 * exactly `capacity` bytes. Writes never pass the end, a failed write leaves the encoder fatal
 * and unmoved, and a fatal encoder writes nothing more.
 */
static void fuzz_enc(const uint8_t *p, size_t n)
{
    if (n < 2)
        return;
    size_t cap = fz_get16(p) % 2048;
    uint8_t *buf = malloc(cap ? cap : 1);
    FZ_CHECK(buf, "out of memory");
    static const uint8_t src[128];
    struct vgpu_enc e;
    vgpu_enc_init(&e, buf, cap);
    for (size_t i = 2; i < n; i++) {
        bool was_fatal = e.fatal;
        uint8_t *before = e.cur;
        size_t len = (size_t)(p[i] / 10) * 5 % 128;
        switch (p[i] % 10) {
        case 0: vgpu_enc_u32(&e, p[i]); break;
        case 1: vgpu_enc_i32(&e, -(int32_t)p[i]); break;
        case 2: vgpu_enc_u64(&e, p[i]); break;
        case 3: vgpu_enc_u8(&e, p[i]); break;
        case 4: vgpu_enc_bool(&e, p[i] & 16); break;
        case 5: vgpu_enc_raw(&e, src, len); break;
        case 6: vgpu_enc_padded(&e, src, len); break;
        case 7: vgpu_enc_blob(&e, src, len); break;
        case 8: vgpu_enc_string(&e, (p[i] & 16) ? NULL : "fuzz"); break;
        default: {
            void *r = vgpu_enc_reserve(&e, len);
            FZ_CHECK(!r || ((uint8_t *)r == before && before + vgpu_pad4(len) <= e.end), "bad reservation");
            break;
        }
        }
        FZ_CHECK(e.cur >= e.start && e.cur <= e.end, "encoder cursor left the buffer");
        FZ_CHECK(vgpu_enc_used(&e) + vgpu_enc_left(&e) == cap, "used + left != capacity");
        FZ_CHECK(!was_fatal || (e.fatal && e.cur == before), "a fatal encoder moved");
        FZ_CHECK((size_t)(e.cur - before) % 4 == 0 || p[i] % 10 == 5, "an item that is not whole slots");
    }
    free(buf);
}

/* ---- sizes ----------------------------------------------------------------------------------------- */

static void fuzz_sizes(const uint8_t *p, size_t n)
{
    if (n < 16)
        return;
    uint64_t a = fz_get64(p), b = fz_get64(p + 8);
    uint64_t g = vgpu_graph_image_size(a, b);
    if (a > UINT32_MAX || b > UINT32_MAX) {
        FZ_CHECK(g == 0, "graph size of out-of-range counts");
    } else {
        unsigned __int128 want = (unsigned __int128)16 + (unsigned __int128)280 * a + (unsigned __int128)4 * b;
        FZ_CHECK(g == (uint64_t)want && want < ((unsigned __int128)1 << 64), "graph image size");
    }
    uint64_t r = vgpu_rpc_graph_size(a, b);
    if (a > UINT32_MAX || b > UINT32_MAX) {
        FZ_CHECK(r == 0, "rpc graph size of out-of-range counts");
    } else {
        unsigned __int128 want = (unsigned __int128)8 + (unsigned __int128)8 * a + (unsigned __int128)304 * b;
        FZ_CHECK(r == (uint64_t)want, "rpc graph size");
    }
    size_t s = (size_t)a;
    size_t q = vgpu_pad4(s);
    FZ_CHECK(q == SIZE_MAX ? s > SIZE_MAX - 3 : (q >= s && q - s < 4 && q % 4 == 0), "pad4(%zu) = %zu", s, q);
    FZ_CHECK(vgpu_status_name((uint32_t)b) != NULL, "status name");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % K_COUNT) {
    case K_PRIMS: fuzz_prims(p, n); break;
    case K_WIRE: fuzz_wire(p, n); break;
    case K_RPC: fuzz_rpc(p, n); break;
    case K_INLINE: fuzz_inline(p, n); break;
    case K_HELLO_Q: fuzz_hello_q(p, n); break;
    case K_HELLO_R: fuzz_hello_r(p, n); break;
    case K_DEVINFO: fuzz_devinfo(p, n); break;
    case K_XFER: fuzz_xfer(p, n); break;
    case K_GRAPHQ: fuzz_graphq(p, n); break;
    case K_ENC: fuzz_enc(p, n); break;
    default: fuzz_sizes(p, n); break;
    }
    return 0;
}
