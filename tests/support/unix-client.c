/*
 * Test client of the unix-socket transport and server process helpers; contracts in
 * unix-client.h.
 */
#include "unix-client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apir.h"
#include "codec.h"
#include "unix.h"

#define UC_MAX_MSG 4096
#define UC_WAIT_SLICE_MS 20
#define UC_MAX_ARGS 64

int64_t uc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms milliseconds. */
static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- raw messages -------------------------------------------------------------------------- */

int uc_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

int uc_send(int fd, const void *msg, size_t n, const int *fds, int nfds)
{
    union {
        struct cmsghdr align;
        char           buf[CMSG_SPACE(sizeof(int) * 8)];
    } ctl;
    struct iovec iov = { .iov_base = (void *)msg, .iov_len = n };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds < 0 || nfds > 8)
        return -EINVAL;
    if (nfds > 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t w;
    do
        w = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return -errno;
    return (size_t)w == n ? 0 : -EIO;
}

int uc_send_msg(int fd, uint32_t type, const void *body, size_t n, int pass_fd)
{
    uint8_t *msg = malloc(VGPU_UNIX_HEADER_SIZE + n);
    if (!msg)
        return -ENOMEM;
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, msg, VGPU_UNIX_HEADER_SIZE + n);
    vgpu_enc_u32(&enc, type);
    vgpu_enc_u32(&enc, (uint32_t)(VGPU_UNIX_HEADER_SIZE + n));
    vgpu_enc_raw(&enc, body, n);
    int rc = uc_send(fd, msg, VGPU_UNIX_HEADER_SIZE + n, &pass_fd, pass_fd >= 0 ? 1 : 0);
    free(msg);
    return rc;
}

ssize_t uc_recv(int fd, void *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r;
    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (r == 0)
        return -ETIMEDOUT;
    ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
    if (n < 0)
        return errno == ECONNRESET ? 0 : -errno;
    return n;
}

int uc_expect_eof(int fd, int timeout_ms)
{
    uint8_t buf[UC_MAX_MSG];
    int64_t end = uc_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - uc_now_ms());
        ssize_t n = uc_recv(fd, buf, sizeof(buf), left > 0 ? left : 0);
        if (n == 0)
            return 0;
        if (n < 0 && n != -EAGAIN)
            return (int)n;
    }
}

int uc_expect_fatal(int fd, int32_t *reason, char *text, size_t cap, int timeout_ms)
{
    uint8_t buf[UC_MAX_MSG];
    ssize_t n = uc_recv(fd, buf, sizeof(buf) - 1, timeout_ms);
    if (n < 0)
        return (int)n;
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf, (size_t)n);
    uint32_t type = vgpu_dec_u32(&dec);
    uint32_t size = vgpu_dec_u32(&dec);
    int32_t why = vgpu_dec_i32(&dec);
    if (n == 0 || !vgpu_dec_ok(&dec) || type != VGPU_UNIX_FATAL || size != (size_t)n ||
        buf[n - 1] != '\0')
        return -EBADMSG;
    if (reason)
        *reason = why;
    if (text && cap)
        snprintf(text, cap, "%s", (const char *)dec.cur);
    return uc_expect_eof(fd, timeout_ms);
}

/* ---- protocol steps ------------------------------------------------------------------------ */

int uc_hello(int fd, struct uc_hello *out)
{
    uint8_t body[VGPU_UNIX_HELLO_BODY];
    uint8_t buf[UC_MAX_MSG];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, body, sizeof(body));
    vgpu_enc_u32(&enc, VGPU_UNIX_VERSION);
    vgpu_enc_u32(&enc, 0);
    int rc = uc_send_msg(fd, VGPU_UNIX_HELLO, body, sizeof(body), -1);
    if (rc)
        return rc;
    ssize_t n = uc_recv(fd, buf, sizeof(buf), 5000);
    if (n < 0)
        return (int)n;
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf, (size_t)n);
    uint32_t type = vgpu_dec_u32(&dec);
    uint32_t size = vgpu_dec_u32(&dec);
    out->version = vgpu_dec_u32(&dec);
    out->status = vgpu_dec_i32(&dec);
    out->ctx_id = vgpu_dec_u32(&dec);
    out->max_command_size = vgpu_dec_u32(&dec);
    if (!vgpu_dec_ok(&dec) || type != VGPU_UNIX_HELLO_REPLY || size != (size_t)n ||
        n != VGPU_UNIX_HEADER_SIZE + VGPU_UNIX_HELLO_REPLY_BODY)
        return -EBADMSG;
    return 0;
}

