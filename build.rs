//! Generates the C header from src/ffi with cbindgen (pinned in Cargo.toml) into OUT_DIR/norman.h.
//! tests/header.rs fails when the checked-in include/norman.h differs from it.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    chacha20_cfg();
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("norman.h");
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let patch = std::env::var("CARGO_PKG_VERSION_PATCH").unwrap_or_default();
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    config.after_includes = Some(format!(
        "\n#define NORMAN_VERSION_MAJOR {major}\n#define NORMAN_VERSION_MINOR {minor}\n\
         #define NORMAN_VERSION_PATCH {patch}\n#define NORMAN_VERSION \"{version}\"\n"
    ));
    soname(&major, &minor);
    // Only src/ffi is the C API: parsing the whole crate would put every public constant of the core
    // (messaging limits, key lengths, ...) into the header. cbindgen follows the `mod` lines of
    // src/ffi/mod.rs, in their order, which is the order of the header.
    let builder = cbindgen::Builder::new().with_config(config).with_src(crate_dir.join("src/ffi/mod.rs"));
    builder.generate().expect("cbindgen could not generate norman.h from src/ffi").write_to_file(&out);
}

/// The SONAME of the shared library, as cargo-c names it (so `cargo cinstall` and `make install`
/// agree): `libnorman.so.MAJOR`, or `libnorman.so.0.MINOR` while the major version is 0 (semver lets
/// 0.x releases break each other). The Makefile installs libnorman.so.X.Y.Z with symlinks to it.
fn soname(major: &str, minor: &str) {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(os.as_str(), "macos" | "ios" | "windows") {
        return; // not an ELF target: install names and DLLs are set another way
    }
    let suffix = if major == "0" { format!("0.{minor}") } else { major.to_owned() };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnorman.so.{suffix}");
}

/// The `chacha20` crate's AVX-512 backend is compiled in by `--cfg chacha20_avx512`, which
/// .cargo/config.toml passes; a RUSTFLAGS (or CARGO_ENCODED_RUSTFLAGS) variable replaces that file's
/// flags, so say when it is gone on x86_64 (still correct, AVX2 at most). socket::chacha20_backend
/// reads the same cfgs, declared here.
fn chacha20_cfg() {
    println!("cargo:rustc-check-cfg=cfg(chacha20_avx512)");
    println!("cargo:rustc-check-cfg=cfg(chacha20_backend, values(\"avx2\", \"avx512\", \"soft\", \"sse2\"))");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch == "x86_64"
        && !flags.split('\x1f').any(|f| f == "chacha20_avx512" || f == "--cfg=chacha20_avx512")
    {
        println!(
            "cargo:warning=ChaCha20 without its AVX-512 backend: RUSTFLAGS replaced .cargo/config.toml's \
             `--cfg chacha20_avx512`; add it to RUSTFLAGS for the fastest cipher"
        );
    }
}
