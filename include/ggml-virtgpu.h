/*
 * ggml-virtgpu: the guest side of GGML API remoting.
 *
 * The library is a GGML dynamic backend module (GGML_BACKEND_DL): stock llama.cpp loads it
 * from its backend directory (as "virtgpu") or from GGML_BACKEND_PATH, and finds its devices
 * ("VirtGPU0", "VirtGPU1", ..., one per host device, all of type GPU; registration name
 * "VirtGPU"). Applications that link it directly may call ggml_backend_virtgpu_reg() instead.
 * The module exports only ggml_backend_init, ggml_backend_score (always 1) and
 * ggml_backend_virtgpu_reg. The reg's get_proc_address offers "ggml_backend_set_n_threads",
 * which sets the thread count of the host's backend (e.g. llama-bench -t).
 *
 * With no host (no socket configured, nothing listening, a failed handshake or a ggml ABI
 * mismatch) the reg lists zero devices and logs one line saying why; the application runs on.
 * If the host goes away later, every call fails at once from then on: graph compute returns
 * GGML_STATUS_FAILED, allocations return NULL, data transfers log once and do nothing.
 *
 * Environment:
 *   GGML_VIRTGPU_SOCKET=PATH    use the unix-socket transport to ggml-virtgpu-server at PATH
 *                               (the only transport so far: without it there are no devices)
 *   GGML_VIRTGPU_BASELINE=1     speak only APIR 0.2 (what an upstream host library offers)
 *   GGML_VIRTGPU_NO_ZERO_COPY=1 never compute on shared memory; move data through staging
 *   GGML_VIRTGPU_TIMEOUT_MS=N   fail a call the host has not answered after N ms (default:
 *                               no limit; a dead host is detected without it, within ~0.1 s)
 */
#ifndef GGML_VIRTGPU_H
#define GGML_VIRTGPU_H

#include "ggml-backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The registration object; never NULL. With no host available it lists zero devices. */
GGML_BACKEND_API ggml_backend_reg_t ggml_backend_virtgpu_reg(void);

#ifdef __cplusplus
}
#endif

#endif /* GGML_VIRTGPU_H */
