/*
 * Wait prediction (guest/wait-pred.c): what is learnt from an epoch, which waits get a plan,
 * and the plan's window. Times are made up (ns), as the module takes them from its caller.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wait-pred.h"

#define MS 1000000ll

/* One epoch: work `key` sent at t0, drained at t0 + dur. */
static void epoch(struct vgpu_wait_pred *p, uint64_t key, int64_t t0, int64_t dur)
{
    vgpu_pred_sent(p, key, t0);
    vgpu_pred_drained(p, t0 + dur);
}

static struct vgpu_wait_plan plan_for(struct vgpu_wait_pred *p, uint64_t key, int64_t t0)
{
    struct vgpu_wait_plan plan = { .spin_ns = 7 };
    vgpu_pred_sent(p, key, t0);
    vgpu_pred_plan(p, &plan);
    return plan;
}

/* The second run of the same work is planned around t0 + the first run's time. */
static void test_learns_and_plans(void **state)
{
    (void)state;
    struct vgpu_wait_pred p = { .min_ns = VGPU_PRED_MIN_NS };
    struct vgpu_wait_plan first = plan_for(&p, 42, 0);
    assert_int_equal(first.nap_until, 0); /* nothing known yet */
    assert_int_equal(first.watch_until, 0);
    vgpu_pred_drained(&p, 8 * MS);

    struct vgpu_wait_plan plan = plan_for(&p, 42, 100 * MS);
    int64_t margin = VGPU_PRED_BASE_MARGIN_NS + 8 * MS / 16; /* 0.7 ms */
    assert_int_equal(plan.nap_until, 108 * MS - margin);
    assert_int_equal(plan.watch_until, 108 * MS + margin);
    assert_int_equal(plan.spin_ns, 7); /* left alone */
    vgpu_pred_drained(&p, 100 * MS + 6 * MS);

    /* The estimate follows the last run. */
    plan = plan_for(&p, 42, 200 * MS);
    margin = VGPU_PRED_BASE_MARGIN_NS + 6 * MS / 16;
    assert_int_equal(plan.nap_until, 206 * MS - margin);
}

/* Other work, short work and an epoch's first send time. */
static void test_keys_and_limits(void **state)
{
    (void)state;
    struct vgpu_wait_pred p = { .min_ns = VGPU_PRED_MIN_NS };
    epoch(&p, 1, 0, 5 * MS);
    epoch(&p, 2, 10 * MS, VGPU_PRED_MIN_NS - 1); /* under min_ns */
    struct vgpu_wait_plan plan = plan_for(&p, 3, 20 * MS); /* never seen */
    assert_int_equal(plan.watch_until, 0);
    vgpu_pred_abandon(&p);
    plan = plan_for(&p, 2, 30 * MS); /* too short to plan */
    assert_int_equal(plan.watch_until, 0);
    vgpu_pred_abandon(&p);

    /* Two sends in one epoch: timed from the first, keyed by both. */
    vgpu_pred_sent(&p, 1, 40 * MS);
    vgpu_pred_sent(&p, 9, 41 * MS);
    vgpu_pred_drained(&p, 50 * MS);
    vgpu_pred_sent(&p, 1, 60 * MS);
    plan = plan_for(&p, 9, 61 * MS);
    int64_t margin = VGPU_PRED_BASE_MARGIN_NS + 10 * MS / 16;
    assert_int_equal(plan.watch_until, 70 * MS + margin);
    vgpu_pred_abandon(&p);
    plan = plan_for(&p, 1, 80 * MS); /* work 1 alone still has its own estimate */
    assert_int_equal(plan.watch_until, 85 * MS + VGPU_PRED_BASE_MARGIN_NS + 5 * MS / 16);
    vgpu_pred_abandon(&p);

    /* The window is bounded for long work. */
    epoch(&p, 7, 0, 1000 * MS);
    plan = plan_for(&p, 7, 2000 * MS);
    assert_int_equal(plan.watch_until - plan.nap_until, 2 * VGPU_PRED_MAX_MARGIN_NS);
    vgpu_pred_abandon(&p);

    /* An abandoned epoch teaches nothing; a drain with nothing sent does nothing. */
    vgpu_pred_sent(&p, 11, 0);
    vgpu_pred_abandon(&p);
    vgpu_pred_drained(&p, 9 * MS);
    plan = plan_for(&p, 11, 100 * MS);
    assert_int_equal(plan.watch_until, 0);
}

/* The least recently used estimate makes room; the ones in use stay. */
static void test_eviction(void **state)
{
    (void)state;
    struct vgpu_wait_pred p = { .min_ns = VGPU_PRED_MIN_NS };
    for (uint64_t k = 1; k <= VGPU_PRED_SLOTS; k++)
        epoch(&p, k, (int64_t)k * 100 * MS, 2 * MS);
    /* Use work 1 again, then bring in one more: work 2 (now the oldest) goes. */
    struct vgpu_wait_plan plan = plan_for(&p, 1, 5000 * MS);
    assert_true(plan.watch_until > 0);
    vgpu_pred_drained(&p, 5002 * MS);
    epoch(&p, 1000, 6000 * MS, 2 * MS);
    plan = plan_for(&p, 2, 7000 * MS);
    assert_int_equal(plan.watch_until, 0);
    vgpu_pred_abandon(&p);
    plan = plan_for(&p, 1, 8000 * MS);
    assert_true(plan.watch_until > 0);
    vgpu_pred_abandon(&p);
    plan = plan_for(&p, 1000, 9000 * MS);
    assert_true(plan.watch_until > 0);
}

static void test_mix(void **state)
{
    (void)state;
    assert_true(vgpu_pred_mix(0, 0) != 0);
    assert_true(vgpu_pred_mix(0, 1) != vgpu_pred_mix(0, 2));
    assert_true(vgpu_pred_mix(vgpu_pred_mix(0, 1), 2) != vgpu_pred_mix(vgpu_pred_mix(0, 2), 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_and_plans),
        cmocka_unit_test(test_keys_and_limits),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_mix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
