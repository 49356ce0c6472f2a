/*
 * Baseline (APIR 0.2, ids 0..22) commands of the host APIR library with the byte layouts an
 * unmodified llama.cpp v0.5.0 guest sends and expects (docs/PROTOCOL.md §3), and regressions
 * for the upstream host's holes (reference/upstream-virtgpu.md §7: H1..H7, H9, H11).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apir-harness.h"
#include "ext.h"
#include "ggml-backend-impl.h"
#include "ggml.h"
#include "wire.h"

#define CTX_ID 4401

static struct apir_harness *H;

static int setup(void **state)
{
    (void)state;
    H = apir_harness_open(CTX_ID, NULL);
    if (!H || apir_harness_init(H) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    size_t hits = apir_harness_pointer_hits(H);
    apir_harness_close(H);
    H = NULL;
    return hits == 0 ? 0 : -1;
}

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Sends a request and returns the raw reply bytes (pointer into the harness) and length. */
static uint32_t call(uint32_t cmd, const uint8_t **reply, size_t *len)
{
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(H, cmd, &d);
    if (reply)
        *reply = d.start;
    if (len)
        *len = apir_harness_reply_len(H);
    return r;
}

static uint64_t get_buft(void)
{
    const uint8_t *p;
    size_t n;
    apir_harness_req(H);
    assert_int_equal(call(APIR_CMD_DEVICE_GET_BUFFER_TYPE, &p, &n), VGPU_OK);
    assert_int_equal(n, 8);
    return rd64(p);
}

static uint64_t alloc(uint64_t size)
{
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u64(e, get_buft());
    vgpu_enc_u64(e, size);
    const uint8_t *p;
    size_t n;
    assert_int_equal(call(APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER, &p, &n), VGPU_OK);
    assert_int_equal(n, 8);
    return rd64(p);
}

/* An rpc tensor of contiguous f32 [ne0, ne1] at `data` (an offset from the buffer base). */
static struct vgpu_rpc_tensor rpc_f32(uint64_t id, uint64_t buffer, uint32_t ne0, uint32_t ne1, uint64_t data)
{
    struct vgpu_rpc_tensor t;
    memset(&t, 0, sizeof(t));
    t.id = id;
    t.type = GGML_TYPE_F32;
    t.buffer = buffer;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.ne[2] = t.ne[3] = 1;
    t.nb[0] = 4;
    t.nb[1] = 4 * ne0;
    t.nb[2] = t.nb[3] = 4 * ne0 * ne1;
    t.data = data;
    snprintf(t.name, sizeof(t.name), "t%llu", (unsigned long long)id);
    return t;
}

static uint32_t set_get(uint32_t cmd, uint64_t buffer, const struct vgpu_rpc_tensor *t, uint32_t res_id,
                        uint64_t offset, uint64_t size)
{
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u64(e, buffer);
    vgpu_enc_rpc_tensor(e, t);
    vgpu_enc_u32(e, res_id);
    vgpu_enc_u64(e, offset);
    vgpu_enc_u64(e, size);
    /* The upstream guest's SET/GET_TENSOR payload: 8 + 304 + 4 + 8 + 8 bytes. */
    assert_int_equal(vgpu_enc_used(e), 332);
    size_t n;
    uint32_t r = call(cmd, NULL, &n);
    assert_int_equal(n, 0);
    return r;
}

static uint32_t nop_baseline(void)
{
    apir_harness_req(H);
    return apir_harness_send(H, APIR_CMD_DEVICE_GET_COUNT, NULL);
}

/* ---- device and buffer-type commands ------------------------------------------------------------ */

