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
# BENCH_BRIDGE_BIN / BENCH_PEER_BIN: prebuilt release binaries to measure instead of this
# checkout's (e.g. a build with debug line tables, for callgrind_annotate; keep the dumps with
# BENCH_KEEP_DUMPS=DIR). Counters are zeroed after start-up and warm-up, so only request
# handling counts (all threads). Kernel work (the socket calls) is not counted: the ratios
# here are of user-space work only. Under valgrind the CPU's SHA and mulx extensions are hidden,
# so SHA-256 and RSA cost more here than on the real CPU.
set -euo pipefail
bench_dir=$(cd "$(dirname "$0")" && pwd)
cd "$bench_dir/.."
TOKENS="${1:-24000}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (scripts/install-deps.sh)" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"
# valgrind writes a last dump as each server exits: wait for that before the work directory goes.
trap 'kill "${peer:-}" "${bridge:-}" "${idp:-}" 2>/dev/null || true; wait || true; bench_cleanup' EXIT
# Names written in full in every dump: a kept dump after the first would otherwise refer to
# names defined only in earlier ones, and callgrind_annotate could not name its functions.
callgrind="valgrind --tool=callgrind --compress-strings=no --callgrind-out-file=$work/cg.%p"
BENCH_WRAPPER=$callgrind start_hot_path "$TOKENS"

# The distinct-token runs warm up on tokens of their own: a token of the warm-up met again in
# the counted run would be a cache hit, and the figure would depend on the runs' lengths.
head -n 4000 "$work/tokens.txt" > "$work/warm-up.txt"
tail -n +4001 "$work/tokens.txt" > "$work/counted.txt"

# measure KEY PID LABEL WRK_ARGS...: instructions per request of PID over one wrk run. With
# the round-robin script, the warm-up takes $work/warm-up.txt, the counted run $work/counted.txt.
measure() {
  local key=$1 pid=$2 label=$3; shift 3
  local warm=("$@")
  [ "${*: -2:1}" = "$work/counted.txt" ] && warm[${#warm[@]}-2]="$work/warm-up.txt"
  wrk -t1 -c4 -d2s "${warm[@]}" >/dev/null # warm-up: connections, caches, allocator
  callgrind_control -z "$pid" >/dev/null 2>&1
  local requests dump ir
  requests=$(wrk -t1 -c4 -d8s "$@" | awk '/requests in/ {print $1}')
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
round_robin=(-s bench/bearer-round-robin.lua)
echo "callgrind, wrk -t1 -c4, $TOKENS distinct tokens where distinct; bridge with [metrics] and JSON logs"
measure healthz "$bridge" "bridge /healthz (no auth)" "$bridge_url/healthz"
measure plain "$peer" "bench-peer /plain (no auth)" "$peer_url/plain"
measure cached "$bridge" "bridge /api/me (one cached token)" -H "Authorization: Bearer $token" "$bridge_url/api/me"
measure verify "$peer" "bench-peer /verify (distinct tokens)" "${round_robin[@]}" "$peer_url/verify" -- "$work/counted.txt" 1
measure distinct "$bridge" "bridge /api/me (distinct tokens)" "${round_robin[@]}" "$bridge_url/api/me" -- "$work/counted.txt" 1
ir() { cat "$work/$1.ir"; }
awk -v p="$(ir plain)" -v c="$(ir cached)" -v v="$(ir verify)" -v d="$(ir distinct)" 'BEGIN {
  printf "(a) instructions of /plain per instruction of /api/me (one token):   %.2f\n", p / c
  printf "(b) instructions of /verify per instruction of /api/me (distinct):   %.2f\n", v / d
}'
