/*
 * The unix-socket protocol of the real ggml-virtgpu-server binary (docs/PROTOCOL.md §1, §2),
 * with the fake APIR library: HELLO, the APIR commands, config keys, resources, and every
 * protocol violation that must end in FATAL and a hang-up. One server for the whole group;
 * each test opens its own connections. The server polls its sockets (--poll-us) so that every
 * case here also goes through the polling receive; the other server tests use the default,
 * which is no polling on the small machines tests run on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apir.h"
#include "codec.h"
#include "fake-apir-lib.h"
#include "unix-client.h"
#include "unix.h"

#ifndef VGPU_TEST_SERVER
#error "VGPU_TEST_SERVER must name the server binary"
#endif

#define MAX_COMMAND (64 * 1024)
#define TIMEOUT_MS 5000

static struct uc_server server;
static char deinit_log[160];

static int group_setup(void **state)
{
    (void)state;
    static char env_deinit[200];
    static const char *const args[] = {
        "--apir-library", FAKE_APIR_LIB, "--backend", "/fake/libggml-backend.so",
        "--backend-reg", "fake_reg", "--max-command-size", "64K", "--max-resource-bytes", "1M",
        "--max-buffers", "7", "--max-buffer-bytes", "3G", "--max-graph-nodes", "99",
        "--poll-us", "2000", "--log-level", "warn", NULL,
    };
    if (uc_server_prepare(&server))
        return -1;
    snprintf(deinit_log, sizeof(deinit_log), "%s/deinit.log", server.dir);
    snprintf(env_deinit, sizeof(env_deinit), FAKE_ENV_DEINIT_LOG "=%s", deinit_log);
    const char *const env[] = { env_deinit, NULL };
    if (uc_server_spawn(&server, VGPU_TEST_SERVER, args, env) ||
        uc_server_wait_ready(&server, 10000))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int status = -1;
    int rc = uc_server_stop(&server, TIMEOUT_MS, &status);
    return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Opens a loaded session on the group's server; asserts. */
static void open_session(struct uc_session *s)
{
    assert_int_equal(uc_session_open(s, server.sock, 64 * 1024, true), 0);
}

/* FORWARD cmd on a session; returns the reply code. */
static uint32_t forward(struct uc_session *s, int32_t cmd, const void *payload, size_t n)
{
    uint32_t ret = UINT32_MAX;
    assert_int_equal(uc_call(s->fd, &s->reply, APIR_COMMAND_TYPE_FORWARD, cmd, payload, n,
                             TIMEOUT_MS, &ret), 0);
    return ret;
}

/* The reply payload of a session. */
static struct vgpu_dec reply_dec(struct uc_session *s)
{
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, s->reply.map + 4, s->reply.size - 4);
    return dec;
}

/* Expects FATAL with `reason` and the hang-up on fd, then closes fd. */
static void expect_fatal(int fd, int32_t reason)
{
    int32_t got = 0;
    char text[256] = "";
    assert_int_equal(uc_expect_fatal(fd, &got, text, sizeof(text), TIMEOUT_MS), 0);
    assert_int_equal(got, reason);
    assert_true(strlen(text) > 0);
    close(fd);
}

/* A connection that has said HELLO; asserts. */
static int hello_fd(void)
{
    struct uc_hello h;
    int fd = uc_connect(server.sock);
    assert_true(fd >= 0);
    assert_int_equal(uc_hello(fd, &h), 0);
    assert_int_equal(h.status, 0);
    return fd;
}

/* ---- happy paths ----------------------------------------------------------------------------- */

/* HELLO answers version 1, status 0, a fresh ctx_id per client, the command bound. */
static void test_hello(void **state)
{
    (void)state;
    struct uc_hello a, b;
    int fa = uc_connect(server.sock), fb = uc_connect(server.sock);
    assert_true(fa >= 0 && fb >= 0);
    assert_int_equal(uc_hello(fa, &a), 0);
    assert_int_equal(uc_hello(fb, &b), 0);
    assert_int_equal(a.version, VGPU_UNIX_VERSION);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.max_command_size, MAX_COMMAND);
    assert_true(a.ctx_id != 0 && b.ctx_id != 0 && a.ctx_id != b.ctx_id);
    close(fa);
    close(fb);
}

