# shellcheck shell=bash
# Shared set-up of the bench scripts (sourced, not run): a work directory cleaned on exit, the
# demo provider on a free port for discovery, the release bridge in front of it, and a token
# signed with the provider's key. Run from the checkout's root.

export PATH="$HOME/.cargo/bin:$PATH"
work=$(mktemp -d)
bench_cleanup() { kill "${bridge:-}" "${idp:-}" 2>/dev/null || true; rm -rf "$work"; }
trap bench_cleanup EXIT

# A free TCP port on 127.0.0.1 (bound, read, released).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Sets $bridge_bin: $BENCH_BRIDGE_BIN when set (a prebuilt release binary, absolute path; nothing
# is built), else this checkout's release build (built here, in $CARGO_TARGET_DIR when set). Not
# BRIDGE_*: the bridge reads every BRIDGE_ variable as a setting and refuses unknown ones.
build_bridge() {
  if [ -n "${BENCH_BRIDGE_BIN:-}" ]; then
    [ -x "$BENCH_BRIDGE_BIN" ] || { echo "bench: BENCH_BRIDGE_BIN=$BENCH_BRIDGE_BIN is not executable" >&2; return 1; }
    bridge_bin=$BENCH_BRIDGE_BIN
  else
    cargo build --release -q -p login-bridge
    bridge_bin=${CARGO_TARGET_DIR:-target}/release/login-bridge
  fi
}

# start_provider REDIRECT_URI...: the demo provider on a free port, the bridge's callback URIs
# registered. Sets $idp (its pid) and $issuer; returns once it listens.
start_provider() {
  [ -d tests/idp/node_modules/oidc-provider ] || scripts/install-deps.sh
  local args=() uri
  for uri in "$@"; do args+=(--redirect-uri "$uri"); done
  # BENCH_IDP_HOST: the provider's host (its issuer's), 127.0.0.1 unless set; `localhost`
  # puts it on the bridge's site, as a provider at login.example.org is to app.example.org.
  node tests/idp/server.js --host "${BENCH_IDP_HOST:-127.0.0.1}" --port 0 "${args[@]}" \
    < /dev/null > "$work/idp.out" 2>/dev/null &
  idp=$!
  for _ in $(seq 100); do grep -q LISTENING "$work/idp.out" 2>/dev/null && break; sleep 0.1; done
  issuer=$(sed -n 's/^LISTENING //p' "$work/idp.out")
  [ -n "$issuer" ] || { echo "bench: the demo provider did not start" >&2; return 1; }
}

# Starts the demo provider and the bridge (release build, sessions in $work); extra arguments
# go to the bridge, and $BENCH_WRAPPER (e.g. valgrind) runs in front of it (not BRIDGE_*: the
# bridge reads every BRIDGE_ variable as a setting and refuses unknown ones). Sets $bridge_port,
# $issuer, $idp, $bridge, $bridge_bin and $bridge_env (the BRIDGE_* settings), and returns once
# the bridge is ready.
start_provider_and_bridge() {
  build_bridge
  bridge_port=$(free_port)
  start_provider "http://localhost:$bridge_port/auth/callback"
  bridge_env=(BRIDGE_LISTEN="127.0.0.1:$bridge_port" BRIDGE_PUBLIC_URL="http://localhost:$bridge_port"
    BRIDGE_OIDC__ISSUER="$issuer" BRIDGE_OIDC__CLIENT_ID=login-bridge
    BRIDGE_OIDC__CLIENT_SECRET=demo-client-secret BRIDGE_OIDC__API_AUDIENCE=login-bridge-api
    BRIDGE_SESSION__SQLITE_PATH="$work/sessions.sqlite" RUST_LOG="${BENCH_LOG:-warn}")
  # shellcheck disable=SC2086 # the wrapper is a command line
  env "${bridge_env[@]}" ${BENCH_WRAPPER:-} "$bridge_bin" "$@" 2>/dev/null &
  bridge=$!
  # Up to two minutes: under valgrind start-up and discovery are slow.
  for _ in $(seq 1200); do
    curl -fs "http://127.0.0.1:$bridge_port/readyz" >/dev/null 2>&1 && return 0; sleep 0.1
  done
  echo "bench: the bridge did not become ready" >&2; return 1
}

# Runs the bridge's command line with the settings of the server start_provider_and_bridge
# started ($bridge_env; pass its --config too), e.g. `bridge_cli service-user create ...`.
bridge_cli() { env "${bridge_env[@]}" "$bridge_bin" "$@"; }

