/*
 * Typed handle table; contracts in objects.h.
 */
#include "objects.h"

#include <stdlib.h>
#include <string.h>

#define GEN_MASK 0xffffffu

static uint64_t make_id(uint8_t type, uint32_t gen, uint32_t slot)
{
    return ((uint64_t)type << 56) | ((uint64_t)(gen & GEN_MASK) << 32) | slot;
}

static uint32_t next_gen(uint32_t gen)
{
    gen = (gen + 1) & GEN_MASK;
    return gen ? gen : 1;
}

void vgpu_objects_init(struct vgpu_objects *t, uint32_t max_slots)
{
    memset(t, 0, sizeof(*t));
    t->max_slots = max_slots > VGPU_OBJECTS_MAX_SLOTS ? VGPU_OBJECTS_MAX_SLOTS : max_slots;
}

void vgpu_objects_fini(struct vgpu_objects *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

uint64_t vgpu_objects_add(struct vgpu_objects *t, enum vgpu_obj_type type, void *ptr)
{
    if (type == VGPU_OBJ_NONE)
        return 0;
    uint32_t slot;
    if (t->free_head) {
        slot = t->free_head - 1;
        t->free_head = t->slots[slot].next_free;
    } else {
        if (t->n_slots >= t->max_slots)
            return 0;
        if (t->n_slots == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 64;
            if (cap > t->max_slots)
                cap = t->max_slots;
            struct vgpu_obj_slot *s = realloc(t->slots, (size_t)cap * sizeof(*s));
            if (!s)
                return 0;
            t->slots = s;
            t->cap = cap;
        }
        slot = t->n_slots++;
        t->slots[slot].gen = 1;
    }
    struct vgpu_obj_slot *s = &t->slots[slot];
    s->ptr = ptr;
    s->type = (uint8_t)type;
    s->next_free = 0;
    t->live++;
    return make_id((uint8_t)type, s->gen, slot);
}

static enum vgpu_obj_lookup find(const struct vgpu_objects *t, uint64_t id, enum vgpu_obj_type type,
                                 uint32_t *slot_out)
{
    uint32_t slot = vgpu_handle_slot(id);
    if (slot >= t->n_slots)
        return VGPU_OBJ_MISSING;
    const struct vgpu_obj_slot *s = &t->slots[slot];
    if (s->type == VGPU_OBJ_NONE || vgpu_handle_gen(id) != s->gen ||
        vgpu_handle_type(id) != s->type)
        return VGPU_OBJ_MISSING;
    /* The id names a live object exactly; only its type can still be wrong. */
    if (s->type != (uint8_t)type)
        return VGPU_OBJ_WRONG_TYPE;
    *slot_out = slot;
    return VGPU_OBJ_FOUND;
}

enum vgpu_obj_lookup vgpu_objects_get(const struct vgpu_objects *t, uint64_t id,
                                      enum vgpu_obj_type type, void **out)
{
    uint32_t slot;
    enum vgpu_obj_lookup r = find(t, id, type, &slot);
    if (r == VGPU_OBJ_FOUND)
        *out = t->slots[slot].ptr;
    return r;
}

enum vgpu_obj_lookup vgpu_objects_remove(struct vgpu_objects *t, uint64_t id,
                                         enum vgpu_obj_type type, void **out)
{
    uint32_t slot;
    enum vgpu_obj_lookup r = find(t, id, type, &slot);
    if (r != VGPU_OBJ_FOUND)
        return r;
    struct vgpu_obj_slot *s = &t->slots[slot];
    if (out)
        *out = s->ptr;
    s->ptr = NULL;
    s->type = VGPU_OBJ_NONE;
    s->gen = next_gen(s->gen);
    s->next_free = t->free_head;
    t->free_head = slot + 1;
    t->live--;
    return VGPU_OBJ_FOUND;
}

bool vgpu_objects_next(const struct vgpu_objects *t, uint32_t *cursor, enum vgpu_obj_type type,
                       uint64_t *id, void **ptr)
{
    for (uint32_t i = *cursor; i < t->n_slots; i++) {
        const struct vgpu_obj_slot *s = &t->slots[i];
        if (s->type == (uint8_t)type) {
            *cursor = i + 1;
            if (id)
                *id = make_id(s->type, s->gen, i);
            if (ptr)
                *ptr = s->ptr;
            return true;
        }
    }
    *cursor = t->n_slots;
    return false;
}
