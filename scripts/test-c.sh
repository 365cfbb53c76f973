#!/usr/bin/env bash
# Builds and runs the C tests of libnorman against include/norman.h and the built shared and static
# libraries: -Wall -Wextra -Werror -pedantic, AddressSanitizer (leaks included) on the shared build,
# the header compiled as C++, the exported symbols checked against the header, the SONAME, static
# links with exactly the system libraries rustc names (native-static-libs), `make install` (file
# names, links, stripped, pkg-config shared and static), the quickstart example, the messaging tests
# (test_msg.c: C peers, `norman msg serve`, netaio from the test venv) and example, and the backend
# tests against a real `norman serve` when this build has it.
#
# Usage: scripts/test-c.sh [--release]   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
cargo_flags=(--locked)
if [ "${1:-}" = "--release" ]; then profile=release; cargo_flags+=(--release); fi
target_dir=${CARGO_TARGET_DIR:-target}
lib_dir=$(cd "$target_dir/$profile" 2>/dev/null && pwd || echo "$target_dir/$profile")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if ! command -v gcc >/dev/null || ! command -v g++ >/dev/null || ! command -v pkg-config >/dev/null; then
    echo "== C: installing gcc, g++, pkg-config"
    (apt-get update -qq && apt-get install -y -qq gcc g++ pkg-config make) >/dev/null
fi

echo "== C: building libnorman ($profile) and the norman program"
cargo build "${cargo_flags[@]}" --lib --bins --quiet
lib_dir=$(cd "$target_dir/$profile" && pwd)
export NORMAN_BIN="$lib_dir/norman"
export NORMAN_TEST_DIR="$out"

cc=${CC:-gcc}
cxx=${CXX:-g++}
cflags=(-std=c11 -Wall -Wextra -Werror -pedantic -g -Iinclude -Itests/c)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

echo "== C: the system libraries of a static link, as rustc prints them (native-static-libs)"
make --quiet static-libs PROFILE="$profile" CARGO_TARGET_DIR="$target_dir" >/dev/null
read -ra static_libs < "$lib_dir/norman-static-libs.txt"
echo "${static_libs[*]}"
[[ " ${static_libs[*]} " == *" -lc "* ]]

echo "== C: SONAME"
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
if [ "$major" = 0 ]; then soname=libnorman.so.0.$minor; else soname=libnorman.so.$major; fi
readelf -d "$lib_dir/libnorman.so" | grep -F "Library soname: [$soname]"
# shellcheck source=scripts/pick-build.sh
. scripts/pick-build.sh
soname_link "$lib_dir"   # what programs linked against the build tree load

echo "== C: exported symbols are all declared in include/norman.h"
missing=0
# nm's list read once: `nm | grep -q` under pipefail fails when grep stops reading early (SIGPIPE).
exported=$(nm -D --defined-only "$lib_dir/libnorman.so")
for sym in $(awk '$2 == "T" && $3 ~ /^norman_/ {print $3}' <<<"$exported"); do
    grep -Eq "[ *]$sym\(" include/norman.h || { echo "exported but not in norman.h: $sym"; missing=1; }
done
for sym in $(grep -Eo 'norman_[a-z0-9_]+\(' include/norman.h | tr -d '(' | sort -u); do
    grep -q " T $sym\$" <<<"$exported" || { echo "declared but not exported: $sym"; missing=1; }
done
[ "$missing" -eq 0 ]

echo "== C: the header compiles as C++"
$cxx -std=c++11 -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only -x c++ tests/c/header_cpp.cpp

echo "== C: build (shared + ASan, static)"
$cc "${cflags[@]}" -fsanitize=address -fno-omit-frame-pointer tests/c/test_ffi.c -o "$out/test_ffi_asan" \
    -L"$lib_dir" -Wl,-rpath,"$lib_dir" -lnorman -lpthread
$cc "${cflags[@]}" tests/c/test_ffi.c -o "$out/test_ffi_static" "$lib_dir/libnorman.a" "${static_libs[@]}"
$cc "${cflags[@]}" -fsanitize=address -fno-omit-frame-pointer tests/c/test_routes.c -o "$out/test_routes_asan" \
    -L"$lib_dir" -Wl,-rpath,"$lib_dir" -lnorman -lpthread
$cc "${cflags[@]}" -fsanitize=address -fno-omit-frame-pointer tests/c/test_backend.c -o "$out/test_backend_asan" \
    -L"$lib_dir" -Wl,-rpath,"$lib_dir" -lnorman -lpthread
$cc "${cflags[@]}" -fsanitize=address -fno-omit-frame-pointer tests/c/test_bson.c -o "$out/test_bson_asan" \
    -L"$lib_dir" -Wl,-rpath,"$lib_dir" -lnorman -lpthread
$cc "${cflags[@]}" tests/c/test_bson.c -o "$out/test_bson_static" "$lib_dir/libnorman.a" "${static_libs[@]}" -lpthread
$cc "${cflags[@]}" examples/c/quickstart.c -o "$out/quickstart" "$lib_dir/libnorman.a" "${static_libs[@]}"
$cc "${cflags[@]}" -fsanitize=address -fno-omit-frame-pointer tests/c/test_msg.c -o "$out/test_msg_asan" \
    -L"$lib_dir" -Wl,-rpath,"$lib_dir" -lnorman -lpthread
