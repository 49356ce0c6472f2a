#!/usr/bin/env bash
# Native vs virtgpu vs ggml-rpc in ONE run: the same model, the same llama-bench flags and the
# same thread count, (a) natively on the host backend, (b) through ggml-virtgpu (our server and
# guest module, -dev VirtGPU0), (c) through ggml-rpc on loopback (the dependency's
# ggml-rpc-server, --rpc + -dev RPC0). Prints t/s (mean ± sd over the repetitions) and the
# ratios to native, computed from this run only; writes the raw llama-bench CSV of every run,
# results.csv / results.json, and ratios.png (gnuplot, else matplotlib, else none).
#
# Usage: bench/compare.sh [options] [-- extra llama-bench arguments]
#   --sizes LIST     model sizes, comma-separated: tiny, 1b, 8b (default tiny,1b)
#   --backend B      cpu (default) or cuda: the server gets --backend <llama bin>/libggml-cuda.so,
#                    native runs -dev CUDA0, ggml-rpc-server serves CUDA0
#   --quant TYPE     llama-quantize type of the models (default Q4_0; F16 = not quantized)
#   --reps N         llama-bench -r (default 5)
#   --rounds N       run the configurations N times, interleaved (native, virtgpu, rpc, native,
#                    ...): t/s is the mean of the rounds' means, the ratio the median of the
#                    per-round ratios and its ± half their range, so that a burst of load on a
#                    shared machine hits one round, not one configuration (default 1)
#   --prompt N       llama-bench -p (default 512; 0: no prompt test)
#   --gen N          llama-bench -n (default 128; 0: no generation test)
#   --threads N      threads for every configuration, servers included (default: nproc)
#   --configs LIST   subset of native,virtgpu,rpc, in that order (default: all three)
#   --out DIR        results (default build/bench-results/compare-<date>)
#   --build DIR      this project's build (default build/)
#   --llama-bin DIR  the dependency's bin/ (default: scripts/deps-prefix.sh's bin/)
#   --models DIR     model cache (default <build>/bench-models)
#   --run-timeout S  limit for one llama-bench run (default 3600)
#   --guest-env V=X  an environment variable for the client processes of virtgpu and rpc (the
#                    guests), repeatable; printed with the results (e.g. GGML_VIRTGPU_NO_HOST_BUFFER=1).
#   --server-arg A   an argument for ggml-virtgpu-server (e.g. --poll-us=0), repeatable; printed
#                    with the results
#   --models-only    generate and quantize the models into the cache, then stop
# Every configuration runs with -ngl 99. Servers are started per run on a private socket and
# a free loopback port and are always stopped. Exit status: 0 all runs done, 1 a step failed.
set -euo pipefail
export BENCH_NAME=compare
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sizes=tiny,1b backend=cpu quant=Q4_0 reps=5 rounds=1 prompt=512 gen=128 threads=$(nproc)
configs=native,virtgpu,rpc out="" build="" llama_bin_opt="" models="" run_timeout=3600 models_only=0
extra=() guest_env=() user_server_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes=$2; shift 2 ;;
        --backend) backend=$2; shift 2 ;;
        --quant) quant=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --prompt) prompt=$2; shift 2 ;;
        --gen) gen=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --configs) configs=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        --llama-bin) llama_bin_opt=$2; shift 2 ;;
        --models) models=$2; shift 2 ;;
        --run-timeout) run_timeout=$2; shift 2 ;;
        --models-only) models_only=1; shift ;;
        --guest-env)
            [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--guest-env takes VAR=VALUE"
            guest_env+=("$2"); shift 2 ;;
        --server-arg) user_server_args+=("$2"); shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (--help lists them)" ;;
    esac
done
case "$backend" in cpu|cuda) ;; *) die "--backend must be cpu or cuda" ;; esac
for n in "$reps" "$rounds" "$threads" "$run_timeout"; do
    if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then die "'$n' is not a positive number"; fi
done
for n in "$prompt" "$gen"; do
    if ! [[ "$n" =~ ^(0|[1-9][0-9]*)$ ]]; then die "'$n' is not a number of tokens"; fi
done
[ "$prompt" != 0 ] || [ "$gen" != 0 ] || die "--prompt 0 and --gen 0: no test left"
IFS=, read -r -a size_list <<<"$sizes"
IFS=, read -r -a config_list <<<"$configs"
for s in "${size_list[@]}"; do case "$s" in tiny|1b|8b) ;; *) die "unknown size '$s' (tiny, 1b, 8b)" ;; esac; done
for c in "${config_list[@]}"; do case "$c" in native|virtgpu|rpc) ;; *) die "unknown config '$c'" ;; esac; done

