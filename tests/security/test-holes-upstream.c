/*
 * Regression tests for the holes of the upstream host library (llama.cpp v0.5.0's
 * ggml-virtgpu backend; reference/upstream-virtgpu.md §7.2 H1..H12, reproductions in §7.3),
 * one named test per hole and protocol:
 *
 *   test_hN_<what>_baseline  the upstream guest's exact message shapes (APIR 0.2, ids 0..22)
 *   test_hN_<what>_ext       the same attack through the extension protocol (ids 64+)
 *
 * Each sends crafted messages that must get an error reply, after which the host process is
 * still here and the same context still works (sec_check_alive: a real allocation, upload,
 * compute and read-back), or, for protocol violations, the context is fatal, the process
 * survives and a new context works (sec_check_fatal_then_new). Run under ASan/UBSan in the
 * sanitizer build (label "sanitize"), every test is also a memory-safety check.
 */
#include <math.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend-impl.h"
#include "sec-common.h"

#define EXPECT(call, code)                                                                          \
    do {                                                                                            \
        uint32_t r_ = (call);                                                                       \
        if (r_ != (uint32_t)(code))                                                                 \
            fail_msg("%s:%d: %s answered %u (%s), expected %u (%s)", __FILE__, __LINE__, #call, r_, \
                     vgpu_status_name(r_), (uint32_t)(code), vgpu_status_name(code));              \
    } while (0)

/* A host variable a write-what-where / read-what-where would hit. */
static volatile uint64_t victim = 0x1111111111111111ull;

static void check_victim(void)
{
    if (victim != 0x1111111111111111ull)
        fail_msg("the host variable at %p was overwritten: 0x%016llx", (void *)&victim,
                 (unsigned long long)victim);
}

/* ===== H1: a tensor without a (valid) buffer whose data is a raw host pointer =================== */

static void test_h1_buffer0_data_is_host_pointer_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint8_t *res = apir_harness_res_create(h, 3, 4096);
    assert_non_null(res);
    memset(res, 0x42, 4096);
    const uint64_t where = (uint64_t)(uintptr_t)&victim;

    /* §7.3: SET_TENSOR(buffer = a valid handle, tensor.buffer = 0, tensor.data = &victim). */
    struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, 0, 2, 1, where);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 8), VGPU_INVALID);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 8), VGPU_INVALID);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, 0, &t, 3, 0, 8), VGPU_NOT_FOUND);
    /* A forged and a freed buffer in the tensor (upstream treated both as "no buffer"). */
    uint64_t gone = sec_bl_alloc_ok(h, 64);
    EXPECT(sec_bl_free(h, gone), VGPU_OK);
    const uint64_t bad_bufs[] = { gone, 0x4200000700000003ull, where };
    for (size_t i = 0; i < sizeof(bad_bufs) / sizeof(bad_bufs[0]); i++) {
        t.buffer = bad_bufs[i];
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, bad_bufs[i], &t, 3, 0, 8), VGPU_NOT_FOUND);
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, bad_bufs[i], &t, 3, 0, 8), VGPU_NOT_FOUND);
    }
    /* In the right buffer, but data is a host address instead of an offset. */
    t.buffer = buf;
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 8), VGPU_INVALID);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 8), VGPU_INVALID);
    /* Copy from / to the host variable. */
    struct vgpu_rpc_tensor in = sec_rpc(2, GGML_TYPE_F32, buf, 2, 1, 0);
    t.buffer = 0;
    bool answer;
    EXPECT(sec_bl_copy(h, buf, &t, &in, &answer), VGPU_INVALID);
    EXPECT(sec_bl_copy(h, buf, &in, &t, &answer), VGPU_INVALID);
    /* Graph ops writing to / reading from it: the node, then a source, without a buffer. */
    struct vgpu_rpc_tensor a = sec_rpc(0x10, GGML_TYPE_F32, buf, 2, 1, 0);
    struct vgpu_rpc_tensor b = sec_rpc(0x20, GGML_TYPE_F32, buf, 2, 1, 64);
    struct vgpu_rpc_tensor c = sec_rpc(0x30, GGML_TYPE_F32, 0, 2, 1, where);
    c.op = GGML_OP_ADD;
    c.src[0] = a.id;
    c.src[1] = b.id;
    struct vgpu_rpc_tensor g1[3] = { a, b, c };
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, g1, 3, 0, NULL), VGPU_INVALID);
    b.buffer = 0;
    b.data = where;
    c = sec_rpc(0x30, GGML_TYPE_F32, buf, 2, 1, 128);
    c.op = GGML_OP_ADD;
    c.src[0] = a.id;
    c.src[1] = b.id;
    struct vgpu_rpc_tensor g2[3] = { a, b, c };
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, g2, 3, 0, NULL), VGPU_INVALID);
    check_victim();
    for (int i = 0; i < 4096; i++) {
        if (res[i] != 0x42)
            fail_msg("resource byte %d changed: host memory was read into it", i);
    }
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_h1_buffer0_data_is_host_pointer_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    const uint64_t where = (uint64_t)(uintptr_t)&victim;
    uint8_t data[8] = { 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42 };

    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 2, 1, 1, 1, 0, where);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 8, 1, 0, 0, 0, 0, data, 8), VGPU_INVALID);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 8, 1, 0, 0, 0, 0, NULL, 0), VGPU_INVALID);
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_wire_tensor(e, &w);
    vgpu_enc_u64(e, 0);
    vgpu_enc_u64(e, 8);
    vgpu_enc_u32(e, 0x42);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_MEMSET, NULL), VGPU_INVALID);
    vgpu_enc_wire_tensor(apir_harness_req(h), &w);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_INIT, NULL), VGPU_INVALID);
    struct vgpu_wire_tensor in = sec_wire(GGML_TYPE_F32, 2, 1, 1, 1, buf, 0);
    EXPECT(sec_ext_copy(h, &w, &in), VGPU_INVALID);
    EXPECT(sec_ext_copy(h, &in, &w), VGPU_INVALID);
    /* Forged, freed and pointer-valued buffer ids. */
    uint64_t gone = sec_ext_alloc_ok(h, 64);
    EXPECT(apir_harness_free(h, gone), VGPU_OK);
    const uint64_t bad_bufs[] = { gone, 0x4200000700000003ull, where };
    for (size_t i = 0; i < sizeof(bad_bufs) / sizeof(bad_bufs[0]); i++) {
        w.buffer = bad_bufs[i];
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 8, 1, 0, 0, 0, 0, data, 8), VGPU_NOT_FOUND);
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 8, 1, 0, 0, 0, 0, NULL, 0), VGPU_NOT_FOUND);
    }
    /* In the buffer, data a host address. */
    w.buffer = buf;
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 8, 1, 0, 0, 0, 0, data, 8), VGPU_INVALID);
    /* Graphs: node and source without a buffer but with data; op queries and optimize too. */
    for (int which = 0; which < 2; which++) {
        struct sec_graph g;
        sec_graph_init(&g, 3);
        struct vgpu_wire_tensor a = sec_wire(GGML_TYPE_F32, 2, 1, 1, 1, buf, 0);
        struct vgpu_wire_tensor b = sec_wire(GGML_TYPE_F32, 2, 1, 1, 1, buf, 64);
        struct vgpu_wire_tensor c = sec_wire(GGML_TYPE_F32, 2, 1, 1, 1, buf, 128);
        struct vgpu_wire_tensor *evil = which ? &b : &c;
        evil->buffer = 0;
        evil->data = where;
        c.op = GGML_OP_ADD;
        c.src[0] = 1;
        c.src[1] = 2;
        sec_graph_add(&g, &a);
        sec_graph_add(&g, &b);
        sec_graph_node(&g, sec_graph_add(&g, &c));
        EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_INVALID);
        size_t n;
        uint8_t *img = sec_graph_image(&g, &n);
        EXPECT(sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_OPTIMIZE, img, n, 0, 0, NULL, NULL), VGPU_INVALID);
        free(img);
        e = apir_harness_req(h);
        vgpu_enc_u32(e, 0);
        vgpu_enc_u32(e, 3);
        for (uint32_t i = 0; i < 3; i++)
            vgpu_enc_wire_tensor(e, &g.t[i]);
        EXPECT(apir_harness_send(h, VGPU_CMD_EXT_SUPPORTS_OP, NULL), VGPU_INVALID);
        sec_graph_free(&g);
    }
    check_victim();
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== H2: transfer ranges past the tensor / buffer; a tensor of another buffer ================== */

/* Fills buffer `nb` (a neighbour) with a pattern through the context's protocol and checks it later. */
static void neighbour_fill(struct apir_harness *h, bool ext, uint64_t nb, uint8_t *res3)
{
    uint8_t pat[4096];
    for (int i = 0; i < 4096; i++)
        pat[i] = (uint8_t)(i * 7 + 1);
    if (ext) {
        struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_I8, 4096, 1, 1, 1, nb, 0);
        EXPECT(apir_harness_set(h, &w, 0, pat, 4096), VGPU_OK);
    } else {
        memcpy(res3, pat, 4096);
        struct vgpu_rpc_tensor t = sec_rpc(0xAB, GGML_TYPE_I8, nb, 4096, 1, 0);
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, nb, &t, 3, 0, 4096), VGPU_OK);
    }
}