/* HANDSHAKE: magic 0xab1e and version 0.2, on both routes. */
static void test_handshake(void **state)
{
    (void)state;
    struct uc_session s;
    assert_int_equal(uc_session_open(&s, server.sock, 4096, false), 0);
    const uint32_t version[2] = { 0, 2 };
    for (int venus = 0; venus < 2; venus++) {
        uint32_t ret = 0;
        int32_t type = venus ? APIR_VENUS_COMMAND_TYPE_OFFSET : APIR_COMMAND_TYPE_HANDSHAKE;
        memset(s.reply.map, 0xee, 16);
        assert_int_equal(uc_call(s.fd, &s.reply, type, 0, version, 8, TIMEOUT_MS, &ret), 0);
        assert_int_equal(ret, 0xab1e);
        struct vgpu_dec dec = reply_dec(&s);
        assert_int_equal(vgpu_dec_u32(&dec), 0);
        assert_int_equal(vgpu_dec_u32(&dec), 2);
    }
    uc_session_close(&s);
}

/* LOADLIBRARY 0 then 2; FORWARD before it 1; echo; handler codes; bad reply end. */
static void test_load_and_forward(void **state)
{
    (void)state;
    struct uc_session s;
    uint32_t ret = 0;
    assert_int_equal(uc_session_open(&s, server.sock, 4096, false), 0);
    assert_int_equal(forward(&s, FAKE_CMD_ECHO, "abcd", 4), APIR_FORWARD_NO_DISPATCH_FN);
    assert_int_equal(uc_call(s.fd, &s.reply, APIR_COMMAND_TYPE_LOADLIBRARY, 0, NULL, 0,
                             TIMEOUT_MS, &ret), 0);
    assert_int_equal(ret, APIR_LOAD_LIBRARY_SUCCESS);
    assert_int_equal(uc_call(s.fd, &s.reply, APIR_COMMAND_TYPE_LOADLIBRARY, 0, NULL, 0,
                             TIMEOUT_MS, &ret), 0);
    assert_int_equal(ret, APIR_LOAD_LIBRARY_ALREADY_LOADED);

    uint8_t payload[1000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    assert_int_equal(forward(&s, FAKE_CMD_ECHO, payload, sizeof(payload)), 4 + VGPU_OK);
    assert_memory_equal(s.reply.map + 4, payload, sizeof(payload));
    const uint32_t code = 8;
    assert_int_equal(forward(&s, FAKE_CMD_RETURN, &code, 4), 4 + 8);
    assert_int_equal(forward(&s, 4242, NULL, 0), 4 + VGPU_UNKNOWN_COMMAND);
    assert_int_equal(forward(&s, FAKE_CMD_BAD_AFTER, NULL, 0), APIR_FORWARD_NO_DISPATCH_FN);
    assert_int_equal(forward(&s, FAKE_CMD_ECHO, "ok!!", 4), 4 + VGPU_OK); /* still serving */
    uc_session_close(&s);
}

/*
 * Messages that come while the worker polls and after its poll budget ran out (it then sleeps
 * in recvmsg) are all served, in order.
 */
static void test_poll_then_sleep(void **state)
{
    (void)state;
    struct uc_session s;
    open_session(&s);
    for (uint32_t i = 0; i < 6; i++) {
        if (i % 2) {
            struct timespec ts = { 0, 10 * 1000 * 1000 }; /* 5 times the 2 ms budget */
            nanosleep(&ts, NULL);
        }
        uint32_t v = 0x5eed0000 + i;
        assert_int_equal(forward(&s, FAKE_CMD_ECHO, &v, 4), 4 + VGPU_OK);
        assert_memory_equal(s.reply.map + 4, &v, 4);
    }
    uc_session_close(&s);
}

/*
 * The server wakes futex waiters on the reply word: one long FUTEX_WAIT (no polling slices)
 * returns as soon as a 200 ms command completes.
 */
static void test_futex_wake(void **state)
{
    (void)state;
    struct uc_session s;
    open_session(&s);
    _Atomic uint32_t *word = (_Atomic uint32_t *)(void *)s.reply.map;
    atomic_store(word, 0);
    const uint32_t ms = 200;
    int64_t t0 = uc_now_ms();
    assert_int_equal(uc_submit(s.fd, APIR_COMMAND_TYPE_FORWARD, FAKE_CMD_SLEEP, UC_REPLY_ID, &ms,
                               4), 0);
    while (atomic_load(word) == 0 && uc_now_ms() - t0 < 3000) {
        struct timespec ts = { 3, 0 };
        syscall(SYS_futex, (uint32_t *)(void *)s.reply.map, FUTEX_WAIT, 0, &ts, NULL, 0);
    }
    int64_t took = uc_now_ms() - t0;
    assert_int_equal(atomic_load(word), 1 + 4 + VGPU_OK);
    assert_true(took >= 200 && took < 1500);
    uc_session_close(&s);
}

/* Reads config key `key` through the library. */
static bool config(struct uc_session *s, const char *key, char *out, size_t cap)
{
    uint8_t req[256];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, req, sizeof(req));
    vgpu_enc_u32(&enc, 0);
    vgpu_enc_string(&enc, key);
    assert_int_equal(forward(s, FAKE_CMD_CONFIG, req, vgpu_enc_used(&enc)), 4 + VGPU_OK);
    struct vgpu_dec dec = reply_dec(s);
    bool present = vgpu_dec_u32(&dec) != 0;
    assert_true(vgpu_dec_string(&dec, out, cap));
    return present;
}

