# Sourced by test.sh and demo.sh: checks Node.js 20+ and installs the Node
# packages when node_modules is missing or older than the lock file.
if ! command -v node >/dev/null 2>&1; then
  echo "airlock: node not found: install Node.js 20 or newer" >&2
  exit 1
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "airlock: Node.js $(node --version) is too old: airlock needs Node 20 or newer" >&2
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