static void neighbour_check(struct apir_harness *h, bool ext, uint64_t nb, uint8_t *res3)
{
    uint8_t back[4096];
    if (ext) {
        struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_I8, 4096, 1, 1, 1, nb, 0);
        EXPECT(apir_harness_get(h, &w, 0, back, 4096), VGPU_OK);
    } else {
        struct vgpu_rpc_tensor t = sec_rpc(0xAB, GGML_TYPE_I8, nb, 4096, 1, 0);
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, nb, &t, 3, 0, 4096), VGPU_OK);
        memcpy(back, res3, 4096);
    }
    for (int i = 0; i < 4096; i++) {
        if (back[i] != (uint8_t)(i * 7 + 1))
            fail_msg("neighbouring buffer byte %d changed", i);
    }
}

static void test_h2_transfer_past_tensor_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint64_t nb = sec_bl_alloc_ok(h, 4096);
    uint8_t *res = apir_harness_res_create(h, 3, 8192);
    assert_non_null(res);
    neighbour_fill(h, false, nb, res);
    memset(res, 0x55, 8192);

    struct vgpu_rpc_tensor whole = sec_rpc(1, GGML_TYPE_F32, buf, 1024, 1, 0);
    const struct {
        uint64_t off, size;
    } bad[] = {
        { 4160, 64 },                 /* §7.3: offset 4160 size 64 on a 4096-byte buffer */
        { 4090, 8 },                  /* straddles the end */
        { 0, 4097 },                  /* one past */
        { UINT64_MAX - 2, 8 },        /* offset + size wraps */
        { 8, UINT64_MAX - 4 },        /* size wraps */
        { 1ull << 40, 4 },            /* far away */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &whole, 3, bad[i].off, bad[i].size), VGPU_INVALID);
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &whole, 3, bad[i].off, bad[i].size), VGPU_INVALID);
    }
    /* The range is checked against the tensor, not only the buffer. */
    struct vgpu_rpc_tensor small = sec_rpc(2, GGML_TYPE_F32, buf, 16, 1, 1024);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &small, 3, 0, 65), VGPU_INVALID);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &small, 3, 60, 8), VGPU_INVALID);
    /* A tensor that leaves its buffer; one whose strides leave it. */
    struct vgpu_rpc_tensor past = sec_rpc(3, GGML_TYPE_F32, buf, 64, 1, 4096 - 128);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &past, 3, 0, 8), VGPU_INVALID);
    struct vgpu_rpc_tensor strided = sec_rpc(4, GGML_TYPE_F32, buf, 4, 4, 0);
    strided.nb[1] = 2048;
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &strided, 3, 0, 8), VGPU_INVALID);
    /* The tensor is in another buffer than the command's (upstream used tensor->buffer). */
    struct vgpu_rpc_tensor theirs = sec_rpc(5, GGML_TYPE_F32, nb, 1024, 1, 0);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &theirs, 3, 0, 4096), VGPU_INVALID);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &theirs, 3, 0, 4096), VGPU_INVALID);
    /* The exact fit works. */
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &whole, 3, 4088, 8), VGPU_OK);
    neighbour_check(h, false, nb, res);
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_h2_transfer_past_tensor_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    uint64_t nb = sec_ext_alloc_ok(h, 4096);
    neighbour_fill(h, true, nb, NULL);
    static uint8_t data[8192];
    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 1024, 1, 1, 1, buf, 0);
    const struct {
        uint64_t off, size, n, st, sd;
    } bad[] = {
        { 4160, 64, 1, 0, 0 },
        { 4090, 8, 1, 0, 0 },
        { 0, 4097, 1, 0, 0 },
        { UINT64_MAX - 2, 8, 1, 0, 0 },
        { 0, 8, 2, UINT64_MAX / 2 + 1, 8 },   /* tensor stride wraps */
        { 0, 64, 65, 64, 64 },                /* the 65th copy is past the tensor */
        { 0, 8, UINT64_MAX, 8, 8 },           /* copy count wraps */
        { 0, 8, 0, 0, 0 },                    /* no copies */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t inl = bad[i].size <= 64 && bad[i].n <= 65 ? (size_t)(bad[i].size * (bad[i].n ? bad[i].n : 1)) : 8;
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, bad[i].off, bad[i].size, bad[i].n, bad[i].st,
                                bad[i].sd, 0, 0, data, inl),
               VGPU_INVALID);
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, bad[i].off, bad[i].size, bad[i].n, bad[i].st,
                                bad[i].sd, 0, 0, NULL, 0),
               VGPU_INVALID);
    }
    /* Memset past the tensor; a tensor past its buffer; data offsets near 2^64. */
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_wire_tensor(e, &w);
    vgpu_enc_u64(e, 4000);
    vgpu_enc_u64(e, 200);
    vgpu_enc_u32(e, 0);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_MEMSET, NULL), VGPU_INVALID);
    struct vgpu_wire_tensor past = sec_wire(GGML_TYPE_F32, 64, 1, 1, 1, buf, 4096 - 128);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &past, 0, 8, 1, 0, 0, 0, 0, data, 8), VGPU_INVALID);
    past = sec_wire(GGML_TYPE_F32, 64, 1, 1, 1, buf, UINT64_MAX - 100);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &past, 0, 8, 1, 0, 0, 0, 0, NULL, 0), VGPU_INVALID);
    struct vgpu_wire_tensor strided = sec_wire(GGML_TYPE_F32, 4, 4, 1, 1, buf, 0);
    strided.nb[1] = 2048;
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &strided, 0, 8, 1, 0, 0, 0, 0, data, 8), VGPU_INVALID);
    /* Exact fits work. */
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 4088, 8, 1, 0, 0, 0, 0, data, 8), VGPU_OK);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 64, 64, 64, 64, 0, 0, data, 4096), VGPU_OK);
    neighbour_check(h, true, nb, NULL);
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== H3: transfer and graph sizes past the shared resource ====================================== */

static void h3_baseline(struct apir_harness *h)
{
    uint64_t buf = sec_bl_alloc_ok(h, 65536);
    uint8_t *res = apir_harness_res_create(h, 3, 16384); /* a guard page follows it */
    assert_non_null(res);
    struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, buf, 16384, 1, 0);
    /* §7.3: GET_TENSOR of 32 KiB into a 16 KiB resource (upstream: SIGSEGV at the guard page). */
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 32768), VGPU_INVALID);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 32768), VGPU_INVALID);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 16385), VGPU_INVALID);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 16384), VGPU_OK);
    /* Unknown resources. */
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 77, 0, 16), VGPU_NOT_FOUND);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 0, 0, 16), VGPU_NOT_FOUND);
    /* §7.3: a graph whose declared size (60808) is larger than its 16 KiB resource. */
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, 3);
    vgpu_enc_u64(e, 60808);
    EXPECT(apir_harness_send(h, APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL), VGPU_INVALID);
    e = apir_harness_req(h);
    vgpu_enc_u32(e, 3);
    vgpu_enc_u64(e, 16385);
    EXPECT(apir_harness_send(h, APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL), VGPU_INVALID);
    e = apir_harness_req(h);
    vgpu_enc_u32(e, 3);
    vgpu_enc_u64(e, UINT64_MAX);
    uint32_t r = apir_harness_send(h, APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL);
    if (r != VGPU_INVALID && r != VGPU_QUOTA)
        fail_msg("graph of 2^64-1 bytes answered %u", r);
    e = apir_harness_req(h);
    vgpu_enc_u32(e, 99);
    vgpu_enc_u64(e, 100);
    EXPECT(apir_harness_send(h, APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL), VGPU_NOT_FOUND);
    /* BUFFER_FROM_PTR bigger than its resource is H5. */
    sec_check_alive(h, false);
}

static void test_h3_transfer_past_resource_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    h3_baseline(h);
    sec_close(h);
    /* A stock runtime (virglrenderer) gives no sizes: the library bounds a resource by its mapping. */
    struct apir_harness_opts o;
    memset(&o, 0, sizeof(o));
    o.no_size_callback = true;
    h = apir_harness_open(sec_next_ctx_id(), &o);
    assert_non_null(h);
    assert_int_equal(apir_harness_init(h), 0);
    h3_baseline(h);
    sec_close(h);
}

