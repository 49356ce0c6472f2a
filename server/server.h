/*
 * ggml-virtgpu-server: options and the entry points of its modules.
 *
 *   main.c          start-up: options, logging, then one of the modes below
 *   options.c       command line parsing, --help, the argument vector of a worker
 *   listener.c      the listening socket; a worker process (or thread) per client
 *   worker.c        the message loop of one client (docs/PROTOCOL.md §1)
 *   list-devices.c  --list-devices: the APIR library in-process, through the runtime
 *   runtime.[ch]    the APIR runtime (docs/PROTOCOL.md §2)
 */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "runtime.h"

#define SRV_NAME "ggml-virtgpu-server"
#define SRV_DEFAULT_MAX_CLIENTS 64u
#define SRV_MAX_CLIENTS_LIMIT 4096u
#define SRV_DEFAULT_MAX_RESOURCE_BYTES (64ull << 30)
#define SRV_MIN_COMMAND_SIZE 64u
#define SRV_MAX_COMMAND_SIZE (1u << 30)
/* --poll-us: not given (the worker picks from the CPUs it may use), and the largest value. */
#define SRV_POLL_AUTO UINT32_MAX
#define SRV_MAX_POLL_US 100000u
/* The poll budget "auto" gives a worker that has SRV_POLL_AUTO_MIN_CPUS CPUs or more. */
#define SRV_POLL_AUTO_US 3000u
#define SRV_POLL_AUTO_MIN_CPUS 4

enum srv_mode {
    SRV_MODE_LISTEN,       /* default: serve clients on the socket */
    SRV_MODE_LIST_DEVICES, /* --list-devices */
    SRV_MODE_WORKER,       /* hidden --worker-fd: serve one client, started by the listener */
    SRV_MODE_HELP,         /* --help */
    SRV_MODE_VERSION,      /* --version */
};

struct srv_options {
    enum srv_mode      mode;
    char               socket_path[PATH_MAX];
    char               apir_library[PATH_MAX];
    const char        *backend;
    const char        *backend_reg;
    const char        *rpc_servers;        /* NULL if not given */
    enum srv_log_level log_level;
    bool               no_fork;
    bool               no_cpu_repack;
    uint64_t           max_buffers;        /* SRV_RT_UNSET if not given */
    uint64_t           max_buffer_bytes;   /* SRV_RT_UNSET if not given */
    uint64_t           max_graph_nodes;    /* SRV_RT_UNSET if not given */
    uint32_t           max_command_size;   /* bounds one SUBMIT message, header included */
    uint64_t           max_resource_bytes; /* 0 = no limit */
    uint32_t           max_clients;
    uint32_t           poll_us;            /* SRV_POLL_AUTO: chosen by the worker */
    int                worker_fd;          /* SRV_MODE_WORKER only */
    uint32_t           ctx_id;             /* SRV_MODE_WORKER only */
};

/*
 * Parses the command line into *opts, filling defaults (socket path from the environment,
 * APIR library next to the executable). Returns 0, or 2 after printing a usage error.
 */
int srv_options_parse(int argc, char **argv, struct srv_options *opts);

/* Prints --help text on stdout. */
void srv_options_usage(void);

/* The runtime parameters of a context from the options. */
void srv_options_rt_params(const struct srv_options *opts, struct srv_rt_params *params);

/*
 * The argument vector of a worker for one client: the options a worker needs, then
 * "--worker-fd" fd "--ctx-id" ctx_id. Fills argv[argv_cap] (NULL-terminated) with pointers
 * into store[store_size]. Returns 0, or -ENOSPC if either is too small.
 */
int srv_options_worker_argv(const struct srv_options *opts, int fd, uint32_t ctx_id, char **argv,
                            int argv_cap, char *store, size_t store_size);

/* Serves clients until SIGINT or SIGTERM; returns the process exit code. */
int srv_listener_run(const struct srv_options *opts);

/*
 * Serves the client on fd as context ctx_id until it hangs up or breaks the protocol; fd
 * stays open (the caller closes it). Returns 0, or a negative errno if the context could not
 * be set up.
 */
int srv_worker_serve(const struct srv_options *opts, int fd, uint32_t ctx_id);

/*
 * Sends FATAL {reason, text} on fd (text cut to VGPU_UNIX_FATAL_MAX_TEXT - 1 bytes).
 * Returns 0 or a negative errno.
 */
int srv_send_fatal(int fd, int32_t reason, const char *text);

/* --list-devices: prints one line per device; returns the process exit code. */
int srv_list_devices(const struct srv_options *opts);

#endif /* SRV_SERVER_H */
