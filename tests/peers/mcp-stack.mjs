#!/usr/bin/env node
// A self-contained local "MCP deployment" for edge-oauth end-to-end tests:
//   * an OAuth 2.1 / OpenID authorization server (oidc-provider 9) with DCR,
//     PKCE (S256 only), RFC 9207 iss, RFC 8707 resource indicators (JWT access
//     tokens for the MCP resource), refresh-token rotation, revocation,
//     introspection, device flow (RFC 8628) and an auto-approving interaction;
//   * an MCP server (Streamable HTTP, stateless) protected by bearer auth,
//     serving RFC 9728 protected resource metadata;
//   * optionally DPoP (RFC 9449) at both, with nonces, and pre-registered machine
//     clients for the client credentials grant (client_secret_basic, private_key_jwt).
//
// Usage: node mcp-stack.mjs [--as-port N] [--mcp-port M] [options]  (see --help)
// Prints exactly one JSON line on stdout once both servers listen, logs to stderr.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

// ---------------------------------------------------------------------------
// stdout is reserved for the single JSON "ready" line. oidc-provider prints
// NOTICEs with console.info (stdout) and WARNINGs with console.warn; route all
// console output to stderr and drop oidc-provider's dev-mode chatter unless
// --verbose is given. This must happen before oidc-provider is imported, hence
// the dynamic imports below.
// ---------------------------------------------------------------------------
const USAGE = `usage: node mcp-stack.mjs [options]
  --as-port N              authorization server port (default 0 = ephemeral)
  --mcp-port M             MCP server port (default 0 = ephemeral)
  --access-token-ttl S     access token lifetime in seconds (default 3600)
  --refresh-token-ttl S    refresh token lifetime in seconds (default 1209600)
  --device-interval S      add "interval": S to device authorization responses and answer
                           slow_down to device_code polls less than S seconds apart
                           (default: no interval field, no slow_down, like oidc-provider)
  --mcp-json               MCP server answers POSTs with application/json instead of SSE
  --challenge-scope        also put scope="mcp:tools" in the 401 WWW-Authenticate challenge
  --dcr-confidential       register every client as confidential (client_secret_basic, with a
                           secret) whatever the registration request asked for
  --cors-origin ORIGIN     answer CORS for this browser origin (repeatable or comma-separated):
                           every MCP server route, and the AS's /reg (registration); without it
                           the MCP server and /reg send no CORS headers
  --rotate-revokes-access  a successful refresh_token grant makes the MCP server reject the
                           access tokens that grant issued before it
  --dpop                   DPoP (RFC 9449): the AS advertises and binds (ES256), the MCP server
                           takes bound tokens only with the DPoP scheme and a valid proof
  --dpop-nonce             --dpop, and both servers require a nonce (RFC 9449 §8, §9)
  --machine-clients        the client credentials grant, with two pre-registered clients:
                           machine-basic (client_secret_basic) and machine-jwt (private_key_jwt,
                           ES256); the ready line carries the secret and the private key (PEM)
  --interactive            a real login form (any user name) and a consent page (Allow/Deny)
                           instead of the auto-approving interaction
  --progress-delay-ms MS   the echo tool sends two notifications/progress, MS apart, before its
                           result when the call carries _meta.progressToken (default 0: none)
  --quiet                  no per-request log lines on stderr
  --verbose                keep oidc-provider's development notices/warnings
  -h, --help               this text`;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      'as-port': { type: 'string', default: '0' },
      'mcp-port': { type: 'string', default: '0' },
      'access-token-ttl': { type: 'string', default: '3600' },
      'refresh-token-ttl': { type: 'string', default: String(14 * 24 * 3600) },
      'device-interval': { type: 'string', default: '0' },
      'mcp-json': { type: 'boolean', default: false },
      'challenge-scope': { type: 'boolean', default: false },
      'dcr-confidential': { type: 'boolean', default: false },
      'cors-origin': { type: 'string', multiple: true, default: [] },
      'rotate-revokes-access': { type: 'boolean', default: false },
      dpop: { type: 'boolean', default: false },
      'dpop-nonce': { type: 'boolean', default: false },
      'machine-clients': { type: 'boolean', default: false },
      'progress-delay-ms': { type: 'string', default: '0' },
      interactive: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
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
const RT_TTL = intArg('refresh-token-ttl', 1, 10 * 365 * 24 * 3600);
const DEVICE_INTERVAL = intArg('device-interval', 0, 3600);
const PROGRESS_DELAY_MS = intArg('progress-delay-ms', 0, 60000);

