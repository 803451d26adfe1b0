#!/usr/bin/env node
// Bundles src/app.ts and src/callback.ts into dist/ with esbuild (ES modules, minified, with
// source maps). `edge-oauth` stays an import of /pkg/edge_oauth_browser.js (and
// `edge-oauth/popup-callback.js` of /pkg/popup-callback.js): the wasm-pack output is served as
// it is (its glue fetches the .wasm next to itself).
import * as path from 'node:path';
import * as esbuild from 'esbuild';

const HERE = import.meta.dirname;
const edgeOAuth = {
  name: 'edge-oauth',
  setup(build) {
    build.onResolve({ filter: /^edge-oauth$/ }, () => ({ path: '/pkg/edge_oauth_browser.js', external: true }));
    // The package's plain-JS parts, served beside it (no wasm behind them).
    build.onResolve({ filter: /^edge-oauth\/(popup-callback|bff)\.js$/ }, (a) => ({ path: `/pkg/${a.path.slice('edge-oauth/'.length)}`, external: true }));
  },
};

const result = await esbuild.build({
  entryPoints: [path.join(HERE, 'src/app.ts'), path.join(HERE, 'src/callback.ts')],
  outdir: path.join(HERE, 'dist'),
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
  plugins: [edgeOAuth],
});
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  if (file.endsWith('.js')) process.stdout.write(`www: ${path.relative(HERE, file)} ${out.bytes} bytes\n`);
}
