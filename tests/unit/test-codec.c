/*
 * Unit tests of the slot codec (proto/codec.c): layouts, bounds, sticky errors.
 * Expected byte layouts are written out by hand from docs/PROTOCOL.md §3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"

/* Every scalar kind round-trips, in the documented slot sizes, with zeroed padding. */
static void test_scalar_layout(void **state)
{
    (void)state;
    uint8_t buf[64];
    memset(buf, 0xEE, sizeof(buf));
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_u8(&enc, 0xAB);
    vgpu_enc_bool(&enc, true);
    vgpu_enc_u32(&enc, 0x11223344u);
    vgpu_enc_i32(&enc, -2);
    vgpu_enc_u64(&enc, 0x0102030405060708ull);
    assert_true(vgpu_enc_ok(&enc));
    assert_int_equal(vgpu_enc_used(&enc), 4 + 4 + 4 + 4 + 8);

    static const uint8_t expect[24] = {
        0xAB, 0, 0, 0,           /* u8 slot, padding zeroed (upstream leaves garbage) */
        1, 0, 0, 0,              /* bool slot */
        0x44, 0x33, 0x22, 0x11,  /* u32 little-endian */
        0xFE, 0xFF, 0xFF, 0xFF,  /* -2 */
        8, 7, 6, 5, 4, 3, 2, 1,  /* u64, no alignment padding */
    };
    assert_memory_equal(buf, expect, sizeof(expect));
    assert_int_equal(buf[24], 0xEE); /* nothing written past the items */

    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf, 24);
    assert_int_equal(vgpu_dec_u8(&dec), 0xAB);
    assert_true(vgpu_dec_bool(&dec));
    assert_int_equal(vgpu_dec_u32(&dec), 0x11223344u);
    assert_int_equal(vgpu_dec_i32(&dec), -2);
    assert_true(vgpu_dec_u64(&dec) == 0x0102030405060708ull);
    assert_true(vgpu_dec_ok(&dec));
    assert_int_equal(vgpu_dec_left(&dec), 0);
}

/* A u8/bool slot is read from byte 0 only: upstream leaves the other bytes undefined. */
static void test_u8_ignores_slot_garbage(void **state)
{
    (void)state;
    const uint8_t in[8] = { 0x01, 0xEE, 0xEE, 0xEE, 0x00, 0xEE, 0xEE, 0xEE };
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, in, sizeof(in));
    assert_true(vgpu_dec_bool(&dec));
    assert_false(vgpu_dec_bool(&dec));
    assert_true(vgpu_dec_ok(&dec));
}

/* Strings: u64 length with NUL, bytes padded to 4, padding zeroed. */
static void test_string_layout(void **state)
{
    (void)state;
    uint8_t buf[32];
    memset(buf, 0xEE, sizeof(buf));
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_string(&enc, "CPU");
    assert_int_equal(vgpu_enc_used(&enc), 12); /* the 12-byte "CPU" reply of the reference */
    static const uint8_t expect[12] = { 4, 0, 0, 0, 0, 0, 0, 0, 'C', 'P', 'U', 0 };
    assert_memory_equal(buf, expect, sizeof(expect));

    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_string(&enc, "abcd");
    assert_int_equal(vgpu_enc_used(&enc), 8 + 8);
    assert_int_equal(buf[13], 0); /* NUL */
    assert_int_equal(buf[14], 0); /* padding */
    assert_int_equal(buf[15], 0);

    char out[8];
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf, 16);
    assert_true(vgpu_dec_string(&dec, out, sizeof(out)));
    assert_string_equal(out, "abcd");
    assert_int_equal(vgpu_dec_left(&dec), 0);
}

/* Malformed strings: zero length, too long for the caller, past the input, no NUL. */
static void test_string_malformed(void **state)
{
    (void)state;
    char out[8];
    struct vgpu_dec dec;

    uint8_t zero_len[8] = { 0 };
    vgpu_dec_init(&dec, zero_len, sizeof(zero_len));
    assert_false(vgpu_dec_string(&dec, out, sizeof(out)));
    assert_false(vgpu_dec_ok(&dec));
    assert_string_equal(out, "");

    uint8_t too_long[8 + 12] = { 12, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 0 };
    vgpu_dec_init(&dec, too_long, sizeof(too_long));
    assert_false(vgpu_dec_string(&dec, out, sizeof(out)));
    assert_false(vgpu_dec_ok(&dec));

    uint8_t huge[8] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
    char big[64];
    vgpu_dec_init(&dec, huge, sizeof(huge));
    assert_false(vgpu_dec_string(&dec, big, sizeof(big)));

    uint8_t past_end[8 + 2] = { 4, 0, 0, 0, 0, 0, 0, 0, 'x', 'y' };
    vgpu_dec_init(&dec, past_end, sizeof(past_end));
    assert_false(vgpu_dec_string(&dec, out, sizeof(out)));

    /* No NUL on the wire: the result is still terminated, at the declared length. */
    uint8_t no_nul[8 + 4] = { 4, 0, 0, 0, 0, 0, 0, 0, 'w', 'x', 'y', 'z' };
    vgpu_dec_init(&dec, no_nul, sizeof(no_nul));
    assert_true(vgpu_dec_string(&dec, out, sizeof(out)));
    assert_string_equal(out, "wxy");
}