static void test_device_commands(void **state)
{
    (void)state;
    const uint8_t *p;
    size_t n;
    for (uint32_t cmd = APIR_CMD_DEVICE_GET_DEVICE_COUNT; cmd <= APIR_CMD_DEVICE_GET_COUNT; cmd++) {
        apir_harness_req(H);
        assert_int_equal(call(cmd, &p, &n), VGPU_OK);
        assert_int_equal(n, 4);
        assert_int_equal(rd32(p), 1);
    }
    apir_harness_req(H);
    assert_int_equal(call(APIR_CMD_DEVICE_GET_NAME, &p, &n), VGPU_OK);
    static const uint8_t name[12] = { 4, 0, 0, 0, 0, 0, 0, 0, 'C', 'P', 'U', 0 };
    assert_int_equal(n, 12);
    assert_memory_equal(p, name, 12);

    apir_harness_req(H);
    assert_int_equal(call(APIR_CMD_DEVICE_GET_DESCRIPTION, &p, &n), VGPU_OK);
    uint64_t len = rd64(p);
    assert_true(len >= 1 && n == 8 + ((len + 3) & ~3ull));
    assert_int_equal(p[8 + len - 1], 0);

    apir_harness_req(H);
    assert_int_equal(call(APIR_CMD_DEVICE_GET_TYPE, &p, &n), VGPU_OK);
    assert_int_equal(n, 4);
    assert_int_equal(rd32(p), GGML_BACKEND_DEVICE_TYPE_CPU);

    apir_harness_req(H);
    assert_int_equal(call(APIR_CMD_DEVICE_GET_MEMORY, &p, &n), VGPU_OK);
    assert_int_equal(n, 16);
    assert_true(rd64(p) <= rd64(p + 8) && rd64(p + 8) > 0);

    /* 5 bool slots: async, host_buffer, buffer_from_host_ptr, events, mmap_support. */
    apir_harness_req(H);
    assert_int_equal(call(APIR_CMD_DEVICE_GET_PROPS, &p, &n), VGPU_OK);
    assert_int_equal(n, 20);
    static const uint8_t props[20] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 };
    assert_memory_equal(p, props, 20);

    uint64_t buft = get_buft();
    assert_int_equal(buft >> 56, 'T');
    vgpu_enc_u64(apir_harness_req(H), buft);
    assert_int_equal(call(APIR_CMD_BUFFER_TYPE_GET_NAME, &p, &n), VGPU_OK);
    assert_int_equal(n, 12);
    assert_memory_equal(p, name, 12);
    vgpu_enc_u64(apir_harness_req(H), buft);
    assert_int_equal(call(APIR_CMD_BUFFER_TYPE_GET_ALIGNMENT, &p, &n), VGPU_OK);
    assert_int_equal(n, 8);
    assert_int_equal(rd64(p), 32);
    vgpu_enc_u64(apir_harness_req(H), buft);
    assert_int_equal(call(APIR_CMD_BUFFER_TYPE_GET_MAX_SIZE, &p, &n), VGPU_OK);
    assert_int_equal(n, 8);
    assert_true(rd64(p) == UINT64_MAX);
    apir_harness_req(H);
    assert_int_equal(call(APIR_CMD_BUFFER_TYPE_IS_HOST, &p, &n), VGPU_OK);
    assert_int_equal(n, 4);
    assert_int_equal(p[0], 0);
}

