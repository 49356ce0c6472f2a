/*
 * Fuzz target: graph images (extension "VGG1" and baseline rpc form) through the host's
 * private copy, decoder, tensor validation, graph builder and per-op validator
 * (vgpu_graph_load, vgpu_graph_build, vgpu_validate_op), and the EXT_GRAPH_OPTIMIZE encoder.
 *
 * Input: u8 flags, then the image.
 *   flags bit 0  baseline rpc form (else extension)
 *         bit 1  built for EXT_GRAPH_OPTIMIZE (buffers optional), then optimised and the reply
 *                checked; else built for compute (buffers, supports_op, supports_buft)
 * Id markers (fuzz.h) in the image name the device's buffer type (entry 0) and four buffers:
 * 1 zero-copy 64 MiB, 2 zero-copy 64 MiB (resources), 3 host 16 MiB, 4 host 4 KiB. Large enough
 * for the graphs of the tiny test model recorded into the seed corpus.
 *
 * No graph is computed here (fuzz-dispatch computes, on fresh buffers per input): this target
 * stays a pure function of its input and fast on large recorded graphs. Properties of every
 * graph that builds: each node passes vgpu_validate_op again; each tensor with a buffer lies
 * inside it by ggml's own ggml_nbytes (an independent oracle for the host's extent); a view
 * shares its source's buffer at view_offs; sources and view sources point into the graph's
 * tensor array (but index operands, which the index guard may point at private shadow copies);
 * the cgraph holds exactly the node list; an optimised order is a permutation.
 */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "context.h"
#include "fuzz.h"
#include "ggml-impl.h"
#include "graph.h"
#include "validate-op.h"

#define CTX_ID 9u

static struct vgpu_ctx *g_ctx;
static struct fz_ids    g_ids;

/* Allocates one buffer of the set-up; aborts on failure (the target would be useless). */
static void add_buffer(uint64_t size, uint32_t res_id)
{
    struct vgpu_buffer *b = NULL;
    uint32_t r;
    if (res_id) {
        uint8_t *p;
        uint64_t rs;
        r = vgpu_res_get(g_ctx, res_id, &p, &rs);
        FZ_CHECK(r == VGPU_OK, "resource %u", res_id);
        r = vgpu_ctx_buffer_alloc(g_ctx, 0, size, res_id, p, rs, size, &b);
    } else {
        r = vgpu_ctx_buffer_alloc(g_ctx, 0, size, 0, NULL, 0, 0, &b);
    }
    FZ_CHECK(r == VGPU_OK, "set-up buffer of %llu bytes: %u", (unsigned long long)size, r);
    fz_ids_add(&g_ids, b->id);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *level = fz_process_setup();
    struct fz_runtime *rt = fz_rt();
    fz_runtime_init(rt, CTX_ID);
    fz_res_add(rt, 64u << 20);
    fz_res_add(rt, 64u << 20);
    fz_config(rt, VGPU_CFG_LIBRARY_PATH, fz_backend_path());
    fz_config(rt, VGPU_CFG_LOG_LEVEL, level);
    fz_config_u64(rt, VGPU_CFG_QUOTA_NODES, 8192);
    uint32_t r = vgpu_ctx_create(CTX_ID, fz_callbacks(rt, true), &g_ctx);
    FZ_CHECK(r == 0, "context creation failed with %u (backend %s)", r, fz_backend_path());
    fz_ids_add(&g_ids, g_ctx->devices[0].buft_id);
    add_buffer(64u << 20, 1);
    add_buffer(64u << 20, 2);
    add_buffer(16u << 20, 0);
    add_buffer(4096, 0);
    return 0;
}

/* The buffer whose ggml buffer is `buf`, or NULL. */
static const struct vgpu_buffer *buffer_of(ggml_backend_buffer_t buf)
{
    for (uint32_t i = 1; i < g_ids.n; i++) {
        struct vgpu_buffer *b;
        if (vgpu_objects_get(&g_ctx->objects, g_ids.v[i], VGPU_OBJ_BUFFER, (void **)&b) == VGPU_OBJ_FOUND &&
            b->buf == buf)
            return b;
    }
    return NULL;
}

/* True if p is one of the graph's tensors. */
static bool in_graph(const struct vgpu_graph *g, const struct ggml_tensor *p)
{
    return p >= g->tensors && p < g->tensors + g->n_tensors;
}

/*
 * The source slot of an op that holds index data (host/index-guard.h), or -1: the index guard
 * may redirect that one source to a private shadow copy outside the graph's tensors.
 */
static int index_slot(enum ggml_op op)
{
    switch (op) {
    case GGML_OP_GET_ROWS:
    case GGML_OP_GET_ROWS_BACK:
    case GGML_OP_SET_ROWS:
        return 1;
    case GGML_OP_MUL_MAT_ID:
    case GGML_OP_ADD_ID:
        return 2;
    case GGML_OP_SSM_SCAN:
        return 6;
    default:
        return -1;
    }
}

