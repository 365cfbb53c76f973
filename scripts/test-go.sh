#!/usr/bin/env bash
# Runs the Go binding's checks and tests (bindings/go): gofmt, go vet, and go test -race against a
# real `norman serve` the tests start, then a scratch module outside the repository that requires
# the binding and links an installed libnorman (scripts/test-go-module.sh, counted as one test). Installs Go from Debian (golang-go) when it is missing. Tests
# the build NORMAN_LIBRARY and NORMAN_BIN name, else builds and tests the debug build
# (scripts/pick-build.sh). Ends with one line `go tests: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null; then
    echo "== go: installing golang-go"
    (apt-get update -qq && apt-get install -y -qq golang-go) >/dev/null
fi
# shellcheck source=scripts/pick-build.sh
. scripts/pick-build.sh
if ! pick_build; then
    echo "go tests: 0 passed, 1 failed"
    exit 1
fi
echo "== go: $(go version), library $NORMAN_LIBRARY, program $NORMAN_BIN"
pc_dir=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$log" "$pc_dir"' EXIT
# The package finds libnorman through pkg-config: a norman.pc for the chosen build.
dev_pkg_config "$pc_dir"
cd bindings/go
status=0
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
    echo "gofmt would change: $unformatted"
    status=1
fi
go vet ./... || status=1
go test -race -count=1 -timeout 600s -v ./... 2>&1 | tee "$log" | grep -Ev '^(=== (RUN|PAUSE|CONT)|\s+[a-z_]+_test.go:[0-9]+: )' || true
passed=$(grep -Ec '^\s*--- PASS: ' "$log" || true)
failed=$(grep -Ec '^\s*--- FAIL: ' "$log" || true)
# A build failure, a panic or a timeout prints no "--- FAIL" line: it still fails the run.
if ! grep -Eq '^ok\s' "$log" || grep -Eq '^(FAIL|panic:)' "$log"; then status=1; fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "== go: a scratch module outside the repository, against \`make install\`"
cd ../..
if scripts/test-go-module.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
echo "go tests: $passed passed, $failed failed"
[ "$status" -eq 0 ]
