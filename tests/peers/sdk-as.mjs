#!/usr/bin/env node
// The MCP TypeScript SDK's own authorization server as a test peer: `mcpAuthRouter` (DCR,
// authorize, token, revocation, RFC 8414 metadata) over an in-memory OAuthServerProvider
// written here (opaque access tokens with a TTL, rotating refresh tokens with reuse
// detection, RFC 8707 resource checks, RFC 7009 revocation), and an MCP server (Streamable
// HTTP, stateless) protected by the SDK's `requireBearerAuth`, with RFC 9728 metadata from
// `mcpAuthMetadataRouter`. Same tools/scopes contract as mcp-stack.mjs (contract.mjs).
//
// Usage: node sdk-as.mjs [--as-port N] [--mcp-port M] [options]  (see --help)
// Prints exactly one JSON line on stdout once both servers listen, logs to stderr.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

const USAGE = `usage: node sdk-as.mjs [options]
  --as-port N              authorization server port (default 0 = ephemeral)
  --mcp-port M             MCP server port (default 0 = ephemeral)
  --access-token-ttl S     access token lifetime in seconds (default 3600)
  --cors-origin ORIGIN     answer CORS on the MCP server for this origin (repeatable or
                           comma-separated); the SDK's AS endpoints answer CORS to any origin
  --interactive            a login form and a consent page instead of auto-approving
  --quiet                  no per-request log lines on stderr
  -h, --help               this text`;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      'as-port': { type: 'string', default: '0' },
      'mcp-port': { type: 'string', default: '0' },
      'access-token-ttl': { type: 'string', default: '3600' },
      'cors-origin': { type: 'string', multiple: true, default: [] },
      interactive: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}\n`);
  process.exit(2);
}
if (args.help) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(0);
}
function intArg(name, min, max) {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v < min || v > max) {
    process.stderr.write(`--${name} must be an integer in [${min}, ${max}]\n`);
    process.exit(2);
  }
  return v;
}
const AS_PORT_REQ = intArg('as-port', 0, 65535);
const MCP_PORT_REQ = intArg('mcp-port', 0, 65535);
const AT_TTL = intArg('access-token-ttl', 1, 10 * 365 * 24 * 3600);

const contract = await import('./contract.mjs');
let CORS_ORIGINS;
try {
  CORS_ORIGINS = contract.parseCorsOrigins(args['cors-origin']);
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}

// stdout carries the ready line only.
console.log = console.error;
console.info = console.error;
const log = (...a) => console.error('[sdk-as]', ...a);
const reqLog = (...a) => { if (!args.quiet) log(...a); };

const { default: express } = await import('express');
const { mcpAuthRouter, mcpAuthMetadataRouter, createOAuthMetadata } = await import('@modelcontextprotocol/sdk/server/auth/router.js');
const { requireBearerAuth } = await import('@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js');
const authErrors = await import('@modelcontextprotocol/sdk/server/auth/errors.js');
const { McpServer } = await import('@modelcontextprotocol/sdk/server/mcp.js');
const { StreamableHTTPServerTransport } = await import('@modelcontextprotocol/sdk/server/streamableHttp.js');
const { createMcpExpressApp } = await import('@modelcontextprotocol/sdk/server/express.js');

const HOST = '127.0.0.1';
const ACCOUNT = 'test-user';
const { MCP_SCOPE, ADMIN_SCOPE } = contract;
const SUPPORTED_SCOPES = [MCP_SCOPE, ADMIN_SCOPE];
const CODE_TTL = 60;
const RT_TTL = 14 * 24 * 3600;

let asHandler = (_req, res) => { res.statusCode = 503; res.end(); };
let mcpHandler = (_req, res) => { res.statusCode = 503; res.end(); };
const asServer = http.createServer((req, res) => asHandler(req, res));
const mcpServer = http.createServer((req, res) => mcpHandler(req, res));
function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}
let asPort;
let mcpPort;
try {
  asPort = await listen(asServer, AS_PORT_REQ);
  mcpPort = await listen(mcpServer, MCP_PORT_REQ);
} catch (err) {
  log(`cannot listen: ${err.message}`);
  process.exit(1);
}
const ISSUER_URL = new URL(`http://${HOST}:${asPort}`); // the SDK's metadata says href: ".../"
const MCP_ORIGIN = `http://${HOST}:${mcpPort}`;
const MCP_URL = `${MCP_ORIGIN}/mcp`;
const PRM_URL = `${MCP_ORIGIN}/.well-known/oauth-protected-resource/mcp`;

