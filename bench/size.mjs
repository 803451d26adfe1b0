#!/usr/bin/env node
// Size table: what each browser OAuth client costs a web page, raw and gzip -9.
//
// Each JS library is bundled from an entry in entries/ that re-exports what a web client uses,
// with esbuild --bundle --minify --format=esm --platform=browser. Our row is the wasm-pack
// output (pkg/edge_oauth_browser_bg.wasm + pkg/edge_oauth_browser.js), counted as `make
// browser-pkg` builds it (the JS glue minified by esbuild --minify --keep-names).
//
// Usage: node size.mjs [PKG_DIR]   (or EDGE_OAUTH_PKG=DIR; default <repo>/crates/browser/pkg)
// Prints a Markdown table and writes results/size.json.

import { build } from "esbuild";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, gzipSync, constants as zlibConstants } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..");

const pkgArg = process.argv[2] || process.env.EDGE_OAUTH_PKG;
const pkgDir = pkgArg ? resolve(process.cwd(), pkgArg) : join(repo, "crates/browser/pkg");
const OUR_FILES = ["edge_oauth_browser_bg.wasm", "edge_oauth_browser.js"];

const ESBUILD_FLAGS = "--bundle --minify --format=esm --platform=browser";

// Rows of the main table, then the context rows (the transport an app ships anyway).
const ROWS = [
  { id: "mcp-sdk-auth", pkg: "@modelcontextprotocol/sdk", what: "client/auth.js: auth, discovery (PRM + AS), start/exchange/refresh, registerClient" },
  { id: "mcp-client-auth", pkg: "@modelcontextprotocol/client", what: "withOAuth, auth, discovery, start/exchange/refresh, registerClient, DPoP helpers" },
  { id: "oauth4webapi", pkg: "oauth4webapi", what: "discovery (AS + RFC 9728), DCR, PKCE, code grant, refresh, revocation, device flow, DPoP" },
  { id: "oidc-client-ts", pkg: "oidc-client-ts", what: "UserManager" },
];
const CONTEXT = [
  { id: "mcp-sdk-transport", pkg: "@modelcontextprotocol/sdk", what: "StreamableHTTPClientTransport alone (imports client/auth.js itself)" },
  { id: "mcp-sdk-transport-auth", pkg: "@modelcontextprotocol/sdk", what: "StreamableHTTPClientTransport + the auth entry above" },
  { id: "mcp-client-auth-nodpop", pkg: "@modelcontextprotocol/client", what: "the auth entry above without the DPoP helpers" },
  { id: "mcp-client-transport", pkg: "@modelcontextprotocol/client", what: "StreamableHTTPClientTransport alone" },
  { id: "mcp-client-transport-auth", pkg: "@modelcontextprotocol/client", what: "StreamableHTTPClientTransport + the auth entry above" },
];

const gzip9 = (buf) => gzipSync(buf, { level: zlibConstants.Z_BEST_COMPRESSION }).length;
// What a CDN serving brotli sends (quality 11, as for precompressed static files).
const brotli11 = (buf) =>
  brotliCompressSync(buf, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: buf.length } }).length;
const kb = (n) => (n / 1024).toFixed(1);

// The installed version, read from node_modules directly (not every package exports
// "./package.json", and @modelcontextprotocol/sdk's "./*" export maps it into dist/).
function versionOf(name) {
  return JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;
}

// Minified bytes in the output, grouped by npm package (or "(entry)").
function byPackage(metafile) {
  const out = Object.values(metafile.outputs)[0];
  const totals = {};
  for (const [input, { bytesInOutput }] of Object.entries(out.inputs)) {
    const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/g);
    const name = m ? m[m.length - 1].slice("node_modules/".length) : "(entry)";
    if (bytesInOutput > 0) totals[name] = (totals[name] || 0) + bytesInOutput;
  }
  return Object.entries(totals).sort((a, b) => b[1] - a[1]);
}

async function bundle(row) {
  const entry = join(here, "entries", `${row.id}.mjs`);
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    write: false,
    metafile: true,
    logLevel: "silent",
    absWorkingDir: here,
  });
  const code = result.outputFiles[0].contents;
  return {
    ...row,
    version: versionOf(row.pkg),
    entry: relative(repo, entry),
    raw: code.length,
    gzip: gzip9(code),
    brotli: brotli11(code),
    warnings: result.warnings.length,
    packages: Object.fromEntries(byPackage(result.metafile)),
  };
}

