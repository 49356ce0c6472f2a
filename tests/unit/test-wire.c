/*
 * Unit tests of the tensor/graph images and extension messages (proto/wire.c).
 * Offsets are checked against the tables of docs/PROTOCOL.md (and, for the raw image, the
 * real struct ggml_tensor), never against values the code under test produces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ggml.h"
#include "wire.h"

static uint32_t rd32(const uint8_t *b, size_t off)
{
    uint32_t v;
    memcpy(&v, b + off, 4);
    return v;
}

static uint64_t rd64(const uint8_t *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

/* A wire tensor with a distinct value in every field. */
static struct vgpu_wire_tensor sample_wire(void)
{
    struct vgpu_wire_tensor t;
    memset(&t, 0, sizeof(t));
    t.type = 8;
    t.op = 29;
    t.flags = 0x14;
    t.use_count = 3;
    for (int i = 0; i < 4; i++) {
        t.ne[i] = ((int64_t)1 << 33) + i; /* needs 64 bits, which the baseline cannot carry */
        t.nb[i] = ((uint64_t)5 << 34) + (uint64_t)i;
    }
    for (int i = 0; i < 16; i++)
        t.op_params[i] = -100 - i;
    t.buffer = 0xB0B0B0B0B0B0B0B0ull;
    t.data = 0x1234;
    for (int i = 0; i < 10; i++)
        t.src[i] = (uint32_t)(i + 1);
    t.view_src = 77;
    t.view_offs = 0x5555;
    strcpy(t.name, "blk.0.attn_q");
    return t;
}

static void test_wire_tensor_layout(void **state)
{
    (void)state;
    struct vgpu_wire_tensor t = sample_wire();
    uint8_t buf[VGPU_WIRE_TENSOR_SIZE + 4];
    memset(buf, 0xEE, sizeof(buf));
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_wire_tensor(&enc, &t);
    assert_int_equal(vgpu_enc_used(&enc), 280);
    assert_int_equal(buf[280], 0xEE);

    /* Offsets from docs/PROTOCOL.md §4.1. */
    assert_int_equal(rd32(buf, 0), 8);
    assert_int_equal(rd32(buf, 4), 29);
    assert_int_equal(rd32(buf, 8), 0x14);
    assert_int_equal(rd32(buf, 12), 3);
    assert_true(rd64(buf, 16) == ((uint64_t)1 << 33));
    assert_true(rd64(buf, 40) == ((uint64_t)1 << 33) + 3);
    assert_true(rd64(buf, 48) == ((uint64_t)5 << 34));
    assert_int_equal((int32_t)rd32(buf, 80), -100);
    assert_int_equal((int32_t)rd32(buf, 140), -115);
    assert_true(rd64(buf, 144) == 0xB0B0B0B0B0B0B0B0ull);
    assert_true(rd64(buf, 152) == 0x1234);
    assert_int_equal(rd32(buf, 160), 1);
    assert_int_equal(rd32(buf, 196), 10);
    assert_int_equal(rd32(buf, 200), 77);
    assert_int_equal(rd32(buf, 204), 0);
    assert_true(rd64(buf, 208) == 0x5555);
    assert_string_equal((const char *)buf + 216, "blk.0.attn_q");

    struct vgpu_wire_tensor back;
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf, 280);
    assert_true(vgpu_dec_wire_tensor(&dec, &back));
    assert_memory_equal(&back, &t, sizeof(t));
}

/* A name without NUL on the wire comes back terminated; a short image fails as a whole. */
static void test_wire_tensor_malformed(void **state)
{
    (void)state;
    uint8_t buf[VGPU_WIRE_TENSOR_SIZE];
    memset(buf, 'A', sizeof(buf));
    struct vgpu_wire_tensor t;
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf, sizeof(buf));
    assert_true(vgpu_dec_wire_tensor(&dec, &t));
    assert_int_equal(strlen(t.name), 63);

    vgpu_dec_init(&dec, buf, sizeof(buf) - 1);
    assert_false(vgpu_dec_wire_tensor(&dec, &t));
    assert_int_equal(t.type, 0);
    assert_int_equal(vgpu_dec_left(&dec), sizeof(buf) - 1);
}