bench_locate "$build" "$llama_bin_opt"
# --models-only needs llama-quantize alone (bench/gpu/all.sh prepares the models while the
# rest of the dependency still compiles).
tools=(llama-quantize)
[ "$models_only" = 1 ] || tools+=(llama-bench ggml-rpc-server)
for t in "${tools[@]}"; do
    [ -x "$LLAMA_BIN/$t" ] || die "$LLAMA_BIN/$t is missing"
done
models=${models:-$VGPU_BUILD/bench-models}
out=${out:-$VGPU_BUILD/bench-results/compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/raw" "$out/logs" "$models"
out=$(cd "$out" && pwd)
models=$(cd "$models" && pwd)

server_args=() native_dev=() rpc_args=(-d CPU -t "$threads")
if [ "$backend" = cuda ]; then
    [ -f "$LLAMA_BIN/libggml-cuda.so" ] || die "$LLAMA_BIN/libggml-cuda.so is missing (a CUDA build of the dependency)"
    server_args=(--backend "$LLAMA_BIN/libggml-cuda.so")
    native_dev=(-dev CUDA0)
    rpc_args=(-d CUDA0 -t "$threads")
fi
server_args+=("${user_server_args[@]}")

# ---- models ----------------------------------------------------------------------------------
# Rough sizes (GB) of Q4_0 models, to refuse a run that cannot fit before spending an hour on it.
need_gb() { case "$1" in tiny) echo 1 ;; 1b) echo 3 ;; 8b) echo 14 ;; esac; }
avail_gb=$(awk '/MemAvailable/ { printf "%d", $2 / 1048576 }' /proc/meminfo)

# ensure_model SIZE: sets MODEL to the cached model, generating and quantizing it once.
ensure_model() {
    local size=$1 f16="$models/$1-f16.gguf" q="$models/$1-$quant.gguf"
    if [ "${quant^^}" = F16 ]; then q=$f16; fi
    if [ ! -f "$q" ]; then
        if [ ! -f "$f16" ]; then
            local disk_gb want_gb
            disk_gb=$(df -Pk "$models" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
            case "$size" in tiny) want_gb=1 ;; 1b) want_gb=4 ;; *) want_gb=22 ;; esac
            [ "$disk_gb" -ge "$want_gb" ] ||
                die "the $size model (F16 + $quant) needs about $want_gb GB in $models, $disk_gb GB free"
            log "generating the $size model (F16, random weights)"
            "$VGPU_BUILD/bin/ggml-virtgpu-gen-model" --size "$size" -o "$f16.tmp" >"$out/logs/gen-$size.log" 2>&1 ||
                die "generating the $size model failed (log: $out/logs/gen-$size.log)"
            mv "$f16.tmp" "$f16"
        fi
        if [ "$q" != "$f16" ]; then
            log "quantizing it to $quant"
            # An output path must not start with a digit (llama-quantize would read a type):
            # these are absolute paths.
            env -u GGML_BACKEND_PATH "$LLAMA_BIN/llama-quantize" "$f16" "$q.tmp.gguf" "$quant" "$(nproc)" \
                >"$out/logs/quantize-$size.log" 2>&1 || die "quantizing failed (log: $out/logs/quantize-$size.log)"
            mv "$q.tmp.gguf" "$q"
        fi
    fi
    MODEL=$q
}

