/*
 * Wait prediction (contracts in wait-pred.h).
 */
#include "wait-pred.h"

#include <stddef.h>

uint64_t vgpu_pred_mix(uint64_t h, uint64_t v)
{
    /* splitmix64's finaliser over h ^ v: cheap, and every input bit moves every output bit */
    uint64_t z = (h ^ v) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 1;
}

void vgpu_pred_sent(struct vgpu_wait_pred *p, uint64_t work, int64_t now)
{
    if (p->key == 0)
        p->t0 = now;
    p->key = vgpu_pred_mix(p->key, work);
}

static struct vgpu_pred_slot *find(struct vgpu_wait_pred *p, uint64_t key)
{
    for (unsigned i = 0; i < VGPU_PRED_SLOTS; i++)
        if (p->slot[i].key == key)
            return &p->slot[i];
    return NULL;
}

void vgpu_pred_plan(struct vgpu_wait_pred *p, struct vgpu_wait_plan *plan)
{
    if (p->key == 0)
        return;
    struct vgpu_pred_slot *s = find(p, p->key);
    if (!s || s->est_ns < p->min_ns)
        return;
    s->used = ++p->clock;
    int64_t margin = VGPU_PRED_BASE_MARGIN_NS + s->est_ns / 16;
    if (margin > VGPU_PRED_MAX_MARGIN_NS)
        margin = VGPU_PRED_MAX_MARGIN_NS;
    int64_t end = p->t0 + s->est_ns;
    plan->nap_until = end - margin;
    plan->watch_until = end + margin;
}

void vgpu_pred_drained(struct vgpu_wait_pred *p, int64_t now)
{
    if (p->key == 0)
        return;
    struct vgpu_pred_slot *s = find(p, p->key);
    if (!s) {
        s = &p->slot[0];
        for (unsigned i = 1; i < VGPU_PRED_SLOTS && s->key != 0; i++)
            if (p->slot[i].key == 0 || p->slot[i].used < s->used)
                s = &p->slot[i];
        s->key = p->key;
    }
    s->est_ns = now - p->t0;
    s->used = ++p->clock;
    p->key = 0;
}
