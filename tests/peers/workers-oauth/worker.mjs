// A Cloudflare Worker built on @cloudflare/workers-oauth-provider: the library's authorization
// server (DCR, PKCE, token/refresh/revocation on its token endpoint, RFC 8414 and RFC 9728
// metadata, RFC 9207 iss) with an auto-approving (or, with INTERACTIVE, a login + consent)
// authorize page in the defaultHandler, and an MCP server (the SDK's web-standard Streamable
// HTTP transport, stateless) as the apiHandler on /mcp. Same tools/scopes contract as the other
// peers (../contract.mjs). Bundled by run.mjs with esbuild and run in workerd by miniflare.
//
// Bindings: OAUTH_KV (KV), ORIGIN (http://127.0.0.1:P, the worker's own origin), AT_TTL (s),
// CORS_ORIGINS (comma-separated, may be empty), INTERACTIVE ("1" or "").
//
// Stats live in module state: workerd keeps one isolate for this worker under miniflare, which
// run.mjs's caller (check.mjs) relies on and verifies by counting across requests.

import { OAuthProvider, AuthorizationError, authorizationErrorRedirect, insufficientScope } from '@cloudflare/workers-oauth-provider';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import * as contract from '../contract.mjs';

const { MCP_SCOPE, ADMIN_SCOPE } = contract;
const ACCOUNT = 'test-user';
let stats = contract.freshStats();
const pending = new Map(); // interactive request id -> { authRequest, expires, sub? }

const json = (status, body, headers = {}) => new Response(JSON.stringify(body), {
  status, headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers },
});
const html = (body, status = 200) => new Response(body, {
  status, headers: { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' },
});
const randomId = () => {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/[+/=]/g, (c) => ({ '+': '-', '/': '_', '=': '' }[c]));
};
const redirect = (location, status = 302) => new Response(null, { status, headers: { Location: location, 'Cache-Control': 'no-store' } });

// ---------------------------------------------------------------------------
// The MCP server (apiHandler): ctx.auth is what the library verified, ctx.props what
// completeAuthorization stored ({ sub }).
// ---------------------------------------------------------------------------
const mcpHandler = {
  async fetch(request, _env, ctx) {
    const { auth } = ctx;
    // requiredScopes is advertised, not enforced: this handler enforces it.
    if (!auth.scope.includes(MCP_SCOPE)) return insufficientScope(auth, [MCP_SCOPE], `scope ${MCP_SCOPE} required`);
    if (request.method !== 'POST') {
      return json(405, { jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null }, { Allow: 'POST' });
    }
    let body;
    try {
      body = await request.clone().json();
    } catch {
      body = undefined; // the transport answers the parse error
    }
    if (contract.callsAdminTool(body) && !auth.scope.includes(ADMIN_SCOPE)) {
      return insufficientScope(auth, [MCP_SCOPE, ADMIN_SCOPE], contract.ADMIN_FORBIDDEN_BODY.error_description);
    }
    const server = new McpServer({ name: 'edge-oauth-test-mcp-workers-oauth', version: '1.0.0' });
    contract.registerTools(server, {
      count: (name) => { stats.mcp.tool_calls[name] = (stats.mcp.tool_calls[name] || 0) + 1; },
      auth: () => ({ sub: ctx.props?.sub, client_id: auth.clientId, scopes: auth.scope }),
    });
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    await server.connect(transport);
    return transport.handleRequest(request, body === undefined ? undefined : { parsedBody: body });
  },
};

// ---------------------------------------------------------------------------
// The authorize page (defaultHandler).
// ---------------------------------------------------------------------------
function grantedScopes(requested) {
  const scopes = requested.filter(Boolean);
  return scopes.length ? scopes : [MCP_SCOPE];
}

async function complete(oauth, authRequest, sub) {
  const { redirectTo } = await oauth.completeAuthorization({
    request: authRequest,
    userId: sub,
    metadata: {},
    scope: grantedScopes(authRequest.scope),
    props: { sub },
  });
  return redirect(redirectTo);
}

