/*
 * Lifecycle of the host APIR library: initialisation results (docs/PROTOCOL.md §2,
 * reference/upstream-virtgpu.md §3.3), several contexts in one process (at once, in parallel
 * threads, and one after another with the same id), deinit with everything still alive, the
 * /proc/self/maps fallback for resource sizes, and replies free of host addresses.
 */
#include <pthread.h>
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
#include "ggml.h"
#include "wire.h"

static uint64_t alloc(struct apir_harness *h, uint64_t size)
{
    uint64_t id = 0;
    assert_int_equal(apir_harness_alloc(h, 0, size, 0, &id, NULL), VGPU_OK);
    return id;
}

static void test_init_results(void **state)
{
    (void)state;
    struct apir_harness_opts o;

    memset(&o, 0, sizeof(o));
    o.omit_backend_path = true;
    struct apir_harness *h = apir_harness_open(5001, &o);
    assert_non_null(h);
    assert_int_equal(apir_harness_init(h), APIR_LOAD_LIBRARY_CFG_KEY_MISSING); /* 3 */
    apir_harness_close(h);

    memset(&o, 0, sizeof(o));
    o.backend_path = "/nonexistent/libggml-nothing.so";
    h = apir_harness_open(5002, &o);
    assert_int_equal(apir_harness_init(h), APIR_LOAD_LIBRARY_CANNOT_OPEN); /* 4 */
    apir_harness_close(h);

    memset(&o, 0, sizeof(o));
    o.backend_reg = "no_such_registration_symbol";
    h = apir_harness_open(5003, &o);
    assert_int_equal(apir_harness_init(h), APIR_LOAD_LIBRARY_SYMBOL_MISSING); /* 5 */
    apir_harness_close(h);

    /* The same context id twice while alive: 6 + ALREADY_INITED. */
    h = apir_harness_open(5004, NULL);
    assert_int_equal(apir_harness_init(h), 0);
    struct apir_harness *twin = apir_harness_open(5004, NULL);
    assert_int_equal(apir_harness_init(twin), 6 + APIR_BACKEND_INITIALIZE_ALREADY_INITED);
    apir_harness_close(twin);
    /* The first is unaffected. */
    apir_harness_req(h);
    assert_int_equal(apir_harness_send(h, APIR_CMD_DEVICE_GET_COUNT, NULL), VGPU_OK);
    /* Re-initialising after deinit works (upstream answered "already initialized"). */
    apir_harness_deinit(h);
    assert_int_equal(apir_harness_init(h), 0);
    apir_harness_req(h);
    assert_int_equal(apir_harness_send(h, APIR_CMD_DEVICE_GET_COUNT, NULL), VGPU_OK);
    apir_harness_close(h);
}

static void test_two_contexts(void **state)
{
    (void)state;
    struct apir_harness *a = apir_harness_open(5101, NULL), *b = apir_harness_open(5102, NULL);
    assert_int_equal(apir_harness_init(a), 0);
    assert_int_equal(apir_harness_init(b), 0);
    assert_int_equal(apir_harness_hello(a), VGPU_OK);
    /* b stays on the baseline: a's hello is not b's. */
    apir_harness_req(b);
    assert_int_equal(apir_harness_send(b, VGPU_CMD_EXT_NOP, NULL), VGPU_INVALID);
    assert_int_equal(apir_harness_hello(b), VGPU_OK);

    uint64_t a1 = alloc(a, 1024), a2 = alloc(a, 1024), b1 = alloc(b, 1024);
    struct vgpu_wire_tensor wa, wb;
    apir_harness_wire(&wa, GGML_TYPE_I8, 64, 1, 1, 1, a2, 0);
    apir_harness_wire(&wb, GGML_TYPE_I8, 64, 1, 1, 1, b1, 0);
    uint8_t da[64], db[64], out[64];
    memset(da, 0xA1, sizeof(da));
    memset(db, 0xB2, sizeof(db));
    assert_int_equal(apir_harness_set(a, &wa, 0, da, 64), VGPU_OK);
    assert_int_equal(apir_harness_set(b, &wb, 0, db, 64), VGPU_OK);
    /* Freeing in b does not touch a; a fatal error in b does not touch a. */
    assert_int_equal(apir_harness_free(b, b1), VGPU_OK);
    apir_harness_req(b);
    assert_int_equal(apir_harness_send(b, 50, NULL), VGPU_UNKNOWN_COMMAND);
    apir_harness_req(b);
    assert_int_equal(apir_harness_send(b, VGPU_CMD_EXT_NOP, NULL), VGPU_FATAL);
    assert_int_equal(apir_harness_get(a, &wa, 0, out, 64), VGPU_OK);
    assert_memory_equal(out, da, 64);
    assert_int_equal(apir_harness_free(a, a1), VGPU_OK);
    /* Deinit of b leaves a running. */
    apir_harness_close(b);
    assert_int_equal(apir_harness_get(a, &wa, 0, out, 64), VGPU_OK);
    assert_memory_equal(out, da, 64);
    assert_int_equal(apir_harness_pointer_hits(a), 0);
    apir_harness_close(a);
}

