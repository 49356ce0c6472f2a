/*
 * Regression tests for the bug classes found in ggml-rpc's server (reference/anchors.md §1.2
 * and §5), the closest peer of this host: each class as a crafted message in the baseline and
 * the extension protocol, answered with an error while the host survives and the context keeps
 * working (sec_check_alive).
 *
 *   test_rpc_tensor_no_buffer_with_data_*       CVE-2026-34159 / GHSA-j8rj-fmpv-wcxw (PR #20908)
 *   test_rpc_copy_overflows_destination_*       ggml PR #1103 ("fix known RCE", copy_tensor)
 *   test_rpc_type_out_of_range_block_size_0_*   PR #13069, the blck_size == 0 check
 *   test_rpc_ne0_not_multiple_of_block_*        issue #25288 (assert in ggml_row_size)
 *   test_rpc_graph_reuse_after_buffer_free_*    GHSA-2phh-px2f-2qmx (PR #24292: UAF through a
 *                                               cached graph, then a hijacked buffer vtable)
 *   test_rpc_custom_op_function_pointer_*       issue #25289 (CUSTOM / MAP_CUSTOM* op_params)
 *   test_rpc_get_set_rows_shape_abuse_*         issues #26825 / #26912 (PR #26933)
 *   test_rpc_size1_dim_huge_stride_*            ggml_nbytes ignoring size-1 strides (#26825)
 *   test_rpc_offset_size_overflow_*             integer overflow of offsets and extents
 * (Transfers past the shared resource: test-holes-upstream.c, H3. Index VALUES out of range:
 * test-holes-index.c.)
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sec-common.h"

#define EXPECT(call, code)                                                                          \
    do {                                                                                            \
        uint32_t r_ = (call);                                                                       \
        if (r_ != (uint32_t)(code))                                                                 \
            fail_msg("%s:%d: %s answered %u (%s), expected %u (%s)", __FILE__, __LINE__, #call, r_, \
                     vgpu_status_name(r_), (uint32_t)(code), vgpu_status_name(code));              \
    } while (0)

static void f32s(float *v, int n, float scale)
{
    for (int i = 0; i < n; i++)
        v[i] = scale * (float)(i + 1);
}

/* ---- a small ext graph builder on top of sec_graph ---------------------------------------------- */

/* ===== CVE-2026-34159: a tensor with no buffer but a data value ==================================== */

static void test_rpc_tensor_no_buffer_with_data_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint8_t *res = apir_harness_res_create(h, 3, 4096);
    assert_non_null(res);
    /* As an entry the computation does not use (a leaf's own source): still refused. */
    struct vgpu_rpc_tensor stray = sec_rpc(0x50, GGML_TYPE_F32, 0, 4, 1, 0x1000);
    struct vgpu_rpc_tensor a = sec_rpc(0x100, GGML_TYPE_F32, buf, 4, 1, 0);
    struct vgpu_rpc_tensor b = sec_rpc(0x200, GGML_TYPE_F32, buf, 4, 1, 64);
    struct vgpu_rpc_tensor c = sec_rpc(0x300, GGML_TYPE_F32, buf, 4, 1, 128);
    c.op = GGML_OP_ADD;
    c.src[0] = a.id;
    c.src[1] = b.id;
    c.flags = GGML_TENSOR_FLAG_COMPUTE;
    struct vgpu_rpc_tensor t[4] = { stray, a, b, c };
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, t, 4, 0, NULL), VGPU_INVALID);
    t[0].data = 0; /* with data 0 the stray entry is harmless */
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, t, 4, 0, NULL), VGPU_OK);
    /* As a source, a view source and the node itself. */
    for (int which = 1; which < 4; which++) {
        struct vgpu_rpc_tensor u[4] = { stray, a, b, c };
        u[0].data = 0;
        u[which].buffer = 0;
        u[which].data = 8;
        EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, u, 4, 0, NULL), VGPU_INVALID);
    }
    struct vgpu_rpc_tensor v = sec_rpc(0x400, GGML_TYPE_F32, 0, 2, 1, 8);
    v.view_src = a.id;
    v.view_offs = 8;
    struct vgpu_rpc_tensor u[5] = { stray, a, b, v, c };
    u[0].data = 0;
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, u, 5, 0, NULL), VGPU_INVALID);
    /* Data without a buffer in transfers and copies. */
    struct vgpu_rpc_tensor nb = sec_rpc(1, GGML_TYPE_F32, 0, 4, 1, 64);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &nb, 3, 0, 16), VGPU_INVALID);
    EXPECT(sec_bl_copy(h, buf, &nb, &a, NULL), VGPU_INVALID);
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_rpc_tensor_no_buffer_with_data_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    for (int which = 0; which < 5; which++) {
        struct sec_graph g;
        sec_graph_init(&g, 5);
        struct vgpu_wire_tensor stray = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, 0, which == 0 ? 0x1000 : 0);
        uint32_t s = g_add(&g, stray);
        (void)s;
        struct vgpu_wire_tensor a = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
        struct vgpu_wire_tensor b = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 64);
        struct vgpu_wire_tensor c = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 128);
        struct vgpu_wire_tensor *evil = which == 1 ? &a : which == 2 ? &b : which == 3 ? &c : NULL;
        if (evil) {
            evil->buffer = 0;
            evil->data = 16;
        }
        uint32_t ia = g_add(&g, a), ib = g_add(&g, b);
        g_op(&g, c, GGML_OP_ADD, (int32_t)ia, (int32_t)ib, -1);
        EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), which == 4 ? VGPU_OK : VGPU_INVALID);
        /* The same through graph_optimize (buffers optional there, data without one is not). */
        size_t n;
        uint8_t *img = sec_graph_image(&g, &n);
        EXPECT(sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_OPTIMIZE, img, n, 0, 0, NULL, NULL),
               which == 4 ? VGPU_OK : VGPU_INVALID);
        free(img);
        sec_graph_free(&g);
    }
    uint8_t d[16] = { 0 };
    struct vgpu_wire_tensor nb = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, 0, 64);
    EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &nb, 0, 16, 1, 0, 0, 0, 0, d, 16), VGPU_INVALID);
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== ggml PR #1103: a copy that overflows its destination ======================================= */

