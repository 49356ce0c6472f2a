/*
 * sweep-cpu: checks the CPU kernel contract (host/kernel-cpu.c) against the real CPU kernels.
 *
 * Seeds: every legit node that tests/unit/test-validate-op.c builds with ggml's constructors
 * (that file is compiled in with VGPU_SEED_HOOK; its cmocka main runs first), at most a few per
 * (op, sub-op, types, contiguity) signature. Mutants of each seed: every tensor's type changed
 * to every ggml type (one tensor, dst + src0, all tensors), layouts a constructor can build
 * (column-major, element stride 2, padded rows, dims 2/3 swapped, overlapping rows) on every
 * tensor, with and without a type change, every int32 op_param slot set to edge values, and
 * src0/src1 swapped.
 *
 * A mutant that vgpu_validate_op, the CPU device's supports_op and vgpu_kernel_cpu_ok all
 * accept is what the host would compute: it is computed on the CPU (ggml_graph_plan and
 * ggml_graph_compute, 3 threads) in a child process, with every tensor and the work buffer
 * ending against a PROT_NONE page. A GGML_ABORT / GGML_ASSERT, a fault or a hang is a hole in
 * the contract, printed as "HOLE ..." with the kernel's message; the exit status is 1 if there
 * is any. With --over, mutants the contract alone refuses are computed too, and those the
 * kernels survive are counted per op and reason ("OVER ..."): refusals more conservative than
 * needed (informational).
 *
 * Usage: sweep-cpu [--quick] [--over] [--op NAME] [--seeds-per-sig N] [--quiet]
 *   --quick: one seed per signature and five op_param values (the CTest test
 *   validate-op.sweep-cpu runs this); without it, two seeds and all seventeen values.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "kernel-cpu.h"
#include "validate-op.h"

/* test-validate-op.c, compiled in with -Dmain=vgpu_validate_op_tests_main -DVGPU_SEED_HOOK. */
int  vgpu_validate_op_tests_main(void);
void vgpu_seed_hook(const struct ggml_tensor *t);
/* host/kernel-cpu.c's copy of the CPU type traits (test hook). */
void vgpu_kernel_cpu_traits(enum ggml_type type, bool *from_float, bool *vec_dot,
                            enum ggml_type *vec_dot_type);

#define N_THREADS 3
#define MAX_SEED_BYTES (1u << 20)

/* ---- seeds ----------------------------------------------------------------------------------- */

struct seed {
    struct ggml_tensor node;
    struct ggml_tensor src[GGML_MAX_SRC];
    uint16_t           present; /* bit i: src[i] is a copy in src[i] */
    uint16_t           self;    /* bit i: src[i] is the node itself (ggml_cast) */
};

static struct seed *seeds;
static size_t       n_seeds, cap_seeds;
static int          seeds_per_sig = 2;
static const char  *only_op;

struct sig {
    uint64_t h;
    int      n;
};
static struct sig *sigs;
static size_t      n_sigs, cap_sigs;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static bool layout_only(enum ggml_op op)
{
    return op == GGML_OP_NONE || op == GGML_OP_VIEW || op == GGML_OP_RESHAPE ||
           op == GGML_OP_PERMUTE || op == GGML_OP_TRANSPOSE;
}

