/*
 * replay-backend-ops: runs ggml's own conformance suite through the per-op validator.
 *
 * A ggml backend module (libggml-vgpu-validate.so, a "GPU" device named VGPU-VALIDATE) that
 * wraps the CPU backend: every supports_op subject and every node of every graph it computes
 * goes through vgpu_validate_op() and then, as the CPU is what runs it, the CPU kernel
 * contract vgpu_kernel_cpu_ok(), exactly where the host library calls them. A
 * rejection is printed to stderr as
 *     VGPU-VALIDATE REJECT <where> <op>(<name>): <reason>
 * and makes supports_op answer false (test-backend-ops then reports the case as "not
 * supported") or graph_compute fail (the case FAILs). Accepted work runs on the CPU backend, so
 * test-backend-ops compares the CPU against itself and any failure or skip it reports beyond
 * the CPU's own is a false rejection. A summary line is printed at exit.
 *
 * Use (not a registered test; needs the pinned build's test-backend-ops):
 *     GGML_BACKEND_PATH=<build>/lib/libggml-vgpu-validate.so \
 *         <llama build>/bin/test-backend-ops -b VGPU-VALIDATE [-o OP] [test|grad] 2>rej.log
 *     grep -c 'VGPU-VALIDATE REJECT' rej.log
 * It was a module rather than a plain executable because test-backend-ops (C++) is the only
 * source of its ~20k cases; a backend module lets it run unchanged.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend-impl.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "kernel-cpu.h"
#include "validate-op.h"

#define EXPORT __attribute__((visibility("default")))

static atomic_long n_supports, n_nodes, n_rejects;

/* The CPU device everything is forwarded to (loaded before us by ggml_backend_load_all). */
static ggml_backend_dev_t cpu_dev(void)
{
    static ggml_backend_dev_t dev;
    if (dev == NULL) {
        dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        if (dev == NULL) {
            ggml_backend_load(VGPU_REPLAY_CPU_BACKEND);
            dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        }
        if (dev == NULL) {
            fprintf(stderr, "VGPU-VALIDATE: no CPU backend\n");
            abort();
        }
    }
    return dev;
}

/* Validates t (and, where the CPU supports it, checks the CPU kernel contract); logs a
 * rejection (where = "supports_op" or "compute"). */
static bool check(const struct ggml_tensor *t, const char *where)
{
    char why[512];
    if (vgpu_validate_op(t, why, sizeof why) &&
        (!ggml_backend_dev_supports_op(cpu_dev(), t) || vgpu_kernel_cpu_ok(t, why, sizeof why))) {
        return true;
    }
    atomic_fetch_add(&n_rejects, 1);
    fprintf(stderr, "VGPU-VALIDATE REJECT %s %s(%s): %s\n", where,
            (int) t->op >= 0 && t->op < GGML_OP_COUNT ? ggml_op_name(t->op) : "?", t->name, why);
    return false;
}

__attribute__((destructor)) static void summary(void)
{
    if (atomic_load(&n_supports) + atomic_load(&n_nodes) > 0) {
        fprintf(stderr, "VGPU-VALIDATE: %ld supports_op subjects, %ld graph nodes, %ld rejected\n",
                atomic_load(&n_supports), atomic_load(&n_nodes), atomic_load(&n_rejects));
    }
}

/* ---- backend ------------------------------------------------------------------------------- */

static const char *be_get_name(ggml_backend_t backend)
{
    (void) backend;
    return "VGPU-VALIDATE";
}

static void be_free(ggml_backend_t backend)
{
    ggml_backend_free((ggml_backend_t) backend->context);
    free(backend);
}

static void be_synchronize(ggml_backend_t backend)
{
    ggml_backend_synchronize((ggml_backend_t) backend->context);
}

static enum ggml_status be_graph_compute(ggml_backend_t backend, struct ggml_cgraph *cgraph)
{
    const int n = ggml_graph_n_nodes(cgraph);
    for (int i = 0; i < n; i++) {
        atomic_fetch_add(&n_nodes, 1);
        if (!check(ggml_graph_node(cgraph, i), "compute")) {
            return GGML_STATUS_FAILED;
        }
    }
    return ggml_backend_graph_compute((ggml_backend_t) backend->context, cgraph);
}

static const struct ggml_backend_i be_iface = {
    .get_name      = be_get_name,
    .free          = be_free,
    .synchronize   = be_synchronize,
    .graph_compute = be_graph_compute,
};

static ggml_guid_t be_guid(void)
{
    static ggml_guid guid = {0x76, 0x67, 0x70, 0x75, 0x2d, 0x76, 0x61, 0x6c,
                             0x69, 0x64, 0x61, 0x74, 0x65, 0x2d, 0x6f, 0x70};
    return &guid;
}

