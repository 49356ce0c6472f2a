#!/usr/bin/env bash
# Four guest processes at once against one server all get correct results (bit-identical to the
# native run).
. "$(dirname "$0")/lib.sh"
S=$VGPU_SCRATCH
model=$(vgpu_tiny_model)
greedy="$VGPU_BUILD/bin/llama-greedy"
"$greedy" "$model" "$S/native" --device none --tokens 24 --threads 1 2>"$S/native.err" ||
    fail "native run failed"
vgpu_start_server

pids=()
for i in 1 2 3 4; do
    vgpu_guest "$greedy" "$model" "$S/g$i" --device VirtGPU0 --tokens 24 --threads 1 2>"$S/g$i.err" &
    pids+=($!)
done
for i in 1 2 3 4; do
    wait "${pids[$((i - 1))]}" || fail "guest $i failed: $(tail -3 "$S/g$i.err")"
done
for i in 1 2 3 4; do
    cmp -s "$S/native.tokens" "$S/g$i.tokens" || fail "guest $i: tokens differ"
    cmp -s "$S/native.logits" "$S/g$i.logits" || fail "guest $i: logits differ"
done
n=$(grep -c "client connected\|connected" "$S/server.log" || true)
note "4 concurrent guests matched the native run (server log: $n connection lines)"
vgpu_stop_server
note "PASS"
