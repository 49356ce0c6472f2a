/*
 * vgpu-bench-bandwidth: tensor data bandwidth through ggml's API, per device and transfer size.
 *
 * Every column is measured in a child process of its own (a fresh ggml, a fresh connection,
 * its own environment), one transfer size after the other, from 4 KiB to 256 MiB by powers of
 * four. A column is one of:
 *   memcpy            plain memcpy between two host buffers (the reference)
 *   NAME              ggml_backend_tensor_set / _get on a buffer of ggml device NAME (CPU,
 *                     CUDA0, ... from the dependency's backends; VirtGPU0, ... from our module,
 *                     which reaches whatever server GGML_VIRTGPU_SOCKET names)
 *   NAME:staging      the same with GGML_VIRTGPU_NO_ZERO_COPY=1 (VirtGPU devices: every byte
 *                     through the staging resource instead of shared memory)
 *   cuda-pinned       cudaMemcpy host<->device from cudaMallocHost memory   } built with
 *   cuda-pageable     cudaMemcpy host<->device from malloc'd memory         } VGPU_BENCH_CUDA
 * "set" is host -> buffer, "get" buffer -> host. Each figure is the median of --trials timed
 * loops, each loop long enough to last --target-ms; GB/s means 10^9 bytes per second. After
 * timing, every size is checked (set, get, compare) so that a fast wrong path cannot pass.
 *
 * Usage: vgpu-bench-bandwidth [--min SIZE] [--max SIZE] [--trials N] [--target-ms MS]
 *                             [--llama-bin DIR] [--module PATH] [--csv FILE] COLUMN...
 *   SIZE takes K/M/G suffixes (powers of 1024). Defaults: 4K, 256M, 5 trials, 50 ms, the
 *   dependency's bin/ and the module this build made (GGML_BACKEND_PATH overrides it), and the
 *   columns "memcpy VirtGPU0 VirtGPU0:staging" (+ "cuda-pinned" in a CUDA build).
 *   --csv writes "column,mode,size_bytes,set_gbs,get_gbs" rows (mode: what the buffer was).
 * Exit status: 0 every column measured, 1 some column failed (its cells read "-"), 2 usage.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ggml-backend.h"
#include "ggml.h"

#ifdef VGPU_BENCH_CUDA
#include <cuda_runtime_api.h>
#endif

#ifndef VGPU_BENCH_LLAMA_BIN
#define VGPU_BENCH_LLAMA_BIN ""
#endif
#ifndef VGPU_BENCH_MODULE
#define VGPU_BENCH_MODULE ""
#endif

#define MAX_SIZES   24
#define MAX_COLUMNS 16

struct options {
    uint64_t    min_size, max_size;
    int         trials;
    double      target_ms;
    const char *llama_bin;
    const char *module;
    const char *csv;
    const char *columns[MAX_COLUMNS];
    int         n_columns;
};

/* What a child sends back through its pipe. */
struct column_result {
    int      ok;        /* 1 measured, 0 failed (note says why) */
    char     mode[48];  /* e.g. "zero-copy", "staged", "pinned" */
    char     note[200]; /* the failure */
    int      n_sizes;   /* sizes measured (a device may hold less than --max) */
    uint64_t size[MAX_SIZES];
    double   set_gbs[MAX_SIZES];
    double   get_gbs[MAX_SIZES];
};

/* One transfer of `size` bytes in direction `set` (true: host -> buffer). */
typedef int (*xfer_fn)(void *ctx, bool set, size_t size);

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * GB/s of fn(set, size): one untimed transfer, a calibration to find how many transfers last
 * target_ms, then the median of `trials` timed loops. Negative on a failed transfer.
 */
