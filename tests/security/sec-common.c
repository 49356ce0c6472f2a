/*
 * Helpers of the malicious-message regression suite; contracts in sec-common.h.
 */
#include "sec-common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define ALIVE_RES_DATA  61u
#define ALIVE_RES_GRAPH 62u
#define BIG_GRAPH_RES   60u

static uint32_t next_ctx = 9000;

uint32_t sec_next_ctx_id(void)
{
    return next_ctx++;
}

/* ---- contexts ------------------------------------------------------------------------------- */

struct apir_harness *sec_open_cfg(bool ext, const char *const *kv)
{
    /* VGPU_SEC_HOST_LIBRARY runs the suite against another build of the library (e.g. an older
     * one, to see that the tests catch what it lacks). */
    struct apir_harness_opts o;
    memset(&o, 0, sizeof(o));
    o.library_path = getenv("VGPU_SEC_HOST_LIBRARY");
    struct apir_harness *h = apir_harness_open(sec_next_ctx_id(), &o);
    assert_non_null(h);
    for (size_t i = 0; kv && kv[i]; i += 2)
        apir_harness_config(h, kv[i], kv[i + 1]);
    assert_int_equal(apir_harness_init(h), 0);
    if (ext)
        assert_int_equal(apir_harness_hello(h), VGPU_OK);
    return h;
}

struct apir_harness *sec_open(bool ext)
{
    return sec_open_cfg(ext, NULL);
}

void sec_close(struct apir_harness *h)
{
    size_t hits = apir_harness_pointer_hits(h);
    apir_harness_close(h);
    if (hits)
        fail_msg("%zu host addresses in replies", hits);
}

static uint32_t nop(struct apir_harness *h, bool ext)
{
    apir_harness_req(h);
    return apir_harness_send(h, ext ? VGPU_CMD_EXT_NOP : APIR_CMD_DEVICE_GET_COUNT, NULL);
}

void sec_check_alive(struct apir_harness *h, bool ext)
{
    assert_int_equal(nop(h, ext), VGPU_OK);
    float a[4] = { 1.5f, -2.0f, 3.25f, 100.0f }, b[4] = { 0.5f, 2.0f, -1.25f, 0.125f }, c[4];
    if (ext) {
        uint64_t buf = sec_ext_alloc_ok(h, 256);
        struct vgpu_wire_tensor wa = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 0);
        struct vgpu_wire_tensor wb = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 64);
        struct vgpu_wire_tensor wc = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 128);
        assert_int_equal(apir_harness_set(h, &wa, 0, a, sizeof(a)), VGPU_OK);
        assert_int_equal(apir_harness_set(h, &wb, 0, b, sizeof(b)), VGPU_OK);
        wc.op = GGML_OP_ADD;
        wc.src[0] = 1;
        wc.src[1] = 2;
        wc.flags = GGML_TENSOR_FLAG_COMPUTE;
        struct sec_graph g;
        sec_graph_init(&g, 3);
        sec_graph_add(&g, &wa);
        sec_graph_add(&g, &wb);
        sec_graph_node(&g, sec_graph_add(&g, &wc));
        uint32_t result = 99;
        int32_t status = -99;
        assert_int_equal(sec_ext_graph(h, &g, 0, &result, &status), VGPU_OK);
        sec_graph_free(&g);
        assert_int_equal(result, VGPU_GRAPH_COMPUTED);
        assert_int_equal(status, GGML_STATUS_SUCCESS);
        struct vgpu_wire_tensor out = sec_wire(GGML_TYPE_F32, 4, 1, 1, 1, buf, 128);
        assert_int_equal(apir_harness_get(h, &out, 0, c, sizeof(c)), VGPU_OK);
        assert_int_equal(apir_harness_free(h, buf), VGPU_OK);
    } else {
        uint64_t buf = sec_bl_alloc_ok(h, 256);
        uint8_t *res = apir_harness_res_ptr(h, ALIVE_RES_DATA);
        if (!res)
            res = apir_harness_res_create(h, ALIVE_RES_DATA, 4096);
        assert_non_null(res);
        struct vgpu_rpc_tensor ta = sec_rpc(0x1000, GGML_TYPE_F32, buf, 4, 1, 0);
        struct vgpu_rpc_tensor tb = sec_rpc(0x2000, GGML_TYPE_F32, buf, 4, 1, 64);
        struct vgpu_rpc_tensor tc = sec_rpc(0x3000, GGML_TYPE_F32, buf, 4, 1, 128);
        memcpy(res, a, sizeof(a));
        assert_int_equal(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &ta, ALIVE_RES_DATA, 0, 16), VGPU_OK);
        memcpy(res, b, sizeof(b));
        assert_int_equal(sec_bl_transfer(h, APIR_CMD_BUFFER_SET_TENSOR, buf, &tb, ALIVE_RES_DATA, 0, 16), VGPU_OK);
        tc.op = GGML_OP_ADD;
        tc.src[0] = ta.id;
        tc.src[1] = tb.id;
        tc.flags = GGML_TENSOR_FLAG_COMPUTE;
        struct vgpu_rpc_tensor t[3] = { ta, tb, tc };
        int32_t status = -99;
        assert_int_equal(sec_bl_graph(h, ALIVE_RES_GRAPH, 4096, &tc.id, 1, t, 3, 0, &status), VGPU_OK);
        assert_int_equal(status, GGML_STATUS_SUCCESS);
        memset(res, 0, 16);
        assert_int_equal(sec_bl_transfer(h, APIR_CMD_BUFFER_GET_TENSOR, buf, &tc, ALIVE_RES_DATA, 0, 16), VGPU_OK);
        memcpy(c, res, sizeof(c));
        assert_int_equal(sec_bl_free(h, buf), VGPU_OK);
    }
    for (int i = 0; i < 4; i++) {
        if (c[i] != a[i] + b[i])
            fail_msg("alive check: c[%d] = %g, expected %g", i, (double)c[i], (double)(a[i] + b[i]));
    }
    assert_int_equal(nop(h, ext), VGPU_OK);
}

