/*
 * Command line of ggml-virtgpu-server; contracts in server.h.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "unix.h"

#ifndef GGML_VIRTGPU_DEFAULT_BACKEND
#error "GGML_VIRTGPU_DEFAULT_BACKEND must be defined by the build"
#endif
#ifndef GGML_VIRTGPU_FALLBACK_APIR_LIBRARY
#error "GGML_VIRTGPU_FALLBACK_APIR_LIBRARY must be defined by the build"
#endif

#define APIR_LIBRARY_NAME "libggml-virtgpu-backend.so"
#define DEFAULT_BACKEND_REG "ggml_backend_init"

enum {
    OPT_SOCKET = 256,
    OPT_BACKEND,
    OPT_BACKEND_REG,
    OPT_RPC_SERVERS,
    OPT_APIR_LIBRARY,
    OPT_NO_FORK,
    OPT_NO_CPU_REPACK,
    OPT_LOG_LEVEL,
    OPT_LIST_DEVICES,
    OPT_MAX_BUFFERS,
    OPT_MAX_BUFFER_BYTES,
    OPT_MAX_GRAPH_NODES,
    OPT_MAX_COMMAND_SIZE,
    OPT_MAX_RESOURCE_BYTES,
    OPT_MAX_CLIENTS,
    OPT_POLL_US,
    OPT_VERSION,
    OPT_WORKER_FD,
    OPT_CTX_ID,
};

static const struct option long_options[] = {
    { "socket", required_argument, NULL, OPT_SOCKET },
    { "backend", required_argument, NULL, OPT_BACKEND },
    { "backend-reg", required_argument, NULL, OPT_BACKEND_REG },
    { "rpc-servers", required_argument, NULL, OPT_RPC_SERVERS },
    { "apir-library", required_argument, NULL, OPT_APIR_LIBRARY },
    { "no-fork", no_argument, NULL, OPT_NO_FORK },
    { "no-cpu-repack", no_argument, NULL, OPT_NO_CPU_REPACK },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "list-devices", no_argument, NULL, OPT_LIST_DEVICES },
    { "max-buffers", required_argument, NULL, OPT_MAX_BUFFERS },
    { "max-buffer-bytes", required_argument, NULL, OPT_MAX_BUFFER_BYTES },
    { "max-graph-nodes", required_argument, NULL, OPT_MAX_GRAPH_NODES },
    { "max-command-size", required_argument, NULL, OPT_MAX_COMMAND_SIZE },
    { "max-resource-bytes", required_argument, NULL, OPT_MAX_RESOURCE_BYTES },
    { "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
    { "poll-us", required_argument, NULL, OPT_POLL_US },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, OPT_VERSION },
    /* hidden: how the listener starts a worker for one client */
    { "worker-fd", required_argument, NULL, OPT_WORKER_FD },
    { "ctx-id", required_argument, NULL, OPT_CTX_ID },
    { NULL, 0, NULL, 0 },
};

