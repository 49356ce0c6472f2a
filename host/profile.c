/*
 * Host-side profiling; contracts in profile.h.
 */
#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apir.h"
#include "dispatch.h"
#include "ext.h"

_Static_assert(APIR_CMD_BASELINE_COUNT + (VGPU_CMD_EXT_END - VGPU_CMD_EXT_FIRST) <= VGPU_PROF_CMD_SLOTS,
               "VGPU_PROF_CMD_SLOTS holds every command id");

void vgpu_prof_init(struct vgpu_profile *p)
{
    memset(p, 0, sizeof(*p));
    const char *e = getenv("GGML_VIRTGPU_PROFILE");
    p->on = e && *e && strcmp(e, "0") != 0;
    if (p->on && strcmp(e, "2") == 0)
        p->events = calloc(VGPU_PROF_EVENTS, sizeof(*p->events)); /* none: no timeline */
}

void vgpu_prof_free(struct vgpu_profile *p)
{
    free(p->events);
    p->events = NULL;
}

void vgpu_prof_event(struct vgpu_profile *p, uint32_t what, uint32_t arg, uint64_t t0, uint64_t t1)
{
    if (!p->events)
        return;
    struct vgpu_prof_event *e = &p->events[p->n_events++ % VGPU_PROF_EVENTS];
    e->t0_ns = t0;
    e->dur_ns = t1 - t0;
    e->what = what;
    e->arg = arg;
}

void vgpu_prof_stat_add(struct vgpu_prof_stat *s, uint64_t ns)
{
    s->n++;
    s->total_ns += ns;
    if (ns > s->max_ns)
        s->max_ns = ns;
}

/* Slot of a command id, or -1 for an unknown id (not profiled). */
static int cmd_slot(uint32_t cmd)
{
    if (cmd < APIR_CMD_BASELINE_COUNT)
        return (int)cmd;
    if (cmd >= VGPU_CMD_EXT_FIRST && cmd < VGPU_CMD_EXT_END)
        return (int)(APIR_CMD_BASELINE_COUNT + (cmd - VGPU_CMD_EXT_FIRST));
    return -1;
}

static uint32_t slot_cmd(int slot)
{
    return slot < APIR_CMD_BASELINE_COUNT ? (uint32_t)slot
                                          : (uint32_t)(VGPU_CMD_EXT_FIRST + (slot - APIR_CMD_BASELINE_COUNT));
}

void vgpu_prof_command(struct vgpu_profile *p, uint32_t cmd, bool top, size_t len, uint64_t t0)
{
    if (!p->on)
        return;
    int s = cmd_slot(cmd);
    if (s < 0)
        return;
    uint64_t t1 = vgpu_prof_clock();
    vgpu_prof_stat_add(&p->cmd[s], t1 - t0);
    if (top) {
        vgpu_prof_stat_add(&p->cmd_top[s], t1 - t0);
        vgpu_prof_event(p, cmd, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len, t0, t1);
    }
}

void vgpu_prof_top_begin(struct vgpu_profile *p, uint64_t t0)
{
    if (p->on && p->last_end_ns && t0 > p->last_end_ns)
        vgpu_prof_stat_add(&p->phase[VGPU_PROF_GUEST_GAP], t0 - p->last_end_ns);
}

void vgpu_prof_top_end(struct vgpu_profile *p)
{
    if (p->on)
        p->last_end_ns = vgpu_prof_clock();
}

static const char *const phase_names[VGPU_PROF_N_PHASES] = {
    [VGPU_PROF_GUEST_GAP]     = "guest gap (between commands)",
    [VGPU_PROF_IMG_LOAD]      = "graph image load",
    [VGPU_PROF_CACHE_LOOKUP]  = "graph cache lookup",
    [VGPU_PROF_BUILD]         = "graph build (compute)",
    [VGPU_PROF_BUILD_TENSORS] = "  build: tensors",
    [VGPU_PROF_BUILD_CHECKS]  = "  build: validate+supports_op",
    [VGPU_PROF_BUILD_CGRAPH]  = "  build: cgraph",
    [VGPU_PROF_GUARD_PLAN]    = "  build: index-guard plan",
    [VGPU_PROF_GUARD_ALLOC]   = "    plan: device buffer alloc",
    [VGPU_PROF_CACHE_PUT]     = "graph cache put",
    [VGPU_PROF_GUARD_CHECKS]  = "index-guard checks",
    [VGPU_PROF_COMPUTE]       = "compute submit (async)",
    [VGPU_PROF_ASYNC_WAIT]    = "wait for the device",
    [VGPU_PROF_OPT_BUILD]     = "optimize: build",
    [VGPU_PROF_OPT_BACKEND]   = "optimize: backend",
};

