/*
 * vgpu-guest-stress: a guest program that uses the GGML backend API on VirtGPU0 (our guest
 * module, loaded from GGML_BACKEND_PATH), for the quota and leak tests.
 *
 *   vgpu-guest-stress alloc N SIZE
 *       Allocates N buffers of SIZE bytes on VirtGPU0's buffer type, then computes a small graph
 *       in the first one to show the device still works. Prints "allocated K of N". Exit 0 if all
 *       N succeeded, 2 if some failed cleanly (NULL) and the compute still worked, 1 otherwise.
 *   vgpu-guest-stress graphs FULL REUSE [--watch-parent PID] [--warmup W] [--max-growth-kb KB]
 *       FULL graph computes whose shapes change every time (a new ggml context, buffer and graph
 *       each time, so the full graph image is sent), interleaved with REUSE recomputes of one
 *       graph kept with a uid (new inputs each time, the host recomputes its cached graph).
 *       Results are checked against plain C loops. With --watch-parent, the worker process
 *       serving this guest (the only child of PID) has its memory read from /proc after W
 *       warm-up computes of each kind and at the end; exit 1 if its RssAnon grew by more than
 *       KB (default 1024).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-impl.h"
#include "ggml.h"

static ggml_backend_dev_t find_device(void)
{
    /* The dependency's modules are next to its tools; ours comes from GGML_BACKEND_PATH. */
    ggml_backend_load_all_from_path(LLAMA_BACKEND_DIR);
    ggml_backend_dev_t dev = ggml_backend_dev_by_name("VirtGPU0");
    if (!dev)
        fprintf(stderr, "vgpu-guest-stress: no device VirtGPU0 (is GGML_VIRTGPU_SOCKET set?)\n");
    return dev;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- a small checked graph: D = (A·B + E) * 0.5 ------------------------------------------------ */

struct job {
    struct ggml_context  *ctx;
    ggml_backend_buffer_t buf;
    struct ggml_cgraph   *gf;
    struct ggml_tensor   *a, *b, *e, *d;
    int                   k, n, m;
};

static bool job_build(struct job *j, ggml_backend_t backend, int k, int n, int m)
{
    memset(j, 0, sizeof(*j));
    j->k = k;
    j->n = n;
    j->m = m;
    struct ggml_init_params p = { ggml_tensor_overhead() * 16 + ggml_graph_overhead(), NULL, true };
    j->ctx = ggml_init(p);
    if (!j->ctx)
        return false;
    j->a = ggml_new_tensor_2d(j->ctx, GGML_TYPE_F32, k, n);
    j->b = ggml_new_tensor_2d(j->ctx, GGML_TYPE_F32, k, m);
    j->e = ggml_new_tensor_2d(j->ctx, GGML_TYPE_F32, n, m);
    struct ggml_tensor *c = ggml_mul_mat(j->ctx, j->a, j->b);
    j->d = ggml_scale(j->ctx, ggml_add(j->ctx, c, j->e), 0.5f);
    j->gf = ggml_new_graph(j->ctx);
    ggml_build_forward_expand(j->gf, j->d);
    j->buf = ggml_backend_alloc_ctx_tensors(j->ctx, backend);
    return j->buf != NULL;
}

static void job_free(struct job *j)
{
    if (j->buf)
        ggml_backend_buffer_free(j->buf);
    if (j->ctx)
        ggml_free(j->ctx);
    memset(j, 0, sizeof(*j));
}

/* Small integers, so that float sums are exact whatever the order. */
static float val(int seed, int i)
{
    return (float)(((seed * 31 + i * 7) % 9) - 4);
}

