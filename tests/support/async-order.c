/*
 * async-order: ordering guarantees of the guest's deferred commands, checked through the
 * real stack (VirtGPU0 on a batching host with host-allocated buffers). Two cases:
 *
 *   resend  graphs A, B, C of the same shape; the server runs with a small --max-graph-nodes
 *           so that computing B evicts A from the host's graph cache while the guest still
 *           believes A cached. Recomputing A asynchronously then stops the host's batch
 *           (NOT_CACHED) and the guest resends A's image; C's full compute, queued behind it,
 *           must still compute C (its image must not be overwritten by A's).
 *   sync    set_tensor_async from a host buffer, synchronize, overwrite the source: the tensor
 *           must hold the first value (synchronize completes reads of the caller's memory).
 *   same    two cgraphs (two uids) over the same tensors: the second is computed from the
 *           host's build of the first (the guest's image matches; the script checks the host
 *           built one graph), on the inputs set in between.
 *   init    on a host whose buffers have init_tensor (the server on
 *           tests/support/fake-queue-backend.c, whose init fills a tensor with 0x5a): tensors
 *           allocated in a buffer read back initialised, the last one set afterwards holds
 *           the value set (the inits, deferred after the first, ran before the read and the set,
 *           in order). That they were deferred is checked by the script (the guest's profile).
 *
 * Usage: async-order LLAMA_BIN_DIR resend|sync|same|init. Exit 0 when the values are right, 1 otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-impl.h" /* struct ggml_cgraph: its uid */
#include "ggml.h"

#define CHAIN 256 /* adds per graph: more nodes than the server's cache budget allows twice */
#define WIDTH 16

struct chain {
    struct ggml_context  *ctx;
    struct ggml_cgraph   *gf;
    struct ggml_tensor   *out;
    ggml_backend_buffer_t buf;
};

/* out = sum of CHAIN + 1 vectors: the first holds id*1000 + 1, the others id*1000. */
static float chain_expected(int id)
{
    return (float)(id * 1000 * (CHAIN + 1) + 1);
}

static int chain_build(struct chain *c, ggml_backend_t be, int id, uint64_t uid)
{
    struct ggml_init_params p = { ggml_tensor_overhead() * (2 * CHAIN + 8) + ggml_graph_overhead(), NULL, true };
    c->ctx = ggml_init(p);
    struct ggml_tensor *in[CHAIN + 1];
    struct ggml_tensor *x = NULL;
    for (int i = 0; i <= CHAIN; i++) {
        in[i] = ggml_new_tensor_1d(c->ctx, GGML_TYPE_F32, WIDTH);
        x = i ? ggml_add(c->ctx, x, in[i]) : in[i];
    }
    c->out = x;
    c->gf = ggml_new_graph(c->ctx);
    ggml_build_forward_expand(c->gf, x);
    c->gf->uid = uid; /* what ggml-alloc would give a new graph */
    c->buf = ggml_backend_alloc_ctx_tensors(c->ctx, be);
    if (!c->buf)
        return -1;
    float v[WIDTH];
    for (int i = 0; i <= CHAIN; i++) {
        for (int j = 0; j < WIDTH; j++)
            v[j] = (float)(id * 1000 + (i == 0));
        ggml_backend_tensor_set(in[i], v, 0, sizeof(v));
    }
    return 0;
}

static void chain_free(struct chain *c)
{
    ggml_backend_buffer_free(c->buf);
    ggml_free(c->ctx);
}

static float chain_out(const struct chain *c)
{
    float v[WIDTH];
    ggml_backend_tensor_get(c->out, v, 0, sizeof(v));
    return v[0];
}

static int check(const char *what, float got, float want)
{
    printf("%s: %.0f (expected %.0f)\n", what, got, want);
    return got == want ? 0 : 1;
}

static int test_resend(ggml_backend_t be)
{
    struct chain a, b, c;
    if (chain_build(&a, be, 1, 101) || chain_build(&b, be, 2, 102) || chain_build(&c, be, 3, 103)) {
        fprintf(stderr, "async-order: allocation failed\n");
        return 1;
    }
    int bad = 0;
    bad |= ggml_backend_graph_compute(be, a.gf) != GGML_STATUS_SUCCESS;
    bad |= ggml_backend_graph_compute(be, b.gf) != GGML_STATUS_SUCCESS;
    bad |= ggml_backend_graph_compute_async(be, a.gf) != GGML_STATUS_SUCCESS;
    bad |= ggml_backend_graph_compute(be, c.gf) != GGML_STATUS_SUCCESS;
    ggml_backend_synchronize(be);
    if (bad)
        fprintf(stderr, "async-order: a compute failed\n");
    bad |= check("A after its resend", chain_out(&a), chain_expected(1));
    bad |= check("C queued behind the resend", chain_out(&c), chain_expected(3));
    /* And from the host's cache: C's uid must name C's graph there. */
    float zero[WIDTH] = { 0 };
    ggml_backend_tensor_set(c.out, zero, 0, sizeof(zero));
    bad |= ggml_backend_graph_compute(be, c.gf) != GGML_STATUS_SUCCESS;
    bad |= check("C recomputed from the cache", chain_out(&c), chain_expected(3));
    chain_free(&a);
    chain_free(&b);
    chain_free(&c);
    return bad;
}