static void test_buffer_round_trip(void **state)
{
    (void)state;
    uint64_t buf = alloc(4096);
    assert_int_equal(buf >> 56, 'B');
    const uint8_t *p;
    size_t n;
    vgpu_enc_u64(apir_harness_req(H), buf);
    assert_int_equal(call(APIR_CMD_BUFFER_GET_BASE, &p, &n), VGPU_OK);
    assert_int_equal(n, 8);
    /* Nominal base: (slot + 1) << 40, the slot being the id's low 32 bits. */
    assert_true(rd64(p) == ((uint64_t)(uint32_t)buf + 1) << 40);

    uint8_t *res = apir_harness_res_create(H, 3, 4096);
    uint8_t *out = apir_harness_res_create(H, 4, 4096);
    assert_non_null(res);
    assert_non_null(out);
    for (int i = 0; i < 256; i++)
        res[i] = (uint8_t)(i * 13 + 5);
    struct vgpu_rpc_tensor t = rpc_f32(0xAAAA, buf, 64, 1, 512);
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 256), VGPU_OK);
    assert_int_equal(set_get(APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 4, 0, 256), VGPU_OK);
    assert_memory_equal(res, out, 256);
    /* A partial write at an offset inside the tensor. */
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 128, 64), VGPU_OK);
    assert_int_equal(set_get(APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 4, 0, 256), VGPU_OK);
    assert_memory_equal(out + 128, res, 64);

    /* Copy to another tensor: bool reply. */
    struct vgpu_rpc_tensor d = rpc_f32(0xBBBB, buf, 64, 1, 2048);
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u64(e, buf);
    vgpu_enc_rpc_tensor(e, &t);
    vgpu_enc_rpc_tensor(e, &d);
    assert_int_equal(call(APIR_CMD_BUFFER_CPY_TENSOR, &p, &n), VGPU_OK);
    assert_int_equal(n, 4);
    assert_int_equal(p[0], 1);
    memset(out, 0, 256);
    assert_int_equal(set_get(APIR_CMD_BUFFER_GET_TENSOR, buf, &d, 4, 0, 256), VGPU_OK);
    assert_int_equal(set_get(APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 256), VGPU_OK);
    assert_memory_equal(out, res, 256);

    /* Clear: u64 buffer, u8 slot. */
    e = apir_harness_req(H);
    vgpu_enc_u64(e, buf);
    vgpu_enc_u8(e, 0x3C);
    assert_int_equal(call(APIR_CMD_BUFFER_CLEAR, NULL, &n), VGPU_OK);
    assert_int_equal(n, 0);
    assert_int_equal(set_get(APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 4, 0, 256), VGPU_OK);
    for (int i = 0; i < 256; i++)
        assert_int_equal(out[i], 0x3C);

    vgpu_enc_u64(apir_harness_req(H), buf);
    assert_int_equal(call(APIR_CMD_BUFFER_FREE_BUFFER, NULL, &n), VGPU_OK);
    assert_int_equal(n, 0);
    vgpu_enc_u64(apir_harness_req(H), buf);
    assert_int_equal(call(APIR_CMD_BUFFER_GET_BASE, NULL, &n), VGPU_NOT_FOUND);
    assert_int_equal(set_get(APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 4, 0, 256), VGPU_NOT_FOUND);
}

static void test_graph_compute(void **state)
{
    (void)state;
    uint64_t buf = alloc(4096);
    uint8_t *res = apir_harness_res_create(H, 3, 16384);
    assert_non_null(res);
    float a[8], b[8], c[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (float)i * 1.5f;
        b[i] = 10.0f - (float)i;
    }
    struct vgpu_rpc_tensor ta = rpc_f32(0x7f0000001000ull, buf, 4, 2, 0);
    struct vgpu_rpc_tensor tb = rpc_f32(0x7f0000002000ull, buf, 4, 2, 64);
    struct vgpu_rpc_tensor tc = rpc_f32(0x7f0000003000ull, buf, 4, 2, 128);
    tc.op = GGML_OP_ADD;
    tc.src[0] = ta.id;
    tc.src[1] = tb.id;
    tc.flags = GGML_TENSOR_FLAG_COMPUTE;
    memcpy(res, a, sizeof(a));
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &ta, 3, 0, sizeof(a)), VGPU_OK);
    memcpy(res, b, sizeof(b));
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &tb, 3, 0, sizeof(b)), VGPU_OK);

    /* u32 n_nodes | u64 ids | u32 n_tensors | rpc tensors, post-order, at byte 0. */
    struct vgpu_enc g;
    vgpu_enc_init(&g, res, 16384);
    vgpu_enc_u32(&g, 1);
    vgpu_enc_u64(&g, tc.id);
    vgpu_enc_u32(&g, 3);
    vgpu_enc_rpc_tensor(&g, &ta);
    vgpu_enc_rpc_tensor(&g, &tb);
    vgpu_enc_rpc_tensor(&g, &tc);
    size_t size = vgpu_enc_used(&g);
    assert_int_equal(size, 8 + 8 + 304 * 3);
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u32(e, 3);
    vgpu_enc_u64(e, size);
    const uint8_t *p;
    size_t n;
    assert_int_equal(call(APIR_CMD_BACKEND_GRAPH_COMPUTE, &p, &n), VGPU_OK);
    assert_int_equal(n, 4);
    assert_int_equal((int32_t)rd32(p), GGML_STATUS_SUCCESS);
    assert_int_equal(set_get(APIR_CMD_BUFFER_GET_TENSOR, buf, &tc, 3, 0, sizeof(c)), VGPU_OK);
    memcpy(c, res, sizeof(c));
    for (int i = 0; i < 8; i++)
        assert_true(c[i] == a[i] + b[i]);
}

