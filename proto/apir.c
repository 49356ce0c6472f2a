/*
 * Names of the handler result codes, for log lines on both sides.
 */
#include "apir.h"
#include "ext.h"

const char *vgpu_status_name(uint32_t code)
{
    switch (code) {
    case VGPU_OK: return "ok";
    case VGPU_INVALID: return "invalid request";
    case VGPU_UNKNOWN_COMMAND: return "unknown command";
    case VGPU_FATAL: return "context is in the fatal state";
    case VGPU_QUOTA: return "quota exceeded";
    case VGPU_NO_MEMORY: return "host out of memory";
    case VGPU_ABI_MISMATCH: return "ggml ABI mismatch";
    case VGPU_UNSUPPORTED: return "unsupported by the host backend";
    case VGPU_NOT_FOUND: return "unknown or stale object id";
    case VGPU_BACKEND: return "host backend failure";
    case VGPU_SKIPPED: return "skipped (an earlier batch stopped)";
    default: return "unknown error code";
    }
}
