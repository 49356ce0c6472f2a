/*
 * Typed handle table (DESIGN §4.1).
 *
 * Every host object a guest can name (buffers, buffer types) gets a 64-bit id:
 *
 *     bits 63..56  type tag (VGPU_OBJ_*; never 0, so 0 is never a valid id)
 *     bits 55..32  generation of the slot (24 bits, never 0)
 *     bits 31..0   slot index (< VGPU_OBJECTS_MAX_SLOTS)
 *
 * The generation changes when a slot is freed, so stale ids fail; ids are never host
 * addresses. The table is per context and not locked (the context serialises its commands).
 * It knows nothing of ggml or of the context, so it is unit-tested on its own.
 */
#ifndef VGPU_HOST_OBJECTS_H
#define VGPU_HOST_OBJECTS_H

#include <stdbool.h>
#include <stdint.h>

enum vgpu_obj_type {
    VGPU_OBJ_NONE   = 0,
    VGPU_OBJ_BUFFER = 0x42, /* 'B' */
    VGPU_OBJ_BUFT   = 0x54, /* 'T' */
};

/*
 * Slots are bounded so that the baseline's nominal buffer base ((slot + 1) << 40) fits in
 * 64 bits with room to spare.
 */
#define VGPU_OBJECTS_MAX_SLOTS (1u << 22)

enum vgpu_obj_lookup {
    VGPU_OBJ_FOUND = 0,
    VGPU_OBJ_MISSING,    /* forged, stale or never issued */
    VGPU_OBJ_WRONG_TYPE, /* a live object of another type: type confusion */
};

struct vgpu_obj_slot {
    void    *ptr;
    uint32_t gen;       /* generation of the current (or next) occupant */
    uint32_t next_free; /* free-list link (index + 1, 0 = end) */
    uint8_t  type;      /* VGPU_OBJ_NONE when free */
};

struct vgpu_objects {
    struct vgpu_obj_slot *slots;
    uint32_t n_slots;   /* slots ever used (the array prefix in use) */
    uint32_t cap;       /* allocated slots */
    uint32_t max_slots; /* hard bound */
    uint32_t free_head; /* index + 1 of the first free slot, 0 = none */
    uint32_t live;
};

/* Empty table that may grow to max_slots (clamped to VGPU_OBJECTS_MAX_SLOTS). */
void vgpu_objects_init(struct vgpu_objects *t, uint32_t max_slots);
/* Frees the table's memory (not the objects). */
void vgpu_objects_fini(struct vgpu_objects *t);

/* Adds an object; returns its id, or 0 if the table is full or memory ran out. */
uint64_t vgpu_objects_add(struct vgpu_objects *t, enum vgpu_obj_type type, void *ptr);
/* Looks an id up as `type`; *out is set only when found. */
enum vgpu_obj_lookup vgpu_objects_get(const struct vgpu_objects *t, uint64_t id,
                                      enum vgpu_obj_type type, void **out);
/* Removes a live object of `type`; same results as vgpu_objects_get. */
enum vgpu_obj_lookup vgpu_objects_remove(struct vgpu_objects *t, uint64_t id,
                                         enum vgpu_obj_type type, void **out);

/* Iteration over live objects of one type: start with *cursor = 0; returns false at the end. */
bool vgpu_objects_next(const struct vgpu_objects *t, uint32_t *cursor, enum vgpu_obj_type type,
                       uint64_t *id, void **ptr);

static inline uint32_t vgpu_handle_slot(uint64_t id) { return (uint32_t)id; }
static inline uint32_t vgpu_handle_gen(uint64_t id) { return (uint32_t)(id >> 32) & 0xffffffu; }
static inline uint8_t vgpu_handle_type(uint64_t id) { return (uint8_t)(id >> 56); }

#endif /* VGPU_HOST_OBJECTS_H */
