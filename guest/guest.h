/*
 * Internal state of the guest module shared by reg.c, device.c, buffer.c and backend.c.
 */
#ifndef VGPU_GUEST_GUEST_H
#define VGPU_GUEST_GUEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "ggml-backend-impl.h"
#include "remote.h"
#include "serialize.h"
#include "wire.h"

/* ---- per-signature answer cache (device.c) -------------------------------------------------- */

#define VGPU_OPC_SUPPORTS   (1u << 0)
#define VGPU_OPC_OFFLOAD    (1u << 1)
#define VGPU_OPC_ALLOC_SIZE (1u << 2)

struct vgpu_op_answer {
    uint8_t  known; /* VGPU_OPC_* bits */
    bool     supports;
    bool     offload;
    uint64_t alloc_size;
};

struct vgpu_op_cache_entry {
    uint64_t              hash;
    uint8_t              *key; /* NULL = empty slot */
    uint32_t              key_size;
    struct vgpu_op_answer answer;
};

/*
 * Host answers that never change for a given op signature (vgpu_op_key), compared by exact
 * key bytes (the hash only picks the slot). Thread-safe. Bounded: when full it starts over.
 */
struct vgpu_op_cache {
    pthread_mutex_t             lock;
    struct vgpu_op_cache_entry *slots;
    size_t                      cap;  /* power of two, or 0 */
    size_t                      used;
    size_t                      max_entries;
};

void vgpu_op_cache_init(struct vgpu_op_cache *c, size_t max_entries);
void vgpu_op_cache_free(struct vgpu_op_cache *c);
/* Copies the cached answer for key into *a (a->known = 0 when absent). */
void vgpu_op_cache_lookup(struct vgpu_op_cache *c, const uint8_t *key, size_t key_size, struct vgpu_op_answer *a);
/* Records the parts of *a named by a->known (merging with what is already known). */
void vgpu_op_cache_store(struct vgpu_op_cache *c, const uint8_t *key, size_t key_size, const struct vgpu_op_answer *a);

/* ---- mirror of the host's graph cache (backend.c) ------------------------------------------- */

/*
 * The uids the host holds for one device, most recent first (host LRU of graph_cache_slots),
 * each with a copy of the image it was sent as (to send it again if the host dropped it
 * while a recompute was in flight), when one was given.
 */
struct vgpu_graph_slot {
    uint64_t uid;
    uint8_t *image; /* malloc'd copy, or NULL */
    size_t   size;
};

struct vgpu_graph_lru {
    pthread_mutex_t         lock;
    struct vgpu_graph_slot *e;
    uint32_t                n;
    uint32_t                cap;
};

void vgpu_graph_lru_init(struct vgpu_graph_lru *l, uint32_t slots);
void vgpu_graph_lru_free(struct vgpu_graph_lru *l);
/* True if uid is held (and makes it the most recent), as a host hit does. */
bool vgpu_graph_lru_touch(struct vgpu_graph_lru *l, uint64_t uid);
/* Records uid as the most recent, dropping the least recent when full. */
void vgpu_graph_lru_insert(struct vgpu_graph_lru *l, uint64_t uid);
/* Same, keeping a copy of its image (none if memory is short). */
void vgpu_graph_lru_insert_image(struct vgpu_graph_lru *l, uint64_t uid, const uint8_t *image, size_t size);
/* True if uid is held with its image. */
bool vgpu_graph_lru_has_image(struct vgpu_graph_lru *l, uint64_t uid);
/* The uid held with exactly these image bytes (made the most recent), or 0. */
uint64_t vgpu_graph_lru_find_image(struct vgpu_graph_lru *l, const uint8_t *image, size_t size);
void vgpu_graph_lru_remove(struct vgpu_graph_lru *l, uint64_t uid);
/* Forgets every uid. */
void vgpu_graph_lru_clear(struct vgpu_graph_lru *l);

/*
 * The host's graph_optimize answers by graph image (backend.c): the node order and allocation
 * dependencies the host gave for exactly these bytes, most recent first.
 */
#define VGPU_OPT_CACHE_SLOTS 8

struct vgpu_opt_answer {
    uint8_t  *image;
    size_t    size;
    uint32_t  n_nodes;
    uint32_t *order; /* n_nodes */
    uint32_t  n_deps;
    uint32_t *deps;  /* 2 * n_deps */
};

struct vgpu_opt_cache {
    pthread_mutex_t        lock;
    struct vgpu_opt_answer e[VGPU_OPT_CACHE_SLOTS];
    uint32_t               n;
};

void vgpu_opt_cache_init(struct vgpu_opt_cache *c);
void vgpu_opt_cache_free(struct vgpu_opt_cache *c);

/* ---- devices ------------------------------------------------------------------------------- */

struct vgpu_state;

