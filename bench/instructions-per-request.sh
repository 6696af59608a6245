#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind in the server process: repeatable
# where wrk's req/s are not (on a shared 2-core machine a wrk ratio swings by +-15% from run to
# run). The same cases as bench/hot-path.sh, with its configuration ([metrics] on, JSON logs at
# info), against the same peers (bench-peer), each under callgrind:
#
#   /healthz (no auth), /api/me with one cached token, /api/me with every token distinct;
#   bench-peer /plain (no auth) and /verify (jsonwebtoken aws_lc_rs, every token distinct).
#
#   bench/instructions-per-request.sh [tokens=24000]
#
# --dpop: the DPoP hot path instead (issue 23), with bench/dpop.sh's set-up (its bridge,
# alice's bound token, the same proofs): bench-peer /dpop (one ES256 verification) and the
# bridge's /api/me with the bound token and a fresh proof per request (one ES256
# verification, the replay record in BENCH_STORE: sqlite, the default, or redis, whose own
# work is not counted: it is another process). Each run signs its proofs just before it (each
# is sent once, bench/once-each.lua; a run that runs out of them fails: give more).
#
#   bench/instructions-per-request.sh --dpop [proofs=6000]
#
# BENCH_BRIDGE_BIN / BENCH_PEER_BIN: prebuilt release binaries to measure instead of this
# checkout's (e.g. a build with debug line tables, for callgrind_annotate; keep the dumps with
# BENCH_KEEP_DUMPS=DIR). Counters are zeroed after start-up and warm-up, so only request
# handling counts (all threads). Kernel work (the socket calls) is not counted: the ratios
# here are of user-space work only. Under valgrind the CPU's SHA and mulx extensions are hidden,
# so SHA-256 and RSA cost more here than on the real CPU.
set -euo pipefail
bench_dir=$(cd "$(dirname "$0")" && pwd)
cd "$bench_dir/.."
DPOP=""
if [ "${1:-}" = --dpop ]; then DPOP=1; shift; fi
TOKENS="${1:-24000}"; PROOFS="${1:-6000}"
STORE="${BENCH_STORE:-sqlite}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (scripts/install-deps.sh)" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"
# valgrind writes a last dump as each server exits: wait for that before the work directory goes.
trap 'kill "${peer:-}" "${bridge:-}" "${idp:-}" "${redis:-}" 2>/dev/null || true; wait || true; bench_cleanup' EXIT
# Names written in full in every dump: a kept dump after the first would otherwise refer to
# names defined only in earlier ones, and callgrind_annotate could not name its functions.
callgrind="valgrind --tool=callgrind --compress-strings=no --callgrind-out-file=$work/cg.%p"

# measure KEY PID LABEL WRK_ARGS...: instructions per request of PID over one wrk run. With
# the round-robin script, the warm-up takes $work/warm-up.txt, the counted run $work/counted.txt.
measure() {
  local key=$1 pid=$2 label=$3; shift 3
  local warm=() arg
  for arg in "$@"; do
    [ "$arg" = "$work/counted.txt" ] && arg=$work/warm-up.txt
    warm+=("$arg")
  done
  wrk -t1 -c4 -d2s "${warm[@]}" > "$work/wrk.out" # warm-up: connections, caches, allocator
  checked "$work/wrk.out" "$label (warm-up)"
  callgrind_control -z "$pid" >/dev/null 2>&1
  local requests dump ir
  wrk -t1 -c4 -d8s "$@" > "$work/wrk.out"
  checked "$work/wrk.out" "$label"
  requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  callgrind_control -d "$pid" >/dev/null 2>&1
  dump=""
  for _ in $(seq 100); do
    for f in "$work"/cg."$pid".*; do [ -e "$f" ] && dump=$f; done
    [ -n "$dump" ] && break; sleep 0.1
  done
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  if [ -n "${BENCH_KEEP_DUMPS:-}" ]; then mkdir -p "$BENCH_KEEP_DUMPS"; cp "$dump" "$BENCH_KEEP_DUMPS/cg.$key"; fi
  rm -f "$work"/cg."$pid".*
  printf '  %-52s %8d requests  %9d instructions/request\n' "$label" "$requests" "$((ir / requests))"
  echo "$((ir / requests))" > "$work/$key.ir"
}
# checked OUT LABEL: fails on a non-2xx answer, a socket error or a thread out of its lines.
checked() {
  if grep -q 'Non-2xx\|Socket errors\|EXHAUSTED' "$1"; then
    echo "bench: $2 had errors" >&2; cat "$1" >&2; exit 1
  fi
}
ir() { cat "$work/$1.ir"; }

