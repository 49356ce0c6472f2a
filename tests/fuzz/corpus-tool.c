/*
 * Turns host traces of real runs (host/trace.h: PREFIX.<pid>.<ctx>.requests and .replies, as
 * GGML_VIRTGPU_TRACE records them) into seed inputs for the fuzz targets. Used by
 * make-corpus.sh; the seeds then go through libFuzzer's -merge=1, which keeps the ones that
 * add coverage.
 *
 * Usage: fuzz-corpus-tool codec|dispatch|graph OUTDIR TRACE...
 *   TRACE is a trace path without its .requests / .replies suffix.
 *
 * dispatch: each trace is cut into segments that start with no buffer alive (so that a segment
 *   allocates every buffer it uses; a segment longer than SEG_MAX bytes is cut anyway), and
 *   written as fuzz-dispatch inputs: flags 0, then {u16 cmd, u16 len, request}. Object ids are
 *   replaced by markers exactly as the fuzz runtime will number them: the buffer type is entry
 *   0, the target's four pre-allocated buffers 1..4, then every new id in the segment's
 *   successful replies in order. A segment with extension graph images inline is also written
 *   a second time with each EXT_GRAPH_COMPUTE replaced by the same graph in baseline form:
 *   FILL records into resource 3, then BACKEND_GRAPH_COMPUTE on it (baseline traces carry no
 *   images: upstream guests put them in shared memory, which traces do not record).
 * graph: every inline extension graph image, as fuzz-graph inputs in both forms (flags 0 and
 *   1) and for optimisation (flags 2); buffer ids become markers 1..4 by order of first use,
 *   where a buffer whose tensors need more than the target's smaller buffers gets 1 or 2.
 * codec: the messages of every kind fuzz-codec decodes, cut out of requests and replies.
 *
 * EXT_BATCH: a guest on an extension-2 host sends most commands as entries of EXT_BATCH
 * requests (always when zero-copy is off: GGML_VIRTGPU_NO_ZERO_COPY=1, which also registers its
 * host buffers with EXT_HOST_BUFFER_REGISTER inside batches). Dispatch seeds keep the batches
 * as they are (the dispatcher serves them; buffers allocated or registered by their entries
 * count for the segment cuts); graph and codec seeds are also taken from the entries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apir.h"
#include "ext.h"
#include "fuzz.h"
#include "ggml.h"
#include "wire.h"

#define SEG_MAX       (24u << 10) /* bytes of a dispatch seed */
#define PREALLOC_IDS  5u          /* buffer type + four buffers (fuzz-dispatch.c) */
#define FILL_CHUNK    60000u
#define FUZZ_RES3     3u          /* fuzz-dispatch's 1 MiB resource */
#define PER_KIND_MAX  40u         /* codec seeds per kind and trace */

struct rec {
    uint32_t cmd;
    uint32_t code; /* reply code */
    uint8_t *req;
    uint32_t req_len;
    uint8_t *rep;
    uint32_t rep_len;
};

struct trace {
    struct rec *r;
    size_t      n;
    uint8_t    *requests; /* the files' bytes, which the records point into */
    uint8_t    *replies;
};

/* ---- output ---------------------------------------------------------------------------------- */

struct buf {
    uint8_t *p;
    size_t   n, cap;
};