static void test_rpc_copy_overflows_destination_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t src_buf = sec_bl_alloc_ok(h, 65536), dst_buf = sec_bl_alloc_ok(h, 4096);
    /* copy_tensor: dst_data + nbytes(src) > dst_base + dst_buf_size. */
    struct vgpu_rpc_tensor src = sec_rpc(1, GGML_TYPE_F32, src_buf, 4096, 1, 0);
    struct vgpu_rpc_tensor dst = sec_rpc(2, GGML_TYPE_F32, dst_buf, 16, 1, 4096 - 64);
    bool answer;
    EXPECT(sec_bl_copy(h, dst_buf, &src, &dst, &answer), VGPU_INVALID);
    /* A destination that claims to be large but starts near the end of its buffer. */
    dst = sec_rpc(2, GGML_TYPE_F32, dst_buf, 4096, 1, 4096 - 64);
    EXPECT(sec_bl_copy(h, dst_buf, &src, &dst, &answer), VGPU_INVALID);
    /* The graph form: a CPY node whose destination is smaller than its source. */
    struct vgpu_rpc_tensor a = sec_rpc(0x10, GGML_TYPE_F32, src_buf, 256, 1, 0);
    struct vgpu_rpc_tensor d = sec_rpc(0x20, GGML_TYPE_F32, dst_buf, 16, 1, 4096 - 64);
    struct vgpu_rpc_tensor cp = sec_rpc(0x30, GGML_TYPE_F32, dst_buf, 16, 1, 4096 - 64);
    cp.op = GGML_OP_CPY;
    cp.src[0] = a.id;
    cp.src[1] = d.id;
    cp.view_src = d.id;
    cp.flags = GGML_TENSOR_FLAG_COMPUTE;
    struct vgpu_rpc_tensor t[3] = { a, d, cp };
    EXPECT(sec_bl_graph(h, 30, 4096, &cp.id, 1, t, 3, 0, NULL), VGPU_INVALID);
    /* ... and one that claims a large destination past its buffer. */
    t[1] = sec_rpc(0x20, GGML_TYPE_F32, dst_buf, 256, 1, 4096 - 64);
    t[2].ne[0] = 256;
    t[2].nb[1] = t[2].nb[2] = t[2].nb[3] = 1024;
    EXPECT(sec_bl_graph(h, 30, 4096, &cp.id, 1, t, 3, 0, NULL), VGPU_INVALID);
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_rpc_copy_overflows_destination_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t src_buf = sec_ext_alloc_ok(h, 65536), dst_buf = sec_ext_alloc_ok(h, 4096);
    struct vgpu_wire_tensor src = sec_wire(GGML_TYPE_F32, 4096, 1, 1, 1, src_buf, 0);
    struct vgpu_wire_tensor dst = sec_wire(GGML_TYPE_F32, 16, 1, 1, 1, dst_buf, 4096 - 64);
    EXPECT(sec_ext_copy(h, &src, &dst), VGPU_INVALID);
    dst = sec_wire(GGML_TYPE_F32, 4096, 1, 1, 1, dst_buf, 4096 - 64);
    EXPECT(sec_ext_copy(h, &src, &dst), VGPU_INVALID);
    /* CPY / DUP / CONT nodes whose destination is smaller than the source. */
    const uint32_t ops[] = { GGML_OP_CPY, GGML_OP_DUP, GGML_OP_CONT };
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        struct sec_graph g;
        sec_graph_init(&g, 3);
        uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 256, 1, 1, 1, src_buf, 0));
        struct vgpu_wire_tensor out = sec_wire(GGML_TYPE_F32, 16, 1, 1, 1, dst_buf, 4096 - 64);
        if (ops[k] == GGML_OP_CPY) {
            uint32_t d = g_add(&g, out);
            out.view_src = d + 1;
            g_op(&g, out, GGML_OP_CPY, (int32_t)a, (int32_t)d, -1);
        } else {
            g_op(&g, out, ops[k], (int32_t)a, -1, -1);
        }
        EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_INVALID);
        sec_graph_free(&g);
    }
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== PR #13069: type out of range; types with block size 0 ====================================== */

static void test_rpc_type_out_of_range_block_size_0_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint8_t *res = apir_harness_res_create(h, 3, 4096);
    assert_non_null(res);
    uint32_t types[16] = { GGML_TYPE_COUNT, GGML_TYPE_COUNT + 1, 0x7FFFFFFFu, 0xFFFFFFFFu };
    uint32_t n = 4 + sec_removed_types(types + 4, 12);
    assert_true(n > 4); /* this ggml has removed types (Q4_2, Q4_3, ...) */
    for (uint32_t i = 0; i < n; i++) {
        struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, buf, 32, 1, 0);
        t.type = types[i];
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 16), VGPU_INVALID);
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 16), VGPU_INVALID);
        struct vgpu_rpc_tensor ok = sec_rpc(2, GGML_TYPE_F32, buf, 32, 1, 1024);
        EXPECT(sec_bl_copy(h, buf, &t, &ok, NULL), VGPU_INVALID);
        /* In a graph: as a leaf and as the node. */
        struct vgpu_rpc_tensor a = sec_rpc(0x10, GGML_TYPE_F32, buf, 4, 1, 0);
        struct vgpu_rpc_tensor c = sec_rpc(0x30, GGML_TYPE_F32, buf, 4, 1, 128);
        c.op = GGML_OP_SCALE;
        c.src[0] = a.id;
        c.flags = GGML_TENSOR_FLAG_COMPUTE;
        float one = 1.0f;
        memcpy(&c.op_params[0], &one, 4);
        for (int which = 0; which < 2; which++) {
            struct vgpu_rpc_tensor g[2] = { a, c };
            g[which].type = types[i];
            EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, g, 2, 0, NULL), VGPU_INVALID);
        }
        /* In op queries (raw ggml_tensor images). */
        struct vgpu_inline_tensor it;
        memset(&it, 0, sizeof(it));
        it.op.type = types[i];
        it.op.ne[0] = 32;
        it.op.ne[1] = it.op.ne[2] = it.op.ne[3] = 1;
        it.op.nb[0] = 4;
        it.op.nb[1] = it.op.nb[2] = it.op.nb[3] = 128;
        vgpu_enc_inline_tensor(apir_harness_req(h), &it);
        EXPECT(apir_harness_send(h, APIR_CMD_DEVICE_SUPPORTS_OP, NULL), VGPU_INVALID);
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u64(e, sec_bl_buft(h));
        vgpu_enc_inline_tensor(e, &it);
        EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE, NULL), VGPU_INVALID);
    }
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_rpc_type_out_of_range_block_size_0_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    uint64_t buft = sec_ext_buft(h);
    uint32_t types[16] = { GGML_TYPE_COUNT, GGML_TYPE_COUNT + 1, 0x7FFFFFFFu, 0xFFFFFFFFu };
    uint32_t n = 4 + sec_removed_types(types + 4, 12);
    uint8_t d[64] = { 0 };
    for (uint32_t i = 0; i < n; i++) {
        struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 16, 1, 1, 1, buf, 0);
        w.type = types[i];
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 16, 1, 0, 0, 0, 0, d, 16), VGPU_INVALID);
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 16, 1, 0, 0, 0, 0, NULL, 0), VGPU_INVALID);
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_wire_tensor(e, &w);
        vgpu_enc_u64(e, 0);
        vgpu_enc_u64(e, 16);
        vgpu_enc_u32(e, 0);
        EXPECT(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_MEMSET, NULL), VGPU_INVALID);
        vgpu_enc_wire_tensor(apir_harness_req(h), &w);
        EXPECT(apir_harness_send(h, VGPU_CMD_EXT_TENSOR_INIT, NULL), VGPU_INVALID);
        for (int which = 0; which < 2; which++) {
            struct sec_graph g;
            sec_graph_init(&g, 2);
            struct vgpu_wire_tensor a = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
            struct vgpu_wire_tensor c = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 128);
            float one = 1.0f;
            memcpy(&c.op_params[0], &one, 4);
            (which ? &c : &a)->type = types[i];
            uint32_t ia = g_add(&g, a);
            g_op(&g, c, GGML_OP_SCALE, (int32_t)ia, -1, -1);
            EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_INVALID);
            e = apir_harness_req(h);
            vgpu_enc_u32(e, 0);
            vgpu_enc_u64(e, buft);
            vgpu_enc_u32(e, 2);
            vgpu_enc_wire_tensor(e, &g.t[0]);
            vgpu_enc_wire_tensor(e, &g.t[1]);
            EXPECT(apir_harness_send(h, VGPU_CMD_EXT_GET_ALLOC_SIZE, NULL), VGPU_INVALID);
            sec_graph_free(&g);
        }
    }
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== issue #25288: ne[0] not a multiple of the block size ======================================== */