/* Checks one tensor of a built graph against ggml's own view of its bytes. */
static void check_tensor(const struct vgpu_graph *g, const struct ggml_tensor *t)
{
    for (int s = 0; s < GGML_MAX_SRC; s++)
        FZ_CHECK(!t->src[s] || in_graph(g, t->src[s]) || s == index_slot(t->op),
                 "src[%d] of %s outside the graph", s, ggml_op_name(t->op));
    FZ_CHECK(!t->view_src || (in_graph(g, t->view_src) && t->view_src < t), "view_src not an earlier tensor");
    if (!t->buffer) {
        FZ_CHECK(t->data == NULL, "data without a buffer");
        return;
    }
    const struct vgpu_buffer *b = buffer_of(t->buffer);
    FZ_CHECK(b != NULL, "tensor in a buffer the context does not own");
    const uint8_t *d = t->data;
    size_t nbytes = ggml_nbytes(t);
    FZ_CHECK(d >= b->base && (uint64_t)(d - b->base) <= b->size && nbytes <= b->size - (uint64_t)(d - b->base),
             "tensor '%s' [+%zu bytes] leaves its buffer of %llu bytes", t->name, nbytes,
             (unsigned long long)b->size);
    if (t->view_src) {
        FZ_CHECK(t->view_src->buffer == t->buffer, "view in another buffer");
        FZ_CHECK((const uint8_t *)t->view_src->data + t->view_offs == d, "view data != source data + view_offs");
    }
}

static void check_graph(const struct vgpu_graph *g)
{
    FZ_CHECK(g->valid && g->cgraph, "built graph is not valid");
    FZ_CHECK(g->cgraph->n_nodes == (int)g->n_nodes && g->n_nodes <= g->n_tensors, "node count");
    FZ_CHECK(g->n_nodes <= g_ctx->quota.graph_nodes && g->n_tensors <= g_ctx->quota.graph_tensors, "quota");
    for (uint32_t i = 0; i < g->n_tensors; i++)
        check_tensor(g, &g->tensors[i]);
    char why[256];
    for (uint32_t p = 0; p < g->n_nodes; p++) {
        const struct ggml_tensor *t = g->cgraph->nodes[p];
        FZ_CHECK(in_graph(g, t), "node %u outside the graph", p);
        FZ_CHECK(vgpu_validate_op(t, why, sizeof(why)), "node %u no longer validates: %s", p, why);
    }
}

/* Optimises (the reply: u32 n, n positions, u32 n_deps, pairs) and checks the reply. */
static void optimize(struct vgpu_graph *g)
{
    uint32_t n_nodes = g->n_nodes, n_tensors = g->n_tensors;
    size_t cap = 8 + 4 * (size_t)n_nodes + 8 * (4 * (size_t)n_tensors + 64);
    uint8_t *buf = malloc(cap);
    FZ_CHECK(buf, "out of memory");
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, buf, cap);
    if (vgpu_graph_optimize(g_ctx, g, &enc) == VGPU_OK) {
        FZ_CHECK(vgpu_enc_ok(&enc), "optimize reply did not fit");
        struct vgpu_dec d;
        vgpu_dec_init(&d, buf, vgpu_enc_used(&enc));
        FZ_CHECK(vgpu_dec_u32(&d) == n_nodes, "optimize: node count");
        uint8_t *seen = calloc(n_nodes ? n_nodes : 1, 1);
        FZ_CHECK(seen, "out of memory");
        for (uint32_t i = 0; i < n_nodes; i++) {
            uint32_t pos = vgpu_dec_u32(&d);
            FZ_CHECK(pos < n_nodes && !seen[pos], "optimize: order is not a permutation");
            seen[pos] = 1;
        }
        free(seen);
        uint32_t n_deps = vgpu_dec_u32(&d);
        for (uint32_t i = 0; i < 2 * n_deps; i++)
            FZ_CHECK(vgpu_dec_u32(&d) < n_tensors, "optimize: dependency outside the tensors");
        FZ_CHECK(vgpu_dec_ok(&d) && vgpu_dec_left(&d) == 0, "optimize: reply length");
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    size_t n = size - 1;
    uint8_t *img_in = malloc(n ? n : 1);
    FZ_CHECK(img_in, "out of memory");
    memcpy(img_in, data + 1, n);
    fz_ids_patch(&g_ids, img_in, n);

    /* A wrong-type id makes the context fatal; the dispatcher would refuse from then on. */
    g_ctx->fatal = false;
    enum vgpu_graph_format fmt = (flags & 1) ? VGPU_GRAPH_FORMAT_BASELINE : VGPU_GRAPH_FORMAT_EXT;
    enum vgpu_graph_purpose purpose = (flags & 2) ? VGPU_GRAPH_FOR_OPTIMIZE : VGPU_GRAPH_FOR_COMPUTE;
    struct vgpu_graph *g = g_ctx->scratch_graph;
    const uint8_t *img;
    if (n > 0 && vgpu_graph_load(g_ctx, img_in, n, &img) == VGPU_OK) {
        FZ_CHECK(img != img_in && memcmp(img, img_in, n) == 0, "graph_load did not copy");
        if (vgpu_graph_build(g_ctx, g, 0, img, n, fmt, purpose) == VGPU_OK) {
            check_graph(g);
            if (purpose == VGPU_GRAPH_FOR_OPTIMIZE)
                optimize(g);
        } else {
            FZ_CHECK(!g->valid, "a failed build left a valid graph");
        }
    }
    vgpu_graph_reset(g);
    free(img_in);
    return 0;
}
