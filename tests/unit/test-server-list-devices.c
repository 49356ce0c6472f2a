/*
 * ggml-virtgpu-server --list-devices: the device lines from the fake APIR library (exact
 * text), a clean failure with a library that cannot be loaded, and, when the real host
 * library has been built, the CPU backend through it, in-process and in a worker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apir.h"
#include "codec.h"
#include "unix-client.h"

#ifndef VGPU_TEST_SERVER
#error "VGPU_TEST_SERVER must name the server binary"
#endif

#define TIMEOUT_MS 30000

/* The fake library's two devices, as the guest will name them. */
static void test_fake_devices(void **state)
{
    (void)state;
    static const char *const args[] = { "--list-devices", "--apir-library", FAKE_APIR_LIB,
                                        "--log-level", "error", NULL };
    char out[4096];
    int status = uc_run_capture(VGPU_TEST_SERVER, args, out, sizeof(out), TIMEOUT_MS);
    assert_true(status >= 0 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_string_equal(out,
                        "VirtGPU0: FakeDev0 - Fake device zero, 1024/2048 MiB, buffer type FAKE0, "
                        "zero-copy\n"
                        "VirtGPU1: FakeDev1 - Fake device one, 512/512 MiB, buffer type FAKE1\n");
}

/* A library that cannot be loaded: non-zero exit, nothing on stdout. */
static void test_bad_library(void **state)
{
    (void)state;
    static const char *const missing[] = { "--list-devices", "--apir-library",
                                           "/nonexistent/libapir.so", "--log-level", "error",
                                           NULL };
    static const char *const nosym[] = { "--list-devices", "--apir-library",
                                         FAKE_APIR_NOSYM_LIB, "--log-level", "error", NULL };
    char out[4096];
    int status = uc_run_capture(VGPU_TEST_SERVER, missing, out, sizeof(out), TIMEOUT_MS);
    assert_true(status >= 0 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_string_equal(out, "");
    status = uc_run_capture(VGPU_TEST_SERVER, nosym, out, sizeof(out), TIMEOUT_MS);
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_string_equal(out, "");
}

/* The real host library on the default (CPU) backend, if it has been built. */
static void test_real_host_library(void **state)
{
    (void)state;
    if (access(VGPU_TEST_HOST_LIB, R_OK) != 0) {
        printf("skipped: %s has not been built\n", VGPU_TEST_HOST_LIB);
        skip();
    }
    static const char *const args[] = { "--list-devices", "--apir-library", VGPU_TEST_HOST_LIB,
                                        "--log-level", "error", NULL };
    char out[4096];
    int status = uc_run_capture(VGPU_TEST_SERVER, args, out, sizeof(out), TIMEOUT_MS);
    printf("%s", out);
    assert_true(status >= 0 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(strncmp(out, "VirtGPU0: ", 10) == 0);
    assert_non_null(strstr(out, "MiB, buffer type "));
}

/* The server of the worker test, stopped by teardown even if an assertion fails. */
static struct uc_server server;

static int teardown_server(void **state)
{
    (void)state;
    uc_server_stop(&server, TIMEOUT_MS, NULL);
    return 0;
}

/* A worker loads the real host library on the CPU backend and answers a baseline command. */
static void test_real_host_library_worker(void **state)
{
    (void)state;
    if (access(VGPU_TEST_HOST_LIB, R_OK) != 0) {
        printf("skipped: %s has not been built\n", VGPU_TEST_HOST_LIB);
        skip();
    }
    static const char *const args[] = { "--apir-library", VGPU_TEST_HOST_LIB, "--log-level",
                                        "warn", NULL };
    struct uc_session s;
    uint32_t ret = 0;
    int status = -1;
    assert_int_equal(uc_server_start(&server, VGPU_TEST_SERVER, args, NULL), 0);
    assert_int_equal(uc_session_open(&s, server.sock, 64 * 1024, true), 0);
    assert_int_equal(uc_call(s.fd, &s.reply, APIR_COMMAND_TYPE_FORWARD,
                             APIR_CMD_DEVICE_GET_COUNT, NULL, 0, TIMEOUT_MS, &ret), 0);
    assert_int_equal(ret, APIR_FORWARD_BASE_INDEX + VGPU_OK);
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, s.reply.map + 4, 4);
    assert_int_equal(vgpu_dec_i32(&dec), 1);
    uc_session_close(&s);
    assert_int_equal(uc_server_stop(&server, TIMEOUT_MS, &status), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fake_devices),
        cmocka_unit_test(test_bad_library),
        cmocka_unit_test(test_real_host_library),
        cmocka_unit_test_teardown(test_real_host_library_worker, teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
