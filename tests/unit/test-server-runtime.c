/*
 * Unit tests of the server's APIR runtime (server/runtime.c) without sockets: resources,
 * framing, HANDSHAKE / LOADLIBRARY / FORWARD codes, the callbacks and the context table,
 * driven in-process against the fake APIR library (tests/support/fake-apir-lib.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "apir.h"
#include "codec.h"
#include "fake-apir-lib.h"
#include "runtime.h"

#ifndef FAKE_APIR_LIB
#error "FAKE_APIR_LIB must name the fake APIR library"
#endif

#define REPLY_ID 1u
#define REPLY_SIZE 4096u

struct fixture {
    struct srv_rt *rt;
    uint8_t       *reply;
    char           why[256];
};

static const struct srv_rt_params base_params = {
    .apir_library = FAKE_APIR_LIB,
    .backend = "/fake/libggml-backend.so",
    .backend_reg = "fake_reg",
    .log_level = "debug",
    .quota_buffers = 7,
    .quota_buffer_bytes = SRV_RT_UNSET,
    .quota_graph_nodes = 99,
    .quota_command_bytes = 65536,
    .max_resource_bytes = 64 * 1024,
};

/* A sealable memfd of `size` bytes filled with `byte`; asserts on failure. */
static int make_memfd(size_t size, uint8_t byte)
{
    int fd = memfd_create("test-rt", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    memset(p, byte, size);
    munmap(p, size);
    return fd;
}

/* Imports a fresh memfd of `size` bytes as res_id; returns the runtime's status. */
static int import(struct srv_rt *rt, uint32_t res_id, size_t size, uint64_t declared)
{
    int fd = make_memfd(size, 0x5a);
    int rc = srv_rt_resource_import(rt, res_id, fd, declared);
    close(fd);
    return rc;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(srv_rt_create(42, &base_params, &f->rt), 0);
    assert_int_equal(import(f->rt, REPLY_ID, REPLY_SIZE, REPLY_SIZE), 0);
    f->reply = srv_rt_resource_ptr(f->rt, REPLY_ID, NULL);
    assert_non_null(f->reply);
    *state = f;
    return 0;
}

/* The deinit log of test_context_table, removed by teardown whatever happened. */
static char deinit_log[] = "/tmp/vgpu-rt-deinit-XXXXXX";
static bool deinit_log_made;

static int teardown(void **state)
{
    struct fixture *f = *state;
    srv_rt_destroy(f->rt);
    free(f);
    unsetenv(FAKE_ENV_INIT_RET);
    unsetenv(FAKE_ENV_DEINIT_LOG);
    if (deinit_log_made)
        unlink(deinit_log);
    deinit_log_made = false;
    return 0;
}

/*
 * Submits {type, flags, reply_id} + payload; returns srv_rt_submit's result and the reply
 * code (word - 1) in *ret (UINT32_MAX if the word was not written).
 */
static int submit(struct fixture *f, int32_t type, int32_t flags, uint32_t reply_id,
                  const void *payload, size_t n, uint32_t *ret)
{
    uint8_t cmd[1024];
    assert_true(n <= sizeof(cmd) - APIR_HEADER_SIZE);
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, cmd, sizeof(cmd));
    vgpu_enc_i32(&enc, type);
    vgpu_enc_i32(&enc, flags);
    vgpu_enc_u32(&enc, reply_id);
    vgpu_enc_raw(&enc, payload, n);
    atomic_store((_Atomic uint32_t *)(void *)f->reply, 0);
    f->why[0] = '\0';
    int rc = srv_rt_submit(f->rt, cmd, vgpu_enc_used(&enc), f->why, sizeof(f->why));
    *ret = atomic_load((_Atomic uint32_t *)(void *)f->reply) - 1u;
    return rc;
}

/* FORWARD cmd with payload; asserts the submit worked and returns the reply code. */
static uint32_t forward(struct fixture *f, int32_t cmd, const void *payload, size_t n)
{
    uint32_t ret;
    assert_int_equal(submit(f, APIR_COMMAND_TYPE_FORWARD, cmd, REPLY_ID, payload, n, &ret), 0);
    return ret;
}

/* LOADLIBRARY; returns its code. */
static uint32_t load(struct fixture *f)
{
    uint32_t ret;
    assert_int_equal(submit(f, APIR_COMMAND_TYPE_LOADLIBRARY, 0, REPLY_ID, NULL, 0, &ret), 0);
    return ret;
}

