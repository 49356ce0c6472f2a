#!/usr/bin/env bash
# A host with two devices, one guest splitting a model across both (the CPU-only stand-in for
# a two-GPU host): two of the dependency's ggml-rpc-servers (CPU) behind one
# ggml-virtgpu-server (--backend libggml-rpc.so --rpc-servers A,B). The guest must see
# VirtGPU0 and VirtGPU1; greedy llama-completion with -sm layer across them prints the same
# text as natively across RPC0,RPC1 and as on the CPU alone; llama-bench -sm layer runs.
. "$(dirname "$0")/lib.sh"
S=$VGPU_SCRATCH
model=$(vgpu_tiny_model)
vgpu_start_rpc rpc0
ep0=$VGPU_RPC_EP
vgpu_start_rpc rpc1
ep1=$VGPU_RPC_EP

vgpu_start_server --backend "$LLAMA_BIN/libggml-rpc.so" --rpc-servers "$ep0,$ep1"

note "the guest sees two devices"
vgpu_guest "$LLAMA_BIN/llama-completion" --list-devices </dev/null >"$S/devices.txt" 2>&1 ||
    fail "listing devices failed: $(tail -3 "$S/devices.txt")"
grep -q "VirtGPU0: .*$ep0" "$S/devices.txt" || fail "no VirtGPU0 on $ep0: $(cat "$S/devices.txt")"
grep -q "VirtGPU1: .*$ep1" "$S/devices.txt" || fail "no VirtGPU1 on $ep1: $(cat "$S/devices.txt")"

note "greedy text: CPU, native RPC0+RPC1 and VirtGPU0+VirtGPU1 (-sm layer)"
args=(-m "$model" -p "Once upon a time" -n 32 --temp 0 -no-cnv -t 2)
"$LLAMA_BIN/llama-completion" "${args[@]}" </dev/null >"$S/cpu.txt" 2>"$S/cpu.err" ||
    fail "CPU llama-completion failed: $(tail -3 "$S/cpu.err")"
"$LLAMA_BIN/llama-completion" "${args[@]}" --rpc "$ep0,$ep1" -dev RPC0,RPC1 -sm layer -ngl 99 </dev/null \
    >"$S/rpc.txt" 2>"$S/rpc.err" || fail "native RPC llama-completion failed: $(tail -3 "$S/rpc.err")"
vgpu_guest "$LLAMA_BIN/llama-completion" "${args[@]}" -dev VirtGPU0,VirtGPU1 -sm layer -ngl 99 -v </dev/null \
    >"$S/virt.txt" 2>"$S/virt.err" || fail "VirtGPU llama-completion failed: $(tail -3 "$S/virt.err")"
grep -q "VirtGPU0 model buffer" "$S/virt.err" && grep -q "VirtGPU1 model buffer" "$S/virt.err" ||
    fail "the model was not split across VirtGPU0 and VirtGPU1 (see $S/virt.err)"
[ -s "$S/cpu.txt" ] || fail "CPU llama-completion printed nothing"
diff "$S/cpu.txt" "$S/rpc.txt" >/dev/null || fail "native RPC text differs from CPU text"
diff "$S/rpc.txt" "$S/virt.txt" >/dev/null || fail "VirtGPU0+VirtGPU1 text differs from native RPC0+RPC1"

note "llama-bench -sm layer across VirtGPU0/VirtGPU1"
vgpu_guest "$LLAMA_BIN/llama-bench" -m "$model" -p 32 -n 16 -r 1 -ngl 99 -sm layer -dev VirtGPU0/VirtGPU1 \
    -o csv >"$S/bench.csv" 2>"$S/bench.err" || fail "llama-bench failed: $(tail -3 "$S/bench.err")"
rows=$(grep -c 'VirtGPU0/VirtGPU1' "$S/bench.csv" || true)
[ "$rows" -ge 2 ] || fail "llama-bench did not report pp and tg rows on both devices: $(cat "$S/bench.csv")"

vgpu_stop_server
note "PASS"
