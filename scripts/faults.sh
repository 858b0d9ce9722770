#!/usr/bin/env bash
# npm run faults: installs what it needs, builds the one-file CLI, then runs the reliability
# campaign against real servers on loopback (see scripts/faults.ts and docs/reliability.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-test-deps.sh
. scripts/ensure-node.sh
npm run -s build
exec npx tsx scripts/faults.ts "$@"
