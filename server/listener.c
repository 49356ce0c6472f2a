/*
 * The listening side of ggml-virtgpu-server; contract in server.h.
 *
 * One client, one worker process: the listener forks and execs its own executable with the
 * hidden --worker-fd option, so every worker starts from a fresh address space (and ASLR
 * layout) and nothing of the listener; the listener itself never loads the APIR library or
 * a GGML backend (GPU runtimes do not survive fork). With --no-fork a thread of this process
 * serves each client instead.
 *
 * Signals are taken synchronously through a signalfd (SIGINT/SIGTERM/SIGHUP stop, SIGCHLD
 * reaps), so there is no signal handler and no global flag.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

#define LISTEN_BACKLOG 64
/* How long workers get to exit after SIGTERM at shutdown before they are killed. */
#define STOP_GRACE_MS 3000
#define WORKER_ARGV_CAP 32
#define WORKER_ARGV_STORE 256

struct client {
    bool      used;
    bool      done;   /* thread mode: the thread has finished and can be joined */
    pid_t     pid;    /* process mode */
    pthread_t thread; /* thread mode */
    int       fd;     /* thread mode: the client socket while its thread serves it */
    uint32_t  ctx_id;
    struct listener *l;
};

struct listener {
    const struct srv_options *opts;
    int             listen_fd;
    int             signal_fd;
    int             lock_fd;
    char            lock_path[PATH_MAX + 8];
    bool            own_socket; /* the socket file is ours: unlink it at exit */
    sigset_t        old_mask;
    uint32_t        next_ctx_id;
    bool            stopping; /* shutdown: the listener itself terminates the workers */
    pthread_mutex_t lock; /* thread mode: guards clients[].fd and .done */
    struct client  *clients;
};

/* ---- start-up ------------------------------------------------------------------------------ */

/*
 * Blocks the signals the listener handles and opens a signalfd for them; SIGPIPE is
 * ignored. The previous mask is kept for the workers. Returns 0 or -1 (logged).
 */
