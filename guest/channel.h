/*
 * The call layer: one connection to the host shared by every device and backend of the
 * process, behind one mutex. The channel owns the command encoder buffer, the reply
 * resources, the staging resource and, with a host that has EXT_BATCH (extension version 2),
 * the queue of deferred commands. After a transport failure the channel is *lost* for good:
 * every later call fails at once (never abort, never hang).
 *
 * A synchronous call:
 *     if (!vgpu_channel_lock(ch)) return failure;      // lost: fails fast
 *     struct vgpu_enc enc;
 *     vgpu_channel_begin(ch, &enc, APIR_COMMAND_TYPE_FORWARD, cmd_id);
 *     ... encode the request ...
 *     struct vgpu_dec dec;
 *     int code = vgpu_channel_forward(ch, &enc, &dec);  // handler code, or < 0
 *     ... decode the reply if code == VGPU_OK ...
 *     vgpu_channel_unlock(ch);
 *
 * Deferred commands (batching hosts only, vgpu_channel_batching()): a command encoded the
 * same way is handed to vgpu_channel_defer() instead of forward(): its bytes are copied into
 * the pending batch and it returns at once. Pending commands travel, in order, in one
 * EXT_BATCH with the next command that needs an answer (forward), or when vgpu_channel_kick()
 * submits them without waiting (a graph compute, a staged chunk). Up to VGPU_RING
 * submissions are in flight; each has its own reply resource. The host runs everything in
 * submission order, so a reply means every earlier submission is done too.
 *
 * Completion of deferred commands (in forward, sync, kick, wait_seq, or when the ring is
 * full) checks every entry's answer: an inline GET's bytes are copied to their destination,
 * and any failure is logged and latched (vgpu_channel_take_error: the next graph compute
 * reports it). When the host stopped a batch at a failed entry (docs/PROTOCOL.md §4.4), the
 * entries after it and every later submission (which the host skipped) are sent again, in
 * order, with VGPU_BATCH_RESUME: each command is attempted exactly once, as if sent alone.
 */
#ifndef VGPU_GUEST_CHANNEL_H
#define VGPU_GUEST_CHANNEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "profile.h"
#include "transport.h"
#include "wait-pred.h"

#define VGPU_REPLY_SIZE   (256u * 1024u)
#define VGPU_STAGING_SIZE (32u * 1024u * 1024u)
/* Submissions in flight at most (each with its reply resource), and staged chunks too. */
#define VGPU_RING 8u
/* Staging is used in VGPU_RING chunks of this size for pipelined transfers. */
#define VGPU_STAGING_CHUNK (VGPU_STAGING_SIZE / VGPU_RING)
/* Reply bytes that deferred entries of one batch may need (the rest is for a final command). */
#define VGPU_DEFER_REPLY_BUDGET (64u * 1024u)

/* What completion does with a deferred entry's answer. */
enum vgpu_entry_kind {
    VGPU_ENTRY_PLAIN = 0,  /* only the code counts */
    VGPU_ENTRY_GET_INLINE, /* EXT_TENSOR_GET with the data in the reply: copy it to dst */
    VGPU_ENTRY_GRAPH,      /* EXT_GRAPH_COMPUTE of a cached graph: result and ggml status */
    VGPU_ENTRY_FINAL,      /* the command of a vgpu_channel_forward (internal) */
};

struct vgpu_channel;

/*
 * Encodes into enc (the request only: no APIR header) the full EXT_GRAPH_COMPUTE of a graph
 * the host no longer holds, for the same uid: 0, or < 0 if the graph is not known any more.
 * Called while resending; a shared area it needs must already exist (vgpu_channel_area).
 */
typedef int (*vgpu_graph_resend_fn)(struct vgpu_channel *ch, void *user, uint64_t uid, struct vgpu_enc *enc);

/* Describes a deferred command for its completion; fill what the kind needs. */
struct vgpu_entry_meta {
    uint8_t  kind;        /* enum vgpu_entry_kind */
    bool     long_wait;   /* the host may take a while (big copies): do not spin long on it */
    bool     reads_caller; /* reads the caller's memory in place: synchronize waits for it */
    uint32_t reply_max;   /* reply bytes the entry may need (0 for most) */
    char     what[128];   /* for log lines, e.g. "set_tensor of 'x'" */
    /* GET_INLINE: n_rows rows of row_size bytes into dst, dst_stride apart */
    uint8_t *dst;
    uint64_t row_size;
    uint64_t n_rows;
    uint64_t dst_stride;
    /* when set, the entry's code (or < 0 if it never ran) goes here instead of being reported */
    int     *result;
    uint64_t bytes;       /* long copies: the bytes moved (tells work apart for wait prediction) */
    /* GRAPH */
    uint64_t             uid;
    vgpu_graph_resend_fn resend;
    void                *resend_user;
    /* internal */
    uint32_t cmd;
    uint32_t off;  /* the entry's offset in its submission's request */
    uint32_t size; /* the entry's bytes, header included */
};

