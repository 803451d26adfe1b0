#!/usr/bin/env node
// Browser end-to-end tests of the edge-oauth wasm package, in Debian's Chromium through
// playwright-core, against the local MCP deployment (tests/peers/mcp-stack.mjs).
//
//   node tests/browser/e2e.mjs [--pkg DIR] [--only a,b,...] [--timeout S] [--verbose]
//
// Starts the static server (serve.mjs: pages/ and the wasm-pack output DIR, default
// crates/browser/pkg; /bff/* passed to the worker's port), one mcp-stack per scenario (with
// --cors-origin <static origin>), for the token-mediating and bff scenarios the built worker
// (worker/build, `make worker`) in workerd through miniflare (tests/worker/miniflare.mjs) in
// front of that stack, and one Chromium with a fresh browser context per scenario. Prints one line per scenario on stdout and
// last exactly `N passed, M failed`; details of failures go to stderr. Exits 1 on any failure.
// Every process it started is stopped on the way out, failures and signals included.

import { spawn } from 'node:child_process';
import * as nodeCrypto from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const STACK = path.join(ROOT, 'tests/peers/mcp-stack.mjs');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const USAGE = `usage: node tests/browser/e2e.mjs [--pkg DIR] [--only a,b,...] [--timeout S] [--verbose]
  --pkg DIR      wasm-pack output directory (default crates/browser/pkg)
  --only LIST    run only these scenarios (ids as printed, comma-separated)
  --timeout S    per-scenario timeout in seconds (default 60)
  --verbose      pass the peers' stderr through`;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      pkg: { type: 'string', default: path.join(ROOT, 'crates/browser/pkg') },
      only: { type: 'string', default: '' },
      timeout: { type: 'string', default: '60' },
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
const PKG = path.resolve(args.pkg);
const TIMEOUT_MS = Number(args.timeout) * 1000;
if (!(TIMEOUT_MS > 0)) {
  process.stderr.write(`--timeout must be a positive number\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Processes we start: each in its own process group, stopped by group on the way out.
// ---------------------------------------------------------------------------
const children = new Set();

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

// Spawns `node script ...` and resolves with the JSON of its first stdout line.
function startNode(name, script, argv) {
  const child = spawn(process.execPath, [script, ...argv], {
    cwd: ROOT,
    detached: true, // own process group: stop() reaches anything it spawns
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const tail = [];
  let stderrBuf = '';
  child.stderr.on('data', (d) => {
    if (args.verbose) process.stderr.write(d);
    stderrBuf += d;
    const lines = stderrBuf.split('\n');
    stderrBuf = lines.pop();
    tail.push(...lines);
    if (tail.length > 40) tail.splice(0, tail.length - 40);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  const proc = {
    name,
    child,
    tail,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
      killGroup(child, 'SIGKILL'); // anything left in the group
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
        reject(new Error(`${name}: bad ready line ${JSON.stringify(out.slice(0, nl))}: ${err.message}`));
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
    process.stderr.write(`e2e: ${signal}, stopping\n`);
    process.exit(130); // the exit handler above kills our process groups; Playwright kills Chromium
  });
}

// ---------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------
class Failure extends Error {}
function assert(cond, message) {
  if (!cond) throw new Failure(message);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = (v) => JSON.stringify(v);

function jwtPayload(token) {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

// Polls fn until it returns a truthy value; fn may throw to fail at once.
async function until(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Failure(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// page.evaluate that yields undefined while the page navigates instead of throwing.
async function tryEval(page, fn, arg) {
  try {
    return await page.evaluate(fn, arg);
  } catch (err) {
    if (/context was destroyed|navigat|Target closed|has been closed/i.test(String(err.message))) return undefined;
    throw err;
  }
}

// Token endpoint counters of one grant type.
function grantCounts(stats, grantType) {
  const b = stats.token.by_grant_type[grantType] || { requests: 0, ok: 0, errors: {} };
  return { requests: b.requests, ok: b.ok, errors: Object.values(b.errors).reduce((a, n) => a + n, 0) };
}

// ---------------------------------------------------------------------------
// Scenario context.
// ---------------------------------------------------------------------------
// A free loopback port (the worker's: the static server forwards /bff/* there).
async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function makeTest(browser, origin, id, workerPort) {
  const t = {
    id,
    origin,
    worker: undefined,
    stack: undefined,
    context: undefined,
    pages: [],
    diagnostics: [],
    async newPage(label) {
      if (!t.context) t.context = await browser.newContext();
      const page = await t.context.newPage();
      t.watch(page, label);
      t.pages.push(page);
      return page;
    },
    async startStack(extra = []) {
      t.stack = await startNode('mcp-stack', STACK, ['--cors-origin', origin, ...extra]);
      return t.stack.info;
    },
    async stats() {
      const res = await fetch(`${t.stack.info.issuer}/test/stats`);
      assert(res.ok, `GET /test/stats: HTTP ${res.status}`);
      return res.json();
    },
    // The worker in workerd in front of the stack, with a confidential client registered at
    // the AS for it (Basic auth; redirect URIs: the page's callback and the BFF's), this
    // origin allowed, and the BFF on this origin (the static server forwards /bff/*), coming
    // back to `bffReturn`.
    async startWorker({ bffReturn = `${origin}/app.html` } = {}) {
      const { issuer, mcp } = t.stack.info;
      const res = await fetch(`${issuer}/reg`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: json({
          application_type: 'web',
          redirect_uris: [`${origin}/callback.html`, `${origin}/bff/callback`],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        }),
      });
      const client = await res.json();
      assert(res.status === 201 && client.client_secret, `registering the worker's client: HTTP ${res.status}`);
      const { startMiniflare } = await import('../worker/miniflare.mjs');
      const w = await startMiniflare({
        bindings: {
          ALLOWED_ORIGINS: origin,
          INSECURE_ALLOW_LOOPBACK: 'true',
          PROVIDERS: json([{ name: 'peer', issuer, client_id: client.client_id, client_secret_binding: 'PEER_CLIENT_SECRET', redirect_uris: [`${origin}/callback.html`] }]),
          PEER_CLIENT_SECRET: client.client_secret,
          BFF_REDIRECT_URI: `${origin}/bff/callback`,
          BFF_RETURN_URL: bffReturn,
          MCP_SERVERS: json([{ name: 'tools', url: mcp, provider: 'peer', scope: 'mcp:tools', max_scope: 'mcp:tools mcp:admin' }]),
          BFF_COOKIE_KEY: nodeCrypto.randomBytes(32).toString('base64'),
          INSECURE_LOOPBACK_COOKIES: 'true',
        },
        port: workerPort,
        verbose: args.verbose,
      });
      t.worker = { ...w, client };
      return t.worker;
    },
    appUrl({ mode = 'redirect', redirect = '/callback.html', scope, db = `e2e-${id}`, persist = false, arch, proxy, client, server, dpop, mcp = t.stack.info.mcp } = {}) {
      const q = new URLSearchParams({ mcp, mode, redirect, db });
      if (scope) q.set('scope', scope);
      if (persist) q.set('persist', '1');
      for (const [k, v] of Object.entries({ arch, proxy, client, server, dpop })) if (v) q.set(k, v);
      return `${origin}/app.html?${q}`;
    },
    watch(page, label) {
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') t.diagnostics.push(`[${label} console.${m.type()}] ${m.text()}`);
      });
      page.on('pageerror', (e) => t.diagnostics.push(`[${label} pageerror] ${e.message}`));
      page.on('requestfailed', (r) => t.diagnostics.push(`[${label} requestfailed] ${r.method()} ${r.url().split('?')[0]} ${r.failure()?.errorText}`));
      page.on('popup', (p) => t.watch(p, `${label} popup`));
      page.on('request', (r) => {
        const u = new URL(r.url());
        if (t.stack && u.origin === t.stack.info.issuer && u.pathname === '/auth' && r.isNavigationRequest()) {
          t.diagnostics.push(`[${label}] authorization request, scope=${JSON.stringify(u.searchParams.get('scope'))}`);
        }
      });
    },
    // Opens app.html with these options and waits until the client exists.
    async openApp(opts) {
      if (!t.context) t.context = await browser.newContext();
      const page = await t.context.newPage();
      t.watch(page, `tab${t.pages.length + 1}`);
      t.pages.push(page);
      page.navs = [];
      page.on('framenavigated', (f) => { if (f === page.mainFrame()) page.navs.push(f.url()); });
      await page.goto(t.appUrl(opts));
      await t.ready(page);
      return page;
    },
    async ready(page) {
      const state = await page.evaluate(async () => {
        if (!window.e2e) return { error: 'window.e2e missing (did /pkg/edge_oauth_browser.js load?)' };
        try {
          await window.e2e.ready;
          return { ok: true };
        } catch (e) {
          return { error: `${e?.code ?? ''} ${e?.message ?? e}` };
        }
      });
      assert(state.ok, `app page not ready: ${state.error}`);
    },
    // Redirect login from app.html: AS (auto-approve) -> callback.html -> back to app.html.
    async loginRedirect(page) {
      const before = page.navs.length;
      await page.evaluate(() => window.e2e.startLogin());
      let sawCallback = false;
      await until(async () => {
        const navs = page.navs.slice(before).map((u) => new URL(u));
        sawCallback ||= navs.some((u) => u.pathname.startsWith('/callback') && (u.searchParams.has('code') || u.searchParams.has('error')));
        const here = new URL(page.url());
        if (!sawCallback) {
          const err = await tryEval(page, () => window.e2e?.loginError);
          if (err) throw new Failure(`login() failed: ${json(err)}`);
          return false;
        }
        if (here.pathname.startsWith('/callback')) {
          const err = await tryEval(page, () => window.e2eCallbackError);
          if (err) throw new Failure(`callback failed: ${json(err)}`);
          return false;
        }
        return here.pathname === '/app.html';
      }, 20000, 'the redirect login to come back to app.html');
      await page.waitForLoadState('load');
      await t.ready(page);
    },
    // Runs fn (source of a function, over window.e2e) inside a real click on #go; returns its
    // value. Waits for the page's console line, not by polling: every page.evaluate hands the
    // page a fresh user activation, which would let a popup opened too late pass.
    async click(page, fn, timeoutMs = 20000) {
      await page.evaluate(`window.e2e.onClick = ${fn}`);
      const settled = page.waitForEvent('console', { predicate: (m) => m.text().startsWith('e2e-clicked '), timeout: timeoutMs })
        .catch(() => { throw new Failure(`the click handler did not settle within ${timeoutMs / 1000} s`); });
      await page.click('#go');
      const r = JSON.parse((await settled).text().slice('e2e-clicked '.length));
      if (r.error) throw new Failure(`click handler failed: ${json(r.error)}`);
      return r.value;
    },
    async loginPopup(page) {
      return t.click(page, '() => window.e2e.client.login()');
    },
    async status(page) {
      return page.evaluate(() => window.e2e.client.status());
    },
    async token(page) {
      return page.evaluate(() => window.e2e.client.getAccessToken());
    },
    // An MCP request straight from Node (not through the page) with this bearer token.
    async mcpDirect(token, method = 'tools/list', params = {}) {
      const res = await fetch(t.stack.info.mcp, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: json({ jsonrpc: '2.0', id: 1, method, params }),
      });
      await res.text();
      return res.status;
    },
    async cleanup() {
      await t.context?.close().catch(() => {});
      await t.worker?.mf.dispose().catch(() => {});
      await t.stack?.stop();
    },
  };
  return t;
}