static void test_h3_transfer_past_resource_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 65536);
    uint8_t *res = apir_harness_res_create(h, 5, 16384);
    assert_non_null(res);
    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 16384, 1, 1, 1, buf, 0);
    const struct {
        uint64_t size, n, sd, res_off;
    } bad[] = {
        { 32768, 1, 0, 0 },
        { 16385, 1, 0, 0 },
        { 64, 1, 0, 16384 - 32 },
        { 64, 1, 0, UINT64_MAX - 10 },       /* res_offset + size wraps */
        { 64, 3, 8000, 1000 },               /* strided data past the resource */
        { 8, 2, UINT64_MAX / 2 + 1, 0 },     /* data stride wraps */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int get = 0; get < 2; get++) {
            uint32_t cmd = get ? VGPU_CMD_EXT_TENSOR_GET : VGPU_CMD_EXT_TENSOR_SET;
            EXPECT(sec_ext_transfer(h, cmd, &w, 0, bad[i].size, bad[i].n, bad[i].size, bad[i].sd, 5, bad[i].res_off,
                                    NULL, 0),
                   VGPU_INVALID);
        }
    }
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 64, 1, 0, 0, 77, 0, NULL, 0), VGPU_NOT_FOUND);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 16384, 1, 0, 0, 5, 0, NULL, 0), VGPU_OK);
    /* A graph image past its resource, by size and by offset; an offset that wraps. */
    const struct {
        uint64_t off, size;
    } gbad[] = { { 0, 16385 }, { 16000, 1000 }, { UINT64_MAX - 8, 100 }, { 8, UINT64_MAX - 4 } };
    for (size_t i = 0; i < sizeof(gbad) / sizeof(gbad[0]); i++) {
        struct vgpu_graph_request q = { 0, 0, 0, 5, gbad[i].off, gbad[i].size };
        vgpu_enc_graph_request(apir_harness_req(h), &q);
        uint32_t r = apir_harness_send(h, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL);
        if (r != VGPU_INVALID && r != VGPU_QUOTA)
            fail_msg("graph [%llu, +%llu) of a 16 KiB resource answered %u", (unsigned long long)gbad[i].off,
                     (unsigned long long)gbad[i].size, r);
    }
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== H4: a buffer-type (or buffer) handle used as a pointer and called through ================== */

static atomic_int fake_calls;
static void fake_fn(void)
{
    atomic_fetch_add(&fake_calls, 1);
}

/*
 * Fake ggml structs inside guest-writable shared memory, every function slot pointing at
 * fake_fn: the chain of §7.2 H4 (a forged struct whose host address the guest learnt).
 */
static void plant_fakes(uint8_t *shm, uint64_t *fake_buft, uint64_t *fake_buf)
{
    void (*fp)(void) = fake_fn;
    for (size_t off = 0; off + sizeof(fp) <= 1024; off += sizeof(fp))
        memcpy(shm + off, &fp, sizeof(fp));
    struct ggml_backend_buffer_type *bt = (struct ggml_backend_buffer_type *)shm;
    struct ggml_backend_buffer *b = (struct ggml_backend_buffer *)(shm + 512);
    bt->device = NULL;
    bt->context = NULL;
    b->buft = bt;
    b->context = NULL;
    b->size = 1u << 20;
    *fake_buft = (uint64_t)(uintptr_t)bt;
    *fake_buf = (uint64_t)(uintptr_t)b;
}

static void test_h4_buft_handle_is_pointer_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint8_t *shm = apir_harness_res_create(h, 9, 4096);
    assert_non_null(shm);
    uint64_t fake_buft, fake_buf;
    plant_fakes(shm, &fake_buft, &fake_buf);
    atomic_store(&fake_calls, 0);

    /* All buffer-type commands: 10, 11, 12, 14 (u64 buft [, u64 size]) and 15 (u64 buft + tensor). */
    const uint32_t cmds[] = { APIR_CMD_BUFFER_TYPE_GET_NAME, APIR_CMD_BUFFER_TYPE_GET_ALIGNMENT,
                              APIR_CMD_BUFFER_TYPE_GET_MAX_SIZE, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u64(e, fake_buft);
        vgpu_enc_u64(e, 4096);
        EXPECT(apir_harness_send(h, cmds[i], NULL), VGPU_NOT_FOUND);
    }
    struct vgpu_inline_tensor it;
    memset(&it, 0, sizeof(it));
    it.op.type = GGML_TYPE_F32;
    it.op.ne[0] = 8;
    it.op.ne[1] = it.op.ne[2] = it.op.ne[3] = 1;
    it.op.nb[0] = 4;
    it.op.nb[1] = it.op.nb[2] = it.op.nb[3] = 32;
    it.op.buffer = fake_buf; /* present: the handle follows */
    it.buffer_handle = fake_buf;
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u64(e, fake_buft);
    vgpu_enc_inline_tensor(e, &it);
    EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE, NULL), VGPU_NOT_FOUND);
    /* The same for the buffer commands 16..21 with a fake buffer "handle". */
    EXPECT(sec_bl_free(h, fake_buf), VGPU_NOT_FOUND);
    vgpu_enc_u64(apir_harness_req(h), fake_buf);
    EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_GET_BASE, NULL), VGPU_NOT_FOUND);
    e = apir_harness_req(h);
    vgpu_enc_u64(e, fake_buf);
    vgpu_enc_u8(e, 0);
    EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_CLEAR, NULL), VGPU_NOT_FOUND);
    struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, fake_buf, 4, 1, 0);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, fake_buf, &t, 9, 0, 16), VGPU_NOT_FOUND);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, fake_buf, &t, 9, 0, 16), VGPU_NOT_FOUND);
    EXPECT(sec_bl_copy(h, fake_buf, &t, &t, NULL), VGPU_NOT_FOUND);
    /* The ids the host hands out are typed, not addresses. */
    uint64_t buft = sec_bl_buft(h);
    assert_int_equal(buft >> 56, 'T');
    assert_int_equal(sec_bl_alloc_ok(h, 64) >> 56, 'B');
    if (atomic_load(&fake_calls))
        fail_msg("the host called through a forged handle %d times", atomic_load(&fake_calls));
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_h4_buft_handle_is_pointer_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint8_t *shm = apir_harness_res_create(h, 9, 4096);
    assert_non_null(shm);
    uint64_t fake_buft, fake_buf;
    plant_fakes(shm, &fake_buft, &fake_buf);
    atomic_store(&fake_calls, 0);

    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, 0);
    vgpu_enc_u32(e, 0);
    vgpu_enc_u64(e, fake_buft);
    vgpu_enc_u64(e, 4096);
    vgpu_enc_u32(e, 0);
    vgpu_enc_u32(e, 0);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_BUFFER_ALLOC, NULL), VGPU_NOT_FOUND);
    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 8, 1, 1, 1, 0, 0);
    e = apir_harness_req(h);
    vgpu_enc_u32(e, 0);
    vgpu_enc_u64(e, fake_buft);
    vgpu_enc_u32(e, 1);
    vgpu_enc_wire_tensor(e, &w);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_GET_ALLOC_SIZE, NULL), VGPU_NOT_FOUND);
    EXPECT(apir_harness_free(h, fake_buf), VGPU_NOT_FOUND);
    e = apir_harness_req(h);
    vgpu_enc_u64(e, fake_buf);
    vgpu_enc_u32(e, 0);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_BUFFER_CLEAR, NULL), VGPU_NOT_FOUND);
    w.buffer = fake_buf;
    uint8_t data[32] = { 0 };
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 32, 1, 0, 0, 0, 0, data, 32), VGPU_NOT_FOUND);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 32, 1, 0, 0, 0, 0, NULL, 0), VGPU_NOT_FOUND);
    vgpu_enc_wire_tensor(apir_harness_req(h), &w);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_INIT, NULL), VGPU_NOT_FOUND);
    assert_int_equal(sec_ext_buft(h) >> 56, 'T');
    if (atomic_load(&fake_calls))
        fail_msg("the host called through a forged handle %d times", atomic_load(&fake_calls));
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== H5: a zero-copy buffer larger than its resource ============================================ */

static uint32_t from_ptr(struct apir_harness *h, uint32_t res_id, uint64_t size, uint64_t max_tensor, uint64_t *id)
{
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, res_id);
    vgpu_enc_u64(e, size);
    vgpu_enc_u64(e, max_tensor);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, APIR_CMD_DEVICE_BUFFER_FROM_PTR, &d);
    *id = r == VGPU_OK ? vgpu_dec_u64(&d) : 0;
    return r;
}

