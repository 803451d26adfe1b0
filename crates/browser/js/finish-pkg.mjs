#!/usr/bin/env node
// After `wasm-pack build`: adds the package's plain-JS part to its output.
//
//   node crates/browser/js/finish-pkg.mjs crates/browser/pkg web       (before esbuild minifies)
//   node crates/browser/js/finish-pkg.mjs crates/browser/pkg-node nodejs
//
// Both: the npm name `edge-oauth` (the crate is `edge-oauth-browser`). web: the plain-JS parts
// beside the glue and in package.json `files`: popup-callback.js, re-exported as
// `completePopupCallback`; bff.js, which `EdgeOAuth.create` imports for `architecture: "bff"`. nodejs: `completePopupCallback` throws (no window in Node), as the
// package's types declare it for both builds.

import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [pkgDir, target] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const glue = join(pkgDir, 'edge_oauth_browser.js');
const manifest = join(pkgDir, 'package.json');
const pkg = JSON.parse(readFileSync(manifest, 'utf8'));
pkg.name = 'edge-oauth';

if (target === 'web') {
  const extra = ['popup-callback.js', 'popup-callback.d.ts', 'bff.js', 'bff.d.ts'];
  for (const f of extra) copyFileSync(join(here, f), join(pkgDir, f));
  appendFileSync(
    glue,
    `
export { completePopupCallback } from './popup-callback.js';
// "bff": the page's side is plain JS (bff.js), loaded only by a page that asks for it.
const createInWasm = EdgeOAuth.create;
EdgeOAuth.create = function create(options) {
  return options?.architecture === 'bff'
    ? import('./bff.js').then((m) => m.createBffClient(options))
    : createInWasm(options);
};
`,
  );
  pkg.files = [...new Set([...(pkg.files || []), ...extra])];
} else if (target === 'nodejs') {
  appendFileSync(
    glue,
    `
module.exports.completePopupCallback = function completePopupCallback() {
  const e = new Error('completePopupCallback runs on the callback page of a popup login (a window)');
  e.name = 'EdgeOAuthError';
  e.code = 'invalid_input';
  e.recovery = 'misconfiguration';
  throw e;
};
`,
  );
} else {
  console.error('usage: finish-pkg.mjs <pkg dir> web|nodejs');
  process.exit(2);
}
writeFileSync(manifest, JSON.stringify(pkg, null, 2) + '\n');