static void test_op_queries(void **state)
{
    (void)state;
    /* Raw ggml_tensor images, as an upstream guest sends them: an ADD with two sources. */
    struct vgpu_inline_tensor it;
    memset(&it, 0, sizeof(it));
    struct vgpu_raw_tensor *srcs[3] = { &it.op, &it.src[0], &it.src[1] };
    for (int i = 0; i < 3; i++) {
        srcs[i]->type = GGML_TYPE_F32;
        srcs[i]->ne[0] = 8;
        srcs[i]->ne[1] = 2;
        srcs[i]->ne[2] = srcs[i]->ne[3] = 1;
        srcs[i]->nb[0] = 4;
        srcs[i]->nb[1] = 32;
        srcs[i]->nb[2] = srcs[i]->nb[3] = 64;
        srcs[i]->data = 0x7ffd00001000ull + 4096 * (uint64_t)i; /* a guest pointer: presence only */
        srcs[i]->src[0] = 0x55550000ull;                         /* a source's own srcs: ignored */
    }
    it.op.op = GGML_OP_ADD;
    it.op.src[0] = 0x7ffd00000100ull;
    it.op.src[1] = 0x7ffd00000200ull;
    it.op.src[2] = 0;
    it.op.buffer = 0x7ffd00000300ull; /* present: a handle follows */
    int local;
    it.buffer_handle = (uint64_t)(uintptr_t)&local; /* upstream sends a stack address: ignored */
    it.n_src = 2;
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_inline_tensor(e, &it);
    assert_int_equal(vgpu_enc_used(e), 336 + 8 + 336 * 2);
    const uint8_t *p;
    size_t n;
    assert_int_equal(call(APIR_CMD_DEVICE_SUPPORTS_OP, &p, &n), VGPU_OK);
    assert_int_equal(n, 4);
    assert_int_equal(p[0], 1);

    /* MUL_MAT with src[1] NULL (upstream: SIGSEGV in the CPU supports_op): not supported. */
    it.op.op = GGML_OP_MUL_MAT;
    it.op.src[1] = 0;
    it.n_src = 1;
    vgpu_enc_inline_tensor(apir_harness_req(H), &it);
    assert_int_equal(call(APIR_CMD_DEVICE_SUPPORTS_OP, &p, &n), VGPU_OK);
    assert_int_equal(n, 4);
    assert_int_equal(p[0], 0);

    /* GET_ALLOC_SIZE: u64 buft, inline tensor → u64 (ggml_nbytes on the CPU: 8 x 2 floats). */
    memset(&it, 0, sizeof(it));
    it.op.type = GGML_TYPE_F32;
    it.op.ne[0] = 8;
    it.op.ne[1] = 2;
    it.op.ne[2] = it.op.ne[3] = 1;
    it.op.nb[0] = 4;
    it.op.nb[1] = 32;
    it.op.nb[2] = it.op.nb[3] = 64;
    it.op.buffer = 1;
    it.buffer_handle = 0xdeadbeefull;
    uint64_t buft = get_buft();
    e = apir_harness_req(H);
    vgpu_enc_u64(e, buft);
    vgpu_enc_inline_tensor(e, &it);
    assert_int_equal(call(APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE, &p, &n), VGPU_OK);
    assert_int_equal(n, 8);
    assert_int_equal(rd64(p), 64);
    /* A bad type in the image is refused, not asserted on. */
    it.op.type = 200;
    e = apir_harness_req(H);
    vgpu_enc_u64(e, buft);
    vgpu_enc_inline_tensor(e, &it);
    assert_int_equal(call(APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE, &p, &n), VGPU_INVALID);
    assert_int_equal(nop_baseline(), VGPU_OK);
}

