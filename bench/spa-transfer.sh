#!/usr/bin/env bash
# The browser figures of the SPA (bench/spa-transfer.py: bytes of the first load, a reload and
# a second visit in headless Chromium; silent SSO against an open session, in time), against the
# demo provider and a bridge serving this checkout's dist/ (built if missing). The bridge is the
# release build, as in the other benches ($BENCH_BRIDGE_BIN when set).
#
#   bench/spa-transfer.sh [ROUNDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/index.html ] || scripts/build-ui.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
start_provider_and_bridge
python3 bench/spa-transfer.py "http://localhost:$bridge_port" "${1:-5}"