void sec_check_fatal_then_new(struct apir_harness *h, bool ext)
{
    assert_int_equal(nop(h, ext), VGPU_FATAL);
    assert_int_equal(apir_harness_reply_len(h), 0);
    apir_harness_req(h);
    assert_int_equal(apir_harness_send(h, APIR_CMD_DEVICE_GET_BUFFER_TYPE, NULL), VGPU_FATAL);
    sec_close(h);
    struct apir_harness *fresh = sec_open(ext);
    sec_check_alive(fresh, ext);
    sec_close(fresh);
}

/* ---- baseline ------------------------------------------------------------------------------- */

uint64_t sec_bl_buft(struct apir_harness *h)
{
    apir_harness_req(h);
    struct vgpu_dec d;
    assert_int_equal(apir_harness_send(h, APIR_CMD_DEVICE_GET_BUFFER_TYPE, &d), VGPU_OK);
    uint64_t id = vgpu_dec_u64(&d);
    assert_true(vgpu_dec_ok(&d));
    return id;
}

uint32_t sec_bl_alloc(struct apir_harness *h, uint64_t size, uint64_t *id)
{
    uint64_t buft = sec_bl_buft(h);
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u64(e, buft);
    vgpu_enc_u64(e, size);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, APIR_CMD_BUFFER_TYPE_ALLOC_BUFFER, &d);
    *id = r == VGPU_OK ? vgpu_dec_u64(&d) : 0;
    return r;
}

uint64_t sec_bl_alloc_ok(struct apir_harness *h, uint64_t size)
{
    uint64_t id = 0;
    assert_int_equal(sec_bl_alloc(h, size, &id), VGPU_OK);
    assert_true(id != 0);
    return id;
}

uint32_t sec_bl_free(struct apir_harness *h, uint64_t id)
{
    vgpu_enc_u64(apir_harness_req(h), id);
    return apir_harness_send(h, APIR_CMD_BUFFER_FREE_BUFFER, NULL);
}

struct vgpu_rpc_tensor sec_rpc(uint64_t id, uint32_t type, uint64_t buffer, uint32_t ne0, uint32_t ne1,
                               uint64_t data)
{
    struct vgpu_rpc_tensor t;
    memset(&t, 0, sizeof(t));
    t.id = id;
    t.type = type;
    t.buffer = buffer;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.ne[2] = t.ne[3] = 1;
    if (type < GGML_TYPE_COUNT && ggml_blck_size((enum ggml_type)type) > 0) {
        size_t ts = ggml_type_size((enum ggml_type)type);
        t.nb[0] = (uint32_t)ts;
        t.nb[1] = (uint32_t)(ts * (ne0 / (uint32_t)ggml_blck_size((enum ggml_type)type)));
    } else {
        t.nb[0] = 4;
        t.nb[1] = 4 * ne0;
    }
    t.nb[2] = t.nb[3] = t.nb[1] * ne1;
    t.data = data;
    snprintf(t.name, sizeof(t.name), "sec-%llx", (unsigned long long)id);
    return t;
}

