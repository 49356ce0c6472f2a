// ggml-virtgpu-gen-model: writes a llama-architecture GGUF with random weights and a real vocabulary.
//
// Tests and benchmarks need models and nothing can be downloaded, so this program makes them. The
// weights are random (throughput does not depend on their values) but deterministic from a seed; the
// 32000-token vocabulary is copied from a vocab-only GGUF so that tokenization is real.
//
// The 8b F16 model is ~14.5 GB, so tensor data is never held in memory: the gguf_context only describes
// the tensors (metadata), and each tensor's bytes are generated chunk by chunk and streamed to the
// file at the offsets gguf computed.

#include <ggml.h>
#include <gguf.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef GGML_VIRTGPU_DEFAULT_VOCAB
#define GGML_VIRTGPU_DEFAULT_VOCAB "models/ggml-vocab-llama-spm.gguf"
#endif

#define GEN_ARCH        "llama"
#define GEN_TOKENIZER   "tokenizer."
#define GEN_CHUNK_ELEMS ((size_t) 1 << 20) // values generated per step: 4 MiB of F32 scratch

// Shape and hyperparameters of one model size.
struct model_spec {
    const char * name;
    uint32_t     n_embd;
    uint32_t     n_layer;
    uint32_t     n_head;
    uint32_t     n_head_kv;
    uint32_t     n_ff;
    uint32_t     n_ctx;
    float        rope_freq_base;
};

// Llama-shaped sizes; 8b follows Llama 3 8B (GQA 32/8, n_ff 14336, rope base 500000).
static const struct model_spec model_specs[] = {
    { "tiny", 256,  4,  8,  4, 768,   2048, 10000.0f  },
    { "1b",   2048, 16, 32, 8, 8192,  4096, 10000.0f  },
    { "8b",   4096, 32, 32, 8, 14336, 4096, 500000.0f },
};

struct options {
    const struct model_spec * spec;
    const char *              out_path;
    const char *              vocab_path;
    uint64_t                  seed;
    enum ggml_type            wtype; // type of the 2-D weight matrices
};

// Generator state: splitmix64, small and good enough for weights whose values do not matter.
struct rng {
    uint64_t state;
};

