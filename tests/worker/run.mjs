#!/usr/bin/env node
// The built worker (worker/build, made by `make worker`) in real workerd through miniflare 4,
// in front of the oidc-provider peer (tests/peers/mcp-stack.mjs) with two confidential clients
// registered over DCR: one with client_secret_basic and discovered endpoints, one with
// client_secret_post and configured endpoints. The same worker is also a backend-for-frontend
// (/bff/*) for the peer's MCP server, driven like a browser would: a cookie jar, redirects
// followed by hand. Builds nothing itself.
//
// Usage: node tests/worker/run.mjs [--verbose]
// Prints one line per check and `N passed, M failed`; exits 1 on any failure, 2 when it cannot
// start. Stops everything it started (the peer, every miniflare instance, temp dirs).

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { startMiniflare } from './miniflare.mjs';

const VERBOSE = process.argv.includes('--verbose');
const ROOT = path.resolve(import.meta.dirname, '../..');
const BUILD = process.env.EDGE_OAUTH_WORKER_BUILD || path.join(ROOT, 'worker/build');
const PAGE = 'http://127.0.0.1:8788'; // the allowed browser origin (no page is served)
const EVIL = 'https://evil.example';
const REDIRECT_URI = `${PAGE}/callback`;
// Seconds. The worker refreshes a token at half its lifetime (its 60 s buffer is capped there),
// on a clock of whole seconds: due after 2 s, expired after 4 s.
const ACCESS_TOKEN_TTL = 4;
const DUE_MS = (Math.floor(ACCESS_TOKEN_TTL / 2) * 1000) + 250;
const EXPIRED_MS = (ACCESS_TOKEN_TTL * 1000) + 250;
const GRACE = 3; // ROTATION_GRACE_SECS
const PROGRESS_DELAY_MS = 700; // the peer's echo tool: progress, 700 ms, progress, 700 ms, result
const SESSION_LIMIT = 40; // RATE_LIMIT_SESSION = 40/60
const ADDRESS_LIMIT = 200; // RATE_LIMIT_ADDRESS = 200/60

if (!existsSync(path.join(BUILD, 'index.js'))) {
  console.error(`no built worker at ${BUILD}: run \`make worker\` first`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// What this run started, stopped in any case.
// ---------------------------------------------------------------------------------------------
const started = { peers: [], workers: new Set(), dirs: [] };
async function stopAll() {
  for (const mf of started.workers) await mf.dispose().catch(() => {});
  started.workers.clear();
  for (const peer of started.peers.filter((p) => p.exitCode === null)) {
    peer.kill('SIGTERM');
    await new Promise((resolve) => {
      const t = setTimeout(() => { peer.kill('SIGKILL'); resolve(); }, 3000);
      peer.once('exit', () => { clearTimeout(t); resolve(); });
    });
  }
  for (const d of started.dirs) rmSync(d, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => { await stopAll(); process.exit(130); });
}

let peerLog = '';
async function startPeer(extra = [], script = 'mcp-stack.mjs') {
  const child = spawn(process.execPath, [
    path.join(ROOT, 'tests/peers', script),
    '--as-port', '0', '--mcp-port', '0',
    '--access-token-ttl', String(ACCESS_TOKEN_TTL),
    ...(script === 'mcp-stack.mjs' ? ['--progress-delay-ms', String(PROGRESS_DELAY_MS)] : []),
    ...extra,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.peers.push(child);
  child.stderr.on('data', (d) => {
    peerLog += d;
    if (VERBOSE) process.stderr.write(d);
  });
  const line = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the peer exited (${code}): ${peerLog.slice(-500)}`)));
  });
  return JSON.parse(line);
}

// A free loopback port: the BFF's redirect URI names the worker's origin before it starts.
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

async function startWorker(bindings, persistDir, port = 0) {
  const w = await startMiniflare({ build: BUILD, bindings, persistDir, port, verbose: VERBOSE });
  started.workers.add(w.mf);
  return w;
}

async function stopWorker(w) {
  await w.mf.dispose();
  started.workers.delete(w.mf);
}

// ---------------------------------------------------------------------------------------------
// Checks.
// ---------------------------------------------------------------------------------------------
let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}: ${err.message}`);
    if (VERBOSE) console.log(err.stack);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}
function eq(actual, expected, what) {
  assert(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

// Every body the worker answered, to check that no secret ever appears in one.
const bodies = [];

async function call(base, pathname, { method = 'POST', origin = PAGE, params, body, headers = {} } = {}) {
  const h = { ...headers };
  if (origin) h.origin = origin;
  if (params && !('content-type' in h)) h['content-type'] = 'application/x-www-form-urlencoded';
  // A page's cookies must never reach the authorization server.
  if (!('cookie' in h)) h.cookie = 'page_session=must-not-be-forwarded';
  const init = { method, headers: h };
  if (params) init.body = new URLSearchParams(params).toString();
  if (body !== undefined) init.body = body;
  if (body instanceof ReadableStream) init.duplex = 'half';
  const res = await fetch(`${base}${pathname}`, init);
  const text = await res.text();
  bodies.push(text);
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

function corsHeaders(res) {
  return [...res.headers.keys()].filter((k) => k.startsWith('access-control-'));
}

function isRfcError(res, status, error, code) {
  eq(res.status, status, 'status');
  assert(res.json && typeof res.json.error === 'string', `no RFC 6749 error body: ${res.text.slice(0, 200)}`);
  eq(res.json.error, error, 'error');
  assert(typeof res.json.error_description === 'string' && res.json.error_description.length > 0, 'no error_description');
  if (code) eq(res.json.code, code, 'code');
  eq(res.headers.get('cache-control'), 'no-store', 'Cache-Control');
}

// ---------------------------------------------------------------------------------------------
// The peer: registration and the authorization step a page would do.
// ---------------------------------------------------------------------------------------------
async function register(issuer, method, extraRedirectUris = [], extra = {}) {
  const res = await fetch(`${issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      application_type: 'web',
      redirect_uris: [REDIRECT_URI, ...extraRedirectUris],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: method,
      ...extra,
    }),
  });
  const json = await res.json();
  assert(res.status === 201 && (json.client_secret || method === 'private_key_jwt'), `registration failed: ${res.status}`);
  return json;
}

// A private_key_jwt client (RFC 7523 §2.2): its public key registered over DCR, the private
// JWK handed to the worker as the secret its provider names.
async function registerKeyClient(issuer) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = publicKey.export({ format: 'jwk' });
  const kid = crypto.randomBytes(6).toString('hex');
  const client = await register(issuer, 'private_key_jwt', [], {
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [{ ...pub, kid, alg: 'ES256', use: 'sig' }] },
  });
  return { client, privateJwk: JSON.stringify({ ...privateKey.export({ format: 'jwk' }), kid }) };
}

// Runs the authorization request through the auto-approving interaction (a cookie jar that
// honours Path) and returns what the page's callback would get, after checking state and iss.
async function authorize(issuer, mcp, clientId) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const state = crypto.randomBytes(16).toString('base64url');
  const u = new URL(`${issuer}/auth`);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: clientId, redirect_uri: REDIRECT_URI, scope: 'mcp:tools',
    state, code_challenge: challenge, code_challenge_method: 'S256', resource: mcp,
  })) u.searchParams.set(k, v);
  const cb = new URL(await followAuthorization(u.toString(), REDIRECT_URI));
  assert(cb.searchParams.get('state') === state, 'state mismatch');
  assert(cb.searchParams.get('iss') === issuer, 'iss mismatch');
  const code = cb.searchParams.get('code');
  assert(code, `no code: ${cb.searchParams.get('error')}`);
  return { code, verifier };
}

// Follows an authorization URL through the peer's auto-approving interaction until it
// redirects to `redirectUri`, and returns that callback URL (not requested).
async function followAuthorization(authorizationUrl, redirectUri) {
  const jar = [];
  let url = authorizationUrl;
  for (let i = 0; i < 20; i += 1) {
    const target = new URL(url);
    const cookie = jar.filter((c) => target.pathname.startsWith(c.path)).map((c) => `${c.name}=${c.value}`).join('; ');
    const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';');
      const [name, ...rest] = pair.split('=');
      const p = attrs.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('path='));
      const cpath = p ? p.slice(5) : '/';
      const idx = jar.findIndex((c) => c.name === name.trim() && c.path === cpath);
      if (idx >= 0) jar.splice(idx, 1);
      jar.push({ name: name.trim(), value: rest.join('='), path: cpath });
    }
    const loc = res.headers.get('location');
    assert(loc, `authorization stopped at ${res.status}`);
    const next = new URL(loc, url).toString();
    if (next.startsWith(redirectUri)) return next;
    url = next;
  }
  throw new Error('too many redirects');
}

async function stats(issuer) {
  return (await fetch(`${issuer}/test/stats`)).json();
}
const refreshRequests = (s) => s.token.by_grant_type.refresh_token?.requests ?? 0;
const refreshErrors = (s) => Object.values(s.token.by_grant_type.refresh_token?.errors ?? {}).reduce((a, b) => a + b, 0);
const tokenAuth = (s) => s.client_auth.token ?? { basic: 0, other: 0, with_origin: 0, with_cookie: 0 };
const revocationAuth = (s) => s.client_auth.revocation ?? { basic: 0, other: 0, with_origin: 0, with_cookie: 0 };

async function mcpStatus(mcp, accessToken) {
  const res = await fetch(mcp, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${accessToken}`,
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });
  await res.arrayBuffer();
  return res.status;
}

// ---------------------------------------------------------------------------------------------
// The backend-for-frontend, as a browser on the worker's origin would use it.
// ---------------------------------------------------------------------------------------------

// The worker's cookies, as a browser keeps them (name -> value; Max-Age=0 deletes).
class Jar {
  constructor() {
    this.cookies = new Map();
    this.raw = [];
  }
  take(res) {
    for (const sc of res.headers.getSetCookie()) {
      this.raw.push(sc);
      const [pair, ...attrs] = sc.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      if (attrs.some((a) => a.trim().toLowerCase() === 'max-age=0')) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(i + 1).trim());
    }
  }
  header() {
    return [...this.cookies].map(([n, v]) => `${n}=${v}`).join('; ');
  }
  clone() {
    const j = new Jar();
    j.cookies = new Map(this.cookies);
    return j;
  }
}

// A request from the BFF's page: its Origin, the CSRF header, its cookies (any of which can be
// left out or replaced to test the refusals). Answers as `call` does, plus the raw response.
async function bff(base, pathname, { method = 'GET', jar, origin, csrf = true, json, body, headers = {}, address } = {}) {
  const h = { ...headers };
  if (origin) h.origin = origin;
  if (csrf) h['x-edge-oauth'] = '1';
  if (jar && jar.cookies.size) h.cookie = jar.header();
  if (address) h['cf-connecting-ip'] = address;
  const init = { method, headers: h, redirect: 'manual' };
  if (json !== undefined) {
    h['content-type'] = 'application/json';
    init.body = JSON.stringify(json);
  }
  if (body !== undefined) init.body = body;
  const res = await fetch(`${base}${pathname}`, init);
  if (jar) jar.take(res);
  const text = await res.text();
  bodies.push(text);
  bffBodies.push(text);
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, json: parsed, text };
}
// Every BFF answer the page saw: none may carry a token.
const bffBodies = [];

// POST /bff/login, the authorization server's auto-approving interaction, GET /bff/callback.
// Returns the callback URL the AS redirected to and the callback's answer.
async function bffLogin(base, app, bffRedirect, jar, { address, server = 'tools' } = {}) {
  const login = await bff(base, '/bff/login', { method: 'POST', origin: app, jar, json: { mcp_server: server }, address });
  eq(login.status, 200, `login status (${login.text.slice(0, 300)})`);
  const callbackUrl = await followAuthorization(login.json.authorization_url, bffRedirect);
  const cb = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie: jar.header(), ...(address ? { 'cf-connecting-ip': address } : {}) } });
  jar.take(cb);
  await cb.arrayBuffer();
  return { login, callbackUrl, callback: cb };
}

