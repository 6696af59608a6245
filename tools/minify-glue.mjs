// (In tools/, beside the node_modules it imports terser and wasm-opt from.) Minifies what
// wasm-bindgen wrote into a dist/ directory (by Trunk or tools/assemble-dist.mjs), then puts the
// new files' hashes into index.html's `integrity` attributes, which named the files before:
//
// 1. The names the WASM and its glue share. wasm-bindgen names every import after the JS
//    function plus a hash (`__wbg_getRandomValues_07f3179f2d015362`, ~160 of them, each under
//    the module `./frontend_bg.js`) and some exports after a whole Rust type path (300 bytes
//    and more); both files spell each one out, and the hashes do not compress. binaryen's
//    `--minify-imports-and-exports-and-modules` (the pass Emscripten's release builds use)
//    renames them all in the WASM to one or two letters and prints the mapping, which is applied
//    to the glue here: the import object's keys and module, and every `wasm.<export>`. Every
//    name of the mapping must be found in the glue as expected, or the step fails (a
//    wasm-bindgen whose glue looks otherwise is caught here, not in a browser). First load:
//    WASM -2.4 KB, glue -1.9 KB brotli.
// 2. The glue, by terser (Trunk's own JS minifier fails on it): ~6.4 -> ~3.4 KB brotli.
//
// The files keep the names Trunk gave them: the hash in a name still stands for one build's
// bytes, as both steps give the same output for the same input.
//
//   node tools/minify-glue.mjs dist
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { minify } from "terser";

const dist = process.argv[2] ?? "dist";
const fail = (message) => {
  console.error(`minify-glue: ${message}`);
  process.exit(1);
};
const indexPath = join(dist, "index.html");
let index = readFileSync(indexPath, "utf8");
// The glue is the module that loader.js imports, the WASM the file it instantiates: Trunk.toml's
// `pattern_script` names both.
const named = (attribute) => index.match(new RegExp(`${attribute}="?/?([^"\\s>]+)`))?.[1]?.split("/").pop();
const glueName = named("data-js");
const wasmName = named("data-wasm");
if (!glueName || !wasmName) fail(`no data-js or data-wasm in ${indexPath}`);
const gluePath = join(dist, glueName);
const wasmPath = join(dist, wasmName);
const source = readFileSync(gluePath, "utf8");
const wasmBefore = readFileSync(wasmPath);
const sri = (data) => "sha384-" + createHash("sha384").update(data).digest("base64");
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