static void test_h5_buffer_from_ptr_larger_than_resource_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint8_t *res = apir_harness_res_create(h, 8, 16384);
    assert_non_null(res);
    uint64_t id;
    /* §7.3: BUFFER_FROM_PTR(16 KiB resource, size 1 MiB) was accepted; a CLEAR then crashed. */
    EXPECT(from_ptr(h, 8, 1 << 20, 1 << 20, &id), VGPU_INVALID);
    EXPECT(from_ptr(h, 8, 16385, 16385, &id), VGPU_INVALID);
    EXPECT(from_ptr(h, 8, UINT64_MAX, UINT64_MAX, &id), VGPU_INVALID);
    EXPECT(from_ptr(h, 8, 0, 0, &id), VGPU_INVALID);
    EXPECT(from_ptr(h, 99, 4096, 4096, &id), VGPU_NOT_FOUND);
    EXPECT(from_ptr(h, 0, 4096, 4096, &id), VGPU_NOT_FOUND);
    /* A max_tensor_size larger than the buffer is clamped, not trusted. */
    EXPECT(from_ptr(h, 8, 16384, UINT64_MAX, &id), VGPU_OK);
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u64(e, id);
    vgpu_enc_u8(e, 0x77);
    EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_CLEAR, NULL), VGPU_OK);
    assert_int_equal(res[0], 0x77);
    assert_int_equal(res[16383], 0x77);
    /* The guest destroys the resource under the buffer: refused, not a crash. */
    apir_harness_res_destroy(h, 8);
    e = apir_harness_req(h);
    vgpu_enc_u64(e, id);
    vgpu_enc_u8(e, 0x66);
    EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_CLEAR, NULL), VGPU_NOT_FOUND);
    uint8_t *other = apir_harness_res_create(h, 10, 4096);
    assert_non_null(other);
    struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, id, 64, 1, 0);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, id, &t, 10, 0, 256), VGPU_NOT_FOUND);
    EXPECT(sec_bl_free(h, id), VGPU_OK);
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_h5_zero_copy_larger_than_resource_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint8_t *res = apir_harness_res_create(h, 8, 16384);
    assert_non_null(res);
    uint64_t id;
    EXPECT(apir_harness_alloc(h, 0, 1 << 20, 8, &id, NULL), VGPU_INVALID);
    EXPECT(apir_harness_alloc(h, 0, 16385, 8, &id, NULL), VGPU_INVALID);
    EXPECT(apir_harness_alloc(h, 0, UINT64_MAX, 8, &id, NULL), VGPU_INVALID);
    EXPECT(apir_harness_alloc(h, 0, 4096, 99, &id, NULL), VGPU_NOT_FOUND);
    /* Unknown allocation flags; another device. */
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, 0);
    vgpu_enc_u32(e, 0x80);
    vgpu_enc_u64(e, 0);
    vgpu_enc_u64(e, 4096);
    vgpu_enc_u32(e, 8);
    vgpu_enc_u32(e, 0);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_BUFFER_ALLOC, NULL), VGPU_INVALID);
    EXPECT(apir_harness_alloc(h, 7, 4096, 8, &id, NULL), VGPU_INVALID);
    /* A good one; then the resource goes away under it. */
    uint32_t granted;
    EXPECT(apir_harness_alloc(h, 0, 16384, 8, &id, &granted), VGPU_OK);
    assert_int_equal(granted, VGPU_ALLOC_ZERO_COPY);
    apir_harness_res_destroy(h, 8);
    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 64, 1, 1, 1, id, 0);
    uint8_t data[256] = { 0 };
    EXPECT(apir_harness_set(h, &w, 0, data, 256), VGPU_NOT_FOUND);
    e = apir_harness_req(h);
    vgpu_enc_u64(e, id);
    vgpu_enc_u32(e, 1);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_BUFFER_CLEAR, NULL), VGPU_NOT_FOUND);
    /* Same id, a smaller resource: still refused (it is not where the buffer was). */
    assert_non_null(apir_harness_res_create(h, 8, 4096));
    EXPECT(apir_harness_set(h, &w, 0, data, 256), VGPU_NOT_FOUND);
    EXPECT(apir_harness_free(h, id), VGPU_OK);
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== H6: inline tensors: short payloads, nested pointers, unbounded source loop ================ */

static void raw_f32(struct vgpu_raw_tensor *r, int64_t ne0, int64_t ne1)
{
    memset(r, 0, sizeof(*r));
    r->type = GGML_TYPE_F32;
    r->ne[0] = ne0;
    r->ne[1] = ne1;
    r->ne[2] = r->ne[3] = 1;
    r->nb[0] = 4;
    r->nb[1] = 4 * (uint64_t)ne0;
    r->nb[2] = r->nb[3] = r->nb[1] * (uint64_t)ne1;
}

static uint32_t supports_op_inline(struct apir_harness *h, const struct vgpu_inline_tensor *it, uint8_t *answer)
{
    vgpu_enc_inline_tensor(apir_harness_req(h), it);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, APIR_CMD_DEVICE_SUPPORTS_OP, &d);
    if (r == VGPU_OK)
        *answer = vgpu_dec_u8(&d);
    return r;
}

static void test_h6_inline_tensor_short_and_pointers_baseline(void **state)
{
    (void)state;
    /* §7.3: SUPPORTS_OP with an empty payload crashed (NULL tensor); short payloads likewise. */
    static uint8_t zeros[4096];
    const struct {
        uint32_t cmd;
        size_t   len;
    } shorts[] = {
        { APIR_CMD_DEVICE_SUPPORTS_OP, 0 },
        { APIR_CMD_DEVICE_SUPPORTS_OP, 335 },
        { APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE, 8 },
        { APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE, 8 + 335 },
    };
    for (size_t i = 0; i < sizeof(shorts) / sizeof(shorts[0]); i++) {
        struct apir_harness *h = sec_open(false);
        EXPECT(apir_harness_call(h, shorts[i].cmd, zeros, shorts[i].len, NULL), VGPU_INVALID);
        assert_int_equal(apir_harness_reply_len(h), 0);
        sec_check_fatal_then_new(h, false);
    }
    /* An op image announcing sources (non-NULL src pointers) that the payload does not carry. */
    struct vgpu_inline_tensor it;
    memset(&it, 0, sizeof(it));
    raw_f32(&it.op, 8, 2);
    it.op.op = GGML_OP_ADD;
    it.op.src[0] = 0x7ffd00000100ull;
    it.op.src[1] = 0x7ffd00000200ull;
    uint8_t img[VGPU_RAW_TENSOR_SIZE + 8];
    vgpu_raw_tensor_pack(&it.op, img);
    struct apir_harness *h = sec_open(false);
    EXPECT(apir_harness_call(h, APIR_CMD_DEVICE_SUPPORTS_OP, img, VGPU_RAW_TENSOR_SIZE, NULL), VGPU_INVALID);
    sec_check_fatal_then_new(h, false);

    h = sec_open(false);
    uint8_t answer = 0xEE;
    /* §7.3: MUL_MAT with src[1] NULL crashed the CPU supports_op. */
    memset(&it, 0, sizeof(it));
    raw_f32(&it.op, 4, 4);
    raw_f32(&it.src[0], 4, 4);
    it.op.op = GGML_OP_MUL_MAT;
    it.op.src[0] = 0x7ffd00000100ull;
    it.n_src = 1;
    EXPECT(supports_op_inline(h, &it, &answer), VGPU_OK);
    assert_int_equal(answer, 0);
    /* §7.3: a forged src->buffer (and data, extra, nested src pointers) crashed it too. */
    memset(&it, 0, sizeof(it));
    raw_f32(&it.op, 8, 2);
    it.op.op = GGML_OP_ADD;
    for (int s = 0; s < 2; s++) {
        raw_f32(&it.src[s], 8, 2);
        it.op.src[s] = 0x7ffd00001000ull + 0x100u * (unsigned)s;
        it.src[s].buffer = 0xdeadbeefdeadbeefull;
        it.src[s].data = (uint64_t)(uintptr_t)&victim;
        it.src[s].extra = 0x4141414141414141ull;
        it.src[s].src[0] = 0x4242424242424242ull;
        it.src[s].view_src = 0x4343434343434343ull;
    }
    it.op.buffer = 0x4444444444444444ull;
    it.buffer_handle = (uint64_t)(uintptr_t)&answer; /* what upstream guests really send: a stack address */
    it.op.data = (uint64_t)(uintptr_t)&victim;
    it.op.extra = 0x4545454545454545ull;
    it.n_src = 2;
    EXPECT(supports_op_inline(h, &it, &answer), VGPU_OK);
    assert_int_equal(answer, 1); /* the shapes are a valid ADD: the pointers are only presence flags */
    /* Ten non-NULL sources (upstream read an 11th image, src[10] = view_src). */
    memset(&it, 0, sizeof(it));
    raw_f32(&it.op, 8, 2);
    it.op.op = GGML_OP_ADD;
    for (int s = 0; s < VGPU_MAX_SRC; s++) {
        raw_f32(&it.src[s], 8, 2);
        it.op.src[s] = 0x7ffd00002000ull + 0x100u * (unsigned)s;
    }
    it.op.view_src = 0x7ffd00003000ull;
    it.has_view_src = true;
    raw_f32(&it.view_src, 8, 2);
    it.n_src = VGPU_MAX_SRC;
    EXPECT(supports_op_inline(h, &it, &answer), VGPU_OK);
    assert_int_equal(answer, 0); /* ADD has two sources */
    /* A bad type in a source image; ne that overflow. */
    memset(&it, 0, sizeof(it));
    raw_f32(&it.op, 8, 2);
    raw_f32(&it.src[0], 8, 2);
    it.op.op = GGML_OP_SCALE;
    it.op.src[0] = 0x7ffd00000100ull;
    it.src[0].type = 0xFFFFFFFFu;
    it.n_src = 1;
    EXPECT(supports_op_inline(h, &it, &answer), VGPU_INVALID);
    it.src[0].type = GGML_TYPE_F32;
    it.src[0].ne[0] = INT64_MAX;
    EXPECT(supports_op_inline(h, &it, &answer), VGPU_INVALID);
    check_victim();
    sec_check_alive(h, false);
    sec_close(h);
}

static uint32_t ext_list(struct apir_harness *h, uint32_t cmd, uint32_t n_claimed, const struct vgpu_wire_tensor *l,
                         uint32_t n, uint64_t buft)
{
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, 0);
    if (cmd == VGPU_CMD_EXT_GET_ALLOC_SIZE)
        vgpu_enc_u64(e, buft);
    vgpu_enc_u32(e, n_claimed);
    for (uint32_t i = 0; i < n; i++)
        vgpu_enc_wire_tensor(e, &l[i]);
    return apir_harness_send(h, cmd, NULL);
}

