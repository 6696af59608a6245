#!/usr/bin/env bash
# Builds the Leptos SPA into dist/ with Trunk (release: wasm-opt -Oz, profile wasm-release).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# Panic locations name their source files; with the registry's and the toolchain's long
# absolute prefixes cut off, the WASM is ~0.5 KB (gzip) smaller and names no build machine path.
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src/"
sysroot="$(rustc --print sysroot)"
commit="$(rustc -vV | sed -n 's/^commit-hash: //p')"
remap="--remap-path-prefix=$registry= --remap-path-prefix=/rustc/$commit/=rust/ --remap-path-prefix=$sysroot/=rust/ --remap-path-prefix=$PWD/="
for index in "$registry"*/; do
  remap="$remap --remap-path-prefix=$index="
done
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:-} $remap"
trunk build --release "$@"
