#!/usr/bin/env bash
# Greedy generation on the tiny model through VirtGPU0 gives the same tokens and bit-identical
# logits as natively on the same CPU backend; llama-completion prints the same text; llama-bench
# pp and tg runs complete. Usage: test-generation.sh [ext|baseline|nozerocopy|q4_0]
# q4_0: the Q4_0 model, whose matrices ggml-cpu computes repacked natively and the host on
# repacked copies (host/cpu-repack.h): identical logits only if both use the same kernels.
. "$(dirname "$0")/lib.sh"
mode=${1:-ext}
model=
case "$mode" in
    ext) ;;
    baseline) export GGML_VIRTGPU_BASELINE=1 ;;
    nozerocopy) export GGML_VIRTGPU_NO_ZERO_COPY=1 ;;
    q4_0) model=$(vgpu_tiny_model_q4_0) ;;
    *) fail "unknown mode $mode" ;;
esac
model=${model:-$(vgpu_tiny_model)}
greedy="$VGPU_BUILD/bin/llama-greedy"
S=$VGPU_SCRATCH
vgpu_start_server

note "greedy decoding, native CPU vs VirtGPU0 ($mode)"
"$greedy" "$model" "$S/native" --device none --tokens 48 2>"$S/native.err" ||
    fail "native run failed: $(tail -3 "$S/native.err")"
vgpu_guest "$greedy" "$model" "$S/virt" --device VirtGPU0 --tokens 48 2>"$S/virt.err" ||
    fail "VirtGPU0 run failed: $(tail -3 "$S/virt.err")"
grep -q "offloaded .* layers to GPU\|VirtGPU0 model buffer" "$S/virt.err" ||
    fail "the model was not placed on VirtGPU0 (see $S/virt.err)"
cmp -s "$S/native.tokens" "$S/virt.tokens" ||
    fail "tokens differ: $(diff "$S/native.tokens" "$S/virt.tokens" | head -5)"
[ -s "$S/native.logits" ] || fail "no logits written"
cmp "$S/native.logits" "$S/virt.logits" || fail "logits differ (not bit-identical)"
note "48 tokens and $(($(stat -c %s "$S/native.logits") / 4)) logits identical"

note "llama-completion text, native vs VirtGPU0"
args=(-m "$model" -p "Once upon a time" -n 32 --temp 0 -no-cnv -t 2)
"$LLAMA_BIN/llama-completion" "${args[@]}" </dev/null >"$S/native.txt" 2>"$S/native-completion.err" ||
    fail "native llama-completion failed"
vgpu_guest "$LLAMA_BIN/llama-completion" "${args[@]}" -ngl 99 -dev VirtGPU0 </dev/null \
    >"$S/virt.txt" 2>"$S/virt-completion.err" || fail "llama-completion through VirtGPU0 failed: $(tail -3 "$S/virt-completion.err")"
[ -s "$S/native.txt" ] || fail "native llama-completion printed nothing"
diff "$S/native.txt" "$S/virt.txt" >/dev/null || fail "llama-completion text differs"

note "llama-bench pp and tg through VirtGPU0"
vgpu_guest "$LLAMA_BIN/llama-bench" -m "$model" -p 32 -n 16 -r 1 -ngl 99 -dev VirtGPU0 -o csv \
    >"$S/bench.csv" 2>"$S/bench.err" || fail "llama-bench failed: $(tail -3 "$S/bench.err")"
rows=$(grep -c '"VirtGPU0"' "$S/bench.csv" || true)
[ "$rows" -ge 2 ] || fail "llama-bench did not report pp and tg rows on VirtGPU0: $(cat "$S/bench.csv")"

vgpu_stop_server
note "PASS"