// Returns the next 64 random bits and advances the generator.
static uint64_t rng_next(struct rng * r) {
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Seeds a generator for tensor `index` so that each tensor's values depend only on (seed, index),
// not on how much data came before it.
static struct rng rng_for_tensor(uint64_t seed, uint64_t index) {
    struct rng r = { seed ^ (index * 0xd1b54a32d192ed03ULL) };
    (void) rng_next(&r); // decorrelate neighbouring seeds
    return r;
}

// Prints the synopsis to `f`.
static void usage_line(FILE * f, const char * prog) {
    fprintf(f, "usage: %s --size tiny|1b|8b -o FILE [--seed N] [--vocab PATH] [--type f16|f32]\n", prog);
}

// Prints the full help text to stdout.
static void usage(const char * prog) {
    usage_line(stdout, prog);
    printf("\n"
           "Writes a llama-architecture GGUF with random weights and a real 32000-token vocabulary.\n"
           "  --size S      tiny (~20M params), 1b or 8b\n"
           "  -o, --output  output file\n"
           "  --seed N      random seed (default 1); same seed, same file\n"
           "  --vocab PATH  vocab-only GGUF to take tokenizer.* from\n"
           "                (default %s)\n"
           "  --type T      f16 (default) or f32 for the weight matrices; norms are always f32\n",
           GGML_VIRTGPU_DEFAULT_VOCAB);
}

// Returns the spec named `name`, or NULL when there is none.
static const struct model_spec * find_spec(const char * name) {
    for (size_t i = 0; i < sizeof(model_specs) / sizeof(model_specs[0]); i++) {
        if (strcmp(model_specs[i].name, name) == 0) {
            return &model_specs[i];
        }
    }
    return NULL;
}

// Parses a decimal seed into `out`. Returns 0, or -1 when `s` is not a whole unsigned number.
static int parse_seed(const char * s, uint64_t * out) {
    if (*s == '\0' || *s == '-' || *s == '+') {
        return -1;
    }
    char *             end = NULL;
    errno                  = 0;
    unsigned long long v   = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    *out = (uint64_t) v;
    return 0;
}

// Applies option `opt` with value `val` to `o`. Returns 0, or -1 after printing why it is invalid.
static int apply_option(struct options * o, const char * opt, const char * val) {
    if (strcmp(opt, "--size") == 0) {
        o->spec = find_spec(val);
        if (!o->spec) {
            fprintf(stderr, "gen-model: unknown size '%s' (expected tiny, 1b or 8b)\n", val);
            return -1;
        }
    } else if (strcmp(opt, "-o") == 0 || strcmp(opt, "--output") == 0) {
        o->out_path = val;
    } else if (strcmp(opt, "--vocab") == 0) {
        o->vocab_path = val;
    } else if (strcmp(opt, "--seed") == 0) {
        if (parse_seed(val, &o->seed) != 0) {
            fprintf(stderr, "gen-model: invalid seed '%s'\n", val);
            return -1;
        }
    } else if (strcmp(opt, "--type") == 0) {
        if (strcmp(val, "f16") == 0) {
            o->wtype = GGML_TYPE_F16;
        } else if (strcmp(val, "f32") == 0) {
            o->wtype = GGML_TYPE_F32;
        } else {
            fprintf(stderr, "gen-model: unknown type '%s' (expected f16 or f32)\n", val);
            return -1;
        }
    } else {
        fprintf(stderr, "gen-model: unknown option '%s'\n", opt);
        return -1;
    }
    return 0;
}

// Fills `o` from the command line. Returns 0 to go on, 1 when help was printed, -1 on a usage
// error (already reported).
static int parse_args(int argc, char ** argv, struct options * o) {
    *o = (struct options){ NULL, NULL, GGML_VIRTGPU_DEFAULT_VOCAB, 1, GGML_TYPE_F16 };
    int i = 1;
    while (i < argc) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(argv[0]);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gen-model: option '%s' needs a value\n", argv[i]);
            return -1;
        }
        if (apply_option(o, argv[i], argv[i + 1]) != 0) {
            return -1;
        }
        i += 2; // every option takes exactly one value
    }
    if (!o->spec || !o->out_path) {
        fprintf(stderr, "gen-model: --size and -o are required\n");
        return -1;
    }
    return 0;
}

// Copies string array `id` of `src` into `dst` under `key`. Returns 0, or -1 when out of memory.
static int copy_str_array(struct gguf_context * dst, const struct gguf_context * src, int64_t id,
                          const char * key) {
    size_t        n    = gguf_get_arr_n(src, id);
    const char ** strs = malloc((n ? n : 1) * sizeof(*strs));
    if (!strs) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        strs[i] = gguf_get_arr_str(src, id, i);
    }
    gguf_set_arr_str(dst, key, strs, n);
    free(strs);
    return 0;
}

// Copies array KV `id` of `src` into `dst`, keeping its element type. Returns 0, or -1 (reported)
// for arrays of arrays, which no tokenizer uses.
static int copy_array_kv(struct gguf_context * dst, const struct gguf_context * src, int64_t id) {
    const char *   key  = gguf_get_key(src, id);
    enum gguf_type type = gguf_get_arr_type(src, id);
    if (type == GGUF_TYPE_STRING) {
        if (copy_str_array(dst, src, id, key) != 0) {
            fprintf(stderr, "gen-model: out of memory copying '%s'\n", key);
            return -1;
        }
        return 0;
    }
    if (type == GGUF_TYPE_ARRAY) {
        fprintf(stderr, "gen-model: vocab key '%s' is a nested array, not supported\n", key);
        return -1;
    }
    gguf_set_arr_data(dst, key, type, gguf_get_arr_data(src, id), gguf_get_arr_n(src, id));
    return 0;
}

