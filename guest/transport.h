/*
 * Guest transports: move APIR command bytes to the host and share memory resources with it
 * (docs/PROTOCOL.md §1). The call layer (channel.c) is the only user; it serialises every
 * use of a transport behind its own mutex, so implementations need no locking of their own.
 *
 * Every function reports failure as a negative errno and leaves a one-line explanation in
 * tp->error; the caller decides whether the failure loses the channel.
 */
#ifndef VGPU_GUEST_TRANSPORT_H
#define VGPU_GUEST_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A memory area shared with the host, known to it by a non-zero id. */
struct vgpu_resource {
    uint32_t id;   /* 0 = none */
    void    *ptr;  /* guest mapping */
    size_t   size; /* bytes mapped (page-rounded) */
};

struct vgpu_transport;

/*
 * How a wait for a reply word spends its time before it blocks. Times are CLOCK_MONOTONIC
 * nanoseconds; a step whose time is 0 (or already past) is skipped.
 */
struct vgpu_wait_plan {
    int64_t spin_ns;     /* busy-poll the word this long first */
    int64_t nap_until;   /* then sleep until this time; the reply wakes the sleeper early */
    int64_t watch_until; /* then poll the word, yielding the CPU between polls, until this time */
};

struct vgpu_transport_ops {
    /* Creates a resource of at least `size` bytes, zero-filled, mapped and known to the host. */
    int  (*resource_create)(struct vgpu_transport *tp, size_t size, struct vgpu_resource *res);
    /* Tells the host to forget it and unmaps it; *res is zeroed. Never fails. */
    void (*resource_destroy)(struct vgpu_transport *tp, struct vgpu_resource *res);
    /* Sends one APIR command (12-byte header + payload). */
    int  (*submit)(struct vgpu_transport *tp, const void *cmd, size_t size);
    /*
     * Waits until the reply word (u32 at offset 0 of `reply`) is non-zero and returns it in
     * *word: as `plan` says, then blocking. Fails with -EPIPE when the host is gone and
     * -ETIMEDOUT past tp->timeout_ms.
     */
    int  (*wait_reply)(struct vgpu_transport *tp, const struct vgpu_resource *reply, uint32_t *word,
                       const struct vgpu_wait_plan *plan);
    void (*destroy)(struct vgpu_transport *tp);
};

struct vgpu_transport {
    const struct vgpu_transport_ops *ops;
    /* Largest command (header included) the transport can carry in one submission. */
    size_t  max_command_size;
    /* Added to cmd_type (APIR_VENUS_COMMAND_TYPE_OFFSET on the DRM Venus route; 0 here). */
    int32_t cmd_type_offset;
    /* Hard limit for one wait in ms; 0 = none (a dead host is still noticed). */
    int     timeout_ms;
    /* Human-readable endpoint, e.g. "unix:/run/ggml-virtgpu.sock". */
    char    endpoint[160];
    /* Explanation of the last failure. */
    char    error[256];
};

/* CLOCK_MONOTONIC in nanoseconds: the time base of struct vgpu_wait_plan. */
static inline int64_t vgpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Page size used to round resource sizes. */
size_t vgpu_page_size(void);

/*
 * Unix-socket transport (transport-unix.c): connects to `path`, sends HELLO and waits up to
 * `timeout_ms` (0 = a built-in start-up limit) for HELLO_REPLY. On failure returns -errno,
 * *out = NULL, and a reason such as "connect(/run/x.sock): Connection refused" in why.
 * `call_timeout_ms` becomes tp->timeout_ms.
 */
int vgpu_unix_open(const char *path, int call_timeout_ms, struct vgpu_transport **out,
                   char *why, size_t why_size);

#endif /* VGPU_GUEST_TRANSPORT_H */
