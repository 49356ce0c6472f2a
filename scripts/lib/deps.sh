# shellcheck shell=bash
# Where the pinned llama.cpp dependency lives. Sourced by setup.sh, deps-prefix.sh and the
# test and bench scripts so that every script agrees on the same paths.
#
# Inputs (environment, all optional):
#   GGML_VIRTGPU_CACHE      cache root (default: $XDG_CACHE_HOME/ggml-virtgpu or ~/.cache/ggml-virtgpu)
#   GGML_VIRTGPU_LLAMA_SRC  an existing llama.cpp v0.5.0 source tree to build instead of the
#                           pinned bundle
#   GGML_VIRTGPU_LLAMA_BUILD an existing build of that tree (configured like ours, see
#                           docs/BUILDING.md); used as is, nothing is rebuilt
# Outputs (shell variables): LLAMA_COMMIT, DEPS_CACHE, LLAMA_SRC, LLAMA_BUILD

LLAMA_COMMIT=de3ff815ea7d559ee917f063901b8986f038abc6
LLAMA_NPM_PACKAGE=node-llama-cpp@3.22.1

DEPS_CACHE=${GGML_VIRTGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ggml-virtgpu}

if [ -n "${GGML_VIRTGPU_LLAMA_SRC:-}" ]; then
    LLAMA_SRC=$(realpath "$GGML_VIRTGPU_LLAMA_SRC")
    # One build directory per user tree, so two trees never share a cache entry.
    LLAMA_BUILD=$DEPS_CACHE/llama-build-$(printf %s "$LLAMA_SRC" | sha256sum | cut -c1-12)
else
    LLAMA_SRC=$DEPS_CACHE/llama.cpp-${LLAMA_COMMIT:0:12}/src
    LLAMA_BUILD=$DEPS_CACHE/llama.cpp-${LLAMA_COMMIT:0:12}/build
fi
if [ -n "${GGML_VIRTGPU_LLAMA_BUILD:-}" ]; then
    LLAMA_BUILD=$(realpath "$GGML_VIRTGPU_LLAMA_BUILD")
fi

# The tools every other script expects in "$LLAMA_BUILD/bin".
LLAMA_TOOLS="test-backend-ops llama-bench llama-completion llama-quantize ggml-rpc-server"