let stats = contract.freshStats();

// ---------------------------------------------------------------------------
// The in-memory provider.
// ---------------------------------------------------------------------------
const random = () => crypto.randomBytes(32).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

const clients = new Map(); // client_id -> client information
const pending = new Map(); // interactive request id -> { client, params, expires, sub? }
const codes = new Map(); // code -> { clientId, challenge, redirectUri, scopes, resource, sub, expires, used, grantId? }
const grants = new Map(); // grant id -> { clientId, sub, scopes, resource, revoked }
const accessTokens = new Map(); // token -> { grantId, clientId, sub, scopes, resource, expiresAt }
const refreshTokens = new Map(); // token -> { grantId, clientId, expiresAt, used }

// resource (RFC 8707): the only resource is the MCP URL; absent means that one.
function checkResource(resource) {
  if (resource === undefined) return MCP_URL;
  if (resource.href !== MCP_URL) throw new authErrors.InvalidTargetError(`unknown resource ${resource.href}`);
  return MCP_URL;
}

function revokeGrant(grantId) {
  const grant = grants.get(grantId);
  if (grant) grant.revoked = true;
  for (const [token, at] of accessTokens) if (at.grantId === grantId) accessTokens.delete(token);
  for (const [token, rt] of refreshTokens) if (rt.grantId === grantId) refreshTokens.delete(token);
}

function issueTokens(grantId, client, scopes) {
  const grant = grants.get(grantId);
  const accessToken = random();
  accessTokens.set(accessToken, {
    grantId, clientId: client.client_id, sub: grant.sub, scopes, resource: grant.resource, expiresAt: now() + AT_TTL,
  });
  const tokens = { access_token: accessToken, token_type: 'Bearer', expires_in: AT_TTL, scope: scopes.join(' ') };
  // Refresh tokens for clients that registered the grant type (or registered none at all).
  const grantTypes = client.grant_types ?? ['authorization_code', 'refresh_token'];
  if (grantTypes.includes('refresh_token')) {
    const refreshToken = random();
    refreshTokens.set(refreshToken, { grantId, clientId: client.client_id, expiresAt: now() + RT_TTL, used: false });
    tokens.refresh_token = refreshToken;
  }
  return tokens;
}

function issueCode(client, params, sub) {
  const code = random();
  codes.set(code, {
    clientId: client.client_id,
    challenge: params.codeChallenge,
    redirectUri: params.redirectUri,
    scopes: params.scopes,
    resource: params.resourceHref,
    sub,
    expires: now() + CODE_TTL,
    used: false,
  });
  const target = new URL(params.redirectUri);
  target.searchParams.set('code', code);
  if (params.state !== undefined) target.searchParams.set('state', params.state);
  return target.href;
}

function errorRedirect(params, error, description) {
  const target = new URL(params.redirectUri);
  target.searchParams.set('error', error);
  target.searchParams.set('error_description', description);
  if (params.state !== undefined) target.searchParams.set('state', params.state);
  return target.href;
}

