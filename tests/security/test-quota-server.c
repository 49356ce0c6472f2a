/*
 * The server's quota flags reach the APIR library: the real ggml-virtgpu-server, the real
 * libggml-virtgpu-backend.so on the CPU backend, and a raw client of the unix transport
 * (tests/support/unix-client.h) sending baseline and extension commands. Each quota exceeded
 * answers 4 + VGPU_QUOTA with a log line from the library in the server's log, the same
 * connection keeps working, and a command larger than --max-command-size ends the connection
 * with FATAL -EMSGSIZE while the server serves the next client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "abi.h"
#include "apir.h"
#include "codec.h"
#include "ext.h"
#include "ggml.h"
#include "unix-client.h"
#include "unix.h"
#include "wire.h"

#ifndef VGPU_TEST_SERVER
#error "VGPU_TEST_SERVER must name the server binary"
#endif

#define TIMEOUT_MS 20000
#define REPLY_SIZE (256 * 1024)

static struct uc_server server;
static char server_log[160];

static int group_setup(void **state)
{
    (void)state;
    static const char *const args[] = {
        "--apir-library", VGPU_TEST_HOST_LIB, "--max-buffers", "2", "--max-buffer-bytes", "1M",
        "--max-graph-nodes", "4", "--max-command-size", "64K", "--log-level", "info", NULL,
    };
    if (uc_server_prepare(&server))
        return -1;
    /* The server (and its workers) write their logs to a file this test reads. */
    snprintf(server_log, sizeof(server_log), "%s/server.log", server.dir);
    int log = open(server_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int saved = dup(2);
    if (log < 0 || saved < 0)
        return -1;
    dup2(log, 2);
    int rc = uc_server_spawn(&server, VGPU_TEST_SERVER, args, NULL);
    dup2(saved, 2);
    close(saved);
    close(log);
    if (rc || uc_server_wait_ready(&server, 20000))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int status = -1;
    uc_server_stop(&server, 10000, &status);
    return 0;
}