static double rate(xfer_fn fn, void *ctx, bool set, size_t size, const struct options *o)
{
    if (fn(ctx, set, size) != 0)
        return -1;
    int64_t t0 = now_ns();
    if (fn(ctx, set, size) != 0)
        return -1;
    double one = (double)(now_ns() - t0);
    if (one < 1)
        one = 1;
    long k = (long)(o->target_ms * 1e6 / one);
    if (k < 1)
        k = 1;
    if (k > 1000000)
        k = 1000000;
    double r[64];
    int trials = o->trials < 64 ? o->trials : 64;
    for (int i = 0; i < trials; i++) {
        t0 = now_ns();
        for (long j = 0; j < k; j++)
            if (fn(ctx, set, size) != 0)
                return -1;
        double dt = (double)(now_ns() - t0);
        r[i] = (double)size * (double)k / (dt > 0 ? dt : 1); /* bytes per ns = GB/s */
    }
    qsort(r, (size_t)trials, sizeof(r[0]), cmp_double);
    return r[trials / 2];
}

/* ---- host buffers --------------------------------------------------------------------------- */

struct host_pair {
    uint8_t *src; /* what "set" sends, patterned */
    uint8_t *dst; /* where "get" lands */
};

/* Fills src with a pattern that differs per offset, and dst with something else (faults pages in). */
static void fill(struct host_pair *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h->src[i] = (uint8_t)(i * 131u + (i >> 12));
    memset(h->dst, 0xA5, n);
}

/* ---- columns ---------------------------------------------------------------------------------- */

struct memcpy_ctx {
    struct host_pair h;
    uint8_t         *mid; /* the "buffer" */
};

static int memcpy_xfer(void *ctx, bool set, size_t size)
{
    struct memcpy_ctx *c = ctx;
    if (set)
        memcpy(c->mid, c->h.src, size);
    else
        memcpy(c->h.dst, c->mid, size);
    return 0;
}

struct ggml_ctx {
    struct host_pair    h;
    struct ggml_tensor *t;
};

static int ggml_xfer(void *ctx, bool set, size_t size)
{
    struct ggml_ctx *c = ctx;
    if (set)
        ggml_backend_tensor_set(c->t, c->h.src, 0, size);
    else
        ggml_backend_tensor_get(c->t, c->h.dst, 0, size);
    return 0;
}

#ifdef VGPU_BENCH_CUDA
struct cuda_ctx {
    struct host_pair h;
    void            *dev;
};

