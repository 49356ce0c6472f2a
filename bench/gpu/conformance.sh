#!/usr/bin/env bash
# GPU machine, step 4: test-backend-ops through VirtGPU0 with the host's real device behind
# ggml-virtgpu-server (CUDA0; CPU with --backend cpu), as tests/conformance/run.sh does for the
# CPU host:
#   1. support mode, every case: the support listing of VirtGPU0 must equal the host device's
#      own (-b CUDA0): what CUDA0 supports is supported, exactly what it does not is not;
#   2. test mode, the whole suite (or --cases FILE): no FAIL, and "not supported" exactly for
#      the cases the host device does not support.
# Prints the counts; writes OUT/summary.txt, the listings and logs (OUT defaults to
# WORK/results/conformance). Exit status 0 only if both checks hold.
#
# Usage: bench/gpu/conformance.sh [--detach] [--backend cuda|cpu] [--jobs N] [--cases all|FILE]
#                                 [--timeout S] [--with-native] WORK [OUT]
#   --jobs N        test-backend-ops -j (default 8)
#   --timeout S     stop test mode after S seconds (default: none); the cases reported until
#                   then are checked, and the summary says the run is incomplete
#   --cases         all (default) or a file of full case strings, one per line (e.g.
#                   tests/conformance/subset.txt, for a short run)
#   --with-native   also run test mode on the host device itself, for the timing next to it
set -euo pipefail
export LC_ALL=C # one collation for sort, comm and the case names
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

detach=0 backend=cuda jobs=8 cases=all native=0 tlimit=0 pos=() args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --detach) detach=1; shift; continue ;;
        --backend) backend=$2; args+=("$1" "$2"); shift 2 ;;
        --jobs) jobs=$2; args+=("$1" "$2"); shift 2 ;;
        --cases) cases=$2; [ "$2" = all ] || cases=$(realpath "$2"); args+=("$1" "$cases"); shift 2 ;;
        --with-native) native=1; args+=("$1"); shift ;;
        --timeout) tlimit=$2; args+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "conformance.sh: unknown option $1" >&2; exit 2 ;;
        *) pos+=("$1"); args+=("$1"); shift ;;
    esac
done
if [ "${#pos[@]}" -lt 1 ] || [ "${#pos[@]}" -gt 2 ]; then
    echo "usage: conformance.sh [--detach] [options] WORK [OUT]" >&2; exit 2
fi
[[ "$tlimit" =~ ^[0-9]+$ ]] || { echo "conformance.sh: --timeout takes seconds" >&2; exit 2; }
gpu_begin conformance "${pos[0]}" "$detach" "$0" "${args[@]}"
gpu_paths
out=${pos[1]:-$RESULTS/conformance}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=$DEPS_BUILD/bin
tbo=$bin/test-backend-ops
[ -x "$tbo" ] || gpu_die "no $tbo: build-deps.sh has not finished"
[ -x "$PROJECT_BUILD/bin/ggml-virtgpu-server" ] || gpu_die "no project build in $PROJECT_BUILD"
case "$backend" in
    cuda) host_dev=CUDA0 server_args=(--backend "$bin/libggml-cuda.so") ;;
    cpu) host_dev=CPU server_args=(--backend "$bin/libggml-cpu.so") ;;
    *) gpu_die "--backend must be cuda or cpu" ;;
esac
if [ "$cases" != all ]; then
    [ -s "$cases" ] || gpu_die "no case list $cases"
fi

# The server, on a private socket; stopped on exit (after the status is written).
sock=$(mktemp -u "${TMPDIR:-/tmp}/vgpu-conf.XXXXXX.sock")
"$PROJECT_BUILD/bin/ggml-virtgpu-server" --socket "$sock" --log-level warn "${server_args[@]}" >"$out/server.log" 2>&1 &
server=$!
stop_server() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$sock"; }
gpu_at_exit stop_server
for _ in $(seq 300); do [ -S "$sock" ] && break; kill -0 "$server" 2>/dev/null || break; sleep 0.05; done
[ -S "$sock" ] || gpu_die "ggml-virtgpu-server did not start: $(tail -3 "$out/server.log")"
native() { env -u GGML_BACKEND_PATH -u GGML_VIRTGPU_SOCKET "$@"; }
# The guest sees no GPU of its own (as in a VM): only VirtGPU0.
guest() { CUDA_VISIBLE_DEVICES='' GGML_BACKEND_PATH="$PROJECT_BUILD/lib/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$sock" "$@"; }

# ---- 1. support mode -----------------------------------------------------------------------------
gpu_phase "support mode: $host_dev and VirtGPU0, every case"
native "$tbo" support -b "$host_dev" --output csv >"$out/support-$host_dev.csv" 2>"$out/support-$host_dev.err" ||
    gpu_die "support listing of $host_dev failed: $(tail -2 "$out/support-$host_dev.err")"
