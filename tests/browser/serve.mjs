#!/usr/bin/env node
// Static HTTP server for the browser end-to-end tests (node:http only, no dependencies).
//
//   node tests/browser/serve.mjs [--port N] [--pkg DIR] [--proxy URL]
//
// Serves, on 127.0.0.1:
//   /          tests/browser/pages/   (/ itself is app.html)
//   /pkg/      DIR, a wasm-pack output directory (default crates/browser/pkg)
//   /callback-coop.html  callback.html with Cross-Origin-Opener-Policy: same-origin
//   /bff/...   with --proxy: passed to URL (the worker in workerd), any method, the Host header
//              kept (the worker sees this origin, as behind a route on the page's origin),
//              answers streamed back as they come (SSE), Set-Cookie included
// Every answer carries Cache-Control: no-store. Prints exactly one JSON line on stdout once it
// listens, {"origin":"http://127.0.0.1:P"}, logs nothing else, and exits 0 on SIGTERM/SIGINT.

import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const USAGE = 'usage: node serve.mjs [--port N (default 0 = ephemeral)] [--pkg DIR (default crates/browser/pkg)] [--proxy URL (/bff/* goes there)]';

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      pkg: { type: 'string', default: path.join(ROOT, 'crates/browser/pkg') },
      proxy: { type: 'string' },
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
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`--port must be an integer in [0, 65535]\n${USAGE}\n`);
  process.exit(2);
}

const PAGES = path.join(HERE, 'pages');
const PKG = path.resolve(args.pkg);

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.map': 'application/json',
  '.css': 'text/css; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.ico': 'image/x-icon',
};

// Maps a URL path to [file, extra headers], or undefined. Never leaves the two roots.
function resolve(urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const headers = {};
  let base = PAGES;
  let rel = decoded;
  if (rel === '/') rel = '/app.html';
  if (rel === '/callback-coop.html') {
    rel = '/callback.html';
    headers['Cross-Origin-Opener-Policy'] = 'same-origin';
  } else if (rel === '/pkg' || rel.startsWith('/pkg/')) {
    base = PKG;
    rel = rel.slice('/pkg'.length);
  }
  const file = path.resolve(base, `.${rel}`);
  if (file !== base && !file.startsWith(base + path.sep)) return undefined;
  return [file, headers];
}

function send(res, status, headers, body) {
  res.writeHead(status, { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', ...headers });
  res.end(body);
}

const PROXY = args.proxy ? new URL(args.proxy) : undefined;

// /bff/* to the worker, as a route on this origin would: request and answer streamed.
function proxy(req, res) {
  const upstream = http.request({
    host: PROXY.hostname,
    port: PROXY.port,
    method: req.method,
    path: req.url,
    headers: req.headers,
  }, (up) => {
    res.writeHead(up.statusCode, up.rawHeaders);
    up.pipe(res);
  });
  upstream.on('error', () => {
    if (!res.headersSent) send(res, 502, { 'Content-Type': 'text/plain' }, 'worker unreachable\n');
    else res.destroy();
  });
  req.pipe(upstream);
}

const server = http.createServer(async (req, res) => {
  if (PROXY && new URL(req.url, 'http://x').pathname.startsWith('/bff/')) {
    proxy(req, res);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }, 'method not allowed\n');
    return;
  }
  const urlPath = new URL(req.url, 'http://x').pathname;
  const found = resolve(urlPath);
  if (!found) {
    send(res, 400, { 'Content-Type': 'text/plain' }, 'bad path\n');
    return;
  }
  const [file, extra] = found;
  let body;
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new Error('not a file');
    body = await fs.readFile(file);
  } catch {
    send(res, 404, { 'Content-Type': 'text/plain' }, 'not found\n');
    return;
  }
  const type = MIME[path.extname(file).toLowerCase()] || 'application/octet-stream';
  send(res, 200, { 'Content-Type': type, 'Content-Length': body.length, ...extra }, req.method === 'HEAD' ? undefined : body);
});

server.on('error', (err) => {
  process.stderr.write(`cannot listen: ${err.message}\n`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ origin: `http://127.0.0.1:${server.address().port}` })}\n`);
});

function shutdown() {
  server.close();
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 100).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
