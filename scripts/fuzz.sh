#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) into build-fuzz/ and runs each for a
# while on a copy of its committed corpus (tests/fuzz/README.md). Exits non-zero on any crash,
# leak, timeout, out-of-memory or violated property, and prints where the reproducer is.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]    SECONDS per target (default 60);
#                                                  TARGET: codec, dispatch, graph (default all)
#        scripts/fuzz.sh --build-only
# Deep runs: scripts/fuzz.sh 3600                  one hour per target
#            GGML_VIRTGPU_FUZZ_FORK=8 scripts/fuzz.sh 3600 dispatch   8 processes on one target
# Environment: GGML_VIRTGPU_FUZZ_FORK (libFuzzer -fork=N), GGML_VIRTGPU_FUZZ_VERBOSE=1 (host
#   log lines), GGML_VIRTGPU_JOBS (build jobs, default nproc). Work files: build-fuzz/fuzz-work/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=lib/deps.sh
. "$here/lib/deps.sh"

build_only=0
seconds=60
targets=()
for arg in "$@"; do
    case "$arg" in
        --build-only) build_only=1 ;;
        codec | dispatch | graph) targets+=("$arg") ;;
        '' | *[!0-9]*) echo "fuzz.sh: unknown argument '$arg'" >&2; exit 2 ;;
        *) seconds=$arg ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(codec dispatch graph)

command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (scripts/setup.sh installs it)" >&2; exit 1; }
if [ ! -f "$LLAMA_BUILD/bin/libggml-cpu.so" ]; then
    "$here/setup.sh" --no-project
fi

build="$root/build-fuzz"
jobs=${GGML_VIRTGPU_JOBS:-$(nproc)}
start=$(date +%s)
echo "[fuzz] building the fuzz targets into $build (clang, address,undefined)"
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGGML_VIRTGPU_FUZZ=ON -DGGML_VIRTGPU_SANITIZE=address,undefined \
    -DGGML_VIRTGPU_TESTS=ON -DGGML_VIRTGPU_GUEST=OFF \
    -DGGML_VIRTGPU_LLAMA_SRC="$LLAMA_SRC" -DGGML_VIRTGPU_LLAMA_BUILD="$LLAMA_BUILD" >"$build/fuzz-configure.log" 2>&1 ||
    { cat "$build/fuzz-configure.log" >&2; exit 1; }
cmake --build "$build" -j "$jobs" --target fuzz-codec fuzz-dispatch fuzz-graph >"$build/fuzz-build.log" 2>&1 ||
    { grep -E -B2 -A6 "error|Error" "$build/fuzz-build.log" | head -60 >&2; exit 1; }
echo "[fuzz] built in $(($(date +%s) - start)) s"
[ "$build_only" = 0 ] || exit 0

failed=()
for t in "${targets[@]}"; do
    "$root/tests/fuzz/run-fuzzer.sh" "$build/bin/fuzz-$t" "$t" "$seconds" "$build/fuzz-work" || failed+=("$t")
done
echo "[fuzz] finished in $(($(date +%s) - start)) s: ${#failed[@]} of ${#targets[@]} targets with findings${failed:+ (${failed[*]})}"
[ ${#failed[@]} = 0 ]