void vgpu_seed_hook(const struct ggml_tensor *t)
{
    if (layout_only(t->op)) {
        return;
    }
    if (only_op != NULL && strcmp(only_op, ggml_op_name(t->op)) != 0 &&
        strcmp(only_op, ggml_op_desc(t)) != 0) {
        return;
    }
    size_t bytes = ggml_nbytes(t);
    uint64_t h = mix(0, (uint64_t) t->op);
    if (t->op == GGML_OP_UNARY || t->op == GGML_OP_GLU) {
        h = mix(h, (uint64_t) (uint32_t) t->op_params[0]);
    }
    h = mix(h, (uint64_t) t->type);
    h = mix(h, ggml_is_contiguous(t));
    for (int i = 0; i < GGML_MAX_SRC; i++) {
        const struct ggml_tensor *s = t->src[i];
        h = mix(h, s ? (uint64_t) s->type + 1 : 0);
        if (s) {
            h = mix(h, ggml_is_contiguous(s));
            bytes += ggml_nbytes(s);
        }
    }
    if (bytes > MAX_SEED_BYTES) {
        return;
    }
    size_t k = 0;
    for (; k < n_sigs && sigs[k].h != h; k++) {
    }
    if (k == n_sigs) {
        if (n_sigs == cap_sigs) {
            cap_sigs = cap_sigs ? 2 * cap_sigs : 256;
            sigs = realloc(sigs, cap_sigs * sizeof *sigs);
        }
        sigs[n_sigs++] = (struct sig){h, 0};
    }
    if (sigs[k].n >= seeds_per_sig) {
        return;
    }
    sigs[k].n++;
    if (n_seeds == cap_seeds) {
        cap_seeds = cap_seeds ? 2 * cap_seeds : 256;
        seeds = realloc(seeds, cap_seeds * sizeof *seeds);
    }
    struct seed *s = &seeds[n_seeds++];
    memset(s, 0, sizeof *s);
    s->node = *t;
    s->node.view_src = NULL;
    s->node.view_offs = 0;
    for (int i = 0; i < GGML_MAX_SRC; i++) {
        s->node.src[i] = NULL;
        if (t->src[i] == NULL) {
            continue;
        }
        if (t->src[i] == t) {
            s->self |= (uint16_t) (1u << i);
            continue;
        }
        s->present |= (uint16_t) (1u << i);
        s->src[i] = *t->src[i];
        s->src[i].view_src = NULL;
        s->src[i].view_offs = 0;
        s->src[i].op = GGML_OP_NONE;
        memset(s->src[i].src, 0, sizeof s->src[i].src);
    }
}

/* A working copy of a seed with its pointers wired. */
struct work {
    struct ggml_tensor node;
    struct ggml_tensor src[GGML_MAX_SRC];
};

static void wire(struct work *w, const struct seed *s)
{
    w->node = s->node;
    for (int i = 0; i < GGML_MAX_SRC; i++) {
        w->src[i] = s->src[i];
        w->node.src[i] = (s->self >> i) & 1      ? &w->node
                         : (s->present >> i) & 1 ? &w->src[i]
                                                 : NULL;
    }
}

/* Role r: 0 the node, i + 1 its src[i] (NULL if absent or the node itself). */
static struct ggml_tensor *role(struct work *w, int r)
{
    if (r == 0) {
        return &w->node;
    }
    struct ggml_tensor *s = w->node.src[r - 1];
    return s == &w->node ? NULL : s;
}

/* ---- mutations ------------------------------------------------------------------------------- */

enum kind {
    K_ID,
    K_TYPE,        /* a: role, b: type */
    K_TYPE_D0,     /* b: type of dst and src0 */
    K_TYPE_SAME,   /* b: type of every tensor that had dst's type */
    K_TYPE_ALL,    /* b: type of every tensor */
    K_LAYOUT,      /* a: role, b: layout */
    K_TYPE_LAYOUT, /* a: role, b: layout, c: type of every tensor (F32/F16/BF16) */
    K_PARAM,       /* a: op_params slot, b: value index */
    K_SWAP01,
};

enum layout { L_COLMAJOR, L_STRIDE2, L_ROWPAD, L_SWAP23, L_OVERLAP, L_COUNT };

struct mutant {
    uint32_t seed;
    uint8_t  kind, a, b, c;
};

static const int32_t param_values[] = {-1, 0, 1, 0x7fffffff, INT32_MIN, 2, 3, 4, 5, 7, 8, 16, 100,
                                       0x3f800000 /* 1.0f */, (int32_t) 0xbf800000 /* -1.0f */,
                                       0x7fc00000 /* NaN */, 0x7149f2ca /* 1e30f */};
#define N_PARAM_VALUES (sizeof param_values / sizeof param_values[0])
/* --quick: the first five values only. */
static size_t n_param_values = N_PARAM_VALUES;

static bool type_ok(enum ggml_type t)
{
    return ggml_blck_size(t) > 0 && ggml_type_size(t) > 0;
}

static void repack(struct ggml_tensor *t)
{
    t->nb[0] = ggml_type_size(t->type);
    t->nb[1] = t->nb[0] * (size_t) (t->ne[0] / ggml_blck_size(t->type));
    for (int i = 2; i < 4; i++) {
        t->nb[i] = t->nb[i - 1] * (size_t) t->ne[i - 1];
    }
}

/* Sets t's type (false if its ne0 is not a multiple of the block). */
static bool set_type(struct ggml_tensor *t, enum ggml_type type)
{
    if (t->ne[0] % ggml_blck_size(type) != 0) {
        return false;
    }
    t->type = type;
    repack(t);
    return true;
}