const provider = {
  clientsStore: {
    getClient: (clientId) => clients.get(clientId),
    registerClient: (client) => {
      clients.set(client.client_id, client);
      return client;
    },
  },

  async authorize(client, params, res) {
    const resourceHref = checkResource(params.resource);
    let scopes = (params.scopes ?? []).filter(Boolean);
    if (!scopes.length) scopes = [MCP_SCOPE];
    const unknown = scopes.filter((s) => !SUPPORTED_SCOPES.includes(s));
    if (unknown.length) throw new authErrors.InvalidScopeError(`unsupported scope ${unknown.join(' ')}`);
    const request = { ...params, scopes, resourceHref };
    const loginHint = typeof res.req.query?.login_hint === 'string' ? res.req.query.login_hint : undefined;
    res.setHeader('Cache-Control', 'no-store');
    if (loginHint === 'deny') {
      stats.interactions.denied += 1;
      res.redirect(302, errorRedirect(request, 'access_denied', 'End-User denied the request (login_hint=deny)'));
      return;
    }
    if (!args.interactive) {
      stats.interactions.login += 1;
      stats.interactions.consent += 1;
      res.redirect(302, issueCode(client, request, loginHint && contract.LOGIN_PATTERN.test(loginHint) ? loginHint : ACCOUNT));
      return;
    }
    const id = random();
    pending.set(id, { client, request, expires: now() + 600 });
    res.type('html').send(contract.loginPage({
      action: '/interaction/login', issuer: ISSUER_URL.href, clientName: client.client_name || client.client_id,
      loginHint, hidden: { request: id },
    }));
  },

  async challengeForAuthorizationCode(client, code) {
    const entry = codes.get(code);
    if (!entry || entry.clientId !== client.client_id) throw new authErrors.InvalidGrantError('unknown authorization code');
    return entry.challenge;
  },

  async exchangeAuthorizationCode(client, code, _verifier, redirectUri, resource) {
    const entry = codes.get(code);
    if (!entry || entry.clientId !== client.client_id) throw new authErrors.InvalidGrantError('unknown authorization code');
    if (entry.used) {
      // A code presented twice: what it issued dies too (RFC 6749 §4.1.2).
      if (entry.grantId) revokeGrant(entry.grantId);
      throw new authErrors.InvalidGrantError('authorization code already used');
    }
    entry.used = true;
    if (entry.expires < now()) throw new authErrors.InvalidGrantError('authorization code expired');
    if (redirectUri !== undefined && redirectUri !== entry.redirectUri) throw new authErrors.InvalidGrantError('redirect_uri does not match');
    if (resource !== undefined && checkResource(resource) !== entry.resource) throw new authErrors.InvalidTargetError('resource does not match the authorization request');
    const grantId = random();
    grants.set(grantId, { clientId: client.client_id, sub: entry.sub, scopes: entry.scopes, resource: entry.resource, revoked: false });
    entry.grantId = grantId;
    return issueTokens(grantId, client, entry.scopes);
  },

  async exchangeRefreshToken(client, refreshToken, scopes, resource) {
    const entry = refreshTokens.get(refreshToken);
    if (!entry || entry.clientId !== client.client_id) throw new authErrors.InvalidGrantError('unknown refresh token');
    const grant = grants.get(entry.grantId);
    if (entry.used) {
      // Reuse of a rotated-out refresh token: revoke the whole grant.
      revokeGrant(entry.grantId);
      throw new authErrors.InvalidGrantError('refresh token already used; grant revoked');
    }
    if (!grant || grant.revoked || entry.expiresAt < now()) throw new authErrors.InvalidGrantError('refresh token expired or revoked');
    if (resource !== undefined && checkResource(resource) !== grant.resource) throw new authErrors.InvalidTargetError('resource does not match the grant');
    const narrowed = scopes?.filter(Boolean);
    if (narrowed?.length && !narrowed.every((s) => grant.scopes.includes(s))) throw new authErrors.InvalidScopeError('scope exceeds the grant');
    entry.used = true;
    return issueTokens(entry.grantId, client, narrowed?.length ? narrowed : grant.scopes);
  },

  async verifyAccessToken(token) {
    const entry = accessTokens.get(token);
    if (!entry) throw new authErrors.InvalidTokenError('unknown or revoked access token');
    if (entry.expiresAt < now()) throw new authErrors.InvalidTokenError('access token expired');
    return {
      token, clientId: entry.clientId, scopes: entry.scopes, expiresAt: entry.expiresAt,
      resource: new URL(entry.resource), extra: { sub: entry.sub },
    };
  },

  async revokeToken(client, { token }) {
    const at = accessTokens.get(token);
    if (at && at.clientId === client.client_id) {
      accessTokens.delete(token);
      return;
    }
    const rt = refreshTokens.get(token);
    if (rt && rt.clientId === client.client_id) revokeGrant(rt.grantId); // RFC 7009 §2.1
  },
};

