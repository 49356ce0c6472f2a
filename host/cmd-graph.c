/*
 * Graph commands: baseline BACKEND_GRAPH_COMPUTE, EXT_GRAPH_COMPUTE (with the uid cache) and
 * EXT_GRAPH_OPTIMIZE.
 */
#include "context.h"
#include "dispatch.h"
#include "ext.h"
#include "graph.h"
#include "wire.h"

uint32_t vgpu_cmd_graph_compute(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    uint32_t res_id = vgpu_dec_u32(dec);
    uint64_t size = vgpu_dec_u64(dec);
    VGPU_DEC_CHECK(dec);
    if (size == 0)
        return vgpu_fail(ctx, VGPU_INVALID, "empty graph");
    uint8_t *src;
    uint32_t r = vgpu_res_range(ctx, res_id, 0, size, &src);
    if (r != VGPU_OK)
        return r;
    const uint8_t *img;
    uint64_t t0 = vgpu_prof_now(&ctx->prof);
    if ((r = vgpu_graph_load(ctx, src, size, &img)) != VGPU_OK)
        return r;
    vgpu_prof_phase(&ctx->prof, VGPU_PROF_IMG_LOAD, t0);
    struct vgpu_graph *g = ctx->scratch_graph;
    t0 = vgpu_prof_now(&ctx->prof);
    if ((r = vgpu_graph_build(ctx, g, 0, img, size, VGPU_GRAPH_FORMAT_BASELINE, VGPU_GRAPH_FOR_COMPUTE)) != VGPU_OK)
        return r;
    vgpu_prof_phase(&ctx->prof, VGPU_PROF_BUILD, t0);
    vgpu_prof_count(&ctx->prof, VGPU_PROF_GRAPH_NEW);
    enum ggml_status status;
    if ((r = vgpu_graph_compute(ctx, g, &status)) != VGPU_OK)
        return r;
    vgpu_enc_i32(enc, (int32_t)status);
    return VGPU_OK;
}

/* Reads a graph request and, for size > 0, copies its image into private memory. */
static uint32_t graph_source(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_graph_request *q,
                             const uint8_t **img)
{
    vgpu_dec_graph_request(dec, q);
    const uint8_t *inl = NULL;
    size_t inl_len = 0;
    if (q->res_id == 0 && q->size > 0)
        inl = vgpu_dec_blob(dec, vgpu_dec_left(dec), &inl_len);
    VGPU_DEC_CHECK(dec);
    if (q->flags != 0)
        return vgpu_fail(ctx, VGPU_INVALID, "unknown graph flags 0x%x", q->flags);
    if (q->dev >= ctx->n_devices)
        return vgpu_fail(ctx, VGPU_INVALID, "device %u does not exist", q->dev);
    *img = NULL;
    if (q->size == 0)
        return VGPU_OK;
    const uint8_t *src;
    if (q->res_id) {
        uint8_t *p;
        uint32_t r = vgpu_res_range(ctx, q->res_id, q->res_offset, q->size, &p);
        if (r != VGPU_OK)
            return r;
        src = p;
    } else {
        if (inl_len != q->size)
            return vgpu_fail(ctx, VGPU_INVALID, "inline graph of %zu bytes, size says %llu", inl_len,
                             (unsigned long long)q->size);
        src = inl;
    }
    uint64_t t0 = vgpu_prof_now(&ctx->prof);
    uint32_t r = vgpu_graph_load(ctx, src, q->size, img);
    vgpu_prof_phase(&ctx->prof, VGPU_PROF_IMG_LOAD, t0);
    return r;
}

uint32_t vgpu_cmd_ext_graph_compute(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    struct vgpu_graph_request q;
    const uint8_t *img;
    uint32_t r = graph_source(ctx, dec, &q, &img);
    if (r != VGPU_OK)
        return r;

    struct vgpu_graph *g;
    if (q.size == 0) {
        if (q.uid == 0)
            return vgpu_fail(ctx, VGPU_INVALID, "recompute without a uid");
        uint64_t t0 = vgpu_prof_now(&ctx->prof);
        g = vgpu_graph_cache_find(ctx, q.dev, q.uid);
        vgpu_prof_phase(&ctx->prof, VGPU_PROF_CACHE_LOOKUP, t0);
        vgpu_prof_count(&ctx->prof, g ? VGPU_PROF_CACHE_HIT : VGPU_PROF_CACHE_MISS);
        if (!g) {
            vgpu_log(ctx, VGPU_LOG_DEBUG, "graph uid %llu is not cached", (unsigned long long)q.uid);
            vgpu_enc_u32(enc, VGPU_GRAPH_NOT_CACHED);
            vgpu_enc_i32(enc, 0);
            return VGPU_OK;
        }
    } else {
        g = ctx->scratch_graph;
        uint64_t t0 = vgpu_prof_now(&ctx->prof);
        if ((r = vgpu_graph_build(ctx, g, q.dev, img, q.size, VGPU_GRAPH_FORMAT_EXT, VGPU_GRAPH_FOR_COMPUTE)) !=
            VGPU_OK)
            return r;
        vgpu_prof_phase(&ctx->prof, VGPU_PROF_BUILD, t0);
        vgpu_prof_count(&ctx->prof, VGPU_PROF_GRAPH_NEW);
        if (q.uid) {
            t0 = vgpu_prof_now(&ctx->prof);
            vgpu_graph_cache_put(ctx, q.dev, q.uid);
            g = vgpu_graph_cache_find(ctx, q.dev, q.uid);
            if (!g) /* could not be cached: compute it from the scratch graph */
                g = ctx->scratch_graph;
            vgpu_prof_phase(&ctx->prof, VGPU_PROF_CACHE_PUT, t0);
        }
    }
    enum ggml_status status;
    if ((r = vgpu_graph_compute(ctx, g, &status)) != VGPU_OK)
        return r;
    vgpu_enc_u32(enc, VGPU_GRAPH_COMPUTED);
    vgpu_enc_i32(enc, (int32_t)status);
    return VGPU_OK;
}

uint32_t vgpu_cmd_ext_graph_optimize(struct vgpu_ctx *ctx, struct vgpu_dec *dec, struct vgpu_enc *enc)
{
    struct vgpu_graph_request q;
    const uint8_t *img;
    uint32_t r = graph_source(ctx, dec, &q, &img);
    if (r != VGPU_OK)
        return r;
    if (q.size == 0)
        return vgpu_fail(ctx, VGPU_INVALID, "graph_optimize needs a graph image");
    struct vgpu_graph *g = ctx->scratch_graph;
    uint64_t t0 = vgpu_prof_now(&ctx->prof);
    if ((r = vgpu_graph_build(ctx, g, q.dev, img, q.size, VGPU_GRAPH_FORMAT_EXT, VGPU_GRAPH_FOR_OPTIMIZE)) !=
        VGPU_OK)
        return r;
    vgpu_prof_phase(&ctx->prof, VGPU_PROF_OPT_BUILD, t0);
    vgpu_prof_count(&ctx->prof, VGPU_PROF_GRAPH_OPT);
    t0 = vgpu_prof_now(&ctx->prof);
    r = vgpu_graph_optimize(ctx, g, enc);
    vgpu_prof_phase(&ctx->prof, VGPU_PROF_OPT_BACKEND, t0);
    return r;
}
