#!/usr/bin/env bash
# Installs everything login-bridge needs to build, run and test on a fresh machine of this kind
# (Debian + rustup toolchain + Node/npm; only the package registries are reachable).
# Idempotent: each step is skipped when its exact version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=0.2.130
PRIVACYIDEA_VERSION=3.14
log() { printf '\033[1m[install]\033[0m %s\n' "$*"; }

# Debian packages: Chromium + ChromeDriver for the browser tests, wrk for the benchmark,
# python3-venv for privacyIDEA's venv (Debian ships venv's ensurepip separately).
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# Redis and PostgreSQL for the shared-store tests: each test starts its own server on a free port in
# a temporary directory (the packages start no service here).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# The Debian package's test (scripts/test-deb.sh): systemd-analyze checks the unit, strace records
# the bridge's system calls against its filter, ss finds its process, objdump its glibc version.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
command -v ss >/dev/null 2>&1 || need_apt+=(iproute2)
command -v objdump >/dev/null 2>&1 || need_apt+=(binutils)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# Rust: WASM target, Trunk and the wasm-bindgen CLI matching Cargo.lock exactly.
rustup target list --installed | grep -qx wasm32-unknown-unknown || {
  log "rustup target add wasm32-unknown-unknown"; rustup target add wasm32-unknown-unknown; }
if ! trunk --version 2>/dev/null | grep -q "$TRUNK_VERSION"; then
  log "cargo install trunk $TRUNK_VERSION (takes several minutes)"
  cargo install trunk --version "$TRUNK_VERSION" --locked
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Not --locked: its lockfile pins a webpki-roots the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# npm: wasm-opt (binaryen 132; Debian's 108 breaks the app), terser (minifies the SPA's
# wasm-bindgen glue, tools/minify-glue.mjs) and the test/demo OIDC provider.
if [ ! -x tools/node_modules/.bin/wasm-opt ] || [ ! -d tools/node_modules/terser ]; then
  log "npm ci (tools: binaryen, terser)"; (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -d tests/idp/node_modules/oidc-provider ]; then
  log "npm ci (tests/idp: oidc-provider)"; (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)
fi
# PyPI: privacyIDEA, the real server that judges the JWTs the bridge mints (black-box tests); its
# PyJWT and cryptography also serve the tests as an independent JWT client.
PI_VENV=tools/privacyidea-venv
if ! "$PI_VENV/bin/python" -c "import sys, privacyidea, importlib.metadata as m; sys.exit(m.version('privacyidea') != '$PRIVACYIDEA_VERSION')" 2>/dev/null; then
  log "pip install privacyidea==$PRIVACYIDEA_VERSION into $PI_VENV (about a minute)"
  python3 -m venv "$PI_VENV"
  "$PI_VENV/bin/pip" install --quiet --disable-pip-version-check "privacyidea==$PRIVACYIDEA_VERSION"
fi
log "done"