static void test_rpc_ne0_not_multiple_of_block_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 65536);
    uint8_t *res = apir_harness_res_create(h, 3, 4096);
    assert_non_null(res);
    const struct {
        uint32_t type, ne0;
    } bad[] = { { GGML_TYPE_Q4_0, 10 }, { GGML_TYPE_Q8_0, 33 }, { GGML_TYPE_Q4_K, 100 }, { GGML_TYPE_Q6_K, 255 } };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct vgpu_rpc_tensor t = sec_rpc(1, bad[i].type, buf, 256, 2, 0);
        t.ne[0] = bad[i].ne0;
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 16), VGPU_INVALID);
        /* nb[0] of a blocked type must be its block's size. */
        struct vgpu_rpc_tensor u = sec_rpc(1, bad[i].type, buf, 256, 2, 0);
        u.nb[0] = 1;
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &u, 3, 0, 16), VGPU_INVALID);
        /* As the source of a GET_ROWS (the op that asserted in ggml_row_size). */
        struct vgpu_rpc_tensor rows = sec_rpc(0x20, GGML_TYPE_I32, buf, 1, 1, 8192);
        struct vgpu_rpc_tensor out = sec_rpc(0x30, GGML_TYPE_F32, buf, bad[i].ne0, 1, 16384);
        out.op = GGML_OP_GET_ROWS;
        t.id = 0x10;
        out.src[0] = t.id;
        out.src[1] = rows.id;
        out.flags = GGML_TENSOR_FLAG_COMPUTE;
        struct vgpu_rpc_tensor g[3] = { t, rows, out };
        EXPECT(sec_bl_graph(h, 30, 4096, &out.id, 1, g, 3, 0, NULL), VGPU_INVALID);
        struct vgpu_inline_tensor it;
        memset(&it, 0, sizeof(it));
        it.op.type = bad[i].type;
        it.op.ne[0] = bad[i].ne0;
        it.op.ne[1] = it.op.ne[2] = it.op.ne[3] = 1;
        it.op.nb[0] = ggml_type_size((enum ggml_type)bad[i].type);
        it.op.nb[1] = it.op.nb[2] = it.op.nb[3] = 4096;
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u64(e, sec_bl_buft(h));
        vgpu_enc_inline_tensor(e, &it);
        EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE, NULL), VGPU_INVALID);
    }
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_rpc_ne0_not_multiple_of_block_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 65536);
    uint64_t buft = sec_ext_buft(h);
    const struct {
        uint32_t type;
        int64_t  ne0;
    } bad[] = { { GGML_TYPE_Q4_0, 10 }, { GGML_TYPE_Q8_0, 33 }, { GGML_TYPE_Q4_K, 100 }, { GGML_TYPE_Q6_K, 255 } };
    uint8_t d[64] = { 0 };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct vgpu_wire_tensor w = sec_wire(bad[i].type, 256, 2, 1, 1, buf, 0);
        w.ne[0] = bad[i].ne0;
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 16, 1, 0, 0, 0, 0, d, 16), VGPU_INVALID);
        struct vgpu_wire_tensor u = sec_wire(bad[i].type, 256, 2, 1, 1, buf, 0);
        u.nb[0] = 1;
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &u, 0, 16, 1, 0, 0, 0, 0, d, 16), VGPU_INVALID);
        struct sec_graph g;
        sec_graph_init(&g, 3);
        uint32_t a = g_add(&g, w);
        uint32_t rows = g_add(&g, sec_wire(GGML_TYPE_I32, 1, 1, 1, 1, buf, 8192));
        g_op(&g, sec_wire(GGML_TYPE_F32, bad[i].ne0, 1, 1, 1, buf, 16384), GGML_OP_GET_ROWS, (int32_t)a,
             (int32_t)rows, -1);
        EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_INVALID);
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u32(e, 0);
        vgpu_enc_u64(e, buft);
        vgpu_enc_u32(e, 1);
        vgpu_enc_wire_tensor(e, &g.t[0]);
        EXPECT(apir_harness_send(h, VGPU_CMD_EXT_GET_ALLOC_SIZE, NULL), VGPU_INVALID);
        e = apir_harness_req(h);
        vgpu_enc_u32(e, 0);
        vgpu_enc_u32(e, 3);
        for (int k = 0; k < 3; k++)
            vgpu_enc_wire_tensor(e, &g.t[k]);
        EXPECT(apir_harness_send(h, VGPU_CMD_EXT_SUPPORTS_OP, NULL), VGPU_INVALID);
        sec_graph_free(&g);
    }
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== GHSA-2phh-px2f-2qmx: use after free of a buffer through a reused (cached) graph ============= */

