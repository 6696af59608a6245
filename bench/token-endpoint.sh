#!/usr/bin/env bash
# Tokens per second from the bridge's POST /oauth/token (RFC 7523 jwt-bearer grant, one ES256
# and one RS256 service user) against npm oidc-provider (tests/idp) answering the closest grant
# it has, client_credentials with private_key_jwt, same key types; then the latency of minting
# a token-profile token at GET /auth/session. wrk (Debian) on loopback, release build, same run.
#
#   bench/token-endpoint.sh [duration_secs=10] [connections=16] [threads=2] [sessions=40]
#
# Every request carries a fresh assertion (own jti: both sides refuse replays): they are signed
# beforehand by bench/make-assertions.mjs and handed out once each by bench/once-each.lua.
# A 2 s warm-up per target measures the rate that sizes the main run's supply (rate x duration
# x 3: the threads do not share a supply, node warms up). Prints tokens/s, p99, the non-2xx count (must be 0) and the ratio bridge/oidc-provider
# per algorithm (targets: ES256 >= 5000 tokens/s and >= 3x oidc-provider).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"; CONNECTIONS="${2:-16}"; THREADS="${3:-2}"; SESSIONS="${4:-40}"
WARMUP_SECS=2; WARMUP_BODIES=12000
command -v wrk >/dev/null || scripts/install-deps.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap 'kill "${idp_bench:-}" 2>/dev/null || true; bench_cleanup' EXIT

# The bridge as an issuer: [authority] with its key-encryption key, and a token profile that
# /auth/session mints for signed-in users.
(umask 077; openssl rand -base64 32 > "$work/kek")
cat > "$work/bridge.toml" <<EOF
[authority]
key_encryption_key_file = "$work/kek"

[session]
token_profile = "bench"

[[token_profiles]]
name = "bench"
audience = ["bench-api"]
claims = { username = "{username}", groups = "{groups}" }
EOF
start_provider_and_bridge --config "$work/bridge.toml"
bridge_url="http://127.0.0.1:$bridge_port"
bridge_issuer=$(curl -fs "$bridge_url/.well-known/openid-configuration" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["issuer"])')
for alg in ES256 RS256; do
  bridge_cli --config "$work/bridge.toml" service-user create "bench-$alg" --alg "$alg" \
    --out "$work/$alg.json" > /dev/null
done

# oidc-provider with client bench-client holding both public keys.
node bench/make-assertions.mjs --key "$work/ES256.json,$work/RS256.json" --jwks "$work/bench.jwks"
node tests/idp/server.js --port 0 --bench-client-jwks "$work/bench.jwks" \
  < /dev/null > "$work/idp-bench.out" 2>/dev/null &
idp_bench=$!
for _ in $(seq 100); do grep -q LISTENING "$work/idp-bench.out" 2>/dev/null && break; sleep 0.1; done
oidc_issuer=$(sed -n 's/^LISTENING //p' "$work/idp-bench.out")

# make_bodies KEY TARGET COUNT OUT: COUNT request bodies for TARGET (bridge | oidc).
make_bodies() {
  local aud=$bridge_issuer
  [ "$2" = oidc ] && aud="$oidc_issuer/token"
  node bench/make-assertions.mjs --key "$work/$1.json" --mode "$2" --aud "$aud" --count "$3" --out "$4"
}
token_url() { if [ "$1" = oidc ]; then echo "$oidc_issuer/token"; else echo "$bridge_url/oauth/token"; fi; }

# One request by hand first: a broken set-up shows its error body instead of a wrk count.
for alg in ES256 RS256; do
  for target in bridge oidc; do
    make_bodies "$alg" "$target" 1 "$work/one.txt"
    answer=$(curl -s -w '\n%{http_code}' --data-binary "$(cat "$work/one.txt")" "$(token_url "$target")")
    [ "${answer##*$'\n'}" = 200 ] || { echo "bench: $target $alg token request: $answer" >&2; exit 1; }
  done
done

# wrk_bodies BODIES SECONDS URL OUT: drives URL with the bodies; fails on exhausted supply.
wrk_bodies() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${2}s" --latency -s bench/once-each.lua "$3" \
    -- "$1" "$THREADS" > "$4"
}

