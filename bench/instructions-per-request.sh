#!/usr/bin/env bash
# Instructions per request of /healthz and of /api/me (valid RS256 bearer), counted by
# valgrind's callgrind in the bridge process: repeatable where wrk's req/s are not (on a shared
# 2-core machine the ratio of bench/api-vs-healthz.sh swings by +-0.1 from run to run).
#
#   bench/instructions-per-request.sh [checkout=.]
#
# Counters are zeroed after start-up, so only request handling counts (all threads).
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
export PATH="$HOME/.cargo/bin:$PATH"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (scripts/install-deps.sh)" >&2; exit 1; }
cargo build --release -q -p login-bridge
work=$(mktemp -d)
cleanup() { kill "${bridge:-}" "${idp:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
bridge_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
node tests/idp/server.js --port 0 --redirect-uri "http://localhost:$bridge_port/auth/callback" < /dev/null > "$work/idp.out" 2>/dev/null &
idp=$!
for _ in $(seq 100); do grep -q LISTENING "$work/idp.out" 2>/dev/null && break; sleep 0.1; done
issuer=$(sed -n 's/^LISTENING //p' "$work/idp.out")
BRIDGE_LISTEN="127.0.0.1:$bridge_port" BRIDGE_PUBLIC_URL="http://localhost:$bridge_port" \
BRIDGE_OIDC__ISSUER="$issuer" BRIDGE_OIDC__CLIENT_ID=login-bridge \
BRIDGE_OIDC__CLIENT_SECRET=demo-client-secret BRIDGE_OIDC__API_AUDIENCE=login-bridge-api \
BRIDGE_SESSION__SQLITE_PATH="$work/sessions.sqlite" RUST_LOG=warn \
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" target/release/login-bridge 2>/dev/null &
bridge=$!
for _ in $(seq 600); do curl -fs "http://127.0.0.1:$bridge_port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
token=$(ISSUER="$issuer" node -e '
const c = require("crypto"), fs = require("fs");
const key = c.createPrivateKey(fs.readFileSync("tests/fixtures/idp-signing-key.pem"));
const jwk = c.createPublicKey(key).export({format: "jwk"});
const kid = c.createHash("sha256").update(JSON.stringify({e: jwk.e, kty: jwk.kty, n: jwk.n})).digest("base64url");
const b = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const input = b({alg: "RS256", typ: "at+jwt", kid}) + "." + b({iss: process.env.ISSUER,
  sub: "7f6a8a52-0b7e-4d1c-9a55-a11ce0000001", aud: "login-bridge-api", iat: now, exp: now + 3600,
  preferred_username: "alice", realm_access: {roles: ["admin", "user"]}, groups: ["admins"]});
console.log(input + "." + c.sign("sha256", Buffer.from(input), key).toString("base64url"));')
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
