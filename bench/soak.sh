#!/usr/bin/env bash
# Soak of two bridge replicas sharing one store, with one replica killed and restarted half-way
# (issue 11, acceptance 4): for Redis, then PostgreSQL, each on a free loopback port in a
# temporary directory (started here, like tests/blackbox/support/stores.rs), two real
# `login-bridge` processes A and B on it (release build, JSON logs, metrics listener on), and the
# demo provider (tests/idp).
#
#   bench/soak.sh [requests=1000000]        (or SOAK_REQUESTS=...; the argument wins)
#
#   SOAK_STORES="redis postgres"   the stores to run, in this order
#   SOAK_CONNECTIONS=16            connections of each wrk
#   SOAK_RSS_EVERY=1               seconds between RSS samples (short runs: e.g. 0.2)
#   SOAK_LOGS=DIR                  keep the replicas' and the store's logs, wrk's outputs and the
#                                  RSS samples in DIR/<store>/ (no tokens or cookies among them)
#   BENCH_BRIDGE_BIN=/abs/path     a prebuilt bridge binary instead of `cargo build --release`
#
# Per store: 100 sessions signed in through the provider's login form (curl, alice), alternately
# at A and at B (each checked at the other replica), and 1 000 distinct bearer tokens signed with
# the provider's key (own jti each). Then one wrk per replica (-t1, bench/soak.lua) alternates
# GET /api/me with the tokens and GET /auth/session with the cookies, round robin.
# Request count: each wrk has a share (requests/2); its Lua script counts answers and stops the
# thread at the share, and the script then SIGINTs wrk (its main thread would otherwise sleep out
# -d, which is only a safety cap); so the total is the requested count, plus the few answers read
# in the same event-loop round. Rates come from the Lua clock (first request to last answer).
# Restart: when wrk-B has half of its share, B gets SIGKILL and is started again (same settings,
# same port); the restart window runs from the kill until B's /readyz answers 200 (polled every
# 50 ms). wrk-B keeps reconnecting meanwhile: its socket errors are expected and reported. The Lua
# script logs every non-2xx answer with its wall-clock time (ms), so B's are split into inside /
# outside the window (the new B answers /api/me 503 until its OIDC discovery is done: inside, as
# a load balancer routing by /readyz would not send it traffic yet). A must answer 2xx throughout.
# RSS (VmRSS of /proc/PID/status) of each replica is sampled every second (SOAK_RSS_EVERY)
# during the load, following B's new PID after the restart. Access tokens from the provider last
# 300 s, so runs longer than that also exercise refreshes across replicas.
#
# Pass conditions per store (exit 1 if one fails in any store):
#   - every answer of A is 2xx, and A shows no connect/read/write socket errors (timeouts, > 2 s,
#     are reported only);
#   - B: no non-2xx answer outside the restart window (4xx there would be a lost session);
#   - each wrk answered its share; B was ready again within 60 s;
#   - 0 sessions lost: after the load each of the 100 cookies gets 200 with an auth_token from
#     /auth/session at A and at B; 5 of the tokens still get 200 from /api/me at both;
#   - RSS flat: per process life sampled over at least 20 s (8 samples or more), the last sample
#     <= the peak of the first quarter of its samples (the warm-up: pools, caches, allocator
#     arenas) + max(2 MiB, 10 %). Shorter lives are "too short to judge" (a small run passes
#     without an RSS verdict). Target (c) of the issue, <= 25 MB, is printed beside it.
# Prints per store: requests, req/s, p99 of each wrk, 2xx/4xx/5xx, socket errors, restart window,
# sessions lost, RSS curves (10 evenly spaced samples, start/peak/end), and the phase durations.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
REQUESTS="${1:-${SOAK_REQUESTS:-1000000}}"
STORES="${SOAK_STORES:-redis postgres}"
CONNECTIONS="${SOAK_CONNECTIONS:-16}"
RSS_EVERY="${SOAK_RSS_EVERY:-1}"
SESSIONS=100; TOKENS=1000; READY_SECS=60
if ! [[ "$REQUESTS" =~ ^[0-9]+$ ]] || [ "$REQUESTS" -lt 1000 ]; then
  echo "usage: bench/soak.sh [requests>=1000]" >&2; exit 2
