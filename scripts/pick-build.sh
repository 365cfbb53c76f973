# Sourced by the binding test scripts: chooses the libnorman build they test. NORMAN_LIBRARY and
# NORMAN_BIN, when both are set, name it; otherwise the debug build is brought up to date
# (`cargo build --locked --lib --bins`; CARGO_TARGET_DIR is honoured) and used, so the library and
# the norman program always come from one build. Exports NORMAN_LIBRARY, NORMAN_BIN and
# NORMAN_LIB_DIR (the library's folder); returns 1 when the build fails.
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
}