// --cors-origin: exact origins (scheme://host[:port]) allowed to call from a browser.
const CORS_ORIGINS = new Set();
for (const value of args['cors-origin']) {
  for (const raw of value.split(',').map((v) => v.trim()).filter(Boolean)) {
    let origin;
    try {
      origin = new URL(raw).origin;
    } catch {
      origin = undefined;
    }
    if (!origin || origin === 'null' || origin !== raw.replace(/\/$/, '')) {
      process.stderr.write(`--cors-origin: not an origin (scheme://host[:port]): ${raw}\n`);
      process.exit(2);
    }
    CORS_ORIGINS.add(origin);
  }
}

{
  const toStderr = (...a) => {
    if (!args.verbose && typeof a[0] === 'string' && a[0].startsWith('oidc-provider ')) return;
    console.error(...a);
  };
  console.log = toStderr;
  console.info = toStderr;
  console.warn = toStderr;
  console.debug = toStderr;
}

const log = (...a) => console.error('[mcp-stack]', ...a);
const reqLog = (...a) => { if (!args.quiet) log(...a); };

const { default: Provider, errors: oidcErrors } = await import('oidc-provider');
const jose = await import('jose');
const { McpServer } = await import('@modelcontextprotocol/sdk/server/mcp.js');
const { StreamableHTTPServerTransport } = await import('@modelcontextprotocol/sdk/server/streamableHttp.js');
const { createMcpExpressApp } = await import('@modelcontextprotocol/sdk/server/express.js');
const contract = await import('./contract.mjs');

const HOST = '127.0.0.1';
const ACCOUNT = 'test-user';
const { MCP_SCOPE, ADMIN_SCOPE } = contract;
const RS_SCOPES = [MCP_SCOPE, ADMIN_SCOPE];
const OIDC_SCOPES = ['openid', 'offline_access'];
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// ---------------------------------------------------------------------------
// Listen first (ports may be ephemeral), configure afterwards: the AS needs the
// MCP URL (resource) and the MCP server needs the issuer.
// ---------------------------------------------------------------------------
let asHandler = (req, res) => { res.statusCode = 503; res.end(); };
let mcpHandler = (req, res) => { res.statusCode = 503; res.end(); };
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

const ISSUER = `http://${HOST}:${asPort}`;
const MCP_ORIGIN = `http://${HOST}:${mcpPort}`;
const MCP_URL = `${MCP_ORIGIN}/mcp`;
const PRM_PATH = '/.well-known/oauth-protected-resource/mcp';
const PRM_URL = `${MCP_ORIGIN}${PRM_PATH}`;

// ---------------------------------------------------------------------------
// Signing keys: RS256 (ID tokens, the default) and ES256 (JWT access tokens).
// ---------------------------------------------------------------------------
async function genJwk(alg) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  jwk.alg = alg;
  jwk.use = 'sig';
  jwk.kid = await jose.calculateJwkThumbprint(jwk);
  return jwk;
}
const privateJwks = { keys: [await genJwk('RS256'), await genJwk('ES256')] };

const DPOP = args.dpop || args['dpop-nonce'];
const DPOP_NONCE = args['dpop-nonce'];

// --machine-clients: pre-registered clients for the client credentials grant.
const MACHINE_SECRET = crypto.randomBytes(24).toString('base64url');
let machineKeyPem;
const machineClients = [];
if (args['machine-clients']) {
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  machineKeyPem = await jose.exportPKCS8(privateKey);
  const common = { grant_types: ['client_credentials'], redirect_uris: [], response_types: [] };
  machineClients.push(
    { ...common, client_id: 'machine-basic', client_secret: MACHINE_SECRET, token_endpoint_auth_method: 'client_secret_basic' },
    {
      ...common,
      client_id: 'machine-jwt',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [{ ...(await jose.exportJWK(publicKey)), alg: 'ES256', use: 'sig' }] },
    },
  );
}
const publicJwks = {
  keys: privateJwks.keys.map(({ d, p, q, dp, dq, qi, ...pub }) => pub),
};
const localJwks = jose.createLocalJWKSet(publicJwks);

// ---------------------------------------------------------------------------
// Stats (GET /test/stats on the AS; POST /test/stats/reset zeroes them).
// ---------------------------------------------------------------------------
function freshStats() {
  return {
    token: { total: 0, by_grant_type: {} },
    authorization: { requests: 0 },
    registration: { requests: 0, ok: 0, errors: {} },
    client_auth: {},
    revocation: { requests: 0, ok: 0, errors: {} },
    introspection: { requests: 0, ok: 0, errors: {} },
    device_authorization: { requests: 0, ok: 0, errors: {} },
    device_approvals: 0,
    interactions: { login: 0, consent: 0, denied: 0 },
    mcp: { requests: 0, unauthorized: 0, forbidden: 0, with_cookie: 0, tool_calls: {}, schemes: {}, dpop_rejected: {} },
  };
}
let stats = freshStats();
function bump(bucket, ok, error) {
  bucket.requests += 1;
  if (ok) bucket.ok += 1;
  else if (error) bucket.errors[error] = (bucket.errors[error] || 0) + 1;
}

