#!/usr/bin/env node
// The built worker (worker/build, made by `make worker`) in real workerd through miniflare 4,
// in front of the oidc-provider peer (tests/peers/mcp-stack.mjs) with two confidential clients
// registered over DCR: one with client_secret_basic and discovered endpoints, one with
// client_secret_post and configured endpoints. Builds nothing itself.
//
// Usage: node tests/worker/run.mjs [--verbose]
// Prints one line per check and `N passed, M failed`; exits 1 on any failure, 2 when it cannot
// start. Stops everything it started (the peer, every miniflare instance, temp dirs).

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Miniflare } from 'miniflare';

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

if (!existsSync(path.join(BUILD, 'index.js'))) {
  console.error(`no built worker at ${BUILD}: run \`make worker\` first`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// What this run started, stopped in any case.
// ---------------------------------------------------------------------------------------------
const started = { peer: undefined, workers: new Set(), dirs: [] };
async function stopAll() {
  for (const mf of started.workers) await mf.dispose().catch(() => {});
  started.workers.clear();
  if (started.peer && started.peer.exitCode === null) {
    started.peer.kill('SIGTERM');
    await new Promise((resolve) => {
      const t = setTimeout(() => { started.peer.kill('SIGKILL'); resolve(); }, 3000);
      started.peer.once('exit', () => { clearTimeout(t); resolve(); });
    });
  }
  for (const d of started.dirs) rmSync(d, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => { await stopAll(); process.exit(130); });
}

let peerLog = '';
async function startPeer() {
  const child = spawn(process.execPath, [
    path.join(ROOT, 'tests/peers/mcp-stack.mjs'),
    '--as-port', '0', '--mcp-port', '0',
    '--access-token-ttl', String(ACCESS_TOKEN_TTL),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.peer = child;
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

async function startWorker(bindings, persistDir) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: path.join(BUILD, 'index.js'),
    modulesRoot: BUILD,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
    compatibilityDate: '2026-01-01',
    durableObjects: { SESSIONS: { className: 'TokenSession', useSQLite: true } },
    durableObjectsPersist: persistDir ?? false,
    bindings,
    host: '127.0.0.1',
    port: 0,
    // workerd's own output (the worker's console) only with --verbose.
    handleRuntimeStdio(stdout, stderr) {
      if (VERBOSE) {
        stdout.pipe(process.stderr);
        stderr.pipe(process.stderr);
      } else {
        stdout.resume();
        stderr.resume();
      }
    },
  });
  started.workers.add(mf);
  const url = await mf.ready;
  return { mf, base: url.origin };
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
async function register(issuer, method) {
  const res = await fetch(`${issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      application_type: 'web',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: method,
    }),
  });
  const json = await res.json();
  assert(res.status === 201 && json.client_secret, `registration failed: ${res.status}`);
  return json;
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
  const jar = [];
  let url = u.toString();
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
    if (next.startsWith(REDIRECT_URI)) {
      const cb = new URL(next);
      assert(cb.searchParams.get('state') === state, 'state mismatch');
      assert(cb.searchParams.get('iss') === issuer, 'iss mismatch');
      const code = cb.searchParams.get('code');
      assert(code, `no code: ${cb.searchParams.get('error')}`);
      return { code, verifier };
    }
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
// The run.
// ---------------------------------------------------------------------------------------------
async function main() {
  const peer = await startPeer();
  const { issuer, mcp } = peer;
  const basicClient = await register(issuer, 'client_secret_basic');
  const postClient = await register(issuer, 'client_secret_post');
  const secrets = [basicClient.client_secret, postClient.client_secret];
  const persist = mkdtempSync(path.join(tmpdir(), 'edge-oauth-worker-'));
  started.dirs.push(persist);
  const bindings = {
    ALLOWED_ORIGINS: PAGE,
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
    ]),
    PEER_CLIENT_SECRET: basicClient.client_secret,
    PEER_POST_CLIENT_SECRET: postClient.client_secret,
  };
  let worker = await startWorker(bindings, persist);
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
    worker = await startWorker(bindings, persist);
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