static int cuda_xfer(void *ctx, bool set, size_t size)
{
    struct cuda_ctx *c = ctx;
    cudaError_t e = set ? cudaMemcpy(c->dev, c->h.src, size, cudaMemcpyHostToDevice)
                        : cudaMemcpy(c->h.dst, c->dev, size, cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? 0 : -1;
}
#endif

/* Runs every size of one column through fn; checks each size's round trip afterwards. */
static void run_sizes(xfer_fn fn, void *ctx, struct host_pair *h, uint64_t max, const struct options *o,
                      struct column_result *res)
{
    res->n_sizes = 0;
    for (uint64_t s = o->min_size; s <= max && res->n_sizes < MAX_SIZES; s *= 4) {
        int i = res->n_sizes;
        res->size[i] = s;
        res->set_gbs[i] = rate(fn, ctx, true, (size_t)s, o);
        res->get_gbs[i] = rate(fn, ctx, false, (size_t)s, o);
        if (res->set_gbs[i] < 0 || res->get_gbs[i] < 0) {
            snprintf(res->note, sizeof(res->note), "a transfer of %llu bytes failed", (unsigned long long)s);
            return;
        }
        memset(h->dst, 0x5A, (size_t)s);
        if (fn(ctx, true, (size_t)s) != 0 || fn(ctx, false, (size_t)s) != 0 || memcmp(h->src, h->dst, (size_t)s) != 0) {
            snprintf(res->note, sizeof(res->note), "data read back differs at size %llu", (unsigned long long)s);
            return;
        }
        res->n_sizes++;
    }
    res->ok = 1;
}

static int alloc_host(struct host_pair *h, size_t n)
{
    h->src = aligned_alloc(4096, n);
    h->dst = aligned_alloc(4096, n);
    if (!h->src || !h->dst)
        return -1;
    fill(h, n);
    return 0;
}

static void column_memcpy(const struct options *o, struct column_result *res)
{
    struct memcpy_ctx c;
    size_t n = (size_t)o->max_size;
    if (alloc_host(&c.h, n) != 0 || !(c.mid = aligned_alloc(4096, n))) {
        snprintf(res->note, sizeof(res->note), "out of memory");
        return;
    }
    memset(c.mid, 0, n);
    snprintf(res->mode, sizeof(res->mode), "host");
    run_sizes(memcpy_xfer, &c, &c.h, o->max_size, o, res);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void column_ggml(const char *spec, const struct options *o, struct column_result *res)
{
    char name[64];
    snprintf(name, sizeof(name), "%s", spec);
    char *colon = strchr(name, ':');
    if (colon) {
        if (strcmp(colon, ":staging") != 0) {
            snprintf(res->note, sizeof(res->note), "unknown column suffix %s", colon);
            return;
        }
        *colon = '\0';
        setenv("GGML_VIRTGPU_NO_ZERO_COPY", "1", 1);
    }
    if (starts_with(name, "VirtGPU")) {
        const char *module = getenv("GGML_BACKEND_PATH");
        if (!module || !*module)
            module = o->module;
        if (!ggml_backend_load(module)) {
            snprintf(res->note, sizeof(res->note), "cannot load %s", module);
            return;
        }
    } else {
        unsetenv("GGML_BACKEND_PATH");
        ggml_backend_load_all_from_path(o->llama_bin);
    }
    ggml_backend_dev_t dev = ggml_backend_dev_by_name(name);
    if (!dev) {
        snprintf(res->note, sizeof(res->note), "no device %s", name);
        return;
    }
    ggml_backend_buffer_type_t buft = ggml_backend_dev_buffer_type(dev);
    uint64_t max = o->max_size;
    size_t dev_max = ggml_backend_buft_get_max_size(buft);
    while (max > o->min_size && max > dev_max)
        max /= 4;
    ggml_backend_buffer_t buf = ggml_backend_buft_alloc_buffer(buft, (size_t)max);
    if (!buf) {
        snprintf(res->note, sizeof(res->note), "%s cannot allocate %llu bytes", name, (unsigned long long)max);
        return;
    }
    struct ggml_init_params ip = { .mem_size = 2 * ggml_tensor_overhead(), .mem_buffer = NULL, .no_alloc = true };
    struct ggml_context *gctx = ggml_init(ip);
    struct ggml_ctx c;
    c.t = ggml_new_tensor_1d(gctx, GGML_TYPE_I8, (int64_t)max);
    if (ggml_backend_tensor_alloc(buf, c.t, ggml_backend_buffer_get_base(buf)) != GGML_STATUS_SUCCESS) {
        snprintf(res->note, sizeof(res->note), "%s: tensor_alloc failed", name);
        return;
    }
    if (alloc_host(&c.h, (size_t)max) != 0) {
        snprintf(res->note, sizeof(res->note), "out of memory");
        return;
    }
    if (starts_with(name, "VirtGPU"))
        snprintf(res->mode, sizeof(res->mode), "%s", ggml_backend_buffer_is_host(buf) ? "zero-copy" : "staged");
    else
        snprintf(res->mode, sizeof(res->mode), "%s", ggml_backend_buffer_is_host(buf) ? "host memory" : "device");
    run_sizes(ggml_xfer, &c, &c.h, max, o, res);
    ggml_backend_buffer_free(buf);
    ggml_free(gctx);
}

#ifdef VGPU_BENCH_CUDA
static void column_cuda(bool pinned, const struct options *o, struct column_result *res)
{
    struct cuda_ctx c;
    size_t n = (size_t)o->max_size;
    cudaError_t e = cudaMalloc(&c.dev, n);
    if (e != cudaSuccess) {
        snprintf(res->note, sizeof(res->note), "cudaMalloc: %s", cudaGetErrorString(e));
        return;
    }
    if (pinned) {
        void *s = NULL, *d = NULL;
        if (cudaMallocHost(&s, n) != cudaSuccess || cudaMallocHost(&d, n) != cudaSuccess) {
            snprintf(res->note, sizeof(res->note), "cudaMallocHost failed");
            return;
        }
        c.h.src = s;
        c.h.dst = d;
        fill(&c.h, n);
    } else if (alloc_host(&c.h, n) != 0) {
        snprintf(res->note, sizeof(res->note), "out of memory");
        return;
    }
    snprintf(res->mode, sizeof(res->mode), "%s", pinned ? "pinned" : "pageable");
    run_sizes(cuda_xfer, &c, &c.h, o->max_size, o, res);
}
#endif

/* Measures one column in this (child) process. */
static void measure_column(const char *spec, const struct options *o, struct column_result *res)
{
    memset(res, 0, sizeof(*res));
    if (strcmp(spec, "memcpy") == 0) {
        column_memcpy(o, res);
        return;
    }
    if (strcmp(spec, "cuda-pinned") == 0 || strcmp(spec, "cuda-pageable") == 0) {
#ifdef VGPU_BENCH_CUDA
        column_cuda(strcmp(spec, "cuda-pinned") == 0, o, res);
#else
        snprintf(res->note, sizeof(res->note), "built without CUDA (vgpu-bench-bandwidth-cuda has it)");
#endif
        return;
    }
    column_ggml(spec, o, res);
}

/* Runs measure_column in a child and collects its result; 0 when the child answered. */
static int run_column(const char *spec, const struct options *o, struct column_result *res)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(p[0]);
        struct column_result r;
        measure_column(spec, o, &r);
        const uint8_t *b = (const uint8_t *)&r;
        size_t left = sizeof(r);
        while (left > 0) {
            ssize_t w = write(p[1], b, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                _exit(1);
            b += w;
            left -= (size_t)w;
        }
        fflush(NULL);
        _exit(0); /* no atexit/destructors of the backends: the figures are what matters */
    }
    close(p[1]);
    uint8_t *b = (uint8_t *)res;
    size_t got = 0;
    while (got < sizeof(*res)) {
        ssize_t r = read(p[0], b + got, sizeof(*res) - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != sizeof(*res)) {
        memset(res, 0, sizeof(*res));
        snprintf(res->note, sizeof(res->note), "the measuring process died (status 0x%x)", status);
    }
    return 0;
}

/* ---- main -------------------------------------------------------------------------------------- */

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    switch (*end) {
    case 'K': case 'k': v <<= 10; end++; break;
    case 'M': case 'm': v <<= 20; end++; break;
    case 'G': case 'g': v <<= 30; end++; break;
    default: break;
    }
    if (*end || v == 0)
        return -1;
    *out = v;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: vgpu-bench-bandwidth [--min SIZE] [--max SIZE] [--trials N] [--target-ms MS]\n"
                    "                            [--llama-bin DIR] [--module PATH] [--csv FILE] COLUMN...\n"
                    "COLUMN: memcpy | DEVICE | DEVICE:staging | cuda-pinned | cuda-pageable\n");
}