# ---- one llama-bench run --------------------------------------------------------------------------
# run_config SIZE CONFIG MODEL ROUND: raw CSV to raw/SIZE-CONFIG[.rROUND].csv, stderr to logs/.
run_config() {
    local size=$1 cfg=$2 model=$3 sfx=""
    [ "$rounds" = 1 ] || sfx=".r$4"
    local csv="$out/raw/$size-$cfg$sfx.csv" elog="$out/logs/$size-$cfg$sfx.log"
    local args=(-m "$model" -p "$prompt" -n "$gen" -r "$reps" -t "$threads" -ngl 99 -o csv)
    local rc=0 start
    start=$(date +%s)
    case "$cfg" in
        native)
            env -u GGML_BACKEND_PATH -u GGML_VIRTGPU_SOCKET timeout -k 10 "$run_timeout" \
                "$LLAMA_BIN/llama-bench" "${args[@]}" "${native_dev[@]}" "${extra[@]}" >"$csv" 2>"$elog" || rc=$?
            ;;
        virtgpu)
            bench_start_virtgpu "$out/logs/$size-server-virtgpu.log" "${server_args[@]}"
            # The client is the guest: it sees no GPU of its own (CUDA_VISIBLE_DEVICES empty), as in a VM.
            env "${guest_env[@]}" CUDA_VISIBLE_DEVICES= GGML_BACKEND_PATH="$VGPU_BUILD/lib/libggml-virtgpu.so" \
                GGML_VIRTGPU_SOCKET="$VGPU_SOCKET" timeout -k 10 "$run_timeout" \
                "$LLAMA_BIN/llama-bench" "${args[@]}" -dev VirtGPU0 "${extra[@]}" >"$csv" 2>"$elog" || rc=$?
            bench_stop_virtgpu
            ;;
        rpc)
            bench_start_rpc "$out/logs/$size-server-rpc.log" "${rpc_args[@]}"
            env -u GGML_BACKEND_PATH -u GGML_VIRTGPU_SOCKET "${guest_env[@]}" CUDA_VISIBLE_DEVICES= timeout -k 10 "$run_timeout" \
                "$LLAMA_BIN/llama-bench" "${args[@]}" --rpc "$RPC_ENDPOINT" -dev RPC0 "${extra[@]}" \
                >"$csv" 2>"$elog" || rc=$?
            bench_stop_rpc
            ;;
    esac
    if [ "$rc" != 0 ] || [ "$(wc -l <"$csv")" -lt 2 ]; then
        tail -5 "$elog" >&2
        die "llama-bench $size/$cfg failed with status $rc (log: $elog)"
    fi
    log "  $cfg: $(($(date +%s) - start)) s"
}

# ---- the run -----------------------------------------------------------------------------------------
if [ "$models_only" = 1 ]; then
    for size in "${size_list[@]}"; do
        ensure_model "$size"
        log "$size: $MODEL ($(du -h "$MODEL" | cut -f1))"
    done
    exit 0
fi
machine=$(bench_machine)
load_start=$(bench_load)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "machine: $machine"
log "backend $backend, threads $threads, sizes ${size_list[*]}, $quant, llama-bench -p $prompt -n $gen -r $reps -ngl 99 ${extra[*]}"
[ "${#guest_env[@]}" = 0 ] || log "guest environment: ${guest_env[*]}"
[ "${#user_server_args[@]}" = 0 ] || log "server arguments: ${user_server_args[*]}"
log "load average at start: $load_start; results in $out"
for size in "${size_list[@]}"; do
    need=$(need_gb "$size")
    [ "$backend" = cuda ] || [ "$avail_gb" -ge "$need" ] ||
        die "the $size model needs about $need GB of memory, $avail_gb GB available"
    ensure_model "$size"
    log "$size: $(basename "$MODEL")"
    for round in $(seq "$rounds"); do
        for cfg in "${config_list[@]}"; do
            run_config "$size" "$cfg" "$MODEL" "$round"
        done
    done
done
load_end=$(bench_load)

# ---- results --------------------------------------------------------------------------------------------
# One row per (size, config, test) from the raw CSVs. llama-bench writes an unquoted header and
# quoted values; columns are found by name.
{
    echo "size,config,test,avg_ts,stddev_ts,n_prompt,n_gen,n_threads,model_type,model_size,devices,backends,round"
    for size in "${size_list[@]}"; do
        for cfg in "${config_list[@]}"; do
          for round in $(seq "$rounds"); do
            sfx=""
            [ "$rounds" = 1 ] || sfx=".r$round"
            awk -v size="$size" -v cfg="$cfg" -v round="$round" '
                # A value with a comma (backends "CUDA,VirtGPU" where the dependency has CUDA
                # built in) would shift the columns of runs.csv: "+" instead.
                function f(name,   s) { s = v[col[name]]; gsub(/,/, "+", s); return s }
                NR == 1 { n = split($0, h, ","); for (i = 1; i <= n; i++) col[h[i]] = i; next }
                {
                    line = substr($0, 2, length($0) - 2)
                    split(line, v, "\",\"")
                    np = v[col["n_prompt"]]; ng = v[col["n_gen"]]
                    test = (np > 0 && ng > 0) ? "pp" np "+tg" ng : (np > 0 ? "pp" np : "tg" ng)
                    printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", size, cfg, test,
                        f("avg_ts"), f("stddev_ts"), np, ng, f("n_threads"),
                        f("model_type"), f("model_size"), f("devices"), f("backends"), round
                }' "$out/raw/$size-$cfg$sfx.csv"
          done
        done
    done
} >"$out/runs.csv"

