/*
 * Host-side profiling, a measuring facility (docs/PERFORMANCE.md "Profiling the host"): where
 * the worker's time goes per served command and per phase of a graph compute, so that a gap to
 * native can be placed (guest, transport, graph build, index guard, backend).
 *
 * Enabled per context by the environment variable GGML_VIRTGPU_PROFILE (set, not empty, not
 * "0") in the server's environment, read when the context is created. The summary table goes
 * to stderr when the context is destroyed. GGML_VIRTGPU_PROFILE=2 also keeps a timeline of the
 * last VGPU_PROF_EVENTS top-level commands and phases (CLOCK_MONOTONIC, the clock the guest's
 * timeline uses too, so that the two merge on one machine), printed after the table. Off by default; when off every call here is one
 * branch on ctx->prof.on and reads no clock.
 *
 * Everything lives in struct vgpu_ctx (no process-global state), so concurrent contexts of a
 * --no-fork server profile independently.
 */
#ifndef VGPU_HOST_PROFILE_H
#define VGPU_HOST_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Phases: nested inside commands (a phase's time is also in its command's). */
enum vgpu_prof_phase {
    VGPU_PROF_GUEST_GAP,     /* from the end of one top-level command to the next: waiting for the guest */
    VGPU_PROF_IMG_LOAD,      /* graph image copied into private memory */
    VGPU_PROF_CACHE_LOOKUP,  /* uid → cached graph */
    VGPU_PROF_BUILD,         /* a whole build for compute (the four below and the rest) */
    VGPU_PROF_BUILD_TENSORS, /*   wire tensors → host tensors (decode, shape/extent checks) */
    VGPU_PROF_BUILD_CHECKS,  /*   validate-op, check_alloc, supports_op, buffers */
    VGPU_PROF_BUILD_CGRAPH,  /*   the cgraph and its hash set */
    VGPU_PROF_GUARD_PLAN,    /*   index-guard plan (device copies included) */
    VGPU_PROF_GUARD_ALLOC,   /*     of which a new device buffer for index copies */
    VGPU_PROF_CACHE_PUT,     /* a built graph into the cache (eviction, budget) */
    VGPU_PROF_GUARD_CHECKS,  /* index checks before the compute (read-backs and uploads included) */
    VGPU_PROF_COMPUTE,       /* the backend's graph_compute_async (or the CPU compute) */
    VGPU_PROF_ASYNC_WAIT,    /* vgpu_ctx_async_wait with work queued: waiting for the device */
    VGPU_PROF_OPT_BUILD,     /* EXT_GRAPH_OPTIMIZE: the build (for optimize) */
    VGPU_PROF_OPT_BACKEND,   /* EXT_GRAPH_OPTIMIZE: the backend's graph_optimize and the reply */
    VGPU_PROF_N_PHASES
};

enum vgpu_prof_count {
    VGPU_PROF_CACHE_HIT,     /* recompute of a cached uid */
    VGPU_PROF_CACHE_MISS,    /* recompute of a uid not held (NOT_CACHED) */
    VGPU_PROF_GRAPH_NEW,     /* a graph image built for compute */
    VGPU_PROF_GRAPH_OPT,     /* a graph image built for graph_optimize */
    VGPU_PROF_N_COUNTS
};

/* Commands: the baseline ids, then the extension ids (VGPU_CMD_EXT_FIRST..). */
#define VGPU_PROF_CMD_SLOTS 64

struct vgpu_prof_stat {
    uint64_t n;
    uint64_t total_ns;
    uint64_t max_ns;
};

#define VGPU_PROF_EVENTS 4096

struct vgpu_prof_event {
    uint64_t t0_ns;
    uint64_t dur_ns;
    uint32_t what; /* a command id, or VGPU_PROF_EVENT_PHASE + a phase */
    uint32_t arg;  /* commands: request bytes */
};
#define VGPU_PROF_EVENT_PHASE 0x10000u

struct vgpu_profile {
    bool                  on;
    struct vgpu_prof_event *events; /* GGML_VIRTGPU_PROFILE=2: a ring of VGPU_PROF_EVENTS */
    uint64_t              n_events;
    uint64_t              last_end_ns; /* end of the last top-level command (0: none yet) */
    struct vgpu_prof_stat cmd[VGPU_PROF_CMD_SLOTS];
    struct vgpu_prof_stat cmd_top[VGPU_PROF_CMD_SLOTS]; /* the same, top-level commands only */
    struct vgpu_prof_stat phase[VGPU_PROF_N_PHASES];
    uint64_t              count[VGPU_PROF_N_COUNTS];
};

/* Turns profiling on when GGML_VIRTGPU_PROFILE says so. */
void vgpu_prof_init(struct vgpu_profile *p);
/* Frees the timeline. */
void vgpu_prof_free(struct vgpu_profile *p);
/* Records an event in the timeline (when there is one). */
void vgpu_prof_event(struct vgpu_profile *p, uint32_t what, uint32_t arg, uint64_t t0, uint64_t t1);

static inline uint64_t vgpu_prof_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A start time: 0 (no clock read) when profiling is off. */
static inline uint64_t vgpu_prof_now(const struct vgpu_profile *p)
{
    return p->on ? vgpu_prof_clock() : 0;
}

void vgpu_prof_stat_add(struct vgpu_prof_stat *s, uint64_t ns);

/* Adds now - t0 to a phase. */
static inline void vgpu_prof_phase(struct vgpu_profile *p, enum vgpu_prof_phase ph, uint64_t t0)
{
    if (p->on) {
        uint64_t t1 = vgpu_prof_clock();
        vgpu_prof_stat_add(&p->phase[ph], t1 - t0);
        if (p->events)
            vgpu_prof_event(p, VGPU_PROF_EVENT_PHASE + ph, 0, t0, t1);
    }
}

static inline void vgpu_prof_count(struct vgpu_profile *p, enum vgpu_prof_count c)
{
    if (p->on)
        p->count[c]++;
}

/* Adds now - t0 to command cmd (top: a top-level command, not a batch entry, of len bytes). */
void vgpu_prof_command(struct vgpu_profile *p, uint32_t cmd, bool top, size_t len, uint64_t t0);
/* A top-level command starts (t0) or has ended (its reply is written): the guest gap. */
void vgpu_prof_top_begin(struct vgpu_profile *p, uint64_t t0);
void vgpu_prof_top_end(struct vgpu_profile *p);

/* Writes the summary table to stderr, prefixed with the context id (nothing when off). */
void vgpu_prof_report(const struct vgpu_profile *p, uint32_t ctx_id);

#endif /* VGPU_HOST_PROFILE_H */
