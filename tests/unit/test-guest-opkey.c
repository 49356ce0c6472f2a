/*
 * Op signatures (the supports_op / get_alloc_size cache keys and request bodies), the
 * baseline inline images, the answer cache and the mirror of the host's graph LRU.
 * Expected values come from docs/PROTOCOL.md and from ggml tensors built here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "guest.h"
#include "serialize.h"
#include "wire.h"

static struct ggml_context *new_ctx(void)
{
    struct ggml_init_params p = { 64 * ggml_tensor_overhead(), NULL, true };
    return ggml_init(p);
}

struct key {
    uint8_t b[VGPU_OP_KEY_MAX];
    size_t  n;
};

static struct key key_of(const struct ggml_tensor *t)
{
    struct key k;
    memset(&k, 0xEE, sizeof(k));
    k.n = vgpu_op_key(t, k.b);
    return k;
}

static bool same(const struct key *a, const struct key *b)
{
    return a->n == b->n && memcmp(a->b, b->b, a->n) == 0;
}

static void test_same_shapes_same_key(void **state)
{
    (void)state;
    struct ggml_context *c1 = new_ctx(), *c2 = new_ctx();
    struct ggml_tensor *a1 = ggml_new_tensor_2d(c1, GGML_TYPE_F32, 32, 4);
    struct ggml_tensor *b1 = ggml_new_tensor_2d(c1, GGML_TYPE_F32, 32, 4);
    struct ggml_tensor *o1 = ggml_add(c1, a1, b1);
    struct ggml_tensor *a2 = ggml_new_tensor_2d(c2, GGML_TYPE_F32, 32, 4);
    struct ggml_tensor *b2 = ggml_new_tensor_2d(c2, GGML_TYPE_F32, 32, 4);
    struct ggml_tensor *o2 = ggml_add(c2, a2, b2);
    /* Names, buffers and data differ: none of it is part of the signature. */
    ggml_set_name(a1, "blk.0.x");
    ggml_set_name(o2, "something else");
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(c1, ggml_backend_cpu_buffer_type());
    assert_non_null(o1->data);
    struct key k1 = key_of(o1), k2 = key_of(o2);
    assert_true(same(&k1, &k2));

    /* Layout (docs/PROTOCOL.md §4.1): u32 n, then n wire tensors, sources first. */
    assert_int_equal(k1.n, 4 + 3 * 280);
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, k1.b, k1.n);
    assert_int_equal(vgpu_dec_u32(&dec), 3);
    struct vgpu_wire_tensor w[3];
    for (int i = 0; i < 3; i++)
        assert_true(vgpu_dec_wire_tensor(&dec, &w[i]));
    for (int i = 0; i < 3; i++) {
        assert_true(w[i].buffer == 0 && w[i].data == 0);
        assert_string_equal(w[i].name, "");
        assert_int_equal(w[i].use_count, 0);
    }
    assert_int_equal(w[0].src[0], 0);
    assert_int_equal(w[2].op, GGML_OP_ADD);
    assert_int_equal(w[2].src[0], 1);
    assert_int_equal(w[2].src[1], 2);
    assert_true(w[2].ne[0] == 32 && w[2].ne[1] == 4);
    ggml_backend_buffer_free(buf);
    ggml_free(c1);
    ggml_free(c2);
}

static void test_op_params_differ(void **state)
{
    (void)state;
    struct ggml_context *c = new_ctx();
    struct ggml_tensor *a = ggml_new_tensor_2d(c, GGML_TYPE_F32, 32, 4);
    struct key k1 = key_of(ggml_scale(c, a, 2.0f));
    struct key k2 = key_of(ggml_scale(c, a, 3.0f));
    struct key k3 = key_of(ggml_scale(c, a, 2.0f));
    assert_false(same(&k1, &k2));
    assert_true(same(&k1, &k3));
    ggml_free(c);
}

static void test_type_differs(void **state)
{
    (void)state;
    struct ggml_context *c = new_ctx();
    struct ggml_tensor *x = ggml_new_tensor_2d(c, GGML_TYPE_F32, 64, 4);
    struct ggml_tensor *w32 = ggml_new_tensor_2d(c, GGML_TYPE_F32, 64, 8);
    struct ggml_tensor *w16 = ggml_new_tensor_2d(c, GGML_TYPE_F16, 64, 8);
    struct key k1 = key_of(ggml_mul_mat(c, w32, x));
    struct key k2 = key_of(ggml_mul_mat(c, w16, x));
    assert_false(same(&k1, &k2));
    ggml_free(c);
}

static void test_contiguity_differs(void **state)
{
    (void)state;
    struct ggml_context *c = new_ctx();
    struct ggml_tensor *x = ggml_new_tensor_2d(c, GGML_TYPE_F32, 8, 8);
    struct ggml_tensor *xt = ggml_transpose(c, x); /* same ne, swapped nb */
    struct key k1 = key_of(ggml_cont(c, x));
    struct key k2 = key_of(ggml_cont(c, xt));
    assert_false(same(&k1, &k2));
    ggml_free(c);
}

