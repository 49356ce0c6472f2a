/*
 * Graph serialization (guest/serialize.c) of real ggml graphs built with ggml's constructors
 * and allocated in a real ggml buffer. The images are decoded here with proto/wire.h and
 * checked against what the test derives itself from the ggml graph: references point back,
 * node order, use counts (counted here), data offsets (pointer differences computed here).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ext.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "serialize.h"
#include "wire.h"

#define TEST_BUFFER_ID 0xB0F0000000000042ull

static bool lookup(void *user, ggml_backend_buffer_t buffer, uint64_t *id, uintptr_t *base)
{
    ggml_backend_buffer_t mine = user;
    if (buffer != mine)
        return false;
    *id = TEST_BUFFER_ID;
    *base = (uintptr_t)ggml_backend_buffer_get_base(buffer);
    return true;
}

struct fixture {
    struct ggml_context  *ctx;
    struct ggml_cgraph   *gf;
    ggml_backend_buffer_t buf;
    struct ggml_tensor   *out;
};

/* A small graph with a matmul, views, a transpose, a reused tensor and an input used twice. */
static void build(struct fixture *f)
{
    struct ggml_init_params p = { 64 * ggml_tensor_overhead() + ggml_graph_overhead(), NULL, true };
    f->ctx = ggml_init(p);
    struct ggml_context *ctx = f->ctx;
    struct ggml_tensor *a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 64, 8);
    struct ggml_tensor *b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 64, 8);
    struct ggml_tensor *w = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, 64, 32);
    ggml_set_name(a, "a");
    ggml_set_name(b, "b");
    ggml_set_name(w, "w");
    ggml_set_input(a);
    struct ggml_tensor *c = ggml_add(ctx, a, b);
    ggml_set_name(c, "c");
    struct ggml_tensor *d = ggml_mul_mat(ctx, w, c); /* [32, 8] */
    ggml_set_name(d, "d");
    struct ggml_tensor *v = ggml_view_2d(ctx, d, 16, 8, d->nb[1], 16 * sizeof(float));
    ggml_set_name(v, "v");
    struct ggml_tensor *t = ggml_cont(ctx, ggml_transpose(ctx, v));
    ggml_set_name(t->src[0], "vt");
    ggml_set_name(t, "t");
    struct ggml_tensor *s = ggml_scale(ctx, t, 0.5f);
    ggml_set_name(s, "s");
    struct ggml_tensor *u = ggml_add(ctx, s, s); /* s used twice by one node */
    ggml_set_name(u, "u");
    struct ggml_tensor *m = ggml_mul(ctx, ggml_sum_rows(ctx, c), ggml_sum_rows(ctx, c));
    ggml_set_name(m->src[0], "r0");
    ggml_set_name(m->src[1], "r1");
    ggml_set_name(m, "m");
    struct ggml_tensor *shape = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 8, 16);
    ggml_set_name(shape, "shape");
    struct ggml_tensor *mrr = ggml_reshape_2d(ctx, m, 8, 1);
    ggml_set_name(mrr, "mrr");
    struct ggml_tensor *mr = ggml_repeat(ctx, mrr, shape);
    ggml_set_name(mr, "mr");
    struct ggml_tensor *ur = ggml_reshape_2d(ctx, u, 8, 16);
    ggml_set_name(ur, "ur");
    /* ggml_cast: a CPY node whose src[1] is the node itself */
    struct ggml_tensor *mc = ggml_cast(ctx, mr, GGML_TYPE_F32);
    ggml_set_name(mc, "mc");
    struct ggml_tensor *o = ggml_add(ctx, ur, mc);
    ggml_set_name(o, "o");
    ggml_set_output(o);
    f->out = o;
    f->gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(f->gf, o);
    f->buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_cpu_buffer_type());
    assert_non_null(f->buf);
}

static void destroy(struct fixture *f)
{
    ggml_backend_buffer_free(f->buf);
    ggml_free(f->ctx);
}

/* Every tensor reachable from the graph's nodes, found by the test itself (by name). */
static struct ggml_tensor *by_name(struct ggml_context *ctx, const char *name)
{
    return ggml_get_tensor(ctx, name);
}