int uc_resource_create_raw(int fd, uint32_t id, uint64_t size, uint32_t flags, int pass_fd,
                           int32_t *status)
{
    uint8_t body[VGPU_UNIX_RESOURCE_CREATE_BODY];
    uint8_t buf[UC_MAX_MSG];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, body, sizeof(body));
    vgpu_enc_u32(&enc, id);
    vgpu_enc_u32(&enc, flags);
    vgpu_enc_u64(&enc, size);
    int rc = uc_send_msg(fd, VGPU_UNIX_RESOURCE_CREATE, body, sizeof(body), pass_fd);
    if (rc)
        return rc;
    ssize_t n = uc_recv(fd, buf, sizeof(buf), 5000);
    if (n <= 0)
        return n == 0 ? -EPIPE : (int)n;
    struct vgpu_dec dec;
    vgpu_dec_init(&dec, buf, (size_t)n);
    uint32_t type = vgpu_dec_u32(&dec);
    uint32_t msg_size = vgpu_dec_u32(&dec);
    uint32_t got_id = vgpu_dec_u32(&dec);
    *status = vgpu_dec_i32(&dec);
    if (!vgpu_dec_ok(&dec) || type != VGPU_UNIX_RESOURCE_REPLY || msg_size != (size_t)n ||
        got_id != id)
        return -EBADMSG;
    return 0;
}

int uc_resource_create(int fd, struct uc_resource *r, uint32_t id, size_t size, int32_t *status)
{
    memset(r, 0, sizeof(*r));
    r->memfd = memfd_create("uc-resource", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (r->memfd < 0)
        return -errno;
    int rc = 0;
    if (ftruncate(r->memfd, (off_t)size) != 0)
        rc = -errno;
    r->map = rc ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
    if (!rc && r->map == MAP_FAILED)
        rc = -errno;
    r->id = id;
    r->size = size;
    if (!rc)
        rc = uc_resource_create_raw(fd, id, size, 0, r->memfd, status);
    if (rc || *status)
        uc_resource_free(r);
    return rc;
}

int uc_resource_destroy(int fd, uint32_t id)
{
    uint8_t body[VGPU_UNIX_RESOURCE_DESTROY_BODY];
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, body, sizeof(body));
    vgpu_enc_u32(&enc, id);
    vgpu_enc_u32(&enc, 0);
    return uc_send_msg(fd, VGPU_UNIX_RESOURCE_DESTROY, body, sizeof(body), -1);
}

void uc_resource_free(struct uc_resource *r)
{
    if (r->map && r->map != MAP_FAILED)
        munmap(r->map, r->size);
    if (r->memfd > 0)
        close(r->memfd);
    r->map = NULL;
    r->memfd = -1;
}

int uc_submit(int fd, int32_t cmd_type, int32_t cmd_flags, uint32_t reply_res_id,
              const void *payload, size_t n)
{
    uint8_t *cmd = malloc(APIR_HEADER_SIZE + n);
    if (!cmd)
        return -ENOMEM;
    struct vgpu_enc enc;
    vgpu_enc_init(&enc, cmd, APIR_HEADER_SIZE + n);
    vgpu_enc_i32(&enc, cmd_type);
    vgpu_enc_i32(&enc, cmd_flags);
    vgpu_enc_u32(&enc, reply_res_id);
    vgpu_enc_raw(&enc, payload, n);
    int rc = uc_send_msg(fd, VGPU_UNIX_SUBMIT, cmd, APIR_HEADER_SIZE + n, -1);
    free(cmd);
    return rc;
}