/* The reply payload decoder (from offset 4 of the reply resource). */
static struct vgpu_dec reply_dec(struct fixture *f)
{
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, f->reply + APIR_REPLY_PAYLOAD_OFFSET,
                  REPLY_SIZE - APIR_REPLY_PAYLOAD_OFFSET);
    return dec;
}

/* Asks the fake library for config key `key` of context ctx_id (0 = own). */
static bool get_config(struct fixture *f, uint32_t ctx_id, const char *key, char *out, size_t cap)
{
    uint8_t req[256];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, req, sizeof(req));
    vgpu_enc_u32(&enc, ctx_id);
    vgpu_enc_string(&enc, key);
    assert_int_equal(forward(f, FAKE_CMD_CONFIG, req, vgpu_enc_used(&enc)), 4 + VGPU_OK);
    struct vgpu_dec dec = reply_dec(f);
    bool present = vgpu_dec_u32(&dec) != 0;
    assert_true(vgpu_dec_string(&dec, out, cap));
    return present;
}

/* ---- resources ------------------------------------------------------------------------------ */

/* Import rules: ids, sizes, fd kinds, duplicates, quota, destroy. */
static void test_resources(void **state)
{
    struct fixture *f = *state;
    uint64_t size = 0;
    /* the reply resource of the fixture: 4096 bytes charged of the 64 KiB quota */
    assert_non_null(srv_rt_resource_ptr(f->rt, REPLY_ID, &size));
    assert_int_equal(size, REPLY_SIZE);

    assert_int_equal(import(f->rt, REPLY_ID, 4096, 4096), -EEXIST);
    assert_int_equal(import(f->rt, 0, 4096, 4096), -EINVAL);
    assert_int_equal(import(f->rt, 2, 4096, 0), -EINVAL);
    assert_int_equal(import(f->rt, 2, 4096, 4097), -EINVAL); /* fd smaller than declared */
    assert_int_equal(import(f->rt, 2, 4096, UINT64_MAX), -EINVAL);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(srv_rt_resource_import(f->rt, 2, pipefd[0], 16), -EINVAL);
    close(pipefd[0]);
    close(pipefd[1]);
    assert_int_equal(srv_rt_resource_import(f->rt, 2, -1, 16), -EINVAL);

    /* a 1-byte resource is charged a whole page: 60 KiB left means 15 more pages */
    assert_int_equal(import(f->rt, 2, 100, 1), 0);
    assert_non_null(srv_rt_resource_ptr(f->rt, 2, &size));
    assert_int_equal(size, 1);
    assert_int_equal(import(f->rt, 3, 56 * 1024, 56 * 1024), 0);
    assert_int_equal(import(f->rt, 4, 4096, 4096), -EDQUOT);
    assert_int_equal(srv_rt_resource_destroy(f->rt, 3), 0);
    assert_null(srv_rt_resource_ptr(f->rt, 3, NULL));
    assert_int_equal(import(f->rt, 4, 4096, 4096), 0); /* the quota was given back */
    assert_int_equal(srv_rt_resource_destroy(f->rt, 3), -ENOENT);
    assert_int_equal(srv_rt_resource_destroy(f->rt, 77), -ENOENT);
}

/* A sealable memfd is sealed against shrinking, so the client cannot cause SIGBUS. */
static void test_resource_sealed(void **state)
{
    struct fixture *f = *state;
    int fd = make_memfd(8192, 1);
    assert_int_equal(srv_rt_resource_import(f->rt, 9, fd, 8192), 0);
    assert_true(fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK);
    assert_int_not_equal(ftruncate(fd, 4096), 0);
    assert_int_equal(ftruncate(fd, 16384), 0); /* growing stays allowed */
    close(fd);
    /* an unsealable memfd is still accepted */
    fd = memfd_create("test-rt-nosealing", MFD_CLOEXEC);
    assert_int_equal(ftruncate(fd, 4096), 0);
    assert_int_equal(srv_rt_resource_import(f->rt, 10, fd, 4096), 0);
    close(fd);
}

/* ---- framing --------------------------------------------------------------------------------- */

