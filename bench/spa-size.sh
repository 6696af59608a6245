#!/usr/bin/env bash
# What a browser downloads for the SPA: raw, gzip (-9) and brotli (quality 11) sizes of the
# release build's wasm and JavaScript (Trunk's wasm-bindgen glue plus loader.js), and their total.
#
#   bench/spa-size.sh               build the UI (scripts/build-ui.sh), then measure dist/
#   bench/spa-size.sh --no-build    measure the dist/ that is there
#   bench/spa-size.sh --check       also fail when the gzip total of wasm + JS exceeds the budget
#
# brotli comes from Node's zlib (Node is needed for the build anyway), so nothing else is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The budget, in bytes of gzip -9 over wasm + JS: 100 KB, counted as 100 000 bytes (not KiB).
BUDGET_GZIP_BYTES=100000

build=1 check=0
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --check) check=1 ;;
    *) echo "usage: $0 [--no-build] [--check]" >&2; exit 2 ;;
  esac
done
[ "$build" -eq 1 ] && scripts/build-ui.sh >&2

shopt -s nullglob
wasm=(dist/*.wasm)
js=(dist/*.js)
other=(dist/*.css dist/*.html)
if [ ${#wasm[@]} -ne 1 ] || [ ${#js[@]} -eq 0 ]; then
  echo "dist/ does not hold one .wasm and its .js: run scripts/build-ui.sh first" >&2
  exit 1
fi

# One line per file (kind, raw, gzip, brotli, name), then a sum per kind and the budget verdict.
node - "$BUDGET_GZIP_BYTES" "$check" "${wasm[@]}" -- "${js[@]}" -- "${other[@]}" <<'EOF'
const fs = require("fs");
const zlib = require("zlib");
const { execFileSync } = require("child_process");
const [budget, check, ...rest] = process.argv.slice(2);
const groups = [[], [], []];
let g = 0;
for (const arg of rest) (arg === "--" ? g++ : groups[g].push(arg));
const [wasm, js, other] = groups;

const measure = (file) => {
  const data = fs.readFileSync(file);
  return {
    file,
    raw: data.length,
    // The gzip CLI, as the README's figures were always measured.
    gzip: execFileSync("gzip", ["-9c", file], { maxBuffer: 1 << 26 }).length,
    brotli: zlib.brotliCompressSync(data, {
      params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length },
    }).length,
  };
};
const sum = (rows) => rows.reduce((a, r) => ({ raw: a.raw + r.raw, gzip: a.gzip + r.gzip, brotli: a.brotli + r.brotli }), { raw: 0, gzip: 0, brotli: 0 });
const line = (what, r) => console.log(`${what.padEnd(42)} ${String(r.raw).padStart(9)} ${String(r.gzip).padStart(9)} ${String(r.brotli).padStart(9)}`);

console.log(`${"file".padEnd(42)} ${"raw".padStart(9)} ${"gzip -9".padStart(9)} ${"brotli".padStart(9)}`);
const wasmRows = wasm.map(measure);
const jsRows = js.map(measure);
const otherRows = other.map(measure);
for (const r of [...wasmRows, ...jsRows, ...otherRows]) line(r.file, r);
const wasmSum = sum(wasmRows);
const jsSum = sum(jsRows);
const total = sum([...wasmRows, ...jsRows]);
console.log("-".repeat(72));
line("wasm", wasmSum);
line("JS (glue + loader)", jsSum);
line("total wasm + JS", total);
line("everything in dist/ (+ CSS, HTML)", sum([...wasmRows, ...jsRows, ...otherRows]));
const verdict = total.gzip <= Number(budget) ? "within" : "OVER";
console.log(`budget: ${budget} B gzip for wasm + JS; ${total.gzip} B is ${verdict} it (${(100 * total.gzip / Number(budget)).toFixed(1)}%)`);
if (check === "1" && verdict === "OVER") process.exit(1);
EOF
