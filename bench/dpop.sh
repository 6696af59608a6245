#!/usr/bin/env bash
# The DPoP hot path (issue 23): GET /api/me with a DPoP-bound token the bridge has checked before
# (a cache hit) and a FRESH proof on every request (one ES256 verification, a replay record),
# against a bare axum handler verifying one ES256 JWT per request with jsonwebtoken on aws_lc_rs
# (bench-peer /dpop, the key fixed at start), same run, same machine: wrk (Debian) on loopback,
# release builds.
#
#   bench/dpop.sh [duration_secs=10] [connections=50] [rounds=3]
#   bench/dpop.sh --soak SECS [connections=50]
#   BENCH_STORE=sqlite|redis (default sqlite: the replay records' store, with the sessions)
#   BENCH_BRIDGE_BIN / BENCH_PEER_BIN: prebuilt release binaries (absolute paths) instead of
#   building them here (cargo build --release, in $CARGO_TARGET_DIR when set)
#
# The bridge: [metrics] on its own listener and JSON logs at info (as bench/hot-path.sh), an
# [authority], session.token_profile = "spa" (the [[token_profiles]] entry of config/demo.toml)
# and session.dpop = "required". alice signs in through the demo provider's login form (curl);
# one P-256 key (bench/make-dpop-proofs.mjs --new-key) binds her session: /auth/session with a
# proof must answer token_type "DPoP" and a token whose cnf.jkt is that key's RFC 7638
# thumbprint. Then, by hand: one /api/me with a proof answers 200, the same proof again 401 (a
# replay), so the run below measures the real checks.
#
# Comparison: per round the peer and the bridge run once each, taking turns to go first; before
# each wrk run its proofs are signed (own jti, iat now, htu of its URL: the bridge's public URL
# + /api/me, ath of the token; the bridge accepts a proof for session.dpop_proof_max_age_secs =
# 60 s plus leeway) and handed out once each by bench/once-each.lua. How many: a 2 s warm-up of
# each measures its rate; each run gets rate x duration x 1.5 + 5000 (a run that runs out is
# done again once with twice as many; then running out fails the bench, as does any non-2xx
# answer or socket error). The ratio is the median of the per-round ratios bridge/peer (target
# >= 1.0x). Each run's line also gives the server's CPU time per request
# (all its threads, from /proc: on a shared machine steadier than req/s) and the bytes it wrote
# to its files per request (the SQLite store's WAL and checkpoints); with Redis, a line more for
# redis-server's CPU per request of the bridge's run, and the records per call of the replay
# records' script (the batch the bridge sends at once). The bridge's RSS after start, sign-in and
# each round.
#
# Soak (--soak SECS): the bridge alone under steady load for SECS seconds, in back-to-back wrk
# segments of 20 s, each with its own proofs, signed in the background during the segment before
# (so the load does not stop for signing; the signing takes CPU from both). A proof's replay
# record lives until its iat could no longer be accepted (iat + max age + leeway: 90 s by
# default), so a soak longer than that shows the records purged: the bridge's RSS (and the
# records' count where the store says it) every 5 s, before, during and after the load. The
# verdict, flat or GROWING, is on the memory per record held in the second half (the records
# follow the load, which the signing makes uneven), and on the bridge's RSS with Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK=""
if [ "${1:-}" = --soak ]; then
  SOAK=${2:-}; shift 2 || true
  [[ "$SOAK" =~ ^[0-9]+$ ]] && [ "$SOAK" -ge 20 ] || { echo "usage: bench/dpop.sh --soak SECS>=20 [connections]" >&2; exit 2; }
  CONNECTIONS="${1:-50}"
else
  DURATION="${1:-10}"; CONNECTIONS="${2:-50}"; ROUNDS="${3:-3}"
fi
THREADS=2; WARMUP_SECS=2; WARMUP_PROOFS=30000; SEGMENT=20; RSS_EVERY=5; SIGN_WITHIN=30
STORE="${BENCH_STORE:-sqlite}"
case $STORE in sqlite|redis) ;; *) echo "bench: BENCH_STORE=$STORE (sqlite, redis)" >&2; exit 2 ;; esac
command -v wrk >/dev/null || scripts/install-deps.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap 'kill "${peer:-}" "${redis:-}" "${sampler:-}" 2>/dev/null || true; bench_cleanup' EXIT