/* HANDSHAKE answers 0.2 and the magic, also on the Venus route (+331). */
static void test_handshake(void **state)
{
    struct fixture *f = *state;
    const uint32_t version[2] = { 0, 2 };
    uint32_t ret;
    for (int venus = 0; venus < 2; venus++) {
        memset(f->reply, 0xee, 16);
        int32_t type = APIR_COMMAND_TYPE_HANDSHAKE + (venus ? APIR_VENUS_COMMAND_TYPE_OFFSET : 0);
        assert_int_equal(submit(f, type, 0, REPLY_ID, version, sizeof(version), &ret), 0);
        assert_int_equal(ret, APIR_HANDSHAKE_MAGIC);
        struct vgpu_dec dec = reply_dec(f);
        assert_int_equal(vgpu_dec_u32(&dec), APIR_PROTOCOL_MAJOR);
        assert_int_equal(vgpu_dec_u32(&dec), APIR_PROTOCOL_MINOR);
    }
    /* a guest of another version still gets the magic (virglrenderer behaviour) */
    const uint32_t other[2] = { 1, 7 };
    assert_int_equal(submit(f, APIR_COMMAND_TYPE_HANDSHAKE, 0, REPLY_ID, other, 8, &ret), 0);
    assert_int_equal(ret, APIR_HANDSHAKE_MAGIC);
    /* no version: a protocol violation, nothing written */
    assert_int_equal(submit(f, APIR_COMMAND_TYPE_HANDSHAKE, 0, REPLY_ID, other, 4, &ret), -EPROTO);
    assert_int_equal(ret, UINT32_MAX);
}

/* Commands that cannot be answered are protocol violations and write no reply word. */
static void test_bad_commands(void **state)
{
    struct fixture *f = *state;
    uint32_t ret;
    uint8_t shortcmd[8] = { 0 };
    f->why[0] = '\0';
    assert_int_equal(srv_rt_submit(f->rt, shortcmd, sizeof(shortcmd), f->why, sizeof(f->why)),
                     -EPROTO);
    assert_true(strlen(f->why) > 0);
    assert_int_equal(submit(f, 3, 0, REPLY_ID, NULL, 0, &ret), -EPROTO);
    assert_int_equal(submit(f, -1, 0, REPLY_ID, NULL, 0, &ret), -EPROTO);
    assert_int_equal(submit(f, APIR_VENUS_COMMAND_TYPE_OFFSET + 3, 0, REPLY_ID, NULL, 0, &ret),
                     -EPROTO);
    assert_int_equal(ret, UINT32_MAX);
    assert_int_equal(submit(f, APIR_COMMAND_TYPE_LOADLIBRARY, 0, 99, NULL, 0, &ret), -ENOENT);
    assert_non_null(strstr(f->why, "99"));
    assert_int_equal(ret, UINT32_MAX);
    /* a reply resource smaller than the reply word */
    assert_int_equal(import(f->rt, 5, 4096, 2), 0);
    assert_int_equal(submit(f, APIR_COMMAND_TYPE_LOADLIBRARY, 0, 5, NULL, 0, &ret), -EPROTO);
    /* HANDSHAKE needs room for its 8-byte reply */
    assert_int_equal(import(f->rt, 6, 4096, 8), 0);
    const uint32_t version[2] = { 0, 2 };
    assert_int_equal(submit(f, APIR_COMMAND_TYPE_HANDSHAKE, 0, 6, version, 8, &ret), -EPROTO);
}

/* ---- LOADLIBRARY and FORWARD --------------------------------------------------------------- */

/* FORWARD before LOADLIBRARY answers 1. */
static void test_forward_without_library(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(forward(f, FAKE_CMD_ECHO, "abcd", 4), APIR_FORWARD_NO_DISPATCH_FN);
}

