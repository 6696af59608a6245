#!/usr/bin/env bash
# Prints the RUSTFLAGS of every wasm32 build of the SPA (scripts/build-ui.sh, with or without
# Trunk, and the tests' `trunk serve`): panic locations name their source files; with the
# registry's, the toolchain's and the checkout's absolute prefixes cut off, the WASM is ~0.5 KB
# (gzip) smaller and names no build machine path. Every build must use the same flags: Cargo
# rebuilds the SPA when they change, and two builds with different flags running at once
# overwrite each other's `frontend.wasm`.
set -euo pipefail
cd "$(dirname "$0")/.."
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src/"
sysroot="$(rustc --print sysroot)"
commit="$(rustc -vV | sed -n 's/^commit-hash: //p')"
remap="--remap-path-prefix=$registry= --remap-path-prefix=/rustc/$commit/=rust/ --remap-path-prefix=$sysroot/=rust/ --remap-path-prefix=$PWD/="
for index in "$registry"*/; do
  remap="$remap --remap-path-prefix=$index="
done
printf '%s\n' "$remap"
