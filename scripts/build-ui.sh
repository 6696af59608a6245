#!/usr/bin/env bash
# Builds the Leptos SPA into dist/ with Trunk (release: wasm-opt -Oz, profile wasm-release).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
trunk build --release "$@"