// Copies KV `id` of `src` into `dst` with its type. Returns 0, or -1 (reported) on failure.
static int copy_kv(struct gguf_context * dst, const struct gguf_context * src, int64_t id) {
    const char * key = gguf_get_key(src, id);
    switch (gguf_get_kv_type(src, id)) {
        case GGUF_TYPE_UINT8:   gguf_set_val_u8(dst, key, gguf_get_val_u8(src, id)); break;
        case GGUF_TYPE_INT8:    gguf_set_val_i8(dst, key, gguf_get_val_i8(src, id)); break;
        case GGUF_TYPE_UINT16:  gguf_set_val_u16(dst, key, gguf_get_val_u16(src, id)); break;
        case GGUF_TYPE_INT16:   gguf_set_val_i16(dst, key, gguf_get_val_i16(src, id)); break;
        case GGUF_TYPE_UINT32:  gguf_set_val_u32(dst, key, gguf_get_val_u32(src, id)); break;
        case GGUF_TYPE_INT32:   gguf_set_val_i32(dst, key, gguf_get_val_i32(src, id)); break;
        case GGUF_TYPE_FLOAT32: gguf_set_val_f32(dst, key, gguf_get_val_f32(src, id)); break;
        case GGUF_TYPE_UINT64:  gguf_set_val_u64(dst, key, gguf_get_val_u64(src, id)); break;
        case GGUF_TYPE_INT64:   gguf_set_val_i64(dst, key, gguf_get_val_i64(src, id)); break;
        case GGUF_TYPE_FLOAT64: gguf_set_val_f64(dst, key, gguf_get_val_f64(src, id)); break;
        case GGUF_TYPE_BOOL:    gguf_set_val_bool(dst, key, gguf_get_val_bool(src, id)); break;
        case GGUF_TYPE_STRING:  gguf_set_val_str(dst, key, gguf_get_val_str(src, id)); break;
        case GGUF_TYPE_ARRAY:   return copy_array_kv(dst, src, id);
        default:
            fprintf(stderr, "gen-model: vocab key '%s' has an unknown type\n", key);
            return -1;
    }
    return 0;
}

// Opens the vocab-only GGUF at `path` (metadata only) and stores its vocabulary size in `n_vocab`.
// Returns the context, or NULL (reported) when the file cannot be read or has no token list.
static struct gguf_context * open_vocab(const char * path, uint32_t * n_vocab) {
    struct gguf_init_params params = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *   src    = gguf_init_from_file(path, params);
    if (!src) {
        fprintf(stderr, "gen-model: cannot read vocab GGUF '%s'\n", path);
        return NULL;
    }
    int64_t tokens = gguf_find_key(src, GEN_TOKENIZER "ggml.tokens");
    if (tokens < 0 || gguf_get_kv_type(src, tokens) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(src, tokens) != GGUF_TYPE_STRING || gguf_get_arr_n(src, tokens) == 0 ||
        gguf_get_arr_n(src, tokens) > UINT32_MAX) {
        fprintf(stderr, "gen-model: '%s' has no tokenizer.ggml.tokens string array\n", path);
        gguf_free(src);
        return NULL;
    }
    *n_vocab = (uint32_t) gguf_get_arr_n(src, tokens);
    return src;
}

// Copies every tokenizer.* KV of `src` into `dst` with its type. Returns 0 or -1 (reported).
static int copy_tokenizer(struct gguf_context * dst, const struct gguf_context * src) {
    for (int64_t i = 0; i < gguf_get_n_kv(src); i++) {
        if (strncmp(gguf_get_key(src, i), GEN_TOKENIZER, strlen(GEN_TOKENIZER)) != 0) {
            continue;
        }
        if (copy_kv(dst, src, i) != 0) {
            return -1;
        }
    }
    return 0;
}