# An RS256 access token for alice, signed with the demo provider's key, valid for two hours.
provider_token() { provider_tokens 1; }

# provider_tokens COUNT: COUNT such tokens, one a line, each with its own jti (all distinct);
# signed on every core by bench/make-access-tokens.mjs.
provider_tokens() {
  node bench/make-access-tokens.mjs --issuer "$issuer" --count "$1" --out /dev/stdout
}

# sign_in JAR [PORT]: alice through the demo provider's login form at the bridge on PORT (default
# $bridge_port, its public URL http://localhost:PORT); the bridge's cookie ends in JAR.
sign_in() {
  local jar=$1 port=${2:-$bridge_port} authorize page action
  local c=(curl -s -c "$jar" -b "$jar" --resolve "localhost:$port:127.0.0.1")
  authorize=$("${c[@]}" -o /dev/null -w '%{redirect_url}' "http://localhost:$port/auth/login?return_to=/")
  page=$("${c[@]}" -L --max-redirs 5 -w '\n%{url_effective}' "$authorize")
  action=$(sed -n 's/.*<form method="post" action="\([^"]*\)".*/\1/p' <<< "$page" | head -1)
  [ -n "$action" ] || { echo "bench: no login form at ${page##*$'\n'}" >&2; return 1; }
  "${c[@]}" -o /dev/null -L --max-redirs 10 -d username=alice -d password=wonderland "$issuer$action"
}

# jar_cookie JAR: the Cookie header value of the bridge's cookies (host localhost) in JAR.
jar_cookie() {
  awk '$1 ~ /localhost$/ && NF >= 7 {c = c (c ? "; " : "") $6 "=" $7} END {print c}' "$1"
}

# start_hot_path TOKENS: the set-up of bench/hot-path.sh and bench/instructions-per-request.sh.
# The bridge as start_provider_and_bridge starts it, with everything on ([metrics] on its own
# listener, JSON logs at info, the default level); TOKENS distinct RS256 access tokens in
# $work/tokens.txt ($token: the first); bench-peer beside it ($BENCH_PEER_BIN when set, else
# this checkout's release build), with $BENCH_WRAPPER in front of both. Sets $metrics_port,
# $bridge_url, $token, $peer (its pid), $peer_url; fails if any of them does not answer 200.
start_hot_path() {
  local tokens=$1 peer_bin url status
  if [ -n "${BENCH_PEER_BIN:-}" ]; then peer_bin=$BENCH_PEER_BIN; else
    cargo build --release -q -p bench-peer; peer_bin=${CARGO_TARGET_DIR:-target}/release/bench-peer
  fi
  metrics_port=$(free_port)
  printf '[metrics]\nlisten = "127.0.0.1:%s"\n\n[log]\nformat = "json"\n' "$metrics_port" \
    > "$work/bridge.toml"
  BENCH_LOG=info start_provider_and_bridge --config "$work/bridge.toml"
  bridge_url="http://127.0.0.1:$bridge_port"
  node bench/make-access-tokens.mjs --issuer "$issuer" --count "$tokens" --out "$work/tokens.txt" \
    --public-key "$work/idp.pub.pem" >/dev/null
  token=$(head -1 "$work/tokens.txt")
  # shellcheck disable=SC2086 # the wrapper is a command line
  ${BENCH_WRAPPER:-} "$peer_bin" --listen 127.0.0.1:0 --public-key "$work/idp.pub.pem" \
    --issuer "$issuer" --audience login-bridge-api > "$work/peer.out" 2>/dev/null &
  # shellcheck disable=SC2034 # the sourcing script stops it
  peer=$!
  # Up to a minute: under valgrind start-up is slow.
  for _ in $(seq 600); do grep -q LISTENING "$work/peer.out" 2>/dev/null && break; sleep 0.1; done
  peer_url="http://$(sed -n 's/^LISTENING //p' "$work/peer.out")"
  # One request by hand first: a broken set-up shows its status instead of a wrk count.
  for url in "$bridge_url/api/me" "$peer_url/verify" "$peer_url/plain"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$url")
    [ "$status" = 200 ] || { echo "bench: $url answered $status, not 200" >&2; return 1; }
  done
}

