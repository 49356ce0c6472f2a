#!/usr/bin/env bash
# GPU machine, step 3: the benchmarks on the CUDA host. Generates the models (F16, random
# weights) and quantizes them (Q4_0) into WORK/models (the 8b takes about 3 minutes), then runs
# bench/compare.sh --backend cuda --rounds 5 (native CUDA0 vs VirtGPU0 vs ggml-rpc, ratios from this run)
# bench/micro.sh --backend cuda (RTT, bandwidth incl. cudaMemcpy from pinned memory) and
# bench/calls.sh --backend cuda (commands per generated token, on the first model size), and
# bench/greedy.sh (256 greedy tokens of the first model: native and VirtGPU0 texts identical).
# Results: OUT/compare/, OUT/micro/, OUT/calls/ (OUT defaults to WORK/results).
#
# Usage: bench/gpu/run-bench.sh [--detach] [--backend cuda|cpu] [--sizes LIST] [--reps N]
#                               [--threads N] [--models-only] [--no-micro] WORK [OUT]
#   --backend B     cuda (default) or cpu (to try the scripts on a machine without a GPU)
#   --sizes LIST    default 1b,8b
#   --reps N        llama-bench -r (default 10: tg ratios within about 1%)
#   --threads N     default: compare.sh's (nproc)
#   --models-only   prepare the models and stop (all.sh does this while CUDA compiles)
#   --no-micro      skip micro.sh and calls.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

detach=0 backend=cuda sizes=1b,8b reps=10 threads="" models_only=0 micro=1 pos=() args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --detach) detach=1; shift; continue ;;
        --backend) backend=$2; args+=("$1" "$2"); shift 2 ;;
        --sizes) sizes=$2; args+=("$1" "$2"); shift 2 ;;
        --reps) reps=$2; args+=("$1" "$2"); shift 2 ;;
        --threads) threads=$2; args+=("$1" "$2"); shift 2 ;;
        --models-only) models_only=1; args+=("$1"); shift ;;
        --no-micro) micro=0; args+=("$1"); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "run-bench.sh: unknown option $1" >&2; exit 2 ;;
        *) pos+=("$1"); args+=("$1"); shift ;;
    esac
done
if [ "${#pos[@]}" -lt 1 ] || [ "${#pos[@]}" -gt 2 ]; then
    echo "usage: run-bench.sh [--detach] [options] WORK [OUT]" >&2; exit 2
fi
name=run-bench
[ "$models_only" = 1 ] && name=models
gpu_begin "$name" "${pos[0]}" "$detach" "$0" "${args[@]}"
gpu_paths
out=${pos[1]:-$RESULTS}
mkdir -p "$out"
out=$(cd "$out" && pwd)
bench=$GPU_REPO/bench
common=(--build "$PROJECT_BUILD" --llama-bin "$DEPS_BUILD/bin")
[ -x "$PROJECT_BUILD/bin/ggml-virtgpu-gen-model" ] || gpu_die "no project build in $PROJECT_BUILD (build-project.sh)"

gpu_phase "models: $sizes (Q4_0)"
"$bench/compare.sh" "${common[@]}" --models "$MODELS" --sizes "$sizes" --models-only --out "$GPU_WORK/logs/models" ||
    gpu_die "preparing the models failed (logs/models/logs/)"
[ "$models_only" = 1 ] && exit 0

[ "$backend" = cpu ] || [ -f "$DEPS_BUILD/bin/libggml-cuda.so" ] || gpu_die "no libggml-cuda.so: build-deps.sh has not finished"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,temperature.gpu --format=csv >"$out/gpu-before.csv" 2>&1 || true
fi

# Each step runs even if the one before failed; the exit status says whether all of them passed.
# A step that hangs is stopped (timeout signals its whole process group, servers included),
# so that it cannot eat the machine's time: compare.sh 15 min (each llama-bench run 5 min),
# micro.sh and calls.sh 5 min each.
failed=""
# all.sh starts this as the dependency build ends: three GPU sessions measured with a load
# average of 4 to 7 at the start, and the 1b ratios swung most. Up to 90 s for it to settle.
gpu_phase "waiting for the load average to fall below 2 (at most 90 s)"
for _ in $(seq 18); do
    awk '{ exit !($1 < 2) }' /proc/loadavg && break
    sleep 5
done
gpu_log "load average $(cut -d' ' -f1-3 /proc/loadavg)"
gpu_phase "compare.sh --backend $backend --sizes $sizes"
rm -rf "$out/compare"
timeout -k 20 900 "$bench/compare.sh" "${common[@]}" --models "$MODELS" --backend "$backend" --sizes "$sizes" \
    --reps "$reps" --rounds 5 --run-timeout 300 ${threads:+--threads "$threads"} --out "$out/compare" || { gpu_log "compare.sh failed (results/compare/logs/)"; failed="$failed compare"; }

if [ "$micro" = 1 ]; then
    gpu_phase "micro.sh --backend $backend"
    rm -rf "$out/micro"
    timeout -k 20 300 "$bench/micro.sh" "${common[@]}" --backend "$backend" --out "$out/micro" ||
        { gpu_log "micro.sh failed (results/micro/logs/)"; failed="$failed micro"; }
    gpu_phase "calls.sh --backend $backend --size ${sizes%%,*}"
    rm -rf "$out/calls"
    timeout -k 20 300 "$bench/calls.sh" "${common[@]}" --models "$MODELS" --backend "$backend" --size "${sizes%%,*}" \
        --out "$out/calls" ||
        { gpu_log "calls.sh failed (results/calls/logs/)"; failed="$failed calls"; }
fi
first=${sizes%%,*}
gpu_phase "greedy.sh --backend $backend ($first): native and VirtGPU0 texts identical"
rm -rf "$out/greedy"
timeout -k 20 300 "$bench/greedy.sh" "${common[@]}" --backend "$backend" --tokens 256 --out "$out/greedy" \
    "$MODELS/$first-Q4_0.gguf" | tee "$out/greedy.txt" ||
    { gpu_log "greedy.sh failed (results/greedy/)"; failed="$failed greedy"; }
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,temperature.gpu --format=csv >"$out/gpu-after.csv" 2>&1 || true
fi
[ -z "$failed" ] || gpu_die "failed:$failed"
gpu_log "done: $out/compare/summary.txt$([ "$micro" = 1 ] && echo ", $out/micro/summary.txt, $out/calls/summary.txt")"