/* Use counts as ggml defines them: one per (node, source) edge of the graph. */
static int count_uses(const struct ggml_cgraph *gf, const struct ggml_tensor *t)
{
    int n = 0;
    for (int i = 0; i < ggml_graph_n_nodes((struct ggml_cgraph *)gf); i++) {
        struct ggml_tensor *node = ggml_graph_node((struct ggml_cgraph *)gf, i);
        for (int s = 0; s < GGML_MAX_SRC; s++)
            if (node->src[s] == t)
                n++;
    }
    return n;
}

static void test_ext_image(void **state)
{
    (void)state;
    struct fixture f;
    build(&f);
    struct vgpu_locator loc = { lookup, f.buf, NULL };
    struct vgpu_graph_image img = { 0 };
    char why[256];
    assert_int_equal(vgpu_graph_serialize(&img, f.gf, &loc, VGPU_GRAPH_FORM_EXT, why, sizeof(why)), 0);

    struct vgpu_dec dec;
    vgpu_dec_init(&dec, img.data, img.size);
    assert_int_equal(vgpu_dec_u32(&dec), 0x31474756u);
    uint32_t n_tensors = vgpu_dec_u32(&dec);
    uint32_t n_nodes = vgpu_dec_u32(&dec);
    assert_int_equal(vgpu_dec_u32(&dec), 0);
    int gn = ggml_graph_n_nodes(f.gf);
    assert_int_equal(n_nodes, (uint32_t)gn);
    assert_int_equal(img.size, 16 + 280 * (size_t)n_tensors + 4 * (size_t)n_nodes);

    struct vgpu_wire_tensor *w = calloc(n_tensors, sizeof(*w));
    for (uint32_t i = 0; i < n_tensors; i++)
        assert_true(vgpu_dec_wire_tensor(&dec, &w[i]));

    /* Every tensor once, names unique; each decodes to the tensor of that name. */
    uintptr_t base = (uintptr_t)ggml_backend_buffer_get_base(f.buf);
    for (uint32_t i = 0; i < n_tensors; i++) {
        for (uint32_t j = 0; j < i; j++)
            assert_string_not_equal(w[i].name, w[j].name);
        struct ggml_tensor *t = by_name(f.ctx, w[i].name);
        assert_non_null(t);
        assert_int_equal(w[i].type, t->type);
        assert_int_equal(w[i].op, t->op);
        assert_int_equal(w[i].flags, t->flags);
        for (int d = 0; d < 4; d++) {
            assert_true(w[i].ne[d] == t->ne[d]);
            assert_true(w[i].nb[d] == t->nb[d]);
        }
        assert_memory_equal(w[i].op_params, t->op_params, sizeof(w[i].op_params));
        /* References point back to earlier entries that are the right tensors. */
        for (int s = 0; s < GGML_MAX_SRC; s++) {
            if (!t->src[s]) {
                assert_int_equal(w[i].src[s], 0);
                continue;
            }
            if (t->src[s] == t) { /* a self-reference names the entry itself */
                assert_int_equal(w[i].src[s], i + 1);
                continue;
            }
            assert_true(w[i].src[s] >= 1 && w[i].src[s] <= i);
            assert_string_equal(w[w[i].src[s] - 1].name, t->src[s]->name);
        }
        if (t->view_src) {
            assert_true(w[i].view_src >= 1 && w[i].view_src <= i);
            assert_string_equal(w[w[i].view_src - 1].name, t->view_src->name);
            assert_true(w[i].view_offs == t->view_offs);
        } else {
            assert_int_equal(w[i].view_src, 0);
        }
        /* Location: the buffer id and the byte distance from the buffer's base. */
        assert_non_null(t->data);
        assert_true(w[i].buffer == TEST_BUFFER_ID);
        assert_true(w[i].data == (uint64_t)((uintptr_t)t->data - base));
        /* Use counts counted here over the graph's nodes. */
        assert_int_equal(w[i].use_count, count_uses(f.gf, t));
    }
    assert_int_equal(w[n_tensors - 1].use_count, 0); /* the output is used by nothing */
    struct ggml_tensor *s = by_name(f.ctx, "s");
    assert_int_equal(count_uses(f.gf, s), 2); /* the fixture really has a double use */
    struct ggml_tensor *mc = by_name(f.ctx, "mc");
    assert_true(mc->src[1] == mc); /* ... and a self-reference */

    /* The node list keeps the graph's order. */
    for (int i = 0; i < gn; i++) {
        uint32_t idx = vgpu_dec_u32(&dec);
        assert_true(idx < n_tensors);
        assert_string_equal(w[idx].name, ggml_graph_node(f.gf, i)->name);
    }
    assert_true(vgpu_dec_ok(&dec));
    assert_int_equal(vgpu_dec_left(&dec), 0);

    /* The image's index map agrees with the image. */
    for (uint32_t i = 0; i < n_tensors; i++)
        assert_int_equal(vgpu_graph_index_of(&img, by_name(f.ctx, w[i].name)), i);

    free(w);
    vgpu_graph_image_free(&img);
    destroy(&f);
}

