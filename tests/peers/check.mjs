#!/usr/bin/env node
// A real scripted OAuth + MCP flow against each authorization-server peer, started through
// stack.mjs: discovery (401 challenge -> PRM -> RFC 8414 metadata), DCR, authorization through
// the auto-approve with a cookie jar, code exchange with PKCE and resource, MCP initialize,
// tools/list, whoami and time, admin_note -> 403 insufficient_scope, refresh with rotation and
// the peer's reuse semantics (counted in /test/stats), revocation, step-up to mcp:admin, CORS;
// then the --interactive login and consent pages (escaping, Deny, Allow). Prints a pass/fail
// table; exits 1 if any check failed.
//
// Usage: node tests/peers/check.mjs [--as oidc,sdk,workers] [--no-interactive]

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    as: { type: 'string', default: 'oidc,sdk,workers' },
    'no-interactive': { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
});
const PEERS = args.as.split(',').filter(Boolean);
const here = import.meta.dirname;
const CORS_ORIGIN = 'http://127.0.0.1:8089';
const REDIRECT_URI = 'http://127.0.0.1:53682/callback';

// What each peer does with a rotated-out refresh token (see README.md).
const REUSE = {
  oidc: 'revokes-grant', // any reuse: invalid_grant and the whole grant dies
  sdk: 'revokes-grant',
  workers: 'grace-previous', // the previous token stays valid until its successor is used; older: invalid_grant, grant lives
};

const rows = [];
function record(peer, name, ok, detail = '') {
  rows.push({ peer, name, ok, detail });
  if (args.verbose) process.stderr.write(`${ok ? 'ok  ' : 'FAIL'} ${peer} ${name} ${detail}\n`);
}
class CheckError extends Error {}
function assert(cond, message) {
  if (!cond) throw new CheckError(message);
}

// ---------------------------------------------------------------------------
// Peers.
// ---------------------------------------------------------------------------
function startPeer(as, extra = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(here, 'stack.mjs'), '--as', as, '--quiet', '--cors-origin', CORS_ORIGIN, ...extra], {
      stdio: ['ignore', 'pipe', args.verbose ? 'inherit' : 'pipe'],
    });
    let err = '';
    child.stderr?.on('data', (d) => { err = (err + d).slice(-4000); });
    let out = '';
    const timer = setTimeout(() => { child.kill('SIGTERM'); reject(new Error(`${as}: not ready in 60 s\n${err}`)); }, 60000);
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        resolve({ child, ready: JSON.parse(out.slice(0, nl)), line: out.slice(0, nl) });
      } catch (e) {
        reject(e);
      }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${as}: exited ${code} before ready\n${err}`)); });
  });
}
// The process tree under `pid`, from /proc (Linux).
function descendants(pid) {
  const parent = new Map();
  for (const d of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  const out = [];
  const walk = (p) => { for (const [c, pp] of parent) if (pp === p) { out.push(c); walk(c); } };
  walk(pid);
  return out;
}
const alive = (pid) => { try { return fs.existsSync(`/proc/${pid}`); } catch { return false; } };

function stopPeer(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(child.exitCode); return; }
    child.removeAllListeners('exit');
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

// ---------------------------------------------------------------------------
// HTTP with a cookie jar that honours Path (and ignores Secure: everything is loopback).
// ---------------------------------------------------------------------------
class Jar {
  constructor() { this.cookies = new Map(); }
  store(url, response) {
    for (const raw of response.headers.getSetCookie()) {
      const [pair, ...attrs] = raw.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let cpath = '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v = ''] = a.trim().split('=');
        if (k.toLowerCase() === 'path') cpath = v || '/';
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
      }
      const key = `${new URL(url).host} ${cpath} ${name}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { host: new URL(url).host, path: cpath, name, value });
    }
  }
  header(url) {
    const u = new URL(url);
    const list = [...this.cookies.values()].filter((c) => c.host === u.host && (u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)));
    return list.map((c) => `${c.name}=${c.value}`).join('; ');
  }
}
async function request(url, { jar, method = 'GET', headers = {}, body } = {}) {
  const h = { ...headers };
  const cookie = jar?.header(url);
  if (cookie) h.Cookie = cookie;
  const response = await fetch(url, { method, headers: h, body, redirect: 'manual' });
  jar?.store(url, response);
  return response;
}
const form = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== undefined)).toString();
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };
async function postForm(url, body, extra = {}) {
  const r = await request(url, { method: 'POST', headers: { ...FORM, ...extra }, body: form(body) });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, json, text, headers: r.headers };
}