// ---------------------------------------------------------------------------
// Authorization server.
// ---------------------------------------------------------------------------
const MINIMAL_PAGE = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>`;

const configuration = {
  jwks: privateJwks,
  clients: machineClients,
  clientDefaults: {
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: 'RS256',
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
  responseTypes: ['code'],
  scopes: [...OIDC_SCOPES, ...RS_SCOPES],
  claims: { openid: ['sub'] },
  // OAuth 2.1: the redirect_uri must always be sent on the authorization request.
  allowOmittingSingleRegisteredRedirectUri: false,
  // CORS is irrelevant here; allowing every Origin also means a stray Origin
  // header on /token is not rejected (the oidc-provider default rejects Origins
  // that do not match a public client's redirect_uris).
  clientBasedCORS: () => true,
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url')],
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
  },
  pkce: { required: () => true }, // oidc-provider 9 only implements S256
  features: {
    devInteractions: { enabled: false },
    dPoP: DPOP
      ? { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => DPOP_NONCE }
      : { enabled: false },
    clientCredentials: { enabled: args['machine-clients'] },
    registration: {
      enabled: true,
      initialAccessToken: false,
      issueRegistrationAccessToken: true,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => {
        if (oneOf) return oneOf.includes(MCP_URL) ? MCP_URL : oneOf[0];
        return MCP_URL;
      },
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator === MCP_URL) {
          return {
            scope: RS_SCOPES.join(' '),
            audience: MCP_URL,
            accessTokenFormat: 'jwt',
            accessTokenTTL: AT_TTL,
            jwt: { sign: { alg: 'ES256' } },
          };
        }
        throw new oidcErrors.InvalidTarget();
      },
    },
    revocation: {
      enabled: true,
      allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
    },
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => !(client.clientAuthMethod === 'none' && token.clientId !== ctx.oidc.client.clientId),
    },
    deviceFlow: {
      enabled: true,
      charset: 'base-20',
      mask: '****-****',
      userCodeInputSource: async (ctx, form, _out, err) => {
        ctx.body = MINIMAL_PAGE('Sign-in', `${err ? '<p>error: the code is invalid, expired or already used</p>' : '<p>Enter the code displayed on your device</p>'}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
      },
      userCodeConfirmSource: async (ctx, form, _client, _deviceInfo, userCode) => {
        ctx.body = MINIMAL_PAGE('Confirm Device', `<p>Code: <code>${contract.escapeHtml(userCode)}</code></p>${form}<button type="submit" form="op.deviceConfirmForm">Continue</button>`);
      },
      successSource: async (ctx) => {
        ctx.body = MINIMAL_PAGE('Sign-in Success', '<p>device-flow-approved</p>');
      },
    },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = MINIMAL_PAGE('Logout', `${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`);
      },
      postLogoutSuccessSource: async (ctx) => { ctx.body = MINIMAL_PAGE('Signed out', ''); },
    },
  },
  // Refresh tokens whenever the client registered the refresh_token grant (no
  // offline_access / prompt=consent dance needed), rotated on every use.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  expiresWithSession: async () => false,
  extraTokenClaims: async (_ctx, token) => (token.kind === 'AccessToken' && token.grantId ? { gid: token.grantId } : undefined),
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  renderError: async (ctx, out) => {
    ctx.type = 'application/json';
    ctx.body = out;
  },
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || AT_TTL,
    AuthorizationCode: 60,
    ClientCredentials: 600,
    DeviceCode: 600,
    Grant: 14 * 24 * 3600,
    IdToken: 3600,
    Interaction: 3600,
    RefreshToken: RT_TTL,
    Session: 14 * 24 * 3600,
  },
};

const provider = new Provider(ISSUER, configuration);
provider.on('server_error', (_ctx, err) => log('server_error:', err?.stack || err));

const ROUTES = {
  token: '/token',
  auth: '/auth',
  reg: '/reg',
  revocation: '/token/revocation',
  introspection: '/token/introspection',
  deviceAuth: '/device/auth',
};

