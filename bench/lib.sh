# shellcheck shell=bash
# Helpers shared by bench/compare.sh and bench/micro.sh: locations, logging, and servers that
# the calling script starts on private endpoints (a unix socket in its own temporary
# directory, a loopback TCP port nobody listens on) and always stops on exit.
#
# The caller sets BENCH_NAME, then sources this file; it may then call:
#   bench_locate BUILD LLAMA_BIN      sets VGPU_BUILD and LLAMA_BIN (either may be empty: defaults)
#   bench_start_virtgpu LOG [ARGS..]  starts ggml-virtgpu-server; sets VGPU_SOCKET, VGPU_SERVER_PID
#   bench_wait_workers                waits until no worker of that server is left
#   bench_stop_virtgpu                stops it and checks that it exited cleanly
#   bench_start_rpc LOG [ARGS..]      starts the dependency's ggml-rpc-server on 127.0.0.1; sets
#                                     RPC_ENDPOINT, RPC_SERVER_PID
#   bench_stop_rpc
#   bench_machine                     prints a one-line description of this machine
#   bench_source                      prints the commit measured (and whether files changed)
# Everything fails through die (exit 1, a message on stderr).

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-bench.XXXXXX")
VGPU_SERVER_PID=
RPC_SERVER_PID=
VGPU_SOCKET=
RPC_ENDPOINT=

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*"; }
die() {
    printf '[%s] error: %s\n' "$BENCH_NAME" "$*" >&2
    exit 1
}

# Stops a process we started (by its id) and reaps it.
_bench_kill() {
    local pid=$1
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
}

_bench_cleanup() {
    local rc=$?
    _bench_kill "$VGPU_SERVER_PID"
    _bench_kill "$RPC_SERVER_PID"
    rm -rf "$BENCH_TMP"
    exit "$rc"
}
trap _bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_locate() {
    VGPU_BUILD=${1:-$BENCH_ROOT/build}
    VGPU_BUILD=$(cd "$VGPU_BUILD" 2>/dev/null && pwd) || die "no build directory ${1:-$BENCH_ROOT/build} (run scripts/setup.sh)"
    if [ -n "${2:-}" ]; then
        LLAMA_BIN=$2
    else
        local prefix
        prefix=$("$BENCH_ROOT/scripts/deps-prefix.sh") || die "the dependency is not built (run scripts/setup.sh, or pass --llama-bin)"
        LLAMA_BIN=$prefix/bin
    fi
    LLAMA_BIN=$(cd "$LLAMA_BIN" 2>/dev/null && pwd) || die "no directory $LLAMA_BIN"
    for f in "$VGPU_BUILD/bin/ggml-virtgpu-server" "$VGPU_BUILD/lib/libggml-virtgpu.so"; do
        [ -e "$f" ] || die "$f is missing (build this project first)"
    done
    export VGPU_BUILD LLAMA_BIN
}

# bench_start_virtgpu LOG [server args...]
bench_start_virtgpu() {
    local logf=$1
    shift
    VGPU_SOCKET="$BENCH_TMP/virtgpu.sock"
    rm -f "$VGPU_SOCKET"
    "$VGPU_BUILD/bin/ggml-virtgpu-server" --socket "$VGPU_SOCKET" --log-level warn "$@" >"$logf" 2>&1 &
    VGPU_SERVER_PID=$!
    for _ in $(seq 300); do
        [ -S "$VGPU_SOCKET" ] && return 0
        kill -0 "$VGPU_SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    tail -5 "$logf" >&2
    VGPU_SERVER_PID=
    die "ggml-virtgpu-server did not start (log: $logf)"
}

# Waits (up to 10 s) until the server has no worker process left: a worker finishes its
# client's context (and any trace files) after the client disconnects.
bench_wait_workers() {
    local kids f="/proc/$VGPU_SERVER_PID/task/$VGPU_SERVER_PID/children"
    for _ in $(seq 100); do
        if [ -r "$f" ]; then kids=$(cat "$f"); else kids=$(ps -o pid= --ppid "$VGPU_SERVER_PID" 2>/dev/null || true); fi
        [ -n "${kids// /}" ] || return 0
        sleep 0.1
    done
    log "warning: ggml-virtgpu-server still has workers ($kids)"
}

bench_stop_virtgpu() {
    [ -n "$VGPU_SERVER_PID" ] || return 0
    local rc=0
    kill "$VGPU_SERVER_PID" 2>/dev/null || true
    wait "$VGPU_SERVER_PID" || rc=$?
    VGPU_SERVER_PID=
    [ "$rc" = 0 ] || die "ggml-virtgpu-server exited with status $rc"
}

# True if something listens on TCP port $1 (IPv4 or IPv6), from /proc (no ss/netstat needed).
_bench_port_busy() {
    local hex
    hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }'
}

# bench_start_rpc LOG [ggml-rpc-server args...]: a free port on 127.0.0.1, retried on a clash.
bench_start_rpc() {
    local logf=$1
    shift
    local port try
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        _bench_port_busy "$port" && continue
        # GGML_BACKEND_PATH would make it load our module too; it serves the host's own devices.
        env -u GGML_BACKEND_PATH -u GGML_VIRTGPU_SOCKET \
            "$LLAMA_BIN/ggml-rpc-server" -H 127.0.0.1 -p "$port" "$@" >"$logf" 2>&1 &
        RPC_SERVER_PID=$!
        for _ in $(seq 600); do
            if _bench_port_busy "$port" && kill -0 "$RPC_SERVER_PID" 2>/dev/null; then
                RPC_ENDPOINT=127.0.0.1:$port
                return 0
            fi
            kill -0 "$RPC_SERVER_PID" 2>/dev/null || break
            sleep 0.05
        done
        _bench_kill "$RPC_SERVER_PID"
        RPC_SERVER_PID=
        log "ggml-rpc-server did not listen on port $port (try $try); log: $(tail -1 "$logf")"
    done
    die "could not start ggml-rpc-server (log: $logf)"
}

bench_stop_rpc() {
    _bench_kill "$RPC_SERVER_PID"
    RPC_SERVER_PID=
    # shellcheck disable=SC2034 # read by the scripts that source this file
    RPC_ENDPOINT=
}

# One line: CPU model, core count, memory, GPU (if nvidia-smi answers), kernel.
bench_machine() {
    local cpu cores mem gpu=""
    cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
    cores=$(nproc)
    mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
    if command -v nvidia-smi >/dev/null 2>&1; then
        gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
    fi
    printf '%s, %s CPUs, %s RAM%s, Linux %s\n' "${cpu:-unknown CPU}" "$cores" "$mem" "${gpu:+, GPU $gpu}" "$(uname -r)"
}

# The source measured: "<commit> (+N changed files)", or "unknown" outside a git checkout.
bench_source() {
    local head changed
    if head=$(git -C "$BENCH_ROOT" rev-parse --short=12 HEAD 2>/dev/null); then
        changed=$(git -C "$BENCH_ROOT" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
        printf 'commit %s%s\n' "$head" "$([ "$changed" = 0 ] || echo " (+$changed changed files)")"
    else
        echo unknown
    fi
}

# The 1-minute load average.
bench_load() { cut -d' ' -f1 /proc/loadavg; }
