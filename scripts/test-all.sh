#!/usr/bin/env bash
# Runs every test of libnorman. Installs what it needs first (nothing beyond the Rust toolchain yet;
# gcc, g++ and pkg-config for the C suite; the Go and Node suites join here as their bindings land) and ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

echo "== benchmark smoke run (a debug build: proves the bench runs; real figures need --release)"
cargo run --locked --quiet -- bench --cpu-mib 16 --size-mib 16

echo "== Rust tests (unit, shared vectors, loopback sockets, CLI processes)"
cargo test --locked --all-targets 2>&1 | tee "$log"

echo "== C tests (header, ASan, static and shared libraries, install, norman serve)"
./scripts/test-c.sh

passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