// ---------------------------------------------------------------------------
// Authorization server app.
// ---------------------------------------------------------------------------
const asApp = express();
asApp.disable('x-powered-by');

// Stats: the outcome of each AS request (the SDK handlers answer with res.json; their body
// parsers leave req.body on the request for the finish handler).
asApp.use((req, res, next) => {
  const reqPath = req.path; // the SDK's nested routers rewrite req.url
  const json = res.json.bind(res);
  res.json = (body) => { res.locals.body = body; return json(body); };
  res.on('finish', () => {
    const ok = res.statusCode < 400;
    const error = ok ? undefined : res.locals.body?.error || `http_${res.statusCode}`;
    let extra = '';
    if (req.method === 'POST' && reqPath === '/token') {
      const gt = typeof req.body?.grant_type === 'string' ? req.body.grant_type : 'unknown';
      contract.countToken(stats, gt, ok, error);
      extra = ` grant_type=${gt}`;
    } else if (req.method === 'POST' && reqPath === '/revoke') {
      contract.bump(stats.revocation, ok, error);
    } else if (req.method === 'POST' && reqPath === '/register') {
      contract.bump(stats.registration, ok, error);
    } else if (reqPath === '/authorize') {
      stats.authorization.requests += 1;
    }
    reqLog(`AS ${req.method} ${reqPath} ${res.statusCode}${extra}${error ? ` error=${error}` : ''}`);
  });
  next();
});

asApp.get('/test/stats', (_req, res) => {
  res.set('Cache-Control', 'no-store');
  // Grants too (one per code exchange here): how many were issued and how many still live.
  const all = [...grants.values()];
  res.json({ ...stats, grants: { issued: all.length, live: all.filter((g) => !g.revoked).length } });
});
asApp.post('/test/stats/reset', (_req, res) => {
  stats = contract.freshStats();
  res.status(204).end();
});

// --interactive: the login form posts here, then the consent page.
asApp.post('/interaction/:step', express.urlencoded({ extended: false }), (req, res) => {
  res.set('Cache-Control', 'no-store');
  const id = typeof req.body?.request === 'string' ? req.body.request : '';
  const entry = pending.get(id);
  if (!args.interactive || !entry || entry.expires < now()) {
    res.status(400).json({ error: 'invalid_request', error_description: 'unknown or expired authorization request' });
    return;
  }
  const { client, request } = entry;
  if (req.params.step === 'login' && !entry.sub) {
    const login = String(req.body.login ?? '').trim();
    if (!contract.LOGIN_PATTERN.test(login)) {
      res.status(400).type('html').send(contract.loginPage({ action: '/interaction/login', issuer: ISSUER_URL.href, hidden: { request: id }, error: contract.LOGIN_RULE }));
      return;
    }
    entry.sub = login;
    stats.interactions.login += 1;
    res.type('html').send(contract.consentPage({
      action: '/interaction/confirm', clientName: client.client_name, clientId: client.client_id,
      scopes: request.scopes, user: login, resource: request.resourceHref, hidden: { request: id },
    }));
    return;
  }
  if (req.params.step === 'confirm' && entry.sub) {
    pending.delete(id);
    if (req.body.decision === 'allow') {
      stats.interactions.consent += 1;
      res.redirect(303, issueCode(client, request, entry.sub));
    } else {
      stats.interactions.denied += 1;
      res.redirect(303, errorRedirect(request, 'access_denied', 'End-User denied the request'));
    }
    return;
  }
  res.status(400).json({ error: 'invalid_request', error_description: 'unexpected interaction step' });
});

const noRateLimit = { rateLimit: false };
asApp.use(mcpAuthRouter({
  provider,
  issuerUrl: ISSUER_URL,
  scopesSupported: SUPPORTED_SCOPES,
  resourceServerUrl: new URL(MCP_URL),
  resourceName: 'edge-oauth test MCP server (SDK AS)',
  authorizationOptions: noRateLimit,
  tokenOptions: noRateLimit,
  clientRegistrationOptions: noRateLimit,
  revocationOptions: noRateLimit,
}));
asApp.use((_req, res) => res.status(404).json({ error: 'not_found' }));
// eslint-disable-next-line no-unused-vars
asApp.use((err, _req, res, _next) => {
  log('AS error:', err?.message || err);
  if (!res.headersSent) res.status(err.status || 500).json({ error: err.status === 400 ? 'invalid_request' : 'server_error' });
});
asHandler = asApp;