async function authorizePage(request, env) {
  const oauth = env.OAUTH_PROVIDER;
  const url = new URL(request.url);
  try {
    if (request.method === 'POST') return await interactiveSubmit(request, env);
    const authRequest = await oauth.parseAuthRequest(request);
    const loginHint = url.searchParams.get('login_hint') || undefined;
    if (loginHint === 'deny') {
      stats.interactions.denied += 1;
      return redirect(authorizationErrorRedirect(authRequest, 'access_denied', 'End-User denied the request (login_hint=deny)'));
    }
    if (env.INTERACTIVE !== '1') {
      stats.interactions.login += 1;
      stats.interactions.consent += 1;
      return await complete(oauth, authRequest, loginHint && contract.LOGIN_PATTERN.test(loginHint) ? loginHint : ACCOUNT);
    }
    const id = randomId();
    pending.set(id, { authRequest, expires: Date.now() + 600_000 });
    const client = await oauth.lookupClient(authRequest.clientId);
    return html(contract.loginPage({
      action: '/authorize', issuer: env.ORIGIN, clientName: client?.clientName || authRequest.clientId,
      loginHint, hidden: { request: id, step: 'login' },
    }));
  } catch (err) {
    if (err instanceof AuthorizationError) {
      if (err.redirectTo) return redirect(err.redirectTo);
      return json(400, { error: err.code || 'invalid_request', error_description: err.description || err.message });
    }
    throw err;
  }
}

async function interactiveSubmit(request, env) {
  const oauth = env.OAUTH_PROVIDER;
  const form = await request.formData();
  const id = String(form.get('request') ?? '');
  const entry = pending.get(id);
  if (env.INTERACTIVE !== '1' || !entry || entry.expires < Date.now()) {
    return json(400, { error: 'invalid_request', error_description: 'unknown or expired authorization request' });
  }
  const { authRequest } = entry;
  if (form.get('step') === 'login' && !entry.sub) {
    const login = String(form.get('login') ?? '').trim();
    // (also keeps ':' out: the library's tokens are userId:grantId:secret)
    if (!contract.LOGIN_PATTERN.test(login)) {
      return html(contract.loginPage({ action: '/authorize', issuer: env.ORIGIN, hidden: { request: id, step: 'login' }, error: contract.LOGIN_RULE }), 400);
    }
    entry.sub = login;
    stats.interactions.login += 1;
    const client = await oauth.lookupClient(authRequest.clientId);
    return html(contract.consentPage({
      action: '/authorize', clientName: client?.clientName, clientId: authRequest.clientId,
      scopes: grantedScopes(authRequest.scope), user: login, resource: authRequest.resource,
      hidden: { request: id, step: 'consent' },
    }));
  }
  if (form.get('step') === 'consent' && entry.sub) {
    pending.delete(id);
    if (form.get('decision') === 'allow') {
      stats.interactions.consent += 1;
      return complete(oauth, authRequest, entry.sub);
    }
    stats.interactions.denied += 1;
    return redirect(authorizationErrorRedirect(authRequest, 'access_denied', 'End-User denied the request'));
  }
  return json(400, { error: 'invalid_request', error_description: 'unexpected interaction step' });
}

const defaultHandler = {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/authorize') return authorizePage(request, env);
    return json(404, { error: 'not_found' });
  },
};

// ---------------------------------------------------------------------------
// Access tokens shorter than the library allows. workers-oauth-provider refuses an
// accessTokenTTL under 60 s (Cloudflare KV's minimum expiration). With AT_TTL < 60 the library
// issues 60 s tokens and this wrapper enforces the shorter lifetime: it rewrites expires_in in
// token responses, remembers when each access token it passed out expires, and answers 401
// invalid_token at /mcp after that, as an AS with that TTL would.
// ---------------------------------------------------------------------------
const LIBRARY_MIN_TTL = 60;
const shortExpiry = new Map(); // access token -> expiry (ms since epoch)
async function shortenTokenResponse(response, ttl) {
  if (response.status !== 200) return response;
  let body;
  try {
    body = await response.clone().json();
  } catch {
    return response;
  }
  if (typeof body?.access_token !== 'string') return response;
  const now = Date.now();
  for (const [token, exp] of shortExpiry) if (exp + 600_000 < now) shortExpiry.delete(token);
  shortExpiry.set(body.access_token, now + ttl * 1000);
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  return new Response(JSON.stringify({ ...body, expires_in: ttl }), { status: 200, headers });
}
function expiredShortToken(request, origin) {
  const m = /^Bearer\s+(\S+)$/i.exec(request.headers.get('Authorization') ?? '');
  const exp = m && shortExpiry.get(m[1]);
  if (!exp || exp > Date.now()) return undefined;
  return new Response(JSON.stringify({ error: 'invalid_token', error_description: 'access token expired' }), {
    status: 401,
    headers: {
      'Content-Type': 'application/json', 'Cache-Control': 'no-store',
      'WWW-Authenticate': `Bearer realm="OAuth", error="invalid_token", error_description="access token expired", resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`,
    },
  });
}