// Sets the general.* and llama.* hyperparameter KVs that llama.cpp's loader reads.
static void set_hparams(struct gguf_context * g, const struct options * o, uint32_t n_vocab) {
    const struct model_spec * s = o->spec;
    char                      name[64];
    snprintf(name, sizeof(name), "ggml-virtgpu random llama %s", s->name);

    gguf_set_val_str(g, "general.architecture", GEN_ARCH);
    gguf_set_val_str(g, "general.name", name);
    // llama_ftype: 0 = ALL_F32, 1 = MOSTLY_F16
    gguf_set_val_u32(g, "general.file_type", o->wtype == GGML_TYPE_F16 ? 1 : 0);
    gguf_set_val_u32(g, GEN_ARCH ".vocab_size", n_vocab);
    gguf_set_val_u32(g, GEN_ARCH ".context_length", s->n_ctx);
    gguf_set_val_u32(g, GEN_ARCH ".embedding_length", s->n_embd);
    gguf_set_val_u32(g, GEN_ARCH ".block_count", s->n_layer);
    gguf_set_val_u32(g, GEN_ARCH ".feed_forward_length", s->n_ff);
    gguf_set_val_u32(g, GEN_ARCH ".attention.head_count", s->n_head);
    gguf_set_val_u32(g, GEN_ARCH ".attention.head_count_kv", s->n_head_kv);
    gguf_set_val_f32(g, GEN_ARCH ".attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_set_val_u32(g, GEN_ARCH ".rope.dimension_count", s->n_embd / s->n_head);
    gguf_set_val_f32(g, GEN_ARCH ".rope.freq_base", s->rope_freq_base);
}

// Describes tensor "<base>.weight" (or "blk.<layer>.<base>.weight" when layer >= 0) in `ctx`,
// without data, and registers it with `g`. `ne1` == 0 makes a 1-D tensor. Returns 0, or -1
// (reported) when the name does not fit.
static int add_tensor(struct ggml_context * ctx, struct gguf_context * g, enum ggml_type type,
                      int64_t ne0, int64_t ne1, int layer, const char * base) {
    char name[GGML_MAX_NAME];
    int  len = layer < 0 ? snprintf(name, sizeof(name), "%s.weight", base)
                         : snprintf(name, sizeof(name), "blk.%d.%s.weight", layer, base);
    if (len < 0 || (size_t) len >= sizeof(name)) {
        fprintf(stderr, "gen-model: tensor name for '%s' too long\n", base);
        return -1;
    }
    struct ggml_tensor * t = ne1 ? ggml_new_tensor_2d(ctx, type, ne0, ne1) : ggml_new_tensor_1d(ctx, type, ne0);
    ggml_set_name(t, name);
    gguf_add_tensor(g, t);
    return 0;
}

// Adds the tensors of one transformer block. ggml shapes are [n_in, n_out]. Returns 0 or -1.
static int add_block(struct ggml_context * ctx, struct gguf_context * g, const struct options * o, int il) {
    const struct model_spec * s    = o->spec;
    const int64_t             embd = s->n_embd;
    const int64_t             kv   = (int64_t) (s->n_embd / s->n_head) * s->n_head_kv; // GQA width
    const enum ggml_type      wt   = o->wtype;
    int                       err  = 0;

    err |= add_tensor(ctx, g, GGML_TYPE_F32, embd, 0, il, "attn_norm");
    err |= add_tensor(ctx, g, wt, embd, embd, il, "attn_q");
    err |= add_tensor(ctx, g, wt, embd, kv, il, "attn_k");
    err |= add_tensor(ctx, g, wt, embd, kv, il, "attn_v");
    err |= add_tensor(ctx, g, wt, embd, embd, il, "attn_output");
    err |= add_tensor(ctx, g, GGML_TYPE_F32, embd, 0, il, "ffn_norm");
    err |= add_tensor(ctx, g, wt, embd, s->n_ff, il, "ffn_gate");
    err |= add_tensor(ctx, g, wt, s->n_ff, embd, il, "ffn_down");
    err |= add_tensor(ctx, g, wt, embd, s->n_ff, il, "ffn_up");
    return err ? -1 : 0;
}

// Adds every tensor of the model to `g`, in the order their data will be written (the order of
// converted checkpoints: embedding, blocks, output). `ctx` must have room for all descriptors.
// Returns 0 or -1.
static int add_tensors(struct ggml_context * ctx, struct gguf_context * g, const struct options * o,
                       uint32_t n_vocab) {
    const int64_t embd = o->spec->n_embd;
    if (add_tensor(ctx, g, o->wtype, embd, n_vocab, -1, "token_embd") != 0) {
        return -1;
    }
    for (uint32_t il = 0; il < o->spec->n_layer; il++) {
        if (add_block(ctx, g, o, (int) il) != 0) {
            return -1;
        }
    }
    if (add_tensor(ctx, g, GGML_TYPE_F32, embd, 0, -1, "output_norm") != 0 ||
        add_tensor(ctx, g, o->wtype, embd, n_vocab, -1, "output") != 0) {
        return -1;
    }
    return 0;
}

// Number of tensors add_tensors() creates.
static size_t tensor_count(const struct model_spec * s) {
    return 3 + 9 * (size_t) s->n_layer;
}

// Output stream with the byte count written so far, so offsets can be checked against gguf's.
struct out_file {
    FILE *       f;
    const char * path;
    uint64_t     pos;
};

// Writes `n` bytes. Returns 0, or -1 (reported, e.g. disk full).
static int out_write(struct out_file * out, const void * data, size_t n) {
    if (n && fwrite(data, 1, n, out->f) != n) {
        fprintf(stderr, "gen-model: writing '%s' failed: %s\n", out->path, strerror(errno));
        return -1;
    }
    out->pos += n;
    return 0;
}

// Pads with zeros until the position is a multiple of `align`. Returns 0 or -1.
static int out_pad(struct out_file * out, uint64_t align) {
    static const uint8_t zeros[256];
    while (out->pos % align != 0) {
        uint64_t n = align - out->pos % align;
        if (out_write(out, zeros, n < sizeof(zeros) ? (size_t) n : sizeof(zeros)) != 0) {
            return -1;
        }
    }
    return 0;
}

// Scratch space for generating one chunk of a tensor.
struct chunk_buf {
    float *       f32;
    ggml_fp16_t * f16;
};

// Fills `v[0..n)` for a tensor with rows of `ne0` values. Norm gains are 1.0, as in real
// checkpoints; matrices get uniform values in [-h, h) with h = sqrt(3/n_in), i.e. std
// 1/sqrt(n_in), so each projection keeps the scale of its (normalized) input and the activations
// stay finite at every depth the specs use.
static void fill_values(struct rng * r, float * v, size_t n, int64_t ne0, bool is_norm) {
    if (is_norm) {
        for (size_t i = 0; i < n; i++) {
            v[i] = 1.0f;
        }
        return;
    }
    const float half = sqrtf(3.0f / (float) ne0);
    const float step = 2.0f * half / (float) (1u << 24); // maps a 24-bit integer onto [0, 2h)
    size_t      i    = 0;
    // two 24-bit uniforms per 64-bit draw: 24 bits is all a float mantissa holds
    for (; i + 1 < n; i += 2) {
        uint64_t x = rng_next(r);
        v[i]       = (float) (x >> 40) * step - half;
        v[i + 1]   = (float) ((x >> 16) & 0xffffff) * step - half;
    }
    if (i < n) {
        v[i] = (float) (rng_next(r) >> 40) * step - half;
    }
}

// Generates and writes the data of tensor `id` of `g` chunk by chunk, then pads to the alignment.
// The current position must already be the tensor's data offset. Returns 0 or -1.
static int write_tensor(struct out_file * out, const struct gguf_context * g, int64_t id, uint64_t seed,
                        struct chunk_buf * buf) {
    const enum ggml_type type    = gguf_get_tensor_type(g, id);
    const int64_t *      ne      = gguf_get_tensor_ne(g, id);
    // the only 1-D weights of this architecture are the RMS-norm gains
    const bool           is_norm = ne[1] == 1 && ne[2] == 1 && ne[3] == 1;
    size_t               left    = gguf_get_tensor_size(g, id) / ggml_type_size(type);
    struct rng           r       = rng_for_tensor(seed, (uint64_t) id);

    while (left > 0) {
        size_t n = left < GEN_CHUNK_ELEMS ? left : GEN_CHUNK_ELEMS;
        fill_values(&r, buf->f32, n, ne[0], is_norm);
        int rc;
        if (type == GGML_TYPE_F16) {
            ggml_fp32_to_fp16_row(buf->f32, buf->f16, (int64_t) n);
            rc = out_write(out, buf->f16, n * sizeof(ggml_fp16_t));
        } else {
            rc = out_write(out, buf->f32, n * sizeof(float));
        }
        if (rc != 0) {
            return -1;
        }
        left -= n;
    }
    return out_pad(out, gguf_get_alignment(g));
}

// Writes the metadata block of `g` (header, KVs, tensor infos, padding). Returns 0 or -1.
static int write_meta(struct out_file * out, const struct gguf_context * g) {
    size_t size = gguf_get_meta_size(g);
    void * meta = malloc(size);
    if (!meta) {
        fprintf(stderr, "gen-model: out of memory for %zu bytes of metadata\n", size);
        return -1;
    }
    gguf_get_meta_data(g, meta);
    int rc = out_write(out, meta, size);
    free(meta);
    return rc;
}

// Writes the whole model file described by `g` to out->f: metadata, then every tensor's data at
// the offset gguf assigned to it. Returns 0 or -1 (reported).
static int write_model(struct out_file * out, const struct gguf_context * g, uint64_t seed) {
    struct chunk_buf buf = { malloc(GEN_CHUNK_ELEMS * sizeof(float)),
                             malloc(GEN_CHUNK_ELEMS * sizeof(ggml_fp16_t)) };
    int              ret = -1;
    if (!buf.f32 || !buf.f16) {
        fprintf(stderr, "gen-model: out of memory for scratch buffers\n");
        goto out;
    }
    if (write_meta(out, g) != 0) {
        goto out;
    }
    const uint64_t data_start = out->pos;
    for (int64_t id = 0; id < gguf_get_n_tensors(g); id++) {
        uint64_t want = data_start + gguf_get_tensor_offset(g, id);
        if (out->pos != want) {
            fprintf(stderr, "gen-model: internal error: tensor '%s' at %" PRIu64 ", gguf expects %" PRIu64 "\n",
                    gguf_get_tensor_name(g, id), out->pos, want);
            goto out;
        }
        if (write_tensor(out, g, id, seed, &buf) != 0) {
            goto out;
        }
    }
    ret = 0;
out:
    free(buf.f32);
    free(buf.f16);
    return ret;
}

// Re-reads the metadata of the written file and checks that gguf agrees on where the data starts
// and that the file holds exactly the data it describes. Returns 0 or -1 (reported).
static int verify_output(const char * path, uint64_t file_size, size_t n_tensors) {
    struct gguf_init_params params = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *   g      = gguf_init_from_file(path, params);
    int                     ret    = -1;
    if (!g) {
        fprintf(stderr, "gen-model: the written file '%s' does not parse as GGUF\n", path);
        return -1;
    }
    int64_t  last = gguf_get_n_tensors(g) - 1;
    uint64_t end  = 0;
    if (last >= 0) {
        uint64_t size  = gguf_get_tensor_size(g, last);
        uint64_t align = gguf_get_alignment(g);
        end = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, last) + (size + align - 1) / align * align;
    }
    if ((size_t) (last + 1) != n_tensors || end != file_size) {
        fprintf(stderr, "gen-model: '%s' is inconsistent: %" PRId64 " tensors, data ends at %" PRIu64
                ", file has %" PRIu64 " bytes\n", path, last + 1, end, file_size);
        goto out;
    }
    ret = 0;
out:
    gguf_free(g);
    return ret;
}

