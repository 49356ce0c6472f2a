#!/usr/bin/env bash
# GPU machine, everything in one go, for a session whose machine is held at most 30 minutes:
#   build-deps.sh (CUDA sm_90, about 9 min) and, as soon as its phase 1 is done, meanwhile
#   build-project.sh (under 1 min) and the models (run-bench.sh --models-only, about 4 min);
#   then run-bench.sh (compare.sh, micro.sh, calls.sh: about 4 min) and conformance.sh (the
#   whole suite, its test mode cut at --deadline);
#   finally WORK/results.tar.gz (results, logs, status: one file to bring back; written on a
#   failure too).
# With --detach it copies the sources to WORK/repo and runs from there in a new session, so
# that it outlives the call that started it and later calls (which lay the working tree anew)
# change nothing under it. Follow it with bench/gpu/status.sh WORK --wait 540 --out DIR
# (bench/gpu/README.md has the command lines for the GPU machine).
#
# Usage: bench/gpu/all.sh [--detach] [--backend cuda|cpu] [--sizes LIST] [--cases all|FILE]
#                         [--jobs N] [--deadline MIN] [--no-conformance] TARBALL WORK
#   --backend cpu   a dry run on a machine without a GPU (the dependency without CUDA)
#   --sizes         models for compare.sh (default 1b,8b)
#   --cases         conformance cases (default all)
#   --jobs N        compile jobs (default nproc)
#   --deadline MIN  conformance's test mode stops (conformance.sh --timeout) so that all.sh ends
#                   about MIN minutes after it started (default 23; 0: no limit)
# Exit status: 0 every step passed; 1 otherwise (the steps after a failed benchmark or
# conformance step still run, and the tarball is still written).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

detach=0 backend=cuda sizes=1b,8b cases=all jobs=$(nproc) deadline=23 conformance=1 pos=() args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --detach) detach=1; shift; continue ;;
        --backend) backend=$2; args+=("$1" "$2"); shift 2 ;;
        --sizes) sizes=$2; args+=("$1" "$2"); shift 2 ;;
        --cases) cases=$2; [ "$2" = all ] || cases=$(realpath "$2"); args+=("$1" "$cases"); shift 2 ;;
        --jobs) jobs=$2; args+=("$1" "$2"); shift 2 ;;
        --deadline) deadline=$2; args+=("$1" "$2"); shift 2 ;;
        --no-conformance) conformance=0; args+=("$1"); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "all.sh: unknown option $1" >&2; exit 2 ;;
        *) pos+=("$1"); shift ;;
    esac
done
if [ "${#pos[@]}" != 2 ]; then
    echo "usage: all.sh [--detach] [options] TARBALL WORK" >&2
    exit 2
fi
tarball=$(realpath "${pos[0]}")
[ -f "$tarball" ] || { echo "all.sh: no tarball $tarball" >&2; exit 2; }
case "$backend" in cuda|cpu) ;; *) echo "all.sh: --backend must be cuda or cpu" >&2; exit 2 ;; esac
[[ "$deadline" =~ ^[0-9]+$ ]] || { echo "all.sh: --deadline takes minutes" >&2; exit 2; }
if [ "$cases" != all ] && [ ! -s "$cases" ]; then echo "all.sh: no case list ${cases}" >&2; exit 2; fi
args+=("$tarball" "${pos[1]}")

