#!/usr/bin/env bash
# Instructions per request of /healthz and of /api/me (valid RS256 bearer), counted by
# valgrind's callgrind in the bridge process: repeatable where wrk's req/s are not (on a shared
# 2-core machine the ratio of bench/api-vs-healthz.sh swings by +-0.1 from run to run).
#
#   bench/instructions-per-request.sh [checkout=.]
#
# Counters are zeroed after start-up, so only request handling counts (all threads).
set -euo pipefail
bench_dir=$(cd "$(dirname "$0")" && pwd)
cd "${1:-$bench_dir/..}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (scripts/install-deps.sh)" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"
BENCH_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=$work/cg.%p" start_provider_and_bridge
token=$(provider_token)
curl -fs -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$bridge_port/api/me"
measure() { # label, wrk args...
  local label=$1; shift
  callgrind_control -z "$bridge" >/dev/null 2>&1
  local requests
  requests=$(wrk -t1 -c4 -d8s "$@" | awk '/requests in/ {print $1}')
  callgrind_control -d "$bridge" >/dev/null 2>&1
  local dump ir
  for _ in $(seq 50); do dump=$(ls -t "$work"/cg.*.* 2>/dev/null | head -1); [ -n "$dump" ] && break; sleep 0.1; done
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  rm -f "$work"/cg.*.*
  printf '%-28s %8d requests  %9d instructions/request\n' "$label" "$requests" "$((ir / requests))"
}
measure "GET /healthz (no auth)" "http://127.0.0.1:$bridge_port/healthz"
measure "GET /api/me (RS256 bearer)" -H "Authorization: Bearer $token" "http://127.0.0.1:$bridge_port/api/me"
