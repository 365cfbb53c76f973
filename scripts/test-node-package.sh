#!/usr/bin/env bash
# The npm package as a user gets it: packs bindings/node with the library inside
# (scripts/pack-node.sh), installs the tarball into an empty project in a temporary folder outside
# the repository (`npm install ./libnorman-X.Y.Z.tgz`, koffi from the registry), and runs a short
# program there, ES module and CommonJS, with no NORMAN_* variable set: it must load the packaged
# library and sign up on a real `norman serve`. Called by scripts/test-node.sh, which sets
# NORMAN_LIBRARY and NORMAN_BIN (scripts/pick-build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${NORMAN_LIBRARY:?}" "${NORMAN_BIN:?}"
work=$(mktemp -d)
# shellcheck source=scripts/serve.sh
. scripts/serve.sh
trap 'stop_serve; rm -rf "$work"' EXIT
tarball=$(scripts/pack-node.sh "$work/dist")
tar -tzf "$tarball" | grep -q "^package/prebuilds/$(node -p 'process.platform + "-" + process.arch')/libnorman"

mkdir "$work/app"
cd "$work/app"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error "$tarball"
cat > main.mjs <<'JS'
import { Client, checksumSync, libraryPath, version } from 'libnorman';

const [baseUrl] = process.argv.slice(2);
const lib = libraryPath();
if (!lib.includes('/node_modules/libnorman/prebuilds/')) throw new Error(`loaded ${lib}, not the packaged library`);
if (checksumSync('abc') !== '78af5f94892f3950') throw new Error('wrong checksum of "abc"');
const client = new Client({ baseUrl });
try {
  const { account, token } = await client.signup();
  if (!account.id || !token) throw new Error('signup answered no account or token');
  console.log(`libnorman ${version()} from ${lib}: signed up account ${account.id}`);
} finally {
  await client.close();
}
JS
cat > main.cjs <<'JS'
const { checksumSync, version } = require('libnorman');
if (checksumSync('abc') !== '78af5f94892f3950') throw new Error('wrong checksum of "abc"');
console.log(`require('libnorman'): ${version()}`);
JS
start_serve "$NORMAN_BIN" "$work/serve"
# No NORMAN_* variable, no CARGO_TARGET_DIR: only what the package carries.
env -i PATH="$PATH" HOME="$work" node main.mjs "$base_url"
env -i PATH="$PATH" HOME="$work" node main.cjs
echo "node package: ok"
