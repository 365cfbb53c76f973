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
