// Writes `FILE.br` (brotli, quality 11) and `FILE.gz` (gzip, level 9) beside every file of a
// directory tree (default: dist/), so the bridge can send a browser the compressed bytes
// without compressing on each request (tower-http's ServeDir serves them by Accept-Encoding).
// A variant that is not smaller than its file is not written (the plain file is served), and a
// .br/.gz whose file is gone, or that is no longer worth keeping, is removed: running it twice,
// or after a rebuild, leaves exactly the variants of the files that are there.
//
//   node tools/precompress.mjs [DIR]
import { readdirSync, readFileSync, writeFileSync, rmSync, existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";

const root = process.argv[2] ?? "dist";
const VARIANTS = [
  [".br", (data) => brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  })],
  [".gz", (data) => gzipSync(data, { level: 9 })],
];
const isVariant = (name) => VARIANTS.some(([ext]) => name.endsWith(ext));

let written = 0;
const walk = (dir) => {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      walk(path);
    } else if (isVariant(entry.name)) {
      // A variant of a file that no longer exists (or is itself a variant) goes.
      const [ext] = VARIANTS.find(([e]) => entry.name.endsWith(e));
      const base = path.slice(0, -ext.length);
      if (!existsSync(base) || !statSync(base).isFile() || isVariant(base)) rmSync(path);
    } else if (entry.isFile()) {
      const data = readFileSync(path);
      for (const [ext, compress] of VARIANTS) {
        const packed = compress(data);
        if (packed.length < data.length) {
          writeFileSync(path + ext, packed);
          written++;
        } else {
          rmSync(path + ext, { force: true });
        }
      }
    }
  }
};
walk(root);
console.error(`precompress: ${written} .br/.gz files written in ${root}`);