/* The encoder never writes past its end; the overflowing item is dropped whole. */
static void test_encoder_overflow(void **state)
{
    (void)state;
    uint8_t buf[16];
    memset(buf, 0xEE, sizeof(buf));
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, buf, 10);
    vgpu_enc_u64(&enc, 1);
    assert_true(vgpu_enc_ok(&enc));
    vgpu_enc_u32(&enc, 2); /* 8 + 4 > 10 */
    assert_false(vgpu_enc_ok(&enc));
    assert_int_equal(vgpu_enc_used(&enc), 8);
    assert_int_equal(buf[8], 0xEE);
    assert_int_equal(buf[9], 0xEE);
    /* Sticky: even a fitting item is dropped now. */
    vgpu_enc_u8(&enc, 3);
    assert_int_equal(vgpu_enc_used(&enc), 8);
    assert_null(vgpu_enc_reserve(&enc, 1));

    vgpu_enc_init(&enc, NULL, 100);
    assert_false(vgpu_enc_ok(&enc));
}

/*
 * Every truncation of a valid message fails cleanly: reads past the end return zeros, set
 * the sticky flag, and later reads of available bytes still return zeros. The input is an
 * exact-size heap copy so that ASan would catch an over-read.
 */
static void test_decoder_truncation(void **state)
{
    (void)state;
    uint8_t msg[64];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, msg, sizeof(msg));
    vgpu_enc_u32(&enc, 7);
    vgpu_enc_u64(&enc, 99);
    vgpu_enc_string(&enc, "name");
    vgpu_enc_u8(&enc, 5);
    size_t len = vgpu_enc_used(&enc);

    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, msg, cut);
        struct vgpu_dec dec;
        vgpu_dec_init(&dec, copy, cut);
        uint32_t a = vgpu_dec_u32(&dec);
        uint64_t b = vgpu_dec_u64(&dec);
        char s[16];
        bool sok = vgpu_dec_string(&dec, s, sizeof(s));
        uint8_t c = vgpu_dec_u8(&dec);
        assert_false(vgpu_dec_ok(&dec));
        assert_true(c == 0);
        if (cut < 4)
            assert_true(a == 0);
        if (cut < 12)
            assert_true(b == 0);
        if (cut < 4 + 8 + 8 + 8) /* u32, u64, string length, "name\0" padded */
            assert_false(sok);
        free(copy);
    }
}

/* After an error, available data is not consumed: the failure is sticky. */
static void test_decoder_sticky(void **state)
{
    (void)state;
    const uint8_t in[8] = { 1, 0, 0, 0, 2, 0, 0, 0 };
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, in, sizeof(in));
    assert_true(vgpu_dec_u64(&dec) == 0x0000000200000001ull);
    assert_true(vgpu_dec_u64(&dec) == 0); /* overrun */
    vgpu_dec_init(&dec, in, 6);
    assert_true(vgpu_dec_u64(&dec) == 0);
    assert_int_equal(vgpu_dec_u32(&dec), 0); /* 4 bytes are there, but the flag is set */
    assert_int_equal(vgpu_dec_left(&dec), 6);
}

/* Views and blobs advance by whole slots and respect the caller's maximum. */
static void test_view_and_blob(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, buf, sizeof(buf));
    vgpu_enc_blob(&enc, "hello", 5);
    vgpu_enc_u32(&enc, 42);
    assert_int_equal(vgpu_enc_used(&enc), 8 + 8 + 4);

    struct vgpu_dec dec;
    size_t n;
    vgpu_dec_init(&dec, buf, vgpu_enc_used(&enc));
    const char *p = vgpu_dec_blob(&dec, 16, &n);
    assert_non_null(p);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);
    assert_int_equal(vgpu_dec_u32(&dec), 42);

    vgpu_dec_init(&dec, buf, vgpu_enc_used(&enc));
    assert_null(vgpu_dec_blob(&dec, 4, &n)); /* over the caller's maximum */
    assert_int_equal(n, 0);
    assert_false(vgpu_dec_ok(&dec));

    uint8_t lying[16] = { 0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F };
    vgpu_dec_init(&dec, lying, sizeof(lying));
    assert_null(vgpu_dec_blob(&dec, SIZE_MAX, &n));

    vgpu_dec_init(&dec, buf, 7);
    assert_null(vgpu_dec_view(&dec, 5)); /* needs 8 with padding */
}

static void test_pad4(void **state)
{
    (void)state;
    assert_int_equal(vgpu_pad4(0), 0);
    assert_int_equal(vgpu_pad4(1), 4);
    assert_int_equal(vgpu_pad4(4), 4);
    assert_int_equal(vgpu_pad4(5), 8);
    assert_true(vgpu_pad4(SIZE_MAX - 1) == SIZE_MAX);
}

/* reserve() hands out a zeroed, padded region that counts as written. */
static void test_reserve(void **state)
{
    (void)state;
    uint8_t buf[16];
    memset(buf, 0xEE, sizeof(buf));
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, buf, sizeof(buf));
    uint8_t *p = vgpu_enc_reserve(&enc, 6);
    assert_ptr_equal(p, buf);
    assert_int_equal(vgpu_enc_used(&enc), 8);
    assert_int_equal(buf[7], 0);
    assert_null(vgpu_enc_reserve(&enc, 9));
    assert_false(vgpu_enc_ok(&enc));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_layout),
        cmocka_unit_test(test_u8_ignores_slot_garbage),
        cmocka_unit_test(test_string_layout),
        cmocka_unit_test(test_string_malformed),
        cmocka_unit_test(test_encoder_overflow),
        cmocka_unit_test(test_decoder_truncation),
        cmocka_unit_test(test_decoder_sticky),
        cmocka_unit_test(test_view_and_blob),
        cmocka_unit_test(test_pad4),
        cmocka_unit_test(test_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
