#!/usr/bin/env bash
# The server's quota flags as a guest sees them: each quota exceeded is an error the guest
# reports (no crash, no hang), the context keeps working, the host logs why.
#   --max-buffers 2       a ggml program gets NULL for its third buffer, then still computes;
#                         llama.cpp fails to set up its context and says so
#   --max-buffer-bytes 1M the same with host-allocated (staged) buffers
#   --max-graph-nodes 10  llama_decode fails (status 3) with the guest's "quota exceeded"
. "$(dirname "$0")/../integration/lib.sh"
S=$VGPU_SCRATCH
stress="$VGPU_BUILD/bin/vgpu-guest-stress"
greedy="$VGPU_BUILD/bin/llama-greedy"
model=$(vgpu_tiny_model)

# run_guest NAME EXPECTED_RC COMMAND...: runs a guest, checks its exit status (never a signal).
run_guest() {
    local name=$1 want=$2
    shift 2
    local rc=0
    vgpu_guest "$@" >"$S/$name.out" 2>"$S/$name.err" || rc=$?
    [ "$rc" -lt 128 ] || fail "$name: the guest died of signal $((rc - 128)): $(tail -3 "$S/$name.err")"
    [ "$rc" = "$want" ] || fail "$name: exit status $rc, expected $want: $(tail -3 "$S/$name.err")"
}

server_log_has() {
    grep -q "$1" "$S/server.log" || fail "no server log line with '$1' (log: $S/server.log)"
}

# Stops the server after checking that no worker crashed (the log is per server).
stop_checked() {
    if grep -q "worker .* killed by signal\|worker .* exited with status" "$S/server.log"; then
        fail "a worker crashed: $(grep "killed by signal\|exited with status" "$S/server.log" | head -3)"
    fi
    vgpu_stop_server
}

note "--max-buffers 2"
vgpu_start_server --max-buffers 2
run_guest alloc 2 "$stress" alloc 3 65536
grep -q "allocated 2 of 3" "$S/alloc.out" || fail "expected 2 of 3 allocations: $(cat "$S/alloc.out")"
grep -q "compute after the allocations: ok" "$S/alloc.out" || fail "the device stopped working after the quota error"
grep -q "ggml-virtgpu: .*quota exceeded" "$S/alloc.err" || fail "the guest did not report the quota: $(tail -3 "$S/alloc.err")"
run_guest llama-buffers 1 "$greedy" "$model" "$S/g" --device VirtGPU0 --tokens 4
grep -q "ggml-virtgpu: .*quota exceeded" "$S/llama-buffers.err" || fail "llama run: no quota message from the guest"
server_log_has "buffer count quota (2) reached"
stop_checked

note "--max-buffer-bytes 1M (host-allocated buffers)"
vgpu_start_server --max-buffer-bytes 1M
GGML_VIRTGPU_NO_ZERO_COPY=1 run_guest alloc-bytes 2 "$stress" alloc 3 400000
grep -q "allocated 2 of 3" "$S/alloc-bytes.out" || fail "expected 2 of 3 allocations: $(cat "$S/alloc-bytes.out")"
grep -q "compute after the allocations: ok" "$S/alloc-bytes.out" || fail "the device stopped working"
server_log_has "buffer bytes quota"
stop_checked

note "--max-graph-nodes 10"
vgpu_start_server --max-graph-nodes 10
run_guest llama-nodes 3 "$greedy" "$model" "$S/g" --device VirtGPU0 --tokens 4
grep -q "ggml-virtgpu: .*quota exceeded" "$S/llama-nodes.err" || fail "llama run: no quota message from the guest"
grep -q "exceeds the graph quota\|exceeds the quota" "$S/server.log" || fail "no graph quota line in the server log"
# Small graphs still compute on the same server.
run_guest small-graphs 0 "$stress" graphs 20 20 --warmup 0
stop_checked
note "PASS"
