#!/usr/bin/env bash
# GPU machine, after build-deps.sh, build-project.sh and run-bench.sh --models-only (or all.sh):
# where the prompt-processing gap comes from. For each model size, `llama-bench -p 512 -n 0 -r N
# -ngl 99` natively (-dev CUDA0) and through the server (-dev VirtGPU0) with GGML_VIRTGPU_PROFILE=1
# on both sides (host library and guest module: docs/PERFORMANCE.md "Profiling"), at the default
# ubatch (one ubatch, its graph reused) and with -ub 256 (two ubatches of different shape per
# prompt: a new graph each), in interleaved rounds. One server per run, so that each host table
# covers one run.
# Results in OUT:
#   SIZE-CONFIG-ubUB.rR.csv         llama-bench's CSV
#   SIZE-CONFIG-ubUB.rR.log         its stderr (through the server: the guest's profile tables)
#   SIZE-CONFIG-ubUB.rR.server.log  the server's log (the host's profile table)
#   summary.txt                     t/s, ms per prompt and per ubatch of every run; ratios to native
#
# Usage: bench/gpu/profile-pp.sh [--backend cuda|cpu] [--sizes LIST] [--reps N] [--rounds N]
#                                [--project DIR]... WORK OUT
#   --backend B    cuda (default), or cpu to try the script on a machine without a GPU
#   --sizes LIST   default 1b
#   --reps N       llama-bench -r (default 20)
#   --rounds N     interleaved rounds (default 2)
#   --project DIR  a build of this project to measure through (repeatable, e.g. a build with a
#                  fix beside one without: each is named by its directory's basename in the
#                  results); default WORK/project (build-project.sh)
#   --also-plain   each project a second time without profiling (NAME-plain), to see what the
#                  profiling itself costs
#   --config SPEC  one more configuration, SPEC = NAME:DIR[:plain|:timeline][:VAR=VALUE]...:
#                  through the build DIR, without profiling if "plain", with timelines
#                  (GGML_VIRTGPU_PROFILE=2) if "timeline", with VAR=VALUE in the guest's
#                  environment (e.g. fix-spin:WORK/fix:GGML_VIRTGPU_SPIN_US=100000)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

backend=cuda sizes=1b reps=20 rounds=2 projects=() plain=0 extra=() pos=()
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --sizes) sizes=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --project) projects+=("$(cd "$2" && pwd)"); shift 2 ;;
        --also-plain) plain=1; shift ;;
        --config) extra+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "profile-pp.sh: unknown option $1" >&2; exit 2 ;;
        *) pos+=("$1"); shift ;;
    esac
done
[ "${#pos[@]}" = 2 ] || { echo "usage: profile-pp.sh [options] WORK OUT" >&2; exit 2; }
gpu_begin profile-pp "${pos[0]}" 0 "$0"
gpu_paths
mkdir -p "${pos[1]}"
out=$(cd "${pos[1]}" && pwd)
[ "${#projects[@]}" -gt 0 ] || [ "${#extra[@]}" -gt 0 ] || projects=("$PROJECT_BUILD")
bin=$DEPS_BUILD/bin
case "$backend" in
    cuda) native_dev=(-dev CUDA0) ;;
    cpu) native_dev=() ;;
    *) gpu_die "--backend must be cuda or cpu" ;;
esac
[ -f "$bin/libggml-$backend.so" ] || gpu_die "no libggml-$backend.so in $bin (build-deps.sh)"

# The configurations besides native: parallel arrays of name, build, profiling, guest env.
c_name=() c_dir=() c_prof=() c_env=()
for p in "${projects[@]}"; do
    c_name+=("$(basename "$p")") c_dir+=("$p") c_prof+=(1) c_env+=("")
done
if [ "$plain" = 1 ]; then
    for p in "${projects[@]}"; do
        c_name+=("$(basename "$p")-plain") c_dir+=("$p") c_prof+=(0) c_env+=("")
    done
fi
for spec in "${extra[@]}"; do
    IFS=: read -ra f <<<"$spec"
    [ "${#f[@]}" -ge 2 ] || gpu_die "--config $spec: NAME:DIR[:plain][:VAR=VALUE]..."
    pr=1 ev=""
    for x in "${f[@]:2}"; do
        case "$x" in
            plain) pr=0 ;;
            timeline) pr=2 ;;
            *=*) ev="$ev $x" ;;
            *) gpu_die "--config $spec: what is '$x'?" ;;
        esac
    done
    c_name+=("${f[0]}") c_dir+=("$(cd "${f[1]}" && pwd)") c_prof+=("$pr") c_env+=("$ev")
done
for p in "${c_dir[@]}"; do
    [ -x "$p/bin/ggml-virtgpu-server" ] || gpu_die "no server in $p (build-project.sh)"
done

