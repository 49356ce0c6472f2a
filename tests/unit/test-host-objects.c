/*
 * Unit tests of the host's typed handle table (host/objects.c): ids are opaque, typed and
 * generation-counted; forged, stale and wrong-type ids fail. The id layout checked here is
 * the one documented in host/objects.h (tag 63..56, generation 55..32, slot 31..0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "objects.h"

static void test_add_get(void **state)
{
    (void)state;
    struct vgpu_objects t;
    vgpu_objects_init(&t, 16);
    int a, b;
    uint64_t ia = vgpu_objects_add(&t, VGPU_OBJ_BUFFER, &a);
    uint64_t ib = vgpu_objects_add(&t, VGPU_OBJ_BUFT, &b);
    assert_true(ia != 0 && ib != 0 && ia != ib);
    /* Tag in the top byte, first generation 1, slots 0 and 1. */
    assert_int_equal(ia >> 56, 0x42);
    assert_int_equal(ib >> 56, 0x54);
    assert_int_equal((ia >> 32) & 0xffffff, 1);
    assert_int_equal((uint32_t)ia, 0);
    assert_int_equal((uint32_t)ib, 1);

    void *p = NULL;
    assert_int_equal(vgpu_objects_get(&t, ia, VGPU_OBJ_BUFFER, &p), VGPU_OBJ_FOUND);
    assert_ptr_equal(p, &a);
    assert_int_equal(vgpu_objects_get(&t, ib, VGPU_OBJ_BUFT, &p), VGPU_OBJ_FOUND);
    assert_ptr_equal(p, &b);
    vgpu_objects_fini(&t);
}

static void test_forged(void **state)
{
    (void)state;
    struct vgpu_objects t;
    vgpu_objects_init(&t, 16);
    int a;
    uint64_t ia = vgpu_objects_add(&t, VGPU_OBJ_BUFFER, &a);
    void *p = (void *)0x1;
    /* Zero, a host-pointer-looking value, other generations, an unused slot, a bad tag. */
    const uint64_t forged[] = {
        0, (uint64_t)(uintptr_t)&a, ia ^ (1ull << 32), ia + 1, ia | (0xffull << 32),
        (ia & ~(0xffull << 56)) | (0x43ull << 56), 0x4200000100000005ull,
    };
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        assert_int_equal(vgpu_objects_get(&t, forged[i], VGPU_OBJ_BUFFER, &p), VGPU_OBJ_MISSING);
        assert_ptr_equal(p, (void *)0x1);
    }
    vgpu_objects_fini(&t);
}

static void test_stale(void **state)
{
    (void)state;
    struct vgpu_objects t;
    vgpu_objects_init(&t, 16);
    int a, b;
    uint64_t ia = vgpu_objects_add(&t, VGPU_OBJ_BUFFER, &a);
    void *p;
    assert_int_equal(vgpu_objects_remove(&t, ia, VGPU_OBJ_BUFFER, &p), VGPU_OBJ_FOUND);
    assert_ptr_equal(p, &a);
    assert_int_equal(vgpu_objects_get(&t, ia, VGPU_OBJ_BUFFER, &p), VGPU_OBJ_MISSING);
    assert_int_equal(vgpu_objects_remove(&t, ia, VGPU_OBJ_BUFFER, &p), VGPU_OBJ_MISSING);
    /* The slot is reused with a new generation: the old id stays dead. */
    uint64_t ib = vgpu_objects_add(&t, VGPU_OBJ_BUFFER, &b);
    assert_int_equal((uint32_t)ib, (uint32_t)ia);
    assert_true(ib != ia);
    assert_int_equal(vgpu_objects_get(&t, ia, VGPU_OBJ_BUFFER, &p), VGPU_OBJ_MISSING);
    assert_int_equal(vgpu_objects_get(&t, ib, VGPU_OBJ_BUFFER, &p), VGPU_OBJ_FOUND);
    assert_ptr_equal(p, &b);
    vgpu_objects_fini(&t);
}

static void test_wrong_type(void **state)
{
    (void)state;
    struct vgpu_objects t;
    vgpu_objects_init(&t, 16);
    int a;
    uint64_t ia = vgpu_objects_add(&t, VGPU_OBJ_BUFT, &a);
    void *p = NULL;
    assert_int_equal(vgpu_objects_get(&t, ia, VGPU_OBJ_BUFFER, &p), VGPU_OBJ_WRONG_TYPE);
    assert_null(p);
    assert_int_equal(vgpu_objects_remove(&t, ia, VGPU_OBJ_BUFFER, &p), VGPU_OBJ_WRONG_TYPE);
    /* Still there as what it is. */
    assert_int_equal(vgpu_objects_get(&t, ia, VGPU_OBJ_BUFT, &p), VGPU_OBJ_FOUND);
    vgpu_objects_fini(&t);
}

static void test_bounded_and_iteration(void **state)
{
    (void)state;
    struct vgpu_objects t;
    vgpu_objects_init(&t, 5);
    int objs[6];
    uint64_t ids[6];
    for (int i = 0; i < 5; i++) {
        ids[i] = vgpu_objects_add(&t, i % 2 ? VGPU_OBJ_BUFT : VGPU_OBJ_BUFFER, &objs[i]);
        assert_true(ids[i] != 0);
    }
    assert_int_equal(vgpu_objects_add(&t, VGPU_OBJ_BUFFER, &objs[5]), 0);
    assert_int_equal(vgpu_objects_add(&t, VGPU_OBJ_NONE, &objs[5]), 0);

    uint32_t cur = 0, n = 0;
    uint64_t id;
    void *p;
    while (vgpu_objects_next(&t, &cur, VGPU_OBJ_BUFFER, &id, &p)) {
        assert_true(id == ids[0] || id == ids[2] || id == ids[4]);
        n++;
        /* Removing the current object while iterating is allowed. */
        assert_int_equal(vgpu_objects_remove(&t, id, VGPU_OBJ_BUFFER, NULL), VGPU_OBJ_FOUND);
    }
    assert_int_equal(n, 3);
    assert_int_equal(t.live, 2);
    /* Freed slots are usable again. */
    assert_true(vgpu_objects_add(&t, VGPU_OBJ_BUFFER, &objs[5]) != 0);
    vgpu_objects_fini(&t);
}

static void test_generation_wraps_without_zero(void **state)
{
    (void)state;
    struct vgpu_objects t;
    vgpu_objects_init(&t, 1);
    int a;
    uint64_t first = vgpu_objects_add(&t, VGPU_OBJ_BUFFER, &a);
    uint64_t id = first;
    for (uint32_t i = 0; i < (1u << 24) + 2; i++) {
        assert_int_equal(vgpu_objects_remove(&t, id, VGPU_OBJ_BUFFER, NULL), VGPU_OBJ_FOUND);
        id = vgpu_objects_add(&t, VGPU_OBJ_BUFFER, &a);
        assert_true(((id >> 32) & 0xffffff) != 0);
    }
    vgpu_objects_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_get),
        cmocka_unit_test(test_forged),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_bounded_and_iteration),
        cmocka_unit_test(test_generation_wraps_without_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
