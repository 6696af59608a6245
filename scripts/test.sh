#!/usr/bin/env bash
# Installs what is needed, then runs every test: formatting and lints, the provider's smoke
# test, unit tests, and the black-box tests (real bridge, real OIDC provider, headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "install dependencies"
scripts/install-deps.sh
step "build the UI (trunk build --release)"
scripts/build-ui.sh
step "rustfmt"
cargo fmt --all -- --check
step "clippy (backend, shared, tests; frontend for wasm32)"
cargo clippy -p login-bridge -p shared -p blackbox-tests --all-targets -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
step "demo provider smoke test (node --test)"
(cd tests/idp && node --test)
step "unit and black-box tests (cargo test)"
cargo test --workspace