static void test_buffer_from_ptr(void **state)
{
    (void)state;
    uint8_t *res = apir_harness_res_create(H, 8, 16384);
    assert_non_null(res);
    /* H5: a buffer larger than its resource. */
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u32(e, 8);
    vgpu_enc_u64(e, 1 << 20);
    vgpu_enc_u64(e, 1 << 20);
    assert_int_equal(call(APIR_CMD_DEVICE_BUFFER_FROM_PTR, NULL, NULL), VGPU_INVALID);
    e = apir_harness_req(H);
    vgpu_enc_u32(e, 99);
    vgpu_enc_u64(e, 4096);
    vgpu_enc_u64(e, 4096);
    assert_int_equal(call(APIR_CMD_DEVICE_BUFFER_FROM_PTR, NULL, NULL), VGPU_NOT_FOUND);

    e = apir_harness_req(H);
    vgpu_enc_u32(e, 8);
    vgpu_enc_u64(e, 16384);
    vgpu_enc_u64(e, 16384);
    const uint8_t *p;
    size_t n;
    assert_int_equal(call(APIR_CMD_DEVICE_BUFFER_FROM_PTR, &p, &n), VGPU_OK);
    assert_int_equal(n, 16);
    uint64_t buf = rd64(p), buft = rd64(p + 8);
    assert_int_equal(buf >> 56, 'B');
    assert_true(buft == get_buft());
    /* Clearing it writes the shared memory, and nothing beyond (a guard page follows). */
    e = apir_harness_req(H);
    vgpu_enc_u64(e, buf);
    vgpu_enc_u8(e, 0x77);
    assert_int_equal(call(APIR_CMD_BUFFER_CLEAR, NULL, NULL), VGPU_OK);
    assert_int_equal(res[0], 0x77);
    assert_int_equal(res[16383], 0x77);
}

/* ---- upstream holes ----------------------------------------------------------------------------------- */

static int fake_called;
static const char *fake_get_name(ggml_backend_buffer_type_t buft)
{
    (void)buft;
    fake_called = 1;
    return "pwned";
}

