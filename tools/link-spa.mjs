#!/usr/bin/env node
// (In tools/, beside the node_modules it imports binaryen from.) The linker of the SPA's release
// WASM: scripts/wasm-env.sh names it as cargo's linker for wasm32, so Trunk's build, build-ui.sh's
// and the tests' `trunk serve --release` all link through it. It runs rust-lld exactly as rustc
// asked, except for the exports of wasm-streams' three `#[wasm_bindgen]` classes.
//
// Why: Leptos forces server_fn's `browser` feature, which brings wasm-streams, whose
// `IntoUnderlyingSource`, `IntoUnderlyingByteSource` and `IntoUnderlyingSink` are exported to
// JS. This SPA uses no server functions and no streams, so nothing calls them, but an exported
// function is a root: its futures' vtables put their code in the function table, where no later
// tool can tell it is dead (tools/minify-glue.mjs removes the glue's classes and the exports,
// and 10 KB of their code stays). Linked without those exports, the linker drops that code
// itself. First load: -3.0 KB brotli (docs/ui.md).
//
// wasm-bindgen still reads the classes' descriptions from the WASM's custom section and fails
// when an export it describes is missing, so each dropped export comes back as a stub with the
// same signature whose body is `unreachable` (binaryen adds them). The signatures come from a
// second link with every export, written beside the output and removed after. Calling a stub
// traps; nothing can, as the glue's classes that could are removed by tools/minify-glue.mjs,
// and wasm-metadce then drops the stubs too.
//
// Should a wasm-streams or Leptos change these names, the 3 KB come back and scripts/test.sh's size
// check (bench/spa-size.sh --check) fails.
import { spawnSync } from "node:child_process";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const DROPPED = /^(__wbg_)?intounderlying(bytesource|sink|source)_/;
const fail = (message) => {
  console.error(`link-spa: ${message}`);
  process.exit(1);
};

const args = process.argv.slice(2);
// rustc passes a response file (`@path`) only when a command line is too long for the system;
// this link's is far from that, so one is not expected here.
if (args.some((arg) => arg.startsWith("@"))) fail("rustc passed a response file, which this linker does not read");
const outIndex = args.indexOf("-o");
const out = outIndex >= 0 ? args[outIndex + 1] : undefined;
if (!out) fail("rustc gave no output file (-o)");

const link = (list) => {
  const result = spawnSync("rust-lld", list, { stdio: "inherit" });
  if (result.error) fail(`rust-lld: ${result.error.message}`);
  if (result.status !== 0) process.exit(result.status ?? 1);
};

// The arguments without the dropped exports: `--export NAME` pairs removed. A link with none of
// them is rust-lld's alone. (Cargo also links wasm-streams' own cdylib, which has them: it gets
// the same treatment, and nothing uses it.)
const dropped = [];
const slim = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--export" && DROPPED.test(args[i + 1] ?? "")) {
    dropped.push(args[i + 1]);
    i++;
  } else {
    slim.push(args[i]);
  }
}
if (dropped.length === 0) {
  link(args);
  process.exit(0);
}
// 1. The WASM with every export, for the signatures; 2. the one without the dropped exports.
const full = `${out}.link-spa-full`;
link(args.map((arg, i) => (i === outIndex + 1 ? full : arg)));
link(slim);

// 3. A stub for each dropped export, with the full link's signature.
const binaryen = (await import(join(dirname(fileURLToPath(import.meta.url)), "node_modules/binaryen/index.js"))).default;
const { Features } = binaryen;
const withAll = binaryen.readBinary(readFileSync(full));
const module = binaryen.readBinary(readFileSync(out));
// The features rustc's wasm32 target uses. binaryen reads none from the file, and with more
// enabled it may write encodings that wasm-bindgen's parser refuses (seen with `All`).
module.setFeatures(
  Features.MVP | Features.BulkMemory | Features.BulkMemoryOpt | Features.CallIndirectOverlong |
    Features.NontrappingFPToInt | Features.SignExt | Features.MutableGlobals | Features.Multivalue |
    Features.ReferenceTypes,
);
for (const name of dropped) {
  const exported = withAll.getExport(name);
  if (!exported) fail(`${name}: not exported by the full link`);
  const info = binaryen.getExportInfo(exported);
  if (info.kind !== binaryen.ExternalFunction) fail(`${name}: not a function`);
  const signature = binaryen.getFunctionInfo(withAll.getFunction(info.value));
  const stub = `link-spa$${name}`;
  module.addFunction(stub, signature.params, signature.results, [], module.unreachable());
  module.addFunctionExport(stub, name);
}
if (!module.validate()) fail("the WASM with stubs does not validate");
const tmp = `${out}.link-spa-tmp`;
writeFileSync(tmp, module.emitBinary());
renameSync(tmp, out);
rmSync(full);
withAll.dispose();
module.dispose();
