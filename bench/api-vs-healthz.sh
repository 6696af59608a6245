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
export PATH="$HOME/.cargo/bin:$PATH"
DURATION="${1:-10}"; CONNECTIONS="${2:-32}"; THREADS=2

command -v wrk >/dev/null || scripts/install-deps.sh
[ -d tests/idp/node_modules/oidc-provider ] || scripts/install-deps.sh
cargo build --release -q -p login-bridge

work=$(mktemp -d)
cleanup() { kill "${bridge:-}" "${idp:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

bridge_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
node tests/idp/server.js --port 0 --redirect-uri "http://localhost:$bridge_port/auth/callback" \
  < /dev/null > "$work/idp.out" 2>/dev/null &
idp=$!
for _ in $(seq 100); do grep -q LISTENING "$work/idp.out" 2>/dev/null && break; sleep 0.1; done
issuer=$(sed -n 's/^LISTENING //p' "$work/idp.out")

BRIDGE_LISTEN="127.0.0.1:$bridge_port" BRIDGE_PUBLIC_URL="http://localhost:$bridge_port" \
BRIDGE_OIDC__ISSUER="$issuer" BRIDGE_OIDC__CLIENT_ID=login-bridge \
BRIDGE_OIDC__CLIENT_SECRET=demo-client-secret BRIDGE_OIDC__API_AUDIENCE=login-bridge-api \
BRIDGE_SESSION__SQLITE_PATH="$work/sessions.sqlite" RUST_LOG=warn \
  target/release/login-bridge &
bridge=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$bridge_port/readyz" >/dev/null 2>&1 && break; sleep 0.1
done

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
