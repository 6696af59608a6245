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
# Beside every file Trunk wrote, its brotli (quality 11) and gzip (level 9) variant, which the
# bridge sends by Accept-Encoding. Trunk replaces dist/ on each build, and the script drops any
# variant whose file is gone, so nothing stale is served.
dist=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --dist) dist=${2:-dist}; shift; shift || true ;;
    --dist=*) dist=${1#--dist=}; shift ;;
    *) shift ;;
  esac
done
# Trunk's JS minifier fails on the wasm-bindgen glue (it warns and leaves it); terser
# (tools/) minifies it and the script updates index.html's integrity hash for it.
node tools/minify-glue.mjs "$dist"
# Then, beside every file, its precompressed variants (after the glue is minified).
node tools/precompress.mjs "$dist"
