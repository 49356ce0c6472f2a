/*
 * Extension commands of the host APIR library (docs/PROTOCOL.md §4), driven through the real
 * ABI by the fake runtime in tests/support, on the real CPU backend. Expected values come from
 * the protocol document, ggml's public API or plain arithmetic in the test, never from the
 * library under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "abi.h"
#include "apir-harness.h"
#include "ext.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "wire.h"

#define CTX_ID 4201

static struct apir_harness *H;

static int setup(void **state)
{
    (void)state;
    H = apir_harness_open(CTX_ID, NULL);
    if (!H || apir_harness_init(H) != 0 || apir_harness_hello(H) != VGPU_OK)
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

static uint32_t nop(void)
{
    apir_harness_req(H);
    return apir_harness_send(H, VGPU_CMD_EXT_NOP, NULL);
}

static uint64_t alloc(uint64_t size)
{
    uint64_t id = 0;
    assert_int_equal(apir_harness_alloc(H, 0, size, 0, &id, NULL), VGPU_OK);
    assert_true(id != 0);
    return id;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + 7 * i);
}

/* A transfer request; data inline (res_id 0) follows as a blob when `data` is given. */
static uint32_t transfer(uint32_t cmd, const struct vgpu_wire_tensor *w, uint64_t offset, uint64_t size,
                         uint64_t n_copies, uint64_t st, uint64_t sd, uint32_t res_id, uint64_t res_offset,
                         const void *data, size_t data_len, struct vgpu_dec *reply)
{
    struct vgpu_transfer x = { *w, offset, size, n_copies, st, sd, res_id, res_offset };
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_transfer(e, &x);
    if (data)
        vgpu_enc_blob(e, data, data_len);
    return apir_harness_send(H, cmd, reply);
}

/* ---- hello -------------------------------------------------------------------------------------- */

static void test_hello_reply(void **state)
{
    (void)state;
    struct vgpu_abi_info abi;
    vgpu_abi_info_get(&abi);
    struct vgpu_hello req = { 1, 0, abi.hash, abi.n_ops, abi.n_types, abi.tensor_size, 0, 0, 0 };
    vgpu_enc_hello_request(apir_harness_req(H), &req);
    struct vgpu_dec d;
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_HELLO, &d), VGPU_OK);
    struct vgpu_hello rep;
    assert_true(vgpu_dec_hello_reply(&d, &rep));
    assert_int_equal(vgpu_dec_left(&d), 0);
    assert_int_equal(rep.ext_version, VGPU_EXT_VERSION);
    assert_true(rep.abi_hash == abi.hash);
    assert_int_equal(rep.n_ops, GGML_OP_COUNT);
    assert_int_equal(rep.n_types, GGML_TYPE_COUNT);
    assert_int_equal(rep.tensor_size, sizeof(struct ggml_tensor));
    assert_int_equal(rep.n_devices, 1); /* the CPU backend has one device */
    assert_int_equal(rep.graph_cache_slots, 8);
    assert_int_equal(rep.max_command_size, 1u << 20);
}

static void test_hello_mismatch(void **state)
{
    (void)state;
    struct apir_harness *h = apir_harness_open(CTX_ID + 1, NULL);
    assert_non_null(h);
    assert_int_equal(apir_harness_init(h), 0);
    /* Before any hello, extension commands are refused (not fatal). */
    apir_harness_req(h);
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_NOP, NULL), VGPU_INVALID);

    struct vgpu_abi_info abi;
    vgpu_abi_info_get(&abi);
    struct vgpu_hello req = { 1, 0, abi.hash ^ 1, abi.n_ops + 1, abi.n_types, abi.tensor_size, 0, 0, 0 };
    vgpu_enc_hello_request(apir_harness_req(h), &req);
    struct vgpu_dec d;
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_HELLO, &d), VGPU_ABI_MISMATCH);
    /* The reply is fully written with the host's values. */
    struct vgpu_hello rep;
    assert_true(vgpu_dec_hello_reply(&d, &rep));
    assert_true(rep.abi_hash == abi.hash);
    assert_int_equal(rep.n_ops, GGML_OP_COUNT);
    assert_int_equal(rep.tensor_size, sizeof(struct ggml_tensor));
    apir_harness_req(h);
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_NOP, NULL), VGPU_INVALID);
    /* Baseline still works; a correct hello then enables the extensions. */
    apir_harness_req(h);
    assert_int_equal(apir_harness_send(h, APIR_CMD_DEVICE_GET_COUNT, NULL), VGPU_OK);
    assert_int_equal(apir_harness_hello(h), VGPU_OK);
    apir_harness_req(h);
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_NOP, NULL), VGPU_OK);
    assert_int_equal(apir_harness_pointer_hits(h), 0);
    apir_harness_close(h);
}