// getAccessToken() non-null and status().state "authenticated". statusFirst asks status()
// before anything else on the page (what an app renders on load); otherwise the token comes
// first, so a package that keeps access tokens in memory only has fetched one.
async function expectAuthenticated(t, page, what, { statusFirst = false } = {}) {
  let st;
  if (statusFirst) {
    st = await t.status(page);
    assert(st?.state === 'authenticated', `${what}: status().state before any getAccessToken() is ${json(st?.state)}, want "authenticated" (${json(st)})`);
  }
  const token = await t.token(page);
  assert(typeof token === 'string' && token.length > 0, `${what}: getAccessToken() returned ${json(token)}`);
  if (!statusFirst) {
    st = await t.status(page);
    assert(st?.state === 'authenticated', `${what}: status().state is ${json(st?.state)}, want "authenticated" (${json(st)})`);
  }
  return { st, token };
}

// Every record of every IndexedDB database of the page's origin, flattened to text: strings as
// they are, bytes as Latin-1 text (so plaintext stored as bytes shows), base64-looking strings
// also decoded; CryptoKeys described.
function dumpIndexedDb(page) {
  return page.evaluate(async () => {
    const keys = [];
    const texts = [];
    const b64 = /^[A-Za-z0-9+/_-]{40,}={0,2}$/;
    const bytesText = (u8) => Array.from(u8, (c) => String.fromCharCode(c)).join('');
    const walk = (v, depth) => {
      if (depth > 20 || v === null || v === undefined) return;
      if (typeof v === 'string') {
        texts.push(v);
        if (b64.test(v)) {
          try { texts.push(atob(v.replace(/-/g, '+').replace(/_/g, '/'))); } catch { /* not base64 */ }
        }
      } else if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') {
        texts.push(String(v));
      } else if (v instanceof CryptoKey) {
        keys.push({ type: v.type, extractable: v.extractable, algorithm: v.algorithm?.name, usages: v.usages });
      } else if (v instanceof ArrayBuffer) {
        texts.push(bytesText(new Uint8Array(v)));
      } else if (ArrayBuffer.isView(v)) {
        texts.push(bytesText(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)));
      } else if (v instanceof Blob) {
        texts.push(`[Blob ${v.size}]`);
      } else if (v instanceof Map) {
        for (const [k, x] of v) { walk(k, depth + 1); walk(x, depth + 1); }
      } else if (Array.isArray(v) || v instanceof Set) {
        for (const x of v) walk(x, depth + 1);
      } else if (typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) { texts.push(k); walk(x, depth + 1); }
      }
    };
    const open = (name) => new Promise((resolve, reject) => {
      const r = indexedDB.open(name);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const all = (db, store) => new Promise((resolve, reject) => {
      const tx = db.transaction(store, 'readonly');
      const s = tx.objectStore(store);
      const k = s.getAllKeys();
      const v = s.getAll();
      tx.oncomplete = () => resolve(k.result.map((key, i) => [key, v.result[i]]));
      tx.onerror = () => reject(tx.error);
    });
    const dbs = [];
    let records = 0;
    for (const { name } of await indexedDB.databases()) {
      const db = await open(name);
      const stores = Array.from(db.objectStoreNames);
      for (const store of stores) {
        for (const [key, value] of await all(db, store)) {
          records += 1;
          walk(key, 0);
          walk(value, 0);
        }
      }
      db.close();
      dbs.push({ name, stores });
    }
    return { dbs, records, keys, text: texts.join('\n') };
  });
}

// Scenarios b and b2: login, reload, the session is back from IndexedDB; nothing in IndexedDB
// holds the access token in the clear. With persistAccessTokens the access token itself is
// stored (encrypted), so the reload needs no refresh; without it the reload may refresh once.
async function reloadScenario(t, { persist }) {
  await t.startStack();
  const page = await t.openApp({ mode: 'redirect', persist });
  await t.loginRedirect(page);
  const { token } = await expectAuthenticated(t, page, 'after login');
  const s0 = await t.stats();
  await page.reload();
  await t.ready(page);
  const { st, token: again } = await expectAuthenticated(t, page, 'after reload');
  assert(st.storage === 'indexeddb', `status().storage is ${json(st.storage)} (${st.storageReason ?? ''}), want "indexeddb"`);
  const r = await page.evaluate(() => window.e2e.mcp('tools/call', { name: 'echo', arguments: { text: 'after-reload' } }));
  assert(r.status === 200, `client.fetch to the MCP server after reload: HTTP ${r.status} ${r.body}`);
  assert(r.result?.content?.[0]?.text === 'after-reload', `echo answered ${r.body}`);
  const s1 = await t.stats();
  assert((s1.mcp.tool_calls.echo || 0) - (s0.mcp.tool_calls.echo || 0) === 1, 'the MCP server did not count the echo call');
  assert(s1.authorization.requests === s0.authorization.requests, 'the reload started a new authorization');
  assert(grantCounts(s1, 'authorization_code').requests === grantCounts(s0, 'authorization_code').requests, 'the reload exchanged a new code');
  const refreshes = grantCounts(s1, 'refresh_token').requests - grantCounts(s0, 'refresh_token').requests;
  if (persist) {
    assert(again === token, 'with persistAccessTokens the reload did not give back the stored access token');
    assert(refreshes === 0, `with persistAccessTokens the reload refreshed ${refreshes} time(s)`);
  } else {
    assert(refreshes <= 1, `the reload refreshed ${refreshes} times`);
  }

  const dump = await dumpIndexedDb(page);
  assert(dump.records > 0, `IndexedDB holds no records (databases: ${json(dump.dbs)})`);
  for (const tok of new Set([token, again])) {
    const [, payload, signature] = tok.split('.');
    for (const [label, needle] of [['an access token', tok], ['an access token signature', signature], ['an access token payload', payload], ['the first 24 chars of an access token', tok.slice(0, 24)]]) {
      if (needle) assert(!dump.text.includes(needle), `IndexedDB holds ${label} in the clear`);
    }
  }
  const extractable = dump.keys.filter((k) => k.extractable);
  assert(extractable.length === 0, `IndexedDB holds extractable CryptoKeys: ${json(extractable)}`);
  return `${dump.records} records in ${dump.dbs.map((d) => d.name).join(', ')}; ${dump.keys.length} non-extractable key(s); ${refreshes} refresh on reload`;
}

// Scenarios e and p3: 5 tabs x 20 concurrent getAccessToken() just after the access token
// expires; exactly one refresh request reaches the AS. `stackArgs` for the stack (e.g.
// --dpop); returns the first tab and the note.
async function fiveTabs(t, stackArgs = [], appOpts = {}) {
  await t.startStack(['--access-token-ttl', '8', ...stackArgs]);
  const first = await t.openApp({ mode: 'redirect', ...appOpts });
  await t.loginRedirect(first);
  const { token: old } = await expectAuthenticated(t, first, 'tab 1 after login');
  const s0 = await t.stats(); // counts the opening of tabs 2-5 too
  const tabs = [first];
  for (let i = 1; i < 5; i += 1) tabs.push(await t.openApp({ mode: 'redirect', ...appOpts }));
  const exp = jwtPayload(old)?.exp;
  assert(exp, 'the access token is not a JWT with exp');
  const startAt = Math.max(Date.now() + 300, exp * 1000 + 300);
  const results = await Promise.all(tabs.map((page) => page.evaluate(async (at) => {
    await new Promise((r) => setTimeout(r, at - Date.now()));
    const settled = await Promise.allSettled(Array.from({ length: 20 }, () => window.e2e.client.getAccessToken()));
    return settled.map((s) => (s.status === 'fulfilled' ? { token: s.value } : { error: `${s.reason?.code ?? ''} ${s.reason?.message ?? s.reason}` }));
  }, startAt)));
  const flat = results.flat();
  const errors = flat.filter((r) => r.error);
  assert(errors.length === 0, `${errors.length}/100 calls threw, e.g. ${errors[0]?.error}`);
  const tokens = new Set(flat.map((r) => r.token));
  assert(!tokens.has(null) && !tokens.has(undefined), `${flat.filter((r) => !r.token).length}/100 calls returned no token`);
  assert(!tokens.has(old), `${flat.filter((r) => r.token === old).length}/100 calls returned the expired token`);
  assert(tokens.size === 1, `the 100 calls returned ${tokens.size} different tokens`);
  const s1 = await t.stats();
  const before = grantCounts(s0, 'refresh_token');
  const after = grantCounts(s1, 'refresh_token');
  assert(after.requests - before.requests === 1, `the AS counted ${after.requests - before.requests} refresh_token requests, want exactly 1`);
  assert(after.errors - before.errors === 0, `refresh_token errors +${after.errors - before.errors}`);
  const st = await t.status(first);
  return { first, note: `lock: ${st.lock}`, token: [...tokens][0] };
}

// Every record of the page's own database, decrypted with its own non-extractable key (script
// may use it, never read it): { "<kind>|<id>": plaintext }.
function decryptIndexedDb(page) {
  return page.evaluate(async (name) => {
    const db = await new Promise((resolve, reject) => {
      const r = indexedDB.open(name);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const all = (store) => new Promise((resolve, reject) => {
      const tx = db.transaction(store, 'readonly');
      const k = tx.objectStore(store).getAllKeys();
      const v = tx.objectStore(store).getAll();
      tx.oncomplete = () => resolve(k.result.map((key, i) => [key, v.result[i]]));
      tx.onerror = () => reject(tx.error);
    });
    const [, key] = (await all('keys')).find(([k]) => k === 'record-key');
    const out = {};
    for (const [k, v] of await all('records')) {
      try {
        const additionalData = new TextEncoder().encode(`edge-oauth/v1|${k}`);
        out[k] = new TextDecoder().decode(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: v.iv, additionalData }, key, v.ct));
      } catch (e) {
        out[k] = `undecryptable: ${e}`;
      }
    }
    db.close();
    return out;
  }, new URL(page.url()).searchParams.get('db'));
}


// ---------------------------------------------------------------------------
// DPoP (RFC 9449) helpers: the page's stored key, thumbprints, proofs made in Node.
// ---------------------------------------------------------------------------
const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

