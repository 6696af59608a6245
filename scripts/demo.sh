#!/usr/bin/env bash
# Installs what is needed, then runs login-bridge with the demo OIDC provider and demo users:
#   UI        http://localhost:8080   (sign in as alice / wonderland or bob / builder, or with
#                                      the local account admin / break-glass-demo)
#   provider  http://127.0.0.1:9090
# Sessions are kept in .demo/sessions.sqlite. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
scripts/build-ui.sh
cargo build -p login-bridge
mkdir -p .demo
# The key-encryption key sealing the bridge's private signing keys in the store (demo only:
# in production keep it apart from the database, e.g. a mounted secret).
[ -f .demo/kek ] || (umask 077 && head -c 32 /dev/urandom | base64 > .demo/kek)
# A local account for when there is no SSO (demo password; `user passwd admin` changes it).
if ! target/debug/login-bridge --config config/demo.toml user list | grep -q '^admin '; then
  printf 'break-glass-demo\n' |
    target/debug/login-bridge --config config/demo.toml user add admin --role admin
fi

node tests/idp/server.js --port 9090 \
  --redirect-uri http://localhost:8080/auth/callback \
  --post-logout-redirect-uri 'http://localhost:8080/login?signed_out=1' \
  --client-secret demo-client-secret --audience login-bridge-api &
idp=$!
trap 'kill $idp 2>/dev/null || true' EXIT INT TERM

cat <<'MSG'

  login-bridge demo
  -----------------
  Open http://localhost:8080 and sign in as alice / wonderland (or bob / builder).
  Without SSO, the login page's form takes the local account admin / break-glass-demo.
  Close the tab, clear the cookies of localhost only, and open it again: you are signed in
  without a form (silent SSO through the provider's session).
  Ctrl-C stops everything.

MSG
RUST_LOG="${RUST_LOG:-info}" target/debug/login-bridge --config config/demo.toml