/* Uploads inputs for `seed`, computes, and (if check) compares D with plain loops. */
static bool job_run(struct job *j, ggml_backend_t backend, int seed, bool check)
{
    int k = j->k, n = j->n, m = j->m;
    float *a = malloc(sizeof(float) * (size_t)(k * n)), *b = malloc(sizeof(float) * (size_t)(k * m));
    float *e = malloc(sizeof(float) * (size_t)(n * m)), *d = malloc(sizeof(float) * (size_t)(n * m));
    bool ok = a && b && e && d;
    if (ok) {
        for (int i = 0; i < k * n; i++)
            a[i] = val(seed, i);
        for (int i = 0; i < k * m; i++)
            b[i] = val(seed + 1, i);
        for (int i = 0; i < n * m; i++)
            e[i] = val(seed + 2, i);
        ggml_backend_tensor_set(j->a, a, 0, ggml_nbytes(j->a));
        ggml_backend_tensor_set(j->b, b, 0, ggml_nbytes(j->b));
        ggml_backend_tensor_set(j->e, e, 0, ggml_nbytes(j->e));
        ok = ggml_backend_graph_compute(backend, j->gf) == GGML_STATUS_SUCCESS;
        if (!ok)
            fprintf(stderr, "vgpu-guest-stress: compute failed (seed %d)\n", seed);
    }
    if (ok && check) {
        ggml_backend_tensor_get(j->d, d, 0, ggml_nbytes(j->d));
        for (int y = 0; y < m && ok; y++) {
            for (int x = 0; x < n && ok; x++) {
                float s = 0;
                for (int z = 0; z < k; z++)
                    s += a[x * k + z] * b[y * k + z];
                float want = (s + e[y * n + x]) * 0.5f;
                if (d[y * n + x] != want) {
                    fprintf(stderr, "vgpu-guest-stress: D[%d,%d] = %g, expected %g ([%d x %d x %d], seed %d)\n", x,
                            y, (double)d[y * n + x], (double)want, k, n, m, seed);
                    ok = false;
                }
            }
        }
    }
    free(a);
    free(b);
    free(e);
    free(d);
    return ok;
}

/* ---- alloc --------------------------------------------------------------------------------------- */

static int cmd_alloc(int n, size_t size)
{
    ggml_backend_dev_t dev = find_device();
    if (!dev)
        return 1;
    ggml_backend_buffer_type_t buft = ggml_backend_dev_buffer_type(dev);
    ggml_backend_buffer_t *bufs = calloc((size_t)n, sizeof(*bufs));
    int got = 0;
    for (int i = 0; i < n; i++) {
        bufs[i] = ggml_backend_buft_alloc_buffer(buft, size);
        if (bufs[i]) {
            got++;
        } else {
            fprintf(stderr, "vgpu-guest-stress: allocation %d of %zu bytes failed\n", i + 1, size);
        }
    }
    printf("allocated %d of %d\n", got, n);
    /* The device still computes: free one buffer to make room for the graph's. */
    for (int i = n - 1; i >= 0; i--) {
        if (bufs[i]) {
            ggml_backend_buffer_free(bufs[i]);
            bufs[i] = NULL;
            break;
        }
    }
    ggml_backend_t backend = ggml_backend_dev_init(dev, NULL);
    struct job j;
    bool ok = backend && job_build(&j, backend, 8, 4, 2) && job_run(&j, backend, 1, true);
    printf("compute after the allocations: %s\n", ok ? "ok" : "FAILED");
    if (backend) {
        job_free(&j);
        ggml_backend_free(backend);
    }
    for (int i = 0; i < n; i++) {
        if (bufs[i])
            ggml_backend_buffer_free(bufs[i]);
    }
    free(bufs);
    if (!ok)
        return 1;
    return got == n ? 0 : 2;
}

/* ---- graphs --------------------------------------------------------------------------------------- */

struct mem {
    long rss, anon, file, shmem;
};

/* The only child process of `parent` (the server worker that serves this guest), or 0. */
static int worker_of(int parent)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int found = 0, count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int pid = atoi(de->d_name);
        if (pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *rp = strrchr(buf, ')');
        int ppid = 0;
        char state;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == parent && state != 'Z') {
            found = pid;
            count++;
        }
    }
    closedir(d);
    return count == 1 ? found : 0;
}

static bool read_mem(int pid, struct mem *m)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    memset(m, 0, sizeof(*m));
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "VmRSS: %ld", &m->rss);
        sscanf(line, "RssAnon: %ld", &m->anon);
        sscanf(line, "RssFile: %ld", &m->file);
        sscanf(line, "RssShmem: %ld", &m->shmem);
    }
    fclose(f);
    return true;
}

