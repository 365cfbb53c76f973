#!/usr/bin/env bash
# Builds the npm package of the Node binding with the native library inside it:
# prebuilds/<platform>-<arch>/libnorman.so (stripped), where lib/native.cjs looks right after
# NORMAN_LIBRARY, so `npm install ./libnorman-X.Y.Z.tgz` works with no environment variable (koffi
# comes from the package's dependencies). The package carries the platform it was built on.
#
# Usage: scripts/pack-node.sh [OUT_DIR]      (default target/npm; prints the tarball's path last)
#   The library is $NORMAN_LIBRARY when set (scripts/test-node.sh packs the build it tested), else a
#   release build (`cargo build --release --lib`; CARGO_TARGET_DIR is honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
out=${1:-$target_dir/npm}
case "$(uname -s)" in
    Darwin) lib_name=libnorman.dylib ;;
    *) lib_name=libnorman.so ;;
esac
library=${NORMAN_LIBRARY:-}
if [ -z "$library" ]; then
    echo "== pack-node: building libnorman (release)" >&2
    cargo build --locked --release --lib --quiet >&2
    library=$target_dir/release/$lib_name
fi
[ -f "$library" ] || { echo "pack-node: no library at $library" >&2; exit 1; }
platform=$(node -p 'process.platform + "-" + process.arch')

mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# Only what package.json's "files" names (plus package.json itself) goes into the tarball.
cp -R bindings/node/package.json bindings/node/README.md bindings/node/index.js bindings/node/index.cjs \
    bindings/node/index.d.ts bindings/node/lib "$stage/"
mkdir -p "$stage/prebuilds/$platform"
cp "$library" "$stage/prebuilds/$platform/$lib_name"
if [ "$lib_name" = libnorman.so ]; then strip --strip-unneeded "$stage/prebuilds/$platform/$lib_name"; fi
(cd "$stage" && npm pack --silent --pack-destination "$out" >/dev/null)
version=$(node -p 'require("./bindings/node/package.json").version')
tarball="$out/libnorman-$version.tgz"
[ -f "$tarball" ] || { echo "pack-node: npm pack wrote no $tarball" >&2; exit 1; }
echo "== pack-node: $platform, $(du -h "$tarball" | cut -f1) $tarball" >&2
echo "$tarball"
