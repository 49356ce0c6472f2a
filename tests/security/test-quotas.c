/*
 * Per-context quotas (docs/PROTOCOL.md §2, DESIGN §4.6), through the real library and its
 * config keys, in both protocols: each quota exceeded answers VGPU_QUOTA with one clear log
 * line, and the context keeps working; the defaults are the documented ones; malformed
 * config values fall back to the defaults. (That the server's flags reach these keys is
 * test-quota-server.c; a guest's view of a quota error is test-quota-guest.sh.)
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

/* Runs `call` with stderr captured; expects `code` and a log line containing every needle. */
#define EXPECT_LOGGED(call, code, ...)                                                           \
    do {                                                                                         \
        sec_stderr_begin();                                                                      \
        uint32_t r_ = (call);                                                                    \
        char *log_ = sec_stderr_end();                                                           \
        const char *needles_[] = { __VA_ARGS__, NULL };                                          \
        for (int i_ = 0; needles_[i_]; i_++) {                                                   \
            if (!strstr(log_, needles_[i_])) {                                                   \
                free(log_);                                                                      \
                fail_msg("%s:%d: no log line with '%s'", __FILE__, __LINE__, needles_[i_]);      \
            }                                                                                    \
        }                                                                                        \
        free(log_);                                                                              \
        if (r_ != (uint32_t)(code))                                                              \
            fail_msg("%s:%d: %s answered %u (%s), expected %u", __FILE__, __LINE__, #call, r_,   \
                     vgpu_status_name(r_), (uint32_t)(code));                                    \
    } while (0)

static uint32_t alloc_any(struct apir_harness *h, bool ext, uint64_t size, uint64_t *id)
{
    if (ext)
        return apir_harness_alloc(h, 0, size, 0, id, NULL);
    return sec_bl_alloc(h, size, id);
}

static uint32_t free_any(struct apir_harness *h, bool ext, uint64_t id)
{
    return ext ? apir_harness_free(h, id) : sec_bl_free(h, id);
}

/* A zero-copy buffer over a new resource res_id. */
static uint32_t alloc_zc(struct apir_harness *h, bool ext, uint32_t res_id, uint64_t size, uint64_t *id)
{
    assert_non_null(apir_harness_res_create(h, res_id, (size_t)size));
    if (ext)
        return apir_harness_alloc(h, 0, size, res_id, id, NULL);
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, res_id);
    vgpu_enc_u64(e, size);
    vgpu_enc_u64(e, size);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, APIR_CMD_DEVICE_BUFFER_FROM_PTR, &d);
    *id = r == VGPU_OK ? vgpu_dec_u64(&d) : 0;
    return r;
}

/* ===== buffers ====================================================================================== */

static void quota_buffers(bool ext)
{
    static const char *const kv[] = { VGPU_CFG_QUOTA_BUFFERS, "3", NULL };
    struct apir_harness *h = sec_open_cfg(ext, kv);
    uint64_t ids[3], extra;
    EXPECT(alloc_any(h, ext, 1024, &ids[0]), VGPU_OK);
    EXPECT(alloc_zc(h, ext, 5, 4096, &ids[1]), VGPU_OK); /* zero-copy buffers count too */
    EXPECT(alloc_any(h, ext, 1024, &ids[2]), VGPU_OK);
    EXPECT_LOGGED(alloc_any(h, ext, 1024, &extra), VGPU_QUOTA, "buffer count quota (3) reached");
    EXPECT_LOGGED(alloc_zc(h, ext, 6, 4096, &extra), VGPU_QUOTA, "buffer count quota (3) reached");
    /* Freeing one gives its place back. */
    EXPECT(free_any(h, ext, ids[0]), VGPU_OK);
    EXPECT(alloc_any(h, ext, 1024, &ids[0]), VGPU_OK);
    EXPECT(alloc_any(h, ext, 1024, &extra), VGPU_QUOTA);
    EXPECT(free_any(h, ext, ids[0]), VGPU_OK);
    sec_check_alive(h, ext); /* needs one buffer */
    sec_close(h);
}

static void test_quota_buffers_baseline(void **state)
{
    (void)state;
    quota_buffers(false);
}

static void test_quota_buffers_ext(void **state)
{
    (void)state;
    quota_buffers(true);
}

/* ===== buffer bytes ================================================================================= */