static void test_rpc_graph_reuse_after_buffer_free_baseline(void **state)
{
    (void)state;
    /* The baseline has no graph cache; the same attack is a graph naming a freed buffer id
     * (also after its slot was reused), and BUFFER_CLEAR on the freed id (the vtable hijack). */
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    struct vgpu_rpc_tensor a = sec_rpc(0x10, GGML_TYPE_F32, buf, 4, 1, 0);
    struct vgpu_rpc_tensor c = sec_rpc(0x30, GGML_TYPE_F32, buf, 4, 1, 128);
    c.op = GGML_OP_SCALE;
    c.src[0] = a.id;
    c.flags = GGML_TENSOR_FLAG_COMPUTE;
    float one = 1.0f;
    memcpy(&c.op_params[0], &one, 4);
    struct vgpu_rpc_tensor t[2] = { a, c };
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, t, 2, 0, NULL), VGPU_OK);
    EXPECT(sec_bl_free(h, buf), VGPU_OK);
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, t, 2, 0, NULL), VGPU_NOT_FOUND);
    uint64_t again = sec_bl_alloc_ok(h, 4096); /* the same slot, a new generation */
    assert_true(again != buf);
    assert_int_equal((uint32_t)again, (uint32_t)buf);
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, t, 2, 0, NULL), VGPU_NOT_FOUND);
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u64(e, buf);
    vgpu_enc_u8(e, 0x41);
    EXPECT(apir_harness_send(h, APIR_CMD_BUFFER_CLEAR, NULL), VGPU_NOT_FOUND);
    EXPECT(sec_bl_free(h, buf), VGPU_NOT_FOUND);
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_rpc_graph_reuse_after_buffer_free_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    for (int zero_copy = 0; zero_copy < 2; zero_copy++) {
        uint64_t buf = zero_copy ? sec_ext_alloc_zc(h, 40, 4096, NULL) : sec_ext_alloc_ok(h, 4096);
        uint64_t keep = sec_ext_alloc_ok(h, 4096);
        struct sec_graph g;
        sec_graph_init(&g, 3);
        uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, keep, 0));
        uint32_t b = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0));
        g_op(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, keep, 128), GGML_OP_ADD, (int32_t)a, (int32_t)b, -1);
        uint32_t result;
        EXPECT(sec_ext_graph(h, &g, 500, &result, NULL), VGPU_OK);
        EXPECT(sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL, 0, 500, 0, &result, NULL), VGPU_OK);
        assert_int_equal(result, VGPU_GRAPH_COMPUTED);
        /* Free a buffer the cached graph uses; reallocate (the host may reuse the memory). */
        EXPECT(apir_harness_free(h, buf), VGPU_OK);
        uint64_t fresh[4];
        for (int i = 0; i < 4; i++)
            fresh[i] = sec_ext_alloc_ok(h, 4096);
        EXPECT(sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL, 0, 500, 0, &result, NULL), VGPU_OK);
        assert_int_equal(result, VGPU_GRAPH_NOT_CACHED);
        /* The freed id is dead everywhere (BUFFER_CLEAR was the vtable-hijack primitive). */
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u64(e, buf);
        vgpu_enc_u32(e, 0x41);
        EXPECT(apir_harness_send(h, VGPU_CMD_EXT_BUFFER_CLEAR, NULL), VGPU_NOT_FOUND);
        EXPECT(sec_ext_graph(h, &g, 501, &result, NULL), VGPU_NOT_FOUND);
        EXPECT(sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, NULL, 0, 501, 0, &result, NULL), VGPU_OK);
        assert_int_equal(result, VGPU_GRAPH_NOT_CACHED);
        /* A cached graph evicted by the LRU and one replaced under the same uid are gone too. */
        EXPECT(apir_harness_free(h, keep), VGPU_OK);
        for (int i = 0; i < 4; i++)
            EXPECT(apir_harness_free(h, fresh[i]), VGPU_OK);
        sec_graph_free(&g);
    }
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== issue #25289: CUSTOM / MAP_CUSTOM* ops carrying function pointers ========================== */

static atomic_int custom_calls;
static void custom_fn(void)
{
    atomic_fetch_add(&custom_calls, 1);
}

/* op_params: { fun, n_tasks, userdata } as ggml_map_custom1 stores them (pointers as i32 pairs). */
static void put_fn(int32_t *op_params)
{
    void (*fp)(void) = custom_fn;
    void *ud = (void *)&custom_calls;
    memcpy(&op_params[0], &fp, sizeof(fp));
    op_params[2] = 1;
    memcpy(&op_params[4], &ud, sizeof(ud));
    memcpy(&op_params[8], &fp, sizeof(fp));
}

static const uint32_t custom_ops[] = { GGML_OP_CUSTOM, GGML_OP_MAP_CUSTOM1, GGML_OP_MAP_CUSTOM2, GGML_OP_MAP_CUSTOM3 };