function challengeParams(www) {
  const out = {};
  for (const m of String(www ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)) out[m[1]] = m[2];
  return out;
}

// ---------------------------------------------------------------------------
// OAuth pieces.
// ---------------------------------------------------------------------------
async function discover(mcp) {
  const r = await request(mcp, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' });
  assert(r.status === 401, `unauthenticated MCP: HTTP ${r.status}`);
  const www = r.headers.get('www-authenticate');
  const c = challengeParams(www);
  assert(c.resource_metadata, `401 challenge without resource_metadata: ${www}`);
  assert(!(c.scope ?? '').includes('mcp:admin'), `401 challenge offers mcp:admin: ${www}`);
  const prm = await (await request(c.resource_metadata)).json();
  assert(prm.resource === mcp, `PRM resource ${prm.resource} != ${mcp}`);
  assert(JSON.stringify(prm.scopes_supported) === '["mcp:tools"]', `PRM scopes_supported ${JSON.stringify(prm.scopes_supported)}`);
  const issuer = prm.authorization_servers?.[0];
  const u = new URL(issuer);
  const wellKnown = `${u.origin}/.well-known/oauth-authorization-server${u.pathname === '/' ? '' : u.pathname}`;
  const mr = await request(wellKnown);
  assert(mr.status === 200, `AS metadata ${wellKnown}: HTTP ${mr.status}`);
  const meta = await mr.json();
  assert(meta.issuer === issuer, `metadata issuer ${meta.issuer} != ${issuer}`);
  assert(meta.scopes_supported?.includes('mcp:admin'), `AS scopes_supported lacks mcp:admin: ${JSON.stringify(meta.scopes_supported)}`);
  assert(meta.code_challenge_methods_supported?.includes('S256'), 'no S256');
  return { www, prm, meta };
}

async function register(meta, clientName = 'peers check') {
  const r = await request(meta.registration_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      client_name: clientName,
      application_type: 'native',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
  });
  const body = await r.json();
  assert(r.status === 201 && body.client_id, `registration: HTTP ${r.status} ${JSON.stringify(body)}`);
  return body.client_id;
}

function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  return { verifier, challenge: crypto.createHash('sha256').update(verifier).digest('base64url') };
}

function authorizeUrl(meta, clientId, scope, mcp, extra = {}) {
  const { verifier, challenge } = pkce();
  const state = crypto.randomBytes(12).toString('base64url');
  const u = new URL(meta.authorization_endpoint);
  u.search = form({
    response_type: 'code', client_id: clientId, redirect_uri: REDIRECT_URI, scope, state,
    code_challenge: challenge, code_challenge_method: 'S256', resource: mcp, ...extra,
  });
  return { url: u.href, verifier, state };
}

// Follows redirects with a cookie jar until the Location is the redirect URI.
async function followToCallback(startUrl, jar = new Jar()) {
  let url = startUrl;
  for (let i = 0; i < 20; i += 1) {
    const r = await request(url, { jar });
    const loc = r.headers.get('location');
    await r.arrayBuffer();
    assert(r.status >= 300 && r.status < 400 && loc, `authorization stopped at HTTP ${r.status} (${new URL(url).pathname})`);
    const next = new URL(loc, url).href;
    if (next.startsWith(REDIRECT_URI)) return new URL(next);
    url = next;
  }
  throw new CheckError('more than 20 redirects');
}

async function authorize(meta, clientId, scope, mcp, extra) {
  const a = authorizeUrl(meta, clientId, scope, mcp, extra);
  const cb = await followToCallback(a.url);
  assert(cb.searchParams.get('state') === a.state, 'state mismatch');
  if (meta.authorization_response_iss_parameter_supported) {
    assert(cb.searchParams.get('iss') === meta.issuer, `iss ${cb.searchParams.get('iss')} != ${meta.issuer}`);
  }
  return { ...a, callback: cb };
}

