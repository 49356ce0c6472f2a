/*
 * A minimal client of the unix-socket transport (docs/PROTOCOL.md §1) for tests, able to
 * send well-formed and malformed messages, plus helpers that start and stop the real
 * ggml-virtgpu-server. Functions return 0 or a negative errno unless stated otherwise; none
 * of them asserts, so they can be used from any test framework. Single-threaded use.
 */
#ifndef VGPU_TEST_UNIX_CLIENT_H
#define VGPU_TEST_UNIX_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- raw messages -------------------------------------------------------------------------- */

/* Connects to the server socket at path; returns the fd or a negative errno. */
int uc_connect(const char *path);

/* Sends msg[n] as one message, with the nfds fds in fds (may be 0) as SCM_RIGHTS. */
int uc_send(int fd, const void *msg, size_t n, const int *fds, int nfds);

/* Sends a message {type, size = 8 + n} with body[n] and optionally one fd (-1: none). */
int uc_send_msg(int fd, uint32_t type, const void *body, size_t n, int pass_fd);

/*
 * Receives one message into buf[cap] within timeout_ms. Returns its length, 0 at the end of
 * the stream, -ETIMEDOUT, or another negative errno.
 */
ssize_t uc_recv(int fd, void *buf, size_t cap, int timeout_ms);

/*
 * Expects FATAL followed by the end of the stream: 0 with the reason in *reason and the text
 * in text[cap] (either may be NULL); -EBADMSG if another message came, -ETIMEDOUT.
 */
int uc_expect_fatal(int fd, int32_t *reason, char *text, size_t cap, int timeout_ms);

/* Expects the end of the stream (any messages before it are skipped). 0 or -ETIMEDOUT. */
int uc_expect_eof(int fd, int timeout_ms);

/* ---- protocol steps ------------------------------------------------------------------------ */

struct uc_hello {
    uint32_t version;
    int32_t  status;
    uint32_t ctx_id;
    uint32_t max_command_size;
};

/* HELLO (version 1) and its reply in *out. -EBADMSG if the answer is not a HELLO_REPLY. */
int uc_hello(int fd, struct uc_hello *out);

/* A client-side resource: a memfd and its mapping. */
struct uc_resource {
    uint32_t id;
    int      memfd;
    uint8_t *map;
    size_t   size;
};

/*
 * Creates a sealable memfd of `size` bytes, maps it, and sends RESOURCE_CREATE for it. The
 * server's status goes to *status; the function itself fails only if the exchange does.
 * On failure (or a non-zero status) nothing is left allocated.
 */
int uc_resource_create(int fd, struct uc_resource *r, uint32_t id, size_t size, int32_t *status);

/*
 * RESOURCE_CREATE with an arbitrary fd (-1: none), declared size and flags; the server's
 * status in *status.
 */
int uc_resource_create_raw(int fd, uint32_t id, uint64_t size, uint32_t flags, int pass_fd,
                           int32_t *status);

/* RESOURCE_DESTROY (no answer). */
int uc_resource_destroy(int fd, uint32_t id);

/* Unmaps and closes a client-side resource (the server is not told). */
void uc_resource_free(struct uc_resource *r);

/*
 * SUBMIT of one APIR command {cmd_type, cmd_flags, reply_res_id} + payload[n]. Does not
 * touch the reply word.
 */
int uc_submit(int fd, int32_t cmd_type, int32_t cmd_flags, uint32_t reply_res_id,
              const void *payload, size_t n);

/*
 * Waits for the reply word of `reply` to become non-zero (futex, in slices, watching the
 * socket for a hang-up). Returns 0 with *ret = word - 1, -EPIPE if the server hung up or
 * sent FATAL first, -ETIMEDOUT.
 */
int uc_wait_reply(int fd, const struct uc_resource *reply, int timeout_ms, uint32_t *ret);

/* Zeroes the reply word, submits, waits: uc_submit + uc_wait_reply. */
int uc_call(int fd, const struct uc_resource *reply, int32_t cmd_type, int32_t cmd_flags,
            const void *payload, size_t n, int timeout_ms, uint32_t *ret);

/* A connected client: HELLO done, reply resource UC_REPLY_ID mapped. */
#define UC_REPLY_ID 1u
struct uc_session {
    int                fd;
    struct uc_hello    hello;
    struct uc_resource reply;
};

/*
 * Connects to path, says HELLO, creates the reply resource (reply_size bytes), then
 * HANDSHAKE and, if `load`, LOADLIBRARY. -EPROTO if a step answers an unexpected status or
 * code. On failure nothing stays open.
 */
int uc_session_open(struct uc_session *s, const char *path, size_t reply_size, bool load);

/* Closes the connection and the reply resource. */
void uc_session_close(struct uc_session *s);

/* ---- the server process ------------------------------------------------------------------- */

struct uc_server {
    pid_t pid;
    char  dir[64];   /* private temporary directory */
    char  sock[128]; /* dir/s.sock */
};

/* Creates the temporary directory and socket path of a server (no process yet). */
int uc_server_prepare(struct uc_server *s);

/*
 * Starts `binary --socket s->sock args...` (args NULL-terminated, may be NULL) with the
 * extra environment entries env ("K=V", NULL-terminated, may be NULL), core dumps off.
 * Does not wait for it to listen.
 */
int uc_server_spawn(struct uc_server *s, const char *binary, const char *const *args,
                    const char *const *env);

/* Waits until the server accepts connections (or exits: -ECHILD). */
int uc_server_wait_ready(struct uc_server *s, int timeout_ms);

/* uc_server_prepare + uc_server_spawn + uc_server_wait_ready. */
int uc_server_start(struct uc_server *s, const char *binary, const char *const *args,
                    const char *const *env);

/* Waits for the server to exit; its wait status in *status. 0 or -ETIMEDOUT. */
int uc_server_wait_exit(struct uc_server *s, int timeout_ms, int *status);

/*
 * Sends SIGTERM, waits for the exit (SIGKILL after timeout_ms), and removes the temporary
 * directory. The wait status goes to *status (may be NULL). Safe to call twice.
 */
int uc_server_stop(struct uc_server *s, int timeout_ms, int *status);

/*
 * Runs binary with args (NULL-terminated; args[0] is not the program name), capturing its
 * stdout into out[cap] (NUL-terminated). Returns the wait status, or a negative errno.
 */
int uc_run_capture(const char *binary, const char *const *args, char *out, size_t cap,
                   int timeout_ms);

/* True if process pid exists and is not a zombie (reads /proc/pid/stat). */
bool uc_process_alive(pid_t pid);

/* Waits until process pid is gone (reaped, not a zombie). 0 or -ETIMEDOUT. */
int uc_wait_process_gone(pid_t pid, int timeout_ms);

/* Number of open fds of process pid (from /proc/pid/fd), or a negative errno. */
int uc_count_fds(pid_t pid);

/* Milliseconds of a monotonic clock. */
int64_t uc_now_ms(void);

#endif /* VGPU_TEST_UNIX_CLIENT_H */