static void test_holes_h1_h2_h4_h11(void **state)
{
    (void)state;
    uint64_t buf = alloc(4096);
    uint8_t *res = apir_harness_res_create(H, 3, 4096);
    assert_non_null(res);
    memset(res, 0x42, 4096);

    /* H1: a tensor without a buffer whose data is a host address. */
    volatile uint64_t victim = 0x1111111111111111ull;
    struct vgpu_rpc_tensor t = rpc_f32(1, 0, 2, 1, (uint64_t)(uintptr_t)&victim);
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 8), VGPU_INVALID);
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, 0, &t, 3, 0, 8), VGPU_NOT_FOUND);
    t.buffer = buf; /* in the buffer, but data is a host address, not an offset */
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 8), VGPU_INVALID);
    assert_int_equal(set_get(APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 8), VGPU_INVALID);
    assert_true(victim == 0x1111111111111111ull);

    /* H2: offset + size past the tensor / buffer; a tensor of another buffer. */
    struct vgpu_rpc_tensor whole = rpc_f32(2, buf, 1024, 1, 0);
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &whole, 3, 4160, 64), VGPU_INVALID);
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &whole, 3, 4090, 8), VGPU_INVALID);
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &whole, 3, UINT64_MAX - 2, 8), VGPU_INVALID);
    struct vgpu_rpc_tensor past = rpc_f32(3, buf, 64, 1, 4096 - 128);
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &past, 3, 0, 8), VGPU_INVALID);
    uint64_t other = alloc(4096);
    struct vgpu_rpc_tensor theirs = rpc_f32(4, other, 64, 1, 0);
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &theirs, 3, 0, 8), VGPU_INVALID);

    /* H4: a forged buffer-type "handle" pointing at a fake struct: never called through. */
    static struct ggml_backend_buffer_type fake;
    memset(&fake, 0, sizeof(fake));
    fake.iface.get_name = fake_get_name;
    const uint32_t buft_cmds[] = { APIR_CMD_BUFFER_TYPE_GET_NAME, APIR_CMD_BUFFER_TYPE_GET_ALIGNMENT,
                                   APIR_CMD_BUFFER_TYPE_GET_MAX_SIZE, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER };
    for (size_t i = 0; i < sizeof(buft_cmds) / sizeof(buft_cmds[0]); i++) {
        struct vgpu_enc *e = apir_harness_req(H);
        vgpu_enc_u64(e, (uint64_t)(uintptr_t)&fake);
        vgpu_enc_u64(e, 4096);
        assert_int_equal(call(buft_cmds[i], NULL, NULL), VGPU_NOT_FOUND);
    }
    assert_int_equal(fake_called, 0);

    /* H11: copy of 64 bytes into a 32-byte tensor. */
    struct vgpu_rpc_tensor src = rpc_f32(5, buf, 16, 1, 0);
    struct vgpu_rpc_tensor dst = rpc_f32(6, buf, 8, 1, 4096 - 32);
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u64(e, buf);
    vgpu_enc_rpc_tensor(e, &src);
    vgpu_enc_rpc_tensor(e, &dst);
    assert_int_equal(call(APIR_CMD_BUFFER_CPY_TENSOR, NULL, NULL), VGPU_INVALID);
    /* ... and a source without a buffer. */
    src.buffer = 0;
    src.data = 0;
    dst = rpc_f32(6, buf, 16, 1, 2048);
    e = apir_harness_req(H);
    vgpu_enc_u64(e, buf);
    vgpu_enc_rpc_tensor(e, &src);
    vgpu_enc_rpc_tensor(e, &dst);
    assert_int_equal(call(APIR_CMD_BUFFER_CPY_TENSOR, NULL, NULL), VGPU_INVALID);
    assert_int_equal(nop_baseline(), VGPU_OK);
}

static void test_hole_h3(void **state)
{
    (void)state;
    /* GET of 32 KiB into a 16 KiB resource (a guard page follows it: a write past would fault). */
    uint64_t buf = alloc(65536);
    uint8_t *res = apir_harness_res_create(H, 3, 16384);
    assert_non_null(res);
    struct vgpu_rpc_tensor t = rpc_f32(1, buf, 8192, 1, 0);
    assert_int_equal(set_get(APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 32768), VGPU_INVALID);
    assert_int_equal(set_get(APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 32768), VGPU_INVALID);
    assert_int_equal(set_get(APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 16384), VGPU_OK);
    /* A graph whose declared size is larger than its resource. */
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u32(e, 3);
    vgpu_enc_u64(e, 60808);
    assert_int_equal(call(APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL, NULL), VGPU_INVALID);
    e = apir_harness_req(H);
    vgpu_enc_u32(e, 77);
    vgpu_enc_u64(e, 100);
    assert_int_equal(call(APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL, NULL), VGPU_NOT_FOUND);
    assert_int_equal(nop_baseline(), VGPU_OK);
}

static uint32_t send_graph_image(const uint8_t *img, size_t size)
{
    uint8_t *res = apir_harness_res_ptr(H, 30);
    if (!res)
        res = apir_harness_res_create(H, 30, 65536);
    assert_non_null(res);
    memcpy(res, img, size);
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u32(e, 30);
    vgpu_enc_u64(e, size);
    return call(APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL, NULL);
}