function ours() {
  const row = {
    id: "edge-oauth-browser",
    pkg: "edge-oauth (browser wasm)",
    what: OUR_FILES.join(" + ") + " (wasm-pack --target web --release; JS glue esbuild --minify --keep-names)",
    pkgDir: relative(repo, pkgDir) || ".",
  };
  const paths = OUR_FILES.map((f) => join(pkgDir, f));
  if (!paths.every((p) => existsSync(p))) return { ...row, built: false };
  const files = paths.map((p) => {
    const buf = readFileSync(p);
    return { file: relative(repo, p), raw: buf.length, gzip: gzip9(buf), brotli: brotli11(buf) };
  });
  let version = "";
  try {
    version = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")).version;
  } catch {}
  return {
    ...row,
    built: true,
    version,
    files,
    raw: files.reduce((s, f) => s + f.raw, 0),
    gzip: files.reduce((s, f) => s + f.gzip, 0),
    brotli: files.reduce((s, f) => s + f.brotli, 0),
  };
}

function table(rows) {
  const lines = [
    "| Package | Version | Bundled | Raw bytes | Raw KB | gzip -9 bytes | gzip -9 KB | brotli -11 KB |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    if (r.built === false) {
      lines.push(`| ${r.pkg} | | ${r.what} | n/a (not built) | | | | |`);
      continue;
    }
    lines.push(`| ${r.pkg} | ${r.version} | ${r.what} | ${r.raw} | ${kb(r.raw)} | ${r.gzip} | ${kb(r.gzip)} | ${kb(r.brotli)} |`);
  }
  return lines.join("\n");
}

const started = Date.now();
const bundled = await Promise.all([...ROWS, ...CONTEXT].map(bundle));
const main = [...bundled.slice(0, ROWS.length), ours()];
const context = bundled.slice(ROWS.length);

const header =
  `## Bundle size (esbuild ${versionOf("esbuild")} ${ESBUILD_FLAGS}; gzip = Node zlib level 9; brotli = Node zlib quality 11; KB = 1024 bytes)`;
console.log(header + "\n");
console.log(table(main));
if (main.at(-1).built) {
  for (const f of main.at(-1).files) console.log(`\n- ${f.file}: ${f.raw} raw, ${f.gzip} gzip -9, ${f.brotli} brotli -11`);
} else {
  console.log(`\n- edge-oauth: no ${OUR_FILES.join(" / ")} in ${relative(repo, pkgDir) || pkgDir}`);
}
// The plain-JS parts a page loads instead of the package (no wasm): a popup's callback page,
// and a backend-for-frontend page.
for (const [file, what] of [["popup-callback.js", "a popup's callback page"], ["bff.js", 'a "bff" page']]) {
  const path = join(pkgDir, file);
  if (!existsSync(path)) continue;
  const buf = readFileSync(path);
  console.log(`- ${relative(repo, path)} (${what}, alone): ${buf.length} raw, ${gzip9(buf)} gzip -9, ${brotli11(buf)} brotli -11`);
}
console.log("\n### Context: the MCP transport an app ships anyway, and variants of the entries\n");
console.log(table(context));
console.log("\n### Largest packages in each bundle (minified bytes before gzip)\n");
for (const r of bundled) {
  const top = Object.entries(r.packages).slice(0, 4).map(([n, b]) => `${n} ${b}`).join(", ");
  console.log(`- ${r.id}: ${top}`);
}
console.log(`\n(${((Date.now() - started) / 1000).toFixed(1)} s)`);

const resultsDir = join(here, "results");
mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  join(resultsDir, "size.json"),
  JSON.stringify(
    {
      generated: new Date().toISOString(),
      node: process.version,
      esbuild: { version: versionOf("esbuild"), flags: ESBUILD_FLAGS },
      gzip: "node:zlib gzipSync level 9",
      brotli: "node:zlib brotliCompressSync quality 11",
      rows: main,
      context,
    },
    null,
    2,
  ) + "\n",
);
console.log(`wrote ${relative(process.cwd(), join(resultsDir, "size.json")) || "results/size.json"}`);
