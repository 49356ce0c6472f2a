/*
 * Graph compute on ggml-cpu devices; see cpu-compute.h.
 *
 * Why not ggml_backend_graph_compute: ggml-cpu's backend allocates its work buffer with new[],
 * so it is only as aligned as malloc makes it (16 bytes). The matrix kernels read src1, converted
 * to the weights' vec_dot type, from that buffer: at 16 mod 64 (what a server worker's fresh
 * heap gives) every other 32-byte load of the F16 decode kernel splits a cache line, and a
 * decoded token of the tiny F16 model took up to 10 % longer than with the same buffer aligned
 * (docs/PERFORMANCE.md). A llama.cpp process on the CPU gets whatever its own heap gives.
 * So for a ggml-cpu backend this file does what ggml_backend_cpu_graph_compute does (plan,
 * work buffer, ggml_graph_compute), through ggml-cpu.h's public API, with the buffer aligned to
 * a cache line. The backend's other compute state stays at its defaults because this library
 * never changes it: no threadpool, no abort callback, no reference kernels; the thread count is
 * mirrored from EXT_SET_N_THREADS (cmd-device.c).
 */
#include "cpu-compute.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

void vgpu_cpu_api_load(struct vgpu_cpu_api *api, void *lib)
{
    memset(api, 0, sizeof(*api));
    if (!lib)
        return;
    *(void **)&api->plan = dlsym(lib, "ggml_graph_plan");
    *(void **)&api->compute = dlsym(lib, "ggml_graph_compute");
    *(void **)&api->is_cpu = dlsym(lib, "ggml_backend_is_cpu");
}

void vgpu_cpu_work_attach(struct vgpu_cpu_work *w, const struct vgpu_cpu_api *api, ggml_backend_t backend)
{
    w->on = api->plan && api->compute && api->is_cpu && api->is_cpu(backend);
    w->n_threads = GGML_DEFAULT_N_THREADS;
}

/* Grows the buffer to at least `size` bytes; false when out of memory (the old one stays). */
static bool work_reserve(struct vgpu_cpu_work *w, size_t size)
{
    if (size <= w->size)
        return true;
    /* aligned_alloc wants a multiple of the alignment; work sizes are far below SIZE_MAX. */
    size_t rounded = (size + VGPU_CPU_WORK_ALIGN - 1) & ~(size_t)(VGPU_CPU_WORK_ALIGN - 1);
    uint8_t *p = aligned_alloc(VGPU_CPU_WORK_ALIGN, rounded);
    if (!p)
        return false;
    free(w->data);
    w->data = p;
    w->size = rounded;
    return true;
}

enum ggml_status vgpu_cpu_compute(struct vgpu_cpu_work *w, const struct vgpu_cpu_api *api,
                                  struct ggml_cgraph *cgraph)
{
    struct ggml_cplan cplan = api->plan(cgraph, w->n_threads, NULL);
    if (cplan.work_size > 0) {
        if (!work_reserve(w, cplan.work_size))
            return GGML_STATUS_ALLOC_FAILED;
        cplan.work_data = w->data;
    }
    return api->compute(cgraph, &cplan);
}

void vgpu_cpu_work_free(struct vgpu_cpu_work *w)
{
    free(w->data);
    memset(w, 0, sizeof(*w));
}