// RFC 7638 thumbprint of a P-256 public JWK.
function ecThumbprint({ x, y }) {
  return nodeCrypto.createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`).digest('base64url');
}

// A DPoP proof signed in Node with a key of its own (another key than the page's).
function foreignProof(htu, htm = 'POST') {
  const { privateKey, publicKey } = nodeCrypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { x, y } = publicKey.export({ format: 'jwk' });
  const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x, y } };
  const claims = { jti: nodeCrypto.randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000) };
  const input = `${b64url(header)}.${b64url(claims)}`;
  const sig = nodeCrypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

// The page's DPoP key record in its IndexedDB (keys/dpop-key): what the private CryptoKey says
// of itself, whether exportKey refuses it (every format), and whether WebCrypto verifies a
// signature it made with the stored public coordinates.
function inspectDpopKey(page) {
  return page.evaluate(async (name) => {
    const db = await new Promise((resolve, reject) => {
      const r = indexedDB.open(name);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const rec = await new Promise((resolve, reject) => {
      const r = db.transaction('keys', 'readonly').objectStore('keys').get('dpop-key');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    db.close();
    if (!rec) return { missing: true };
    const k = rec.privateKey;
    const exports = {};
    for (const format of ['jwk', 'pkcs8', 'raw']) {
      try {
        await crypto.subtle.exportKey(format, k);
        exports[format] = 'exported';
      } catch (e) {
        exports[format] = e.name;
      }
    }
    const data = new TextEncoder().encode('edge-oauth dpop check');
    const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, k, data);
    const pub = await crypto.subtle.importKey('jwk', { kty: 'EC', crv: rec.crv, x: rec.x, y: rec.y }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const verifies = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, pub, sig, data);
    return {
      isCryptoKey: k instanceof CryptoKey,
      type: k.type,
      extractable: k.extractable,
      algorithm: k.algorithm,
      usages: k.usages,
      jwk: { crv: rec.crv, x: rec.x, y: rec.y },
      exports,
      sigLength: sig.byteLength,
      verifies,
    };
  }, new URL(page.url()).searchParams.get('db'));
}

// Records every token-endpoint exchange of a page: request DPoP header, status, and body.
function watchTokenEndpoint(page, issuer) {
  const seen = [];
  page.on('response', async (res) => {
    const req = res.request();
    if (req.method() !== 'POST' || req.url() !== `${issuer}/token`) return;
    const entry = { dpop: req.headers().dpop, status: res.status(), body: null };
    seen.push(entry);
    try { entry.body = JSON.parse(await res.text()); } catch { /* a page that navigated on */ }
  });
  return seen;
}

// The claims and header of a DPoP proof.
function proofParts(proof) {
  const [h, c] = (proof ?? '').split('.');
  try {
    return { header: JSON.parse(Buffer.from(h, 'base64url')), claims: JSON.parse(Buffer.from(c, 'base64url')) };
  } catch {
    return {};
  }
}

// A refresh_token grant sent from Node with the page's refresh token (read from its IndexedDB,
// decrypted with its own key) and `dpop` as the DPoP header (none when undefined).
async function refreshFromNode(t, page, dpop) {
  const plain = await decryptIndexedDb(page);
  const session = JSON.parse(plain[`session|${t.stack.info.mcp}`] ?? 'null');
  assert(session?.tokens?.refresh_token, `no refresh token in the stored session (records: ${json(Object.keys(plain))})`);
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (dpop) headers.dpop = dpop;
  const res = await fetch(session.token_endpoint, {
    method: 'POST',
    headers,
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: session.tokens.refresh_token, client_id: session.client_id }),
  });
  return { status: res.status, body: await res.json().catch(() => ({})), session };
}

// ---------------------------------------------------------------------------
// Scenarios. Each asserts on the servers' counters (/test/stats) where it can.
// ---------------------------------------------------------------------------
const scenarios = [
  {
    id: 'a',
    name: 'redirect login: AS auto-approves, callback, back at app.html authenticated, no code/state/iss left in the URL',
    async run(t) {
      await t.startStack();
      const page = await t.openApp({ mode: 'redirect' });
      const s0 = await t.stats();
      await t.loginRedirect(page);
      const url = new URL(page.url());
      for (const p of ['code', 'state', 'iss']) assert(!url.searchParams.has(p), `app URL still holds ${p}: ${page.url()}`);
      const callback = page.navs.map((u) => new URL(u)).find((u) => u.pathname === '/callback.html' && u.searchParams.has('code'));
      assert(callback, `the AS never redirected to /callback.html with a code (navigations: ${page.navs.map((u) => u.split('?')[0]).join(' ')})`);
      assert(callback.searchParams.get('iss') === t.stack.info.issuer, 'the callback had no iss from the AS');
      const { st, token } = await expectAuthenticated(t, page, 'after the redirect login', { statusFirst: true });
      assert(st.issuer === t.stack.info.issuer, `status().issuer ${json(st.issuer)} != ${t.stack.info.issuer}`);
      const s1 = await t.stats();
      const code = grantCounts(s1, 'authorization_code').ok - grantCounts(s0, 'authorization_code').ok;
      assert(code === 1, `authorization_code ok +${code}, want +1`);
      assert(s1.registration.ok - s0.registration.ok >= 1, 'no dynamic client registration reached the AS');
      assert(await t.mcpDirect(token) === 200, 'the MCP server refused the access token from getAccessToken()');
    },
  },
  {
    id: 'b',
    name: 'reload keeps the session (encrypted IndexedDB), fetch to the MCP server works, no token in IndexedDB in the clear',
    run: (t) => reloadScenario(t, { persist: false }),
  },
  {
    id: 'b2',
    name: 'as b with persistAccessTokens: the access token survives the reload encrypted (no refresh needed)',
    run: (t) => reloadScenario(t, { persist: true }),
  },
  {
    id: 'c1',
    name: 'popup login from a click (the callback page loads no wasm)',
    async run(t) {
      await t.startStack();
      const page = await t.openApp({ mode: 'popup', redirect: '/callback.html' });
      // What the popup loads: its callback page needs popup-callback.js, never the wasm.
      const popupRequests = [];
      page.on('popup', (p) => p.on('request', (r) => popupRequests.push(new URL(r.url()).pathname)));
      const s0 = await t.stats();
      await t.loginPopup(page);
      await expectAuthenticated(t, page, 'after the popup login');
      assert(popupRequests.includes('/pkg/popup-callback.js'), `the popup did not load popup-callback.js: ${popupRequests.join(' ')}`);
      assert(!popupRequests.some((u) => u.endsWith('.wasm')), `the popup loaded the wasm: ${popupRequests.join(' ')}`);
      assert(new URL(page.url()).pathname === '/app.html' && page.navs.length === 1, `the app page navigated: ${page.navs.map((u) => u.split('?')[0]).join(' ')}`);
      const s1 = await t.stats();
      const code = grantCounts(s1, 'authorization_code').ok - grantCounts(s0, 'authorization_code').ok;
      assert(code === 1, `authorization_code ok +${code}, want +1`);
    },
  },
  {
    id: 'c2',
    name: 'popup login, callback served with Cross-Origin-Opener-Policy: same-origin',
    async run(t) {
      await t.startStack();
      const page = await t.openApp({ mode: 'popup', redirect: '/callback-coop.html' });
      const s0 = await t.stats();
      await t.loginPopup(page);
      await expectAuthenticated(t, page, 'after the popup login (COOP callback)');
      const s1 = await t.stats();
      const code = grantCounts(s1, 'authorization_code').ok - grantCounts(s0, 'authorization_code').ok;
      assert(code === 1, `authorization_code ok +${code}, want +1`);
    },
  },
  {
    id: 'd',
    name: 'refresh with rotation after expiry (access token TTL 8 s)',
    async run(t) {
      await t.startStack(['--access-token-ttl', '8']);
      const page = await t.openApp({ mode: 'redirect' });
      await t.loginRedirect(page);
      // Counted from here: a package keeping access tokens in memory only may have refreshed
      // once already to get this first token after the redirect.
      const { token: first } = await expectAuthenticated(t, page, 'after login');
      const s0 = await t.stats();
      const exp = jwtPayload(first)?.exp;
      assert(exp, 'the access token is not a JWT with exp');
      await sleep(Math.max(0, exp * 1000 - Date.now()) + 700);
      const second = await t.token(page);
      assert(typeof second === 'string' && second && second !== first, `getAccessToken() after expiry returned ${second === first ? 'the expired token' : json(second)}`);
      assert(jwtPayload(second)?.exp * 1000 > Date.now(), 'the new access token is already expired');
      const s1 = await t.stats();
      const before = grantCounts(s0, 'refresh_token');
      const after = grantCounts(s1, 'refresh_token');
      assert(after.ok - before.ok === 1, `refresh_token ok +${after.ok - before.ok}, want +1`);
      assert(after.errors - before.errors === 0, `refresh_token errors +${after.errors - before.errors}: ${json(s1.token.by_grant_type.refresh_token?.errors)}`);
      const st = await t.status(page);
      assert(st.state === 'authenticated', `status().state after refresh is ${json(st.state)}`);
      const r = await page.evaluate(() => window.e2e.mcp('tools/list'));
      assert(r.status === 200, `client.fetch after refresh: HTTP ${r.status} ${r.body}`);
    },
  },
  {
    id: 'e',
    name: '5 tabs x 20 concurrent getAccessToken() just after expiry: exactly one refresh',
    timeoutMs: 90000,
    async run(t) {
      return (await fiveTabs(t)).note;
    },
  },
  {
    id: 'p1',
    name: 'DPoP (mcp-stack --dpop): non-extractable P-256 key in IndexedDB; tokens DPoP-bound to its thumbprint; MCP accepts them with a proof, refuses them as Bearer; a reload refreshes with the same key; the AS refuses a refresh without a proof or with another key',
    timeoutMs: 90000,
    async run(t) {
      await t.startStack(['--dpop']);
      const { issuer } = t.stack.info;
      const page = await t.openApp({ mode: 'redirect' });
      const exchanges = watchTokenEndpoint(page, issuer);
      await t.loginRedirect(page);
      const { st, token } = await expectAuthenticated(t, page, 'after the DPoP login');
      // The key: a non-extractable ECDSA P-256 private key that signs r||s; exportKey refuses it.
      const key = await inspectDpopKey(page);
      assert(!key.missing, 'no dpop-key record in IndexedDB');
      assert(key.isCryptoKey && key.type === 'private' && key.extractable === false, `stored key: ${json(key)}`);
      assert(key.algorithm?.name === 'ECDSA' && key.algorithm?.namedCurve === 'P-256', `stored key algorithm ${json(key.algorithm)}`);
      for (const [format, outcome] of Object.entries(key.exports)) {
        assert(outcome === 'InvalidAccessError', `crypto.subtle.exportKey('${format}', privateKey): ${outcome}, want InvalidAccessError`);
      }
      assert(key.sigLength === 64 && key.verifies, `WebCrypto ECDSA signature: ${key.sigLength} bytes, verifies ${key.verifies}`);
      const jkt = ecThumbprint(key.jwk);
      // Bound: token_type DPoP at the exchange, cnf.jkt = the key's thumbprint, status says so.
      assert(st.dpopBound === true && st.dpopJkt === jkt, `status(): dpopBound ${json(st.dpopBound)}, dpopJkt ${json(st.dpopJkt)} (key ${jkt})`);
      assert(jwtPayload(token)?.cnf?.jkt === jkt, `access token cnf ${json(jwtPayload(token)?.cnf)}, want jkt ${jkt}`);
      const codeExchange = exchanges.find((e) => e.status === 200);
      assert(codeExchange, `no successful token request seen (${json(exchanges.map((e) => e.status))})`);
      assert(exchanges.every((e) => e.dpop), 'a token request went without a DPoP proof');
      const proof = proofParts(codeExchange.dpop);
      assert(proof.header?.typ === 'dpop+jwt' && proof.header?.alg === 'ES256' && ecThumbprint(proof.header.jwk ?? {}) === jkt && !proof.header.jwk.d, `code exchange proof header ${json(proof.header)}`);
      assert(proof.claims?.htm === 'POST' && proof.claims?.htu === `${issuer}/token`, `code exchange proof claims ${json(proof.claims)}`);
      if (codeExchange.body) assert(codeExchange.body.token_type === 'DPoP', `token_type ${json(codeExchange.body.token_type)}`);
      // The MCP server: the bound token with a proof through client.fetch; as Bearer refused.
      const s0 = await t.stats();
      const r = await page.evaluate(() => window.e2e.mcp('tools/call', { name: 'echo', arguments: { text: 'bound' } }));
      assert(r.status === 200 && r.result?.content?.[0]?.text === 'bound', `client.fetch with DPoP: HTTP ${r.status} ${r.body}`);
      assert(await t.mcpDirect(token) === 401, 'the MCP server accepted the DPoP-bound token as a Bearer token');
      const s1 = await t.stats();
      assert((s1.mcp.schemes.DPoP || 0) - (s0.mcp.schemes.DPoP || 0) === 1, `MCP schemes ${json(s0.mcp.schemes)} -> ${json(s1.mcp.schemes)}, want DPoP +1`);
      const asBearer = (s1.mcp.dpop_rejected['bound token as Bearer'] || 0) - (s0.mcp.dpop_rejected['bound token as Bearer'] || 0);
      assert(asBearer === 1, `dpop_rejected ${json(s1.mcp.dpop_rejected)}`);
      // The MCP SDK over our fetch with DPoP.
      const sdk = await page.evaluate(() => window.e2e.sdk('authFetch').catch((e) => ({ error: `${e?.code ?? ''} ${e?.message ?? e}` })));
      assert(!sdk.error && sdk.echo === 'hi', `MCP SDK over createAuthFetch with DPoP: ${json(sdk)}`);
      // Reload: access tokens live in memory only, so the page refreshes, with the same key.
      const before = exchanges.length;
      await page.reload();
      await t.ready(page);
      const { st: st2, token: token2 } = await expectAuthenticated(t, page, 'after reload');
      const s2 = await t.stats();
      assert(grantCounts(s2, 'refresh_token').ok - grantCounts(s1, 'refresh_token').ok === 1, 'the reload did not refresh exactly once');
      assert(token2 !== token && jwtPayload(token2)?.cnf?.jkt === jkt, `after reload: cnf ${json(jwtPayload(token2)?.cnf)}, want jkt ${jkt}`);
      assert(st2.dpopJkt === jkt && st2.dpopBound, `status() after reload: ${json(st2)}`);
      const refresh = exchanges.slice(before).find((e) => e.status === 200);
      assert(refresh && ecThumbprint(proofParts(refresh.dpop).header?.jwk ?? {}) === jkt, 'the refresh after reload was not proven with the same key');
      if (refresh.body) assert(refresh.body.token_type === 'DPoP', `refresh answer token_type ${json(refresh.body.token_type)}`);
      const r2 = await page.evaluate(() => window.e2e.mcp('tools/list'));
      assert(r2.status === 200, `client.fetch after reload: HTTP ${r2.status} ${r2.body}`);
      // The refresh token is bound too: the AS refuses it without a proof and with another key.
      const none = await refreshFromNode(t, page, undefined);
      assert(none.status === 400 && none.body.error, `refresh without a proof: HTTP ${none.status} ${json(none.body)}`);
      const other = await refreshFromNode(t, page, foreignProof(none.session.token_endpoint));
      assert(other.status === 400 && other.body.error, `refresh with another key: HTTP ${other.status} ${json(other.body)}`);
      return `jkt ${jkt.slice(0, 8)}…; refused: no proof ${none.body.error} (${none.body.error_description}), other key ${other.body.error} (${other.body.error_description})`;
    },
  },
  {
    id: 'p2',
    name: 'DPoP nonces (mcp-stack --dpop-nonce): the AS and the MCP server each challenge once, the page answers with the nonce, later requests carry it',
    timeoutMs: 90000,
    async run(t) {
      await t.startStack(['--dpop-nonce']);
      const { issuer } = t.stack.info;
      const page = await t.openApp({ mode: 'redirect', dpop: 'require' });
      const exchanges = watchTokenEndpoint(page, issuer);
      await t.loginRedirect(page);
      const { st } = await expectAuthenticated(t, page, 'after the DPoP login');
      assert(st.dpopBound, `status(): ${json(st)}`);
      const s1 = await t.stats();
      const code = s1.token.by_grant_type.authorization_code;
      assert(code?.ok === 1 && code?.errors?.use_dpop_nonce === 1 && code.requests === 2, `code exchange: ${json(code)}, want one use_dpop_nonce then ok`);
      // Exchanges on the callback page may be unreadable after it navigated; statuses are not.
      assert(exchanges.filter((e) => e.status === 400).length === 1, `token statuses ${json(exchanges.map((e) => e.status))}`);
      const ok = exchanges.find((e) => e.status === 200);
      assert(ok && proofParts(ok.dpop).claims?.nonce, `the retried exchange's proof has no nonce (${json(proofParts(ok?.dpop).claims)})`);
      // The MCP server: one 401 use_dpop_nonce, answered; the next request carries the nonce.
      const r1 = await page.evaluate(() => window.e2e.mcp('tools/list'));
      assert(r1.status === 200, `first MCP request: HTTP ${r1.status} ${r1.body}`);
      const r2 = await page.evaluate(() => window.e2e.mcp('tools/call', { name: 'echo', arguments: { text: 'n' } }));
      assert(r2.status === 200, `second MCP request: HTTP ${r2.status} ${r2.body}`);
      const s2 = await t.stats();
      const nonceRejects = (s2.mcp.dpop_rejected.nonce || 0) - (s1.mcp.dpop_rejected.nonce || 0);
      assert(nonceRejects === 1, `the MCP server challenged ${nonceRejects} times (${json(s2.mcp.dpop_rejected)}), want once`);
      assert((s2.mcp.schemes.DPoP || 0) - (s1.mcp.schemes.DPoP || 0) === 3, `MCP DPoP requests ${json(s2.mcp.schemes)}, want 3 (challenge, retry, next)`);
      return `AS: ${json(code)}; MCP nonce challenges: ${nonceRejects}`;
    },
  },
  {
    id: 'p3',
    name: 'DPoP: 5 tabs x 20 concurrent getAccessToken() just after expiry share one key and make exactly one (proven) refresh',
    timeoutMs: 90000,
    async run(t) {
      const { first, note, token } = await fiveTabs(t, ['--dpop']);
      const jkts = new Set();
      for (const page of t.pages) jkts.add((await t.status(page)).dpopJkt);
      assert(jkts.size === 1 && !jkts.has(undefined), `the tabs use ${jkts.size} DPoP keys: ${json([...jkts])}`);
      const [jkt] = jkts;
      assert(jwtPayload(token)?.cnf?.jkt === jkt, `the refreshed token's cnf ${json(jwtPayload(token)?.cnf)}, want ${jkt}`);
      const r = await first.evaluate(() => window.e2e.mcp('tools/list'));
      assert(r.status === 200, `client.fetch after the refresh: HTTP ${r.status} ${r.body}`);
      return `${note}; one key in ${t.pages.length} tabs`;
    },
  },
  {
    id: 'p4',
    name: 'DPoP: logout replaces the key; the next login binds to the new one (mcp-stack --dpop); dpop "off" gets Bearer tokens from the same AS',
    timeoutMs: 90000,
    async run(t) {
      await t.startStack(['--dpop']);
      const page = await t.openApp({ mode: 'redirect' });
      await t.loginRedirect(page);
      const { st } = await expectAuthenticated(t, page, 'after login');
      const out = await page.evaluate(() => window.e2e.client.logout());
      assert(out?.deleted === true, `logout(): ${json(out)}`);
      const after = await t.status(page);
      assert(after.dpopJkt && after.dpopJkt !== st.dpopJkt && !after.dpopBound, `after logout: ${json(after)} (before ${st.dpopJkt})`);
      assert(ecThumbprint((await inspectDpopKey(page)).jwk) === after.dpopJkt, 'the stored key is not the new one');
      await t.loginRedirect(page);
      const { token } = await expectAuthenticated(t, page, 'after the second login');
      assert(jwtPayload(token)?.cnf?.jkt === after.dpopJkt, `second login bound to ${json(jwtPayload(token)?.cnf)}, want ${after.dpopJkt}`);
      // Off: the same AS hands out Bearer tokens.
      const off = await t.openApp({ mode: 'redirect', dpop: 'off', db: 'e2e-p4-off' });
      await t.loginRedirect(off);
      const { st: stOff, token: bearer } = await expectAuthenticated(t, off, 'dpop off');
      assert(!stOff.dpopBound && stOff.dpopJkt === undefined && !jwtPayload(bearer)?.cnf, `dpop "off": ${json(stOff)}, cnf ${json(jwtPayload(bearer)?.cnf)}`);
      assert(await t.mcpDirect(bearer) === 200, 'the Bearer token of dpop "off" was refused');
    },
  },
  {
    id: 'p5',
    name: 'DPoP through the token-mediating worker (mcp-stack --dpop): the page\'s proof passes through on the exchange and the refresh, tokens bound to the page\'s key; a refresh without that key\'s proof refused at the edge, the session kept',
    timeoutMs: 90000,
    async run(t) {
      await t.startStack(['--dpop', '--access-token-ttl', '8']);
      const w = await t.startWorker();
      const page = await t.openApp({ mode: 'redirect', arch: 'token-mediating', proxy: w.base, client: w.client.client_id });
      const toWorker = [];
      t.context.on('request', (r) => {
        if (r.method() === 'POST' && r.url() === `${w.base}/token`) toWorker.push({ dpop: r.headers().dpop, grant: new URLSearchParams(r.postData() ?? '').get('grant_type') });
      });
      await t.loginRedirect(page);
      const { st, token: first } = await expectAuthenticated(t, page, 'after the token-mediating DPoP login', { statusFirst: true });
      const jkt = st.dpopJkt;
      assert(st.architecture === 'token-mediating' && st.dpopBound && jkt, `status(): ${json(st)}`);
      assert(jwtPayload(first)?.cnf?.jkt === jkt, `access token cnf ${json(jwtPayload(first)?.cnf)}, want ${jkt}`);
      const r1 = await page.evaluate(() => window.e2e.mcp('tools/list'));
      assert(r1.status === 200, `client.fetch with the bound token: HTTP ${r1.status} ${r1.body}`);
      assert(await t.mcpDirect(first) === 401, 'the MCP server took the bound token as Bearer');
      // After expiry: the refresh goes through the worker with the page's proof.
      const exp = jwtPayload(first)?.exp;
      await sleep(Math.max(0, exp * 1000 - Date.now()) + 700);
      const s2 = await t.stats();
      const second = await t.token(page);
      const s3 = await t.stats();
      assert(typeof second === 'string' && second !== first && jwtPayload(second)?.cnf?.jkt === jkt, `after expiry: ${second === first ? 'the same token' : json(jwtPayload(second)?.cnf)}`);
      assert(grantCounts(s3, 'refresh_token').ok - grantCounts(s2, 'refresh_token').ok === 1, 'no upstream refresh');
      const r2 = await page.evaluate(() => window.e2e.mcp('tools/call', { name: 'echo', arguments: { text: 'edge' } }));
      assert(r2.status === 200 && r2.result?.content?.[0]?.text === 'edge', `client.fetch after the refresh: HTTP ${r2.status} ${r2.body}`);
      const grants = toWorker.map((x) => x.grant);
      assert(grants.includes('authorization_code') && grants.includes('refresh_token'), `requests to the worker's /token: ${json(grants)}`);
      for (const x of toWorker) assert(x.dpop && ecThumbprint(proofParts(x.dpop).header?.jwk ?? {}) === jkt, `a ${x.grant} request to the worker without the page's proof`);
      // The session handle without the page's key: refused at the edge, nothing sent upstream.
      const plain = await decryptIndexedDb(page);
      const handle = JSON.parse(plain[`session|${t.stack.info.mcp}`] ?? 'null')?.tokens?.refresh_token;
      assert(handle, 'no session handle stored');
      const s4 = await t.stats();
      for (const [what, proof] of [['no proof', undefined], ['another key', foreignProof(`${t.stack.info.issuer}/token`)]]) {
        const headers = { 'content-type': 'application/x-www-form-urlencoded', origin: t.origin };
        if (proof) headers.dpop = proof;
        const res = await fetch(`${w.base}/token`, { method: 'POST', headers, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: handle, client_id: w.client.client_id }) });
        const body = await res.json().catch(() => ({}));
        assert(res.status === 400 && body.error === 'invalid_dpop_proof', `refresh through the worker with ${what}: HTTP ${res.status} ${json(body)}`);
      }
      const s5 = await t.stats();
      assert(grantCounts(s5, 'refresh_token').requests === grantCounts(s4, 'refresh_token').requests, 'a refused refresh reached the AS');
      const r3 = await page.evaluate(() => window.e2e.mcp('tools/list'));
      assert(r3.status === 200, `the session after the refused attempts: HTTP ${r3.status}`);
      return `${toWorker.length} proven requests to the worker's /token`;
    },
  },
  {
    id: 'p6',
    name: 'DPoP nonce through the token-mediating worker (mcp-stack --dpop-nonce): the AS\'s use_dpop_nonce and DPoP-Nonce reach the page through the worker, answered once',
    timeoutMs: 90000,
    async run(t) {
      await t.startStack(['--dpop-nonce']);
      const w = await t.startWorker();
      const page = await t.openApp({ mode: 'redirect', arch: 'token-mediating', proxy: w.base, client: w.client.client_id, dpop: 'require' });
      await t.loginRedirect(page);
      const { st, token } = await expectAuthenticated(t, page, 'after the login');
      assert(st.dpopBound && jwtPayload(token)?.cnf?.jkt === st.dpopJkt, `status(): ${json(st)}`);
      const s1 = await t.stats();
      const code = s1.token.by_grant_type.authorization_code;
      assert(code?.ok === 1 && code?.errors?.use_dpop_nonce === 1 && code.requests === 2, `code exchanges at the AS: ${json(code)}, want one use_dpop_nonce then ok`);
      const r = await page.evaluate(() => window.e2e.mcp('tools/list'));
      assert(r.status === 200, `client.fetch: HTTP ${r.status} ${r.body}`);
      return `AS: ${json(code)}`;
    },
  },
  {
    id: 'p7',
    name: 'DPoP in the bff architecture (mcp-stack --dpop): the worker binds the session to its own key; status().dpopBound, the MCP SDK through /bff/mcp/tools with DPoP upstream; the page holds no token and no key',
    timeoutMs: 90000,
    async run(t) {
      await t.startStack(['--dpop']);
      const opts = { mode: 'redirect', arch: 'bff', proxy: t.origin, server: 'tools' };
      await t.startWorker({ bffReturn: t.appUrl(opts) });
      const page = await t.openApp(opts);
      const s0 = await t.stats();
      const before = page.navs.length;
      await page.evaluate(() => window.e2e.startLogin());
      await until(async () => {
        const err = await tryEval(page, () => window.e2e?.loginError);
        if (err) throw new Failure(`login() failed: ${json(err)}`);
        if (!page.navs.slice(before).some((u) => new URL(u).pathname === '/app.html')) return false;
        return grantCounts(await t.stats(), 'authorization_code').ok > grantCounts(s0, 'authorization_code').ok;
      }, 20000, 'the BFF login to come back to app.html');
      await page.waitForLoadState('load');
      await t.ready(page);
      const st = await t.status(page);
      assert(st.state === 'authenticated' && st.dpopBound === true, `status(): ${json(st)}`);
      assert(await t.token(page) === null, 'getAccessToken() is not null with bff');
      const s1 = await t.stats();
      const sdk = await page.evaluate(() => window.e2e.sdk('authFetch').catch((e) => ({ error: `${e?.code ?? ''} ${e?.message ?? e}` })));
      assert(!sdk.error && sdk.tools?.includes('echo') && sdk.echo === 'hi', `MCP SDK through the BFF: ${json(sdk)}`);
      const s2 = await t.stats();
      const dpop = (s2.mcp.schemes.DPoP || 0) - (s1.mcp.schemes.DPoP || 0);
      assert(dpop >= 2 && (s2.mcp.schemes.Bearer || 0) === (s1.mcp.schemes.Bearer || 0), `MCP schemes ${json(s1.mcp.schemes)} -> ${json(s2.mcp.schemes)}`);
      const dump = await dumpIndexedDb(page);
      assert(!/eyJ[A-Za-z0-9_-]{10,}\./.test(dump.text), 'IndexedDB of the bff page holds a JWT');
      return `${dpop} MCP requests with DPoP from the worker`;
    },
  },
  {
    id: 'p8',
    name: 'DPoP (mcp-stack --dpop): a request to the MCP server\'s URL with a query, through createAuthFetch, goes with the DPoP scheme and a proof whose htu has no query (never as Bearer)',
    timeoutMs: 60000,
    async run(t) {
      const { mcp } = await t.startStack(['--dpop']);
      const page = await t.openApp({ mode: 'redirect' });
      await t.loginRedirect(page);
      const { st } = await expectAuthenticated(t, page, 'after the DPoP login');
      assert(st.dpopBound, `status(): ${json(st)}`);
      const sent = [];
      page.on('request', (r) => {
        if (r.method() === 'POST' && r.url().startsWith(`${mcp}?`)) sent.push({ url: r.url(), authorization: r.headers().authorization ?? '', dpop: r.headers().dpop });
      });
      const s0 = await t.stats();
      const r = await page.evaluate((u) => window.e2e.mcp('tools/call', { name: 'echo', arguments: { text: 'query' } }, window.e2e.authFetch(), u).catch((e) => ({ error: `${e?.code ?? ''} ${e?.message ?? e}` })), `${mcp}?x=1`);
      const s1 = await t.stats();
      assert(r.status === 200 && r.result?.content?.[0]?.text === 'query', `createAuthFetch to ${mcp}?x=1: ${json(r)}; sent ${json(sent.map((x) => x.authorization.split(' ')[0]))}`);
      assert(sent.length === 1 && sent[0].authorization.startsWith('DPoP ') && sent[0].dpop, `requests to ${mcp}?x=1: ${json(sent.map((x) => ({ scheme: x.authorization.split(' ')[0], proof: !!x.dpop })))}`);
      const claims = proofParts(sent[0].dpop).claims;
      assert(claims?.htu === mcp && claims?.htm === 'POST', `proof claims ${json(claims)}, want htu ${mcp}`);
      const asBearer = (s1.mcp.dpop_rejected['bound token as Bearer'] || 0) - (s0.mcp.dpop_rejected['bound token as Bearer'] || 0);
      assert(asBearer === 0 && (s1.mcp.schemes.DPoP || 0) - (s0.mcp.schemes.DPoP || 0) === 1, `MCP schemes ${json(s0.mcp.schemes)} -> ${json(s1.mcp.schemes)}, rejected ${json(s1.mcp.dpop_rejected)}`);
      return `htu ${claims.htu}`;
    },
  },
  {
    id: 'p9',
    name: 'DPoP, two MCP servers in one database (two mcp-stack --dpop): logout of one keeps the key, the other still refreshes and calls with DPoP; the last logout replaces the key and a new login binds to the new one',
    timeoutMs: 120000,
    async run(t) {
      const a = await t.startStack(['--dpop']);
      const stackB = await startNode('mcp-stack', STACK, ['--cors-origin', t.origin, '--dpop']);
      try {
        const b = stackB.info;
        const statsB = async () => (await fetch(`${b.issuer}/test/stats`)).json();
        const db = 'e2e-p9';
        const tabA = await t.openApp({ mode: 'redirect', db });
        await t.loginRedirect(tabA);
        const { st: stA } = await expectAuthenticated(t, tabA, 'server A after login');
        const tabB = await t.openApp({ mode: 'redirect', db, mcp: b.mcp });
        await t.loginRedirect(tabB);
        const { st: stB, token: tokenB } = await expectAuthenticated(t, tabB, 'server B after login');
        const jkt = stA.dpopJkt;
        assert(stA.dpopBound && stB.dpopBound && stB.dpopJkt === jkt && jwtPayload(tokenB)?.cnf?.jkt === jkt, `A ${json(stA)}, B ${json(stB)}`);
        // Logout of A: B's session remains, so the key stays.
        const out = await tabA.evaluate(() => window.e2e.client.logout());
        assert(out?.deleted === true, `logout() of A: ${json(out)}`);
        await sleep(500); // the other tab hears of it (BroadcastChannel) and reloads the key
        const r1 = await tabB.evaluate(() => window.e2e.mcp('tools/call', { name: 'echo', arguments: { text: 'b1' } }).catch((e) => ({ error: `${e?.code ?? ''} ${e?.message ?? e}` })));
        assert(r1.status === 200 && r1.result?.content?.[0]?.text === 'b1', `B after the logout of A, same page: ${json(r1)}`);
        // B reloaded, A's tab closed (it held B's access token for the other tabs): access
        // tokens are in memory only, so B refreshes, proven with the stored key.
        await tabA.close();
        const s0 = await statsB();
        await tabB.reload();
        await t.ready(tabB);
        const { st: stB2, token: tokenB2 } = await expectAuthenticated(t, tabB, 'server B after the logout of A and a reload');
        const s1 = await statsB();
        assert(grantCounts(s1, 'refresh_token').ok - grantCounts(s0, 'refresh_token').ok === 1, `B's refresh after reload: ${json(grantCounts(s1, 'refresh_token'))}`);
        assert(tokenB2 !== tokenB && jwtPayload(tokenB2)?.cnf?.jkt === jkt && stB2.dpopJkt === jkt, `B after reload: ${json(stB2)}, cnf ${json(jwtPayload(tokenB2)?.cnf)}`);
        const r2 = await tabB.evaluate(() => window.e2e.mcp('tools/call', { name: 'echo', arguments: { text: 'b2' } }));
        assert(r2.status === 200 && r2.result?.content?.[0]?.text === 'b2', `B after reload: ${json(r2)}`);
        const s2 = await statsB();
        assert((s2.mcp.schemes.DPoP || 0) - (s0.mcp.schemes.DPoP || 0) === 1, `B's MCP schemes ${json(s0.mcp.schemes)} -> ${json(s2.mcp.schemes)}`);
        assert(ecThumbprint((await inspectDpopKey(tabB)).jwk) === jkt, 'logout of A replaced the DPoP key although B\'s session is bound to it');
        // The last session's logout replaces the key; a tab of A, open with the old key in
        // memory meanwhile, signs in again bound to the new one.
        const tabA2 = await t.openApp({ mode: 'redirect', db });
        const outB = await tabB.evaluate(() => window.e2e.client.logout());
        assert(outB?.deleted === true, `logout() of B: ${json(outB)}`);
        const fresh = ecThumbprint((await inspectDpopKey(tabB)).jwk);
        assert(fresh !== jkt && (await t.status(tabB)).dpopJkt === fresh, `after the last logout the key is ${fresh} (was ${jkt})`);
        await t.loginRedirect(tabA2);
        const { st: stA2, token: tokenA2 } = await expectAuthenticated(t, tabA2, 'server A after signing in again');
        assert(stA2.dpopJkt === fresh && jwtPayload(tokenA2)?.cnf?.jkt === fresh, `A's new login: ${json(stA2)}, cnf ${json(jwtPayload(tokenA2)?.cnf)}, want ${fresh}`);
        const r3 = await tabA2.evaluate(() => window.e2e.mcp('tools/list'));
        assert(r3.status === 200, `A after signing in again: HTTP ${r3.status} ${r3.body}`);
        return `kept ${jkt.slice(0, 8)}… for B after A's logout; replaced by ${fresh.slice(0, 8)}… at the last logout`;
      } finally {
        await stackB.stop();
      }
    },
  },
  {
    id: 'f',
    name: 'logout revokes at the AS, the old access token dies, status not-authenticated',
    async run(t) {
      await t.startStack();
      const page = await t.openApp({ mode: 'redirect' });
      await t.loginRedirect(page);
      const { token } = await expectAuthenticated(t, page, 'after login');
      assert(await t.mcpDirect(token) === 200, 'the MCP server refused the token before logout');
      const s0 = await t.stats();
      const result = await page.evaluate(() => window.e2e.client.logout());
      assert(result?.revoked >= 1 && result?.deleted === true, `logout() returned ${json(result)}, want revoked >= 1 and deleted`);
      const s1 = await t.stats();
      assert(s1.revocation.ok - s0.revocation.ok >= 1, `revocation ok +${s1.revocation.ok - s0.revocation.ok} (errors ${json(s1.revocation.errors)})`);
      const st = await t.status(page);
      assert(st.state === 'not-authenticated', `status().state after logout is ${json(st.state)}`);
      const after = await t.token(page);
      assert(after === null, `getAccessToken() after logout returned ${json(after)}`);
      assert(await t.mcpDirect(token) === 401, 'the MCP server still accepts the access token of the revoked grant');
    },
  },
  {
    id: 'g',
    name: 'MCP SDK Client + StreamableHTTPClientTransport with { fetch: client.fetch }',
    async run(t) {
      await t.startStack();
      const page = await t.openApp({ mode: 'redirect' });
      await t.loginRedirect(page);
      const s0 = await t.stats();
      const r = await page.evaluate(() => window.e2e.sdk('method').catch((e) => ({ error: `${e?.code ?? ''} ${e?.message ?? e}` })));
      assert(!r.error, `MCP SDK over client.fetch failed: ${r.error}`);
      assert(r.tools?.includes('echo'), `listTools() gave ${json(r.tools)}`);
      assert(r.echo === 'hi', `callTool(echo, hi) gave ${json(r.echo)}`);
      const s1 = await t.stats();
      assert((s1.mcp.tool_calls.echo || 0) - (s0.mcp.tool_calls.echo || 0) === 1, 'the MCP server did not count the echo call');
    },
  },
  {
    id: 'g2',
    name: 'MCP SDK Client + StreamableHTTPClientTransport with { fetch: createAuthFetch(client) }',
    async run(t) {
      await t.startStack();
      const page = await t.openApp({ mode: 'redirect' });
      await t.loginRedirect(page);
      const s0 = await t.stats();
      const r = await page.evaluate(() => window.e2e.sdk('authFetch').catch((e) => ({ error: `${e?.code ?? ''} ${e?.message ?? e}` })));
      assert(!r.error, `MCP SDK over createAuthFetch(client) failed: ${r.error}`);
      assert(r.tools?.includes('echo'), `listTools() gave ${json(r.tools)}`);
      assert(r.echo === 'hi', `callTool(echo, hi) gave ${json(r.echo)}`);
      const s1 = await t.stats();
      assert((s1.mcp.tool_calls.echo || 0) - (s0.mcp.tool_calls.echo || 0) === 1, 'the MCP server did not count the echo call');
    },
  },
  {
    id: 'i',
    name: 'the MCP SDK drives (authProvider = EdgeOAuthProvider): sealed storage, and the state the SDK never checks is checked',
    async run(t) {
      await t.startStack();
      const page = await t.newPage('sdk');
      const q = new URLSearchParams({ mcp: t.stack.info.mcp, db: `e2e-${t.id}` });
      const s0 = await t.stats();
      await page.goto(`${t.origin}/sdk-provider.html?${q}`);
      let result;
      await until(async () => {
        result = await tryEval(page, () => window.e2eResult);
        return Boolean(result);
      }, 30000, 'the SDK flow never finished');
      assert(!result.error, `SDK flow failed: ${json(result.error)}`);
      assert(result.tools?.includes('echo'), `tools ${json(result.tools)}`);
      const url = new URL(result.url);
      for (const p of ['code', 'state', 'iss']) assert(!url.searchParams.has(p), `the page URL still holds ${p}`);
      const s1 = await t.stats();
      assert(s1.authorization.requests - s0.authorization.requests === 1, 'want exactly one authorization');
      // The tokens the SDK saved are sealed: nothing of the access token in IndexedDB.
      const token = await page.evaluate(async () => {
        const { EdgeOAuthProvider } = await import('/pkg/edge_oauth_browser.js');
        const cfg = JSON.parse(localStorage.getItem('sdk-provider:cfg'));
        const p = await EdgeOAuthProvider.create({ serverUrl: cfg.mcp, redirectUri: `${location.origin}/sdk-provider.html`, dbName: cfg.db });
        return (await p.tokens())?.access_token;
      });
      assert(typeof token === 'string' && token.length > 20, 'the provider returned no access token');
      const dump = await dumpIndexedDb(page);
      assert(dump.records > 0, 'IndexedDB holds no records');
      assert(!dump.text.includes(token) && !dump.text.includes(token.slice(0, 24)), 'the access token is in IndexedDB in the clear');
      assert(dump.keys.every((k) => !k.extractable), 'an extractable CryptoKey is in IndexedDB');
      // A callback with a forged state is refused before any token request.
      const before = grantCounts(await t.stats(), 'authorization_code').requests;
      await page.goto(`${t.origin}/sdk-provider.html?code=forged&state=forged`);
      await until(async () => Boolean(await tryEval(page, () => window.e2eResult)), 30000, 'no result for the forged callback');
      const forged = await page.evaluate(() => window.e2eResult);
      assert(forged.error?.code === 'state_mismatch', `forged callback: ${json(forged)}`);
      const after = grantCounts(await t.stats(), 'authorization_code').requests;
      assert(after === before, 'the forged code reached the token endpoint');
    },
  },
  {
    id: 'j',
    name: 'mix-up without iss: a callback at another server\'s redirect URI (its ?as= tag) is refused before any token request; the right one works',
    async run(t) {
      await t.startStack();
      const page = await t.openApp({ mode: 'redirect' });
      // Stop the navigation to the AS and keep the authorization request it would have made.
      let authUrl;
      await page.route(`${t.stack.info.issuer}/auth?**`, (route) => {
        authUrl = new URL(route.request().url());
        return route.abort();
      });
      await page.evaluate(() => window.e2e.startLogin());
      await until(async () => Boolean(authUrl), 15000, 'the authorization request');
      await page.unroute(`${t.stack.info.issuer}/auth?**`);
      const redirect = new URL(authUrl.searchParams.get('redirect_uri'));
      const tag = redirect.searchParams.get('as');
      assert(tag && tag.length === 16, `the registered redirect URI has no issuer tag: ${redirect}`);
      const state = authUrl.searchParams.get('state');
      const before = grantCounts(await t.stats(), 'authorization_code').requests;
      // The response of another server's flow: same state (a mix-up relays it), no iss, and
      // the redirect URI of that other server.
      const other = new URL(redirect);
      other.searchParams.set('as', 'AAAAAAAAAAAAAAAA');
      other.searchParams.set('code', 'code-from-elsewhere');
      other.searchParams.set('state', state);
      await page.goto(other.href);
      await until(async () => Boolean(await tryEval(page, () => window.e2eCallbackError)), 15000, 'the callback error');
      const err = await page.evaluate(() => window.e2eCallbackError);
      assert(err.code === 'callback_mismatch', `want callback_mismatch, got ${json(err)}`);
      const after = grantCounts(await t.stats(), 'authorization_code').requests;
      assert(after === before, 'a code reached the token endpoint');
      // The pending login was used up by that attempt: a fresh login still completes.
      await page.goto(t.appUrl({ mode: 'redirect' }));
      await t.ready(page);
      await t.loginRedirect(page);
      await expectAuthenticated(t, page, 'after a fresh login');
    },
  },
  {
    id: 'h',
    name: 'step-up: a token without mcp:tools gets 403 insufficient_scope, client.fetch re-authorizes (popup) and ends 200',
    async run(t) {
      await t.startStack();
      const page = await t.openApp({ mode: 'popup', scope: 'openid' });
      await t.loginPopup(page);
      const { token } = await expectAuthenticated(t, page, 'after the openid-only login');
      const scope0 = String(jwtPayload(token)?.scope ?? '');
      assert(!scope0.split(' ').includes('mcp:tools'), `precondition: the first token already has mcp:tools (scope "${scope0}"), nothing to step up`);
      const s0 = await t.stats();
      const r = await t.click(page, "() => window.e2e.mcp('tools/call', { name: 'whoami', arguments: {} })", 30000);
      assert(r.status === 200, `client.fetch ended HTTP ${r.status} (${r.www ?? ''}) ${r.body}`);
      const who = JSON.parse(r.result?.content?.[0]?.text ?? '{}');
      assert(who.scopes?.includes('mcp:tools'), `whoami scopes ${json(who.scopes)}`);
      const s1 = await t.stats();
      assert(s1.mcp.forbidden - s0.mcp.forbidden >= 1, 'the MCP server never answered 403 insufficient_scope');
      assert(s1.authorization.requests - s0.authorization.requests === 1, `authorization requests +${s1.authorization.requests - s0.authorization.requests}, want +1 (the step-up)`);
      const code = grantCounts(s1, 'authorization_code').ok - grantCounts(s0, 'authorization_code').ok;
      assert(code === 1, `authorization_code ok +${code}, want +1`);
      const after = await t.token(page);
      assert(String(jwtPayload(after)?.scope ?? '').split(' ').includes('mcp:tools'), 'getAccessToken() after the step-up still lacks mcp:tools');
    },
  },
  {
    id: 'k',
    name: 'token-mediating: code exchange and refresh through the worker in workerd (its secret added, the refresh token kept at the edge); MCP SDK lists and calls a tool; the page never receives a refresh token; logout through /revoke',
    timeoutMs: 90000,
    async run(t) {
      await t.startStack(['--access-token-ttl', '8']);
      const w = await t.startWorker();
      const page = await t.openApp({ mode: 'redirect', arch: 'token-mediating', proxy: w.base, client: w.client.client_id });
      // Every answer of the worker and of the AS's token endpoint the page received.
      const answers = [];
      const reading = []; // body reads still under way: awaited before answers are checked
      t.context.on('response', (r) => {
        const u = new URL(r.url());
        if (u.origin !== w.base && !(u.origin === t.stack.info.issuer && u.pathname.startsWith('/token'))) return;
        if (r.request().method() !== 'POST') return; // preflights
        // A body can be gone when the page navigated on (the callback page leaving): null.
        reading.push(r.text().catch(() => null).then((body) => answers.push({ url: u.origin + u.pathname, status: r.status(), body })));
      });
      const s0 = await t.stats();
      await t.loginRedirect(page);
      const { st, token: first } = await expectAuthenticated(t, page, 'after the token-mediating login', { statusFirst: true });
      assert(st.architecture === 'token-mediating', `status().architecture ${json(st.architecture)}`);
      const s1 = await t.stats();
      assert(grantCounts(s1, 'authorization_code').ok - grantCounts(s0, 'authorization_code').ok === 1, 'the code was not exchanged once');
      assert(s1.client_auth.token.basic - (s0.client_auth.token?.basic ?? 0) >= 1, 'no token request with the worker\'s Basic client authentication');
      assert(s1.registration.requests === s0.registration.requests, 'the page registered a client of its own');
      const sdk = await page.evaluate(() => window.e2e.sdk('method').catch((e) => ({ error: `${e?.code ?? ''} ${e?.message ?? e}` })));
      assert(!sdk.error, `MCP SDK over client.fetch failed: ${sdk.error}`);
      assert(sdk.tools?.includes('echo') && sdk.echo === 'hi', `listTools ${json(sdk.tools)}, echo ${json(sdk.echo)}`);
      // Refresh after expiry: through the worker, one upstream refresh.
      const exp = jwtPayload(first)?.exp;
      assert(exp, 'the access token is not a JWT with exp');
      await sleep(Math.max(0, exp * 1000 - Date.now()) + 700);
      const s2 = await t.stats();
      const second = await t.token(page);
      assert(typeof second === 'string' && second !== first, `getAccessToken() after expiry returned ${second === first ? 'the expired token' : json(second)}`);
      const s3 = await t.stats();
      const refreshed = grantCounts(s3, 'refresh_token');
      assert(refreshed.ok - grantCounts(s2, 'refresh_token').ok === 1, `refresh_token ok +${refreshed.ok - grantCounts(s2, 'refresh_token').ok}, want +1`);
      const r = await page.evaluate(() => window.e2e.mcp('tools/list'));
      assert(r.status === 200, `client.fetch after the refresh: HTTP ${r.status}`);
      // What the page received: access tokens and session handles, never a refresh token, and
      // nothing from the AS's token endpoint directly.
      await Promise.all(reading);
      const direct = answers.filter((a) => a.url.startsWith(t.stack.info.issuer));
      assert(direct.length === 0, `the page called the AS's token endpoint: ${json(direct.map((a) => a.url))}`);
      const tokenAnswers = answers.filter((a) => a.url === `${w.base}/token`);
      assert(tokenAnswers.length >= 2, `${tokenAnswers.length} answers of the worker's /token, want the exchange and a refresh`);
      // The refresh's answer (on this page, which stays) must be readable; the exchange's, on
      // the callback page that navigated on, may not be.
      assert(tokenAnswers.at(-1).body !== null, 'the refresh answer of /token could not be read');
      const handles = [];
      for (const a of tokenAnswers.filter((x) => x.body !== null)) {
        const body = JSON.parse(a.body);
        assert(a.status === 200 && body.access_token, `/token answered ${a.status} ${a.body.slice(0, 200)}`);
        assert(!('refresh_token' in body), 'the worker sent the page a refresh_token');
        assert(/^[0-9a-f]{64}\.[A-Za-z0-9_-]{43}$/.test(body.session_handle ?? ''), `no session handle: ${a.body.slice(0, 200)}`);
        handles.push(body.session_handle);
      }
      // IndexedDB, decrypted with the page's own key: the refresh slot holds the last handle.
      const plain = await decryptIndexedDb(page);
      const stored = Object.values(plain).flatMap((p) => [...p.matchAll(/"refresh_token":"([^"]*)"/g)].map((m) => m[1]));
      assert(stored.length >= 1, `no session in IndexedDB (records: ${json(Object.keys(plain))})`);
      assert(stored.every((v) => v === handles.at(-1)), 'IndexedDB holds something other than the current session handle where a refresh token would be');
      // Logout: the handle and the access token revoked through /revoke, the grant dead.
      const s4 = await t.stats();
      const out = await page.evaluate(() => window.e2e.client.logout());
      assert(out?.deleted === true && out?.revoked >= 1, `logout() returned ${json(out)}`);
      const s5 = await t.stats();
      assert(s5.revocation.ok - s4.revocation.ok >= 1, 'no revocation reached the AS');
      // The response event reaches Node after logout() has resolved in the page: wait for it.
      await until(async () => { await Promise.all(reading); return answers.some((a) => a.url === `${w.base}/revoke`); }, 5000, 'the answer of the worker\'s /revoke')
        .catch(() => { throw new Failure('logout did not go through the worker\'s /revoke'); });
      assert(answers.some((a) => a.url === `${w.base}/revoke` && a.status === 200), `the worker's /revoke answered ${json(answers.filter((a) => a.url === `${w.base}/revoke`).map((a) => a.status))}`);
      assert(await t.mcpDirect(second) === 401, 'the MCP server still accepts the access token after logout');
      return `${tokenAnswers.length} /token answers, ${handles.length} handles, no refresh token`;
    },
  },
  {
    id: 'l',
    name: 'bff: login through the worker\'s /bff/login, MCP SDK lists and calls a tool through /bff/mcp/tools; the page never sees a token (getAccessToken() null, no Authorization header, HttpOnly cookie); a 403 insufficient_scope steps up through /bff/login (step_up=true); logout',
    timeoutMs: 90000,
    async run(t) {
      await t.startStack();
      const opts = { mode: 'redirect', arch: 'bff', proxy: t.origin, server: 'tools' };
      await t.startWorker({ bffReturn: t.appUrl(opts) });
      const page = await t.openApp(opts);
      const requests = [];
      const bodies = [];
      t.context.on('request', async (r) => requests.push({ url: r.url(), headers: await r.allHeaders().catch(() => ({})) }));
      // Every answer of the worker (the page's static files hold the word access_token).
      t.context.on('response', async (r) => {
        if (new URL(r.url()).pathname.startsWith('/bff/')) bodies.push(await r.text().catch(() => ''));
      });
      const st0 = await t.status(page);
      assert(st0.state === 'not-authenticated' && st0.architecture === 'bff', `status() before login: ${json(st0)}`);
      const s0 = await t.stats();
      const before = page.navs.length;
      await page.evaluate(() => window.e2e.startLogin());
      await until(async () => {
        const navs = page.navs.slice(before).map((u) => new URL(u));
        const err = await tryEval(page, () => window.e2e?.loginError);
        if (err) throw new Failure(`login() failed: ${json(err)}`);
        // /bff/login, the AS and /bff/callback only redirect (no committed navigation): the
        // code exchanged at the AS, then app.html loaded again.
        if (!navs.some((u) => u.origin === t.origin && u.pathname === '/app.html')) return false;
        return grantCounts(await t.stats(), 'authorization_code').ok > grantCounts(s0, 'authorization_code').ok;
      }, 20000, 'the BFF login to come back to app.html');
      await page.waitForLoadState('load');
      await t.ready(page);
      assert(!new URL(page.url()).searchParams.has('edge_oauth_error'), `the worker refused the login: ${page.url()}`);
      const st = await t.status(page);
      assert(st.state === 'authenticated' && st.issuer === t.stack.info.issuer, `status() after login: ${json(st)}`);
      const token = await t.token(page);
      assert(token === null, `getAccessToken() returned ${json(token)}`);
      assert(!(await page.evaluate(() => document.cookie)).includes('edge-oauth'), 'the session cookie is readable by script');
      // The page's side of "bff" is plain JS: EdgeOAuth.create loaded bff.js, and bff.js alone
      // (no init(), no wasm) gives the same client.
      assert(requests.some((r) => new URL(r.url).pathname === '/pkg/bff.js') || await page.evaluate(() => performance.getEntriesByType('resource').some((e) => new URL(e.name).pathname === '/pkg/bff.js')), 'EdgeOAuth.create did not load bff.js');
      const direct = await page.evaluate(async (o) => {
        const { createBffClient } = await import('/pkg/bff.js');
        const c = await createBffClient({ serverUrl: o.serverUrl, proxyUrl: o.proxyUrl, mcpServer: 'tools' });
        const bad = await createBffClient({ serverUrl: o.serverUrl, proxyUrl: 'http://example.com', mcpServer: 'tools' }).catch((e) => e.code);
        return { state: (await c.status()).state, token: await c.getAccessToken(), bad };
      }, { serverUrl: t.stack.info.mcp, proxyUrl: t.origin });
      assert(direct.state === 'authenticated' && direct.token === null && direct.bad === 'insecure_url', `createBffClient from bff.js alone: ${json(direct)}`);
      for (const kind of ['method', 'authFetch']) {
        const sdk = await page.evaluate((k) => window.e2e.sdk(k).catch((e) => ({ error: `${e?.code ?? ''} ${e?.message ?? e}` })), kind);
        assert(!sdk.error, `MCP SDK (${kind}) failed: ${sdk.error}`);
        assert(sdk.tools?.includes('echo') && sdk.echo === 'hi', `${kind}: listTools ${json(sdk.tools)}, echo ${json(sdk.echo)}`);
      }
      const s1 = await t.stats();
      assert((s1.mcp.tool_calls.echo || 0) - (s0.mcp.tool_calls.echo || 0) === 2, 'the MCP server did not count the two echo calls');
      const withAuth = requests.filter((r) => 'authorization' in r.headers);
      assert(withAuth.length === 0, `the page sent Authorization: ${json(withAuth.map((r) => r.url))}`);
      const mcpOrigin = new URL(t.stack.info.mcp).origin;
      assert(!requests.some((r) => new URL(r.url).origin === mcpOrigin), 'the page called the MCP server directly');
      const viaBff = requests.filter((r) => new URL(r.url).pathname === '/bff/mcp/tools');
      assert(viaBff.length >= 4 && viaBff.every((r) => r.headers['x-edge-oauth'] === '1'), `${viaBff.length} requests to /bff/mcp/tools, CSRF header on all of them wanted`);
      assert(bodies.length >= 6, `only ${bodies.length} answers of the worker seen`);
      const leaks = bodies.filter((b) => /eyJ[A-Za-z0-9_-]{10,}\./.test(b) || /"(access|refresh)_token"/.test(b));
      assert(leaks.length === 0, `a response to the page holds a token: ${leaks[0]?.slice(0, 120)}`);
      // Step-up: admin_note's 403 insufficient_scope (recorded by the worker) makes client.fetch
      // leave for /bff/login with step_up=true; back, the session has mcp:admin and the call passes.
      const logins = [];
      t.context.on('request', (r) => { if (r.method() === 'POST' && new URL(r.url()).pathname === '/bff/login') logins.push(r.postData() ?? ''); });
      // At most one automatic step-up per MCP server in 15 minutes, whatever the scope: with the
      // mark the package leaves before it navigates (here for another scope), the 403 is the
      // answer, again and again — a hit does not clear the mark (it expires; logout clears it).
      const mark = 'edge-oauth:bff-step-up:tools';
      const getMark = () => page.evaluate((k) => sessionStorage.getItem(k), mark);
      const setMark = (v) => page.evaluate(([k, x]) => sessionStorage.setItem(k, x), [mark, v]);
      const live = `${Date.now()} mcp:other`;
      await setMark(live);
      const navsGuard = page.navs.length;
      for (let i = 0; i < 2; i += 1) {
        const again = await page.evaluate(() => window.e2e.mcp('tools/call', { name: 'admin_note', arguments: { text: 'x' } }));
        assert(again.status === 403 && /insufficient_scope/.test(again.www ?? ''), `admin_note #${i + 1} with the mark set: ${json(again)}`);
      }
      assert(page.navs.length === navsGuard && logins.length === 0, 'stepped up while the mark was live');
      assert(await getMark() === live, `the step-up mark after two hits: ${json(await getMark())}`);
      // The mark expired; a challenge whose scope is not RFC 6749 scope tokens of at most 1024
      // characters (answered here in place of the worker) is no step-up either.
      await setMark(`${Date.now() - 16 * 60 * 1000} mcp:tools mcp:admin`);
      for (const scope of ['a'.repeat(1100), 'mcp:tools a\\"b']) {
        await page.route((u) => u.pathname === '/bff/mcp/tools', (route) => route.fulfill({
          status: 403,
          headers: { 'content-type': 'application/json', 'www-authenticate': `Bearer error="insufficient_scope", scope="${scope}"` },
          body: '{}',
        }));
        const bad = await page.evaluate(() => window.e2e.mcp('tools/call', { name: 'admin_note', arguments: { text: 'x' } }));
        await page.unrouteAll();
        assert(bad.status === 403, `admin_note with the challenge scope ${json(scope.slice(0, 20))}: ${json(bad)}`);
        assert(page.navs.length === navsGuard && logins.length === 0, `stepped up for the challenge scope ${json(scope.slice(0, 20))}`);
      }
      // A step-up whose navigation never happens (a CSP form-action or a sandbox can block the
      // form): the fetch answers the 403 after the package's 10 s wait instead of never settling.
      await page.evaluate(() => { window.e2eSubmit = HTMLFormElement.prototype.submit; HTMLFormElement.prototype.submit = function blocked() {}; });
      const blockedAt = Date.now();
      const blocked = await page.evaluate(() => window.e2e.mcp('tools/call', { name: 'admin_note', arguments: { text: 'x' } }));
      const waited = Date.now() - blockedAt;
      assert(blocked.status === 403 && waited >= 9000 && waited < 20000, `admin_note with the step-up navigation blocked: ${json(blocked)} after ${waited} ms`);
      assert(page.navs.length === navsGuard, 'navigated with the form blocked');
      await page.evaluate(() => { HTMLFormElement.prototype.submit = window.e2eSubmit; });
      await setMark(`${Date.now() - 16 * 60 * 1000} mcp:tools mcp:admin`);
      logins.length = 0;
      const st1 = await t.status(page);
      assert(!st1.scope?.split(' ').includes('mcp:admin') && st1.stepUpScope === 'mcp:tools mcp:admin', `status() before the step-up: ${json(st1)}`);
      const beforeStep = page.navs.length;
      const sStep = await t.stats();
      await page.evaluate(() => { void window.e2e.mcp('tools/call', { name: 'admin_note', arguments: { text: 'stepped up' } }); });
      await until(async () => {
        const navs = page.navs.slice(beforeStep).map((u) => new URL(u));
        if (!navs.some((u) => u.origin === t.origin && u.pathname === '/app.html')) return false;
        return grantCounts(await t.stats(), 'authorization_code').ok > grantCounts(sStep, 'authorization_code').ok;
      }, 20000, 'the BFF step-up login to come back to app.html');
      await page.waitForLoadState('load');
      await t.ready(page);
      assert(logins.length === 1 && new URLSearchParams(logins[0]).get('step_up') === 'true', `step-up login form bodies: ${json(logins)}`);
      const st3 = await t.status(page);
      assert(st3.state === 'authenticated' && st3.scope?.split(' ').includes('mcp:admin') && st3.stepUpScope === undefined, `status() after the step-up: ${json(st3)}`);
      const note = await page.evaluate(() => window.e2e.mcp('tools/call', { name: 'admin_note', arguments: { text: 'stepped up' } }));
      assert(note.status === 200 && /^note saved by /.test(note.result?.content?.[0]?.text ?? ''), `admin_note after the step-up: ${json(note)}`);
      // The step-up left its mark, the scope as a sorted token set; logout clears it.
      assert(/^\d+ mcp:admin mcp:tools$/.test(await getMark() ?? ''), `the step-up mark: ${json(await getMark())}`);
      const out = await page.evaluate(() => window.e2e.client.logout());
      assert(out?.deleted === true, `logout() returned ${json(out)}`);
      assert(await getMark() === null, `the step-up mark after logout: ${json(await getMark())}`);
      const st2 = await t.status(page);
      assert(st2.state === 'not-authenticated', `status() after logout: ${json(st2)}`);
      const after = await page.evaluate(() => window.e2e.mcp('tools/list'));
      assert(after.status === 401, `/bff/mcp after logout: HTTP ${after.status}`);
      const s2 = await t.stats();
      assert(s2.revocation.ok - s1.revocation.ok >= 1, 'logout revoked nothing at the AS');
      return `${viaBff.length} requests through /bff/mcp/tools, none with a token`;
    },
  },
];

