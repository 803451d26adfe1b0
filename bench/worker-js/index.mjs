// The JavaScript baseline of bench/worker.mjs: the two measured paths of the Rust worker
// (worker/), written plainly for workerd, reading the same bindings. Not a product: only what
// those paths do, with the same checks on them.
//
// POST /token  grant_type=refresh_token&refresh_token=<handle>   (measured)
//   Origin allowlist (403 without CORS), form content type, body cap, no duplicate parameters,
//   handle `<64 hex DO id>.<43 base64url>`, then the session's Durable Object: the record from
//   SQLite, the handle secret compared in constant time (a rotated one within the grace window
//   gets the successor, an older one ends the session), the refresh token redeemed upstream
//   when due (client_secret_basic, resource, redirect: manual, timeout), the answer checked,
//   the handle rotated, the record written and the idle alarm set before answering.
//   `authorization_code` creates a session (setup only).
// /bff/mcp/<name>  (measured)
//   CSRF gate (X-Edge-OAuth: 1, Origin allowed or absent on GET), the session cookie unsealed
//   with AES-256-GCM (WebCrypto, the cookie name's AAD), the body read with a cap, the access
//   token from the session's Durable Object (refreshed when due, idle alarm pushed back at
//   most once a minute), the request to the configured MCP server with the allowlisted
//   headers and `Authorization: Bearer`, no redirects, a timeout on the response head, the
//   allowlisted response headers and credentialed CORS, the body streamed back.
// POST /bench/bff-session  code=…  (setup only, not part of the measured paths)
//   exchanges a code for a BFF session and answers its sealed cookie value. The Rust worker's
//   real login (/bff/login, /bff/callback) is not reproduced here.

const enc = new TextEncoder();
const dec = new TextDecoder();
const HANDLE = /^([0-9a-f]{64})\.([A-Za-z0-9_-]{43})$/;
const RETIRED_KEPT = 4;
const MCP_REQUEST_HEADERS = new Set([
  'accept', 'content-type', 'last-event-id', 'mcp-method', 'mcp-name', 'mcp-protocol-version', 'mcp-session-id',
]);
const MCP_RESPONSE_HEADERS = new Set([
  'cache-control', 'content-type', 'mcp-protocol-version', 'mcp-session-id', 'retry-after', 'www-authenticate',
]);
const SESSION_AAD = enc.encode('edge-oauth/v1/session');

let CONFIG;
function config(env) {
  if (CONFIG) return CONFIG;
  const p = JSON.parse(env.PROVIDERS)[0];
  const secret = env[p.client_secret_binding];
  const form = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  CONFIG = {
    origins: new Set(env.ALLOWED_ORIGINS.split(',').map((s) => s.trim())),
    tokenEndpoint: p.token_endpoint,
    basic: `Basic ${btoa(`${form(p.client_id)}:${form(secret)}`)}`,
    redirectUris: new Set(p.redirect_uris ?? []),
    maxBody: Number(env.MAX_BODY_BYTES ?? 8192),
    mcpMaxBody: Number(env.MCP_MAX_BODY_BYTES ?? 1048576),
    timeoutMs: Number(env.UPSTREAM_TIMEOUT_MS ?? 10000),
    refreshBuffer: Number(env.REFRESH_BUFFER_SECS ?? 60),
    grace: Number(env.ROTATION_GRACE_SECS ?? 30),
    idleSecs: Number(env.SESSION_IDLE_SECS ?? 30 * 86400),
    mcp: new Map(JSON.parse(env.MCP_SERVERS ?? '[]').map((s) => [s.name, s])),
    cookieName: env.INSECURE_LOOPBACK_COOKIES === 'true' ? 'edge-oauth-session' : '__Host-edge-oauth-session',
    cookieKey: env.BFF_COOKIE_KEY
      ? crypto.subtle.importKey('raw', b64decode(env.BFF_COOKIE_KEY), 'AES-GCM', false, ['encrypt', 'decrypt'])
      : undefined,
  };
  return CONFIG;
}

