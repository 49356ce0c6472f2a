#!/usr/bin/env bash
# Shows where the GPU-machine scripts of WORK stand (bench/gpu/lib.sh): one line per script,
# and the last lines of the log of each one still running.
#
# Usage: bench/gpu/status.sh WORK [--wait SECONDS] [--out DIR]
#   --wait S   poll every 10 s until nothing runs any more or S seconds have passed
#   --out DIR  then copy what there is to DIR (on the GPU machine: $OUT, which comes back):
#              WORK/results.tar.gz once all.sh has finished, else DIR/partial.tar.gz (the
#              results, logs and status so far)
# Exit status: 0 nothing runs and nothing failed, 1 something failed, 3 something still runs
# (after --wait: ran out of time), 2 usage.
set -euo pipefail
work="" wait_s=0 out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --wait) wait_s=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) [ -z "$work" ] || { echo "status.sh: one WORK directory only" >&2; exit 2; }; work=$1; shift ;;
    esac
done
if [ -z "$work" ] || [ ! -d "$work/status" ]; then
    echo "status.sh: no status in '${work:-}' (usage: status.sh WORK [--wait S])" >&2
    exit 2
fi

# A "running" status whose process is gone (machine restarted, killed) reads as failed.
state() {
    local f=$1 s pid
    s=$(cat "$f")
    if [[ "$s" == running* || "$s" == starting* ]]; then
        pid=$(cat "$f.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            s="failed: the process $pid is gone (was: $s)"
        fi
    fi
    printf '%s' "$s"
}

deadline=$(($(date +%s) + wait_s))
while :; do
    running=0 failed=0
    for f in "$work"/status/*; do
        case "$f" in *.pid|*.why) continue ;; esac
        [ -f "$f" ] || continue
        s=$(state "$f")
        case "$s" in running*|starting*) running=1 ;; failed*) failed=1 ;; esac
    done
    if [ "$running" = 0 ] || [ "$(date +%s)" -ge "$deadline" ]; then
        break
    fi
    sleep 10
done

echo "== $work at $(date -u +%H:%M:%SZ)"
for f in "$work"/status/*; do
    case "$f" in *.pid|*.why) continue ;; esac
    [ -f "$f" ] || continue
    name=$(basename "$f")
    s=$(state "$f")
    printf '%-14s %s\n' "$name" "$s"
    if [[ "$s" == running* || "$s" == failed* ]] && [ -f "$work/logs/$name.log" ]; then
        tail -n 4 "$work/logs/$name.log" | sed 's/^/    | /'
    fi
done
# Once nothing runs any more, the results themselves.
if [ "$running" = 0 ]; then
    for f in compare micro calls conformance; do
        if [ -f "$work/results/$f/summary.txt" ]; then echo "---- results/$f/summary.txt"; cat "$work/results/$f/summary.txt"; fi
    done
    if [ -f "$work/results/greedy.txt" ]; then echo "---- results/greedy.txt"; cat "$work/results/greedy.txt"; fi
fi
if [ -n "$out" ]; then
    mkdir -p "$out"
    if [ -f "$work/results.tar.gz" ] && ! [[ "$(state "$work/status/all" 2>/dev/null)" == running* ]]; then
        cp "$work/results.tar.gz" "$out/results.tar.gz"
    else
        parts=()
        for d in results logs status; do [ -e "$work/$d" ] && parts+=("$d"); done
        tar -czf "$out/partial.tar.gz" -C "$work" "${parts[@]}" 2>/dev/null || true
    fi
    for f in "$out"/*.tar.gz; do [ -f "$f" ] && echo "-> $f ($(du -h "$f" | cut -f1))"; done
fi
[ "$failed" = 1 ] && exit 1
[ "$running" = 1 ] && exit 3
exit 0