/* The server log so far (static buffer). */
static const char *read_log(void)
{
    static char buf[1 << 16];
    int fd = open(server_log, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* The log line may lag the reply word by a moment (the worker writes it before replying). */
static void expect_log(const char *needle)
{
    for (int i = 0; i < 100; i++) {
        if (strstr(read_log(), needle))
            return;
        usleep(20000);
    }
    fail_msg("the server log has no line with '%s':\n%s", needle, read_log());
}

/* A FORWARD with payload; returns the handler code (ret - 4); the reply payload in *reply. */
static uint32_t forward(struct uc_session *s, uint32_t cmd, const void *payload, size_t n, struct vgpu_dec *reply)
{
    uint32_t ret = 0;
    int rc = uc_call(s->fd, &s->reply, APIR_COMMAND_TYPE_FORWARD, (int32_t)cmd, payload, n, TIMEOUT_MS, &ret);
    if (rc)
        fail_msg("FORWARD %u: transport error %d (%s)", cmd, rc, strerror(-rc));
    assert_true(ret >= APIR_FORWARD_BASE_INDEX);
    if (reply)
        vgpu_dec_init(reply, s->reply.map + APIR_REPLY_PAYLOAD_OFFSET, s->reply.size - APIR_REPLY_PAYLOAD_OFFSET);
    return ret - APIR_FORWARD_BASE_INDEX;
}

static uint64_t bl_buft(struct uc_session *s)
{
    struct vgpu_dec d;
    assert_int_equal(forward(s, APIR_CMD_DEVICE_GET_BUFFER_TYPE, NULL, 0, &d), VGPU_OK);
    return vgpu_dec_u64(&d);
}

static uint32_t bl_alloc(struct uc_session *s, uint64_t size, uint64_t *id)
{
    uint8_t req[16];
    struct vgpu_enc e;
    vgpu_enc_init(&e, req, sizeof(req));
    vgpu_enc_u64(&e, bl_buft(s));
    vgpu_enc_u64(&e, size);
    struct vgpu_dec d;
    uint32_t r = forward(s, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER, req, sizeof(req), &d);
    *id = r == VGPU_OK ? vgpu_dec_u64(&d) : 0;
    return r;
}

static uint32_t bl_free(struct uc_session *s, uint64_t id)
{
    return forward(s, APIR_CMD_BUFFER_FREE_BUFFER, &id, 8, NULL);
}

/* A baseline chain graph of n ADD nodes in resource `res`, computed. */
static uint32_t bl_chain(struct uc_session *s, struct uc_resource *res, uint64_t buf, uint32_t n)
{
    struct vgpu_enc g;
    vgpu_enc_init(&g, res->map, res->size);
    vgpu_enc_u32(&g, n);
    for (uint32_t i = 0; i < n; i++)
        vgpu_enc_u64(&g, 100 + i);
    vgpu_enc_u32(&g, n + 1);
    struct vgpu_rpc_tensor t;
    memset(&t, 0, sizeof(t));
    t.type = GGML_TYPE_F32;
    t.buffer = buf;
    t.ne[0] = 4;
    t.ne[1] = t.ne[2] = t.ne[3] = 1;
    t.nb[0] = 4;
    t.nb[1] = t.nb[2] = t.nb[3] = 16;
    t.id = 99;
    vgpu_enc_rpc_tensor(&g, &t);
    for (uint32_t i = 0; i < n; i++) {
        t.id = 100 + i;
        t.data = 16 + 16 * (uint64_t)i;
        t.op = GGML_OP_ADD;
        t.src[0] = i ? 99 + i : 99;
        t.src[1] = 99;
        t.flags = GGML_TENSOR_FLAG_COMPUTE;
        vgpu_enc_rpc_tensor(&g, &t);
    }
    assert_true(vgpu_enc_ok(&g));
    uint8_t req[12];
    struct vgpu_enc e;
    vgpu_enc_init(&e, req, sizeof(req));
    vgpu_enc_u32(&e, res->id);
    vgpu_enc_u64(&e, vgpu_enc_used(&g));
    return forward(s, APIR_CMD_BACKEND_GRAPH_COMPUTE, req, sizeof(req), NULL);
}

static void open_session(struct uc_session *s)
{
    int rc = uc_session_open(s, server.sock, REPLY_SIZE, true);
    if (rc)
        fail_msg("session: %d (%s)", rc, strerror(-rc));
}

static void test_server_flags_reach_library_baseline(void **state)
{
    (void)state;
    struct uc_session s;
    open_session(&s);
    uint64_t a, b, c;
    /* --max-buffers 2 */
    assert_int_equal(bl_alloc(&s, 1024, &a), VGPU_OK);
    assert_int_equal(bl_alloc(&s, 1024, &b), VGPU_OK);
    assert_int_equal(bl_alloc(&s, 1024, &c), VGPU_QUOTA);
    expect_log("buffer count quota (2) reached");
    assert_int_equal(bl_free(&s, b), VGPU_OK);
    /* --max-buffer-bytes 1M */
    assert_int_equal(bl_alloc(&s, 2u << 20, &c), VGPU_QUOTA);
    expect_log("buffer bytes quota");
    assert_int_equal(bl_alloc(&s, (1u << 20) - 1024, &b), VGPU_OK);
    assert_int_equal(bl_free(&s, b), VGPU_OK);
    /* --max-graph-nodes 4 */
    struct uc_resource res;
    int32_t st = -1;
    assert_int_equal(uc_resource_create(s.fd, &res, 2, 65536, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(bl_chain(&s, &res, a, 4), VGPU_OK);
    assert_int_equal(bl_chain(&s, &res, a, 5), VGPU_QUOTA);
    expect_log("graph of 5 nodes exceeds the quota of 4");
    /* The connection still works. */
    assert_int_equal(bl_chain(&s, &res, a, 3), VGPU_OK);
    assert_int_equal(bl_alloc(&s, 1024, &b), VGPU_OK);
    uc_resource_free(&res);
    uc_session_close(&s);
}

static void test_server_flags_reach_library_ext(void **state)
{
    (void)state;
    struct uc_session s;
    open_session(&s);
    struct vgpu_abi_info abi;
    vgpu_abi_info_get(&abi);
    struct vgpu_hello req = { VGPU_EXT_VERSION, 0, abi.hash, abi.n_ops, abi.n_types, abi.tensor_size, 0, 0, 0 };
    uint8_t buf[64];
    struct vgpu_enc e;
    vgpu_enc_init(&e, buf, sizeof(buf));
    vgpu_enc_hello_request(&e, &req);
    struct vgpu_dec d;
    assert_int_equal(forward(&s, VGPU_CMD_EXT_HELLO, buf, vgpu_enc_used(&e), &d), VGPU_OK);
    struct vgpu_hello rep;
    assert_true(vgpu_dec_hello_reply(&d, &rep));
    /* --max-command-size reaches the library's command quota (announced to the guest). */
    assert_int_equal(rep.max_command_size, 64 * 1024);
    for (int i = 0; i < 3; i++) {
        vgpu_enc_init(&e, buf, sizeof(buf));
        vgpu_enc_u32(&e, 0);
        vgpu_enc_u32(&e, 0);
        vgpu_enc_u64(&e, 0);
        vgpu_enc_u64(&e, 4096);
        vgpu_enc_u32(&e, 0);
        vgpu_enc_u32(&e, 0);
        assert_int_equal(forward(&s, VGPU_CMD_EXT_BUFFER_ALLOC, buf, vgpu_enc_used(&e), NULL),
                         i < 2 ? VGPU_OK : VGPU_QUOTA);
    }
    assert_int_equal(forward(&s, VGPU_CMD_EXT_NOP, NULL, 0, NULL), VGPU_OK);
    uc_session_close(&s);
}

static void test_server_command_size_bound(void **state)
{
    (void)state;
    struct uc_session s;
    open_session(&s);
    static uint8_t big[80 * 1024];
    /* Past --max-command-size: the transport refuses it and ends the connection. */
    assert_int_equal(uc_submit(s.fd, APIR_COMMAND_TYPE_FORWARD, APIR_CMD_DEVICE_GET_COUNT, UC_REPLY_ID, big,
                               sizeof(big)),
                     0);
    int32_t reason = 0;
    assert_int_equal(uc_expect_fatal(s.fd, &reason, NULL, 0, TIMEOUT_MS), 0);
    assert_int_equal(reason, -EMSGSIZE);
    uc_session_close(&s);
    /* The server serves the next client. */
    open_session(&s);
    assert_int_equal(forward(&s, APIR_CMD_DEVICE_GET_COUNT, NULL, 0, NULL), VGPU_OK);
    uc_session_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_flags_reach_library_baseline),
        cmocka_unit_test(test_server_flags_reach_library_ext),
        cmocka_unit_test(test_server_command_size_bound),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
