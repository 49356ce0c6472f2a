/*
 * Shared-memory resources by id (docs/PROTOCOL.md §2 "Resource sizes").
 *
 * The runtime hands out a pointer per resource id (get_shmem_ptr). Its size comes from the
 * vgpu_apir_callbacks extension when the runtime announces it, otherwise from the end of the
 * host mapping that contains the pointer (/proc/self/maps), cached per (res_id, pointer).
 * Every range is checked here before a pointer into the resource is formed.
 */
#ifndef VGPU_HOST_RESOURCES_H
#define VGPU_HOST_RESOURCES_H

#include <stdbool.h>
#include <stdint.h>

struct vgpu_ctx;

#define VGPU_RES_CACHE_SIZE 32u

struct vgpu_res_cache_entry {
    uint32_t    res_id;
    const void *ptr;
    uint64_t    size;
    uint64_t    map_start; /* the host mapping [map_start, map_end) that contained ptr */
    uint64_t    map_end;
};

struct vgpu_res_cache {
    struct vgpu_res_cache_entry e[VGPU_RES_CACHE_SIZE];
    uint32_t                    n;
    uint32_t                    next; /* round-robin replacement */
};

/* Resolves a resource: its base and size. Unknown id → VGPU_NOT_FOUND (logged). */
uint32_t vgpu_res_get(struct vgpu_ctx *ctx, uint32_t res_id, uint8_t **ptr, uint64_t *size);
/*
 * Resolves [offset, offset + len) of a resource: VGPU_NOT_FOUND for an unknown id,
 * VGPU_INVALID if the range overflows or leaves the resource (logged).
 */
uint32_t vgpu_res_range(struct vgpu_ctx *ctx, uint32_t res_id, uint64_t offset, uint64_t len,
                        uint8_t **out);

/*
 * The /proc/self/maps entry containing p: true and its bounds, or false if none does.
 *
 * A cached size is reused only while the same mapping still exists: a mapping with exactly
 * the cached bounds (checked with one lstat of /proc/self/map_files/<start>-<end>) is the one
 * that contains the pointer, so a resource that was destroyed and re-created smaller at the
 * same address (ids are reused) is never bounded by its predecessor's size.
 */
bool vgpu_mapping_of(const void *p, uint64_t *start, uint64_t *end);

#endif /* VGPU_HOST_RESOURCES_H */
