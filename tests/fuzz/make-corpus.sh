#!/usr/bin/env bash
# Rebuilds the committed seed corpora (tests/fuzz/corpus/<target>/) from traffic of real runs.
#
#  1. records host traces (GGML_VIRTGPU_TRACE, host/trace.h) while ggml-virtgpu-server serves
#     greedy generation on the tiny test model, a set of test-backend-ops ops and Q4_0 weights
#     rewritten after use (weights-update), each in
#     extension and baseline mode, with zero-copy and with staged buffers;
#  2. converts them into seed inputs (fuzz-corpus-tool: corpus-tool.c says how);
#  3. merges those with the current corpus through libFuzzer (-merge=1), which keeps only the
#     inputs that add coverage, and replaces the corpus with the result. Files named regress-*
#     (reproducers of fixed bugs) are always kept.
#     The merge counts edges only (-use_counters=0) and each target has a byte budget (the
#     largest inputs beyond it are dropped), so the committed corpus stays under 2 MB.
# Needs the normal build (build/: server, guest module, llama-greedy) and builds build-fuzz/.
# Usage: tests/fuzz/make-corpus.sh [--reuse-traces] [TARGET...]   (default: codec dispatch graph)
#   --reuse-traces  convert and merge the traces of the previous run (build-fuzz/corpus-record/)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
reuse=0
targets=()
for arg in "$@"; do
    case "$arg" in
        --reuse-traces) reuse=1 ;;
        codec | dispatch | graph) targets+=("$arg") ;;
        *) echo "make-corpus: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(codec dispatch graph)

B=$root/build
LLAMA_BIN=$LLAMA_BUILD/bin
for f in "$B/bin/ggml-virtgpu-server" "$B/lib/libggml-virtgpu.so" "$B/bin/llama-greedy" \
    "$B/bin/ggml-virtgpu-gen-model" "$B/bin/weights-update" "$LLAMA_BIN/test-backend-ops"; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "make-corpus: $f is missing (run scripts/setup.sh)" >&2; exit 1; }
done
"$root/scripts/fuzz.sh" --build-only
cmake --build "$root/build-fuzz" --target fuzz-corpus-tool >/dev/null
tool=$root/build-fuzz/bin/fuzz-corpus-tool

S=$root/build-fuzz/corpus-record
if [ "$reuse" = 1 ] && compgen -G "$S/trace/*.requests" >/dev/null; then
    echo "[make-corpus] reusing the traces in $S/trace"
else
    reuse=0
    rm -rf "$S"
    mkdir -p "$S/trace"
fi
model=$B/test-models/tiny.gguf
if [ ! -f "$model" ]; then
    mkdir -p "$(dirname "$model")"
    "$B/bin/ggml-virtgpu-gen-model" --size tiny -o "$model" >/dev/null
fi

# --- 1. record ---------------------------------------------------------------------------------
record() {
sock=$S/virtgpu.sock
GGML_VIRTGPU_TRACE=$S/trace/t "$B/bin/ggml-virtgpu-server" --socket "$sock" >"$S/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { cat "$S/server.log" >&2; exit 1; }

run() { # run NAME ENV... -- COMMAND...
    local name=$1
    shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    echo "[make-corpus] recording $name"
    env "${envs[@]}" GGML_BACKEND_PATH="$B/lib/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$sock" "$@" \
        >"$S/$name.log" 2>&1 || { tail -5 "$S/$name.log" >&2; exit 1; }
}
ops="ADD,MUL,MUL_MAT,GET_ROWS,SET_ROWS,CPY,CONT,SOFT_MAX,ROPE,RMS_NORM,NORM,SCALE,GLU,UNARY,FLASH_ATTN_EXT,CONCAT,SUM_ROWS,ARGSORT,MUL_MAT_ID,ADD_ID"
for mode in ext baseline; do
    envs=()
    [ $mode = baseline ] && envs+=(GGML_VIRTGPU_BASELINE=1)
    for mem in zerocopy staged; do
        e=("${envs[@]}")
        [ $mem = staged ] && e+=(GGML_VIRTGPU_NO_ZERO_COPY=1)
        run "greedy-$mode-$mem" "${e[@]}" -- "$B/bin/llama-greedy" "$model" "$S/g-$mode-$mem" --device VirtGPU0 --tokens 4
        run "ops-$mode-$mem" "${e[@]}" -- "$LLAMA_BIN/test-backend-ops" test -b VirtGPU0 -o "$ops" \
            -p "ne=\[[0-9]*,[12],[12],1\]|type=f32|ne_a=\[[0-9]*,[12],1,1\]"
        # Q4_0 weights flagged as such: the host's repacked copies (host/cpu-repack.c).
        if [ $mode = ext ]; then run "weights-$mem" "${e[@]}" -- "$B/bin/weights-update" "$LLAMA_BIN"; fi
    done
done
kill $server
wait $server 2>/dev/null || true
trap - EXIT
}
[ "$reuse" = 1 ] || record
traces=()
for f in "$S"/trace/*.requests; do traces+=("${f%.requests}"); done
echo "[make-corpus] ${#traces[@]} traces, $(du -sh "$S/trace" | cut -f1)"

# --- 2. convert, 3. merge ---------------------------------------------------------------------------
# Byte budgets of the committed corpora (together under 2 MB).
budget() {
    case "$1" in
        codec) echo 150000 ;;
        dispatch) echo 1100000 ;;
        *) echo 650000 ;;
    esac
}
for t in "${targets[@]}"; do
    raw=$S/raw-$t
    rm -rf "$raw"
    "$tool" "$t" "$raw" "${traces[@]}"
    new=$S/new-$t
    rm -rf "$new"
    mkdir -p "$new" "$here/corpus/$t"
    ASAN_OPTIONS=detect_leaks=0 "$root/build-fuzz/bin/fuzz-$t" -merge=1 -use_counters=0 -max_len=131072 \
        -timeout=30 -close_fd_mask=2 "$new" "$here/corpus/$t" "$raw" >"$S/merge-$t.log" 2>&1 ||
        { tail -20 "$S/merge-$t.log" >&2; exit 1; }
    # Over budget: the largest inputs go first (regress-* files are added back below).
    while [ "$(du -sb "$new" | cut -f1)" -gt "$(budget "$t")" ]; do
        rm -f "$(ls -S "$new"/* | head -1)"
    done
    find "$here/corpus/$t" -maxdepth 1 -type f -name 'regress-*' -exec cp {} "$new/" \;
    find "$here/corpus/$t" -maxdepth 1 -type f -delete
    cp "$new"/* "$here/corpus/$t/"
    echo "[make-corpus] $t: $(ls "$here/corpus/$t" | wc -l) inputs, $(du -sh "$here/corpus/$t" | cut -f1)" \
         "($(grep -E '^MERGE-OUTER: [0-9]+ new files' "$S/merge-$t.log" | tail -1))"
done
total=$(du -sb "$here/corpus" | cut -f1)
echo "[make-corpus] committed corpus: $total bytes"
[ "$total" -lt 2000000 ] || { echo "make-corpus: the corpus exceeds 2 MB" >&2; exit 1; }