int uc_wait_reply(int fd, const struct uc_resource *reply, int timeout_ms, uint32_t *ret)
{
    _Atomic uint32_t *word = (_Atomic uint32_t *)(void *)reply->map;
    int64_t end = uc_now_ms() + timeout_ms;
    for (;;) {
        uint32_t v = atomic_load_explicit(word, memory_order_acquire);
        if (v != 0) {
            *ret = v - 1;
            return 0;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 0) > 0 && atomic_load_explicit(word, memory_order_acquire) == 0)
            return -EPIPE; /* FATAL or hang-up: no reply will come */
        int64_t left = end - uc_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        long slice = (long)(left < UC_WAIT_SLICE_MS ? left : UC_WAIT_SLICE_MS);
        struct timespec ts = { 0, slice * 1000000L };
        syscall(SYS_futex, (uint32_t *)(void *)reply->map, FUTEX_WAIT, 0, &ts, NULL, 0);
    }
}

int uc_call(int fd, const struct uc_resource *reply, int32_t cmd_type, int32_t cmd_flags,
            const void *payload, size_t n, int timeout_ms, uint32_t *ret)
{
    atomic_store_explicit((_Atomic uint32_t *)(void *)reply->map, 0, memory_order_relaxed);
    int rc = uc_submit(fd, cmd_type, cmd_flags, reply->id, payload, n);
    return rc ? rc : uc_wait_reply(fd, reply, timeout_ms, ret);
}

/* HANDSHAKE and optionally LOADLIBRARY on an open session; 0 or a negative errno. */
static int session_start(struct uc_session *s, bool load)
{
    const uint32_t version[2] = { APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR };
    uint32_t ret = 0;
    int rc = uc_call(s->fd, &s->reply, APIR_COMMAND_TYPE_HANDSHAKE, 0, version, sizeof(version),
                     5000, &ret);
    if (rc)
        return rc;
    if (ret != APIR_HANDSHAKE_MAGIC)
        return -EPROTO;
    if (!load)
        return 0;
    rc = uc_call(s->fd, &s->reply, APIR_COMMAND_TYPE_LOADLIBRARY, 0, NULL, 0, 10000, &ret);
    return rc ? rc : ret == APIR_LOAD_LIBRARY_SUCCESS ? 0 : -EPROTO;
}

int uc_session_open(struct uc_session *s, const char *path, size_t reply_size, bool load)
{
    int32_t status = 0;
    memset(s, 0, sizeof(*s));
    s->reply.memfd = -1;
    s->fd = uc_connect(path);
    if (s->fd < 0)
        return s->fd;
    int rc = uc_hello(s->fd, &s->hello);
    if (!rc && s->hello.status)
        rc = -EPROTO;
    if (!rc)
        rc = uc_resource_create(s->fd, &s->reply, UC_REPLY_ID, reply_size, &status);
    if (!rc && status)
        rc = -EPROTO;
    if (!rc)
        rc = session_start(s, load);
    if (rc)
        uc_session_close(s);
    return rc;
}

void uc_session_close(struct uc_session *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    uc_resource_free(&s->reply);
}

/* ---- the server process ------------------------------------------------------------------- */

int uc_server_prepare(struct uc_server *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/vgpu-srv-test-XXXXXX");
    if (!mkdtemp(s->dir))
        return -errno;
    snprintf(s->sock, sizeof(s->sock), "%s/s.sock", s->dir);
    return 0;
}

/*
 * In the child: dies with the test (so that a failed assertion leaves no server behind),
 * core dumps off, extra environment, then exec. Never returns.
 */
__attribute__((noreturn)) static void exec_child(const char *binary, char **argv,
                                                 const char *const *env)
{
    struct rlimit no_core = { 0, 0 };
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    setrlimit(RLIMIT_CORE, &no_core);
    for (size_t i = 0; env && env[i]; i++)
        putenv((char *)env[i]);
    execv(binary, argv);
    _exit(127);
}

