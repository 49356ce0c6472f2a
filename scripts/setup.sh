#!/usr/bin/env bash
# Set-up: system packages, the pinned llama.cpp dependency (built into a cache outside the
# build tree), and this project (built into build/). Idempotent: a second run only re-checks
# and rebuilds what changed.
#
# Usage: scripts/setup.sh [--no-project]
#   --no-project   stop after the dependency (used by scripts that build their own variant)
# Environment: see scripts/lib/deps.sh (cache location, user-supplied llama.cpp tree);
#   GGML_VIRTGPU_BUILD_TYPE (default RelWithDebInfo), GGML_VIRTGPU_JOBS (default nproc).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=lib/deps.sh
. "$here/lib/deps.sh"

build_project=1
for arg in "$@"; do
    case "$arg" in
        --no-project) build_project=0 ;;
        *) echo "setup.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

jobs=${GGML_VIRTGPU_JOBS:-$(nproc)}
log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# --- 1. system packages --------------------------------------------------------------------
# build-essential/cmake/git/pkg-config: the builds; npm: fetching the pinned dependency;
# libcmocka-dev: unit tests; clang + libclang-rt-14-dev + llvm: libFuzzer and sanitizer
# builds; gnuplot-nox: benchmark charts; procps/psmisc: process checks in tests.
packages="build-essential cmake git pkg-config ca-certificates libcmocka-dev clang \
libclang-rt-14-dev llvm gnuplot-nox procps psmisc xz-utils"
command -v npm >/dev/null 2>&1 || packages="$packages npm"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || die "missing packages:$missing (run as root, or install them first)"
    log "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- 2. dependency source ------------------------------------------------------------------
mkdir -p "$DEPS_CACHE"
if [ -n "${GGML_VIRTGPU_LLAMA_SRC:-}" ]; then
    [ -f "$LLAMA_SRC/ggml/src/ggml-backend-impl.h" ] || die "$LLAMA_SRC is not a llama.cpp tree"
    if git -C "$LLAMA_SRC" rev-parse HEAD >/dev/null 2>&1; then
        head=$(git -C "$LLAMA_SRC" rev-parse HEAD)
        [ "$head" = "$LLAMA_COMMIT" ] ||
            log "warning: $LLAMA_SRC is at $head, not the pinned $LLAMA_COMMIT (v0.5.0)"
    fi
    grep -q "GGML_BACKEND_API_VERSION 2" "$LLAMA_SRC/ggml/src/ggml-backend-impl.h" ||
        die "$LLAMA_SRC has a different GGML backend API version than v0.5.0"
elif [ ! -f "$LLAMA_SRC/.verified" ]; then
    log "fetching llama.cpp v0.5.0 from the npm package $LLAMA_NPM_PACKAGE"
    tmp=$(mktemp -d "$DEPS_CACHE/fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "$LLAMA_NPM_PACKAGE" >/dev/null)
    tar -xzf "$tmp"/node-llama-cpp-*.tgz -C "$tmp" package/llama/gitRelease.bundle
    rm -rf "$LLAMA_SRC"
    git clone -q "$tmp/package/llama/gitRelease.bundle" "$LLAMA_SRC" 2>/dev/null
    git -C "$LLAMA_SRC" -c advice.detachedHead=false checkout -q "$LLAMA_COMMIT"
    got=$(git -C "$LLAMA_SRC" rev-parse HEAD)
    [ "$got" = "$LLAMA_COMMIT" ] || die "bundle is at $got, expected $LLAMA_COMMIT"
    rm -rf "$tmp"
    trap - EXIT
    touch "$LLAMA_SRC/.verified"
    log "verified commit $LLAMA_COMMIT"
fi

# --- 3. dependency build -------------------------------------------------------------------
# GGML_BACKEND_DL: backends are loadable modules, which is how ours is loaded as well.
# GGML_NATIVE cannot be combined with it, so the CPU backend gets fixed, portable AVX2 flags.
dep_flags="-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON \
-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_RPC=ON -DGGML_CCACHE=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=ON \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_SERVER=OFF"
stamp="$LLAMA_BUILD/.ggml-virtgpu-stamp"
want_stamp="$LLAMA_SRC|$dep_flags|$LLAMA_TOOLS"

have_all_tools() {
    for t in $LLAMA_TOOLS; do [ -x "$LLAMA_BUILD/bin/$t" ] || return 1; done
    [ -f "$LLAMA_BUILD/bin/libggml-cpu.so" ] && [ -f "$LLAMA_BUILD/bin/libggml-base.so" ]
}

if [ -n "${GGML_VIRTGPU_LLAMA_BUILD:-}" ]; then
    have_all_tools || die "$LLAMA_BUILD lacks some of: $LLAMA_TOOLS libggml-cpu.so (see docs/BUILDING.md)"
    log "using the existing dependency build $LLAMA_BUILD"
elif [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] && have_all_tools; then
    log "dependency build is cached in $LLAMA_BUILD"
else
    log "building llama.cpp into $LLAMA_BUILD ($jobs jobs; about 4 minutes on 2 cores)"
    start=$(date +%s)
    # shellcheck disable=SC2086
    cmake -S "$LLAMA_SRC" -B "$LLAMA_BUILD" -G "Unix Makefiles" $dep_flags >"$LLAMA_BUILD.configure.log" 2>&1 ||
        die "configuring llama.cpp failed; see $LLAMA_BUILD.configure.log"
    # shellcheck disable=SC2086
    cmake --build "$LLAMA_BUILD" -j "$jobs" --target ggml-cpu ggml-rpc $LLAMA_TOOLS \
        >"$LLAMA_BUILD.build.log" 2>&1 || die "building llama.cpp failed; see $LLAMA_BUILD.build.log"
    have_all_tools || die "llama.cpp build finished without all tools; see $LLAMA_BUILD.build.log"
    printf '%s' "$want_stamp" >"$stamp"
    log "dependency built in $(($(date +%s) - start)) s"
fi

# --- 4. this project -----------------------------------------------------------------------
if [ "$build_project" = 1 ]; then
    build_type=${GGML_VIRTGPU_BUILD_TYPE:-RelWithDebInfo}
    log "building ggml-virtgpu ($build_type) into $root/build"
    cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE="$build_type" \
        -DGGML_VIRTGPU_LLAMA_SRC="$LLAMA_SRC" -DGGML_VIRTGPU_LLAMA_BUILD="$LLAMA_BUILD" >/dev/null
    cmake --build "$root/build" -j "$jobs" >/dev/null || {
        # Show the compiler's complaint rather than a bare failure.
        cmake --build "$root/build" -j 1 2>&1 | grep -E -B2 -A6 "error|Error" | head -60 >&2
        die "building ggml-virtgpu failed"
    }
fi
log "done"