static void test_hole_h7_graphs(void **state)
{
    (void)state;
    uint64_t buf = alloc(4096);
    static uint8_t img[8192];
    struct vgpu_rpc_tensor ta = rpc_f32(0x100, buf, 4, 1, 0);
    struct vgpu_rpc_tensor tb = rpc_f32(0x200, buf, 4, 1, 64);
    struct vgpu_rpc_tensor tc = rpc_f32(0x300, buf, 4, 1, 128);
    tc.op = GGML_OP_ADD;
    tc.src[0] = ta.id;
    tc.src[1] = tb.id;
    tc.flags = GGML_TENSOR_FLAG_COMPUTE;

    struct {
        const char *what;
        uint64_t node;
        uint64_t src1;
        uint32_t type;
        uint64_t id_b;
    } cases[] = {
        { "good", 0x300, 0x200, GGML_TYPE_F32, 0x200 },
        { "unknown src id", 0x300, 0x999, GGML_TYPE_F32, 0x200 },
        { "src is a later tensor", 0x300, 0x300, GGML_TYPE_F32, 0x200 },
        { "type 200", 0x300, 0x200, 200, 0x200 },
        { "unknown node id", 0x301, 0x200, GGML_TYPE_F32, 0x200 },
        { "duplicate tensor id", 0x300, 0x100, GGML_TYPE_F32, 0x100 },
        { "tensor id 0", 0x300, 0x200, GGML_TYPE_F32, 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct vgpu_rpc_tensor b = tb, c = tc;
        b.id = cases[i].id_b;
        b.type = cases[i].type;
        c.src[1] = cases[i].src1;
        struct vgpu_enc g;
        vgpu_enc_init(&g, img, sizeof(img));
        vgpu_enc_u32(&g, 1);
        vgpu_enc_u64(&g, cases[i].node);
        vgpu_enc_u32(&g, 3);
        vgpu_enc_rpc_tensor(&g, &ta);
        vgpu_enc_rpc_tensor(&g, &b);
        vgpu_enc_rpc_tensor(&g, &c);
        uint32_t r = send_graph_image(img, vgpu_enc_used(&g));
        if (r != (i == 0 ? VGPU_OK : VGPU_INVALID))
            fail_msg("%s: code %u", cases[i].what, r);
        assert_int_equal(nop_baseline(), VGPU_OK);
    }
    /* n_nodes = 1000 in an 8-byte graph; counts that do not match the size. */
    uint32_t small[2] = { 1000, 0 };
    assert_int_equal(send_graph_image((const uint8_t *)small, 8), VGPU_INVALID);
    uint32_t zero[2] = { 0, 0 };
    assert_int_equal(send_graph_image((const uint8_t *)zero, 7), VGPU_INVALID);
    assert_int_equal(nop_baseline(), VGPU_OK);
}

/* Each case in its own context: a truncated request makes the context fatal. */
static void test_hole_h6_h9_truncated(void **state)
{
    (void)state;
    const struct {
        uint32_t cmd;
        size_t len;
    } cases[] = {
        { APIR_CMD_BUFFER_TYPE_GET_ALIGNMENT, 0 }, /* H9 */
        { APIR_CMD_BUFFER_TYPE_GET_NAME, 4 },
        { APIR_CMD_DEVICE_SUPPORTS_OP, 0 }, /* H6 */
        { APIR_CMD_DEVICE_SUPPORTS_OP, 335 },
        { APIR_CMD_BUFFER_SET_TENSOR, 300 },
        { APIR_CMD_BACKEND_GRAPH_COMPUTE, 8 },
    };
    static uint8_t zeros[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct apir_harness *h = apir_harness_open(CTX_ID + 10 + (uint32_t)i, NULL);
        assert_non_null(h);
        assert_int_equal(apir_harness_init(h), 0);
        assert_int_equal(apir_harness_call(h, cases[i].cmd, zeros, cases[i].len, NULL), VGPU_INVALID);
        assert_int_equal(apir_harness_reply_len(h), 0);
        assert_int_equal(apir_harness_call(h, APIR_CMD_DEVICE_GET_COUNT, NULL, 0, NULL), VGPU_FATAL);
        apir_harness_close(h);
    }
    /* buft 0 is just unknown. */
    vgpu_enc_u64(apir_harness_req(H), 0);
    assert_int_equal(call(APIR_CMD_BUFFER_TYPE_GET_ALIGNMENT, NULL, NULL), VGPU_NOT_FOUND);
    assert_int_equal(nop_baseline(), VGPU_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_device_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_compute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_from_ptr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holes_h1_h2_h4_h11, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hole_h3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hole_h7_graphs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hole_h6_h9_truncated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