static int parse(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof(*o));
    o->min_size = 4096;
    o->max_size = 256ull << 20;
    o->trials = 5;
    o->target_ms = 50;
    o->llama_bin = VGPU_BENCH_LLAMA_BIN;
    o->module = VGPU_BENCH_MODULE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            if (o->n_columns == MAX_COLUMNS)
                return -1;
            o->columns[o->n_columns++] = a;
            continue;
        }
        if (i + 1 >= argc)
            return -1;
        const char *v = argv[++i];
        if (!strcmp(a, "--min")) {
            if (parse_size(v, &o->min_size))
                return -1;
        } else if (!strcmp(a, "--max")) {
            if (parse_size(v, &o->max_size))
                return -1;
        } else if (!strcmp(a, "--trials")) {
            o->trials = atoi(v);
        } else if (!strcmp(a, "--target-ms")) {
            o->target_ms = atof(v);
        } else if (!strcmp(a, "--llama-bin")) {
            o->llama_bin = v;
        } else if (!strcmp(a, "--module")) {
            o->module = v;
        } else if (!strcmp(a, "--csv")) {
            o->csv = v;
        } else {
            return -1;
        }
    }
    if (o->trials < 1 || o->trials > 64 || o->target_ms <= 0 || o->min_size > o->max_size)
        return -1;
    if (o->n_columns == 0) {
        o->columns[o->n_columns++] = "memcpy";
        o->columns[o->n_columns++] = "VirtGPU0";
        o->columns[o->n_columns++] = "VirtGPU0:staging";
#ifdef VGPU_BENCH_CUDA
        o->columns[o->n_columns++] = "cuda-pinned";
#endif
    }
    return 0;
}