/* The options reach the library as config keys, through the worker's command line. */
static void test_config_keys(void **state)
{
    (void)state;
    static const char *const expect[][2] = {
        { "ggml.library.path", "/fake/libggml-backend.so" },
        { "ggml.library.reg", "fake_reg" },
        { "ggml-virtgpu.quota.buffers", "7" },
        { "ggml-virtgpu.quota.buffer-bytes", "3221225472" },
        { "ggml-virtgpu.quota.graph-nodes", "99" },
        { "ggml-virtgpu.quota.command-bytes", "65536" },
        { "ggml-virtgpu.log-level", "warn" },
    };
    struct uc_session s;
    char value[256], size[32];
    open_session(&s);
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        assert_true(config(&s, expect[i][0], value, sizeof(value)));
        assert_string_equal(value, expect[i][1]);
    }
    snprintf(size, sizeof(size), "%zu", sizeof(struct vgpu_apir_callbacks));
    assert_true(config(&s, "apir.callbacks.size", value, sizeof(value)));
    assert_string_equal(value, size);
    assert_false(config(&s, "not.a.key", value, sizeof(value)));

    assert_int_equal(forward(&s, FAKE_CMD_INFO, NULL, 0), 4 + VGPU_OK);
    struct vgpu_dec dec = reply_dec(&s);
    assert_int_equal(vgpu_dec_u32(&dec), s.hello.ctx_id); /* the library sees our ctx_id */
    uc_session_close(&s);
}

/* ---- resources ------------------------------------------------------------------------------ */

