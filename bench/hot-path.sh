#!/usr/bin/env bash
# The hot path with everything on (metrics listener, JSON logs), against bare axum peers in the
# same run, same machine: wrk (Debian) on loopback, release builds, RS256-2048 tokens of the
# demo provider's key.
#
#   bench/hot-path.sh [duration_secs=10] [connections=50] [rounds=3] [tokens=40000]
#
# (a) GET /api/me with one (cached) bearer token  vs  a plain axum handler with no auth
#     (bench-peer /plain)                                               target >= 0.85x
# (b) GET /api/me with every token distinct (TOKENS tokens, round robin: more than the bridge's
#     verified-token cache holds, so every call is a signature check)  vs  a bare axum handler
#     verifying each token with jsonwebtoken on aws_lc_rs (bench-peer /verify)  target >= 1.0x
#     The bridge's own counters say how many of its answers were verified vs cached.
# (c) the bridge's RSS (VmRSS) after one real browser session (headless Chromium signs in and
#     opens the API demo page) and after each load run                  target <= 25 MB, flat
#
# wrk -t2 -cCONNECTIONS; the peer and the bridge alternate, ROUNDS times; each ratio is the
# median of the rounds (on a shared 2-core machine a single pair swings by +-10%).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"; CONNECTIONS="${2:-50}"; ROUNDS="${3:-3}"; TOKENS="${4:-40000}"; THREADS=2
command -v wrk >/dev/null || scripts/install-deps.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap 'kill "${peer:-}" 2>/dev/null || true; bench_cleanup' EXIT
[ -f dist/index.html ] || scripts/build-ui.sh
start_hot_path "$TOKENS"

rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$bridge/status"; }
verifications() { # reason: cached | verified
  curl -fs "http://127.0.0.1:$metrics_port/metrics" | awk -v r="$1" \
    '/^login_bridge_token_verifications_total/ && /outcome="valid"/ && $0 ~ "reason=\"" r "\"" {s += $NF} END {print s + 0}'
}
rss_log=()
rss_note() { rss_log+=("$(printf '%-44s %6s MB' "$1" "$(rss_mb)")"); }
rss_note "started, before any request"

# run KEY LABEL WRK_ARGS...: one wrk run; prints a line, fails on any non-2xx.
run() {
  local key=$1 label=$2; shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" > "$work/$key.txt"
  local rps p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/$key.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/$key.txt")
  non2xx=$(awk -F': *' '/Non-2xx/ {print $2}' "$work/$key.txt")
  if [ -n "$non2xx" ] || grep -q 'Socket errors' "$work/$key.txt"; then
    echo "bench: $label had errors" >&2; cat "$work/$key.txt" >&2; exit 1
  fi
  printf '  %-50s %10s req/s   p99 %s\n' "$label" "$rps" "$p99"
  echo "$rps" >> "$work/$key.rps"
}
median_ratio() { # file of the bridge's rates, file of the peer's: median of the per-round ratios
  python3 -c '
import statistics, sys
b = [float(x) for x in open(sys.argv[1])]; p = [float(x) for x in open(sys.argv[2])]
r = sorted(x / y for x, y in zip(b, p))
rounds = ", ".join("%.2f" % x for x in r)
print("%.2f (rounds: %s)" % (statistics.median(r), rounds))' "$1" "$2"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s x $ROUNDS rounds on $(nproc) cores, release builds; bridge with [metrics] and JSON logs"

# (c) first: one real browser session on a fresh bridge.
python3 bench/browser-session.py "http://localhost:$bridge_port" 5
rss_note "after a browser session (sign-in, 6 pages)"

echo "(a) one cached token: GET /api/me vs plain axum, no auth"
for round in $(seq "$ROUNDS"); do
  run plain "round $round  bench-peer /plain (no auth)" "$peer_url/plain"
  run cached "round $round  bridge /api/me (one token)" -H "Authorization: Bearer $token" "$bridge_url/api/me"
done
rss_note "after (a)"
ratio_a=$(median_ratio "$work/cached.rps" "$work/plain.rps")

echo "(b) every token distinct ($TOKENS RS256 tokens round robin)"
verified_before=$(verifications verified); cached_before=$(verifications cached)
for round in $(seq "$ROUNDS"); do
  run verify "round $round  bench-peer /verify (jsonwebtoken aws_lc_rs)" \
    -s bench/bearer-round-robin.lua "$peer_url/verify" -- "$work/tokens.txt" "$THREADS"
  run distinct "round $round  bridge /api/me (distinct tokens)" \
    -s bench/bearer-round-robin.lua "$bridge_url/api/me" -- "$work/tokens.txt" "$THREADS"
done
rss_note "after (b)"
verified=$(( $(verifications verified) - verified_before )); cached=$(( $(verifications cached) - cached_before ))
ratio_b=$(median_ratio "$work/distinct.rps" "$work/verify.rps")
echo "  the bridge's answers in (b): $verified signature checks, $cached from its cache"

echo "(c) bridge RSS"
printf '  %s\n' "${rss_log[@]}"
python3 - "$ratio_a" "$ratio_b" "$(rss_mb)" <<'PY'
import sys
a, b, rss = float(sys.argv[1].split()[0]), float(sys.argv[2].split()[0]), float(sys.argv[3])
print(f"(a) /api/me one token / plain axum:        {sys.argv[1]}   target >= 0.85: {'met' if a >= 0.85 else 'NOT met'}")
print(f"(b) /api/me distinct / axum+jsonwebtoken:  {sys.argv[2]}   target >= 1.0:  {'met' if b >= 1.0 else 'NOT met'}")
print(f"(c) RSS at the end:                        {rss} MB   target <= 25 MB: {'met' if rss <= 25 else 'NOT met'}")
PY