# run SIZE CONFIG UB ROUND [PROJECT [PROFILE [ENV]]]: one llama-bench run; CONFIG native or a
# configuration's name; PROFILE 1 (default), 0 or 2; ENV: VAR=VALUE words for the guest.
run() {
    local size=$1 cfg=$2 ub=$3 r=$4 proj=${5:-} prof=${6:-1} model=$MODELS/$1-Q4_0.gguf
    local -a genv
    read -ra genv <<<"${7:-}"
    local base=$out/$size-$cfg-ub$ub.r$r sock spid rc=0
    local args=(-m "$model" -p 512 -n 0 -r "$reps" -t "$(nproc)" -ngl 99 -o csv)
    [ "$ub" = 512 ] || args+=(-ub "$ub")
    if [ -z "$proj" ]; then
        env -u GGML_BACKEND_PATH -u GGML_VIRTGPU_SOCKET timeout -k 10 300 \
            "$bin/llama-bench" "${args[@]}" "${native_dev[@]}" >"$base.csv" 2>"$base.log" || rc=$?
    else
        sock=$(mktemp -u /tmp/profile-pp.XXXXXX.sock)
        GGML_VIRTGPU_PROFILE=$prof "$proj/bin/ggml-virtgpu-server" --socket "$sock" --log-level warn \
            --backend "$bin/libggml-$backend.so" >"$base.server.log" 2>&1 &
        spid=$!
        for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
        env "${genv[@]}" CUDA_VISIBLE_DEVICES= GGML_VIRTGPU_PROFILE=$prof GGML_BACKEND_PATH="$proj/lib/libggml-virtgpu.so" \
            GGML_VIRTGPU_SOCKET="$sock" timeout -k 10 300 \
            "$bin/llama-bench" "${args[@]}" -dev VirtGPU0 >"$base.csv" 2>"$base.log" || rc=$?
        # The worker prints the host's table when the client's context ends: let it finish.
        for _ in $(seq 100); do
            pgrep -P "$spid" >/dev/null 2>&1 || break
            sleep 0.1
        done
        kill "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        rm -f "$sock"
    fi
    [ "$rc" = 0 ] || gpu_log "llama-bench $size $cfg ub $ub round $r failed (status $rc, $base.log)"
}

# The t/s mean and sd of a CSV: its last two columns (a value before them, "backends", may hold
# a comma: CUDA,VirtGPU in a guest on the GPU machine).
tps() {
    [ -f "$1" ] || return 0
    awk -F, 'NR > 1 { a = $(NF - 1); s = $NF; gsub(/"/, "", a); gsub(/"/, "", s); v = a " " s } END { if (v != "") print v }' "$1"
}

IFS=, read -ra size_list <<<"$sizes"
gpu_log "sizes ${sizes}, -r $reps, $rounds rounds, through: ${c_name[*]}"
for size in "${size_list[@]}"; do
    [ -f "$MODELS/$size-Q4_0.gguf" ] || gpu_die "no model $MODELS/$size-Q4_0.gguf (run-bench.sh --models-only)"
    for ((r = 1; r <= rounds; r++)); do
        for ub in 512 256; do
            gpu_phase "$size ub $ub round $r"
            run "$size" native "$ub" "$r"
            for i in "${!c_name[@]}"; do
                run "$size" "${c_name[$i]}" "$ub" "$r" "${c_dir[$i]}" "${c_prof[$i]}" "${c_env[$i]}"
            done
        done
    done
done

{
    echo "== llama-bench -p 512 -n 0 -r $reps -ngl 99, $(nproc) threads; $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
    printf '%-5s %-14s %-4s %-3s %10s %8s %9s %9s %7s\n' size config ub rnd t/s sd ms/prompt ms/ubatch ratio
    for size in "${size_list[@]}"; do
        for ub in 512 256; do
            for ((r = 1; r <= rounds; r++)); do
                nat=$(tps "$out/$size-native-ub$ub.r$r.csv")
                nat=${nat%% *}
                for cfg in native "${c_name[@]}"; do
                    v=$(tps "$out/$size-$cfg-ub$ub.r$r.csv")
                    t=${v%% *} sd=${v##* }
                    [ -n "$t" ] || { printf '%-5s %-14s %-4s %-3s %10s\n' "$size" "$cfg" "$ub" "$r" failed; continue; }
                    awk -v s="$size" -v c="$cfg" -v u="$ub" -v r="$r" -v t="$t" -v sd="$sd" -v n="${nat:-0}" 'BEGIN {
                        ms = 512 / t * 1000
                        printf "%-5s %-14s %-4s %-3s %10.1f %8.1f %9.3f %9.3f %7s\n", s, c, u, r, t, sd, ms, ms / (512 / u),
                               (n > 0 ? sprintf("%.3f", t / n) : "-") }'
                done
            done
        done
    done
} >"$out/summary.txt"
cat "$out/summary.txt"
