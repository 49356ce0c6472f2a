# shellcheck shell=bash disable=SC2034 # the variables set here are for the scripts that source it
# Helpers of the GPU-machine scripts (bench/gpu/*.sh). Every script works in one directory
# WORK, laid out as:
#   WORK/deps/src, WORK/deps/build   llama.cpp unpacked and built (build-deps.sh)
#   WORK/project                     this project built against it (build-project.sh)
#   WORK/models                      generated and quantized models (run-bench.sh)
#   WORK/results/<what>              results (run-bench.sh, conformance.sh)
#   WORK/status/<script>             one line: "running ...", "ok ..." or "failed ..."
#   WORK/logs/<script>.log           everything the script printed
# A script started with --detach re-starts itself in a new session (setsid nohup), returns
# at once and is then followed with bench/gpu/status.sh WORK [--wait SECONDS].
#
# A script calls, after parsing its arguments:
#   gpu_begin NAME WORK DETACH "$0" ARGS...   (ARGS: its own arguments, --detach removed)
# which either detaches (and exits) or sets up the log and the status file; the status turns
# into "ok" or "failed" when the script exits. gpu_phase TEXT updates a running status;
# gpu_at_exit FUNCTION adds a clean-up step (never trap EXIT in a script: gpu_begin owns it).

GPU_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GPU_NAME=
GPU_WORK=
GPU_START=

gpu_log() { printf '[%s %s] %s\n' "$GPU_NAME" "$(date +%H:%M:%S)" "$*"; }
gpu_die() {
    printf '[%s %s] error: %s\n' "$GPU_NAME" "$(date +%H:%M:%S)" "$*" >&2
    [ -n "$GPU_WORK" ] && printf '%s\n' "$*" >"$GPU_WORK/status/$GPU_NAME.why"
    exit 1
}

_gpu_status() { printf '%s\n' "$*" >"$GPU_WORK/status/$GPU_NAME"; }

# gpu_at_exit FUNCTION: FUNCTION runs when the script exits, before the status is written, with
# GPU_RC set to the exit status and errexit off (a failing command in it must not cut it short).
GPU_AT_EXIT=()
GPU_RC=0
gpu_at_exit() { GPU_AT_EXIT+=("$1"); }

_gpu_end() {
    local rc=$? hook
    set +e
    GPU_RC=$rc
    for hook in "${GPU_AT_EXIT[@]}"; do "$hook"; done
    local took=$(($(date +%s) - GPU_START))
    if [ "$rc" = 0 ]; then
        _gpu_status "ok after ${took} s, $(date -u +%H:%M:%SZ)"
    else
        _gpu_status "failed (status $rc) after ${took} s: $(cat "$GPU_WORK/status/$GPU_NAME.why" 2>/dev/null || echo "see logs/$GPU_NAME.log")"
    fi
    exit "$rc"
}

# gpu_running NAME WORK: prints the pid and succeeds if NAME runs in WORK (status "running" or
# "starting" and its process alive).
gpu_running() {
    local pid
    grep -qE '^(running|starting)' "$2/status/$1" 2>/dev/null || return 1
    pid=$(cat "$2/status/$1.pid" 2>/dev/null || true)
    [ -n "$pid" ] && [ "$pid" != "$$" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# gpu_begin NAME WORK DETACH SCRIPT [ARGS...]
gpu_begin() {
    GPU_NAME=$1 GPU_WORK=$2
    local detach=$3 pid
    shift 3
    mkdir -p "$GPU_WORK/status" "$GPU_WORK/logs"
    GPU_WORK=$(cd "$GPU_WORK" && pwd)
    local logf="$GPU_WORK/logs/$GPU_NAME.log"
    # One instance per WORK: a second would build or measure over the first.
    if pid=$(gpu_running "$GPU_NAME" "$GPU_WORK"); then
        echo "$GPU_NAME is already running in $GPU_WORK (pid $pid); follow it with bench/gpu/status.sh $GPU_WORK"
        [ "$detach" = 1 ] && exit 0
        exit 1
    fi
    if [ "$detach" = 1 ]; then
        rm -f "$GPU_WORK/status/$GPU_NAME.why" "$GPU_WORK/status/$GPU_NAME.pid"
        printf 'starting\n' >"$GPU_WORK/status/$GPU_NAME"
        # The log keeps earlier attempts (the status shows its end).
        printf '==== %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$logf"
        # A new session: it survives the calling shell, and on the GPU machine the end of the
        # call that started it (README.md).
        GPU_DETACHED=1 setsid nohup "$@" >>"$logf" 2>&1 </dev/null &
        echo "$!" >"$GPU_WORK/status/$GPU_NAME.pid"
        echo "$GPU_NAME started in the background (pid $!); log $logf"
        echo "follow it with: bench/gpu/status.sh $GPU_WORK --wait 540"
        exit 0
    fi
    rm -f "$GPU_WORK/status/$GPU_NAME.why"
    if [ "${GPU_DETACHED:-0}" != 1 ]; then
        # In the foreground: to the terminal and to the log.
        exec > >(tee -a "$logf") 2>&1
    fi
    echo "$$" >"$GPU_WORK/status/$GPU_NAME.pid"
    GPU_START=$(date +%s)
    _gpu_status "running since $(date -u +%H:%M:%SZ)"
    trap _gpu_end EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

gpu_phase() { _gpu_status "running since $(date -u -d "@$GPU_START" +%H:%M:%SZ): $*"; gpu_log "$*"; }

# Locations of a WORK directory's pieces (after gpu_begin).
gpu_paths() {
    DEPS_SRC=$GPU_WORK/deps/src
    DEPS_BUILD=$GPU_WORK/deps/build
    PROJECT_BUILD=$GPU_WORK/project
    MODELS=$GPU_WORK/models
    RESULTS=$GPU_WORK/results
}
