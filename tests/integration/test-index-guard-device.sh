#!/usr/bin/env bash
# The index guard on a device that is not a CPU: unit.test-host-index-guard's graph-input tests
# with a ggml-rpc device (one of the dependency's ggml-rpc-servers, CPU behind it) as the
# library's only device. There the consumers of checked indices read device copies (uploaded
# after the check) and no segment boundary follows a consumer whose indices a later node
# overwrites, the path a CUDA host takes on every llama.cpp decode graph.
. "$(dirname "$0")/lib.sh"
vgpu_start_rpc rpc
# (In the sanitizer build: ggml-rpc's process-long registry is not a leak of ours.)
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(dirname "$0")/lsan-deps.supp:print_suppressions=0"
note "index-guard tests on the ggml-rpc device at $VGPU_RPC_EP"
VGPU_TEST_RPC_ENDPOINT=$VGPU_RPC_EP VGPU_TEST_RPC_BACKEND="$LLAMA_BIN/libggml-rpc.so" \
    "$VGPU_BUILD/bin/test-host-index-guard" >"$VGPU_SCRATCH/test.out" 2>&1 ||
    { tail -40 "$VGPU_SCRATCH/test.out" >&2; fail "test-host-index-guard failed on the ggml-rpc device"; }
grep -E "^\[ +PASSED +\]" "$VGPU_SCRATCH/test.out"
grep -q "on the device), 0 segment boundaries" "$VGPU_SCRATCH/test.out" ||
    fail "no plan with device copies in the log"
note "PASS"
