#!/usr/bin/env bash
# An authenticating proxy in front of a small API, same run, same machine, wrk on loopback:
#   direct  the upstream alone: bench/upstream-server.mjs (node http, 200 + a 27-byte JSON body)
#   apache  Apache 2.4 (Debian, mpm_event) + mod_auth_openidc as an OAuth 2.0 resource server
#           (AuthType oauth20, the RS256 bearer JWT checked locally against the demo provider's
#           JWKS, Require claim iss + aud) + mod_proxy_http to the upstream
#   bridge  the release bridge's [[upstreams]] proxy (prefix /up/, token = "forward"), which
#           validates the Bearer token like /api and streams the call on
# Every request carries the same valid RS256 access token for alice. Apache and its module are
# installed here if missing (bench-only: not in scripts/install-deps.sh).
#
#   bench/upstream-proxy.sh [duration_secs=10] [connections=16] [threads=2]
#
# Prints requests/s, p50 and p99 of each, the ratio bridge/apache (target >= 1.5) and the p99
# the bridge adds over direct (target <= 1 ms). Apache: mpm_event, 2 processes x 16 threads
# (more when connections > 32: 2x8 and 1x16 at 16 connections had wrk read errors, 2x32 was no
# faster than 2x16), all started up front, keep-alive on, no access log; APACHE_SERVERS and
# APACHE_THREADS override. Apache's OAuth JWKS URI must be https, so it gets the provider's key
# as a certificate (OIDCOAuthVerifyCertFiles) under the kid the provider's /jwks publishes.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"; CONNECTIONS="${2:-16}"; THREADS="${3:-2}"
# A thread per wrk connection at least: with fewer, mpm_event closes kept-alive connections
# under load and wrk counts read errors.
APACHE_SERVERS="${APACHE_SERVERS:-2}"
APACHE_THREADS="${APACHE_THREADS:-$(( CONNECTIONS > 32 ? (CONNECTIONS + APACHE_SERVERS - 1) / APACHE_SERVERS : 16 ))}"
command -v wrk >/dev/null || scripts/install-deps.sh
if ! command -v apache2 >/dev/null || [ ! -e /usr/lib/apache2/modules/mod_auth_openidc.so ]; then
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q apache2 libapache2-mod-auth-openidc >/dev/null
fi
# shellcheck source=bench/lib.sh
. bench/lib.sh
stop_apache() { [ -z "${apache:-}" ] || { kill "$apache" 2>/dev/null || true; wait "$apache" 2>/dev/null || true; }; }
trap 'kill "${upstream:-}" 2>/dev/null || true; stop_apache; bench_cleanup' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- the upstream
node bench/upstream-server.mjs < /dev/null > "$work/upstream.out" 2>&1 &
upstream=$!
for _ in $(seq 100); do grep -q LISTENING "$work/upstream.out" 2>/dev/null && break; sleep 0.1; done
upstream_port=$(sed -n 's/^LISTENING //p' "$work/upstream.out")
[ -n "$upstream_port" ] || { echo "bench: the upstream did not start" >&2; cat "$work/upstream.out" >&2; exit 1; }

# ---- the bridge with the upstream under /up/
cat > "$work/bridge.toml" <<EOF
[[upstreams]]
name = "bench"
prefix = "/up/"
url = "http://127.0.0.1:$upstream_port"
token = "forward"
strip_prefix = true
EOF
start_provider_and_bridge --config "$work/bridge.toml"
token=$(provider_token)
# resign TOKEN KEY [CLAIMS_JSON]: TOKEN's header and claims (CLAIMS_JSON merged in) signed by KEY.
resign() {
  KEY=$2 MERGE=${3:-'{}'} node -e '
const c = require("crypto"), fs = require("fs");
const [h, p] = process.argv[1].split(".");
const claims = {...JSON.parse(Buffer.from(p, "base64url")), ...JSON.parse(process.env.MERGE)};
const input = h + "." + Buffer.from(JSON.stringify(claims)).toString("base64url");
const key = c.createPrivateKey(fs.readFileSync(process.env.KEY));
console.log(input + "." + c.sign("sha256", Buffer.from(input), key).toString("base64url"));' "$1"
}
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/wrong.pem" 2>/dev/null
provider_key=tests/fixtures/idp-signing-key.pem
wrong_key_token=$(resign "$token" "$work/wrong.pem")   # the provider's kid, another key
now=$(date +%s)
expired_token=$(resign "$token" "$provider_key" "{\"iat\": $((now - 7200)), \"exp\": $((now - 3600))}")
wrong_iss_token=$(resign "$token" "$provider_key" '{"iss": "http://127.0.0.1:1/elsewhere"}')
wrong_aud_token=$(resign "$token" "$provider_key" '{"aud": "another-api"}')