async function exchange(meta, clientId, auth, mcp) {
  const code = auth.callback.searchParams.get('code');
  assert(code, `no code: ${auth.callback.search}`);
  const t = await postForm(meta.token_endpoint, {
    grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, client_id: clientId, code_verifier: auth.verifier, resource: mcp,
  });
  assert(t.status === 200 && t.json?.access_token, `code exchange: HTTP ${t.status} ${t.text}`);
  return t.json;
}

const refresh = (meta, clientId, rt, mcp) => postForm(meta.token_endpoint, { grant_type: 'refresh_token', refresh_token: rt, client_id: clientId, resource: mcp });

// ---------------------------------------------------------------------------
// MCP.
// ---------------------------------------------------------------------------
let rpcId = 0;
async function mcpCall(mcp, token, method, params, extraHeaders = {}) {
  rpcId += 1;
  const id = rpcId; // several peers run at once
  const r = await request(mcp, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
      'Mcp-Protocol-Version': '2025-06-18', ...(token ? { Authorization: `Bearer ${token}` } : {}), ...extraHeaders,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) }),
  });
  const text = await r.text();
  let message;
  if ((r.headers.get('content-type') ?? '').includes('text/event-stream')) {
    for (const line of text.split('\n')) {
      if (!line.startsWith('data:')) continue;
      const m = JSON.parse(line.slice(5));
      if (m.id === id) message = m;
    }
  } else {
    try { message = JSON.parse(text); } catch { message = undefined; }
  }
  return { status: r.status, www: r.headers.get('www-authenticate'), message, text, headers: r.headers };
}
const toolText = (res) => res.message?.result?.content?.[0]?.text;

async function stats(statsUrl) {
  return (await request(statsUrl)).json();
}
const grantCount = (s, gt) => s.token.by_grant_type[gt] ?? { requests: 0, ok: 0, errors: {} };

