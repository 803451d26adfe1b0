#!/usr/bin/env node
// Fails when the browser package's wasm holds Rust's float parsing or float formatting again.
//
// Neither belongs there (the package parses JSON with the engine's JSON.parse, times are whole
// milliseconds), yet one `"…".parse::<f64>()` or `format!("{}", f64)` brings ~23 KB gzip back
// unnoticed. The shipped wasm is stripped, so this looks for the tables that code cannot run
// without, by value: grisu's cached powers of ten (core::num::flt2dec, every `{}`/`{:?}`/`{:e}`
// of an f64 or f32) and the 128-bit powers of five of core::num::dec2flt (`str::parse::<f64>`).
// Checked against wasm32 cdylibs built like the package: one with only a `parse::<f64>()` (both
// markers found), one with only a `format!("{}", f64)` (the flt2dec one found); and against the
// worker's wasm, which formats floats (flt2dec found); and against the package with the BFF
// step-up mark of commit 7bd1e53 (an f64 parsed and printed: both found, 193.2 KB gzip
// against 169.0 without).
//
// Usage: node wasm-guard.mjs [FILE.wasm ...]   (default: the package's two builds)

import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const files = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ["crates/browser/pkg", "crates/browser/pkg-node"].map((d) => join(repo, d, "edge_oauth_browser_bg.wasm"));

// Little-endian u64s, as the tables sit in the data section.
const u64 = (hex) => Buffer.from(hex.padStart(16, "0"), "hex").reverse();
const MARKERS = [
  ["float formatting (core::num::flt2dec, grisu CACHED_POW10[0])", u64("e61acf033d1a45df")],
  ["float parsing (core::num::dec2flt, POWER_OF_FIVE_128[0])", Buffer.concat([u64("eef453d6923bd65a"), u64("113faa2906a13b3f")])],
];

let failed = false;
for (const file of files) {
  const wasm = readFileSync(file);
  const found = MARKERS.filter(([, bytes]) => wasm.includes(bytes)).map(([what]) => what);
  const name = relative(process.cwd(), file) || file;
  if (found.length) {
    failed = true;
    console.error(`wasm-guard: ${name} holds ${found.join(" and ")}: an f64 is parsed or formatted somewhere`);
  } else {
    console.log(`wasm-guard: ${name}: no float parsing or formatting (${wasm.length} bytes)`);
  }
}
process.exit(failed ? 1 : 0);