# Apache's module takes a JWKS URI over https only: it gets the provider's public key as a
# self-signed certificate under the provider's kid instead (the key of $issuer/jwks).
kid=$(node -e '
const c = require("crypto"), fs = require("fs");
const jwk = c.createPublicKey(c.createPrivateKey(fs.readFileSync("tests/fixtures/idp-signing-key.pem"))).export({format: "jwk"});
console.log(c.createHash("sha256").update(JSON.stringify({e: jwk.e, kty: jwk.kty, n: jwk.n})).digest("base64url"));')
[ "$kid" = "$(curl -fs "$issuer/jwks" | python3 -c 'import json, sys; print(json.load(sys.stdin)["keys"][0]["kid"])')" ] \
  || { echo "bench: the provider's JWKS does not hold the signing key's kid $kid" >&2; exit 1; }

# ---- Apache: a self-contained configuration, foreground, its own port and directory
apache_dir="$work/apache"; mkdir -p "$apache_dir"
apache_port=$(free_port)
modules=/usr/lib/apache2/modules
user_directives=""
# As root Apache hands its children to an unprivileged user; it only reads the configuration.
if [ "$(id -u)" = 0 ]; then user_directives=$'User nobody\nGroup nogroup'; chmod 755 "$work" "$apache_dir"; fi
openssl req -x509 -new -key tests/fixtures/idp-signing-key.pem -subj /CN=demo-provider -days 2 \
  -out "$apache_dir/provider.crt" 2>/dev/null
cat > "$apache_dir/httpd.conf" <<EOF
ServerRoot "$apache_dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$apache_port
PidFile "$apache_dir/httpd.pid"
DefaultRuntimeDir "$apache_dir"
ErrorLog "$apache_dir/error.log"
LogLevel warn
$user_directives
LoadModule mpm_event_module $modules/mod_mpm_event.so
LoadModule authn_core_module $modules/mod_authn_core.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule auth_openidc_module $modules/mod_auth_openidc.so
LoadModule proxy_module $modules/mod_proxy.so
LoadModule proxy_http_module $modules/mod_proxy_http.so

# 2 cores: 2 processes x $APACHE_THREADS threads, all started up front (no spawning mid-run).
StartServers $APACHE_SERVERS
ServerLimit $APACHE_SERVERS
ThreadsPerChild $APACHE_THREADS
ThreadLimit $APACHE_THREADS
MaxRequestWorkers $((APACHE_SERVERS * APACHE_THREADS))
MinSpareThreads $((APACHE_SERVERS * APACHE_THREADS))
MaxSpareThreads $((APACHE_SERVERS * APACHE_THREADS))
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30

# mod_auth_openidc as an OAuth 2.0 resource server: the bearer JWT is verified locally with the
# provider's public key (its JWKS entry as a certificate); iss and aud are required below.
OIDCCryptoPassphrase "bench-$(openssl rand -hex 16)"
OIDCOAuthVerifyCertFiles "$kid#$apache_dir/provider.crt"
OIDCOAuthRemoteUserClaim sub
OIDCOAuthAcceptTokenAs header
OIDCPassClaimsAs none

<Location "/up/">
  AuthType oauth20
  <RequireAll>
    Require claim "iss:$issuer"
    Require claim "aud:login-bridge-api"
  </RequireAll>
  ProxyPass "http://127.0.0.1:$upstream_port/"
</Location>
EOF
apache2 -f "$apache_dir/httpd.conf" -DFOREGROUND &
apache=$!
for _ in $(seq 100); do
  kill -0 "$apache" 2>/dev/null || { echo "bench: Apache did not start" >&2; cat "$apache_dir/error.log" >&2; exit 1; }
  curl -s -o /dev/null "http://127.0.0.1:$apache_port/" && break; sleep 0.1
done

direct_url="http://127.0.0.1:$upstream_port/bench"
apache_url="http://127.0.0.1:$apache_port/up/bench"
bridge_url="http://127.0.0.1:$bridge_port/up/bench"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# ---- checks before measuring: a valid token passes, a missing or forged one does not
check() { # label, expected status, curl args...
  local label=$1 want=$2 got; shift 2
  got=$(code "$@")
  printf 'check %-44s %s (want %s)\n' "$label" "$got" "$want"
  [ "$got" = "$want" ] || { echo "bench: $label answered $got, not $want" >&2; tail -5 "$apache_dir/error.log" >&2; exit 1; }
}
check "direct" 200 "$direct_url"
check "apache, valid token" 200 -H "Authorization: Bearer $token" "$apache_url"
refusals() { # name, url: no token, forged signature, expired, wrong issuer, wrong audience
  check "$1, no token" 401 "$2"
  check "$1, token signed by another key" 401 -H "Authorization: Bearer $wrong_key_token" "$2"
  check "$1, expired token" 401 -H "Authorization: Bearer $expired_token" "$2"
  check "$1, token from another issuer" "$3" -H "Authorization: Bearer $wrong_iss_token" "$2"
  check "$1, token for another audience" "$3" -H "Authorization: Bearer $wrong_aud_token" "$2"
}
refusals apache "$apache_url" 401
have_bridge=1
probe=$(code -H "Authorization: Bearer $token" "$bridge_url")
if [ "$probe" = 404 ]; then
  echo "bridge upstream proxy not available"; have_bridge=0
else
  check "bridge, valid token" 200 -H "Authorization: Bearer $token" "$bridge_url"
  refusals bridge "$bridge_url" 401
fi

# run KEY LABEL URL [wrk args]: measures, prints a line, stores rps and p99 (ms).
run() {
  local key=$1 label=$2 url=$3 out=$work/$1.txt; shift 3
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" > "$out"
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  p50=$(awk '$1=="50%" {print $2}' "$out")
  p99=$(awk '$1=="99%" {print $2}' "$out")
  non2xx=$(awk -F': *' '/Non-2xx/ {print $2}' "$out"); non2xx=${non2xx:-0}
  printf '%-8s %-52s %10s req/s   p50 %-9s p99 %-9s non-2xx %s\n' "$key" "$label" "$rps" "$p50" "$p99" "$non2xx"
  if [ "$non2xx" != 0 ] || grep -q 'Socket errors' "$out"; then echo "bench: $label had errors" >&2; cat "$out" >&2; exit 1; fi
  echo "$rps" > "$work/$key.rps"
  ms "$p99" > "$work/$key.p99"
}
# ms 1.23ms|456.00us|1.01s → milliseconds
ms() { python3 -c "import re, sys; v, u = re.fullmatch(r'([\d.]+)(us|ms|s)', sys.argv[1]).groups(); print(float(v) * {'us': 1e-3, 'ms': 1, 's': 1e3}[u])" "$1"; }

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency on $(nproc) cores (load average $(cut -d' ' -f1-3 /proc/loadavg)); upstream: node $(node -v) http"
echo "apache: $(apache2 -v | sed -n 's/^Server version: //p'), mod_auth_openidc $(dpkg-query -W -f '${Version}' libapache2-mod-auth-openidc), mpm_event ${APACHE_SERVERS}x${APACHE_THREADS} threads"
auth=(-H "Authorization: Bearer $token")
run direct "GET upstream directly" "$direct_url" "${auth[@]}"
run apache "GET via Apache mod_auth_openidc + mod_proxy" "$apache_url" "${auth[@]}"
if [ "$have_bridge" = 1 ]; then
  run bridge "GET via the bridge's upstream proxy" "$bridge_url" "${auth[@]}"
  python3 - "$work" <<'PY'
import sys
w = sys.argv[1]
val = lambda k, x: float(open(f"{w}/{k}.{x}").read())
ratio = val("bridge", "rps") / val("apache", "rps")
added = val("bridge", "p99") - val("direct", "p99")
added_apache = val("apache", "p99") - val("direct", "p99")
print(f"ratio bridge/apache req/s: {ratio:.2f} (target >= 1.5: {'met' if ratio >= 1.5 else 'NOT met'})")
print(f"p99 added over direct: bridge {added:+.2f} ms (target <= 1 ms: {'met' if added <= 1 else 'NOT met'}), apache {added_apache:+.2f} ms")
PY
fi
