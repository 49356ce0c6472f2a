/*
 * llama-greedy: greedy decoding through libllama with every logit recorded, so that two runs
 * (natively, and through a VirtGPU device) can be compared bit for bit.
 *
 * Usage: llama-greedy MODEL OUT_PREFIX [--device NAME|none] [--tokens N] [--prompt TEXT]
 *                     [--threads N]
 * Writes OUT_PREFIX.tokens (one token id per line: the prompt's, a line "--", then the
 * generated ones) and OUT_PREFIX.logits (n_vocab little-endian floats per generated token).
 * --device none keeps every layer on the CPU backend; a device name offloads all layers to it.
 * Exit codes: 0 done, 1 usage or set-up error, 3 llama_decode failed (the message says which
 * step), so a test can tell "the host went away" from "the tool is broken".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

struct options {
    const char *model;
    const char *out_prefix;
    const char *device;
    const char *prompt;
    int         tokens;
    int         threads;
};

/* Parses argv; returns 0 or prints usage and returns -1. */
static int parse_args(int argc, char **argv, struct options *o)
{
    o->device = "none";
    o->prompt = "The quick brown fox jumps over the lazy dog. Once upon a time";
    o->tokens = 32;
    o->threads = 2;
    if (argc < 3)
        goto usage;
    o->model = argv[1];
    o->out_prefix = argv[2];
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc)
            goto usage;
        if (!strcmp(argv[i], "--device"))
            o->device = argv[++i];
        else if (!strcmp(argv[i], "--tokens"))
            o->tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prompt"))
            o->prompt = argv[++i];
        else if (!strcmp(argv[i], "--threads"))
            o->threads = atoi(argv[++i]);
        else
            goto usage;
    }
    if (o->tokens <= 0 || o->threads <= 0)
        goto usage;
    return 0;
usage:
    fprintf(stderr, "usage: llama-greedy MODEL OUT_PREFIX [--device NAME|none] [--tokens N] "
                    "[--prompt TEXT] [--threads N]\n");
    return -1;
}

/* Index of the largest logit (the first one on ties, so the choice is deterministic). */
static llama_token argmax(const float *logits, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Loads the model on the chosen device; NULL (with a message) on failure. */
static struct llama_model *load_model(const struct options *o, ggml_backend_dev_t devs[2])
{
    struct llama_model_params mp = llama_model_default_params();
    devs[0] = devs[1] = NULL;
    if (strcmp(o->device, "none") != 0) {
        devs[0] = ggml_backend_dev_by_name(o->device);
        if (!devs[0]) {
            fprintf(stderr, "llama-greedy: no device named '%s'\n", o->device);
            return NULL;
        }
        mp.n_gpu_layers = 999;
    } else {
        mp.n_gpu_layers = 0;
    }
    mp.devices = devs;
    struct llama_model *model = llama_model_load_from_file(o->model, mp);
    if (!model)
        fprintf(stderr, "llama-greedy: cannot load %s\n", o->model);
    return model;
}

/* Runs the greedy loop, writing tokens and logits; returns the process exit code. */
static int generate(const struct options *o, struct llama_context *ctx,
                    const struct llama_vocab *vocab, FILE *ftok, FILE *flog)
{
    int n_vocab = llama_vocab_n_tokens(vocab);
    llama_token toks[512];
    int n = llama_tokenize(vocab, o->prompt, (int)strlen(o->prompt), toks, 512, true, false);
    if (n <= 0) {
        fprintf(stderr, "llama-greedy: cannot tokenize the prompt\n");
        return 1;
    }
    for (int i = 0; i < n; i++)
        fprintf(ftok, "%d\n", toks[i]);
    fprintf(ftok, "--\n");

    double t0 = now_s();
    llama_token next; /* the batch below points at it between iterations */
    struct llama_batch batch = llama_batch_get_one(toks, n);
    for (int step = 0; step < o->tokens; step++) {
        int rc = llama_decode(ctx, batch);
        if (rc != 0) {
            fprintf(stderr, "llama-greedy: llama_decode failed with %d at step %d\n", rc, step);
            return 3;
        }
        const float *logits = llama_get_logits_ith(ctx, -1);
        if (fwrite(logits, sizeof(float), (size_t)n_vocab, flog) != (size_t)n_vocab) {
            fprintf(stderr, "llama-greedy: cannot write logits\n");
            return 1;
        }
        next = argmax(logits, n_vocab);
        fprintf(ftok, "%d\n", next);
        fflush(ftok);
        batch = llama_batch_get_one(&next, 1);
    }
    fprintf(stderr, "llama-greedy: %d tokens in %.2f s on %s\n", o->tokens, now_s() - t0, o->device);
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) != 0)
        return 1;

    int rc = 1;
    char path[4096];
    FILE *ftok = NULL, *flog = NULL;
    struct llama_model *model = NULL;
    struct llama_context *ctx = NULL;
    ggml_backend_dev_t devs[2];

    /* The dependency keeps its backend modules next to its own tools, not next to ours. */
    ggml_backend_load_all_from_path(LLAMA_BACKEND_DIR);
    llama_backend_init();
    model = load_model(&o, devs);
    if (!model)
        goto out;

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 1024;
    cp.n_batch = 512;
    cp.n_threads = o.threads;
    cp.n_threads_batch = o.threads;
    ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llama-greedy: cannot create a context\n");
        goto out;
    }

    snprintf(path, sizeof(path), "%s.tokens", o.out_prefix);
    ftok = fopen(path, "w");
    snprintf(path, sizeof(path), "%s.logits", o.out_prefix);
    flog = fopen(path, "wb");
    if (!ftok || !flog) {
        fprintf(stderr, "llama-greedy: cannot open output files under %s\n", o.out_prefix);
        goto out;
    }
    rc = generate(&o, ctx, llama_model_get_vocab(model), ftok, flog);

out:
    if (ftok)
        fclose(ftok);
    if (flog)
        fclose(flog);
    if (ctx)
        llama_free(ctx);
    if (model)
        llama_model_free(model);
    return rc;
}
