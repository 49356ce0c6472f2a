#!/usr/bin/env bash
# No server: an application loading our backend starts, sees no VirtGPU device, says why in one
# line, and keeps working on its other backends.
. "$(dirname "$0")/lib.sh"
S=$VGPU_SCRATCH
VGPU_SOCKET="$S/nobody-listens.sock"

# llama.cpp's logger prints warnings on stdout or stderr depending on the tool: read both.
# Its logger queues lines for a worker thread, and --list-devices exits right after printing,
# so now and then a queued line is lost (seen once in CI: the device list, no warning). A lost
# line gets up to two more runs; a module that never prints it still fails.
for _ in 1 2 3; do
    vgpu_guest "$LLAMA_BIN/llama-completion" --list-devices </dev/null >"$S/list.out" 2>&1 ||
        fail "llama-completion --list-devices failed without a server: $(tail -3 "$S/list.out")"
    grep -q "ggml-virtgpu: no host" "$S/list.out" && break
done
if grep -q "VirtGPU[0-9]" "$S/list.out"; then fail "a VirtGPU device was listed without a server"; fi
n=$(grep -c "ggml-virtgpu: no host" "$S/list.out" || true)
[ "$n" = 1 ] || fail "expected exactly one 'ggml-virtgpu: no host' line, got $n: $(cat "$S/list.out")"
grep "ggml-virtgpu: no host" "$S/list.out" | grep -q "$VGPU_SOCKET" ||
    fail "the reason line does not name the socket: $(grep ggml-virtgpu "$S/list.out")"
note "reason given: $(grep 'ggml-virtgpu: no host' "$S/list.out")"

# The application still runs its workload on the CPU.
model=$(vgpu_tiny_model)
vgpu_guest "$VGPU_BUILD/bin/llama-greedy" "$model" "$S/cpu" --device none --tokens 4 2>"$S/cpu.err" ||
    fail "a CPU-only run failed with the backend loaded and no server: $(tail -3 "$S/cpu.err")"

# Unset socket: same behaviour, and the line says there is no transport configured.
for _ in 1 2 3; do
    GGML_BACKEND_PATH="$VGPU_BUILD/lib/libggml-virtgpu.so" \
        "$LLAMA_BIN/llama-completion" --list-devices </dev/null >"$S/list2.out" 2>&1 ||
        fail "llama-completion --list-devices failed with GGML_VIRTGPU_SOCKET unset"
    grep -q "ggml-virtgpu: no host" "$S/list2.out" && break
done
grep -q "ggml-virtgpu: no host" "$S/list2.out" || fail "no reason line with GGML_VIRTGPU_SOCKET unset"
note "PASS"
