#!/usr/bin/env bash
# Integration test of ggml-virtgpu-gen-model: the files it writes must load, run, quantize and
# benchmark with the pinned llama.cpp's own tools, carry the real 32000-token vocabulary, and be
# deterministic in the seed. Bad arguments must fail cleanly.
#
# usage: test-gen-model.sh GEN_MODEL_BINARY LLAMA_BIN_DIR SCRATCH_DIR
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 GEN_MODEL_BINARY LLAMA_BIN_DIR SCRATCH_DIR" >&2
    exit 2
fi
GEN=$1
LLAMA_BIN=$2
DIR=$3

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

step() {
    echo "--- $*"
}

for tool in llama-completion llama-quantize llama-bench; do
    [ -x "$LLAMA_BIN/$tool" ] || fail "$LLAMA_BIN/$tool not found"
done
[ -x "$GEN" ] || fail "$GEN not found"

rm -rf "$DIR"
mkdir -p "$DIR"
cd "$DIR"

# ---- bad arguments: clear error, non-zero exit, no crash, no file left behind -----------------
# expect_error NAME ARGS...: the generator must exit 1 or 2 (not a signal) and print "gen-model:".
expect_error() {
    local name=$1 rc=0
    shift
    "$GEN" "$@" >"err-$name.out" 2>&1 || rc=$?
    [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ] || fail "$name: expected exit 1 or 2, got $rc"
    grep -q "gen-model:" "err-$name.out" || fail "$name: no error message"
}
step "bad arguments"
expect_error no-args
expect_error no-output --size tiny
expect_error bad-size --size 3b -o bad.gguf
expect_error bad-type --size tiny -o bad.gguf --type q4_0
expect_error bad-seed --size tiny -o bad.gguf --seed 12x
expect_error missing-value --size tiny -o
expect_error no-vocab --size tiny -o bad.gguf --vocab "$DIR/does-not-exist.gguf"
expect_error not-a-vocab --size tiny -o bad.gguf --vocab "$DIR/err-no-args.out"
expect_error unwritable --size tiny -o "$DIR/no-such-dir/x.gguf"
[ ! -e bad.gguf ] || fail "a failed run left bad.gguf behind"

# ---- generation, determinism --------------------------------------------------------------------
step "generate tiny"
start=$(date +%s%N)
"$GEN" --size tiny -o tiny.gguf | tee gen.out
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "tiny generated in $ms ms"
[ "$ms" -lt 5000 ] || fail "tiny generation took $ms ms"
grep -q "params" gen.out || fail "no summary line"
[ "$(head -c 4 tiny.gguf)" = "GGUF" ] || fail "tiny.gguf has no GGUF magic"

step "determinism"
"$GEN" --size tiny -o tiny-again.gguf --seed 1 >/dev/null
"$GEN" --size tiny -o tiny-seed2.gguf --seed 2 >/dev/null
sum1=$(sha256sum <tiny.gguf | cut -d' ' -f1)
sum1b=$(sha256sum <tiny-again.gguf | cut -d' ' -f1)
sum2=$(sha256sum <tiny-seed2.gguf | cut -d' ' -f1)
[ "$sum1" = "$sum1b" ] || fail "same seed (default 1 and --seed 1) gave different files"
[ "$sum1" != "$sum2" ] || fail "different seeds gave the same file"
[ "$(stat -c %s tiny.gguf)" = "$(stat -c %s tiny-seed2.gguf)" ] || fail "seed changed the file size"
rm -f tiny-again.gguf tiny-seed2.gguf

# ---- llama.cpp reads it back: structure, vocabulary, greedy generation --------------------------
# run_completion MODEL LOG: greedy-decodes 8 tokens with the dependency's llama-completion.
run_completion() {
    "$LLAMA_BIN/llama-completion" -m "$1" -p "Hello" -n 8 --temp 0 -no-cnv -t 2 -v \
        </dev/null >"$2.out" 2>"$2.err" || fail "llama-completion on $1 exited $? (see $DIR/$2.err)"
}