/* ---- devices ------------------------------------------------------------------------------------- */

static void test_device_info(void **state)
{
    (void)state;
    vgpu_enc_u32(apir_harness_req(H), 0);
    struct vgpu_dec d;
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_DEVICE_INFO, &d), VGPU_OK);
    struct vgpu_device_info info;
    assert_true(vgpu_dec_device_info(&d, &info));
    assert_int_equal(vgpu_dec_left(&d), 0);
    assert_string_equal(info.name, "CPU");
    assert_int_equal(info.type, GGML_BACKEND_DEVICE_TYPE_CPU);
    /* ggml-cpu: no async, no host buffer, buffer_from_host_ptr, no events, mmap. */
    assert_int_equal(info.caps, VGPU_CAP_BUFFER_FROM_HOST_PTR | VGPU_CAP_MMAP_SUPPORT);
    assert_true(info.mem_total > 0 && info.mem_free <= info.mem_total);
    assert_int_equal(info.buft_id >> 56, 'T');
    assert_string_equal(info.buft_name, "CPU");
    assert_int_equal(info.alignment, 32); /* ggml-cpu's TENSOR_ALIGNMENT */
    assert_true(info.max_size == UINT64_MAX);
    /* CPU buffers are host memory and can wrap shared memory; no init, alloc size or optimize. */
    assert_int_equal(info.buft_flags, VGPU_BUFT_IS_HOST | VGPU_BUFT_ZERO_COPY);

    vgpu_enc_u32(apir_harness_req(H), 1);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_DEVICE_INFO, NULL), VGPU_INVALID);
    vgpu_enc_u32(apir_harness_req(H), 0);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_DEVICE_MEMORY, &d), VGPU_OK);
    assert_int_equal(apir_harness_reply_len(H), 16);
}

/* ---- transfers ------------------------------------------------------------------------------------ */

static void test_set_get_inline(void **state)
{
    (void)state;
    uint64_t buf = alloc(4096);
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_F32, 64, 1, 1, 1, buf, 256);
    uint8_t in[256], out[256];
    fill(in, sizeof(in), 3);
    assert_int_equal(apir_harness_set(H, &w, 0, in, sizeof(in)), VGPU_OK);
    memset(out, 0, sizeof(out));
    assert_int_equal(apir_harness_get(H, &w, 0, out, sizeof(out)), VGPU_OK);
    assert_memory_equal(in, out, sizeof(in));
    /* A partial read at an offset. */
    assert_int_equal(apir_harness_get(H, &w, 100, out, 40), VGPU_OK);
    assert_memory_equal(in + 100, out, 40);
    /* A fresh buffer reads as zeros (no stale host memory). */
    struct vgpu_wire_tensor w2;
    apir_harness_wire(&w2, GGML_TYPE_F32, 64, 1, 1, 1, buf, 1024);
    uint8_t zero[256] = { 0 };
    assert_int_equal(apir_harness_get(H, &w2, 0, out, sizeof(out)), VGPU_OK);
    assert_memory_equal(zero, out, sizeof(out));
    /* Also when the host reuses memory it freed: fill buffers, free them, allocate again. */
    uint64_t ids[8];
    uint8_t pat[4096];
    memset(pat, 0xC7, sizeof(pat));
    for (int i = 0; i < 8; i++) {
        ids[i] = alloc(4096);
        struct vgpu_wire_tensor f;
        apir_harness_wire(&f, GGML_TYPE_I8, 4096, 1, 1, 1, ids[i], 0);
        assert_int_equal(apir_harness_set(H, &f, 0, pat, sizeof(pat)), VGPU_OK);
    }
    for (int i = 0; i < 8; i++)
        assert_int_equal(apir_harness_free(H, ids[i]), VGPU_OK);
    for (int i = 0; i < 8; i++) {
        uint64_t id = alloc(4096);
        struct vgpu_wire_tensor f;
        apir_harness_wire(&f, GGML_TYPE_I8, 4096, 1, 1, 1, id, 0);
        uint8_t back[4096], z[4096] = { 0 };
        assert_int_equal(apir_harness_get(H, &f, 0, back, sizeof(back)), VGPU_OK);
        assert_memory_equal(z, back, sizeof(back));
    }
}

