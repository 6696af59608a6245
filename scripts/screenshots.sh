#!/usr/bin/env bash
# Redoes the UI's screenshots in docs/screenshots/: the sign-in page, the signed-in home page and
# the API demo page, at a laptop's width (1280 px) and a phone's (360 px), in headless Chromium.
# Runs the demo set-up (config/demo.toml: the demo provider, its user alice, a local account)
# on free ports in a temporary directory, with the UI in dist/ (built here first).
#
#   scripts/screenshots.sh            # builds the UI and the bridge (debug), then shoots
#   SCREENSHOTS_NO_BUILD=1 scripts/screenshots.sh   # uses dist/ and the built bridge as they are
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../bench/lib.sh
source bench/lib.sh

target="${CARGO_TARGET_DIR:-target}"
if [ -z "${SCREENSHOTS_NO_BUILD:-}" ]; then
  scripts/build-ui.sh
  cargo build -q -p login-bridge
fi
# A debug build is enough for pictures (bench/lib.sh would build a release one).
export BENCH_BRIDGE_BIN="$PWD/$target/debug/login-bridge"
[[ "$target" = /* ]] && BENCH_BRIDGE_BIN="$target/debug/login-bridge"

# The demo configuration, with its files moved to the temporary directory.
(umask 077 && head -c 32 /dev/urandom | base64 > "$work/kek")
export BRIDGE_AUTHORITY__KEY_ENCRYPTION_KEY_FILE="$work/kek"
start_provider_and_bridge --config config/demo.toml
printf 'break-glass-demo\n' | bridge_cli --config config/demo.toml user add admin --role admin >/dev/null

mkdir -p docs/screenshots
python3 scripts/screenshots.py "http://localhost:$bridge_port" docs/screenshots
ls -l docs/screenshots
