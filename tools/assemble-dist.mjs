// (In tools/, beside the node_modules it imports lightningcss from.) Writes the SPA's dist/ the
// way `trunk build --release` does, without Trunk (scripts/build-ui.sh, its default build):
// from frontend/index.html, the WASM that cargo built and the glue wasm-bindgen wrote, it runs
// wasm-opt with the options index.html gives Trunk, copies each `data-trunk` asset under a
// content-hashed name (minifying the stylesheet with lightningcss, as Trunk does), and writes an
// index.html naming them with `integrity` hashes and Trunk.toml's `pattern_script`. The bridge
// (backend/src/web/spa.rs) needs exactly that of dist/: hashed names (`NAME-HEX.EXT`, served as
// immutable), the `app-loader` element loader.js reads, and `<title>`. The glue is then minified
// and everything precompressed by the same steps as after Trunk (scripts/build-ui.sh).
//
//   node tools/assemble-dist.mjs OUT_DIR CARGO_WASM BINDGEN_DIR
//
// BINDGEN_DIR holds `frontend.js` and `frontend_bg.wasm` (`wasm-bindgen --target web
// --no-typescript --out-name frontend CARGO_WASM`, the call Trunk makes).
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { transform } from "lightningcss";

const [out, cargoWasm, bindgenDir] = process.argv.slice(2);
if (!out || !cargoWasm || !bindgenDir) {
  console.error("usage: node tools/assemble-dist.mjs OUT_DIR CARGO_WASM BINDGEN_DIR");
  process.exit(2);
}
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const frontend = join(root, "frontend");
const fail = (message) => {
  console.error(`assemble-dist: ${message}`);
  process.exit(1);
};

// Trunk's name hash is 64 bits in hex; the bridge counts 12 to 16 hex digits as a content hash.
const nameHash = (data) => createHash("sha256").update(data).digest("hex").slice(0, 16);
const sri = (data) => "sha384-" + createHash("sha384").update(data).digest("base64");
const hashedName = (name, data) => {
  const ext = extname(name);
  return `${basename(name, ext)}-${nameHash(data)}${ext}`;
};
const attrs = (tag) => {
  const found = {};
  for (const m of tag.matchAll(/([\w-]+)(?:\s*=\s*"([^"]*)")?/g)) found[m[1]] = m[2] ?? "";
  return found;
};

mkdirSync(out, { recursive: true });
// Comments go first (as Trunk's HTML minifier drops them), so none is read as an element.
const html = readFileSync(join(frontend, "index.html"), "utf8").replace(/<!--[\s\S]*?-->/g, "");
const trunkToml = readFileSync(join(root, "Trunk.toml"), "utf8");
const pattern = trunkToml.match(/^pattern_script\s*=\s*'([^']*)'/m)?.[1];
if (!pattern) fail("no pattern_script in Trunk.toml");

// Each `data-trunk` element becomes what Trunk writes for it.
const replaced = html.replace(/<(link|script)\b([^>]*\bdata-trunk\b[^>]*?)\/?>(<\/script>)?/gs, (_, tag, body) => {
  const a = attrs(body);
  if (tag === "script") {
    const data = readFileSync(join(frontend, a.src));
    const name = hashedName(a.src, data);
    writeFileSync(join(out, name), data);
    return `<script integrity="${sri(data)}" src="/${name}" type="${a.type ?? "module"}"></script>`;
  }
  if (a.rel === "icon") {
    const data = readFileSync(join(frontend, a.href));
    const name = hashedName(a.href, data);
    writeFileSync(join(out, name), data);
    return `<link href="/${name}" integrity="${sri(data)}" rel="icon">`;
  }
  if (a.rel === "css") {
    const source = readFileSync(join(frontend, a.href));
    const { code } = transform({ filename: a.href, code: source, minify: true });
    const name = hashedName(a.href, code);
    writeFileSync(join(out, name), code);
    return `<link href="/${name}" integrity="${sri(code)}" rel="stylesheet">`;
  }
  if (a.rel === "rust") {
    const bin = a["data-bin"] ?? "frontend";
    const base = `${bin}-${nameHash(readFileSync(cargoWasm))}`;
    const js = `${base}.js`;
    const wasm = `${base}_bg.wasm`;
    copyFileSync(join(bindgenDir, `${bin}.js`), join(out, js));
    // wasm-opt as Trunk calls it: output, level, input, then data-wasm-opt-params.
    const level = a["data-wasm-opt"] ?? "s";
    const params = (a["data-wasm-opt-params"] ?? "").split(/\s+/).filter(Boolean);
    const wasmOpt = join(root, "tools/node_modules/.bin/wasm-opt");
    execFileSync(wasmOpt, [`--output=${join(out, wasm)}`, `-O${level}`, join(bindgenDir, `${bin}_bg.wasm`), ...params], {
      stdio: "inherit",
    });
    const loader = pattern.replaceAll("{base}", "/").replaceAll("{js}", js).replaceAll("{wasm}", wasm);
    const glue = readFileSync(join(out, js));
    const optimized = readFileSync(join(out, wasm));
    return (
      loader +
      `<link crossorigin href="/${js}" integrity="${sri(glue)}" rel="modulepreload">` +
      `<link as="fetch" crossorigin href="/${wasm}" integrity="${sri(optimized)}" rel="preload" type="application/wasm">`
    );
  }
  fail(`a data-trunk element this script does not know: <${tag}${body}>`);
});
// The whitespace between tags goes, as with Trunk's HTML minifier.
const page = replaced
  .replace(/>\s+</g, "><")
  .replace(/\s+/g, " ")
  .trim();
if (page.includes("data-trunk")) fail("a data-trunk element was left in index.html");
writeFileSync(join(out, "index.html"), page);
console.error(`assemble-dist: ${out}/index.html and its assets written`);