$cc "${cflags[@]}" tests/c/test_msg.c -o "$out/test_msg_static" "$lib_dir/libnorman.a" "${static_libs[@]}" -lpthread
$cc "${cflags[@]}" examples/c/messaging.c -o "$out/messaging" "$lib_dir/libnorman.a" "${static_libs[@]}"
# Built, not run (scripts/bench-c.sh and scripts/bench-msg-bindings.sh run them): so they never rot.
$cc "${cflags[@]}" tests/c/bench.c -o "$out/bench" "$lib_dir/libnorman.a" "${static_libs[@]}"
$cc "${cflags[@]}" tests/c/bench_msg.c -o "$out/bench_msg" "$lib_dir/libnorman.a" "${static_libs[@]}"

echo "== C: make install into a scratch prefix; pkg-config builds (shared, static) of the quickstart"
prefix="$out/prefix"
make --quiet install PREFIX="$prefix" PROFILE="$profile" CARGO_TARGET_DIR="$target_dir" >/dev/null
[ "$(readlink "$prefix/lib/libnorman.so")" = "libnorman.so.$version" ]
[ "$(readlink "$prefix/lib/$soname")" = "libnorman.so.$version" ]
[ -f "$prefix/lib/libnorman.so.$version" ] && [ -f "$prefix/lib/libnorman.a" ] && [ -f "$prefix/include/norman.h" ]
for lib in "$prefix/lib/libnorman.so.$version" "$prefix/lib/libnorman.a"; do
    if readelf -S -W "$lib" | grep -q '\.debug_info'; then echo "not stripped: $lib"; exit 1; fi
done
du -b "$prefix/lib/libnorman.so.$version" "$prefix/lib/libnorman.a"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion norman)" = "$version" ]
# No -Wl,-rpath of our own: norman.pc's Libs carry it, and the backend section runs this binary.
# shellcheck disable=SC2046
$cc -std=c11 -Wall -Wextra -Werror -pedantic examples/c/quickstart.c -o "$out/quickstart_pc" \
    $(pkg-config --cflags --libs norman)
readelf -d "$out/quickstart_pc" | grep -F "Shared library: [$soname]"
# Static: -l:libnorman.a picks the archive over the .so; the rest is Libs.private, nothing added.
# shellcheck disable=SC2046
$cc "${cflags[@]}" tests/c/test_ffi.c -o "$out/test_ffi_static_pc" $(pkg-config --cflags norman) \
    $(pkg-config --static --libs norman | sed 's/-lnorman\b/-l:libnorman.a/')
if readelf -d "$out/test_ffi_static_pc" | grep -q 'libnorman'; then echo "static link needs libnorman.so"; exit 1; fi

# LSan: Rust's runtime keeps a few process-lifetime allocations (thread-locals of threads that are
# still parked); those are reachable, so only real leaks are reported.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
echo "== C: test_ffi (shared library, AddressSanitizer)"
"$out/test_ffi_asan"
echo "== C: test_ffi (static library)"
"$out/test_ffi_static"
echo "== C: test_routes: the token goes to the base URL only (shared library, AddressSanitizer)"
"$out/test_routes_asan"
echo "== C: test_ffi (static library through pkg-config --static)"
"$out/test_ffi_static_pc"
# Messaging: C peers, `norman msg serve` ($NORMAN_BIN) and netaio 0.0.9 when NORMAN_TEST_PYTHON is set
# (scripts/py-venv.sh; without it those cases are skipped, or fail under NORMAN_REQUIRE_PYTHON).
echo "== C: test_msg: messaging (shared library, AddressSanitizer)"
"$out/test_msg_asan"
echo "== C: test_msg (static library)"
"$out/test_msg_static"
echo "== C: messaging example"
"$out/messaging"
# BSON frames: C <-> C, raw and killed peers, `norman bson serve`, py-bson peers (the venv when
# NORMAN_TEST_PYTHON is set; skipped with a message otherwise, unless NORMAN_REQUIRE_PYTHON=1).
echo "== C: test_bson (shared library, AddressSanitizer)"
"$out/test_bson_asan"
echo "== C: test_bson (static library)"
"$out/test_bson_static"

serve_bin=${NORMAN_SERVE_BIN:-$NORMAN_BIN}   # another build's norman can serve the tests
if "$serve_bin" serve --help >/dev/null 2>&1; then
    echo "== C: backend tests against norman serve (shared library, AddressSanitizer)"
    # shellcheck source=scripts/serve.sh
    . scripts/serve.sh
    start_serve "$serve_bin" "$out/serve"
    status=0
    NORMAN_TEST_BASE_URL="$base_url" "$out/test_backend_asan" || status=$?
    echo "== C: quickstart example"
    NORMAN_BASE_URL="$base_url" "$out/quickstart" || status=$?
    echo "== C: quickstart example, installed shared library found through norman.pc's rpath"
    NORMAN_BASE_URL="$base_url" "$out/quickstart_pc" || status=$?
    stop_serve
    [ "$status" -eq 0 ]
else
    echo "== C: SKIPPED backend tests and quickstart: this build's norman has no 'serve' command"
fi
echo "C tests passed"
