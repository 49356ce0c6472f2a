/*
 * Graph compute on ggml-cpu devices with a work buffer this library allocates (cpu-compute.c).
 */
#ifndef VGPU_HOST_CPU_COMPUTE_H
#define VGPU_HOST_CPU_COMPUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ggml-backend.h"
#include "ggml-cpu.h"

/* ggml-cpu's public compute API, resolved from the loaded backend library (NULLs if absent). */
struct vgpu_cpu_api {
    struct ggml_cplan (*plan)(const struct ggml_cgraph *cgraph, int n_threads, struct ggml_threadpool *tp);
    enum ggml_status (*compute)(struct ggml_cgraph *cgraph, struct ggml_cplan *cplan);
    bool (*is_cpu)(ggml_backend_t backend);
};

/* One device's state for computing without the backend's graph_compute. */
struct vgpu_cpu_work {
    bool     on;        /* the device's backend is ggml-cpu and the API above resolved */
    int      n_threads; /* mirrors the backend's (ggml_backend_cpu_set_n_threads) */
    uint8_t *data;      /* VGPU_CPU_WORK_ALIGN-aligned, grown on demand */
    size_t   size;
};

/* The work buffer's alignment: a cache line, and a multiple of every vector width ggml-cpu loads. */
#define VGPU_CPU_WORK_ALIGN 64

/* Resolves the API from `lib` (a dlopen handle); members stay NULL where a symbol is missing. */
void vgpu_cpu_api_load(struct vgpu_cpu_api *api, void *lib);
/*
 * Called once the device's backend exists: turns the direct path on when `backend` is a
 * ggml-cpu backend and the whole API resolved. `w` starts zeroed; the backend's thread count
 * starts at GGML_DEFAULT_N_THREADS, as ggml_backend_cpu_init sets it.
 */
void vgpu_cpu_work_attach(struct vgpu_cpu_work *w, const struct vgpu_cpu_api *api, ggml_backend_t backend);
/*
 * Computes `cgraph` as ggml_backend_graph_compute(backend, cgraph) would on a ggml-cpu backend
 * whose threadpool and abort callback are unset. Requires w->on. Returns GGML_STATUS_ALLOC_FAILED
 * when the work buffer cannot grow, else ggml_graph_compute's status.
 */
enum ggml_status vgpu_cpu_compute(struct vgpu_cpu_work *w, const struct vgpu_cpu_api *api,
                                  struct ggml_cgraph *cgraph);
/* Frees the work buffer; `w` is zeroed. */
void vgpu_cpu_work_free(struct vgpu_cpu_work *w);

#endif