// Builds the gguf_context (metadata and tensor descriptors) for the model `o` asks for. Returns
// 0 with *out_g and *out_ctx owned by the caller, or -1 (reported) with nothing to free.
static int build_context(const struct options * o, struct gguf_context ** out_g, struct ggml_context ** out_ctx) {
    struct ggml_init_params ip  = { .mem_size   = ggml_tensor_overhead() * tensor_count(o->spec),
                                    .mem_buffer = NULL,
                                    .no_alloc   = true };
    struct gguf_context *   g   = gguf_init_empty();
    struct ggml_context *   ctx = ggml_init(ip);
    uint32_t                n_vocab = 0;
    struct gguf_context *   vocab   = NULL;
    if (!g || !ctx) {
        fprintf(stderr, "gen-model: out of memory creating contexts\n");
        goto fail;
    }
    vocab = open_vocab(o->vocab_path, &n_vocab);
    if (!vocab) {
        goto fail;
    }
    // general.* first, as converted checkpoints have it; the tokenizer follows the hyperparameters
    set_hparams(g, o, n_vocab);
    if (copy_tokenizer(g, vocab) != 0 || add_tensors(ctx, g, o, n_vocab) != 0) {
        goto fail;
    }
    gguf_free(vocab);
    *out_g   = g;
    *out_ctx = ctx;
    return 0;
fail:
    if (vocab) {
        gguf_free(vocab);
    }
    if (ctx) {
        ggml_free(ctx);
    }
    if (g) {
        gguf_free(g);
    }
    return -1;
}