static bool set_layout(struct ggml_tensor *t, enum layout l)
{
    const size_t ts = ggml_type_size(t->type);
    const bool   blocked = ggml_blck_size(t->type) > 1;
    const size_t row = ts * (size_t) (t->ne[0] / ggml_blck_size(t->type));
    switch (l) {
        case L_COLMAJOR:
            if (blocked || t->ne[0] < 2 || t->ne[1] < 2) {
                return false;
            }
            t->nb[1] = ts;
            t->nb[0] = ts * (size_t) t->ne[1];
            t->nb[2] = ts * (size_t) (t->ne[0] * t->ne[1]);
            t->nb[3] = t->nb[2] * (size_t) t->ne[2];
            return true;
        case L_STRIDE2:
            if (blocked || t->ne[0] < 2) {
                return false;
            }
            t->nb[0] = 2 * ts;
            t->nb[1] = t->nb[0] * (size_t) t->ne[0];
            t->nb[2] = t->nb[1] * (size_t) t->ne[1];
            t->nb[3] = t->nb[2] * (size_t) t->ne[2];
            return true;
        case L_ROWPAD:
            t->nb[0] = ts;
            t->nb[1] = row + 64;
            t->nb[2] = t->nb[1] * (size_t) t->ne[1] + 64;
            t->nb[3] = t->nb[2] * (size_t) t->ne[2] + 64;
            return true;
        case L_SWAP23:
            if (t->ne[2] < 2 || t->ne[3] < 2) {
                return false;
            }
            t->nb[0] = ts;
            t->nb[1] = row;
            t->nb[3] = row * (size_t) t->ne[1];
            t->nb[2] = t->nb[3] * (size_t) t->ne[3];
            return true;
        case L_OVERLAP:
            if (t->ne[1] < 2 || t->ne[0] < 2) {
                return false;
            }
            t->nb[0] = ts;
            t->nb[1] = blocked ? row : ts;
            t->nb[2] = row * (size_t) t->ne[1];
            t->nb[3] = t->nb[2] * (size_t) t->ne[2];
            return true;
        default:
            return false;
    }
}

/* Applies mutant m to a fresh working copy; false if it does not apply. */
static bool apply(struct work *w, const struct mutant *m)
{
    wire(w, &seeds[m->seed]);
    const enum ggml_type dst_type = w->node.type;
    switch ((enum kind) m->kind) {
        case K_ID:
            return true;
        case K_TYPE: {
            struct ggml_tensor *t = role(w, m->a);
            return t != NULL && t->type != m->b && set_type(t, (enum ggml_type) m->b);
        }
        case K_TYPE_D0:
            return w->node.src[0] != NULL && set_type(&w->node, (enum ggml_type) m->b) &&
                   set_type(w->node.src[0], (enum ggml_type) m->b);
        case K_TYPE_SAME:
        case K_TYPE_ALL:
            for (int r = 0; r <= GGML_MAX_SRC; r++) {
                struct ggml_tensor *t = role(w, r);
                if (t != NULL && (m->kind == K_TYPE_ALL || t->type == dst_type) &&
                    !set_type(t, (enum ggml_type) m->b)) {
                    return false;
                }
            }
            return true;
        case K_LAYOUT: {
            struct ggml_tensor *t = role(w, m->a);
            return t != NULL && set_layout(t, (enum layout) m->b);
        }
        case K_TYPE_LAYOUT: {
            for (int r = 0; r <= GGML_MAX_SRC; r++) {
                struct ggml_tensor *t = role(w, r);
                if (t != NULL && t->type != GGML_TYPE_I32 && t->type != GGML_TYPE_I64 &&
                    !set_type(t, (enum ggml_type) m->c)) {
                    return false;
                }
            }
            struct ggml_tensor *t = role(w, m->a);
            return t != NULL && set_layout(t, (enum layout) m->b);
        }
        case K_PARAM: {
            int32_t v = param_values[m->b];
            memcpy((char *) w->node.op_params + 4 * m->a, &v, 4);
            return true;
        }
        case K_SWAP01: {
            if (w->node.src[0] == NULL || w->node.src[1] == NULL ||
                w->node.src[1] == &w->node) {
                return false;
            }
            struct ggml_tensor *x = w->node.src[0];
            w->node.src[0] = w->node.src[1];
            w->node.src[1] = x;
            return true;
        }
    }
    return false;
}

