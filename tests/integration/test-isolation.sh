#!/usr/bin/env bash
# Isolation between the clients of one server (DESIGN §4.7, docs/SECURITY.md):
#   1. Three guests generate (llama-greedy) while, on the same server, one client crashes its
#      own worker through something no validator can stop (it shrinks a shared memfd under the
#      host's mapping: SIGBUS in the worker) and another guest's worker is killed with SIGKILL.
#      The three finish with tokens and logits bit-identical to the native run; the guest that
#      lost its worker reports an error and exits by itself; the listener serves new clients.
#   2. A client that disappears mid-call (SIGKILL while the host computes for it), and a guest
#      killed mid-generation: their workers finish, exit cleanly and leave nothing behind (no
#      abnormal exit, no sanitizer report, the listener's fd count unchanged).
. "$(dirname "$0")/lib.sh"
S=$VGPU_SCRATCH
model=$(vgpu_tiny_model)
greedy="$VGPU_BUILD/bin/llama-greedy"
client="$VGPU_BUILD/bin/vgpu-sec-client"
TOKENS=200

# guest_bg NAME COMMAND...: starts a guest in the background as its own process ($! is its pid).
guest_bg() {
    local name=$1
    shift
    (
        if [ -n "${VGPU_PRELOAD:-}" ]; then
            export LD_PRELOAD="$VGPU_PRELOAD" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
        fi
        export GGML_BACKEND_PATH="$VGPU_BUILD/lib/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$VGPU_SOCKET"
        exec "$@"
    ) >"$S/$name.out" 2>"$S/$name.err" &
}

# worker_of PID: the worker serving the client process PID (from the worker's own log line).
worker_of() {
    local w=
    for _ in $(seq 200); do
        w=$(sed -n "s/^ggml-virtgpu-server\[\([0-9]*\)\]: info: ctx [0-9]*: client connected (pid $1,.*/\1/p" \
            "$S/server.log" | head -1)
        [ -n "$w" ] && break
        sleep 0.05
    done
    [ -n "$w" ] || fail "no worker for client $1 in the server log"
    echo "$w"
}

# generated PREFIX: tokens generated so far by a llama-greedy run.
generated() {
    [ -f "$1.tokens" ] || { echo 0; return; }
    awk 'seen { n++ } /^--$/ { seen = 1 } END { print n + 0 }' "$1.tokens"
}

wait_tokens() { # wait_tokens PREFIX N PID
    for _ in $(seq 600); do
        [ "$(generated "$1")" -ge "$2" ] && return 0
        kill -0 "$3" 2>/dev/null || fail "$(basename "$1") ended before generating $2 tokens: $(tail -3 "$1.err")"
        sleep 0.02
    done
    fail "$(basename "$1") did not reach $2 tokens"
}

# wait_gone PID SECONDS: waits until PID no longer exists.
wait_gone() {
    for _ in $(seq $(($2 * 20))); do
        [ -d "/proc/$1" ] || return 0
        grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null && { sleep 0.05; continue; }
        sleep 0.05
    done
    return 1
}

# abnormal_end PID: true if the listener logged that worker PID ended abnormally.
abnormal_end() {
    grep -q "worker $1 \(exited with status\|killed by signal\)" "$S/server.log"
}

# sanitizer_reports [EXCEPT_PID]: sanitizer error lines in the server log from other processes.
sanitizer_reports() {
    grep -E "^==[0-9]+==ERROR: (Address|Leak)Sanitizer|runtime error:" "$S/server.log" |
        grep -v "^==${1:-none}==" || true
}

note "native run ($TOKENS tokens)"
"$greedy" "$model" "$S/native" --device none --tokens $TOKENS --threads 1 2>"$S/native.err" ||
    fail "native run failed: $(tail -3 "$S/native.err")"
vgpu_start_server
listener=$VGPU_SERVER_PID
fds_before=$(ls "/proc/$listener/fd" | wc -l)

# ---- 1. crashes next to running guests ----------------------------------------------------------
good=()
for i in 1 2 3; do
    guest_bg "good$i" "$greedy" "$model" "$S/good$i" --device VirtGPU0 --tokens $TOKENS --threads 1
    good+=($!)
done
guest_bg victim "$greedy" "$model" "$S/victim" --device VirtGPU0 --tokens 1000000 --threads 1
victim=$!
for i in 1 2 3; do
    wait_tokens "$S/good$i" 2 "${good[$((i - 1))]}"
done
wait_tokens "$S/victim" 2 "$victim"
# Keep the good guests mid-generation (contexts live, buffers and cached graphs on the host)
# while the other clients crash.
kill -STOP "${good[@]}" || fail "a good guest had already finished"
note "3 guests paused mid-generation at $(generated "$S/good1"), $(generated "$S/good2"), $(generated "$S/good3") tokens"

