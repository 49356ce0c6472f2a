#!/usr/bin/env bash
# README command 2: the whole test suite. Sets up (packages, dependency, build/), builds a
# sanitizer variant (build-asan/), then runs CTest on both. Exits non-zero on any failure.
#
# Usage: scripts/test.sh [ctest arguments...]   e.g. scripts/test.sh -L unit
# Environment: GGML_VIRTGPU_TEST_JOBS (ctest -j, default 1), GGML_VIRTGPU_SKIP_ASAN=1,
#   GGML_VIRTGPU_FUZZ_SECONDS (seconds per fuzz target, default 60; 0 skips fuzzing).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=lib/deps.sh
. "$here/lib/deps.sh"

"$here/setup.sh"

jobs=${GGML_VIRTGPU_TEST_JOBS:-1}
status=0
start=$(date +%s)

echo "[test] CTest on build/"
ctest --test-dir "$root/build" --output-on-failure -j "$jobs" "$@" || status=1

if [ "${GGML_VIRTGPU_SKIP_ASAN:-0}" != 1 ]; then
    echo "[test] building the AddressSanitizer + UBSan variant into build-asan/"
    cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug \
        -DGGML_VIRTGPU_SANITIZE=address,undefined \
        -DGGML_VIRTGPU_LLAMA_SRC="$LLAMA_SRC" -DGGML_VIRTGPU_LLAMA_BUILD="$LLAMA_BUILD" >/dev/null
    cmake --build "$root/build-asan" -j "$(nproc)" >/dev/null
    echo "[test] CTest on build-asan/ (label: sanitize)"
    # The dependency is not instrumented; ASan must come first in the link order, which holds
    # for our executables; leaks in the uninstrumented dependency are not ours to report.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$root/build-asan" --output-on-failure -j "$jobs" -L sanitize "$@" || status=1
fi

fuzz_seconds=${GGML_VIRTGPU_FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" != 0 ]; then
    echo "[test] fuzzing each libFuzzer target for $fuzz_seconds s (scripts/fuzz.sh)"
    "$here/fuzz.sh" "$fuzz_seconds" || status=1
else
    echo "[test] fuzzing skipped: GGML_VIRTGPU_FUZZ_SECONDS=0"
fi

echo "[test] finished in $(($(date +%s) - start)) s: $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status