static const char *const count_names[VGPU_PROF_N_COUNTS] = {
    [VGPU_PROF_CACHE_HIT]  = "graph cache hits (recompute)",
    [VGPU_PROF_CACHE_MISS] = "graph cache misses (NOT_CACHED)",
    [VGPU_PROF_GRAPH_NEW]  = "graphs built for compute",
    [VGPU_PROF_GRAPH_OPT]  = "graphs built for optimize",
};

static void row(uint32_t ctx_id, const char *name, const struct vgpu_prof_stat *s)
{
    fprintf(stderr, "ggml-virtgpu-backend[ctx %u]: profile: %-34s %9llu %11.3f %10.1f %10.1f\n", ctx_id, name,
            (unsigned long long)s->n, (double)s->total_ns / 1e6, s->n ? (double)s->total_ns / 1e3 / (double)s->n : 0.0,
            (double)s->max_ns / 1e3);
}

static void header(uint32_t ctx_id, const char *what)
{
    fprintf(stderr, "ggml-virtgpu-backend[ctx %u]: profile: %-34s %9s %11s %10s %10s\n", ctx_id, what, "count",
            "total ms", "mean us", "max us");
}

void vgpu_prof_report(const struct vgpu_profile *p, uint32_t ctx_id)
{
    bool any = false;
    for (int s = 0; s < VGPU_PROF_CMD_SLOTS && !any; s++)
        any = p->cmd[s].n != 0;
    if (!p->on || !any) /* a context that served nothing (a failed start) has nothing to say */
        return;
    header(ctx_id, "command");
    for (int s = 0; s < VGPU_PROF_CMD_SLOTS; s++) {
        if (!p->cmd[s].n)
            continue;
        const char *name = vgpu_command_name(slot_cmd(s));
        row(ctx_id, name, &p->cmd[s]);
        if (p->cmd_top[s].n && p->cmd_top[s].n != p->cmd[s].n) {
            row(ctx_id, "  of which top-level", &p->cmd_top[s]);
        }
    }
    header(ctx_id, "phase");
    for (int i = 0; i < VGPU_PROF_N_PHASES; i++) {
        if (p->phase[i].n)
            row(ctx_id, phase_names[i], &p->phase[i]);
    }
    for (int i = 0; i < VGPU_PROF_N_COUNTS; i++)
        fprintf(stderr, "ggml-virtgpu-backend[ctx %u]: profile: %-34s %9llu\n", ctx_id, count_names[i],
                (unsigned long long)p->count[i]);
    if (!p->events)
        return;
    /* The timeline, oldest first: start (CLOCK_MONOTONIC, ms), duration (us), request bytes, what. */
    uint64_t n = p->n_events < VGPU_PROF_EVENTS ? p->n_events : VGPU_PROF_EVENTS;
    for (uint64_t i = p->n_events - n; i < p->n_events; i++) {
        const struct vgpu_prof_event *e = &p->events[i % VGPU_PROF_EVENTS];
        const char *name = e->what >= VGPU_PROF_EVENT_PHASE ? phase_names[e->what - VGPU_PROF_EVENT_PHASE]
                                                            : vgpu_command_name(e->what);
        fprintf(stderr, "ggml-virtgpu-backend[ctx %u]: timeline: host %.3f %.1f %u %s\n", ctx_id,
                (double)e->t0_ns / 1e6, (double)e->dur_ns / 1e3, e->arg, name);
    }
}
