#!/usr/bin/env bash
# GPU machine, after all.sh (or build-deps.sh, build-project.sh and run-bench.sh --models-only):
# prompt processing native vs VirtGPU0 under variants that each remove one suspect of the gap,
# every variant a compare.sh run of its own (interleaved rounds, ratios from that run):
#   default             as run-bench.sh measures it
#   no-host-buffer      the guest without our host buffer type (GGML_VIRTGPU_NO_HOST_BUFFER=1):
#                       llama.cpp's CPU compute buffer and inputs in plain guest memory
#   fa-on, fa-off       flash attention forced either way (llama-bench -fa 1 / -fa 0) in both
#                       configurations, in case "auto" resolves differently through VirtGPU0
#   ub-256              two ubatches per prompt (-ub 256): a per-ubatch cost doubles
#   no-poll             the server's workers sleep at once after each message (--poll-us=0)
#   spin-long           the guest spins through every wait (GGML_VIRTGPU_SPIN_US=50000): no
#                       wake-up of the guest when a compute ends
#   no-predict          the guest's long waits are not planned (GGML_VIRTGPU_PREDICT=0): it
#                       sleeps until the host's futex wake
#   predict-1ms         only work estimated at 1 ms or more is planned (GGML_VIRTGPU_PREDICT_MIN_US)
#   poll-200            the server's workers poll 200 us after each message (--poll-us=200)
# and one verbose pair (llama-bench -v, server --log-level debug) whose logs show how llama.cpp
# resolved flash attention and which buffers it placed where.
# Results: OUT/<variant>/summary.txt and OUT/summary.txt (the ratio lines of all variants).
#
# Usage: bench/gpu/probe-pp.sh [--sizes LIST] [--reps N] [--rounds N] [--gen N] [--variants LIST]
#                              WORK OUT
#   --sizes LIST     default 8b,1b
#   --reps N         llama-bench -r (default 20)
#   --rounds N       compare.sh --rounds (default 3)
#   --gen N          also tg N (compare.sh --gen; default 0: prompt processing only)
#   --variants LIST  subset of default,no-host-buffer,fa-on,fa-off,ub-256,no-poll,spin-long,
#                    no-predict,predict-1ms,poll-200,verbose (default: default,no-host-buffer,
#                    fa-on,fa-off,ub-256,verbose)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sizes=8b,1b reps=20 rounds=3 gen=0 variants=default,no-host-buffer,fa-on,fa-off,ub-256,verbose pos=()
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --gen) gen=$2; shift 2 ;;
        --variants) variants=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "probe-pp.sh: unknown option $1" >&2; exit 2 ;;
        *) pos+=("$1"); shift ;;
    esac
done
[ "${#pos[@]}" = 2 ] || { echo "usage: probe-pp.sh [options] WORK OUT" >&2; exit 2; }
gpu_begin probe-pp "${pos[0]}" 0 "$0"
gpu_paths
mkdir -p "${pos[1]}"
out=$(cd "${pos[1]}" && pwd)
[ -f "$DEPS_BUILD/bin/libggml-cuda.so" ] || gpu_die "no libggml-cuda.so in $DEPS_BUILD (build-deps.sh)"
common=(--build "$PROJECT_BUILD" --llama-bin "$DEPS_BUILD/bin" --models "$MODELS" --backend cuda
    --configs "native,virtgpu" --sizes "$sizes" --gen "$gen" --reps "$reps" --rounds "$rounds" --run-timeout 120)

verbose_pair() {
    local model=$MODELS/${sizes%%,*}-Q4_0.gguf dir=$out/verbose sock
    mkdir -p "$dir"
    sock=$(mktemp -u /tmp/probe-pp.XXXXXX.sock)
    "$PROJECT_BUILD/bin/ggml-virtgpu-server" --socket "$sock" --backend "$DEPS_BUILD/bin/libggml-cuda.so" \
        --log-level debug >"$dir/server.log" 2>&1 &
    local spid=$!
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
    env CUDA_VISIBLE_DEVICES= GGML_BACKEND_PATH="$PROJECT_BUILD/lib/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$sock" \
        timeout 120 "$DEPS_BUILD/bin/llama-bench" -m "$model" -p 512 -n 0 -r 3 -ngl 99 -dev VirtGPU0 -v \
        >"$dir/virtgpu.out" 2>"$dir/virtgpu.log" || gpu_log "verbose virtgpu run failed"
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    rm -f "$sock"
    env -u GGML_BACKEND_PATH timeout 120 "$DEPS_BUILD/bin/llama-bench" -m "$model" -p 512 -n 0 -r 3 -ngl 99 \
        -dev CUDA0 -v >"$dir/native.out" 2>"$dir/native.log" || gpu_log "verbose native run failed"
    grep -hiE 'flash_attn|fused|buffer size|host buffer|pinned|register' "$dir"/*.log >"$dir/grep.txt" 2>/dev/null || true
}

: >"$out/summary.txt"
IFS=, read -ra list <<<"$variants"
for v in "${list[@]}"; do
    gpu_phase "variant $v"
    args=()
    case "$v" in
        default) ;;
        no-host-buffer) args=(--guest-env GGML_VIRTGPU_NO_HOST_BUFFER=1) ;;
        fa-on) args=(-- -fa 1) ;;
        fa-off) args=(-- -fa 0) ;;
        ub-256) args=(-- -ub 256) ;;
        no-poll) args=(--server-arg --poll-us=0) ;;
        spin-long) args=(--guest-env GGML_VIRTGPU_SPIN_US=50000) ;;
        no-predict) args=(--guest-env GGML_VIRTGPU_PREDICT=0) ;;
        predict-1ms) args=(--guest-env GGML_VIRTGPU_PREDICT_MIN_US=1000) ;;
        poll-200) args=(--server-arg --poll-us=200) ;;
        verbose) verbose_pair; continue ;;
        *) gpu_die "unknown variant $v" ;;
    esac
    if "$GPU_REPO/bench/compare.sh" "${common[@]}" --out "$out/$v" "${args[@]}" >"$out/$v.log" 2>&1; then
        { echo "== $v"; grep -E '(pp|tg)[0-9]' "$out/$v/summary.txt"; } >>"$out/summary.txt"
    else
        echo "== $v: compare.sh failed ($v.log)" >>"$out/summary.txt"
    fi
done
cat "$out/summary.txt"
