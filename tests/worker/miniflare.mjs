// Starts the built worker (worker/build, made by `make worker`) in real workerd through
// miniflare 4: SQLite Durable Objects (the TokenSession class), the given bindings, on
// 127.0.0.1. Shared by tests/worker/run.mjs and the browser end-to-end tests
// (tests/browser/e2e.mjs), which import it from here so that `miniflare` resolves from
// tests/worker/node_modules.

import * as path from 'node:path';
import { Miniflare } from 'miniflare';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const DEFAULT_BUILD = process.env.EDGE_OAUTH_WORKER_BUILD || path.join(ROOT, 'worker/build');

// Resolves with { mf, base } once workerd listens; `port` 0 picks one. workerd's own output
// (the worker's console) goes to stderr only with `verbose`.
export async function startMiniflare({ build = DEFAULT_BUILD, bindings, persistDir, port = 0, verbose = false }) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: path.join(build, 'index.js'),
    modulesRoot: build,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
    compatibilityDate: '2026-01-01',
    durableObjects: { SESSIONS: { className: 'TokenSession', useSQLite: true } },
    durableObjectsPersist: persistDir ?? false,
    bindings,
    host: '127.0.0.1',
    port,
    handleRuntimeStdio(stdout, stderr) {
      if (verbose) {
        stdout.pipe(process.stderr);
        stderr.pipe(process.stderr);
      } else {
        stdout.resume();
        stderr.resume();
      }
    },
  });
  try {
    const url = await mf.ready;
    return { mf, base: url.origin };
  } catch (err) {
    await mf.dispose().catch(() => {});
    throw err;
  }
}
