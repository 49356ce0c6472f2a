/*
 * Reply tracing, a test facility: the proof that no reply carries a host address
 * (tests/integration/test-no-host-pointers.sh) needs every reply and the host's address map.
 *
 * Enabled by config key ggml-virtgpu.trace or the environment variable GGML_VIRTGPU_TRACE,
 * whose value is a path prefix. Each context then appends to PREFIX.<pid>.<ctx>.replies one
 * record per command {u32 cmd, u32 code, u32 len, len reply bytes}, to
 * PREFIX.<pid>.<ctx>.requests one record {u32 cmd, u32 len, len request bytes} (real traffic,
 * the seed corpora of the fuzzers), and to PREFIX.<pid>.<ctx>.maps a copy of /proc/self/maps
 * whenever it changed since the last copy.
 * Off by default; when off, every function here is a no-op costing one branch.
 */
#ifndef VGPU_HOST_TRACE_H
#define VGPU_HOST_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct vgpu_trace {
    FILE  *replies;
    FILE  *requests;
    FILE  *maps;
    char  *last_maps; /* the last snapshot written, to skip unchanged ones */
    size_t last_len;
};

/* Starts tracing for context ctx_id if prefix is non-NULL and non-empty. */
void vgpu_trace_open(struct vgpu_trace *t, const char *prefix, uint32_t ctx_id);
/* Records one request (before it is served). */
void vgpu_trace_request(struct vgpu_trace *t, uint32_t cmd, const void *req, size_t len);
/* Records one reply and, if the address map changed, a new snapshot of it. */
void vgpu_trace_reply(struct vgpu_trace *t, uint32_t cmd, uint32_t code, const void *reply, size_t len);
/* Takes a final snapshot and closes the files. */
void vgpu_trace_close(struct vgpu_trace *t);

#endif /* VGPU_HOST_TRACE_H */
