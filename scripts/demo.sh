#!/usr/bin/env bash
# README command 1: the main job. Sets up, generates a model, starts ggml-virtgpu-server on
# the CPU backend, runs llama.cpp through the remoting stack (llama-completion, then a short
# llama-bench next to the native run), and stops the server.
#
# Environment: DEMO_SIZE (tiny|1b|8b, default tiny), DEMO_PROMPT, DEMO_TOKENS (default 64).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

"$here/setup.sh"
prefix=$("$here/deps-prefix.sh")
size=${DEMO_SIZE:-tiny}
prompt=${DEMO_PROMPT:-"The quick brown fox"}
tokens=${DEMO_TOKENS:-64}

model="$root/build/models/$size.gguf"
if [ ! -f "$model" ]; then
    mkdir -p "$root/build/models"
    "$root/build/bin/ggml-virtgpu-gen-model" --size "$size" -o "$model"
fi

work=$(mktemp -d)
sock="$work/virtgpu.sock"
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "== host: ggml-virtgpu-server on the CPU backend"
"$root/build/bin/ggml-virtgpu-server" --socket "$sock" --log-level info &
server_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "demo: the server did not start" >&2; exit 1; }
"$root/build/bin/ggml-virtgpu-server" --list-devices

# The guest: stock llama.cpp tools load our backend module and talk to the server.
export GGML_BACKEND_PATH="$root/build/lib/libggml-virtgpu.so"
export GGML_VIRTGPU_SOCKET="$sock"

echo "== guest: llama-completion through VirtGPU0 (greedy, $tokens tokens)"
"$prefix/bin/llama-completion" -m "$model" -p "$prompt" -n "$tokens" --temp 0 \
    -ngl 99 -dev VirtGPU0 -no-cnv </dev/null

echo "== llama-bench: native CPU, then through VirtGPU0 (same host backend)"
env -u GGML_BACKEND_PATH -u GGML_VIRTGPU_SOCKET \
    "$prefix/bin/llama-bench" -m "$model" -p 64 -n 32 -r 2 -o md
"$prefix/bin/llama-bench" -m "$model" -p 64 -n 32 -r 2 -ngl 99 -dev VirtGPU0 -o md