/* test-backend-ops sets the thread count through this proc address; forward to the CPU's. */
static void set_n_threads(ggml_backend_t backend, int n_threads)
{
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu_dev());
    ggml_backend_set_n_threads_t fn =
        (ggml_backend_set_n_threads_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
    if (fn != NULL) {
        fn((ggml_backend_t) backend->context, n_threads);
    }
}

/* ---- device -------------------------------------------------------------------------------- */

static const char *dev_get_name(ggml_backend_dev_t dev)
{
    (void) dev;
    return "VGPU-VALIDATE";
}

static const char *dev_get_description(ggml_backend_dev_t dev)
{
    (void) dev;
    return "CPU behind vgpu_validate_op";
}

static void dev_get_memory(ggml_backend_dev_t dev, size_t *free_mem, size_t *total)
{
    (void) dev;
    ggml_backend_dev_memory(cpu_dev(), free_mem, total);
}

static enum ggml_backend_dev_type dev_get_type(ggml_backend_dev_t dev)
{
    (void) dev;
    return GGML_BACKEND_DEVICE_TYPE_GPU;
}

static void dev_get_props(ggml_backend_dev_t dev, struct ggml_backend_dev_props *props)
{
    ggml_backend_dev_get_props(cpu_dev(), props);
    props->name        = dev_get_name(dev);
    props->description = dev_get_description(dev);
    props->type        = GGML_BACKEND_DEVICE_TYPE_GPU;
    props->caps.async  = false;
    props->caps.events = false;
    props->caps.buffer_from_host_ptr = false;
}

static ggml_backend_t dev_init_backend(ggml_backend_dev_t dev, const char *params)
{
    ggml_backend_t inner = ggml_backend_dev_init(cpu_dev(), params);
    if (inner == NULL) {
        return NULL;
    }
    ggml_backend_t backend = calloc(1, sizeof *backend);
    if (backend == NULL) {
        ggml_backend_free(inner);
        return NULL;
    }
    backend->guid    = be_guid();
    backend->iface   = be_iface;
    backend->device  = dev;
    backend->context = inner;
    return backend;
}

static ggml_backend_buffer_type_t dev_get_buffer_type(ggml_backend_dev_t dev)
{
    (void) dev;
    return ggml_backend_dev_buffer_type(cpu_dev());
}

static bool dev_supports_op(ggml_backend_dev_t dev, const struct ggml_tensor *op)
{
    (void) dev;
    atomic_fetch_add(&n_supports, 1);
    if (!check(op, "supports_op")) {
        return false;
    }
    return ggml_backend_dev_supports_op(cpu_dev(), op);
}

static bool dev_supports_buft(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft)
{
    (void) dev;
    return ggml_backend_buft_is_host(buft);
}

static const struct ggml_backend_device_i dev_iface = {
    .get_name        = dev_get_name,
    .get_description = dev_get_description,
    .get_memory      = dev_get_memory,
    .get_type        = dev_get_type,
    .get_props       = dev_get_props,
    .init_backend    = dev_init_backend,
    .get_buffer_type = dev_get_buffer_type,
    .supports_op     = dev_supports_op,
    .supports_buft   = dev_supports_buft,
};

/* ---- registry ------------------------------------------------------------------------------ */

static const char *reg_get_name(ggml_backend_reg_t reg)
{
    (void) reg;
    return "VGPU-VALIDATE";
}

static size_t reg_get_device_count(ggml_backend_reg_t reg)
{
    (void) reg;
    return 1;
}

static struct ggml_backend_device the_device;

static ggml_backend_dev_t reg_get_device(ggml_backend_reg_t reg, size_t index)
{
    (void) reg;
    return index == 0 ? &the_device : NULL;
}

static void *reg_get_proc_address(ggml_backend_reg_t reg, const char *name)
{
    (void) reg;
    if (strcmp(name, "ggml_backend_set_n_threads") == 0) {
        return (void *) set_n_threads;
    }
    return NULL;
}

static struct ggml_backend_reg the_reg = {
    .api_version = GGML_BACKEND_API_VERSION,
    .iface       = {
        .get_name         = reg_get_name,
        .get_device_count = reg_get_device_count,
        .get_device       = reg_get_device,
        .get_proc_address = reg_get_proc_address,
    },
};

EXPORT ggml_backend_reg_t ggml_backend_init(void);

ggml_backend_reg_t ggml_backend_init(void)
{
    the_device.iface   = dev_iface;
    the_device.reg     = &the_reg;
    the_device.context = NULL;
    return &the_reg;
}
