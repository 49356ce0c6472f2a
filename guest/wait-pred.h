/*
 * Wait prediction: when the guest waits for long host work (a graph compute, a big copy), it
 * sleeps, and a sleeping CPU of a virtual machine can take from 50 to 500 us to wake once the
 * host's reply comes (measured on the H100 machine: the guest noticed the end of an 8 ms
 * compute up to 460 us late). Natively, ggml's CUDA backend spins in cudaStreamSynchronize.
 * The same work usually repeats (a cached graph per ubatch shape, the same input copies), so
 * the channel remembers how long the last run of the same work took, from its first send to
 * the reply that drained it, and plans the next wait: sleep until shortly before the
 * predicted end, then watch the reply word (yielding the CPU between looks) until shortly
 * after it. A wrong prediction costs little: the reply still wakes a sleeper early, and the
 * watch window is bounded.
 *
 * An epoch is the long work sent between two drains (waits after which nothing is in flight);
 * its key hashes what that work was (commands, graph uids, byte counts), so that different
 * shapes of work keep separate estimates. Pure bookkeeping: no clock, no I/O (times are
 * passed in, CLOCK_MONOTONIC ns).
 */
#ifndef VGPU_GUEST_WAIT_PRED_H
#define VGPU_GUEST_WAIT_PRED_H

#include <stdint.h>

#include "transport.h"

/* Estimates kept (least recently used goes first). */
#define VGPU_PRED_SLOTS 16u
/* Default of vgpu_wait_pred.min_ns: work estimated shorter is not planned (it blocks or spins
 * as the wait policy says). */
#define VGPU_PRED_MIN_NS 100000ll
/* Half the watch window: this plus a sixteenth of the estimate, at most VGPU_PRED_MAX_MARGIN_NS. */
#define VGPU_PRED_BASE_MARGIN_NS 200000ll
#define VGPU_PRED_MAX_MARGIN_NS  1000000ll

struct vgpu_pred_slot {
    uint64_t key;    /* 0 = empty */
    int64_t  est_ns; /* first send to drain, last time */
    uint64_t used;   /* recency stamp */
};

struct vgpu_wait_pred {
    int64_t               min_ns; /* shortest estimate that gets a plan */
    uint64_t              key;    /* the current epoch's work; 0 = none sent yet */
    int64_t               t0;     /* when its first long work was sent */
    uint64_t              clock;
    struct vgpu_pred_slot slot[VGPU_PRED_SLOTS];
};

/* Folds v into the hash h; never returns 0 (0 means "no work"). */
uint64_t vgpu_pred_mix(uint64_t h, uint64_t v);

/* Long work whose hash is `work` (non-zero) was sent at `now`. */
void vgpu_pred_sent(struct vgpu_wait_pred *p, uint64_t work, int64_t now);

/*
 * Fills plan->nap_until and plan->watch_until for a wait that will drain the current epoch,
 * if its work has an estimate of at least min_ns; otherwise leaves plan alone.
 */
void vgpu_pred_plan(struct vgpu_wait_pred *p, struct vgpu_wait_plan *plan);

/* A wait drained the epoch at `now`: remembers how long its work took and starts a new one. */
void vgpu_pred_drained(struct vgpu_wait_pred *p, int64_t now);

/* Forgets the current epoch without learning from it (its work failed or was resent). */
static inline void vgpu_pred_abandon(struct vgpu_wait_pred *p) { p->key = 0; }

#endif /* VGPU_GUEST_WAIT_PRED_H */