# ---- the store, the bridge, alice's bound session (bench/lib.sh)
start_dpop "$STORE"

rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$bridge/status"; }
# records: the replay records in the store, where it says, else "?". Redis: the records in the
# sets of login-bridge:dpop:seen:<iat> (one set a second, about 90 live: KEYS over the few
# keys there are costs nothing), and redis-server's used_memory; SQLite: the records in the rows of
# dpop_proof_seen (24 bytes each; expired rows stay until the purge, every 10 s), and after a
# slash those the bridge holds in memory (login_bridge_dpop_replay_records_held), and the size
# of the SQLite WAL file.
records() {
  case $STORE in
    redis)
      printf '%s, Redis %s MB\n' \
        "$(redis-cli -h 127.0.0.1 -p "$redis_port" eval "local n = 0
          for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('SCARD', k) end
          return n" 0 'login-bridge:dpop:seen:*' 2>/dev/null || echo "?")" \
        "$(redis-cli -h 127.0.0.1 -p "$redis_port" info memory 2>/dev/null \
          | awk -F: '$1 == "used_memory" {printf "%.1f", $2 / 1048576}')"
    ;;
    sqlite)
      python3 - "$work/sessions.sqlite" <<'PY' 2>/dev/null || printf '?'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=1)
print(db.execute("select coalesce(sum(length(records)), 0) / 24 from dpop_proof_seen").fetchone()[0], end="")
PY
      printf ' / %s held, WAL %s MB\n' "$(curl -s "http://127.0.0.1:$metrics_port/metrics" \
        | awk '$1 == "login_bridge_dpop_replay_records_held" {print $2}' | grep . || echo 0)" \
        "$(stat -c %s "$work/sessions.sqlite-wal" 2>/dev/null | awk '{printf "%.1f", $1 / 1048576}')"
    ;;
  esac
}
records_label="replay records"
rss_log=()
rss_note() { rss_log+=("$(printf '%-44s %6s MB   %s: %s' "$1" "$(rss_mb)" "$records_label" "$(records)")"); }
rss_note "started, before any request"

bind_dpop
rss_note "after sign-in and binding"
base_rss=$(rss_mb)

# ---- wrk runs
# wrk_proofs PROOFS SECONDS URL OUT: drives URL with the token and one proof per request.
wrk_proofs() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${2}s" --latency -s bench/once-each.lua "$3" \
    -- "$1" "$THREADS" "$work/token.txt" > "$4"
}
# checked OUT LABEL: fails on a non-2xx answer, a socket error or a thread out of proofs.
checked() {
  if grep -q 'Non-2xx\|Socket errors\|EXHAUSTED' "$1"; then
    echo "bench: $2 had errors" >&2; cat "$1" >&2; exit 1
  fi
}
# need RATE SECONDS: how many proofs a run of SECONDS at up to 1.5 x RATE uses, plus a margin.
need() { python3 -c "import sys; print(int(float(sys.argv[1]) * float(sys.argv[2]) * 1.5) + 5000)" "$1" "$2"; }

# warm_rate KEY HTU URL: a WARMUP_SECS run's rate (doubled if it ran out of proofs).
warm_rate() {
  proofs "$2" "$WARMUP_PROOFS" "$work/warm.txt" "$work/token.txt"
  wrk_proofs "$work/warm.txt" "$WARMUP_SECS" "$3" "$work/warm.out"
  local used; used=$(awk '/^Used:/ {print $2}' "$work/warm.out")
  grep -q EXHAUSTED "$work/warm.out" && used=$((used * 2))
  echo $(( used / WARMUP_SECS ))
}