static void test_rpc_custom_op_function_pointer_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    atomic_store(&custom_calls, 0);
    for (size_t k = 0; k < sizeof(custom_ops) / sizeof(custom_ops[0]); k++) {
        struct vgpu_rpc_tensor a = sec_rpc(0x10, GGML_TYPE_F32, buf, 4, 1, 0);
        struct vgpu_rpc_tensor b = sec_rpc(0x20, GGML_TYPE_F32, buf, 4, 1, 64);
        struct vgpu_rpc_tensor c = sec_rpc(0x30, GGML_TYPE_F32, buf, 4, 1, 128);
        c.op = custom_ops[k];
        c.src[0] = a.id;
        c.src[1] = b.id;
        c.flags = GGML_TENSOR_FLAG_COMPUTE;
        put_fn(c.op_params);
        struct vgpu_rpc_tensor t[3] = { a, b, c };
        EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, t, 3, 0, NULL), VGPU_INVALID);
        /* As plain data (not a node) its op is dropped and nothing of it runs. */
        struct vgpu_rpc_tensor d = sec_rpc(0x40, GGML_TYPE_F32, buf, 4, 1, 256);
        d.op = GGML_OP_ADD;
        d.src[0] = c.id;
        d.src[1] = a.id;
        d.flags = GGML_TENSOR_FLAG_COMPUTE;
        struct vgpu_rpc_tensor u[4] = { a, b, c, d };
        EXPECT(sec_bl_graph(h, 30, 4096, &d.id, 1, u, 4, 0, NULL), VGPU_OK);
        /* supports_op says no. */
        struct vgpu_inline_tensor it;
        memset(&it, 0, sizeof(it));
        it.op.type = GGML_TYPE_F32;
        it.op.ne[0] = 4;
        it.op.ne[1] = it.op.ne[2] = it.op.ne[3] = 1;
        it.op.nb[0] = 4;
        it.op.nb[1] = it.op.nb[2] = it.op.nb[3] = 16;
        it.op.op = custom_ops[k];
        memcpy(it.op.op_params, c.op_params, sizeof(c.op_params));
        it.op.src[0] = 0x7ffd00000100ull;
        it.src[0] = it.op;
        it.src[0].op = GGML_OP_NONE;
        it.src[0].src[0] = 0;
        it.n_src = 1;
        vgpu_enc_inline_tensor(apir_harness_req(h), &it);
        struct vgpu_dec dd;
        EXPECT(apir_harness_send(h, APIR_CMD_DEVICE_SUPPORTS_OP, &dd), VGPU_OK);
        assert_int_equal(vgpu_dec_u8(&dd), 0);
    }
    if (atomic_load(&custom_calls))
        fail_msg("the host called a guest-supplied function pointer %d times", atomic_load(&custom_calls));
    sec_check_alive(h, false);
    sec_close(h);
}

static void test_rpc_custom_op_function_pointer_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    uint64_t buft = sec_ext_buft(h);
    atomic_store(&custom_calls, 0);
    for (size_t k = 0; k < sizeof(custom_ops) / sizeof(custom_ops[0]); k++) {
        struct sec_graph g;
        sec_graph_init(&g, 3);
        uint32_t a = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0));
        uint32_t b = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 64));
        struct vgpu_wire_tensor c = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 128);
        put_fn(c.op_params);
        g_op(&g, c, custom_ops[k], (int32_t)a, (int32_t)b, -1);
        EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_INVALID);
        EXPECT(sec_ext_graph(h, &g, 77, NULL, NULL), VGPU_INVALID);
        size_t n;
        uint8_t *img = sec_graph_image(&g, &n);
        EXPECT(sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_OPTIMIZE, img, n, 0, 0, NULL, NULL), VGPU_INVALID);
        free(img);
        const uint32_t q[] = { VGPU_CMD_EXT_SUPPORTS_OP, VGPU_CMD_EXT_OFFLOAD_OP };
        for (int i = 0; i < 2; i++) {
            struct vgpu_enc *e = apir_harness_req(h);
            vgpu_enc_u32(e, 0);
            vgpu_enc_u32(e, 3);
            for (int j = 0; j < 3; j++)
                vgpu_enc_wire_tensor(e, &g.t[j]);
            struct vgpu_dec d;
            EXPECT(apir_harness_send(h, q[i], &d), VGPU_OK);
            assert_int_equal(vgpu_dec_u32(&d), 0);
        }
        struct vgpu_enc *e = apir_harness_req(h);
        vgpu_enc_u32(e, 0);
        vgpu_enc_u64(e, buft);
        vgpu_enc_u32(e, 3);
        for (int j = 0; j < 3; j++)
            vgpu_enc_wire_tensor(e, &g.t[j]);
        EXPECT(apir_harness_send(h, VGPU_CMD_EXT_GET_ALLOC_SIZE, NULL), VGPU_INVALID);
        sec_graph_free(&g);
    }
    if (atomic_load(&custom_calls))
        fail_msg("the host called a guest-supplied function pointer %d times", atomic_load(&custom_calls));
    sec_check_alive(h, true);
    sec_close(h);
}

/* ===== issues #26825 / #26912: GET_ROWS / SET_ROWS shape abuse ====================================== */

/*
 * GET_ROWS(a [n, r, A2, A3], b I32 [m, A2, A3, 1]) -> [n, m, A2, A3]; SET_ROWS(values b, rows c,
 * dest a) -> a view of a. Each case breaks one relation the CPU kernels only assert()ed.
 */
enum { ROWS_GOOD, GR_NE2, GR_NE3, GR_B_NE3, GR_B_TYPE, GR_DST_NE1, GR_DST_NE0, GR_DST_TYPE, SR_NE0, SR_NE1,
       SR_NE2, SR_C_TYPE, SR_NOT_VIEW_SHAPE, SR_A_ROWS_STRIDED, ROWS_CASES };

/* One case: `set` picks the op; k the relation broken (ROWS_GOOD: none). For GET_ROWS a is the
 * source and b the row numbers; for SET_ROWS a is the row numbers, b the values, out the
 * destination (the node is a view of it). */
static void rows_case(int k, bool set, struct vgpu_wire_tensor *a, struct vgpu_wire_tensor *b,
                      struct vgpu_wire_tensor *out, uint64_t buf)
{
    if (!set) {
        *a = sec_wire(GGML_TYPE_F32, 4, 3, 2, 1, buf, 0);    /* 3 rows per plane, 2 planes */
        *b = sec_wire(GGML_TYPE_I32, 2, 2, 1, 1, buf, 512);  /* 2 rows per plane */
        *out = sec_wire(GGML_TYPE_F32, 4, 2, 2, 1, buf, 1024);
        switch (k) {
        case GR_NE2: *a = sec_wire(GGML_TYPE_F32, 4, 3, 3, 1, buf, 0); break;
        case GR_NE3: *a = sec_wire(GGML_TYPE_F32, 4, 3, 2, 2, buf, 0); break;
        case GR_B_NE3: *b = sec_wire(GGML_TYPE_I32, 2, 2, 1, 2, buf, 512); break;
        case GR_B_TYPE: *b = sec_wire(GGML_TYPE_F32, 2, 2, 1, 1, buf, 512); break;
        case GR_DST_NE1: *out = sec_wire(GGML_TYPE_F32, 4, 40, 2, 1, buf, 1024); break;
        case GR_DST_NE0: *out = sec_wire(GGML_TYPE_F32, 64, 2, 2, 1, buf, 1024); break;
        case GR_DST_TYPE: *out = sec_wire(GGML_TYPE_F16, 4, 2, 2, 1, buf, 1024); break;
        default: break;
        }
        return;
    }
    *b = sec_wire(GGML_TYPE_F32, 4, 2, 1, 1, buf, 0);        /* values: 2 rows */
    *a = sec_wire(GGML_TYPE_I64, 2, 1, 1, 1, buf, 512);      /* row numbers */
    *out = sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, 1024);   /* destination: 3 rows */
    switch (k) {
    case SR_NE0: *b = sec_wire(GGML_TYPE_F32, 8, 2, 1, 1, buf, 0); break;
    case SR_NE1: *b = sec_wire(GGML_TYPE_F32, 4, 5, 1, 1, buf, 0); break;
    case SR_NE2: *b = sec_wire(GGML_TYPE_F32, 4, 2, 2, 1, buf, 0); break;
    case SR_C_TYPE: *a = sec_wire(GGML_TYPE_F32, 2, 1, 1, 1, buf, 512); break;
    case SR_A_ROWS_STRIDED: out->nb[0] = 8; out->nb[1] = 64; out->nb[2] = out->nb[3] = 256; break;
    default: break; /* SR_NOT_VIEW_SHAPE: the caller changes the result's shape */
    }
}

