#!/usr/bin/env bash
# Prints the environment (NAME=value lines) of every release build of the SPA's WASM
# (scripts/build-ui.sh, with or without Trunk, and the tests' `trunk serve --release`). Every such
# build must use the same: Cargo rebuilds the SPA when it changes, and two builds with different
# settings running at once overwrite each other's `frontend.wasm`.
#
#   scripts/wasm-env.sh              the NAME=value lines
#   scripts/wasm-env.sh --toolchain  only the toolchain's name (what scripts/install-deps.sh installs)
#
# - A pinned nightly toolchain (with rust-src and the wasm32 target), for what stable cannot do:
#   the standard library compiled with the SPA (`build-std`) at opt-level z and `optimize_for_size`,
#   panics that abort at once (`panic=immediate-abort`: no panic messages or formatting in the
#   WASM), no source locations and no `Debug` formatting (`fmt-debug=none`; nothing the SPA shows
#   is `Debug`-formatted). Measured on the first load, brotli: -12.4 KB (build-std with
#   immediate-abort), -2.8 KB (locations, Debug), -0.5 KB (optimize_for_size); docs/ui.md.
#   Debug builds (`trunk serve` without --release, clippy, the frontend's tests) stay on stable.
# - Panic locations (only in debug builds now) name source files without the registry's, the
#   toolchain's and the checkout's absolute prefixes: no build machine path in the WASM.
# - The linker is tools/link-spa.mjs: rust-lld without the exports of wasm-streams' classes,
#   which nothing in this SPA can call (-3.0 KB brotli; the script says why and how).
set -euo pipefail
cd "$(dirname "$0")/.."
toolchain=nightly-2026-05-20
if [ "${1:-}" = --toolchain ]; then
  printf '%s\n' "$toolchain"
  exit 0
fi
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src/"
sysroot="$(rustc "+$toolchain" --print sysroot)"
commit="$(rustc "+$toolchain" -vV | sed -n 's/^commit-hash: //p')"
flags="--remap-path-prefix=$registry= --remap-path-prefix=/rustc/$commit/=rust/ --remap-path-prefix=$sysroot/=rust/ --remap-path-prefix=$PWD/="
for index in "$registry"*/; do
  flags="$flags --remap-path-prefix=$index="
done
flags="$flags -Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none"
printf '%s\n' \
  "RUSTUP_TOOLCHAIN=$toolchain" \
  "CARGO_UNSTABLE_BUILD_STD=std,panic_abort" \
  "CARGO_UNSTABLE_BUILD_STD_FEATURES=optimize_for_size" \
  "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS=$flags" \
  "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=$PWD/tools/link-spa.mjs"
