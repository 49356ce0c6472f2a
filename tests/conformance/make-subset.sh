#!/usr/bin/env bash
# Regenerates subset.txt: the fixed, representative part of test-backend-ops that CI runs
# through VirtGPU (the full suite takes ~25 minutes on 2 cores; docs/CONFORMANCE.md records full
# runs). For every test name (an op, or a fused pattern such as MUL_MAT_VEC_FUSION) it keeps
# up to PER_NAME cases the CPU backend supports, evenly spread over that name's list, plus up
# to 2 cases the CPU backend does not support (they must come back "not supported").
# Usage: make-subset.sh LLAMA_BIN [PER_NAME] > subset.txt   (subset.txt: PER_NAME 40)
set -euo pipefail
bin=$1
per=${2:-10}
"$bin/test-backend-ops" support -b CPU --output csv 2>/dev/null |
    awk -F'","' -v per="$per" '
        NR == 1 { next }
        {
            name = $2; params = $3; sup = $5
            key = name SUBSEP sup
            n[key]++
            list[key, n[key]] = name "(" params ")"
            if (!(name in seen)) { seen[name] = 1; order[++names] = name }
        }
        END {
            for (i = 1; i <= names; i++) {
                name = order[i]
                k = name SUBSEP "1"; total = n[k]; take = total < per ? total : per
                for (j = 0; j < take; j++) print list[k, 1 + int(j * total / take)]
                k = name SUBSEP "0"; total = n[k]; take = total < 2 ? total : 2
                for (j = 0; j < take; j++) print list[k, 1 + int(j * total / take)]
            }
        }'
