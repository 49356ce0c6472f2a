/*
 * The guest's unix-socket transport and call layer against an in-test fake server
 * (test-guest-fakehost.c): HELLO, memfd resources that both sides really share, replies
 * through the reply word and a futex wake, and every way the server can go away.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "apir.h"
#include "channel.h"
#include "test-guest-fakehost.h"
#include "transport.h"

/* Answers every command with ret = 40 + cmd_flags and a payload echoing the first u32. */
static enum fake_action echo_handler(struct fake_host *h, int32_t type, int32_t flags, struct vgpu_dec *req,
                                     struct vgpu_enc *rep, uint32_t *ret)
{
    (void)h;
    (void)type;
    uint32_t v = vgpu_dec_u32(req);
    vgpu_enc_u32(rep, v ^ 0xA5A5A5A5u);
    *ret = 40 + (uint32_t)flags;
    return FAKE_REPLY;
}

static struct vgpu_transport *open_ok(struct fake_host *h, int timeout_ms)
{
    struct vgpu_transport *tp = NULL;
    char why[256] = "";
    int r = vgpu_unix_open(h->path, timeout_ms, &tp, why, sizeof(why));
    if (r != 0)
        fail_msg("vgpu_unix_open: %d %s", r, why);
    assert_non_null(tp);
    return tp;
}

static void test_hello(void **state)
{
    (void)state;
    struct fake_host h = { .max_command_size = 65536 };
    assert_int_equal(fake_host_start(&h, echo_handler, NULL), 0);
    struct vgpu_transport *tp = open_ok(&h, 0);
    /* The whole SUBMIT message (8-byte header + command) must fit the server's bound. */
    assert_true(tp->max_command_size + 8 <= 65536);
    assert_true(tp->max_command_size >= 32768);
    assert_int_equal(tp->cmd_type_offset, 0);
    assert_non_null(strstr(tp->endpoint, h.path));
    tp->ops->destroy(tp);
    fake_host_stop(&h);
    assert_int_equal(h.n_connections, 1);
}

static void test_hello_refused(void **state)
{
    (void)state;
    struct fake_host h = { .hello_status = -EDQUOT };
    assert_int_equal(fake_host_start(&h, echo_handler, NULL), 0);
    struct vgpu_transport *tp = NULL;
    char why[256] = "";
    assert_true(vgpu_unix_open(h.path, 0, &tp, why, sizeof(why)) < 0);
    assert_null(tp);
    assert_non_null(strstr(why, "refused"));
    fake_host_stop(&h);
}

static void test_connect_refused(void **state)
{
    (void)state;
    struct vgpu_transport *tp = NULL;
    char why[256] = "";
    assert_true(vgpu_unix_open("/tmp/vgpu-no-such-socket.sock", 0, &tp, why, sizeof(why)) < 0);
    assert_null(tp);
    assert_non_null(strstr(why, "connect(/tmp/vgpu-no-such-socket.sock)"));
}

/* The server maps the fd it was passed: what it writes we read, and the other way round. */
static enum fake_action res_handler(struct fake_host *h, int32_t type, int32_t flags, struct vgpu_dec *req,
                                    struct vgpu_enc *rep, uint32_t *ret)
{
    (void)type;
    (void)flags;
    uint32_t id = vgpu_dec_u32(req);
    uint32_t off = vgpu_dec_u32(req);
    struct fake_res *r = fake_host_res(h, id);
    if (!r || off + 4 > r->size) {
        *ret = 99;
        return FAKE_REPLY;
    }
    uint32_t seen;
    memcpy(&seen, r->ptr + off, 4);
    vgpu_enc_u32(rep, seen);
    uint32_t mark = 0xC0FFEE00u + off;
    memcpy(r->ptr + off + 4, &mark, 4);
    *ret = 0;
    return FAKE_REPLY;
}

