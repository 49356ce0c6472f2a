/*
 * The call layer; contracts in channel.h, the batch format in docs/PROTOCOL.md §4.4.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "channel.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apir.h"
#include "ext.h"
#include "ggml-impl.h"

/* Reply resources of the batch ring: room for the deferred entries and a large final reply. */
#define RING_REPLY_SIZE (512u * 1024u)
/* APIR header + EXT_BATCH header in front of the entries. */
#define BATCH_PREFIX (APIR_HEADER_SIZE + VGPU_BATCH_HEADER_SIZE)

static const char *code_name(int code)
{
    if (code == (int)VGPU_SKIPPED)
        return "skipped after an earlier failure";
    return code >= 0 ? vgpu_status_name((uint32_t)code) : strerror(-code);
}

/* ---- wait policy ------------------------------------------------------------------------------ */

static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* A microsecond count from the environment (0..10 s) into *ns; false (and *ns kept) otherwise. */
static bool env_us(const char *name, int64_t *ns)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return false;
    char *end;
    long us = strtol(v, &end, 10);
    if (*end || us < 0 || us > 10000000)
        return false;
    *ns = (int64_t)us * 1000;
    return true;
}

/*
 * Spinning only pays when the host has a core to run on meanwhile. With two CPUs or fewer
 * the host's threads need ours (a spinning guest delays the very reply it waits for), so
 * the guest blocks at once. Long waits (graph computes) spin only when there are cores to
 * spare beyond the host backend's threads, as a GPU host's are. GGML_VIRTGPU_SPIN_US
 * overrides both budgets. Planned waits (wait-pred.h) watch the reply word only near its
 * predicted time and yield meanwhile; still, with so few CPUs even that is not free.
 * GGML_VIRTGPU_PREDICT=0 or 1 overrides, GGML_VIRTGPU_PREDICT_MIN_US sets the shortest
 * planned work.
 */
static void update_spin(struct vgpu_channel *ch)
{
    const char *pv = getenv("GGML_VIRTGPU_PREDICT");
    ch->predict = pv && *pv ? strcmp(pv, "0") != 0 : ch->n_cpus >= 4;
    ch->pred.min_ns = VGPU_PRED_MIN_NS;
    (void)env_us("GGML_VIRTGPU_PREDICT_MIN_US", &ch->pred.min_ns);
    int host = ch->host_threads > 0 ? ch->host_threads : 4;
    ch->spin_short_ns = ch->n_cpus >= 3 ? 50000 : 0;
    ch->spin_long_ns = ch->n_cpus >= 4 && ch->n_cpus >= host + 2 ? 3000000 : 0;
    int64_t spin;
    if (env_us("GGML_VIRTGPU_SPIN_US", &spin)) {
        ch->spin_short_ns = spin;
        ch->spin_long_ns = spin;
    }
}

void vgpu_channel_set_host_threads(struct vgpu_channel *ch, int n_threads)
{
    ch->host_threads = n_threads;
    update_spin(ch);
}

/* ---- creation ------------------------------------------------------------------------------- */

struct vgpu_channel *vgpu_channel_create(struct vgpu_transport *tp, char *why, size_t why_size)
{
    struct vgpu_channel *ch = calloc(1, sizeof(*ch));
    if (!ch) {
        snprintf(why, why_size, "out of memory");
        tp->ops->destroy(tp);
        return NULL;
    }
    pthread_mutex_init(&ch->lock, NULL);
    vgpu_gprof_init(&ch->prof);
    ch->tp = tp;
    ch->cmd_cap = tp->max_command_size;
    ch->cmd = malloc(ch->cmd_cap);
    if (!ch->cmd) {
        snprintf(why, why_size, "out of memory (%zu-byte command buffer)", ch->cmd_cap);
        vgpu_channel_destroy(ch);
        return NULL;
    }
    int r = tp->ops->resource_create(tp, VGPU_REPLY_SIZE, &ch->reply);
    if (r != 0) {
        snprintf(why, why_size, "creating the reply resource: %s", tp->error);
        vgpu_channel_destroy(ch);
        return NULL;
    }
    ch->n_cpus = usable_cpus();
    update_spin(ch);
    return ch;
}

static void sub_free(struct vgpu_channel *ch, struct vgpu_submission *s)
{
    if (ch->tp)
        ch->tp->ops->resource_destroy(ch->tp, &s->reply);
    free(s->req);
    free(s->meta);
    memset(s, 0, sizeof(*s));
}

void vgpu_channel_destroy(struct vgpu_channel *ch)
{
    if (!ch)
        return;
    if (ch->tp && !vgpu_channel_is_lost(ch) && vgpu_channel_busy(ch)) {
        pthread_mutex_lock(&ch->lock);
        (void)vgpu_channel_sync(ch, false);
        pthread_mutex_unlock(&ch->lock);
    }
    for (uint32_t i = 0; i <= VGPU_RING; i++)
        sub_free(ch, &ch->sub[i]);
    sub_free(ch, &ch->rerun);
    if (ch->tp) {
        ch->tp->ops->resource_destroy(ch->tp, &ch->big);
        ch->tp->ops->resource_destroy(ch->tp, &ch->resend_area);
        ch->tp->ops->resource_destroy(ch->tp, &ch->staging);
        ch->tp->ops->resource_destroy(ch->tp, &ch->reply);
        ch->tp->ops->destroy(ch->tp);
    }
    free(ch->local);
    free(ch->resend_buf);
    free(ch->cmd);
    pthread_mutex_destroy(&ch->lock);
    free(ch);
}

void vgpu_channel_limit_command(struct vgpu_channel *ch, uint64_t max_command_size)
{
    pthread_mutex_lock(&ch->lock);
    /* The host library's limit counts the APIR command; the transport's is already applied. */
    if (max_command_size >= 4096 && max_command_size < ch->cmd_cap)
        ch->cmd_cap = (size_t)max_command_size;
    pthread_mutex_unlock(&ch->lock);
}

void vgpu_channel_enable_no_wait(struct vgpu_channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    ch->no_wait_ok = true;
    pthread_mutex_unlock(&ch->lock);
}

void vgpu_channel_enable_batching(struct vgpu_channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    ch->batching = true;
    ch->pending = 0;
    pthread_mutex_unlock(&ch->lock);
}

