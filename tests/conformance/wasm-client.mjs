#!/usr/bin/env node
// The MCP conformance client with the wasm build of edge-oauth as its OAuth client: the
// `nodejs` build of crates/browser drives discovery, registration, PKCE, the code exchange,
// refresh and step-up; the MCP TypeScript SDK (1.32) speaks MCP through its `fetch`.
// Usage (what the suite runs): wasm-client.mjs [--wire 2026-07-28] <server-url>
//   --wire 2026-07-28: speak MCP at the 2026-07-28 wire (stateless, `_meta` on every request,
//   `Mcp-Method`/`Mcp-Name` headers) with the small JSON-RPC sender below instead of the SDK,
//   which speaks only the 2025-11-25 wire; OAuth is the wasm build's either way.
//   MCP_CONFORMANCE_CONTEXT: {"client_id", "client_secret"} for pre-registration scenarios.
//   EDGE_OAUTH_NODE_PKG: the wasm-pack --target nodejs output (default crates/browser/pkg-node).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const require = createRequire(import.meta.url);
const pkg = process.env.EDGE_OAUTH_NODE_PKG || path.join(root, 'crates/browser/pkg-node');
const { EdgeOAuth } = require(path.join(pkg, 'edge_oauth_browser.js'));
const sdk = path.join(root, 'tests/browser/node_modules/@modelcontextprotocol/sdk/dist/esm');
const { Client } = await import(path.join(sdk, 'client/index.js'));
const { StreamableHTTPClientTransport } = await import(path.join(sdk, 'client/streamableHttp.js'));

const argv = process.argv.slice(2);
const wire = argv.includes('--wire') ? argv[argv.indexOf('--wire') + 1] : 'sdk';
if (wire !== 'sdk' && wire !== '2026-07-28') {
  console.error(`unknown --wire ${wire}`);
  process.exit(2);
}
const server = argv[argv.length - 1];
// Never listened on: the suite's authorization endpoint approves at once, and the authorize
// step below stops at the redirect to this URI.
const redirectUri = 'http://127.0.0.1:33419/callback';

/** Follows the authorization server's redirects until one points at the redirect URI. */
async function authorize(url) {
  let next = url;
  for (let i = 0; i < 20; i++) {
    if (next.startsWith(redirectUri)) return next;
    const r = await fetch(next, { redirect: 'manual' });
    const location = r.headers.get('location');
    if (!location) throw new Error(`authorization stopped at HTTP ${r.status}`);
    next = new URL(location, next).href;
  }
  throw new Error('too many redirects');
}

/** The issuer the resource names: a client secret is only ever sent to a named issuer. */
async function issuerOf(serverUrl) {
  const r = await fetch(serverUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
  const m = /resource_metadata="([^"]+)"/.exec(r.headers.get('www-authenticate') || '');
  const candidates = m ? [m[1]] : [];
  const u = new URL(serverUrl);
  candidates.push(`${u.origin}/.well-known/oauth-protected-resource${u.pathname.replace(/\/$/, '')}`);
  candidates.push(`${u.origin}/.well-known/oauth-protected-resource`);
  for (const c of candidates) {
    const prm = await fetch(c).then((x) => (x.ok ? x.json() : null)).catch(() => null);
    if (prm?.authorization_servers?.[0]) return prm.authorization_servers[0];
  }
  return undefined;
}

const options = {
  serverUrl: server,
  redirectUri,
  clientName: 'edge-oauth wasm conformance client',
  clientMetadataUrl: 'https://conformance-test.local/client-metadata.json',
  authorize,
};
if (process.env.MCP_CONFORMANCE_CONTEXT) {
  const ctx = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT);
  if (ctx.client_id) {
    options.clientId = ctx.client_id;
    if (ctx.client_secret) {
      options.clientSecret = ctx.client_secret;
      options.issuer = await issuerOf(server);
    }
  }
}

/** A header value as 2026-07-28 mirrors it: plain visible ASCII, else base64 in a sentinel. */
function headerValue(v) {
  const plain = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(v) && !(v.startsWith('=?base64?') && v.endsWith('?='));
  return plain ? v : `=?base64?${Buffer.from(v, 'utf8').toString('base64')}?=`;
}

/** tools/list then tools/call at the 2026-07-28 wire, through `fetchFn` (ours). */
async function modern(fetchFn, url) {
  const version = '2026-07-28';
  const meta = {
    'io.modelcontextprotocol/protocolVersion': version,
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'edge-oauth-wasm', version: '0.1.0' },
  };
  let nextId = 0;
  async function request(method, params = {}) {
    const id = ++nextId;
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': version,
      'mcp-method': method,
    };
    if (method === 'tools/call') headers['mcp-name'] = headerValue(params.name);
    const res = await fetchFn(url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: meta } }) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method}: HTTP ${res.status} ${text.slice(0, 200)}`);
    const data = text.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim());
    const messages = (data.length ? data : [text]).map((d) => JSON.parse(d));
    const reply = messages.find((m) => m.id === id);
    if (!reply) throw new Error(`${method}: no reply with id ${id}`);
    if (reply.error) throw new Error(`${method}: ${reply.error.code} ${reply.error.message}`);
    return reply.result;
  }
  const { tools } = await request('tools/list');
  await request('tools/call', { name: tools[0]?.name ?? 'test-tool', arguments: {} });
}

try {
  const oauth = await EdgeOAuth.create(options);
  if (wire === '2026-07-28') {
    await modern(oauth.fetch, server);
    process.exit(0);
  }
  const client = new Client({ name: 'edge-oauth-wasm', version: '0.1.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(server), { fetch: oauth.fetch }));
  const { tools } = await client.listTools();
  const name = tools[0]?.name ?? 'test-tool';
  await client.callTool({ name, arguments: {} });
  await client.close();
  process.exit(0);
} catch (e) {
  console.error(`error: ${e.code ?? ''} ${e.message}`);
  process.exit(1);
}