static int setup_signals(struct listener *l)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    signal(SIGPIPE, SIG_IGN);
    if (pthread_sigmask(SIG_BLOCK, &set, &l->old_mask) != 0)
        return -1;
    l->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (l->signal_fd < 0) {
        SRV_ERROR("signalfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * Takes the lock file PATH.lock, so that two servers starting at once cannot both pass the
 * stale-socket check. Returns 0, or -1 (logged) if another server holds it.
 */
static int lock_socket_path(struct listener *l)
{
    const char *path = l->opts->socket_path;
    snprintf(l->lock_path, sizeof(l->lock_path), "%s.lock", path);
    l->lock_fd = open(l->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (l->lock_fd < 0) {
        SRV_ERROR("cannot open %s: %s", l->lock_path, strerror(errno));
        return -1;
    }
    if (flock(l->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        SRV_ERROR("another " SRV_NAME " is running on %s (lock %s is held)", path, l->lock_path);
        return -1;
    }
    return 0;
}

/* Fills a unix socket address for path; -1 (logged) if the path does not fit. */
static int make_addr(const char *path, struct sockaddr_un *addr)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path)) {
        SRV_ERROR("socket path %s is longer than %zu bytes", path, sizeof(addr->sun_path) - 1);
        return -1;
    }
    strcpy(addr->sun_path, path);
    return 0;
}

/*
 * Refuses to take over a path where a server answers or that is not a socket; removes a
 * stale socket file. Returns 0 or -1 (logged).
 */
static int clear_stale_socket(const char *path)
{
    struct stat st;
    struct sockaddr_un addr;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : (SRV_ERROR("%s: %s", path, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        SRV_ERROR("%s exists and is not a socket; not touching it", path);
        return -1;
    }
    if (make_addr(path, &addr))
        return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    int err = errno;
    close(fd);
    if (rc == 0) {
        SRV_ERROR("another server answers on %s", path);
        return -1;
    }
    if (err != ECONNREFUSED) {
        SRV_ERROR("cannot probe %s: %s", path, strerror(err));
        return -1;
    }
    if (unlink(path) != 0) {
        SRV_ERROR("cannot remove stale socket %s: %s", path, strerror(errno));
        return -1;
    }
    SRV_INFO("removed stale socket %s", path);
    return 0;
}

/*
 * Binds a new listening socket at path, created with mode 0600 (no window with wider rights).
 * Returns the fd, or -1 (logged).
 */
static int listen_at(const char *path)
{
    struct sockaddr_un addr;
    if (make_addr(path, &addr))
        return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        SRV_ERROR("socket: %s", strerror(errno));
        return -1;
    }
    mode_t old_umask = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    int err = errno;
    umask(old_umask);
    if (rc != 0) {
        SRV_ERROR("cannot bind %s: %s", path, strerror(err));
        close(fd);
        return -1;
    }
    if (chmod(path, 0600) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        SRV_ERROR("cannot listen on %s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Creates the listening socket at the socket path. It listens on a temporary name first and
 * is renamed into place, so that the socket file exists only once connections are accepted
 * (scripts may wait for the file). Paths too long for a temporary name are bound directly.
 * Returns 0 or -1 (logged).
 */
static int bind_socket(struct listener *l)
{
    const char *path = l->opts->socket_path;
    char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int n = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        l->listen_fd = listen_at(path);
        l->own_socket = l->listen_fd >= 0;
        return l->listen_fd >= 0 ? 0 : -1;
    }
    unlink(tmp); /* a leftover of a crashed server with our pid */
    l->listen_fd = listen_at(tmp);
    if (l->listen_fd < 0)
        return -1;
    if (rename(tmp, path) != 0) {
        SRV_ERROR("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    l->own_socket = true;
    return 0;
}

/* ---- clients -------------------------------------------------------------------------------- */

/* A free client slot, or NULL when max_clients are being served. */
static struct client *free_slot(struct listener *l)
{
    for (uint32_t i = 0; i < l->opts->max_clients; i++)
        if (!l->clients[i].used)
            return &l->clients[i];
    return NULL;
}

/*
 * The child side of a worker start: dies with the listener, keeps the client fd across
 * exec, restores the signal mask and execs this program. Never returns.
 */
__attribute__((noreturn)) static void exec_worker(struct listener *l, int fd, pid_t parent,
                                                  char **argv)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) != 0)
        _exit(1);
    sigprocmask(SIG_SETMASK, &l->old_mask, NULL);
    execv("/proc/self/exe", argv);
    _exit(127);
}

/* Starts a worker process for the client on fd in slot c. Returns 0 or a negative errno. */
static int start_worker_process(struct listener *l, struct client *c, int fd)
{
    char *argv[WORKER_ARGV_CAP];
    char store[WORKER_ARGV_STORE];
    if (srv_options_worker_argv(l->opts, fd, c->ctx_id, argv, WORKER_ARGV_CAP, store,
                                sizeof(store)) != 0)
        return -ENOSPC;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        exec_worker(l, fd, parent, argv);
    c->pid = pid;
    c->used = true;
    SRV_DEBUG("ctx %" PRIu32 ": worker %ld started", c->ctx_id, (long)pid);
    return 0;
}

/* Thread mode: serves one client, then closes its socket and marks the slot for joining. */
static void *client_thread(void *arg)
{
    struct client *c = arg;
    srv_worker_serve(c->l->opts, c->fd, c->ctx_id);
    pthread_mutex_lock(&c->l->lock);
    close(c->fd);
    c->fd = -1;
    c->done = true;
    pthread_mutex_unlock(&c->l->lock);
    return NULL;
}

/* Starts a thread for the client on fd in slot c (fd passes to it). 0 or a negative errno. */
static int start_worker_thread(struct listener *l, struct client *c, int fd)
{
    pthread_mutex_lock(&l->lock);
    c->fd = fd;
    c->done = false;
    c->l = l;
    int rc = pthread_create(&c->thread, NULL, client_thread, c);
    if (rc == 0)
        c->used = true;
    else
        c->fd = -1;
    pthread_mutex_unlock(&l->lock);
    return -rc;
}

/* Thread mode: joins the threads that have finished and frees their slots. */
static void join_finished_threads(struct listener *l)
{
    for (uint32_t i = 0; i < l->opts->max_clients; i++) {
        struct client *c = &l->clients[i];
        pthread_mutex_lock(&l->lock);
        bool finished = c->used && c->done;
        pthread_mutex_unlock(&l->lock);
        if (!finished)
            continue;
        pthread_join(c->thread, NULL);
        c->used = false;
    }
}

/* Hands a new connection to a worker (or refuses it with FATAL). Always consumes fd. */
static void serve_client(struct listener *l, int fd)
{
    if (l->opts->no_fork)
        join_finished_threads(l);
    struct client *c = free_slot(l);
    if (!c) {
        SRV_WARN("refusing a client: %" PRIu32 " clients are being served", l->opts->max_clients);
        srv_send_fatal(fd, -EUSERS, "too many clients");
        close(fd);
        return;
    }
    c->ctx_id = l->next_ctx_id++;
    if (l->next_ctx_id == 0)
        l->next_ctx_id = 1; /* ctx_id 0 is never used */
    if (l->opts->no_fork) {
        int rc = start_worker_thread(l, c, fd);
        if (rc == 0)
            return; /* the thread owns fd now */
        SRV_ERROR("cannot start a client thread: %s", strerror(-rc));
    } else {
        int rc = start_worker_process(l, c, fd);
        if (rc == 0) {
            close(fd); /* the worker has it: the client sees a hang-up when the worker dies */
            return;
        }
        SRV_ERROR("cannot start a worker: %s", strerror(-rc));
    }
    srv_send_fatal(fd, -EAGAIN, "the server cannot start a worker");
    close(fd);
}

/* Logs how the worker of slot c ended and frees the slot. */
static void worker_ended(const struct listener *l, struct client *c, int status)
{
    bool stop_signal = WIFSIGNALED(status) &&
                       (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL);
    bool expected = WIFEXITED(status) ? WEXITSTATUS(status) == 0 : l->stopping && stop_signal;
    if (expected)
        SRV_DEBUG("ctx %" PRIu32 ": worker %ld ended", c->ctx_id, (long)c->pid);
    else if (WIFEXITED(status))
        SRV_WARN("ctx %" PRIu32 ": worker %ld exited with status %d", c->ctx_id, (long)c->pid,
                 WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        SRV_WARN("ctx %" PRIu32 ": worker %ld killed by signal %d (%s)", c->ctx_id, (long)c->pid,
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    c->used = false;
    c->pid = 0;
}

/* Reaps every exited child without blocking (no zombies). */
static void reap_workers(struct listener *l)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (uint32_t i = 0; i < l->opts->max_clients; i++) {
            struct client *c = &l->clients[i];
            if (c->used && c->pid == pid) {
                worker_ended(l, c, status);
                break;
            }
        }
    }
}

/* Reads pending signals: reaps on SIGCHLD; returns true if a stop signal arrived. */
static bool read_signals(struct listener *l)
{
    struct signalfd_siginfo si;
    bool stop = false;
    while (read(l->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            reap_workers(l);
        } else {
            SRV_INFO("%s received, shutting down", strsignal((int)si.ssi_signo));
            stop = true;
        }
    }
    return stop;
}

/* Accepts one connection if one is pending and hands it over. */
static void accept_client(struct listener *l)
{
    int fd = accept4(l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        serve_client(l, fd);
        return;
    }
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        SRV_ERROR("accept: %s", strerror(errno));
        struct timespec ts = { 0, 100 * 1000 * 1000 }; /* do not spin on a full fd table */
        nanosleep(&ts, NULL);
    }
}

/* The main loop: accepts clients and handles signals until told to stop. */
static void serve_loop(struct listener *l)
{
    struct pollfd fds[2] = { { .fd = l->signal_fd, .events = POLLIN },
                             { .fd = l->listen_fd, .events = POLLIN } };
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            SRV_ERROR("poll: %s", strerror(errno));
            return;
        }
        if ((fds[0].revents & POLLIN) && read_signals(l))
            return;
        if (fds[1].revents & POLLIN)
            accept_client(l);
    }
}