fi
for s in $STORES; do
  case $s in redis|postgres) ;; *) echo "soak: unknown store $s (redis, postgres)" >&2; exit 2 ;; esac
done
if ! command -v wrk >/dev/null || ! command -v redis-server >/dev/null \
  || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  scripts/install-deps.sh
fi
# shellcheck source=bench/lib.sh
. bench/lib.sh
build_bridge

# ---- processes: everything started here is killed by PID, nothing else
declare -A port mport   # replica -> public port, metrics port
wrk_pid=(); sampler=""; store_pid=""; store_kind=""; pg_dir=""
is_running() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }
# stop_pid SIGNAL PID: signal, wait up to 10 s, then SIGKILL; reaps it.
stop_pid() {
  local pid=$2
  [ -n "$pid" ] || return 0
  kill "-$1" "$pid" 2>/dev/null || return 0
  for _ in $(seq 200); do is_running "$pid" || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
replica_pid() { cat "$run/pid-$1" 2>/dev/null || true; }
stop_store_run() {
  local p
  for p in "${wrk_pid[@]}"; do stop_pid INT "$p"; done
  wrk_pid=()
  [ -z "$sampler" ] || { touch "$run/sampler.stop"; stop_pid TERM "$sampler"; sampler=""; }
  if [ -n "${run:-}" ]; then
    for r in A B; do stop_pid TERM "$(replica_pid "$r")"; rm -f "$run/pid-$r"; done
  fi
  stop_pid TERM "${idp:-}"; idp=""
  if [ -n "$store_pid" ]; then
    # PostgreSQL: SIGINT is the fast shutdown (SIGTERM waits for clients).
    if [ "$store_kind" = postgres ]; then stop_pid INT "$store_pid"; else stop_pid TERM "$store_pid"; fi
    store_pid=""
  fi
  [ -z "$pg_dir" ] || { rm -rf "$pg_dir"; pg_dir=""; }
}
trap 'stop_store_run; bench_cleanup' EXIT

now_ms() { local t=${EPOCHREALTIME/./}; echo $(( t / 1000 )); }
# secs_since MS: seconds elapsed since MS, one decimal.
secs_since() { local d=$(( $(now_ms) - $1 )); printf '%d.%d s' $((d / 1000)) $((d % 1000 / 100)); }
say() { printf '[soak %s +%s] %s\n' "$store" "$(secs_since "$store_t0")" "$*"; }
fail() { failures+=("$store: $*"); say "FAIL: $*"; }

# ---- the store
start_store() {
  local sp; sp=$(free_port)
  store_kind=$store; store_port=$sp
  case $store in
    redis)
      mkdir -p "$run/redis"
      redis-server --port "$sp" --bind 127.0.0.1 --dir "$run/redis" --save '' --appendonly yes \
        --appendfsync no --protected-mode no > "$run/redis.log" 2>&1 &
      store_pid=$!
      until redis-cli -h 127.0.0.1 -p "$sp" ping 2>/dev/null | grep -q PONG; do
        is_running "$store_pid" || { cat "$run/redis.log" >&2; return 1; }; sleep 0.05
      done
      store_url="redis://127.0.0.1:$sp/0" ;;
    postgres)
      local as_pg=()
      pg_bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
      # Outside $work (mode 0700, root's): initdb and postgres refuse root and run as `postgres`.
      pg_dir=$(mktemp -d)
      if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$pg_dir"
        as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
      fi
      (cd "$pg_dir" && "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U bridge --no-sync \
        --encoding UTF8) > "$run/initdb.log" 2>&1 || { cat "$run/initdb.log" >&2; return 1; }
      # Durability off as in the tests: the soak measures the bridge, not the disk.
      (cd "$pg_dir" && exec "${as_pg[@]}" "$pg_bin/postgres" -D "$pg_dir/data" -p "$sp" -k "$pg_dir" \
        -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off) \
        > "$run/postgres.log" 2>&1 &
      store_pid=$!
      until "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$sp"; do
        is_running "$store_pid" || { cat "$run/postgres.log" >&2; return 1; }; sleep 0.05
      done
      store_url="postgres://bridge@127.0.0.1:$sp/postgres" ;;
  esac
}