static void quota_bytes(bool ext)
{
    static const char *const kv[] = { VGPU_CFG_QUOTA_BYTES, "65536", NULL };
    struct apir_harness *h = sec_open_cfg(ext, kv);
    uint64_t a, b, zc;
    EXPECT(alloc_any(h, ext, 49152, &a), VGPU_OK);
    EXPECT_LOGGED(alloc_any(h, ext, 32768, &b), VGPU_QUOTA, "buffer bytes quota", "65536");
    EXPECT_LOGGED(alloc_any(h, ext, UINT64_MAX, &b), VGPU_QUOTA, "buffer bytes quota");
    /* Zero-copy buffers are guest memory: not counted. */
    EXPECT(alloc_zc(h, ext, 5, 65536, &zc), VGPU_OK);
    EXPECT(alloc_any(h, ext, 16384, &b), VGPU_OK); /* exactly the rest */
    EXPECT(alloc_any(h, ext, 1, &zc), VGPU_QUOTA);
    EXPECT(free_any(h, ext, a), VGPU_OK);
    EXPECT(free_any(h, ext, b), VGPU_OK);
    EXPECT(alloc_any(h, ext, 65536, &a), VGPU_OK);
    EXPECT(free_any(h, ext, a), VGPU_OK);
    sec_check_alive(h, ext);
    sec_close(h);
}

static void test_quota_buffer_bytes_baseline(void **state)
{
    (void)state;
    quota_bytes(false);
}

static void test_quota_buffer_bytes_ext(void **state)
{
    (void)state;
    quota_bytes(true);
}

/* ===== graph nodes ===================================================================================== */

static uint32_t chain_ext(struct apir_harness *h, uint64_t buf, uint32_t n_nodes, uint32_t extra_leaves)
{
    struct sec_graph g;
    sec_graph_init(&g, n_nodes + extra_leaves + 2);
    struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
    sec_graph_add(&g, &w);
    for (uint32_t i = 0; i < extra_leaves; i++)
        sec_graph_add(&g, &w);
    for (uint32_t i = 0; i < n_nodes; i++) {
        struct vgpu_wire_tensor x = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 16 + 16 * (uint64_t)i);
        x.op = GGML_OP_ADD;
        x.src[0] = g.n; /* the previous tensor */
        x.src[1] = 1;
        x.flags = GGML_TENSOR_FLAG_COMPUTE;
        sec_graph_node(&g, sec_graph_add(&g, &x));
    }
    uint32_t r = sec_ext_graph(h, &g, 0, NULL, NULL);
    sec_graph_free(&g);
    return r;
}

static uint32_t chain_baseline(struct apir_harness *h, uint64_t buf, uint32_t n_nodes, uint32_t extra_leaves)
{
    uint32_t n = n_nodes + extra_leaves + 1;
    struct vgpu_rpc_tensor *t = calloc(n, sizeof(*t));
    uint64_t *ids = calloc(n_nodes ? n_nodes : 1, sizeof(*ids));
    assert_non_null(t);
    assert_non_null(ids);
    for (uint32_t i = 0; i <= extra_leaves; i++)
        t[i] = sec_rpc(1 + i, GGML_TYPE_F32, buf, 4, 1, 0);
    for (uint32_t i = 0; i < n_nodes; i++) {
        struct vgpu_rpc_tensor *x = &t[extra_leaves + 1 + i];
        *x = sec_rpc(1000 + i, GGML_TYPE_F32, buf, 4, 1, 16 + 16 * (uint64_t)i);
        x->op = GGML_OP_ADD;
        x->src[0] = (x - 1)->id;
        x->src[1] = 1;
        x->flags = GGML_TENSOR_FLAG_COMPUTE;
        ids[i] = x->id;
    }
    uint32_t r = sec_bl_graph(h, 30, 0, ids, n_nodes, t, n, 0, NULL);
    free(t);
    free(ids);
    return r;
}

static void quota_nodes(bool ext)
{
    static const char *const kv[] = { VGPU_CFG_QUOTA_NODES, "8", NULL };
    struct apir_harness *h = sec_open_cfg(ext, kv);
    uint64_t buf;
    EXPECT(alloc_any(h, ext, 4096, &buf), VGPU_OK);
    uint32_t (*chain)(struct apir_harness *, uint64_t, uint32_t, uint32_t) = ext ? chain_ext : chain_baseline;
    EXPECT(chain(h, buf, 8, 0), VGPU_OK);
    EXPECT_LOGGED(chain(h, buf, 9, 0), VGPU_QUOTA, "graph of 9 nodes exceeds the quota of 8");
    /* Tensors per graph: 4 x the node quota. */
    EXPECT(chain(h, buf, 8, 23), VGPU_OK); /* 8 + 24 = 32 tensors */
    /* (The baseline image of 33 tensors is already larger than any graph the quota allows.) */
    EXPECT_LOGGED(chain(h, buf, 8, 24), VGPU_QUOTA, ext ? "graph of 33 tensors exceeds the quota of 32" : "exceeds the graph quota");
    sec_check_alive(h, ext);
    sec_close(h);
}

static void test_quota_graph_nodes_baseline(void **state)
{
    (void)state;
    quota_nodes(false);
}

static void test_quota_graph_nodes_ext(void **state)
{
    (void)state;
    quota_nodes(true);
}

