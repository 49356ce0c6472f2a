#!/usr/bin/env bash
# No reply of the host library ever carries a host address. The server's workers trace every
# reply and their address map (host/trace.c); after a mixed workload (extension and baseline
# protocols, zero-copy and host-allocated buffers, generation and op tests) every 64-bit value
# at every 4-byte offset of every reply is checked against every mapping the host ever had.
. "$(dirname "$0")/lib.sh"
S=$VGPU_SCRATCH
mkdir -p "$S/trace"
export GGML_VIRTGPU_TRACE="$S/trace/t"
model=$(vgpu_tiny_model)
greedy="$VGPU_BUILD/bin/llama-greedy"
ops="ADD,MUL_MAT,GET_ROWS,SET_ROWS,CPY,SOFT_MAX,ROPE,RMS_NORM,FLASH_ATTN_EXT"
vgpu_start_server

run() { # run NAME ENV... -- COMMAND...: one guest workload, in its own connection
    local name=$1
    shift
    env "$@" GGML_BACKEND_PATH="$VGPU_BUILD/lib/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$VGPU_SOCKET" \
        "${cmd[@]}" >"$S/$name.log" 2>&1 || fail "$name failed: $(tail -3 "$S/$name.log")"
}
cmd=("$greedy" "$model" "$S/g" --device VirtGPU0 --tokens 8)
run greedy-ext
run greedy-baseline GGML_VIRTGPU_BASELINE=1
run greedy-staged GGML_VIRTGPU_NO_ZERO_COPY=1
run greedy-baseline-staged GGML_VIRTGPU_BASELINE=1 GGML_VIRTGPU_NO_ZERO_COPY=1
cmd=("$LLAMA_BIN/test-backend-ops" test -b VirtGPU0 -o "$ops" -p "ne=\[.*,[12],1,1\]|type=f32")
run ops-ext
run ops-baseline-staged GGML_VIRTGPU_BASELINE=1 GGML_VIRTGPU_NO_ZERO_COPY=1
vgpu_stop_server

shopt -s nullglob
files=("$S"/trace/*.replies)
[ "${#files[@]}" -ge 6 ] || fail "expected a trace per connection, found ${#files[@]}"
"$VGPU_BUILD/bin/scan-pointers" "${files[@]}" >"$S/scan.out" || {
    head -20 "$S/scan.out" >&2
    fail "a reply carried a host address"
}
summary=$(tail -1 "$S/scan.out")
n=$(echo "$summary" | awk '{ print $2 }')
[ "$n" -gt 5000 ] || fail "too few replies scanned: $summary"
note "$summary"

# The scanner itself must be able to see a leak: plant one.
first=$(head -1 "${files[0]%.replies}.maps" | cut -d- -f1)
cp "${files[0]%.replies}.maps" "$S/planted.maps"
printf '\x01\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00' >"$S/planted.replies"
printf '%016x' $((0x$first + 64)) | sed 's/../& /g' | awk '{ for (i = NF; i > 0; i--) printf "\\x%s", $i }' |
    xargs -0 printf >>"$S/planted.replies"
printf '\x00\x00\x00\x00\x00\x00\x00\x00' >>"$S/planted.replies"
if "$VGPU_BUILD/bin/scan-pointers" "$S/planted.replies" >"$S/planted.out"; then
    fail "the scanner missed a planted host address"
fi
grep -q "^HIT" "$S/planted.out" || fail "the planted address was not reported"
note "PASS"