/* Create / destroy, duplicate, bad fds and sizes, quota; the mapping is really shared. */
static void test_resources(void **state)
{
    (void)state;
    struct uc_session s;
    struct uc_resource r, q;
    int32_t status = 99;
    open_session(&s); /* the reply resource takes 64 KiB of the 1 MiB quota */

    assert_int_equal(uc_resource_create(s.fd, &r, 2, 10000, &status), 0);
    assert_int_equal(status, 0);
    memset(r.map, 0x42, r.size);
    uint32_t id = 2;
    assert_int_equal(forward(&s, FAKE_CMD_RESOURCE, &id, 4), 4 + VGPU_OK);
    struct vgpu_dec dec = reply_dec(&s);
    assert_int_equal(vgpu_dec_u32(&dec), 1);
    assert_int_equal(vgpu_dec_i32(&dec), 0);
    assert_int_equal(vgpu_dec_u64(&dec), 10000);
    assert_true(vgpu_dec_u64(&dec) == fake_checksum(r.map, r.size));
    const uint32_t fill[2] = { 2, 0x99 };
    assert_int_equal(forward(&s, FAKE_CMD_FILL, fill, sizeof(fill)), 4 + VGPU_OK);
    assert_int_equal(r.map[0], 0x99);
    assert_int_equal(r.map[9999], 0x99);

    /* duplicate id, too small a file, size 0, id 0, no fd, a pipe, unknown flags */
    assert_int_equal(uc_resource_create_raw(s.fd, 2, 4096, 0, r.memfd, &status), 0);
    assert_int_equal(status, -EEXIST);
    assert_int_equal(uc_resource_create_raw(s.fd, 3, 10001, 0, r.memfd, &status), 0);
    assert_int_equal(status, -EINVAL);
    assert_int_equal(uc_resource_create_raw(s.fd, 3, 0, 0, r.memfd, &status), 0);
    assert_int_equal(status, -EINVAL);
    assert_int_equal(uc_resource_create_raw(s.fd, 0, 4096, 0, r.memfd, &status), 0);
    assert_int_equal(status, -EINVAL);
    assert_int_equal(uc_resource_create_raw(s.fd, 3, 4096, 0, -1, &status), 0);
    assert_int_equal(status, -EINVAL);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(uc_resource_create_raw(s.fd, 3, 1, 0, pipefd[0], &status), 0);
    assert_int_equal(status, -EINVAL);
    close(pipefd[0]);
    close(pipefd[1]);
    assert_int_equal(uc_resource_create_raw(s.fd, 3, 4096, 1, r.memfd, &status), 0);
    assert_int_equal(status, -EINVAL);

    /* quota: 64 KiB + 12 KiB used of 1 MiB */
    assert_int_equal(uc_resource_create(s.fd, &q, 4, 1024 * 1024, &status), 0);
    assert_int_equal(status, -EDQUOT);
    assert_int_equal(uc_resource_create(s.fd, &q, 4, 900 * 1024, &status), 0);
    assert_int_equal(status, 0);
    assert_int_equal(uc_resource_destroy(s.fd, 4), 0);
    uc_resource_free(&q);
    assert_int_equal(uc_resource_create(s.fd, &q, 5, 900 * 1024, &status), 0);
    assert_int_equal(status, 0); /* destroy gave the quota back */
    uc_resource_free(&q);

    /* destroyed resources are gone for the library; unknown ids are ignored */
    assert_int_equal(uc_resource_destroy(s.fd, 2), 0);
    assert_int_equal(uc_resource_destroy(s.fd, 12345), 0);
    assert_int_equal(forward(&s, FAKE_CMD_RESOURCE, &id, 4), 4 + VGPU_OK);
    dec = reply_dec(&s);
    assert_int_equal(vgpu_dec_u32(&dec), 0);
    uc_resource_free(&r);
    uc_session_close(&s);
}

/* The worker keeps no fd a client passes: extras are closed, a resource's after mapping. */
static void test_extra_fds(void **state)
{
    (void)state;
    struct uc_session s;
    struct uc_resource r;
    int32_t status;
    open_session(&s);
    assert_int_equal(forward(&s, FAKE_CMD_INFO, NULL, 0), 4 + VGPU_OK);
    struct vgpu_dec dec = reply_dec(&s);
    (void)vgpu_dec_u32(&dec);
    pid_t worker = (pid_t)vgpu_dec_u32(&dec);
    int fds_before = uc_count_fds(worker);
    assert_true(fds_before > 0);
    assert_int_equal(uc_resource_create(s.fd, &r, 2, 4096, &status), 0);
    assert_int_equal(status, 0);
    uint8_t body[16];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, body, sizeof(body));
    vgpu_enc_u32(&enc, VGPU_UNIX_RESOURCE_DESTROY);
    vgpu_enc_u32(&enc, 16);
    vgpu_enc_u32(&enc, 77);
    vgpu_enc_u32(&enc, 0);
    const int fds[3] = { r.memfd, r.memfd, r.memfd };
    assert_int_equal(uc_send(s.fd, body, 16, fds, 3), 0); /* fds on a message without any */
    assert_int_equal(forward(&s, FAKE_CMD_ECHO, "ok!!", 4), 4 + VGPU_OK);
    /* two fds on RESOURCE_CREATE: the first is used, the second closed */
    const int two[2] = { r.memfd, r.memfd };
    uint8_t create[24];
    vgpu_enc_init(&enc, create, sizeof(create));
    vgpu_enc_u32(&enc, VGPU_UNIX_RESOURCE_CREATE);
    vgpu_enc_u32(&enc, 24);
    vgpu_enc_u32(&enc, 3);
    vgpu_enc_u32(&enc, 0);
    vgpu_enc_u64(&enc, 4096);
    assert_int_equal(uc_send(s.fd, create, sizeof(create), two, 2), 0);
    uint8_t answer[64];
    assert_int_equal(uc_recv(s.fd, answer, sizeof(answer), TIMEOUT_MS), 16);
    assert_int_equal(answer[12], 0); /* status 0 */
    /* the worker closes a passed fd just after answering: let the count settle */
    int64_t end = uc_now_ms() + TIMEOUT_MS;
    while (uc_count_fds(worker) != fds_before && uc_now_ms() < end)
        usleep(1000);
    assert_int_equal(uc_count_fds(worker), fds_before);
    uc_resource_free(&r);
    uc_session_close(&s);
}