# store_size: Redis keys, or PostgreSQL sessions (tower_sessions.session rows).
store_size() {
  case $store in
    redis) redis-cli -h 127.0.0.1 -p "$store_port" dbsize ;;
    postgres) "$pg_bin/psql" -h 127.0.0.1 -p "$store_port" -U bridge -d postgres -Atc \
      'select count(*) from tower_sessions.session' ;;
  esac 2>/dev/null || echo "?"
}

# ---- the replicas: the same settings but for their own address
start_replica() {
  local r=$1
  env "${replica_env[@]}" BRIDGE_LISTEN="127.0.0.1:${port[$r]}" BRIDGE_PUBLIC_URL="http://localhost:${port[$r]}" \
    BRIDGE_METRICS__LISTEN="127.0.0.1:${mport[$r]}" "$bridge_bin" >> "$run/replica-$r.log" 2>&1 &
  echo $! > "$run/pid-$r"
}
# wait_ready R: polls /readyz every 50 ms (up to READY_SECS) while answering finished wrks.
wait_ready() {
  local r=$1 deadline=$(( $(now_ms) + READY_SECS * 1000 ))
  until curl -fs -m 1 -o /dev/null "http://127.0.0.1:${port[$r]}/readyz"; do
    is_running "$(replica_pid "$r")" || { say "replica $r exited:"; tail -5 "$run/replica-$r.log" >&2; return 1; }
    [ "$(now_ms)" -lt "$deadline" ] || { say "replica $r not ready after ${READY_SECS}s"; return 1; }
    interrupt_finished_wrk; sleep 0.05
  done
}

# session_status COOKIE PORT: /auth/session's status, "200-without-token" if no auth_token.
session_status() {
  local code
  code=$(curl -s -m 10 -o "$run/session.json" -w '%{http_code}' -H "Cookie: $1" -H 'x-login-bridge: 1' \
    "http://127.0.0.1:$2/auth/session") || code=000
  if [ "$code" = 200 ] && ! grep -q '"auth_token":"' "$run/session.json"; then code=200-without-token; fi
  echo "$code"
}
api_status() {
  local code
  code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "http://127.0.0.1:$2/api/me") \
    || code=000
  echo "$code"
}

# ---- the load
# A wrk whose Lua thread answered its share sleeps until -d ends: SIGINT ends it (it reports).
declare -A wrk_of interrupted
interrupt_finished_wrk() {
  local r
  for r in A B; do
    if [ -n "${wrk_of[$r]:-}" ] && [ -e "$run/done-$r" ] && [ -z "${interrupted[$r]:-}" ]; then
      kill -INT "${wrk_of[$r]}" 2>/dev/null || true; interrupted[$r]=1
    fi
  done
}
rss_sampler() {
  local r pid kb
  until [ -e "$run/sampler.stop" ]; do
    for r in A B; do
      pid=$(replica_pid "$r")
      kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      [ -z "$kb" ] || echo "$(now_ms) $pid $kb" >> "$run/rss-$r"
    done
    sleep "$RSS_EVERY"
  done
}
wrk_val() { awk -v k="soak-$2" '$1 == k {print $2; exit}' "$run/wrk-$1.out"; }