/* ---- shutdown ------------------------------------------------------------------------------- */

/* Number of worker processes still running. */
static uint32_t live_workers(const struct listener *l)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < l->opts->max_clients; i++)
        n += l->clients[i].used;
    return n;
}

/* Process mode: SIGTERM to every worker, a grace period, then SIGKILL; reaps them all. */
static void stop_worker_processes(struct listener *l)
{
    l->stopping = true;
    for (uint32_t i = 0; i < l->opts->max_clients; i++)
        if (l->clients[i].used)
            kill(l->clients[i].pid, SIGTERM);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (live_workers(l) > 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= STOP_GRACE_MS)
            break;
        struct pollfd p = { .fd = l->signal_fd, .events = POLLIN };
        poll(&p, 1, (int)(STOP_GRACE_MS - elapsed));
        read_signals(l);
    }
    for (uint32_t i = 0; i < l->opts->max_clients; i++) {
        struct client *c = &l->clients[i];
        if (!c->used)
            continue;
        int status;
        kill(c->pid, SIGKILL);
        if (waitpid(c->pid, &status, 0) == c->pid)
            worker_ended(l, c, status);
        c->used = false;
    }
}

/* Thread mode: hangs up every client, so that its thread ends, and joins all threads. */
static void stop_worker_threads(struct listener *l)
{
    pthread_mutex_lock(&l->lock);
    for (uint32_t i = 0; i < l->opts->max_clients; i++)
        if (l->clients[i].used && l->clients[i].fd >= 0)
            shutdown(l->clients[i].fd, SHUT_RDWR);
    pthread_mutex_unlock(&l->lock);
    for (uint32_t i = 0; i < l->opts->max_clients; i++) {
        if (l->clients[i].used)
            pthread_join(l->clients[i].thread, NULL);
        l->clients[i].used = false;
    }
}