// An MCP JSON-RPC request through /bff/mcp/tools (or another configured name); reads the SSE
// answer as it streams, noting when each event arrived.
async function bffMcp(base, app, jar, message, { address, server = 'tools' } = {}) {
  const headers = {
    origin: app,
    'x-edge-oauth': '1',
    cookie: jar.header(),
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    'mcp-protocol-version': '2025-06-18',
  };
  if (address) headers['cf-connecting-ip'] = address;
  const t0 = Date.now();
  const res = await fetch(`${base}/bff/mcp/${server}`, { method: 'POST', headers, body: JSON.stringify(message) });
  jar.take(res);
  const events = [];
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    text += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const data = text.slice(0, end).split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
      text = text.slice(end + 2);
      if (data) events.push({ at: Date.now() - t0, message: JSON.parse(data) });
    }
  }
  bffBodies.push(JSON.stringify(events.map((e) => e.message)) + text);
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, events, json, text };
}

// The tag of a login's cookie name (worker/src/cookie.rs `login_tag`), from its state.
const loginTag = (state) => crypto.createHash('sha256').update(`edge-oauth/v1 login cookie tag|${state}`).digest('base64url').slice(0, 16);
// The login cookies a jar holds, as [name, value].
const loginCookies = (jar) => [...jar.cookies].filter(([n]) => /^(__Host-)?edge-oauth-login-/.test(n));

// A cookie value sealed like the worker's (v1. + base64url(nonce | AES-256-GCM ciphertext | tag),
// the cookie's name as additional data), under any key.
function sealCookie(key, aad, plaintext) {
  const nonce = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return `v1.${Buffer.concat([nonce, ct]).toString('base64url')}`;
}