bool vgpu_channel_is_lost(struct vgpu_channel *ch)
{
    return __atomic_load_n(&ch->lost, __ATOMIC_ACQUIRE) != 0;
}

static void drop_outstanding(struct vgpu_channel *ch, int why);

void vgpu_channel_lose(struct vgpu_channel *ch, const char *fmt, ...)
{
    char text[sizeof(ch->lost_reason)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    int expected = 0;
    if (__atomic_compare_exchange_n(&ch->lost, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        memcpy(ch->lost_reason, text, sizeof(text));
        GGML_LOG_ERROR("ggml-virtgpu: host lost (%s): %s; every further call fails\n", ch->tp->endpoint, text);
    }
}

void vgpu_channel_log_transfer_failure(struct vgpu_channel *ch, const char *what)
{
    if (__atomic_exchange_n(&ch->transfer_logged, 1, __ATOMIC_ACQ_REL) == 0)
        GGML_LOG_ERROR("ggml-virtgpu: %s failed: the host is gone; tensor data is no longer moved "
                       "(logged once)\n", what);
}

bool vgpu_channel_lock(struct vgpu_channel *ch)
{
    if (vgpu_channel_is_lost(ch))
        return false;
    pthread_mutex_lock(&ch->lock);
    if (vgpu_channel_is_lost(ch)) {
        pthread_mutex_unlock(&ch->lock);
        return false;
    }
    return true;
}

void vgpu_channel_unlock(struct vgpu_channel *ch)
{
    pthread_mutex_unlock(&ch->lock);
}

void vgpu_channel_quiesce(struct vgpu_channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    if (vgpu_channel_is_lost(ch))
        drop_outstanding(ch, -EPIPE);
    (void)vgpu_channel_sync(ch, false);
    pthread_mutex_unlock(&ch->lock);
}

void vgpu_channel_begin(struct vgpu_channel *ch, struct vgpu_enc *enc, int32_t cmd_type, int32_t cmd_flags)
{
    vgpu_enc_init(enc, ch->cmd, ch->cmd_cap);
    vgpu_enc_i32(enc, cmd_type + ch->tp->cmd_type_offset);
    vgpu_enc_i32(enc, cmd_flags);
    vgpu_enc_u32(enc, ch->reply.id);
}

size_t vgpu_channel_room(const struct vgpu_enc *enc)
{
    return enc->fatal ? 0 : vgpu_enc_left(enc);
}

static bool is_long_cmd(int32_t cmd)
{
    return cmd == VGPU_CMD_EXT_GRAPH_COMPUTE || cmd == VGPU_CMD_EXT_GRAPH_OPTIMIZE ||
           cmd == APIR_CMD_BACKEND_GRAPH_COMPUTE;
}

/* Sends bytes whose header names `reply` and waits for its word (lock held). 0 or < 0 (lost). */
static int send_wait(struct vgpu_channel *ch, const void *cmd, size_t len, struct vgpu_resource *reply,
                     int64_t spin_ns, uint32_t *word)
{
    __atomic_store_n((uint32_t *)reply->ptr, 0, __ATOMIC_SEQ_CST);
    struct vgpu_transport *tp = ch->tp;
    int r = tp->ops->submit(tp, cmd, len);
    struct vgpu_wait_plan plan = { .spin_ns = spin_ns };
    if (r == 0)
        r = tp->ops->wait_reply(tp, reply, word, &plan);
    if (r != 0)
        vgpu_channel_lose(ch, "%s", tp->error);
    return r;
}

int vgpu_channel_call(struct vgpu_channel *ch, struct vgpu_enc *enc, uint32_t *ret, struct vgpu_dec *reply)
{
    *ret = 0;
    vgpu_dec_init(reply, NULL, 0);
    if (!vgpu_enc_ok(enc)) {
        GGML_LOG_ERROR("ggml-virtgpu: internal error: a command exceeds the %zu-byte limit\n", ch->cmd_cap);
        return -EMSGSIZE;
    }
    if (ch->batching && vgpu_channel_busy(ch)) {
        int s = vgpu_channel_sync(ch, false);
        if (s < 0)
            return s;
    }
    int32_t cmd_type, cmd_id;
    memcpy(&cmd_type, enc->start, 4);
    memcpy(&cmd_id, enc->start + 4, 4);
    bool fwd = cmd_type == APIR_COMMAND_TYPE_FORWARD + ch->tp->cmd_type_offset;
    int64_t spin = fwd && is_long_cmd(cmd_id) ? ch->spin_long_ns : ch->spin_short_ns;
    struct vgpu_transport *tp = ch->tp;
    uint32_t *word = ch->reply.ptr;
    __atomic_store_n(word, 0, __ATOMIC_SEQ_CST);
    int r = tp->ops->submit(tp, enc->start, vgpu_enc_used(enc));
    if (r == -EMSGSIZE) {
        GGML_LOG_ERROR("ggml-virtgpu: %s\n", tp->error);
        return r;
    }
    if (r == 0) {
        uint32_t v = 0;
        struct vgpu_wait_plan plan = { .spin_ns = spin };
        r = tp->ops->wait_reply(tp, &ch->reply, &v, &plan);
        if (r == 0) {
            *ret = v - 1;
            vgpu_dec_init(reply, (uint8_t *)ch->reply.ptr + APIR_REPLY_PAYLOAD_OFFSET,
                          ch->reply.size - APIR_REPLY_PAYLOAD_OFFSET);
            return 0;
        }
    }
    vgpu_channel_lose(ch, "%s", tp->error);
    return r;
}

/* The handler code of a FORWARD reply word, or < 0 when no handler ran. */
static int forward_code(struct vgpu_channel *ch, int32_t cmd_id, uint32_t ret)
{
    if (ret < APIR_FORWARD_BASE_INDEX) {
        GGML_LOG_ERROR("ggml-virtgpu: command %d was not run by the host (forward code %u: %s)\n", cmd_id, ret,
                       ret == APIR_FORWARD_NO_DISPATCH_FN ? "no library loaded or reply overflow" : "transport error");
        return -EIO;
    }
    uint32_t code = ret - APIR_FORWARD_BASE_INDEX;
    if (code == VGPU_FATAL)
        vgpu_channel_lose(ch, "the host context is in the fatal state (command %d refused)", cmd_id);
    return (int)code;
}

/* ---- batches --------------------------------------------------------------------------------- */

bool vgpu_channel_busy(const struct vgpu_channel *ch)
{
    return ch->n_inflight > 0 || ch->sub[ch->pending].n > 0 || ch->n_local > 0;
}

int vgpu_channel_take_error(struct vgpu_channel *ch)
{
    int e = ch->error;
    ch->error = 0;
    return e;
}

static int sub_prepare(struct vgpu_channel *ch, struct vgpu_submission *s)
{
    if (!s->req) {
        s->req = malloc(ch->cmd_cap);
        if (!s->req)
            return -ENOMEM;
    }
    if (s->n == 0) {
        s->len = BATCH_PREFIX;
        s->reply_need = VGPU_BATCH_HEADER_SIZE;
        s->observable = false;
        s->long_wait = false;
        s->no_wait = false;
        s->work = 0;
    }
    return 0;
}

static int sub_add_meta(struct vgpu_submission *s, const struct vgpu_entry_meta *m)
{
    if (s->n == s->meta_cap) {
        uint32_t cap = s->meta_cap ? 2 * s->meta_cap : 64;
        struct vgpu_entry_meta *p = realloc(s->meta, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        s->meta = p;
        s->meta_cap = cap;
    }
    s->meta[s->n++] = *m;
    return 0;
}

/* Appends one entry (cmd + payload) to s; the caller checked the room. */
static int sub_append(struct vgpu_submission *s, uint32_t cmd, const uint8_t *payload, uint32_t plen,
                      const struct vgpu_entry_meta *meta)
{
    struct vgpu_entry_meta m;
    if (meta)
        m = *meta;
    else
        memset(&m, 0, sizeof(m));
    m.cmd = cmd;
    m.off = (uint32_t)s->len;
    m.size = VGPU_BATCH_ENTRY_HEADER + plen;
    if (sub_add_meta(s, &m) != 0)
        return -ENOMEM;
    memcpy(s->req + s->len, &cmd, 4);
    memcpy(s->req + s->len + 4, &plen, 4);
    memcpy(s->req + s->len + VGPU_BATCH_ENTRY_HEADER, payload, plen);
    s->len += m.size;
    if (m.kind != VGPU_ENTRY_FINAL)
        s->reply_need += VGPU_BATCH_ENTRY_HEADER + m.reply_max;
    if (cmd == VGPU_CMD_EXT_TENSOR_GET || cmd == VGPU_CMD_EXT_GRAPH_COMPUTE || m.reads_caller)
        s->observable = true;
    if (m.long_wait || is_long_cmd((int32_t)cmd)) {
        s->long_wait = true;
        s->work = vgpu_pred_mix(vgpu_pred_mix(s->work, cmd), m.kind == VGPU_ENTRY_GRAPH ? m.uid : m.bytes);
    }
    return 0;
}

static bool sub_fits(const struct vgpu_channel *ch, const struct vgpu_submission *s, size_t esize, uint32_t reply)
{
    return s->len + esize <= ch->cmd_cap && s->n < VGPU_BATCH_MAX_ENTRIES &&
           s->reply_need + VGPU_BATCH_ENTRY_HEADER + reply <= VGPU_DEFER_REPLY_BUDGET;
}

/* Writes the APIR and batch headers of s for its reply resource. */
static void sub_seal(struct vgpu_channel *ch, struct vgpu_submission *s)
{
    int32_t type = APIR_COMMAND_TYPE_FORWARD + ch->tp->cmd_type_offset;
    int32_t cmd = VGPU_CMD_EXT_BATCH;
    uint32_t flags = (ch->need_resume ? VGPU_BATCH_RESUME : 0) | (s->no_wait ? VGPU_BATCH_NO_WAIT : 0);
    ch->need_resume = false;
    memcpy(s->req, &type, 4);
    memcpy(s->req + 4, &cmd, 4);
    memcpy(s->req + 8, &s->reply.id, 4);
    memcpy(s->req + APIR_HEADER_SIZE, &s->n, 4);
    memcpy(s->req + APIR_HEADER_SIZE + 4, &flags, 4);
}

static int ensure_reply(struct vgpu_channel *ch, struct vgpu_submission *s)
{
    if (s->reply.id)
        return 0;
    return vgpu_channel_resource_create(ch, RING_REPLY_SIZE, &s->reply);
}

static void report(struct vgpu_channel *ch, const struct vgpu_entry_meta *m, int code)
{
    if (m->result) {
        *m->result = code ? code : -EIO;
        return;
    }
    ch->error = code ? code : -EIO;
    if (code < 0 && vgpu_channel_is_lost(ch)) {
        vgpu_channel_log_transfer_failure(ch, m->what[0] ? m->what : "a deferred command");
        return;
    }
    GGML_LOG_ERROR("ggml-virtgpu: deferred %s (command %u) failed: %s\n", m->what[0] ? m->what : "command", m->cmd,
                   code_name(code));
}

static void zero_dst(const struct vgpu_entry_meta *m)
{
    if (m->kind != VGPU_ENTRY_GET_INLINE || !m->dst)
        return;
    for (uint64_t i = 0; i < m->n_rows; i++)
        memset(m->dst + i * m->dst_stride, 0, (size_t)m->row_size);
}

/* An entry that will never run. */
static void entry_lost(struct vgpu_channel *ch, const struct vgpu_entry_meta *m, int why)
{
    zero_dst(m);
    if (m->kind == VGPU_ENTRY_FINAL) {
        ch->final_code = why;
        ch->final_done = true;
        vgpu_dec_init(&ch->final_reply, NULL, 0);
        return;
    }
    report(ch, m, why);
}

/*
 * Completes one run entry. Returns true when it is a graph the host did not hold (which
 * stopped the batch there: the caller resends it).
 */
static bool finish_entry(struct vgpu_channel *ch, const struct vgpu_entry_meta *m, uint32_t code,
                         const uint8_t *rep, uint32_t rlen)
{
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, rep, rlen);
    switch (m->kind) {
    case VGPU_ENTRY_FINAL:
        ch->final_code = (int)code;
        ch->final_done = true;
        ch->final_reply = dec;
        if (code == VGPU_FATAL)
            vgpu_channel_lose(ch, "the host context is in the fatal state (command %u refused)", m->cmd);
        return false;
    case VGPU_ENTRY_GET_INLINE: {
        if (code != VGPU_OK) {
            zero_dst(m);
            report(ch, m, (int)code);
            return false;
        }
        size_t n = 0;
        uint64_t span = (m->n_rows - 1) * m->row_size + m->row_size;
        const uint8_t *src = vgpu_dec_blob(&dec, (size_t)span, &n);
        if (!src || n != span) {
            zero_dst(m);
            report(ch, m, -EPROTO);
            return false;
        }
        for (uint64_t i = 0; i < m->n_rows; i++)
            memcpy(m->dst + i * m->dst_stride, src + i * m->row_size, (size_t)m->row_size);
        return false;
    }
    case VGPU_ENTRY_GRAPH: {
        if (code != VGPU_OK) {
            report(ch, m, (int)code);
            return false;
        }
        uint32_t result = vgpu_dec_u32(&dec);
        int32_t status = vgpu_dec_i32(&dec);
        if (!vgpu_dec_ok(&dec)) {
            report(ch, m, -EPROTO);
            return false;
        }
        if (result == VGPU_GRAPH_NOT_CACHED)
            return true;
        if (result != VGPU_GRAPH_COMPUTED || status != 0) {
            ch->error = -EIO;
            GGML_LOG_ERROR("ggml-virtgpu: %s: the host's compute returned ggml status %d\n",
                           m->what[0] ? m->what : "graph compute", (int)status);
        }
        return false;
    }
    default:
        if (code != VGPU_OK)
            report(ch, m, (int)code);
        else if (m->result)
            *m->result = VGPU_OK;
        return false;
    }
}

static void drop_outstanding(struct vgpu_channel *ch, int why)
{
    for (uint32_t k = 0; k < ch->n_inflight; k++) {
        struct vgpu_submission *s = &ch->sub[ch->fifo[k]];
        for (uint32_t i = 0; i < s->n; i++)
            entry_lost(ch, &s->meta[i], why);
        s->n = 0;
    }
    ch->n_inflight = 0;
    struct vgpu_submission *p = &ch->sub[ch->pending];
    for (uint32_t i = 0; i < p->n; i++)
        entry_lost(ch, &p->meta[i], why);
    p->n = 0;
    for (uint32_t i = 0; i < ch->rerun.n; i++)
        entry_lost(ch, &ch->rerun.meta[i], why);
    ch->rerun.n = 0;
    ch->seq_completed = ch->seq_submitted;
}

/* Parsed batch reply. */
struct batch_result {
    int      code;   /* the batch's own handler code, or < 0 */
    uint32_t n_run;
    uint32_t status;
    bool     resend; /* the last run entry is a graph the host did not hold */
};

/* Completes the run entries of s from its reply (word already read). */
static void sub_complete(struct vgpu_channel *ch, struct vgpu_submission *s, uint32_t word, struct batch_result *br)
{
    memset(br, 0, sizeof(*br));
    br->code = forward_code(ch, VGPU_CMD_EXT_BATCH, word - 1);
    if (br->code == (int)VGPU_SKIPPED)
        return; /* nothing ran: the caller resends it all */
    if (br->code != VGPU_OK) {
        if (br->code >= 0 && br->code != (int)VGPU_FATAL)
            GGML_LOG_ERROR("ggml-virtgpu: the host refused a batch of %u commands: %s\n", s->n, code_name(br->code));
        for (uint32_t i = 0; i < s->n; i++)
            entry_lost(ch, &s->meta[i], br->code > 0 ? br->code : -EIO);
        br->n_run = s->n;
        return;
    }
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, (uint8_t *)s->reply.ptr + APIR_REPLY_PAYLOAD_OFFSET, s->reply.size - APIR_REPLY_PAYLOAD_OFFSET);
    uint32_t n_run = vgpu_dec_u32(&dec);
    uint32_t status = vgpu_dec_u32(&dec);
    if (!vgpu_dec_ok(&dec) || n_run > s->n || (status == VGPU_BATCH_ALL_RUN && n_run != s->n) ||
        (status != VGPU_BATCH_ALL_RUN && status != VGPU_BATCH_STOPPED)) {
        GGML_LOG_ERROR("ggml-virtgpu: malformed batch reply (%u of %u run, status %u)\n", n_run, s->n, status);
        vgpu_channel_lose(ch, "malformed batch reply");
        br->code = -EPROTO;
        br->n_run = s->n;
        for (uint32_t i = 0; i < s->n; i++)
            entry_lost(ch, &s->meta[i], -EPROTO);
        return;
    }
    for (uint32_t i = 0; i < n_run; i++) {
        uint32_t code = vgpu_dec_u32(&dec);
        uint32_t rlen = vgpu_dec_u32(&dec);
        const uint8_t *rep = rlen <= vgpu_dec_left(&dec) ? dec.cur : NULL;
        if (!vgpu_dec_ok(&dec) || !rep || rlen % 4) {
            vgpu_channel_lose(ch, "malformed batch reply (entry %u)", i);
            for (uint32_t j = i; j < s->n; j++)
                entry_lost(ch, &s->meta[j], -EPROTO);
            br->code = -EPROTO;
            br->n_run = s->n;
            return;
        }
        dec.cur += rlen;
        bool nc = finish_entry(ch, &s->meta[i], code, rep, rlen);
        if (nc && i + 1 == n_run && status == VGPU_BATCH_STOPPED)
            br->resend = true;
        else if (nc) /* not cached, yet the batch did not stop there: its successors ran without it */
            report(ch, &s->meta[i], -ESTALE);
    }
    br->n_run = n_run;
    br->status = status;
}

/* ---- resending after a stopped batch ---------------------------------------------------------- */

/* Entries to send again, in order: bytes (header included) and metas, offsets into bytes. */
struct requeue {
    uint8_t                *bytes;
    size_t                  len;
    size_t                  cap;
    struct vgpu_entry_meta *meta;
    uint32_t                n;
    uint32_t                cap_meta;
};

static int requeue_add(struct requeue *q, const struct vgpu_submission *s, uint32_t from)
{
    for (uint32_t i = from; i < s->n; i++) {
        const struct vgpu_entry_meta *m = &s->meta[i];
        if (q->len + m->size > q->cap) {
            size_t cap = q->cap ? 2 * q->cap : 64 * 1024;
            while (cap < q->len + m->size)
                cap *= 2;
            uint8_t *b = realloc(q->bytes, cap);
            if (!b)
                return -ENOMEM;
            q->bytes = b;
            q->cap = cap;
        }
        if (q->n == q->cap_meta) {
            uint32_t cap = q->cap_meta ? 2 * q->cap_meta : 64;
            struct vgpu_entry_meta *mm = realloc(q->meta, cap * sizeof(*mm));
            if (!mm)
                return -ENOMEM;
            q->meta = mm;
            q->cap_meta = cap;
        }
        memcpy(q->bytes + q->len, s->req + m->off, m->size);
        q->meta[q->n] = *m;
        q->meta[q->n].off = (uint32_t)q->len;
        q->n++;
        q->len += m->size;
    }
    return 0;
}

/*
 * Sends q again with VGPU_BATCH_RESUME, as many entries per batch as fit, first the graph
 * of `resend` (a recompute the host could not do: its full image, same uid) when given. A
 * batch that stops again sends its unrun entries again the same way. Lock held, nothing in
 * flight. Every entry of q is completed (run, or reported) when this returns.
 */
static int rerun_queue(struct vgpu_channel *ch, struct requeue *q, const struct vgpu_entry_meta *resend)
{
    struct vgpu_submission *r = &ch->rerun;
    struct vgpu_entry_meta gm;
    bool have_resend = false;
    if (resend) {
        gm = *resend;
        have_resend = true;
    }
    uint32_t pos = 0;
    int err = 0;
    while ((have_resend || pos < q->n) && !vgpu_channel_is_lost(ch)) {
        r->n = 0;
        int e = sub_prepare(ch, r);
        if (e == 0)
            e = ensure_reply(ch, r);
        if (e != 0) {
            err = e;
            break;
        }
        bool graph_first = false;
        if (have_resend) {
            have_resend = false;
            int he = -ESTALE;
            struct vgpu_enc enc;
            if (!ch->resend_buf)
                ch->resend_buf = malloc(ch->cmd_cap);
            if (ch->resend_buf && gm.resend) {
                vgpu_enc_init(&enc, ch->resend_buf, ch->cmd_cap - BATCH_PREFIX - VGPU_BATCH_ENTRY_HEADER);
                ch->in_rerun = true;
                he = gm.resend(ch, gm.resend_user, gm.uid, &enc);
                ch->in_rerun = false;
                if (he == 0 && !vgpu_enc_ok(&enc))
                    he = -EMSGSIZE;
            }
            if (he != 0) {
                report(ch, &gm, he);
            } else {
                struct vgpu_entry_meta m = gm;
                m.resend = NULL; /* a full image is never "not cached" */
                if (sub_append(r, VGPU_CMD_EXT_GRAPH_COMPUTE, ch->resend_buf, (uint32_t)vgpu_enc_used(&enc), &m) != 0)
                    report(ch, &gm, -ENOMEM);
                else
                    graph_first = true;
            }
        }
        uint32_t first_pos = pos;
        while (pos < q->n && r->len + q->meta[pos].size <= ch->cmd_cap && r->n < VGPU_BATCH_MAX_ENTRIES) {
            const struct vgpu_entry_meta *m = &q->meta[pos];
            if (sub_append(r, m->cmd, q->bytes + m->off + VGPU_BATCH_ENTRY_HEADER, m->size - VGPU_BATCH_ENTRY_HEADER,
                           m) != 0)
                break;
            pos++;
        }
        if (r->n == 0) {
            if (pos < q->n) { /* cannot happen (each entry came from a batch); never loop on it */
                entry_lost(ch, &q->meta[pos], -EMSGSIZE);
                pos++;
            }
            continue;
        }
        ch->need_resume = true;
        sub_seal(ch, r);
        uint32_t word = 0;
        r->seq = ++ch->seq_submitted;
        if (send_wait(ch, r->req, r->len, &r->reply, r->long_wait ? ch->spin_long_ns : ch->spin_short_ns, &word)) {
            err = -EPIPE;
            for (uint32_t i = 0; i < r->n; i++)
                entry_lost(ch, &r->meta[i], err);
            r->n = 0;
            break;
        }
        ch->seq_completed = r->seq;
        struct batch_result br;
        sub_complete(ch, r, word, &br);
        if (br.code == (int)VGPU_SKIPPED) {
            /* The host ignored our resume: it does not follow the protocol. */
            vgpu_channel_lose(ch, "the host skipped a resumed batch");
            err = -EPROTO;
            if (graph_first)
                entry_lost(ch, &r->meta[0], err);
            pos = first_pos; /* the loop below reports the rest */
            r->n = 0;
            break;
        }
        if (br.code == VGPU_OK && br.status == VGPU_BATCH_STOPPED) {
            /* Stopped again: its unrun entries are q's last (r->n - n_run) taken ones. */
            ch->need_resume = true;
            if (br.resend) {
                gm = r->meta[br.n_run - 1];
                have_resend = true;
            }
            pos -= r->n - br.n_run;
        }
        r->n = 0;
    }
    for (; pos < q->n; pos++)
        entry_lost(ch, &q->meta[pos], err ? err : -EPIPE);
    r->n = 0;
    return err < 0 ? err : 0;
}

/* ---- submitting and completing ------------------------------------------------------------------ */

static int complete_oldest(struct vgpu_channel *ch);

/* Submits s (sealed here) without waiting; returns its sequence number, or 0 (lost). */
static uint64_t submit(struct vgpu_channel *ch, uint32_t idx)
{
    while (ch->n_inflight >= VGPU_RING) {
        if (complete_oldest(ch) < 0 && vgpu_channel_is_lost(ch))
            return 0;
    }
    struct vgpu_submission *s = &ch->sub[idx];
    if (ensure_reply(ch, s) != 0) {
        for (uint32_t i = 0; i < s->n; i++)
            entry_lost(ch, &s->meta[i], -ENOMEM);
        s->n = 0;
        return 0;
    }
    sub_seal(ch, s);
    __atomic_store_n((uint32_t *)s->reply.ptr, 0, __ATOMIC_SEQ_CST);
    int r = ch->tp->ops->submit(ch->tp, s->req, s->len);
    if (r != 0) {
        vgpu_channel_lose(ch, "%s", ch->tp->error);
        for (uint32_t i = 0; i < s->n; i++)
            entry_lost(ch, &s->meta[i], r);
        s->n = 0;
        drop_outstanding(ch, r);
        return 0;
    }
    s->seq = ++ch->seq_submitted;
    ch->fifo[ch->n_inflight++] = idx;
    if (s->work)
        vgpu_pred_sent(&ch->pred, s->work, vgpu_now_ns());
    /* The host waits for everything queued before it answers a batch without the flag. */
    ch->unwaited = s->no_wait;
    return s->seq;
}

/* Waits for the oldest submission and completes it (and, after a stop, everything resent). */
static int complete_oldest(struct vgpu_channel *ch)
{
    if (ch->n_inflight == 0)
        return 0;
    uint32_t idx = ch->fifo[0];
    struct vgpu_submission *s = &ch->sub[idx];
    uint32_t word = 0;
    struct vgpu_wait_plan plan = { .spin_ns = s->long_wait ? ch->spin_long_ns : ch->spin_short_ns };
    bool drains = ch->n_inflight == 1;
    if (drains && ch->predict)
        vgpu_pred_plan(&ch->pred, &plan);
    uint64_t t0 = plan.watch_until ? vgpu_gprof_now(&ch->prof) : 0;
    int r = ch->tp->ops->wait_reply(ch->tp, &s->reply, &word, &plan);
    if (plan.watch_until)
        vgpu_gprof_phase(&ch->prof, VGPU_GPROF_PLANNED_WAIT, t0);
    if (r != 0) {
        vgpu_channel_lose(ch, "%s", ch->tp->error);
        drop_outstanding(ch, r);
        return r;
    }
    memmove(ch->fifo, ch->fifo + 1, (ch->n_inflight - 1) * sizeof(ch->fifo[0]));
    ch->n_inflight--;
    ch->seq_completed = s->seq;

    struct batch_result br;
    sub_complete(ch, s, word, &br);
    bool stopped = br.code == VGPU_OK && br.status == VGPU_BATCH_STOPPED;
    bool skipped = br.code == (int)VGPU_SKIPPED; /* only after a stop we have not seen: resend */
    if (!stopped && !skipped) {
        if (drains)
            vgpu_pred_drained(&ch->pred, vgpu_now_ns());
        s->n = 0;
        if (vgpu_channel_is_lost(ch)) {
            drop_outstanding(ch, -EPIPE);
            return -EPIPE;
        }
        return 0;
    }

    /* The host stopped: it skips everything until a resume. Resend in order what it did not run. */
    vgpu_pred_abandon(&ch->pred);
    ch->need_resume = true;
    struct requeue q;
    memset(&q, 0, sizeof(q));
    struct vgpu_entry_meta resend;
    bool have_resend = stopped && br.resend;
    if (have_resend)
        resend = s->meta[br.n_run - 1];
    int err = requeue_add(&q, s, stopped ? br.n_run : 0);
    s->n = 0;
    while (ch->n_inflight > 0) {
        uint32_t li = ch->fifo[0];
        struct vgpu_submission *l = &ch->sub[li];
        uint32_t w = 0;
        struct vgpu_wait_plan quick = { .spin_ns = ch->spin_short_ns };
        r = ch->tp->ops->wait_reply(ch->tp, &l->reply, &w, &quick);
        if (r != 0) {
            vgpu_channel_lose(ch, "%s", ch->tp->error);
            err = r;
            break;
        }
        memmove(ch->fifo, ch->fifo + 1, (ch->n_inflight - 1) * sizeof(ch->fifo[0]));
        ch->n_inflight--;
        ch->seq_completed = l->seq;
        if (forward_code(ch, VGPU_CMD_EXT_BATCH, w - 1) == (int)VGPU_SKIPPED) {
            if (err == 0)
                err = requeue_add(&q, l, 0);
            else
                for (uint32_t i = 0; i < l->n; i++)
                    entry_lost(ch, &l->meta[i], err);
        } else {
            struct batch_result lb;
            sub_complete(ch, l, w, &lb);
        }
        l->n = 0;
    }
    if (err == 0)
        err = rerun_queue(ch, &q, have_resend ? &resend : NULL);
    else
        for (uint32_t i = 0; i < q.n; i++)
            entry_lost(ch, &q.meta[i], err);
    if (vgpu_channel_is_lost(ch))
        drop_outstanding(ch, -EPIPE);
    free(q.bytes);
    free(q.meta);
    return err;
}

/* A fresh pending batch (one that is not in flight). */
static void next_pending(struct vgpu_channel *ch)
{
    for (uint32_t i = 0; i <= VGPU_RING; i++) {
        bool busy = i == ch->pending;
        for (uint32_t k = 0; k < ch->n_inflight && !busy; k++)
            busy = ch->fifo[k] == i;
        if (!busy) {
            ch->pending = i;
            ch->sub[i].n = 0;
            return;
        }
    }
}

uint64_t vgpu_channel_kick(struct vgpu_channel *ch)
{
    struct vgpu_submission *p = &ch->sub[ch->pending];
    if (!ch->batching || p->n == 0 || vgpu_channel_is_lost(ch))
        return 0;
    uint32_t idx = ch->pending;
    uint64_t seq = submit(ch, idx);
    if (seq)
        next_pending(ch);
    return seq;
}

uint64_t vgpu_channel_kick_no_wait(struct vgpu_channel *ch)
{
    ch->sub[ch->pending].no_wait = ch->no_wait_ok;
    return vgpu_channel_kick(ch);
}

int vgpu_channel_wait_seq(struct vgpu_channel *ch, uint64_t seq)
{
    while (ch->seq_completed < seq && ch->n_inflight > 0) {
        int r = complete_oldest(ch);
        if (r < 0 && vgpu_channel_is_lost(ch))
            return r;
    }
    return vgpu_channel_is_lost(ch) ? -EPIPE : 0;
}

static void run_local_copies(struct vgpu_channel *ch)
{
    for (uint32_t k = 0; k < ch->n_local; k++) {
        const struct vgpu_local_copy *c = &ch->local[k];
        for (uint64_t i = 0; i < c->n_rows; i++)
            memcpy(c->dst + i * c->dst_stride, c->src + i * c->src_stride, (size_t)c->size);
    }
    ch->n_local = 0;
}

int vgpu_channel_sync(struct vgpu_channel *ch, bool only_observable)
{
    if (!ch->batching) {
        run_local_copies(ch);
        return 0;
    }
    if (only_observable) {
        bool obs = ch->unwaited || (ch->sub[ch->pending].observable && ch->sub[ch->pending].n > 0);
        for (uint32_t k = 0; k < ch->n_inflight && !obs; k++)
            obs = ch->sub[ch->fifo[k]].observable;
        if (!obs && ch->n_local == 0)
            return 0;
    }
    int r = 0;
    if (ch->unwaited && ch->sub[ch->pending].n == 0) {
        /* The host may still run work of a NO_WAIT batch: one more batch makes it wait. */
        struct vgpu_submission *p = &ch->sub[ch->pending];
        static const uint8_t none[4];
        if (sub_prepare(ch, p) != 0 || sub_append(p, VGPU_CMD_EXT_NOP, none, 0, NULL) != 0)
            r = -ENOMEM;
    }
    if (ch->sub[ch->pending].n > 0 && !vgpu_channel_kick(ch))
        r = -EPIPE;
    while (ch->n_inflight > 0) {
        int c = complete_oldest(ch);
        if (c < 0 && vgpu_channel_is_lost(ch)) {
            r = c;
            break;
        }
    }
    if (vgpu_channel_is_lost(ch)) {
        drop_outstanding(ch, -EPIPE);
        run_local_copies(ch); /* shared memory is still ours: copy what the host left there */
        return r ? r : -EPIPE;
    }
    run_local_copies(ch);
    return r;
}

int vgpu_channel_local_copy(struct vgpu_channel *ch, const struct vgpu_local_copy *c)
{
    if (ch->n_local == ch->local_cap) {
        uint32_t cap = ch->local_cap ? 2 * ch->local_cap : 16;
        struct vgpu_local_copy *p = realloc(ch->local, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        ch->local = p;
        ch->local_cap = cap;
    }
    ch->local[ch->n_local++] = *c;
    return 0;
}

int vgpu_channel_defer(struct vgpu_channel *ch, struct vgpu_enc *enc, const struct vgpu_entry_meta *meta)
{
    if (!vgpu_enc_ok(enc))
        return -EMSGSIZE;
    if (vgpu_channel_is_lost(ch))
        return -EPIPE;
    int32_t cmd;
    memcpy(&cmd, enc->start + 4, 4);
    size_t plen = vgpu_enc_used(enc) - APIR_HEADER_SIZE;
    uint32_t reply = meta ? meta->reply_max : 0;
    size_t esize = VGPU_BATCH_ENTRY_HEADER + plen;
    if (!ch->batching || BATCH_PREFIX + esize > ch->cmd_cap ||
        VGPU_BATCH_HEADER_SIZE + VGPU_BATCH_ENTRY_HEADER + reply > VGPU_DEFER_REPLY_BUDGET)
        return -EMSGSIZE;
    struct vgpu_submission *p = &ch->sub[ch->pending];
    if (sub_prepare(ch, p) != 0)
        return -ENOMEM;
    if (!sub_fits(ch, p, esize, reply)) {
        if (!vgpu_channel_kick(ch))
            return -EPIPE;
        p = &ch->sub[ch->pending];
        if (sub_prepare(ch, p) != 0)
            return -ENOMEM;
    }
    int r = sub_append(p, (uint32_t)cmd, enc->start + APIR_HEADER_SIZE, (uint32_t)plen, meta);
    if (r == 0)
        vgpu_gprof_defer(&ch->prof, (uint32_t)cmd);
    return r;
}

static int forward(struct vgpu_channel *ch, struct vgpu_enc *enc, struct vgpu_dec *reply);

int vgpu_channel_forward(struct vgpu_channel *ch, struct vgpu_enc *enc, struct vgpu_dec *reply)
{
    uint64_t t0 = vgpu_gprof_now(&ch->prof);
    int r = forward(ch, enc, reply);
    int32_t cmd_id;
    memcpy(&cmd_id, enc->start + 4, 4);
    vgpu_gprof_forward(&ch->prof, (uint32_t)cmd_id, t0);
    return r;
}

/* vgpu_channel_forward, untimed. */
static int forward(struct vgpu_channel *ch, struct vgpu_enc *enc, struct vgpu_dec *reply)
{
    int32_t cmd_id;
    memcpy(&cmd_id, enc->start + 4, 4);
    if (!ch->batching || cmd_id == VGPU_CMD_EXT_HELLO) {
        uint32_t ret;
        int r = vgpu_channel_call(ch, enc, &ret, reply);
        if (r < 0)
            return r;
        return forward_code(ch, cmd_id, ret);
    }
    vgpu_dec_init(reply, NULL, 0);
    if (!vgpu_enc_ok(enc)) {
        GGML_LOG_ERROR("ggml-virtgpu: internal error: a command exceeds the %zu-byte limit\n", ch->cmd_cap);
        return -EMSGSIZE;
    }
    size_t plen = vgpu_enc_used(enc) - APIR_HEADER_SIZE;
    size_t esize = VGPU_BATCH_ENTRY_HEADER + plen;
    if (BATCH_PREFIX + esize > ch->cmd_cap) {
        GGML_LOG_ERROR("ggml-virtgpu: internal error: command %d of %zu bytes does not fit a batch\n", cmd_id, plen);
        return -EMSGSIZE;
    }
    struct vgpu_submission *p = &ch->sub[ch->pending];
    if (sub_prepare(ch, p) != 0)
        return -ENOMEM;
    if (p->len + esize > ch->cmd_cap || p->n >= VGPU_BATCH_MAX_ENTRIES) {
        if (!vgpu_channel_kick(ch))
            return -EPIPE;
        p = &ch->sub[ch->pending];
        if (sub_prepare(ch, p) != 0)
            return -ENOMEM;
    }
    struct vgpu_entry_meta m;
    memset(&m, 0, sizeof(m));
    m.kind = VGPU_ENTRY_FINAL;
    snprintf(m.what, sizeof(m.what), "command %d", cmd_id);
    if (sub_append(p, (uint32_t)cmd_id, enc->start + APIR_HEADER_SIZE, (uint32_t)plen, &m) != 0)
        return -ENOMEM;
    ch->final_done = false;
    ch->final_code = -EPIPE;
    uint64_t seq = vgpu_channel_kick(ch);
    if (!seq)
        return ch->final_done ? ch->final_code : -EPIPE;
    int r = vgpu_channel_wait_seq(ch, seq);
    if (!ch->final_done)
        return r < 0 ? r : -EIO;
    *reply = ch->final_reply;
    return ch->final_code;
}

/* ---- resources ---------------------------------------------------------------------------------- */

int vgpu_channel_resource_create(struct vgpu_channel *ch, size_t size, struct vgpu_resource *res)
{
    int r = ch->tp->ops->resource_create(ch->tp, size, res);
    if (r == -EPIPE || r == -ETIMEDOUT || r == -EPROTO)
        vgpu_channel_lose(ch, "%s", ch->tp->error);
    else if (r != 0)
        GGML_LOG_ERROR("ggml-virtgpu: %s\n", ch->tp->error);
    return r;
}

void vgpu_channel_resource_destroy(struct vgpu_channel *ch, struct vgpu_resource *res)
{
    /* What is pending may name it: it goes first (the host runs messages in order). */
    if (res->id && ch->batching && ch->sub[ch->pending].n > 0)
        (void)vgpu_channel_kick(ch);
    ch->tp->ops->resource_destroy(ch->tp, res);
}

/* Registers the staging resource as a host buffer, so that a GPU host pins it (lock held). */
static void register_staging(struct vgpu_channel *ch)
{
    struct vgpu_enc enc;
    vgpu_channel_begin(ch, &enc, APIR_COMMAND_TYPE_FORWARD, VGPU_CMD_EXT_HOST_BUFFER_REGISTER);
    vgpu_enc_u32(&enc, ch->staging.id);
    vgpu_enc_u32(&enc, 0);
    vgpu_enc_u64(&enc, 0);
    vgpu_enc_u64(&enc, ch->staging.size);
    struct vgpu_dec dec;
    int code = vgpu_channel_forward(ch, &enc, &dec);
    if (code != VGPU_OK && code >= 0)
        GGML_LOG_WARN("ggml-virtgpu: registering the staging area failed: %s\n", code_name(code));
}

static bool staging_busy(const struct vgpu_channel *ch)
{
    for (uint32_t i = 0; i < VGPU_RING; i++) {
        if (ch->staging_seq[i] > ch->seq_completed)
            return true;
    }
    return false;
}

struct vgpu_resource *vgpu_channel_staging(struct vgpu_channel *ch)
{
    if (!ch->staging.id && ch->in_rerun)
        return NULL; /* resending: nothing may be created (or sent) now */
    if (!ch->staging.id) {
        if (vgpu_channel_resource_create(ch, VGPU_STAGING_SIZE, &ch->staging) != 0)
            return NULL;
        if (ch->batching)
            register_staging(ch);
    }
    /* The whole area: no pipelined chunk may still be in use. */
    if (ch->batching && staging_busy(ch)) {
        uint64_t last = 0;
        for (uint32_t i = 0; i < VGPU_RING; i++)
            last = ch->staging_seq[i] > last ? ch->staging_seq[i] : last;
        if (vgpu_channel_wait_seq(ch, last) < 0)
            return NULL;
    }
    return &ch->staging;
}

uint8_t *vgpu_channel_staging_chunk(struct vgpu_channel *ch, uint32_t i, uint64_t *res_offset, uint32_t *res_id)
{
    if (!ch->staging.id) {
        if (vgpu_channel_resource_create(ch, VGPU_STAGING_SIZE, &ch->staging) != 0)
            return NULL;
        if (ch->batching)
            register_staging(ch);
    }
    i %= VGPU_RING;
    if (ch->staging_seq[i] > ch->seq_completed && vgpu_channel_wait_seq(ch, ch->staging_seq[i]) < 0)
        return NULL;
    *res_offset = (uint64_t)i * VGPU_STAGING_CHUNK;
    *res_id = ch->staging.id;
    return (uint8_t *)ch->staging.ptr + *res_offset;
}

int vgpu_channel_reserve_resend(struct vgpu_channel *ch, size_t size)
{
    if (ch->resend_area.id && ch->resend_area.size >= size)
        return 0;
    /* Only a resend names it, and resends complete before anything new is sent. */
    if (ch->n_inflight > 0 && vgpu_channel_wait_seq(ch, ch->seq_submitted) < 0)
        return -EPIPE;
    vgpu_channel_resource_destroy(ch, &ch->resend_area);
    size_t want = size + size / 4;
    return vgpu_channel_resource_create(ch, want < size ? size : want, &ch->resend_area);
}

void vgpu_channel_staging_used(struct vgpu_channel *ch, uint32_t i, uint64_t seq)
{
    ch->staging_seq[i % VGPU_RING] = seq;
}

struct vgpu_resource *vgpu_channel_area(struct vgpu_channel *ch, size_t size)
{
    /*
     * A resent graph image has its own resource: the entries resent after it may still name
     * staging or the big area, whose bytes must stay theirs (their first sending counted as
     * completed when the host skipped them, so nothing protects those bytes but this).
     */
    if (ch->in_rerun)
        return ch->resend_area.id && ch->resend_area.size >= size ? &ch->resend_area : NULL;
    if (size <= VGPU_STAGING_SIZE)
        return vgpu_channel_staging(ch);
    if (ch->big.id && ch->big.size >= size) {
        /* In-flight commands may still read it (a graph image sent before). */
        if (ch->batching && ch->n_inflight > 0 && vgpu_channel_wait_seq(ch, ch->seq_submitted) < 0)
            return NULL;
        return &ch->big;
    }
    vgpu_channel_resource_destroy(ch, &ch->big);
    /* Grow geometrically so a slowly growing graph does not recreate it every time. */
    size_t want = size + size / 4;
    if (want < size)
        want = size;
    if (vgpu_channel_resource_create(ch, want, &ch->big) != 0)
        return NULL;
    return &ch->big;
}