struct vgpu_device {
    struct ggml_backend_device      gdev; /* context = this */
    struct ggml_backend_buffer_type buft; /* context = this */
    struct vgpu_state              *state;
    uint32_t                        index; /* host device index (0 in the baseline) */
    char                            name[32];
    char                            description[2 * VGPU_MAX_NAME_LEN + 16];
    struct vgpu_device_info         info;
    bool                            zero_copy; /* buffers are shared memory the host computes on */
    bool                            weights_hint; /* flag weights in graph images (not GGML_VIRTGPU_NO_REPACK) */
    /* host buffer type: shared memory the host moves data to and from by reference */
    struct ggml_backend_buffer_type host_buft; /* context = this */
    bool                            host_buffers;
    char                            host_name[48];
    uint64_t                        mem_free;  /* last answer (atomic) */
    uint64_t                        mem_total;
    struct vgpu_op_cache            ops;
    struct vgpu_graph_lru           graphs;
    struct vgpu_opt_cache           opt;
    int                             init_deferred; /* atomic: the host initialised a tensor, later inits are deferred */
};

/* A buffer of a host buffer type (buffer.c). */
struct vgpu_host_buf {
    struct vgpu_device  *dev;
    struct vgpu_resource res;
    bool                 registered;
    bool                 pinned;
};

/* The process-wide state behind the reg (reg.c). */
struct vgpu_state {
    struct ggml_backend_reg reg;
    struct vgpu_channel    *ch;
    bool                    baseline;
    uint32_t                graph_cache_slots;
    size_t                  n_devices;
    struct vgpu_device     *devices;
    /* live host buffers, for "is this pointer in one of them" (buffer.c) */
    pthread_mutex_t         hb_lock;
    struct vgpu_host_buf  **hbufs;
    size_t                  n_hbufs;
    size_t                  cap_hbufs;
};

/* True if environment variable `name` is set to something other than "" or "0" (reg.c). */
bool vgpu_env_flag(const char *name);

/* Fills dev (interfaces, names, caches, buffer type) for host device `index`. */
void vgpu_device_init(struct vgpu_device *dev, struct vgpu_state *st, uint32_t index,
                      const struct vgpu_device_info *info);
void vgpu_device_free(struct vgpu_device *dev);

/* ---- buffers (buffer.c) ------------------------------------------------------------------- */

struct vgpu_buffer {
    struct vgpu_device       *dev;
    struct vgpu_remote_buffer remote;
    uint8_t                  *base; /* the mapping (zero-copy) or a nominal address */
    /*
     * A graph image carried its tensors flagged as weights (set once, atomically): from then on
     * the host may compute on repacked copies of them, so a zero-copy buffer's data changes go
     * through the host, which then knows the copies are stale (host/cpu-repack.h).
     */
    bool                      weights_used;
};

extern const struct ggml_backend_buffer_type_i vgpu_buft_iface;
extern const struct ggml_backend_buffer_type_i vgpu_host_buft_iface;
bool vgpu_buffer_is_ours(ggml_backend_buffer_t buffer);
/*
 * If [p, p + span) lies in one of our host buffers: true, its resource id and the offset.
 * (The caller must keep the buffer alive while the move runs, as it keeps the data.)
 */
bool vgpu_host_ptr(struct vgpu_state *st, const void *p, uint64_t span, uint32_t *res_id, uint64_t *offset);
/*
 * Data moves of a tensor in one of our device buffers, synchronous (the ggml buffer
 * interface) or async (the backend's *_async: the data stays valid until synchronize).
 */
void vgpu_buffer_set(struct ggml_tensor *tensor, const void *data, size_t offset, size_t size, size_t n_copies,
                     size_t stride_tensor, size_t stride_data, bool async);
void vgpu_buffer_get(const struct ggml_tensor *tensor, void *data, size_t offset, size_t size, size_t n_copies,
                     size_t stride_tensor, size_t stride_data, bool async);
/* Locator callback for serialize.c: our buffers' ids and bases. */
bool vgpu_buffer_lookup(void *user, ggml_backend_buffer_t buffer, uint64_t *id, uintptr_t *base);
extern const struct vgpu_locator vgpu_locator;
/* Describes t (which must live in one of our buffers) for transfers and copies. */
void vgpu_tensor_ref_from(const struct ggml_tensor *t, struct vgpu_tensor_ref *ref);

/* ---- backends (backend.c) ------------------------------------------------------------------- */

ggml_backend_t vgpu_backend_new(struct vgpu_device *dev);
/* Forgets every cached graph of dev (its buffers changed: the host dropped some). */
void vgpu_backend_graphs_dropped(struct vgpu_device *dev);
/* "ggml_backend_set_n_threads" of the reg's get_proc_address. */
void vgpu_backend_set_n_threads(ggml_backend_t backend, int n_threads);

#endif /* VGPU_GUEST_GUEST_H */