static void test_h6_tensor_list_malformed_ext(void **state)
{
    (void)state;
    const uint32_t cmds[] = { VGPU_CMD_EXT_SUPPORTS_OP, VGPU_CMD_EXT_OFFLOAD_OP, VGPU_CMD_EXT_GET_ALLOC_SIZE };
    for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
        struct apir_harness *h = sec_open(true);
        uint64_t buft = sec_ext_buft(h);
        struct vgpu_wire_tensor l[12];
        for (int i = 0; i < 12; i++)
            l[i] = sec_wire(GGML_TYPE_F32, 8, 2, 1, 1, 0, 0);
        l[2].op = GGML_OP_ADD;
        l[2].src[0] = 1;
        l[2].src[1] = 2;
        EXPECT(ext_list(h, cmds[c], 3, l, 3, buft), VGPU_OK);
        EXPECT(ext_list(h, cmds[c], 0, l, 0, buft), VGPU_INVALID);
        EXPECT(ext_list(h, cmds[c], 12, l, 12, buft), VGPU_INVALID);
        EXPECT(ext_list(h, cmds[c], 0xFFFFFFFFu, l, 3, buft), VGPU_INVALID);
        l[2].src[1] = 3; /* itself */
        EXPECT(ext_list(h, cmds[c], 3, l, 3, buft), VGPU_INVALID);
        l[2].src[1] = 9; /* past the list */
        EXPECT(ext_list(h, cmds[c], 3, l, 3, buft), VGPU_INVALID);
        l[2].src[1] = 2;
        l[1].view_src = 2; /* a view of itself */
        EXPECT(ext_list(h, cmds[c], 3, l, 3, buft), VGPU_INVALID);
        l[1].view_src = 0;
        l[0].ne[0] = INT64_MIN;
        EXPECT(ext_list(h, cmds[c], 3, l, 3, buft), VGPU_INVALID);
        l[0] = sec_wire(GGML_TYPE_F32, 8, 2, 1, 1, 0, 0);
        sec_check_alive(h, true);
        /* Fewer tensors than announced: a truncated request makes the context fatal. */
        EXPECT(ext_list(h, cmds[c], 3, l, 2, buft), VGPU_INVALID);
        sec_check_fatal_then_new(h, true);
    }
}

/* ===== H7: graph decoding: unknown ids, bad type/op, NULL ids, counts, recursion, huge init ===== */

static void test_h7_graph_malformed_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    struct vgpu_rpc_tensor a = sec_rpc(0x100, GGML_TYPE_F32, buf, 4, 1, 0);
    struct vgpu_rpc_tensor b = sec_rpc(0x200, GGML_TYPE_F32, buf, 4, 1, 64);
    struct vgpu_rpc_tensor c = sec_rpc(0x300, GGML_TYPE_F32, buf, 4, 1, 128);
    c.op = GGML_OP_ADD;
    c.src[0] = a.id;
    c.src[1] = b.id;
    const struct {
        const char *what;
        int         field;
        uint64_t    value;
        uint64_t    node;
    } cases[] = {
        { "good", -1, 0, 0x300 },
        { "unknown src id (std::out_of_range upstream)", 0, 0x999, 0x300 },
        { "unknown node id", -1, 0, 0x301 },
        { "NULL node id", -1, 0, 0 },
        { "type 200 (GGML_ASSERT upstream)", 1, 200, 0x300 },
        { "type GGML_TYPE_COUNT", 1, GGML_TYPE_COUNT, 0x300 },
        { "op out of range", 2, 0xFFFF, 0x300 },
        { "op GGML_OP_COUNT", 2, GGML_OP_COUNT, 0x300 },
        { "tensor id 0", 3, 0, 0x300 },
        { "duplicate tensor id", 3, 0x100, 0x300 },
        { "view_src unknown", 4, 0x777, 0x300 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct vgpu_rpc_tensor t[3] = { a, b, c };
        switch (cases[i].field) {
        case 0: t[2].src[1] = cases[i].value; break;
        case 1: t[1].type = (uint32_t)cases[i].value; break;
        case 2: t[2].op = (uint32_t)cases[i].value; break;
        case 3: t[1].id = cases[i].value; break;
        case 4: t[1].view_src = cases[i].value; break;
        default: break;
        }
        uint32_t r = sec_bl_graph(h, 30, 65536, &cases[i].node, 1, t, 3, 0, NULL);
        if (r != (i == 0 ? VGPU_OK : VGPU_INVALID))
            fail_msg("%s: answered %u", cases[i].what, r);
        sec_check_alive(h, false);
    }
    /* Counts: §7.3 n_nodes = 1000 in an 8-byte graph (SIGSEGV upstream); counts whose sizes wrap. */
    const struct {
        uint32_t n_nodes, n_tensors;
        uint64_t size;
    } counts[] = {
        { 1000, 0, 8 },
        { 0xFFFFFFFFu, 0, 8 },
        { 1, 0xFFFFFFFFu, 16 },
        { 0xFFFFFFFFu, 0xFFFFFFFFu, 4096 },
        { 0, 0x0D79435Eu, 4096 },  /* 304·n wraps in 32 bits */
        { 0x20000001u, 0, 4096 },   /* 8·n wraps in 32 bits */
        { 2, 1, 8 + 16 + 304 },     /* more nodes than tensors */
        { 0, 0, 7 },                /* shorter than its header */
    };
    uint8_t *res = apir_harness_res_create(h, 31, 65536);
    assert_non_null(res);
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        memset(res, 0, 65536);
        memcpy(res, &counts[i].n_nodes, 4);
        uint64_t off = 4 + 8 * (uint64_t)counts[i].n_nodes;
        if (off + 4 <= 65536)
            memcpy(res + off, &counts[i].n_tensors, 4);
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u32(e, 31);
        vgpu_enc_u64(e, counts[i].size);
        uint32_t r = apir_harness_send(h, APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL);
        if (r != VGPU_INVALID && r != VGPU_QUOTA)
            fail_msg("counts %u/%u in %llu bytes: answered %u", counts[i].n_nodes, counts[i].n_tensors,
                     (unsigned long long)counts[i].size, r);
    }
    /* An empty graph is refused, a graph of no nodes computes nothing. */
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, 31);
    vgpu_enc_u64(e, 0);
    EXPECT(apir_harness_send(h, APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL), VGPU_INVALID);
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_h7_graph_malformed_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    struct sec_graph g;
    for (int k = 0; k < 9; k++) {
        sec_graph_init(&g, 3);
        struct vgpu_wire_tensor a = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
        struct vgpu_wire_tensor b = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 64);
        struct vgpu_wire_tensor c = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 128);
        c.op = GGML_OP_ADD;
        c.src[0] = 1;
        c.src[1] = 2;
        uint32_t node = 2;
        switch (k) {
        case 1: c.src[1] = 99; break;                 /* unknown tensor */
        case 2: node = 3; break;                      /* node index out of range */
        case 3: b.type = 200; break;
        case 4: b.type = GGML_TYPE_COUNT; break;
        case 5: c.op = 0xFFFF; break;
        case 6: c.op = GGML_OP_COUNT; break;
        case 7: node = 0xFFFFFFFFu; break;
        case 8: c.src[9] = 0xFFFFFFFFu; break;       /* index wraps */
        default: break;
        }
        sec_graph_add(&g, &a);
        sec_graph_add(&g, &b);
        sec_graph_add(&g, &c);
        sec_graph_node(&g, node);
        uint32_t r = sec_ext_graph(h, &g, 0, NULL, NULL);
        if (r != (k == 0 ? VGPU_OK : VGPU_INVALID))
            fail_msg("case %d: answered %u", k, r);
        sec_graph_free(&g);
        sec_check_alive(h, true);
    }
    /* Headers with counts that do not match the size, that wrap, or exceed the quotas. */
    const uint32_t hdrs[][4] = {
        { VGPU_GRAPH_MAGIC, 0xFFFFFFFFu, 0xFFFFFFFFu, 0 }, { VGPU_GRAPH_MAGIC, 1000, 1, 0 },
        { VGPU_GRAPH_MAGIC, 0x0EA0EA0Fu, 0, 0 },            { VGPU_GRAPH_MAGIC, 0, 1, 0 },
        { VGPU_GRAPH_MAGIC, 1, 2, 0 },                      { 0, 0, 0, 0 },
        { VGPU_GRAPH_MAGIC, 0, 0, 1 },
    };
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        uint8_t img[16 + 280 + 8];
        memset(img, 0, sizeof(img));
        memcpy(img, hdrs[i], 16);
        uint32_t r = sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, img, sizeof(img), 0, 0, NULL, NULL);
        if (r != VGPU_INVALID && r != VGPU_QUOTA)
            fail_msg("header %zu: answered %u", i, r);
        r = sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_OPTIMIZE, img, sizeof(img), 0, 0, NULL, NULL);
        if (r != VGPU_INVALID && r != VGPU_QUOTA)
            fail_msg("header %zu (optimize): answered %u", i, r);
    }
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== H8: no memory or count limits; per-call leaks ================================================ */