if [ -n "$SOAK" ]; then
  rate=$(warm_rate bridge "$public_url/api/me" "$bridge_url/api/me")
  segments=$(( (SOAK + SEGMENT - 1) / SEGMENT ))
  count=$(need "$rate" "$SEGMENT")
  echo "soak: $segments x ${SEGMENT}s of wrk -t$THREADS -c$CONNECTIONS on $(nproc) cores, store $STORE; $count proofs for each of the first two segments (warm-up ${rate} req/s), then 1.5 x the rate of the segment before, at most what the signers made in ${SIGN_WITHIN}s; bridge $bridge_bin"
  rss_note "after the warm-up (${WARMUP_SECS}s)"
  : > "$work/samples"
  (
    t0=$(date +%s)
    while :; do
      printf '%5ss %6s MB   %s: %s\n' $(( $(date +%s) - t0 )) "$(rss_mb)" "$records_label" "$(records)" >> "$work/samples"
      sleep "$RSS_EVERY"
    done
  ) & sampler=$!
  # seg_proofs COUNT OUT: COUNT proofs (signed on every core); OUT.secs: how long it took.
  seg_proofs() {
    local t=$SECONDS
    proofs "$public_url/api/me" "$1" "$2" "$work/token.txt"
    echo $(( SECONDS - t )) > "$2.secs"
  }
  seg_proofs "$count" "$work/seg-1.txt"
  for k in $(seq "$segments"); do
    signer=""
    if [ "$k" -lt "$segments" ]; then
      seg_proofs "$count" "$work/seg-$((k + 1)).txt" & signer=$!
    fi
    wrk_proofs "$work/seg-$k.txt" "$SEGMENT" "$bridge_url/api/me" "$work/seg-$k.out"
    [ -z "$signer" ] || wait "$signer"
    # A segment may run out of proofs (it ends early; its thread's last request, sent again,
    # is refused: one non-2xx per connection at most); any other refusal or error fails.
    refused=$(awk '/^  Non-2xx/ {print $NF}' "$work/seg-$k.out"); refused=${refused:-0}
    if grep -q 'Socket errors' "$work/seg-$k.out" \
      || { [ "$refused" -gt 0 ] && ! grep -q EXHAUSTED "$work/seg-$k.out"; } \
      || [ "$refused" -gt "$CONNECTIONS" ]; then
      echo "bench: soak segment $k had errors" >&2; cat "$work/seg-$k.out" >&2; exit 1
    fi
    printf '  segment %2d  %10s req/s   p99 %-8s %s\n' "$k" "$(awk '/^Requests\/sec/ {print $2}' "$work/seg-$k.out")" \
      "$(awk '$1=="99%" {print $2}' "$work/seg-$k.out")" \
      "$(grep -q EXHAUSTED "$work/seg-$k.out" && echo "(ran out of proofs before ${SEGMENT}s)")"
    rm -f "$work/seg-$k.txt"
    rss_note "after segment $k ($(( k * SEGMENT ))s of load)"
    # The next signers sign for the rate the load really has (the signing shares the cores,
    # so it is below the warm-up's), but no more than they signed in SIGN_WITHIN seconds last
    # time: signing takes CPU from the load, and a batch that took longer to sign than the
    # proofs' window (90 s) would have its first proofs refused for their age. A segment then
    # runs out early instead.
    if [ -n "$signer" ]; then
      signed_secs=$(cat "$work/seg-$((k + 1)).txt.secs")
      count=$(python3 -c "import sys; r, c, s, w = map(float, sys.argv[1:]); print(min(int(r * $SEGMENT * 1.5) + 5000, int(c / max(s, 1) * w)))" \
        "$(awk '/^Requests\/sec/ {print $2}' "$work/seg-$k.out")" "$count" "$signed_secs" "$SIGN_WITHIN")
    fi
  done
  kill "$sampler"; wait "$sampler" 2>/dev/null || true; sampler=""
  echo "RSS during the load (every ${RSS_EVERY}s):"
  sed 's/^/  /' "$work/samples"
  # Flat: the second half of the samples (the records' lifetime is past) against the first.
  # The records held follow the load (rate x window), and the load is uneven (the signers share
  # the cores), so the memory that holds them is judged per record: above the RSS after sign-in
  # on SQLite (the bridge holds them), of redis-server's used_memory on Redis (the bridge holds
  # none, so its own RSS is judged as it is). A leak makes the memory per record rise while the
  # records held stay bounded; a rising load only adds records.
  python3 - "$work/samples" "$STORE" "$base_rss" <<'PY'