static void test_resource_memfd(void **state)
{
    (void)state;
    struct fake_host h = { 0 };
    assert_int_equal(fake_host_start(&h, res_handler, NULL), 0);
    struct vgpu_transport *tp = open_ok(&h, 0);
    struct vgpu_resource reply, res;
    assert_int_equal(tp->ops->resource_create(tp, 4096, &reply), 0);
    assert_int_equal(tp->ops->resource_create(tp, 100000, &res), 0);
    assert_true(res.id != 0 && res.id != reply.id);
    assert_true(res.size >= 100000);
    assert_int_equal(res.size % vgpu_page_size(), 0);
    for (size_t i = 0; i < res.size; i++)
        assert_int_equal(((uint8_t *)res.ptr)[i], 0);

    uint32_t off = 65536 + 8;
    uint32_t pattern = 0x12345678u;
    memcpy((uint8_t *)res.ptr + off, &pattern, 4);

    uint8_t cmd[64];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, cmd, sizeof(cmd));
    vgpu_enc_i32(&enc, APIR_COMMAND_TYPE_FORWARD);
    vgpu_enc_i32(&enc, 3);
    vgpu_enc_u32(&enc, reply.id);
    vgpu_enc_u32(&enc, res.id);
    vgpu_enc_u32(&enc, off);
    *(uint32_t *)reply.ptr = 0;
    assert_int_equal(tp->ops->submit(tp, cmd, vgpu_enc_used(&enc)), 0);
    uint32_t word = 0;
    struct vgpu_wait_plan spin = { .spin_ns = 20000 };
    assert_int_equal(tp->ops->wait_reply(tp, &reply, &word, &spin), 0);
    assert_int_equal(word, 1);
    uint32_t seen, mark;
    memcpy(&seen, (uint8_t *)reply.ptr + 4, 4);
    memcpy(&mark, (uint8_t *)res.ptr + off + 4, 4);
    assert_int_equal(seen, pattern);           /* the server read our write */
    assert_int_equal(mark, 0xC0FFEE00u + off); /* we read the server's write */

    tp->ops->resource_destroy(tp, &res);
    assert_int_equal(res.id, 0);
    tp->ops->resource_destroy(tp, &reply);
    /* RESOURCE_DESTROY has no answer: give the server a moment to read both. */
    for (int i = 0; i < 200 && __atomic_load_n(&h.n_destroyed, __ATOMIC_SEQ_CST) < 2; i++)
        usleep(5000);
    tp->ops->destroy(tp);
    fake_host_stop(&h);
    assert_int_equal(h.n_resources, 2);
    assert_int_equal(h.n_destroyed, 2);
}

/* A reply that comes after the spin: the futex wake ends the wait, not the slice timeout. */
static void test_submit_futex_wake(void **state)
{
    (void)state;
    struct fake_host h = { .reply_delay_ms = 20 };
    assert_int_equal(fake_host_start(&h, echo_handler, NULL), 0);
    struct vgpu_transport *tp = open_ok(&h, 0);
    char why[256];
    struct vgpu_channel *ch = vgpu_channel_create(tp, why, sizeof(why));
    assert_non_null(ch);

    double best = 1e9;
    for (int i = 0; i < 5; i++) {
        assert_true(vgpu_channel_lock(ch));
        struct vgpu_enc enc;
        vgpu_channel_begin(ch, &enc, APIR_COMMAND_TYPE_FORWARD, 7 + i);
        vgpu_enc_u32(&enc, 0x11110000u + (uint32_t)i);
        struct vgpu_dec dec;
        double t0 = fake_now_ms();
        int code = vgpu_channel_forward(ch, &enc, &dec);
        double dt = fake_now_ms() - t0;
        assert_int_equal(code, 40 + 7 + i - APIR_FORWARD_BASE_INDEX);
        assert_int_equal(vgpu_dec_u32(&dec), (0x11110000u + (uint32_t)i) ^ 0xA5A5A5A5u);
        vgpu_channel_unlock(ch);
        if (dt < best)
            best = dt;
        assert_true(dt >= 19.0);
    }
    /* Without the wake the guest would only look again after a 100 ms slice. */
    assert_true(best < 90.0);
    assert_false(vgpu_channel_is_lost(ch));
    vgpu_channel_destroy(ch);
    fake_host_stop(&h);
}

/* ---- wait plans: a reply word written from a thread, as the host would write it ---------------- */

struct late_writer {
    uint32_t *word;
    int       delay_ms;
    bool      wake; /* FUTEX_WAKE after the store, as the server does */
};