# expect_text LOG: the completion must echo the prompt and continue it with visible text. NaN or
# inf logits make greedy sampling pick token 0 (<unk>) every time, which prints no visible text,
# so this is where weights that blow the activations up are caught.
expect_text() {
    local out cont
    out=$(cat "$1.out")
    [[ "$out" == *Hello* ]] || fail "$1: completion output lacks the prompt: '$out'"
    cont=$(printf '%s' "${out#*Hello}" | LC_ALL=C tr -d '[:cntrl:][:space:]')
    [ -n "$cont" ] || fail "$1: completion generated no visible text (non-finite logits?)"
    echo "$1: Hello${out#*Hello}"
}

# expect_log LOG REGEX WHAT: the log must match REGEX.
expect_log() {
    grep -Eq -e "$2" "$1" || fail "$3 (no match for '$2' in $DIR/$1)"
}

step "llama-completion on tiny.gguf"
run_completion tiny.gguf comp
expect_log comp.err "loaded meta data with [0-9]+ key-value pairs and 39 tensors" "tensor count is not 39"
expect_log comp.err "n_vocab += 32000$" "vocabulary size is not 32000"
expect_log comp.err "file type += F16$" "file type is not F16"
expect_log comp.err "n_embd += 256$" "n_embd is not 256"
expect_log comp.err "n_layer += 4$" "n_layer is not 4"
expect_log comp.err "n_head_kv += 4$" "n_head_kv is not 4"
expect_log comp.err "n_rot += 32$" "rope dimension count is not 32"
expect_log comp.err "model params += 19\.5[0-9] M$" "parameter count is not ~19.5M"
expect_log comp.err "- type +f32: +9 tensors" "norm weights are not 9 F32 tensors"
expect_log comp.err "- type +f16: +30 tensors" "matrices are not 30 F16 tensors"
# 8 generated tokens: one comes from the prompt pass, 7 from single-token evals.
expect_log comp.err "eval time = .* / +7 runs" "did not generate 7 tokens after the first"
expect_text comp

step "--type f32"
"$GEN" --size tiny -o tiny-f32.gguf --type f32 --seed 3 >/dev/null
run_completion tiny-f32.gguf comp-f32
expect_log comp-f32.err "file type += all F32" "file type is not all F32"
expect_log comp-f32.err "- type +f32: +39 tensors" "not all tensors are F32"
expect_text comp-f32
rm -f tiny-f32.gguf

# ---- quantize and benchmark ---------------------------------------------------------------------
step "llama-quantize Q4_0"
"$LLAMA_BIN/llama-quantize" tiny.gguf tiny-q4_0.gguf Q4_0 >quant.log 2>&1 \
    || fail "llama-quantize exited $? (see $DIR/quant.log)"
[ -s tiny-q4_0.gguf ] || fail "llama-quantize wrote nothing"
[ "$(stat -c %s tiny-q4_0.gguf)" -lt "$(stat -c %s tiny.gguf)" ] || fail "Q4_0 file is not smaller"

step "llama-bench on tiny-q4_0.gguf"
"$LLAMA_BIN/llama-bench" -m tiny-q4_0.gguf -p 16 -n 4 -r 1 -t 2 >bench.out 2>bench.err \
    || fail "llama-bench exited $? (see $DIR/bench.err)"
cat bench.out
# a row: | model | size | params | backend | threads | test | t/s |, with a positive t/s
row_ok() {
    grep -E "^\| *llama .*Q4_0 .*\| *$1 *\| *[0-9]+\.[0-9]+ ± " bench.out \
        | grep -Eqv "\| *0\.00 ± [0-9.]+ *\|$"
}
row_ok pp16 || fail "no pp16 t/s row in llama-bench output"
row_ok tg4 || fail "no tg4 t/s row in llama-bench output"

step "llama-completion on tiny-q4_0.gguf"
run_completion tiny-q4_0.gguf comp-q4
expect_log comp-q4.err "file type += Q4_0$" "quantized file type is not Q4_0"
expect_log comp-q4.err "n_vocab += 32000$" "quantized vocabulary size is not 32000"
expect_text comp-q4

rm -rf "$DIR"
echo "PASS"