struct worker {
    uint32_t ctx_id;
    int      fails;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct apir_harness *h = apir_harness_open(w->ctx_id, NULL);
    if (!h || apir_harness_init(h) != 0 || apir_harness_hello(h) != VGPU_OK) {
        w->fails++;
        apir_harness_close(h);
        return NULL;
    }
    uint64_t id;
    if (apir_harness_alloc(h, 0, 4096, 0, &id, NULL) != VGPU_OK) {
        w->fails++;
        apir_harness_close(h);
        return NULL;
    }
    struct vgpu_wire_tensor t;
    apir_harness_wire(&t, GGML_TYPE_I32, 256, 1, 1, 1, id, 0);
    uint32_t in[256], out[256];
    for (int it = 0; it < 200; it++) {
        for (int i = 0; i < 256; i++)
            in[i] = w->ctx_id * 100000u + (uint32_t)(it * 256 + i);
        if (apir_harness_set(h, &t, 0, in, sizeof(in)) != VGPU_OK ||
            apir_harness_get(h, &t, 0, out, sizeof(out)) != VGPU_OK || memcmp(in, out, sizeof(in)))
            w->fails++;
    }
    if (apir_harness_pointer_hits(h))
        w->fails++;
    apir_harness_close(h);
    return NULL;
}

static void test_parallel_contexts(void **state)
{
    (void)state;
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){ 5200 + (uint32_t)i, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].fails, 0);
    }
}

static void test_deinit_with_everything_alive(void **state)
{
    (void)state;
    struct apir_harness *h = apir_harness_open(5301, NULL);
    assert_int_equal(apir_harness_init(h), 0);
    assert_int_equal(apir_harness_hello(h), VGPU_OK);
    for (int i = 0; i < 10; i++)
        alloc(h, 4096 * (uint64_t)(i + 1));
    /* A zero-copy buffer and a cached graph too. */
    assert_non_null(apir_harness_res_create(h, 1, 8192));
    uint64_t zc;
    uint32_t granted;
    assert_int_equal(apir_harness_alloc(h, 0, 8192, 1, &zc, &granted), VGPU_OK);
    assert_int_equal(granted, VGPU_ALLOC_ZERO_COPY);
    struct vgpu_wire_tensor t[3];
    apir_harness_wire(&t[0], GGML_TYPE_F32, 4, 1, 1, 1, zc, 0);
    apir_harness_wire(&t[1], GGML_TYPE_F32, 4, 1, 1, 1, zc, 64);
    apir_harness_wire(&t[2], GGML_TYPE_F32, 4, 1, 1, 1, zc, 128);
    t[2].op = GGML_OP_ADD;
    t[2].src[0] = 1;
    t[2].src[1] = 2;
    t[2].flags = GGML_TENSOR_FLAG_COMPUTE;
    uint8_t img[1024];
    struct vgpu_enc g;
    vgpu_enc_init(&g, img, sizeof(img));
    vgpu_enc_u32(&g, VGPU_GRAPH_MAGIC);
    vgpu_enc_u32(&g, 3);
    vgpu_enc_u32(&g, 1);
    vgpu_enc_u32(&g, 0);
    for (int i = 0; i < 3; i++)
        vgpu_enc_wire_tensor(&g, &t[i]);
    vgpu_enc_u32(&g, 2);
    struct vgpu_graph_request q = { 0, 0, 42, 0, 0, vgpu_enc_used(&g) };
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_graph_request(e, &q);
    vgpu_enc_blob(e, img, vgpu_enc_used(&g));
    struct vgpu_dec d;
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_GRAPH_COMPUTE, &d), VGPU_OK);
    assert_int_equal(vgpu_dec_u32(&d), VGPU_GRAPH_COMPUTED);
    /* Deinit now (the sanitizer build's leak checker sees anything left behind). */
    apir_harness_deinit(h);
    /* The id is free again. */
    assert_int_equal(apir_harness_init(h), 0);
    assert_int_equal(apir_harness_hello(h), VGPU_OK);
    e = apir_harness_req(h);
    q.size = 0;
    vgpu_enc_graph_request(e, &q);
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_GRAPH_COMPUTE, &d), VGPU_OK);
    assert_int_equal(vgpu_dec_u32(&d), VGPU_GRAPH_NOT_CACHED);
    assert_int_equal(apir_harness_pointer_hits(h), 0);
    apir_harness_close(h);
}

