/*
 * When the host waits for queued backend work (host/dispatch.c, docs/PROTOCOL.md §4.4), driven
 * through the real ABI on tests/support/fake-queue-backend.c, a backend whose async copies run
 * only at synchronize and read their source then. Checked: a NO_WAIT batch is answered with its
 * work still queued; the next command that needs it waits first; a queued copy's source
 * survives later requests; work that writes guest memory finishes before the reply.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "apir-harness.h"
#include "ext.h"
#include "ggml.h"
#include "wire.h"

#define CTX_ID 4301

static struct apir_harness *H;
static void (*queue_stats)(unsigned *pending, unsigned *syncs, unsigned *computes);

static int setup(void **state)
{
    (void)state;
    struct apir_harness_opts o = { .backend_path = VGPU_FAKE_QUEUE_PATH };
    H = apir_harness_open(CTX_ID, &o);
    if (!H || apir_harness_init(H) != 0 || apir_harness_hello(H) != VGPU_OK)
        return -1;
    /* The library the host loaded (same path, same instance). */
    void *lib = dlopen(VGPU_FAKE_QUEUE_PATH, RTLD_NOW | RTLD_NOLOAD);
    if (!lib)
        return -1;
    *(void **)&queue_stats = dlsym(lib, "fake_queue_stats");
    dlclose(lib);
    return queue_stats ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    apir_harness_close(H);
    H = NULL;
    return 0;
}

static unsigned pending(void)
{
    unsigned p, s, c;
    queue_stats(&p, &s, &c);
    return p;
}

static unsigned syncs(void)
{
    unsigned p, s, c;
    queue_stats(&p, &s, &c);
    return s;
}

static uint64_t alloc_buf(struct vgpu_wire_tensor *w)
{
    uint64_t id = 0;
    assert_int_equal(apir_harness_alloc(H, 0, 4096, 0, &id, NULL), VGPU_OK);
    apir_harness_wire(w, GGML_TYPE_I8, 4096, 1, 1, 1, id, 0);
    return id;
}

static void pattern(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + 13 * i);
}

/* Batch building: header {n, flags}, then entries {cmd, size, payload}. */
static void send_batch(uint32_t n, int get_at, const uint8_t **get_data);

static struct vgpu_enc *batch(uint32_t n, uint32_t flags)
{
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u32(e, n);
    vgpu_enc_u32(e, flags);
    return e;
}

/*
 * An EXT_TENSOR_SET or EXT_TENSOR_GET entry of n bytes at off. The guest-side bytes are in
 * resource res_id at res_off, or with res_id 0 inline (a set's `data` in the request, a get's
 * answer in the reply).
 */
static void transfer_entry(struct vgpu_enc *e, uint32_t cmd, const struct vgpu_wire_tensor *w, uint64_t off,
                           const uint8_t *data, size_t n, uint32_t res_id, uint64_t res_off)
{
    uint8_t payload[1024];
    struct vgpu_enc p;
    vgpu_enc_init(&p, payload, sizeof(payload));
    struct vgpu_transfer x = { *w, off, n, 1, 0, 0, res_id, res_off };
    vgpu_enc_transfer(&p, &x);
    if (cmd == VGPU_CMD_EXT_TENSOR_SET && res_id == 0)
        vgpu_enc_blob(&p, data, n);
    assert_true(vgpu_enc_ok(&p));
    vgpu_enc_u32(e, cmd);
    vgpu_enc_u32(e, (uint32_t)vgpu_enc_used(&p));
    vgpu_enc_raw(e, payload, vgpu_enc_used(&p));
}

/* Sends a NO_WAIT batch of one inline set (the host has not run it when this returns). */
static void queue_set(const struct vgpu_wire_tensor *w, uint64_t off, const uint8_t *data, size_t n)
{
    transfer_entry(batch(1, VGPU_BATCH_NO_WAIT), VGPU_CMD_EXT_TENSOR_SET, w, off, data, n, 0, 0);
    send_batch(1, -1, NULL);
}