static void test_set_get_resource(void **state)
{
    (void)state;
    uint64_t buf = alloc(8192);
    uint8_t *res = apir_harness_res_create(H, 7, 8192);
    assert_non_null(res);
    fill(res + 100, 512, 11);
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_F16, 256, 2, 1, 1, buf, 2048);
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_SET, &w, 64, 512, 1, 0, 0, 7, 100, NULL, 0, NULL), VGPU_OK);
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_GET, &w, 64, 512, 1, 0, 0, 7, 4000, NULL, 0, NULL), VGPU_OK);
    assert_memory_equal(res + 100, res + 4000, 512);
    assert_int_equal(apir_harness_reply_len(H), 0);
}

static void test_transfer_2d(void **state)
{
    (void)state;
    uint64_t buf = alloc(4096);
    /* f32 [8 x 4]: rows of 32 bytes. Write 8 bytes at the start of rows 0..2. */
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_F32, 8, 4, 1, 1, buf, 0);
    uint8_t in[24];
    fill(in, sizeof(in), 40);
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_SET, &w, 4, 8, 3, 32, 8, 0, 0, in, sizeof(in), NULL), VGPU_OK);
    uint8_t whole[128];
    assert_int_equal(apir_harness_get(H, &w, 0, whole, sizeof(whole)), VGPU_OK);
    uint8_t expect[128] = { 0 };
    for (int r = 0; r < 3; r++)
        memcpy(expect + 32 * r + 4, in + 8 * r, 8);
    assert_memory_equal(expect, whole, sizeof(expect));

    /* 2-D read with a data stride of 12: 4 gap bytes after each row come back as zeros. */
    struct vgpu_dec d;
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_GET, &w, 4, 8, 3, 32, 12, 0, 0, NULL, 0, &d), VGPU_OK);
    size_t len;
    const uint8_t *p = vgpu_dec_blob(&d, 1024, &len);
    assert_non_null(p);
    assert_int_equal(len, 2 * 12 + 8);
    for (int r = 0; r < 3; r++) {
        assert_memory_equal(p + 12 * r, in + 8 * r, 8);
        if (r < 2)
            assert_int_equal(p[12 * r + 8] | p[12 * r + 9] | p[12 * r + 10] | p[12 * r + 11], 0);
    }
    /* The same through a resource. */
    uint8_t *res = apir_harness_res_create(H, 3, 4096);
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_GET, &w, 4, 8, 3, 32, 100, 3, 16, NULL, 0, NULL), VGPU_OK);
    for (int r = 0; r < 3; r++)
        assert_memory_equal(res + 16 + 100 * r, in + 8 * r, 8);
}

static void test_memset(void **state)
{
    (void)state;
    uint64_t buf = alloc(1024);
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_I32, 16, 1, 1, 1, buf, 64);
    uint8_t in[64], out[64];
    fill(in, sizeof(in), 1);
    assert_int_equal(apir_harness_set(H, &w, 0, in, sizeof(in)), VGPU_OK);
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_wire_tensor(e, &w);
    vgpu_enc_u64(e, 8);
    vgpu_enc_u64(e, 16);
    vgpu_enc_u32(e, 0xAB);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_TENSOR_MEMSET, NULL), VGPU_OK);
    assert_int_equal(apir_harness_get(H, &w, 0, out, sizeof(out)), VGPU_OK);
    memset(in + 8, 0xAB, 16);
    assert_memory_equal(in, out, sizeof(out));
    /* Past the tensor, and a value that is not a byte. */
    e = apir_harness_req(H);
    vgpu_enc_wire_tensor(e, &w);
    vgpu_enc_u64(e, 60);
    vgpu_enc_u64(e, 8);
    vgpu_enc_u32(e, 0);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_TENSOR_MEMSET, NULL), VGPU_INVALID);
    e = apir_harness_req(H);
    vgpu_enc_wire_tensor(e, &w);
    vgpu_enc_u64(e, 0);
    vgpu_enc_u64(e, 8);
    vgpu_enc_u32(e, 256);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_TENSOR_MEMSET, NULL), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);
}