static void test_h8_unbounded_allocations_baseline(void **state)
{
    (void)state;
    static const char *const kv[] = { VGPU_CFG_QUOTA_BUFFERS, "8", VGPU_CFG_QUOTA_BYTES, "1048576", NULL };
    struct apir_harness *h = sec_open_cfg(false, kv);
    uint64_t id;
    EXPECT(sec_bl_alloc(h, UINT64_MAX, &id), VGPU_QUOTA);
    EXPECT(sec_bl_alloc(h, 1ull << 62, &id), VGPU_QUOTA);
    EXPECT(sec_bl_alloc(h, (1 << 20) + 1, &id), VGPU_QUOTA);
    uint64_t ids[8];
    for (int i = 0; i < 8; i++)
        ids[i] = sec_bl_alloc_ok(h, 1024);
    EXPECT(sec_bl_alloc(h, 16, &id), VGPU_QUOTA);
    /* Zero-copy buffers count against the buffer quota too. */
    assert_non_null(apir_harness_res_create(h, 4, 4096));
    EXPECT(from_ptr(h, 4, 4096, 4096, &id), VGPU_QUOTA);
    for (int i = 0; i < 8; i++)
        EXPECT(sec_bl_free(h, ids[i]), VGPU_OK);
    sec_check_alive(h, false);

    /* No per-call growth (upstream leaked a ggml context per tensor decode and per graph). */
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint8_t *res = apir_harness_res_create(h, 5, 4096);
    assert_non_null(res);
    struct vgpu_rpc_tensor a = sec_rpc(0x10, GGML_TYPE_F32, buf, 16, 1, 0);
    struct vgpu_rpc_tensor b = sec_rpc(0x20, GGML_TYPE_F32, buf, 16, 1, 64);
    struct vgpu_rpc_tensor c = sec_rpc(0x30, GGML_TYPE_F32, buf, 16, 1, 128);
    c.op = GGML_OP_ADD;
    c.src[0] = a.id;
    c.src[1] = b.id;
    struct vgpu_rpc_tensor t[3] = { a, b, c };
    size_t before = 0;
    for (int i = 0; i < 1100; i++) {
        if (i == 100)
            before = mallinfo2().uordblks;
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &a, 5, 0, 64), VGPU_OK);
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &b, 5, 0, 64), VGPU_OK);
        EXPECT(sec_bl_copy(h, buf, &a, &b, NULL), VGPU_OK);
        EXPECT(sec_bl_graph(h, 6, 4096, &c.id, 1, t, 3, 0, NULL), VGPU_OK);
    }
    size_t after = mallinfo2().uordblks;
    if (after > before + 65536)
        fail_msg("1000 x (set, get, copy, graph) grew the heap by %zu bytes", after - before);
    sec_close(h);
}

static void test_h8_unbounded_allocations_ext(void **state)
{
    (void)state;
    static const char *const kv[] = { VGPU_CFG_QUOTA_BUFFERS, "8", VGPU_CFG_QUOTA_BYTES, "1048576", NULL };
    struct apir_harness *h = sec_open_cfg(true, kv);
    uint64_t id;
    EXPECT(apir_harness_alloc(h, 0, UINT64_MAX, 0, &id, NULL), VGPU_QUOTA);
    EXPECT(apir_harness_alloc(h, 0, (1 << 20) + 1, 0, &id, NULL), VGPU_QUOTA);
    uint64_t ids[8];
    for (int i = 0; i < 8; i++)
        ids[i] = sec_ext_alloc_ok(h, 1024);
    EXPECT(apir_harness_alloc(h, 0, 16, 0, &id, NULL), VGPU_QUOTA);
    assert_non_null(apir_harness_res_create(h, 4, 4096));
    EXPECT(apir_harness_alloc(h, 0, 4096, 4, &id, NULL), VGPU_QUOTA);
    for (int i = 0; i < 8; i++)
        EXPECT(apir_harness_free(h, ids[i]), VGPU_OK);

    /* Many distinct graph uids: the cache stays bounded (8 slots), nothing grows per call. */
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    struct sec_graph g;
    sec_graph_init(&g, 3);
    struct vgpu_wire_tensor a = sec_wire(GGML_TYPE_F32, 16, 1, 1, 1, buf, 0);
    struct vgpu_wire_tensor b = sec_wire(GGML_TYPE_F32, 16, 1, 1, 1, buf, 64);
    struct vgpu_wire_tensor c = sec_wire(GGML_TYPE_F32, 16, 1, 1, 1, buf, 128);
    c.op = GGML_OP_ADD;
    c.src[0] = 1;
    c.src[1] = 2;
    sec_graph_add(&g, &a);
    sec_graph_add(&g, &b);
    sec_graph_node(&g, sec_graph_add(&g, &c));
    size_t n;
    uint8_t *img = sec_graph_image(&g, &n);
    uint8_t data[64] = { 0 };
    size_t before = 0;
    for (uint64_t i = 0; i < 1100; i++) {
        if (i == 100)
            before = mallinfo2().uordblks;
        uint32_t result;
        EXPECT(sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, img, n, 1000 + i, 0, &result, NULL), VGPU_OK);
        EXPECT(sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL, 0, 1000 + i, 0, &result, NULL), VGPU_OK);
        assert_int_equal(result, VGPU_GRAPH_COMPUTED);
        EXPECT(apir_harness_set(h, &a, 0, data, 64), VGPU_OK);
        EXPECT(sec_ext_copy(h, &a, &b), VGPU_OK);
    }
    size_t after = mallinfo2().uordblks;
    free(img);
    sec_graph_free(&g);
    if (after > before + 65536)
        fail_msg("1000 distinct cached graphs grew the heap by %zu bytes", after - before);
    /* The oldest uids are gone. */
    uint32_t result;
    EXPECT(sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL, 0, 1000, 0, &result, NULL), VGPU_OK);
    assert_int_equal(result, VGPU_GRAPH_NOT_CACHED);
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== H9: buffer-type commands with buft = 0 or a short payload =================================== */

static void test_h9_buft_zero_and_short_baseline(void **state)
{
    (void)state;
    const uint32_t cmds[] = { APIR_CMD_BUFFER_TYPE_GET_NAME, APIR_CMD_BUFFER_TYPE_GET_ALIGNMENT,
                              APIR_CMD_BUFFER_TYPE_GET_MAX_SIZE, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER };
    struct apir_harness *h = sec_open(false);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u64(e, 0);
        vgpu_enc_u64(e, 4096);
        EXPECT(apir_harness_send(h, cmds[i], NULL), VGPU_NOT_FOUND);
    }
    sec_check_alive(h, false);
    sec_close(h);
    /* §7.3: BUFFER_TYPE_GET_ALIGNMENT(buft = 0) from a short payload crashed upstream. */
    static uint8_t zeros[16];
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        for (size_t len = 0; len < 8; len += 4) {
            h = sec_open(false);
            EXPECT(apir_harness_call(h, cmds[i], zeros, len, NULL), VGPU_INVALID);
            sec_check_fatal_then_new(h, false);
        }
    }
    /* BUFFER_TYPE_IS_HOST ignores its request (upstream: deprecated), whatever it is. */
    h = sec_open(false);
    EXPECT(apir_harness_call(h, APIR_CMD_BUFFER_TYPE_IS_HOST, zeros, 0, NULL), VGPU_OK);
    EXPECT(apir_harness_call(h, APIR_CMD_BUFFER_TYPE_IS_HOST, zeros, 3, NULL), VGPU_OK);
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_h9_buft_zero_and_short_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 8, 1, 1, 1, 0, 0);
    EXPECT(ext_list(h, VGPU_CMD_EXT_GET_ALLOC_SIZE, 1, &w, 1, 0), VGPU_NOT_FOUND);
    /* A buffer-type id of a device that does not exist / of another device. */
    vgpu_enc_u32(apir_harness_req(h), 0xFFFFFFFFu);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_DEVICE_INFO, NULL), VGPU_INVALID);
    vgpu_enc_u32(apir_harness_req(h), 1);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_DEVICE_MEMORY, NULL), VGPU_INVALID);
    sec_check_alive(h, true);
    sec_close(h);
    static uint8_t zeros[64];
    const struct {
        uint32_t cmd;
        size_t   len;
    } shorts[] = {
        { VGPU_CMD_EXT_GET_ALLOC_SIZE, 4 },  { VGPU_CMD_EXT_GET_ALLOC_SIZE, 12 },
        { VGPU_CMD_EXT_BUFFER_ALLOC, 8 },    { VGPU_CMD_EXT_DEVICE_INFO, 0 },
        { VGPU_CMD_EXT_BUFFER_FREE, 4 },     { VGPU_CMD_EXT_GRAPH_COMPUTE, 20 },
    };
    for (size_t i = 0; i < sizeof(shorts) / sizeof(shorts[0]); i++) {
        h = sec_open(true);
        EXPECT(apir_harness_call(h, shorts[i].cmd, zeros, shorts[i].len, NULL), VGPU_INVALID);
        sec_check_fatal_then_new(h, true);
    }
}

/* ===== H10: state shared across contexts; deinit of one freeing another's buffers ================= */