static void print_size(uint64_t s)
{
    if (s >= (1ull << 30) && s % (1ull << 30) == 0)
        printf("%6llu GiB", (unsigned long long)(s >> 30));
    else if (s >= (1ull << 20) && s % (1ull << 20) == 0)
        printf("%6llu MiB", (unsigned long long)(s >> 20));
    else if (s >= 1024 && s % 1024 == 0)
        printf("%6llu KiB", (unsigned long long)(s >> 10));
    else
        printf("%10llu", (unsigned long long)s);
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    static struct column_result res[MAX_COLUMNS];
    int status = 0;
    for (int c = 0; c < o.n_columns; c++) {
        run_column(o.columns[c], &o, &res[c]);
        if (!res[c].ok) {
            fprintf(stderr, "bandwidth: column %s: %s\n", o.columns[c], res[c].note);
            status = 1;
        }
    }

    printf("bandwidth, GB/s (10^9 B/s; median of %d loops of >= %.0f ms; set = host -> buffer, get = buffer -> host)\n",
           o.trials, o.target_ms);
    printf("%10s", "");
    for (int c = 0; c < o.n_columns; c++)
        printf(" | %-19.19s", o.columns[c]);
    printf("\n%10s", "");
    for (int c = 0; c < o.n_columns; c++)
        printf(" | %-19.19s", res[c].ok ? res[c].mode : "failed");
    printf("\n%10s", "size");
    for (int c = 0; c < o.n_columns; c++)
        printf(" | %9s %9s", "set", "get");
    printf("\n");
    for (uint64_t s = o.min_size; s <= o.max_size; s *= 4) {
        print_size(s);
        for (int c = 0; c < o.n_columns; c++) {
            int i = 0;
            while (i < res[c].n_sizes && res[c].size[i] != s)
                i++;
            if (i < res[c].n_sizes)
                printf(" | %9.2f %9.2f", res[c].set_gbs[i], res[c].get_gbs[i]);
            else
                printf(" | %9s %9s", "-", "-");
        }
        printf("\n");
    }

    if (o.csv) {
        FILE *f = fopen(o.csv, "w");
        if (!f) {
            fprintf(stderr, "bandwidth: %s: %s\n", o.csv, strerror(errno));
            return 1;
        }
        fprintf(f, "column,mode,size_bytes,set_gbs,get_gbs\n");
        for (int c = 0; c < o.n_columns; c++)
            for (int i = 0; i < res[c].n_sizes; i++)
                fprintf(f, "%s,%s,%llu,%.4f,%.4f\n", o.columns[c], res[c].mode, (unsigned long long)res[c].size[i],
                        res[c].set_gbs[i], res[c].get_gbs[i]);
        if (fclose(f) != 0) {
            fprintf(stderr, "bandwidth: writing %s failed\n", o.csv);
            status = 1;
        }
    }
    return status;
}
