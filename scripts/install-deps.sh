#!/usr/bin/env bash
# Installs what login-bridge needs on a fresh machine of this kind (Debian + rustup toolchain +
# Node/npm; only the package registries are reachable).
#
#   scripts/install-deps.sh          everything the tests need (scripts/test.sh)
#   scripts/install-deps.sh --run    only what running the bridge needs (scripts/demo.sh): the WASM
#                                    target, the SPA's build tools (wasm-bindgen CLI, npm binaryen,
#                                    terser, lightningcss) and the demo provider's npm packages
#   --plan                           prints what it would install on a machine that has none of it
#                                    ("plan: ..." lines) and changes nothing; the black-box test
#                                    `the_run_command_installs_only_what_running_needs` reads it
#
# Idempotent: each step is skipped when its exact version is already there. The test-only part
# (Chromium, ChromeDriver, wrk, Redis, PostgreSQL, privacyIDEA, Trunk) builds on the run part:
# one script, so no install step is written twice.
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
# Exactly the wasm-bindgen of Cargo.lock: the CLI refuses a WASM built against another version.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
PRIVACYIDEA_VERSION=3.14

mode=all plan=""
for arg in "$@"; do
  case "$arg" in
    --run) mode=run ;;
    --plan) plan=1 ;;
    *) echo "usage: $0 [--run] [--plan]" >&2; exit 2 ;;
  esac
done

log() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
# `present CMD...`: whether a step's result is already there. Under --plan nothing is, so the
# plan is the same on every machine: what a fresh one would get.
present() { [ -z "$plan" ] && "$@" >/dev/null 2>&1; }
# `step WHAT -- CMD...`: runs CMD (and says how long it took), or under --plan names it only.
step() {
  local what=$1; shift 2
  # A step whose command does not exist would fail only on a machine that lacks its result (a
  # fresh one): the plan (which the tests run) checks every step's command is defined.
  type -t "$1" >/dev/null || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/$1" ] || { echo "install-deps: step \"$what\" runs $1, which is not defined" >&2; exit 1; }
  if [ -n "$plan" ]; then printf 'plan: %s\n' "$what"; return 0; fi
  local started=$SECONDS
  log "$what"
  "$@"
  log "$what: $((SECONDS - started))s"
}
npm_ci() { (cd "$1" && npm ci --no-audit --no-fund --loglevel=error); }
has_version() { "$1" --version 2>/dev/null | grep -qF "$2"; }

# --- What running needs (scripts/demo.sh) ------------------------------------------------------
# Node (the demo provider, the SPA's build tools) comes with this machine kind; say so if not.
if [ -z "$plan" ] && ! command -v node >/dev/null 2>&1; then
  echo "install-deps: node (20) and npm are needed and not on PATH" >&2; exit 1
fi
present sh -c 'rustup target list --installed | grep -qx wasm32-unknown-unknown' ||
  step "rustup target add wasm32-unknown-unknown" -- rustup target add wasm32-unknown-unknown
# The SPA's release builds use a pinned nightly (scripts/wasm-env.sh says why): its minimal
# profile, the standard library's source and the wasm32 target; ~17 s to download.
spa_toolchain=$(scripts/wasm-env.sh --toolchain)
present sh -c "rustup toolchain list | grep -q '^$spa_toolchain' && rustup +$spa_toolchain component list --installed | grep -qx rust-src && rustup +$spa_toolchain target list --installed | grep -qx wasm32-unknown-unknown" ||
  step "rustup toolchain install $spa_toolchain (rust-src, wasm32-unknown-unknown; the SPA's release build)" -- \
    rustup toolchain install "$spa_toolchain" --profile minimal --component rust-src --target wasm32-unknown-unknown