static void h10(bool ext)
{
    struct apir_harness *a = sec_open(ext), *b = sec_open(ext);
    uint64_t a1 = ext ? sec_ext_alloc_ok(a, 4096) : sec_bl_alloc_ok(a, 4096);
    uint64_t a2 = ext ? sec_ext_alloc_ok(a, 4096) : sec_bl_alloc_ok(a, 4096);
    (void)a1;
    /* a2's id means nothing in b (ids live in their context's table). */
    if (ext) {
        struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_I8, 64, 1, 1, 1, a2, 0);
        uint8_t d[64];
        memset(d, 0xA2, sizeof(d));
        EXPECT(apir_harness_set(a, &w, 0, d, 64), VGPU_OK);
        EXPECT(apir_harness_set(b, &w, 0, d, 64), VGPU_NOT_FOUND);
        EXPECT(apir_harness_free(b, a2), VGPU_NOT_FOUND);
    } else {
        EXPECT(sec_bl_free(b, a2), VGPU_NOT_FOUND);
        vgpu_enc_u64(apir_harness_req(b), a2);
        EXPECT(apir_harness_send(b, APIR_CMD_BUFFER_GET_BASE, NULL), VGPU_NOT_FOUND);
    }
    /* A cached graph of a is not visible from b. */
    if (ext) {
        struct sec_graph g;
        sec_graph_init(&g, 1);
        struct vgpu_wire_tensor w0 = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, a2, 0);
        sec_graph_node(&g, sec_graph_add(&g, &w0));
        uint32_t result;
        EXPECT(sec_ext_graph(a, &g, 4242, &result, NULL), VGPU_OK);
        EXPECT(sec_ext_graph_raw(b, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL, 0, 4242, 0, &result, NULL), VGPU_OK);
        assert_int_equal(result, VGPU_GRAPH_NOT_CACHED);
        sec_graph_free(&g);
    }
    /* b breaks the protocol and is torn down with everything it owns: a is untouched. */
    uint64_t b1 = ext ? sec_ext_alloc_ok(b, 8192) : sec_bl_alloc_ok(b, 8192);
    (void)b1;
    const uint32_t b_id = apir_harness_ctx_id(b);
    apir_harness_req(b);
    EXPECT(apir_harness_send(b, 50, NULL), VGPU_UNKNOWN_COMMAND);
    sec_close(b);
    if (ext) {
        struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_I8, 64, 1, 1, 1, a2, 0);
        uint8_t d[64];
        EXPECT(apir_harness_get(a, &w, 0, d, 64), VGPU_OK);
        for (int i = 0; i < 64; i++)
            assert_int_equal(d[i], 0xA2);
        uint32_t result;
        EXPECT(sec_ext_graph_raw(a, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL, 0, 4242, 0, &result, NULL), VGPU_OK);
        assert_int_equal(result, VGPU_GRAPH_COMPUTED);
    } else {
        vgpu_enc_u64(apir_harness_req(a), a2);
        EXPECT(apir_harness_send(a, APIR_CMD_BUFFER_GET_BASE, NULL), VGPU_OK);
    }
    sec_check_alive(a, ext);
    /* A new context with b's id starts empty. */
    struct apir_harness *b2 = apir_harness_open(b_id, NULL);
    assert_non_null(b2);
    assert_int_equal(apir_harness_init(b2), 0);
    if (ext)
        assert_int_equal(apir_harness_hello(b2), VGPU_OK);
    if (ext)
        EXPECT(apir_harness_free(b2, a2), VGPU_NOT_FOUND);
    else
        EXPECT(sec_bl_free(b2, a2), VGPU_NOT_FOUND);
    sec_check_alive(b2, ext);
    sec_close(b2);
    sec_close(a);
}

static void test_h10_contexts_isolated_baseline(void **state)
{
    (void)state;
    h10(false);
}

static void test_h10_contexts_isolated_ext(void **state)
{
    (void)state;
    h10(true);
}

/* ===== H11: cpy_tensor without size checks; a source without a buffer ============================= */

static void test_h11_copy_overflows_destination_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint64_t nb = sec_bl_alloc_ok(h, 4096);
    uint8_t *res = apir_harness_res_create(h, 3, 4096);
    assert_non_null(res);
    neighbour_fill(h, false, nb, res);
    bool answer;
    /* 64 bytes into a 32-byte tensor at the end of the buffer (ggml PR #1103's RCE shape). */
    struct vgpu_rpc_tensor src = sec_rpc(5, GGML_TYPE_F32, buf, 16, 1, 0);
    struct vgpu_rpc_tensor dst = sec_rpc(6, GGML_TYPE_F32, buf, 8, 1, 4096 - 32);
    EXPECT(sec_bl_copy(h, buf, &src, &dst, &answer), VGPU_INVALID);
    /* A large source in another buffer into a small destination. */
    struct vgpu_rpc_tensor big = sec_rpc(7, GGML_TYPE_F32, nb, 1024, 1, 0);
    EXPECT(sec_bl_copy(h, buf, &big, &dst, &answer), VGPU_INVALID);
    /* Same element count, larger strides (the byte extents differ). */
    struct vgpu_rpc_tensor wide = sec_rpc(8, GGML_TYPE_F32, buf, 4, 2, 0);
    wide.nb[1] = 1024;
    struct vgpu_rpc_tensor narrow = sec_rpc(9, GGML_TYPE_F32, buf, 4, 2, 4096 - 32);
    EXPECT(sec_bl_copy(h, buf, &wide, &narrow, &answer), VGPU_INVALID);
    /* §7.2: a source without a buffer; one in a freed buffer; a destination in another buffer. */
    struct vgpu_rpc_tensor nobuf = sec_rpc(10, GGML_TYPE_F32, 0, 8, 1, 0);
    EXPECT(sec_bl_copy(h, buf, &nobuf, &dst, &answer), VGPU_INVALID);
    uint64_t gone = sec_bl_alloc_ok(h, 64);
    EXPECT(sec_bl_free(h, gone), VGPU_OK);
    struct vgpu_rpc_tensor freed = sec_rpc(11, GGML_TYPE_F32, gone, 8, 1, 0);
    EXPECT(sec_bl_copy(h, buf, &freed, &dst, &answer), VGPU_NOT_FOUND);
    struct vgpu_rpc_tensor dst_nb = sec_rpc(12, GGML_TYPE_F32, nb, 8, 1, 0);
    EXPECT(sec_bl_copy(h, buf, &src, &dst_nb, &answer), VGPU_INVALID);
    /* Partly overlapping source and destination. */
    struct vgpu_rpc_tensor ov = sec_rpc(13, GGML_TYPE_F32, buf, 16, 1, 32);
    EXPECT(sec_bl_copy(h, buf, &src, &ov, &answer), VGPU_INVALID);
    /* A correct copy still works. */
    struct vgpu_rpc_tensor ok = sec_rpc(14, GGML_TYPE_F32, buf, 16, 1, 1024);
    EXPECT(sec_bl_copy(h, buf, &src, &ok, &answer), VGPU_OK);
    assert_true(answer);
    neighbour_check(h, false, nb, res);
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_h11_copy_overflows_destination_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    uint64_t nb = sec_ext_alloc_ok(h, 4096);
    neighbour_fill(h, true, nb, NULL);
    struct vgpu_wire_tensor src = sec_wire(GGML_TYPE_F32, 16, 1, 1, 1, buf, 0);
    struct vgpu_wire_tensor dst = sec_wire(GGML_TYPE_F32, 8, 1, 1, 1, buf, 4096 - 32);
    EXPECT(sec_ext_copy(h, &src, &dst), VGPU_INVALID);
    struct vgpu_wire_tensor big = sec_wire(GGML_TYPE_F32, 1024, 1, 1, 1, nb, 0);
    EXPECT(sec_ext_copy(h, &big, &dst), VGPU_INVALID);
    struct vgpu_wire_tensor wide = sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, 0);
    wide.nb[1] = 1024;
    struct vgpu_wire_tensor narrow = sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, 4096 - 32);
    EXPECT(sec_ext_copy(h, &wide, &narrow), VGPU_INVALID);
    struct vgpu_wire_tensor nobuf = sec_wire(GGML_TYPE_F32, 8, 1, 1, 1, 0, 0);
    EXPECT(sec_ext_copy(h, &nobuf, &dst), VGPU_INVALID);
    EXPECT(sec_ext_copy(h, &dst, &nobuf), VGPU_INVALID);
    uint64_t gone = sec_ext_alloc_ok(h, 64);
    EXPECT(apir_harness_free(h, gone), VGPU_OK);
    struct vgpu_wire_tensor freed = sec_wire(GGML_TYPE_F32, 8, 1, 1, 1, gone, 0);
    EXPECT(sec_ext_copy(h, &freed, &dst), VGPU_NOT_FOUND);
    struct vgpu_wire_tensor ov = sec_wire(GGML_TYPE_F32, 16, 1, 1, 1, buf, 32);
    EXPECT(sec_ext_copy(h, &src, &ov), VGPU_INVALID);
    /* Copies between buffers of the right sizes work (also into the neighbour's twin). */
    struct vgpu_wire_tensor ok = sec_wire(GGML_TYPE_F32, 16, 1, 1, 1, buf, 1024);
    EXPECT(sec_ext_copy(h, &src, &ok), VGPU_OK);
    neighbour_check(h, true, nb, NULL);
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== H12: graph and tensor data in guest-writable memory during decode and compute ============== */

struct flipper {
    uint8_t   *p;      /* bytes to flip */
    size_t     n;      /* how many locations */
    size_t     off[4]; /* offsets */
    uint8_t    a[4], b[4];
    atomic_int stop;
    atomic_long flips;
};