# Ratios to native of the same size and test, in this run. One round: the uncertainty is
# propagated from both standard deviations (r * sqrt((sd_a/a)^2 + (sd_n/n)^2)). Several: t/s is
# the mean of the rounds' means (± their sd), the ratio the median of the per-round ratios (±
# half their range).
awk -F, '
    NR == 1 { next }
    { key = $1 SUBSEP $3 SUBSEP $2; ts[key, $13] = $4; sd[key, $13] = $5; nr = ($13 + 0 > nr ? $13 + 0 : nr)
      if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
    function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
    END {
        print "size,test,config,avg_ts,stddev_ts,ratio,ratio_sd"
        for (i = 1; i <= k; i++) {
            split(order[i], f, SUBSEP); nat = f[1] SUBSEP f[2] SUBSEP "native"
            m = 0; for (r = 1; r <= nr; r++) m += ts[order[i], r]; m /= nr
            if (nr == 1) { s = sd[order[i], 1] } else { v = 0; for (r = 1; r <= nr; r++) v += (ts[order[i], r] - m) ^ 2; s = sqrt(v / (nr - 1)) }
            rt = ""; rs = ""
            if ((nat SUBSEP 1) in ts) {
                n = 0
                for (r = 1; r <= nr; r++) if (ts[nat, r] > 0) q[++n] = ts[order[i], r] / ts[nat, r]
                if (n == 1) {
                    a = ts[order[i], 1]; as = sd[order[i], 1]; nt = ts[nat, 1]; ns = sd[nat, 1]
                    rt = sprintf("%.4f", q[1]); rs = sprintf("%.4f", q[1] * sqrt((a > 0 ? (as / a) ^ 2 : 0) + (ns / nt) ^ 2))
                } else if (n > 1) {
                    sort(q, n)
                    med = (n % 2) ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
                    rt = sprintf("%.4f", med); rs = sprintf("%.4f", (q[n] - q[1]) / 2)
                }
            }
            printf "%s,%s,%s,%.6f,%.6f,%s,%s\n", f[1], f[2], f[3], m, s, rt, rs
        }
    }' "$out/runs.csv" >"$out/results.csv"

# The table.
{
    echo "== $machine"
    echo "== backend $backend, $quant, threads $threads, llama-bench -p $prompt -n $gen -r $reps -ngl 99 ${extra[*]}$([ "$rounds" = 1 ] || echo "; $rounds rounds, ratios: median of the rounds (± half their range)")"
    [ "${#guest_env[@]}" = 0 ] || echo "== guest (virtgpu and rpc client) environment: ${guest_env[*]}"
    [ "${#user_server_args[@]}" = 0 ] || echo "== ggml-virtgpu-server arguments: ${user_server_args[*]}"
    echo "== load average: $load_start at start, $load_end at end; $started; source $(bench_source)"
    awk -F, -v cfgs="$configs" '
        NR == 1 { next }
        { key = $1 SUBSEP $2; if (!(key in seen)) { seen[key] = 1; order[++k] = key }
          cell[key, $3] = sprintf("%.2f ± %.2f", $4, $5)
          if ($6 != "") ratio[key, $3] = sprintf("%.3f ± %.3f", $6, $7) }
        END {
            nc = split(cfgs, c, ",")
            printf "%-6s %-8s", "model", "test"
            for (j = 1; j <= nc; j++) printf " %20s", c[j] " t/s"
            for (j = 1; j <= nc; j++) if (c[j] != "native") printf " %16s", c[j] "/native"
            printf "\n"
            for (i = 1; i <= k; i++) {
                split(order[i], p, SUBSEP)
                printf "%-6s %-8s", p[1], p[2]
                for (j = 1; j <= nc; j++) printf " %20s", ((order[i], c[j]) in cell) ? cell[order[i], c[j]] : "-"
                for (j = 1; j <= nc; j++) if (c[j] != "native")
                    printf " %16s", ((order[i], c[j]) in ratio) ? ratio[order[i], c[j]] : "-"
                printf "\n"
            }
        }' "$out/results.csv"
} | tee "$out/summary.txt"

# results.json: the settings, the machine and every row of results.csv.
{
    printf '{\n  "started": "%s",\n  "machine": "%s",\n  "source": "%s",\n  "backend": "%s",\n  "quant": "%s",\n' \
        "$started" "${machine//\"/\'}" "$(bench_source)" "$backend" "$quant"
    printf '  "threads": %s,\n  "llama_bench": "-p %s -n %s -r %s -ngl 99 %s",\n' \
        "$threads" "$prompt" "$gen" "$reps" "${extra[*]//\"/\'}"
    printf '  "load_average": {"start": %s, "end": %s},\n  "results": [\n' "$load_start" "$load_end"
    awk -F, 'NR > 1 {
        printf "%s    {\"size\": \"%s\", \"test\": \"%s\", \"config\": \"%s\", \"avg_ts\": %s, \"stddev_ts\": %s, \"ratio\": %s, \"ratio_sd\": %s}",
            (NR > 2 ? ",\n" : ""), $1, $2, $3, $4, $5, ($6 == "" ? "null" : $6), ($7 == "" ? "null" : $7)
    } END { printf "\n" }' "$out/results.csv"
    printf '  ]\n}\n'
} >"$out/results.json"

