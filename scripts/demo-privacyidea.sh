#!/usr/bin/env bash
# The demo (scripts/demo.sh) with a real privacyIDEA 3.14 behind the bridge:
#   UI           http://localhost:8080   (sign in as alice / wonderland or bob / builder;
#                                         the privacyIDEA page is /privacyidea)
#   provider     http://127.0.0.1:9090
#   privacyIDEA  http://127.0.0.1:<port the OS picks>, reached through the bridge at /pi/
#
# privacyIDEA trusts the bridge's signing key (PI_TRUSTED_JWT, from `login-bridge keys export
# --pem`): the `user` role for defrealm/deflocal and the `admin` role with empty realm and
# resolver, as config/privacyidea.toml describes. The bridge's configuration is config/demo.toml
# plus config/privacyidea.toml plus the `/pi/` upstream, written to .demo/privacyidea/bridge.toml.
# Everything lives in .demo/privacyidea/ (delete it to start over). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
scripts/build-ui.sh
cargo build -p login-bridge
bridge=target/debug/login-bridge
python=tools/privacyidea-venv/bin/python
state=.demo/privacyidea
mkdir -p "$state"
[ -f .demo/kek ] || (umask 077 && head -c 32 /dev/urandom | base64 > .demo/kek)

# The bridge's configuration: the demo's, with its own session database and the privacyIDEA
# token profile for the SPA (config/privacyidea.toml minus its [session] table, whose one
# setting replaces the demo's session.token_profile), and the upstream. The privacyIDEA URL is
# filled in below.
write_config() { # $1: privacyIDEA's base URL
  {
    echo "# Written by scripts/demo-privacyidea.sh: config/demo.toml + config/privacyidea.toml + /pi/."
    awk -v db="$state/sessions.sqlite" '
      /^\[/ { in_session = ($0 == "[session]") }
      /^\[session\]/ { print; print "token_profile = \"privacyidea\""; next }
      in_session && /^token_profile *=/ { next }
      /^sqlite_path *=/ { print "sqlite_path = \"" db "\""; next }
      { print }' config/demo.toml
    echo
    awk '/^\[/ { skip = ($0 == "[session]") } !skip' config/privacyidea.toml
    cat <<TOML

# privacyIDEA behind the bridge: the SPA calls /pi/... with its own bearer token; privacyIDEA
# gets a freshly minted \`privacyidea\` profile token, bare in Authorization.
[[upstreams]]
name = "privacyidea"
prefix = "/pi/"
url = "$1"
token = "profile:privacyidea"
header = "authorization"
scheme = ""
ui = "privacyidea"
TOML
  } > "$state/bridge.toml"
}
# A first version, so that `keys export` can open the key store (the URL is not used there).
write_config "http://127.0.0.1:1/"
"$bridge" --config "$state/bridge.toml" check-config > /dev/null

# privacyIDEA: the tests' template instance (realm defrealm, passwd resolver deflocal with alice,
# bob, carol, dave and erin), made once.
pi="$state/instance"
if [ ! -f "$pi/pi.cfg" ]; then
  rm -rf "$pi.tmp"
  "$python" tests/privacyidea/make_template.py "$pi.tmp"
  mv "$pi.tmp" "$pi"
fi
pem=$("$bridge" --config "$state/bridge.toml" keys export --pem --alg ES256)
"$python" - "$pi/trusted_jwt.json" "$pem" <<'PY'
import json, sys
path, pem = sys.argv[1], sys.argv[2] + "\n"
entry = {"public_key": pem, "algorithm": "ES256", "username": "[a-z0-9._-]+"}
json.dump([
    dict(entry, role="user", realm="defrealm", resolver="deflocal"),
    dict(entry, role="admin", realm="", resolver=""),
], open(path, "w"), indent=2)
PY

# serve.py prints `PORT <n>` once it listens and exits when its stdin closes, i.e. with us.
coproc PI (cd "$pi" && PRIVACYIDEA_CONFIGFILE="$PWD/pi.cfg" exec "$OLDPWD/$python" "$OLDPWD/tests/privacyidea/serve.py" 2> "$OLDPWD/$state/privacyidea.log")
pi_pid=$PI_PID
node tests/idp/server.js --port 9090 \
  --redirect-uri http://localhost:8080/auth/callback \
  --post-logout-redirect-uri 'http://localhost:8080/login?signed_out=1' \
  --client-secret demo-client-secret --audience login-bridge-api &
idp=$!
trap 'kill $idp $pi_pid 2>/dev/null || true' EXIT INT TERM

read -r -t 60 line <&"${PI[0]}" || { echo "privacyIDEA did not start; see $state/privacyidea.log" >&2; exit 1; }
pi_url="http://127.0.0.1:${line#PORT }/"
write_config "$pi_url"

cat <<MSG

  login-bridge demo with privacyIDEA
  ----------------------------------
  Open http://localhost:8080/privacyidea and sign in as alice / wonderland (or bob / builder):
  the page lists your privacyIDEA tokens and enrolls new HOTP tokens, through the bridge at
  /pi/ (privacyIDEA itself: $pi_url, log in $state/privacyidea.log).
  alice is in the pi-admins group, so privacyIDEA sees her as an admin; bob as a plain user.
  Ctrl-C stops everything.

MSG
RUST_LOG="${RUST_LOG:-info}" "$bridge" --config "$state/bridge.toml"
