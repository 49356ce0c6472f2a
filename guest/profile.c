/*
 * Guest-side profiling; contracts in profile.h.
 */
#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apir.h"
#include "ext.h"
#include "guest.h"

/* Names of the extension commands (64..84), for the table; baseline ids print as numbers. */
static const char *const ext_names[] = {
    "EXT_HELLO", "EXT_DEVICE_INFO", "EXT_DEVICE_MEMORY", "EXT_BUFFER_ALLOC", "EXT_BUFFER_FREE",
    "EXT_BUFFER_CLEAR", "EXT_TENSOR_SET", "EXT_TENSOR_GET", "EXT_TENSOR_MEMSET", "EXT_TENSOR_COPY",
    "EXT_TENSOR_INIT", "EXT_GET_ALLOC_SIZE", "EXT_SUPPORTS_OP", "EXT_OFFLOAD_OP", "EXT_GRAPH_COMPUTE",
    "EXT_GRAPH_OPTIMIZE", "EXT_SET_N_THREADS", "EXT_NOP", "EXT_BATCH", "EXT_HOST_BUFFER_REGISTER",
    "EXT_HOST_BUFFER_UNREGISTER",
};
_Static_assert(sizeof(ext_names) / sizeof(ext_names[0]) == VGPU_CMD_EXT_END - VGPU_CMD_EXT_FIRST,
               "a name for every extension command");

_Static_assert(APIR_CMD_BASELINE_COUNT + (VGPU_CMD_EXT_END - VGPU_CMD_EXT_FIRST) <= VGPU_GPROF_CMD_SLOTS,
               "VGPU_GPROF_CMD_SLOTS holds every command id");

void vgpu_gprof_init(struct vgpu_gprof *p)
{
    memset(p, 0, sizeof(*p));
    p->on = vgpu_env_flag("GGML_VIRTGPU_PROFILE");
    const char *e = getenv("GGML_VIRTGPU_PROFILE");
    if (p->on && strcmp(e, "2") == 0)
        p->events = calloc(VGPU_GPROF_EVENTS, sizeof(*p->events)); /* kept for the process's life */
}

static void event(struct vgpu_gprof *p, uint32_t what, uint64_t t0, uint64_t t1)
{
    if (!p->events)
        return;
    uint64_t i = __atomic_fetch_add(&p->n_events, 1, __ATOMIC_RELAXED);
    struct vgpu_gprof_event *e = &p->events[i % VGPU_GPROF_EVENTS];
    e->t0_ns = t0;
    e->dur_ns = t1 - t0;
    e->what = what;
}

static int slot(uint32_t cmd)
{
    if (cmd < APIR_CMD_BASELINE_COUNT)
        return (int)cmd;
    if (cmd >= VGPU_CMD_EXT_FIRST && cmd < VGPU_CMD_EXT_END)
        return (int)(APIR_CMD_BASELINE_COUNT + (cmd - VGPU_CMD_EXT_FIRST));
    return -1;
}

