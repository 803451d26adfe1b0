#!/usr/bin/env node
// The demo page's static server (node:http only), on 127.0.0.1:
//
//   node www/serve.mjs [--port N] [--pkg DIR] [--config JSON] [--worker URL]
//
//   /             index.html; /callback.html, /style.css, /dist/* (`node www/build.mjs`)
//   /pkg/*        DIR, the browser package (default crates/browser/pkg, `make browser-pkg`)
//   /config.json  --config as given (what the page prefills: serverUrl, workerUrl, ...), else 404
//   /bff/*        with --worker: passed to the edge worker as a route on this origin would be
//                 (any method, Host kept, answers streamed, Set-Cookie included)
// Every answer: Cache-Control no-store, nosniff, and a Content-Security-Policy allowing only
// this origin's scripts (and wasm), connections anywhere (the MCP server, its AS, the worker).
// Prints one JSON line {"origin":"http://127.0.0.1:P"} once it listens; a busy port exits 1
// with "cannot listen on 127.0.0.1:P: port in use"; SIGTERM/SIGINT exit 0.
import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const HERE = import.meta.dirname;
const ROOT = path.resolve(HERE, '..');
const USAGE = 'usage: node www/serve.mjs [--port N] [--pkg DIR] [--config JSON] [--worker URL]';

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      pkg: { type: 'string', default: path.join(ROOT, 'crates/browser/pkg') },
      config: { type: 'string' },
      worker: { type: 'string' },
    },
    strict: true,
  }));
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}\n`);
  process.exit(2);
}
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`--port must be an integer in [0, 65535]\n${USAGE}\n`);
  process.exit(2);
}
let config;
if (args.config) {
  try {
    config = Buffer.from(JSON.stringify(JSON.parse(args.config)));
  } catch (err) {
    process.stderr.write(`--config is not JSON: ${err.message}\n`);
    process.exit(2);
  }
}
const WORKER = args.worker ? new URL(args.worker) : undefined;
const PKG = path.resolve(args.pkg);
const FILES = new Set(['/index.html', '/callback.html', '/style.css']);
const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
  '.json': 'application/json',
};
const HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  // same-origin, not no-referrer: the BFF's form POST must carry this Origin (no-referrer makes it "null").
  'Referrer-Policy': 'same-origin',
  'Content-Security-Policy': "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src *; form-action 'self' http://127.0.0.1:*; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
};

function send(res, status, headers, body) {
  res.writeHead(status, { ...HEADERS, ...headers });
  res.end(body);
}

// A file under one of the two roots, or undefined. Never leaves them.
function resolve(urlPath) {
  let p;
  try {
    p = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  // No NUL, and no `..` segment after decoding (`/dist/..%2fserve.mjs` must not reach www/).
  if (p.includes('\0') || p.split(/[\\/]/).includes('..')) return undefined;
  if (p === '/') p = '/index.html';
  let base = HERE;
  if (p.startsWith('/pkg/')) {
    base = PKG;
    p = p.slice('/pkg'.length);
  } else if (!FILES.has(p) && !p.startsWith('/dist/')) {
    return undefined;
  }
  const file = path.resolve(base, `.${p}`);
  if (!file.startsWith(base + path.sep)) return undefined;
  // Checked again on the resolved path: only the page's files and dist/ from www/.
  const rel = `/${path.relative(base, file).split(path.sep).join('/')}`;
  return base === PKG || FILES.has(rel) || rel.startsWith('/dist/') ? file : undefined;
}

function proxy(req, res) {
  const { pathname, search } = new URL(req.url, 'http://x');
  const upstream = http.request({ host: WORKER.hostname, port: WORKER.port, method: req.method, path: `${pathname}${search}`, headers: req.headers }, (up) => {
    res.writeHead(up.statusCode, up.rawHeaders);
    up.pipe(res);
  });
  upstream.on('error', () => {
    if (!res.headersSent) send(res, 502, { 'Content-Type': 'text/plain' }, 'the edge worker is unreachable\n');
    else res.destroy();
  });
  req.pipe(upstream);
}

const server = http.createServer(async (req, res) => {
  const { pathname } = new URL(req.url, 'http://x');
  if (WORKER && pathname.startsWith('/bff/')) return proxy(req, res);
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }, 'method not allowed\n');
  if (pathname === '/config.json') {
    if (!config) return send(res, 404, { 'Content-Type': 'text/plain' }, 'no configuration\n');
    return send(res, 200, { 'Content-Type': 'application/json' }, config);
  }
  const file = resolve(pathname);
  let body;
  try {
    if (!file) throw new Error('not served');
    body = await fs.readFile(file);
  } catch {
    return send(res, 404, { 'Content-Type': 'text/plain' }, 'not found\n');
  }
  const type = MIME[path.extname(file)] || 'application/octet-stream';
  send(res, 200, { 'Content-Type': type, 'Content-Length': body.length }, req.method === 'HEAD' ? undefined : body);
});
server.on('error', (err) => {
  const why = err.code === 'EADDRINUSE' ? 'port in use' : err.message;
  process.stderr.write(`cannot listen on 127.0.0.1:${port}: ${why}\n`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ origin: `http://127.0.0.1:${server.address().port}` })}\n`);
});
const stop = () => {
  server.close();
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 100).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