static uint32_t copy(const struct vgpu_wire_tensor *s, const struct vgpu_wire_tensor *d)
{
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_wire_tensor(e, s);
    vgpu_enc_wire_tensor(e, d);
    return apir_harness_send(H, VGPU_CMD_EXT_TENSOR_COPY, NULL);
}

static void test_copy(void **state)
{
    (void)state;
    uint64_t b1 = alloc(1024), b2 = alloc(1024);
    struct vgpu_wire_tensor s, d, small, overl;
    apir_harness_wire(&s, GGML_TYPE_F32, 32, 1, 1, 1, b1, 128);
    apir_harness_wire(&d, GGML_TYPE_F32, 32, 1, 1, 1, b2, 512);
    uint8_t in[128], out[128];
    fill(in, sizeof(in), 9);
    assert_int_equal(apir_harness_set(H, &s, 0, in, sizeof(in)), VGPU_OK);
    assert_int_equal(copy(&s, &d), VGPU_OK);
    assert_int_equal(apir_harness_get(H, &d, 0, out, sizeof(out)), VGPU_OK);
    assert_memory_equal(in, out, sizeof(in));
    /* H11: the sizes must match. */
    apir_harness_wire(&small, GGML_TYPE_F32, 16, 1, 1, 1, b2, 960);
    assert_int_equal(copy(&s, &small), VGPU_INVALID);
    /* Overlapping source and destination in one buffer. */
    apir_harness_wire(&overl, GGML_TYPE_F32, 32, 1, 1, 1, b1, 192);
    assert_int_equal(copy(&s, &overl), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);
}

static void test_clear(void **state)
{
    (void)state;
    uint64_t buf = alloc(512);
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u64(e, buf);
    vgpu_enc_u32(e, 0x5A);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_BUFFER_CLEAR, NULL), VGPU_OK);
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_I8, 512, 1, 1, 1, buf, 0);
    uint8_t out[512], expect[512];
    memset(expect, 0x5A, sizeof(expect));
    assert_int_equal(apir_harness_get(H, &w, 0, out, sizeof(out)), VGPU_OK);
    assert_memory_equal(expect, out, sizeof(out));
    e = apir_harness_req(H);
    vgpu_enc_u64(e, buf);
    vgpu_enc_u32(e, 300);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_BUFFER_CLEAR, NULL), VGPU_INVALID);
}