static bool case_applies(int k, bool set)
{
    return k == ROWS_GOOD || (set ? k >= SR_NE0 : k < SR_NE0);
}

static void test_rpc_get_set_rows_shape_abuse_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 41, 4096, &mem); /* a guard page follows: overruns fault */
    for (int set = 0; set < 2; set++) {
        for (int k = 0; k < ROWS_CASES; k++) {
            if (!case_applies(k, set))
                continue;
            struct vgpu_wire_tensor a, b, out;
            rows_case(k, set, &a, &b, &out, buf);
            memset(mem + 512, 0, 64); /* row numbers 0: valid */
            struct sec_graph g;
            sec_graph_init(&g, 4);
            if (!set) {
                uint32_t ia = g_add(&g, a), ib = g_add(&g, b);
                g_op(&g, out, GGML_OP_GET_ROWS, (int32_t)ia, (int32_t)ib, -1);
            } else {
                uint32_t ib = g_add(&g, b), ic = g_add(&g, a), idst = g_add(&g, out);
                struct vgpu_wire_tensor r = out;
                r.view_src = idst + 1;
                if (k == SR_NOT_VIEW_SHAPE)
                    r.ne[1] = 1;
                g_op(&g, r, GGML_OP_SET_ROWS, (int32_t)ib, (int32_t)ic, (int32_t)idst);
            }
            uint32_t expect = k == ROWS_GOOD ? VGPU_OK : VGPU_INVALID;
            uint32_t r = sec_ext_graph(h, &g, 0, NULL, NULL);
            if (r != expect)
                fail_msg("%s case %d: answered %u, expected %u", set ? "SET_ROWS" : "GET_ROWS", k, r, expect);
            sec_graph_free(&g);
        }
    }
    sec_check_alive(h, true);
    sec_close(h);
}

/* A wire tensor as a baseline rpc tensor with this id (u32 ne/nb). */
static struct vgpu_rpc_tensor to_rpc(const struct vgpu_wire_tensor *w, uint64_t id)
{
    struct vgpu_rpc_tensor t;
    memset(&t, 0, sizeof(t));
    t.id = id;
    t.type = w->type;
    t.buffer = w->buffer;
    t.data = w->data;
    for (int d = 0; d < 4; d++) {
        t.ne[d] = (uint32_t)w->ne[d];
        t.nb[d] = (uint32_t)w->nb[d];
    }
    return t;
}

static void test_rpc_get_set_rows_shape_abuse_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint8_t *res = apir_harness_res_create(h, 3, 4096);
    assert_non_null(res);
    /* Row numbers 0 (valid) in the buffer. */
    memset(res, 0, 64);
    struct vgpu_rpc_tensor idx = sec_rpc(1, GGML_TYPE_I8, buf, 64, 1, 512);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &idx, 3, 0, 64), VGPU_OK);
    for (int set = 0; set < 2; set++) {
        for (int k = 0; k < ROWS_CASES; k++) {
            if (!case_applies(k, set))
                continue;
            struct vgpu_wire_tensor a, b, out;
            rows_case(k, set, &a, &b, &out, buf);
            struct vgpu_rpc_tensor t[4];
            uint32_t n;
            uint64_t node;
            if (!set) {
                t[0] = to_rpc(&a, 0x100);
                t[1] = to_rpc(&b, 0x200);
                t[2] = to_rpc(&out, 0x300);
                t[2].op = GGML_OP_GET_ROWS;
                t[2].src[0] = t[0].id;
                t[2].src[1] = t[1].id;
                t[2].flags = GGML_TENSOR_FLAG_COMPUTE;
                n = 3;
                node = t[2].id;
            } else {
                t[0] = to_rpc(&b, 0x100);   /* values */
                t[1] = to_rpc(&a, 0x200);   /* row numbers */
                t[2] = to_rpc(&out, 0x300); /* destination */
                t[3] = t[2];
                t[3].id = 0x400;
                t[3].op = GGML_OP_SET_ROWS;
                t[3].src[0] = t[0].id;
                t[3].src[1] = t[1].id;
                t[3].src[2] = t[2].id;
                t[3].view_src = t[2].id;
                t[3].flags = GGML_TENSOR_FLAG_COMPUTE;
                if (k == SR_NOT_VIEW_SHAPE)
                    t[3].ne[1] = 1;
                n = 4;
                node = t[3].id;
            }
            uint32_t expect = k == ROWS_GOOD ? VGPU_OK : VGPU_INVALID;
            uint32_t r = sec_bl_graph(h, 30, 4096, &node, 1, t, n, 0, NULL);
            if (r != expect)
                fail_msg("%s case %d: answered %u, expected %u", set ? "SET_ROWS" : "GET_ROWS", k, r, expect);
        }
    }
    sec_check_alive(h, false);
    sec_close(h);
}

/* ===== size-1 dimensions with huge strides (ggml_nbytes ignores them) ============================== */