static void *flip_main(void *arg)
{
    struct flipper *f = arg;
    volatile uint8_t *p = f->p;
    while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
        for (size_t i = 0; i < f->n; i++)
            p[f->off[i]] = f->b[i];
        for (size_t i = 0; i < f->n; i++)
            p[f->off[i]] = f->a[i];
        atomic_fetch_add_explicit(&f->flips, 1, memory_order_relaxed);
    }
    return NULL;
}

static void test_h12_shared_memory_changes_during_decode_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint8_t *data = apir_harness_res_create(h, 3, 4096);
    assert_non_null(data);
    float av[4] = { 1, 2, 3, 4 }, bv[4] = { 10, 20, 30, 40 };
    struct vgpu_rpc_tensor a = sec_rpc(0x100, GGML_TYPE_F32, buf, 4, 1, 0);
    struct vgpu_rpc_tensor b = sec_rpc(0x200, GGML_TYPE_F32, buf, 4, 1, 64);
    struct vgpu_rpc_tensor c = sec_rpc(0x300, GGML_TYPE_F32, buf, 4, 1, 128);
    memcpy(data, av, 16);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &a, 3, 0, 16), VGPU_OK);
    memcpy(data, bv, 16);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &b, 3, 0, 16), VGPU_OK);
    c.op = GGML_OP_ADD;
    c.src[0] = a.id;
    c.src[1] = b.id;
    c.flags = GGML_TENSOR_FLAG_COMPUTE;
    struct vgpu_rpc_tensor t[3] = { a, b, c };
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, t, 3, 0, NULL), VGPU_OK);
    uint8_t *img = apir_harness_res_ptr(h, 30);
    size_t size = 8 + 8 + 3 * 304;
    /* While the host decodes, the guest flips: b's type (F32 <-> 200), c's src[1] id low byte
     * (0x200 <-> 0x2FF, unknown), and n_nodes (1 <-> 3, size mismatch). */
    struct flipper f = { .p = img, .n = 3 };
    /* image: u32 n_nodes | u64 id | u32 n_tensors | tensors from byte 16 (type at +8, src at +128) */
    f.off[0] = 16 + 304 + 8;
    f.a[0] = GGML_TYPE_F32;
    f.b[0] = 200;
    f.off[1] = 16 + 2 * 304 + 128 + 8;
    f.a[1] = 0x00;
    f.b[1] = 0xFF;
    f.off[2] = 0;
    f.a[2] = 1;
    f.b[2] = 3;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, flip_main, &f), 0);
    int ok = 0, refused = 0;
    for (int i = 0; i < 3000; i++) {
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u32(e, 30);
        vgpu_enc_u64(e, size);
        struct vgpu_dec d;
        uint32_t r = apir_harness_send(h, APIR_CMD_BACKEND_GRAPH_COMPUTE, &d);
        if (r == VGPU_OK) {
            assert_int_equal(vgpu_dec_i32(&d), GGML_STATUS_SUCCESS);
            ok++;
        } else if (r == VGPU_INVALID) {
            refused++;
        } else {
            atomic_store(&f.stop, 1);
            pthread_join(th, NULL);
            fail_msg("iteration %d: answered %u", i, r);
        }
    }
    atomic_store(&f.stop, 1);
    pthread_join(th, NULL);
    print_message("H12 baseline: %d computed, %d refused, %ld flips\n", ok, refused, atomic_load(&f.flips));
    /* Whatever ran computed the graph the guest meant (the image was decoded from one copy). */
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &c, 3, 0, 16), VGPU_OK);
    for (int i = 0; i < 4; i++) {
        float v;
        memcpy(&v, data + 4 * i, 4);
        if (v != av[i] + bv[i])
            fail_msg("c[%d] = %g, expected %g", i, (double)v, (double)(av[i] + bv[i]));
    }
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_h12_shared_memory_changes_during_decode_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint8_t *zc;
    uint64_t buf = sec_ext_alloc_zc(h, 20, 4096, &zc);
    struct sec_graph g;
    sec_graph_init(&g, 3);
    struct vgpu_wire_tensor a = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
    struct vgpu_wire_tensor b = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 64);
    struct vgpu_wire_tensor c = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 128);
    c.op = GGML_OP_ADD;
    c.src[0] = 1;
    c.src[1] = 2;
    sec_graph_add(&g, &a);
    sec_graph_add(&g, &b);
    sec_graph_node(&g, sec_graph_add(&g, &c));
    size_t n;
    uint8_t *img = sec_graph_image(&g, &n);
    sec_graph_free(&g);
    uint8_t *res = apir_harness_res_create(h, 21, 4096);
    assert_non_null(res);
    memcpy(res, img, n);
    free(img);
    /* Flip b's type, c's src[1] (2 <-> 3: itself) and the header's n_nodes (1 <-> 2). Meanwhile
     * the guest also scribbles on the zero-copy data the host computes on (a known limit: only
     * its own results can change). */
    struct flipper f = { .p = res, .n = 3 };
    f.off[0] = 16 + 280 + 0;
    f.a[0] = GGML_TYPE_F32;
    f.b[0] = 200;
    f.off[1] = 16 + 2 * 280 + 164;
    f.a[1] = 2;
    f.b[1] = 3;
    f.off[2] = 8;
    f.a[2] = 1;
    f.b[2] = 2;
    struct flipper fd = { .p = zc, .n = 2 };
    fd.off[0] = 3;
    fd.a[0] = 0x3f;
    fd.b[0] = 0x7f; /* 1.0f <-> NaN */
    fd.off[1] = 64 + 3;
    fd.a[1] = 0x40;
    fd.b[1] = 0xff;
    pthread_t th, thd;
    assert_int_equal(pthread_create(&th, NULL, flip_main, &f), 0);
    assert_int_equal(pthread_create(&thd, NULL, flip_main, &fd), 0);
    int ok = 0, refused = 0;
    for (int i = 0; i < 3000; i++) {
        uint32_t result = 99;
        int32_t status = -99;
        struct vgpu_graph_request q = { 0, 0, (i % 2) ? 77 : 0, 21, 0, (i % 3) ? n : 0 };
        if (q.size == 0)
            q.uid = 77;
        vgpu_enc_graph_request(apir_harness_req(h), &q);
        struct vgpu_dec d;
        uint32_t r = apir_harness_send(h, VGPU_CMD_EXT_GRAPH_COMPUTE, &d);
        if (r == VGPU_OK) {
            result = vgpu_dec_u32(&d);
            status = vgpu_dec_i32(&d);
            assert_true(result == VGPU_GRAPH_COMPUTED || result == VGPU_GRAPH_NOT_CACHED);
            assert_true(status == GGML_STATUS_SUCCESS || result == VGPU_GRAPH_NOT_CACHED);
            ok++;
        } else if (r == VGPU_INVALID) {
            refused++;
        } else {
            atomic_store(&f.stop, 1);
            atomic_store(&fd.stop, 1);
            pthread_join(th, NULL);
            pthread_join(thd, NULL);
            fail_msg("iteration %d: answered %u", i, r);
        }
    }
    atomic_store(&f.stop, 1);
    atomic_store(&fd.stop, 1);
    pthread_join(th, NULL);
    pthread_join(thd, NULL);
    print_message("H12 ext: %d answered, %d refused\n", ok, refused);
    sec_check_alive(h, true);
    sec_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h1_buffer0_data_is_host_pointer_baseline),
        cmocka_unit_test(test_h1_buffer0_data_is_host_pointer_ext),
        cmocka_unit_test(test_h2_transfer_past_tensor_baseline),
        cmocka_unit_test(test_h2_transfer_past_tensor_ext),
        cmocka_unit_test(test_h3_transfer_past_resource_baseline),
        cmocka_unit_test(test_h3_transfer_past_resource_ext),
        cmocka_unit_test(test_h4_buft_handle_is_pointer_baseline),
        cmocka_unit_test(test_h4_buft_handle_is_pointer_ext),
        cmocka_unit_test(test_h5_buffer_from_ptr_larger_than_resource_baseline),
        cmocka_unit_test(test_h5_zero_copy_larger_than_resource_ext),
        cmocka_unit_test(test_h6_inline_tensor_short_and_pointers_baseline),
        cmocka_unit_test(test_h6_tensor_list_malformed_ext),
        cmocka_unit_test(test_h7_graph_malformed_baseline),
        cmocka_unit_test(test_h7_graph_malformed_ext),
        cmocka_unit_test(test_h8_unbounded_allocations_baseline),
        cmocka_unit_test(test_h8_unbounded_allocations_ext),
        cmocka_unit_test(test_h9_buft_zero_and_short_baseline),
        cmocka_unit_test(test_h9_buft_zero_and_short_ext),
        cmocka_unit_test(test_h10_contexts_isolated_baseline),
        cmocka_unit_test(test_h10_contexts_isolated_ext),
        cmocka_unit_test(test_h11_copy_overflows_destination_baseline),
        cmocka_unit_test(test_h11_copy_overflows_destination_ext),
        cmocka_unit_test(test_h12_shared_memory_changes_during_decode_baseline),
        cmocka_unit_test(test_h12_shared_memory_changes_during_decode_ext),
    };
    sec_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