static void stat_add(struct vgpu_gprof_stat *s, uint64_t ns)
{
    __atomic_fetch_add(&s->n, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->total_ns, ns, __ATOMIC_RELAXED);
    uint64_t m = __atomic_load_n(&s->max_ns, __ATOMIC_RELAXED);
    while (ns > m && !__atomic_compare_exchange_n(&s->max_ns, &m, ns, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

void vgpu_gprof_phase_slow(struct vgpu_gprof *p, enum vgpu_gprof_phase ph, uint64_t t0)
{
    uint64_t t1 = vgpu_gprof_now(p);
    stat_add(&p->phase[ph], t1 - t0);
    if (ph != VGPU_GPROF_INIT_TENSOR) /* hundreds per graph: they would crowd the rest out */
        event(p, VGPU_GPROF_EVENT_PHASE + ph, t0, t1);
}

void vgpu_gprof_forward_slow(struct vgpu_gprof *p, uint32_t cmd, uint64_t t0)
{
    int s = slot(cmd);
    uint64_t t1 = vgpu_gprof_now(p);
    if (s >= 0)
        stat_add(&p->forward[s], t1 - t0);
    event(p, cmd, t0, t1);
}

void vgpu_gprof_defer_slow(struct vgpu_gprof *p, uint32_t cmd)
{
    int s = slot(cmd);
    if (s >= 0)
        __atomic_fetch_add(&p->deferred[s], 1, __ATOMIC_RELAXED);
}

static const char *const phase_names[VGPU_GPROF_N_PHASES] = {
    [VGPU_GPROF_COMPUTE]       = "graph_compute",
    [VGPU_GPROF_SERIALIZE]     = "  of which serialize",
    [VGPU_GPROF_OPTIMIZE]      = "graph_optimize",
    [VGPU_GPROF_OPT_SERIALIZE] = "  of which serialize",
    [VGPU_GPROF_SYNCHRONIZE]   = "synchronize",
    [VGPU_GPROF_INIT_TENSOR]   = "init_tensor",
    [VGPU_GPROF_PLANNED_WAIT]  = "planned wait",
};

static void row(const char *what, const char *name, uint64_t deferred, const struct vgpu_gprof_stat *s)
{
    fprintf(stderr, "ggml-virtgpu: profile (%s): %-30s %9llu %9llu %11.3f %10.1f %10.1f\n", what, name,
                  (unsigned long long)deferred, (unsigned long long)s->n, (double)s->total_ns / 1e6,
                  s->n ? (double)s->total_ns / 1e3 / (double)s->n : 0.0, (double)s->max_ns / 1e3);
}

void vgpu_gprof_report(struct vgpu_gprof *p, const char *what)
{
    if (!p->on)
        return;
    bool any = false;
    for (int s = 0; s < VGPU_GPROF_CMD_SLOTS && !any; s++)
        any = p->forward[s].n || p->deferred[s];
    if (!any)
        return;
    fprintf(stderr, "ggml-virtgpu: profile (%s): %-30s %9s %9s %11s %10s %10s\n", what, "command", "deferred",
                  "waited", "wait ms", "mean us", "max us");
    for (int s = 0; s < VGPU_GPROF_CMD_SLOTS; s++) {
        if (!p->forward[s].n && !p->deferred[s])
            continue;
        uint32_t cmd = s < APIR_CMD_BASELINE_COUNT ? (uint32_t)s
                                                   : (uint32_t)(VGPU_CMD_EXT_FIRST + (s - APIR_CMD_BASELINE_COUNT));
        char name[32];
        if (cmd >= VGPU_CMD_EXT_FIRST)
            snprintf(name, sizeof(name), "%s", ext_names[cmd - VGPU_CMD_EXT_FIRST]);
        else
            snprintf(name, sizeof(name), "baseline command %u", cmd);
        row(what, name, p->deferred[s], &p->forward[s]);
    }
    fprintf(stderr, "ggml-virtgpu: profile (%s): %-30s %9s %9s %11s %10s %10s\n", what, "phase", "", "count",
                  "total ms", "mean us", "max us");
    for (int i = 0; i < VGPU_GPROF_N_PHASES; i++) {
        if (p->phase[i].n)
            row(what, phase_names[i], 0, &p->phase[i]);
    }
    if (p->events) {
        /* The timeline, oldest first: start (CLOCK_MONOTONIC, ms), duration (us), what. */
        uint64_t end = p->n_events, n = end < VGPU_GPROF_EVENTS ? end : VGPU_GPROF_EVENTS;
        for (uint64_t i = end - n; i < end; i++) {
            const struct vgpu_gprof_event *e = &p->events[i % VGPU_GPROF_EVENTS];
            char name[32];
            if (e->what >= VGPU_GPROF_EVENT_PHASE)
                snprintf(name, sizeof(name), "%s", phase_names[e->what - VGPU_GPROF_EVENT_PHASE]);
            else if (e->what >= VGPU_CMD_EXT_FIRST && e->what < VGPU_CMD_EXT_END)
                snprintf(name, sizeof(name), "%s", ext_names[e->what - VGPU_CMD_EXT_FIRST]);
            else
                snprintf(name, sizeof(name), "baseline command %u", e->what);
            fprintf(stderr, "ggml-virtgpu: timeline (%s): guest %.3f %.1f 0 %s\n", what, (double)e->t0_ns / 1e6,
                    (double)e->dur_ns / 1e3, name);
        }
    }
    bool on = p->on;
    struct vgpu_gprof_event *events = p->events;
    memset(p, 0, sizeof(*p));
    p->on = on;
    p->events = events;
}