static int weights_calls;

/* Flags the tensors of the buffer whose usage says weights, as the guest's locator does. */
static bool weights_by_usage(void *user, ggml_backend_buffer_t buffer)
{
    (void)user;
    weights_calls++;
    return ggml_backend_buffer_get_usage(buffer) == GGML_BACKEND_BUFFER_USAGE_WEIGHTS;
}

/* The weights bit: on every tensor with a buffer whose usage is weights, on no other; ggml's
 * own flags kept beside it. */
static void test_weights_flag(void **state)
{
    (void)state;
    for (int usage = 0; usage < 2; usage++) {
        struct fixture f;
        build(&f);
        if (usage)
            ggml_backend_buffer_set_usage(f.buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
        struct vgpu_locator loc = { lookup, f.buf, weights_by_usage };
        struct vgpu_graph_image img = { 0 };
        char why[256];
        weights_calls = 0;
        assert_int_equal(vgpu_graph_serialize(&img, f.gf, &loc, VGPU_GRAPH_FORM_EXT, why, sizeof(why)), 0);
        struct vgpu_dec dec;
        vgpu_dec_init(&dec, img.data, img.size);
        vgpu_dec_u32(&dec);
        uint32_t n_tensors = vgpu_dec_u32(&dec);
        vgpu_dec_u32(&dec);
        vgpu_dec_u32(&dec);
        assert_int_equal(weights_calls, (int)n_tensors); /* every tensor has a buffer here */
        for (uint32_t i = 0; i < n_tensors; i++) {
            struct vgpu_wire_tensor w;
            assert_true(vgpu_dec_wire_tensor(&dec, &w));
            const struct ggml_tensor *t = by_name(f.ctx, w.name);
            assert_non_null(t);
            assert_int_equal(w.flags, t->flags | (usage ? VGPU_TENSOR_FLAG_WEIGHTS : 0));
        }
        assert_true(ggml_get_tensor(f.ctx, "a")->flags & GGML_TENSOR_FLAG_INPUT);
        vgpu_graph_image_free(&img);
        destroy(&f);
    }
}

static void test_baseline_image(void **state)
{
    (void)state;
    struct fixture f;
    build(&f);
    struct vgpu_locator loc = { lookup, f.buf, NULL };
    struct vgpu_graph_image img = { 0 };
    char why[256];
    assert_int_equal(vgpu_graph_serialize(&img, f.gf, &loc, VGPU_GRAPH_FORM_BASELINE, why, sizeof(why)), 0);

    struct vgpu_dec dec;
    vgpu_dec_init(&dec, img.data, img.size);
    uint32_t n_nodes = vgpu_dec_u32(&dec);
    int gn = ggml_graph_n_nodes(f.gf);
    assert_int_equal(n_nodes, (uint32_t)gn);
    uint64_t *node_ids = calloc(n_nodes, sizeof(uint64_t));
    for (uint32_t i = 0; i < n_nodes; i++)
        node_ids[i] = vgpu_dec_u64(&dec);
    uint32_t n_tensors = vgpu_dec_u32(&dec);
    assert_int_equal(img.size, 8 + 8 * (size_t)n_nodes + 304 * (size_t)n_tensors);
    struct vgpu_rpc_tensor *r = calloc(n_tensors, sizeof(*r));
    for (uint32_t i = 0; i < n_tensors; i++)
        assert_true(vgpu_dec_rpc_tensor(&dec, &r[i]));
    assert_true(vgpu_dec_ok(&dec));
    assert_int_equal(vgpu_dec_left(&dec), 0);

    uintptr_t base = (uintptr_t)ggml_backend_buffer_get_base(f.buf);
    for (uint32_t i = 0; i < n_tensors; i++) {
        assert_true(r[i].id != 0);
        for (uint32_t j = 0; j < i; j++)
            assert_true(r[i].id != r[j].id);
        struct ggml_tensor *t = by_name(f.ctx, r[i].name);
        assert_non_null(t);
        for (int d = 0; d < 4; d++) {
            assert_true(r[i].ne[d] == (uint32_t)t->ne[d]);
            assert_true(r[i].nb[d] == (uint32_t)t->nb[d]);
        }
        /* Post-order: every id referenced belongs to an earlier tensor of the right name. */
        for (int s = 0; s < GGML_MAX_SRC; s++) {
            if (!t->src[s]) {
                assert_true(r[i].src[s] == 0);
                continue;
            }
            uint32_t found = UINT32_MAX;
            for (uint32_t j = 0; j < i + (t->src[s] == t); j++)
                if (r[j].id == r[i].src[s])
                    found = j;
            assert_true(t->src[s] != t || found == i);
            assert_true(found != UINT32_MAX);
            assert_string_equal(r[found].name, t->src[s]->name);
        }
        assert_true(r[i].buffer == TEST_BUFFER_ID);
        assert_true(r[i].data == (uint64_t)((uintptr_t)t->data - base));
    }
    for (int i = 0; i < gn; i++) {
        uint32_t found = UINT32_MAX;
        for (uint32_t j = 0; j < n_tensors; j++)
            if (r[j].id == node_ids[i])
                found = j;
        assert_true(found != UINT32_MAX);
        assert_string_equal(r[found].name, ggml_graph_node(f.gf, i)->name);
    }
    free(r);
    free(node_ids);
    vgpu_graph_image_free(&img);
    destroy(&f);
}

/* Tensors of foreign buffers (and unallocated ones) travel without a location. */
static void test_foreign_buffer(void **state)
{
    (void)state;
    struct fixture f;
    build(&f);
    struct vgpu_locator loc = { lookup, NULL, NULL }; /* knows no buffer */
    struct vgpu_graph_image img = { 0 };
    char why[256];
    assert_int_equal(vgpu_graph_serialize(&img, f.gf, &loc, VGPU_GRAPH_FORM_EXT, why, sizeof(why)), 0);
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, img.data + 16, img.size - 16);
    for (uint32_t i = 0; i < img.n_tensors; i++) {
        struct vgpu_wire_tensor w;
        assert_true(vgpu_dec_wire_tensor(&dec, &w));
        assert_true(w.buffer == 0 && w.data == 0);
    }
    vgpu_graph_image_free(&img);
    destroy(&f);
}

