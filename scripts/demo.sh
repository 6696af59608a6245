#!/usr/bin/env bash
# Installs what running needs (nothing only the tests need), then runs login-bridge with the demo
# OIDC provider and demo users:
#   UI        http://localhost:8080   (sign in as alice / wonderland or bob / builder, or with
#                                      the local account admin / break-glass-demo)
#   provider  http://127.0.0.1:9090
# Sessions are kept in .demo/sessions.sqlite. Ctrl-C stops both.
#
# Each step says how long it took. Run again with nothing changed, nothing is rebuilt: the UI
# build is skipped while its inputs' hash matches .demo/ui.stamp, and cargo finds the bridge
# built. Measured from zero and again by bench/first-run.sh.
#
#   DEMO_EXIT_WHEN_READY=1 scripts/demo.sh   stops (exit 0) once the bridge answers /readyz
#   scripts/demo.sh --plan                   prints what its install step would install on a
#                                            fresh machine, and nothing else happens
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
plan=""
case "${1:-}" in
  --plan) plan=1 ;;
  "") ;;
  *) echo "usage: $0 [--plan]" >&2; exit 2 ;;
esac

started=$SECONDS; phase_started=$SECONDS; phase=""
phase_done() { [ -n "$phase" ] && printf '\033[2m-- %s: %ss\033[0m\n' "$phase" "$((SECONDS - phase_started))"; phase=""; return 0; }
step() { phase_done; phase="$*"; phase_started=$SECONDS; printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -z "$plan" ]; then
  mkdir -p .demo
  # The bridge needs nothing of the install step or the UI: cargo compiles it meanwhile (on two
  # cores each build fills the other's serial stretches: downloads, final links, the SPA's LTO).
  step "build the bridge (cargo build -p login-bridge), in the background: .demo/bridge-build.log"
  bridge_started=$SECONDS
  cargo build -p login-bridge >.demo/bridge-build.log 2>&1 &
  bridge_build=$!
  trap 'kill $bridge_build 2>/dev/null || true' EXIT INT TERM
  step "install what running needs (scripts/install-deps.sh --run)"
fi
# The one install step (its --plan is what the black-box test
# `the_run_command_installs_only_what_running_needs` reads): never the full scripts/install-deps.sh.
scripts/install-deps.sh --run ${plan:+--plan}
[ -z "$plan" ] || exit 0
target_dir=${CARGO_TARGET_DIR:-target}

# Everything the UI build reads: its sources, the lockfile, the build scripts and tools, and
# the compiler and wasm-bindgen versions. The stamp also holds dist/index.html's hash, so a
# dist/ written by anything else (`trunk serve`, a test) is rebuilt.
ui_inputs() {
  find frontend shared Cargo.toml Cargo.lock Trunk.toml scripts/build-ui.sh scripts/wasm-env.sh tools/assemble-dist.mjs \
    tools/minify-glue.mjs tools/precompress.mjs tools/package-lock.json -type f -print0 |
    sort -z | xargs -0 sha256sum
  rustc "+$(scripts/wasm-env.sh --toolchain)" -vV
  wasm-bindgen --version
}
ui_stamp() { { ui_inputs; sha256sum dist/index.html 2>/dev/null; } | sha256sum | cut -d' ' -f1; }
if [ -f dist/index.html ] && [ "$(cat .demo/ui.stamp 2>/dev/null)" = "$(ui_stamp)" ]; then
  step "build the UI: skipped, nothing changed since the last build (.demo/ui.stamp)"
else
  step "build the UI (scripts/build-ui.sh: cargo, wasm-bindgen, wasm-opt; no Trunk)"
  rm -f .demo/ui.stamp
  scripts/build-ui.sh
  ui_stamp >.demo/ui.stamp
fi

step "wait for the bridge's build"
if ! wait $bridge_build; then
  tail -40 .demo/bridge-build.log
  echo "demo: cargo build -p login-bridge failed (.demo/bridge-build.log)" >&2
  exit 1
fi
trap - EXIT INT TERM
grep -E '^ *(Finished|Compiling login-bridge)' .demo/bridge-build.log || true
printf '\033[2m   (the bridge build took %ss in all)\033[0m\n' "$((SECONDS - bridge_started))"
bridge="$target_dir/debug/login-bridge"

step "prepare .demo (key-encryption key, local account admin)"
# The key-encryption key sealing the bridge's private signing keys in the store (demo only:
# in production keep it apart from the database, e.g. a mounted secret).
[ -f .demo/kek ] || (umask 077 && head -c 32 /dev/urandom | base64 > .demo/kek)
# A local account for when there is no SSO (demo password; `user passwd admin` changes it).
if ! "$bridge" --config config/demo.toml user list | grep -q '^admin '; then
  printf 'break-glass-demo\n' |
    "$bridge" --config config/demo.toml user add admin --role admin
fi

step "start the demo provider and the bridge"
node tests/idp/server.js --port 9090 \
  --redirect-uri http://localhost:8080/auth/callback \
  --post-logout-redirect-uri 'http://localhost:8080/login?signed_out=1' \
  --client-secret demo-client-secret --audience login-bridge-api &
idp=$!
RUST_LOG="${RUST_LOG:-info}" "$bridge" --config config/demo.toml &
bridge_pid=$!
trap 'kill $bridge_pid $idp 2>/dev/null || true' EXIT INT TERM

# Ready: listening, keys loaded, the provider's discovery done.
deadline=$((SECONDS + 120))
until curl -fsS -o /dev/null http://127.0.0.1:8080/readyz; do
  if ! kill -0 $bridge_pid 2>/dev/null || ! kill -0 $idp 2>/dev/null; then
    echo "demo: the bridge or the provider stopped before the bridge was ready" >&2; exit 1
  fi
  [ $SECONDS -lt $deadline ] || { echo "demo: no 200 from /readyz within 120 s" >&2; exit 1; }
  sleep 0.2
done
phase_done
printf '\033[1mready in %ss\033[0m (http://localhost:8080/readyz answers 200)\n' "$((SECONDS - started))"
[ -z "${DEMO_EXIT_WHEN_READY:-}" ] || exit 0

cat <<'MSG'

  login-bridge demo
  -----------------
  Open http://localhost:8080 and sign in as alice / wonderland (or bob / builder).
  Without SSO, the login page's form takes the local account admin / break-glass-demo.
  Close the tab, clear the cookies of localhost only, and open it again: you are signed in
  without a form (silent SSO through the provider's session).
  Ctrl-C stops everything.

MSG
wait $bridge_pid
