/*
 * Process life cycle of the real ggml-virtgpu-server: many clients at once, crash isolation
 * between workers, workers that end with their client (no zombies), --no-fork, --max-clients,
 * shutdown on SIGTERM, the single-server rule on a socket path, LOADLIBRARY failures, and the
 * command line. Each test starts its own server with the fake APIR library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apir.h"
#include "codec.h"
#include "fake-apir-lib.h"
#include "unix-client.h"
#include "unix.h"

#ifndef VGPU_TEST_SERVER
#error "VGPU_TEST_SERVER must name the server binary"
#endif

#define TIMEOUT_MS 5000
#define N_CLIENTS 8

static const char *const fake_args[] = { "--apir-library", FAKE_APIR_LIB, "--log-level", "warn",
                                         NULL };
static const char *const fake_args_nofork[] = { "--apir-library", FAKE_APIR_LIB, "--no-fork",
                                                "--log-level", "warn", NULL };

/* What FAKE_CMD_INFO / FAKE_CMD_SLEEP answer. */
struct info {
    uint32_t ctx_id;
    uint32_t pid;
    uint32_t live;
};

/* Decodes an INFO reply of session s. */
static struct info read_info(const struct uc_session *s)
{
    struct info i;
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, s->reply.map + 4, s->reply.size - 4);
    i.ctx_id = vgpu_dec_u32(&dec);
    i.pid = vgpu_dec_u32(&dec);
    i.live = vgpu_dec_u32(&dec);
    return i;
}

/* FORWARD cmd; asserts the exchange and returns the reply code. */
static uint32_t forward(struct uc_session *s, int32_t cmd, const void *payload, size_t n)
{
    uint32_t ret = UINT32_MAX;
    assert_int_equal(uc_call(s->fd, &s->reply, APIR_COMMAND_TYPE_FORWARD, cmd, payload, n,
                             TIMEOUT_MS, &ret), 0);
    return ret;
}

/* INFO of a session; asserts. */
static struct info info(struct uc_session *s)
{
    assert_int_equal(forward(s, FAKE_CMD_INFO, NULL, 0), 4 + VGPU_OK);
    return read_info(s);
}

/* Echo round trip with a payload unique to `tag`; asserts. */
static void echo(struct uc_session *s, uint32_t tag)
{
    uint32_t payload[16];
    for (uint32_t i = 0; i < 16; i++)
        payload[i] = tag * 1000 + i;
    assert_int_equal(forward(s, FAKE_CMD_ECHO, payload, sizeof(payload)), 4 + VGPU_OK);
    assert_memory_equal(s->reply.map + 4, payload, sizeof(payload));
}

/*
 * Servers of the running test live here, not on its stack, so that teardown can stop them
 * even after a failed assertion has left the test function.
 */
#define MAX_SERVERS 4
static struct uc_server servers[MAX_SERVERS];
static int n_servers;

/* A fresh server slot of the running test (not started). */
static struct uc_server *new_server(void)
{
    assert_true(n_servers < MAX_SERVERS);
    struct uc_server *srv = &servers[n_servers++];
    memset(srv, 0, sizeof(*srv));
    return srv;
}

/* Stops whatever servers the test left running and removes their directories. */
static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < n_servers; i++)
        uc_server_stop(&servers[i], TIMEOUT_MS, NULL);
    n_servers = 0;
    return 0;
}

/* Starts a server with args and env in a new slot; asserts. */
static struct uc_server *start(const char *const *args, const char *const *env)
{
    struct uc_server *srv = new_server();
    assert_int_equal(uc_server_start(srv, VGPU_TEST_SERVER, args, env), 0);
    return srv;
}