guest "$tbo" support -b VirtGPU0 --output csv >"$out/support-VirtGPU0.csv" 2>"$out/support-VirtGPU0.err" ||
    gpu_die "support listing of VirtGPU0 failed: $(tail -2 "$out/support-VirtGPU0.err")"
# Columns: backend, op, params, mode, supported, ...; key = op(params), value = supported.
for d in "$host_dev" VirtGPU0; do
    awk -F'","' 'NR > 1 { print $2 "(" $3 ")\t" $5 }' "$out/support-$d.csv" | sort >"$out/$d.sup"
done
total=$(wc -l <"$out/$host_dev.sup")
[ "$total" -gt 0 ] || gpu_die "empty support listing"
host_yes=$(grep -c $'\t1$' "$out/$host_dev.sup" || true)
virt_yes=$(grep -c $'\t1$' "$out/VirtGPU0.sup" || true)
# Both listings enumerate the same cases in the same order: compare them line by line.
paste "$out/$host_dev.sup" "$out/VirtGPU0.sup" | awk -F'\t' -v h="$host_dev" '
    $1 != $3 { print "case lists differ: " $1 " / " $3; next }
    $2 != $4 { print $1 ": " h " " $2 ", VirtGPU0 " $4 }' >"$out/support.diff"
[ "$(wc -l <"$out/VirtGPU0.sup")" = "$total" ] || echo "VirtGPU0 lists $(wc -l <"$out/VirtGPU0.sup") cases, $host_dev $total" >>"$out/support.diff"
ndiff=$(wc -l <"$out/support.diff")
support_ok=1
[ "$ndiff" = 0 ] || support_ok=0

# ---- 2. test mode --------------------------------------------------------------------------------
# Console output: "  OP(params): OK" / "FAIL" / "not supported [...]" per case.
# Prints "STATUS SECONDS"; STATUS 124 when --timeout stopped it.
run_tests() { # run_tests LOG DEVICE WRAPPER
    local logf=$1 dev=$2 wrap=$3 rc=0 t0 left lim=()
    t0=$(date +%s)
    if [ "$cases" = all ]; then
        [ "$tlimit" = 0 ] || lim=(timeout -k 10 "$tlimit")
        "$wrap" "${lim[@]}" "$tbo" test -b "$dev" -j "$jobs" >"$logf" 2>&1 || rc=$?
    else
        # One -o argument may not exceed 128 KiB: chunks of 600 cases.
        : >"$logf"
        split -l 600 "$cases" "$out/chunk."
        for c in "$out"/chunk.*; do
            if [ "$tlimit" != 0 ]; then
                left=$((t0 + tlimit - $(date +%s)))
                [ "$left" -gt 0 ] || { rc=124; break; }
                lim=(timeout -k 10 "$left")
            fi
            "$wrap" "${lim[@]}" "$tbo" test -b "$dev" -j "$jobs" -o "$(paste -sd, "$c")" >>"$logf" 2>&1 || rc=$?
            [ "$rc" != 124 ] || break
        done
        rm -f "$out"/chunk.*
    fi
    echo "$rc $(($(date +%s) - t0))"
}
count() { # count LOG: "ok fail unsupported skipped"
    sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '
        /^  [A-Z_0-9]+\(.*\): OK$/ { ok++ }
        # A failing case may follow the error lines test-backend-ops prints on the same line
        # ("[VIEW] ERR = ... > ...   TOPK_MOE(...): FAIL"): not anchored at the start.
        /[A-Z_0-9]+\(.*\): FAIL$/ { fail++ }
        /^  [A-Z_0-9]+\(.*\): not supported/ { ns++ }
        /^  [A-Z_0-9]+\(.*\): skipping/ { sk++ }
        END { printf "%d %d %d %d\n", ok, fail, ns, sk }'
}
gpu_phase "test mode through VirtGPU0 ($([ "$cases" = all ] && echo "the whole suite" || echo "$(wc -l <"$cases") cases"), -j $jobs)"
read -r trc tsecs < <(run_tests "$out/test-VirtGPU0.log" VirtGPU0 guest)
read -r ok fail ns sk < <(count "$out/test-VirtGPU0.log")
# The cases test mode finds unsupported by VirtGPU0 (the reason names the backends that refused:
# VirtGPU0 and/or the CPU reference) must be exactly those the host device does not support.
# The console prints "  OP(params): not supported [VirtGPU0, CPU] " (a blank before the newline).
sed 's/\x1b\[[0-9;]*m//g' "$out/test-VirtGPU0.log" >"$out/test-VirtGPU0.plain"
sed -n 's/^  \([A-Z_0-9]*(.*)\): not supported \[\(.*\)\] *$/\1\t\2/p' "$out/test-VirtGPU0.plain" >"$out/test-unsupported.all"
awk -F'\t' '$2 ~ /VirtGPU0/ { print $1 }' "$out/test-unsupported.all" | sort -u >"$out/test-unsupported.txt"
cpu_only=$(awk -F'\t' '$2 !~ /VirtGPU0/' "$out/test-unsupported.all" | wc -l)
awk -F'\t' '$2 == 0 { print $1 }' "$out/$host_dev.sup" | sort -u >"$out/host-unsupported.txt"
# Only the cases test mode reported on count (a subset, or the suite less the cases it skips).
sed -n 's/^  \([A-Z_0-9]*(.*)\): \(OK\|.*FAIL\|not supported.*\)$/\1/p' "$out/test-VirtGPU0.plain" | sort -u >"$out/tested.txt"
comm -12 "$out/host-unsupported.txt" "$out/tested.txt" | comm -3 "$out/test-unsupported.txt" - >"$out/unsupported.diff" || true
rm -f "$out/test-VirtGPU0.plain"
nudiff=$(wc -l <"$out/unsupported.diff")
# Support mode lists a case by its one op; in test mode a multi-op case (the fused *_MUL with a
# layout, SNAKE_FUSE) needs every op of its graph, so the support listing is not its reference:
# those cases run once more on the host device itself, whose own test-mode verdict must match.
recheck_line=""
if [ "$nudiff" != 0 ]; then
    gpu_phase "the $nudiff cases whose test-mode verdict differs from the support listing, on $host_dev itself"
    saved_cases=$cases
    cases=$out/unsupported.diff
    read -r rrc rsecs < <(run_tests "$out/test-$host_dev-recheck.log" "$host_dev" native)
    cases=$saved_cases
    sed 's/\x1b\[[0-9;]*m//g' "$out/test-$host_dev-recheck.log" |
        sed -n "s/^  \([A-Z_0-9]*(.*)\): not supported \[.*$host_dev.*\] *\$/\1/p" | sort -u >"$out/recheck-host.txt"
    comm -12 "$out/test-unsupported.txt" "$out/unsupported.diff" | comm -3 - "$out/recheck-host.txt" >"$out/unsupported.rediff" || true
    recheck_line=" the $nudiff cases whose verdict differs from the support listing: $host_dev's own test mode"
    recheck_line+=" agrees on $((nudiff - $(wc -l <"$out/unsupported.rediff"))) (status $rrc, $rsecs s);"
    [ "$rrc" = 0 ] || echo "recheck on $host_dev: status $rrc" >>"$out/unsupported.rediff"
    nudiff=$(wc -l <"$out/unsupported.rediff")
    cp "$out/unsupported.rediff" "$out/unsupported.diff"
