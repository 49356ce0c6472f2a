/*
 * The APIR 4-byte-slot codec; contracts in codec.h.
 *
 * All multi-byte values are little-endian on the wire. Every supported host and guest is
 * little-endian (x86-64, arm64), so values are copied as they are; the static assertion
 * below keeps a big-endian build from silently producing a different protocol.
 */
#include "codec.h"

#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format is little-endian");

size_t vgpu_pad4(size_t n)
{
    if (n > SIZE_MAX - 3)
        return SIZE_MAX;
    return (n + 3) & ~(size_t)3;
}

void vgpu_enc_init(struct vgpu_enc *enc, void *buf, size_t size)
{
    enc->start = buf;
    enc->cur = buf;
    enc->end = buf ? (uint8_t *)buf + size : NULL;
    enc->fatal = buf == NULL;
}

size_t vgpu_enc_used(const struct vgpu_enc *enc)
{
    return (size_t)(enc->cur - enc->start);
}

size_t vgpu_enc_left(const struct vgpu_enc *enc)
{
    return (size_t)(enc->end - enc->cur);
}

/*
 * Reserves `slot` bytes of which the first n receive p (if non-NULL); the rest are zeroed
 * so that no stale bytes of the output buffer travel. Returns the write position or NULL.
 */
static uint8_t *enc_put(struct vgpu_enc *enc, const void *p, size_t n, size_t slot)
{
    if (enc->fatal || slot > vgpu_enc_left(enc) || n > slot) {
        enc->fatal = true;
        return NULL;
    }
    uint8_t *at = enc->cur;
    if (p && n)
        memcpy(at, p, n);
    if (slot > n)
        memset(at + n, 0, slot - n);
    enc->cur += slot;
    return at;
}

void vgpu_enc_u32(struct vgpu_enc *enc, uint32_t v) { enc_put(enc, &v, 4, 4); }
void vgpu_enc_i32(struct vgpu_enc *enc, int32_t v) { enc_put(enc, &v, 4, 4); }
void vgpu_enc_u64(struct vgpu_enc *enc, uint64_t v) { enc_put(enc, &v, 8, 8); }
void vgpu_enc_u8(struct vgpu_enc *enc, uint8_t v) { enc_put(enc, &v, 1, 4); }

void vgpu_enc_bool(struct vgpu_enc *enc, bool v)
{
    uint8_t b = v ? 1 : 0;
    enc_put(enc, &b, 1, 4);
}

void vgpu_enc_raw(struct vgpu_enc *enc, const void *p, size_t n) { enc_put(enc, p, n, n); }

void vgpu_enc_padded(struct vgpu_enc *enc, const void *p, size_t n)
{
    enc_put(enc, p, n, vgpu_pad4(n));
}

void vgpu_enc_blob(struct vgpu_enc *enc, const void *p, size_t n)
{
    vgpu_enc_u64(enc, n);
    vgpu_enc_padded(enc, p, n);
}

void vgpu_enc_string(struct vgpu_enc *enc, const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s) + 1;
    vgpu_enc_u64(enc, n);
    vgpu_enc_padded(enc, s, n);
}

void *vgpu_enc_reserve(struct vgpu_enc *enc, size_t n)
{
    return enc_put(enc, NULL, 0, vgpu_pad4(n));
}

void vgpu_dec_init(struct vgpu_dec *dec, const void *buf, size_t size)
{
    dec->start = buf;
    dec->cur = buf;
    dec->end = buf ? (const uint8_t *)buf + size : NULL;
    dec->fatal = buf == NULL;
}

size_t vgpu_dec_left(const struct vgpu_dec *dec)
{
    return (size_t)(dec->end - dec->cur);
}

size_t vgpu_dec_used(const struct vgpu_dec *dec)
{
    return (size_t)(dec->cur - dec->start);
}

/*
 * Consumes `slot` bytes, copying the first n to out. On overrun (or once fatal) out is
 * zeroed, nothing is consumed and false is returned.
 */
static bool dec_get(struct vgpu_dec *dec, void *out, size_t n, size_t slot)
{
    if (dec->fatal || slot > vgpu_dec_left(dec) || n > slot) {
        dec->fatal = true;
        if (out && n)
            memset(out, 0, n);
        return false;
    }
    if (out && n)
        memcpy(out, dec->cur, n);
    dec->cur += slot;
    return true;
}

uint32_t vgpu_dec_u32(struct vgpu_dec *dec)
{
    uint32_t v;
    dec_get(dec, &v, 4, 4);
    return v;
}

int32_t vgpu_dec_i32(struct vgpu_dec *dec)
{
    int32_t v;
    dec_get(dec, &v, 4, 4);
    return v;
}

uint64_t vgpu_dec_u64(struct vgpu_dec *dec)
{
    uint64_t v;
    dec_get(dec, &v, 8, 8);
    return v;
}

uint8_t vgpu_dec_u8(struct vgpu_dec *dec)
{
    uint8_t v;
    dec_get(dec, &v, 1, 4);
    return v;
}

bool vgpu_dec_bool(struct vgpu_dec *dec)
{
    return vgpu_dec_u8(dec) != 0;
}

bool vgpu_dec_raw(struct vgpu_dec *dec, void *out, size_t n)
{
    return dec_get(dec, out, n, n);
}

const void *vgpu_dec_view(struct vgpu_dec *dec, size_t n)
{
    const void *at = dec->cur;
    return dec_get(dec, NULL, 0, vgpu_pad4(n)) ? at : NULL;
}

const void *vgpu_dec_blob(struct vgpu_dec *dec, size_t max, size_t *n)
{
    uint64_t len = vgpu_dec_u64(dec);
    *n = 0;
    if (dec->fatal || len > max || len > vgpu_dec_left(dec)) {
        dec->fatal = true;
        return NULL;
    }
    const void *p = vgpu_dec_view(dec, (size_t)len);
    if (p)
        *n = (size_t)len;
    return p;
}

bool vgpu_dec_string(struct vgpu_dec *dec, char *out, size_t cap)
{
    uint64_t len = vgpu_dec_u64(dec);
    if (cap)
        out[0] = '\0';
    if (dec->fatal || len == 0 || len > cap || len > vgpu_dec_left(dec)) {
        dec->fatal = true;
        return false;
    }
    const void *p = vgpu_dec_view(dec, (size_t)len);
    if (!p)
        return false;
    memcpy(out, p, (size_t)len);
    out[len - 1] = '\0';
    return true;
}