/* The baseline rpc tensor: offsets of docs/PROTOCOL.md §3.1, zeroed padding. */
static void test_rpc_tensor_layout(void **state)
{
    (void)state;
    struct vgpu_rpc_tensor t;
    memset(&t, 0, sizeof(t));
    t.id = 0x1111;
    t.type = 1;
    t.buffer = 0x2222;
    for (int i = 0; i < 4; i++) {
        t.ne[i] = 10u + (uint32_t)i;
        t.nb[i] = 20u + (uint32_t)i;
    }
    t.op = 7;
    t.op_params[0] = 9;
    t.op_params[15] = -9;
    t.flags = 2;
    t.src[0] = 0x3333;
    t.src[9] = 0x4444;
    t.view_src = 0x5555;
    t.view_offs = 0x6666;
    t.data = 0x7777;
    strcpy(t.name, "x");

    uint8_t b[VGPU_RPC_TENSOR_SIZE];
    memset(b, 0xEE, sizeof(b));
    vgpu_rpc_tensor_pack(&t, b);
    assert_true(rd64(b, 0) == 0x1111);
    assert_int_equal(rd32(b, 8), 1);
    assert_int_equal(rd32(b, 12), 0); /* padding */
    assert_true(rd64(b, 16) == 0x2222);
    assert_int_equal(rd32(b, 24), 10);
    assert_int_equal(rd32(b, 40), 20);
    assert_int_equal(rd32(b, 56), 7);
    assert_int_equal(rd32(b, 60), 9);
    assert_int_equal((int32_t)rd32(b, 120), -9);
    assert_int_equal(rd32(b, 124), 2);
    assert_true(rd64(b, 128) == 0x3333);
    assert_true(rd64(b, 200) == 0x4444);
    assert_true(rd64(b, 208) == 0x5555);
    assert_true(rd64(b, 216) == 0x6666);
    assert_true(rd64(b, 224) == 0x7777);
    assert_string_equal((const char *)b + 232, "x");
    assert_true(rd64(b, 296) == 0);

    struct vgpu_rpc_tensor back;
    vgpu_rpc_tensor_unpack(b, &back);
    assert_memory_equal(&back, &t, sizeof(t));
}

/* The raw image offsets are those of the real struct ggml_tensor of the pinned ggml. */
static void test_raw_offsets_match_ggml(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct ggml_tensor), VGPU_RAW_TENSOR_SIZE);
    assert_int_equal(offsetof(struct ggml_tensor, type), VGPU_RAW_OFF_TYPE);
    assert_int_equal(offsetof(struct ggml_tensor, buffer), VGPU_RAW_OFF_BUFFER);
    assert_int_equal(offsetof(struct ggml_tensor, ne), VGPU_RAW_OFF_NE);
    assert_int_equal(offsetof(struct ggml_tensor, nb), VGPU_RAW_OFF_NB);
    assert_int_equal(offsetof(struct ggml_tensor, op), VGPU_RAW_OFF_OP);
    assert_int_equal(offsetof(struct ggml_tensor, op_params), VGPU_RAW_OFF_OP_PARAMS);
    assert_int_equal(offsetof(struct ggml_tensor, flags), VGPU_RAW_OFF_FLAGS);
    assert_int_equal(offsetof(struct ggml_tensor, src), VGPU_RAW_OFF_SRC);
    assert_int_equal(offsetof(struct ggml_tensor, view_src), VGPU_RAW_OFF_VIEW_SRC);
    assert_int_equal(offsetof(struct ggml_tensor, view_offs), VGPU_RAW_OFF_VIEW_OFFS);
    assert_int_equal(offsetof(struct ggml_tensor, data), VGPU_RAW_OFF_DATA);
    assert_int_equal(offsetof(struct ggml_tensor, name), VGPU_RAW_OFF_NAME);
    assert_int_equal(offsetof(struct ggml_tensor, extra), VGPU_RAW_OFF_EXTRA);
}

