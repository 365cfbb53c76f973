# Sourced by the binding test scripts: chooses the libnorman build they test. Honours NORMAN_LIBRARY
# and NORMAN_BIN; otherwise takes the newer of target/release and target/debug (CARGO_TARGET_DIR is
# honoured) that has both the library and the norman program, so the two always match. Exports
# NORMAN_LIBRARY, NORMAN_BIN and NORMAN_LIB_DIR (the library's folder); returns 1 when there is none.
pick_build() {
    local target_dir lib_name profile p
    target_dir=$(cd "${CARGO_TARGET_DIR:-target}" 2>/dev/null && pwd || echo "${CARGO_TARGET_DIR:-target}")
    case "$(uname -s)" in
        Darwin) lib_name=libnorman.dylib ;;
        *) lib_name=libnorman.so ;;
    esac
    if [ -z "${NORMAN_LIBRARY:-}" ] || [ -z "${NORMAN_BIN:-}" ]; then
        profile=
        for p in release debug; do
            [ -f "$target_dir/$p/$lib_name" ] && [ -x "$target_dir/$p/norman" ] || continue
            if [ -z "$profile" ] || [ "$target_dir/$p/$lib_name" -nt "$target_dir/$profile/$lib_name" ]; then
                profile=$p
            fi
        done
        if [ -z "$profile" ]; then
            echo "no $lib_name and norman in $target_dir/{release,debug}; run cargo build --locked --lib --bins first" >&2
            return 1
        fi
        export NORMAN_LIBRARY=${NORMAN_LIBRARY:-$target_dir/$profile/$lib_name}
        export NORMAN_BIN=${NORMAN_BIN:-$target_dir/$profile/norman}
    fi
    NORMAN_LIB_DIR=$(cd "$(dirname "$NORMAN_LIBRARY")" && pwd)
    export NORMAN_LIB_DIR
}
