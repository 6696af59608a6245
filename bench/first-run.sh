#!/usr/bin/env bash
# Times the run command (scripts/demo.sh) from zero and then again with nothing changed, until
# the bridge answers /readyz (DEMO_EXIT_WHEN_READY=1). Targets (issue 24): <= 10 minutes from
# zero on this machine kind (2 cores), <= 30 s the second time.
#
# From zero means: a fresh clone of this checkout's HEAD (no dist/, no node_modules, no .demo/),
# an empty CARGO_TARGET_DIR (the clone's target/), an empty cargo registry and no installed
# cargo tools (a fresh CARGO_HOME whose bin/ has only rustup's proxies; the toolchain itself,
# in RUSTUP_HOME, stays, as on a new machine of this kind), an empty npm cache, and a PATH
# without ~/.cargo/bin (where Trunk and wasm-bindgen may already be). Ports 8080 and 9090 must be
# free (the demo's). The machine's load is printed with each figure: other work on the two cores
# slows the figure down.
#
#   bench/first-run.sh [WORKDIR]     WORKDIR (default: a new directory under /tmp) is kept, with
#                                    first.log and second.log, the demo's output with each step's
#                                    duration
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/first-run.XXXXXX)}
mkdir -p "$work"
for port in 8080 9090; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "first-run: port $port is taken (the demo listens there)" >&2; exit 1
  fi
done

clone=$work/clone
rm -rf "$clone" "$work/cargo-home" "$work/npm-cache"
git clone -q --no-checkout "$repo" "$clone"
git -C "$clone" checkout -q "$(git -C "$repo" rev-parse HEAD)"
# rustup's proxies (cargo, rustc, ...) are links to the rustup binary: copied as they are.
home=$work/cargo-home
mkdir -p "$home/bin"
rustup_bin=$(dirname "$(command -v rustup)")
for tool in rustup cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do
  [ -e "$rustup_bin/$tool" ] && cp -a "$rustup_bin/$tool" "$home/bin/"
done

run() { # $1: log name
  echo "== $1 run, $(uptime)"
  local t0=$SECONDS
  # `times` adds the CPU time of everything the demo ran (cargo and rustc included): on a
  # loaded machine the wall time says little, and two idle cores need at least half of it.
  env -u CARGO_TARGET_DIR -u RUSTFLAGS CARGO_HOME="$home" npm_config_cache="$work/npm-cache" \
    PATH="$home/bin:/usr/local/bin:/usr/bin:/bin" DEMO_EXIT_WHEN_READY=1 \
    bash -c 'bash "$1"; rc=$?; times; exit $rc' demo "$clone/scripts/demo.sh" </dev/null >"$work/$1.log" 2>&1 || {
    tail -30 "$work/$1.log"; echo "first-run: the $1 run failed ($work/$1.log)" >&2; exit 1; }
  took=$((SECONDS - t0))
  sed 's/\x1b\[[0-9;]*m//g' "$work/$1.log" | grep -aE '^(== |-- |ready in|\[install\]|   \(the bridge build)'
  # `times`' second line: the children's user and system time.
  local cpu
  cpu=$(grep -aE '^[0-9]+m[0-9.]+s [0-9]+m[0-9.]+s$' "$work/$1.log" | tail -1)
  echo "== $1 run: ${took}s until /readyz answered 200; CPU time (user system) of all it ran: $cpu; $(uptime)"
}
took=0
run first; first=$took
run second; second=$took
printf '\nfrom zero: %ss (target 600 s)\nsecond run, nothing changed: %ss (target 30 s)\n' "$first" "$second"
printf 'logs: %s/first.log %s/second.log\n' "$work" "$work"
