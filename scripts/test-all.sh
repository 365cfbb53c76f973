#!/usr/bin/env bash
# Runs every test of libnorman: Rust, C, Go, Node. Installs what it needs first (gcc, g++ and
# pkg-config for the C suite, golang-go for the Go one, koffi through `npm ci`) and ends with one
# summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

echo "== benchmark smoke run (a debug build: proves the bench runs; real figures need --release)"
cargo run --locked --quiet -- bench --cpu-mib 16 --size-mib 16

echo "== Rust tests (unit, shared vectors, loopback sockets, CLI processes, netaio peers)"
# The interop tests run netaio 0.0.9 from the venv; NORMAN_REQUIRE_PYTHON makes them fail instead of
# skipping when the venv is missing, so CI can never pass without them.
# shellcheck source=scripts/py-venv.sh
source scripts/py-venv.sh
py_venv
export NORMAN_REQUIRE_PYTHON=1
cargo test --locked --all-targets 2>&1 | tee "$log"
# --all-targets skips doctests; the library's examples run here.
cargo test --locked --doc -p norman 2>&1 | tee -a "$log"

echo "== ChaCha20 backends (each one this CPU has, forced in a small build of its own)"
./scripts/test-cipher-backends.sh 2>&1 | tee -a "$log"

echo "== C tests (header, ASan, static and shared libraries, install, norman serve)"
./scripts/test-c.sh 2>&1 | tee -a "$log"

echo "== Go binding (go vet, go test -race against norman serve)"
./scripts/test-go.sh 2>&1 | tee -a "$log"

echo "== Node binding (npm ci, node --test against norman serve)"
./scripts/test-node.sh 2>&1 | tee -a "$log"

# Rust: "N passed; M failed" per test binary. C: each "test_x: N checks, M failed" suite is one test.
passed=$(grep -E '^test result:' "$log" | grep -Eo '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
failed=$(grep -E '^test result:' "$log" | grep -Eo '[0-9]+ failed;' | awk '{s += $1} END {print s + 0}')
c_passed=$(grep -Ec '^test_[a-z_]+: [0-9]+ checks, 0 failed$' "$log" || true)
c_failed=$(grep -Ec '^test_[a-z_]+: [0-9]+ checks, [1-9][0-9]* failed$' "$log" || true)
# Go and Node: one "go tests: N passed, M failed" line each.
b_passed=$(sed -nE 's/^(go|node) tests: ([0-9]+) passed, ([0-9]+) failed$/\2/p' "$log" | awk '{s += $1} END {print s + 0}')
b_failed=$(sed -nE 's/^(go|node) tests: ([0-9]+) passed, ([0-9]+) failed$/\3/p' "$log" | awk '{s += $1} END {print s + 0}')
passed=$((passed + c_passed + b_passed))
failed=$((failed + c_failed + b_failed))
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
