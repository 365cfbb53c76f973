#!/usr/bin/env bash
# Runs the Node binding's tests (bindings/node) with node's own test runner against a real
# `norman serve`, after `npm ci`, then the packed tarball installed outside the repository
# (scripts/test-node-package.sh, counted as one test). Tests the build NORMAN_LIBRARY and NORMAN_BIN name, else builds
# and tests the debug build (scripts/pick-build.sh).
# Ends with exactly one line `node tests: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pick-build.sh
. scripts/pick-build.sh
if ! pick_build; then
    echo "node tests: 0 passed, 1 failed"
    exit 1
fi
echo "== node: $(node --version), library $NORMAN_LIBRARY, program $NORMAN_BIN"
cd bindings/node
npm ci --no-audit --no-fund --loglevel=error
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
node --test --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination="$log" || status=$?
passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -1)
passed=${passed:-0}
failed=${failed:-0}
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "== node: npm install of the packed tarball in an empty project outside the repository"
cd ../..
if scripts/test-node-package.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
echo "node tests: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