static void test_repeated_source_listed_once(void **state)
{
    (void)state;
    struct ggml_context *c = new_ctx();
    struct ggml_tensor *a = ggml_new_tensor_1d(c, GGML_TYPE_F32, 16);
    struct key k = key_of(ggml_add(c, a, a));
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, k.b, k.n);
    assert_int_equal(vgpu_dec_u32(&dec), 2);
    struct vgpu_wire_tensor w[2];
    assert_true(vgpu_dec_wire_tensor(&dec, &w[0]));
    assert_true(vgpu_dec_wire_tensor(&dec, &w[1]));
    assert_int_equal(w[1].src[0], 1);
    assert_int_equal(w[1].src[1], 1);
    assert_int_equal(vgpu_dec_left(&dec), 0);
    ggml_free(c);
}

static void test_view_source(void **state)
{
    (void)state;
    struct ggml_context *c = new_ctx();
    struct ggml_tensor *a = ggml_new_tensor_2d(c, GGML_TYPE_F32, 16, 4);
    struct ggml_tensor *v1 = ggml_view_1d(c, a, 8, 0);
    struct ggml_tensor *v2 = ggml_view_1d(c, a, 8, 8 * sizeof(float));
    struct key k1 = key_of(v1), k2 = key_of(v2);
    assert_false(same(&k1, &k2)); /* view offsets are op_params and view_offs */
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, k2.b, k2.n);
    assert_int_equal(vgpu_dec_u32(&dec), 2);
    struct vgpu_wire_tensor w[2];
    assert_true(vgpu_dec_wire_tensor(&dec, &w[0]));
    assert_true(vgpu_dec_wire_tensor(&dec, &w[1]));
    assert_int_equal(w[1].src[0], 1);
    assert_int_equal(w[1].view_src, 1);
    assert_true(w[1].view_offs == 8 * sizeof(float));
    ggml_free(c);
}

/* ---- baseline inline images ----------------------------------------------------------------- */

static void test_inline_image_rules(void **state)
{
    (void)state;
    struct ggml_context *c = new_ctx();
    struct ggml_tensor *x = ggml_new_tensor_2d(c, GGML_TYPE_F32, 64, 4);
    struct ggml_tensor *w = ggml_new_tensor_2d(c, GGML_TYPE_F16, 64, 8);
    struct ggml_tensor *m = ggml_mul_mat(c, w, x);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(c, ggml_backend_cpu_buffer_type());
    struct ggml_tensor *v = ggml_view_1d(c, m, 4, 0);
    v->buffer = buf; /* a view with every pointer set */
    v->data = m->data;

    struct vgpu_inline_tensor it;
    assert_true(vgpu_inline_from_op(m, &it));
    assert_int_equal(it.n_src, 2);
    assert_true(it.op.buffer == 0 && it.op.data == 0 && it.op.view_src == 0 && it.op.extra == 0);
    assert_true(it.op.src[0] != 0 && it.op.src[1] != 0 && it.op.src[2] == 0);
    for (int i = 0; i < it.n_src; i++) {
        assert_true(it.src[i].buffer == 0 && it.src[i].data == 0 && it.src[i].view_src == 0);
        for (int s = 0; s < GGML_MAX_SRC; s++)
            assert_true(it.src[i].src[s] == 0);
    }
    assert_true(it.src[0].type == GGML_TYPE_F16 && it.src[0].ne[1] == 8);

    /* Encoded as docs/PROTOCOL.md §3.2 says: 336 bytes per image, no buffer handle. */
    uint8_t b[4096];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, b, sizeof(b));
    vgpu_enc_inline_tensor(&enc, &it);
    assert_int_equal(vgpu_enc_used(&enc), 3 * 336);

    assert_true(vgpu_inline_from_op(v, &it));
    assert_true(it.op.buffer == 0 && it.op.view_src == 0 && it.op.data == 0);
    vgpu_enc_init(&enc, b, sizeof(b));
    vgpu_enc_inline_tensor(&enc, &it);
    assert_int_equal(vgpu_enc_used(&enc), 2 * 336); /* the view and its src[0], no view image */
    ggml_backend_buffer_free(buf);
    ggml_free(c);
}

static void test_inline_refuses(void **state)
{
    (void)state;
    struct ggml_context *c = new_ctx();
    struct ggml_tensor *big = ggml_new_tensor_1d(c, GGML_TYPE_I8, (int64_t)1 << 33);
    struct vgpu_inline_tensor it;
    assert_false(vgpu_inline_from_op(ggml_neg(c, big), &it));

    struct ggml_tensor *a = ggml_new_tensor_1d(c, GGML_TYPE_F32, 8);
    struct ggml_tensor *o = ggml_add(c, a, a);
    assert_true(vgpu_inline_from_op(o, &it));
    o->src[2] = o->src[1]; /* a source after a NULL one: upstream decoders stop at the NULL */
    o->src[1] = NULL;
    assert_false(vgpu_inline_from_op(o, &it));
    ggml_free(c);
}

