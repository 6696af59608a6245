#!/usr/bin/env bash
# First-page-call login behind a gateway (issue 7): the latency of a browser navigation that
# carries a gateway JWT and no cookie, answered with the page and a new session. wrk (Debian) on
# loopback against a release build, with the demo provider for discovery; the gateway issuer is
# the fixture key `issuer-rsa-a` (JWKS file), trusted from 127.0.0.1/32 because wrk connects from
# there. Every request creates a session row in SQLite: that is what is measured.
#
#   bench/gateway-first-page.sh [duration_secs=10] [connections=4]
#
# Prints p50/p99 latency and requests/s, and checks that sessions were really created.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"; CONNECTIONS="${2:-4}"; THREADS=1
command -v wrk >/dev/null || scripts/install-deps.sh
[ -f dist/index.html ] || scripts/build-ui.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

cat > "$work/bridge.toml" <<EOF
[[issuers]]
name = "gateway"
issuer = "https://gateway.test"
audiences = ["login-bridge-api"]
algorithms = ["RS256"]
jwks_file = "$PWD/tests/fixtures/issuer-rsa-a.jwks.json"

[gateway]
issuers = ["gateway"]
trusted_proxies = ["127.0.0.1/32"]
EOF

start_provider_and_bridge --config "$work/bridge.toml"

# The JWT the gateway would inject, signed with the fixture key (kid "rsa-a" in its JWKS).
token=$(node -e '
const c = require("crypto"), fs = require("fs");
const key = c.createPrivateKey(fs.readFileSync("tests/fixtures/issuer-rsa-a.pem"));
const b = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const input = b({alg: "RS256", typ: "JWT", kid: "rsa-a"}) + "." + b({iss: "https://gateway.test",
  sub: "gateway-user-0001", aud: "login-bridge-api", iat: now, exp: now + 3600,
  preferred_username: "gwen"});
console.log(input + "." + c.sign("sha256", Buffer.from(input), key).toString("base64url"));')

url="http://127.0.0.1:$bridge_port/some/page"
# One navigation by hand: the page, and a session cookie with it.
headers=$(curl -s -o "$work/page.html" -D - -H 'Sec-Fetch-Mode: navigate' \
  -H "Authorization: Bearer $token" "$url")
echo "$headers" | head -1 | grep -q ' 200' || { echo "bench: the navigation answered: $(echo "$headers" | head -1)" >&2; exit 1; }
echo "$headers" | grep -qi '^set-cookie:' || { echo "bench: the navigation set no session cookie" >&2; exit 1; }
grep -q app-loader "$work/page.html" || { echo "bench: the answer is not the SPA's page" >&2; exit 1; }

sessions() { python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from tower_sessions").fetchone()[0])' "$work/sessions.sqlite"; }
before=$(sessions)

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency on $(nproc) cores, release build, SQLite sessions"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
  -H 'Sec-Fetch-Mode: navigate' -H "Authorization: Bearer $token" "$url" > "$work/wrk.txt"
if grep -q 'Non-2xx' "$work/wrk.txt"; then echo "bench: non-2xx answers" >&2; cat "$work/wrk.txt" >&2; exit 1; fi
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
created=$(( $(sessions) - before ))
rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.txt")
p50=$(awk '$1=="50%" {print $2}' "$work/wrk.txt")
p99=$(awk '$1=="99%" {print $2}' "$work/wrk.txt")
printf 'navigation with gateway JWT -> page + new session: p50 %s  p99 %s  %s req/s\n' "$p50" "$p99" "$rps"
echo "requests: $requests, session rows created: $created"
[ "$created" -ge "$requests" ] || { echo "bench: fewer sessions than requests" >&2; exit 1; }