# ---- chart -------------------------------------------------------------------------------------------------
# ratios.dat: one line per (size, test); per non-native configuration, its ratio and sd.
awk -F, -v cfgs="$configs" '
    NR == 1 { next }
    { key = $1 "-" $2; if (!(key in seen)) { seen[key] = 1; order[++k] = key }; r[key, $3] = $6; e[key, $3] = $7 }
    END {
        nc = split(cfgs, c, ",")
        printf "label"; for (j = 1; j <= nc; j++) if (c[j] != "native") printf " %s %s_sd", c[j], c[j]; printf "\n"
        for (i = 1; i <= k; i++) {
            printf "%s", order[i]
            for (j = 1; j <= nc; j++) if (c[j] != "native")
                printf " %s %s", (r[order[i], c[j]] == "" ? "NaN" : r[order[i], c[j]]), (e[order[i], c[j]] == "" ? "0" : e[order[i], c[j]])
            printf "\n"
        }
    }' "$out/results.csv" >"$out/ratios.dat"
ncols=$(head -1 "$out/ratios.dat" | wc -w) # 1 + 2 per configuration
title="t/s relative to native ($backend, $quant, $threads threads)"
if [ "$ncols" -lt 3 ] || [[ ",$configs," != *,native,* ]]; then
    log "no chart: it needs native and at least one other configuration"
elif command -v gnuplot >/dev/null 2>&1; then
    gnuplot <<EOF 2>"$out/logs/gnuplot.log" || log "gnuplot failed (see logs/gnuplot.log)"
set terminal png size 1000,560 font ",11" noenhanced
set output "$out/ratios.png"
set title "$title"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set key top right
set ylabel "ratio to native (1.0 = native speed)"
set xtics rotate by -30
plot for [i=2:$ncols:2] "$out/ratios.dat" using i:i+1:xtic(1) title columnheader(i), \\
     1 with lines lw 2 dt 2 lc rgb "black" notitle
EOF
elif command -v python3 >/dev/null 2>&1 && python3 -c 'import matplotlib' 2>/dev/null; then
    python3 - "$out/ratios.dat" "$out/ratios.png" "$title" <<'EOF' || log "matplotlib failed; no chart"
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = [l.split() for l in open(sys.argv[1])]
head, rows = rows[0][1::2], rows[1:]
fig, ax = plt.subplots(figsize=(10, 5.6))
w = 0.8 / len(head)
for j, name in enumerate(head):
    ax.bar([i + j * w for i in range(len(rows))], [float(r[2 * j + 1]) for r in rows], w,
           yerr=[float(r[2 * j + 2]) for r in rows], capsize=3, label=name)
ax.axhline(1.0, color="black", linestyle="--")
ax.set_xticks([i + w * (len(head) - 1) / 2 for i in range(len(rows))], [r[0] for r in rows], rotation=30)
ax.set_ylabel("ratio to native (1.0 = native speed)")
ax.set_title(sys.argv[3])
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
EOF
else
    log "no chart: neither gnuplot nor matplotlib is installed (ratios.dat has the numbers)"
fi
[ -f "$out/ratios.png" ] && log "chart: $out/ratios.png"
log "done: $out/summary.txt, results.csv, results.json, raw/*.csv"