void srv_options_usage(void)
{
    printf("Usage: " SRV_NAME " [OPTIONS]\n"
           "Serves the GGML backend API to ggml-virtgpu guests over a unix socket.\n"
           "\n"
           "  --socket PATH              listening socket (default\n"
           "                             $XDG_RUNTIME_DIR/ggml-virtgpu.sock, or\n"
           "                             /tmp/ggml-virtgpu-$UID.sock)\n"
           "  --backend PATH             the real GGML backend module\n"
           "                             (default %s)\n"
           "  --backend-reg SYMBOL       its registration symbol\n"
           "                             (default " DEFAULT_BACKEND_REG ")\n"
           "  --rpc-servers LIST         with --backend libggml-rpc.so: comma-separated\n"
           "                             HOST:PORT endpoints whose devices guests get\n"
           "  --apir-library PATH        the APIR library (default ../lib/" APIR_LIBRARY_NAME "\n"
           "                             next to this program)\n"
           "  --no-fork                  serve each client in a thread instead of a worker\n"
           "                             process (no isolation between clients)\n"
           "  --no-cpu-repack            on a CPU backend, compute weight matrices as the\n"
           "                             guest wrote them, without host-side repacked copies\n"
           "                             (saves their memory, costs decode speed)\n"
           "  --log-level LEVEL          error, warn, info (default) or debug\n"
           "  --list-devices             print the devices guests will see, then exit\n"
           "  --max-buffers N            per-client quota: buffers\n"
           "  --max-buffer-bytes SIZE    per-client quota: buffer bytes\n"
           "  --max-graph-nodes N        per-client quota: nodes of one graph\n"
           "  --max-command-size SIZE    per-client bound on one command (SUBMIT message)\n"
           "                             (default %uK)\n"
           "  --max-resource-bytes SIZE  shared memory one client may map (default %lluG,\n"
           "                             0 = no limit)\n"
           "  --max-clients N            clients served at once (default %u)\n"
           "  --poll-us N                after each message, a worker polls its socket for\n"
           "                             the next one this long before it sleeps (0 = never;\n"
           "                             default %u with %d or more usable CPUs, else 0)\n"
           "  -h, --help                 this text\n"
           "  --version                  the version\n"
           "SIZE takes a K, M or G suffix (powers of 1024). Quotas not given are left to the\n"
           "APIR library's defaults.\n",
           GGML_VIRTGPU_DEFAULT_BACKEND, VGPU_UNIX_DEFAULT_MAX_COMMAND >> 10,
           (unsigned long long)(SRV_DEFAULT_MAX_RESOURCE_BYTES >> 30), SRV_DEFAULT_MAX_CLIENTS,
           SRV_POLL_AUTO_US, SRV_POLL_AUTO_MIN_CPUS);
}

/* Prints a usage error and returns the usage exit code 2. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, SRV_NAME ": ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" SRV_NAME " --help'.\n");
    return 2;
}

/*
 * Parses a decimal number with an optional K/M/G/T suffix (powers of 1024) if `suffixes`.
 * Returns 0, or -EINVAL for anything else (sign, junk, overflow).
 */
static int parse_u64(const char *s, bool suffixes, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -EINVAL;
    unsigned shift = 0;
    if (suffixes && *end) {
        const char *units = "KMGT";
        const char *u = strchr(units, *end >= 'a' ? *end - ('a' - 'A') : *end);
        if (!u || !*u)
            return -EINVAL;
        shift = 10u * (unsigned)(u - units + 1);
        end++;
    }
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

/* Copies src into dst[PATH_MAX]; returns 0, or -ENAMETOOLONG. */
static int copy_path(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n == 0 || n >= PATH_MAX)
        return -ENAMETOOLONG;
    memcpy(dst, src, n + 1);
    return 0;
}

/* The default socket path: $XDG_RUNTIME_DIR/ggml-virtgpu.sock, else /tmp/ggml-virtgpu-UID.sock. */
static void default_socket_path(char *out)
{
    const char *dir = getenv("XDG_RUNTIME_DIR");
    int n;
    if (dir && *dir)
        n = snprintf(out, PATH_MAX, "%s/ggml-virtgpu.sock", dir);
    else
        n = snprintf(out, PATH_MAX, "/tmp/ggml-virtgpu-%u.sock", (unsigned)getuid());
    if (n < 0 || n >= PATH_MAX)
        snprintf(out, PATH_MAX, "/tmp/ggml-virtgpu-%u.sock", (unsigned)getuid());
}

/*
 * The default APIR library: ../lib/libggml-virtgpu-backend.so relative to this executable's
 * directory if that file exists, else the path compiled in by the build.
 */
static void default_apir_library(char *out)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        int m = snprintf(out, PATH_MAX, "%s/../lib/" APIR_LIBRARY_NAME, dirname(exe));
        if (m > 0 && m < PATH_MAX && access(out, F_OK) == 0)
            return;
    }
    snprintf(out, PATH_MAX, "%s", GGML_VIRTGPU_FALLBACK_APIR_LIBRARY);
}

/* Sets every option to its default (paths that depend on the environment are filled later). */
static void set_defaults(struct srv_options *o)
{
    memset(o, 0, sizeof(*o));
    o->mode = SRV_MODE_LISTEN;
    o->backend = GGML_VIRTGPU_DEFAULT_BACKEND;
    o->backend_reg = DEFAULT_BACKEND_REG;
    o->log_level = SRV_LOG_INFO;
    o->max_buffers = SRV_RT_UNSET;
    o->max_buffer_bytes = SRV_RT_UNSET;
    o->max_graph_nodes = SRV_RT_UNSET;
    o->max_command_size = VGPU_UNIX_DEFAULT_MAX_COMMAND;
    o->max_resource_bytes = SRV_DEFAULT_MAX_RESOURCE_BYTES;
    o->max_clients = SRV_DEFAULT_MAX_CLIENTS;
    o->poll_us = SRV_POLL_AUTO;
    o->worker_fd = -1;
}