/* LOADLIBRARY (the library answers 6 = success), then 2; FORWARD codes and payloads. */
static void test_load_and_forward(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f), APIR_LOAD_LIBRARY_SUCCESS);
    assert_int_equal(load(f), APIR_LOAD_LIBRARY_ALREADY_LOADED);

    const char payload[12] = "hello, APIR";
    assert_int_equal(forward(f, FAKE_CMD_ECHO, payload, sizeof(payload)), 4 + VGPU_OK);
    assert_memory_equal(f->reply + 4, payload, sizeof(payload));
    /* Venus route for FORWARD too */
    uint32_t ret;
    assert_int_equal(submit(f, APIR_VENUS_COMMAND_TYPE_OFFSET + 2, FAKE_CMD_ECHO, REPLY_ID,
                            payload, 4, &ret), 0);
    assert_int_equal(ret, 4 + VGPU_OK);

    const uint32_t code = 9;
    assert_int_equal(forward(f, FAKE_CMD_RETURN, &code, 4), 4 + 9);
    assert_int_equal(forward(f, 12345, NULL, 0), 4 + VGPU_UNKNOWN_COMMAND);
    const uint32_t huge = UINT32_MAX - 4; /* 1 + 4 + code would wrap the word to "pending" */
    assert_int_equal(forward(f, FAKE_CMD_RETURN, &huge, 4), APIR_FORWARD_NO_DISPATCH_FN);
    assert_int_equal(forward(f, FAKE_CMD_BAD_AFTER, NULL, 0), APIR_FORWARD_NO_DISPATCH_FN);
    /* an echo larger than the reply area fails inside the library, not in the runtime */
    static uint8_t big[REPLY_SIZE];
    uint8_t cmd[APIR_HEADER_SIZE + sizeof(big)];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, cmd, sizeof(cmd));
    vgpu_enc_i32(&enc, APIR_COMMAND_TYPE_FORWARD);
    vgpu_enc_i32(&enc, FAKE_CMD_ECHO);
    vgpu_enc_u32(&enc, REPLY_ID);
    vgpu_enc_raw(&enc, big, sizeof(big));
    assert_int_equal(srv_rt_submit(f->rt, cmd, sizeof(cmd), f->why, sizeof(f->why)), 0);
    assert_int_equal(atomic_load((_Atomic uint32_t *)(void *)f->reply) - 1, 4 + VGPU_INVALID);
}

/* The library sees the config table the runtime built, and nothing of other contexts. */
static void test_config(void **state)
{
    struct fixture *f = *state;
    char value[256];
    char expect[32];
    assert_int_equal(load(f), 0);
    assert_true(get_config(f, 0, "ggml.library.path", value, sizeof(value)));
    assert_string_equal(value, "/fake/libggml-backend.so");
    assert_true(get_config(f, 0, "ggml.library.reg", value, sizeof(value)));
    assert_string_equal(value, "fake_reg");
    assert_true(get_config(f, 0, "apir.callbacks.size", value, sizeof(value)));
    snprintf(expect, sizeof(expect), "%zu", sizeof(struct vgpu_apir_callbacks));
    assert_string_equal(value, expect);
    assert_true(get_config(f, 0, VGPU_CFG_QUOTA_BUFFERS, value, sizeof(value)));
    assert_string_equal(value, "7");
    assert_true(get_config(f, 0, VGPU_CFG_QUOTA_NODES, value, sizeof(value)));
    assert_string_equal(value, "99");
    assert_true(get_config(f, 0, VGPU_CFG_QUOTA_COMMAND, value, sizeof(value)));
    assert_string_equal(value, "65536");
    assert_false(get_config(f, 0, VGPU_CFG_QUOTA_BYTES, value, sizeof(value))); /* unset */
    assert_true(get_config(f, 0, VGPU_CFG_LOG_LEVEL, value, sizeof(value)));
    assert_string_equal(value, "debug");
    assert_false(get_config(f, 0, "no.such.key", value, sizeof(value)));
    assert_false(get_config(f, 4242, "ggml.library.path", value, sizeof(value)));
}

/* get_shmem_ptr and get_shmem_size see the client's bytes; the library can write them. */
static void test_shmem_callbacks(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f), 0);
    int fd = make_memfd(5000, 0x33);
    assert_int_equal(srv_rt_resource_import(f->rt, 7, fd, 5000), 0);
    uint32_t id = 7;
    assert_int_equal(forward(f, FAKE_CMD_RESOURCE, &id, 4), 4 + VGPU_OK);
    struct vgpu_dec dec = reply_dec(f);
    uint8_t expect[5000];
    memset(expect, 0x33, sizeof(expect));
    assert_int_equal(vgpu_dec_u32(&dec), 1);
    assert_int_equal(vgpu_dec_i32(&dec), 0);
    assert_int_equal(vgpu_dec_u64(&dec), 5000);
    assert_true(vgpu_dec_u64(&dec) == fake_checksum(expect, sizeof(expect)));

    const uint32_t fill[2] = { 7, 0x77 };
    assert_int_equal(forward(f, FAKE_CMD_FILL, fill, sizeof(fill)), 4 + VGPU_OK);
    uint8_t *p = mmap(NULL, 5000, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    assert_int_equal(p[0], 0x77);
    assert_int_equal(p[4999], 0x77);
    munmap(p, 5000);
    close(fd);

    id = 8; /* unknown resource */
    assert_int_equal(forward(f, FAKE_CMD_RESOURCE, &id, 4), 4 + VGPU_OK);
    dec = reply_dec(f);
    assert_int_equal(vgpu_dec_u32(&dec), 0);
    assert_int_equal(vgpu_dec_i32(&dec), -1);
}

