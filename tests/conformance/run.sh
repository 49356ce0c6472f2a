#!/usr/bin/env bash
# test-backend-ops through VirtGPU0 (host: the CPU backend behind ggml-virtgpu-server).
#   1. support mode, every case of the suite: VirtGPU0 must report exactly the cases the host's
#      CPU backend supports (nothing we reject that it accepts, nothing we claim that it lacks);
#   2. test mode on the cases listed in CASES (default: subset.txt, or "all" for the whole
#      suite): zero FAIL; "not supported" only where CPU does not support the case either.
# Usage: run.sh ext|baseline|nozerocopy [CASES|all]
# Environment as for tests/integration/lib.sh; CONFORMANCE_JOBS = test-backend-ops -j.
. "$(dirname "$0")/../integration/lib.sh"
mode=${1:-ext}
cases=${2:-$(dirname "$0")/subset.txt}
case "$mode" in
    ext) ;;
    baseline) export GGML_VIRTGPU_BASELINE=1 ;;
    nozerocopy) export GGML_VIRTGPU_NO_ZERO_COPY=1 ;;
    *) fail "unknown mode $mode" ;;
esac
S=$VGPU_SCRATCH
tbo="$LLAMA_BIN/test-backend-ops"
vgpu_start_server

note "support matrix, all cases: CPU vs VirtGPU0 ($mode)"
"$tbo" support -b CPU --output csv >"$S/cpu-support.csv" 2>/dev/null || fail "CPU support listing failed"
vgpu_guest "$tbo" support -b VirtGPU0 --output csv >"$S/virt-support.csv" 2>"$S/virt-support.err" ||
    fail "VirtGPU0 support listing failed: $(tail -3 "$S/virt-support.err")"
# Columns: backend, op, params, mode, supported, ... Compare (op, params) -> supported.
awk -F'","' 'NR > 1 { print $2 "(" $3 ")\t" $5 }' "$S/cpu-support.csv" | sort >"$S/cpu.sup"
awk -F'","' 'NR > 1 { print $2 "(" $3 ")\t" $5 }' "$S/virt-support.csv" | sort >"$S/virt.sup"
[ -s "$S/cpu.sup" ] || fail "empty CPU support listing"
total=$(wc -l <"$S/cpu.sup")
[ "$(wc -l <"$S/virt.sup")" = "$total" ] || fail "VirtGPU0 lists $(wc -l <"$S/virt.sup") cases, CPU $total"
# The one difference the baseline protocol forces: its inline tensor image ends at the first
# NULL source, so an op with a missing source followed by a present one (FLASH_ATTN_EXT and
# SOFT_MAX with mask=0, sinks=1) cannot be described and is reported unsupported.
paste "$S/cpu.sup" "$S/virt.sup" | awk -F'\t' -v mode="$mode" '
    $1 != $3 { print "case lists differ at " $1 " / " $3; bad++; next }
    $2 == $4 { next }
    mode == "baseline" && $2 == 1 && $4 == 0 && $1 ~ /mask=0,sinks=1/ { allowed++; next }
    { print $1 ": CPU " $2 ", VirtGPU0 " $4; bad++ }
    END { printf "%d allowed\n", allowed > "/dev/stderr"; exit bad > 0 }' \
    >"$S/support.diff" 2>"$S/support.allowed" || {
    echo "support differs in $(wc -l <"$S/support.diff") of $total cases; first ones:" >&2
    head -20 "$S/support.diff" >&2
    fail "VirtGPU0 does not report exactly what the host CPU backend supports"
}
allowed=$(cut -d' ' -f1 "$S/support.allowed")
note "support identical in $((total - allowed)) of $total cases ($(grep -c $'\t1$' "$S/cpu.sup") supported" \
    "by CPU); $allowed reported unsupported because the baseline protocol cannot describe them"

if [ "$cases" = all ]; then
    filter=()
    note "test mode: the whole suite"
else
    [ -s "$cases" ] || fail "no case list $cases"
    note "test mode: $(wc -l <"$cases") listed cases"
fi
# Full case strings go through -o; one argument may not exceed 128 KiB, so run in chunks.
run_chunk() {
    local log=$1
    shift
    local rc=0
    vgpu_guest "$tbo" test -b VirtGPU0 -j "${CONFORMANCE_JOBS:-2}" "$@" >"$log" 2>&1 || rc=$?
    grep -E "tests passed|Backend VirtGPU0" "$log" | sed 's/^/    /'
    if grep -q "FAIL" "$log" || [ "$rc" != 0 ]; then
        grep -E "FAIL|ERROR|error" "$log" | head -20 >&2
        fail "test-backend-ops reported failures (status $rc, log $log)"
    fi
}
if [ "$cases" = all ]; then
    run_chunk "$S/test-all.log"
else
    split -l 600 "$cases" "$S/chunk."
    for c in "$S"/chunk.*; do
        run_chunk "$c.log" -o "$(paste -sd, "$c")"
    done
fi
vgpu_stop_server
note "PASS"