# metrics_line R: a few counters of R's /metrics (B's count since its restart; 5xx by route class:
# `health` are /readyz's 503 while a replica starts).
metrics_line() {
  curl -s -m 5 "http://127.0.0.1:${mport[$1]}/metrics" | awk '
    /^login_bridge_http_requests_total/ && /status="5xx"/ {
      match($0, /class="[a-z]*"/); c = substr($0, RSTART + 7, RLENGTH - 8); s5[c] += $NF; n5 += $NF}
    /^login_bridge_store_errors_total/ {se += $NF}
    /^login_bridge_refreshes_started_total/ {rs += $NF}
    /^login_bridge_refreshes_failed_total/ {rf += $NF}
    /^login_bridge_sessions_ended_total/ {ee += $NF}
    END {for (c in s5) if (s5[c] > 0) by = by sprintf(" %s %d", c, s5[c])
      printf "5xx %d%s, store errors %d, refreshes started %d failed %d, sessions ended %d", n5,
        (by ? " (" substr(by, 2) ")" : ""), se, rs, rf, ee}'
}
# log_summary R: WARN/ERROR lines of R's log (JSON; B's covers both its lives), by message and
# reason, at most 8 kinds (no token reaches a log line; the store's URL is not in this soak's).
log_summary() {
  python3 - "$run/replica-$1.log" <<'PY'
import collections, json, sys
kinds = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    try:
        o = json.loads(line)
    except ValueError:
        kinds["(not JSON) " + line.strip()[:120]] += 1
        continue
    if o.get("level") in ("WARN", "ERROR"):
        f = o.get("fields", {})
        reason = f" ({str(f['reason'])[:100]})" if "reason" in f else ""
        kinds[o["level"] + " " + str(f.get("message", ""))[:120] + reason] += 1
print(sum(kinds.values()), "warn/error lines" + "".join(f"\n    {n} x {k}" for k, n in kinds.most_common(8)))
PY
}

# rss_report R: the curve of each process life of R (MB = 10^6 bytes), and the verdict (exit 1:
# not flat).
rss_report() {
  python3 - "$run/rss-$1" "$1" <<'PY'
import os, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()] if os.path.exists(sys.argv[1]) else []
lives = []
for ms, pid, kb in rows:
    if not lives or lives[-1][0] != pid:
        lives.append((pid, [], []))
    lives[-1][1].append(kb)
    lives[-1][2].append(ms)
