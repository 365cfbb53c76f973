#!/usr/bin/env bash
# C-level benchmark: upload throughput through norman_upload_write with 4 KiB, 64 KiB and 1 MiB
# writes, next to the same upload through the Rust API (cli/examples/upload_rate.rs) in the same run,
# and the fused-pass rate of the core benchmark; then download throughput from `norman serve` on
# loopback through norman_download_read (1 MiB buffer) and the norman_client_retrieve callback.
# Release build; reports numbers, never fails on them.
# Usage: scripts/bench-c.sh [MIB]   (default 512; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-512}
cargo build --locked --release --quiet --lib --bins --example upload_rate
target_dir=${CARGO_TARGET_DIR:-target}
lib_dir=$(cd "$target_dir/release" && pwd)
# The system libraries of a static link, as rustc names them (Makefile: native-static-libs).
make --quiet static-libs CARGO_TARGET_DIR="$target_dir" >/dev/null
read -ra static_libs < "$lib_dir/norman-static-libs.txt"
export NORMAN_BIN="$lib_dir/norman"
out=$(mktemp -d)
export NORMAN_TEST_DIR="$out"
# shellcheck source=scripts/serve.sh
. scripts/serve.sh
trap 'stop_serve; rm -rf "$out"' EXIT
gcc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iinclude -Itests/c tests/c/bench.c -o "$out/bench" \
    "$lib_dir/libnorman.a" "${static_libs[@]}"

fused=$("$NORMAN_BIN" bench --cpu-only --cpu-mib 1024 | awk '/fused hash\+encrypt\+copy/ {print $(NF-1)}')
echo "fused hash+encrypt+copy (one core): $fused MB/s"
echo "loopback upload of $mib MiB from memory to norman receive (stdout sink):"
printf "%10s %12s %12s %8s %10s\n" write "rust MB/s" "C MB/s" "C/rust" "C/fused"
for size in 4096 65536 1048576; do
    rust=$("$lib_dir/examples/upload_rate" --write-size "$size" --mib "$mib" | awk '{print $3}')
    c=$("$out/bench" "$size" "$mib" | awk '{print $3}')
    awk -v s="$size" -v r="$rust" -v c="$c" -v f="$fused" \
        'BEGIN { printf "%10d %12.0f %12.0f %7.0f%% %9.0f%%\n", s, r, c, 100 * c / r, 100 * c / f }'
done

echo "loopback download of $mib MiB from norman serve (C API, checksum verified):"
if start_serve "$NORMAN_BIN" "$out/serve"; then
    printf "%10s %12s %10s\n" mode "C MB/s" "C/fused"
    "$out/bench" download "$base_url" "$mib" | awk -v f="$fused" \
        '/^download/ { printf "%10s %12.0f %9.0f%%\n", $2, $3, 100 * $3 / f }' || true
fi
stop_serve