# On the GPU machine every call lays the working tree anew: a detached run works from its own
# copy of the sources (WORK/repo), so that a later call cannot change them under it.
if [ "$detach" = 1 ] && [ "${GPU_SNAPSHOT:-0}" != 1 ]; then
    mkdir -p "${pos[1]}"
    work=$(cd "${pos[1]}" && pwd)
    if pid=$(gpu_running all "$work"); then
        echo "all is already running in $work (pid $pid); follow it with bench/gpu/status.sh $work"
        exit 0
    fi
    rm -rf "$work/repo.new"
    mkdir -p "$work/repo.new"
    tar -C "$GPU_REPO" --exclude=./.git --exclude=./build --exclude='./build-*' --exclude=./.device \
        --exclude=./.deps --exclude=./.gl --exclude=./.whl --exclude='*.gguf' -cf - . | tar -C "$work/repo.new" -xf -
    # An older copy is moved aside, not deleted: a build-deps.sh that an earlier all.sh left
    # running may still be reading its scripts from it.
    [ ! -d "$work/repo" ] || mv "$work/repo" "$work/repo.old-$(date +%s%N)"
    mv "$work/repo.new" "$work/repo"
    # A case list inside the checkout is read from the copy too; WORK is made absolute, and
    # the run starts in the copy (the checkout's directory may be replaced under it).
    for i in "${!args[@]}"; do
        [[ "${args[$i]}" == "$GPU_REPO"/* && -f "$work/repo/${args[$i]#"$GPU_REPO"/}" ]] &&
            args[i]=$work/repo/${args[$i]#"$GPU_REPO"/}
    done
    args[${#args[@]} - 1]=$work
    cd "$work/repo"
    exec env GPU_SNAPSHOT=1 "$work/repo/bench/gpu/all.sh" --detach "${args[@]}"
fi
gpu_begin all "${pos[1]}" "$detach" "$0" "${args[@]}"
gpu_paths
here=$GPU_REPO/bench/gpu
# Whatever happens, WORK/results.tar.gz holds what there is (results, logs, status).
pack() {
    tar -czf "$GPU_WORK/results.tar.gz.tmp" -C "$GPU_WORK" results logs status 2>/dev/null &&
        mv "$GPU_WORK/results.tar.gz.tmp" "$GPU_WORK/results.tar.gz"
}
pack_on_failure() { [ "$GPU_RC" = 0 ] || pack; }
mkdir -p "$GPU_WORK/results"
rm -f "$GPU_WORK/results.tar.gz"
gpu_at_exit pack_on_failure
case "$backend" in cuda) deps_opts=() ;; cpu) deps_opts=(--cpu-only) ;; esac
gpu_log "machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)$(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 | sed 's/^/, /')"

# ---- dependency (background) + project and models (meanwhile) ------------------------------
# deps_pid: a build-deps.sh still running (ours, or one left by an earlier all.sh), "" if none.
deps_pid=
deps_failed() { gpu_die "build-deps.sh failed: $(cat "$GPU_WORK/status/build-deps" 2>/dev/null)"; }
# deps_wait FILE: until FILE exists; fails if build-deps.sh ends without it.
deps_wait() {
    while [ ! -f "$1" ]; do
        if ! kill -0 "$deps_pid" 2>/dev/null; then
            wait "$deps_pid" 2>/dev/null || true
            [ -f "$1" ] || deps_failed
        fi
        sleep 5
    done
}
if [ -f "$GPU_WORK/deps/build.ok" ] && { [ "$backend" = cpu ] || [ -f "$DEPS_BUILD/bin/libggml-cuda.so" ]; }; then
    gpu_log "the dependency is already built"
elif deps_pid=$(gpu_running build-deps "$GPU_WORK"); then
    gpu_phase "build-deps.sh is already running (pid $deps_pid): following it"
    deps_wait "$GPU_WORK/deps/phase1.ok"
else
    rm -f "$GPU_WORK/deps/phase1.ok" "$GPU_WORK/deps/build.ok"
    gpu_phase "build-deps.sh (log: logs/build-deps.log)"
    GPU_DETACHED=1 "$here/build-deps.sh" --jobs "$jobs" "${deps_opts[@]}" "$tarball" "$GPU_WORK" \
        >"$GPU_WORK/logs/build-deps.log" 2>&1 &
    deps_pid=$!
    deps_wait "$GPU_WORK/deps/phase1.ok"
fi

gpu_phase "build-project.sh"
GPU_DETACHED=1 "$here/build-project.sh" --jobs "$jobs" "$GPU_WORK" >"$GPU_WORK/logs/build-project.log" 2>&1 ||
    gpu_die "build-project.sh failed: $(cat "$GPU_WORK/status/build-project")"
gpu_phase "models ($sizes)"
GPU_DETACHED=1 "$here/run-bench.sh" --models-only --sizes "$sizes" "$GPU_WORK" >"$GPU_WORK/logs/models.log" 2>&1 ||
    gpu_die "preparing the models failed: $(cat "$GPU_WORK/status/models")"
if [ -n "$deps_pid" ]; then
    gpu_phase "waiting for build-deps.sh (phase 2)"
    deps_wait "$GPU_WORK/deps/build.ok"
fi

# ---- benchmarks, then conformance ---------------------------------------------------------------
failed=""
gpu_phase "run-bench.sh --backend $backend --sizes $sizes"
GPU_DETACHED=1 "$here/run-bench.sh" --backend "$backend" --sizes "$sizes" "$GPU_WORK" >"$GPU_WORK/logs/run-bench.log" 2>&1 ||
    failed="$failed run-bench"
if [ "$conformance" = 1 ]; then
    climit=()
    if [ "$deadline" != 0 ]; then
        # What is left until the deadline, less a minute for the support listings and packing.
        left=$((GPU_START + deadline * 60 - $(date +%s) - 60))
        [ "$left" -ge 60 ] || left=60
        climit=(--timeout "$left")
    fi
    gpu_phase "conformance.sh --backend $backend --cases $(basename "$cases") ${climit[*]}"
    GPU_DETACHED=1 "$here/conformance.sh" --backend "$backend" --cases "$cases" "${climit[@]}" "$GPU_WORK" \
        >"$GPU_WORK/logs/conformance.log" 2>&1 || failed="$failed conformance"
fi

gpu_phase "packing results.tar.gz"
pack
for f in results/compare/summary.txt results/micro/summary.txt results/calls/summary.txt results/conformance/summary.txt; do
    if [ -f "$GPU_WORK/$f" ]; then echo "---- $f"; cat "$GPU_WORK/$f"; fi
done
gpu_log "results: $GPU_WORK/results.tar.gz ($(du -h "$GPU_WORK/results.tar.gz" | cut -f1))"
[ -z "$failed" ] || gpu_die "failed:$failed"
