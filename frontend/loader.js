// Starts the WASM app from an external file rather than Trunk's default inline <script>, so the
// bridge's Content-Security-Policy needs neither 'unsafe-inline' nor a per-build hash.
// Trunk writes the (content-hashed) file names into the data attributes of the `app-loader`
// element: see `pattern_script` in Trunk.toml. This file is a `<script data-trunk>` of
// index.html, so its own name carries a hash too (a browser may cache it for good).
const tag = document.getElementById("app-loader");
const { default: init } = await import(tag.dataset.js);
await init({ module_or_path: tag.dataset.wasm });