import re, statistics, sys
store, base = sys.argv[2], float(sys.argv[3])
rss, per = [], []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 2:
        continue
    rss.append(float(f[1]))
    if store == "sqlite":
        m = re.search(r"/ (\d+) held", line)
        n, mem = (int(m.group(1)), (float(f[1]) - base) * 1048576) if m else (0, 0)
    else:
        m = re.search(r"records: (\d+), Redis ([\d.]+) MB", line)
        n, mem = (int(m.group(1)), float(m.group(2)) * 1048576) if m else (0, 0)
    per.append(mem / n if n >= 1000 else None)
h = len(rss) // 2
if h >= 2:
    a, b = rss[:h], rss[h:]
    print(f"RSS first half {min(a):.1f}..{max(a):.1f} MB, second half {min(b):.1f}..{max(b):.1f} MB, end {rss[-1]:.1f} MB")
    later = [p for p in per[h:] if p is not None]
    if store == "redis":
        print(f"the bridge's RSS: {'flat' if rss[-1] <= max(a) * 1.10 + 2 else 'GROWING'} "
              "(end <= peak of the first half + 10 % + 2 MB)")
    what = (f"bytes a record held, RSS above the {base:.1f} MB after sign-in" if store == "sqlite"
            else "bytes of Redis's used_memory a live record")
    if len(later) >= 4:
        q = len(later) // 4
        first, last = statistics.median(later[:q + 1]), statistics.median(later[-(q + 1):])
        print(f"{what}: second half {min(later):.0f}..{max(later):.0f}, first quarter's median {first:.0f}, "
              f"last quarter's {last:.0f}: {'flat' if last <= first * 1.15 + 4 else 'GROWING'} "
              "(last <= first + 15 % + 4 B)")
    else:
        print(f"{what}: too few samples with records held in the second half to judge")
PY
  sleep 5; rss_note "5 s after the load"
  echo "RSS:"; printf '  %s\n' "${rss_log[@]}"
  exit 0
fi

if [ -n "${BENCH_PEER_BIN:-}" ]; then peer_bin=$BENCH_PEER_BIN; else
  cargo build --release -q -p bench-peer; peer_bin=${CARGO_TARGET_DIR:-target}/release/bench-peer
fi
"$peer_bin" --listen 127.0.0.1:0 --public-key tests/fixtures/issuer-rsa-a.pub.pem --issuer unused \
  --audience unused --dpop-public-key "$work/dpop.pub.pem" > "$work/peer.out" 2>/dev/null &