# start_dpop STORE: the bridge of bench/dpop.sh (and of bench/instructions-per-request.sh
# --dpop), started as start_provider_and_bridge starts it ($BENCH_WRAPPER in front): [metrics]
# on its own listener and JSON logs at info, an [authority], session.token_profile = "spa" and
# session.dpop = "required"; the replay records (and the sessions) in STORE: sqlite, or redis
# (a redis-server started here: $redis, its pid; $redis_port). Sets $metrics_port,
# $bridge_url and $public_url (http://localhost:PORT, the bridge's public URL).
start_dpop() {
  local store_toml=""
  if [ "$1" = redis ]; then
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
      --protected-mode no > "$work/redis.log" 2>&1 &
    redis=$!
    until redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG; do
      kill -0 "$redis" 2>/dev/null || { cat "$work/redis.log" >&2; return 1; }; sleep 0.05
    done
    store_toml=$(printf 'store = "redis"\nurl = "redis://127.0.0.1:%s/0"' "$redis_port")
  fi
  (umask 077; openssl rand -base64 32 > "$work/kek")
  metrics_port=$(free_port)
  cat > "$work/bridge.toml" <<TOML
[metrics]
listen = "127.0.0.1:$metrics_port"

[log]
format = "json"

[authority]
key_encryption_key_file = "$work/kek"

[session]
token_profile = "spa"
dpop = "required"
$store_toml

# An hour: the token is bound once and sent on every request; a soak outlives the default
# 300 s (its requests then failed as invalid_token).
[[token_profiles]]
name = "spa"
lifetime_secs = 3600
claims = { preferred_username = "{username}", roles = "{roles}", groups = "{groups}" }
TOML
  BENCH_LOG=info start_provider_and_bridge --config "$work/bridge.toml"
  bridge_url="http://127.0.0.1:$bridge_port"
  public_url="http://localhost:$bridge_port"
}

# proofs HTU COUNT OUT [TOKEN_FILE]: COUNT fresh GET proofs for HTU, signed with the key
# bind_dpop made ($work/dpop.pem).
proofs() {
  node bench/make-dpop-proofs.mjs --key "$work/dpop.pem" --htm GET --htu "$1" --count "$2" \
    --out "$3" ${4:+--token-file "$4"}
}

# status URL PROOF_FILE: the status of GET URL with the token ($work/token.txt) as DPoP and the proof.
status() {
  curl -s -o /dev/null -w '%{http_code}' -H "Authorization: DPoP $(cat "$work/token.txt")" \
    -H "DPoP: $(cat "$2")" "$1"
}

# bind_dpop: after start_dpop, alice signs in through the demo provider's login form (curl);
# one P-256 key (bench/make-dpop-proofs.mjs --new-key: $work/dpop.pem, its public key
# $work/dpop.pub.pem) binds her session: /auth/session with a proof must answer token_type
# "DPoP" and a token whose cnf.jkt is that key's RFC 7638 thumbprint ($work/token.txt). Then,
# by hand: one /api/me with a proof answers 200, the same proof again 401 (a replay).
bind_dpop() {
  local jkt first again
  jkt=$(node bench/make-dpop-proofs.mjs --new-key "$work/dpop.pem" --public-key "$work/dpop.pub.pem")
  sign_in "$work/jar"
  proofs "$public_url/auth/session" 1 "$work/one.txt"
  curl -s --resolve "localhost:$bridge_port:127.0.0.1" -b "$work/jar" -H 'x-login-bridge: 1' \
    -H "DPoP: $(cat "$work/one.txt")" -o "$work/session.json" -w '%{http_code}' \
    "$public_url/auth/session" > "$work/session.code"
  # The bound token, checked: token_type DPoP, cnf.jkt = the key's thumbprint.
  python3 - "$work/session.json" "$(cat "$work/session.code")" "$jkt" "$work/token.txt" <<'PY'
import base64, json, sys
body, code, jkt, out = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
if code != "200" or body.get("token_type") != "DPoP":
    sys.exit(f"bench: /auth/session with a proof answered {code}, token_type {body.get('token_type')!r}: {body.get('error_description', '')}")
token = body["auth_token"]
payload = token.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
if claims.get("cnf", {}).get("jkt") != jkt:
    sys.exit(f"bench: the token's cnf {claims.get('cnf')!r} does not name the key {jkt}")
open(out, "w").write(token + "\n")
PY
  proofs "$public_url/api/me" 1 "$work/one.txt" "$work/token.txt"
  first=$(status "$bridge_url/api/me" "$work/one.txt"); again=$(status "$bridge_url/api/me" "$work/one.txt")
  [ "$first" = 200 ] && [ "$again" = 401 ] || {
    echo "bench: /api/me with a fresh proof answered $first (not 200), the same proof again $again (not 401)" >&2; return 1; }
}
