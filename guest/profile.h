/*
 * Guest-side profiling, the counterpart of the host's (host/profile.h): how many commands the
 * guest forwards (and waits for) or defers, by command, and where the guest's own time goes
 * (graph serialisation, graph_optimize, synchronize, init_tensor), so that a gap to native can
 * be split between the guest, the round trips and the host.
 *
 * Enabled by GGML_VIRTGPU_PROFILE (set, not empty, not "0") in the guest's environment, read
 * when the channel is created; one table on stderr each time a VirtGPU backend (a llama.cpp
 * context's stream) is freed, covering everything since the previous table. Off by default;
 * when off every call here is one branch and reads no clock. Counters are updated atomically:
 * several backends may compute from several threads. GGML_VIRTGPU_PROFILE=2 also keeps a
 * timeline of the last VGPU_GPROF_EVENTS waited commands and phases (CLOCK_MONOTONIC, as the
 * host's: the two merge), printed after the table.
 */
#ifndef VGPU_GUEST_PROFILE_H
#define VGPU_GUEST_PROFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

enum vgpu_gprof_phase {
    VGPU_GPROF_COMPUTE,       /* backend graph_compute, whole */
    VGPU_GPROF_SERIALIZE,     /*   of which serialising a new graph */
    VGPU_GPROF_OPTIMIZE,      /* backend graph_optimize, whole (serialisation and round trip) */
    VGPU_GPROF_OPT_SERIALIZE, /*   of which serialising */
    VGPU_GPROF_SYNCHRONIZE,   /* backend synchronize */
    VGPU_GPROF_INIT_TENSOR,   /* buffer init_tensor */
    VGPU_GPROF_PLANNED_WAIT,  /* a wait planned by wait prediction (wait-pred.h), whole */
    VGPU_GPROF_N_PHASES
};

#define VGPU_GPROF_CMD_SLOTS 64

struct vgpu_gprof_stat {
    uint64_t n;
    uint64_t total_ns;
    uint64_t max_ns;
};

#define VGPU_GPROF_EVENTS 4096

struct vgpu_gprof_event {
    uint64_t t0_ns;
    uint64_t dur_ns;
    uint32_t what; /* a command id (waited for), or VGPU_GPROF_EVENT_PHASE + a phase */
};
#define VGPU_GPROF_EVENT_PHASE 0x10000u

struct vgpu_gprof {
    bool                   on;
    struct vgpu_gprof_event *events; /* GGML_VIRTGPU_PROFILE=2: a ring */
    uint64_t               n_events;  /* atomic */
    struct vgpu_gprof_stat forward[VGPU_GPROF_CMD_SLOTS]; /* waited for: submit to answer */
    uint64_t               deferred[VGPU_GPROF_CMD_SLOTS];
    struct vgpu_gprof_stat phase[VGPU_GPROF_N_PHASES];
};

void vgpu_gprof_init(struct vgpu_gprof *p);

static inline uint64_t vgpu_gprof_now(const struct vgpu_gprof *p)
{
    if (!p->on)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vgpu_gprof_phase_slow(struct vgpu_gprof *p, enum vgpu_gprof_phase ph, uint64_t t0);
void vgpu_gprof_forward_slow(struct vgpu_gprof *p, uint32_t cmd, uint64_t t0);
void vgpu_gprof_defer_slow(struct vgpu_gprof *p, uint32_t cmd);

/* Adds now - t0 to a phase. */
static inline void vgpu_gprof_phase(struct vgpu_gprof *p, enum vgpu_gprof_phase ph, uint64_t t0)
{
    if (p->on)
        vgpu_gprof_phase_slow(p, ph, t0);
}
/* A command forwarded at t0 has its answer. */
static inline void vgpu_gprof_forward(struct vgpu_gprof *p, uint32_t cmd, uint64_t t0)
{
    if (p->on)
        vgpu_gprof_forward_slow(p, cmd, t0);
}
/* A command was deferred. */
static inline void vgpu_gprof_defer(struct vgpu_gprof *p, uint32_t cmd)
{
    if (p->on)
        vgpu_gprof_defer_slow(p, cmd);
}

/* Writes the table to stderr and starts counting afresh (nothing when off or empty). */
void vgpu_gprof_report(struct vgpu_gprof *p, const char *what);

#endif /* VGPU_GUEST_PROFILE_H */