/* ===== command bytes ===================================================================================== */

static void quota_command(bool ext)
{
    static const char *const kv[] = { VGPU_CFG_QUOTA_COMMAND, "4096", NULL };
    struct apir_harness *h = sec_open_cfg(ext, kv);
    static uint8_t big[8192];
    /* Trailing bytes are ignored, so a padded no-op measures the bound exactly. */
    uint32_t nop = ext ? VGPU_CMD_EXT_NOP : APIR_CMD_DEVICE_GET_COUNT;
    EXPECT(apir_harness_call(h, nop, big, 4096, NULL), VGPU_OK);
    EXPECT_LOGGED(apir_harness_call(h, nop, big, 4097, NULL), VGPU_QUOTA, "command of 4097 bytes exceeds the quota of 4096");
    EXPECT(apir_harness_call(h, nop, big, sizeof(big), NULL), VGPU_QUOTA);
    if (ext) {
        /* An inline transfer larger than the bound. */
        uint64_t buf = sec_ext_alloc_ok(h, 8192);
        struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_I8, 8192, 1, 1, 1, buf, 0);
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 8000, 1, 0, 0, 0, 0, big, 8000), VGPU_QUOTA);
        EXPECT(apir_harness_free(h, buf), VGPU_OK);
        /* EXT_HELLO tells the guest the bound. */
        struct vgpu_abi_info abi;
        vgpu_abi_info_get(&abi);
        struct vgpu_hello req = { VGPU_EXT_VERSION, 0, abi.hash, abi.n_ops, abi.n_types, abi.tensor_size, 0, 0, 0 };
        vgpu_enc_hello_request(apir_harness_req(h), &req);
        struct vgpu_dec d;
        EXPECT(apir_harness_send(h, VGPU_CMD_EXT_HELLO, &d), VGPU_OK);
        struct vgpu_hello rep;
        assert_true(vgpu_dec_hello_reply(&d, &rep));
        assert_int_equal(rep.max_command_size, 4096);
    }
    sec_check_alive(h, ext);
    sec_close(h);
}

static void test_quota_command_bytes_baseline(void **state)
{
    (void)state;
    quota_command(false);
}

static void test_quota_command_bytes_ext(void **state)
{
    (void)state;
    quota_command(true);
}

/* ===== defaults ========================================================================================= */

static uint32_t ext_header_only(struct apir_harness *h, uint32_t n_tensors, uint32_t n_nodes)
{
    uint8_t img[16 + 8];
    memset(img, 0, sizeof(img));
    uint32_t hdr[4] = { VGPU_GRAPH_MAGIC, n_tensors, n_nodes, 0 };
    memcpy(img, hdr, 16);
    return sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, img, sizeof(img), 0, 0, NULL, NULL);
}

static void test_quota_defaults(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    /* Command bytes: 1 MiB, announced in EXT_HELLO. */
    struct vgpu_abi_info abi;
    vgpu_abi_info_get(&abi);
    struct vgpu_hello req = { VGPU_EXT_VERSION, 0, abi.hash, abi.n_ops, abi.n_types, abi.tensor_size, 0, 0, 0 };
    vgpu_enc_hello_request(apir_harness_req(h), &req);
    struct vgpu_dec d;
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_HELLO, &d), VGPU_OK);
    struct vgpu_hello rep;
    assert_true(vgpu_dec_hello_reply(&d, &rep));
    assert_int_equal(rep.max_command_size, 1u << 20);
    static uint8_t big[(1u << 20) + 1];
    EXPECT(apir_harness_call(h, VGPU_CMD_EXT_NOP, big, 1u << 20, NULL), VGPU_OK);
    EXPECT(apir_harness_call(h, VGPU_CMD_EXT_NOP, big, (1u << 20) + 1, NULL), VGPU_QUOTA);
    /* Graph nodes 262144 and tensors 4 x that: the counts are checked before the size, so a
     * header is enough to find the bounds (INVALID: within the quota but the image is short). */
    EXPECT(ext_header_only(h, 262144, 262144), VGPU_INVALID);
    EXPECT(ext_header_only(h, 262145, 262145), VGPU_QUOTA);
    EXPECT(ext_header_only(h, 1048576, 0), VGPU_INVALID);
    EXPECT(ext_header_only(h, 1048577, 0), VGPU_QUOTA);
    /* Buffer bytes: the device's total memory (the CPU device reports the host's). */
    vgpu_enc_u32(apir_harness_req(h), 0);
    EXPECT(apir_harness_send(h, VGPU_CMD_EXT_DEVICE_MEMORY, &d), VGPU_OK);
    (void)vgpu_dec_u64(&d);
    uint64_t total = vgpu_dec_u64(&d);
    assert_true(total > 0);
    uint64_t id;
    EXPECT_LOGGED(apir_harness_alloc(h, 0, total + 1, 0, &id, NULL), VGPU_QUOTA, "buffer bytes quota");
    /* Buffers: 4096. */
    uint64_t *ids = calloc(4096, sizeof(*ids));
    assert_non_null(ids);
    for (int i = 0; i < 4096; i++) {
        if (apir_harness_alloc(h, 0, 32, 0, &ids[i], NULL) != VGPU_OK)
            fail_msg("allocation %d of the default 4096 refused", i + 1);
    }
    EXPECT_LOGGED(apir_harness_alloc(h, 0, 32, 0, &id, NULL), VGPU_QUOTA, "buffer count quota (4096) reached");
    for (int i = 0; i < 4096; i++)
        EXPECT(apir_harness_free(h, ids[i]), VGPU_OK);
    free(ids);
    sec_check_alive(h, true);
    sec_close(h);

    /* The baseline graph form: the tensor bound from a header. */
    h = sec_open(false);
    uint8_t *res = apir_harness_res_create(h, 31, 4096);
    assert_non_null(res);
    const struct {
        uint32_t n_tensors;
        uint32_t code;
    } bl[] = { { 1048576, VGPU_INVALID }, { 1048577, VGPU_QUOTA } };
    for (size_t i = 0; i < sizeof(bl) / sizeof(bl[0]); i++) {
        memset(res, 0, 16);
        memcpy(res + 4, &bl[i].n_tensors, 4);
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u32(e, 31);
        vgpu_enc_u64(e, 16);
        EXPECT(apir_harness_send(h, APIR_CMD_BACKEND_GRAPH_COMPUTE, NULL), bl[i].code);
    }
    sec_check_alive(h, false);
    sec_close(h);
}

