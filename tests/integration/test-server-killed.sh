#!/usr/bin/env bash
# The host dies in the middle of a generation: the guest reports an error within 10 s and exits
# by itself (no hang, no abort). Usage: test-server-killed.sh worker|server
. "$(dirname "$0")/lib.sh"
what=${1:-worker}
S=$VGPU_SCRATCH
model=$(vgpu_tiny_model)
vgpu_start_server

vgpu_guest "$VGPU_BUILD/bin/llama-greedy" "$model" "$S/long" --device VirtGPU0 --tokens 1000000 \
    2>"$S/guest.err" &
guest=$!
for _ in $(seq 300); do
    [ -f "$S/long.tokens" ] && [ "$(wc -l <"$S/long.tokens")" -gt 40 ] && break
    kill -0 "$guest" 2>/dev/null || fail "the guest ended before the kill: $(tail -3 "$S/guest.err")"
    sleep 0.1
done
[ "$(wc -l <"$S/long.tokens")" -gt 40 ] || fail "generation did not get going"

if [ "$what" = worker ]; then
    victim=$(pgrep -P "$VGPU_SERVER_PID" | head -1)
    [ -n "$victim" ] || fail "no worker process under the server"
else
    victim=$VGPU_SERVER_PID
fi
note "killing the $what (pid $victim) mid-generation"
kill -9 "$victim"
t0=$(date +%s.%N)
rc=
for _ in $(seq 150); do
    if ! kill -0 "$guest" 2>/dev/null; then
        rc=0
        wait "$guest" || rc=$?
        break
    fi
    sleep 0.1
done
t1=$(date +%s.%N)
if [ -z "$rc" ]; then
    kill -9 "$guest"
    fail "the guest still runs 15 s after the host died (hang)"
fi
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
note "guest exited with status $rc after $elapsed s"
[ "$rc" = 3 ] || fail "expected llama_decode to fail (status 3), got $rc: $(tail -3 "$S/guest.err")"
awk -v e="$elapsed" 'BEGIN { exit !(e <= 10) }' || fail "error took $elapsed s (> 10 s)"
grep -q "ggml-virtgpu" "$S/guest.err" || fail "the guest did not say what happened"
[ "$what" = server ] && VGPU_SERVER_PID=
note "PASS"