async function bffChecks({ w, issuer, mcp, app, bffRedirect, basicClient, cookieKey }) {
  const SESSION = 'edge-oauth-session'; // no __Host- prefix: INSECURE_LOOPBACK_COOKIES=true
  const LOGIN = 'edge-oauth-login'; // one cookie per login: `${LOGIN}-${loginTag(state)}`
  const jar = new Jar();
  let first; // the first login's callback URL and login cookie, replayed later

  await check('BFF login -> callback -> /bff/session authenticated: the worker is the client (PKCE, state, resource; Basic auth at the AS), the page gets only sealed HttpOnly cookies', async () => {
    const before = await stats(issuer);
    const before2 = new Jar();
    const { login, callbackUrl, callback } = await bffLogin(w(), app, bffRedirect, jar);
    const loginName = `${LOGIN}-${loginTag(new URL(login.json.authorization_url).searchParams.get('state'))}`;
    const loginCookie = jar.raw.find((c) => c.startsWith(`${loginName}=v1.`));
    before2.cookies.set(loginName, loginCookie.split(';')[0].slice(loginName.length + 1));
    first = { callbackUrl, jar: before2 };
    const auth = new URL(login.json.authorization_url);
    eq(`${auth.origin}${auth.pathname}`, `${issuer}/auth`, 'authorization endpoint (discovered)');
    eq(auth.searchParams.get('client_id'), basicClient.client_id, 'client_id');
    eq(auth.searchParams.get('redirect_uri'), bffRedirect, 'redirect_uri');
    eq(auth.searchParams.get('code_challenge_method'), 'S256', 'code_challenge_method');
    eq(auth.searchParams.get('resource'), mcp, 'resource');
    eq(auth.searchParams.get('scope'), 'mcp:tools', 'scope');
    assert((auth.searchParams.get('state') ?? '').length >= 43, 'state');
    assert(loginCookie && /HttpOnly/.test(loginCookie) && /SameSite=Lax/.test(loginCookie) && /Path=\//.test(loginCookie), `login cookie: ${loginCookie}`);
    eq(new URL(callbackUrl).searchParams.get('iss'), issuer, 'iss on the callback');
    eq(callback.status, 303, 'callback status');
    eq(callback.headers.get('location'), `${app}/app`, 'callback Location (BFF_RETURN_URL)');
    const sessionCookie = jar.raw.find((c) => c.startsWith(`${SESSION}=v1.`));
    assert(sessionCookie && /HttpOnly/.test(sessionCookie) && /SameSite=Strict/.test(sessionCookie) && /Path=\//.test(sessionCookie), `session cookie: ${sessionCookie}`);
    assert(!/Secure/.test(sessionCookie) && !sessionCookie.includes('__Host-'), 'dev cookie without Secure/__Host-');
    assert(!jar.cookies.has(loginName), 'login cookie not cleared');
    eq(loginCookies(jar).length, 0, 'login cookies left');
    const after = await stats(issuer);
    eq(tokenAuth(after).basic - tokenAuth(before).basic, 1, 'Basic-authenticated token requests at the AS');
    eq(after.token.by_grant_type.authorization_code.ok - (before.token.by_grant_type.authorization_code?.ok ?? 0), 1, 'codes exchanged');
    const s = await bff(w(), '/bff/session', { origin: app, jar });
    eq(s.status, 200, `session status (${s.text.slice(0, 200)})`);
    eq(s.json.authenticated, true, 'authenticated');
    eq(s.json.issuer, issuer, 'issuer');
    eq(s.json.scope, 'mcp:tools', 'scope');
    assert(s.json.expires_at > Date.now() / 1000, 'expires_at');
    eq(s.json.access_token, undefined, 'access_token in the status');
  });

  await check('BFF callback replayed, or with a forged state: no session, the page is sent back with edge_oauth_error', async () => {
    const replay = await fetch(first.callbackUrl, { redirect: 'manual', headers: { cookie: first.jar.header() } });
    eq(replay.status, 303, 'replay: status');
    eq(new URL(replay.headers.get('location')).searchParams.get('edge_oauth_error'), 'login_rejected', 'replay: error');
    assert(!replay.headers.getSetCookie().some((c) => c.startsWith(`${SESSION}=v1.`)), 'replay: a session cookie was set');
    const other = new Jar();
    const { callbackUrl } = await (async () => {
      const login = await bff(w(), '/bff/login', { method: 'POST', origin: app, jar: other, json: { mcp_server: 'tools' } });
      return { callbackUrl: await followAuthorization(login.json.authorization_url, bffRedirect) };
    })();
    // A forged state names no login cookie of this browser: refused before any login is touched.
    const forged = new URL(callbackUrl);
    forged.searchParams.set('state', crypto.randomBytes(32).toString('base64url'));
    const f = await fetch(forged, { redirect: 'manual', headers: { cookie: other.header() } });
    eq(f.status, 303, 'forged state: status');
    eq(new URL(f.headers.get('location')).searchParams.get('edge_oauth_error'), 'no_login_in_progress', 'forged state: error');
    assert(!f.headers.getSetCookie().some((c) => c.startsWith(`${SESSION}=v1.`)), 'forged state: a session cookie was set');
    // The login's own state with a forged iss: the login is found, and refused by the core.
    const badIss = new URL(callbackUrl);
    badIss.searchParams.set('iss', 'https://evil.example');
    const b = await fetch(badIss, { redirect: 'manual', headers: { cookie: other.header() } });
    eq(new URL(b.headers.get('location')).searchParams.get('edge_oauth_error'), 'login_rejected', 'forged iss: error');
    assert(!b.headers.getSetCookie().some((c) => c.startsWith(`${SESSION}=v1.`)), 'forged iss: a session cookie was set');
    // The login was taken by that first (failed) use: the genuine callback finds none now.
    const g = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie: other.header() } });
    eq(new URL(g.headers.get('location')).searchParams.get('edge_oauth_error'), 'login_rejected', 'after a failed try: error');
    const n = await fetch(callbackUrl, { redirect: 'manual' });
    eq(new URL(n.headers.get('location')).searchParams.get('edge_oauth_error'), 'no_login_in_progress', 'no login cookie: error');
    assert(!n.headers.getSetCookie().some((c) => c.startsWith(`${SESSION}=v1.`)), 'a session cookie was set');
    // An error redirect without state (some servers omit it): the one login in progress of this
    // browser answers it and ends, its cookie expired; with none, no_login_in_progress.
    const third = new Jar();
    const started = await bff(w(), '/bff/login', { method: 'POST', origin: app, jar: third, json: { mcp_server: 'tools' } });
    const thirdName = `${LOGIN}-${loginTag(new URL(started.json.authorization_url).searchParams.get('state'))}`;
    const stateless = new URL(bffRedirect);
    stateless.searchParams.set('error', 'access_denied');
    const sl = await fetch(stateless, { redirect: 'manual', headers: { cookie: third.header() } });
    const slError = new URL(sl.headers.get('location')).searchParams.get('edge_oauth_error');
    assert(slError && slError !== 'no_login_in_progress', `a stateless error callback with one login in progress: ${slError}`);
    assert(sl.headers.getSetCookie().some((c) => c.startsWith(`${thirdName}=;`) || (c.startsWith(`${thirdName}=`) && /Max-Age=0/i.test(c))), `its login cookie expired: ${sl.headers.getSetCookie().join(' | ')}`);
    const none = await fetch(stateless, { redirect: 'manual' });
    eq(new URL(none.headers.get('location')).searchParams.get('edge_oauth_error'), 'no_login_in_progress', 'a stateless error callback with no login: error');
  });

  // Two tabs of one browser: both logins started before either callback. Requests from their own
  // address, so that they do not use up the address bucket the rate-limit check counts on.
  const tabsAddress = '192.0.2.44';
  const tabCallback = async (url, j) => {
    const r = await fetch(url, { redirect: 'manual', headers: { cookie: j.header(), 'cf-connecting-ip': tabsAddress } });
    j.take(r);
    await r.arrayBuffer();
    return { status: r.status, location: r.headers.get('location'), setCookies: r.headers.getSetCookie() };
  };
  const tabLogin = async (j) => {
    const r = await bff(w(), '/bff/login', { method: 'POST', origin: app, jar: j, json: { mcp_server: 'tools' }, address: tabsAddress });
    eq(r.status, 200, `login status (${r.text.slice(0, 200)})`);
    const name = `${LOGIN}-${loginTag(new URL(r.json.authorization_url).searchParams.get('state'))}`;
    return { r, name, url: r.json.authorization_url };
  };
  const errorOf = (location) => new URL(location).searchParams.get('edge_oauth_error');

  await check('BFF two logins started at once in one browser (two tabs): each has its own login cookie named by its state, both callbacks complete, each clearing only its own; the session cookie is the last callback\'s and both sessions work', async () => {
    const tabs = new Jar();
    const before = await stats(issuer);
    const a = await tabLogin(tabs);
    const b = await tabLogin(tabs);
    assert(a.name !== b.name, 'one login cookie name for both logins');
    const setB = b.r.headers.getSetCookie();
    eq(setB.length, 1, `Set-Cookie of the second login (${setB})`);
    assert(setB[0].startsWith(`${b.name}=v1.`) && /HttpOnly/.test(setB[0]) && /SameSite=Lax/.test(setB[0]) && /Path=\//.test(setB[0]) && /Max-Age=600/.test(setB[0]), `second login cookie: ${setB[0]}`);
    eq(loginCookies(tabs).map(([n]) => n).sort().join(), [a.name, b.name].sort().join(), 'login cookies in the browser');
    const cbA = await followAuthorization(a.url, bffRedirect);
    const cbB = await followAuthorization(b.url, bffRedirect);
    const ra = await tabCallback(cbA, tabs);
    eq(ra.status, 303, 'first callback status');
    eq(ra.location, `${app}/app`, 'first callback Location (no edge_oauth_error)');
    assert(ra.setCookies.some((c) => c.startsWith(`${a.name}=;`) && /Max-Age=0/.test(c)), `first login cookie not cleared: ${ra.setCookies}`);
    assert(!ra.setCookies.some((c) => c.startsWith(`${b.name}=`)), 'the first callback touched the second login\'s cookie');
    const sessionA = tabs.cookies.get(SESSION);
    assert(sessionA?.startsWith('v1.'), 'no session cookie after the first callback');
    eq(loginCookies(tabs).map(([n]) => n).join(), b.name, 'login cookies after the first callback');
    const rb = await tabCallback(cbB, tabs);
    eq(rb.status, 303, 'second callback status');
    eq(rb.location, `${app}/app`, 'second callback Location (no edge_oauth_error)');
    const sessionB = tabs.cookies.get(SESSION);
    assert(rb.setCookies.some((c) => c.startsWith(`${SESSION}=${sessionB};`)), 'the session cookie is not the second callback\'s');
    assert(sessionB !== sessionA, 'the second callback did not set a session cookie of its own');
    eq(loginCookies(tabs).length, 0, 'login cookies left');
    const after = await stats(issuer);
    eq(after.token.by_grant_type.authorization_code.ok - (before.token.by_grant_type.authorization_code?.ok ?? 0), 2, 'codes exchanged');
    // The browser holds the second login's session; the first's is a session of its own.
    for (const [what, value] of [['the browser\'s (second)', sessionB], ['the first callback\'s', sessionA]]) {
      const j = new Jar();
      j.cookies.set(SESSION, value);
      const st = await bff(w(), '/bff/session', { origin: app, jar: j, address: tabsAddress });
      eq(st.json?.authenticated, true, `${what} session (${st.text.slice(0, 200)})`);
      const who = await bffMcp(w(), app, j, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: {} } }, { address: tabsAddress });
      eq(who.status, 200, `${what} session: MCP through /bff/mcp`);
    }
    // Both callbacks again: their logins are done and their cookies gone.
    for (const cb of [cbA, cbB]) eq(errorOf((await tabCallback(cb, tabs)).location), 'no_login_in_progress', 'a completed callback again');
  });

  await check('BFF login cookies bind each callback to its browser and its own login: a callback without its login cookie (another browser, or the other tab\'s cookie only, or a value moved under its name) fails with no_login_in_progress and leaves the login usable by the browser that started it', async () => {
    const tabs = new Jar();
    const a = await tabLogin(tabs);
    const b = await tabLogin(tabs);
    const cbA = await followAuthorization(a.url, bffRedirect);
    const cbB = await followAuthorization(b.url, bffRedirect);
    const elsewhere = await tabCallback(cbA, new Jar());
    eq(elsewhere.status, 303, 'another browser: status');
    eq(errorOf(elsewhere.location), 'no_login_in_progress', 'another browser: error');
    assert(!elsewhere.setCookies.some((c) => c.startsWith(`${SESSION}=v1.`)), 'another browser got a session cookie');
    const onlyB = new Jar();
    onlyB.cookies.set(b.name, tabs.cookies.get(b.name));
    eq(errorOf((await tabCallback(cbA, onlyB)).location), 'no_login_in_progress', 'only the other login\'s cookie: error');
    // B's sealed value under A's name (and A's under B's): sealed for another login, refused.
    const swapped = new Jar();
    swapped.cookies.set(a.name, tabs.cookies.get(b.name));
    swapped.cookies.set(b.name, tabs.cookies.get(a.name));
    eq(errorOf((await tabCallback(cbA, swapped)).location), 'no_login_in_progress', 'a value moved under another login\'s name: error');
    eq(errorOf((await tabCallback(cbB, swapped)).location), 'no_login_in_progress', 'a value moved under another login\'s name (B): error');
    // None of that reached the logins: the browser that started them completes both.
    const ra = await tabCallback(cbA, tabs);
    eq(ra.location, `${app}/app`, 'first login in its own browser');
    const rb = await tabCallback(cbB, tabs);
    eq(rb.location, `${app}/app`, 'second login in its own browser');
    eq(loginCookies(tabs).length, 0, 'login cookies left');
  });

  await check('BFF at most 4 logins in progress per browser: a 5th login expires the oldest login cookie (its callback then fails), the other 4 still complete', async () => {
    const tabs = new Jar();
    const logins = [];
    for (let i = 0; i < 4; i += 1) {
      const l = await tabLogin(tabs);
      eq(l.r.headers.getSetCookie().length, 1, `Set-Cookie of login ${i + 1}`);
      logins.push(l);
    }
    const fifth = await tabLogin(tabs);
    const set = fifth.r.headers.getSetCookie();
    eq(set.length, 2, `Set-Cookie of the 5th login (${set})`);
    assert(set.some((c) => c.startsWith(`${logins[0].name}=;`) && /Max-Age=0/.test(c)), `the oldest login cookie not expired: ${set}`);
    logins.push(fifth);
    eq(loginCookies(tabs).map(([n]) => n).sort().join(), logins.slice(1).map((l) => l.name).sort().join(), 'login cookies in the browser');
    const results = [];
    for (const l of logins) results.push(errorOf((await tabCallback(await followAuthorization(l.url, bffRedirect), tabs)).location));
    eq(results.join(), ['no_login_in_progress', null, null, null, null].join(), 'callbacks (oldest first)');
    eq(loginCookies(tabs).length, 0, 'login cookies left');
    eq((await bff(w(), '/bff/session', { origin: app, jar: tabs, address: tabsAddress })).json?.authenticated, true, 'session');
  });

  await check('BFF MCP tools/list and tools/call through /bff/mcp/tools: the SSE answer streamed event by event, no cookie upstream', async () => {
    const before = await stats(issuer);
    const list = await bffMcp(w(), app, jar, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
    eq(list.status, 200, `tools/list status (${list.text.slice(0, 200)})`);
    assert((list.headers.get('content-type') ?? '').startsWith('text/event-stream'), `content-type ${list.headers.get('content-type')}`);
    const names = list.events.at(-1)?.message?.result?.tools?.map((t) => t.name).sort().join();
    eq(names, 'admin_note,echo,time,whoami', 'tools');
    const who = await bffMcp(w(), app, jar, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
    eq(JSON.parse(who.events.at(-1).message.result.content[0].text).client_id, basicClient.client_id, 'whoami client_id');
    const echo = await bffMcp(w(), app, jar, {
      jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { text: 'through the edge' }, _meta: { progressToken: 'p1' } },
    });
    eq(echo.status, 200, 'tools/call status');
    const kinds = echo.events.map((e) => e.message.method ?? 'result');
    eq(kinds.join(), 'notifications/progress,notifications/progress,result', 'events');
    eq(echo.events[2].message.result.content[0].text, 'through the edge', 'echo');
    const spread = echo.events[2].at - echo.events[0].at;
    assert(spread >= PROGRESS_DELAY_MS, `the first event arrived only ${spread} ms before the result: buffered`);
    const after = await stats(issuer);
    eq(after.mcp.with_cookie - before.mcp.with_cookie, 0, 'MCP requests carrying Cookie');
    eq(after.mcp.tool_calls.echo - (before.mcp.tool_calls.echo ?? 0), 1, 'echo calls at the MCP server');
  });

  await check('BFF refresh with rotation through /bff/mcp after expiry (twice): 5 concurrent calls make 1 upstream refresh, then the rotated refresh token works; the cookie never changes', async () => {
    const cookie = jar.header();
    for (const concurrent of [5, 1]) {
      const s = await bff(w(), '/bff/session', { origin: app, jar });
      await sleep(Math.max(0, s.json.expires_at * 1000 + 250 - Date.now()));
      const before = await stats(issuer);
      const all = await Promise.all(Array.from({ length: concurrent }, (_, i) => bffMcp(w(), app, jar, { jsonrpc: '2.0', id: 10 + i, method: 'tools/call', params: { name: 'whoami', arguments: {} } })));
      const after = await stats(issuer);
      eq(all.filter((r) => r.status === 200).length, concurrent, `answers with 200 (${all.map((r) => r.status)})`);
      eq(refreshRequests(after) - refreshRequests(before), 1, `upstream refreshes for ${concurrent} calls`);
      eq(refreshErrors(after) - refreshErrors(before), 0, 'upstream refresh errors');
      const s2 = await bff(w(), '/bff/session', { origin: app, jar });
      assert(s2.json.expires_at > s.json.expires_at, 'expires_at did not move');
    }
    eq(jar.header(), cookie, 'session cookie');
  });

  await check('BFF step-up: admin_note -> 403 insufficient_scope passed through and recorded (/bff/session step_up_scope); a step_up login asks for the configured + granted + challenged scope; after consent admin_note 200 with the new cookie, the old session forgotten without an upstream revocation', async () => {
    const adminNote = (j) => bffMcp(w(), app, j, { jsonrpc: '2.0', id: 40, method: 'tools/call', params: { name: 'admin_note', arguments: { text: 'stepped up' } } });
    const words = (s) => (s ?? '').split(' ').filter(Boolean).sort().join(' ');
    // No challenge recorded yet: nothing to step up to (a step-up must not replace the session
    // with one of a possibly narrower scope); the form POST goes back with the code.
    const early = await bff(w(), '/bff/login', { method: 'POST', origin: app, jar: jar.clone(), json: { mcp_server: 'tools', step_up: true } });
    isRfcError(early, 400, 'invalid_request', 'no_step_up_challenge');
    const earlyForm = await bff(w(), '/bff/login', { method: 'POST', origin: app, jar: jar.clone(), csrf: false, body: 'mcp_server=tools&step_up=true', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    eq(earlyForm.status, 303, 'form step-up without a challenge: status');
    eq(earlyForm.headers.get('location'), `${app}/app?edge_oauth_error=no_step_up_challenge`, 'form step-up without a challenge: Location');
    eq((await bff(w(), '/bff/session', { origin: app, jar })).json.authenticated, true, 'the session survives a step-up without a challenge');
    // Without a session there is nothing to step up.
    isRfcError(await bff(w(), '/bff/login', { method: 'POST', origin: app, json: { mcp_server: 'tools', step_up: true } }), 401, 'invalid_token', 'not_authenticated');
    const denied = await adminNote(jar);
    eq(denied.status, 403, `admin_note before the step-up (${denied.text.slice(0, 200)})`);
    const challenge = denied.headers.get('www-authenticate') ?? '';
    assert(/error="insufficient_scope"/.test(challenge) && /scope="mcp:tools mcp:admin"/.test(challenge), `challenge passed through: ${challenge}`);
    // The page's cue: a step-up login would be accepted for this scope (max_scope allows it).
    eq(denied.headers.get('x-edge-oauth-step-up'), 'mcp:tools mcp:admin', 'X-Edge-OAuth-Step-Up');
    assert(/x-edge-oauth-step-up/i.test(denied.headers.get('access-control-expose-headers') ?? ''), `exposed to the page: ${denied.headers.get('access-control-expose-headers')}`);
    const s = await bff(w(), '/bff/session', { origin: app, jar });
    eq(s.json.step_up_scope, 'mcp:tools mcp:admin', 'step_up_scope');
    eq(s.json.scope, 'mcp:tools', 'scope before');
    const old = jar.clone();
    const before = await stats(issuer);
    const login = await bff(w(), '/bff/login', { method: 'POST', origin: app, jar, json: { mcp_server: 'tools', step_up: true } });
    eq(login.status, 200, `step_up login (${login.text.slice(0, 200)})`);
    eq(words(new URL(login.json.authorization_url).searchParams.get('scope')), 'mcp:admin mcp:tools', 'step-up scope');
    const callbackUrl = await followAuthorization(login.json.authorization_url, bffRedirect);
    const cb = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie: jar.header() } });
    jar.take(cb);
    await cb.arrayBuffer();
    eq(cb.status, 303, 'callback status');
    eq(cb.headers.get('location'), `${app}/app`, 'callback Location (no edge_oauth_error)');
    assert(jar.cookies.get(SESSION) !== old.cookies.get(SESSION), 'the session cookie was not replaced');
    const s2 = await bff(w(), '/bff/session', { origin: app, jar });
    eq(words(s2.json.scope), 'mcp:admin mcp:tools', 'scope after');
    eq(s2.json.step_up_scope, undefined, 'step_up_scope after');
    const ok = await adminNote(jar);
    eq(ok.status, 200, `admin_note after the step-up (${ok.text.slice(0, 200)})`);
    assert(/^note saved by /.test(ok.events.at(-1)?.message?.result?.content?.[0]?.text ?? ''), `admin_note result: ${ok.text.slice(0, 200)}`);
    eq((await bff(w(), '/bff/session', { origin: app, jar: old })).json.authenticated, false, 'the replaced session');
    const after = await stats(issuer);
    eq(revocationAuth(after).basic - revocationAuth(before).basic, 0, 'upstream revocations during the step-up');
  });

  await check('BFF step-up for an MCP server without max_scope: its challenge may only re-ask the configured and granted scope; mcp:admin (or openid, offline_access, ...) is refused with 403 step_up_scope_not_allowed and the session survives', async () => {
    const own = new Jar();
    await bffLogin(w(), app, bffRedirect, own, { server: 'plain' });
    const denied = await bffMcp(w(), app, own, { jsonrpc: '2.0', id: 41, method: 'tools/call', params: { name: 'admin_note', arguments: { text: 'x' } } }, { server: 'plain' });
    eq(denied.status, 403, `admin_note through /bff/mcp/plain (${denied.text.slice(0, 200)})`);
    // No step-up would be accepted: no cue for the page (it answers with the 403).
    eq(denied.headers.get('x-edge-oauth-step-up'), null, 'X-Edge-OAuth-Step-Up without max_scope');
    eq((await bff(w(), '/bff/session', { origin: app, jar: own })).json.step_up_scope, 'mcp:tools mcp:admin', 'step_up_scope');
    const before = await stats(issuer);
    const r = await bff(w(), '/bff/login', { method: 'POST', origin: app, jar: own, json: { mcp_server: 'plain', step_up: true } });
    isRfcError(r, 403, 'invalid_scope', 'step_up_scope_not_allowed');
    assert(/mcp:admin/.test(r.json.error_description ?? ''), `error_description: ${r.json.error_description}`);
    const s = await bff(w(), '/bff/session', { origin: app, jar: own });
    eq(s.json.authenticated, true, 'the session survives');
    eq(s.json.scope, 'mcp:tools', 'scope');
    eq((await stats(issuer)).authorization.requests - before.authorization.requests, 0, 'authorization requests');
  });

  await check('BFF tampered, foreign or misplaced cookie: 401 invalid_session_cookie, the cookie expired', async () => {
    const value = jar.cookies.get(SESSION);
    const raw = Buffer.from(value.slice(3), 'base64url');
    raw[raw.length - 20] ^= 1;
    const tampered = new Jar();
    tampered.cookies.set(SESSION, `v1.${raw.toString('base64url')}`);
    const t = await bff(w(), '/bff/session', { origin: app, jar: tampered });
    isRfcError(t, 401, 'invalid_token', 'invalid_session_cookie');
    assert(t.headers.getSetCookie().some((c) => c.startsWith(`${SESSION}=;`) && /Max-Age=0/.test(c)), 'cookie not expired');
    const id = crypto.randomBytes(32).toString('hex');
    const handle = `${id}.${crypto.randomBytes(32).toString('base64url')}`;
    const foreign = new Jar();
    foreign.cookies.set(SESSION, sealCookie(crypto.randomBytes(32), 'edge-oauth/v1/session', handle));
    isRfcError(await bff(w(), '/bff/mcp/tools', { method: 'POST', origin: app, jar: foreign, json: {} }), 401, 'invalid_token', 'invalid_session_cookie');
    // Sealed with the right key, but for the login cookie: the additional data differs.
    const misplaced = new Jar();
    misplaced.cookies.set(SESSION, sealCookie(cookieKey, 'edge-oauth/v1/login', handle));
    isRfcError(await bff(w(), '/bff/session', { origin: app, jar: misplaced }), 401, 'invalid_token', 'invalid_session_cookie');
    const garbage = new Jar();
    garbage.cookies.set(SESSION, 'not-a-sealed-value');
    isRfcError(await bff(w(), '/bff/logout', { method: 'POST', origin: app, jar: garbage }), 401, 'invalid_token', 'invalid_session_cookie');
  });

  await check('BFF CSRF: no X-Edge-OAuth header -> 403 csrf_header_missing (session, mcp, logout); the session survives', async () => {
    for (const [p, m] of [['/bff/session', 'GET'], ['/bff/mcp/tools', 'POST'], ['/bff/logout', 'POST'], ['/bff/login', 'POST']]) {
      const r = await bff(w(), p, { method: m, origin: app, jar, csrf: false, json: m === 'POST' ? { mcp_server: 'tools' } : undefined });
      isRfcError(r, 403, 'access_denied', 'csrf_header_missing');
    }
    eq((await bff(w(), '/bff/session', { origin: app, jar })).json.authenticated, true, 'authenticated');
  });

  await check('BFF disallowed Origin -> 403 origin_not_allowed without CORS headers (GET, POST, POST without Origin, preflight, form login)', async () => {
    const g = await bff(w(), '/bff/session', { origin: EVIL, jar });
    isRfcError(g, 403, 'access_denied', 'origin_not_allowed');
    eq(corsHeaders(g).join(), '', 'CORS headers');
    isRfcError(await bff(w(), '/bff/mcp/tools', { method: 'POST', origin: EVIL, jar, json: {} }), 403, 'access_denied', 'origin_not_allowed');
    isRfcError(await bff(w(), '/bff/logout', { method: 'POST', jar }), 403, 'access_denied', 'origin_not_allowed');
    const p = await bff(w(), '/bff/mcp/tools', { method: 'OPTIONS', origin: EVIL, csrf: false, headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-edge-oauth, content-type' } });
    eq(p.status, 403, 'preflight status');
    eq(corsHeaders(p).join(), '', 'preflight CORS headers');
    // A top-level form POST cannot carry the header: the login (which needs no session) takes
    // it with an allowed Origin, and answers 303 to the authorization endpoint.
    const form = { method: 'POST', csrf: false, body: 'mcp_server=tools', headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    isRfcError(await bff(w(), '/bff/login', { ...form, origin: EVIL }), 403, 'access_denied', 'origin_not_allowed');
    const f = await bff(w(), '/bff/login', { ...form, origin: app });
    eq(f.status, 303, 'form login status');
    assert(f.headers.get('location').startsWith(`${issuer}/auth?`), `form login Location ${f.headers.get('location')}`);
    const ok = await bff(w(), '/bff/mcp/tools', { method: 'OPTIONS', origin: PAGE, csrf: false, headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-edge-oauth, content-type, mcp-session-id' } });
    eq(ok.status, 204, 'preflight from an allowed origin');
    eq(ok.headers.get('access-control-allow-credentials'), 'true', 'Access-Control-Allow-Credentials');
    eq((await bff(w(), '/bff/session', { origin: app, jar })).json.authenticated, true, 'authenticated');
  });

  await check('BFF body caps: login body over MAX_BODY_BYTES and MCP body over MCP_MAX_BODY_BYTES -> 413; unknown MCP server -> 404', async () => {
    const big = JSON.stringify({ mcp_server: 'tools', pad: 'x'.repeat(5000) });
    isRfcError(await bff(w(), '/bff/login', { method: 'POST', origin: app, body: big, headers: { 'content-type': 'application/json' } }), 413, 'invalid_request', 'body_too_large');
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x'.repeat(5000) } } });
    isRfcError(await bff(w(), '/bff/mcp/tools', { method: 'POST', origin: app, jar, body: call, headers: { 'content-type': 'application/json' } }), 413, 'invalid_request', 'body_too_large');
    isRfcError(await bff(w(), '/bff/mcp/other', { method: 'POST', origin: app, jar, json: {} }), 404, 'invalid_request', 'unknown_mcp_server');
    isRfcError(await bff(w(), '/bff/login', { method: 'POST', origin: app, json: { mcp_server: 'other' } }), 404, 'invalid_request', 'unknown_mcp_server');
  });

  await check(`BFF rate limits: request ${SESSION_LIMIT + 1} of a session and ${ADDRESS_LIMIT + 1} of an address within a minute -> 429 with Retry-After`, async () => {
    const address = '198.51.100.7';
    const other = new Jar();
    await bffLogin(w(), app, bffRedirect, other, { address });
    let limited;
    // The bucket refills while the loop runs (2 requests a 3 s): allow a few more than the burst.
    for (let i = 0; i < SESSION_LIMIT + 10 && !limited; i += 1) {
      const r = await bff(w(), '/bff/session', { origin: app, jar: other, address });
      if (r.status === 429) limited = { i, r };
      else eq(r.status, 200, 'status before the limit');
    }
    assert(limited, 'never limited');
    assert(limited.i >= SESSION_LIMIT, `limited after ${limited.i} requests`);
    isRfcError(limited.r, 429, 'temporarily_unavailable', 'rate_limited');
    assert(Number(limited.r.headers.get('retry-after')) >= 1, `Retry-After ${limited.r.headers.get('retry-after')}`);
    eq((await bff(w(), '/bff/session', { origin: app, jar })).status, 200, 'another session');
    const flood = '203.0.113.9';
    let byAddress;
    let passedByAddress = 0;
    for (let i = 0; i < ADDRESS_LIMIT + 50 && !byAddress; i += 1) {
      const r = await bff(w(), '/bff/session', { origin: app, address: flood });
      if (r.status === 429) byAddress = r;
      else passedByAddress += 1;
    }
    assert(passedByAddress >= ADDRESS_LIMIT, `limited after ${passedByAddress} requests`);
    assert(byAddress, 'never limited by address');
    isRfcError(byAddress, 429, 'temporarily_unavailable', 'rate_limited');
    assert(Number(byAddress.headers.get('retry-after')) >= 1, 'Retry-After');
    eq((await bff(w(), '/bff/session', { origin: app, jar })).status, 200, 'another address');
  });

  await check('relay: a configured issuer\'s well-known metadata with CORS; any other URL refused (403)', async () => {
    const wk = `${issuer}/.well-known/oauth-authorization-server`;
    const r = await call(w(), `/relay?url=${encodeURIComponent(wk)}`, { method: 'GET' });
    eq(r.status, 200, `status (${r.text.slice(0, 200)})`);
    eq(r.json.issuer, issuer, 'issuer');
    eq(r.headers.get('access-control-allow-origin'), PAGE, 'Access-Control-Allow-Origin');
    for (const url of [`${issuer}/token`, `${wk}?x=1`, `${mcp.replace('/mcp', '')}/.well-known/oauth-protected-resource/mcp`, 'http://169.254.169.254/latest/meta-data/', 'https://evil.example/.well-known/oauth-authorization-server']) {
      isRfcError(await call(w(), `/relay?url=${encodeURIComponent(url)}`, { method: 'GET' }), 403, 'access_denied', 'relay_url_not_allowed');
    }
    isRfcError(await call(w(), `/relay?url=${encodeURIComponent(wk)}`, { method: 'GET', origin: EVIL }), 403, 'access_denied', 'origin_not_allowed');
  });

  await check('BFF logout: the refresh token revoked upstream (RFC 7009, Basic auth), then the one of the session the step-up replaced (kept in the session since); the cookie expired; later /bff/session unauthenticated and /bff/mcp 401 with no refresh', async () => {
    const old = jar.clone();
    const before = await stats(issuer);
    const r = await bff(w(), '/bff/logout', { method: 'POST', origin: app, jar });
    eq(r.status, 200, `status (${r.text.slice(0, 200)})`);
    eq(r.json.authenticated, false, 'authenticated');
    assert(r.headers.getSetCookie().some((c) => c.startsWith(`${SESSION}=;`) && /Max-Age=0/.test(c)), 'cookie not expired');
    const after = await stats(issuer);
    // oidc-provider extends one grant at the step-up, so the second revocation finds it gone
    // and answers 200 as RFC 7009 §2.2 says; an AS that mints a grant per code has two to end.
    eq(after.revocation.ok - before.revocation.ok, 2, 'upstream revocations');
    eq(revocationAuth(after).basic - revocationAuth(before).basic, 2, 'Basic-authenticated revocations');
    eq((await bff(w(), '/bff/session', { origin: app, jar: old })).json.authenticated, false, 'old cookie: authenticated');
    isRfcError(await bff(w(), '/bff/mcp/tools', { method: 'POST', origin: app, jar: old, json: { jsonrpc: '2.0', id: 1, method: 'tools/list' } }), 401, 'invalid_token', 'not_authenticated');
    const end = await stats(issuer);
    eq(refreshRequests(end) - refreshRequests(after), 0, 'upstream refreshes after logout');
  });

  await check('no token in any answer the BFF page saw (cookies hold sealed session ids only)', async () => {
    const leaks = bffBodies.filter((b) => /eyJ[A-Za-z0-9_-]{10,}\./.test(b) || /"(access|refresh|id)_token"/.test(b));
    eq(leaks.length, 0, `answers with a token (${leaks[0]?.slice(0, 100)})`);
  });
}

// ---------------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// DPoP (RFC 9449): a page's key and its proofs, made here as the browser package makes them.
// ---------------------------------------------------------------------------------------------
function dpopKey() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { x, y } = publicKey.export({ format: 'jwk' });
  const jwk = { kty: 'EC', crv: 'P-256', x, y };
  const jkt = crypto.createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`).digest('base64url');
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return {
    jkt,
    proof(htm, htu, { nonce, accessToken, iat = Math.floor(Date.now() / 1000) } = {}) {
      const claims = { jti: crypto.randomUUID(), htm, htu, iat };
      if (nonce) claims.nonce = nonce;
      if (accessToken) claims.ath = crypto.createHash('sha256').update(accessToken).digest('base64url');
      const input = `${b64({ typ: 'dpop+jwt', alg: 'ES256', jwk })}.${b64(claims)}`;
      return `${input}.${crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    },
  };
}

// A token request through the worker with a proof by `key`, answering one nonce challenge
// (RFC 9449 §8) as a client must; returns the answer and how many challenges there were.
async function proven(base, issuer, key, params, state) {
  let challenges = 0;
  for (;;) {
    const r = await call(base, '/token', { params, headers: { dpop: key.proof('POST', `${issuer}/token`, { nonce: state.asNonce }) } });
    if (r.headers.get('dpop-nonce')) state.asNonce = r.headers.get('dpop-nonce');
    if (r.status === 400 && r.json?.error === 'use_dpop_nonce' && challenges === 0) {
      challenges += 1;
      continue;
    }
    return { r, challenges };
  }
}

// An MCP request with a DPoP-bound token and a proof, answering one resource nonce challenge.
async function mcpDpop(mcp, key, accessToken, state) {
  let status;
  for (let i = 0; i < 2; i += 1) {
    const res = await fetch(mcp, {
      method: 'POST',
      headers: {
        authorization: `DPoP ${accessToken}`,
        dpop: key.proof('POST', mcp, { accessToken, nonce: state.rsNonce }),
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    await res.arrayBuffer();
    status = res.status;
    if (status !== 401 || !res.headers.get('dpop-nonce')) break;
    state.rsNonce = res.headers.get('dpop-nonce');
  }
  return status;
}

async function dpopChecks() {
  const peer = await startPeer(['--dpop-nonce']);
  const { issuer, mcp } = peer;
  const port = await freePort();
  const app = `http://127.0.0.1:${port}`;
  const bffRedirect = `${app}/bff/callback`;
  const client = await register(issuer, 'client_secret_basic', [bffRedirect]);
  const dw = await startWorker({
    ALLOWED_ORIGINS: `${PAGE}, ${app}`,
    INSECURE_ALLOW_LOOPBACK: 'true',
    PROVIDERS: JSON.stringify([{ name: 'peer', issuer, client_id: client.client_id, client_secret_binding: 'PEER_CLIENT_SECRET', redirect_uris: [REDIRECT_URI] }]),
    PEER_CLIENT_SECRET: client.client_secret,
    BFF_REDIRECT_URI: bffRedirect,
    BFF_RETURN_URL: `${app}/app`,
    MCP_SERVERS: JSON.stringify([{ name: 'tools', url: mcp, provider: 'peer', scope: 'mcp:tools', max_scope: 'mcp:read' }]),
    BFF_COOKIE_KEY: crypto.randomBytes(32).toString('base64'),
    INSECURE_LOOPBACK_COOKIES: 'true',
  }, undefined, port);
  const key = dpopKey();
  const state = {};
  let session;
  await check('DPoP (mcp-stack --dpop-nonce): the preflight allows DPoP; the page\'s proof passes through the code exchange, the AS\'s nonce challenge and DPoP-Nonce come back (exposed), answered once; the tokens are bound to the page\'s key', async () => {
    const p = await call(dw.base, '/token', { method: 'OPTIONS', headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, dpop' } });
    eq(p.status, 204, 'preflight status');
    assert((p.headers.get('access-control-allow-headers') ?? '').split(/, */).includes('dpop'), `Access-Control-Allow-Headers: ${p.headers.get('access-control-allow-headers')}`);
    const { code, verifier } = await authorize(issuer, mcp, client.client_id);
    const params = { grant_type: 'authorization_code', client_id: client.client_id, code, code_verifier: verifier, redirect_uri: REDIRECT_URI, resource: mcp };
    // The first answer by hand: the challenge and how the page may read it.
    const first = await call(dw.base, '/token', { params, headers: { dpop: key.proof('POST', `${issuer}/token`) } });
    isRfcError(first, 400, 'use_dpop_nonce');
    assert(first.headers.get('dpop-nonce'), 'no DPoP-Nonce passed back');
    assert((first.headers.get('access-control-expose-headers') ?? '').includes('dpop-nonce'), `Access-Control-Expose-Headers: ${first.headers.get('access-control-expose-headers')}`);
    state.asNonce = first.headers.get('dpop-nonce');
    const { r, challenges } = await proven(dw.base, issuer, key, params, state);
    eq(r.status, 200, `exchange with the nonce (${r.text.slice(0, 200)})`);
    eq(challenges, 0, 'further nonce challenges');
    eq(r.json.token_type, 'DPoP', 'token_type');
    assert(!('refresh_token' in r.json) && r.json.session_handle, 'no session handle, or a refresh token to the page');
    eq(JSON.parse(Buffer.from(r.json.access_token.split('.')[1], 'base64url')).cnf?.jkt, key.jkt, 'cnf.jkt');
    eq(await mcpDpop(mcp, key, r.json.access_token, state), 200, 'MCP server with the bound token and a proof');
    eq(await mcpStatus(mcp, r.json.access_token), 401, 'MCP server with the bound token as Bearer');
    const s = await stats(issuer);
    eq(s.token.by_grant_type.authorization_code.errors.use_dpop_nonce, 1, 'use_dpop_nonce answers of the AS');
    session = { handle: r.json.session_handle, accessToken: r.json.access_token };
  });
  await check('DPoP: a refresh of the bound session without a proof, or with another key\'s, is refused at the edge (400 invalid_dpop_proof, nothing upstream, the session kept); with the page\'s key it refreshes upstream, still bound', async () => {
    assert(session, 'no session from the previous check');
    await sleep(DUE_MS);
    const s0 = await stats(issuer);
    const refresh = { grant_type: 'refresh_token', refresh_token: session.handle };
    isRfcError(await call(dw.base, '/token', { params: refresh }), 400, 'invalid_dpop_proof', 'invalid_dpop_proof');
    const other = dpopKey();
    isRfcError(await call(dw.base, '/token', { params: refresh, headers: { dpop: other.proof('POST', `${issuer}/token`, { nonce: state.asNonce }) } }), 400, 'invalid_dpop_proof', 'invalid_dpop_proof');
    isRfcError(await call(dw.base, '/token', { params: refresh, headers: { dpop: 'not-a-proof' } }), 400, 'invalid_dpop_proof', 'invalid_dpop_proof');
    eq(refreshRequests(await stats(issuer)), refreshRequests(s0), 'upstream refresh requests after the refused ones');
    const { r } = await proven(dw.base, issuer, key, refresh, state);
    eq(r.status, 200, `refresh with the page's key (${r.text.slice(0, 200)})`);
    eq(r.json.token_type, 'DPoP', 'token_type');
    assert(r.json.access_token !== session.accessToken && r.json.session_handle !== session.handle, 'not refreshed');
    eq(JSON.parse(Buffer.from(r.json.access_token.split('.')[1], 'base64url')).cnf?.jkt, key.jkt, 'cnf.jkt after the refresh');
    const s1 = await stats(issuer);
    eq(s1.token.by_grant_type.refresh_token.ok - (s0.token.by_grant_type.refresh_token?.ok ?? 0), 1, 'upstream refreshes');
    eq(await mcpDpop(mcp, key, r.json.access_token, state), 200, 'MCP server with the refreshed token');
    session.handle = r.json.session_handle;
    session.accessToken = r.json.access_token;
  });
  await check('DPoP: a bound session\'s proof is verified at the edge (signature, htm, htu, iat) before it answers, due or not: a forged signature with the right public key gets nothing', async () => {
    const s0 = await stats(issuer);
    const refresh = { grant_type: 'refresh_token', refresh_token: session.handle };
    const good = key.proof('POST', `${issuer}/token`);
    const [input, sig] = [good.slice(0, good.lastIndexOf('.')), good.slice(good.lastIndexOf('.') + 1)];
    const flipped = Buffer.from(sig, 'base64url');
    flipped[10] ^= 1;
    for (const [why, proof] of [
      ['forged signature', `${input}.${flipped.toString('base64url')}`],
      ['htm GET', key.proof('GET', `${issuer}/token`)],
      ['htu the worker', key.proof('POST', `${dw.base}/token`)],
      ['iat 10 minutes old', key.proof('POST', `${issuer}/token`, { iat: Math.floor(Date.now() / 1000) - 600 })],
    ]) {
      const r = await call(dw.base, '/token', { params: refresh, headers: { dpop: proof } });
      assert(!r.json?.access_token, `${why}: an access token came back`);
      isRfcError(r, 400, 'invalid_dpop_proof', 'invalid_dpop_proof');
    }
    eq(refreshRequests(await stats(issuer)), refreshRequests(s0), 'upstream refresh requests after the refused proofs');
    // A valid proof: the held token while it is not due (the usual case: it was refreshed just
    // before), or a refresh upstream if a loaded machine made this check slow.
    const { r } = await proven(dw.base, issuer, key, refresh, state);
    eq(r.status, 200, `a valid proof (${r.text.slice(0, 200)})`);
    eq(r.json.token_type, 'DPoP', 'token_type');
    if (refreshRequests(await stats(issuer)) === refreshRequests(s0)) eq(r.json.access_token, session.accessToken, 'the held access token');
  });
  await check('DPoP in the backend-for-frontend (mcp-stack --dpop-nonce): the session\'s own key (wrapped in the Durable Object) proves the code exchange, the refresh and every proxied MCP request; both nonce challenges answered once; the page sees no token and no key', async () => {
    const jar = new Jar();
    const s0 = await stats(issuer);
    await bffLogin(dw.base, app, bffRedirect, jar);
    const st = await bff(dw.base, '/bff/session', { origin: app, jar });
    eq(st.json?.authenticated, true, `session (${st.text.slice(0, 200)})`);
    eq(st.json?.dpop_bound, true, 'dpop_bound');
    const s1 = await stats(issuer);
    const code = s1.token.by_grant_type.authorization_code;
    const before = s0.token.by_grant_type.authorization_code ?? { requests: 0, ok: 0, errors: {} };
    eq(code.requests - before.requests, 2, 'code exchange requests (a nonce challenge, then the proven one)');
    eq((code.errors.use_dpop_nonce ?? 0) - (before.errors.use_dpop_nonce ?? 0), 1, 'use_dpop_nonce answers');
    const call1 = await bffMcp(dw.base, app, jar, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'bound at the edge' } } });
    eq(call1.status, 200, `MCP through the BFF (${call1.text.slice(0, 200)})`);
    eq(call1.events.at(-1)?.message?.result?.content?.[0]?.text, 'bound at the edge', 'echo');
    const call2 = await bffMcp(dw.base, app, jar, { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} });
    eq(call2.status, 200, 'second MCP request');
    const s2 = await stats(issuer);
    eq((s2.mcp.schemes.DPoP ?? 0) - (s1.mcp.schemes.DPoP ?? 0), 3, 'MCP requests with the DPoP scheme (challenge, retry, next)');
    eq((s2.mcp.schemes.Bearer ?? 0) - (s1.mcp.schemes.Bearer ?? 0), 0, 'MCP requests with Bearer');
    eq((s2.mcp.dpop_rejected.nonce ?? 0) - (s1.mcp.dpop_rejected.nonce ?? 0), 1, 'MCP nonce challenges');
    // Past the refresh point: one upstream refresh, proven by the same key (the AS refuses others).
    await sleep(DUE_MS);
    const call3 = await bffMcp(dw.base, app, jar, { jsonrpc: '2.0', id: 3, method: 'tools/list', params: {} });
    eq(call3.status, 200, `MCP after the refresh point (${call3.text.slice(0, 200)})`);
    const s3 = await stats(issuer);
    eq(s3.token.by_grant_type.refresh_token.ok - (s2.token.by_grant_type.refresh_token?.ok ?? 0), 1, 'upstream refreshes');
    const leaks = [st.text, call1.text, call2.text, call3.text].filter((b) => /eyJ[A-Za-z0-9_-]{10,}\./.test(b) || /"(access|refresh)_token"|"dpop"|wrapped/.test(b));
    eq(leaks.length, 0, 'BFF answers with a token or key material');
  });
  await check('DPoP in the backend-for-frontend: the authorization request carries dpop_jkt (RFC 9449 §10), the thumbprint of the session\'s own key, a new key per login; the MCP server sees tokens bound to exactly that key; a code bound to another key\'s thumbprint is refused at the exchange (invalid_grant), no session', async () => {
    const jar = new Jar();
    const login = await bff(dw.base, '/bff/login', { method: 'POST', origin: app, jar, json: { mcp_server: 'tools' } });
    eq(login.status, 200, `login (${login.text.slice(0, 200)})`);
    const auth = new URL(login.json.authorization_url);
    const jkt = auth.searchParams.get('dpop_jkt');
    assert(/^[A-Za-z0-9_-]{43}$/.test(jkt ?? ''), `dpop_jkt ${jkt}`);
    eq(auth.searchParams.getAll('dpop_jkt').length, 1, 'dpop_jkt parameters');
    const cb = await fetch(await followAuthorization(auth.toString(), bffRedirect), { redirect: 'manual', headers: { cookie: jar.header() } });
    jar.take(cb);
    await cb.arrayBuffer();
    eq(cb.headers.get('location'), `${app}/app`, 'callback Location (no edge_oauth_error)');
    eq((await bff(dw.base, '/bff/session', { origin: app, jar })).json?.dpop_bound, true, 'dpop_bound');
    const who = await bffMcp(dw.base, app, jar, { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
    eq(who.status, 200, `whoami (${who.text.slice(0, 200)})`);
    eq(JSON.parse(who.events.at(-1)?.message?.result?.content?.[0]?.text ?? '{}').jkt, jkt, 'the key the MCP server\'s token is bound to (cnf.jkt, proofs checked against it)');
    // Another login: another key. Its dpop_jkt replaced on the way to the AS by a thumbprint of a
    // key the worker does not hold: the AS binds the code to that, and refuses the worker's
    // exchange proven by its own key.
    const other = new Jar();
    const login2 = await bff(dw.base, '/bff/login', { method: 'POST', origin: app, jar: other, json: { mcp_server: 'tools' } });
    const auth2 = new URL(login2.json.authorization_url);
    const jkt2 = auth2.searchParams.get('dpop_jkt');
    assert(/^[A-Za-z0-9_-]{43}$/.test(jkt2 ?? '') && jkt2 !== jkt, `second login's dpop_jkt ${jkt2} (first ${jkt})`);
    auth2.searchParams.set('dpop_jkt', dpopKey().jkt);
    const s0 = await stats(issuer);
    const cb2 = await fetch(await followAuthorization(auth2.toString(), bffRedirect), { redirect: 'manual', headers: { cookie: other.header() } });
    other.take(cb2);
    await cb2.arrayBuffer();
    const s1 = await stats(issuer);
    const errorsOf = (s) => s.token.by_grant_type.authorization_code?.errors ?? {};
    eq((errorsOf(s1).invalid_grant ?? 0) - (errorsOf(s0).invalid_grant ?? 0), 1, 'code exchanges refused with invalid_grant');
    eq(s1.token.by_grant_type.authorization_code.ok - s0.token.by_grant_type.authorization_code.ok, 0, 'codes exchanged');
    assert(new URL(cb2.headers.get('location')).searchParams.get('edge_oauth_error'), `callback Location ${cb2.headers.get('location')}`);
    eq((await bff(dw.base, '/bff/session', { origin: app, jar: other })).json?.authenticated, false, 'a session after the refused exchange');
  });
  await check('BFF step-up bounded by MCP_SERVERS[].max_scope (DPoP session): the 403 insufficient_scope is recorded, the step_up login for mcp:admin is refused with 403 step_up_scope_not_allowed (a form POST: 303 back with edge_oauth_error)', async () => {
    const jar = new Jar();
    await bffLogin(dw.base, app, bffRedirect, jar);
    const denied = await bffMcp(dw.base, app, jar, { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'admin_note', arguments: { text: 'x' } } });
    eq(denied.status, 403, `admin_note (${denied.text.slice(0, 200)})`);
    eq((await bff(dw.base, '/bff/session', { origin: app, jar })).json.step_up_scope, 'mcp:tools mcp:admin', 'step_up_scope');
    const r = await bff(dw.base, '/bff/login', { method: 'POST', origin: app, jar, json: { mcp_server: 'tools', step_up: true } });
    isRfcError(r, 403, 'invalid_scope', 'step_up_scope_not_allowed');
    assert(/mcp:admin/.test(r.json.error_description ?? ''), `error_description: ${r.json.error_description}`);
    // The same from a top-level form POST: the browser goes back to the page with the code.
    const f = await bff(dw.base, '/bff/login', { method: 'POST', origin: app, jar, csrf: false, body: 'mcp_server=tools&step_up=true', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    eq(f.status, 303, 'form step-up status');
    eq(f.headers.get('location'), `${app}/app?edge_oauth_error=step_up_scope_not_allowed`, 'form step-up Location');
    eq((await bff(dw.base, '/bff/session', { origin: app, jar })).json.authenticated, true, 'the session survives');
  });
  await stopWorker(dw);
}

// The BFF step-up against the MCP SDK's authorization server (tests/peers/sdk-as.mjs), which
// mints a new grant for every code exchange: logout ends the replaced session's grant too.
// A session unused for SESSION_IDLE_SECS (60, the least allowed) ends as at logout: the
// Durable Object's alarm revokes its refresh token upstream, then deletes it. Its own peer
// (access tokens for an hour, so only the revocation can end the one the page holds) and its
// own worker; started first, checked last, so the wait overlaps the other checks.
async function idleSessionStart() {
  const peer = await startPeer(['--access-token-ttl', '3600']);
  const { issuer, mcp } = peer;
  const client = await register(issuer, 'client_secret_basic');
  const iw = await startWorker({
    ALLOWED_ORIGINS: PAGE,
    INSECURE_ALLOW_LOOPBACK: 'true',
    SESSION_IDLE_SECS: '60',
    PROVIDERS: JSON.stringify([{ name: 'peer', issuer, client_id: client.client_id, client_secret_binding: 'PEER_CLIENT_SECRET', redirect_uris: [REDIRECT_URI] }]),
    PEER_CLIENT_SECRET: client.client_secret,
  });
  const { code, verifier } = await authorize(issuer, mcp, client.client_id);
  const r = await call(iw.base, '/token', { params: { grant_type: 'authorization_code', client_id: client.client_id, code, code_verifier: verifier, redirect_uri: REDIRECT_URI, resource: mcp } });
  return { issuer, mcp, iw, clientId: client.client_id, r, at: Date.now(), before: await stats(issuer) };
}

async function idleSessionChecks(idle) {
  await check('an idle session (SESSION_IDLE_SECS=60) ends as at logout: its refresh token revoked upstream by the Durable Object\'s alarm (the grant ends, so the access token the page holds is refused), then the session handle is unknown', async () => {
    const { issuer, mcp, iw, clientId, r } = idle;
    eq(r.status, 200, `exchange (${r.text.slice(0, 200)})`);
    eq(await mcpStatus(mcp, r.json.access_token), 200, 'MCP server with the access token, before');
    const wait = idle.at + 63_000 - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    let revoked = 0;
    for (let i = 0; i < 20 && revoked === 0; i += 1) {
      revoked = revocationAuth(await stats(issuer)).basic - revocationAuth(idle.before).basic;
      if (revoked === 0) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    eq(revoked, 1, 'upstream revocations by the alarm');
    eq(await mcpStatus(mcp, r.json.access_token), 401, 'MCP server with the access token, after');
    const again = await call(iw.base, '/token', { params: { grant_type: 'refresh_token', client_id: clientId, refresh_token: r.json.session_handle } });
    eq(again.status, 400, `refresh with the handle after (${again.text.slice(0, 200)})`);
    eq(again.json.error, 'invalid_grant', 'refresh with the handle after: error');
  });
}

async function sdkStepUpChecks() {
  const peer = await startPeer(['--quiet'], 'sdk-as.mjs');
  const issuer = peer.issuer;
  const port = await freePort();
  const app = `http://127.0.0.1:${port}`;
  const bffRedirect = `${app}/bff/callback`;
  const reg = await fetch(new URL('register', issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: [REDIRECT_URI, bffRedirect], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post' }),
  });
  const client = await reg.json();
  assert(reg.status === 201 && client.client_secret, `registration at the sdk AS: HTTP ${reg.status}`);
  const sw = await startWorker({
    ALLOWED_ORIGINS: app,
    INSECURE_ALLOW_LOOPBACK: 'true',
    PROVIDERS: JSON.stringify([{ name: 'sdk', issuer, client_id: client.client_id, client_secret_binding: 'SDK_CLIENT_SECRET', auth_method: 'client_secret_post', redirect_uris: [REDIRECT_URI] }]),
    SDK_CLIENT_SECRET: client.client_secret,
    BFF_REDIRECT_URI: bffRedirect,
    BFF_RETURN_URL: `${app}/app`,
    MCP_SERVERS: JSON.stringify([{ name: 'tools', url: peer.mcp, provider: 'sdk', scope: 'mcp:tools', max_scope: 'mcp:admin' }]),
    BFF_COOKIE_KEY: crypto.randomBytes(32).toString('base64'),
    INSECURE_LOOPBACK_COOKIES: 'true',
  }, undefined, port);
  const sdkStats = async () => (await fetch(new URL('test/stats', issuer))).json();
  await check('BFF step-up at the sdk AS (a new grant per code exchange): the replaced session\'s grant stays alive until logout, which revokes both grants', async () => {
    const jar = new Jar();
    const { callback } = await bffLogin(sw.base, app, bffRedirect, jar);
    eq(callback.headers.get('location'), `${app}/app`, 'login callback Location');
    const denied = await bffMcp(sw.base, app, jar, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'admin_note', arguments: { text: 'x' } } });
    eq(denied.status, 403, `admin_note before the step-up (${denied.text.slice(0, 200)})`);
    const login = await bff(sw.base, '/bff/login', { method: 'POST', origin: app, jar, json: { mcp_server: 'tools', step_up: true } });
    eq(login.status, 200, `step_up login (${login.text.slice(0, 200)})`);
    const cb = await fetch(await followAuthorization(login.json.authorization_url, bffRedirect), { redirect: 'manual', headers: { cookie: jar.header() } });
    jar.take(cb);
    await cb.arrayBuffer();
    eq(cb.headers.get('location'), `${app}/app`, 'step-up callback Location');
    const ok = await bffMcp(sw.base, app, jar, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'admin_note', arguments: { text: 'y' } } });
    eq(ok.status, 200, `admin_note after the step-up (${ok.text.slice(0, 200)})`);
    const mid = await sdkStats();
    eq(`${mid.grants.issued}/${mid.grants.live}`, '2/2', 'grants issued/live after the step-up');
    const out = await bff(sw.base, '/bff/logout', { method: 'POST', origin: app, jar });
    eq(out.status, 200, `logout (${out.text.slice(0, 200)})`);
    const end = await sdkStats();
    eq(end.revocation.ok - mid.revocation.ok, 2, 'revocations at logout');
    eq(end.grants.live, 0, 'grants live after logout');
  });
  await stopWorker(sw);
}

async function main() {
  const peer = await startPeer();
  const { issuer, mcp } = peer;
  const port = await freePort();
  const app = `http://127.0.0.1:${port}`; // the BFF's page is served from the worker's origin
  const bffRedirect = `${app}/bff/callback`;
  const basicClient = await register(issuer, 'client_secret_basic', [bffRedirect]);
  const postClient = await register(issuer, 'client_secret_post');
  const keyClient = await registerKeyClient(issuer);
  // Registered with one key, configured with another: the AS must refuse its assertions.
  const wrongKeyClient = await registerKeyClient(issuer);
  const otherKey = await registerKeyClient(issuer);
  const secrets = [basicClient.client_secret, postClient.client_secret, JSON.parse(keyClient.privateJwk).d, JSON.parse(otherKey.privateJwk).d];
  const persist = mkdtempSync(path.join(tmpdir(), 'edge-oauth-worker-'));
  started.dirs.push(persist);
  const cookieKey = crypto.randomBytes(32);
  const bindings = {
    ALLOWED_ORIGINS: `${PAGE}, ${app}`,
    INSECURE_ALLOW_LOOPBACK: 'true',
    ROTATION_GRACE_SECS: String(GRACE),
    MAX_BODY_BYTES: '4096',
    PROVIDERS: JSON.stringify([
      {
        name: 'peer',
        issuer,
        client_id: basicClient.client_id,
        client_secret_binding: 'PEER_CLIENT_SECRET',
        redirect_uris: [REDIRECT_URI],
      },
      {
        name: 'peer-post',
        issuer,
        client_id: postClient.client_id,
        client_secret_binding: 'PEER_POST_CLIENT_SECRET',
        auth_method: 'client_secret_post',
        token_endpoint: `${issuer}/token`,
        revocation_endpoint: `${issuer}/token/revocation`,
        redirect_uris: [REDIRECT_URI],
      },
      {
        name: 'peer-jwt',
        issuer,
        client_id: keyClient.client.client_id,
        client_secret_binding: 'PEER_JWT_KEY',
        auth_method: 'private_key_jwt',
        redirect_uris: [REDIRECT_URI],
      },
      {
        name: 'peer-jwt-wrong',
        issuer,
        client_id: wrongKeyClient.client.client_id,
        client_secret_binding: 'PEER_JWT_OTHER_KEY',
        auth_method: 'private_key_jwt',
        redirect_uris: [REDIRECT_URI],
      },
    ]),
    PEER_CLIENT_SECRET: basicClient.client_secret,
    PEER_POST_CLIENT_SECRET: postClient.client_secret,
    PEER_JWT_KEY: keyClient.privateJwk,
    PEER_JWT_OTHER_KEY: otherKey.privateJwk,
    // The backend-for-frontend, over plain http on loopback (the named exception).
    BFF_REDIRECT_URI: bffRedirect,
    BFF_RETURN_URL: `${app}/app`,
    MCP_SERVERS: JSON.stringify([
      { name: 'tools', url: mcp, provider: 'peer', scope: 'mcp:tools', max_scope: 'mcp:tools mcp:admin' },
      // The same server without max_scope: a step-up cannot widen its scope.
      { name: 'plain', url: mcp, provider: 'peer', scope: 'mcp:tools' },
    ]),
    BFF_COOKIE_KEY: cookieKey.toString('base64'),
    INSECURE_LOOPBACK_COOKIES: 'true',
    MCP_MAX_BODY_BYTES: '4096',
    RATE_LIMIT_SESSION: `${SESSION_LIMIT}/60`,
    RATE_LIMIT_ADDRESS: `${ADDRESS_LIMIT}/60`,
  };
  // Started first: its idle expiry (60 s) runs out while the other checks run.
  const idle = await idleSessionStart();
  let worker = await startWorker(bindings, persist, port);
  const t0 = Date.now();
  const w = () => worker.base;

  // --- origins, routes, request shape -------------------------------------------------------
  await check('preflight from an allowed origin: 204 with CORS for POST', async () => {
    const r = await call(w(), '/token', { method: 'OPTIONS', headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
    eq(r.status, 204, 'status');
    eq(r.headers.get('access-control-allow-origin'), PAGE, 'Access-Control-Allow-Origin');
    eq(r.headers.get('access-control-allow-methods'), 'POST', 'Access-Control-Allow-Methods');
  });
  await check('disallowed origin: 403 without CORS headers (POST, preflight, no Origin)', async () => {
    const r = await call(w(), '/token', { origin: EVIL, params: { grant_type: 'refresh_token', refresh_token: 'x' } });
    isRfcError(r, 403, 'access_denied', 'origin_not_allowed');
    eq(corsHeaders(r).join(), '', 'CORS headers');
    const p = await call(w(), '/token', { method: 'OPTIONS', origin: EVIL, headers: { 'access-control-request-method': 'POST' } });
    eq(p.status, 403, 'preflight status');
    eq(corsHeaders(p).join(), '', 'preflight CORS headers');
    const n = await call(w(), '/revoke', { origin: null, params: { token: 'x' } });
    eq(n.status, 403, 'no Origin');
  });
  await check('unknown grant_type: 400 unsupported_grant_type (RFC 6749 JSON, CORS for the page)', async () => {
    const r = await call(w(), '/token', { params: { grant_type: 'client_credentials', client_id: basicClient.client_id } });
    isRfcError(r, 400, 'unsupported_grant_type', 'unsupported_grant_type');
    eq(r.headers.get('access-control-allow-origin'), PAGE, 'Access-Control-Allow-Origin');
  });
  await check('oversized body: 413, declared (Content-Length) and streamed (chunked)', async () => {
    const big = `grant_type=refresh_token&refresh_token=${'a'.repeat(5000)}`;
    const r = await call(w(), '/token', { body: big, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    isRfcError(r, 413, 'invalid_request', 'body_too_large');
    const chunk = new TextEncoder().encode('a'.repeat(1024));
    let n = 0;
    const stream = new ReadableStream({
      pull(c) {
        if (n++ < 8) c.enqueue(chunk);
        else c.close();
      },
    });
    const s = await call(w(), '/token', { body: stream, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    isRfcError(s, 413, 'invalid_request', 'body_too_large');
  });
  await check('not a form, repeated parameter, unknown route, wrong method: RFC-shaped 400/404/405', async () => {
    const j = await call(w(), '/token', { body: '{"grant_type":"refresh_token"}', headers: { 'content-type': 'application/json' } });
    isRfcError(j, 400, 'invalid_request', 'unsupported_content_type');
    const d = await call(w(), '/token', { body: 'grant_type=authorization_code&code=a&code=b&redirect_uri=x&code_verifier=v', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    isRfcError(d, 400, 'invalid_request', 'duplicate_parameter');
    isRfcError(await call(w(), '/authorize', { method: 'GET' }), 404, 'invalid_request', 'not_found');
    isRfcError(await call(w(), '/token', { method: 'GET' }), 405, 'invalid_request', 'method_not_allowed');
  });
  await check('code exchange: unconfigured client_id 401 invalid_client, unlisted redirect_uri 400', async () => {
    const base = { grant_type: 'authorization_code', code: 'c', code_verifier: 'v', redirect_uri: REDIRECT_URI };
    isRfcError(await call(w(), '/token', { params: { ...base, client_id: 'someone-else' } }), 401, 'invalid_client', 'unknown_client');
    isRfcError(await call(w(), '/token', { params: { ...base, client_id: basicClient.client_id, redirect_uri: `${EVIL}/cb` } }), 400, 'invalid_request', 'redirect_uri_not_allowed');
  });
  await check('forged or malformed session handle: 400 invalid_grant', async () => {
    const forged = `${'ab'.repeat(32)}.${crypto.randomBytes(32).toString('base64url')}`;
    isRfcError(await call(w(), '/token', { params: { grant_type: 'refresh_token', refresh_token: forged } }), 400, 'invalid_grant', 'invalid_session_handle');
    isRfcError(await call(w(), '/token', { params: { grant_type: 'refresh_token', refresh_token: 'an-upstream-refresh-token' } }), 400, 'invalid_grant', 'invalid_session_handle');
  });

  // --- a session ----------------------------------------------------------------------------
  let session; // { handle, accessToken, at }
  await check('code exchange through the proxy: Basic auth added, Origin and Cookie stripped, no refresh token to the page', async () => {
    const before = tokenAuth(await stats(issuer));
    const { code, verifier } = await authorize(issuer, mcp, basicClient.client_id);
    const r = await call(w(), '/token', {
      params: { grant_type: 'authorization_code', client_id: basicClient.client_id, code, code_verifier: verifier, redirect_uri: REDIRECT_URI, resource: mcp },
    });
    eq(r.status, 200, `status (${r.text.slice(0, 300)})`);
    assert(r.json.access_token, 'no access_token');
    eq(r.json.refresh_token, undefined, 'refresh_token in the response');
    assert(/^[0-9a-f]{64}\.[A-Za-z0-9_-]{43}$/.test(r.json.session_handle ?? ''), 'no session_handle');
    eq(r.headers.get('cache-control'), 'no-store', 'Cache-Control');
    eq(r.headers.get('access-control-allow-origin'), PAGE, 'Access-Control-Allow-Origin');
    const after = tokenAuth(await stats(issuer));
    eq(after.basic - before.basic, 1, 'Basic-authenticated token requests at the AS');
    eq(after.with_origin, 0, 'token requests carrying Origin at the AS');
    eq(after.with_cookie, 0, 'token requests carrying Cookie at the AS');
    session = { handle: r.json.session_handle, accessToken: r.json.access_token, at: Date.now() };
    eq(await mcpStatus(mcp, session.accessToken), 200, 'MCP server with the access token');
  });

  let predecessor;
  await check('refresh through the handle: rotated upstream, new access token and handle, still no refresh token', async () => {
    await sleep(Math.max(0, session.at + DUE_MS - Date.now()));
    const before = await stats(issuer);
    const r = await call(w(), '/token', { params: { grant_type: 'refresh_token', refresh_token: session.handle } });
    eq(r.status, 200, `status (${r.text.slice(0, 300)})`);
    const after = await stats(issuer);
    eq(refreshRequests(after) - refreshRequests(before), 1, 'upstream refresh requests');
    eq(refreshErrors(after), 0, 'upstream refresh errors');
    assert(r.json.access_token !== session.accessToken, 'access token not renewed');
    assert(r.json.session_handle !== session.handle, 'handle not rotated');
    eq(r.json.session_handle.split('.')[0], session.handle.split('.')[0], 'session id');
    eq(r.json.refresh_token, undefined, 'refresh_token in the response');
    predecessor = session.handle;
    session = { handle: r.json.session_handle, accessToken: r.json.access_token, at: Date.now() };
  });

  await check(`rotated handle replayed within ${GRACE} s: the successor, no upstream request, grant alive`, async () => {
    const before = await stats(issuer);
    const r = await call(w(), '/token', { params: { grant_type: 'refresh_token', refresh_token: predecessor } });
    eq(r.status, 200, `status (${r.text.slice(0, 300)})`);
    eq(r.json.session_handle, session.handle, 'handle');
    eq(r.json.access_token, session.accessToken, 'access token');
    const after = await stats(issuer);
    eq(refreshRequests(after) - refreshRequests(before), 0, 'upstream refresh requests');
    eq(await mcpStatus(mcp, session.accessToken), 200, 'MCP server with the access token');
  });

  let rotatedTwice;
  await check('10 concurrent refreshes on an expired access token: exactly 1 upstream refresh, one answer for all', async () => {
    await sleep(Math.max(0, session.at + EXPIRED_MS - Date.now()));
    eq(await mcpStatus(mcp, session.accessToken), 401, 'MCP server with the expired token');
    const before = await stats(issuer);
    const all = await Promise.all(Array.from({ length: 10 }, () => call(w(), '/token', { params: { grant_type: 'refresh_token', refresh_token: session.handle } })));
    const after = await stats(issuer);
    eq(refreshRequests(after) - refreshRequests(before), 1, 'upstream refresh requests');
    eq(refreshErrors(after), 0, 'upstream refresh errors');
    eq(all.filter((r) => r.status === 200).length, 10, 'answers with 200');
    eq(new Set(all.map((r) => r.json.access_token)).size, 1, 'distinct access tokens');
    eq(new Set(all.map((r) => r.json.session_handle)).size, 1, 'distinct handles');
    rotatedTwice = predecessor;
    session = { handle: all[0].json.session_handle, accessToken: all[0].json.access_token, at: Date.now() };
    eq(await mcpStatus(mcp, session.accessToken), 200, 'MCP server with the new token');
  });

  await check('restart of workerd with the same persistence dir: the session and its refresh token survive', async () => {
    await stopWorker(worker);
    worker = await startWorker(bindings, persist, port);
    await sleep(Math.max(0, session.at + DUE_MS - Date.now()));
    const before = await stats(issuer);
    const r = await call(w(), '/token', { params: { grant_type: 'refresh_token', refresh_token: session.handle } });
    eq(r.status, 200, `status (${r.text.slice(0, 300)})`);
    const after = await stats(issuer);
    eq(refreshRequests(after) - refreshRequests(before), 1, 'upstream refresh requests');
    eq(refreshErrors(after), 0, 'upstream refresh errors');
    session = { handle: r.json.session_handle, accessToken: r.json.access_token, at: Date.now() };
  });

  await check('a handle two rotations old: reuse detected, session ended and its grant revoked upstream', async () => {
    const before = await stats(issuer);
    const r = await call(w(), '/token', { params: { grant_type: 'refresh_token', refresh_token: rotatedTwice } });
    isRfcError(r, 400, 'invalid_grant', 'session_handle_reused');
    const after = await stats(issuer);
    eq(after.revocation.ok - before.revocation.ok, 1, 'upstream revocations');
    eq(await mcpStatus(mcp, session.accessToken), 401, 'MCP server with the revoked grant');
    const again = await call(w(), '/token', { params: { grant_type: 'refresh_token', refresh_token: session.handle } });
    isRfcError(again, 400, 'invalid_grant', 'invalid_session_handle');
  });

  // --- the second client: client_secret_post, configured endpoints; revocation ----------------
  await check('client_secret_post provider with configured endpoints: exchange, then revoke through the proxy; a later refresh fails', async () => {
    const s0 = await stats(issuer);
    const { code, verifier } = await authorize(issuer, mcp, postClient.client_id);
    const r = await call(w(), '/token', {
      params: { grant_type: 'authorization_code', client_id: postClient.client_id, code, code_verifier: verifier, redirect_uri: REDIRECT_URI, resource: mcp },
    });
    eq(r.status, 200, `status (${r.text.slice(0, 300)})`);
    const s1 = await stats(issuer);
    eq(tokenAuth(s1).other - tokenAuth(s0).other, 1, 'non-Basic token requests');
    eq(tokenAuth(s1).basic - tokenAuth(s0).basic, 0, 'Basic token requests');
    const v = await call(w(), '/revoke', { params: { token: r.json.session_handle } });
    eq(v.status, 200, `revoke status (${v.text.slice(0, 300)})`);
    const s2 = await stats(issuer);
    eq(s2.revocation.ok - s1.revocation.ok, 1, 'upstream revocations');
    eq(revocationAuth(s2).with_origin + revocationAuth(s2).with_cookie, 0, 'revocations carrying Origin or Cookie');
    const f = await call(w(), '/token', { params: { grant_type: 'refresh_token', refresh_token: r.json.session_handle } });
    isRfcError(f, 400, 'invalid_grant', 'invalid_session_handle');
    eq(await mcpStatus(mcp, r.json.access_token), 401, 'MCP server with the revoked grant');
    const twice = await call(w(), '/revoke', { params: { token: r.json.session_handle } });
    eq(twice.status, 200, 'revoking again (RFC 7009: 200)');
  });

  // --- the third client: private_key_jwt (RFC 7523), a key the worker cannot export ----------
  await check('private_key_jwt provider: exchange, refresh and revoke signed with the configured key; another key is refused', async () => {
    const clientId = keyClient.client.client_id;
    const s0 = await stats(issuer);
    const { code, verifier } = await authorize(issuer, mcp, clientId);
    const r = await call(w(), '/token', {
      params: { grant_type: 'authorization_code', client_id: clientId, code, code_verifier: verifier, redirect_uri: REDIRECT_URI, resource: mcp },
    });
    eq(r.status, 200, `status (${r.text.slice(0, 300)})`);
    assert(typeof r.json.session_handle === 'string' && !r.json.refresh_token, 'a session handle, no refresh token');
    eq(await mcpStatus(mcp, r.json.access_token), 200, 'MCP server with the access token');
    await sleep(DUE_MS); // the access token is due: the refresh goes upstream
    const f = await call(w(), '/token', { params: { grant_type: 'refresh_token', refresh_token: r.json.session_handle } });
    eq(f.status, 200, `refresh status (${f.text.slice(0, 300)})`);
    const s1 = await stats(issuer);
    eq(s1.token.by_grant_type.refresh_token.ok - (s0.token.by_grant_type.refresh_token?.ok ?? 0), 1, 'upstream refreshes');
    eq(tokenAuth(s1).basic - tokenAuth(s0).basic, 0, 'Basic token requests');
    const v = await call(w(), '/revoke', { params: { token: f.json.session_handle } });
    eq(v.status, 200, `revoke status (${v.text.slice(0, 300)})`);
    eq((await stats(issuer)).revocation.ok - s1.revocation.ok, 1, 'upstream revocations');
    eq(await mcpStatus(mcp, f.json.access_token), 401, 'MCP server with the revoked grant');

    const wrong = await authorize(issuer, mcp, wrongKeyClient.client.client_id);
    const x = await call(w(), '/token', {
      params: { grant_type: 'authorization_code', client_id: wrongKeyClient.client.client_id, code: wrong.code, code_verifier: wrong.verifier, redirect_uri: REDIRECT_URI, resource: mcp },
    });
    // The AS refused the worker's own client (invalid_client): a deployment problem, not the page's.
    isRfcError(x, 502, 'server_error', 'upstream_client_rejected');
  });

  await bffChecks({ w, issuer, mcp, app, bffRedirect, basicClient, cookieKey });
  await dpopChecks();
  await sdkStepUpChecks();
  await idleSessionChecks(idle);

  // --- bad configuration ------------------------------------------------------------------
  await check('bad configuration: every request gets 500 server_error naming the problem, never the secret', async () => {
    const bad = await startWorker({
      ALLOWED_ORIGINS: `${PAGE}, ${EVIL}/path`,
      // An object binding this time (a TOML array under [vars]), not a JSON string.
      PROVIDERS: [{ name: 'peer', issuer, client_id: 'x', client_secret_binding: basicClient.client_secret, redirect_uris: [REDIRECT_URI] }],
      INSECURE_ALLOW_LOOPBACK: 'true',
    });
    try {
      for (const [p, m] of [['/token', 'POST'], ['/revoke', 'POST'], ['/', 'GET'], ['/token', 'OPTIONS']]) {
        const r = await call(bad.base, p, { method: m, params: m === 'POST' ? { grant_type: 'refresh_token', refresh_token: 'x' } : undefined });
        isRfcError(r, 500, 'server_error', 'misconfigured');
        assert(r.json.error_description.includes('ALLOWED_ORIGINS') && r.json.error_description.includes('client_secret_binding'), `description: ${r.json.error_description}`);
      }
    } finally {
      await stopWorker(bad);
    }
  });

  await check('no client secret in any of the worker\'s answers', async () => {
    const leaks = bodies.filter((b) => secrets.some((s) => b.includes(s)));
    eq(leaks.length, 0, 'answers containing a client secret');
  });

  if (VERBOSE) console.error(`run took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

let code = 0;
try {
  await main();
} catch (err) {
  console.log(`FAIL harness: ${err.message}`);
  if (peerLog && !VERBOSE) console.log(peerLog.slice(-2000));
  failed += 1;
  code = 2;
} finally {
  await stopAll();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? code || 1 : 0);
