#!/usr/bin/env bash
# The demo (npm run demo): installs what it needs (as root, or prints the sudo
# command), then runs scripts/demo.ts, which starts local services and walks
# through pack -> transfer -> load.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v node >/dev/null 2>&1; then
  echo "demo.sh: node not found: install Node.js 20 or newer" >&2
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "demo.sh: Node.js $(node --version) is too old: airlock needs Node 20 or newer" >&2
  exit 1
fi

if [ -f scripts/install-test-deps.sh ]; then
  bash scripts/install-test-deps.sh
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

exec npx tsx scripts/demo.ts "$@"
