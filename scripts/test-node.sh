#!/usr/bin/env bash
# Runs the Node binding's tests (bindings/node) with node's own test runner against a real
# `norman serve`. Needs libnorman and the norman program built (`cargo build --locked --lib --bins`,
# debug or --release). Honours NORMAN_LIBRARY, NORMAN_BIN and CARGO_TARGET_DIR; otherwise uses the
# newer of target/release and target/debug, the library and the program from the same profile.
# Ends with exactly one line `node tests: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=$(cd "${CARGO_TARGET_DIR:-target}" 2>/dev/null && pwd || echo "${CARGO_TARGET_DIR:-target}")
case "$(uname -s)" in
    Darwin) lib_name=libnorman.dylib ;;
    *) lib_name=libnorman.so ;;
esac
if [ -z "${NORMAN_LIBRARY:-}" ] || [ -z "${NORMAN_BIN:-}" ]; then
    profile=
    for p in release debug; do
        [ -f "$target_dir/$p/$lib_name" ] && [ -x "$target_dir/$p/norman" ] || continue
        if [ -z "$profile" ] || [ "$target_dir/$p/$lib_name" -nt "$target_dir/$profile/$lib_name" ]; then profile=$p; fi
    done
    if [ -z "$profile" ]; then
        echo "test-node: no $lib_name and norman in $target_dir/{release,debug}; run cargo build --locked --lib --bins first" >&2
        echo "node tests: 0 passed, 1 failed"
        exit 1
    fi
    export NORMAN_LIBRARY=${NORMAN_LIBRARY:-$target_dir/$profile/$lib_name}
    export NORMAN_BIN=${NORMAN_BIN:-$target_dir/$profile/norman}
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
echo "node tests: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