static void test_transfer_bounds(void **state)
{
    (void)state;
    uint64_t buf = alloc(4096);
    uint8_t *res = apir_harness_res_create(H, 5, 1000);
    assert_non_null(res);
    struct vgpu_wire_tensor w, past;
    apir_harness_wire(&w, GGML_TYPE_F32, 64, 1, 1, 1, buf, 0); /* 256 bytes */
    uint8_t data[512] = { 0 };

    struct {
        uint64_t offset, size, n, st, sd;
        uint32_t res_id;
        uint64_t res_offset;
    } bad[] = {
        { 200, 64, 1, 0, 0, 0, 0 },                    /* offset + size past the tensor */
        { 0, 257, 1, 0, 0, 0, 0 },                     /* size past the tensor */
        { UINT64_MAX - 3, 8, 1, 0, 0, 0, 0 },          /* offset + size overflows */
        { 0, 8, 0, 0, 0, 0, 0 },                       /* no copies */
        { 0, 8, 2, UINT64_MAX / 2 + 1, 8, 0, 0 },      /* stride overflows */
        { 0, 8, 40, 8, 8, 0, 0 },                      /* last copy past the tensor */
        { 0, 64, 1, 0, 0, 5, 960 },                    /* past the resource */
        { 0, 64, 1, 0, 0, 5, UINT64_MAX - 10 },        /* resource offset overflows */
        { 0, 64, 3, 64, 500, 5, 0 },                   /* strided data past the resource */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int get = 0; get < 2; get++) {
            uint32_t cmd = get ? VGPU_CMD_EXT_TENSOR_GET : VGPU_CMD_EXT_TENSOR_SET;
            uint64_t inl = bad[i].size < sizeof(data) ? bad[i].size : 0;
            uint32_t r = transfer(cmd, &w, bad[i].offset, bad[i].size, bad[i].n, bad[i].st, bad[i].sd, bad[i].res_id,
                                  bad[i].res_offset, (!get && !bad[i].res_id) ? data : NULL, inl, NULL);
            if (r != VGPU_INVALID)
                fail_msg("case %zu (%s): code %u", i, get ? "get" : "set", r);
            assert_int_equal(apir_harness_reply_len(H), 0);
            assert_int_equal(nop(), VGPU_OK); /* the context still works */
        }
    }
    /* Inline data length must match the transfer. */
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_SET, &w, 0, 16, 1, 0, 0, 0, 0, data, 12, NULL), VGPU_INVALID);
    /* A tensor that leaves its buffer. */
    apir_harness_wire(&past, GGML_TYPE_F32, 64, 1, 1, 1, buf, 4096 - 128);
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_SET, &past, 0, 8, 1, 0, 0, 0, 0, data, 8, NULL), VGPU_INVALID);
    apir_harness_wire(&past, GGML_TYPE_F32, 64, 1, 1, 1, buf, UINT64_MAX - 100);
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_GET, &past, 0, 8, 1, 0, 0, 0, 0, NULL, 0, NULL), VGPU_INVALID);
    /* Unknown resource. */
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_GET, &w, 0, 8, 1, 0, 0, 99, 0, NULL, 0, NULL), VGPU_NOT_FOUND);
    /* Everything still works, and the exact fit is accepted. */
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_GET, &w, 0, 256, 1, 0, 0, 5, 744, NULL, 0, NULL), VGPU_OK);
    uint8_t in[256], out[256];
    fill(in, sizeof(in), 77);
    assert_int_equal(apir_harness_set(H, &w, 0, in, sizeof(in)), VGPU_OK);
    assert_int_equal(apir_harness_get(H, &w, 0, out, sizeof(out)), VGPU_OK);
    assert_memory_equal(in, out, sizeof(in));
}

static void test_bad_tensors(void **state)
{
    (void)state;
    uint64_t buf = alloc(4096);
    uint8_t data[64] = { 0 };
    struct vgpu_wire_tensor w;

    apir_harness_wire(&w, GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
    w.type = 200;
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_INVALID);
    apir_harness_wire(&w, GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
    w.type = 4; /* a removed type (Q4_2): block size 0 */
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_INVALID);
    apir_harness_wire(&w, GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
    w.ne[2] = -1;
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_INVALID);
    apir_harness_wire(&w, GGML_TYPE_Q4_0, 32, 1, 1, 1, buf, 0);
    w.ne[0] = 10; /* not a multiple of the block */
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_INVALID);
    apir_harness_wire(&w, GGML_TYPE_Q4_0, 32, 1, 1, 1, buf, 0);
    w.nb[0] = 4; /* a blocked type needs nb[0] == its block size */
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_INVALID);
    /* Size-1 dimension with a huge stride: the extent is still checked. */
    apir_harness_wire(&w, GGML_TYPE_F32, 4, 2, 1, 1, buf, 0);
    w.nb[1] = 1ull << 60;
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_INVALID);
    apir_harness_wire(&w, GGML_TYPE_F32, 4, 2, 1, 1, buf, 0);
    w.nb[1] = 4096;
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_INVALID);
    /* A single tensor has no sources. */
    apir_harness_wire(&w, GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
    w.src[0] = 1;
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_INVALID);
    /* No buffer, forged buffer, stale buffer. */
    apir_harness_wire(&w, GGML_TYPE_F32, 4, 1, 1, 1, 0, 0);
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_INVALID);
    apir_harness_wire(&w, GGML_TYPE_F32, 4, 1, 1, 1, buf ^ 0x10000000ull, 0);
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_NOT_FOUND);
    apir_harness_wire(&w, GGML_TYPE_F32, 4, 1, 1, 1, (uint64_t)(uintptr_t)data, 0);
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_NOT_FOUND);
    uint64_t gone = alloc(64);
    assert_int_equal(apir_harness_free(H, gone), VGPU_OK);
    apir_harness_wire(&w, GGML_TYPE_F32, 4, 1, 1, 1, gone, 0);
    assert_int_equal(apir_harness_set(H, &w, 0, data, 4), VGPU_NOT_FOUND);
    assert_int_equal(apir_harness_free(H, gone), VGPU_NOT_FOUND);
    assert_int_equal(nop(), VGPU_OK);
}