static void test_maps_fallback(void **state)
{
    (void)state;
    /* A stock runtime: no size callback; sizes come from the host mapping. */
    struct apir_harness_opts o;
    memset(&o, 0, sizeof(o));
    o.no_size_callback = true;
    struct apir_harness *h = apir_harness_open(5401, &o);
    assert_int_equal(apir_harness_init(h), 0);
    assert_int_equal(apir_harness_hello(h), VGPU_OK);
    uint64_t buf = alloc(h, 65536);
    uint8_t *res = apir_harness_res_create(h, 6, 8192); /* two pages, then a guard page */
    assert_non_null(res);
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, GGML_TYPE_I8, 16384, 1, 1, 1, buf, 0);
    struct vgpu_transfer x = { w, 0, 8192, 1, 0, 0, 6, 0 };
    vgpu_enc_transfer(apir_harness_req(h), &x);
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_GET, NULL), VGPU_OK);
    x.size = 8193;
    vgpu_enc_transfer(apir_harness_req(h), &x);
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_GET, NULL), VGPU_INVALID);
    x.size = 4096;
    x.res_offset = 4097;
    vgpu_enc_transfer(apir_harness_req(h), &x);
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_GET, NULL), VGPU_INVALID);
    /*
     * The id is reused for a smaller resource at the same address (virtio-gpu ids are reused,
     * and mmap often reuses the hole): its own size applies, not the cached one. A stale size
     * would make the host read the guard page that now follows the resource.
     */
    apir_harness_res_destroy(h, 6);
    assert_ptr_equal(apir_harness_res_create_at(h, 6, 4096, res), res);
    x.res_offset = 0;
    x.size = 8192;
    vgpu_enc_transfer(apir_harness_req(h), &x);
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_GET, NULL), VGPU_INVALID);
    x.size = 4096;
    vgpu_enc_transfer(apir_harness_req(h), &x);
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_GET, NULL), VGPU_OK);
    assert_int_equal(apir_harness_pointer_hits(h), 0);
    apir_harness_close(h);
}

static void test_no_host_addresses(void **state)
{
    (void)state;
    /* Every id-carrying reply, scanned against this process's mappings by the harness. */
    struct apir_harness *h = apir_harness_open(5501, NULL);
    assert_int_equal(apir_harness_init(h), 0);
    assert_non_null(apir_harness_res_create(h, 2, 65536));
    for (uint32_t cmd = 0; cmd <= APIR_CMD_DEVICE_GET_PROPS; cmd++) {
        if (cmd == APIR_CMD_DEVICE_SUPPORTS_OP)
            continue;
        apir_harness_req(h);
        assert_int_equal(apir_harness_send(h, cmd, NULL), VGPU_OK);
    }
    struct vgpu_dec d;
    apir_harness_req(h);
    assert_int_equal(apir_harness_send(h, APIR_CMD_DEVICE_GET_BUFFER_TYPE, &d), VGPU_OK);
    uint64_t buft = vgpu_dec_u64(&d);
    for (int i = 0; i < 20; i++) {
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u64(e, buft);
        vgpu_enc_u64(e, 4096);
        assert_int_equal(apir_harness_send(h, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER, &d), VGPU_OK);
        uint64_t id = vgpu_dec_u64(&d);
        vgpu_enc_u64(apir_harness_req(h), id);
        assert_int_equal(apir_harness_send(h, APIR_CMD_BUFFER_GET_BASE, NULL), VGPU_OK);
    }
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, 2);
    vgpu_enc_u64(e, 65536);
    vgpu_enc_u64(e, 65536);
    assert_int_equal(apir_harness_send(h, APIR_CMD_DEVICE_BUFFER_FROM_PTR, &d), VGPU_OK);
    uint64_t zc = vgpu_dec_u64(&d);
    vgpu_enc_u64(apir_harness_req(h), zc);
    assert_int_equal(apir_harness_send(h, APIR_CMD_BUFFER_GET_BASE, NULL), VGPU_OK);
    for (uint32_t cmd = APIR_CMD_BUFFER_TYPE_GET_NAME; cmd <= APIR_CMD_BUFFER_TYPE_IS_HOST; cmd++) {
        vgpu_enc_u64(apir_harness_req(h), buft);
        assert_int_equal(apir_harness_send(h, cmd, NULL), VGPU_OK);
    }
    assert_int_equal(apir_harness_hello(h), VGPU_OK);
    vgpu_enc_u32(apir_harness_req(h), 0);
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_DEVICE_INFO, NULL), VGPU_OK);
    /* The scan itself finds a planted address (so a clean result means something). */
    uint64_t planted[2] = { 0, (uint64_t)(uintptr_t)h };
    assert_int_equal(apir_harness_scan(planted, sizeof(planted), "self-test"), 1);
    assert_int_equal(apir_harness_pointer_hits(h), 0);
    apir_harness_close(h);
}

static void test_dispatch_to_unknown_context(void **state)
{
    (void)state;
    struct apir_harness *h = apir_harness_open(5601, NULL);
    /* Not initialised: the library answers without a context, and writes nothing. */
    apir_harness_req(h);
    assert_int_equal(apir_harness_send(h, APIR_CMD_DEVICE_GET_COUNT, NULL), VGPU_INVALID);
    assert_int_equal(apir_harness_reply_len(h), 0);
    apir_harness_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_results),
        cmocka_unit_test(test_two_contexts),
        cmocka_unit_test(test_parallel_contexts),
        cmocka_unit_test(test_deinit_with_everything_alive),
        cmocka_unit_test(test_maps_fallback),
        cmocka_unit_test(test_no_host_addresses),
        cmocka_unit_test(test_dispatch_to_unknown_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
