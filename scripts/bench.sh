#!/usr/bin/env bash
# npm run bench: installs what it needs, then measures airlock against skopeo and
# the machine's limits in the same run (see scripts/bench.ts).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-test-deps.sh
. scripts/ensure-node.sh
exec npx tsx scripts/bench.ts "$@"