/* ---- fatal state -------------------------------------------------------------------------------- */

static void test_wrong_type_is_fatal(void **state)
{
    (void)state;
    vgpu_enc_u32(apir_harness_req(H), 0);
    struct vgpu_dec d;
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_DEVICE_INFO, &d), VGPU_OK);
    struct vgpu_device_info info;
    assert_true(vgpu_dec_device_info(&d, &info));
    /* A buffer-type id where a buffer id belongs. */
    assert_int_equal(apir_harness_free(H, info.buft_id), VGPU_NOT_FOUND);
    assert_int_equal(nop(), VGPU_FATAL);
    apir_harness_req(H);
    assert_int_equal(apir_harness_send(H, APIR_CMD_DEVICE_GET_COUNT, NULL), VGPU_FATAL);
    assert_int_equal(apir_harness_reply_len(H), 0);
}

static void test_truncated_is_fatal(void **state)
{
    (void)state;
    uint8_t two[2] = { 0, 0 };
    assert_int_equal(apir_harness_call(H, VGPU_CMD_EXT_DEVICE_MEMORY, two, 2, NULL), VGPU_INVALID);
    assert_int_equal(apir_harness_reply_len(H), 0);
    assert_int_equal(nop(), VGPU_FATAL);
}

static void test_unknown_command_is_fatal(void **state)
{
    (void)state;
    apir_harness_req(H);
    assert_int_equal(apir_harness_send(H, 40, NULL), VGPU_UNKNOWN_COMMAND);
    assert_int_equal(nop(), VGPU_FATAL);
}

/* ---- zero copy ---------------------------------------------------------------------------------- */

static void test_zero_copy(void **state)
{
    (void)state;
    uint8_t *res = apir_harness_res_create(H, 9, 65536);
    assert_non_null(res);
    uint64_t buf;
    uint32_t granted;
    assert_int_equal(apir_harness_alloc(H, 0, 65536, 9, &buf, &granted), VGPU_OK);
    assert_int_equal(granted, VGPU_ALLOC_ZERO_COPY);
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_F32, 16, 1, 1, 1, buf, 4096);
    uint8_t in[64], out[64];
    fill(in, sizeof(in), 21);
    /* A set lands in the shared memory itself, and guest writes are what the host reads. */
    assert_int_equal(apir_harness_set(H, &w, 0, in, sizeof(in)), VGPU_OK);
    assert_memory_equal(res + 4096, in, sizeof(in));
    fill(res + 4096, 64, 99);
    assert_int_equal(apir_harness_get(H, &w, 0, out, sizeof(out)), VGPU_OK);
    assert_memory_equal(res + 4096, out, sizeof(out));
    /* Transfer data named inside the buffer's own resource: an overlapping copy, refused (not
     * fatal). The first overlaps the tensor itself, the second only the buffer. */
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_GET, &w, 0, 64, 1, 0, 0, 9, 4096 + 32, NULL, 0, NULL),
                     VGPU_INVALID);
    assert_int_equal(transfer(VGPU_CMD_EXT_TENSOR_SET, &w, 0, 64, 1, 0, 0, 9, 0, NULL, 0, NULL), VGPU_INVALID);
    assert_int_equal(nop(), VGPU_OK);
    assert_memory_equal(res + 4096, out, sizeof(out));
    /* Larger than its resource. */
    uint8_t *small = apir_harness_res_create(H, 10, 4096);
    assert_non_null(small);
    uint64_t bad;
    assert_int_equal(apir_harness_alloc(H, 0, 8192, 10, &bad, NULL), VGPU_INVALID);
    assert_int_equal(apir_harness_alloc(H, 0, 4096, 11, &bad, NULL), VGPU_NOT_FOUND);
    /* The guest destroys the resource under the buffer: every use fails, free works. */
    apir_harness_res_destroy(H, 9);
    assert_int_equal(apir_harness_get(H, &w, 0, out, sizeof(out)), VGPU_NOT_FOUND);
    assert_int_equal(apir_harness_set(H, &w, 0, in, sizeof(in)), VGPU_NOT_FOUND);
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u64(e, buf);
    vgpu_enc_u32(e, 0);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_BUFFER_CLEAR, NULL), VGPU_NOT_FOUND);
    assert_int_equal(apir_harness_free(H, buf), VGPU_OK);
    assert_int_equal(nop(), VGPU_OK);
}