peer=$!
for _ in $(seq 100); do grep -q LISTENING "$work/peer.out" 2>/dev/null && break; sleep 0.1; done
peer_url="http://$(sed -n 's/^LISTENING //p' "$work/peer.out")/dpop"
proofs "$peer_url" 1 "$work/one.txt" "$work/token.txt"
[ "$(status "$peer_url" "$work/one.txt")" = 200 ] || { echo "bench: $peer_url does not answer 200" >&2; exit 1; }

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s x $ROUNDS rounds on $(nproc) cores, store $STORE; every request a fresh ES256 proof"
echo "bridge $bridge_bin, peer $peer_bin"
peer_rate=$(warm_rate peer "$peer_url" "$peer_url")
bridge_rate=$(warm_rate bridge "$public_url/api/me" "$bridge_url/api/me")
rss_note "after the warm-ups"
# cpu_ticks PID: the process's CPU time so far (user + system, all threads), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# store_ticks: redis-server's CPU time so far (BENCH_STORE=redis), else 0.
store_ticks() { if [ -n "${redis:-}" ]; then cpu_ticks "$redis"; else echo 0; fi; }
# script_calls: redis-server's EVALSHA calls so far (the replay records' script), else 0.
script_calls() {
  if [ -n "${redis:-}" ]; then
    redis-cli -h 127.0.0.1 -p "$redis_port" info commandstats 2>/dev/null \
      | awk -F'[:=,]' '$1 == "cmdstat_evalsha" {print $3; found = 1} END {if (!found) print 0}'
  else echo 0; fi
}
# written PID: the bytes the process has sent to its files so far (the kernel's count).
written() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }
# run KEY LABEL HTU URL: signs the proofs, one wrk run, a line; keeps the rate. The line also
# says the server's CPU time per request (wrk's share is not in it) and the bytes it wrote to
# its files per request (the replay records' store; 0 for the peer).
run() {
  local key=$1 label=$2 rate_var=${1}_rate out=$work/$1.out rps pid cpu0 bytes0 store0 store calls0
  pid=${!key}
  proofs "$3" "$(need "${!rate_var}" "$DURATION")" "$work/$key.txt" "$work/token.txt"
  cpu0=$(cpu_ticks "$pid"); bytes0=$(written "$pid"); store0=$(store_ticks); calls0=$(script_calls)
  wrk_proofs "$work/$key.txt" "$DURATION" "$4" "$out"
  if grep -q EXHAUSTED "$out"; then
    # Faster than its warm-up said: once more with twice the supply (the refused replay the
    # exhausted thread sent is in the discarded run only).
    echo "  ($label ran out of proofs: again with twice as many)"
    printf -v "$rate_var" '%s' $(( ${!rate_var} * 2 ))
    proofs "$3" "$(need "${!rate_var}" "$DURATION")" "$work/$key.txt" "$work/token.txt"
    cpu0=$(cpu_ticks "$pid"); bytes0=$(written "$pid"); store0=$(store_ticks); calls0=$(script_calls)
    wrk_proofs "$work/$key.txt" "$DURATION" "$4" "$out"
  fi
  checked "$out" "$label"
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  printf '  %-52s %10s req/s   p99 %-7s %s\n' "$label" "$rps" "$(awk '$1=="99%" {print $2}' "$out")" \
    "$(awk -v ticks=$(( $(cpu_ticks "$pid") - cpu0 )) -v hz="$(getconf CLK_TCK)" \
      -v bytes=$(( $(written "$pid") - bytes0 )) '/ requests in / {n = $1}
      END {printf "CPU %5.1f us/req   written %5.0f B/req", ticks * 1e6 / hz / n, bytes / n}' "$out")"
  # Redis: the server's CPU in the same time, per request of this run (the peer uses none).
  if [ -n "${redis:-}" ] && [ "$key" = bridge ]; then
    store=$(( $(store_ticks) - store0 ))
    awk -v ticks="$store" -v hz="$(getconf CLK_TCK)" -v calls=$(( $(script_calls) - calls0 )) \
      '/ requests in / {n = $1} END {printf "  %-52s redis-server CPU %5.1f us/req, %.1f records a script call\n",
        "", ticks * 1e6 / hz / n, calls ? n / calls : 0}' "$out"
  fi
  echo "$rps" >> "$work/$key.rps"
  # The next run of this side is sized by the fastest so far.
  printf -v "$rate_var" '%s' "$(python3 -c "import sys; print(int(max(float(sys.argv[1]), float(sys.argv[2]))))" "${!rate_var}" "$rps")"
}
# The two take turns to go first (the peer in odd rounds, the bridge in even ones), so neither
# always runs in what the other left behind (page cache, the host's other load).
run_peer() { run peer "round $round  bench-peer /dpop (jsonwebtoken ES256)" "$peer_url" "$peer_url"; }
run_bridge() { run bridge "round $round  bridge /api/me (DPoP, fresh proof)" "$public_url/api/me" "$bridge_url/api/me"; }
for round in $(seq "$ROUNDS"); do
  if (( round % 2 )); then run_peer; run_bridge; else run_bridge; run_peer; fi
  rss_note "after round $round"
done
ratio=$(python3 -c '
import statistics, sys
b = [float(x) for x in open(sys.argv[1])]; p = [float(x) for x in open(sys.argv[2])]
r = sorted(x / y for x, y in zip(b, p))
print("%.2f (rounds: %s)" % (statistics.median(r), ", ".join("%.2f" % x for x in r)))' \
  "$work/bridge.rps" "$work/peer.rps")
echo "RSS:"; printf '  %s\n' "${rss_log[@]}"
python3 -c "import sys; r = float(sys.argv[1].split()[0]); print(f'/api/me DPoP / axum+jsonwebtoken ES256: {sys.argv[1]}   target >= 1.0: {\"met\" if r >= 1.0 else \"NOT met\"}')" "$ratio"