static uint64_t state_hash(const struct work *w)
{
    uint64_t h = mix(0, 1);
    const struct ggml_tensor *n = &w->node;
    for (int r = 0; r <= GGML_MAX_SRC; r++) {
        const struct ggml_tensor *t = r == 0 ? n : n->src[r - 1];
        if (t == NULL) {
            h = mix(h, 0);
            continue;
        }
        h = mix(h, (uint64_t) (t - n) + 7); /* which struct */
        h = mix(h, (uint64_t) t->type);
        for (int i = 0; i < 4; i++) {
            h = mix(h, (uint64_t) t->ne[i]);
            h = mix(h, (uint64_t) t->nb[i]);
        }
    }
    for (int i = 0; i < GGML_MAX_OP_PARAMS / 4; i++) {
        h = mix(h, (uint64_t) (uint32_t) n->op_params[i]);
    }
    return h;
}

/* ---- the CPU device -------------------------------------------------------------------------- */

static ggml_backend_dev_t cpu;

static bool accepted(struct work *w, bool *contract, char *why, size_t why_size)
{
    *contract = false;
    if (!vgpu_validate_op(&w->node, why, why_size)) {
        return false;
    }
    if (!ggml_backend_dev_supports_op(cpu, &w->node)) {
        return false;
    }
    *contract = true;
    return vgpu_kernel_cpu_ok(&w->node, why, why_size);
}

static char *describe(const struct work *w, char *buf, size_t size)
{
    const struct ggml_tensor *n = &w->node;
    int len = snprintf(buf, size, "%s", ggml_op_desc(n));
    for (int r = 0; r <= GGML_MAX_SRC && len > 0 && (size_t) len < size; r++) {
        const struct ggml_tensor *t = r == 0 ? n : n->src[r - 1];
        if (t == NULL) {
            continue;
        }
        len += snprintf(buf + len, size - (size_t) len,
                        " %s%d=%s[%lld,%lld,%lld,%lld]nb[%zu,%zu,%zu,%zu]", r ? "src" : "dst",
                        r ? r - 1 : 0, ggml_type_name(t->type), (long long) t->ne[0],
                        (long long) t->ne[1], (long long) t->ne[2], (long long) t->ne[3], t->nb[0],
                        t->nb[1], t->nb[2], t->nb[3]);
        if (r == 0) {
            len += snprintf(buf + len, size - (size_t) len, " p[%d,%d,%d,%d,%d]", n->op_params[0],
                            n->op_params[1], n->op_params[2], n->op_params[3], n->op_params[4]);
        }
    }
    return buf;
}

/* ---- guarded memory (child only) ------------------------------------------------------------- */

struct region {
    void  *base;
    size_t len;
};
static struct region regions[2 * GGML_MAX_SRC + 4];
static int           n_regions;

/* size bytes that end against a PROT_NONE page (and start after one). */
static void *guarded(size_t size)
{
    const size_t page = (size_t) sysconf(_SC_PAGESIZE);
    size_t       body = (size + page - 1) / page * page;
    if (body == 0) {
        body = page;
    }
    size_t len = body + 2 * page;
    uint8_t *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        _exit(3);
    }
    if (mprotect(p + page, body, PROT_READ | PROT_WRITE) != 0) {
        perror("mprotect");
        _exit(3);
    }
    regions[n_regions++] = (struct region){p, len};
    return p + page + body - size;
}

static void release_all(void)
{
    for (int i = 0; i < n_regions; i++) {
        munmap(regions[i].base, regions[i].len);
    }
    n_regions = 0;
}

static void fill(struct ggml_tensor *t)
{
    size_t n = ggml_nbytes(t);
    uint8_t *p = t->data;
    switch (t->type) {
        case GGML_TYPE_F32:
            for (size_t i = 0; i + 4 <= n; i += 4) {
                float v = 0.5f;
                memcpy(p + i, &v, 4);
            }
            break;
        case GGML_TYPE_F16:
            for (size_t i = 0; i + 2 <= n; i += 2) {
                p[i] = 0x00, p[i + 1] = 0x38;
            }
            break;
        case GGML_TYPE_BF16:
            for (size_t i = 0; i + 2 <= n; i += 2) {
                p[i] = 0x00, p[i + 1] = 0x3f;
            }
            break;
        case GGML_TYPE_F64:
            for (size_t i = 0; i + 8 <= n; i += 8) {
                double v = 0.5;
                memcpy(p + i, &v, 8);
            }
            break;
        default:
            memset(p, 0, n);
            break;
    }
}