/* ---- op queries --------------------------------------------------------------------------------- */

static uint32_t op_query(uint32_t cmd, const struct vgpu_wire_tensor *list, uint32_t n, uint64_t buft,
                         uint64_t *answer)
{
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u32(e, 0);
    if (cmd == VGPU_CMD_EXT_GET_ALLOC_SIZE)
        vgpu_enc_u64(e, buft);
    vgpu_enc_u32(e, n);
    for (uint32_t i = 0; i < n; i++)
        vgpu_enc_wire_tensor(e, &list[i]);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(H, cmd, &d);
    if (r == VGPU_OK)
        *answer = cmd == VGPU_CMD_EXT_GET_ALLOC_SIZE ? vgpu_dec_u64(&d) : vgpu_dec_u32(&d);
    return r;
}

static void test_op_queries(void **state)
{
    (void)state;
    struct vgpu_wire_tensor l[12];
    memset(l, 0, sizeof(l));
    uint64_t a = 99;
    apir_harness_wire(&l[0], GGML_TYPE_F32, 4, 3, 1, 1, 0, 0);
    apir_harness_wire(&l[1], GGML_TYPE_F32, 4, 3, 1, 1, 0, 0);
    apir_harness_wire(&l[2], GGML_TYPE_F32, 4, 3, 1, 1, 0, 0);
    l[2].op = GGML_OP_ADD;
    l[2].src[0] = 1;
    l[2].src[1] = 2;
    assert_int_equal(op_query(VGPU_CMD_EXT_SUPPORTS_OP, l, 3, 0, &a), VGPU_OK);
    assert_int_equal(a, 1);
    a = 99;
    assert_int_equal(op_query(VGPU_CMD_EXT_OFFLOAD_OP, l, 3, 0, &a), VGPU_OK);
    assert_int_equal(a, 0); /* the CPU backend never asks for offload */
    /* A malformed op (src1 missing) and a function-pointer op are not supported. */
    l[2].src[1] = 0;
    a = 99;
    assert_int_equal(op_query(VGPU_CMD_EXT_SUPPORTS_OP, l, 3, 0, &a), VGPU_OK);
    assert_int_equal(a, 0);
    l[2].op = GGML_OP_CUSTOM;
    l[2].src[1] = 2;
    a = 99;
    assert_int_equal(op_query(VGPU_CMD_EXT_SUPPORTS_OP, l, 3, 0, &a), VGPU_OK);
    assert_int_equal(a, 0);
    /* References must point backwards; tensors must be well-formed. */
    l[2].op = GGML_OP_ADD;
    l[2].src[1] = 3;
    assert_int_equal(op_query(VGPU_CMD_EXT_SUPPORTS_OP, l, 3, 0, &a), VGPU_INVALID);
    l[2].src[1] = 2;
    l[0].type = 999;
    assert_int_equal(op_query(VGPU_CMD_EXT_SUPPORTS_OP, l, 3, 0, &a), VGPU_INVALID);
    assert_int_equal(op_query(VGPU_CMD_EXT_SUPPORTS_OP, l, 0, 0, &a), VGPU_INVALID);
    assert_int_equal(op_query(VGPU_CMD_EXT_SUPPORTS_OP, l, 12, 0, &a), VGPU_INVALID);

    /* Alloc size: ggml_nbytes for the CPU (no get_alloc_size): 10 x 3 floats. */
    vgpu_enc_u32(apir_harness_req(H), 0);
    struct vgpu_dec d;
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_DEVICE_INFO, &d), VGPU_OK);
    struct vgpu_device_info info;
    assert_true(vgpu_dec_device_info(&d, &info));
    apir_harness_wire(&l[0], GGML_TYPE_F32, 10, 3, 1, 1, 0, 0);
    assert_int_equal(op_query(VGPU_CMD_EXT_GET_ALLOC_SIZE, l, 1, info.buft_id, &a), VGPU_OK);
    assert_int_equal(a, 120);
    assert_int_equal(op_query(VGPU_CMD_EXT_GET_ALLOC_SIZE, l, 1, info.buft_id + 1, &a), VGPU_NOT_FOUND);
    assert_int_equal(nop(), VGPU_OK);
}

