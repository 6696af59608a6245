#!/usr/bin/env bash
# Builds the Leptos SPA into dist/ (release: profile wasm-release, wasm-opt as
# frontend/index.html says, stylesheet and index.html minified), then minifies the wasm-bindgen
# glue and writes every file's precompressed variants.
#
#   scripts/build-ui.sh [--dist DIR]            without Trunk: cargo, the wasm-bindgen CLI, then
#                                              tools/assemble-dist.mjs (what scripts/demo.sh runs;
#                                              needs only `scripts/install-deps.sh --run`)
#   scripts/build-ui.sh --trunk [TRUNK ARGS]    `trunk build --release` (what scripts/test.sh runs)
#
# Both write the same dist/: the same WASM and glue bytes, hashed names, `integrity` attributes
# (the black-box test `the_spa_built_without_trunk_is_trunks_and_signs_in_in_a_real_browser`
# compares them and signs in on the one built without Trunk).
set -euo pipefail
cd "$(dirname "$0")/.."
# wasm-opt from tools/; cargo's tools when they are not on PATH already (the caller's come first).
export PATH="$PWD/tools/node_modules/.bin:$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
trunk=0
if [ "${1:-}" = --trunk ]; then trunk=1; shift; fi
dist=dist
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --dist) dist=${2:-dist}; shift; shift || true ;;
    --dist=*) dist=${1#--dist=}; shift ;;
    *) [ "$trunk" = 1 ] || { echo "usage: $0 [--dist DIR] | --trunk [TRUNK ARGS]" >&2; exit 2; }; shift ;;
  esac
done
# The toolchain and flags of every release build of the SPA (see scripts/wasm-env.sh).
wasm_env="$(scripts/wasm-env.sh)"
while IFS= read -r line; do export "${line?}"; done <<<"$wasm_env"

if [ "$trunk" = 1 ]; then
  trunk build --release "${args[@]}"
else
  # The steps Trunk takes for frontend/index.html's rust link: the same cargo build (so either
  # way reuses the other's compiled crates), the same wasm-bindgen call; wasm-opt and the page
  # in tools/assemble-dist.mjs. Written to a new directory that then replaces dist/ whole, as
  # Trunk does, so no file of an older build stays.
  cargo build --target=wasm32-unknown-unknown --manifest-path frontend/Cargo.toml \
    --profile wasm-release --bin frontend
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')
  wasm="$target_dir/wasm32-unknown-unknown/wasm-release/frontend.wasm"
  bindgen="$target_dir/wasm-bindgen/release"
  mkdir -p "$bindgen"
  wasm-bindgen --target=web --out-dir="$bindgen" --out-name=frontend --no-typescript "$wasm"
  staging="$dist.staging"
  rm -rf "$staging"
  node tools/assemble-dist.mjs "$staging" "$wasm" "$bindgen"
  rm -rf "$dist"
  mv "$staging" "$dist"
fi
# Trunk's JS minifier fails on the wasm-bindgen glue (it warns and leaves it); terser
# (tools/) minifies it and the script updates index.html's integrity hash for it.
node tools/minify-glue.mjs "$dist"
# Then, beside every file, its brotli (quality 11) and gzip (level 9) variant, which the bridge
# sends by Accept-Encoding (after the glue is minified). The script drops any variant whose
# file is gone, so nothing stale is served.
node tools/precompress.mjs "$dist"