// ---------------------------------------------------------------------------
// Main.
// ---------------------------------------------------------------------------
const selected = args.only ? new Set(args.only.split(',').map((s) => s.trim()).filter(Boolean)) : undefined;
if (selected) {
  const unknown = [...selected].filter((id) => !scenarios.some((s) => s.id === id));
  if (unknown.length) {
    process.stderr.write(`unknown scenario(s): ${unknown.join(', ')} (have ${scenarios.map((s) => s.id).join(', ')})\n`);
    process.exit(2);
  }
}
const toRun = scenarios.filter((s) => !selected || selected.has(s.id));

if (!existsSync(path.join(PKG, 'edge_oauth_browser.js'))) {
  process.stderr.write(`e2e: no wasm package at ${PKG} (edge_oauth_browser.js missing); build it with \`make browser-pkg\` or pass --pkg DIR\n`);
  process.stdout.write(`0 passed, ${toRun.length} failed\n`);
  process.exit(1);
}

let browser;
let server;
let passed = 0;
let failed = 0;
try {
  // The MCP SDK client, bundled for the page.
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [path.join(HERE, 'mcp-sdk-entry.mjs')],
    outfile: path.join(HERE, 'pages/mcp-sdk.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    logLevel: 'error',
  });

  const workerPort = await freePort();
  server = await startNode('serve', path.join(HERE, 'serve.mjs'), ['--port', '0', '--pkg', PKG, '--proxy', `http://127.0.0.1:${workerPort}`]);
  const { origin } = server.info;

  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives every launch a fresh temporary --user-data-dir itself (and refuses one in args).
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    // Keep Chromium's popup blocker on: a popup login must open the window from the user's click.
    ignoreDefaultArgs: ['--disable-popup-blocking'],
  });

  for (const scenario of toRun) {
    const t = makeTest(browser, origin, scenario.id, workerPort);
    const started = Date.now();
    let error;
    let note;
    let timer;
    try {
      const running = scenario.run(t);
      running.catch(() => {}); // after a timeout it fails on its own once its context is closed
      note = await Promise.race([
        running,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Failure(`timed out after ${(scenario.timeoutMs ?? TIMEOUT_MS) / 1000} s`)), scenario.timeoutMs ?? TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      error = err;
    } finally {
      clearTimeout(timer);
      await t.cleanup();
    }
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    if (!error) {
      passed += 1;
      process.stdout.write(`ok   ${scenario.id.padEnd(3)} ${scenario.name} (${secs} s)${note ? ` [${note}]` : ''}\n`);
    } else {
      failed += 1;
      const message = error instanceof Failure ? error.message : (error?.stack || String(error));
      process.stdout.write(`FAIL ${scenario.id.padEnd(3)} ${scenario.name} (${secs} s): ${message.split('\n')[0]}\n`);
      const details = [message.includes('\n') ? message : undefined, ...t.diagnostics.slice(-25)];
      if (t.stack) details.push('mcp-stack stderr (last lines):', ...t.stack.tail.slice(-15).map((l) => `  ${l}`));
      process.stderr.write(`--- ${scenario.id} details\n${details.filter(Boolean).join('\n')}\n`);
    }
  }
} catch (err) {
  failed += Math.max(1, toRun.length - passed - failed);
  process.stderr.write(`e2e: harness error: ${err?.stack || err}\n`);
} finally {
  await browser?.close().catch(() => {});
  await server?.stop();
  for (const child of [...children]) killGroup(child, 'SIGKILL');
}
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
