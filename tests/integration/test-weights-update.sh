#!/usr/bin/env bash
# A weight matrix rewritten after a graph used it (tests/support/weights-update.c): on the CPU
# host the product runs on a repacked copy, which must follow set_tensor, memset_tensor and
# buffer clear, for zero-copy and host-allocated buffers alike.
# Usage: test-weights-update.sh [ext|nozerocopy]
. "$(dirname "$0")/lib.sh"
mode=${1:-ext}
case "$mode" in
    ext) ;;
    nozerocopy) export GGML_VIRTGPU_NO_ZERO_COPY=1 ;;
    *) fail "unknown mode $mode" ;;
esac
run() {
    vgpu_start_server --log-level debug "$@"
    vgpu_guest "$VGPU_BUILD/bin/weights-update" "$LLAMA_BIN" >"$VGPU_SCRATCH/out" 2>&1 ||
        fail "$(grep -v '^load_backend' "$VGPU_SCRATCH/out" | tail -5)"
    grep -v '^load_backend\|^ggml-virtgpu' "$VGPU_SCRATCH/out"
    vgpu_stop_server
}
note "with repacked copies"
run
# The products ran on a copy (else this test would prove nothing about copies), where ggml-cpu
# has a repacked Q4_0 kernel for this CPU (AVX2 on x86, any aarch64).
if grep -qw avx2 /proc/cpuinfo || [ "$(uname -m)" = aarch64 ]; then
    grep -q "repacked '" "$VGPU_SCRATCH/server.log" || fail "the host made no repacked copy (see server.log)"
else
    note "this CPU has no repacked Q4_0 kernel: the results above were computed without copies"
fi
# ggml's own debug lines (ggml-cpu: one per repacked tensor) stay out of the log by default...
if grep -q "repack tensor" "$VGPU_SCRATCH/server.log"; then fail "ggml's debug lines reached the log"; fi
if grep -qw avx2 /proc/cpuinfo || [ "$(uname -m)" = aarch64 ]; then
    note "GGML_VIRTGPU_LOG_LEVEL=debug (ggml's lines through the host library's log)"
    GGML_VIRTGPU_LOG_LEVEL=debug run
    grep -q "ggml: repack: repack tensor" "$VGPU_SCRATCH/server.log" ||
        fail "ggml's debug lines did not reach the log at level debug (see server.log)"
fi
note "--no-cpu-repack (the option reaches the worker: no copy)"
run --no-cpu-repack
if grep -q "repacked '" "$VGPU_SCRATCH/server.log"; then fail "--no-cpu-repack: the host made a copy"; fi
note "PASS"