// ---------------------------------------------------------------------------
// The provider, built on the first request (it needs the worker's origin and the TTL).
// ---------------------------------------------------------------------------
let provider;
function getProvider(env) {
  provider ||= new OAuthProvider({
    apiRoute: '/mcp',
    apiHandler: mcpHandler,
    defaultHandler,
    authorizeEndpoint: '/authorize',
    tokenEndpoint: '/token',
    clientRegistrationEndpoint: '/register',
    scopesSupported: [MCP_SCOPE, ADMIN_SCOPE],
    accessTokenTTL: Math.max(LIBRARY_MIN_TTL, Number(env.AT_TTL) || 3600),
    resourceMetadata: {
      resource: `${env.ORIGIN}/mcp`,
      authorization_servers: [env.ORIGIN],
      bearer_methods_supported: ['header'],
      resource_name: 'edge-oauth test MCP server (workers-oauth-provider)',
    },
    requiredScopes: [MCP_SCOPE], // PRM scopes_supported and the 401 challenge: mcp:tools only
    onError: () => {}, // the token endpoint's errors are counted below; no warnings in the log
  });
  return provider;
}

// CORS on the MCP endpoint and its metadata: the library reflects every Origin; this peer
// answers only the --cors-origin ones (like the other peers) and strips the rest.
function isMcpPath(path) {
  return path === '/mcp' || path.startsWith('/mcp/') || path.startsWith('/.well-known/oauth-protected-resource');
}
function applyMcpCors(request, response, allowed) {
  const out = new Response(response.body, response);
  for (const name of [...out.headers.keys()]) if (name.startsWith('access-control-')) out.headers.delete(name);
  const headers = contract.mcpCorsHeaders(request.headers.get('Origin'), allowed, false);
  if (headers) for (const [k, v] of Object.entries(headers)) out.headers.set(k, v);
  out.headers.set('Vary', 'Origin');
  return out;
}

async function errorCode(response) {
  if (response.status < 400) return undefined;
  try {
    const body = await response.clone().json();
    if (typeof body?.error === 'string') return body.error;
  } catch {
    // not JSON
  }
  return `http_${response.status}`;
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path === '/test/stats' && request.method === 'GET') return json(200, stats);
    if (path === '/test/stats/reset' && request.method === 'POST') {
      stats = contract.freshStats();
      return new Response(null, { status: 204 });
    }
    const allowed = new Set(String(env.CORS_ORIGINS || '').split(',').filter(Boolean));
    if (isMcpPath(path) && request.method === 'OPTIONS' && request.headers.get('Access-Control-Request-Method')) {
      const headers = contract.mcpCorsHeaders(request.headers.get('Origin'), allowed, true);
      return new Response(null, headers ? { status: 204, headers: { ...headers, Vary: 'Origin' } } : { status: 403, headers: { Vary: 'Origin' } });
    }

    // What the token endpoint is asked: a grant (by grant_type) or a revocation (token, no grant_type).
    let tokenKind;
    if (request.method === 'POST' && path === '/token') {
      try {
        const form = await request.clone().formData();
        const gt = form.get('grant_type');
        tokenKind = gt ? String(gt) : form.get('token') ? 'revocation' : 'unknown';
      } catch {
        tokenKind = 'unknown';
      }
    }
    const isMcp = path === '/mcp' || path.startsWith('/mcp/');
    if (isMcp) {
      stats.mcp.requests += 1;
      if (request.headers.get('Cookie')) stats.mcp.with_cookie += 1;
    }

    const ttl = Number(env.AT_TTL) || 3600;
    let response = (isMcp && ttl < LIBRARY_MIN_TTL && expiredShortToken(request, env.ORIGIN))
      || await getProvider(env).fetch(request, env, ctx);
    if (tokenKind && tokenKind !== 'revocation' && ttl < LIBRARY_MIN_TTL) response = await shortenTokenResponse(response, ttl);

    if (tokenKind) {
      const ok = response.status < 400;
      const error = await errorCode(response);
      if (tokenKind === 'revocation') contract.bump(stats.revocation, ok, error);
      else contract.countToken(stats, tokenKind, ok, error);
    } else if (request.method === 'POST' && path === '/register') {
      contract.bump(stats.registration, response.status < 400, await errorCode(response));
    } else if (path === '/authorize' && request.method === 'GET') {
      stats.authorization.requests += 1;
    } else if (isMcp) {
      if (response.status === 401) stats.mcp.unauthorized += 1;
      else if (response.status === 403) stats.mcp.forbidden += 1;
    }
    if (isMcpPath(path)) response = applyMcpCors(request, response, allowed);
    return response;
  },
};