/* LOADLIBRARY failures: 4 (dlopen), 5 (symbols), 6 + k (init); a retry after them works. */
static void test_load_errors(void **state)
{
    struct fixture *f = *state;
    struct srv_rt_params p = base_params;
    struct srv_rt *other = NULL;
    uint32_t ret;

    /* the fixture's context: init codes */
    setenv(FAKE_ENV_INIT_RET, "3", 1);
    assert_int_equal(load(f), APIR_LOAD_LIBRARY_INIT_BASE_INDEX + 3);
    setenv(FAKE_ENV_INIT_RET, "13", 1);
    assert_int_equal(load(f), APIR_LOAD_LIBRARY_INIT_BASE_INDEX + 13);
    setenv(FAKE_ENV_INIT_RET, "0", 1);
    assert_int_equal(load(f), APIR_LOAD_LIBRARY_SUCCESS); /* 0 is success as well as 6 */
    unsetenv(FAKE_ENV_INIT_RET);
    assert_int_equal(load(f), APIR_LOAD_LIBRARY_ALREADY_LOADED);

    /* other libraries, in other contexts */
    const char *libs[2] = { "/nonexistent/libapir.so", FAKE_APIR_NOSYM_LIB };
    const uint32_t codes[2] = { APIR_LOAD_LIBRARY_CANNOT_OPEN, APIR_LOAD_LIBRARY_SYMBOL_MISSING };
    for (int i = 0; i < 2; i++) {
        p.apir_library = libs[i];
        assert_int_equal(srv_rt_create(100 + (uint32_t)i, &p, &other), 0);
        int fd = make_memfd(4096, 0);
        assert_int_equal(srv_rt_resource_import(other, 1, fd, 4096), 0);
        close(fd);
        struct fixture g = { .rt = other, .reply = srv_rt_resource_ptr(other, 1, NULL) };
        assert_int_equal(submit(&g, APIR_COMMAND_TYPE_LOADLIBRARY, 0, 1, NULL, 0, &ret), 0);
        assert_int_equal(ret, codes[i]);
        assert_int_equal(submit(&g, APIR_COMMAND_TYPE_FORWARD, FAKE_CMD_ECHO, 1, NULL, 0, &ret), 0);
        assert_int_equal(ret, APIR_FORWARD_NO_DISPATCH_FN);
        srv_rt_destroy(other);
    }
}

/* Several contexts in one process: ids are unique, each is served, deinit per context. */
static void test_context_table(void **state)
{
    struct fixture *f = *state;
    struct srv_rt *dup = NULL, *second = NULL;
    int log_fd = mkstemp(deinit_log);
    assert_true(log_fd >= 0);
    deinit_log_made = true;
    setenv(FAKE_ENV_DEINIT_LOG, deinit_log, 1);

    assert_int_equal(srv_rt_create(42, &base_params, &dup), -EEXIST);
    struct srv_rt_params p = base_params;
    p.backend = "/second/backend.so";
    assert_int_equal(srv_rt_create(43, &p, &second), 0);
    int fd = make_memfd(4096, 0);
    assert_int_equal(srv_rt_resource_import(second, 1, fd, 4096), 0);
    close(fd);
    struct fixture g = { .rt = second, .reply = srv_rt_resource_ptr(second, 1, NULL) };

    assert_int_equal(load(f), 0);
    assert_int_equal(load(&g), 0);
    assert_int_equal(forward(f, FAKE_CMD_INFO, NULL, 0), 4 + VGPU_OK);
    struct vgpu_dec dec = reply_dec(f);
    assert_int_equal(vgpu_dec_u32(&dec), 42);
    (void)vgpu_dec_u32(&dec);
    assert_int_equal(vgpu_dec_u32(&dec), 2); /* two live contexts in the library */

    char value[256];
    assert_true(get_config(&g, 0, "ggml.library.path", value, sizeof(value)));
    assert_string_equal(value, "/second/backend.so");
    assert_true(get_config(f, 43, "ggml.library.path", value, sizeof(value)));
    assert_string_equal(value, "/second/backend.so");

    srv_rt_destroy(second);
    assert_false(get_config(f, 43, "ggml.library.path", value, sizeof(value)));
    char text[64] = { 0 };
    assert_true(read(log_fd, text, sizeof(text) - 1) > 0);
    assert_string_equal(text, "deinit 43\n");
    close(log_fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_without_library, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_and_forward, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shmem_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
