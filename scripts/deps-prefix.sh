#!/usr/bin/env bash
# Prints the pinned llama.cpp dependency's prefix: its bin/ holds llama-bench, test-backend-ops,
# llama-completion, llama-quantize, ggml-rpc-server and the libraries they load.
# Exits 1 (with a hint) if scripts/setup.sh has not built it yet.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/deps.sh
. "$here/lib/deps.sh"
for t in $LLAMA_TOOLS; do
    if [ ! -x "$LLAMA_BUILD/bin/$t" ]; then
        echo "deps-prefix.sh: $LLAMA_BUILD/bin/$t is missing; run scripts/setup.sh first" >&2
        exit 1
    fi
done
echo "$LLAMA_BUILD"