static void buf_put(struct buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        FZ_CHECK(b->p, "out of memory");
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void buf_u8(struct buf *b, uint8_t v) { buf_put(b, &v, 1); }
static void buf_u16(struct buf *b, uint16_t v) { buf_put(b, &v, 2); }

static const char *g_out;
static unsigned    g_written;

/* Writes one seed named by its content's FNV-1a hash (duplicates collapse). */
static void write_seed(const char *tag, const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s-%016llx", g_out, tag, (unsigned long long)h);
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f, "cannot write %s: %s", path, strerror(errno));
    FZ_CHECK(fwrite(p, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
    g_written++;
}

/* ---- reading traces --------------------------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    FZ_CHECK(f, "cannot open %s: %s", path, strerror(errno));
    struct buf b = { 0 };
    uint8_t chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_put(&b, chunk, got);
    fclose(f);
    *n = b.n;
    return b.p;
}

/* Loads a trace: requests and replies are recorded one for one, in the same order. */
static void load_trace(const char *base, struct trace *t)
{
    char path[4096];
    size_t nq, np;
    snprintf(path, sizeof(path), "%s.requests", base);
    uint8_t *q = slurp(path, &nq);
    snprintf(path, sizeof(path), "%s.replies", base);
    uint8_t *p = slurp(path, &np);
    memset(t, 0, sizeof(*t));
    t->requests = q;
    t->replies = p;
    size_t cap = 0, oq = 0, op = 0;
    while (oq + 8 <= nq && op + 12 <= np) {
        struct rec r;
        r.cmd = fz_get32(q + oq);
        r.req_len = fz_get32(q + oq + 4);
        r.code = fz_get32(p + op + 4);
        r.rep_len = fz_get32(p + op + 8);
        if (oq + 8 + (size_t)r.req_len > nq || op + 12 + (size_t)r.rep_len > np || fz_get32(p + op) != r.cmd)
            break;
        r.req = q + oq + 8;
        r.rep = p + op + 12;
        oq += 8 + (size_t)r.req_len;
        op += 12 + (size_t)r.rep_len;
        if (t->n == cap) {
            cap = cap ? 2 * cap : 1024;
            t->r = realloc(t->r, cap * sizeof(*t->r));
            FZ_CHECK(t->r, "out of memory");
        }
        t->r[t->n++] = r;
    }
}

/* ---- batch entries ---------------------------------------------------------------------------------- */

/*
 * The entries of EXT_BATCH record r as records of their own (pointing into r's bytes), with the
 * codes and replies of the entries that ran (code VGPU_SKIPPED and no reply for the others).
 * Returns how many (at most cap); 0 for any other command or a malformed batch.
 */
static size_t batch_entries(const struct rec *r, struct rec *out, size_t cap)
{
    if (r->cmd != VGPU_CMD_EXT_BATCH || r->req_len < VGPU_BATCH_HEADER_SIZE)
        return 0;
    uint32_t n = fz_get32(r->req);
    size_t off = VGPU_BATCH_HEADER_SIZE, n_out = 0;
    size_t rep_off = VGPU_BATCH_HEADER_SIZE;
    uint32_t n_run = r->code == VGPU_OK && r->rep_len >= 8 ? fz_get32(r->rep) : 0;
    for (uint32_t i = 0; i < n && n_out < cap; i++) {
        if (off + VGPU_BATCH_ENTRY_HEADER > r->req_len)
            return 0;
        uint32_t size = fz_get32(r->req + off + 4);
        if (size > r->req_len - off - VGPU_BATCH_ENTRY_HEADER)
            return 0;
        struct rec e = { fz_get32(r->req + off), VGPU_SKIPPED, r->req + off + VGPU_BATCH_ENTRY_HEADER, size, NULL, 0 };
        off += VGPU_BATCH_ENTRY_HEADER + size;
        if (i < n_run && rep_off + 8 <= r->rep_len) {
            uint32_t rsize = fz_get32(r->rep + rep_off + 4);
            if (rsize <= r->rep_len - rep_off - 8) {
                e.code = fz_get32(r->rep + rep_off);
                e.rep = r->rep + rep_off + 8;
                e.rep_len = rsize;
            }
            rep_off += 8 + (((size_t)rsize + 3) & ~(size_t)3);
        }
        out[n_out++] = e;
    }
    return n_out;
}

/* Calls fn on every record of t and, for an EXT_BATCH, on each of its entries too. */
static void each_command(const struct trace *t, void (*fn)(const struct rec *r, void *arg), void *arg)
{
    static struct rec entries[VGPU_BATCH_MAX_ENTRIES];
    for (size_t i = 0; i < t->n; i++) {
        fn(&t->r[i], arg);
        size_t n = batch_entries(&t->r[i], entries, VGPU_BATCH_MAX_ENTRIES);
        for (size_t k = 0; k < n; k++)
            fn(&entries[k], arg);
    }
}

/* ---- id markers --------------------------------------------------------------------------------- */

struct idmap {
    uint64_t trace_id[FZ_MAX_IDS];
    uint32_t index[FZ_MAX_IDS];
    uint32_t n;
    uint32_t next; /* next runtime table index */
};

static void idmap_reset(struct idmap *m)
{
    memset(m, 0, sizeof(*m));
    m->next = PREALLOC_IDS;
}

static int idmap_find(const struct idmap *m, uint64_t id)
{
    for (uint32_t i = 0; i < m->n; i++) {
        if (m->trace_id[i] == id)
            return (int)m->index[i];
    }
    return -1;
}

/* Mirrors fz_ids_learn: every new id-like value of a successful reply gets the next entry. */
static void idmap_learn(struct idmap *m, const uint8_t *rep, size_t len)
{
    for (size_t off = 0; off + 8 <= len; off += 4) {
        uint64_t v = fz_get64(rep + off);
        if (!fz_looks_like_id(v) || idmap_find(m, v) >= 0 || m->n == FZ_MAX_IDS)
            continue;
        m->trace_id[m->n] = v;
        /* The device's buffer type is entry 0 of the runtime table. */
        m->index[m->n] = (v >> 56) == 0x54 ? 0 : m->next++;
        m->n++;
    }
}

/* Replaces every known id at a 4-byte step by its marker (what fz_ids_patch undoes). */
static void idmap_patch(const struct idmap *m, uint8_t *p, size_t len)
{
    for (size_t off = 0; off + 8 <= len; off += 4) {
        int idx = idmap_find(m, fz_get64(p + off));
        if (idx >= 0) {
            fz_put64(p + off, FZ_ID_MARKER | (uint64_t)idx);
            off += 4;
        }
    }
}

/* ---- graph images ---------------------------------------------------------------------------------- */

/* The inline image of an EXT_GRAPH_COMPUTE / EXT_GRAPH_OPTIMIZE request, or NULL. */
static const uint8_t *inline_image(const struct rec *r, size_t *size)
{
    if (r->cmd != VGPU_CMD_EXT_GRAPH_COMPUTE && r->cmd != VGPU_CMD_EXT_GRAPH_OPTIMIZE)
        return NULL;
    struct vgpu_dec d;
    vgpu_dec_init(&d, r->req, r->req_len);
    struct vgpu_graph_request g;
    if (!vgpu_dec_graph_request(&d, &g) || g.res_id != 0 || g.size == 0)
        return NULL;
    return vgpu_dec_blob(&d, vgpu_dec_left(&d), size);
}

/* Converts an extension image to the baseline form; false if a value does not fit. */
static bool to_baseline(const uint8_t *img, size_t size, struct buf *out)
{
    struct vgpu_dec d;
    vgpu_dec_init(&d, img, size);
    uint32_t magic = vgpu_dec_u32(&d), n_t = vgpu_dec_u32(&d), n_n = vgpu_dec_u32(&d);
    (void)vgpu_dec_u32(&d);
    if (!vgpu_dec_ok(&d) || magic != VGPU_GRAPH_MAGIC || vgpu_graph_image_size(n_t, n_n) != size)
        return false;
    const uint8_t *nodes = img + 16 + (size_t)n_t * VGPU_WIRE_TENSOR_SIZE;
    uint32_t v32 = n_n;
    buf_put(out, &v32, 4);
    for (uint32_t i = 0; i < n_n; i++) {
        uint64_t id = (uint64_t)fz_get32(nodes + 4 * i) + 1;
        buf_put(out, &id, 8);
    }
    v32 = n_t;
    buf_put(out, &v32, 4);
    for (uint32_t i = 0; i < n_t; i++) {
        struct vgpu_wire_tensor w;
        vgpu_dec_wire_tensor(&d, &w);
        struct vgpu_rpc_tensor r;
        memset(&r, 0, sizeof(r));
        r.id = i + 1;
        r.type = w.type;
        r.buffer = w.buffer;
        for (int k = 0; k < VGPU_MAX_DIMS; k++) {
            if (w.ne[k] < 0 || w.ne[k] > UINT32_MAX || w.nb[k] > UINT32_MAX)
                return false;
            r.ne[k] = (uint32_t)w.ne[k];
            r.nb[k] = (uint32_t)w.nb[k];
        }
        r.op = w.op;
        memcpy(r.op_params, w.op_params, sizeof(r.op_params));
        r.flags = w.flags;
        for (int k = 0; k < VGPU_MAX_SRC; k++)
            r.src[k] = w.src[k]; /* 1 + index is the baseline id i + 1 */
        r.view_src = w.view_src;
        r.view_offs = w.view_offs;
        r.data = w.data;
        memcpy(r.name, w.name, sizeof(r.name));
        uint8_t b[VGPU_RPC_TENSOR_SIZE];
        vgpu_rpc_tensor_pack(&r, b);
        buf_put(out, b, sizeof(b));
    }
    return true;
}

/* Byte extent of a wire tensor (0 if its type is unusable): enough for buffer sizing. */
static uint64_t wire_extent(const struct vgpu_wire_tensor *w)
{
    if (w->type >= GGML_TYPE_COUNT || ggml_type_size(w->type) == 0 || ggml_blck_size(w->type) <= 0)
        return 0;
    uint64_t ext = ggml_type_size(w->type);
    for (int k = 0; k < VGPU_MAX_DIMS; k++) {
        if (w->ne[k] <= 0)
            return 0;
        ext += (uint64_t)(w->ne[k] - 1) * w->nb[k];
    }
    return ext;
}

/*
 * fuzz-graph's buffers: 1 and 2 of 64 MiB, 3 of 16 MiB, 4 of 4 KiB. The k-th distinct buffer of
 * an image gets entry 1 + k % 4, or 1 / 2 when its tensors reach past that entry's size.
 */
static void graph_markers(uint8_t *img, size_t size)
{
    static const uint64_t cap[5] = { 0, 64u << 20, 64u << 20, 16u << 20, 4096 };
    struct vgpu_dec d;
    vgpu_dec_init(&d, img, size);
    (void)vgpu_dec_u32(&d);
    uint32_t n_t = vgpu_dec_u32(&d);
    (void)vgpu_dec_u32(&d);
    (void)vgpu_dec_u32(&d);
    uint64_t ids[64], need[64];
    uint32_t n_ids = 0;
    for (uint32_t i = 0; i < n_t && vgpu_dec_ok(&d); i++) {
        struct vgpu_wire_tensor w;
        vgpu_dec_wire_tensor(&d, &w);
        if (!w.buffer)
            continue;
        uint32_t k = 0;
        while (k < n_ids && ids[k] != w.buffer)
            k++;
        if (k == n_ids && n_ids < 64) {
            ids[n_ids] = w.buffer;
            need[n_ids++] = 0;
        }
        if (k < n_ids && w.data + wire_extent(&w) > need[k])
            need[k] = w.data + wire_extent(&w);
    }
    for (uint32_t i = 0; i + 16 + VGPU_WIRE_TENSOR_SIZE <= size && i < n_t; i++) {
        uint8_t *field = img + 16 + (size_t)i * VGPU_WIRE_TENSOR_SIZE + 144;
        uint64_t id = fz_get64(field);
        for (uint32_t k = 0; id && k < n_ids; k++) {
            if (ids[k] != id)
                continue;
            uint32_t e = 1 + k % 4;
            if (need[k] > cap[e])
                e = 1 + k % 2;
            fz_put64(field, FZ_ID_MARKER | e);
        }
    }
}

static void graph_seed(const struct rec *r, void *arg)
{
    (void)arg;
    size_t size;
    const uint8_t *img = inline_image(r, &size);
    if (!img)
        return;
    struct buf b = { 0 };
    buf_u8(&b, 0);
    buf_put(&b, img, size);
    graph_markers(b.p + 1, size);
    write_seed("ext", b.p, b.n);
    b.p[0] = 2;
    write_seed("opt", b.p, b.n);
    struct buf base = { 0 };
    buf_u8(&base, 1);
    if (to_baseline(b.p + 1, size, &base))
        write_seed("base", base.p, base.n);
    free(base.p);
    free(b.p);
}

static void graph_seeds(const struct trace *t)
{
    each_command(t, graph_seed, NULL);
}

/* ---- dispatch ---------------------------------------------------------------------------------------- */

static void put_record(struct buf *b, uint32_t cmd, const uint8_t *p, size_t n)
{
    buf_u16(b, (uint16_t)cmd);
    buf_u16(b, (uint16_t)n);
    buf_put(b, p, n);
}

/* The EXT_GRAPH_COMPUTE record `r` (markers patched) as FILL records + BACKEND_GRAPH_COMPUTE. */
static bool put_baseline_compute(struct buf *b, const uint8_t *req, size_t len)
{
    struct rec r = { VGPU_CMD_EXT_GRAPH_COMPUTE, 0, (uint8_t *)req, (uint32_t)len, NULL, 0 };
    size_t size;
    const uint8_t *img = inline_image(&r, &size);
    struct buf base = { 0 };
    if (!img || !to_baseline(img, size, &base)) {
        free(base.p);
        return false;
    }
    for (size_t off = 0; off < base.n; off += FILL_CHUNK) {
        size_t n = base.n - off < FILL_CHUNK ? base.n - off : FILL_CHUNK;
        uint8_t head[8] = { FUZZ_RES3 - 1, 0, 0, 0 };
        fz_put32(head + 4, (uint32_t)off);
        buf_u16(b, 0xff00);
        buf_u16(b, (uint16_t)(8 + n));
        buf_put(b, head, 8);
        buf_put(b, base.p + off, n);
    }
    uint8_t q[12];
    fz_put32(q, FUZZ_RES3);
    fz_put64(q + 4, base.n);
    put_record(b, APIR_CMD_BACKEND_GRAPH_COMPUTE, q, sizeof(q));
    free(base.p);
    return true;
}

/*
 * fuzz-dispatch's shared resources (fuzz-dispatch.c): id k resolves to resource 1 + (k - 1) % 4,
 * of 256 KiB, 256 KiB, 1 MiB and 64 KiB. A guest registers host buffers of many MiB; clamped to
 * the resource its id resolves to, the registration succeeds in the fuzzer too (and the
 * transfers through it that fit), instead of failing at the range check every time.
 */
static uint64_t fuzz_res_size(uint32_t res_id)
{
    static const uint64_t size[4] = { 256u << 10, 256u << 10, 1u << 20, 64u << 10 };
    return res_id ? size[(res_id - 1) % 4] : 0;
}

static void fit_host_buffer(uint8_t *req, size_t len)
{
    if (len < 24)
        return;
    uint32_t res_id = fz_get32(req);
    uint64_t off = fz_get64(req + 8), size = fz_get64(req + 16), cap = fuzz_res_size(res_id);
    if (off < cap && size > cap - off)
        fz_put64(req + 16, cap - off);
}

/*
 * Adapts a recorded request to the fuzz target: fit_host_buffer on an EXT_HOST_BUFFER_REGISTER
 * (top-level or a batch entry), and VGPU_BATCH_RESUME on every EXT_BATCH. The fuzzer's quotas
 * are small (1 MiB of buffers): an entry of real traffic fails there more often than it did in
 * the recording (a model's weight buffer), which stops its batch and makes the context answer
 * SKIPPED to everything until a RESUME; with the flag, the next batch of the seed runs anyway.
 */
static void fit_host_buffers(uint32_t cmd, uint8_t *req, size_t len)
{
    if (cmd == VGPU_CMD_EXT_HOST_BUFFER_REGISTER) {
        fit_host_buffer(req, len);
        return;
    }
    if (cmd != VGPU_CMD_EXT_BATCH || len < VGPU_BATCH_HEADER_SIZE)
        return;
    fz_put32(req + 4, fz_get32(req + 4) | VGPU_BATCH_RESUME);
    uint32_t n = fz_get32(req);
    size_t off = VGPU_BATCH_HEADER_SIZE;
    for (uint32_t i = 0; i < n && off + VGPU_BATCH_ENTRY_HEADER <= len; i++) {
        uint32_t ecmd = fz_get32(req + off), size = fz_get32(req + off + 4);
        if (size > len - off - VGPU_BATCH_ENTRY_HEADER)
            return;
        if (ecmd == VGPU_CMD_EXT_HOST_BUFFER_REGISTER)
            fit_host_buffer(req + off + VGPU_BATCH_ENTRY_HEADER, size);
        off += VGPU_BATCH_ENTRY_HEADER + size;
    }
}

/* Writes records [from, to) of a trace as one seed (and its baseline-graph twin). */
static void dispatch_segment(const struct trace *t, size_t from, size_t to)
{
    struct idmap m;
    idmap_reset(&m);
    struct buf ext = { 0 }, base = { 0 };
    buf_u8(&ext, 0);
    buf_u8(&base, 0);
    bool twin = false;
    for (size_t i = from; i < to; i++) {
        const struct rec *r = &t->r[i];
        if (r->req_len > 0xffff)
            continue;
        uint8_t *req = malloc(r->req_len ? r->req_len : 1);
        FZ_CHECK(req, "out of memory");
        memcpy(req, r->req, r->req_len);
        idmap_patch(&m, req, r->req_len);
        fit_host_buffers(r->cmd, req, r->req_len);
        put_record(&ext, r->cmd, req, r->req_len);
        if (r->cmd == VGPU_CMD_EXT_GRAPH_COMPUTE && put_baseline_compute(&base, req, r->req_len))
            twin = true;
        else
            put_record(&base, r->cmd, req, r->req_len);
        free(req);
        if (r->code == VGPU_OK)
            idmap_learn(&m, r->rep, r->rep_len);
    }
    if (ext.n > 1)
        write_seed("seg", ext.p, ext.n);
    if (twin)
        write_seed("segbase", base.p, base.n);
    free(ext.p);
    free(base.p);
}

/* Live buffers of the trace after record r (counted from alloc replies and frees, host buffer
 * registrations included, inside batches too). */
static void track_live(const struct rec *r, int *live)
{
    if (r->code != VGPU_OK)
        return;
    switch (r->cmd) {
    case APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER:
    case APIR_CMD_DEVICE_BUFFER_FROM_PTR:
    case VGPU_CMD_EXT_BUFFER_ALLOC:
    case VGPU_CMD_EXT_HOST_BUFFER_REGISTER:
        (*live)++;
        break;
    case APIR_CMD_BUFFER_FREE_BUFFER:
    case VGPU_CMD_EXT_BUFFER_FREE:
    case VGPU_CMD_EXT_HOST_BUFFER_UNREGISTER:
        (*live)--;
        break;
    case VGPU_CMD_EXT_BATCH: {
        static struct rec entries[VGPU_BATCH_MAX_ENTRIES];
        size_t n = batch_entries(r, entries, VGPU_BATCH_MAX_ENTRIES);
        for (size_t k = 0; k < n; k++) {
            if (entries[k].cmd != VGPU_CMD_EXT_BATCH) /* never nested (the host refuses it) */
                track_live(&entries[k], live);
        }
        break;
    }
    default:
        break;
    }
}

static void dispatch_seeds(const struct trace *t)
{
    size_t from = 0, bytes = 0;
    int live = 0;
    for (size_t i = 0; i < t->n; i++) {
        bytes += 4 + t->r[i].req_len;
        track_live(&t->r[i], &live);
        bool quiet = live <= 0 && i + 1 < t->n && t->r[i + 1].cmd != APIR_CMD_BUFFER_FREE_BUFFER;
        if ((quiet && bytes >= 256) || bytes >= SEG_MAX || i + 1 == t->n) {
            dispatch_segment(t, from, i + 1);
            from = i + 1;
            bytes = 0;
        }
    }
}

/* ---- codec ----------------------------------------------------------------------------------------- */

struct kind_count {
    unsigned n[16];
};

static void codec_seed(struct kind_count *c, uint8_t kind, const uint8_t *p, size_t n)
{
    if (c->n[kind] >= PER_KIND_MAX || n > 4000)
        return;
    c->n[kind]++;
    struct buf b = { 0 };
    buf_u8(&b, kind);
    buf_put(&b, p, n);
    write_seed("msg", b.p, b.n);
    free(b.p);
}

/* Kind numbers of fuzz-codec.c. */
enum { K_WIRE = 1, K_RPC, K_INLINE, K_HELLO_Q, K_HELLO_R, K_DEVINFO, K_XFER, K_GRAPHQ };

static void codec_record(const struct rec *r, void *arg)
{
    struct kind_count *c = arg;
    const uint8_t *q = r->req;
    size_t n = r->req_len;
    switch (r->cmd) {
    case VGPU_CMD_EXT_HELLO:
        codec_seed(c, K_HELLO_Q, q, n);
        codec_seed(c, K_HELLO_R, r->rep, r->rep_len);
        break;
    case VGPU_CMD_EXT_DEVICE_INFO:
        codec_seed(c, K_DEVINFO, r->rep, r->rep_len);
        break;
    case VGPU_CMD_EXT_TENSOR_SET:
    case VGPU_CMD_EXT_TENSOR_GET:
        /* A transfer starts with a wire tensor, like the commands below. */
        codec_seed(c, K_XFER, q, n);
        /* fall through */
    case VGPU_CMD_EXT_TENSOR_MEMSET:
    case VGPU_CMD_EXT_TENSOR_COPY:
    case VGPU_CMD_EXT_TENSOR_INIT:
        codec_seed(c, K_WIRE, q, n < VGPU_WIRE_TENSOR_SIZE ? n : VGPU_WIRE_TENSOR_SIZE);
        break;
    case VGPU_CMD_EXT_SUPPORTS_OP:
    case VGPU_CMD_EXT_OFFLOAD_OP:
        if (n > 8)
            codec_seed(c, K_WIRE, q + 8, n - 8 < VGPU_WIRE_TENSOR_SIZE ? n - 8 : VGPU_WIRE_TENSOR_SIZE);
        break;
    case VGPU_CMD_EXT_GRAPH_COMPUTE:
    case VGPU_CMD_EXT_GRAPH_OPTIMIZE:
        codec_seed(c, K_GRAPHQ, q, n < 40 ? n : 40);
        break;
    case APIR_CMD_DEVICE_SUPPORTS_OP:
        codec_seed(c, K_INLINE, q, n);
        break;
    case APIR_CMD_BUFFER_TYPE_GET_ALLOC_SIZE:
        if (n > 8)
            codec_seed(c, K_INLINE, q + 8, n - 8);
        break;
    case APIR_CMD_BUFFER_SET_TENSOR:
    case APIR_CMD_BUFFER_GET_TENSOR:
    case APIR_CMD_BUFFER_CPY_TENSOR:
        if (n > 8)
            codec_seed(c, K_RPC, q + 8, n - 8 < VGPU_RPC_TENSOR_SIZE ? n - 8 : VGPU_RPC_TENSOR_SIZE);
        break;
    default:
        break;
    }
}

/* Hand-made inputs for the kinds no trace carries (decoder ops, encoder ops, sizes). */
static void codec_handmade(void)
{
    static const uint8_t prims[] = { 0, 9, 0, 1, 2, 3, 4, 14, 15, 16, 17, 1, 2, 3, 4, 5, 6, 7, 8,
                                     9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24 };
    static const uint8_t enc[] = { 9, 64, 0, 0, 1, 2, 3, 4, 25, 36, 47, 58, 69, 200, 201, 202 };
    static const uint8_t sizes[] = { 10, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0 };
    write_seed("hand", prims, sizeof(prims));
    write_seed("hand", enc, sizeof(enc));
    write_seed("hand", sizes, sizeof(sizes));
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "codec") && strcmp(argv[1], "dispatch") && strcmp(argv[1], "graph"))) {
        fprintf(stderr, "usage: %s codec|dispatch|graph OUTDIR TRACE...\n", argv[0]);
        return 2;
    }
    g_out = argv[2];
    mkdir(g_out, 0755);
    if (!strcmp(argv[1], "codec"))
        codec_handmade();
    for (int i = 3; i < argc; i++) {
        struct trace t;
        load_trace(argv[i], &t);
        if (!strcmp(argv[1], "dispatch")) {
            dispatch_seeds(&t);
        } else if (!strcmp(argv[1], "graph")) {
            graph_seeds(&t);
        } else {
            struct kind_count c = { { 0 } };
            each_command(&t, codec_record, &c);
        }
        free(t.r);
        free(t.requests);
        free(t.replies);
    }
    printf("%s: %u seeds written to %s\n", argv[1], g_written, g_out);
    return 0;
}