/* ---- a 10,000-deep chain, serialized on a thread with a 64 KiB stack ---------------------- */

#define CHAIN 10000

struct chain_job {
    struct ggml_cgraph     *gf;
    struct vgpu_graph_image img;
    int                     rc;
};

static void *chain_serialize(void *arg)
{
    struct chain_job *j = arg;
    char why[128];
    j->rc = vgpu_graph_serialize(&j->img, j->gf, NULL, VGPU_GRAPH_FORM_EXT, why, sizeof(why));
    return NULL;
}

static void test_deep_chain(void **state)
{
    (void)state;
    size_t mem = (CHAIN + 16) * ggml_tensor_overhead() + ggml_graph_overhead_custom(CHAIN + 16, false);
    struct ggml_init_params p = { mem, NULL, true };
    struct ggml_context *ctx = ggml_init(p);
    struct ggml_tensor *x = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 16);
    struct ggml_tensor *first = x;
    for (int i = 0; i < CHAIN; i++)
        x = ggml_neg(ctx, x);
    struct ggml_cgraph *gf = ggml_new_graph_custom(ctx, CHAIN + 16, false);
    ggml_build_forward_expand(gf, x);
    assert_int_equal(ggml_graph_n_nodes(gf), CHAIN);

    struct chain_job job = { .gf = gf };
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    assert_int_equal(pthread_attr_setstacksize(&attr, 64 * 1024), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, &attr, chain_serialize, &job), 0);
    pthread_join(th, NULL);
    pthread_attr_destroy(&attr);
    assert_int_equal(job.rc, 0);
    assert_int_equal(job.img.n_tensors, CHAIN + 1);

    struct vgpu_dec dec;
    vgpu_dec_init(&dec, job.img.data + 16, job.img.size - 16);
    for (uint32_t i = 0; i <= CHAIN; i++) {
        struct vgpu_wire_tensor w;
        assert_true(vgpu_dec_wire_tensor(&dec, &w));
        /* entry 0 is the input, entry i negates entry i-1 */
        assert_int_equal(w.src[0], i == 0 ? 0 : i);
        assert_int_equal(w.op, i == 0 ? GGML_OP_NONE : GGML_OP_UNARY);
        assert_int_equal(w.use_count, i == CHAIN ? 0 : 1);
    }
    for (uint32_t i = 0; i < CHAIN; i++)
        assert_int_equal(vgpu_dec_u32(&dec), i + 1);
    assert_int_equal(vgpu_graph_index_of(&job.img, first), 0);
    assert_int_equal(vgpu_graph_use_count(gf, first), 1);
    vgpu_graph_image_free(&job.img);
    ggml_free(ctx);
}