static void test_rpc_size1_dim_huge_stride_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint8_t *mem;
    uint64_t buf = sec_ext_alloc_zc(h, 42, 4096, &mem); /* a guard page follows */
    uint8_t d[16] = { 0 };
    /* Strides beyond the protocol's bound are refused even on size-1 dimensions. */
    const uint64_t huge[] = { (1ull << 50) + 1, 1ull << 60, UINT64_MAX };
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        for (int dim = 1; dim < 4; dim++) {
            struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
            w.nb[dim] = huge[i];
            EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 16, 1, 0, 0, 0, 0, d, 16), VGPU_INVALID);
        }
    }
    /* A legal but enormous stride on a size-1 dimension, used by ops that broadcast over it
     * (index 0 only) and by GET_ROWS (#26825's shape): either refused, or computed right and
     * without touching anything outside the buffer (the guard page would fault). */
    float x[12], y[4];
    f32s(x, 12, 1.0f);
    f32s(y, 4, 100.0f);
    memcpy(mem, x, sizeof(x));
    memcpy(mem + 64, y, sizeof(y));
    for (int dim = 1; dim < 4; dim++) {
        struct sec_graph g;
        sec_graph_init(&g, 3);
        uint32_t ia = g_add(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, 0));
        struct vgpu_wire_tensor bw = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 64);
        bw.nb[dim] = 1ull << 50;
        uint32_t ib = g_add(&g, bw);
        g_op(&g, sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, 256), GGML_OP_ADD, (int32_t)ia, (int32_t)ib, -1);
        memset(mem + 256, 0, 48);
        int32_t status = -1;
        uint32_t r = sec_ext_graph(h, &g, 0, NULL, &status);
        if (r == VGPU_OK) {
            assert_int_equal(status, GGML_STATUS_SUCCESS);
            for (int i = 0; i < 12; i++) {
                float v;
                memcpy(&v, mem + 256 + 4 * i, 4);
                if (v != x[i] + y[i % 4])
                    fail_msg("broadcast over dim %d: out[%d] = %g, expected %g", dim, i, (double)v,
                             (double)(x[i] + y[i % 4]));
            }
        } else if (r != VGPU_INVALID) {
            fail_msg("broadcast over dim %d: answered %u", dim, r);
        }
        sec_graph_free(&g);
    }
    for (int dim = 2; dim < 4; dim++) {
        struct sec_graph g;
        sec_graph_init(&g, 3);
        struct vgpu_wire_tensor src = sec_wire(GGML_TYPE_F32, 4, 3, 1, 1, buf, 0);
        src.nb[dim] = 1ull << 50;
        uint32_t ia = g_add(&g, src);
        memset(mem + 512, 0, 16);
        mem[512] = 2; /* row 2 */
        uint32_t ib = g_add(&g, sec_wire(GGML_TYPE_I32, 1, 1, 1, 1, buf, 512));
        /* rows over ne2/ne3 of the index: more planes than the source has (size 1). */
        uint32_t ib2 = g_add(&g, sec_wire(GGML_TYPE_I32, 1, 4, 1, 1, buf, 512));
        g_op(&g, sec_wire(GGML_TYPE_F32, 4, 1, 4, 1, buf, 1024), GGML_OP_GET_ROWS, (int32_t)ia, (int32_t)ib2, -1);
        EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_INVALID);
        sec_graph_free(&g);
        sec_graph_init(&g, 3);
        ia = g_add(&g, src);
        ib = g_add(&g, sec_wire(GGML_TYPE_I32, 1, 1, 1, 1, buf, 512));
        g_op(&g, sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 1024), GGML_OP_GET_ROWS, (int32_t)ia, (int32_t)ib, -1);
        int32_t status = -1;
        uint32_t r = sec_ext_graph(h, &g, 0, NULL, &status);
        if (r == VGPU_OK) {
            assert_int_equal(status, GGML_STATUS_SUCCESS);
            float v[4];
            memcpy(v, mem + 1024, 16);
            for (int i = 0; i < 4; i++)
                assert_true(v[i] == x[8 + i]);
        } else if (r != VGPU_INVALID) {
            fail_msg("get_rows over a strided plane: answered %u", r);
        }
        sec_graph_free(&g);
    }
    sec_check_alive(h, true);
    sec_close(h);
}

static void test_rpc_size1_dim_huge_stride_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint8_t *res = apir_harness_res_create(h, 3, 4096);
    assert_non_null(res);
    /* u32 strides: the largest is 4 GiB - 1; a size-1 dimension contributes nothing, so the tensor
     * stays tiny; ops must not index it. */
    struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, buf, 4, 1, 4096 - 16);
    t.nb[1] = t.nb[2] = t.nb[3] = 0xFFFFFFFFu;
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 16), VGPU_OK);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 17), VGPU_INVALID);
    /* Two rows with that stride: now the extent is 4 GiB and leaves the buffer. */
    t.ne[1] = 2;
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 16), VGPU_INVALID);
    /* A broadcast over the size-1 dimension: refused or computed right. */
    float x[12], y[4];
    f32s(x, 12, 1.0f);
    f32s(y, 4, 100.0f);
    struct vgpu_rpc_tensor a = sec_rpc(0x10, GGML_TYPE_F32, buf, 4, 3, 0);
    struct vgpu_rpc_tensor b = sec_rpc(0x20, GGML_TYPE_F32, buf, 4, 1, 4096 - 16);
    memcpy(res, x, sizeof(x));
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &a, 3, 0, 48), VGPU_OK);
    memcpy(res, y, sizeof(y));
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &b, 3, 0, 16), VGPU_OK);
    b.nb[1] = b.nb[2] = b.nb[3] = 0xFFFFFFFFu;
    struct vgpu_rpc_tensor c = sec_rpc(0x30, GGML_TYPE_F32, buf, 4, 3, 256);
    c.op = GGML_OP_ADD;
    c.src[0] = a.id;
    c.src[1] = b.id;
    c.flags = GGML_TENSOR_FLAG_COMPUTE;
    struct vgpu_rpc_tensor g[3] = { a, b, c };
    int32_t status = -1;
    uint32_t r = sec_bl_graph(h, 30, 4096, &c.id, 1, g, 3, 0, &status);
    if (r == VGPU_OK) {
        assert_int_equal(status, GGML_STATUS_SUCCESS);
        EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &c, 3, 0, 48), VGPU_OK);
        for (int i = 0; i < 12; i++) {
            float v;
            memcpy(&v, res + 4 * i, 4);
            if (v != x[i] + y[i % 4])
                fail_msg("out[%d] = %g, expected %g", i, (double)v, (double)(x[i] + y[i % 4]));
        }
    } else if (r != VGPU_INVALID) {
        fail_msg("answered %u", r);
    }
    sec_check_alive(h, false);
    sec_close(h);
}

/* ===== integer overflow of offsets, sizes and extents ================================================ */