static void compute(struct work *w)
{
    struct ggml_tensor *n = &w->node;
    for (int r = 0; r <= GGML_MAX_SRC; r++) {
        struct ggml_tensor *t = role(w, r);
        if (t == NULL) {
            continue;
        }
        /* What the host lets a kernel read past a source inside its buffer (kernel-cpu.h). */
        const size_t over = r > 0 ? (size_t) vgpu_kernel_cpu_overread(n, r - 1) : 0;
        t->data = guarded(ggml_nbytes(t) + over);
        fill(t);
    }
    n->flags |= GGML_TENSOR_FLAG_COMPUTE;
    struct ggml_init_params ip = {ggml_graph_overhead_custom(8, false) + 4096, NULL, true};
    struct ggml_context *gctx = ggml_init(ip);
    struct ggml_cgraph  *gf = ggml_new_graph_custom(gctx, 8, false);
    ggml_graph_add_node(gf, n);
    struct ggml_cplan plan = ggml_graph_plan(gf, N_THREADS, NULL);
    plan.work_data = plan.work_size ? guarded(plan.work_size) : NULL;
    ggml_graph_compute(gf, &plan);
    ggml_free(gctx);
    release_all();
}

/* ---- driver ---------------------------------------------------------------------------------- */

static struct mutant *todo;
static size_t         n_todo, cap_todo;

static void push(struct mutant m)
{
    if (n_todo == cap_todo) {
        cap_todo = cap_todo ? 2 * cap_todo : 4096;
        todo = realloc(todo, cap_todo * sizeof *todo);
    }
    todo[n_todo++] = m;
}

/* Runs todo[] in children; returns the indices that crashed (their messages printed). */
static int run_all(bool print_holes, bool *crashed)
{
    volatile int64_t *cur = mmap(NULL, sizeof *cur, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char log_path[64];
    snprintf(log_path, sizeof log_path, "/tmp/sweep-cpu-%d.log", (int) getpid());
    int    holes = 0;
    size_t start = 0;
    while (start < n_todo) {
        *cur = (int64_t) start;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd >= 0) {
                dup2(fd, 2);
                close(fd);
            }
            for (size_t i = start; i < n_todo; i++) {
                *cur = (int64_t) i;
                struct work w;
                apply(&w, &todo[i]);
                alarm(5);
                compute(&w);
            }
            alarm(0);
            _exit(0);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            break;
        }
        size_t bad = (size_t) *cur;
        crashed[bad] = true;
        holes++;
        if (print_holes) {
            char msg[512] = "";
            FILE *f = fopen(log_path, "r");
            if (f != NULL) {
                char line[512];
                while (fgets(line, sizeof line, f) != NULL) {
                    if (line[0] != '\n') {
                        snprintf(msg, sizeof msg, "%s", line);
                    }
                }
                fclose(f);
                msg[strcspn(msg, "\n")] = '\0';
            }
            struct work w;
            apply(&w, &todo[bad]);
            char desc[1024];
            printf("HOLE %s | %s | %s\n", describe(&w, desc, sizeof desc),
                   WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exit", msg);
        }
        start = bad + 1;
    }
    unlink(log_path);
    return holes;
}