/* A resource of `size` bytes registered as a host buffer; returns its mapping. */
static uint8_t *host_buffer(uint32_t res_id, uint64_t size)
{
    uint8_t *p = apir_harness_res_create(H, res_id, size);
    assert_non_null(p);
    struct vgpu_enc *e = apir_harness_req(H);
    vgpu_enc_u32(e, res_id);
    vgpu_enc_u32(e, 0);
    vgpu_enc_u64(e, 0);
    vgpu_enc_u64(e, size);
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_HOST_BUFFER_REGISTER, NULL), VGPU_OK);
    return p;
}

static void nop_entry(struct vgpu_enc *e)
{
    vgpu_enc_u32(e, VGPU_CMD_EXT_NOP);
    vgpu_enc_u32(e, 0);
}

/* Sends the batch; every entry must have run. *get_data: the inline bytes of entry `get_at`. */
static void send_batch(uint32_t n, int get_at, const uint8_t **get_data)
{
    struct vgpu_dec d;
    assert_int_equal(apir_harness_send(H, VGPU_CMD_EXT_BATCH, &d), VGPU_OK);
    assert_int_equal(vgpu_dec_u32(&d), n);
    assert_int_equal(vgpu_dec_u32(&d), VGPU_BATCH_ALL_RUN);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(vgpu_dec_u32(&d), VGPU_OK);
        uint32_t len = vgpu_dec_u32(&d);
        assert_true(vgpu_dec_ok(&d) && len <= vgpu_dec_left(&d));
        if ((int)i == get_at) {
            size_t blen = 0;
            struct vgpu_dec b;
            vgpu_dec_init(&b, d.cur, len);
            *get_data = vgpu_dec_blob(&b, 256, &blen);
            assert_int_equal(blen, 256);
        }
        d.cur += len;
    }
}

static void sync_batch(void)
{
    nop_entry(batch(1, 0));
    send_batch(1, -1, NULL);
}

static void expect_device(const struct vgpu_wire_tensor *w, uint64_t off, const uint8_t *want, size_t n)
{
    uint8_t got[512];
    assert_true(n <= sizeof(got));
    assert_int_equal(apir_harness_get(H, w, off, got, n), VGPU_OK);
    assert_memory_equal(got, want, n);
}

static void test_no_wait_batch_leaves_work_queued(void **state)
{
    (void)state;
    struct vgpu_wire_tensor w;
    uint64_t id = alloc_buf(&w);
    uint8_t a[256];
    pattern(a, sizeof(a), 1);
    unsigned s0 = syncs();

    queue_set(&w, 0, a, sizeof(a));
    assert_int_equal(pending(), 1); /* answered before the copy ran */
    assert_int_equal(syncs(), s0);

    sync_batch(); /* a batch without NO_WAIT: its NOP waits for what is queued */
    assert_int_equal(pending(), 0);
    assert_int_equal(syncs(), s0 + 1);
    expect_device(&w, 0, a, sizeof(a));
    assert_int_equal(apir_harness_free(H, id), VGPU_OK);
}

static void test_queued_sources_survive_later_requests(void **state)
{
    (void)state;
    struct vgpu_wire_tensor w;
    uint64_t id = alloc_buf(&w);
    uint8_t ab[512];
    pattern(ab, 256, 2);
    pattern(ab + 256, 256, 99);
    /* Each request is freed by the harness once answered: the host must have kept the bytes. */
    queue_set(&w, 0, ab, 256);
    queue_set(&w, 256, ab + 256, 256);
    assert_int_equal(pending(), 2);
    sync_batch();
    expect_device(&w, 0, ab, sizeof(ab));
    assert_int_equal(apir_harness_free(H, id), VGPU_OK);
}