// --------------------------------------------------------------------------------------------
// Small helpers.
// --------------------------------------------------------------------------------------------
function b64decode(s) {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}
function b64url(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
function b64urlDecode(s) {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return undefined;
  return b64decode(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
}
function newSecret() {
  return b64url(crypto.getRandomValues(new Uint8Array(32)));
}
async function sha256(s) {
  return b64url(new Uint8Array(await crypto.subtle.digest('SHA-256', enc.encode(s))));
}
function sameString(a, b) {
  const x = enc.encode(a);
  const y = enc.encode(b);
  return x.byteLength === y.byteLength && crypto.subtle.timingSafeEqual(x, y);
}
const nowSecs = () => Math.floor(Date.now() / 1000);
const JSON_HEADERS = { 'content-type': 'application/json;charset=UTF-8', 'cache-control': 'no-store', pragma: 'no-cache' };

function json(status, value, extra = {}) {
  return new Response(JSON.stringify(value), { status, headers: { ...JSON_HEADERS, ...extra } });
}
function error(status, err, code, extra = {}) {
  return json(status, { error: err, error_description: code.replace(/_/g, ' '), code }, extra);
}
class Refusal extends Error {
  constructor(status, err, code) {
    super(code);
    this.response = () => error(status, err, code);
  }
}

// A body of at most `limit` bytes: a declared larger Content-Length refused before reading,
// a stream that grows past it as soon as it does.
async function readBody(req, limit) {
  const declared = Number(req.headers.get('content-length'));
  if (declared > limit) throw new Refusal(413, 'invalid_request', 'body_too_large');
  if (!req.body) return new Uint8Array(0);
  const chunks = [];
  let size = 0;
  for await (const chunk of req.body) {
    size += chunk.byteLength;
    if (size > limit) throw new Refusal(413, 'invalid_request', 'body_too_large');
    chunks.push(chunk);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

// --------------------------------------------------------------------------------------------
// The front worker.
// --------------------------------------------------------------------------------------------
export default {
  async fetch(req, env) {
    const cfg = config(env);
    const { pathname } = new URL(req.url);
    try {
      if (pathname === '/token') return await token(req, env, cfg);
      if (pathname.startsWith('/bff/mcp/')) return await mcp(req, env, cfg, pathname.slice('/bff/mcp/'.length));
      if (pathname === '/bench/bff-session') return await bffSetup(req, env, cfg);
      return error(404, 'invalid_request', 'not_found');
    } catch (e) {
      if (e instanceof Refusal) return e.response();
      return error(500, 'server_error', 'internal_error');
    }
  },
};

async function token(req, env, cfg) {
  const origin = req.headers.get('origin');
  if (!origin || !cfg.origins.has(origin)) return error(403, 'access_denied', 'origin_not_allowed', { vary: 'Origin' });
  const cors = { 'access-control-allow-origin': origin, vary: 'Origin' };
  if (req.method === 'OPTIONS' && req.headers.has('access-control-request-method')) {
    return new Response(null, {
      status: 204,
      headers: { ...cors, 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'content-type, accept', 'access-control-max-age': '600' },
    });
  }
  const answer = await (async () => {
    if (req.method !== 'POST') return error(405, 'invalid_request', 'method_not_allowed', { allow: 'POST, OPTIONS' });
    const type = (req.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') return error(400, 'invalid_request', 'unsupported_content_type');
    const form = new URLSearchParams(dec.decode(await readBody(req, cfg.maxBody)));
    const seen = new Set();
    for (const k of form.keys()) {
      if (seen.has(k)) return error(400, 'invalid_request', 'duplicate_parameter');
      seen.add(k);
    }
    const grant = form.get('grant_type');
    if (grant === 'refresh_token') {
      if (form.has('scope')) return error(400, 'invalid_request', 'unsupported_parameter');
      const m = HANDLE.exec(form.get('refresh_token') ?? '');
      if (!m) return error(400, 'invalid_grant', 'invalid_session_handle');
      let stub;
      try {
        stub = env.SESSIONS.get(env.SESSIONS.idFromString(m[1]));
      } catch {
        return error(400, 'invalid_grant', 'invalid_session_handle');
      }
      return command(stub, { refresh: m[2] });
    }
    if (grant === 'authorization_code') {
      const redirectUri = form.get('redirect_uri');
      if (!form.get('code') || !form.get('code_verifier') || !redirectUri) return error(400, 'invalid_request', 'missing_parameter');
      if (!cfg.redirectUris.has(redirectUri)) return error(400, 'invalid_request', 'redirect_uri_not_allowed');
      const stub = env.SESSIONS.get(env.SESSIONS.newUniqueId());
      return command(stub, {
        exchange: { code: form.get('code'), redirect_uri: redirectUri, code_verifier: form.get('code_verifier'), resource: form.get('resource') },
      });
    }
    return error(400, 'unsupported_grant_type', 'unsupported_grant_type');
  })();
  const headers = new Headers(answer.headers);
  for (const [k, v] of Object.entries(cors)) headers.set(k, v);
  return new Response(answer.body, { status: answer.status, headers });
}

// A session command; the Durable Object's answer is the page's.
async function command(stub, cmd) {
  const res = await stub.fetch('https://session.internal/', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(cmd),
  });
  return new Response(await res.arrayBuffer(), { status: res.status, headers: res.headers });
}

async function unsealSession(req, cfg) {
  const cookies = (req.headers.get('cookie') ?? '').split(';').map((c) => c.trim());
  const values = cookies.filter((c) => c.startsWith(`${cfg.cookieName}=`)).map((c) => c.slice(cfg.cookieName.length + 1));
  if (values.length === 0) return null;
  const key = await cfg.cookieKey;
  for (const value of values) {
    if (!value.startsWith('v1.') || value.length > 4096) continue;
    const raw = b64urlDecode(value.slice(3));
    if (!raw || raw.byteLength < 12 + 16) continue;
    try {
      const plain = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: raw.subarray(0, 12), additionalData: SESSION_AAD }, key, raw.subarray(12),
      );
      const m = HANDLE.exec(dec.decode(plain));
      if (m) return m;
    } catch {
      // another key, tampered, another cookie's value
    }
  }
  return undefined;
}

async function mcp(req, env, cfg, name) {
  const origin = req.headers.get('origin');
  const allowed = origin && cfg.origins.has(origin) ? origin : null;
  const cors = allowed
    ? { 'access-control-allow-origin': allowed, 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'mcp-session-id, mcp-protocol-version, www-authenticate, retry-after', vary: 'Origin' }
    : { vary: 'Origin' };
  const refuse = (status, err, code, extra = {}) => error(status, err, code, { ...cors, ...extra });
  const expire = { 'set-cookie': `${cfg.cookieName}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict` };
  const method = req.method;
  if (method !== 'GET' && method !== 'POST' && method !== 'DELETE') return refuse(405, 'invalid_request', 'method_not_allowed');
  if (origin && !allowed) return refuse(403, 'access_denied', 'origin_not_allowed');
  if (!origin && method !== 'GET') return refuse(403, 'access_denied', 'origin_not_allowed');
  if ((req.headers.get('x-edge-oauth') ?? '').trim() !== '1') return refuse(403, 'access_denied', 'csrf_header_missing');
  const server = cfg.mcp.get(name);
  if (!server) return refuse(404, 'invalid_request', 'unknown_mcp_server');
  const handle = await unsealSession(req, cfg);
  if (handle === null) return refuse(401, 'invalid_token', 'not_authenticated');
  if (!handle) return refuse(401, 'invalid_token', 'invalid_session_cookie', expire);
  let stub;
  try {
    stub = env.SESSIONS.get(env.SESSIONS.idFromString(handle[1]));
  } catch {
    return refuse(401, 'invalid_token', 'invalid_session_cookie', expire);
  }
  const body = method === 'POST' ? await readBody(req, cfg.mcpMaxBody) : undefined;
  const answer = await stub.fetch('https://session.internal/', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ bff_token: handle[2], mcp_server: server.name }),
  });
  if (answer.status !== 200) {
    const headers = new Headers(answer.headers);
    for (const [k, v] of Object.entries(cors)) headers.set(k, v);
    if (answer.status === 401) headers.append('set-cookie', expire['set-cookie']);
    return new Response(answer.body, { status: answer.status, headers });
  }
  const { access_token: accessToken } = await answer.json();

  const headers = new Headers();
  for (const [n, v] of req.headers) {
    if (MCP_REQUEST_HEADERS.has(n) || n.startsWith('mcp-param-')) headers.append(n, v);
  }
  headers.set('authorization', `Bearer ${accessToken}`);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), cfg.timeoutMs);
  let res;
  try {
    res = await fetch(server.url, { method, headers, body, redirect: 'manual', signal: controller.signal });
  } catch {
    return refuse(502, 'temporarily_unavailable', 'mcp_server_unavailable');
  } finally {
    clearTimeout(timer);
  }
  if (res.status >= 300 && res.status < 400) return refuse(502, 'temporarily_unavailable', 'mcp_server_unavailable');
  const out = new Headers();
  for (const [n, v] of res.headers) {
    if (MCP_RESPONSE_HEADERS.has(n)) out.append(n, v);
  }
  for (const [k, v] of Object.entries(cors)) out.set(k, v);
  return new Response(res.body, { status: res.status, headers: out });
}