if [ -n "$DPOP" ]; then
  case $STORE in sqlite|redis) ;; *) echo "bench: BENCH_STORE=$STORE (sqlite, redis)" >&2; exit 2 ;; esac
  BENCH_WRAPPER=$callgrind start_dpop "$STORE"
  bind_dpop
  if [ -n "${BENCH_PEER_BIN:-}" ]; then peer_bin=$BENCH_PEER_BIN; else
    cargo build --release -q -p bench-peer; peer_bin=${CARGO_TARGET_DIR:-target}/release/bench-peer
  fi
  $callgrind "$peer_bin" --listen 127.0.0.1:0 --public-key tests/fixtures/issuer-rsa-a.pub.pem \
    --issuer unused --audience unused --dpop-public-key "$work/dpop.pub.pem" > "$work/peer.out" 2>/dev/null &
  peer=$!
  for _ in $(seq 600); do grep -q LISTENING "$work/peer.out" 2>/dev/null && break; sleep 0.1; done
  peer_url="http://$(sed -n 's/^LISTENING //p' "$work/peer.out")/dpop"
  proofs "$peer_url" 1 "$work/one.txt" "$work/token.txt"
  [ "$(status "$peer_url" "$work/one.txt")" = 200 ] || { echo "bench: $peer_url does not answer 200" >&2; exit 1; }
  # measure_dpop KEY PID LABEL HTU URL: fresh proofs for HTU (a quarter of them for the
  # warm-up), then measure.
  measure_dpop() {
    proofs "$4" "$((PROOFS / 4))" "$work/warm-up.txt" "$work/token.txt"
    proofs "$4" "$PROOFS" "$work/counted.txt" "$work/token.txt"
    measure "$1" "$2" "$3" -s bench/once-each.lua "$5" -- "$work/counted.txt" 1 "$work/token.txt"
  }
  echo "callgrind, wrk -t1 -c4, a fresh ES256 proof per request; store $STORE; bridge with [metrics] and JSON logs"
  measure_dpop peer "$peer" "bench-peer /dpop (jsonwebtoken ES256)" "$peer_url" "$peer_url"
  measure_dpop bridge "$bridge" "bridge /api/me (DPoP, fresh proof)" "$public_url/api/me" "$bridge_url/api/me"
  awk -v p="$(ir peer)" -v b="$(ir bridge)" 'BEGIN {
    printf "instructions of /dpop per instruction of /api/me (DPoP):   %.2f\n", p / b
  }'
  exit 0
fi

BENCH_WRAPPER=$callgrind start_hot_path "$TOKENS"

# The distinct-token runs warm up on tokens of their own: a token of the warm-up met again in
# the counted run would be a cache hit, and the figure would depend on the runs' lengths.
head -n 4000 "$work/tokens.txt" > "$work/warm-up.txt"
tail -n +4001 "$work/tokens.txt" > "$work/counted.txt"

round_robin=(-s bench/bearer-round-robin.lua)
echo "callgrind, wrk -t1 -c4, $TOKENS distinct tokens where distinct; bridge with [metrics] and JSON logs"
measure healthz "$bridge" "bridge /healthz (no auth)" "$bridge_url/healthz"
measure plain "$peer" "bench-peer /plain (no auth)" "$peer_url/plain"
measure cached "$bridge" "bridge /api/me (one cached token)" -H "Authorization: Bearer $token" "$bridge_url/api/me"
measure verify "$peer" "bench-peer /verify (distinct tokens)" "${round_robin[@]}" "$peer_url/verify" -- "$work/counted.txt" 1
measure distinct "$bridge" "bridge /api/me (distinct tokens)" "${round_robin[@]}" "$bridge_url/api/me" -- "$work/counted.txt" 1
awk -v p="$(ir plain)" -v c="$(ir cached)" -v v="$(ir verify)" -v d="$(ir distinct)" 'BEGIN {
  printf "(a) instructions of /plain per instruction of /api/me (one token):   %.2f\n", p / c
  printf "(b) instructions of /verify per instruction of /api/me (distinct):   %.2f\n", v / d
}'