uint32_t sec_bl_transfer(struct apir_harness *h, uint32_t cmd, uint64_t buffer, const struct vgpu_rpc_tensor *t,
                         uint32_t res_id, uint64_t offset, uint64_t size)
{
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u64(e, buffer);
    vgpu_enc_rpc_tensor(e, t);
    vgpu_enc_u32(e, res_id);
    vgpu_enc_u64(e, offset);
    vgpu_enc_u64(e, size);
    uint32_t r = apir_harness_send(h, cmd, NULL);
    if (r != VGPU_OK)
        assert_int_equal(apir_harness_reply_len(h), 0);
    return r;
}

uint32_t sec_bl_copy(struct apir_harness *h, uint64_t buffer, const struct vgpu_rpc_tensor *src,
                     const struct vgpu_rpc_tensor *dst, bool *answer)
{
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u64(e, buffer);
    vgpu_enc_rpc_tensor(e, src);
    vgpu_enc_rpc_tensor(e, dst);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, APIR_CMD_BUFFER_CPY_TENSOR, &d);
    if (r == VGPU_OK && answer)
        *answer = vgpu_dec_bool(&d);
    return r;
}

/* A fresh resource res_id of `size` bytes (any previous one with that id is destroyed). */
static uint8_t *res_fresh(struct apir_harness *h, uint32_t res_id, size_t size)
{
    apir_harness_res_destroy(h, res_id);
    uint8_t *p = apir_harness_res_create(h, res_id, size);
    assert_non_null(p);
    return p;
}

uint32_t sec_bl_graph(struct apir_harness *h, uint32_t res_id, size_t res_size, const uint64_t *node_ids,
                      uint32_t n_nodes, const struct vgpu_rpc_tensor *t, uint32_t n, uint64_t size_override,
                      int32_t *status)
{
    size_t size = 8 + 8 * (size_t)n_nodes + (size_t)VGPU_RPC_TENSOR_SIZE * n;
    uint8_t *res = res_fresh(h, res_id, res_size > size ? res_size : size);
    struct vgpu_enc g;
    vgpu_enc_init(&g, res, size);
    vgpu_enc_u32(&g, n_nodes);
    for (uint32_t i = 0; i < n_nodes; i++)
        vgpu_enc_u64(&g, node_ids[i]);
    vgpu_enc_u32(&g, n);
    for (uint32_t i = 0; i < n; i++)
        vgpu_enc_rpc_tensor(&g, &t[i]);
    assert_true(vgpu_enc_ok(&g));
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_u32(e, res_id);
    vgpu_enc_u64(e, size_override ? size_override : size);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, APIR_CMD_BACKEND_GRAPH_COMPUTE, &d);
    if (r == VGPU_OK) {
        int32_t st = vgpu_dec_i32(&d);
        assert_true(vgpu_dec_ok(&d));
        if (status)
            *status = st;
    } else {
        assert_int_equal(apir_harness_reply_len(h), 0);
    }
    return r;
}

/* ---- extension ------------------------------------------------------------------------------ */

uint64_t sec_ext_alloc_ok(struct apir_harness *h, uint64_t size)
{
    uint64_t id = 0;
    assert_int_equal(apir_harness_alloc(h, 0, size, 0, &id, NULL), VGPU_OK);
    assert_true(id != 0);
    return id;
}

uint64_t sec_ext_alloc_zc(struct apir_harness *h, uint32_t res_id, uint64_t size, uint8_t **mem)
{
    uint8_t *p = apir_harness_res_create(h, res_id, (size_t)size);
    assert_non_null(p);
    uint64_t id = 0;
    uint32_t granted = 0;
    assert_int_equal(apir_harness_alloc(h, 0, size, res_id, &id, &granted), VGPU_OK);
    assert_int_equal(granted, VGPU_ALLOC_ZERO_COPY);
    if (mem)
        *mem = p;
    return id;
}