# The wasm-bindgen CLI writes the SPA's JS glue (scripts/build-ui.sh; Trunk calls it too).
# Not --locked: its lockfile pins a webpki-roots the registry no longer serves. Only its
# `wasm-bindgen` binary, as a debug build without default features (rustls, for the test
# runner's downloads): 109 s of CPU to compile instead of 307 s (release, default features), and
# the same glue and WASM as the release build writes (docs/run-command.md).
present has_version wasm-bindgen "$WASM_BINDGEN_VERSION" ||
  step "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (debug build)" -- \
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --debug --no-default-features --bin wasm-bindgen
# npm: wasm-opt (binaryen 132; Debian's 108 breaks the app), terser (minifies the SPA's
# wasm-bindgen glue, tools/minify-glue.mjs), lightningcss (the stylesheet, as Trunk does).
present test -x tools/node_modules/.bin/wasm-opt -a -d tools/node_modules/terser -a -d tools/node_modules/lightningcss ||
  step "npm ci in tools (binaryen, terser, lightningcss)" -- \
    npm_ci tools
# The demo OIDC provider (also the tests' provider).
present test -d tests/idp/node_modules/oidc-provider ||
  step "npm ci in tests/idp (oidc-provider)" -- \
    npm_ci tests/idp

if [ "$mode" = run ]; then
  [ -n "$plan" ] || log "done (what running needs)"
  exit 0
fi

# --- What only the tests need (scripts/test.sh) --------------------------------------------------
# Debian packages: Chromium + ChromeDriver for the browser tests, wrk for the benchmark,
# python3-venv for privacyIDEA's venv (Debian ships venv's ensurepip separately).
need_apt=()
present command -v chromium || need_apt+=(chromium)
present command -v chromedriver || need_apt+=(chromium-driver)
present command -v wrk || need_apt+=(wrk)
present python3 -c 'import ensurepip' || need_apt+=(python3-venv)
# The documentation's commands (backend/tests/docs.rs runs every `sh` block of docs/).
present command -v curl || need_apt+=(curl)
present command -v jq || need_apt+=(jq)
present command -v openssl || need_apt+=(openssl)
# Redis and PostgreSQL for the shared-store tests: each test starts its own server on a free port in
# a temporary directory (the packages start no service here).
present command -v redis-server || need_apt+=(redis-server)
present sh -c 'ls /usr/lib/postgresql/*/bin/initdb' || need_apt+=(postgresql)
# The Debian package's test (scripts/test-deb.sh): systemd-analyze checks the unit, strace records
# the bridge's system calls against its filter, ss finds its process, objdump its glibc version.
present command -v systemd-analyze || need_apt+=(systemd)
present command -v strace || need_apt+=(strace)
present command -v ss || need_apt+=(iproute2)
present command -v objdump || need_apt+=(binutils)
apt_install() {
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]}" -- apt_install "${need_apt[@]}"
fi

# Trunk: `trunk serve` for development and the Trunk build the tests use (scripts/build-ui.sh --trunk).
present has_version trunk "$TRUNK_VERSION" ||
  step "cargo install trunk $TRUNK_VERSION (takes several minutes)" -- \
    cargo install trunk --version "$TRUNK_VERSION" --locked

# PyPI: privacyIDEA, the real server that judges the JWTs the bridge mints (black-box tests); its
# PyJWT and cryptography also serve the tests as an independent JWT client.
PI_VENV=tools/privacyidea-venv
pi_installed() {
  "$PI_VENV/bin/python" -c "import sys, privacyidea, importlib.metadata as m; sys.exit(m.version('privacyidea') != '$PRIVACYIDEA_VERSION')"
}
pi_install() {
  python3 -m venv "$PI_VENV"
  "$PI_VENV/bin/pip" install --quiet --disable-pip-version-check "privacyidea==$PRIVACYIDEA_VERSION"
}
present pi_installed ||
  step "pip install privacyidea==$PRIVACYIDEA_VERSION into $PI_VENV (about a minute)" -- pi_install
[ -n "$plan" ] || log "done"
