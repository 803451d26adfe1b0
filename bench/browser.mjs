#!/usr/bin/env node
// Browser timings: edge-oauth's wasm package next to the MCP TypeScript SDK 1.x pattern (an
// OAuthClientProvider over localStorage plus the SDK's auth()), both measured in this run, in
// headless Chromium (playwright-core over Debian's /usr/bin/chromium) against the local MCP stack
// (tests/peers/mcp-stack.mjs: oidc-provider AS + MCP server).
//
//   1. warm token: 200 sequential getAccessToken() (token in memory) vs provider.tokens();
//   2. cold start after a reload: navigation start -> usable token, edge-oauth with default options
//      (memory-only access token: one refresh) and with persistAccessTokens (IndexedDB + AES-GCM),
//      vs the SDK pattern's localStorage read; with no-store and with cacheable assets;
//   3. 5 tabs x 20 concurrent token requests just after expiry: refresh requests counted by the AS,
//      and how many calls ended with a token the MCP server accepts.
//
// Usage: node bench/browser.mjs [--pkg DIR] [--warm N] [--reloads N] [--verbose]
//        (or EDGE_OAUTH_PKG=DIR; default <repo>/crates/browser/pkg). Never builds the package.
// Prints an environment line and a Markdown table, writes results/browser.json. Reports numbers,
// asserts none of them; exits 1 only when the harness itself fails.

import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const PAGES = path.join(HERE, 'pages');
const STACK = path.join(ROOT, 'tests/peers/mcp-stack.mjs');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The launch flags of tests/browser/e2e.mjs (TOOLCHAIN.md); Playwright adds a fresh user-data-dir.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const TABS = 5; // at most 5 tabs per host (TOOLCHAIN.md)
const CALLS_PER_TAB = 20;
const BATCH = 10;

const USAGE = `usage: node bench/browser.mjs [--pkg DIR] [--warm N] [--reloads N] [--verbose]
  --pkg DIR      wasm-pack --target web output (default $EDGE_OAUTH_PKG or crates/browser/pkg)
  --warm N       warm token calls per client (default 200)
  --reloads N    timed reloads per cold-start row (default 15, after one untimed load)
  --verbose      pass the peers' stderr through`;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      pkg: { type: 'string', default: process.env.EDGE_OAUTH_PKG || path.join(ROOT, 'crates/browser/pkg') },
      warm: { type: 'string', default: '200' },
      reloads: { type: 'string', default: '15' },
      verbose: { type: 'boolean', default: false },
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
const PKG = path.resolve(process.cwd(), args.pkg);
const WARM = Number(args.warm);
const RELOADS = Number(args.reloads);
if (!(Number.isInteger(WARM) && WARM > 0 && Number.isInteger(RELOADS) && RELOADS > 0)) {
  process.stderr.write(`--warm and --reloads must be positive integers\n${USAGE}\n`);
  process.exit(2);
}

const started = Date.now();
const rel = (p) => path.relative(ROOT, p) || '.';
const versionIn = (dir, name) => JSON.parse(readFileSync(path.join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;

if (!existsSync(path.join(PKG, 'edge_oauth_browser.js'))) {
  console.log(`## Browser timings\n\nskipped: no wasm package at ${rel(PKG)} (edge_oauth_browser.js missing); build it with \`make browser-pkg\` or pass --pkg DIR`);
  process.exit(0);
}
const PKG_VERSION = JSON.parse(readFileSync(path.join(PKG, 'package.json'), 'utf8')).version;
const SDK_VERSION = versionIn(HERE, '@modelcontextprotocol/sdk');

// ---------------------------------------------------------------------------
// Processes we start (the mcp-stacks), each in its own process group; the helpers follow
// tests/browser/e2e.mjs.
// ---------------------------------------------------------------------------
const children = new Set();
const killGroup = (child, signal) => {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
};

function startNode(name, script, argv) {
  const child = spawn(process.execPath, [script, ...argv], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const tail = [];
  child.stderr.on('data', (d) => {
    if (args.verbose) process.stderr.write(d);
    tail.push(...String(d).split('\n').filter(Boolean));
    if (tail.length > 40) tail.splice(0, tail.length - 40);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  const proc = {
    tail,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
      killGroup(child, 'SIGKILL');
    },
  };
  const ready = new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name}: no ready line within 20 s\n${tail.join('\n')}`)), 20000);
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.slice(0, nl)));
      } catch (err) {
        reject(new Error(`${name}: bad ready line: ${err.message}`));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready\n${tail.join('\n')}`));
    });
  });
  return ready.then((info) => ({ ...proc, info }), async (err) => { await proc.stop(); throw err; });
}

