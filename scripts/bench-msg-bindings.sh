#!/usr/bin/env bash
# Messaging throughput of the bindings next to the C API, in one run against ONE `norman msg serve`
# (plain, no layers): sequential 1 KiB echo requests (REQUEST_URI "echo") and pipelined one-way
# 1 KiB messages (NOTIFY_URI "bench", which the broker takes without answering) closed by one echo
# request, through tests/c/bench_msg.c (C), bindings/go/cmd/bench-msg (Go) and
# bindings/node/bench/msg.js (Node). Each prints `MSGBENCH lang=L seq_req_per_s=X
# pipelined_msg_per_s=Y`; the table shows them with the ratios to C. A language whose program is
# missing is skipped (said so). Release build; reports numbers, never fails on them.
# Usage: scripts/bench-msg-bindings.sh [SEQ] [PIPELINED]   (defaults 20000 and 200000;
# CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
export NORMAN_BENCH_SEQ=${1:-20000} NORMAN_BENCH_REQUESTS=${1:-20000} NORMAN_BENCH_PIPELINED=${2:-200000}
cargo build --locked --release --quiet --lib --bins
target_dir=${CARGO_TARGET_DIR:-target}
lib_dir=$(cd "$target_dir/release" && pwd)
make --quiet static-libs CARGO_TARGET_DIR="$target_dir" >/dev/null
read -ra static_libs < "$lib_dir/norman-static-libs.txt"
# shellcheck source=scripts/pick-build.sh
. scripts/pick-build.sh
soname_link "$lib_dir"
out=$(mktemp -d)
serve_pid=
cleanup() {
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
    rm -rf "$out"
}
trap cleanup EXIT

gcc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iinclude tests/c/bench_msg.c -o "$out/bench_msg" \
    "$lib_dir/libnorman.a" "${static_libs[@]}"

"$lib_dir/norman" msg serve --listen 127.0.0.1:0 >"$out/serve.out" 2>"$out/serve.err" &
serve_pid=$!
for _ in $(seq 1 100); do
    grep -q 'listening on' "$out/serve.out" 2>/dev/null && break
    sleep 0.05
done
addr=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$out/serve.out" | head -1)
[ -n "$addr" ] || { echo "norman msg serve did not start"; cat "$out/serve.err"; exit 1; }
export NORMAN_MSG_ADDR=$addr
echo "norman msg serve on $addr; $NORMAN_BENCH_SEQ sequential requests, $NORMAN_BENCH_PIPELINED pipelined messages"

results="$out/results"
touch "$results"
echo "== C" >&2
"$out/bench_msg" "$addr" | tee -a "$results"
if [ -f bindings/go/cmd/bench-msg/main.go ] && command -v go >/dev/null; then
    echo "== Go" >&2
    NORMAN_LIB_DIR=$lib_dir dev_pkg_config "$out/pkgconfig"   # scripts/pick-build.sh
    (cd bindings/go && go build -o "$out/bench-msg-go" ./cmd/bench-msg)
    LD_LIBRARY_PATH=$lib_dir "$out/bench-msg-go" "$addr" | tee -a "$results" || echo "Go bench failed" >&2
else
    echo "== Go: SKIPPED (bindings/go/cmd/bench-msg or go missing)" >&2
fi
if [ -f bindings/node/bench/msg.js ] && command -v node >/dev/null; then
    echo "== Node" >&2
    [ -d bindings/node/node_modules ] || (cd bindings/node && npm ci --no-audit --no-fund --loglevel=error)
    NORMAN_LIBRARY="$lib_dir/libnorman.so" node bindings/node/bench/msg.js "$addr" | tee -a "$results" ||
        echo "Node bench failed" >&2
else
    echo "== Node: SKIPPED (bindings/node/bench/msg.js or node missing)" >&2
fi

echo
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
field() { awk -v l="$1" -v f="$2" '$1 == "MSGBENCH" && $2 == "lang=" l { for (i = 3; i <= NF; i++) {
    split($i, kv, "="); if (kv[1] == f) print kv[2] } }' "$results" | tail -1; }
c_seq=$(field c seq_req_per_s)
c_pipe=$(field c pipelined_msg_per_s)
printf "%-6s %14s %8s %18s %8s\n" lang "seq req/s" "/C" "pipelined msg/s" "/C"
for lang in c go node; do
    seq=$(field "$lang" seq_req_per_s)
    pipe=$(field "$lang" pipelined_msg_per_s)
    [ -n "$seq" ] || continue
    awk -v l="$lang" -v s="$seq" -v p="$pipe" -v cs="$c_seq" -v cp="$c_pipe" 'BEGIN {
        printf "%-6s %14.0f %7.0f%% %18.0f %7.0f%%\n", l, s, 100 * s / cs, p, 100 * p / cp }'
done