int main(int argc, char **argv)
{
    bool over = false, quiet = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--over") == 0) {
            over = true;
        } else if (strcmp(argv[i], "--quick") == 0) {
            seeds_per_sig  = 1;
            n_param_values = 5;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
        } else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) {
            only_op = argv[++i];
        } else if (strcmp(argv[i], "--seeds-per-sig") == 0 && i + 1 < argc) {
            seeds_per_sig = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--quick] [--over] [--op NAME] [--seeds-per-sig N] [--quiet]\n",
                    argv[0]);
            return 2;
        }
    }
    setenv("GGML_NO_BACKTRACE", "1", 1);
    ggml_backend_reg_t reg = ggml_backend_cpu_reg();
    cpu = ggml_backend_reg_dev_get(reg, 0);

    /* (That the contract's copy of the CPU type traits is the real one: unit.test-kernel-cpu.) */

    /* Seeds: the validator's unit test, its output silenced. */
    fflush(stdout);
    int saved = dup(1);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    int saved_err = dup(2);
    dup2(devnull, 2);
    int rc = vgpu_validate_op_tests_main();
    fflush(stdout);
    fflush(stderr);
    dup2(saved, 1);
    dup2(saved_err, 2);
    close(devnull);
    if (rc != 0) {
        fprintf(stderr, "sweep-cpu: test-validate-op failed (%d); run it on its own\n", rc);
        return 2;
    }

    /* Mutants. */
    size_t n_valid = 0, n_supported = 0, n_refused = 0, n_tried = 0;
    bool  *refused_by_contract = NULL;
    struct mutant *refused = NULL;
    size_t n_ref = 0, cap_ref = 0;
    uint64_t *seen = calloc(1 << 16, sizeof *seen);
    for (uint32_t s = 0; s < n_seeds; s++) {
        memset(seen, 0, (1 << 16) * sizeof *seen);
        struct mutant ms[8192];
        size_t nm = 0;
        ms[nm++] = (struct mutant){s, K_ID, 0, 0, 0};
        for (int t = 0; t < GGML_TYPE_COUNT; t++) {
            if (!type_ok((enum ggml_type) t)) {
                continue;
            }
            for (int r = 0; r <= GGML_MAX_SRC; r++) {
                ms[nm++] = (struct mutant){s, K_TYPE, (uint8_t) r, (uint8_t) t, 0};
            }
            ms[nm++] = (struct mutant){s, K_TYPE_D0, 0, (uint8_t) t, 0};
            ms[nm++] = (struct mutant){s, K_TYPE_SAME, 0, (uint8_t) t, 0};
            ms[nm++] = (struct mutant){s, K_TYPE_ALL, 0, (uint8_t) t, 0};
        }
        const enum ggml_type ft[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16};
        for (int r = 0; r <= GGML_MAX_SRC; r++) {
            for (int l = 0; l < L_COUNT; l++) {
                ms[nm++] = (struct mutant){s, K_LAYOUT, (uint8_t) r, (uint8_t) l, 0};
                for (int k = 0; k < 3; k++) {
                    ms[nm++] = (struct mutant){s, K_TYPE_LAYOUT, (uint8_t) r, (uint8_t) l,
                                               (uint8_t) ft[k]};
                }
            }
        }
        for (int p = 0; p < GGML_MAX_OP_PARAMS / 4; p++) {
            for (size_t v = 0; v < n_param_values; v++) {
                ms[nm++] = (struct mutant){s, K_PARAM, (uint8_t) p, (uint8_t) v, 0};
            }
        }
        ms[nm++] = (struct mutant){s, K_SWAP01, 0, 0, 0};

        for (size_t i = 0; i < nm; i++) {
            struct work w;
            if (!apply(&w, &ms[i])) {
                continue;
            }
            uint64_t h = state_hash(&w);
            size_t   slot = h & 0xffff;
            while (seen[slot] != 0 && seen[slot] != h) {
                slot = (slot + 1) & 0xffff;
            }
            if (seen[slot] == h) {
                continue;
            }
            seen[slot] = h;
            n_tried++;
            bool contract;
            char why[256];
            if (accepted(&w, &contract, why, sizeof why)) {
                n_valid++, n_supported++;
                push(ms[i]);
            } else if (contract) {
                n_valid++, n_supported++, n_refused++;
                if (over) {
                    if (n_ref == cap_ref) {
                        cap_ref = cap_ref ? 2 * cap_ref : 4096;
                        refused = realloc(refused, cap_ref * sizeof *refused);
                    }
                    refused[n_ref++] = ms[i];
                }
            }
        }
    }
    free(seen);
    printf("sweep-cpu: %zu seeds, %zu distinct mutants, %zu pass validation and supports_op, "
           "%zu of them refused by the CPU contract, %zu computed\n",
           n_seeds, n_tried, n_supported, n_refused, n_todo);
    fflush(stdout);

    bool *crashed = calloc(n_todo ? n_todo : 1, 1);
    int holes = run_all(true, crashed);
    free(crashed);
    printf("sweep-cpu: %d hole(s)\n", holes);

    if (over && n_ref > 0) {
        /* Compute what the contract refused; report the refusals the kernels survive. */
        free(todo);
        todo = refused, n_todo = cap_todo = n_ref;
        refused_by_contract = calloc(n_ref, 1);
        run_all(false, refused_by_contract);
        size_t survived = 0;
        for (size_t i = 0; i < n_ref; i++) {
            if (refused_by_contract[i]) {
                continue;
            }
            survived++;
            if (!quiet) {
                struct work w;
                apply(&w, &todo[i]);
                bool contract;
                char why[256], desc[1024];
                accepted(&w, &contract, why, sizeof why);
                printf("OVER %s | %s\n", why, describe(&w, desc, sizeof desc));
            }
        }
        printf("sweep-cpu: %zu of %zu contract refusals computed without a crash\n", survived,
               n_ref);
        free(refused_by_contract);
    }
    return holes ? 1 : 0;
}