fi
test_ok=1 incomplete=""
if [ "$trc" = 124 ] || [ "$trc" = 137 ]; then
    incomplete=" INCOMPLETE: stopped by --timeout $tlimit after $(wc -l <"$out/tested.txt") cases;"
    { [ "$fail" = 0 ] && [ "$nudiff" = 0 ] && [ "$ok" -gt 0 ]; } || test_ok=0
else
    { [ "$trc" = 0 ] && [ "$fail" = 0 ] && [ "$nudiff" = 0 ] && [ "$ok" -gt 0 ]; } || test_ok=0
fi

native_line=""
if [ "$native" = 1 ]; then
    gpu_phase "test mode on $host_dev itself (reference timing)"
    read -r nrc nsecs < <(run_tests "$out/test-$host_dev.log" "$host_dev" native)
    read -r nok nfail nns _ < <(count "$out/test-$host_dev.log")
    native_line="$host_dev itself: $nok OK, $nfail FAIL, $nns not supported in $nsecs s (status $nrc)"
fi

{
    echo "== conformance: VirtGPU0 over ggml-virtgpu-server on $host_dev ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo "support mode: $total cases; $host_dev supports $host_yes, VirtGPU0 reports $virt_yes supported;" \
        "$ndiff differ $([ "$support_ok" = 1 ] && echo "(identical: PASS)" || echo "(FAIL: see support.diff)")"
    echo "test mode: $ok OK, $fail FAIL, $ns not supported ($cpu_only of them by the CPU reference only)," \
        "$sk skipped, in $tsecs s (status $trc);$incomplete$recheck_line" \
        "not-supported set vs $host_dev's: $nudiff differ $([ "$test_ok" = 1 ] && echo "(PASS)" || echo "(FAIL)")"
    [ -z "$native_line" ] || echo "$native_line"
} | tee "$out/summary.txt"
if [ "$ndiff" != 0 ]; then head -20 "$out/support.diff"; fi
if [ "$fail" != 0 ]; then sed 's/\x1b\[[0-9;]*m//g' "$out/test-VirtGPU0.log" | grep -E 'FAIL' | head -20; fi
if [ "$nudiff" != 0 ]; then head -20 "$out/unsupported.diff"; fi
if [ "$support_ok" != 1 ] || [ "$test_ok" != 1 ]; then gpu_die "conformance failed (see $out/summary.txt)"; fi
gpu_log "PASS"