// The features are those rustc's wasm32 target enables (binaryen reads them from the
// target_features section, which the build strips).
const binaryen = (tool) => join(dirname(fileURLToPath(import.meta.url)), "node_modules/.bin", tool);
const features = ["reference-types", "bulk-memory", "sign-ext", "nontrapping-float-to-int", "multivalue", "mutable-globals"].map(
  (f) => `--enable-${f}`,
);
const work = mkdtempSync(join(tmpdir(), "minify-glue-"));
let glue = source;
let wasm;
try {
  // 0. Classes nobody can use, and the exports only the glue could call. Leptos's server
  // functions (which this SPA does not use) bring wasm-streams, whose `#[wasm_bindgen]` types
  // the glue exports as JS classes (`IntoUnderlyingSource`, ...). tools/link-spa.mjs already
  // left their exports out at link time (the linker dropped their code) and put stubs that trap
  // in their place for wasm-bindgen. The glue's one importer is loader.js, which takes `default`
  // only; a class that nothing in the glue refers to (the WASM never hands one out) is
  // removed, with its `Symbol.dispose` line and its FinalizationRegistry. Then binaryen's
  // wasm-metadce keeps exactly the exports the glue still calls (`wasm.<name>`), and drops
  // the code only the others reached, and -Os runs once more. First load: -1.1 KB brotli.
  const loader = index.match(/<script[^>]*src="?\/?(loader[^"\s>]*\.js)/)?.[1];
  if (!loader) fail(`no loader script in ${indexPath}`);
  const loaderSource = readFileSync(join(dist, loader), "utf8");
  for (const [block, name] of [...glue.matchAll(/^export class (\w+) \{\n[\s\S]*?\n\}\n/gm)]) {
    const dispose = `if (Symbol.dispose) ${name}.prototype[Symbol.dispose] = ${name}.prototype.free;\n`;
    const registry = new RegExp(`^const ${name}Finalization = [^;]*;\\n`, "m");
    const without = glue.replace(block, "").replace(dispose, "").replace(registry, "");
    if (new RegExp(`(?<![\\w$])${name}(?![\\w$])`).test(without) || loaderSource.includes(name)) continue;
    if (without.length >= glue.length - block.length) fail(`${name}: its dispose line or registry not found in ${gluePath}`);
    glue = without;
  }
  const called = new Set([...glue.matchAll(/(?<![\w$])wasm\.([\w$]+)/g)].map((m) => m[1]));
  const exported = WebAssembly.Module.exports(new WebAssembly.Module(wasmBefore)).map((e) => e.name);
  const graph = exported.filter((name) => called.has(name)).map((name) => ({ name: `export:${name}`, root: true, export: name }));
  writeFileSync(join(work, "graph.json"), JSON.stringify(graph));
  const trimmed = join(work, "trimmed.wasm");
  execFileSync(binaryen("wasm-metadce"), [...features, "--graph-file", join(work, "graph.json"), wasmPath, "-o", trimmed], {
    stdio: ["ignore", "ignore", "inherit"],
  });

  // 1. The shared names.
  const renamed = join(work, "renamed.wasm");
  const printed = execFileSync(
    binaryen("wasm-opt"),
    [...features, "-Os", "--minify-imports-and-exports-and-modules", trimmed, "-o", renamed],
    { encoding: "utf8", maxBuffer: 1 << 26 },
  );
  const mapping = JSON.parse(printed.slice(printed.indexOf("{")));
  wasm = readFileSync(renamed);
  const modules = new Set(mapping.imports.map(([module]) => module));
  const newModules = new Set(WebAssembly.Module.imports(new WebAssembly.Module(wasm)).map((i) => i.module));
  if (modules.size !== 1 || newModules.size !== 1) {
    fail(`expected the WASM to import from one module, got ${[...modules]} -> ${[...newModules]}`);
  }
  const [[oldModule], [newModule]] = [[...modules], [...newModules]];
  const replaceOnce = (pattern, by, what) => {
    const re = new RegExp(pattern, "g");
    const found = glue.match(re)?.length ?? 0;
    if (found !== 1) fail(`${what}: found ${found} times in ${gluePath}, expected once`);
    glue = glue.replace(re, by);
  };
  // `"./frontend_bg.js": import0,` in `__wbg_get_imports`' answer.
  replaceOnce(`${JSON.stringify(oldModule)}(?=\\s*:)`, JSON.stringify(newModule), `the module ${oldModule}`);
  // Each import is one key of the import object: `__wbg_…: function(`.
  for (const [, name, to] of mapping.imports) {
    replaceOnce(`(?<![\\w$.])${escape(name)}(?=\\s*:)`, JSON.stringify(to), `the import ${name}`);
  }
  // Each export the glue calls is `wasm.<name>`; the ones it never calls (`main`, which
  // `__wbindgen_start` runs, and wasm-bindgen's markers) need nothing.
  for (const [name, to] of mapping.exports) {
    glue = glue.replace(new RegExp(`(?<![\\w$])wasm\\.${escape(name)}(?![\\w$])`, "g"), `wasm[${JSON.stringify(to)}]`);
  }
  // An export named in a string (`wasm["…"]`) would now be missing. (The glue's own functions
  // that wrap an export may have its name: terser renames them.)
  for (const [name] of mapping.exports) {
    if (new RegExp(`["'\`]${escape(name)}["'\`]`).test(glue)) {
      fail(`the export ${name} is still named in ${gluePath} other than as wasm.${name}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

// 2. terser. Module scope: top-level names may be mangled, exports keep their names.
const { code } = await minify(glue, { module: true, compress: true, mangle: true });
if (!code) fail(`terser gave nothing for ${gluePath}`);
writeFileSync(gluePath, code);
writeFileSync(wasmPath, wasm);
for (const [before, after, file] of [[source, code, gluePath], [wasmBefore, wasm, wasmPath]]) {
  const old = sri(before);
  if (!index.includes(old)) fail(`index.html has no integrity for ${file}`);
  index = index.split(old).join(sri(after));
}
writeFileSync(indexPath, index);
console.error(`minify-glue: ${gluePath} ${source.length} -> ${code.length} B, ${wasmPath} ${wasmBefore.length} -> ${wasm.length} B`);
