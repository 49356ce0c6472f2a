/*
 * ggml-virtgpu-server: start-up. Parses the options, sets up logging, then runs one mode:
 * the listener, --list-devices, or (hidden, started by the listener) the worker of one client.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#ifndef GGML_VIRTGPU_VERSION
#define GGML_VIRTGPU_VERSION "unknown"
#endif

/*
 * Worker mode: serves the one client on --worker-fd as --ctx-id, then exits. Returns 0 when
 * the client was served (however the connection ended), 1 if it could not be.
 */
static int run_worker(const struct srv_options *opts)
{
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(opts->worker_fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
        type != SOCK_SEQPACKET) {
        SRV_ERROR("--worker-fd %d is not a SOCK_SEQPACKET socket", opts->worker_fd);
        return 1;
    }
    int rc = srv_worker_serve(opts, opts->worker_fd, opts->ctx_id);
    close(opts->worker_fd);
    return rc ? 1 : 0;
}

/* Exit codes: 0 done, 1 failure (logged), 2 usage error. */
int main(int argc, char **argv)
{
    struct srv_options opts;
    int rc = srv_options_parse(argc, argv, &opts);
    if (rc)
        return rc;
    srv_log_set_level(opts.log_level);
    signal(SIGPIPE, SIG_IGN);
    switch (opts.mode) {
    case SRV_MODE_HELP:
        srv_options_usage();
        return 0;
    case SRV_MODE_VERSION:
        printf(SRV_NAME " " GGML_VIRTGPU_VERSION "\n");
        return 0;
    case SRV_MODE_LIST_DEVICES:
        return srv_list_devices(&opts);
    case SRV_MODE_WORKER:
        return run_worker(&opts);
    case SRV_MODE_LISTEN:
    default:
        return srv_listener_run(&opts);
    }
}