process.on('exit', () => {
  for (const child of children) killGroup(child, 'SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    process.stderr.write(`bench/browser: ${signal}, stopping\n`);
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------
// Static server, in this process: bench/pages, the wasm package under /pkg/, the SDK bundles.
// Everything is Cache-Control: no-store, except under /c/ (same files, cacheable for a year).
// The pages are cross-origin isolated (COOP + COEP), which gives performance.now() its finest
// resolution in Chromium (5 µs instead of 100 µs); fetches to the AS and MCP server are CORS.
// ---------------------------------------------------------------------------
const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json' };

function startStatic(bundles) {
  const server = http.createServer(async (req, res) => {
    let p = new URL(req.url, 'http://x').pathname;
    let cache = 'no-store';
    if (p.startsWith('/c/')) {
      p = p.slice(2);
      cache = 'public, max-age=31536000, immutable';
    }
    const headers = {
      'Cache-Control': cache,
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'X-Content-Type-Options': 'nosniff',
    };
    let body;
    let type;
    if (bundles.has(p)) {
      body = bundles.get(p);
      type = MIME['.js'];
    } else {
      const [base, sub] = p.startsWith('/pkg/') ? [PKG, p.slice('/pkg'.length)] : [PAGES, p];
      const file = path.resolve(base, `.${decodeURIComponent(sub)}`);
      type = MIME[path.extname(file)];
      if (type && file.startsWith(base + path.sep)) body = await fs.readFile(file).catch(() => undefined);
    }
    if (body === undefined) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${server.address().port}` }));
  });
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function jwtPayload(token) {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

// Nearest-rank quantile.
function quantile(values, q) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)];
}
const summary = (values) => ({ n: values.length, median: quantile(values, 0.5), p90: quantile(values, 0.9), min: Math.min(...values), max: Math.max(...values) });

async function tryEval(page, fn, arg) {
  try {
    return await page.evaluate(fn, arg);
  } catch (err) {
    if (/context was destroyed|navigat|Target closed|has been closed/i.test(String(err.message))) return undefined;
    throw err;
  }
}

async function ready(page) {
  const state = await page.evaluate(async () => {
    if (!window.bench) return { error: 'window.bench missing' };
    try {
      await window.bench.ready;
      return { ok: true };
    } catch (e) {
      return { error: `${e?.code ?? ''} ${e?.message ?? e}` };
    }
  });
  if (!state.ok) throw new Error(`${page.url().split('?')[0]} not ready: ${state.error}`);
}

function watch(page, diagnostics, label) {
  page.on('pageerror', (e) => diagnostics.push(`[${label} pageerror] ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') diagnostics.push(`[${label} console.error] ${m.text()}`);
  });
}

async function openPage(context, url, diagnostics, label) {
  const page = await context.newPage();
  watch(page, diagnostics, label);
  await page.goto(url);
  await ready(page);
  return page;
}

// Redirect login started by window.bench.login(): AS (auto-approves) -> callback -> the app page.
async function redirectLogin(page, callbackPath, appPath) {
  const navs = [];
  const onNav = (f) => { if (f === page.mainFrame()) navs.push(new URL(f.url()).pathname); };
  page.on('framenavigated', onNav);
  try {
    await page.evaluate(() => {
      window.bench.login().catch((e) => { window.benchLoginError = `${e?.code ?? ''} ${e?.message ?? e}`; });
    });
    const deadline = Date.now() + 20000;
    for (;;) {
      const i = navs.indexOf(callbackPath);
      if (i >= 0 && navs.slice(i + 1).includes(appPath) && new URL(page.url()).pathname === appPath) break;
      const err = await tryEval(page, () => window.benchLoginError || window.benchCallbackError);
      if (err) throw new Error(`login failed: ${err}`);
      if (Date.now() > deadline) throw new Error(`login did not come back to ${appPath} (navigations: ${navs.join(' ')})`);
      await sleep(50);
    }
  } finally {
    page.off('framenavigated', onNav);
  }
  await page.waitForLoadState('load');
  await ready(page);
}

function makeStack(info) {
  return {
    info,
    async stats() {
      const res = await fetch(`${info.issuer}/test/stats`);
      if (!res.ok) throw new Error(`GET /test/stats: HTTP ${res.status}`);
      return res.json();
    },
    // The MCP server's answer to tools/list with this bearer token (status only).
    async accepts(token) {
      const res = await fetch(info.mcp, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
      });
      await res.text();
      return res.status === 200;
    },
  };
}

function grant(stats, type) {
  const b = stats.token.by_grant_type[type] || { requests: 0, ok: 0, errors: {} };
  return { requests: b.requests, ok: b.ok, errors: { ...b.errors } };
}
function grantDelta(s0, s1, type) {
  const a = grant(s0, type);
  const b = grant(s1, type);
  const errors = {};
  for (const [k, n] of Object.entries(b.errors)) if (n - (a.errors[k] || 0)) errors[k] = n - (a.errors[k] || 0);
  return { requests: b.requests - a.requests, ok: b.ok - a.ok, errors };
}

// The most frequent error messages, "message (xN)".
function topErrors(messages, n = 3) {
  const counts = new Map();
  for (const m of messages) counts.set(m, (counts.get(m) || 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, n).map(([m, c]) => `${m.slice(0, 140)} (x${c})`);
}

// ---------------------------------------------------------------------------
// 1 + 2: warm token and cold start, one client each, on a stack with the default token lifetime.
// ---------------------------------------------------------------------------
const CLIENTS = [
  { id: 'edge-default', label: 'edge-oauth, default options', page: '/edge.html', callback: '/edge-callback.html', query: { db: 'bench-default' } },
  { id: 'edge-persist', label: 'edge-oauth, persistAccessTokens: true', page: '/edge.html', callback: '/edge-callback.html', query: { db: 'bench-persist', persist: '1' } },
  { id: 'sdk', label: `MCP SDK ${SDK_VERSION} pattern (localStorage provider)`, page: '/sdk.html', callback: '/sdk-callback.html', query: {} },
];
const ASSET_MODES = [
  { id: 'no-store', label: 'assets Cache-Control: no-store' },
  { id: 'cache', label: 'assets cacheable (max-age 1 year, immutable)' },
];

// The cold-start reloads go round-robin over the clients (one reload each per round), so load
// from anything else on the machine falls on all of them alike.
async function timings(browser, origin, stack, diagnostics) {
  const clients = [];
  try {
    for (const c of CLIENTS) {
      const context = await browser.newContext();
      const url = (extra = {}) => `${origin}${c.page}?${new URLSearchParams({ mcp: stack.info.mcp, ...c.query, ...extra })}`;
      clients.push({ ...c, context, url });
      const page = await openPage(context, url(), diagnostics, c.id);
      clients.at(-1).page = page;
      await redirectLogin(page, c.callback, c.page);
    }
    const out = {};
    for (const c of clients) {
      const warm = await c.page.evaluate(([n, b]) => window.bench.warm(n, b), [WARM, BATCH]);
      if (!warm.ok) throw new Error(`${c.id}: no token after login`);
      out[c.id] = {
        label: c.label,
        warm: { single: summary(warm.single), batched: summary(warm.batched), perCall: warm.perCall, crossOriginIsolated: warm.isolated, samples: warm.single },
        cold: {},
      };
    }
    for (const mode of ASSET_MODES) {
      const loads = new Map(clients.map((c) => [c.id, []]));
      for (const c of clients) {
        await c.page.goto(c.url({ cold: '1', assets: mode.id })); // untimed: first load of this URL
        await ready(c.page);
      }
      const s0 = await stack.stats();
      for (let i = 0; i < RELOADS; i += 1) {
        for (const c of clients) {
          await c.page.reload();
          await ready(c.page);
          const r = await c.page.evaluate(() => ({ marks: window.bench.marks, token: window.bench.coldToken, counts: window.bench.coldCounts, requests: window.bench.coldRequests }));
          if (typeof r.token !== 'string' || !r.token) throw new Error(`${c.id}: no token after reload ${i + 1} (${mode.id})`);
          loads.get(c.id).push({ ...r.marks, counts: r.counts, tokenRequests: r.requests, accepted: await stack.accepts(r.token) });
        }
      }
      const s1 = await stack.stats();
      for (const c of clients) {
        const l = loads.get(c.id);
        out[c.id].cold[mode.id] = {
          navToToken: summary(l.map((m) => m.token)),
          createToToken: summary(l.map((m) => m.token - m.createStart)),
          navToModule: summary(l.map((m) => m.moduleStart)),
          navToInitialized: summary(l.map((m) => m.initialized)),
          // edge-oauth only: its token endpoint requests per load and their duration (resource
          // timing), and what the package did between create() and the token (edge.html wrappers).
          tokenRequestsPerLoad: l[0].tokenRequests ? l.reduce((a, m) => a + m.tokenRequests.length, 0) / l.length : 0,
          tokenRequest: l.every((m) => m.tokenRequests?.length) ? summary(l.map((m) => m.tokenRequests.reduce((a, x) => a + x.duration, 0))) : undefined,
          counts: l[0].counts,
          accepted: l.filter((m) => m.accepted).length,
          loads: l,
        };
      }
      // Cross-check from the AS: every refresh of these rounds, all clients together.
      out.refreshRequestsAtAs ??= {};
      out.refreshRequestsAtAs[mode.id] = grantDelta(s0, s1, 'refresh_token').requests;
    }
    return out;
  } finally {
    for (const c of clients) await c.context.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// 3: 5 tabs x 20 concurrent token requests just after expiry, on a stack with 8 s access tokens
// (--rotate-revokes-access: a refresh makes the MCP server refuse the grant's older access tokens).
// ---------------------------------------------------------------------------
async function setupTabs(browser, origin, stack, diagnostics, kind) {
  const context = await browser.newContext();
  const isEdge = kind === 'edge';
  const pagePath = isEdge ? '/edge.html' : '/sdk.html';
  const extra = isEdge ? { db: 'bench-burst' } : kind === 'sdk-invalidate' ? { invalidate: '1' } : {};
  const url = `${origin}${pagePath}?${new URLSearchParams({ mcp: stack.info.mcp, ...extra })}`;
  const first = await openPage(context, url, diagnostics, `${kind} tab1`);
  await redirectLogin(first, isEdge ? '/edge-callback.html' : '/sdk-callback.html', pagePath);
  let token;
  let expiresAtMs;
  if (isEdge) {
    token = await first.evaluate(() => window.bench.client.getAccessToken());
    expiresAtMs = jwtPayload(token)?.exp * 1000;
  } else {
    const r = await first.evaluate(async () => ({ token: (await window.bench.provider.tokens())?.access_token, at: window.bench.provider.expiresAt() }));
    token = r.token;
    expiresAtMs = Math.max(r.at || 0, (jwtPayload(token)?.exp || 0) * 1000);
  }
  if (!token || !(expiresAtMs > 0)) throw new Error(`${kind}: no JWT access token after login`);
  const tabs = [first];
  for (let i = 1; i < TABS; i += 1) tabs.push(await openPage(context, url, diagnostics, `${kind} tab${i + 1}`));
  if (kind === 'sdk-transport') {
    for (const tab of tabs) await tab.evaluate(() => window.bench.connect());
  }
  return { kind, context, tabs, token, expiresAtMs };
}

async function burst(stack, setup) {
  const { kind, tabs, expiresAtMs } = setup;
  const s0 = await stack.stats();
  const at = Math.max(Date.now() + 300, expiresAtMs + 300);
  const fn = kind === 'sdk-transport' ? ([t, n]) => window.bench.burstTransport(t, n) : ([t, n]) => window.bench.burst(t, n);
  const results = (await Promise.all(tabs.map((tab) => tab.evaluate(fn, [at, CALLS_PER_TAB])))).flat();
  const s1 = await stack.stats();
  const refresh = grantDelta(s0, s1, 'refresh_token');
  const redirects = kind === 'edge' ? 0 : (await Promise.all(tabs.map((tab) => tab.evaluate(() => window.bench.redirects)))).reduce((a, b) => a + b, 0);

  // Usable: the call's token is accepted by the MCP server right after the burst (for the
  // transport variant: the call got its answer from the MCP server).
  let usable;
  const tokens = [...new Set(results.map((r) => r.token).filter(Boolean))];
  if (kind === 'sdk-transport') {
    usable = results.filter((r) => r.ok).length;
  } else {
    const accepted = new Map();
    for (const t of tokens) accepted.set(t, await stack.accepts(t));
    usable = results.filter((r) => r.token && accepted.get(r.token)).length;
  }
  // Afterwards: does tab 1 still hold a session the MCP server accepts (without a new login)?
  let after;
  if (kind === 'edge') {
    after = await tabs[0].evaluate(() => window.bench.client.getAccessToken().catch(() => null));
  } else {
    after = await tabs[0].evaluate(async () => (await window.bench.provider.tokens())?.access_token ?? null);
  }
  const sessionUsable = Boolean(after) && (await stack.accepts(after));
  return {
    kind,
    calls: results.length,
    refresh,
    usable,
    distinctTokens: tokens.length,
    failed: results.filter((r) => r.error).length,
    noToken: results.filter((r) => !r.error && !r.ok && !r.token).length,
    redirects,
    errors: topErrors(results.filter((r) => r.error).map((r) => r.error)),
    sessionUsable,
    startedAfterExpiryMs: at - expiresAtMs,
  };
}

const BURSTS = ['edge', 'sdk', 'sdk-invalidate', 'sdk-transport'];

async function concurrency(browser, origin, stack, diagnostics) {
  const setups = [];
  try {
    for (const kind of BURSTS) setups.push(await setupTabs(browser, origin, stack, diagnostics, kind));
    const out = {};
    for (const setup of setups) {
      out[setup.kind] = await burst(stack, setup);
      await setup.context.close().catch(() => {});
    }
    return out;
  } finally {
    for (const s of setups) await s.context.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// Output.
// ---------------------------------------------------------------------------
const us = (ms) => `${Math.round(ms * 1000)} µs`;
// A single call below the timer's resolution reads 0: say so.
const usTimer = (ms) => (ms === 0 ? '< 5 µs' : us(ms));
const msf = (ms) => `${ms.toFixed(1)} ms`;
const pair = (s, f) => `${f(s.median)} / ${f(s.p90)}`;

function render(env, t, c, bundles) {
  const n = TABS * CALLS_PER_TAB;
  const ed = t['edge-default'];
  const ep = t['edge-persist'];
  const sb = t.sdk;
  const lines = [];
  lines.push('## Browser timings (headless Chromium against the local stack)\n');
  lines.push(`Environment: Chromium ${env.chromium}, Node ${env.node}, ${env.cpus} x ${env.cpu}; edge-oauth-browser ${PKG_VERSION} (${rel(PKG)}); @modelcontextprotocol/sdk ${SDK_VERSION}; performance.now() ${env.isolated ? 'cross-origin isolated (5 µs resolution)' : 'NOT cross-origin isolated (100 µs resolution)'}\n`);
  lines.push(`| Measurement (median / p90) | edge-oauth | Baseline: MCP SDK ${SDK_VERSION} pattern |`);
  lines.push('| --- | ---: | ---: |');
  lines.push(`| 1. Warm token, ${WARM} calls timed one by one | ${pair(ed.warm.single, usTimer)} | ${pair(sb.warm.single, usTimer)} |`);
  lines.push(`| 1. Warm token, per call, ${WARM} batches of ${BATCH} | ${pair(ed.warm.batched, us)} | ${pair(sb.warm.batched, us)} |`);
  for (const mode of ASSET_MODES) {
    for (const [e, what] of [[ed, 'default options (memory-only access token: 1 refresh)'], [ep, 'persistAccessTokens: true (IndexedDB + AES-GCM)']]) {
      const ec = e.cold[mode.id];
      const bc = sb.cold[mode.id];
      const ok = (x) => (x.accepted === RELOADS ? '' : ` (${x.accepted}/${RELOADS} tokens accepted)`);
      lines.push(`| 2. Reload -> token, ${mode.id} assets, ${what} | ${pair(ec.navToToken, msf)}${ok(ec)} | ${pair(bc.navToToken, msf)}${ok(bc)} |`);
      lines.push(`| 2. … from \`EdgeOAuth.create()\` start (baseline: from provider construction) | ${pair(ec.createToToken, msf)} | ${pair(bc.createToToken, msf)} |`);
    }
  }
  const row3 = (r) => `${r.refresh.requests} refresh requests; ${r.usable}/${n}; ${r.sessionUsable ? 'yes' : 'no'}`;
  lines.push(`| 3. Refresh requests counted by the AS, ${TABS} tabs x ${CALLS_PER_TAB} concurrent calls after expiry | ${c.edge.refresh.requests} | ${c.sdk.refresh.requests} |`);
  lines.push(`| 3. … calls that ended with a token the MCP server accepts | ${c.edge.usable}/${n} | ${c.sdk.usable}/${n} |`);
  lines.push(`| 3. … the session still works afterwards, without a new login | ${c.edge.sessionUsable ? 'yes' : 'no'} | ${c.sdk.sessionUsable ? 'yes' : 'no'} |`);
  lines.push(`| 3b. As 3, baseline provider with invalidateCredentials(): refreshes; accepted; session works | (as 3) | ${row3(c['sdk-invalidate'])} |`);
  lines.push(`| 3c. As 3 through the SDK's transport (refresh on 401): refreshes; calls answered; session works | (as 3) | ${row3(c['sdk-transport'])} |`);
  lines.push('');
  const per = (o) => `${o.idbGet} IndexedDB get, ${o.decrypt} AES-GCM decrypt, ${o.lock} Web Lock request, ${o.broadcast} BroadcastChannel message, ${o.fetch} fetch`;
  const cd = ed.cold['no-store'];
  lines.push(`edge-oauth underneath (counted by wrappers in bench/pages/edge.html): a warm getAccessToken() did ${per(ed.warm.perCall)} per call; a default-options reload did ${per(cd.counts)} from create() to the token, its refresh request taking ${cd.tokenRequest ? pair(cd.tokenRequest, msf) : 'n/a'} of the ${pair(cd.createToToken, msf)}; a persistAccessTokens reload did ${per(ep.cold['no-store'].counts)}.`);
  lines.push('');
  lines.push('How it was driven:');
  lines.push(`- Pages (bench/pages) served from 127.0.0.1 with COOP/COEP (cross-origin isolated, for the timer); AS and MCP server from tests/peers/mcp-stack.mjs with --cors-origin; one Playwright browser context per client; logins are real redirect logins against the auto-approving AS.`);
  lines.push(`- Baseline provider (bench/pages/sdk-auth-entry.mjs): use-mcp's BrowserOAuthClientProvider shape, every getter \`JSON.parse(localStorage.getItem(key))\`, tokens stored as saveTokens() receives them, the expiry (from expires_in) in a key next to them, no invalidateCredentials or discoveryState unless stated; bundled with the SDK's client/auth.js by esbuild --bundle --minify (${(bundles.get('/sdk-auth.js').length / 1024).toFixed(1)} KB).`);
  lines.push(`- 1: after login, 20 untimed calls, then ${WARM} sequential awaited calls each timed alone, then ${WARM} batches of ${BATCH}. Baseline: \`(await provider.tokens())?.access_token\` (no expiry check, as the SDK's transport does).`);
  lines.push(`- 2: per row one untimed load, then ${RELOADS} x page.reload() in the same tab; "reload" = performance.now() 0 of the new page; "token" = the first getAccessToken() resolved (edge-oauth: import, wasm init(), create()), each checked afterwards against the MCP server (tools/list). Baseline: import its bundle, construct the provider, read tokens() once. The baseline numbers are one measurement per asset mode, shown on both rows. Reloads go round-robin over the three clients. Token requests per load seen by the page: default ${cd.tokenRequestsPerLoad.toFixed(2)}, persistAccessTokens ${ep.cold['no-store'].tokenRequestsPerLoad.toFixed(2)}, baseline 0 (no fetch); refresh requests at the AS over all ${RELOADS} rounds: ${Object.entries(t.refreshRequestsAtAs).map(([m, k]) => `${k} (${m})`).join(', ')}.`);
  lines.push(`- 3: AS with --access-token-ttl 8 --rotate-revokes-access (oidc-provider rotates refresh tokens; reusing a rotated one revokes the grant). Per client one redirect login in tab 1, then tabs 2-${TABS} opened on the same origin (same IndexedDB / same localStorage: one client, one grant); at expiry + 300 ms each tab starts ${CALLS_PER_TAB} concurrent calls (the bursts run one client after the other). edge-oauth: \`getAccessToken()\`. Baseline: each call reads tokens(); when the stored expiry has passed it calls the SDK's \`auth(provider, { serverUrl })\` (discovery, then refresh) and returns the token tokens() holds afterwards; an authorization redirect is counted, not followed. Refreshes: GET <issuer>/test/stats, token.by_grant_type.refresh_token.requests, before/after. Accepted: the MCP server answers tools/list with the call's token right after the burst. Session works: tab 1's token afterwards (edge-oauth: getAccessToken(); baseline: tokens()) is accepted.`);
  lines.push(`- 3c: the provider as authProvider of one SDK Client + StreamableHTTPClientTransport per tab, connected before expiry; ${CALLS_PER_TAB} concurrent listTools() per tab; the transport sends the stored token and on a 401 runs auth() and resends. Answered = listTools() resolved.`);
  for (const kind of BURSTS) {
    const r = c[kind];
    const errs = Object.entries(r.refresh.errors).map(([k, v]) => `${k} x${v}`).join(', ');
    lines.push(`- 3 ${kind}: refresh ok ${r.refresh.ok}${errs ? `, refused ${errs}` : ''}; started ${r.startedAfterExpiryMs} ms after expiry; ${r.failed} calls threw${r.redirects ? `; ${r.redirects} authorization redirects (new login needed)` : ''}${r.errors.length ? `: ${r.errors.join('; ')}` : ''}`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------
// Main.
// ---------------------------------------------------------------------------
let browser;
let staticServer;
const stacks = [];
const diagnostics = [];
let exitCode = 0;
try {
  // The baseline's bundles, from bench/'s pinned @modelcontextprotocol/sdk.
  const bundles = new Map();
  for (const [route, entry] of [['/sdk-auth.js', 'sdk-auth-entry.mjs'], ['/sdk-transport.js', 'sdk-transport-entry.mjs']]) {
    const result = await build({
      entryPoints: [path.join(PAGES, entry)],
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      target: 'chrome120',
      keepNames: true, // readable error class names in the report
      write: false,
      logLevel: 'error',
      absWorkingDir: HERE,
    });
    bundles.set(route, Buffer.from(result.outputFiles[0].contents));
  }
  staticServer = await startStatic(bundles);
  const { origin } = staticServer;

  const [stackA, stackB] = await Promise.all([
    startNode('mcp-stack', STACK, ['--cors-origin', origin, '--quiet']),
    startNode('mcp-stack (8 s tokens)', STACK, ['--cors-origin', origin, '--quiet', '--access-token-ttl', '8', '--rotate-revokes-access']),
  ]);
  stacks.push(stackA, stackB);

  const require = createRequire(path.join(ROOT, 'tests/browser/package.json'));
  const { chromium } = require('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });

  const t = await timings(browser, origin, makeStack(stackA.info), diagnostics);
  const c = await concurrency(browser, origin, makeStack(stackB.info), diagnostics);

  const env = {
    chromium: browser.version(),
    node: process.version,
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model?.trim() ?? 'unknown CPU',
    isolated: CLIENTS.every((x) => t[x.id].warm.crossOriginIsolated),
  };
  console.log(render(env, t, c, bundles));
  console.log(`\n(${((Date.now() - started) / 1000).toFixed(1)} s)`);

  const resultsDir = path.join(HERE, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, 'browser.json');
  writeFileSync(file, `${JSON.stringify({
    generated: new Date().toISOString(),
    environment: env,
    edgeOauth: { version: PKG_VERSION, pkg: rel(PKG) },
    baseline: { package: '@modelcontextprotocol/sdk', version: SDK_VERSION, provider: 'bench/pages/sdk-auth-entry.mjs (localStorage OAuthClientProvider)' },
    parameters: { warmCalls: WARM, batch: BATCH, reloads: RELOADS, tabs: TABS, callsPerTab: CALLS_PER_TAB, burstStack: ['--access-token-ttl', '8', '--rotate-revokes-access'] },
    timings: t,
    concurrency: c,
  }, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
} catch (err) {
  exitCode = 1;
  process.stderr.write(`bench/browser: harness error: ${err?.stack || err}\n`);
  if (diagnostics.length) process.stderr.write(`${diagnostics.slice(-20).join('\n')}\n`);
  for (const s of stacks) if (s.tail.length) process.stderr.write(`mcp-stack stderr (last lines):\n${s.tail.slice(-10).map((l) => `  ${l}`).join('\n')}\n`);
} finally {
  await browser?.close().catch(() => {});
  if (staticServer) {
    staticServer.server.close();
    staticServer.server.closeAllConnections?.();
  }
  for (const s of stacks) await s.stop();
}
process.exit(exitCode);
