#!/usr/bin/env bash
# `norman` next to the Python SDK it replaces (norman-core 0.1.0 from the package registry), on this
# machine, loopback only. A benchmark, not a test: it prints figures and never fails on them.
#
# 1. Upload of a file from the page cache (1 GiB by default) into one discard receiver (a Python
#    process that only reads into a reused buffer, so it is never the bottleneck; the same for all):
#    `norman send`, the SDK's SocketClient.write_and_digest with a plain file object, and with
#    aiofiles as the SDK's docs show. MB/s, sender CPU (user+sys of the sender process, wait4) per GiB,
#    sender peak RSS, the ratios norman / SDK.
# 2. The full path through one `norman serve`: `norman push` vs the SDK's FilePush (pair, write,
#    complete) and `norman pull` vs the SDK's Retrieve (on the /legacy/v0/ routes its generation uses).
# 3. ChaCha20 on one core, 1 MiB calls: ours (`norman bench --cpu-only`) vs Python `cryptography`
#    (OpenSSL), per second of wall time and per CPU-second.
# Interleaved rounds, medians. With --big, also the peak RSS of `norman send` and `norman receive`
# for a 4 GiB upload (target < 32 MiB each).
#
# norman-core 0.1.0 depends on `norman-objects` and `norman-utils-external`, which the registry does
# not have: the venv gets norman-core without dependencies, its published ones, and the stand-ins in
# scripts/bench-vs-python/compat (see the README there).
#
# Usage: scripts/bench-vs-python.sh [--mib N] [--rounds N] [--big] [--no-serve]
#   (defaults 1024 MiB, 3 rounds; CARGO_TARGET_DIR is honoured; the venv is target/bench-venv;
#   NORMAN_BIN=path skips the build and runs that `norman`)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=1024
rounds=3
big=0
serve=1
while [ $# -gt 0 ]; do
    case $1 in
        --mib) mib=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --big) big=1; shift ;;
        --no-serve) serve=0; shift ;;
        *) echo "usage: $0 [--mib N] [--rounds N] [--big] [--no-serve]" >&2; exit 2 ;;
    esac
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
cpu="$cpu, $(nproc) cores"

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
if [ -n "${NORMAN_BIN:-}" ]; then
    norman=$NORMAN_BIN   # a release `norman` built already
else
    cargo build --locked --release --quiet -p norman-cli --bin norman
    norman=$target_dir/release/norman
fi

venv=$target_dir/bench-venv
want="norman-core==0.1.0 aiofiles==24.1.0 httpx==0.28.1 pydantic==2.11.7 xxhash==3.5.0 cryptography"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pinned" 2>/dev/null)" != "$want" ]; then
    echo "== creating $venv ($want)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
    # shellcheck disable=SC2086
    "${pip[@]}" ${want#norman-core==0.1.0 }
    "${pip[@]}" --no-deps norman-core==0.1.0   # its unpublished dependencies: see compat/README
    echo "$want" > "$venv/.pinned"
fi
export PYTHONPATH=$PWD/scripts/bench-vs-python/compat
python=$venv/bin/python
bench=scripts/bench-vs-python/bench.py

work=$(mktemp -d "${TMPDIR:-/tmp}/norman-vs-python.XXXXXX")
shm_root=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && shm_root=/dev/shm   # the server's blobs in memory, not on the disk
serve_dir=$(mktemp -d "$shm_root/norman-vs-python-serve.XXXXXX")
# shellcheck source=scripts/serve.sh
. scripts/serve.sh
cleanup() {
    stop_serve
    rm -rf "$work" "$serve_dir"
}
trap cleanup EXIT

echo "== $mib MiB test file, read once into the page cache" >&2
head -c "$((mib << 20))" /dev/urandom > "$work/file.bin"
cat "$work/file.bin" > /dev/null

serve_args=()
if [ "$serve" = 1 ]; then
    start_serve "$norman" "$serve_dir/data"
    export NORMAN_BASE_URL=$base_url
    token=$("$norman" signup --json | "$python" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
    # Two asset slots: `norman push` writes File (both pulls read it), the SDK's push writes Logo.
    assets=$(NORMAN_TOKEN=$token "$norman" models create bench-vs-python --asset File --asset Logo)
    asset=$(awk '$1 == "asset" && $2 == "File" {print $3}' <<<"$assets")
    sdk_asset=$(awk '$1 == "asset" && $2 == "Logo" {print $3}' <<<"$assets")
    serve_args=(--base-url "$base_url" --token "$token" --asset "$asset"
        --sdk-asset "$sdk_asset")
fi

"$python" "$bench" run --norman "$norman" --file "$work/file.bin" --work "$work" --rounds "$rounds" \
    --cpu "$cpu" --load "$load" "${serve_args[@]}"

if [ "$big" = 1 ]; then
    stop_serve
    rm -rf "$serve_dir" "$work/file.bin"
    echo "== 4 GiB upload for peak memory" >&2
    head -c "$((4 << 30))" /dev/urandom > "$work/big.bin"
    "$python" "$bench" big --norman "$norman" --file "$work/big.bin" --work "$work"
fi