/* Parses a value in [min, max] for option `name`; returns 0 or the usage exit code. */
static int parse_ranged(const char *name, const char *arg, bool suffixes, uint64_t min,
                        uint64_t max, uint64_t *out)
{
    if (parse_u64(arg, suffixes, out) != 0 || *out < min || *out > max)
        return usage_error("--%s: '%s' is not a %s in [%" PRIu64 ", %" PRIu64 "]", name, arg,
                           suffixes ? "size" : "number", min, max);
    return 0;
}

/* Applies one parsed option (getopt code c, argument arg). Returns 0 or a usage exit code. */
static int apply_option(struct srv_options *o, int c, const char *arg, bool *ctx_given)
{
    uint64_t v = 0;
    int rc = 0;
    switch (c) {
    case OPT_SOCKET:
        return copy_path(o->socket_path, arg) ? usage_error("--socket: bad path") : 0;
    case OPT_APIR_LIBRARY:
        return copy_path(o->apir_library, arg) ? usage_error("--apir-library: bad path") : 0;
    case OPT_BACKEND: o->backend = arg; return *arg ? 0 : usage_error("--backend: empty path");
    case OPT_BACKEND_REG:
        o->backend_reg = arg;
        return *arg ? 0 : usage_error("--backend-reg: empty symbol");
    case OPT_RPC_SERVERS:
        o->rpc_servers = arg;
        return *arg ? 0 : usage_error("--rpc-servers: empty list");
    case OPT_NO_FORK: o->no_fork = true; return 0;
    case OPT_NO_CPU_REPACK: o->no_cpu_repack = true; return 0;
    case OPT_LOG_LEVEL:
        return srv_log_parse_level(arg, &o->log_level)
                   ? usage_error("--log-level: '%s' is not error, warn, info or debug", arg)
                   : 0;
    case OPT_LIST_DEVICES: o->mode = SRV_MODE_LIST_DEVICES; return 0;
    case OPT_MAX_BUFFERS:
        return parse_ranged("max-buffers", arg, false, 1, UINT32_MAX, &o->max_buffers);
    case OPT_MAX_BUFFER_BYTES:
        return parse_ranged("max-buffer-bytes", arg, true, 1, INT64_MAX, &o->max_buffer_bytes);
    case OPT_MAX_GRAPH_NODES:
        return parse_ranged("max-graph-nodes", arg, false, 1, UINT32_MAX, &o->max_graph_nodes);
    case OPT_MAX_COMMAND_SIZE:
        rc = parse_ranged("max-command-size", arg, true, SRV_MIN_COMMAND_SIZE,
                          SRV_MAX_COMMAND_SIZE, &v);
        o->max_command_size = (uint32_t)v;
        return rc;
    case OPT_MAX_RESOURCE_BYTES:
        return parse_ranged("max-resource-bytes", arg, true, 0, INT64_MAX,
                            &o->max_resource_bytes);
    case OPT_MAX_CLIENTS:
        rc = parse_ranged("max-clients", arg, false, 1, SRV_MAX_CLIENTS_LIMIT, &v);
        o->max_clients = (uint32_t)v;
        return rc;
    case OPT_POLL_US:
        rc = parse_ranged("poll-us", arg, false, 0, SRV_MAX_POLL_US, &v);
        o->poll_us = (uint32_t)v;
        return rc;
    case 'h': o->mode = SRV_MODE_HELP; return 0;
    case OPT_VERSION: o->mode = SRV_MODE_VERSION; return 0;
    case OPT_WORKER_FD:
        rc = parse_ranged("worker-fd", arg, false, 0, INT32_MAX, &v);
        o->worker_fd = (int)v;
        o->mode = SRV_MODE_WORKER;
        return rc;
    case OPT_CTX_ID:
        rc = parse_ranged("ctx-id", arg, false, 1, UINT32_MAX, &v);
        o->ctx_id = (uint32_t)v;
        *ctx_given = true;
        return rc;
    default: return usage_error("unknown option");
    }
}