/* A batch being built or in flight. */
struct vgpu_submission {
    struct vgpu_resource    reply;  /* created on first use */
    uint8_t                *req;    /* APIR header + EXT_BATCH request */
    size_t                  len;
    struct vgpu_entry_meta *meta;
    uint32_t                n;
    uint32_t                meta_cap;
    uint32_t                reply_need; /* reply bytes the entries may need */
    bool                    observable; /* has an entry whose effect the guest may read */
    bool                    long_wait;  /* has a graph compute or a big copy */
    bool                    no_wait;    /* sent with VGPU_BATCH_NO_WAIT */
    uint64_t                work;       /* hash of its long entries, for wait prediction (0: none) */
    uint64_t                seq;
};

/* A copy between guest memories to do once everything outstanding completed. */
struct vgpu_local_copy {
    uint8_t       *dst;
    const uint8_t *src;
    uint64_t       size;
    uint64_t       n_rows;
    uint64_t       dst_stride;
    uint64_t       src_stride;
};

struct vgpu_channel {
    pthread_mutex_t        lock;
    struct vgpu_transport *tp;
    struct vgpu_resource   reply;   /* for unbatched calls */
    struct vgpu_resource   staging; /* created on first use */
    struct vgpu_resource   big;     /* for payloads larger than staging; grown, kept */
    struct vgpu_resource   resend_area; /* graph images resent after a stop (reserved ahead) */
    uint8_t               *cmd;
    size_t                 cmd_cap;
    int                    lost;            /* atomic */
    int                    transfer_logged; /* atomic: one log line for failed data moves */
    char                   lost_reason[256];

    /* batching (extension version 2 hosts) */
    bool                   batching;
    struct vgpu_submission sub[VGPU_RING + 1]; /* VGPU_RING in flight + the pending one */
    struct vgpu_submission rerun;              /* resends after a stopped batch */
    uint32_t               pending;            /* index of the batch being built */
    uint32_t               fifo[VGPU_RING];    /* in-flight indices, oldest first */
    uint32_t               n_inflight;
    uint64_t               seq_submitted;
    uint64_t               seq_completed;
    bool                   need_resume;     /* the host stopped a batch: next batch resumes */
    bool                   no_wait_ok;      /* the host takes VGPU_BATCH_NO_WAIT (version >= 3) */
    bool                   unwaited;        /* the last batch sent had NO_WAIT: sync must send one more */
    bool                   in_rerun;        /* resending: vgpu_channel_area creates nothing */
    uint8_t               *resend_buf;      /* a resent graph's request */
    int                    error;           /* latched failure of a deferred command */
    uint64_t               staging_seq[VGPU_RING]; /* last submission using each staging chunk */
    struct vgpu_local_copy *local;          /* copies to do at the next sync */
    uint32_t               n_local;
    uint32_t               local_cap;
    /* the answer of the command being forwarded */
    int                    final_code;
    bool                   final_done;
    struct vgpu_dec        final_reply;

    /* wait policy */
    int64_t                spin_short_ns; /* quick commands */
    int64_t                spin_long_ns;  /* graph computes and staged chunks */
    int                    n_cpus;
    int                    host_threads;  /* last accepted set_n_threads (0: none) */
    bool                   predict;       /* plan long waits (wait-pred.h) */
    struct vgpu_wait_pred  pred;

    struct vgpu_gprof      prof; /* measuring facility, off unless GGML_VIRTGPU_PROFILE (profile.h) */
};

/* Creates the channel over a connected transport (which it then owns). NULL + why on failure. */
struct vgpu_channel *vgpu_channel_create(struct vgpu_transport *tp, char *why, size_t why_size);
void vgpu_channel_destroy(struct vgpu_channel *ch);

/* Lowers the command size bound (the host library's own limit from EXT_HELLO). */
void vgpu_channel_limit_command(struct vgpu_channel *ch, uint64_t max_command_size);
/* Turns batching on (the host answered EXT_HELLO with version >= 2). */
void vgpu_channel_enable_batching(struct vgpu_channel *ch);
static inline bool vgpu_channel_batching(const struct vgpu_channel *ch) { return ch->batching; }
/* Lets batches that start a compute go with VGPU_BATCH_NO_WAIT (the host answered version >= 3). */
void vgpu_channel_enable_no_wait(struct vgpu_channel *ch);
/*
 * Sends the pending batch now (with VGPU_BATCH_NO_WAIT where the host takes it: the host need
 * not wait for the compute it starts before replying; the next sync makes it wait). Returns
 * its sequence number, or 0 (lost, or nothing pending).
 */
uint64_t vgpu_channel_kick_no_wait(struct vgpu_channel *ch);
/* The host backend's thread count (for the wait policy). */
void vgpu_channel_set_host_threads(struct vgpu_channel *ch, int n_threads);