/* A real ggml_tensor's bytes unpack to its own field values. */
static void test_raw_unpack_real_tensor(void **state)
{
    (void)state;
    struct ggml_tensor t;
    memset(&t, 0, sizeof(t));
    t.type = GGML_TYPE_F16;
    t.ne[0] = 4096;
    t.ne[3] = 2;
    t.nb[1] = 8192;
    t.op = GGML_OP_MUL_MAT;
    t.op_params[3] = 17;
    t.flags = GGML_TENSOR_FLAG_OUTPUT;
    t.src[0] = &t;
    t.view_offs = 64;
    strcpy(t.name, "out");

    struct vgpu_raw_tensor r;
    vgpu_raw_tensor_unpack((const uint8_t *)&t, &r);
    assert_int_equal(r.type, GGML_TYPE_F16);
    assert_true(r.ne[0] == 4096 && r.ne[3] == 2 && r.nb[1] == 8192);
    assert_int_equal(r.op, GGML_OP_MUL_MAT);
    assert_int_equal(r.op_params[3], 17);
    assert_int_equal(r.flags, GGML_TENSOR_FLAG_OUTPUT);
    assert_true(r.src[0] == (uint64_t)(uintptr_t)&t);
    assert_true(r.view_offs == 64);
    assert_string_equal(r.name, "out");
}

/* Inline sequence: op, buffer handle, view_src, srcs up to the first NULL. */
static void test_inline_tensor(void **state)
{
    (void)state;
    struct vgpu_inline_tensor in;
    memset(&in, 0, sizeof(in));
    in.op.type = 0;
    in.op.op = 5;
    in.op.buffer = 1;     /* present */
    in.buffer_handle = 0xABCDEF;
    in.op.view_src = 1;   /* present */
    in.view_src.ne[0] = 3;
    in.op.src[0] = 1;
    in.op.src[1] = 1;
    in.op.src[3] = 1;     /* after a NULL: not sent, as upstream */
    in.src[0].ne[0] = 11;
    in.src[1].ne[0] = 12;

    uint8_t buf[4096];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_inline_tensor(&enc, &in);
    size_t len = vgpu_enc_used(&enc);
    assert_int_equal(len, 336 + 8 + 336 + 2 * 336);

    struct vgpu_inline_tensor out;
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf, len);
    assert_true(vgpu_dec_inline_tensor(&dec, &out));
    assert_true(out.has_buffer && out.buffer_handle == 0xABCDEF);
    assert_true(out.has_view_src && out.view_src.ne[0] == 3);
    assert_int_equal(out.n_src, 2);
    assert_true(out.src[1].ne[0] == 12);
    assert_int_equal(vgpu_dec_left(&dec), 0);

    /* Every truncation fails. */
    for (size_t cut = 0; cut < len; cut += 8) {
        vgpu_dec_init(&dec, buf, cut);
        assert_false(vgpu_dec_inline_tensor(&dec, &out));
    }
}

/* Ten non-NULL srcs: the host reads exactly ten images, never an eleventh. */
static void test_inline_tensor_full_src(void **state)
{
    (void)state;
    size_t len = 336 * 11;
    uint8_t *buf = calloc(1, len + 336);
    struct vgpu_raw_tensor op;
    memset(&op, 0, sizeof(op));
    for (int i = 0; i < 10; i++)
        op.src[i] = 1;
    vgpu_raw_tensor_pack(&op, buf);
    struct vgpu_inline_tensor out;
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf, len + 336);
    assert_true(vgpu_dec_inline_tensor(&dec, &out));
    assert_int_equal(out.n_src, 10);
    assert_int_equal(vgpu_dec_left(&dec), 336);
    free(buf);
}

