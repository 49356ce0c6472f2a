#!/usr/bin/env bash
# Greedy generation on the tiny model through VirtGPU0 gives the same tokens and bit-identical
# logits as natively on the same CPU backend; llama-completion prints the same text; llama-bench
# pp and tg runs complete. Usage: test-generation.sh [ext|baseline|nozerocopy|q4_0|predict]
# q4_0: the Q4_0 model, whose matrices ggml-cpu computes repacked natively and the host on
# repacked copies (host/cpu-repack.h): identical logits only if both use the same kernels.
# predict: as nozerocopy, with wait prediction forced on (guest/wait-pred.h; by default it is
# off below 4 CPUs), and a prompt benchmark long enough that its waits get planned.
. "$(dirname "$0")/lib.sh"
mode=${1:-ext}
model=
case "$mode" in
    ext) ;;
    baseline) export GGML_VIRTGPU_BASELINE=1 ;;
    nozerocopy) export GGML_VIRTGPU_NO_ZERO_COPY=1 ;;
    q4_0) model=$(vgpu_tiny_model_q4_0) ;;
    predict) export GGML_VIRTGPU_NO_ZERO_COPY=1 GGML_VIRTGPU_PREDICT=1 GGML_VIRTGPU_PROFILE=1 ;;
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

if [ "$mode" = predict ]; then
    note "planned waits: a 128-token prompt three times (waits of several ms, the same work)"
    vgpu_guest "$LLAMA_BIN/llama-bench" -m "$model" -p 128 -n 0 -r 3 -ngl 99 -dev VirtGPU0 -o csv \
        >"$S/predict.csv" 2>"$S/predict.err" || fail "llama-bench failed: $(tail -3 "$S/predict.err")"
    grep -q '"VirtGPU0"' "$S/predict.csv" || fail "no pp row: $(cat "$S/predict.csv")"
    planned=$(awk '/profile \(VirtGPU0\): planned wait/ { n += $(NF-3) } END { print n + 0 }' "$S/predict.err")
    [ "$planned" -ge 1 ] || fail "no wait was planned (see $S/predict.err)"
    note "$planned planned waits"
fi

vgpu_stop_server
note "PASS"