static void test_rpc_offset_size_overflow_ext(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(true);
    uint64_t buf = sec_ext_alloc_ok(h, 4096);
    uint8_t d[16] = { 0 };
    struct {
        int64_t  ne[4];
        uint64_t nb[4];
        uint64_t data;
    } bad[] = {
        { { 4, 1, 1, 1 }, { 4, 16, 16, 16 }, UINT64_MAX - 3 },              /* data + extent wraps */
        { { 4, 1, 1, 1 }, { 4, 16, 16, 16 }, 4096 - 15 },                   /* one byte past */
        { { 1ll << 40, 1ll << 10, 1, 1 }, { 4, 1ull << 42, 0, 0 }, 0 },     /* too many elements */
        { { 4, 1ll << 40, 1, 1 }, { 4, 1ull << 50, 16, 16 }, 0 },           /* extent wraps */
        { { 4, 2, 2, 2 }, { 4, 1ull << 50, 1ull << 50, 1ull << 50 }, 0 },   /* sum of spans wraps 2^52 */
        { { -1, 1, 1, 1 }, { 4, 16, 16, 16 }, 0 },                           /* negative ne */
        { { (1ll << 40) + 1, 1, 1, 1 }, { 4, 16, 16, 16 }, 0 },              /* ne past the bound */
        { { INT64_MAX, 1, 1, 1 }, { 4, 16, 16, 16 }, 0 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct vgpu_wire_tensor w = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, bad[i].data);
        memcpy(w.ne, bad[i].ne, sizeof(w.ne));
        memcpy(w.nb, bad[i].nb, sizeof(w.nb));
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_SET, &w, 0, 4, 1, 0, 0, 0, 0, d, 4), VGPU_INVALID);
        EXPECT(sec_ext_transfer(h, VGPU_CMD_EXT_TENSOR_GET, &w, 0, 4, 1, 0, 0, 0, 0, NULL, 0), VGPU_INVALID);
    }
    /* A view whose view_offs wraps around to its source's data. */
    struct sec_graph g;
    sec_graph_init(&g, 3);
    uint32_t src = g_add(&g, sec_wire(GGML_TYPE_F32, 16, 1, 1, 1, buf, 64));
    struct vgpu_wire_tensor v = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 32);
    v.view_src = src + 1;
    v.view_offs = UINT64_MAX - 31; /* 64 + offs wraps to 32 */
    uint32_t iv = g_add(&g, v);
    struct vgpu_wire_tensor c = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 1024);
    float one = 1.0f;
    memcpy(&c.op_params[0], &one, 4);
    g_op(&g, c, GGML_OP_SCALE, (int32_t)iv, -1, -1);
    EXPECT(sec_ext_graph(h, &g, 0, NULL, NULL), VGPU_INVALID);
    sec_graph_free(&g);
    sec_check_alive(h, true);
    sec_close(h);
}

static void test_rpc_offset_size_overflow_baseline(void **state)
{
    (void)state;
    struct apir_harness *h = sec_open(false);
    uint64_t buf = sec_bl_alloc_ok(h, 4096);
    uint8_t *res = apir_harness_res_create(h, 3, 4096);
    assert_non_null(res);
    struct vgpu_rpc_tensor t = sec_rpc(1, GGML_TYPE_F32, buf, 4, 1, UINT64_MAX - 3);
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 4), VGPU_INVALID);
    /* u32 ne and nb at their maxima: 2^128 elements, extents far past 2^64 in total. */
    t = sec_rpc(1, GGML_TYPE_F32, buf, 4, 1, 0);
    for (int d = 0; d < 4; d++) {
        t.ne[d] = 0xFFFFFFFFu;
        t.nb[d] = 0xFFFFFFFFu;
    }
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &t, 3, 0, 4), VGPU_INVALID);
    t = sec_rpc(1, GGML_TYPE_F32, buf, 4, 1, 0);
    t.ne[1] = 0xFFFFFFFFu;
    t.nb[1] = 0xFFFFFFFFu;
    EXPECT(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &t, 3, 0, 4), VGPU_INVALID);
    /* view_offs that wraps (baseline u64). */
    struct vgpu_rpc_tensor s = sec_rpc(0x10, GGML_TYPE_F32, buf, 16, 1, 64);
    struct vgpu_rpc_tensor v = sec_rpc(0x20, GGML_TYPE_F32, buf, 4, 1, 32);
    v.view_src = s.id;
    v.view_offs = UINT64_MAX - 31;
    struct vgpu_rpc_tensor c = sec_rpc(0x30, GGML_TYPE_F32, buf, 4, 1, 1024);
    c.op = GGML_OP_SCALE;
    c.src[0] = v.id;
    c.flags = GGML_TENSOR_FLAG_COMPUTE;
    float one = 1.0f;
    memcpy(&c.op_params[0], &one, 4);
    struct vgpu_rpc_tensor g[3] = { s, v, c };
    EXPECT(sec_bl_graph(h, 30, 4096, &c.id, 1, g, 3, 0, NULL), VGPU_INVALID);
    sec_check_alive(h, false);
    sec_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpc_tensor_no_buffer_with_data_baseline),
        cmocka_unit_test(test_rpc_tensor_no_buffer_with_data_ext),
        cmocka_unit_test(test_rpc_copy_overflows_destination_baseline),
        cmocka_unit_test(test_rpc_copy_overflows_destination_ext),
        cmocka_unit_test(test_rpc_type_out_of_range_block_size_0_baseline),
        cmocka_unit_test(test_rpc_type_out_of_range_block_size_0_ext),
        cmocka_unit_test(test_rpc_ne0_not_multiple_of_block_baseline),
        cmocka_unit_test(test_rpc_ne0_not_multiple_of_block_ext),
        cmocka_unit_test(test_rpc_graph_reuse_after_buffer_free_baseline),
        cmocka_unit_test(test_rpc_graph_reuse_after_buffer_free_ext),
        cmocka_unit_test(test_rpc_custom_op_function_pointer_baseline),
        cmocka_unit_test(test_rpc_custom_op_function_pointer_ext),
        cmocka_unit_test(test_rpc_get_set_rows_shape_abuse_baseline),
        cmocka_unit_test(test_rpc_get_set_rows_shape_abuse_ext),
        cmocka_unit_test(test_rpc_size1_dim_huge_stride_baseline),
        cmocka_unit_test(test_rpc_size1_dim_huge_stride_ext),
        cmocka_unit_test(test_rpc_offset_size_overflow_baseline),
        cmocka_unit_test(test_rpc_offset_size_overflow_ext),
    };
    sec_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