static void test_graph_sizes(void **state)
{
    (void)state;
    assert_true(vgpu_rpc_graph_size(1, 3) == 4 + 8 + 4 + 3 * 304);
    assert_true(vgpu_rpc_graph_size((uint64_t)UINT32_MAX + 1, 1) == 0);
    assert_true(vgpu_graph_image_size(2, 1) == 16 + 2 * 280 + 4);
    assert_true(vgpu_graph_image_size(1, (uint64_t)UINT32_MAX + 1) == 0);
}

static void test_messages_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[2048];
    struct vgpu_enc enc;
    struct vgpu_dec dec;

    /* memset first: the struct has padding, and whole structs are compared below. */
    struct vgpu_hello h;
    memset(&h, 0, sizeof(h));
    h.ext_version = 1;
    h.features = 3;
    h.abi_hash = 0xFEEDull;
    h.n_ops = 101;
    h.n_types = 43;
    h.tensor_size = 336;
    h.n_devices = 2;
    h.graph_cache_slots = 8;
    h.max_command_size = 1 << 20;
    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_hello_reply(&enc, &h);
    assert_int_equal(vgpu_enc_used(&enc), 48);
    struct vgpu_hello h2;
    vgpu_dec_init(&dec, buf, vgpu_enc_used(&enc));
    assert_true(vgpu_dec_hello_reply(&dec, &h2));
    assert_memory_equal(&h, &h2, sizeof(h));
    vgpu_dec_init(&dec, buf, vgpu_enc_used(&enc) - 1);
    assert_false(vgpu_dec_hello_reply(&dec, &h2));

    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_hello_request(&enc, &h);
    assert_int_equal(vgpu_enc_used(&enc), 32);

    struct vgpu_device_info d;
    memset(&d, 0, sizeof(d));
    strcpy(d.name, "CPU");
    strcpy(d.description, "AMD EPYC");
    strcpy(d.buft_name, "CPU");
    d.type = 1;
    d.caps = 5;
    d.mem_free = 100;
    d.mem_total = 200;
    d.buft_id = 0x99;
    d.alignment = 64;
    d.max_size = UINT64_MAX;
    d.buft_flags = 3;
    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_device_info(&enc, &d);
    struct vgpu_device_info d2;
    vgpu_dec_init(&dec, buf, vgpu_enc_used(&enc));
    assert_true(vgpu_dec_device_info(&dec, &d2));
    assert_memory_equal(&d, &d2, sizeof(d));

    struct vgpu_transfer x;
    memset(&x, 0, sizeof(x));
    x.tensor = sample_wire();
    x.offset = 1;
    x.size = 2;
    x.n_copies = 3;
    x.stride_tensor = 4;
    x.stride_data = 5;
    x.res_id = 6;
    x.res_offset = 7;
    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_transfer(&enc, &x);
    assert_int_equal(vgpu_enc_used(&enc), 280 + 5 * 8 + 8 + 8);
    struct vgpu_transfer x2;
    vgpu_dec_init(&dec, buf, vgpu_enc_used(&enc));
    assert_true(vgpu_dec_transfer(&dec, &x2));
    assert_memory_equal(&x, &x2, sizeof(x));

    struct vgpu_graph_request g;
    memset(&g, 0, sizeof(g));
    g.dev = 1;
    g.uid = 42;
    g.res_id = 3;
    g.res_offset = 4096;
    g.size = 9999;
    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_graph_request(&enc, &g);
    assert_int_equal(vgpu_enc_used(&enc), 40);
    struct vgpu_graph_request g2;
    vgpu_dec_init(&dec, buf, 40);
    assert_true(vgpu_dec_graph_request(&dec, &g2));
    assert_memory_equal(&g, &g2, sizeof(g));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_tensor_layout),
        cmocka_unit_test(test_wire_tensor_malformed),
        cmocka_unit_test(test_rpc_tensor_layout),
        cmocka_unit_test(test_raw_offsets_match_ggml),
        cmocka_unit_test(test_raw_unpack_real_tensor),
        cmocka_unit_test(test_inline_tensor),
        cmocka_unit_test(test_inline_tensor_full_src),
        cmocka_unit_test(test_graph_sizes),
        cmocka_unit_test(test_messages_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
