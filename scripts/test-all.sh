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
./scripts/test-c.sh 2>&1 | tee -a "$log"

# Rust: "N passed; M failed" per test binary. C: each "test_x: N checks, M failed" suite is one test.
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
c_passed=$(grep -Ec '^test_[a-z_]+: [0-9]+ checks, 0 failed$' "$log" || true)
c_failed=$(grep -Ec '^test_[a-z_]+: [0-9]+ checks, [1-9][0-9]* failed$' "$log" || true)
passed=$((passed + c_passed))
failed=$((failed + c_failed))
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
