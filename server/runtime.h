/*
 * The APIR runtime of ggml-virtgpu-server: the role virglrenderer's APIR component plays in a
 * VMM (docs/PROTOCOL.md §2). One `struct srv_rt` per client context holds the context's
 * config table, its shared-memory resources, and the APIR library it loaded; commands are
 * parsed from a private copy, executed, and answered through the reply word of the reply
 * resource. No sockets here: the worker feeds commands in, tests can do the same directly.
 *
 * The library's callbacks receive only a ctx_id, so the runtime keeps a process-wide
 * ctx_id -> context table behind a mutex (several contexts live in one process with
 * --no-fork). Every function below except the table's internals must be called from the
 * thread that owns the context (its worker); the callbacks may be called from any thread.
 */
#ifndef SRV_RUNTIME_H
#define SRV_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Value of an optional quota that was not set: its config key is left out. */
#define SRV_RT_UNSET UINT64_MAX

/* Most resources one context may hold at once (each is one mapping of the process). */
#define SRV_RT_MAX_RESOURCES 16384u

/* Configuration of a context; the strings are copied by srv_rt_create. */
struct srv_rt_params {
    const char *apir_library;       /* the APIR library LOADLIBRARY dlopens */
    const char *backend;            /* config ggml.library.path */
    const char *backend_reg;        /* config ggml.library.reg */
    const char *rpc_servers;        /* config ggml-virtgpu.rpc-servers (NULL: left out) */
    const char *log_level;          /* config ggml-virtgpu.log-level */
    bool        no_cpu_repack;      /* config ggml-virtgpu.cpu-repack = "0" */
    uint64_t    quota_buffers;      /* config keys; SRV_RT_UNSET leaves the key out */
    uint64_t    quota_buffer_bytes;
    uint64_t    quota_graph_nodes;
    uint64_t    quota_command_bytes;
    uint64_t    max_resource_bytes; /* total mapped bytes (page-rounded); 0 = no limit */
};

struct srv_rt;

/*
 * Creates context ctx_id and enters it in the context table. Returns 0 and *out, -EEXIST if
 * the table already holds ctx_id, -EINVAL for a missing parameter, -ENOMEM.
 */
int srv_rt_create(uint32_t ctx_id, const struct srv_rt_params *params, struct srv_rt **out);

/*
 * Ends a context: calls the library's apir_backend_deinit (if it has one and was loaded),
 * closes the library, leaves the table and unmaps every resource. NULL is a no-op.
 */
void srv_rt_destroy(struct srv_rt *rt);

/* The context's id. */
uint32_t srv_rt_ctx_id(const struct srv_rt *rt);

/*
 * Maps `size` bytes of the file behind fd (MAP_SHARED, read-write) as resource res_id.
 * The fd must be a regular file (memfds are) of at least `size` bytes; a memfd that allows
 * sealing is sealed against shrinking, so the client cannot pull pages from under the
 * mapping. fd stays owned by the caller (the mapping does not need it afterwards).
 * Returns 0; -EINVAL for res_id 0, size 0, a bad fd or a failed mapping; -EEXIST if res_id
 * exists; -EDQUOT over max_resource_bytes or SRV_RT_MAX_RESOURCES; -ENOMEM.
 */
int srv_rt_resource_import(struct srv_rt *rt, uint32_t res_id, int fd, uint64_t size);

/* Unmaps resource res_id. Returns 0, or -ENOENT if the context has no such resource. */
int srv_rt_resource_destroy(struct srv_rt *rt, uint32_t res_id);

/*
 * The host mapping of resource res_id and its size in *size (if size is non-NULL), or NULL if
 * the context has none. Valid until the resource is destroyed.
 */
void *srv_rt_resource_ptr(struct srv_rt *rt, uint32_t res_id, uint64_t *size);

/*
 * Executes one APIR command: `cmd` is the runtime's private copy of the 12-byte header and
 * payload (`size` bytes; the library may modify the payload in place). On success the reply
 * (payload from offset 4, then the reply word 1 + ret with a release store and a futex wake)
 * is in the reply resource and 0 is returned. A protocol violation, after which nothing can
 * be answered (too short, unknown command type, unknown or too small reply resource,
 * malformed HANDSHAKE), returns a negative errno (-EPROTO, -ENOENT) with a reason in
 * why[why_size]; the caller then ends the connection.
 */
int srv_rt_submit(struct srv_rt *rt, void *cmd, size_t size, char *why, size_t why_size);

#endif /* SRV_RUNTIME_H */
