/*
 * weights-update: a matrix product on VirtGPU0 with the matrix in a buffer marked as weights
 * (GGML_BACKEND_BUFFER_USAGE_WEIGHTS, as llama.cpp marks its model), then the matrix rewritten
 * through the ggml API and the same graph computed again. A CPU host computes such products on
 * a repacked copy (host/cpu-repack.h); the second result must follow the new bytes, whether the
 * buffer is zero-copy (the guest sends the write to the host once a graph used the matrix) or
 * host-allocated. Each update goes another way: set_tensor, memset_tensor, buffer clear.
 *
 * Values make every result exact in float (see tests/unit/test-host-repack.c): Q4_0 weights
 * are integers in [-8, 7] with scale 1, activations integers with 127 in every 32-block.
 *
 * Usage: weights-update LLAMA_BIN_DIR. Exit 0 when every result is right, 1 otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

enum { K = 256, M = 16, QB = 18 };

static int w_val(int seed, int m, int k)
{
    return seed < 0 ? 0 : (m * 5 + k * 3 + seed * 7) % 16 - 8;
}

static int x_val(int k)
{
    return k % 32 == 0 ? 127 : (k * 17) % 255 - 127;
}

/* Q4_0 blocks of matrix `seed` (scale 1.0, nibble = value + 8). */
static void q4_matrix(int seed, uint8_t *out)
{
    for (int m = 0; m < M; m++) {
        for (int b = 0; b < K / 32; b++) {
            uint8_t *blk = out + ((size_t)m * (K / 32) + b) * QB;
            blk[0] = 0x00;
            blk[1] = 0x3C;
            for (int j = 0; j < 16; j++)
                blk[2 + j] = (uint8_t)((w_val(seed, m, b * 32 + j) + 8) | (w_val(seed, m, b * 32 + j + 16) + 8) << 4);
        }
    }
}

/* y against the exact products of matrix `seed` (-1: all zero); 0 when right. */
static int check(const char *what, const struct ggml_tensor *y, int seed)
{
    float v[M];
    ggml_backend_tensor_get(y, v, 0, sizeof(v));
    for (int m = 0; m < M; m++) {
        long s = 0;
        for (int k = 0; k < K; k++)
            s += (long)w_val(seed, m, k) * x_val(k);
        if (v[m] != (float)s) {
            printf("%s: y[%d] = %g, expected %ld\n", what, m, (double)v[m], s);
            return 1;
        }
    }
    printf("%s: exact\n", what);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: weights-update LLAMA_BIN_DIR\n");
        return 2;
    }
    ggml_backend_load_all_from_path(argv[1]);
    ggml_backend_dev_t dev = ggml_backend_dev_by_name("VirtGPU0");
    ggml_backend_t be = dev ? ggml_backend_dev_init(dev, NULL) : NULL;
    if (!be) {
        fprintf(stderr, "no VirtGPU0 backend\n");
        return 1;
    }

    struct ggml_init_params p = { 8 * ggml_tensor_overhead() + ggml_graph_overhead(), NULL, true };
    struct ggml_context *wctx = ggml_init(p), *actx = ggml_init(p);
    struct ggml_tensor *w = ggml_new_tensor_2d(wctx, GGML_TYPE_Q4_0, K, M);
    struct ggml_tensor *x = ggml_new_tensor_2d(actx, GGML_TYPE_F32, K, 1);
    struct ggml_tensor *y = ggml_mul_mat(actx, w, x);
    struct ggml_cgraph *gf = ggml_new_graph(actx);
    ggml_build_forward_expand(gf, y);
    ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors(wctx, be);
    ggml_backend_buffer_t abuf = ggml_backend_alloc_ctx_tensors(actx, be);
    if (!wbuf || !abuf) {
        fprintf(stderr, "allocation failed\n");
        return 1;
    }
    ggml_backend_buffer_set_usage(wbuf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);

    static uint8_t q[M * (K / 32) * QB];
    float xv[K];
    for (int k = 0; k < K; k++)
        xv[k] = (float)x_val(k);
    ggml_backend_tensor_set(x, xv, 0, sizeof(xv));
    q4_matrix(1, q);
    ggml_backend_tensor_set(w, q, 0, sizeof(q));

    int bad = 0;
    bad |= ggml_backend_graph_compute(be, gf) != GGML_STATUS_SUCCESS || check("first", y, 1);
    q4_matrix(2, q);
    ggml_backend_tensor_set(w, q, 0, sizeof(q));
    bad |= ggml_backend_graph_compute(be, gf) != GGML_STATUS_SUCCESS || check("after set_tensor", y, 2);
    /* Nibbles 8 with scale 0: every weight 0. */
    ggml_backend_tensor_memset(w, 0x88, 0, ggml_nbytes(w));
    bad |= ggml_backend_graph_compute(be, gf) != GGML_STATUS_SUCCESS || check("after memset_tensor", y, -1);
    q4_matrix(3, q);
    ggml_backend_tensor_set(w, q, 0, sizeof(q));
    bad |= ggml_backend_graph_compute(be, gf) != GGML_STATUS_SUCCESS || check("after set_tensor", y, 3);
    ggml_backend_buffer_clear(wbuf, 0);
    bad |= ggml_backend_graph_compute(be, gf) != GGML_STATUS_SUCCESS || check("after buffer clear", y, -1);

    ggml_backend_buffer_free(abuf);
    ggml_backend_buffer_free(wbuf);
    ggml_free(actx);
    ggml_free(wctx);
    ggml_backend_free(be);
    return bad ? 1 : 0;
}
