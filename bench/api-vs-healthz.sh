#!/usr/bin/env bash
# Throughput of a protected API call versus the bridge's unauthenticated /healthz, same run,
# same machine: wrk (Debian) on loopback against a release build, with the demo provider for
# discovery and a valid RS256 bearer token signed by the provider's key.
#
#   bench/api-vs-healthz.sh [duration_secs=10] [connections=32]
#
# Prints requests/s and p99 latency of each and the ratio protected/unauthenticated
# (target >= 0.7).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"; CONNECTIONS="${2:-32}"; THREADS=2
command -v wrk >/dev/null || scripts/install-deps.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
start_provider_and_bridge
token=$(provider_token)
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$bridge_port/api/me")
[ "$status" = 200 ] || { echo "bench: /api/me answered $status, not 200" >&2; exit 1; }

run() { # key, label, extra wrk args...
  local key=$1 label=$2; shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" > "$work/$key.txt"
  local rps p99
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/$key.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/$key.txt")
  if grep -q 'Non-2xx' "$work/$key.txt"; then echo "bench: $label had non-2xx answers" >&2; cat "$work/$key.txt" >&2; exit 1; fi
  printf '%-30s %12s req/s   p99 %s\n' "$label" "$rps" "$p99"
  echo "$rps" > "$work/$key.rps"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on $(nproc) cores, release build"
run healthz "GET /healthz (no auth)" "http://127.0.0.1:$bridge_port/healthz"
run api "GET /api/me (RS256 bearer)" -H "Authorization: Bearer $token" "http://127.0.0.1:$bridge_port/api/me"
ratio=$(python3 -c "import sys; print(f'{float(sys.argv[2])/float(sys.argv[1]):.2f}')" \
  "$(cat "$work/healthz.rps")" "$(cat "$work/api.rps")")
echo "ratio protected/unauthenticated: $ratio (target >= 0.7)"
