#!/usr/bin/env bash
# The Debian package, end to end (a phase of scripts/test.sh; docs/package.md): builds the .deb,
# installs it with dpkg, checks the unit with `systemd-analyze verify` and `security
# --offline=yes` (exposure at most 1.5), then starts the packaged binary as the unit would and
# checks systemd's readiness protocol, the key-encryption key, the sandbox's system calls, the
# refusal of the unconfigured configuration; then upgrade, remove (configuration and state
# kept) and purge (gone).
#
# No systemd runs as PID 1 here, so the test does what the unit asks of it: a user of
# DynamicUser's range with no capabilities and no_new_privs (setpriv), the state directory where
# DynamicUser puts it (/var/lib/private/login-bridge, behind /var/lib/login-bridge, reached
# through a private mount namespace as systemd does), UMask=0077, the unit's environment
# (STATE_DIRECTORY, CONFIGURATION_DIRECTORY, NOTIFY_SOCKET to a datagram socket
# tests/deb/notify_socket.py reads). Runs as root: it installs and purges the package, and
# refuses to run where login-bridge is installed already.
#
# usage: scripts/test-deb.sh [--profile P]   (default: dev, the binary the tests build anyway;
#        scripts/package-deb.sh alone builds the release package). KEEP_TMP=1 keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
profile=dev
[ "${1:-}" = "--profile" ] && profile=$2

