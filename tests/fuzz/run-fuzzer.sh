#!/usr/bin/env bash
# Runs one libFuzzer target for a while on a copy of its committed corpus and reports.
# Used by scripts/fuzz.sh and by the fuzz.<target> CTest tests of the fuzz build.
#
# Usage: run-fuzzer.sh BINARY TARGET SECONDS WORKROOT [extra libFuzzer flags...]
#   WORKROOT/TARGET/corpus     the copy (new inputs the fuzzer finds are added here)
#   WORKROOT/TARGET/artifacts  crash-*, leak-*, timeout-*, oom-* reproducers
#   WORKROOT/TARGET/log        the fuzzer's output
# Environment: GGML_VIRTGPU_FUZZ_FORK=N  run N fuzzing processes (libFuzzer -fork=N)
#              GGML_VIRTGPU_FUZZ_VERBOSE=1  keep the host's log lines (stderr is dropped otherwise)
# Exit status: 0 when the run ended without a finding, 1 otherwise (the reproducers are listed).
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 BINARY TARGET SECONDS WORKROOT [flags...]" >&2; exit 2; }
bin=$1 target=$2 seconds=$3 root=$4
shift 4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work="$root/$target"

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
if [ -d "$here/corpus/$target" ]; then
    find "$here/corpus/$target" -maxdepth 1 -type f -exec cp {} "$work/corpus/" \;
fi

# Per-target limits: inputs stay small enough for thousands of runs per second; a single
# input may take a while only when it computes a graph (fuzz-dispatch).
case "$target" in
    codec) max_len=4096 timeout=5 ;;
    dispatch) max_len=65536 timeout=20 ;;
    graph) max_len=131072 timeout=10 ;;
    *) max_len=65536 timeout=10 ;;
esac
flags=(-max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2560 -max_len="$max_len"
       -artifact_prefix="$work/artifacts/" -print_final_stats=1 -print_pcs=0)
[ -f "$here/$target.dict" ] && flags+=(-dict="$here/$target.dict")
[ -n "${GGML_VIRTGPU_FUZZ_VERBOSE:-}" ] || flags+=(-close_fd_mask=2)
[ -n "${GGML_VIRTGPU_FUZZ_FORK:-}" ] && flags+=(-fork="$GGML_VIRTGPU_FUZZ_FORK")

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"
if [ -f "$here/lsan.supp" ]; then
    export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$here/lsan.supp:print_suppressions=0"
fi

echo "[fuzz] $target: ${seconds}s from $(find "$work/corpus" -type f | wc -l) corpus inputs ($work)"
rc=0
"$bin" "${flags[@]}" "$@" "$work/corpus" >"$work/log" 2>&1 || rc=$?

# The last coverage line and the final statistics.
status=$(grep -E '^#[0-9]+' "$work/log" | tail -1 || true)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
echo "[fuzz] $target: ${execs:-?} runs, ${speed:-?} exec/s; last: ${status:-none}"

shopt -s nullglob
found=("$work"/artifacts/*)
if [ "$rc" != 0 ] || [ ${#found[@]} -gt 0 ]; then
    echo "[fuzz] $target: FINDING (exit status $rc); the fuzzer's report:" >&2
    grep -E -A40 '^==[0-9]+==ERROR|^FUZZ PROPERTY|runtime error|deadly signal|ERROR: libFuzzer|SUMMARY' "$work/log" | head -80 >&2 || true
    for f in "${found[@]}"; do
        echo "[fuzz] reproducer: $f" >&2
        echo "[fuzz]   re-run:  $bin $f" >&2
        echo "[fuzz]   replay:  build/bin/replay-$target $f   (any build)" >&2
        echo "[fuzz]   keep it: cp $f tests/fuzz/corpus/$target/regress-$(basename "$f")" >&2
    done
    [ ${#found[@]} -gt 0 ] || echo "[fuzz] no reproducer was written; see $work/log" >&2
    exit 1
fi