/* Stops a server with SIGTERM; asserts a clean exit (status 0). */
static void stop_clean(struct uc_server *srv)
{
    int status = -1;
    assert_int_equal(uc_server_stop(srv, TIMEOUT_MS, &status), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Zeroes a session's reply word and submits FAKE_CMD_SLEEP ms without waiting. */
static void submit_sleep(struct uc_session *s, uint32_t ms)
{
    atomic_store((_Atomic uint32_t *)(void *)s->reply.map, 0);
    assert_int_equal(uc_submit(s->fd, APIR_COMMAND_TYPE_FORWARD, FAKE_CMD_SLEEP, UC_REPLY_ID, &ms,
                               4), 0);
}

/*
 * Opens a loaded session, retrying while the server refuses (a worker of an earlier client,
 * such as the readiness probe, may still be ending); asserts.
 */
static void open_retry(struct uc_session *s, const char *sock)
{
    int64_t end = uc_now_ms() + TIMEOUT_MS;
    int rc;
    while ((rc = uc_session_open(s, sock, 4096, true)) != 0 && uc_now_ms() < end)
        usleep(10000);
    assert_int_equal(rc, 0);
}

/* ---- worker processes ------------------------------------------------------------------------ */

/* Eight clients connected at once, each in its own worker, served concurrently. */
static void test_many_clients(void **state)
{
    (void)state;
    struct uc_session s[N_CLIENTS];
    uint32_t pids[N_CLIENTS];
    struct uc_server *srv = start(fake_args, NULL);
    for (int i = 0; i < N_CLIENTS; i++)
        assert_int_equal(uc_session_open(&s[i], srv->sock, 4096, true), 0);
    for (int i = 0; i < N_CLIENTS; i++)
        submit_sleep(&s[i], 300); /* all in flight together */
    int64_t t0 = uc_now_ms();
    for (int i = 0; i < N_CLIENTS; i++) {
        uint32_t ret = 0;
        assert_int_equal(uc_wait_reply(s[i].fd, &s[i].reply, TIMEOUT_MS, &ret), 0);
        assert_int_equal(ret, 4 + VGPU_OK);
        struct info in = read_info(&s[i]);
        assert_int_equal(in.ctx_id, s[i].hello.ctx_id);
        assert_int_equal(in.live, 1); /* one context per worker process */
        pids[i] = in.pid;
        assert_true(pids[i] != (uint32_t)srv->pid);
        for (int j = 0; j < i; j++)
            assert_true(pids[j] != pids[i]);
    }
    assert_true(uc_now_ms() - t0 < 4 * 300); /* not serialised (that would take 2.4 s) */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N_CLIENTS; i++)
            echo(&s[i], (uint32_t)(round * N_CLIENTS + i));
    for (int i = 0; i < N_CLIENTS; i++)
        uc_session_close(&s[i]);
    stop_clean(srv);
}

/* A worker that crashes takes down only its own client. */
static void test_crash_isolation(void **state)
{
    (void)state;
    struct uc_session a, b, c;
    uint32_t ret;
    struct uc_server *srv = start(fake_args, NULL);
    assert_int_equal(uc_session_open(&a, srv->sock, 4096, true), 0);
    assert_int_equal(uc_session_open(&b, srv->sock, 4096, true), 0);
    pid_t a_pid = (pid_t)info(&a).pid;

    submit_sleep(&b, 300); /* B is busy while A's worker dies */
    atomic_store((_Atomic uint32_t *)(void *)a.reply.map, 0);
    assert_int_equal(uc_submit(a.fd, APIR_COMMAND_TYPE_FORWARD, FAKE_CMD_ABORT, UC_REPLY_ID,
                               NULL, 0), 0);
    assert_int_equal(uc_wait_reply(a.fd, &a.reply, TIMEOUT_MS, &ret), -EPIPE);
    assert_int_equal(uc_expect_eof(a.fd, TIMEOUT_MS), 0);
    assert_int_equal(uc_wait_reply(b.fd, &b.reply, TIMEOUT_MS, &ret), 0);
    assert_int_equal(ret, 4 + VGPU_OK);
    echo(&b, 1);

    assert_int_equal(uc_session_open(&c, srv->sock, 4096, true), 0); /* still accepting */
    echo(&c, 2);
    assert_int_equal(uc_wait_process_gone(a_pid, TIMEOUT_MS), 0); /* reaped */
    assert_true(uc_process_alive(srv->pid));
    uc_session_close(&a);
    uc_session_close(&b);
    uc_session_close(&c);
    stop_clean(srv);
}

/* A worker exits when its client hangs up, and the listener reaps it. */
static void test_worker_exits_with_client(void **state)
{
    (void)state;
    struct uc_session a, b;
    struct uc_server *srv = start(fake_args, NULL);
    assert_int_equal(uc_session_open(&a, srv->sock, 4096, true), 0);
    assert_int_equal(uc_session_open(&b, srv->sock, 4096, false), 0); /* never loads */
    pid_t a_pid = (pid_t)info(&a).pid;
    assert_true(uc_process_alive(a_pid));
    uc_session_close(&a);
    assert_int_equal(uc_wait_process_gone(a_pid, TIMEOUT_MS), 0);
    uc_session_close(&b);
    stop_clean(srv);
}

/* --max-clients: a client beyond the limit gets FATAL -EUSERS; a slot frees on hang-up. */
static void test_max_clients(void **state)
{
    (void)state;
    static const char *const args[] = { "--apir-library", FAKE_APIR_LIB, "--max-clients", "2",
                                        "--log-level", "error", NULL };
    struct uc_session a, b, c;
    int32_t reason = 0;
    struct uc_server *srv = start(args, NULL);
    open_retry(&a, srv->sock);
    open_retry(&b, srv->sock);
    int fd = uc_connect(srv->sock);
    assert_true(fd >= 0);
    assert_int_equal(uc_expect_fatal(fd, &reason, NULL, 0, TIMEOUT_MS), 0);
    assert_int_equal(reason, -EUSERS);
    close(fd);
    pid_t a_pid = (pid_t)info(&a).pid;
    uc_session_close(&a);
    assert_int_equal(uc_wait_process_gone(a_pid, TIMEOUT_MS), 0);
    open_retry(&c, srv->sock);
    echo(&c, 3);
    uc_session_close(&b);
    uc_session_close(&c);
    stop_clean(srv);
}

/* ---- --no-fork ------------------------------------------------------------------------------- */

/* Two clients as two threads and two contexts of the server process itself. */
static void test_no_fork(void **state)
{
    (void)state;
    struct uc_server *srv = new_server();
    struct uc_session a, b;
    char env_deinit[200], log_path[160], text[256] = "";
    uint32_t ret;
    assert_int_equal(uc_server_prepare(srv), 0);
    snprintf(log_path, sizeof(log_path), "%s/deinit.log", srv->dir);
    snprintf(env_deinit, sizeof(env_deinit), FAKE_ENV_DEINIT_LOG "=%s", log_path);
    const char *const env[] = { env_deinit, NULL };
    assert_int_equal(uc_server_spawn(srv, VGPU_TEST_SERVER, fake_args_nofork, env), 0);
    assert_int_equal(uc_server_wait_ready(srv, 10000), 0);

    assert_int_equal(uc_session_open(&a, srv->sock, 4096, true), 0);
    assert_int_equal(uc_session_open(&b, srv->sock, 4096, true), 0);
    struct info ia = info(&a), ib = info(&b);
    assert_int_equal(ia.pid, (uint32_t)srv->pid);
    assert_int_equal(ib.pid, (uint32_t)srv->pid);
    assert_int_equal(ib.live, 2);
    assert_true(ia.ctx_id != ib.ctx_id);

    submit_sleep(&a, 800); /* B is answered while A's thread sleeps */
    echo(&b, 7);
    assert_int_equal(atomic_load((_Atomic uint32_t *)(void *)a.reply.map), 0);
    assert_int_equal(uc_wait_reply(a.fd, &a.reply, TIMEOUT_MS, &ret), 0);
    assert_int_equal(ret, 4 + VGPU_OK);

    uc_session_close(&a); /* A's context ends; B goes on */
    int64_t end = uc_now_ms() + TIMEOUT_MS;
    while (uc_now_ms() < end) {
        int fd = open(log_path, O_RDONLY);
        if (fd >= 0) {
            ssize_t n = read(fd, text, sizeof(text) - 1);
            text[n > 0 ? n : 0] = '\0';
            close(fd);
        }
        if (text[0])
            break;
        usleep(10000);
    }
    char want[32];
    snprintf(want, sizeof(want), "deinit %u\n", ia.ctx_id);
    assert_string_equal(text, want);
    echo(&b, 8);
    assert_int_equal(info(&b).live, 1);

    /* SIGTERM with B connected: B's thread is hung up and joined, the exit is clean */
    stop_clean(srv);
    assert_int_equal(uc_expect_eof(b.fd, TIMEOUT_MS), 0);
    uc_session_close(&b);
}

/* ---- shutdown and the socket path ------------------------------------------------------------ */

/* SIGTERM: exit 0, the socket file removed, workers terminated, clients hung up. */
static void test_sigterm(void **state)
{
    (void)state;
    struct uc_session a;
    struct stat st;
    int status = -1;
    struct uc_server *srv = start(fake_args, NULL);
    assert_int_equal(uc_session_open(&a, srv->sock, 4096, true), 0);
    pid_t a_pid = (pid_t)info(&a).pid;
    assert_int_equal(kill(srv->pid, SIGTERM), 0);
    assert_int_equal(uc_server_wait_exit(srv, TIMEOUT_MS, &status), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(stat(srv->sock, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(uc_expect_eof(a.fd, TIMEOUT_MS), 0);
    assert_int_equal(uc_wait_process_gone(a_pid, TIMEOUT_MS), 0);
    uc_session_close(&a);
    uc_server_stop(srv, TIMEOUT_MS, NULL);
}

/* Workers die with their listener, even when it cannot clean up (SIGKILL). */
static void test_listener_killed(void **state)
{
    (void)state;
    struct uc_session a;
    int status = -1;
    struct uc_server *srv = start(fake_args, NULL);
    assert_int_equal(uc_session_open(&a, srv->sock, 4096, true), 0);
    pid_t a_pid = (pid_t)info(&a).pid;
    assert_int_equal(kill(srv->pid, SIGKILL), 0);
    assert_int_equal(uc_server_wait_exit(srv, TIMEOUT_MS, &status), 0);
    assert_int_equal(uc_expect_eof(a.fd, TIMEOUT_MS), 0); /* the orphaned worker is gone */
    int64_t end = uc_now_ms() + TIMEOUT_MS;
    while (uc_process_alive(a_pid) && uc_now_ms() < end)
        usleep(5000);
    assert_false(uc_process_alive(a_pid));
    uc_session_close(&a);
    uc_server_stop(srv, TIMEOUT_MS, NULL);
}

/* A second server on the same path refuses to start and leaves the first one alone. */
static void test_second_server_refused(void **state)
{
    (void)state;
    struct uc_session a;
    int status = -1;
    struct uc_server *first = start(fake_args, NULL);
    struct uc_server *second = new_server();
    *second = *first;
    second->pid = 0;
    second->dir[0] = '\0'; /* the directory is the first server's */
    assert_int_equal(uc_server_spawn(second, VGPU_TEST_SERVER, fake_args, NULL), 0);
    assert_int_equal(uc_server_wait_exit(second, TIMEOUT_MS, &status), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_int_equal(uc_session_open(&a, first->sock, 4096, true), 0);
    echo(&a, 4);
    uc_session_close(&a);
    stop_clean(first);
}

/* A stale socket file is replaced; a path that is not a socket is never touched. */
static void test_stale_socket(void **state)
{
    (void)state;
    struct uc_server *srv = new_server();
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct uc_session a;
    int status = -1;
    assert_int_equal(uc_server_prepare(srv), 0);
    strcpy(addr.sun_path, srv->sock);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd); /* a socket file nobody listens on */
    assert_int_equal(uc_server_spawn(srv, VGPU_TEST_SERVER, fake_args, NULL), 0);
    assert_int_equal(uc_server_wait_ready(srv, 10000), 0);
    assert_int_equal(uc_session_open(&a, srv->sock, 4096, true), 0);
    uc_session_close(&a);
    stop_clean(srv);

    srv = new_server();
    assert_int_equal(uc_server_prepare(srv), 0);
    fd = open(srv->sock, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(uc_server_spawn(srv, VGPU_TEST_SERVER, fake_args, NULL), 0);
    assert_int_equal(uc_server_wait_exit(srv, TIMEOUT_MS, &status), 0);
    assert_int_equal(WEXITSTATUS(status), 1);
    struct stat st;
    assert_int_equal(stat(srv->sock, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    uc_server_stop(srv, TIMEOUT_MS, NULL);
}

/* ---- LOADLIBRARY failures -------------------------------------------------------------------- */

/* LOADLIBRARY code of a server started with args/env. */
static uint32_t load_code(const char *const *args, const char *const *env)
{
    struct uc_session s;
    uint32_t ret = UINT32_MAX;
    struct uc_server *srv = start(args, env);
    assert_int_equal(uc_session_open(&s, srv->sock, 4096, false), 0);
    assert_int_equal(uc_call(s.fd, &s.reply, APIR_COMMAND_TYPE_LOADLIBRARY, 0, NULL, 0,
                             TIMEOUT_MS, &ret), 0);
    uint32_t fwd = UINT32_MAX;
    assert_int_equal(uc_call(s.fd, &s.reply, APIR_COMMAND_TYPE_FORWARD, FAKE_CMD_ECHO, NULL, 0,
                             TIMEOUT_MS, &fwd), 0);
    assert_int_equal(fwd, APIR_FORWARD_NO_DISPATCH_FN);
    uc_session_close(&s);
    stop_clean(srv);
    return ret;
}

/* 4: the library cannot be opened; 5: it lacks a symbol; 6 + k: its init failed with k. */
static void test_load_library_errors(void **state)
{
    (void)state;
    static const char *const missing[] = { "--apir-library", "/nonexistent/libapir.so",
                                           "--log-level", "error", NULL };
    static const char *const nosym[] = { "--apir-library", FAKE_APIR_NOSYM_LIB, "--log-level",
                                         "error", NULL };
    static const char *const fail_env[] = { FAKE_ENV_INIT_RET "=4", NULL };
    static const char *const quiet[] = { "--apir-library", FAKE_APIR_LIB, "--log-level", "error",
                                         NULL };
    assert_int_equal(load_code(missing, NULL), APIR_LOAD_LIBRARY_CANNOT_OPEN);
    assert_int_equal(load_code(nosym, NULL), APIR_LOAD_LIBRARY_SYMBOL_MISSING);
    assert_int_equal(load_code(quiet, fail_env), APIR_LOAD_LIBRARY_INIT_BASE_INDEX + 4);
}

/* ---- command line ---------------------------------------------------------------------------- */

/* Bad options exit 2 without starting; --help and --version exit 0. */
static void test_command_line(void **state)
{
    (void)state;
    static const char *const bad[][3] = {
        { "--bogus", NULL, NULL },
        { "--max-command-size", "12Q", NULL },
        { "--max-command-size", "8", NULL },
        { "--max-clients", "0", NULL },
        { "--max-buffers", "-1", NULL },
        { "--log-level", "loud", NULL },
        { "--poll-us", "100001", NULL },
        { "--poll-us", "-1", NULL },
        { "--socket", NULL, NULL },
        { "stray", NULL, NULL },
    };
    char out[4096];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int status = uc_run_capture(VGPU_TEST_SERVER, bad[i], out, sizeof(out), TIMEOUT_MS);
        assert_true(status >= 0 && WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 2);
    }
    static const char *const help[] = { "--help", NULL };
    int status = uc_run_capture(VGPU_TEST_SERVER, help, out, sizeof(out), TIMEOUT_MS);
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(out, "--max-resource-bytes"));
    static const char *const version[] = { "--version", NULL };
    status = uc_run_capture(VGPU_TEST_SERVER, version, out, sizeof(out), TIMEOUT_MS);
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(out, "ggml-virtgpu-server"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_many_clients, teardown),
        cmocka_unit_test_teardown(test_crash_isolation, teardown),
        cmocka_unit_test_teardown(test_worker_exits_with_client, teardown),
        cmocka_unit_test_teardown(test_max_clients, teardown),
        cmocka_unit_test_teardown(test_no_fork, teardown),
        cmocka_unit_test_teardown(test_sigterm, teardown),
        cmocka_unit_test_teardown(test_listener_killed, teardown),
        cmocka_unit_test_teardown(test_second_server_refused, teardown),
        cmocka_unit_test_teardown(test_stale_socket, teardown),
        cmocka_unit_test_teardown(test_load_library_errors, teardown),
        cmocka_unit_test_teardown(test_command_line, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