/* Shapes change every time: k in [4, 16], n in [8, 64], m in [1, 5]. */
static bool full_one(ggml_backend_t backend, int i)
{
    struct job j;
    bool ok = job_build(&j, backend, 4 + i % 13, 8 + i % 57, 1 + i % 5) && job_run(&j, backend, i, i % 50 == 0);
    job_free(&j);
    return ok;
}

static int cmd_graphs(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: vgpu-guest-stress graphs FULL REUSE [--watch-parent PID] [--warmup W] "
                        "[--max-growth-kb KB]\n");
        return 1;
    }
    int full = atoi(argv[2]), reuse = atoi(argv[3]);
    int parent = 0, warmup = 200;
    long max_kb = 1024;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--watch-parent"))
            parent = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup"))
            warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-growth-kb"))
            max_kb = atol(argv[i + 1]);
    }
    ggml_backend_dev_t dev = find_device();
    if (!dev)
        return 1;
    ggml_backend_t backend = ggml_backend_dev_init(dev, NULL);
    if (!backend)
        return 1;
    /* The reused graph: a uid makes the guest send it once, then recompute it by uid. */
    struct job keep;
    if (!job_build(&keep, backend, 32, 48, 4))
        return 1;
    keep.gf->uid = ggml_graph_next_uid();

    int worker = 0;
    struct mem m0 = { 0 }, m1 = { 0 };
    double t0 = now_s();
    int done_full = 0, done_reuse = 0;
    /* Warm-up, then the measured run; full and reused computes interleaved. */
    for (int phase = 0; phase < 2; phase++) {
        int nf = phase ? full : warmup, nr = phase ? reuse : warmup;
        int total = nf + nr;
        for (int s = 0, f = 0, r = 0; s < total; s++) {
            bool do_full = f < nf && (r >= nr || (long)f * nr <= (long)r * nf);
            bool ok = do_full ? full_one(backend, done_full + f) : job_run(&keep, backend, done_reuse + r, (r % 50) == 0);
            if (!ok) {
                fprintf(stderr, "vgpu-guest-stress: %s compute %d failed\n", do_full ? "full" : "reused",
                        do_full ? f : r);
                return 1;
            }
            if (do_full)
                f++;
            else
                r++;
        }
        done_full += nf;
        done_reuse += nr;
        if (phase == 0 && parent) {
            worker = worker_of(parent);
            if (!worker || !read_mem(worker, &m0)) {
                fprintf(stderr, "vgpu-guest-stress: cannot find the worker of pid %d\n", parent);
                return 1;
            }
        }
    }
    double t1 = now_s();
    printf("vgpu-guest-stress: %d full graph computes and %d recomputes in %.1f s (%d + %d warm-up)\n", full, reuse,
           t1 - t0, warmup, warmup);
    job_free(&keep);
    int rc = 0;
    if (parent) {
        if (!read_mem(worker, &m1)) {
            fprintf(stderr, "vgpu-guest-stress: the worker is gone\n");
            return 1;
        }
        long growth = m1.anon - m0.anon;
        printf("RSS worker %d after warm-up: VmRSS %ld kB, RssAnon %ld kB, RssFile %ld kB, RssShmem %ld kB\n", worker,
               m0.rss, m0.anon, m0.file, m0.shmem);
        printf("RSS worker %d at the end:    VmRSS %ld kB, RssAnon %ld kB, RssFile %ld kB, RssShmem %ld kB\n", worker,
               m1.rss, m1.anon, m1.file, m1.shmem);
        printf("RSS growth over %d computes: VmRSS %+ld kB, RssAnon %+ld kB (limit %ld kB)\n", full + reuse,
               m1.rss - m0.rss, growth, max_kb);
        rc = growth > max_kb ? 1 : 0;
    }
    ggml_backend_free(backend);
    return rc;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && !strcmp(argv[1], "alloc"))
        return cmd_alloc(atoi(argv[2]), (size_t)strtoull(argv[3], NULL, 10));
    if (argc >= 2 && !strcmp(argv[1], "graphs"))
        return cmd_graphs(argc, argv);
    fprintf(stderr, "usage: vgpu-guest-stress alloc N SIZE | graphs FULL REUSE [...]\n");
    return 1;
}
