#!/usr/bin/env bash
# The micro-benchmarks against a freshly started ggml-virtgpu-server (private socket, stopped on
# exit): round-trip latency (vgpu-bench-rtt: EXT_NOP through the guest call layer next to bare
# socket and futex ping-pongs) and tensor data bandwidth (vgpu-bench-bandwidth: VirtGPU0
# zero-copy and staged next to the host's own device and memcpy; cudaMemcpy too on CUDA).
# Prints both tables and a short summary; writes rtt.csv, bandwidth.csv and summary.txt.
#
# Usage: bench/micro.sh [options]
#   --backend B      cpu (default) or cuda (the server gets <llama bin>/libggml-cuda.so; the
#                    bandwidth table adds CUDA0 and, where built, cuda-pinned / cuda-pageable)
#   --iters N        timed round trips per RTT test (default 20000)
#   --max SIZE       largest transfer (default 256M)
#   --quick          a smoke run: 2000 round trips, transfers up to 4M, short loops
#   --out DIR        results (default build/bench-results/micro-<date>)
#   --build DIR      this project's build (default build/)
#   --llama-bin DIR  the dependency's bin/ (default: scripts/deps-prefix.sh's bin/)
# Exit status: 0 both benchmarks ran, 1 a step failed.
set -euo pipefail
export BENCH_NAME=micro
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

backend=cpu iters=20000 max=256M quick=0 out="" build="" llama_bin_opt=""
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --iters) iters=$2; shift 2 ;;
        --max) max=$2; shift 2 ;;
        --quick) quick=1; shift ;;
        --out) out=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        --llama-bin) llama_bin_opt=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (--help lists them)" ;;
    esac
done
case "$backend" in cpu|cuda) ;; *) die "--backend must be cpu or cuda" ;; esac
if ! [[ "$iters" =~ ^[1-9][0-9]*$ ]]; then die "--iters must be a positive number"; fi

bench_locate "$build" "$llama_bin_opt"
rtt_bin=$VGPU_BUILD/bin/vgpu-bench-rtt
bw_bin=$VGPU_BUILD/bin/vgpu-bench-bandwidth
if [ ! -x "$rtt_bin" ] || [ ! -x "$bw_bin" ]; then
    die "the micro-benchmarks are not built ($VGPU_BUILD/bin/vgpu-bench-*)"
fi
out=${out:-$VGPU_BUILD/bench-results/micro-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)

server_args=()
columns=(memcpy CPU VirtGPU0 VirtGPU0:staging)
if [ "$backend" = cuda ]; then
    [ -f "$LLAMA_BIN/libggml-cuda.so" ] || die "$LLAMA_BIN/libggml-cuda.so is missing (a CUDA build of the dependency)"
    server_args=(--backend "$LLAMA_BIN/libggml-cuda.so")
    columns=(memcpy CUDA0 VirtGPU0 VirtGPU0:staging)
    if [ -x "$VGPU_BUILD/bin/vgpu-bench-bandwidth-cuda" ]; then
        bw_bin=$VGPU_BUILD/bin/vgpu-bench-bandwidth-cuda
        columns+=(cuda-pinned cuda-pageable)
    else
        log "vgpu-bench-bandwidth-cuda was not built (no CUDA toolkit at configure time): no cudaMemcpy columns"
    fi
fi
bw_args=(--max "$max")
warmup=$((iters / 10))
if [ "$quick" = 1 ]; then
    iters=2000 warmup=200
    bw_args=(--max 4M --trials 2 --target-ms 5)
fi

machine=$(bench_machine)
load_start=$(bench_load)
{
    echo "== $machine"
    echo "== backend $backend; load average at start $load_start; $(date -u +%Y-%m-%dT%H:%M:%SZ); source $(bench_source)"
} | tee "$out/summary.txt"

bench_start_virtgpu "$out/logs/server.log" "${server_args[@]}"
export GGML_VIRTGPU_SOCKET="$VGPU_SOCKET" GGML_BACKEND_PATH="$VGPU_BUILD/lib/libggml-virtgpu.so"

"$rtt_bin" --socket "$VGPU_SOCKET" -n "$iters" -w "$warmup" --csv "$out/rtt.csv" 2>"$out/logs/rtt.log" |
    tee -a "$out/summary.txt" || die "vgpu-bench-rtt failed: $(tail -3 "$out/logs/rtt.log")"
# A column that fails (its cells read "-") does not hide the others: the table and the CSV are
# kept, and the exit status says so at the end.
bw_failed=""
"$bw_bin" "${bw_args[@]}" --llama-bin "$LLAMA_BIN" --csv "$out/bandwidth.csv" "${columns[@]}" \
    2>"$out/logs/bandwidth.log" | tee -a "$out/summary.txt" ||
    bw_failed="$(grep -h 'bandwidth:' "$out/logs/bandwidth.log" | head -3 | tr '\n' ' ') (logs/bandwidth.log)"
if [ -n "$bw_failed" ]; then
    log "vgpu-bench-bandwidth failed: $bw_failed"
    echo "bandwidth failures: $bw_failed" >>"$out/summary.txt"
fi
[ -s "$out/bandwidth.csv" ] || die "vgpu-bench-bandwidth wrote no results (logs/bandwidth.log)"
bench_stop_virtgpu

# The few figures that matter, in words.
{
    echo "== summary (load average at end $(bench_load))"
    awk -F, '
        NR > 1 { p50[$1] = $3; p99[$1] = $5 }
        END {
            printf "RTT p50/p99: EXT_NOP %.1f/%.1f us; bare socket ping-pong %.1f/%.1f us; ", p50["nop"], p99["nop"], p50["socket"], p99["socket"]
            printf "transport floor %.1f/%.1f us; futex %.1f/%.1f us\n", p50["hybrid"], p99["hybrid"], p50["futex"], p99["futex"]
            printf "EXT_NOP costs %.1f us (p50) more than the transport floor (framing, dispatch)\n", p50["nop"] - p50["hybrid"]
        }' "$out/rtt.csv"
    awk -F, '
        function human(b) { return b >= 1048576 ? sprintf("%d MiB", b / 1048576) : sprintf("%d KiB", b / 1024) }
        NR > 1 { if ($4 > bs[$1]) { bs[$1] = $4; ss[$1] = $3 }; if ($5 > bg[$1]) { bg[$1] = $5; sg[$1] = $3 }
                 if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
        END {
            for (i = 1; i <= n; i++) { c = order[i]
                printf "peak %-18s set %6.2f GB/s (at %s), get %6.2f GB/s (at %s)\n", c, bs[c], human(ss[c]), bg[c], human(sg[c]) }
            # The peaks of VirtGPU0 next to the reference: cudaMemcpy from pinned memory where
            # measured, else memcpy.
            ref = ("cuda-pinned" in bs) ? "cuda-pinned" : "memcpy"
            for (i = 1; i <= n; i++) { c = order[i]
                if (c ~ /^VirtGPU/ && bs[ref] > 0 && bg[ref] > 0)
                    printf "%s / %s (peaks): set %.2f, get %.2f\n", c, ref, bs[c] / bs[ref], bg[c] / bg[ref] }
        }' "$out/bandwidth.csv"
} | tee -a "$out/summary.txt"
[ -z "$bw_failed" ] || die "some bandwidth columns failed (logs/bandwidth.log)"
log "done: $out/summary.txt, rtt.csv, bandwidth.csv"