started=$SECONDS
passed=0
ok() { passed=$((passed + 1)); printf '  ok   %s\n' "$*"; }
fail() {
  printf '  FAIL %s\n' "$*" >&2
  # What the processes said, for the failure's cause.
  for log in "${tmp:-/nonexistent}"/*.log "${tmp:-/nonexistent}"/trace/*.log; do
    [ -f "$log" ] && { printf -- '--- %s (last lines)\n' "${log#"$tmp"/}"; tail -n 15 "$log"; } >&2
  done
  exit 1
}
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds or the deadline passes
# (used where nothing signals the event: a port answering, a line arriving in a file).
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do
    [ $SECONDS -lt $deadline ] || fail "timed out waiting for $what"
    sleep 0.1
  done
}
http_status() { curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true; }
http_is() { [ "$(http_status "$2")" = "$1" ]; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if dpkg-query -W -f='${db:Status-Status}' login-bridge 2>/dev/null | grep -qv '^not-installed$'; then
  echo "test-deb.sh: login-bridge is installed on this machine; the test installs and purges its own: remove it first" >&2
  exit 1
fi
for dir in /etc/login-bridge /var/lib/private/login-bridge /var/lib/login-bridge; do
  if [ -e "$dir" ] || [ -L "$dir" ]; then
    echo "test-deb.sh: $dir exists without the package; the test starts from none: remove it first" >&2
    exit 1
  fi
done
tmp=$(mktemp -d)
chmod 0755 "$tmp"
pids=()
listener_pid() { ss -Htlnp "sport = :$1" | sed -n 's/.*"login-bridge",pid=\([0-9]*\).*/\1/p' | head -1; }
bridge_port=""
cleanup() {
  # The bridge first: strace, when signalled, would leave the bridge it traces running.
  [ -n "$bridge_port" ] && { pid=$(listener_pid "$bridge_port"); [ -n "$pid" ] && kill -9 "$pid" || true; }
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # A failed run leaves nothing behind.
  if dpkg-query -W -f='${db:Status-Status}' login-bridge 2>/dev/null | grep -qv '^not-installed$'; then
    dpkg -P login-bridge >/dev/null 2>&1 || true
  fi
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

echo "== build the package (profile $profile)"
t=$SECONDS
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
deb=$(scripts/package-deb.sh --profile "$profile" --compress zstd --out "$tmp/v1")
binary=${CARGO_TARGET_DIR:-target}/$([ "$profile" = dev ] && echo debug || echo "$profile")/login-bridge
# The upgrade: the same binary as a newer version (only the package is built twice).
deb2=$(scripts/package-deb.sh --binary "$binary" --version "$version+upgrade1" --compress zstd --out "$tmp/v2")
echo "   built in $((SECONDS - t))s: $(du -k "$deb" | cut -f1) KB"

echo "== install (dpkg -i)"
dpkg -i "$deb" >/dev/null
[ "$(dpkg-query -W -f='${db:Status-Status}' login-bridge)" = installed ] && ok "dpkg -i installs it" || fail "not installed"
[ -x /usr/bin/login-bridge ] && ok "/usr/bin/login-bridge" || fail "no /usr/bin/login-bridge"
/usr/bin/login-bridge --version >/dev/null && ok "the installed binary runs" || fail "/usr/bin/login-bridge --version"
for f in index.html "$(basename "$(ls /usr/share/login-bridge/dist/*.wasm)").br" "$(basename "$(ls /usr/share/login-bridge/dist/*.wasm)").gz"; do
  [ -f "/usr/share/login-bridge/dist/$f" ] || fail "no /usr/share/login-bridge/dist/$f"
done
ok "the precompressed SPA in /usr/share/login-bridge/dist"
conffiles=$(dpkg-query -W -f='${Conffiles}' login-bridge)
grep -q '/etc/login-bridge/config.toml' <<<"$conffiles" && ok "/etc/login-bridge/config.toml is a conffile" || fail "config.toml is no conffile"
[ "$(stat -c %a /etc/login-bridge/secrets.env)" = 600 ] && ok "secrets.env is mode 0600" || fail "secrets.env mode"
[ -f /usr/share/doc/login-bridge/copyright ] && [ -f /usr/share/doc/login-bridge/changelog.Debian.gz ] && ok "copyright and changelog" || fail "no copyright/changelog"

echo "== the unit (systemd-analyze)"
unit=/usr/lib/systemd/system/login-bridge.service
systemd-analyze verify "$unit" && ok "systemd-analyze verify $unit" || fail "systemd-analyze verify"
score=$(systemd-analyze security --offline=yes "$unit" 2>&1 | sed -n 's/.*Overall exposure level for login-bridge.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "no exposure score from systemd-analyze security"
echo "   exposure (systemd-analyze security --offline=yes, systemd $(systemd-analyze --version | sed -n '1s/systemd \([0-9]*\).*/\1/p')): $score"
awk -v s="$score" 'BEGIN { exit !(s <= 1.5) }' && ok "exposure $score <= 1.5" || fail "exposure $score > 1.5"

# The unit's user and directories, as systemd sets them up for DynamicUser=yes.
uid=61999
mkdir -p /var/lib/private && chmod 0700 /var/lib/private
install -d -m 0700 -o $uid -g $uid /var/lib/private/login-bridge
ln -sfn private/login-bridge /var/lib/login-bridge
mkdir "$tmp/state"
install -d -o $uid -g $uid "$tmp/trace"
# run_as_unit ENV...: runs /usr/bin/login-bridge like the unit's ExecStart, in a mount namespace
# where /var/lib/private holds only its own directory (what systemd does for DynamicUser).
run_as_unit() {
  unshare --mount --propagation private -- /bin/sh -c '
    set -e
    mount --bind /var/lib/private/login-bridge "$0"
    mount -t tmpfs -o mode=0755 tmpfs /var/lib/private
    mkdir /var/lib/private/login-bridge
    mount --bind "$0" /var/lib/private/login-bridge
    umask 0077
    cd /
    exec setpriv --reuid='"$uid"' --regid='"$uid"' --clear-groups --no-new-privs \
      --bounding-set=-all --inh-caps=-all -- "$@"
  ' "$tmp/state" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/ LANG=C.UTF-8 NO_COLOR=1 \
      STATE_DIRECTORY=/var/lib/login-bridge CONFIGURATION_DIRECTORY=/etc/login-bridge "$@"
}

echo "== the packaged configuration without a provider is refused"
set +e
run_as_unit /usr/bin/login-bridge --config /etc/login-bridge/config.toml serve >"$tmp/unconfigured.log" 2>&1
code=$?
set -e
[ $code -eq 2 ] && ok "exit status 2 (the unit's RestartPreventExitStatus)" || { cat "$tmp/unconfigured.log"; fail "exit status $code, not 2"; }
grep -q 'oidc.issuer: no login provider is configured; set oidc.issuer' "$tmp/unconfigured.log" \
  && ok "the error names the key to set: $(grep -o 'oidc.issuer: no login provider is configured[^(]*' "$tmp/unconfigured.log" | head -1 | cut -c1-72)..." \
  || { cat "$tmp/unconfigured.log"; fail "no clear message naming oidc.issuer"; }
[ ! -e /var/lib/private/login-bridge/kek ] && ok "nothing created before the configuration is usable" || fail "state written by a refused start"

echo "== start as the unit would: READY=1 only once /readyz is 200"
bridge_port=$(free_port); idp_port=$(free_port)
readyz=http://127.0.0.1:$bridge_port/readyz
notify=$tmp/notify.sock
: >"$tmp/notify.log"
python3 tests/deb/notify_socket.py "$notify" "$readyz" >"$tmp/notify.log" 2>&1 &
pids+=($!)
wait_for 10 "the notify socket" grep -q LISTENING "$tmp/notify.log"
# The provider is started only after the bridge: readiness comes late, and READY=1 must wait
# for it. strace records the bridge's system calls for the sandbox check below.
run_as_unit NOTIFY_SOCKET="$notify" \
  BRIDGE_LISTEN=127.0.0.1:$bridge_port BRIDGE_PUBLIC_URL=http://localhost:$bridge_port \
  BRIDGE_OIDC__ISSUER=http://127.0.0.1:$idp_port BRIDGE_OIDC__CLIENT_ID=login-bridge \
  BRIDGE_OIDC__CLIENT_SECRET=demo-client-secret BRIDGE_OIDC__API_AUDIENCE=login-bridge-api \
  BRIDGE_OIDC__DISCOVERY_MAX_BACKOFF_SECS=1 \
  /usr/bin/strace -f -qq -o "$tmp/trace/strace.log" \
  /usr/bin/login-bridge --config /etc/login-bridge/config.toml serve >"$tmp/bridge.log" 2>&1 &
unit_pid=$!
pids+=($unit_pid)
wait_for 30 "the bridge to listen" http_is 200 "http://127.0.0.1:$bridge_port/healthz"
wait_for 10 "a STATUS= line (the notifier waiting)" grep -q '^STATUS=not ready' "$tmp/notify.log"
[ "$(http_status "$readyz")" = 503 ] && ok "/readyz is 503 while the provider is down" || fail "/readyz not 503 without a provider"
grep -q '^READY=1' "$tmp/notify.log" && fail "READY=1 before the provider is up" || ok "no READY=1 while not ready ($(grep '^STATUS=' "$tmp/notify.log" | head -1 | cut -c1-70)...)"
node tests/idp/server.js --port "$idp_port" --redirect-uri "http://localhost:$bridge_port/auth/callback" >"$tmp/idp.log" 2>"$tmp/idp.err" &
pids+=($!)
wait_for 30 "the demo provider" grep -q LISTENING "$tmp/idp.log"
wait_for 30 "READY=1" grep -q '^READYZ_AT_READY' "$tmp/notify.log"
grep -q '^READYZ_AT_READY 200$' "$tmp/notify.log" && ok "READY=1 arrived, and /readyz answered 200 at that moment" \
  || { cat "$tmp/notify.log"; fail "READY=1 while /readyz was not 200"; }
kek=/var/lib/private/login-bridge/kek
[ "$(stat -c '%a %u' "$kek")" = "600 $uid" ] && ok "the key-encryption key was created, mode 0600, owned by the unit's user" \
  || fail "kek: $(stat -c '%a %u' "$kek" 2>&1)"
[ -f /var/lib/login-bridge/sessions.sqlite ] && ok "the SQLite store is in the state directory" || fail "no sessions.sqlite"
# A few requests, so the system calls recorded include serving: the SPA (precompressed), a
# sign-in's redirect, the bridge's key set, a refused API call.
base=http://127.0.0.1:$bridge_port
[ "$(curl -s --noproxy '*' -H 'Accept-Encoding: br' -o /dev/null -w '%{http_code} %header{content-encoding}' "$base/")" = "200 br" ] \
  && ok "the packaged SPA is served, brotli-compressed" || fail "GET / with Accept-Encoding: br"
http_is 303 "$base/auth/login" || http_is 302 "$base/auth/login" || fail "/auth/login does not redirect to the provider"
http_is 200 "$base/.well-known/jwks.json" || fail "no /.well-known/jwks.json"
http_is 401 "$base/api/me" || fail "/api/me without a token is not 401"
ok "sign-in redirect, key set and API answer"
# The process that listens on the bridge's port (run_as_unit and strace sit above it).
bridge_pid=$(listener_pid "$bridge_port")
[ -n "$bridge_pid" ] || fail "no login-bridge process listening on $bridge_port"
kill -TERM "$bridge_pid"
wait_for 30 "STOPPING=1" grep -q '^STOPPING=1' "$tmp/notify.log"
ok "STOPPING=1 on SIGTERM"
wait "$unit_pid" && ok "the bridge exits 0 after SIGTERM" || fail "the bridge's exit status after SIGTERM"
python3 tests/deb/check_sandbox.py "$tmp/trace/strace.log" | sed 's/^/   /' && ok "within SystemCallFilter= and MemoryDenyWriteExecute=" \
  || fail "the bridge needs what the unit forbids (above)"

echo "== upgrade (dpkg -i of $version+upgrade1)"
kek_sum=$(sha256sum "$kek")
echo "# the operator's change (scripts/test-deb.sh)" >> /etc/login-bridge/config.toml
dpkg -i "$deb2" >/dev/null
[ "$(dpkg-query -W -f='${Version}' login-bridge)" = "$version+upgrade1" ] && ok "upgraded to $version+upgrade1" || fail "not upgraded"
grep -q "the operator's change" /etc/login-bridge/config.toml && ok "the edited configuration is kept" || fail "configuration lost on upgrade"
[ "$(sha256sum "$kek")" = "$kek_sum" ] && ok "the state is kept" || fail "state changed on upgrade"

echo "== remove (dpkg -r)"
dpkg -r login-bridge >/dev/null
[ "$(dpkg-query -W -f='${db:Status-Status}' login-bridge)" = config-files ] && ok "removed, configuration files left" || fail "status after dpkg -r"
[ ! -e /usr/bin/login-bridge ] && [ ! -e "$unit" ] && ok "binary and unit gone" || fail "files left after dpkg -r"
grep -q "the operator's change" /etc/login-bridge/config.toml && ok "configuration kept" || fail "configuration gone after dpkg -r"
[ "$(sha256sum "$kek")" = "$kek_sum" ] && [ -f /var/lib/login-bridge/sessions.sqlite ] && ok "state kept" || fail "state gone after dpkg -r"

echo "== purge (dpkg -P)"
dpkg -P login-bridge >/dev/null
dpkg-query -W -f='${db:Status-Status}' login-bridge 2>/dev/null | grep -qv '^not-installed$' && fail "still known to dpkg after purge" || ok "purged"
[ ! -e /etc/login-bridge ] && ok "/etc/login-bridge gone" || fail "/etc/login-bridge left"
[ ! -e /var/lib/private/login-bridge ] && [ ! -L /var/lib/login-bridge ] && [ ! -e /var/lib/login-bridge ] \
  && ok "/var/lib/private/login-bridge and /var/lib/login-bridge gone" || fail "state left after purge"

echo "deb package: $passed checks passed in $((SECONDS - started))s"
