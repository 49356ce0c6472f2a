/*
 * The three exported APIR symbols (docs/PROTOCOL.md §2) and the process-wide ctx_id →
 * context table: the library's one piece of global state, behind a mutex.
 *
 * Contexts are independent and may be served concurrently from different threads; each has
 * its own mutex, so its commands never run in parallel even if a runtime called it so. A
 * context being served when apir_backend_deinit() is called is freed by the last dispatcher
 * to leave it.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "apir.h"
#include "context.h"
#include "dispatch.h"

#define VGPU_EXPORT __attribute__((visibility("default")))

struct entry {
    uint32_t         id;
    struct vgpu_ctx *ctx;   /* NULL while being initialised */
    unsigned         refs;  /* dispatchers inside */
    bool             dying; /* removed from the table; freed when refs drops to 0 */
    pthread_mutex_t  mu;    /* serialises the context's commands */
};

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry  **table;
static size_t          table_n;
static size_t          table_cap;

/* Index of ctx_id in the table, or table_n. Call with table_mu held. */
static size_t find(uint32_t ctx_id)
{
    for (size_t i = 0; i < table_n; i++) {
        if (table[i]->id == ctx_id)
            return i;
    }
    return table_n;
}

/* Removes entry i; the table's memory goes with its last entry. Call with table_mu held. */
static void table_remove(size_t i)
{
    table[i] = table[--table_n];
    if (table_n == 0) {
        free(table);
        table = NULL;
        table_cap = 0;
    }
}

static void entry_free(struct entry *e)
{
    vgpu_ctx_destroy(e->ctx);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

VGPU_EXPORT uint32_t apir_backend_initialize(uint32_t ctx_id, struct virgl_apir_callbacks *cbs);
VGPU_EXPORT uint32_t apir_backend_dispatcher(uint32_t ctx_id, struct virgl_apir_callbacks *cbs, uint32_t cmd_id,
                                             char *dec_cur, const char *dec_end, char *enc_cur,
                                             const char *enc_end, char **enc_cur_after);
VGPU_EXPORT void     apir_backend_deinit(uint32_t ctx_id);

uint32_t apir_backend_initialize(uint32_t ctx_id, struct virgl_apir_callbacks *cbs)
{
    const uint32_t fail = APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_BACKEND_INIT_FAILED;
    struct entry *e = calloc(1, sizeof(*e));
    if (!e || pthread_mutex_init(&e->mu, NULL) != 0) {
        free(e);
        return fail;
    }
    e->id = ctx_id;

    /* Claim the id first, so that a concurrent second initialisation fails cleanly. */
    pthread_mutex_lock(&table_mu);
    if (find(ctx_id) != table_n) {
        pthread_mutex_unlock(&table_mu);
        entry_free(e);
        vgpu_log_id(ctx_id, VGPU_LOG_ERROR, "the context is already initialised");
        return APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INITIALIZE_ALREADY_INITED;
    }
    if (table_n == table_cap) {
        size_t cap = table_cap ? 2 * table_cap : 8;
        struct entry **t = realloc(table, cap * sizeof(*t));
        if (!t) {
            pthread_mutex_unlock(&table_mu);
            entry_free(e);
            return fail;
        }
        table = t;
        table_cap = cap;
    }
    table[table_n++] = e;
    pthread_mutex_unlock(&table_mu);

    struct vgpu_ctx *ctx = NULL;
    uint32_t ret = vgpu_ctx_create(ctx_id, cbs, &ctx);

    pthread_mutex_lock(&table_mu);
    bool dying = e->dying; /* deinit raced with initialisation */
    if (ret == 0 && !dying) {
        e->ctx = ctx;
        pthread_mutex_unlock(&table_mu);
        return 0;
    }
    if (!dying)
        table_remove(find(ctx_id));
    pthread_mutex_unlock(&table_mu);
    e->ctx = ctx;
    entry_free(e);
    return ret ? ret : fail;
}

uint32_t apir_backend_dispatcher(uint32_t ctx_id, struct virgl_apir_callbacks *cbs, uint32_t cmd_id,
                                 char *dec_cur, const char *dec_end, char *enc_cur, const char *enc_end,
                                 char **enc_cur_after)
{
    (void)cbs; /* the callbacks were copied at initialisation */
    if (enc_cur_after)
        *enc_cur_after = enc_cur;

    pthread_mutex_lock(&table_mu);
    size_t i = find(ctx_id);
    struct entry *e = i < table_n ? table[i] : NULL;
    if (!e || !e->ctx) {
        pthread_mutex_unlock(&table_mu);
        vgpu_log_id(ctx_id, VGPU_LOG_WARN, "command %u for a context that is not initialised", cmd_id);
        return VGPU_INVALID;
    }
    e->refs++;
    pthread_mutex_unlock(&table_mu);

    pthread_mutex_lock(&e->mu);
    uint32_t code = vgpu_dispatch(e->ctx, cmd_id, dec_cur, dec_end, enc_cur, enc_end, enc_cur_after);
    pthread_mutex_unlock(&e->mu);

    pthread_mutex_lock(&table_mu);
    bool last = --e->refs == 0 && e->dying;
    pthread_mutex_unlock(&table_mu);
    if (last)
        entry_free(e);
    return code;
}

void apir_backend_deinit(uint32_t ctx_id)
{
    pthread_mutex_lock(&table_mu);
    size_t i = find(ctx_id);
    if (i == table_n) {
        pthread_mutex_unlock(&table_mu);
        return;
    }
    struct entry *e = table[i];
    table_remove(i);
    e->dying = true;
    /* Still initialising (ctx NULL): the initialiser frees it. Still served: the last dispatcher. */
    bool now = e->ctx && e->refs == 0;
    pthread_mutex_unlock(&table_mu);
    if (now)
        entry_free(e);
}
