/*
 * The call layer: one connection to the host shared by every device and backend of the
 * process. One call is in flight at a time (a mutex); the channel owns the reply resource,
 * the command encoder buffer and the staging resource. After a transport failure the channel
 * is *lost* for good: every later call fails at once (never abort, never hang).
 *
 * Usage, for a call:
 *     if (!vgpu_channel_lock(ch)) return failure;      // lost: fails fast
 *     struct vgpu_enc enc;
 *     vgpu_channel_begin(ch, &enc, APIR_COMMAND_TYPE_FORWARD, cmd_id);
 *     ... encode the request ...
 *     struct vgpu_dec dec;
 *     int code = vgpu_channel_forward(ch, &enc, &dec);  // handler code, or < 0
 *     ... decode the reply if code == VGPU_OK ...
 *     vgpu_channel_unlock(ch);
 */
#ifndef VGPU_GUEST_CHANNEL_H
#define VGPU_GUEST_CHANNEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "transport.h"

#define VGPU_REPLY_SIZE   (256u * 1024u)
#define VGPU_STAGING_SIZE (32u * 1024u * 1024u)

struct vgpu_channel {
    pthread_mutex_t        lock;
    struct vgpu_transport *tp;
    struct vgpu_resource   reply;
    struct vgpu_resource   staging; /* created on first use */
    struct vgpu_resource   big;     /* for payloads larger than staging; grown, kept */
    uint8_t               *cmd;
    size_t                 cmd_cap;
    int                    lost;            /* atomic */
    int                    transfer_logged; /* atomic: one log line for failed data moves */
    char                   lost_reason[256];
};

/* Creates the channel over a connected transport (which it then owns). NULL + why on failure. */
struct vgpu_channel *vgpu_channel_create(struct vgpu_transport *tp, char *why, size_t why_size);
void vgpu_channel_destroy(struct vgpu_channel *ch);

/* Lowers the command size bound (the host library's own limit from EXT_HELLO). */
void vgpu_channel_limit_command(struct vgpu_channel *ch, uint64_t max_command_size);

bool vgpu_channel_is_lost(struct vgpu_channel *ch);
/* Marks the channel lost (idempotent) and logs the reason once. */
void vgpu_channel_lose(struct vgpu_channel *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs "what" once per channel lifetime for data moves that fail after the loss. */
void vgpu_channel_log_transfer_failure(struct vgpu_channel *ch, const char *what);

/* Takes the call lock; false (not locked) when the channel is lost. */
bool vgpu_channel_lock(struct vgpu_channel *ch);
void vgpu_channel_unlock(struct vgpu_channel *ch);
/* Waits until no call is in flight (for local accesses to shared memory). */
void vgpu_channel_quiesce(struct vgpu_channel *ch);

/* ---- with the lock held ------------------------------------------------------------------ */

/* Starts a command in the encoder buffer: writes the 12-byte APIR header. */
void vgpu_channel_begin(struct vgpu_channel *ch, struct vgpu_enc *enc, int32_t cmd_type, int32_t cmd_flags);
/* Bytes still free in the command being encoded. */
size_t vgpu_channel_room(const struct vgpu_enc *enc);
/*
 * Sends the command and waits for the reply. Returns 0 with *ret = reply word - 1 and *reply
 * over the reply payload, or < 0 (the channel is then lost, except for -EMSGSIZE: the
 * command did not fit and was not sent).
 */
int vgpu_channel_call(struct vgpu_channel *ch, struct vgpu_enc *enc, uint32_t *ret, struct vgpu_dec *reply);
/*
 * A FORWARD call: returns the handler code (>= 0; docs/PROTOCOL.md §2.1) or < 0 when no
 * handler ran (transport failure, no library, reply overflow). Handler code FATAL loses
 * the channel: the host context refuses everything after it.
 */
int vgpu_channel_forward(struct vgpu_channel *ch, struct vgpu_enc *enc, struct vgpu_dec *reply);

/*
 * A shared area of at least `size` bytes for one call's payload: the staging resource
 * (created on first use) when it fits, else a dedicated resource kept for later calls.
 * NULL on failure.
 */
struct vgpu_resource *vgpu_channel_area(struct vgpu_channel *ch, size_t size);
/* The staging resource itself (created on first use), or NULL. */
struct vgpu_resource *vgpu_channel_staging(struct vgpu_channel *ch);

int  vgpu_channel_resource_create(struct vgpu_channel *ch, size_t size, struct vgpu_resource *res);
void vgpu_channel_resource_destroy(struct vgpu_channel *ch, struct vgpu_resource *res);

#endif /* VGPU_GUEST_CHANNEL_H */