int uc_server_spawn(struct uc_server *s, const char *binary, const char *const *args,
                    const char *const *env)
{
    char *argv[UC_MAX_ARGS];
    int n = 0;
    argv[n++] = (char *)binary;
    argv[n++] = "--socket";
    argv[n++] = s->sock;
    for (size_t i = 0; args && args[i] && n < UC_MAX_ARGS - 1; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        exec_child(binary, argv, env);
    s->pid = pid;
    return 0;
}

int uc_server_wait_ready(struct uc_server *s, int timeout_ms)
{
    int64_t end = uc_now_ms() + timeout_ms;
    while (uc_now_ms() < end) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return -ECHILD;
        }
        int fd = uc_connect(s->sock);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        sleep_ms(5);
    }
    return -ETIMEDOUT;
}

int uc_server_start(struct uc_server *s, const char *binary, const char *const *args,
                    const char *const *env)
{
    int rc = uc_server_prepare(s);
    rc = rc ? rc : uc_server_spawn(s, binary, args, env);
    return rc ? rc : uc_server_wait_ready(s, 10000);
}

int uc_server_wait_exit(struct uc_server *s, int timeout_ms, int *status)
{
    int64_t end = uc_now_ms() + timeout_ms;
    int st = 0;
    if (s->pid <= 0)
        return -ECHILD;
    for (;;) {
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            if (status)
                *status = st;
            return 0;
        }
        if (r < 0)
            return -errno;
        if (uc_now_ms() >= end)
            return -ETIMEDOUT;
        sleep_ms(5);
    }
}

/* Removes the files a test may have left in the server's directory, then the directory. */
static void remove_dir(struct uc_server *s)
{
    static const char *const names[] = { "s.sock", "s.sock.lock", "deinit.log" };
    char path[256];
    if (!s->dir[0])
        return;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", s->dir, names[i]);
        unlink(path);
    }
    rmdir(s->dir);
    s->dir[0] = '\0';
}

int uc_server_stop(struct uc_server *s, int timeout_ms, int *status)
{
    int rc = 0;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        rc = uc_server_wait_exit(s, timeout_ms, status);
        if (rc == -ETIMEDOUT) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
    }
    remove_dir(s);
    return rc;
}

/* Reads everything from fd into out[cap] until EOF or the deadline; NUL-terminates. */
static void read_all(int fd, char *out, size_t cap, int64_t end)
{
    size_t used = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int left = (int)(end - uc_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = read(fd, out + used, cap - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        if (used == cap - 1)
            break;
    }
    out[used] = '\0';
}

int uc_run_capture(const char *binary, const char *const *args, char *out, size_t cap,
                   int timeout_ms)
{
    char *argv[UC_MAX_ARGS];
    int pipefd[2];
    int n = 0;
    argv[n++] = (char *)binary;
    for (size_t i = 0; args && args[i] && n < UC_MAX_ARGS - 1; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        exec_child(binary, argv, NULL);
    }
    close(pipefd[1]);
    int64_t end = uc_now_ms() + timeout_ms;
    read_all(pipefd[0], out, cap, end);
    close(pipefd[0]);
    struct uc_server s = { .pid = pid };
    int status = 0;
    if (uc_server_wait_exit(&s, (int)(end - uc_now_ms() > 0 ? end - uc_now_ms() : 0), &status)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -ETIMEDOUT;
    }
    return status;
}

bool uc_process_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return paren && paren[1] == ' ' && paren[2] != 'Z';
}

int uc_count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    DIR *dir = opendir(path);
    if (!dir)
        return -errno;
    int n = 0;
    for (struct dirent *e = readdir(dir); e; e = readdir(dir))
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

int uc_wait_process_gone(pid_t pid, int timeout_ms)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld", (long)pid);
    int64_t end = uc_now_ms() + timeout_ms;
    while (access(path, F_OK) == 0) {
        if (uc_now_ms() >= end)
            return -ETIMEDOUT;
        sleep_ms(5);
    }
    return 0;
}
