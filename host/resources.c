/*
 * Shared-memory resources; contracts in resources.h.
 */
#include "resources.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "context.h"

/* Parses a hexadecimal number at *p, advancing it; false if there is none. */
static bool parse_hex(const char **p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    int n = 0;
    while (s < end && n < 17) {
        char c = *s;
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            break;
        v = (v << 4) | d;
        s++;
        n++;
    }
    if (n == 0 || n > 16)
        return false;
    *p = s;
    *out = v;
    return true;
}

bool vgpu_mapping_of(const void *ptr, uint64_t *start_out, uint64_t *end_out)
{
    const uint64_t p = (uint64_t)(uintptr_t)ptr;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    /* Lines are read in chunks; a line split across chunks is carried over. */
    char buf[8192];
    size_t have = 0;
    bool found = false;
    bool done = false;
    while (!done) {
        ssize_t r = read(fd, buf + have, sizeof(buf) - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
        size_t off = 0;
        for (;;) {
            char *nl = memchr(buf + off, '\n', have - off);
            if (!nl)
                break;
            const char *s = buf + off;
            uint64_t start, end;
            if (parse_hex(&s, nl, &start) && s < nl && *s == '-' && (s++, parse_hex(&s, nl, &end))) {
                if (p >= start && p < end) {
                    *start_out = start;
                    *end_out = end;
                    found = done = true;
                    break;
                }
                if (start > p) { /* the file is sorted by address */
                    done = true;
                    break;
                }
            }
            off = (size_t)(nl - buf) + 1;
        }
        if (done)
            break;
        /* Keep the incomplete tail line; a line longer than the buffer is skipped. */
        if (off == 0 && have == sizeof(buf)) {
            have = 0;
        } else {
            memmove(buf, buf + off, have - off);
            have -= off;
        }
    }
    close(fd);
    return found;
}

/* True if a mapping with exactly these bounds exists (see resources.h). */
static bool mapping_unchanged(uint64_t start, uint64_t end)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/map_files/%llx-%llx", (unsigned long long)start,
             (unsigned long long)end);
    struct stat st;
    return lstat(path, &st) == 0;
}

uint32_t vgpu_res_get(struct vgpu_ctx *ctx, uint32_t res_id, uint8_t **ptr, uint64_t *size)
{
    if (res_id == 0)
        return vgpu_fail(ctx, VGPU_NOT_FOUND, "resource id 0");
    void *p = ctx->get_shmem_ptr ? ctx->get_shmem_ptr(ctx->id, res_id) : NULL;
    if (!p)
        return vgpu_fail(ctx, VGPU_NOT_FOUND, "unknown resource %u", res_id);

    uint64_t sz = 0;
    if (ctx->get_shmem_size) {
        if (ctx->get_shmem_size(ctx->id, res_id, &sz) != 0)
            return vgpu_fail(ctx, VGPU_NOT_FOUND, "unknown resource %u (no size)", res_id);
    } else {
        struct vgpu_res_cache *c = &ctx->res_cache;
        bool hit = false;
        for (uint32_t i = 0; i < c->n; i++) {
            if (c->e[i].res_id == res_id && c->e[i].ptr == p && mapping_unchanged(c->e[i].map_start, c->e[i].map_end)) {
                sz = c->e[i].size;
                hit = true;
                break;
            }
        }
        if (!hit) {
            uint64_t start, end;
            if (!vgpu_mapping_of(p, &start, &end))
                return vgpu_fail(ctx, VGPU_NOT_FOUND, "resource %u is not mapped", res_id);
            sz = end - (uint64_t)(uintptr_t)p;
            /* An entry for the same id with another pointer is stale: replace it. */
            uint32_t slot = c->n;
            for (uint32_t i = 0; i < c->n; i++) {
                if (c->e[i].res_id == res_id) {
                    slot = i;
                    break;
                }
            }
            if (slot == c->n) {
                if (c->n < VGPU_RES_CACHE_SIZE) {
                    c->n++;
                } else {
                    slot = c->next;
                    c->next = (c->next + 1) % VGPU_RES_CACHE_SIZE;
                }
            }
            c->e[slot] = (struct vgpu_res_cache_entry){ res_id, p, sz, start, end };
        }
    }
    *ptr = p;
    *size = sz;
    return VGPU_OK;
}

uint32_t vgpu_res_range(struct vgpu_ctx *ctx, uint32_t res_id, uint64_t offset, uint64_t len,
                        uint8_t **out)
{
    uint8_t *p;
    uint64_t size;
    uint32_t r = vgpu_res_get(ctx, res_id, &p, &size);
    if (r != VGPU_OK)
        return r;
    if (offset > size || len > size - offset)
        return vgpu_fail(ctx, VGPU_INVALID,
                         "range [%llu, +%llu) leaves resource %u of %llu bytes",
                         (unsigned long long)offset, (unsigned long long)len, res_id,
                         (unsigned long long)size);
    *out = p + offset;
    return VGPU_OK;
}