static void test_other_commands_wait_first(void **state)
{
    (void)state;
    struct vgpu_wire_tensor w;
    uint64_t id = alloc_buf(&w);
    uint8_t a[256];
    pattern(a, sizeof(a), 3);
    queue_set(&w, 0, a, sizeof(a));
    assert_int_equal(pending(), 1);
    /* graph_optimize reads no device memory: it leaves the work queued (this one fails on its
     * missing image, after the point where a wait would have happened). */
    struct vgpu_graph_request q = { 0 };
    vgpu_enc_graph_request(apir_harness_req(H), &q);
    assert_int_not_equal(apir_harness_send(H, VGPU_CMD_EXT_GRAPH_OPTIMIZE, NULL), VGPU_OK);
    assert_int_equal(pending(), 1);
    /* A synchronous read of that memory waits for the queued copy first. */
    expect_device(&w, 0, a, sizeof(a));
    assert_int_equal(pending(), 0);
    assert_int_equal(apir_harness_free(H, id), VGPU_OK);
}

static void test_no_wait_get_into_reply_finishes(void **state)
{
    (void)state;
    struct vgpu_wire_tensor w;
    uint64_t id = alloc_buf(&w);
    uint8_t a[256];
    pattern(a, sizeof(a), 4);
    struct vgpu_enc *e = batch(2, VGPU_BATCH_NO_WAIT);
    transfer_entry(e, VGPU_CMD_EXT_TENSOR_SET, &w, 0, a, sizeof(a), 0, 0);
    transfer_entry(e, VGPU_CMD_EXT_TENSOR_GET, &w, 0, NULL, sizeof(a), 0, 0);
    const uint8_t *got = NULL;
    send_batch(2, 1, &got);
    /* The get writes into the reply, which is guest memory: done before the answer. */
    assert_int_equal(pending(), 0);
    assert_memory_equal(got, a, sizeof(a));
    assert_int_equal(apir_harness_free(H, id), VGPU_OK);
}

/*
 * This backend has no GPU runtime to pin with, so a registered host buffer stays unpinned: a
 * queued copy must not touch it after the reply, since the guest may destroy the resource (its
 * mapping goes) before the next wait. The set's source is copied; the get waits.
 */
static void test_unpinned_host_buffer(void **state)
{
    (void)state;
    enum { RES = 77 };
    struct vgpu_wire_tensor w;
    uint64_t id = alloc_buf(&w);
    uint8_t *hb = host_buffer(RES, 4096);
    uint8_t a[256];
    pattern(a, sizeof(a), 6);
    memcpy(hb, a, sizeof(a));

    transfer_entry(batch(1, VGPU_BATCH_NO_WAIT), VGPU_CMD_EXT_TENSOR_SET, &w, 0, NULL, sizeof(a), RES, 0);
    send_batch(1, -1, NULL);
    assert_int_equal(pending(), 1);
    memset(hb, 0xee, sizeof(a));   /* the guest reuses its buffer... */
    apir_harness_res_destroy(H, RES); /* ...or even destroys it before the host waited */
    sync_batch();
    expect_device(&w, 0, a, sizeof(a));

    hb = host_buffer(RES + 1, 4096);
    transfer_entry(batch(1, VGPU_BATCH_NO_WAIT), VGPU_CMD_EXT_TENSOR_GET, &w, 0, NULL, sizeof(a), RES + 1, 64);
    send_batch(1, -1, NULL);
    assert_int_equal(pending(), 0);
    assert_memory_equal(hb + 64, a, sizeof(a));
    assert_int_equal(apir_harness_free(H, id), VGPU_OK);
}

static void test_plain_batch_waits(void **state)
{
    (void)state;
    struct vgpu_wire_tensor w;
    uint64_t id = alloc_buf(&w);
    uint8_t a[256];
    pattern(a, sizeof(a), 5);
    transfer_entry(batch(1, 0), VGPU_CMD_EXT_TENSOR_SET, &w, 0, a, sizeof(a), 0, 0);
    send_batch(1, -1, NULL);
    assert_int_equal(pending(), 0);
    expect_device(&w, 0, a, sizeof(a));
    assert_int_equal(apir_harness_free(H, id), VGPU_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_wait_batch_leaves_work_queued),
        cmocka_unit_test(test_queued_sources_survive_later_requests),
        cmocka_unit_test(test_other_commands_wait_first),
        cmocka_unit_test(test_no_wait_get_into_reply_finishes),
        cmocka_unit_test(test_unpinned_host_buffer),
        cmocka_unit_test(test_plain_batch_waits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