// Sums the element count of every tensor in `g`.
static uint64_t count_params(const struct gguf_context * g) {
    uint64_t n = 0;
    for (int64_t id = 0; id < gguf_get_n_tensors(g); id++) {
        const int64_t * ne = gguf_get_tensor_ne(g, id);
        n += (uint64_t) (ne[0] * ne[1] * ne[2] * ne[3]);
    }
    return n;
}

// Seconds on a monotonic clock.
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

// Writes the file at o->out_path from `g` and, when it is a regular file, re-reads and checks it.
// A failed regular file is removed so that no truncated model is left for a later step to trip
// over; anything else (a device, a pipe) is never removed, as it is not ours to delete.
// Returns 0 or -1 (reported).
static int generate(const struct options * o, const struct gguf_context * g, uint64_t * bytes) {
    struct out_file out = { fopen(o->out_path, "wb"), o->out_path, 0 };
    if (!out.f) {
        fprintf(stderr, "gen-model: cannot create '%s': %s\n", o->out_path, strerror(errno));
        return -1;
    }
    struct stat st;
    const bool  regular = fstat(fileno(out.f), &st) == 0 && S_ISREG(st.st_mode);
    int         rc      = write_model(&out, g, o->seed);
    if (fclose(out.f) != 0 && rc == 0) {
        fprintf(stderr, "gen-model: closing '%s' failed: %s\n", o->out_path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && regular) {
        rc = verify_output(o->out_path, out.pos, (size_t) gguf_get_n_tensors(g));
    }
    if (rc != 0) {
        if (regular) {
            unlink(o->out_path);
        }
        return -1;
    }
    *bytes = out.pos;
    return 0;
}

int main(int argc, char ** argv) {
    struct options o;
    int            prc = parse_args(argc, argv, &o);
    if (prc != 0) {
        if (prc < 0) {
            usage_line(stderr, argv[0]);
        }
        return prc < 0 ? 2 : 0;
    }

    const double          t0  = now_s();
    struct gguf_context * g   = NULL;
    struct ggml_context * ctx = NULL;
    if (build_context(&o, &g, &ctx) != 0) {
        return 1;
    }
    uint64_t bytes = 0;
    int      rc    = generate(&o, g, &bytes);
    if (rc == 0) {
        printf("gen-model: wrote %s: size %s, type %s, %" PRIu64 " params, %" PRIu64 " bytes, %.2f s\n",
               o.out_path, o.spec->name, ggml_type_name(o.wtype), count_params(g), bytes, now_s() - t0);
    }
    ggml_free(ctx);
    gguf_free(g);
    return rc == 0 ? 0 : 1;
}
