#!/usr/bin/env bash
# GPU machine, step 2: configure and build this project into WORK/project against the
# dependency of build-deps.sh (WORK/deps; its phase 1 is enough). The tests are not built
# (cmocka may be missing there); the benchmarks are, with vgpu-bench-bandwidth-cuda where the
# CUDA toolkit is found. About a minute.
#
# Usage: bench/gpu/build-project.sh [--detach] [--jobs N] WORK
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

detach=0 jobs=$(nproc) pos=() args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --detach) detach=1; shift; continue ;;
        --jobs) jobs=$2; args+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "build-project.sh: unknown option $1" >&2; exit 2 ;;
        *) pos+=("$1"); args+=("$1"); shift ;;
    esac
done
[ "${#pos[@]}" = 1 ] || { echo "usage: build-project.sh [--detach] [--jobs N] WORK" >&2; exit 2; }
gpu_begin build-project "${pos[0]}" "$detach" "$0" "${args[@]}"
gpu_paths
[ -f "$DEPS_BUILD/bin/libggml-base.so" ] || gpu_die "no $DEPS_BUILD/bin/libggml-base.so: run build-deps.sh first (phase 1 is enough)"
command -v nvcc >/dev/null 2>&1 || [ ! -x /usr/local/cuda/bin/nvcc ] || export PATH=/usr/local/cuda/bin:$PATH

# A build directory configured from another checkout cannot be reused.
if [ -f "$PROJECT_BUILD/CMakeCache.txt" ] &&
    ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$GPU_REPO" "$PROJECT_BUILD/CMakeCache.txt"; then
    gpu_log "$PROJECT_BUILD was configured from another source tree: starting it afresh"
    rm -rf "$PROJECT_BUILD"
fi
gpu_phase "configuring $PROJECT_BUILD"
cmake -S "$GPU_REPO" -B "$PROJECT_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGGML_VIRTGPU_TESTS=OFF \
    -DGGML_VIRTGPU_LLAMA_SRC="$DEPS_SRC" -DGGML_VIRTGPU_LLAMA_BUILD="$DEPS_BUILD" \
    >"$GPU_WORK/logs/project-configure.log" 2>&1 ||
    gpu_die "configuring failed: $(grep -A3 'Error' "$GPU_WORK/logs/project-configure.log" | head -5 | tr '\n' ' ')"
grep -E 'bench:' "$GPU_WORK/logs/project-configure.log" || true
gpu_phase "building ($jobs jobs)"
cmake --build "$PROJECT_BUILD" -j "$jobs" >"$GPU_WORK/logs/project-build.log" 2>&1 || {
    grep -E -B2 -A6 'error' "$GPU_WORK/logs/project-build.log" | head -40 >&2
    gpu_die "building failed (log: logs/project-build.log)"
}
for f in bin/ggml-virtgpu-server bin/ggml-virtgpu-gen-model bin/vgpu-bench-rtt bin/vgpu-bench-bandwidth \
         lib/libggml-virtgpu.so lib/libggml-virtgpu-backend.so; do
    [ -e "$PROJECT_BUILD/$f" ] || gpu_die "the build finished without $f"
done
[ -e "$PROJECT_BUILD/bin/vgpu-bench-bandwidth-cuda" ] && gpu_log "with vgpu-bench-bandwidth-cuda"
gpu_log "done: $PROJECT_BUILD"