uint32_t sec_ext_transfer(struct apir_harness *h, uint32_t cmd, const struct vgpu_wire_tensor *w, uint64_t offset,
                          uint64_t size, uint64_t n_copies, uint64_t stride_tensor, uint64_t stride_data,
                          uint32_t res_id, uint64_t res_offset, const void *data, size_t data_len)
{
    struct vgpu_transfer x = { *w, offset, size, n_copies, stride_tensor, stride_data, res_id, res_offset };
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_transfer(e, &x);
    if (data)
        vgpu_enc_blob(e, data, data_len);
    uint32_t r = apir_harness_send(h, cmd, NULL);
    if (r != VGPU_OK)
        assert_int_equal(apir_harness_reply_len(h), 0);
    return r;
}

uint32_t sec_ext_copy(struct apir_harness *h, const struct vgpu_wire_tensor *src, const struct vgpu_wire_tensor *dst)
{
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_wire_tensor(e, src);
    vgpu_enc_wire_tensor(e, dst);
    return apir_harness_send(h, VGPU_CMD_EXT_TENSOR_COPY, NULL);
}

uint64_t sec_ext_buft(struct apir_harness *h)
{
    vgpu_enc_u32(apir_harness_req(h), 0);
    struct vgpu_dec d;
    assert_int_equal(apir_harness_send(h, VGPU_CMD_EXT_DEVICE_INFO, &d), VGPU_OK);
    struct vgpu_device_info info;
    assert_true(vgpu_dec_device_info(&d, &info));
    return info.buft_id;
}

void sec_graph_init(struct sec_graph *g, uint32_t cap)
{
    memset(g, 0, sizeof(*g));
    g->cap = cap ? cap : 4;
    g->cap_nodes = g->cap;
    g->t = calloc(g->cap, sizeof(*g->t));
    g->nodes = calloc(g->cap_nodes, sizeof(*g->nodes));
    assert_non_null(g->t);
    assert_non_null(g->nodes);
}

void sec_graph_free(struct sec_graph *g)
{
    free(g->t);
    free(g->nodes);
    memset(g, 0, sizeof(*g));
}

uint32_t sec_graph_add(struct sec_graph *g, const struct vgpu_wire_tensor *w)
{
    if (g->n == g->cap) {
        g->cap *= 2;
        g->t = realloc(g->t, g->cap * sizeof(*g->t));
        assert_non_null(g->t);
    }
    g->t[g->n] = *w;
    return g->n++;
}

void sec_graph_node(struct sec_graph *g, uint32_t idx)
{
    if (g->n_nodes == g->cap_nodes) {
        g->cap_nodes *= 2;
        g->nodes = realloc(g->nodes, g->cap_nodes * sizeof(*g->nodes));
        assert_non_null(g->nodes);
    }
    g->nodes[g->n_nodes++] = idx;
}

uint8_t *sec_graph_image(const struct sec_graph *g, size_t *size)
{
    size_t n = VGPU_GRAPH_HEADER_SIZE + (size_t)g->n * VGPU_WIRE_TENSOR_SIZE + 4 * (size_t)g->n_nodes;
    uint8_t *img = malloc(n);
    assert_non_null(img);
    assert_int_equal(apir_harness_graph_image(g->t, g->n, g->nodes, g->n_nodes, img, n), n);
    *size = n;
    return img;
}

uint32_t sec_ext_graph_raw(struct apir_harness *h, uint32_t cmd, const uint8_t *img, size_t size, uint64_t uid,
                           uint32_t res_id, uint32_t *result, int32_t *status)
{
    struct vgpu_graph_request q = { 0, 0, uid, 0, 0, size };
    bool inl = img && res_id == 0 && size <= (512u << 10);
    if (img && !inl) {
        q.res_id = res_id ? res_id : BIG_GRAPH_RES;
        uint8_t *res = res_fresh(h, q.res_id, size);
        memcpy(res, img, size);
    }
    struct vgpu_enc *e = apir_harness_req(h);
    vgpu_enc_graph_request(e, &q);
    if (inl)
        vgpu_enc_blob(e, img, size);
    struct vgpu_dec d;
    uint32_t r = apir_harness_send(h, cmd, &d);
    if (r == VGPU_OK && cmd == VGPU_CMD_EXT_GRAPH_COMPUTE) {
        uint32_t res = vgpu_dec_u32(&d);
        int32_t st = vgpu_dec_i32(&d);
        assert_true(vgpu_dec_ok(&d));
        if (result)
            *result = res;
        if (status)
            *status = st;
    } else if (r != VGPU_OK) {
        assert_int_equal(apir_harness_reply_len(h), 0);
    }
    return r;
}

