#!/usr/bin/env bash
# Ordering of the guest's deferred commands on a batching host with host-allocated buffers
# (tests/support/async-order.c): a graph resent after the host's cache dropped it does not
# overwrite the image of a compute queued behind it; synchronize completes async sets that
# read the caller's host-buffer memory; a second cgraph whose image equals a cached one is
# computed from the host's build of it (one build, right values); tensor inits are deferred after the first (one round
# trip, not one per tensor) and still run in order (a server on the fake-queue test backend,
# whose buffers have init_tensor).
. "$(dirname "$0")/lib.sh"
export GGML_VIRTGPU_NO_ZERO_COPY=1
# 256 nodes: one 256-add graph fits the host's graph cache, two do not (the tensor budget
# is 4x the node quota and each graph holds about 2x its nodes in tensors).
vgpu_start_server --max-graph-nodes 256
for t in resend sync; do
    note "$t"
    vgpu_guest "$VGPU_BUILD/bin/async-order" "$LLAMA_BIN" "$t" >"$VGPU_SCRATCH/$t.out" 2>&1 ||
        fail "$t: $(grep -v '^load_backend' "$VGPU_SCRATCH/$t.out" | tail -5)"
    grep -v '^load_backend\|^ggml-virtgpu' "$VGPU_SCRATCH/$t.out"
done
vgpu_stop_server

note same
GGML_VIRTGPU_PROFILE=1 vgpu_start_server
vgpu_guest "$VGPU_BUILD/bin/async-order" "$LLAMA_BIN" same >"$VGPU_SCRATCH/same.out" 2>&1 ||
    fail "same: $(grep -v '^load_backend' "$VGPU_SCRATCH/same.out" | tail -5)"
grep -v '^load_backend\|^ggml-virtgpu' "$VGPU_SCRATCH/same.out"
# The host's profile is printed when the worker's context ends, after the client left.
for _ in $(seq 100); do
    grep -q 'profile: graphs built for compute' "$VGPU_SCRATCH/server.log" && break
    sleep 0.1
done
vgpu_stop_server
# One build, one cache hit.
built=$(awk '/profile: graphs built for compute/ { print $NF }' "$VGPU_SCRATCH/server.log")
hits=$(awk '/profile: graph cache hits/ { print $NF }' "$VGPU_SCRATCH/server.log")
[ "${built:-}" = 1 ] && [ "${hits:-}" = 1 ] ||
    fail "same: expected 1 graph built and 1 cache hit, the host's profile says ${built:-?} and ${hits:-?}"
note "same: $built graph built, $hits recomputed"

note init
vgpu_start_server --backend "$VGPU_BUILD/lib/libvgpu-fake-queue-backend.so"
GGML_VIRTGPU_PROFILE=1 vgpu_guest "$VGPU_BUILD/bin/async-order" "$LLAMA_BIN" init >"$VGPU_SCRATCH/init.out" 2>&1 ||
    fail "init: $(grep -v '^load_backend' "$VGPU_SCRATCH/init.out" | tail -5)"
grep -v '^load_backend\|^ggml-virtgpu' "$VGPU_SCRATCH/init.out"
# The guest's profile line: EXT_TENSOR_INIT <deferred> <waited> ...: 63 deferred, 1 waited.
row=$(grep -E 'profile \(VirtGPU0\): EXT_TENSOR_INIT ' "$VGPU_SCRATCH/init.out" || true)
read -r deferred waited < <(awk '{ print $5, $6 }' <<<"$row")
[ "${deferred:-}" = 63 ] && [ "${waited:-}" = 1 ] ||
    fail "init: expected 63 inits deferred and 1 waited for, the guest's profile says: ${row:-nothing}"
note "init: $deferred deferred, $waited waited for"
vgpu_stop_server
note "PASS"
