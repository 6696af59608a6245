#!/usr/bin/env bash
# Builds the Leptos SPA into dist/ with Trunk (release: profile wasm-release, wasm-opt as
# frontend/index.html says, index.html and CSS minified), then minifies the wasm-bindgen glue.
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
# Trunk's JS minifier fails on the wasm-bindgen glue (it warns and leaves it); terser
# (tools/) minifies it and the script updates index.html's integrity hash for it.
node tools/minify-glue.mjs dist