// ---------------------------------------------------------------------------
// The flow for one peer.
// ---------------------------------------------------------------------------
async function flow(as) {
  const started = Date.now();
  const { child, ready, line } = await startPeer(as, ['--access-token-ttl', '300']);
  const step = async (name, fn) => {
    try {
      const detail = await fn();
      record(as, name, true, detail ?? '');
      return true;
    } catch (err) {
      record(as, name, false, err instanceof CheckError ? err.message : (err?.stack || String(err)));
      return false;
    }
  };
  const ctx = {};
  try {
    await step('ready line', () => {
      const keys = Object.keys(ready).join();
      assert(keys === 'as,issuer,mcp,stats', `keys ${keys}`);
      assert(ready.as === as && ready.mcp.endsWith('/mcp') && ready.stats.endsWith('/test/stats'), line);
      return line;
    });
    const { mcp } = ready;
    const ok = await step('discovery: 401 -> PRM (mcp:tools only) -> AS metadata (mcp:admin)', async () => {
      Object.assign(ctx, await discover(mcp));
      const r = await request(`${ready.stats}/reset`, { method: 'POST' });
      assert(r.status === 204, `stats reset: HTTP ${r.status}`);
      return `challenge: ${ctx.www}`;
    });
    if (!ok) return;
    const { meta } = ctx;
    await step('DCR (public client, native loopback redirect)', async () => {
      ctx.clientId = await register(meta);
      return `client_id ${ctx.clientId.slice(0, 12)}…`;
    });
    await step('authorize (auto-approve, cookie jar) + code exchange with PKCE and resource', async () => {
      const auth = await authorize(meta, ctx.clientId, 'mcp:tools', mcp);
      ctx.tokens = await exchange(meta, ctx.clientId, auth, mcp);
      assert(ctx.tokens.refresh_token, 'no refresh token');
      assert(String(ctx.tokens.scope ?? '').split(' ').includes('mcp:tools'), `scope ${ctx.tokens.scope}`);
      return `iss in callback: ${auth.callback.searchParams.has('iss') ? 'yes' : 'no'}; expires_in ${ctx.tokens.expires_in}; scope "${ctx.tokens.scope}"`;
    });
    await step('MCP initialize, tools/list, whoami, time', async () => {
      const at = ctx.tokens.access_token;
      const init = await mcpCall(mcp, at, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'peers-check', version: '1' } });
      assert(init.status === 200 && init.message?.result?.serverInfo, `initialize: HTTP ${init.status} ${init.text.slice(0, 200)}`);
      const list = await mcpCall(mcp, at, 'tools/list');
      const names = (list.message?.result?.tools ?? []).map((t) => t.name).sort().join();
      assert(names === 'admin_note,echo,time,whoami', `tools/list: ${names || list.text.slice(0, 200)}`);
      const who = JSON.parse(toolText(await mcpCall(mcp, at, 'tools/call', { name: 'whoami', arguments: {} })) ?? '{}');
      assert(who.sub === 'test-user' && who.client_id === ctx.clientId && who.scopes?.includes('mcp:tools') && !who.scopes.includes('mcp:admin'), `whoami ${JSON.stringify(who)}`);
      const time = toolText(await mcpCall(mcp, at, 'tools/call', { name: 'time', arguments: {} }));
      assert(/^\d{4}-\d\d-\d\dT/.test(time ?? '') && Math.abs(Date.parse(time) - Date.now()) < 60000, `time ${time}`);
      const echo = toolText(await mcpCall(mcp, at, 'tools/call', { name: 'echo', arguments: { text: 'hi <b>' } }));
      assert(echo === 'hi <b>', `echo ${echo}`);
      return `whoami ${JSON.stringify(who)}`;
    });
    await step('admin_note without mcp:admin -> 403 insufficient_scope', async () => {
      const r = await mcpCall(mcp, ctx.tokens.access_token, 'tools/call', { name: 'admin_note', arguments: { text: 'x' } });
      const c = challengeParams(r.www);
      assert(r.status === 403, `HTTP ${r.status} ${r.text.slice(0, 200)}`);
      assert(c.error === 'insufficient_scope' && c.scope === 'mcp:tools mcp:admin', `challenge ${r.www}`);
      assert(c.resource_metadata === challengeParams(ctx.www).resource_metadata, `resource_metadata ${c.resource_metadata}`);
      return r.www;
    });
    await step('CORS on /mcp for the allowed origin (preflight + 401 exposes WWW-Authenticate)', async () => {
      const pre = await request(mcp, {
        method: 'OPTIONS',
        headers: { Origin: CORS_ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type, mcp-protocol-version' },
      });
      assert(pre.status === 204 || pre.status === 200, `preflight HTTP ${pre.status}`);
      assert(pre.headers.get('access-control-allow-origin') === CORS_ORIGIN, `preflight ACAO ${pre.headers.get('access-control-allow-origin')}`);
      const allowHeaders = (pre.headers.get('access-control-allow-headers') ?? '').toLowerCase();
      for (const h of ['authorization', 'content-type', 'mcp-protocol-version', 'last-event-id', 'dpop']) assert(allowHeaders.includes(h), `preflight allow-headers lacks ${h}: ${allowHeaders}`);
      const r = await mcpCall(mcp, undefined, 'tools/list', undefined, { Origin: CORS_ORIGIN });
      const expose = (r.headers.get('access-control-expose-headers') ?? '').toLowerCase();
      assert(r.status === 401 && r.headers.get('access-control-allow-origin') === CORS_ORIGIN, `401 ACAO ${r.headers.get('access-control-allow-origin')}`);
      assert(expose.includes('www-authenticate') && expose.includes('mcp-session-id'), `expose ${expose}`);
      const other = await mcpCall(mcp, undefined, 'tools/list', undefined, { Origin: 'http://evil.example' });
      assert(!other.headers.get('access-control-allow-origin'), `other origin got ACAO ${other.headers.get('access-control-allow-origin')}`);
      return `expose: ${expose}`;
    });
    await step(`refresh: rotation, reuse semantics (${REUSE[as]})`, async () => {
      const s0 = await stats(ready.stats);
      const rt1 = ctx.tokens.refresh_token;
      const r2 = await refresh(meta, ctx.clientId, rt1, mcp);
      assert(r2.status === 200 && r2.json.refresh_token && r2.json.refresh_token !== rt1, `refresh #1: ${r2.status} ${r2.text}`);
      const rt2 = r2.json.refresh_token;
      assert((await mcpCall(mcp, r2.json.access_token, 'tools/list')).status === 200, 'refreshed access token refused');
      const r3 = await refresh(meta, ctx.clientId, rt2, mcp);
      assert(r3.status === 200 && r3.json.refresh_token && r3.json.refresh_token !== rt2, `refresh #2: ${r3.status} ${r3.text}`);
      const rt3 = r3.json.refresh_token;
      const replay = await refresh(meta, ctx.clientId, rt1, mcp);
      assert(replay.status === 400 && replay.json?.error === 'invalid_grant', `replay of the first refresh token: ${replay.status} ${replay.text}`);
      const after = await refresh(meta, ctx.clientId, rt3, mcp);
      let detail;
      if (REUSE[as] === 'revokes-grant') {
        assert(after.status === 400 && after.json?.error === 'invalid_grant', `latest refresh token after a replay: ${after.status} ${after.text}`);
        const dead = await mcpCall(mcp, r3.json.access_token, 'tools/list');
        assert(dead.status === 401, `access token of the revoked grant: HTTP ${dead.status}`);
        detail = 'replay -> invalid_grant, grant revoked (latest refresh token invalid_grant, access token 401)';
        ctx.tokens = undefined;
      } else {
        assert(after.status === 200 && after.json.refresh_token, `latest refresh token after a replay: ${after.status} ${after.text}`);
        // Grace: the immediately previous token works until its successor is used.
        const grace = await refresh(meta, ctx.clientId, rt3, mcp);
        assert(grace.status === 200, `previous refresh token within grace: ${grace.status} ${grace.text}`);
        detail = 'replay of an older token -> invalid_grant, grant lives; the previous token works until its successor is used';
        ctx.tokens = grace.json;
      }
      const s1 = await stats(ready.stats);
      const d = (k) => grantCount(s1, 'refresh_token')[k] - grantCount(s0, 'refresh_token')[k];
      const wantOk = REUSE[as] === 'revokes-grant' ? 2 : 4;
      const wantBad = REUSE[as] === 'revokes-grant' ? 2 : 1;
      const bad = (grantCount(s1, 'refresh_token').errors.invalid_grant ?? 0) - (grantCount(s0, 'refresh_token').errors.invalid_grant ?? 0);
      assert(d('requests') === wantOk + wantBad && d('ok') === wantOk && bad === wantBad, `stats refresh_token +${d('requests')} requests, +${d('ok')} ok, +${bad} invalid_grant; want ${wantOk + wantBad}/${wantOk}/${wantBad}`);
      return `${detail}; stats +${d('ok')} ok +${bad} invalid_grant`;
    });
    await step('revocation (RFC 7009) of the refresh token kills the grant', async () => {
      if (!ctx.tokens) {
        const auth = await authorize(meta, ctx.clientId, 'mcp:tools', mcp);
        ctx.tokens = await exchange(meta, ctx.clientId, auth, mcp);
      }
      const s0 = await stats(ready.stats);
      const rv = await postForm(meta.revocation_endpoint, { token: ctx.tokens.refresh_token, token_type_hint: 'refresh_token', client_id: ctx.clientId });
      assert(rv.status === 200, `revocation: HTTP ${rv.status} ${rv.text}`);
      const r = await refresh(meta, ctx.clientId, ctx.tokens.refresh_token, mcp);
      assert(r.status === 400 && r.json?.error === 'invalid_grant', `refresh after revocation: ${r.status} ${r.text}`);
      const m = await mcpCall(mcp, ctx.tokens.access_token, 'tools/list');
      assert(m.status === 401, `access token after the grant's revocation: HTTP ${m.status}`);
      const s1 = await stats(ready.stats);
      assert(s1.revocation.ok - s0.revocation.ok === 1, `stats revocation ok +${s1.revocation.ok - s0.revocation.ok}`);
      return 'refresh -> invalid_grant, MCP 401, stats revocation +1';
    });
    await step('step-up: authorize mcp:tools mcp:admin -> admin_note 200', async () => {
      const s0 = await stats(ready.stats);
      const auth = await authorize(meta, ctx.clientId, 'mcp:tools mcp:admin', mcp);
      const tokens = await exchange(meta, ctx.clientId, auth, mcp);
      const r = await mcpCall(mcp, tokens.access_token, 'tools/call', { name: 'admin_note', arguments: { text: 'hello' } });
      assert(r.status === 200 && toolText(r) === 'note saved by test-user: hello', `admin_note: HTTP ${r.status} ${r.text.slice(0, 200)}`);
      if (meta.revocation_endpoint && as !== 'oidc') {
        // Opaque access tokens can be revoked one by one.
        const rv = await postForm(meta.revocation_endpoint, { token: tokens.access_token, token_type_hint: 'access_token', client_id: ctx.clientId });
        assert(rv.status === 200, `access token revocation: ${rv.status}`);
        assert((await mcpCall(mcp, tokens.access_token, 'tools/list')).status === 401, 'revoked access token still accepted');
      }
      const s1 = await stats(ready.stats);
      assert(s1.authorization.requests - s0.authorization.requests === 1, `stats authorization +${s1.authorization.requests - s0.authorization.requests}`);
      return `scope "${tokens.scope}"${as !== 'oidc' ? '; access token revoked alone -> 401' : ''}`;
    });
    await step('login_hint=deny -> access_denied redirect', async () => {
      const a = authorizeUrl(meta, ctx.clientId, 'mcp:tools', mcp, { login_hint: 'deny' });
      const cb = await followToCallback(a.url);
      assert(cb.searchParams.get('error') === 'access_denied' && cb.searchParams.get('state') === a.state, `callback ${cb.search}`);
      return `iss: ${cb.searchParams.get('iss') ? 'yes' : 'no'}`;
    });
    await step('stats totals', async () => {
      const s = await stats(ready.stats);
      assert(s.registration.ok === 1, `registration ok ${s.registration.ok}`);
      assert(grantCount(s, 'authorization_code').ok >= 2, `authorization_code ok ${grantCount(s, 'authorization_code').ok}`);
      assert(s.token.total === Object.values(s.token.by_grant_type).reduce((n, b) => n + b.requests, 0), 'token.total != sum');
      assert(s.mcp.tool_calls.whoami === 1 && s.mcp.tool_calls.admin_note === 1, `tool_calls ${JSON.stringify(s.mcp.tool_calls)}`);
      assert(s.mcp.forbidden >= 1 && s.mcp.unauthorized >= 3, `mcp ${JSON.stringify(s.mcp)}`);
      return `token.total ${s.token.total}, mcp ${JSON.stringify({ requests: s.mcp.requests, unauthorized: s.mcp.unauthorized, forbidden: s.mcp.forbidden })}`;
    });
  } finally {
    const tree = descendants(child.pid);
    const code = await stopPeer(child);
    await new Promise((resolve) => { setTimeout(resolve, 300); });
    const left = tree.filter(alive);
    record(as, 'SIGTERM: launcher exits 0, no process left', code === 0 && left.length === 0 && tree.length > 0,
      `exit ${code}; ${tree.length} processes under it, ${left.length} left; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

// --interactive: login form, consent page (escaped client name), Deny, then Allow.
async function interactive(as) {
  const TTL = 5;
  const { child, ready } = await startPeer(as, ['--interactive', '--access-token-ttl', String(TTL)]);
  const name = 'interactive: login form, consent (escaped), Deny -> access_denied, Allow -> code';
  try {
    const { meta } = await discover(ready.mcp);
    const evil = 'Evil <script>alert(1)</script> & "co"';
    const clientId = await register(meta, evil);
    const run = async (decision) => {
      const jar = new Jar();
      const a = authorizeUrl(meta, clientId, 'mcp:tools', ready.mcp);
      let url = a.url;
      let r = await request(url, { jar });
      for (let i = 0; r.status >= 300 && r.status < 400 && i < 10; i += 1) {
        url = new URL(r.headers.get('location'), url).href;
        r = await request(url, { jar });
      }
      let page = await r.text();
      assert(r.status === 200 && /name="login"/.test(page) && />Sign in</.test(page), `login page: HTTP ${r.status}`);
      const submit = async (pageHtml, pageUrl, fields) => {
        const action = new URL(pageHtml.match(/<form method="post" action="([^"]*)"/)[1].replace(/&#38;/g, '&'), pageUrl).href;
        const hidden = Object.fromEntries([...pageHtml.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)].map((m) => [m[1], m[2]]));
        let res = await request(action, { jar, method: 'POST', headers: FORM, body: form({ ...hidden, ...fields }) });
        let at = action;
        while (res.status >= 300 && res.status < 400) {
          const next = new URL(res.headers.get('location'), at).href;
          if (next.startsWith(REDIRECT_URI)) return { callback: new URL(next) };
          at = next;
          res = await request(at, { jar });
        }
        return { html: await res.text(), url: at, status: res.status };
      };
      const consent = await submit(page, url, { login: 'alice' });
      page = consent.html;
      assert(page && />Allow</.test(page) && />Deny</.test(page), `consent page: HTTP ${consent.status}`);
      assert(!page.includes('<script>alert') && page.includes('Evil &#60;script&#62;'), 'client name not escaped on the consent page');
      assert(page.includes('mcp:tools'), 'consent page lacks the scope');
      const end = await submit(page, consent.url, { decision });
      assert(end.callback, `no redirect to the client after ${decision}`);
      return { cb: end.callback, verifier: a.verifier };
    };
    const denied = await run('deny');
    assert(denied.cb.searchParams.get('error') === 'access_denied', `deny: ${denied.cb.search}`);
    const allowed = await run('allow');
    const tokens = await exchange(meta, clientId, { callback: allowed.cb, verifier: allowed.verifier }, ready.mcp);
    const who = JSON.parse(toolText(await mcpCall(ready.mcp, tokens.access_token, 'tools/call', { name: 'whoami', arguments: {} })) ?? '{}');
    assert(who.sub === 'alice', `whoami after interactive login: ${JSON.stringify(who)}`);
    record(as, name, true, 'sub alice');
    // --access-token-ttl: the token dies after TTL seconds; the refresh token still works.
    const ttlName = `--access-token-ttl ${TTL}: expires_in ${TTL}, MCP 401 after it, refresh works`;
    try {
      assert(tokens.expires_in === TTL, `expires_in ${tokens.expires_in}`);
      await new Promise((resolve) => { setTimeout(resolve, (TTL + 1.5) * 1000); });
      const late = await mcpCall(ready.mcp, tokens.access_token, 'tools/list');
      assert(late.status === 401, `MCP ${TTL + 1.5} s after the exchange: HTTP ${late.status}`);
      const r = await refresh(meta, clientId, tokens.refresh_token, ready.mcp);
      assert(r.status === 200, `refresh after expiry: ${r.status} ${r.text}`);
      assert((await mcpCall(ready.mcp, r.json.access_token, 'tools/list')).status === 200, 'refreshed token refused');
      record(as, ttlName, true, `401 challenge: ${late.www}`);
    } catch (err) {
      record(as, ttlName, false, err instanceof CheckError ? err.message : (err?.stack || String(err)));
    }
  } catch (err) {
    record(as, name, false, err instanceof CheckError ? err.message : (err?.stack || String(err)));
  } finally {
    await stopPeer(child);
  }
}

const t0 = Date.now();
await Promise.all(PEERS.map(async (as) => {
  try {
    await flow(as);
    if (!args['no-interactive']) await interactive(as);
  } catch (err) {
    record(as, 'start', false, err?.message || String(err));
  }
}));

const width = Math.max(...rows.map((r) => r.name.length));
const order = (r) => PEERS.indexOf(r.peer);
rows.sort((a, b) => order(a) - order(b));
for (const r of rows) {
  process.stdout.write(`${r.ok ? 'ok  ' : 'FAIL'}  ${r.peer.padEnd(7)}  ${r.name.padEnd(width)}  ${r.ok ? r.detail.slice(0, 160) : r.detail}\n`);
}
const failed = rows.filter((r) => !r.ok).length;
process.stdout.write(`peers check: ${rows.length - failed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
process.exit(failed ? 1 : 0);
