# shellcheck shell=bash
# Shared helpers of the integration tests. CTest passes the locations through the environment:
#   VGPU_BUILD   this project's build directory (bin/, lib/)
#   LLAMA_BIN    the dependency's bin/ (test-backend-ops, llama-completion, llama-bench, ...)
#   VGPU_SCRATCH a scratch directory for this test (created, emptied on exit)
# A test sources this file, calls vgpu_start_server, and runs guest programs with
# vgpu_guest_env set. Every helper fails the test (exit 1) with a message on error.
set -Eeuo pipefail
# A command that fails under `set -e` ends the test; say where, so that no failure is silent.
trap 'echo "FAIL: $(basename "$0") line $LINENO: a command exited with status $?" >&2' ERR

: "${VGPU_BUILD:?VGPU_BUILD not set}"
: "${LLAMA_BIN:?LLAMA_BIN not set}"
: "${VGPU_SCRATCH:?VGPU_SCRATCH not set}"

VGPU_SERVER_PID=
VGPU_SOCKET=
VGPU_RPC_PIDS=()
VGPU_RPC_EP=

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

note() {
    echo "[$(basename "$0")] $*"
}

_vgpu_cleanup() {
    local p
    for p in "${VGPU_RPC_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$VGPU_SERVER_PID" ] && kill -0 "$VGPU_SERVER_PID" 2>/dev/null; then
        kill "$VGPU_SERVER_PID" 2>/dev/null || true
        wait "$VGPU_SERVER_PID" 2>/dev/null || true
    fi
}
trap _vgpu_cleanup EXIT

rm -rf "$VGPU_SCRATCH"
mkdir -p "$VGPU_SCRATCH"

# vgpu_start_server [server options...]: starts ggml-virtgpu-server on a fresh socket in the
# scratch directory, logging to $VGPU_SCRATCH/server.log, and waits until it listens.
vgpu_start_server() {
    VGPU_SOCKET="$VGPU_SCRATCH/virtgpu.sock"
    "$VGPU_BUILD/bin/ggml-virtgpu-server" --socket "$VGPU_SOCKET" "$@" \
        >"$VGPU_SCRATCH/server.log" 2>&1 &
    VGPU_SERVER_PID=$!
    for _ in $(seq 200); do
        [ -S "$VGPU_SOCKET" ] && return 0
        kill -0 "$VGPU_SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$VGPU_SCRATCH/server.log" >&2
    fail "ggml-virtgpu-server did not start"
}

# vgpu_stop_server: stops it (SIGTERM) and checks that it exited cleanly.
vgpu_stop_server() {
    kill "$VGPU_SERVER_PID"
    local rc=0
    wait "$VGPU_SERVER_PID" || rc=$?
    VGPU_SERVER_PID=
    [ "$rc" = 0 ] || fail "server exited with status $rc on SIGTERM (log: $VGPU_SCRATCH/server.log)"
}

# vgpu_guest: runs a command as a guest application (our backend module, our socket). In a
# sanitizer build the sanitizer runtimes are preloaded into it (VGPU_PRELOAD, set by CMake);
# leak checking stays on for our own programs but not for the dependency's tools.
vgpu_guest() {
    if [ -n "${VGPU_PRELOAD:-}" ]; then
        LD_PRELOAD="$VGPU_PRELOAD" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
            GGML_BACKEND_PATH="$VGPU_BUILD/lib/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$VGPU_SOCKET" "$@"
    else
        GGML_BACKEND_PATH="$VGPU_BUILD/lib/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$VGPU_SOCKET" "$@"
    fi
}

# vgpu_tiny_model: prints the path of the tiny model, generating it once per build tree.
vgpu_tiny_model() {
    local m="$VGPU_BUILD/test-models/tiny.gguf"
    if [ ! -f "$m" ]; then
        mkdir -p "$(dirname "$m")"
        # Tests may run in parallel: write privately, then rename atomically.
        "$VGPU_BUILD/bin/ggml-virtgpu-gen-model" --size tiny -o "$m.$$" >/dev/null
        mv "$m.$$" "$m"
    fi
    echo "$m"
}

# vgpu_tiny_model_q4_0: the tiny model quantized to Q4_0 (the type whose matrices ggml-cpu
# repacks), made once per build tree.
vgpu_tiny_model_q4_0() {
    local f16 m="$VGPU_BUILD/test-models/tiny-Q4_0.gguf"
    f16=$(vgpu_tiny_model)
    if [ ! -f "$m" ]; then
        "$LLAMA_BIN/llama-quantize" "$f16" "$m.$$" Q4_0 >"$VGPU_SCRATCH/quantize.log" 2>&1 ||
            fail "llama-quantize failed: $(tail -3 "$VGPU_SCRATCH/quantize.log")"
        mv "$m.$$" "$m"
    fi
    echo "$m"
}

# vgpu_start_rpc NAME: starts one of the dependency's ggml-rpc-servers (CPU, one thread) on a
# free loopback port, logging to $VGPU_SCRATCH/NAME.log, and waits until it accepts
# connections; sets VGPU_RPC_EP to its HOST:PORT. It is stopped when the test exits.
vgpu_start_rpc() {
    local name=$1 port pid
    for port in $(shuf -i 20000-60000 -n 20); do
        "$LLAMA_BIN/ggml-rpc-server" -H 127.0.0.1 -p "$port" -t 1 >"$VGPU_SCRATCH/$name.log" 2>&1 &
        pid=$!
        VGPU_RPC_PIDS+=("$pid")
        for _ in $(seq 50); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                VGPU_RPC_EP="127.0.0.1:$port"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
    done
    fail "no ggml-rpc-server could start (log: $VGPU_SCRATCH/$name.log)"
}