/* Releases everything start-up acquired; unlinks the socket and lock files if they are ours. */
static void cleanup(struct listener *l)
{
    if (l->listen_fd >= 0)
        close(l->listen_fd);
    if (l->own_socket)
        unlink(l->opts->socket_path);
    if (l->own_socket)
        unlink(l->lock_path);
    if (l->lock_fd >= 0)
        close(l->lock_fd);
    if (l->signal_fd >= 0)
        close(l->signal_fd);
    free(l->clients);
    pthread_mutex_destroy(&l->lock);
    pthread_sigmask(SIG_SETMASK, &l->old_mask, NULL);
}

int srv_listener_run(const struct srv_options *opts)
{
    struct listener l = { .opts = opts, .listen_fd = -1, .signal_fd = -1, .lock_fd = -1,
                          .next_ctx_id = 1 };
    int rc = 1;
    pthread_mutex_init(&l.lock, NULL);
    sigemptyset(&l.old_mask);
    l.clients = calloc(opts->max_clients, sizeof(*l.clients));
    if (!l.clients || setup_signals(&l) || lock_socket_path(&l) ||
        clear_stale_socket(opts->socket_path) || bind_socket(&l))
        goto out;
    if (access(opts->apir_library, R_OK) != 0)
        SRV_WARN("APIR library %s is not readable: LOADLIBRARY will fail", opts->apir_library);
    SRV_INFO("listening on %s (%s per client, at most %" PRIu32 " clients)", opts->socket_path,
             opts->no_fork ? "a thread" : "a worker process", opts->max_clients);
    serve_loop(&l);
    rc = 0;
    if (opts->no_fork)
        stop_worker_threads(&l);
    else
        stop_worker_processes(&l);
out:
    cleanup(&l);
    return rc;
}