// ---------------------------------------------------------------------------
// MCP resource server.
// ---------------------------------------------------------------------------
const oauthMetadata = createOAuthMetadata({ provider, issuerUrl: ISSUER_URL, scopesSupported: SUPPORTED_SCOPES });
const app = createMcpExpressApp({ host: HOST });
app.use((req, res, next) => {
  if (req.path !== '/mcp') return next();
  stats.mcp.requests += 1;
  if (req.headers.cookie) stats.mcp.with_cookie += 1;
  res.on('finish', () => {
    if (res.statusCode === 401) stats.mcp.unauthorized += 1;
    else if (res.statusCode === 403) stats.mcp.forbidden += 1;
  });
  return next();
});
// PRM (RFC 9728) advertises mcp:tools only, so a first login does not get mcp:admin.
app.use(mcpAuthMetadataRouter({
  oauthMetadata,
  resourceServerUrl: new URL(MCP_URL),
  scopesSupported: [MCP_SCOPE],
  resourceName: 'edge-oauth test MCP server (SDK AS)',
}));
const bearer = requireBearerAuth({
  verifier: provider,
  requiredScopes: [MCP_SCOPE],
  resourceMetadataUrl: PRM_URL,
  expectedResource: new URL(MCP_URL),
});

function buildMcpServer() {
  const server = new McpServer({ name: 'edge-oauth-test-mcp-sdk-as', version: '1.0.0' });
  contract.registerTools(server, {
    count: (name) => { stats.mcp.tool_calls[name] = (stats.mcp.tool_calls[name] || 0) + 1; },
    auth: (extra) => ({ sub: extra.authInfo?.extra?.sub, client_id: extra.authInfo?.clientId, scopes: extra.authInfo?.scopes }),
  });
  return server;
}

app.post('/mcp', bearer, async (req, res) => {
  if (contract.callsAdminTool(req.body) && !req.auth.scopes.includes(ADMIN_SCOPE)) {
    res.set('WWW-Authenticate', contract.adminChallenge(PRM_URL));
    res.status(403).json(contract.ADMIN_FORBIDDEN_BODY);
    return;
  }
  const server = buildMcpServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on('close', () => {
    transport.close().catch(() => {});
    server.close().catch(() => {});
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  } catch (err) {
    log('mcp error:', err?.message || err);
    if (!res.headersSent) res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
  }
});
app.all('/mcp', bearer, (_req, res) => {
  res.set('Allow', 'POST');
  res.status(405).json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
});
app.use((_req, res) => res.status(404).json({ error: 'not_found' }));
// eslint-disable-next-line no-unused-vars
app.use((err, _req, res, _next) => {
  log('mcp app error:', err?.message || err);
  if (!res.headersSent) res.status(err.status || 500).json({ error: 'server_error' });
});

mcpHandler = (req, res) => {
  res.on('finish', () => reqLog(`MCP ${req.method} ${req.url.split('?')[0]} ${res.statusCode}`));
  if (CORS_ORIGINS.size) {
    res.setHeader('Vary', 'Origin');
    const preflight = req.method === 'OPTIONS' && Boolean(req.headers['access-control-request-method']);
    const headers = contract.mcpCorsHeaders(req.headers.origin, CORS_ORIGINS, preflight);
    if (headers) {
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
      if (preflight) {
        res.statusCode = 204;
        res.end();
        return;
      }
    }
  }
  app(req, res);
};

// ---------------------------------------------------------------------------
// Ready line + shutdown.
// ---------------------------------------------------------------------------
process.stdout.write(`${JSON.stringify({ issuer: oauthMetadata.issuer, mcp: MCP_URL, as_port: asPort, mcp_port: mcpPort })}\n`);
log(`authorization server ${oauthMetadata.issuer}, MCP server ${MCP_URL}`);

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal} received, shutting down`);
  for (const s of [asServer, mcpServer]) {
    s.close();
    s.closeAllConnections?.();
  }
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