note "a client crashes its own worker (a shared memfd shrunk under the host's mapping)"
"$client" sigbus "$VGPU_SOCKET" >"$S/sigbus.out" 2>"$S/sigbus.err" &
evil=$!
evil_worker=$(worker_of $evil)
rc=0
wait $evil || rc=$?
[ "$rc" = 0 ] || fail "sigbus client: status $rc: $(cat "$S/sigbus.out" "$S/sigbus.err" | tail -3)"
wait_gone "$evil_worker" 10 || fail "the crashed worker $evil_worker is still there"
for _ in $(seq 100); do abnormal_end "$evil_worker" && break; sleep 0.05; done
abnormal_end "$evil_worker" || fail "the listener did not report the crash of worker $evil_worker"
note "worker $evil_worker: $(grep -o "worker $evil_worker [a-z].*" "$S/server.log" | head -1)"

note "another guest's worker is killed with SIGKILL"
victim_worker=$(worker_of $victim)
kill -9 "$victim_worker"
t0=$(date +%s.%N)
rc=
for _ in $(seq 300); do
    if ! kill -0 "$victim" 2>/dev/null; then
        rc=0
        wait "$victim" || rc=$?
        break
    fi
    sleep 0.05
done
[ -n "$rc" ] || fail "the guest whose worker died still runs after 15 s"
elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
[ "$rc" = 3 ] || fail "the guest whose worker died exited with $rc, expected 3 (llama_decode failed)"
grep -q "ggml-virtgpu" "$S/victim.err" || fail "the guest whose worker died did not say why"
note "its guest reported the error and exited (status 3) after $elapsed s"

kill -CONT "${good[@]}"
for i in 1 2 3; do
    wait "${good[$((i - 1))]}" || fail "good guest $i failed: $(tail -3 "$S/good$i.err")"
    cmp -s "$S/native.tokens" "$S/good$i.tokens" || fail "good guest $i: tokens differ from the native run"
    cmp -s "$S/native.logits" "$S/good$i.logits" || fail "good guest $i: logits differ from the native run"
done
note "the 3 guests finished with tokens and logits bit-identical to the native run"

kill -0 "$listener" 2>/dev/null || fail "the listener died"
guest_bg after "$greedy" "$model" "$S/after" --device VirtGPU0 --tokens $TOKENS --threads 1
wait $! || fail "a new guest after the crashes failed: $(tail -3 "$S/after.err")"
cmp -s "$S/native.logits" "$S/after.logits" || fail "the new guest's logits differ"
note "the listener (pid $listener) serves new clients"

# ---- 2. clients that disappear mid-call ------------------------------------------------------------
note "a client is killed while the host computes for it"
"$client" hang "$VGPU_SOCKET" >"$S/hang.out" 2>"$S/hang.err" &
hang=$!
for _ in $(seq 600); do
    grep -q SUBMITTED "$S/hang.out" 2>/dev/null && break
    kill -0 $hang 2>/dev/null || fail "hang client ended: $(tail -3 "$S/hang.err")"
    sleep 0.05
done
grep -q SUBMITTED "$S/hang.out" || fail "the hang client did not submit"
hang_worker=$(worker_of $hang)
sleep 0.2
grep -q "State:.*[RS]" "/proc/$hang_worker/status" || fail "worker $hang_worker is not running"
kill -9 $hang
wait $hang 2>/dev/null || true
wait_gone "$hang_worker" 120 || fail "worker $hang_worker did not exit after its client vanished"
abnormal_end "$hang_worker" && fail "worker $hang_worker ended abnormally: $(grep "worker $hang_worker" "$S/server.log")"
note "its worker $hang_worker finished the call, saw the hang-up and exited cleanly"

note "a guest is killed mid-generation"
guest_bg killed "$greedy" "$model" "$S/killed" --device VirtGPU0 --tokens 1000000 --threads 1
killed=$!
wait_tokens "$S/killed" 10 $killed
killed_worker=$(worker_of $killed)
kill -9 $killed
wait $killed 2>/dev/null || true
wait_gone "$killed_worker" 30 || fail "worker $killed_worker did not exit after its guest was killed"
abnormal_end "$killed_worker" && fail "worker $killed_worker ended abnormally"
note "its worker $killed_worker exited cleanly"

sleep 0.3
fds_after=$(ls "/proc/$listener/fd" | wc -l)
[ "$fds_after" = "$fds_before" ] || fail "the listener has $fds_after fds, it had $fds_before"
live=$({ pgrep -P "$listener" || true; } | wc -l)
[ "$live" = 0 ] || fail "$live workers still run"
reports=$(sanitizer_reports "$evil_worker")
[ -z "$reports" ] || fail "sanitizer reports from other processes than the crashed worker: $reports"
vgpu_stop_server
note "PASS"
