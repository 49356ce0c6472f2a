/*
 * A fake ggml-virtgpu-server for the guest unit tests: a thread that listens on a unix
 * socket, speaks the transport of docs/PROTOCOL.md §1 (HELLO, memfd resources, SUBMIT with
 * the reply word and a futex wake) and hands every APIR command to a test-supplied handler.
 * It is written from the protocol document, not from the guest code under test.
 */
#ifndef TEST_GUEST_FAKEHOST_H
#define TEST_GUEST_FAKEHOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

#define FAKE_MAX_RES 64

enum fake_action {
    FAKE_REPLY,       /* write the reply and the word 1 + ret */
    FAKE_CLOSE,       /* close the connection without replying */
    FAKE_HANG,        /* never reply, keep the connection */
    FAKE_FATAL_CLOSE, /* send FATAL with fatal_text, then close */
};

struct fake_res {
    uint32_t id;
    uint8_t *ptr;
    size_t   size;
};

struct fake_host;

/*
 * Handles one APIR command. req covers the payload after the 12-byte header; rep writes
 * the reply payload (offset 4 of the reply resource). Sets *ret (reply word = 1 + ret).
 */
typedef enum fake_action (*fake_handler)(struct fake_host *h, int32_t cmd_type, int32_t cmd_flags,
                                         struct vgpu_dec *req, struct vgpu_enc *rep, uint32_t *ret);

struct fake_host {
    char            path[108];
    int             listen_fd;
    int             conn_fd;
    pthread_t       thread;
    volatile int    stop;
    fake_handler    handler;
    void           *user;
    uint32_t        max_command_size;  /* sent in HELLO_REPLY */
    int32_t         hello_status;      /* sent in HELLO_REPLY */
    int             reply_delay_ms;    /* sleep before answering each SUBMIT */
    const char     *fatal_text;
    struct fake_res res[FAKE_MAX_RES];
    /* counters (read after the thread is done, or atomically) */
    int             n_submits;
    int             n_resources;
    int             n_destroyed;
    int             n_connections;
};

/* Starts listening at a fresh temporary path; returns 0. */
int  fake_host_start(struct fake_host *h, fake_handler handler, void *user);
void fake_host_stop(struct fake_host *h);
/* The resource with id, or NULL. */
struct fake_res *fake_host_res(struct fake_host *h, uint32_t id);

/* Monotonic milliseconds. */
double fake_now_ms(void);

#endif /* TEST_GUEST_FAKEHOST_H */