/* A tensor outside the graph has use count 0, and the lookup does not mistake a free slot. */
static void test_use_count_absent(void **state)
{
    (void)state;
    struct fixture f;
    build(&f);
    struct ggml_tensor *stray = ggml_new_tensor_1d(f.ctx, GGML_TYPE_F32, 4);
    assert_int_equal(vgpu_graph_use_count(f.gf, stray), 0);
    destroy(&f);
}

/* Shapes above 32 bits cannot be described to a baseline host: serialization says so. */
static void test_baseline_rejects_wide(void **state)
{
    (void)state;
    struct ggml_init_params p = { 8 * ggml_tensor_overhead() + ggml_graph_overhead(), NULL, true };
    struct ggml_context *ctx = ggml_init(p);
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_I8, (int64_t)1 << 33);
    struct ggml_tensor *b = ggml_neg(ctx, ggml_view_1d(ctx, a, 16, 0));
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, b);
    struct vgpu_graph_image img = { 0 };
    char why[256] = "";
    assert_int_equal(vgpu_graph_serialize(&img, gf, NULL, VGPU_GRAPH_FORM_BASELINE, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "32 bits"));
    /* The extension form carries 64-bit shapes. */
    assert_int_equal(vgpu_graph_serialize(&img, gf, NULL, VGPU_GRAPH_FORM_EXT, why, sizeof(why)), 0);
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, img.data + 16, img.size - 16);
    struct vgpu_wire_tensor w;
    assert_true(vgpu_dec_wire_tensor(&dec, &w));
    assert_true(w.ne[0] == ((int64_t)1 << 33));
    vgpu_graph_image_free(&img);
    ggml_free(ctx);
}

/* A genuine cycle (not a self-reference) is refused, not walked forever. */
static void test_cycle_refused(void **state)
{
    (void)state;
    struct ggml_init_params p = { 8 * ggml_tensor_overhead() + ggml_graph_overhead(), NULL, true };
    struct ggml_context *ctx = ggml_init(p);
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 16);
    struct ggml_tensor *x = ggml_neg(ctx, a);
    struct ggml_tensor *y = ggml_neg(ctx, x);
    ggml_set_name(y, "y");
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, y);
    x->src[0] = y; /* x -> y -> x */
    struct vgpu_graph_image img = { 0 };
    char why[256] = "";
    assert_int_equal(vgpu_graph_serialize(&img, gf, NULL, VGPU_GRAPH_FORM_EXT, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "cycle"));
    vgpu_graph_image_free(&img);
    ggml_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ext_image),
        cmocka_unit_test(test_weights_flag),
        cmocka_unit_test(test_baseline_image),
        cmocka_unit_test(test_foreign_buffer),
        cmocka_unit_test(test_deep_chain),
        cmocka_unit_test(test_use_count_absent),
        cmocka_unit_test(test_baseline_rejects_wide),
        cmocka_unit_test(test_cycle_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
