#!/usr/bin/env bash
# Greedy generation through virtgpu prints exactly what the host backend prints natively: the
# same model, prompt and flags with llama-completion (--temp 0), natively and with -dev
# VirtGPU0 over our server; the two texts are compared byte for byte. On the GPU machine this
# checks the CUDA host path end to end (batched and asynchronous commands, device copies of
# checked indices, VGPU_BATCH_NO_WAIT), which the CPU-only test suite cannot reach.
#
# Usage: bench/greedy.sh [--backend cpu|cuda] [--tokens N] [--build DIR] [--llama-bin DIR]
#                        [--out DIR] MODEL
# Exit status: 0 identical, 1 different or a run failed.
set -euo pipefail
export BENCH_NAME=greedy
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

backend=cpu tokens=128 build="" llama_bin_opt="" out="" model=""
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --tokens) tokens=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        --llama-bin) llama_bin_opt=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (--help lists them)" ;;
        *) model=$1; shift ;;
    esac
done
[ -f "$model" ] || die "no model '$model'"
[[ "$tokens" =~ ^[1-9][0-9]*$ ]] || die "--tokens takes a positive number"
bench_locate "$build" "$llama_bin_opt"
out=${out:-$VGPU_BUILD/bench-results/greedy-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
server_args=() native_dev=()
case "$backend" in
    cpu) ;;
    cuda) server_args=(--backend "$LLAMA_BIN/libggml-cuda.so"); native_dev=(-dev CUDA0) ;;
    *) die "--backend must be cpu or cuda" ;;
esac
args=(-m "$model" -p "Once upon a time" -n "$tokens" --temp 0 -no-cnv -ngl 99 -s 1)

env -u GGML_BACKEND_PATH "$LLAMA_BIN/llama-completion" "${args[@]}" "${native_dev[@]}" </dev/null \
    >"$out/native.txt" 2>"$out/native.log" || die "native llama-completion failed (log: $out/native.log)"
bench_start_virtgpu "$out/server.log" "${server_args[@]}"
CUDA_VISIBLE_DEVICES= GGML_BACKEND_PATH="$VGPU_BUILD/lib/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$VGPU_SOCKET" \
    "$LLAMA_BIN/llama-completion" "${args[@]}" -dev VirtGPU0 </dev/null >"$out/virtgpu.txt" 2>"$out/virtgpu.log" ||
    die "VirtGPU0 llama-completion failed (log: $out/virtgpu.log)"
bench_stop_virtgpu
[ -s "$out/native.txt" ] || die "native llama-completion printed nothing"
if cmp -s "$out/native.txt" "$out/virtgpu.txt"; then
    log "identical: $tokens greedy tokens, $(wc -c <"$out/native.txt") bytes ($backend; $out)"
    exit 0
fi
log "DIFFERENT: native and VirtGPU0 texts differ ($out/native.txt, $out/virtgpu.txt)"
exit 1