# measure ALG TARGET: sizes and runs the main run, prints a line, stores the rate.
measure() {
  local alg=$1 target=$2 url rate need out=$work/$1-$2.txt
  url=$(token_url "$target")
  make_bodies "$alg" "$target" "$WARMUP_BODIES" "$work/warm.txt"
  wrk_bodies "$work/warm.txt" "$WARMUP_SECS" "$url" "$work/warm.out"
  rate=$(awk '/^Used:/ {print $2}' "$work/warm.out")
  # An exhausted warm-up only says the rate is above its supply.
  grep -q EXHAUSTED "$work/warm.out" && rate=$((rate * 2))
  need=$(( rate * 3 * DURATION / WARMUP_SECS + 5000 ))
  make_bodies "$alg" "$target" "$need" "$work/main.txt"
  wrk_bodies "$work/main.txt" "$DURATION" "$url" "$out"
  if grep -q EXHAUSTED "$out"; then echo "bench: $target $alg ran out of assertions ($need)" >&2; cat "$out" >&2; exit 1; fi
  local rps p50 p99 non2xx errors
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  p50=$(awk '$1=="50%" {print $2}' "$out")
  p99=$(awk '$1=="99%" {print $2}' "$out")
  non2xx=$(awk -F': *' '/Non-2xx/ {print $2}' "$out"); non2xx=${non2xx:-0}
  errors=$(awk '/Socket errors/ {print}' "$out")
  printf '%-14s %-6s %10s tokens/s   p50 %-9s p99 %-9s non-2xx %s %s\n' \
    "$target" "$alg" "$rps" "$p50" "$p99" "$non2xx" "$errors"
  if [ "$non2xx" != 0 ]; then echo "bench: $target $alg had $non2xx non-2xx answers" >&2; cat "$out" >&2; exit 1; fi
  echo "$rps" > "$work/$alg-$target.rps"
}

ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on $(nproc) cores, release build; each request a fresh assertion"
echo "bridge: POST /oauth/token jwt-bearer grant; oidc: oidc-provider $(node -p 'require("./tests/idp/node_modules/oidc-provider/package.json").version') client_credentials + private_key_jwt (both mint ES256 JWTs)"
for alg in ES256 RS256; do
  measure "$alg" bridge
  measure "$alg" oidc
done
for alg in ES256 RS256; do
  echo "ratio bridge/oidc-provider $alg: $(ratio "$(cat "$work/$alg-bridge.rps")" "$(cat "$work/$alg-oidc.rps")")"
done
es=$(cat "$work/ES256-bridge.rps")
es_ratio=$(ratio "$es" "$(cat "$work/ES256-oidc.rps")")
python3 -c "import sys; r, q = float(sys.argv[1]), float(sys.argv[2]); print('target ES256 >= 5000 tokens/s and >= 3x oidc-provider:', 'met' if r >= 5000 and q >= 3 else 'NOT met')" "$es" "$es_ratio"

# ---- minting at /auth/session under session.token_profile
# server_ms JAR: GET /auth/session, time from request sent to first byte (ms); the body must hold
# the profile's token.
server_ms() {
  local out
  out=$(curl -s -b "$1" --resolve "localhost:$bridge_port:127.0.0.1" -H 'x-login-bridge: 1' \
    -o "$work/session.json" -w '%{http_code} %{time_pretransfer} %{time_starttransfer}' \
    "http://localhost:$bridge_port/auth/session")
  python3 - "$out" "$work/session.json" <<'PY'
import json, sys
code, pre, first = sys.argv[1].split()
body = json.load(open(sys.argv[2]))
if code != "200" or not body.get("auth_token"):
    sys.exit(f"bench: /auth/session answered {code}: {body}")
print(f"{(float(first) - float(pre)) * 1000:.3f}")
PY
}
: > "$work/mint.ms"; : > "$work/reuse.ms"
for i in $(seq "$SESSIONS"); do
  sign_in "$work/jar$i"
  server_ms "$work/jar$i" >> "$work/mint.ms"
  server_ms "$work/jar$i" >> "$work/reuse.ms"
done
pct() { sort -n "$1" | python3 -c "import sys, math; v = [float(x) for x in sys.stdin]; print(' '.join(f'p{p} {v[min(len(v)-1, math.ceil(p / 100 * len(v)) - 1)]:.2f} ms' for p in (50, 99)) + f'  (n={len(v)}, max {v[-1]:.2f} ms)')"; }
echo "GET /auth/session, first call of a fresh session (mints, stores): $(pct "$work/mint.ms")"
echo "GET /auth/session, second call (reuses the session's token):      $(pct "$work/reuse.ms")"
cookie=$(jar_cookie "$work/jar$SESSIONS")
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Cookie: $cookie" -H 'x-login-bridge: 1' \
  "$bridge_url/auth/session" > "$work/reuse.out"
non2xx=$(awk -F': *' '/Non-2xx/ {print $2}' "$work/reuse.out")
printf 'wrk GET /auth/session (reuse) %10s req/s   p50 %-9s p99 %-9s non-2xx %s\n' \
  "$(awk '/^Requests\/sec/ {print $2}' "$work/reuse.out")" "$(awk '$1=="50%" {print $2}' "$work/reuse.out")" \
  "$(awk '$1=="99%" {print $2}' "$work/reuse.out")" "${non2xx:-0}"
