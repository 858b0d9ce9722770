#!/usr/bin/env bash
# The demo (npm run demo): installs what it needs (as root, or prints the sudo
# command), then runs scripts/demo.ts on local services it starts (see there
# for what it shows today).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -f scripts/install-test-deps.sh ]; then
  bash scripts/install-test-deps.sh
fi

. scripts/ensure-node.sh

exec npx tsx scripts/demo.ts "$@"