/* ---- answer cache ---------------------------------------------------------------------------- */

static void test_op_cache(void **state)
{
    (void)state;
    struct vgpu_op_cache cache;
    vgpu_op_cache_init(&cache, 1000);
    uint8_t k1[64], k2[64];
    memset(k1, 1, sizeof(k1));
    memset(k2, 1, sizeof(k2));
    k2[63] = 2;
    struct vgpu_op_answer a;
    vgpu_op_cache_lookup(&cache, k1, sizeof(k1), &a);
    assert_int_equal(a.known, 0);

    struct vgpu_op_answer s = { .known = VGPU_OPC_SUPPORTS, .supports = true };
    vgpu_op_cache_store(&cache, k1, sizeof(k1), &s);
    vgpu_op_cache_lookup(&cache, k1, sizeof(k1), &a);
    assert_int_equal(a.known, VGPU_OPC_SUPPORTS);
    assert_true(a.supports);
    vgpu_op_cache_lookup(&cache, k2, sizeof(k2), &a); /* differs in the last byte only */
    assert_int_equal(a.known, 0);
    vgpu_op_cache_lookup(&cache, k1, 63, &a); /* a prefix is another key */
    assert_int_equal(a.known, 0);

    struct vgpu_op_answer z = { .known = VGPU_OPC_ALLOC_SIZE, .alloc_size = 12345 };
    vgpu_op_cache_store(&cache, k1, sizeof(k1), &z);
    vgpu_op_cache_lookup(&cache, k1, sizeof(k1), &a);
    assert_int_equal(a.known, VGPU_OPC_SUPPORTS | VGPU_OPC_ALLOC_SIZE);
    assert_true(a.supports);
    assert_true(a.alloc_size == 12345);

    /* Many keys: all found, growth keeps them. */
    for (uint32_t i = 0; i < 900; i++) {
        uint8_t k[8];
        memcpy(k, &i, 4);
        memcpy(k + 4, &i, 4);
        struct vgpu_op_answer x = { .known = VGPU_OPC_OFFLOAD, .offload = (i & 1) != 0 };
        vgpu_op_cache_store(&cache, k, sizeof(k), &x);
    }
    for (uint32_t i = 0; i < 900; i++) {
        uint8_t k[8];
        memcpy(k, &i, 4);
        memcpy(k + 4, &i, 4);
        vgpu_op_cache_lookup(&cache, k, sizeof(k), &a);
        assert_int_equal(a.known, VGPU_OPC_OFFLOAD);
        assert_int_equal(a.offload, (i & 1) != 0);
    }
    /* Bounded: past max_entries it starts over instead of growing. */
    for (uint32_t i = 1000; i < 1200; i++) {
        uint8_t k[8];
        memcpy(k, &i, 4);
        memcpy(k + 4, &i, 4);
        vgpu_op_cache_store(&cache, k, sizeof(k), &s);
    }
    assert_true(cache.used <= 1000);
    vgpu_op_cache_free(&cache);
}

/* ---- graph LRU mirror -------------------------------------------------------------------------- */

static void test_graph_lru(void **state)
{
    (void)state;
    struct vgpu_graph_lru l;
    vgpu_graph_lru_init(&l, 3);
    assert_false(vgpu_graph_lru_touch(&l, 1));
    vgpu_graph_lru_insert(&l, 1);
    vgpu_graph_lru_insert(&l, 2);
    vgpu_graph_lru_insert(&l, 3);
    assert_true(vgpu_graph_lru_touch(&l, 1)); /* 1 becomes the most recent: 1 3 2 */
    vgpu_graph_lru_insert(&l, 4);             /* evicts the least recent, 2 */
    assert_false(vgpu_graph_lru_touch(&l, 2));
    assert_true(vgpu_graph_lru_touch(&l, 3));
    assert_true(vgpu_graph_lru_touch(&l, 4));
    assert_true(vgpu_graph_lru_touch(&l, 1));
    vgpu_graph_lru_remove(&l, 4);
    assert_false(vgpu_graph_lru_touch(&l, 4));
    vgpu_graph_lru_insert(&l, 5);
    vgpu_graph_lru_insert(&l, 5); /* no duplicate */
    assert_int_equal(l.n, 3);
    vgpu_graph_lru_free(&l);

    vgpu_graph_lru_init(&l, 0); /* a host without a cache: nothing is ever held */
    vgpu_graph_lru_insert(&l, 9);
    assert_false(vgpu_graph_lru_touch(&l, 9));
    vgpu_graph_lru_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_shapes_same_key),
        cmocka_unit_test(test_op_params_differ),
        cmocka_unit_test(test_type_differs),
        cmocka_unit_test(test_contiguity_differs),
        cmocka_unit_test(test_repeated_source_listed_once),
        cmocka_unit_test(test_view_source),
        cmocka_unit_test(test_inline_image_rules),
        cmocka_unit_test(test_inline_refuses),
        cmocka_unit_test(test_op_cache),
        cmocka_unit_test(test_graph_lru),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
