/*
 * Unit tests of host/cpu-compute.c: graphs on a ggml-cpu backend computed with the host's own
 * work buffer. The backend is the real ggml-cpu library the server loads by default; results
 * are checked against products computed here in double precision, on values chosen so that
 * every product and partial sum is exact in float (the kernels convert src1 to F16).
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "cpu-compute.h"
#include "ggml.h"

#define K 256 /* several vector blocks of the F16 dot product */
#define M 8

struct fixture {
    void               *lib;
    struct vgpu_cpu_api api;
    ggml_backend_t      backend;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    /* As the host opens it: ggml backends keep globals that outlive an unload. */
    f->lib = dlopen(VGPU_DEFAULT_BACKEND_PATH, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!f->lib) {
        print_error("cannot open %s: %s\n", VGPU_DEFAULT_BACKEND_PATH, dlerror());
        free(f);
        return -1;
    }
    vgpu_cpu_api_load(&f->api, f->lib);
    ggml_backend_reg_t (*init)(void);
    *(void **)&init = dlsym(f->lib, "ggml_backend_init");
    ggml_backend_reg_t reg = init ? init() : NULL;
    f->backend = reg ? ggml_backend_dev_init(ggml_backend_reg_dev_get(reg, 0), NULL) : NULL;
    if (!f->backend) {
        print_error("no CPU backend from %s\n", VGPU_DEFAULT_BACKEND_PATH);
        dlclose(f->lib);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ggml_backend_free(f->backend);
    dlclose(f->lib);
    free(f);
    return 0;
}

static float a_val(int m, int k) { return (float)((m * 7 + k * 3) % 17 - 8) / 4.0f; }
static float b_val(int n, int k) { return (float)((n * 5 + k) % 13 - 6) / 2.0f; }

/* c = mul_mat(a, b) with a [K, M] F16 and b [K, n] F32; checks c against the exact products. */
static void check_matmul(struct vgpu_cpu_work *w, const struct vgpu_cpu_api *api, int n)
{
    size_t data = (size_t)(K * M * 2 + K * n * 4 + M * n * 4) + 3 * 64;
    struct ggml_init_params ip = { 3 * ggml_tensor_overhead() + ggml_graph_overhead() + data, NULL, false };
    struct ggml_context *ctx = ggml_init(ip);
    assert_non_null(ctx);
    struct ggml_tensor *a = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, K, M);
    struct ggml_tensor *b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, n);
    struct ggml_tensor *c = ggml_mul_mat(ctx, a, b);
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++)
            ((ggml_fp16_t *)a->data)[m * K + k] = ggml_fp32_to_fp16(a_val(m, k));
    for (int j = 0; j < n; j++)
        for (int k = 0; k < K; k++)
            ((float *)b->data)[j * K + k] = b_val(j, k);
    struct ggml_cgraph *g = ggml_new_graph(ctx);
    ggml_build_forward_expand(g, c);

    assert_int_equal(vgpu_cpu_compute(w, api, g), GGML_STATUS_SUCCESS);

    for (int j = 0; j < n; j++) {
        for (int m = 0; m < M; m++) {
            double want = 0;
            for (int k = 0; k < K; k++)
                want += (double)a_val(m, k) * (double)b_val(j, k);
            assert_true(((const float *)c->data)[j * M + m] == (float)want);
        }
    }
    /* The buffer the kernels used: at least what ggml-cpu planned, on a cache line. */
    struct ggml_cplan plan = api->plan(g, w->n_threads, NULL);
    assert_true(plan.work_size > 0);
    assert_true(w->size >= plan.work_size);
    assert_int_equal((uintptr_t)w->data % 64, 0);
    ggml_free(ctx);
}

static void test_attach(void **state)
{
    struct fixture *f = *state;
    struct vgpu_cpu_work w = { 0 };
    vgpu_cpu_work_attach(&w, &f->api, f->backend);
    assert_true(w.on);
    assert_int_equal(w.n_threads, 4); /* ggml_backend_cpu_init's default (GGML_DEFAULT_N_THREADS) */
    assert_null(w.data);
    vgpu_cpu_work_free(&w);
}

static bool never_cpu(ggml_backend_t backend)
{
    (void)backend;
    return false;
}

static void test_stays_off(void **state)
{
    struct fixture *f = *state;
    struct vgpu_cpu_api api = f->api;
    struct vgpu_cpu_work w = { 0 };
    api.is_cpu = never_cpu; /* another backend: its own graph_compute must run */
    vgpu_cpu_work_attach(&w, &api, f->backend);
    assert_false(w.on);
    api = f->api;
    api.compute = NULL; /* a library without the public compute API */
    vgpu_cpu_work_attach(&w, &api, f->backend);
    assert_false(w.on);
    struct vgpu_cpu_api none;
    vgpu_cpu_api_load(&none, NULL);
    assert_null(none.plan);
    vgpu_cpu_work_attach(&w, &none, f->backend);
    assert_false(w.on);
}

static void test_compute_exact(void **state)
{
    struct fixture *f = *state;
    for (int threads = 1; threads <= 3; threads++) {
        struct vgpu_cpu_work w = { 0 };
        vgpu_cpu_work_attach(&w, &f->api, f->backend);
        w.n_threads = threads;
        check_matmul(&w, &f->api, 3);
        vgpu_cpu_work_free(&w);
        assert_null(w.data);
    }
}

static void test_work_grows(void **state)
{
    struct fixture *f = *state;
    struct vgpu_cpu_work w = { 0 };
    vgpu_cpu_work_attach(&w, &f->api, f->backend);
    w.n_threads = 2;
    check_matmul(&w, &f->api, 1);
    size_t small = w.size;
    check_matmul(&w, &f->api, 64);
    assert_true(w.size > small);
    size_t big = w.size;
    check_matmul(&w, &f->api, 2); /* a smaller graph keeps the buffer */
    assert_int_equal(w.size, big);
    vgpu_cpu_work_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach),
        cmocka_unit_test(test_stays_off),
        cmocka_unit_test(test_compute_exact),
        cmocka_unit_test(test_work_grows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
