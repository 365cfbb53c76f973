# Sourced by the binding test scripts: chooses the libnorman build they test. NORMAN_LIBRARY and
# NORMAN_BIN, when both are set, name it; otherwise the debug build is brought up to date
# (`cargo build --locked --lib --bins`; CARGO_TARGET_DIR is honoured) and used, so the library and
# the norman program always come from one build. Exports NORMAN_LIBRARY, NORMAN_BIN and
# NORMAN_LIB_DIR (the library's folder), and links the SONAME there (soname_link) on Linux; returns
# 1 when the build fails.
pick_build() {
    local target_dir lib_name
    if [ -z "${NORMAN_LIBRARY:-}" ] || [ -z "${NORMAN_BIN:-}" ]; then
        case "$(uname -s)" in
            Darwin) lib_name=libnorman.dylib ;;
            *) lib_name=libnorman.so ;;
        esac
        echo "== building libnorman and norman (debug)"
        cargo build --locked --lib --bins --quiet || return 1
        target_dir=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
        export NORMAN_LIBRARY=$target_dir/debug/$lib_name
        export NORMAN_BIN=$target_dir/debug/norman
    fi
    NORMAN_LIB_DIR=$(cd "$(dirname "$NORMAN_LIBRARY")" && pwd)
    export NORMAN_LIB_DIR
    if [ "$(uname -s)" = Linux ] && [ "$(basename "$NORMAN_LIBRARY")" = libnorman.so ]; then
        soname_link "$NORMAN_LIB_DIR" || return 1
    fi
}

# The library's SONAME link beside a cargo build's libnorman.so (cargo writes only libnorman.so):
# what a program linked with `-L DIR -lnorman` asks the loader for (libnorman.so.0.1; see build.rs).
soname_link() {
    local dir=$1 soname
    soname=$(readelf -d "$dir/libnorman.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    [ -n "$soname" ] || { echo "no SONAME in $dir/libnorman.so" >&2; return 1; }
    [ -e "$dir/$soname" ] || ln -sf libnorman.so "$dir/$soname"
}

# Writes DIR/norman.pc for the build NORMAN_LIB_DIR holds (header from include/, rpath to the build)
# and puts DIR first in PKG_CONFIG_PATH: how the Go binding, which finds libnorman through
# pkg-config, links the repository's own build.
dev_pkg_config() {
    local dir=$1 root version
    root=$(pwd)
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
    mkdir -p "$dir"
    cat >"$dir/norman.pc" <<PC
libdir=$NORMAN_LIB_DIR
includedir=$root/include

Name: norman
Description: libnorman, this repository's build
Version: $version
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lnorman
Cflags: -I\${includedir}
PC
    export PKG_CONFIG_PATH="$dir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    # go's build cache keys cgo packages on CGO_LDFLAGS but not on pkg-config's answer: naming the
    # build here keeps a package built against another build from being reused.
    export CGO_LDFLAGS="-L$NORMAN_LIB_DIR${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
}