bool vgpu_channel_is_lost(struct vgpu_channel *ch);
/* Marks the channel lost (idempotent) and logs the reason once. */
void vgpu_channel_lose(struct vgpu_channel *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs "what" once per channel lifetime for data moves that fail after the loss. */
void vgpu_channel_log_transfer_failure(struct vgpu_channel *ch, const char *what);

/* Takes the call lock; false (not locked) when the channel is lost. */
bool vgpu_channel_lock(struct vgpu_channel *ch);
void vgpu_channel_unlock(struct vgpu_channel *ch);
/*
 * Waits until every command sent or deferred so far has completed (for local accesses to
 * shared memory); also when lost (then nothing is outstanding).
 */
void vgpu_channel_quiesce(struct vgpu_channel *ch);

/* ---- with the lock held ------------------------------------------------------------------ */

/* Starts a command in the encoder buffer: writes the 12-byte APIR header. */
void vgpu_channel_begin(struct vgpu_channel *ch, struct vgpu_enc *enc, int32_t cmd_type, int32_t cmd_flags);
/* Bytes still free in the command being encoded. */
size_t vgpu_channel_room(const struct vgpu_enc *enc);
/*
 * Sends the command and waits for the reply (unbatched: HANDSHAKE, LOADLIBRARY, EXT_HELLO).
 * Returns 0 with *ret = reply word - 1 and *reply over the reply payload, or < 0 (the channel
 * is then lost, except for -EMSGSIZE: the command did not fit and was not sent).
 */
int vgpu_channel_call(struct vgpu_channel *ch, struct vgpu_enc *enc, uint32_t *ret, struct vgpu_dec *reply);
/*
 * A FORWARD call: returns the handler code (>= 0; docs/PROTOCOL.md §2.1) or < 0 when no
 * handler ran (transport failure, no library, reply overflow). Handler code FATAL loses
 * the channel: the host context refuses everything after it. With batching, the pending
 * commands travel with it.
 */
int vgpu_channel_forward(struct vgpu_channel *ch, struct vgpu_enc *enc, struct vgpu_dec *reply);
/*
 * Defers the FORWARD command in enc (batching only): 0, or < 0 (lost; or -EMSGSIZE when it
 * can never fit a batch: send it with forward instead). meta may be NULL (PLAIN).
 */
int vgpu_channel_defer(struct vgpu_channel *ch, struct vgpu_enc *enc, const struct vgpu_entry_meta *meta);
/* Submits the pending commands without waiting; returns the submission's sequence number (0: none). */
uint64_t vgpu_channel_kick(struct vgpu_channel *ch);
/* Completes every submission up to sequence number seq (waiting as needed). 0 or < 0 (lost). */
int vgpu_channel_wait_seq(struct vgpu_channel *ch, uint64_t seq);
/*
 * Submits what is pending and completes everything in flight. With only_observable, returns
 * at once when nothing outstanding has an effect the guest could read (pending sets into
 * host-allocated buffers can wait for the next command).
 */
int vgpu_channel_sync(struct vgpu_channel *ch, bool only_observable);
/* True if something is pending, in flight or a local copy waits. */
bool vgpu_channel_busy(const struct vgpu_channel *ch);
/*
 * Queues a copy from shared memory the host writes (zero-copy buffers) to guest memory, to
 * be done once everything outstanding completed (get_tensor_async). 0 or -ENOMEM (then the
 * caller syncs and copies itself).
 */
int vgpu_channel_local_copy(struct vgpu_channel *ch, const struct vgpu_local_copy *c);
/* Returns and clears the latched failure of a deferred command (0 = none). */
int vgpu_channel_take_error(struct vgpu_channel *ch);

/*
 * A shared area of at least `size` bytes for one call's payload: the staging resource
 * (created on first use, once no staged chunk is in flight) when it fits, else a dedicated
 * resource kept for later calls. NULL on failure.
 */
struct vgpu_resource *vgpu_channel_area(struct vgpu_channel *ch, size_t size);
/*
 * Makes sure a graph image of `size` bytes can be resent (vgpu_channel_area while resending
 * creates nothing): grows the resend area. 0 or < 0.
 */
int vgpu_channel_reserve_resend(struct vgpu_channel *ch, size_t size);
/* The staging resource itself (created on first use, whole: no chunk in flight), or NULL. */
struct vgpu_resource *vgpu_channel_staging(struct vgpu_channel *ch);
/* Staging chunk i (< VGPU_RING) for pipelined transfers, once its last user completed; NULL if lost. */
uint8_t *vgpu_channel_staging_chunk(struct vgpu_channel *ch, uint32_t i, uint64_t *res_offset, uint32_t *res_id);
/* Records that the submission `seq` uses staging chunk i. */
void vgpu_channel_staging_used(struct vgpu_channel *ch, uint32_t i, uint64_t seq);

int  vgpu_channel_resource_create(struct vgpu_channel *ch, size_t size, struct vgpu_resource *res);
/* Destroys a resource after everything that may use it has been submitted. */
void vgpu_channel_resource_destroy(struct vgpu_channel *ch, struct vgpu_resource *res);

#endif /* VGPU_GUEST_CHANNEL_H */
