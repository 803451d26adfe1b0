// The tool/scope contract every peer in tests/peers serves (mcp-stack.mjs, sdk-as.mjs and the
// workers-oauth worker, which bundles this file), and the interactive login/consent pages.
//
// Tools: echo {text}, time {}, whoami {} and admin_note {text}; every call needs the scope
// mcp:tools, admin_note needs mcp:admin too. A server refuses an admin_note call without
// mcp:admin with HTTP 403 and adminChallenge() before the MCP transport sees the request, so a
// client steps up; the protected resource metadata and the 401 challenge advertise mcp:tools
// only, so a first login never gets mcp:admin.

import { z } from 'zod';

export const MCP_SCOPE = 'mcp:tools';
export const ADMIN_SCOPE = 'mcp:admin';
export const ADMIN_TOOL = 'admin_note';
export const ADMIN_CHALLENGE_SCOPE = `${MCP_SCOPE} ${ADMIN_SCOPE}`;

// True when a parsed JSON-RPC body (a message or a batch) calls the scope-gated tool.
export function callsAdminTool(body) {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((m) => m && typeof m === 'object' && m.method === 'tools/call'
    && m.params && typeof m.params === 'object' && m.params.name === ADMIN_TOOL);
}

const quoted = (s) => String(s).replace(/[\\"]/g, "'").replace(/[\r\n]/g, ' ');

// The WWW-Authenticate value of the 403 that asks for the step-up.
export function adminChallenge(prmUrl) {
  return `Bearer error="insufficient_scope", scope="${ADMIN_CHALLENGE_SCOPE}", resource_metadata="${quoted(prmUrl)}", `
    + `error_description="${ADMIN_TOOL} requires scope ${ADMIN_SCOPE}"`;
}
export const ADMIN_FORBIDDEN_BODY = { error: 'insufficient_scope', error_description: `${ADMIN_TOOL} requires scope ${ADMIN_SCOPE}` };

// Registers the four tools on an McpServer. `auth(extra)` returns { sub, client_id, scopes }
// for the call (and `jkt`, the DPoP key a bound token is bound to, where the server knows it); `count(name)` is told about every call.
export function registerTools(server, { auth, count = () => {}, beforeEcho } = {}) {
  server.registerTool('echo', {
    description: 'Returns the given text unchanged.',
    inputSchema: { text: z.string() },
  }, async ({ text }, extra) => {
    count('echo');
    if (beforeEcho) await beforeEcho(extra);
    return { content: [{ type: 'text', text }] };
  });
  server.registerTool('time', {
    description: "The server's current time (ISO 8601, UTC).",
  }, async () => {
    count('time');
    return { content: [{ type: 'text', text: new Date().toISOString() }] };
  });
  server.registerTool('whoami', {
    description: "Returns the access token's subject, client_id and scopes (and the DPoP key thumbprint of a bound token).",
  }, async (extra) => {
    count('whoami');
    const { sub, client_id: clientId, scopes, jkt } = auth(extra);
    return { content: [{ type: 'text', text: JSON.stringify({ sub, client_id: clientId, scopes: scopes ?? [], ...(jkt ? { jkt } : {}) }) }] };
  });
  server.registerTool(ADMIN_TOOL, {
    description: `Stores an admin note (needs the scope ${ADMIN_SCOPE}).`,
    inputSchema: { text: z.string() },
  }, async ({ text }, extra) => {
    count(ADMIN_TOOL);
    const { sub, scopes } = auth(extra);
    // The HTTP layer refuses such calls already; this is the belt to its braces.
    if (!(scopes ?? []).includes(ADMIN_SCOPE)) {
      return { isError: true, content: [{ type: 'text', text: `scope ${ADMIN_SCOPE} required` }] };
    }
    return { content: [{ type: 'text', text: `note saved by ${sub}: ${text}` }] };
  });
}

// ---------------------------------------------------------------------------
// Interactive login and consent pages (--interactive). Every value is escaped.
// ---------------------------------------------------------------------------
export function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0;
display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;border-radius:10px;box-shadow:0 2px 12px #0002;padding:28px 32px;width:340px}
h1{font-size:20px;margin:0 0 6px}p{margin:6px 0 14px;color:#4a5263}
label{display:block;font-weight:600;margin:10px 0 4px}
input[type=text]{width:100%;box-sizing:border-box;padding:8px 10px;border:1px solid #c5cad3;border-radius:6px;font:inherit}
ul{padding-left:20px;margin:6px 0 16px}li code{background:#eef0f4;padding:1px 5px;border-radius:4px}
.row{display:flex;gap:10px;margin-top:16px}
button{flex:1;padding:9px 12px;border-radius:6px;border:1px solid #2f5bd3;background:#2f5bd3;color:#fff;font:inherit;cursor:pointer}
button.secondary{background:#fff;color:#2f5bd3}small{color:#7a8190}`;

function page(title, body) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">`
    + `<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body><main>${body}</main></body></html>`;
}

const hiddenInputs = (hidden = {}) => Object.entries(hidden)
  .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`).join('');

// A login form accepting any user name (input `login`, button "Sign in"), posted to `action`.
export const LOGIN_PATTERN = /^[A-Za-z0-9._@+-]{1,64}$/;
export const LOGIN_RULE = 'A user name is 1 to 64 letters, digits or . _ @ + -';
export function loginPage({ action, issuer, clientName, loginHint, hidden, error }) {
  return page('Sign in', `<h1>Sign in</h1><p>to <strong>${escapeHtml(issuer)}</strong>`
    + `${clientName ? ` for <strong>${escapeHtml(clientName)}</strong>` : ''}. Any user name works.</p>`
    + `${error ? `<p role="alert" style="color:#b3261e">${escapeHtml(error)}</p>` : ''}`
    + `<form method="post" action="${escapeHtml(action)}">${hiddenInputs(hidden)}`
    + `<label for="login">User name</label><input type="text" id="login" name="login" autocomplete="username" autofocus required value="${escapeHtml(loginHint ?? '')}">`
    + '<div class="row"><button type="submit">Sign in</button></div></form>');
}

// A consent page: client name and requested scopes, buttons Allow and Deny (name `decision`).
export function consentPage({ action, clientName, clientId, scopes, user, resource, hidden }) {
  const items = (scopes.length ? scopes : ['(none)']).map((s) => `<li><code>${escapeHtml(s)}</code></li>`).join('');
  return page('Authorize access', `<h1>Authorize access</h1>`
    + `<p><strong>${escapeHtml(clientName || clientId)}</strong>${clientName && clientId ? ` <small>(${escapeHtml(clientId)})</small>` : ''}`
    + ` asks for access${user ? ` as <strong>${escapeHtml(user)}</strong>` : ''}${resource ? ` to <strong>${escapeHtml(resource)}</strong>` : ''}.</p>`
    + `<p>Requested scopes:</p><ul>${items}</ul>`
    + `<form method="post" action="${escapeHtml(action)}">${hiddenInputs(hidden)}<div class="row">`
    + '<button type="submit" name="decision" value="allow">Allow</button>'
    + '<button type="submit" name="decision" value="deny" class="secondary">Deny</button></div></form>');
}

// ---------------------------------------------------------------------------
// CORS for the MCP endpoint (--cors-origin): the headers to add for a request from `origin`
// (undefined when that origin is not allowed), plus the preflight's own when `preflight`.
// The exposed headers matter: without them a page cannot read the 401/403 challenge.
// ---------------------------------------------------------------------------
export const MCP_CORS = {
  methods: 'GET, POST, DELETE, OPTIONS',
  allowHeaders: 'authorization, content-type, accept, mcp-protocol-version, mcp-session-id, last-event-id, dpop',
  exposeHeaders: 'www-authenticate, mcp-session-id, dpop-nonce',
};
export function mcpCorsHeaders(origin, allowed, preflight) {
  if (!origin || !allowed.has(origin)) return undefined;
  const h = { 'Access-Control-Allow-Origin': origin, 'Access-Control-Expose-Headers': MCP_CORS.exposeHeaders };
  if (preflight) {
    Object.assign(h, {
      'Access-Control-Allow-Methods': MCP_CORS.methods,
      'Access-Control-Allow-Headers': MCP_CORS.allowHeaders,
      'Access-Control-Max-Age': '600',
    });
  }
  return h;
}

// Parses --cors-origin values (repeatable, comma-separated) into a Set of exact origins; throws
// on anything that is not scheme://host[:port].
export function parseCorsOrigins(values) {
  const out = new Set();
  for (const value of values) {
    for (const raw of value.split(',').map((v) => v.trim()).filter(Boolean)) {
      let origin;
      try {
        origin = new URL(raw).origin;
      } catch {
        origin = undefined;
      }
      if (!origin || origin === 'null' || origin !== raw.replace(/\/$/, '')) {
        throw new Error(`--cors-origin: not an origin (scheme://host[:port]): ${raw}`);
      }
      out.add(origin);
    }
  }
  return out;
}

// The /test/stats shape all peers share (mcp-stack.mjs has a few more counters).
export function freshStats() {
  return {
    token: { total: 0, by_grant_type: {} },
    authorization: { requests: 0 },
    registration: { requests: 0, ok: 0, errors: {} },
    revocation: { requests: 0, ok: 0, errors: {} },
    interactions: { login: 0, consent: 0, denied: 0 },
    mcp: { requests: 0, unauthorized: 0, forbidden: 0, with_cookie: 0, tool_calls: {} },
  };
}
export function bump(bucket, ok, error) {
  bucket.requests += 1;
  if (ok) bucket.ok += 1;
  else if (error) bucket.errors[error] = (bucket.errors[error] || 0) + 1;
}
export function countToken(stats, grantType, ok, error) {
  stats.token.total += 1;
  bump((stats.token.by_grant_type[grantType || 'unknown'] ||= { requests: 0, ok: 0, errors: {} }), ok, error);
}