/* ---- protocol violations --------------------------------------------------------------------- */

/* SUBMIT naming an unknown reply resource: FATAL -ENOENT, hang-up, no reply word. */
static void test_unknown_reply_resource(void **state)
{
    (void)state;
    struct uc_session s;
    open_session(&s);
    s.reply.map[0] = 0;
    assert_int_equal(uc_submit(s.fd, APIR_COMMAND_TYPE_FORWARD, FAKE_CMD_ECHO, 99, "x", 1), 0);
    expect_fatal(s.fd, -ENOENT);
    s.fd = -1;
    assert_int_equal(s.reply.map[0], 0);
    uc_session_close(&s);
}

/* A SUBMIT larger than max_command_size: FATAL -EMSGSIZE. */
static void test_oversized_submit(void **state)
{
    (void)state;
    struct uc_session s;
    open_session(&s);
    static uint8_t big[MAX_COMMAND];
    assert_int_equal(uc_submit(s.fd, APIR_COMMAND_TYPE_FORWARD, FAKE_CMD_ECHO, UC_REPLY_ID, big,
                               MAX_COMMAND - 8 - APIR_HEADER_SIZE + 1), 0);
    expect_fatal(s.fd, -EMSGSIZE);
    s.fd = -1;
    uc_session_close(&s);
    /* exactly at the bound is accepted (and its echo fits the 64 KiB reply resource) */
    open_session(&s);
    assert_int_equal(forward(&s, FAKE_CMD_ECHO, big, MAX_COMMAND - 8 - APIR_HEADER_SIZE),
                     4 + VGPU_OK);
    uc_session_close(&s);
}

/* Anything before HELLO: FATAL -EPROTO. */
static void test_message_before_hello(void **state)
{
    (void)state;
    const uint32_t body[2] = { 1, 0 };
    int fd = uc_connect(server.sock);
    assert_true(fd >= 0);
    assert_int_equal(uc_send_msg(fd, VGPU_UNIX_RESOURCE_DESTROY, body, 8, -1), 0);
    expect_fatal(fd, -EPROTO);
    fd = uc_connect(server.sock);
    assert_int_equal(uc_submit(fd, APIR_COMMAND_TYPE_HANDSHAKE, 0, 1, body, 8), 0);
    expect_fatal(fd, -EPROTO);
}