int srv_options_parse(int argc, char **argv, struct srv_options *opts)
{
    bool ctx_given = false;
    int c;
    set_defaults(opts);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        int rc;
        if (c == '?')
            rc = usage_error("unknown option '%s'", argv[optind - 1]);
        else if (c == ':')
            rc = usage_error("option '%s' needs a value", argv[optind - 1]);
        else
            rc = apply_option(opts, c, optarg, &ctx_given);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (opts->mode == SRV_MODE_WORKER && !ctx_given)
        return usage_error("--worker-fd needs --ctx-id");
    if (!opts->socket_path[0])
        default_socket_path(opts->socket_path);
    if (!opts->apir_library[0])
        default_apir_library(opts->apir_library);
    return 0;
}

void srv_options_rt_params(const struct srv_options *opts, struct srv_rt_params *params)
{
    params->apir_library = opts->apir_library;
    params->backend = opts->backend;
    params->backend_reg = opts->backend_reg;
    params->rpc_servers = opts->rpc_servers;
    params->log_level = srv_log_level_name(opts->log_level);
    params->no_cpu_repack = opts->no_cpu_repack;
    params->quota_buffers = opts->max_buffers;
    params->quota_buffer_bytes = opts->max_buffer_bytes;
    params->quota_graph_nodes = opts->max_graph_nodes;
    params->quota_command_bytes = opts->max_command_size;
    params->max_resource_bytes = opts->max_resource_bytes;
}

/* Argument-vector builder: pointers into argv, number strings into a byte store. */
struct argv_builder {
    char **argv;
    int    n;
    int    cap;
    char  *store;
    size_t used;
    size_t size;
    bool   overflow;
};

/* Appends one argument (not copied: it must outlive the vector). */
static void argv_add(struct argv_builder *b, const char *arg)
{
    if (b->n + 1 >= b->cap) {
        b->overflow = true;
        return;
    }
    b->argv[b->n++] = (char *)arg;
}

/* Appends "--name" and the decimal value (copied into the store), unless value is unset. */
static void argv_add_u64(struct argv_builder *b, const char *name, uint64_t value)
{
    if (value == SRV_RT_UNSET)
        return;
    char *at = b->store + b->used;
    int n = snprintf(at, b->size - b->used, "%" PRIu64, value);
    if (n < 0 || (size_t)n >= b->size - b->used) {
        b->overflow = true;
        return;
    }
    b->used += (size_t)n + 1;
    argv_add(b, name);
    argv_add(b, at);
}

int srv_options_worker_argv(const struct srv_options *opts, int fd, uint32_t ctx_id, char **argv,
                            int argv_cap, char *store, size_t store_size)
{
    struct argv_builder b = { argv, 0, argv_cap, store, 0, store_size, false };
    argv_add(&b, SRV_NAME);
    argv_add(&b, "--apir-library");
    argv_add(&b, opts->apir_library);
    argv_add(&b, "--backend");
    argv_add(&b, opts->backend);
    argv_add(&b, "--backend-reg");
    argv_add(&b, opts->backend_reg);
    if (opts->rpc_servers) {
        argv_add(&b, "--rpc-servers");
        argv_add(&b, opts->rpc_servers);
    }
    argv_add(&b, "--log-level");
    argv_add(&b, srv_log_level_name(opts->log_level));
    if (opts->no_cpu_repack)
        argv_add(&b, "--no-cpu-repack");
    argv_add_u64(&b, "--max-buffers", opts->max_buffers);
    argv_add_u64(&b, "--max-buffer-bytes", opts->max_buffer_bytes);
    argv_add_u64(&b, "--max-graph-nodes", opts->max_graph_nodes);
    argv_add_u64(&b, "--max-command-size", opts->max_command_size);
    argv_add_u64(&b, "--max-resource-bytes", opts->max_resource_bytes);
    if (opts->poll_us != SRV_POLL_AUTO)
        argv_add_u64(&b, "--poll-us", opts->poll_us);
    argv_add_u64(&b, "--worker-fd", (uint64_t)fd);
    argv_add_u64(&b, "--ctx-id", ctx_id);
    if (b.overflow || b.n >= argv_cap)
        return -ENOSPC;
    argv[b.n] = NULL;
    return 0;
}
