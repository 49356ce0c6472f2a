/*
 * The APIR 4-byte-slot codec (docs/PROTOCOL.md §3), used by both sides.
 *
 * Every item occupies a multiple of 4 bytes: u8/bool/u32/i32 one slot (small values in the
 * slot's first byte), u64 eight bytes with no further alignment, strings a u64 length (with
 * the NUL) then the bytes padded to 4, blobs their bytes padded to 4, raw items their exact
 * size.
 *
 * Errors are sticky, as in virglrenderer's Venus decoder: the first overrun (or malformed
 * string) sets `fatal`; from then on every read returns zeros and every write is dropped, so
 * a handler can decode a whole request and check `fatal` once. Nothing here ever reads or
 * writes outside [start, end) or aborts.
 */
#ifndef VGPU_PROTO_CODEC_H
#define VGPU_PROTO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vgpu_enc {
    uint8_t *start;
    uint8_t *cur;
    uint8_t *end;
    bool     fatal;
};

struct vgpu_dec {
    const uint8_t *start;
    const uint8_t *cur;
    const uint8_t *end;
    bool           fatal;
};

/* Size of n bytes rounded up to whole 4-byte slots; SIZE_MAX if that overflows. */
size_t vgpu_pad4(size_t n);

void   vgpu_enc_init(struct vgpu_enc *enc, void *buf, size_t size);
/* Bytes written so far. */
size_t vgpu_enc_used(const struct vgpu_enc *enc);
size_t vgpu_enc_left(const struct vgpu_enc *enc);

void vgpu_enc_u32(struct vgpu_enc *enc, uint32_t v);
void vgpu_enc_i32(struct vgpu_enc *enc, int32_t v);
void vgpu_enc_u64(struct vgpu_enc *enc, uint64_t v);
/* u8 and bool: a 4-byte slot, value in byte 0, the other three bytes zero. */
void vgpu_enc_u8(struct vgpu_enc *enc, uint8_t v);
void vgpu_enc_bool(struct vgpu_enc *enc, bool v);
/* Exactly n bytes, no padding (fixed-size images such as tensors). */
void vgpu_enc_raw(struct vgpu_enc *enc, const void *p, size_t n);
/* n bytes then zero padding to a slot boundary. */
void vgpu_enc_padded(struct vgpu_enc *enc, const void *p, size_t n);
/* u64 n followed by n bytes padded (what the extension protocol calls a blob). */
void vgpu_enc_blob(struct vgpu_enc *enc, const void *p, size_t n);
/* u64 strlen+1, then the string with its NUL, padded. NULL encodes as "". */
void vgpu_enc_string(struct vgpu_enc *enc, const char *s);
/*
 * Reserves n bytes (padded to a slot) and returns where to write them, so large payloads
 * can be produced in place; NULL (and fatal) if they do not fit.
 */
void *vgpu_enc_reserve(struct vgpu_enc *enc, size_t n);

void   vgpu_dec_init(struct vgpu_dec *dec, const void *buf, size_t size);
size_t vgpu_dec_left(const struct vgpu_dec *dec);
size_t vgpu_dec_used(const struct vgpu_dec *dec);

uint32_t vgpu_dec_u32(struct vgpu_dec *dec);
int32_t  vgpu_dec_i32(struct vgpu_dec *dec);
uint64_t vgpu_dec_u64(struct vgpu_dec *dec);
/* Reads byte 0 of a slot; the other bytes are undefined on the wire and ignored. */
uint8_t  vgpu_dec_u8(struct vgpu_dec *dec);
bool     vgpu_dec_bool(struct vgpu_dec *dec);
/* Copies exactly n bytes to out; on overrun out is zeroed. Returns !fatal. */
bool     vgpu_dec_raw(struct vgpu_dec *dec, void *out, size_t n);
/*
 * Returns a pointer to the next n bytes (advancing by n padded to a slot) or NULL on
 * overrun. Only for buffers the caller owns: never hand out views of guest-shared memory.
 */
const void *vgpu_dec_view(struct vgpu_dec *dec, size_t n);
/*
 * Blob: u64 length then bytes. Returns a view of them and their length in *n, or NULL
 * (fatal) if the length exceeds max or the input.
 */
const void *vgpu_dec_blob(struct vgpu_dec *dec, size_t max, size_t *n);
/*
 * String into out[cap]: fails (fatal, out = "") if the length is 0, longer than cap or past
 * the input. The result is always NUL-terminated, whatever the wire bytes were.
 */
bool     vgpu_dec_string(struct vgpu_dec *dec, char *out, size_t cap);

static inline bool vgpu_enc_ok(const struct vgpu_enc *enc) { return !enc->fatal; }
static inline bool vgpu_dec_ok(const struct vgpu_dec *dec) { return !dec->fatal; }

#endif /* VGPU_PROTO_CODEC_H */
