/*
 * Reply tracing; contract in trace.h.
 */
#include "trace.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads /proc/self/maps into a malloc'd buffer; NULL on failure. */
static char *read_maps(size_t *len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *grown = realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Appends a snapshot of the address map if it differs from the previous one. */
static void snapshot_maps(struct vgpu_trace *t)
{
    size_t len;
    char *maps = read_maps(&len);
    if (!maps)
        return;
    if (t->last_maps && t->last_len == len && memcmp(t->last_maps, maps, len) == 0) {
        free(maps);
        return;
    }
    fwrite(maps, 1, len, t->maps);
    fflush(t->maps);
    free(t->last_maps);
    t->last_maps = maps;
    t->last_len = len;
}

void vgpu_trace_open(struct vgpu_trace *t, const char *prefix, uint32_t ctx_id)
{
    memset(t, 0, sizeof(*t));
    if (!prefix || !*prefix)
        return;
    char path[4096];
    snprintf(path, sizeof(path), "%s.%d.%u.replies", prefix, (int)getpid(), ctx_id);
    t->replies = fopen(path, "wb");
    snprintf(path, sizeof(path), "%s.%d.%u.requests", prefix, (int)getpid(), ctx_id);
    t->requests = fopen(path, "wb");
    snprintf(path, sizeof(path), "%s.%d.%u.maps", prefix, (int)getpid(), ctx_id);
    t->maps = fopen(path, "w");
    if (!t->replies || !t->requests || !t->maps) {
        vgpu_trace_close(t);
        return;
    }
    snapshot_maps(t);
}

void vgpu_trace_request(struct vgpu_trace *t, uint32_t cmd, const void *req, size_t len)
{
    if (!t->requests)
        return;
    uint32_t head[2] = { cmd, (uint32_t)len };
    fwrite(head, sizeof(head), 1, t->requests);
    if (len)
        fwrite(req, 1, len, t->requests);
    fflush(t->requests);
}

void vgpu_trace_reply(struct vgpu_trace *t, uint32_t cmd, uint32_t code, const void *reply, size_t len)
{
    if (!t->replies)
        return;
    uint32_t head[3] = { cmd, code, (uint32_t)len };
    fwrite(head, sizeof(head), 1, t->replies);
    if (len)
        fwrite(reply, 1, len, t->replies);
    fflush(t->replies);
    snapshot_maps(t);
}

void vgpu_trace_close(struct vgpu_trace *t)
{
    if (t->maps && t->replies)
        snapshot_maps(t);
    if (t->replies)
        fclose(t->replies);
    if (t->requests)
        fclose(t->requests);
    if (t->maps)
        fclose(t->maps);
    free(t->last_maps);
    memset(t, 0, sizeof(*t));
}
