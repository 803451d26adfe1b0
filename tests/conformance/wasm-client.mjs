#!/usr/bin/env node
// The MCP conformance client with the wasm build of edge-oauth as its OAuth client: the
// `nodejs` build of crates/browser drives discovery, registration, PKCE, the code exchange,
// refresh and step-up; the MCP TypeScript SDK (1.32) speaks MCP through its `fetch`.
// Usage (what the suite runs): wasm-client.mjs <server-url>
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

const server = process.argv[process.argv.length - 1];
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

try {
  const oauth = await EdgeOAuth.create(options);
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
