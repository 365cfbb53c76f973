#!/usr/bin/env bash
# The Go binding as another module uses it: `make install` into a temporary prefix, then a scratch
# module in a temporary folder outside the repository that requires the binding (a replace directive
# to bindings/go) builds with nothing but PKG_CONFIG_PATH pointing at the installed norman.pc, and
# `go run` signs up on a real `norman serve` with no LD_LIBRARY_PATH and no NORMAN_* variable (the
# rpath comes from norman.pc). Called by scripts/test-go.sh after pick_build (NORMAN_LIB_DIR, NORMAN_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${NORMAN_LIB_DIR:?}" "${NORMAN_BIN:?}"
repo=$(pwd)
work=$(mktemp -d)
# shellcheck source=scripts/serve.sh
. scripts/serve.sh
trap 'stop_serve; rm -rf "$work"' EXIT

# Install the build that was tested (target/debug or target/release of CARGO_TARGET_DIR).
make --quiet install PREFIX="$work/prefix" PROFILE="$(basename "$NORMAN_LIB_DIR")" \
    CARGO_TARGET_DIR="$(dirname "$NORMAN_LIB_DIR")" >/dev/null

mkdir "$work/app"
cd "$work/app"
cat > go.mod <<MOD
module example.com/scratch

go 1.19

require github.com/norman-ai/libnorman/bindings/go v0.0.0

replace github.com/norman-ai/libnorman/bindings/go => $repo/bindings/go
MOD
cat > main.go <<'GO'
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

func main() {
	if got := norman.ChecksumBytes([]byte("abc")).String(); got != "78af5f94892f3950" {
		fmt.Fprintln(os.Stderr, "wrong checksum of abc:", got)
		os.Exit(1)
	}
	client, err := norman.NewClient(norman.Config{BaseURL: os.Args[1]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	login, err := client.SignupDefault(ctx)
	if err != nil || login.Account == nil {
		fmt.Fprintln(os.Stderr, "signup:", err)
		os.Exit(1)
	}
	fmt.Printf("libnorman %s: signed up account %s\n", norman.Version(), login.Account.ID)
}
GO
start_serve "$NORMAN_BIN" "$work/serve"
# Only the installed norman.pc, no module download, no toolchain switch, no library path. A build
# cache of its own: go does not key cached cgo packages on pkg-config's answer, so a shared cache
# could hand back the flags of an earlier prefix.
clean_env=(env -i PATH="$PATH" HOME="$work" GOCACHE="$work/gocache" GOPATH="$work/gopath"
    GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig")
"${clean_env[@]}" go run . "$base_url"
"${clean_env[@]}" go build -o scratch .
readelf -d scratch | grep -F 'Shared library: [libnorman.so.0' >/dev/null
readelf -d scratch | grep -F "$work/prefix/lib" >/dev/null   # the rpath norman.pc gave
echo "go scratch module: ok"