// Setup only: a BFF session from a code, answered as its sealed cookie value.
async function bffSetup(req, env, cfg) {
  const form = new URLSearchParams(await req.text());
  const server = cfg.mcp.get(form.get('mcp_server') ?? '');
  if (!server) return error(404, 'invalid_request', 'unknown_mcp_server');
  const id = env.SESSIONS.newUniqueId();
  const res = await env.SESSIONS.get(id).fetch('https://session.internal/', {
    method: 'POST',
    body: JSON.stringify({ bff_exchange: { code: form.get('code'), redirect_uri: form.get('redirect_uri'), code_verifier: 'x'.repeat(43), resource: server.url, mcp_server: server.name } }),
  });
  if (res.status !== 200) return res;
  const { secret } = await res.json();
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const key = await cfg.cookieKey;
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: SESSION_AAD }, key, enc.encode(`${id}.${secret}`),
  ));
  const raw = new Uint8Array(12 + sealed.byteLength);
  raw.set(nonce);
  raw.set(sealed, 12);
  return json(200, { cookie: `${cfg.cookieName}=v1.${b64url(raw)}` });
}

// --------------------------------------------------------------------------------------------
// The session's Durable Object.
// --------------------------------------------------------------------------------------------
export class TokenSession {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS session (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL)');
    this.queue = Promise.resolve(); // one command at a time (FIFO), across awaits
    this.touched = 0;
  }

  async fetch(req) {
    const cmd = await req.json();
    const run = this.queue.then(() => this.run(cmd));
    this.queue = run.catch(() => {});
    try {
      return await run;
    } catch (e) {
      if (e instanceof Refusal) return e.response();
      return error(500, 'server_error', 'internal_error');
    }
  }

  async alarm() {
    this.ctx.storage.deleteAll();
  }

  load() {
    const row = this.sql.exec('SELECT record FROM session WHERE id = 1').toArray()[0];
    return row ? JSON.parse(row.record) : undefined;
  }

  async save(record, cfg) {
    this.sql.exec('INSERT OR REPLACE INTO session (id, record) VALUES (1, ?)', JSON.stringify(record));
    await this.ctx.storage.setAlarm(Date.now() + cfg.idleSecs * 1000);
  }

  async end() {
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
  }

  async run(cmd) {
    const cfg = config(this.env);
    if (cmd.refresh) return this.refresh(cfg, cmd.refresh);
    if (cmd.bff_token) return this.bffToken(cfg, cmd.bff_token, cmd.mcp_server);
    if (cmd.exchange || cmd.bff_exchange) {
      const x = cmd.exchange ?? cmd.bff_exchange;
      const tokens = await this.upstream(cfg, {
        grant_type: 'authorization_code', code: x.code, redirect_uri: x.redirect_uri, code_verifier: x.code_verifier,
        ...(x.resource ? { resource: x.resource } : {}),
      });
      if (!tokens.refresh_token && !cmd.bff_exchange) return json(200, tokens.body);
      const record = { tokens, handle: newSecret(), retired: [], resource: x.resource ?? null, bff: cmd.bff_exchange ? { mcp_server: x.mcp_server } : null };
      await this.save(record, cfg);
      if (cmd.bff_exchange) return json(200, { secret: record.handle });
      const { refresh_token: _, ...body } = tokens.body;
      return json(200, { ...body, session_handle: `${this.ctx.id}.${record.handle}` });
    }
    return error(500, 'server_error', 'internal_error');
  }

  // The token endpoint, with the worker's client authentication; the answer checked.
  async upstream(cfg, params, oldRefreshToken) {
    let res;
    try {
      res = await fetch(cfg.tokenEndpoint, {
        method: 'POST',
        headers: { authorization: cfg.basic, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams(params).toString(),
        redirect: 'manual',
        signal: AbortSignal.timeout(cfg.timeoutMs),
      });
    } catch {
      throw new Refusal(503, 'temporarily_unavailable', 'upstream_unavailable');
    }
    const text = await res.text();
    if (res.status >= 500 || res.status === 429) throw new Refusal(503, 'temporarily_unavailable', 'upstream_unavailable');
    if (res.status >= 300 && res.status < 400) throw new Refusal(502, 'server_error', 'upstream_invalid_response');
    if (res.status === 200 && !/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(res.headers.get('content-type') ?? '')) {
      throw new Refusal(502, 'server_error', 'upstream_invalid_response');
    }
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Refusal(502, 'server_error', 'upstream_invalid_response');
    }
    if (res.status !== 200) {
      if (res.status === 401 || body?.error === 'invalid_client') throw new Refusal(502, 'server_error', 'upstream_client_rejected');
      const e = new Refusal(res.status, String(body?.error ?? 'server_error'), 'upstream_error');
      e.upstreamError = body?.error;
      throw e;
    }
    if (typeof body?.access_token !== 'string' || !body.access_token
      || typeof body.token_type !== 'string' || !/^(bearer|dpop)$/i.test(body.token_type)
      || (body.expires_in !== undefined && !(Number.isInteger(body.expires_in) && body.expires_in >= 0))) {
      throw new Refusal(502, 'server_error', 'upstream_invalid_response');
    }
    const now = nowSecs();
    return {
      access_token: body.access_token,
      token_type: body.token_type,
      refresh_token: body.refresh_token ?? oldRefreshToken,
      scope: body.scope,
      received_at: now,
      expires_at: body.expires_in === undefined ? null : now + body.expires_in,
      body,
    };
  }

  needsRefresh(t, cfg, now) {
    if (t.expires_at === null) return false;
    return now + Math.min(cfg.refreshBuffer, Math.floor((t.expires_at - t.received_at) / 2)) >= t.expires_at;
  }

  // Refreshes upstream when due and stores the result; true when the record changed.
  async refreshIfDue(cfg, record) {
    if (!this.needsRefresh(record.tokens, cfg, nowSecs())) return false;
    if (!record.tokens.refresh_token) {
      if (record.bff && record.tokens.expires_at > nowSecs()) return false;
      await this.end();
      throw record.bff ? new Refusal(401, 'invalid_token', 'not_authenticated') : new Refusal(400, 'invalid_grant', 'invalid_session_handle');
    }
    try {
      const tokens = await this.upstream(cfg, {
        grant_type: 'refresh_token', refresh_token: record.tokens.refresh_token, ...(record.resource ? { resource: record.resource } : {}),
      }, record.tokens.refresh_token);
      tokens.scope ??= record.tokens.scope;
      delete tokens.body;
      record.tokens = tokens;
      return true;
    } catch (e) {
      if (e.upstreamError === 'invalid_grant') {
        await this.end();
        if (record.bff) throw new Refusal(401, 'invalid_token', 'not_authenticated');
      }
      if (e.response && e.message === 'upstream_unavailable' && record.tokens.expires_at > nowSecs()) return false;
      throw e;
    }
  }

  async refresh(cfg, secret) {
    const record = this.load();
    if (!record || record.bff) return error(400, 'invalid_grant', 'invalid_session_handle');
    const now = nowSecs();
    if (!sameString(record.handle, secret)) {
      const hash = await sha256(secret);
      const i = record.retired.findIndex((r) => sameString(r.hash, hash));
      if (i < 0) return error(400, 'invalid_grant', 'invalid_session_handle');
      if (i > 0 || now - record.retired[0].at > cfg.grace) {
        await this.end();
        return error(400, 'invalid_grant', 'session_handle_reused');
      }
    }
    if (await this.refreshIfDue(cfg, record)) {
      record.retired.unshift({ hash: await sha256(record.handle), at: nowSecs() });
      record.retired.length = Math.min(record.retired.length, RETIRED_KEPT);
      record.handle = newSecret();
      await this.save(record, cfg);
    }
    const t = record.tokens;
    const out = { access_token: t.access_token, token_type: 'Bearer', session_handle: `${this.ctx.id}.${record.handle}` };
    if (t.expires_at !== null) out.expires_in = Math.max(0, t.expires_at - nowSecs());
    if (t.scope) out.scope = t.scope;
    return json(200, out);
  }

  async bffToken(cfg, secret, mcpServer) {
    const record = this.load();
    if (!record || !record.bff || !sameString(record.handle, secret)) return error(401, 'invalid_token', 'not_authenticated');
    if (record.bff.mcp_server !== mcpServer) return error(403, 'access_denied', 'mcp_server_not_in_session');
    if (await this.refreshIfDue(cfg, record)) await this.save(record, cfg);
    if (record.tokens.expires_at !== null && nowSecs() >= record.tokens.expires_at) {
      return error(503, 'temporarily_unavailable', 'upstream_unavailable');
    }
    const now = nowSecs();
    if (now - this.touched >= 60) {
      await this.ctx.storage.setAlarm(Date.now() + cfg.idleSecs * 1000);
      this.touched = now;
    }
    return json(200, { access_token: record.tokens.access_token });
  }
}
