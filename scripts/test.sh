#!/usr/bin/env bash
# The test command (npm test). From a fresh clone on Debian with Node 20+:
# installs what the tests need, then typechecks, lints and runs every test.
#
#   scripts/test.sh              typecheck, lint, unit tests, integration tests
#   scripts/test.sh unit         unit tests only (no system packages needed)
#   scripts/test.sh integration  integration tests only
#   scripts/test.sh check        typecheck and lint only
#   scripts/test.sh FILE...      just these test files
#
# Unit test files run two at a time; integration test files run one at a time
# (each starts real servers, and the reference box has 2 cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode="${1:-all}"
files=()
case "$mode" in
  all | unit | integration | check) ;;
  -h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    mode=files
    files=("$@")
    ;;
esac

# System programs the integration tests run for real (registry, skopeo, git, nginx, sshd...).
if [ "$mode" != unit ] && [ "$mode" != check ] && [ -f scripts/install-test-deps.sh ]; then
  bash scripts/install-test-deps.sh
fi

. scripts/ensure-node.sh

shopt -s nullglob
unit_tests=(test/unit/*.test.ts)
integration_tests=(test/integration/*.test.ts)
shopt -u nullglob

# Each run's TAP goes to the terminal and to a log; the totals of every run are
# printed last as one "N passed, N failed" line.
tap_log="$(mktemp)"
trap 'rm -f "$tap_log"' EXIT
status=0
run_tests() {
  local concurrency="$1"
  shift
  [ "$#" -gt 0 ] || return 0
  node --import tsx --test --test-concurrency="$concurrency" --test-timeout=600000 "$@" | tee -a "$tap_log" || status=1
}
summary() {
  local passed failed
  passed=$(awk '/^# pass /{n+=$3} END{print n+0}' "$tap_log")
  failed=$(awk '/^# fail /{n+=$3} END{print n+0}' "$tap_log")
  [ "$failed" -eq 0 ] || status=1
  echo "$passed passed, $failed failed"
  exit "$status"
}

if [ "$mode" = all ] || [ "$mode" = check ]; then
  echo "== typecheck" >&2
  npx tsc -p tsconfig.json --noEmit
  echo "== lint" >&2
  npx eslint .
fi
if [ "$mode" = all ] || [ "$mode" = unit ]; then
  echo "== unit tests" >&2
  run_tests 2 "${unit_tests[@]}"
fi
# The integration tests also run the one-file builds (dist/), as users get them.
if [ "$mode" = all ] || [ "$mode" = integration ] || { [ "$mode" = files ] && [[ " ${files[*]} " == *integration/* ]]; }; then
  echo "== build" >&2
  npm run -s build
fi
if [ "$mode" = all ] || [ "$mode" = integration ]; then
  echo "== integration tests" >&2
  run_tests 1 "${integration_tests[@]}"
fi
if [ "$mode" = files ]; then
  run_tests 1 "${files[@]}"
fi
[ "$mode" = check ] || summary