/* ===== malformed config values fall back to the defaults ================================================ */

static void test_quota_bad_config_values(void **state)
{
    (void)state;
    const char *const bad[] = { "0", "-1", "abc", "12abc", "", "99999999999999999999999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *const kv[] = { VGPU_CFG_QUOTA_BUFFERS, bad[i], VGPU_CFG_QUOTA_COMMAND, bad[i],
                                   VGPU_CFG_QUOTA_NODES, bad[i], VGPU_CFG_QUOTA_BYTES, bad[i], NULL };
        sec_stderr_begin();
        struct apir_harness *h = sec_open_cfg(true, kv);
        char *log = sec_stderr_end();
        if (!strstr(log, "is not a positive number"))
            fail_msg("config '%s': no log line", bad[i]);
        free(log);
        struct vgpu_abi_info abi;
        vgpu_abi_info_get(&abi);
        struct vgpu_hello req = { VGPU_EXT_VERSION, 0, abi.hash, abi.n_ops, abi.n_types, abi.tensor_size, 0, 0, 0 };
        vgpu_enc_hello_request(apir_harness_req(h), &req);
        struct vgpu_dec d;
        EXPECT(apir_harness_send(h, VGPU_CMD_EXT_HELLO, &d), VGPU_OK);
        struct vgpu_hello rep;
        assert_true(vgpu_dec_hello_reply(&d, &rep));
        assert_int_equal(rep.max_command_size, 1u << 20);
        EXPECT(ext_header_only(h, 262145, 262145), VGPU_QUOTA);
        EXPECT(ext_header_only(h, 262144, 262144), VGPU_INVALID);
        uint64_t ids[8];
        for (int k = 0; k < 8; k++)
            EXPECT(apir_harness_alloc(h, 0, 64, 0, &ids[k], NULL), VGPU_OK);
        sec_check_alive(h, true);
        sec_close(h);
    }
    /* Values above the hard bounds are clamped (graph nodes at 2^26). */
    const char *const kv[] = { VGPU_CFG_QUOTA_NODES, "4294967296", NULL };
    struct apir_harness *h = sec_open_cfg(true, kv);
    EXPECT(ext_header_only(h, 1u << 26, 1u << 26), VGPU_INVALID);
    EXPECT(ext_header_only(h, (1u << 26) + 1, (1u << 26) + 1), VGPU_QUOTA);
    sec_check_alive(h, true);
    sec_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quota_buffers_baseline),
        cmocka_unit_test(test_quota_buffers_ext),
        cmocka_unit_test(test_quota_buffer_bytes_baseline),
        cmocka_unit_test(test_quota_buffer_bytes_ext),
        cmocka_unit_test(test_quota_graph_nodes_baseline),
        cmocka_unit_test(test_quota_graph_nodes_ext),
        cmocka_unit_test(test_quota_command_bytes_baseline),
        cmocka_unit_test(test_quota_command_bytes_ext),
        cmocka_unit_test(test_quota_defaults),
        cmocka_unit_test(test_quota_bad_config_values),
    };
    sec_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
