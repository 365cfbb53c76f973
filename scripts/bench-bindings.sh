#!/usr/bin/env bash
# Upload throughput of the bindings next to the C API, in one run against one `norman serve`:
# MIB MiB from memory to an asset socket (pairing from the backend, finish completes the transfer)
# with 64 KiB and 1 MiB writes, through `tests/c/bench.c push` (C), `go test -bench Upload` (Go) and
# `bindings/node/bench/upload.js` (Node). ROUNDS rounds interleave the three; the table shows the
# median of each and its ratio to C. Release build; reports numbers, never fails on them.
# Usage: scripts/bench-bindings.sh [MIB] [ROUNDS]   (defaults 256 and 3; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-256}
rounds=${2:-3}
cargo build --locked --release --quiet --lib --bins
target_dir=${CARGO_TARGET_DIR:-target}
lib_dir=$(cd "$target_dir/release" && pwd)
# The system libraries of a static link, as rustc names them (Makefile: native-static-libs).
make --quiet static-libs CARGO_TARGET_DIR="$target_dir" >/dev/null
read -ra static_libs < "$lib_dir/norman-static-libs.txt"
# shellcheck source=scripts/pick-build.sh
. scripts/pick-build.sh
soname_link "$lib_dir"
shm_root=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && shm_root=/dev/shm   # blob writes in memory, not on the disk
out=$(mktemp -d "$shm_root/norman-bench.XXXXXX")
# shellcheck source=scripts/serve.sh
. scripts/serve.sh
cleanup() {
    stop_serve
    rm -rf "$out"
}
trap cleanup EXIT

gcc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iinclude -Itests/c tests/c/bench.c -o "$out/cbench" \
    "$lib_dir/libnorman.a" "${static_libs[@]}"
NORMAN_LIB_DIR=$lib_dir dev_pkg_config "$out/pkgconfig"   # scripts/pick-build.sh
(cd bindings/go/norman && go test -c -o "$out/go.test" .)
(cd bindings/node && npm ci --no-audit --no-fund --loglevel=error)

start_serve "$lib_dir/norman" "$out/serve"

results="$out/results"   # lines: LANG SIZE MB/s
for round in $(seq 1 "$rounds"); do
    echo "round $round of $rounds ($mib MiB per upload)" >&2
    for size in 65536 1048576; do "$out/cbench" push "$base_url" "$size" "$mib" >>"$results"; done
    NORMAN_TEST_BASE_URL="$base_url" NORMAN_BENCH_MIB="$mib" "$out/go.test" -test.run '^$' \
        -test.bench 'Upload/' -test.benchtime 1x |
        awk '/^BenchmarkUpload\/write=/ { split($1, a, "[=-]"); print "go", a[2], $(NF-1) }' >>"$results"
    NORMAN_LIBRARY="$lib_dir/libnorman.so" node bindings/node/bench/upload.js --base-url "$base_url" --mib "$mib" \
        >>"$results"
    # Each round's blobs are done with: keep the memory-backed data dir small.
    find "$out/serve" -type f -size +1M -delete 2>/dev/null || true
done

echo "each round (MB/s): $(awk '{printf "%s %s %s; ", $1, $2, $3}' "$results")"
echo "upload of $mib MiB from memory to norman serve on loopback, median of $rounds rounds (MB/s):"
printf "%10s %8s %8s %8s %8s %8s\n" write C Go Node Go/C Node/C
# median LANG SIZE: the middle figure of LANG's rounds for SIZE (0 when it has none).
median() { awk -v l="$1" -v s="$2" '$1 == l && $2 == s {print $3}' "$results" | sort -n |
    awk '{v[NR] = $1} END {print (NR ? v[int((NR + 1) / 2)] : 0)}'; }
for size in 65536 1048576; do
    c=$(median c "$size"); go=$(median go "$size"); node=$(median node "$size")
    awk -v s="$size" -v c="$c" -v g="$go" -v n="$node" 'BEGIN {
        printf "%10d %8.0f %8.0f %8.0f %7.0f%% %7.0f%%\n", s, c, g, n, c ? 100 * g / c : 0, c ? 100 * n / c : 0 }'
done