static void *late_write(void *arg)
{
    struct late_writer *w = arg;
    usleep((useconds_t)w->delay_ms * 1000);
    __atomic_store_n(w->word, 5u, __ATOMIC_RELEASE);
    if (w->wake)
        syscall(SYS_futex, w->word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return NULL;
}

/* Waits with `plan` (times relative to now, in ms; 0 = not set) for a word written after
 * delay_ms; returns the milliseconds the wait took. */
static double planned_wait(int delay_ms, bool wake, double nap_ms, double watch_ms)
{
    struct fake_host h = { 0 };
    assert_int_equal(fake_host_start(&h, echo_handler, NULL), 0);
    struct vgpu_transport *tp = open_ok(&h, 0);
    struct vgpu_resource reply;
    assert_int_equal(tp->ops->resource_create(tp, 4096, &reply), 0);
    struct late_writer w = { reply.ptr, delay_ms, wake };
    int64_t now = vgpu_now_ns();
    struct vgpu_wait_plan plan = {
        .nap_until = nap_ms > 0 ? now + (int64_t)(nap_ms * 1e6) : 0,
        .watch_until = watch_ms > 0 ? now + (int64_t)(watch_ms * 1e6) : 0,
    };
    pthread_t t;
    double t0 = fake_now_ms();
    assert_int_equal(pthread_create(&t, NULL, late_write, &w), 0);
    uint32_t word = 0;
    assert_int_equal(tp->ops->wait_reply(tp, &reply, &word, &plan), 0);
    double dt = fake_now_ms() - t0;
    assert_int_equal(word, 5);
    pthread_join(t, NULL);
    tp->ops->resource_destroy(tp, &reply);
    tp->ops->destroy(tp);
    fake_host_stop(&h);
    return dt;
}

/*
 * A reply that comes during the watch window is seen at once even without a futex wake;
 * without the window the same reply waits for the end of a 100 ms blocking slice.
 */
static void test_plan_watch(void **state)
{
    (void)state;
    double dt = planned_wait(30, false, 10, 80);
    assert_true(dt >= 29.0 && dt < 75.0);
    dt = planned_wait(30, false, 0, 0);
    assert_true(dt >= 90.0);
}

/* A reply that comes during the nap wakes the guest then, not at the nap's end. */
static void test_plan_nap_woken(void **state)
{
    (void)state;
    double dt = planned_wait(10, true, 400, 450);
    assert_true(dt >= 9.0 && dt < 200.0);
}

/* Runs one call against a server doing `action` on SUBMIT; returns the time it took. */
static enum fake_action g_action;
static uint32_t g_ret = 4;
static enum fake_action action_handler(struct fake_host *h, int32_t type, int32_t flags, struct vgpu_dec *req,
                                       struct vgpu_enc *rep, uint32_t *ret)
{
    (void)h;
    (void)type;
    (void)flags;
    (void)req;
    (void)rep;
    *ret = g_ret;
    return g_action;
}

static double failing_call(struct fake_host *h, int timeout_ms, int *code_out, struct vgpu_channel **ch_out)
{
    assert_int_equal(fake_host_start(h, action_handler, NULL), 0);
    struct vgpu_transport *tp = open_ok(h, timeout_ms);
    char why[256];
    struct vgpu_channel *ch = vgpu_channel_create(tp, why, sizeof(why));
    assert_non_null(ch);
    assert_true(vgpu_channel_lock(ch));
    struct vgpu_enc enc;
    vgpu_channel_begin(ch, &enc, APIR_COMMAND_TYPE_FORWARD, 1);
    struct vgpu_dec dec;
    double t0 = fake_now_ms();
    *code_out = vgpu_channel_forward(ch, &enc, &dec);
    double dt = fake_now_ms() - t0;
    vgpu_channel_unlock(ch);
    *ch_out = ch;
    return dt;
}

static void test_server_closes_mid_call(void **state)
{
    (void)state;
    struct fake_host h = { .reply_delay_ms = 200 };
    g_action = FAKE_CLOSE;
    int code;
    struct vgpu_channel *ch;
    double dt = failing_call(&h, 0, &code, &ch);
    assert_true(code < 0);
    assert_true(dt < 2000.0);
    assert_true(vgpu_channel_is_lost(ch));
    assert_non_null(strstr(ch->lost_reason, "closed"));

    /* Sticky: later calls fail at once, without touching the socket. */
    double t0 = fake_now_ms();
    assert_false(vgpu_channel_lock(ch));
    assert_true(fake_now_ms() - t0 < 50.0);
    vgpu_channel_destroy(ch);
    fake_host_stop(&h);
    assert_int_equal(h.n_submits, 1);
}

static void test_server_fatal(void **state)
{
    (void)state;
    struct fake_host h = { .fatal_text = "resource 9 is unknown" };
    g_action = FAKE_FATAL_CLOSE;
    int code;
    struct vgpu_channel *ch;
    double dt = failing_call(&h, 0, &code, &ch);
    assert_true(code < 0);
    assert_true(dt < 2000.0);
    assert_true(vgpu_channel_is_lost(ch));
    assert_non_null(strstr(ch->lost_reason, "resource 9 is unknown"));
    vgpu_channel_destroy(ch);
    fake_host_stop(&h);
}

static void test_timeout(void **state)
{
    (void)state;
    struct fake_host h = { 0 };
    g_action = FAKE_HANG;
    int code;
    struct vgpu_channel *ch;
    double dt = failing_call(&h, 300, &code, &ch);
    assert_int_equal(code, -ETIMEDOUT);
    assert_true(dt >= 290.0 && dt < 1500.0);
    assert_true(vgpu_channel_is_lost(ch));
    vgpu_channel_destroy(ch);
    fake_host_stop(&h);
}

static void test_handler_fatal_loses_channel(void **state)
{
    (void)state;
    struct fake_host h = { 0 };
    g_action = FAKE_REPLY;
    g_ret = APIR_FORWARD_BASE_INDEX + VGPU_FATAL;
    assert_int_equal(fake_host_start(&h, action_handler, NULL), 0);
    struct vgpu_transport *tp = open_ok(&h, 0);
    char why[256];
    struct vgpu_channel *ch = vgpu_channel_create(tp, why, sizeof(why));
    assert_non_null(ch);
    assert_true(vgpu_channel_lock(ch));
    struct vgpu_enc enc;
    vgpu_channel_begin(ch, &enc, APIR_COMMAND_TYPE_FORWARD, 1);
    struct vgpu_dec dec;
    assert_int_equal(vgpu_channel_forward(ch, &enc, &dec), VGPU_FATAL);
    vgpu_channel_unlock(ch);
    g_ret = 4;
    /* The host context refuses everything after FATAL: the channel is lost for good. */
    assert_true(vgpu_channel_is_lost(ch));
    assert_false(vgpu_channel_lock(ch));
    vgpu_channel_destroy(ch);
    fake_host_stop(&h);
}

/* Large commands: the transport bound is honoured and the server receives every byte. */
static uint64_t g_sum;
static enum fake_action sum_handler(struct fake_host *h, int32_t type, int32_t flags, struct vgpu_dec *req,
                                    struct vgpu_enc *rep, uint32_t *ret)
{
    (void)h;
    (void)type;
    (void)flags;
    (void)rep;
    uint64_t s = 0;
    size_t n = vgpu_dec_left(req);
    const uint8_t *p = vgpu_dec_view(req, n);
    for (size_t i = 0; p && i < n; i++)
        s += p[i];
    g_sum = s + n;
    *ret = 4;
    return FAKE_REPLY;
}

static void test_large_command(void **state)
{
    (void)state;
    struct fake_host h = { .max_command_size = 1u << 20 };
    assert_int_equal(fake_host_start(&h, sum_handler, NULL), 0);
    struct vgpu_transport *tp = open_ok(&h, 0);
    char why[256];
    struct vgpu_channel *ch = vgpu_channel_create(tp, why, sizeof(why));
    assert_non_null(ch);
    assert_true(vgpu_channel_lock(ch));
    struct vgpu_enc enc;
    vgpu_channel_begin(ch, &enc, APIR_COMMAND_TYPE_FORWARD, 1);
    size_t n = vgpu_channel_room(&enc) & ~(size_t)3;
    assert_true(n > 100000);
    uint8_t *p = vgpu_enc_reserve(&enc, n);
    assert_non_null(p);
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(i * 7);
        s += p[i];
    }
    struct vgpu_dec dec;
    assert_int_equal(vgpu_channel_forward(ch, &enc, &dec), 0);
    vgpu_channel_unlock(ch);
    assert_true(g_sum == s + n);
    vgpu_channel_destroy(ch);
    fake_host_stop(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_hello_refused),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_resource_memfd),
        cmocka_unit_test(test_submit_futex_wake),
        cmocka_unit_test(test_plan_watch),
        cmocka_unit_test(test_plan_nap_woken),
        cmocka_unit_test(test_server_closes_mid_call),
        cmocka_unit_test(test_server_fatal),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_handler_fatal_loses_channel),
        cmocka_unit_test(test_large_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