static int test_sync(ggml_backend_t be, ggml_backend_dev_t dev)
{
    ggml_backend_buffer_type_t hbt = ggml_backend_dev_host_buffer_type(dev);
    if (!hbt) {
        fprintf(stderr, "async-order: VirtGPU0 offers no host buffer type\n");
        return 1;
    }
    enum { N = 1024 };
    ggml_backend_buffer_t hb = ggml_backend_buft_alloc_buffer(hbt, N * sizeof(float));
    struct ggml_init_params p = { ggml_tensor_overhead() * 2, NULL, true };
    struct ggml_context *ctx = ggml_init(p);
    struct ggml_tensor *t = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, N);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be);
    if (!hb || !buf) {
        fprintf(stderr, "async-order: allocation failed\n");
        return 1;
    }
    float *src = ggml_backend_buffer_get_base(hb);
    for (int i = 0; i < N; i++)
        src[i] = 1.0f;
    ggml_backend_tensor_set_async(be, t, src, 0, N * sizeof(float));
    ggml_backend_synchronize(be); /* ggml's contract: the source may be reused now */
    for (int i = 0; i < N; i++)
        src[i] = 2.0f;
    float out[N];
    ggml_backend_tensor_get(t, out, 0, sizeof(out));
    int bad = check("tensor set asynchronously, then synchronized", out[N - 1], 1.0f);
    ggml_backend_buffer_free(buf);
    ggml_backend_buffer_free(hb);
    ggml_free(ctx);
    return bad;
}

static int test_same(ggml_backend_t be)
{
    struct ggml_init_params p = { ggml_tensor_overhead() * 8 + 2 * ggml_graph_overhead(), NULL, true };
    struct ggml_context *ctx = ggml_init(p);
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, WIDTH);
    struct ggml_tensor *b = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, WIDTH);
    struct ggml_tensor *out = ggml_add(ctx, a, b);
    struct ggml_cgraph *g1 = ggml_new_graph(ctx), *g2 = ggml_new_graph(ctx);
    ggml_build_forward_expand(g1, out);
    ggml_build_forward_expand(g2, out);
    g1->uid = 301;
    g2->uid = 302;
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be);
    if (!buf) {
        fprintf(stderr, "async-order: allocation failed\n");
        return 1;
    }
    float va[WIDTH], vb[WIDTH], r[WIDTH];
    int bad = 0;
    for (int round = 1; round <= 2; round++) {
        for (int j = 0; j < WIDTH; j++) {
            va[j] = (float)(10 * round);
            vb[j] = (float)round;
        }
        ggml_backend_tensor_set(a, va, 0, sizeof(va));
        ggml_backend_tensor_set(b, vb, 0, sizeof(vb));
        bad |= ggml_backend_graph_compute(be, round == 1 ? g1 : g2) != GGML_STATUS_SUCCESS;
        ggml_backend_tensor_get(out, r, 0, sizeof(r));
        bad |= check(round == 1 ? "first graph" : "second graph, same image", r[WIDTH - 1], (float)(11 * round));
    }
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    return bad;
}

static int test_init(ggml_backend_t be)
{
    enum { N = 64, ELEMS = 16 };
    struct ggml_init_params p = { ggml_tensor_overhead() * N, NULL, true };
    struct ggml_context *ctx = ggml_init(p);
    struct ggml_tensor *t[N];
    for (int i = 0; i < N; i++)
        t[i] = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, ELEMS);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be); /* N init_tensor calls */
    if (!buf) {
        fprintf(stderr, "async-order: allocation failed\n");
        return 1;
    }
    /* The last init is still deferred when this set is: it must not overwrite the set. */
    int32_t v[ELEMS];
    for (int j = 0; j < ELEMS; j++)
        v[j] = 7;
    ggml_backend_tensor_set(t[N - 1], v, 0, sizeof(v));
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int32_t out[ELEMS];
        ggml_backend_tensor_get(t[i], out, 0, sizeof(out));
        int32_t want = i == N - 1 ? 7 : 0x5a5a5a5a;
        if (out[0] != want || out[ELEMS - 1] != want) {
            fprintf(stderr, "async-order: tensor %d holds 0x%x, expected 0x%x\n", i, (unsigned)out[0], (unsigned)want);
            bad = 1;
        }
    }
    printf("%d tensors initialised%s\n", N, bad ? ": WRONG" : ", the last one then set");
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 3 ||
        (strcmp(argv[2], "resend") && strcmp(argv[2], "sync") && strcmp(argv[2], "same") && strcmp(argv[2], "init"))) {
        fprintf(stderr, "usage: async-order LLAMA_BIN_DIR resend|sync|same|init\n");
        return 2;
    }
    ggml_backend_load_all_from_path(argv[1]);
    ggml_backend_dev_t dev = ggml_backend_dev_by_name("VirtGPU0");
    if (!dev) {
        fprintf(stderr, "async-order: no VirtGPU0 device\n");
        return 1;
    }
    ggml_backend_t be = ggml_backend_dev_init(dev, NULL);
    if (!be) {
        fprintf(stderr, "async-order: VirtGPU0 did not start\n");
        return 1;
    }
    int bad = strcmp(argv[2], "resend") == 0 ? test_resend(be)
              : strcmp(argv[2], "sync") == 0 ? test_sync(be, dev)
              : strcmp(argv[2], "same") == 0 ? test_same(be)
                                             : test_init(be);
    ggml_backend_free(be);
    return bad ? 1 : 0;
}
