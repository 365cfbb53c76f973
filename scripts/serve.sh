# Sourced by the test and bench scripts: runs a `norman serve` in the background on a free loopback
# port (links to loopback allowed: tests pull from local servers). `start_serve BIN DATA_DIR` sets serve_pid and base_url (empty, with the server's stderr
# shown, when it did not start within 10 s); `stop_serve` ends it. Its output goes to files in
# DATA_DIR's parent, never to a pipe that could fill up.
start_serve() {
    local bin=$1 dir=$2
    mkdir -p "$dir"
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir" --allow-private-links >"$dir.out" 2>"$dir.err" &
    serve_pid=$!
    base_url=
    for _ in $(seq 1 100); do
        if grep -q "listening on" "$dir.out" 2>/dev/null; then
            base_url=$(head -1 "$dir.out" | awk '{print $NF}')
            return 0
        fi
        sleep 0.1
    done
    echo "norman serve did not start:" >&2
    cat "$dir.err" >&2
    return 1
}

stop_serve() {
    if [ -n "${serve_pid:-}" ]; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
        serve_pid=
    fi
}
