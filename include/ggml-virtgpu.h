/*
 * ggml-virtgpu: the guest side of GGML API remoting.
 *
 * The library is a GGML dynamic backend module (GGML_BACKEND_DL): stock llama.cpp loads it
 * from its backend directory or from GGML_BACKEND_PATH and finds its devices ("VirtGPU0",
 * "VirtGPU1", ..., one per host device). Applications that link it directly may call
 * ggml_backend_virtgpu_reg() instead.
 *
 * Environment:
 *   GGML_VIRTGPU_SOCKET=PATH    use the unix-socket transport to ggml-virtgpu-server at PATH
 *   GGML_VIRTGPU_BASELINE=1     speak only APIR 0.2 (what an upstream host library offers)
 *   GGML_VIRTGPU_NO_ZERO_COPY=1 never compute on shared memory; move data through staging
 *   GGML_VIRTGPU_TIMEOUT_MS=N   fail a call the host has not answered after N ms (default:
 *                               no limit; a dead host is detected without it)
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
