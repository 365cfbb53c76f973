# Sourced by the test and bench scripts that talk to Python peers (netaio, py-bson): creates, once,
# a venv under the target dir with the pinned interop packages and exports NORMAN_TEST_PYTHON, its
# interpreter. Tests that need a Python peer read NORMAN_TEST_PYTHON; when it is unset they skip
# with a message, unless NORMAN_REQUIRE_PYTHON is set (scripts/test-all.sh sets it, so CI cannot
# pass without them). They never fall back to the system Python.
py_venv() {
    local target_dir=${CARGO_TARGET_DIR:-$PWD/target}
    local venv=$target_dir/py-venv
    local want="netaio==0.0.9 packify==0.3.1 bson==0.5.10"
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pinned" 2>/dev/null)" != "$want" ]; then
        echo "== creating the interop venv ($want)"
        rm -rf "$venv"
        python3 -m venv "$venv" || return 1
        # shellcheck disable=SC2086
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want || return 1
        echo "$want" > "$venv/.pinned"
    fi
    export NORMAN_TEST_PYTHON=$venv/bin/python
}
