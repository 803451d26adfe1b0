#!/usr/bin/env node
// Bundles worker.mjs with esbuild and runs it in real workerd through miniflare 4 (both from
// tests/worker/node_modules), KV in memory, on 127.0.0.1. The authorization server and the MCP
// server share the worker's one origin.
//
// Usage: node run.mjs [--port N] [--access-token-ttl S] [--cors-origin O] [--interactive] [--quiet]
// Prints exactly one JSON line on stdout once workerd listens, logs to stderr; SIGTERM/SIGINT
// dispose of workerd and exit 0.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = `usage: node workers-oauth/run.mjs [options]
  --port N                 the worker's port (default 0 = a free one)
  --access-token-ttl S     access token lifetime in seconds (default 3600)
  --cors-origin ORIGIN     answer CORS on /mcp and its metadata for this origin (repeatable)
  --interactive            a login form and a consent page instead of auto-approving
  --quiet                  no workerd output on stderr
  -h, --help               this text`;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'access-token-ttl': { type: 'string', default: '3600' },
      'cors-origin': { type: 'string', multiple: true, default: [] },
      interactive: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }));
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}\n`);
  process.exit(2);
}
if (args.help) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(0);
}
const port = Number(args.port);
const ttl = Number(args['access-token-ttl']);
if (!Number.isInteger(port) || port < 0 || port > 65535 || !Number.isInteger(ttl) || ttl < 1) {
  process.stderr.write(`--port must be in [0, 65535], --access-token-ttl a positive integer\n${USAGE}\n`);
  process.exit(2);
}
const here = import.meta.dirname;
const contract = await import('../contract.mjs');
let corsOrigins;
try {
  corsOrigins = contract.parseCorsOrigins(args['cors-origin']);
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}
const log = (...a) => console.error('[workers-oauth]', ...a);

// miniflare and esbuild come from tests/worker's lockfile.
const workerRequire = createRequire(path.resolve(here, '../../worker/package.json'));
const load = async (name) => import(pathToFileURL(workerRequire.resolve(name)).href);
const { Miniflare } = await load('miniflare');
const esbuild = await load('esbuild');

// The worker needs its own origin at start-up (resource and issuer), so pick the port first.
async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port: p } = srv.address();
      srv.close(() => resolve(p));
    });
  });
}
async function portFree(p) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(p, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}
const workerPort = port || await freePort();
if (port && !(await portFree(port))) {
  log(`cannot listen: port ${port} is in use`);
  process.exit(1);
}
const ORIGIN = `http://127.0.0.1:${workerPort}`;

const bundle = await esbuild.build({
  entryPoints: [path.join(here, 'worker.mjs')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  conditions: ['workerd', 'worker', 'browser'],
  target: 'es2022',
  write: false,
  logLevel: 'error',
  minify: false,
  external: ['cloudflare:*', 'node:*'],
});

await esbuild.stop?.(); // no esbuild service process left running

const mf = new Miniflare({
  modules: true,
  script: bundle.outputFiles[0].text,
  scriptPath: path.join(here, 'worker.bundle.mjs'), // a name for stack traces; nothing is written
  compatibilityDate: '2026-01-01',
  compatibilityFlags: ['nodejs_compat'],
  kvNamespaces: ['OAUTH_KV'],
  kvPersist: false,
  bindings: {
    ORIGIN,
    AT_TTL: String(ttl),
    CORS_ORIGINS: [...corsOrigins].join(','),
    INTERACTIVE: args.interactive ? '1' : '',
  },
  host: '127.0.0.1',
  port: workerPort,
  handleRuntimeStdio(stdout, stderr) {
    if (args.quiet) {
      stdout.resume();
      stderr.resume();
    } else {
      stdout.pipe(process.stderr);
      stderr.pipe(process.stderr);
    }
  },
});
try {
  await mf.ready;
} catch (err) {
  log(`cannot start workerd: ${err.message}`);
  await mf.dispose().catch(() => {});
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ issuer: ORIGIN, mcp: `${ORIGIN}/mcp`, as_port: workerPort, mcp_port: workerPort })}\n`);
log(`worker (authorization server + MCP) at ${ORIGIN}`);

// Our child processes (workerd), from /proc; [] where there is no /proc.
function childPids() {
  try {
    return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
      } catch {
        return false;
      }
    });
  } catch {
    return [];
  }
}

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal} received, shutting down`);
  setTimeout(() => process.exit(0), 8000).unref();
  await mf.dispose().catch(() => {});
  // dispose() does not wait for workerd to be gone: wait (and so reap it) before exiting.
  for (let i = 0; i < 50 && childPids().length; i += 1) await new Promise((resolve) => { setTimeout(resolve, 100); });
  process.exit(0);
}
// miniflare's exit hook answers SIGTERM/SIGINT with a synchronous kill of workerd and
// process.exit(128 + n), leaving workerd unreaped (a zombie) and the exit status non-zero:
// replace it with an orderly dispose.
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.removeAllListeners(sig);
  process.on(sig, () => shutdown(sig));
}