/* Malformed messages after HELLO: each one FATAL and a hang-up. */
static void test_malformed_messages(void **state)
{
    (void)state;
    const uint32_t body[4] = { 1, 0, 0, 0 };
    int fd;

    fd = hello_fd(); /* unknown type */
    assert_int_equal(uc_send_msg(fd, 0x42, body, 8, -1), 0);
    expect_fatal(fd, -EPROTO);

    fd = hello_fd(); /* size field that disagrees with the datagram */
    const uint32_t lying[4] = { VGPU_UNIX_RESOURCE_DESTROY, 100, 1, 0 };
    assert_int_equal(uc_send(fd, lying, sizeof(lying), NULL, 0), 0);
    expect_fatal(fd, -EPROTO);

    fd = hello_fd(); /* shorter than a header */
    assert_int_equal(uc_send(fd, body, 4, NULL, 0), 0);
    expect_fatal(fd, -EPROTO);

    fd = hello_fd(); /* second HELLO */
    assert_int_equal(uc_send_msg(fd, VGPU_UNIX_HELLO, body, 8, -1), 0);
    expect_fatal(fd, -EPROTO);

    fd = hello_fd(); /* RESOURCE_CREATE with a short body */
    assert_int_equal(uc_send_msg(fd, VGPU_UNIX_RESOURCE_CREATE, body, 12, -1), 0);
    expect_fatal(fd, -EPROTO);

    fd = hello_fd(); /* a server -> guest type */
    assert_int_equal(uc_send_msg(fd, VGPU_UNIX_HELLO_REPLY, body, 16, -1), 0);
    expect_fatal(fd, -EPROTO);

    struct uc_session s; /* unknown APIR command type, and a SUBMIT shorter than its header */
    open_session(&s);
    assert_int_equal(uc_submit(s.fd, 7, 0, UC_REPLY_ID, NULL, 0), 0);
    expect_fatal(s.fd, -EPROTO);
    s.fd = -1;
    uc_session_close(&s);
    open_session(&s);
    assert_int_equal(uc_send_msg(s.fd, VGPU_UNIX_SUBMIT, body, 8, -1), 0);
    expect_fatal(s.fd, -EPROTO);
    s.fd = -1;
    uc_session_close(&s);
}

/* HELLO of an unknown version: status -EPROTONOSUPPORT, then FATAL. */
static void test_hello_version(void **state)
{
    (void)state;
    const uint32_t body[2] = { 2, 0 };
    uint8_t buf[64];
    int fd = uc_connect(server.sock);
    assert_true(fd >= 0);
    assert_int_equal(uc_send_msg(fd, VGPU_UNIX_HELLO, body, 8, -1), 0);
    assert_int_equal(uc_recv(fd, buf, sizeof(buf), TIMEOUT_MS), 24);
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf, 24);
    assert_int_equal(vgpu_dec_u32(&dec), VGPU_UNIX_HELLO_REPLY);
    (void)vgpu_dec_u32(&dec);
    (void)vgpu_dec_u32(&dec);
    assert_int_equal(vgpu_dec_i32(&dec), -EPROTONOSUPPORT);
    expect_fatal(fd, -EPROTONOSUPPORT);
}

/* ---- the socket and the end of a context ---------------------------------------------------- */

/* The socket file is private to its owner. */
static void test_socket_mode(void **state)
{
    (void)state;
    struct stat st;
    assert_int_equal(stat(server.sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
}

/* A client hang-up ends its context: the library's deinit runs for that ctx_id. */
static void test_deinit_on_disconnect(void **state)
{
    (void)state;
    struct uc_session s;
    char want[32], text[4096];
    open_session(&s);
    snprintf(want, sizeof(want), "deinit %u\n", s.hello.ctx_id);
    uc_session_close(&s);
    int64_t end = uc_now_ms() + TIMEOUT_MS;
    for (;;) {
        FILE *fp = fopen(deinit_log, "r");
        size_t n = fp ? fread(text, 1, sizeof(text) - 1, fp) : 0;
        if (fp)
            fclose(fp);
        text[n] = '\0';
        if (strstr(text, want) || uc_now_ms() > end)
            break;
        usleep(10000);
    }
    assert_non_null(strstr(text, want));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_load_and_forward),
        cmocka_unit_test(test_poll_then_sleep),
        cmocka_unit_test(test_futex_wake),
        cmocka_unit_test(test_config_keys),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_extra_fds),
        cmocka_unit_test(test_unknown_reply_resource),
        cmocka_unit_test(test_oversized_submit),
        cmocka_unit_test(test_message_before_hello),
        cmocka_unit_test(test_malformed_messages),
        cmocka_unit_test(test_hello_version),
        cmocka_unit_test(test_socket_mode),
        cmocka_unit_test(test_deinit_on_disconnect),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