mb = lambda kb: f"{kb * 1024 / 1e6:.1f}"
flat = True
for n, (pid, v, t) in enumerate(lives, 1):
    picks = [v[round(i * (len(v) - 1) / 9)] for i in range(10)] if len(v) >= 10 else v
    life = f"life {n}" if len(lives) > 1 else "      "
    span = (t[-1] - t[0]) / 1000
    head = f"RSS {sys.argv[2]} {life} (MB, {len(v)} in {span:.0f} s)"
    verdict = "too short to judge (< 20 s)"
    if span >= 20 and len(v) >= 8:
        q = max(v[: max(1, len(v) // 4)])
        limit = q + max(2048, q // 10)
        ok = v[-1] <= limit
        flat &= ok
        verdict = f"{'flat' if ok else 'NOT flat'} (end {mb(v[-1])} vs first-quarter peak {mb(q)} + margin = {mb(limit)})"
    print(f"  {head:<34} {' '.join(mb(k) for k in picks)}")
    print(f"  {'':<34} start {mb(v[0])} peak {mb(max(v))} end {mb(v[-1])}; {verdict}; "
          f"target (c) <= 25 MB: {'met' if max(v) * 1024 <= 25e6 else 'NOT met'}")
if not lives:
    print(f"  RSS {sys.argv[2]}: no samples"); flat = False
sys.exit(0 if flat else 1)
PY
}

# ---- one store
failures=()
soak_store() {
  store=$1; store_t0=$(now_ms)
  run="$work/$store"; mkdir -p "$run"
  local t r i share_A share_B max_secs
  start_store
  say "store $store ready in $(secs_since "$store_t0")"

  t=$(now_ms)
  port[A]=$(free_port); port[B]=$(free_port); mport[A]=$(free_port); mport[B]=$(free_port)
  start_provider "http://localhost:${port[A]}/auth/callback" "http://localhost:${port[B]}/auth/callback"
  replica_env=(BRIDGE_OIDC__ISSUER="$issuer" BRIDGE_OIDC__CLIENT_ID=login-bridge
    BRIDGE_OIDC__CLIENT_SECRET=demo-client-secret BRIDGE_OIDC__API_AUDIENCE=login-bridge-api
    BRIDGE_SESSION__STORE="$store" BRIDGE_SESSION__URL="$store_url" BRIDGE_LOG__FORMAT=json RUST_LOG=warn)
  start_replica A; start_replica B
  wait_ready A; wait_ready B
  say "provider and replicas A, B ready in $(secs_since "$t")"

  t=$(now_ms)
  : > "$run/cookies"
  for i in $(seq "$SESSIONS"); do
    r=A; [ $((i % 2)) = 0 ] && r=B
    sign_in "$run/jar$i" "${port[$r]}"
    jar_cookie "$run/jar$i" >> "$run/cookies"
  done
  # Shared from the start: each session answers at the replica it was not created at.
  i=0; local bad=0
  while read -r cookie; do
    i=$((i + 1)); r=B; [ $((i % 2)) = 0 ] && r=A
    [ "$(session_status "$cookie" "${port[$r]}")" = 200 ] || bad=$((bad + 1))
  done < "$run/cookies"
  [ "$bad" = 0 ] || { fail "$bad of $SESSIONS fresh sessions unknown at the other replica"; return 0; }
  provider_tokens "$TOKENS" > "$run/tokens"
  [ "$(sort -u "$run/tokens" | wc -l)" = "$TOKENS" ] || { fail "tokens not distinct"; return 0; }
  for r in A B; do
    [ "$(api_status "$(head -1 "$run/tokens")" "${port[$r]}")" = 200 ] || { fail "/api/me refused a token at $r"; return 0; }
  done
  say "$SESSIONS sign-ins (alternately at A and B, each checked at the other) and $TOKENS tokens in $(secs_since "$t")"
  local size_before; size_before=$(store_size)

  # ---- load
  share_A=$((REQUESTS / 2)); share_B=$((REQUESTS - share_A))
  max_secs=$((300 + REQUESTS / 200))
  rm -f "$run"/done-* "$run"/half-* "$run"/rss-* "$run/sampler.stop"
  wrk_of=(); interrupted=()
  rss_sampler & sampler=$!
  local load_t0; load_t0=$(now_ms)
  for r in A B; do
    local share=$share_A half=-
    [ "$r" = B ] && { share=$share_B; half="$run/half-B"; }
    wrk -t1 -c"$CONNECTIONS" -d"${max_secs}s" --latency -s bench/soak.lua "http://127.0.0.1:${port[$r]}" \
      -- "$run/tokens" "$run/cookies" "$share" "$half" "$run/done-$r" > "$run/wrk-$r.out" 2>&1 &
    wrk_of[$r]=$!; wrk_pid+=("$!")
  done
  say "load: $REQUESTS requests (A $share_A, B $share_B), wrk -t1 -c$CONNECTIONS per replica"
  while [ ! -e "$run/half-B" ] && is_running "${wrk_of[B]}"; do interrupt_finished_wrk; sleep 0.05; done
  local kill_ms="" ready_ms=""
  if [ -e "$run/half-B" ]; then
    kill_ms=$(now_ms)
    kill -KILL "$(replica_pid B)"; wait "$(replica_pid B)" 2>/dev/null || true
    say "half-way (B answered $((share_B / 2))): SIGKILL to replica B at +$(secs_since "$load_t0") of the load"
    start_replica B
    if wait_ready B; then
      ready_ms=$(now_ms)
      say "replica B ready again after $((ready_ms - kill_ms)) ms (new pid)"
    else
      fail "replica B did not come back"
    fi
  else
    fail "wrk-B ended before half-way"
  fi
  for r in A B; do
    while is_running "${wrk_of[$r]}"; do interrupt_finished_wrk; sleep 0.05; done
    wait "${wrk_of[$r]}" || true
  done
  wrk_pid=()
  local load_ms=$(( $(now_ms) - load_t0 ))
  touch "$run/sampler.stop"; stop_pid TERM "$sampler"; sampler=""
  say "load done in $(secs_since "$load_t0")"

  # ---- after the load: sessions and tokens
  t=$(now_ms)
  local lost=0 codes="" code_a code_b
  while read -r cookie; do
    code_a=$(session_status "$cookie" "${port[A]}"); code_b=$(session_status "$cookie" "${port[B]}")
    if [ "$code_a" != 200 ] || [ "$code_b" != 200 ]; then lost=$((lost + 1)); codes+="A:$code_a/B:$code_b "; fi
  done < "$run/cookies"
  local tokens_ok=0
  while read -r token; do
    for r in A B; do [ "$(api_status "$token" "${port[$r]}")" = 200 ] && tokens_ok=$((tokens_ok + 1)); done
  done < <(head -5 "$run/tokens")
  say "sessions and tokens checked in $(secs_since "$t")"
  local size_after; size_after=$(store_size)

  # ---- figures
  local ans2=0 ans4=0 ans5=0 ansx=0 rate_sum=0 total=0
  for r in A B; do
    if [ -z "$(wrk_val "$r" answers)" ]; then fail "wrk-$r printed no figures"; cat "$run/wrk-$r.out" >&2; return 0; fi
    total=$((total + $(wrk_val "$r" answers)))
    ans2=$((ans2 + $(wrk_val "$r" 2xx))); ans4=$((ans4 + $(wrk_val "$r" 4xx)))
    ans5=$((ans5 + $(wrk_val "$r" 5xx))); ansx=$((ansx + $(wrk_val "$r" 3xx) + $(wrk_val "$r" other)))
    [ "$(wrk_val "$r" finished)" = true ] || fail "wrk-$r did not answer its share within ${max_secs}s"
  done
  rate_sum=$(awk -v a="$(wrk_val A rate)" -v b="$(wrk_val B rate)" 'BEGIN {printf "%.0f", a + b}')
  # B's non-2xx inside / outside [kill, ready] (whole seconds if wrk's Lua had no ffi clock);
  # events beyond the Lua script's cap count as outside.
  local window
  window=$(awk -v k="${kill_ms:-0}" -v e="${ready_ms:-0}" -v clock="$(wrk_val B clock)" \
    -v dropped="$(wrk_val B events-dropped)" '
    BEGIN { if (clock == "s") k = k - k % 1000 }
    $1 == "soak-event" { c = ($3 >= 500 && $3 < 600) ? "5xx" : ($3 >= 400 && $3 < 500) ? "4xx" : "other"
      if (e > 0 && $2 >= k && $2 <= e) { inside[c]++; code["in " $3]++ } else { outside[c]++; code["out " $3]++ } }
    END { for (x in code) { split(x, w, " "); list[w[1]] = list[w[1]] (list[w[1]] ? "," : "") w[2] "x" code[x] }
      printf "%d %d %d %d %d %d %s %s", inside["4xx"], inside["5xx"], inside["other"],
      outside["4xx"], outside["5xx"], outside["other"] + dropped, list["in"] ? list["in"] : "-", list["out"] ? list["out"] : "-" }' "$run/wrk-B.out")
  local in4 in5 inx out4 out5 outx in_codes out_codes
  read -r in4 in5 inx out4 out5 outx in_codes out_codes <<< "$window"
  local a_non2xx=$(( $(wrk_val A answers) - $(wrk_val A 2xx) ))
  [ "$a_non2xx" = 0 ] || fail "$a_non2xx non-2xx answers at A"
  [ $((out4 + out5 + outx)) = 0 ] || fail "B: non-2xx outside the restart window (4xx $out4, 5xx $out5, other $outx)"
  local sock_a
  sock_a=$(awk '$1 == "soak-socket-errors" {print $3 + $5 + $7}' "$run/wrk-A.out")
  [ "$sock_a" = 0 ] || fail "$sock_a connect/read/write socket errors at A"
  [ "$lost" = 0 ] || fail "$lost sessions lost ($codes)"
  [ "$tokens_ok" = 10 ] || fail "only $tokens_ok of 10 token checks answered 200 after the load"

  echo
  echo "==== $store: 2 replicas, wrk -t1 -c$CONNECTIONS each, $SESSIONS sessions, $TOKENS tokens, $(nproc) cores"
  printf '  requests       %d answered (A %d, B %d) in %.1f s: %.0f req/s overall, sum of the wrk rates %s req/s (A %s, B %s)\n' \
    "$total" "$(wrk_val A answers)" "$(wrk_val B answers)" "$(awk -v m="$load_ms" 'BEGIN {print m / 1000}')" \
    "$(awk -v n="$total" -v m="$load_ms" 'BEGIN {print n * 1000 / m}')" "$rate_sum" "$(wrk_val A rate)" "$(wrk_val B rate)"
  printf '  p99            A %s ms, B %s ms\n' "$(wrk_val A p99-ms)" "$(wrk_val B p99-ms)"
  printf '  answers        2xx %d, 4xx %d, 5xx %d, other %d (A: 4xx %d, 5xx %d; B: 4xx %d, 5xx %d)\n' \
    "$ans2" "$ans4" "$ans5" "$ansx" "$(wrk_val A 4xx)" "$(wrk_val A 5xx)" "$(wrk_val B 4xx)" "$(wrk_val B 5xx)"
  printf '  B non-2xx      inside the restart window: 4xx %d, 5xx %d, other %d (status x count: %s); outside: 4xx %d, 5xx %d, other %d (%s)\n' \
    "$in4" "$in5" "$inx" "$in_codes" "$out4" "$out5" "$outx" "$out_codes"
  # When each of them came (the first 5), against the load's start, the kill and B's readiness.
  awk -v t0="$load_t0" -v k="${kill_ms:-0}" -v e="${ready_ms:-0}" '
    $1 == "soak-event" && !(e > 0 && $2 >= k && $2 <= e) && n++ < 5 {
      printf "    outside: %s at +%.2f s of the load (kill +%.2f s, ready +%.2f s)\n", $3, ($2 - t0) / 1000,
        (k - t0) / 1000, (e - t0) / 1000 }' "$run/wrk-B.out"
  printf '  socket errors  A: %s; B: %s\n' "$(awk '$1 == "soak-socket-errors" {$1 = ""; print substr($0, 2)}' "$run/wrk-A.out")" \
    "$(awk '$1 == "soak-socket-errors" {$1 = ""; print substr($0, 2)}' "$run/wrk-B.out")"
  if [ -n "$ready_ms" ]; then
    printf '  restart        B SIGKILLed at +%.1f s of the load, /readyz 200 again %d ms later\n' \
      "$(awk -v m="$((kill_ms - load_t0))" 'BEGIN {print m / 1000}')" "$((ready_ms - kill_ms))"
  fi
  printf '  sessions lost  %d of %d (each checked at A and at B after the load); tokens %d/10 checks 200\n' \
    "$lost" "$SESSIONS" "$tokens_ok"
  printf '  store          %s %s before the load, %s after\n' "$size_before" \
    "$([ "$store" = redis ] && echo keys || echo sessions)" "$size_after"
  for r in A B; do
    rss_report "$r" || fail "RSS of $r not flat"
  done
  for r in A B; do
    printf '  metrics %s      %s\n' "$r" "$(metrics_line "$r")"
  done
  for r in A B; do
    printf '  log %s          %s\n' "$r" "$(log_summary "$r")"
  done
  echo
  if [ -n "${SOAK_LOGS:-}" ]; then
    mkdir -p "$SOAK_LOGS/$store"
    cp "$run"/*.log "$run"/wrk-*.out "$run"/rss-* "$SOAK_LOGS/$store/" 2>/dev/null || true
  fi
  stop_store_run
}

echo "soak: $REQUESTS requests per store ($STORES), bridge $bridge_bin, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for store in $STORES; do
  soak_store "$store"
  stop_store_run
done
if [ ${#failures[@]} -gt 0 ]; then
  printf 'soak: FAILED\n'; printf '  %s\n' "${failures[@]}"; exit 1
fi
echo "soak: passed (0 non-2xx at A, 0 non-2xx at B outside the restart window, 0 sessions lost, RSS flat or too short to judge)"