static void test_init_and_threads(void **state)
{
    (void)state;
    uint64_t buf = alloc(256);
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_F32, 8, 1, 1, 1, buf, 0);
    vgpu_enc_wire_tensor(apir_harness_req(H), &w);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_TENSOR_INIT, NULL), VGPU_OK);
    apir_harness_wire(&w, GGML_TYPE_F32, 8, 1, 1, 1, buf, 240);
    vgpu_enc_wire_tensor(apir_harness_req(H), &w);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_TENSOR_INIT, NULL), VGPU_INVALID);

    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u32(e, 0);
    vgpu_enc_u32(e, 2);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_SET_N_THREADS, NULL), VGPU_OK);
    e = apir_harness_req(H);
    vgpu_enc_u32(e, 0);
    vgpu_enc_u32(e, 0);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_SET_N_THREADS, NULL), VGPU_INVALID);
    e = apir_harness_req(H);
    vgpu_enc_u32(e, 3);
    vgpu_enc_u32(e, 1);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_SET_N_THREADS, NULL), VGPU_INVALID);
}

/* ---- quotas --------------------------------------------------------------------------------------- */

static void test_quotas(void **state)
{
    (void)state;
    struct apir_harness *h = apir_harness_open(CTX_ID + 2, NULL);
    assert_non_null(h);
    apir_harness_config(h, VGPU_CFG_QUOTA_BUFFERS, "2");
    apir_harness_config(h, VGPU_CFG_QUOTA_BYTES, "10000");
    apir_harness_config(h, VGPU_CFG_QUOTA_COMMAND, "4096");
    assert_int_equal(apir_harness_init(h), 0);
    assert_int_equal(apir_harness_hello(h), VGPU_OK);
    uint64_t a, b, c;
    assert_int_equal(apir_harness_alloc(h, 0, 20000, 0, &a, NULL), VGPU_QUOTA);
    assert_int_equal(apir_harness_alloc(h, 0, 6000, 0, &a, NULL), VGPU_OK);
    assert_int_equal(apir_harness_alloc(h, 0, 6000, 0, &b, NULL), VGPU_QUOTA);
    assert_int_equal(apir_harness_alloc(h, 0, 4000, 0, &b, NULL), VGPU_OK);
    assert_int_equal(apir_harness_alloc(h, 0, 8, 0, &c, NULL), VGPU_QUOTA); /* third buffer */
    assert_int_equal(apir_harness_free(h, a), VGPU_OK);
    assert_int_equal(apir_harness_alloc(h, 0, 6000, 0, &c, NULL), VGPU_OK);
    /* Command bytes. */
    static uint8_t big[5000];
    assert_int_equal(apir_harness_call(h, VGPU_CMD_EXT_NOP, big, sizeof(big), NULL), VGPU_QUOTA);
    assert_int_equal(apir_harness_call(h, VGPU_CMD_EXT_NOP, big, 4096, NULL), VGPU_OK);
    assert_int_equal(apir_harness_pointer_hits(h), 0);
    apir_harness_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_get_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_get_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_2d, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_tensors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_type_is_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_is_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_command_is_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_and_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quotas, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
