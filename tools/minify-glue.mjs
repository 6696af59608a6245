// (In tools/, beside the node_modules it imports terser from.) Minifies the wasm-bindgen glue that Trunk wrote into a dist/ directory (Trunk's own JS
// minifier fails on it), and puts the new file's hash into index.html's `integrity`
// attribute, which named the unminified file. First load: the glue 6 439 -> ~4 800 B brotli.
//
//   node tools/minify-glue.mjs dist
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { minify } from "terser";

const dist = process.argv[2] ?? "dist";
const indexPath = join(dist, "index.html");
const index = readFileSync(indexPath, "utf8");
// The glue is the module that loader.js imports: Trunk.toml's `pattern_script` names it.
const glueName = index.match(/data-js="?\/?([^"\s>]+\.js)/)?.[1];
if (!glueName) {
  console.error(`minify-glue: no data-js in ${indexPath}`);
  process.exit(1);
}
const gluePath = join(dist, glueName.split("/").pop());
const source = readFileSync(gluePath, "utf8");
const sri = (text) => "sha384-" + createHash("sha384").update(text).digest("base64");
// Module scope: top-level names may be mangled, exports keep their names.
const { code } = await minify(source, { module: true, compress: true, mangle: true });
if (!code) {
  console.error(`minify-glue: terser gave nothing for ${gluePath}`);
  process.exit(1);
}
writeFileSync(gluePath, code);
const before = sri(source);
if (index.includes(before)) {
  writeFileSync(indexPath, index.split(before).join(sri(code)));
}
console.error(`minify-glue: ${gluePath} ${source.length} -> ${code.length} B`);