function readForm(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 16 * 1024) { reject(new Error('body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

// The interaction. Auto-approving by default: login as `test-user` (or login_hint, if
// given), consent to everything requested. login_hint=deny ends with access_denied.
// --interactive: GET shows a login form (any user name) or a consent page listing the client
// and the requested scopes; their POSTs (/interaction/<uid>/login, /interaction/<uid>/confirm)
// finish the prompt.
async function consentResult(details) {
  const { prompt, params, session } = details;
  stats.interactions.consent += 1;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const d = prompt.details || {};
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  if (d.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  return { consent: { grantId: await grant.save() } };
}
function deniedResult(description) {
  stats.interactions.denied += 1;
  return { error: 'access_denied', error_description: description };
}
async function finishInteraction(ctx, result) {
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
  ctx.status = 303;
  ctx.set('Location', returnTo);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = '';
}
async function autoInteraction(ctx) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params } = details;
  let result;
  if (params.login_hint === 'deny') {
    result = deniedResult('End-User denied the request (login_hint=deny)');
  } else if (prompt.name === 'login') {
    stats.interactions.login += 1;
    result = { login: { accountId: params.login_hint || ACCOUNT } };
  } else if (prompt.name === 'consent') {
    result = await consentResult(details);
  } else {
    result = { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` };
  }
  await finishInteraction(ctx, result);
}
async function interactivePage(ctx) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, uid, session } = details;
  const client = await provider.Client.find(String(params.client_id));
  ctx.type = 'text/html; charset=utf-8';
  ctx.set('Cache-Control', 'no-store');
  if (prompt.name === 'login') {
    ctx.body = contract.loginPage({
      action: `/interaction/${encodeURIComponent(uid)}/login`,
      issuer: ISSUER,
      clientName: client?.clientName || params.client_id,
      loginHint: params.login_hint,
    });
  } else if (prompt.name === 'consent') {
    ctx.body = contract.consentPage({
      action: `/interaction/${encodeURIComponent(uid)}/confirm`,
      clientName: client?.clientName,
      clientId: params.client_id,
      scopes: String(params.scope || '').split(' ').filter(Boolean),
      user: session?.accountId,
      resource: params.resource,
    });
  } else {
    await finishInteraction(ctx, { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` });
  }
}
async function interactiveSubmit(ctx, action) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const form = await readForm(ctx.req);
  let result;
  if (action === 'login' && details.prompt.name === 'login') {
    const login = String(form.get('login') || '').trim();
    if (!contract.LOGIN_PATTERN.test(login)) {
      ctx.status = 400;
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = contract.loginPage({ action: ctx.path, issuer: ISSUER, loginHint: '', error: contract.LOGIN_RULE });
      return;
    }
    stats.interactions.login += 1;
    result = { login: { accountId: login } };
  } else if (action === 'confirm' && details.prompt.name === 'consent') {
    result = form.get('decision') === 'allow' ? await consentResult(details) : deniedResult('End-User denied the request');
  } else {
    result = { error: 'access_denied', error_description: `unexpected ${action} for prompt ${details.prompt.name}` };
  }
  await finishInteraction(ctx, result);
}

// Scripted device approval: POST /test/device/approve  user_code=XXXX-XXXX
// [&deny=1] [&account=sub]. Does what the browser path (verification page ->
// confirm -> login -> consent) ends up doing, in one request.
async function approveDevice(ctx) {
  const form = await readForm(ctx.req);
  const userCode = form.get('user_code');
  const json = (status, body) => { ctx.status = status; ctx.type = 'application/json'; ctx.body = body; };
  if (!userCode) return json(400, { error: 'invalid_request', error_description: 'user_code is required' });
  const normalized = userCode.replace(/[a-z]/g, (c) => c.toUpperCase()).replace(/\W/g, '');
  const code = await provider.DeviceCode.findByUserCode(normalized, { ignoreExpiration: true });
  if (!code) return json(404, { error: 'not_found', error_description: 'no such user_code' });
  if (code.isExpired) return json(400, { error: 'expired_token', error_description: 'user_code expired' });
  if (code.error || code.accountId || code.inFlight) return json(409, { error: 'already_used', error_description: 'user_code already used' });

  if (form.get('deny')) {
    Object.assign(code, { error: 'access_denied', errorDescription: 'End-User denied the request' });
    await code.save();
    stats.interactions.denied += 1;
    return json(200, { status: 'denied' });
  }

  const accountId = form.get('account') || ACCOUNT;
  const requested = new Set(String(code.params.scope || '').split(' ').filter(Boolean));
  let resource = code.params.resource;
  if (Array.isArray(resource)) resource = resource.includes(MCP_URL) ? MCP_URL : resource[0];
  if (!resource) resource = MCP_URL;

  const grant = new provider.Grant({ accountId, clientId: code.clientId });
  const oidcScopes = [...requested].filter((s) => OIDC_SCOPES.includes(s) || RS_SCOPES.includes(s));
  const rsScopes = [...requested].filter((s) => RS_SCOPES.includes(s));
  if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
  if (requested.has('openid')) grant.addOIDCClaims(['sub']);
  grant.addResourceScope(resource, rsScopes.join(' '));
  const grantId = await grant.save();

  Object.assign(code, {
    accountId,
    authTime: Math.floor(Date.now() / 1000),
    grantId,
    scope: [...new Set([...oidcScopes, ...rsScopes])].join(' ') || undefined,
    resource,
  });
  await code.save();
  stats.device_approvals += 1;
  return json(200, { status: 'approved', account: accountId });
}

