#!/usr/bin/env bash
# Commands per generated token through VirtGPU0, counted rather than guessed: the server's
# host library traces every request it serves (GGML_VIRTGPU_TRACE), llama-bench generates N1
# and then N2 tokens (same model and flags, no prompt), and the difference of the
# command counts divided by N2 - N1 is the steady-state cost of one token, per command. Runs
# twice: with the guest's defaults (zero-copy buffers where the host offers them) and with
# GGML_VIRTGPU_NO_ZERO_COPY=1 (every tensor byte through commands, as on a CUDA host).
# Every command is one round trip unless a batching command carries several.
#
# Usage: bench/calls.sh [options]
#   --size S         model: tiny (default), 1b, 8b (generated once, cached like compare.sh's)
#   --tokens N1,N2   default 16,48
#   --backend B      cpu (default) or cuda
#   --threads N      default nproc
#   --out DIR        results (default build/bench-results/calls-<date>)
#   --build DIR, --llama-bin DIR, --models DIR   as for compare.sh
# Writes OUT/calls.csv (mode,id,name,per_token,bytes_per_token) and OUT/summary.txt.
set -euo pipefail
export BENCH_NAME=calls
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

size=tiny tokens=16,48 backend=cpu threads=$(nproc) out="" build="" llama_bin_opt="" models=""
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size=$2; shift 2 ;;
        --tokens) tokens=$2; shift 2 ;;
        --backend) backend=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        --llama-bin) llama_bin_opt=$2; shift 2 ;;
        --models) models=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (--help lists them)" ;;
    esac
done
IFS=, read -r n1 n2 <<<"$tokens"
if ! [[ "$n1" =~ ^[1-9][0-9]*$ && "$n2" =~ ^[1-9][0-9]*$ ]] || [ "$n2" -le "$n1" ]; then
    die "--tokens needs N1,N2 with 0 < N1 < N2"
fi
case "$backend" in cpu|cuda) ;; *) die "--backend must be cpu or cuda" ;; esac

bench_locate "$build" "$llama_bin_opt"
counter=$VGPU_BUILD/bin/vgpu-bench-calls
[ -x "$counter" ] || die "$counter is not built"
models=${models:-$VGPU_BUILD/bench-models}
out=${out:-$VGPU_BUILD/bench-results/calls-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
server_args=()
[ "$backend" = cpu ] || server_args=(--backend "$LLAMA_BIN/libggml-cuda.so")

# The model, from compare.sh's cache (generated and quantized there if missing).
"$BENCH_ROOT/bench/compare.sh" --build "$VGPU_BUILD" --llama-bin "$LLAMA_BIN" --models "$models" \
    --sizes "$size" --models-only --out "$out/models" >"$out/logs/models.log" 2>&1 ||
    die "preparing the model failed (log: $out/logs/models.log)"
model=$models/$size-Q4_0.gguf
[ -f "$model" ] || die "no model $model"

# count MODE N: one traced llama-bench run generating N tokens; prints vgpu-bench-calls' lines.
count() {
    local mode=$1 n=$2 trace="$BENCH_TMP/trace-$1-$2"
    local env_mode=()
    [ "$mode" = default ] || env_mode=(GGML_VIRTGPU_NO_ZERO_COPY=1)
    GGML_VIRTGPU_TRACE=$trace bench_start_virtgpu "$out/logs/server-$mode-$n.log" "${server_args[@]}"
    env "${env_mode[@]}" GGML_BACKEND_PATH="$VGPU_BUILD/lib/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$VGPU_SOCKET" \
        "$LLAMA_BIN/llama-bench" -m "$model" -p 0 -n "$n" -r 1 -t "$threads" -ngl 99 -dev VirtGPU0 -o csv \
        >"$out/logs/bench-$mode-$n.csv" 2>"$out/logs/bench-$mode-$n.log" ||
        die "llama-bench failed (log: $out/logs/bench-$mode-$n.log)"
    # The worker closes its trace when its client has gone.
    bench_wait_workers
    bench_stop_virtgpu
    local files=("$trace".*.requests)
    [ -e "${files[0]}" ] || die "no request trace was written (is GGML_VIRTGPU_TRACE supported by this build?)"
    "$counter" "${files[@]}"
}

echo "== $(bench_machine); backend $backend; $size model, tg $n1 vs tg $n2; source $(bench_source)" | tee "$out/summary.txt"
echo "mode,id,name,per_token,bytes_per_token" >"$out/calls.csv"
for mode in default no-zero-copy; do
    count "$mode" "$n1" >"$out/counts-$mode-$n1.txt"
    count "$mode" "$n2" >"$out/counts-$mode-$n2.txt"
    awk -v mode="$mode" -v d=$((n2 - n1)) '
        FNR == NR { c1[$1] = $3; b1[$1] = $4; name[$1] = $2; next }
        { c2[$1] = $3; b2[$1] = $4; name[$1] = $2 }
        END {
            for (id in name) {
                pt = (c2[id] - c1[id]) / d
                line = sprintf("%s,%s,%s,%.2f,%.0f", mode, id, name[id], pt, (b2[id] - b1[id]) / d)
                if (id == "-") total = line; else if (pt != 0) print line | "sort -t, -k2,2n"
            }
            close("sort -t, -k2,2n")
            print total
        }' "$out/counts-$mode-$n1.txt" "$out/counts-$mode-$n2.txt" >>"$out/calls.csv"
done
{
    printf '%-22s %14s %14s\n' "commands per token" "default" "no-zero-copy"
    awk -F, 'NR > 1 { k = $3; if (!(k in seen)) { seen[k] = 1; order[++n] = k }; v[k, $1] = $4 }
        END {
            for (i = 1; i <= n; i++) { k = order[i]
                printf "%-22s %14s %14s\n", k, ((k, "default") in v) ? v[k, "default"] : "0", ((k, "no-zero-copy") in v) ? v[k, "no-zero-copy"] : "0" }
        }' "$out/calls.csv"
} | tee -a "$out/summary.txt"
log "done: $out/summary.txt, calls.csv"