uint32_t sec_ext_graph(struct apir_harness *h, const struct sec_graph *g, uint64_t uid, uint32_t *result,
                       int32_t *status)
{
    size_t size;
    uint8_t *img = sec_graph_image(g, &size);
    uint32_t r = sec_ext_graph_raw(h, VGPU_CMD_EXT_GRAPH_COMPUTE, img, size, uid, 0, result, status);
    free(img);
    return r;
}

struct vgpu_wire_tensor sec_wire(uint32_t type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3, uint64_t buf,
                                 uint64_t off)
{
    struct vgpu_wire_tensor w;
    apir_harness_wire(&w, type, ne0, ne1, ne2, ne3, buf, off);
    return w;
}

/* ---- misc ------------------------------------------------------------------------------------ */

uint32_t sec_removed_types(uint32_t *out, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t t = 0; t < GGML_TYPE_COUNT && n < cap; t++) {
        if (ggml_type_size((enum ggml_type)t) == 0 || ggml_blck_size((enum ggml_type)t) == 0)
            out[n++] = t;
    }
    return n;
}

static int saved_stderr = -1;
static int capture_fd = -1;

void sec_stderr_begin(void)
{
    fflush(stderr);
    capture_fd = memfd_create("sec-stderr", MFD_CLOEXEC);
    assert_true(capture_fd >= 0);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(capture_fd, 2) == 2);
}

char *sec_stderr_end(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    off_t n = lseek(capture_fd, 0, SEEK_END);
    char *s = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    assert_non_null(s);
    if (n > 0 && pread(capture_fd, s, (size_t)n, 0) != n)
        s[0] = '\0';
    close(capture_fd);
    capture_fd = -1;
    /* Show what was captured, so that a test's log stays complete. */
    fputs(s, stderr);
    return s;
}

int sec_child_main(const struct sec_child *children, size_t n)
{
    const char *name = getenv("SEC_CHILD");
    if (!name)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(children[i].name, name)) {
            const char *t = getenv("SEC_CHILD_TIMEOUT");
            alarm(t ? (unsigned)atoi(t) : 300u);
            int rc = children[i].fn();
            fflush(stdout);
            fflush(stderr);
            return rc;
        }
    }
    fprintf(stderr, "sec-common: no child named %s\n", name);
    return 127;
}

extern char **environ;

int sec_run_child(const char *name, int timeout_s)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 3, sizeof(*envp));
    assert_non_null(envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "SEC_CHILD", 9) != 0)
            envp[k++] = environ[i];
    }
    char child[128], timeout[64];
    snprintf(child, sizeof(child), "SEC_CHILD=%s", name);
    snprintf(timeout, sizeof(timeout), "SEC_CHILD_TIMEOUT=%d", timeout_s);
    envp[k++] = child;
    envp[k++] = timeout;
    envp[k] = NULL;
    char *argv[] = { (char *)"sec-child", NULL };
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        free(envp);
        return -1;
    }
    if (pid == 0) {
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    free(envp);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

void sec_expect_child_ok(const char *name, int timeout_s)
{
    int status = sec_run_child(name, timeout_s);
    char why[64];
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fail_msg("%s: the child process ended with %s (see its output above)", name,
                 sec_describe_status(status, why, sizeof(why)));
}

const char *sec_describe_status(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "status 0x%x", status);
    return buf;
}

void sec_filter_from_env(void)
{
    const char *f = getenv("SEC_TEST_FILTER");
    if (f && *f)
        cmocka_set_test_filter(f);
}

struct thread_call {
    void (*fn)(void *);
    void *arg;
};

static void *thread_main(void *p)
{
    struct thread_call *c = p;
    c->fn(c->arg);
    return NULL;
}

void sec_run_on_small_stack(void (*fn)(void *), void *arg, size_t stack_bytes)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    assert_int_equal(pthread_attr_setstacksize(&attr, stack_bytes), 0);
    struct thread_call c = { fn, arg };
    pthread_t th;
    assert_int_equal(pthread_create(&th, &attr, thread_main, &c), 0);
    pthread_join(th, NULL);
    pthread_attr_destroy(&attr);
}