const lastDevicePoll = new Map(); // device_code -> time of last pending poll (--device-interval)

// --rotate-revokes-access: the access tokens (by jti) each grant has issued since its last
// refresh, and those a later refresh superseded (the MCP server rejects these).
const grantAccessTokens = new Map(); // gid -> Set(jti)
const supersededAccessTokens = new Set(); // jti
function jwtPayload(token) {
  try {
    return JSON.parse(Buffer.from(String(token).split('.')[1], 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}
function trackAccessToken(grantType, accessToken) {
  const payload = jwtPayload(accessToken);
  if (!payload?.gid || !payload.jti) return;
  const issued = grantAccessTokens.get(payload.gid) || new Set();
  if (grantType === 'refresh_token') {
    for (const jti of issued) supersededAccessTokens.add(jti);
    issued.clear();
  }
  issued.add(payload.jti);
  grantAccessTokens.set(payload.gid, issued);
}

// CORS for registration (--cors-origin); oidc-provider itself answers CORS on discovery,
// JWKS, token, revocation, introspection and device authorization, but not on /reg.
// Answers the preflight itself; returns true when it did.
function regCors(ctx) {
  ctx.vary('Origin');
  const origin = ctx.get('Origin');
  if (!CORS_ORIGINS.has(origin)) return false;
  ctx.set('Access-Control-Allow-Origin', origin);
  if (ctx.method !== 'OPTIONS' || !ctx.get('Access-Control-Request-Method')) return false;
  ctx.set('Access-Control-Allow-Methods', 'GET, POST, PUT, DELETE, OPTIONS');
  ctx.set('Access-Control-Allow-Headers', 'authorization, content-type, accept');
  ctx.set('Access-Control-Max-Age', '600');
  ctx.status = 204;
  return true;
}

provider.use(async (ctx, next) => {
  const { path, method } = ctx;

  if (CORS_ORIGINS.size && (path === ROUTES.reg || path.startsWith(`${ROUTES.reg}/`)) && regCors(ctx)) {
    reqLog(`AS OPTIONS ${ROUTES.reg} ${ctx.status}`);
    return;
  }

  if (path.startsWith('/interaction/')) {
    const submit = /^\/interaction\/[^/]+\/(login|confirm)$/.exec(path);
    try {
      if (method === 'POST' && args.interactive && submit) await interactiveSubmit(ctx, submit[1]);
      else if (method !== 'GET' || submit) ctx.status = 405;
      else if (args.interactive) await interactivePage(ctx);
      else await autoInteraction(ctx);
    } catch (err) {
      ctx.status = 400;
      ctx.type = 'application/json';
      ctx.body = { error: 'invalid_request', error_description: `interaction failed: ${err.message}` };
    }
    reqLog(`AS ${method} /interaction/… ${ctx.status}`);
    return;
  }
  if (path === '/test/stats' && method === 'GET') {
    ctx.type = 'application/json';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = stats;
    return;
  }
  if (path === '/test/stats/reset' && method === 'POST') {
    stats = freshStats();
    ctx.status = 204;
    return;
  }
  if (path === '/test/device/approve' && method === 'POST') {
    await approveDevice(ctx);
    reqLog(`AS POST /test/device/approve ${ctx.status}`);
    return;
  }

  if (args['dcr-confidential'] && method === 'POST' && path === ROUTES.reg && ctx.is('application/json')) {
    // An AS that decides the client type itself: answer every registration with a
    // client_secret_basic client and a secret, even when `none` was asked for.
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = {};
    }
    ctx.request.body = { ...body, token_endpoint_auth_method: 'client_secret_basic' };
  }
  if (method === 'POST' && (path === ROUTES.token || path === ROUTES.revocation)) {
    // How the client authenticated (counted per endpoint, never the credentials), and
    // whether browser headers reached the AS (a token proxy must strip them).
    const basic = /^basic /i.test(ctx.get('authorization'));
    const key = path === ROUTES.token ? 'token' : 'revocation';
    const auth = (stats.client_auth[key] ||= { basic: 0, other: 0, with_origin: 0, with_cookie: 0 });
    auth[basic ? 'basic' : 'other'] += 1;
    if (ctx.get('origin')) auth.with_origin += 1;
    if (ctx.get('cookie')) auth.with_cookie += 1;
  }

  await next();

  if (DEVICE_INTERVAL && method === 'POST') {
    if (path === ROUTES.deviceAuth && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
      ctx.body = { ...ctx.body, interval: DEVICE_INTERVAL };
    } else if (path === ROUTES.token && ctx.status === 400 && ctx.body?.error === 'authorization_pending') {
      const deviceCode = ctx.oidc?.params?.device_code;
      const now = Date.now();
      const last = lastDevicePoll.get(deviceCode);
      lastDevicePoll.set(deviceCode, now);
      if (last !== undefined && now - last < DEVICE_INTERVAL * 1000) {
        ctx.body = { error: 'slow_down', error_description: `poll at most every ${DEVICE_INTERVAL}s` };
      }
    }
  }

  const ok = ctx.status < 400;
  const error = ok ? undefined : (ctx.body && typeof ctx.body === 'object' && ctx.body.error) || `http_${ctx.status}`;
  let extra = '';
  if (method === 'POST' && path === ROUTES.token) {
    const gt = ctx.oidc?.params?.grant_type || ctx.oidc?.body?.grant_type || 'unknown';
    stats.token.total += 1;
    const b = (stats.token.by_grant_type[gt] ||= { requests: 0, ok: 0, errors: {} });
    bump(b, ok, error);
    extra = ` grant_type=${gt}`;
    if (args['rotate-revokes-access'] && ok) trackAccessToken(gt, ctx.body?.access_token);
  } else if (method === 'POST' && path === ROUTES.revocation) {
    bump(stats.revocation, ok, error);
  } else if (method === 'POST' && path === ROUTES.introspection) {
    bump(stats.introspection, ok, error);
  } else if (method === 'POST' && path === ROUTES.reg) {
    bump(stats.registration, ok, error);
  } else if (method === 'POST' && path === ROUTES.deviceAuth) {
    bump(stats.device_authorization, ok, error);
  } else if (path === ROUTES.auth) {
    stats.authorization.requests += 1;
  }
  reqLog(`AS ${method} ${path} ${ctx.status}${extra}${error ? ` error=${error}` : ''}`);
});

asHandler = provider.callback();

// ---------------------------------------------------------------------------
// MCP resource server.
// ---------------------------------------------------------------------------
const protectedResourceMetadata = {
  resource: MCP_URL,
  authorization_servers: [ISSUER],
  scopes_supported: [MCP_SCOPE],
  bearer_methods_supported: ['header'],
  ...(DPOP && { dpop_signing_alg_values_supported: ['ES256'] }),
  resource_name: 'edge-oauth test MCP server',
};

const q = (s) => String(s).replace(/[\\"]/g, "'").replace(/[\r\n]/g, ' ');
function challenge(pairs, scheme = 'Bearer') {
  const params = pairs.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}="${q(v)}"`).join(', ');
  // With --dpop both schemes are offered (RFC 9449 §7.1), each with the metadata pointer.
  if (DPOP && scheme === 'Bearer') return `Bearer ${params}, DPoP algs="ES256", ${params}`;
  return `${scheme} ${params}`;
}

// DPoP at the resource (RFC 9449 §4.3, §7.1, §9): a fresh, valid proof for this request,
// by the key the token is bound to; with --dpop-nonce, carrying the server's current nonce.
const seenProofs = new Set(); // jti
const rsNonce = crypto.randomBytes(16).toString('base64url');
async function checkDpop(req, token, payload) {
  const proof = req.headers.dpop;
  if (typeof proof !== 'string' || proof.includes(',')) return { error: 'invalid_dpop_proof', why: 'one DPoP header required' };
  let header;
  let claims;
  try {
    header = jose.decodeProtectedHeader(proof);
    if (header.typ !== 'dpop+jwt' || !header.jwk || header.jwk.d) throw new Error('header');
    const key = await jose.importJWK(header.jwk, header.alg);
    ({ payload: claims } = await jose.jwtVerify(proof, key, { typ: 'dpop+jwt', algorithms: ['ES256', 'EdDSA', 'RS256', 'PS256'] }));
  } catch {
    return { error: 'invalid_dpop_proof', why: 'malformed or unverifiable proof' };
  }
  const now = Math.floor(Date.now() / 1000);
  const ath = crypto.createHash('sha256').update(token).digest('base64url');
  if (claims.htm !== req.method || claims.htu !== MCP_URL) return { error: 'invalid_dpop_proof', why: 'htm/htu' };
  if (typeof claims.iat !== 'number' || Math.abs(now - claims.iat) > 300) return { error: 'invalid_dpop_proof', why: 'iat' };
  if (claims.ath !== ath) return { error: 'invalid_dpop_proof', why: 'ath' };
  if (typeof claims.jti !== 'string' || seenProofs.has(claims.jti)) return { error: 'invalid_dpop_proof', why: 'jti replayed' };
  seenProofs.add(claims.jti);
  if (payload.cnf?.jkt !== await jose.calculateJwkThumbprint(header.jwk)) return { error: 'invalid_token', why: 'proof by another key' };
  if (DPOP_NONCE && claims.nonce !== rsNonce) return { error: 'use_dpop_nonce', why: 'nonce' };
  return undefined;
}

async function bearerAuth(req, res, next) {
  stats.mcp.requests += 1;
  if (req.headers.cookie) stats.mcp.with_cookie += 1;
  const deny401 = (error, description) => {
    stats.mcp.unauthorized += 1;
    const pairs = [];
    if (error) pairs.push(['error', error], ['error_description', description]);
    if (args['challenge-scope']) pairs.push(['scope', MCP_SCOPE]);
    pairs.push(['resource_metadata', PRM_URL]);
    res.set('WWW-Authenticate', challenge(pairs));
    res.status(401).json({ error: error || 'unauthorized', error_description: description });
  };
  const header = req.headers.authorization;
  if (!header) return deny401(undefined, 'bearer token required');
  const parsed = /^(Bearer|DPoP)[ ]+([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  if (!parsed) return deny401('invalid_request', 'malformed Authorization header (expected Bearer)');
  const scheme = parsed[1].toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
  const m = [parsed[0], parsed[2]];
  stats.mcp.schemes[scheme] = (stats.mcp.schemes[scheme] || 0) + 1;

  let payload;
  try {
    ({ payload } = await jose.jwtVerify(m[1], localJwks, {
      issuer: ISSUER,
      audience: MCP_URL,
      typ: 'at+jwt',
      algorithms: ['ES256', 'RS256'],
      requiredClaims: ['exp', 'sub', 'client_id'],
    }));
  } catch (err) {
    return deny401('invalid_token', `token rejected: ${err.code || err.message}`);
  }
  // JWT access tokens are not stored by oidc-provider; revocation of the
  // refresh token revokes the grant, so a token whose grant is gone is dead.
  if (payload.gid && !(await provider.Grant.find(payload.gid))) {
    return deny401('invalid_token', 'grant revoked');
  }
  if (supersededAccessTokens.has(payload.jti)) {
    return deny401('invalid_token', 'access token superseded by a refresh (--rotate-revokes-access)');
  }
  // A DPoP-bound token (cnf.jkt) is worthless as a bearer token (RFC 9449 §7.1).
  if (payload.cnf?.jkt || scheme === 'DPoP') {
    const rejected = (why) => { stats.mcp.dpop_rejected[why] = (stats.mcp.dpop_rejected[why] || 0) + 1; };
    if (scheme !== 'DPoP' || !payload.cnf?.jkt) {
      rejected(scheme === 'DPoP' ? 'unbound token' : 'bound token as Bearer');
      return deny401('invalid_token', 'DPoP-bound tokens need the DPoP scheme and a proof');
    }
    const problem = await checkDpop(req, m[1], payload);
    if (problem) {
      rejected(problem.why);
      stats.mcp.unauthorized += 1;
      if (problem.error === 'use_dpop_nonce') res.set('DPoP-Nonce', rsNonce);
      res.set('WWW-Authenticate', challenge([['error', problem.error], ['error_description', problem.why], ['resource_metadata', PRM_URL]], 'DPoP'));
      return res.status(401).json({ error: problem.error, error_description: problem.why });
    }
  }
  const scopes = String(payload.scope || '').split(' ').filter(Boolean);
  if (!scopes.includes(MCP_SCOPE)) {
    stats.mcp.forbidden += 1;
    res.set('WWW-Authenticate', challenge([
      ['error', 'insufficient_scope'],
      ['scope', MCP_SCOPE],
      ['resource_metadata', PRM_URL],
      ['error_description', `scope ${MCP_SCOPE} required`],
    ]));
    return res.status(403).json({ error: 'insufficient_scope', error_description: `scope ${MCP_SCOPE} required` });
  }
  req.auth = {
    token: m[1],
    clientId: payload.client_id,
    scopes,
    expiresAt: payload.exp,
    resource: new URL(MCP_URL),
    // The key a DPoP-bound token is bound to (the proof was checked against it above).
    extra: { sub: payload.sub, jkt: payload.cnf?.jkt },
  };
  return next();
}

function buildMcpServer() {
  const server = new McpServer({ name: 'edge-oauth-test-mcp', version: '1.0.0' });
  contract.registerTools(server, {
    count: (name) => { stats.mcp.tool_calls[name] = (stats.mcp.tool_calls[name] || 0) + 1; },
    auth: (extra) => ({ sub: extra.authInfo?.extra?.sub, client_id: extra.authInfo?.clientId, scopes: extra.authInfo?.scopes, jkt: extra.authInfo?.extra?.jkt }),
    // --progress-delay-ms: progress on the call's own SSE stream, spaced out in time, so a
    // proxy that buffers the response can be told from one that streams it.
    beforeEcho: async (extra) => {
      const progressToken = extra._meta?.progressToken;
      if (!PROGRESS_DELAY_MS || progressToken === undefined) return;
      for (const progress of [1, 2]) {
        await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress, total: 2 } });
        await new Promise((resolve) => { setTimeout(resolve, PROGRESS_DELAY_MS); });
      }
    },
  });
  return server;
}

const app = createMcpExpressApp({ host: HOST });
app.get(PRM_PATH, (_req, res) => {
  res.set('Cache-Control', 'no-store');
  res.json(protectedResourceMetadata);
});
app.post('/mcp', bearerAuth, async (req, res) => {
  // The scope-gated tool: refused here, before the transport, so the client can step up.
  if (contract.callsAdminTool(req.body) && !req.auth.scopes.includes(ADMIN_SCOPE)) {
    stats.mcp.forbidden += 1;
    const wwwAuthenticate = contract.adminChallenge(PRM_URL);
    res.set('WWW-Authenticate', DPOP ? `${wwwAuthenticate}, DPoP algs="ES256", ${wwwAuthenticate.slice('Bearer '.length)}` : wwwAuthenticate);
    res.status(403).json(contract.ADMIN_FORBIDDEN_BODY);
    return;
  }
  const server = buildMcpServer();
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined, // stateless
    enableJsonResponse: args['mcp-json'],
  });
  res.on('close', () => {
    transport.close().catch(() => {});
    server.close().catch(() => {});
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  } catch (err) {
    log('mcp error:', err?.message || err);
    if (!res.headersSent) {
      res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
    }
  }
});
// Stateless server: no standalone SSE stream and no sessions to delete.
app.all('/mcp', bearerAuth, (_req, res) => {
  res.set('Allow', 'POST');
  res.status(405).json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
});
app.use((_req, res) => res.status(404).json({ error: 'not_found' }));
// eslint-disable-next-line no-unused-vars
app.use((err, _req, res, _next) => {
  log('mcp app error:', err?.message || err);
  if (!res.headersSent) res.status(err.status || 500).json({ error: 'server_error' });
});

// CORS (--cors-origin) on every route of the MCP server. The exposed headers matter: without
// them a page cannot read the 401/403 challenge (WWW-Authenticate) or a session id.
const MCP_CORS_METHODS = 'GET, POST, DELETE, OPTIONS';
const MCP_CORS_HEADERS = 'authorization, content-type, accept, mcp-protocol-version, mcp-session-id, last-event-id, dpop';
const MCP_CORS_EXPOSE = 'www-authenticate, mcp-session-id, dpop-nonce';
// Sets the CORS response headers; answers a preflight itself and returns true when it did.
function mcpCors(req, res) {
  if (!CORS_ORIGINS.size) return false;
  res.setHeader('Vary', 'Origin');
  const { origin } = req.headers;
  if (!origin || !CORS_ORIGINS.has(origin)) return false;
  res.setHeader('Access-Control-Allow-Origin', origin);
  res.setHeader('Access-Control-Expose-Headers', MCP_CORS_EXPOSE);
  if (req.method !== 'OPTIONS' || !req.headers['access-control-request-method']) return false;
  res.setHeader('Access-Control-Allow-Methods', MCP_CORS_METHODS);
  res.setHeader('Access-Control-Allow-Headers', MCP_CORS_HEADERS);
  res.setHeader('Access-Control-Max-Age', '600');
  res.statusCode = 204;
  res.end();
  return true;
}

mcpHandler = (req, res) => {
  res.on('finish', () => {
    reqLog(`MCP ${req.method} ${req.url.split('?')[0]} ${res.statusCode}`);
  });
  if (mcpCors(req, res)) return;
  app(req, res);
};

// ---------------------------------------------------------------------------
// Ready line + shutdown.
// ---------------------------------------------------------------------------
const ready = { issuer: ISSUER, mcp: MCP_URL, as_port: asPort, mcp_port: mcpPort };
if (args['machine-clients']) Object.assign(ready, { machine_basic_secret: MACHINE_SECRET, machine_jwt_key_pem: machineKeyPem });
process.stdout.write(`${JSON.stringify(ready)}\n`);
log(`authorization server ${ISSUER}, MCP server ${MCP_URL}`);

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
