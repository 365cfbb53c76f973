#!/usr/bin/env bash
# Checks every ChaCha20 backend this CPU can run against RFC 8439 and a scalar reference: the
# library's own AVX-512 and AVX2 kernels (src/socket/chacha_simd.rs, which uploads use where the CPU
# has them; the library's cipher tests run each kernel the CPU has, and the crate), then each backend
# of the `chacha20` crate (soft, SSE2, AVX2, AVX-512: the fallback elsewhere; tools/cipher-backends).
# The crate picks one backend at run time; only a build-wide --cfg chacha20_backend pins another, so
# each gets its own small build in target/cipher-backends/<name> (a few crates, seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }
echo "== libnorman's kernels ($(grep -ow -e avx512f -e avx2 /proc/cpuinfo 2>/dev/null | sort -u | tr '\n' ' ')on this CPU) and the crate's pick"
cargo test --locked --quiet -p norman --lib socket::cipher::tests
backends=("soft:")
if [ "$(uname -m)" = x86_64 ]; then
    backends+=("sse2:+sse2")
    has avx2 && backends+=("avx2:+avx2")
    has avx512f && has avx512vl && backends+=("avx512:+avx512f,+avx512vl")
fi
for entry in "${backends[@]}"; do
    name=${entry%%:*}
    features=${entry#*:}
    flags="--cfg chacha20_avx512 --cfg chacha20_backend=\"$name\""
    [ -n "$features" ] && flags+=" -C target-feature=$features"
    echo "== chacha20 backend $name"
    RUSTFLAGS="$flags" CARGO_TARGET_DIR="target/cipher-backends/$name" \
        cargo test --locked --quiet -p norman-cipher-backends
done
echo "== chacha20 backend picked at run time (default flags)"
cargo test --locked --quiet -p norman-cipher-backends
