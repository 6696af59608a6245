// Starts the WASM app from an external file rather than Trunk's default inline <script>, so the
// bridge's Content-Security-Policy needs neither 'unsafe-inline' nor a per-build hash.
// Trunk writes the (content-hashed) file names into this tag's data attributes: see
// `pattern_script` in Trunk.toml.
const tag = document.getElementById("app-loader");
const { default: init } = await import(tag.dataset.js);
await init({ module_or_path: tag.dataset.wasm });
