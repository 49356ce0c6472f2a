#!/usr/bin/env bash
# GPU machine, step 1: unpack the llama.cpp v0.5.0 source tarball (made here with
# shared/gpu/pack-llama-src.sh) into WORK/deps/src and build ggml with CUDA for one
# architecture (sm_90 by default) plus the CPU and RPC backends and the tools, as dynamic
# backends (GGML_BACKEND_DL=ON), into WORK/deps/build. About 9 minutes on 16 cores, so start
# it with --detach and poll: bench/gpu/status.sh WORK --wait 540.
#
# It builds in two phases: phase 1 (ggml-base, ggml, ggml-cpu, ggml-rpc, llama-quantize: what
# this project and the model generation need) then phase 2 (ggml-cuda, llama-bench,
# ggml-rpc-server, test-backend-ops, llama-completion). When phase 1 is done the file
# WORK/deps/phase1.ok exists, so that all.sh can build the project and the models meanwhile.
#
# Usage: bench/gpu/build-deps.sh [--detach] [--jobs N] [--cuda-arch A] [--cpu-only] TARBALL WORK
#   --jobs N       parallel compile jobs (default: nproc)
#   --cuda-arch A  CMAKE_CUDA_ARCHITECTURES (default 90)
#   --cpu-only     no CUDA backend (to try the scripts on a machine without a GPU)
# Idempotent: an unpacked tree is kept (delete WORK/deps to start over); make rebuilds only
# what changed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

detach=0 jobs=$(nproc) arch=90 cuda=1 pos=() args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --detach) detach=1; shift; continue ;;
        --jobs) jobs=$2; args+=("$1" "$2"); shift 2 ;;
        --cuda-arch) arch=$2; args+=("$1" "$2"); shift 2 ;;
        --cpu-only) cuda=0; args+=("$1"); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "build-deps.sh: unknown option $1" >&2; exit 2 ;;
        *) pos+=("$1"); args+=("$1"); shift ;;
    esac
done
[ "${#pos[@]}" = 2 ] || { echo "usage: build-deps.sh [--detach] [--jobs N] [--cuda-arch A] [--cpu-only] TARBALL WORK" >&2; exit 2; }
tarball=$(realpath "${pos[0]}")
gpu_begin build-deps "${pos[1]}" "$detach" "$0" "${args[@]}"
gpu_paths
[ -f "$tarball" ] || gpu_die "no tarball $tarball"

# ---- unpack ----------------------------------------------------------------------------------
if [ ! -f "$DEPS_SRC/.unpacked" ]; then
    gpu_phase "unpacking $(basename "$tarball")"
    rm -rf "$DEPS_SRC"
    mkdir -p "$DEPS_SRC"
    tar -xzf "$tarball" -C "$DEPS_SRC"
    [ -f "$DEPS_SRC/ggml/src/ggml-backend-impl.h" ] || gpu_die "$tarball does not hold a llama.cpp tree"
    touch "$DEPS_SRC/.unpacked"
fi
grep -q "GGML_BACKEND_API_VERSION 2" "$DEPS_SRC/ggml/src/ggml-backend-impl.h" ||
    gpu_die "the tree is not llama.cpp v0.5.0 (GGML_BACKEND_API_VERSION differs)"

# ---- configure -------------------------------------------------------------------------------
# As scripts/setup.sh configures the dependency (portable AVX2 CPU backend, RPC, tests), plus
# CUDA for one architecture. GGML_NATIVE cannot be combined with GGML_BACKEND_DL.
flags=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_NATIVE=OFF
       -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_RPC=ON
       -DGGML_CCACHE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=ON
       -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_SERVER=OFF)
phase2=(llama-bench ggml-rpc-server test-backend-ops llama-completion)
if [ "$cuda" = 1 ]; then
    command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] || gpu_die "no nvcc (use --cpu-only on a machine without CUDA)"
    command -v nvcc >/dev/null 2>&1 || export PATH=/usr/local/cuda/bin:$PATH
    flags+=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch")
    phase2=(ggml-cuda "${phase2[@]}")
fi
gpu_phase "configuring (CUDA: $([ "$cuda" = 1 ] && echo "sm_$arch" || echo no))"
cmake -S "$DEPS_SRC" -B "$DEPS_BUILD" "${flags[@]}" >"$GPU_WORK/logs/deps-configure.log" 2>&1 ||
    gpu_die "configuring failed: $(tail -5 "$GPU_WORK/logs/deps-configure.log" | tr '\n' ' ')"

# ---- build -------------------------------------------------------------------------------------
build() {
    local what=$1
    shift
    local t0
    t0=$(date +%s)
    cmake --build "$DEPS_BUILD" -j "$jobs" --target "$@" >"$GPU_WORK/logs/deps-$what.log" 2>&1 || {
        grep -E -B2 -A4 'error' "$GPU_WORK/logs/deps-$what.log" | head -30 >&2
        gpu_die "building $what failed (log: logs/deps-$what.log)"
    }
    gpu_log "$what built in $(($(date +%s) - t0)) s"
}
rm -f "$GPU_WORK/deps/phase1.ok"
gpu_phase "phase 1: ggml-base ggml ggml-cpu ggml-rpc llama-quantize ($jobs jobs)"
build phase1 ggml-base ggml ggml-cpu ggml-rpc llama-quantize
touch "$GPU_WORK/deps/phase1.ok"
gpu_phase "phase 2: ${phase2[*]} ($jobs jobs)"
build phase2 "${phase2[@]}"

bin=$DEPS_BUILD/bin
for f in libggml-base.so libggml.so libggml-cpu.so libggml-rpc.so llama-quantize "${phase2[@]/ggml-cuda/libggml-cuda.so}"; do
    [ -e "$bin/$f" ] || gpu_die "the build finished without $bin/$f"
done
touch "$GPU_WORK/deps/build.ok"
gpu_log "done: $bin"
