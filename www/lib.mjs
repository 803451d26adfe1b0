// What `make demo` (demo.mjs) and the end-to-end matrix (e2e.mjs) share: starting the local
// stack (an authorization server and MCP server from tests/peers, the edge worker in workerd,
// the page's static server), each child in its own process group and stopped by its PID, and
// driving the page's sign-in in Chromium.
import { spawn } from 'node:child_process';
import * as nodeCrypto from 'node:crypto';
import * as fs from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';

export const HERE = import.meta.dirname;
export const ROOT = path.resolve(HERE, '..');
// EDGE_OAUTH_PEERS: another tests/peers folder (e.g. a checkout of a newer one).
const PEERS = process.env.EDGE_OAUTH_PEERS || path.join(ROOT, 'tests/peers');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- processes ---------------------------------------------------------------------------------

const children = new Set();
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}
process.on('exit', () => {
  for (const child of children) killGroup(child, 'SIGKILL');
});

/** Spawns `node script ...argv` in its own process group; resolves with the JSON of its first
 *  stdout line and a stop() that ends the group (SIGTERM, then SIGKILL after 3 s). */
export function startNode(name, script, argv, { verbose = false, timeoutMs = 30000, cwd = ROOT } = {}) {
  const child = spawn(process.execPath, [script, ...argv], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const tail = [];
  child.stderr.on('data', (d) => {
    if (verbose) process.stderr.write(d);
    tail.push(...String(d).split('\n').filter(Boolean));
    if (tail.length > 30) tail.splice(0, tail.length - 30);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  const proc = {
    name,
    pid: child.pid,
    tail,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(child, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      killGroup(child, 'SIGKILL'); // anything left in its group
    },
  };
  const ready = new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name}: not ready within ${timeoutMs / 1000} s\n${tail.join('\n')}`)), timeoutMs);
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      child.stdout.removeAllListeners('data');
      child.stdout.resume();
      try {
        resolve(JSON.parse(out.slice(0, nl)));
      } catch (err) {
        reject(new Error(`${name}: bad ready line ${JSON.stringify(out.slice(0, nl))}: ${err.message}`));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      const e = new Error(`${name} exited (${code ?? signal}) before it was ready${tail.length ? `:\n  ${tail.join('\n  ')}` : ''}`);
      e.exitCode = code;
      reject(e);
    });
  });
  return ready.then((info) => ({ ...proc, info }), async (err) => { await proc.stop(); throw err; });
}

/** A free loopback port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Rejects with a clear message when 127.0.0.1:port is taken. */
export function checkPort(port, variable) {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err) => reject(new Error(err.code === 'EADDRINUSE'
      ? `port ${port} on 127.0.0.1 is busy (${variable}): stop what uses it, or run with ${variable}=<another port>`
      : `port ${port} (${variable}): ${err.message}`)));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve()));
  });
}

// ---- the authorization server and MCP server ---------------------------------------------------

/** Which peers there are: tests/peers/stack.mjs offers oidc, sdk and workers; without it,
 *  mcp-stack.mjs is the oidc one. */
export function peerKinds() {
  return fs.existsSync(path.join(PEERS, 'stack.mjs')) ? ['oidc', 'sdk', 'workers'] : ['oidc'];
}

/** Starts one peer: {issuer, mcp, stats (URL of /test/stats), kind, interactive, stop()}. With
 *  `interactive`, the AS shows a login form and a consent page (falls back to auto-approve,
 *  and says so, when the peer has no such flag). */
export async function startPeer({ kind = 'oidc', origin, ttl, interactive = false, asPort = 0, mcpPort = 0, verbose = false }) {
  const stackMjs = path.join(PEERS, 'stack.mjs');
  const useStack = fs.existsSync(stackMjs);
  if (!useStack && kind !== 'oidc') throw new Error(`peer "${kind}" needs tests/peers/stack.mjs`);
  const argv = [...(useStack ? ['--as', kind] : []), '--as-port', String(asPort), '--mcp-port', String(mcpPort), '--cors-origin', origin, '--quiet'];
  if (ttl) argv.push('--access-token-ttl', String(ttl));
  const script = useStack ? stackMjs : path.join(PEERS, 'mcp-stack.mjs');
  let proc;
  // From the root of the peers' checkout: workerd resolves its modules below the working folder.
  const cwd = path.resolve(PEERS, '../..');
  try {
    proc = await startNode(`peer ${kind}`, script, interactive ? [...argv, '--interactive'] : argv, { verbose, cwd });
  } catch (err) {
    // A peer without --interactive rejects the flag (exit 2): the auto-approving AS instead.
    if (!interactive || err.exitCode !== 2) throw err;
    proc = await startNode(`peer ${kind}`, script, argv, { verbose, cwd });
    interactive = false;
  }
  const { issuer, mcp } = proc.info;
  const stats = proc.info.stats || `${issuer}/test/stats`;
  return { ...proc, kind, issuer, mcp, stats, interactive };
}

export async function getStats(peer) {
  const res = await fetch(peer.stats);
  if (!res.ok) throw new Error(`GET ${peer.stats}: HTTP ${res.status}`);
  return res.json();
}

/** Requests of one grant type at the token endpoint (stats shape of tests/peers). */
export function grantRequests(stats, grantType) {
  return stats?.token?.by_grant_type?.[grantType]?.requests ?? 0;
}

// ---- the edge worker ---------------------------------------------------------------------------

/** The built worker (worker/build) in workerd through miniflare 4, configured for `peer`: a
 *  confidential client registered for it at the AS (RFC 7591), `origin` allowed, the BFF on
 *  `origin` (its static server forwards /bff/*) returning to `origin`/. */
export async function startWorker({ peer, origin, port = 0, verbose = false }) {
  const reg = await fetch(`${peer.issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'edge-oauth worker (demo)',
      application_type: 'web',
      redirect_uris: [`${origin}/callback.html`, `${origin}/bff/callback`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }),
  });
  const client = await reg.json().catch(() => ({}));
  if (reg.status !== 201 || !client.client_secret) throw new Error(`registering the worker's client at ${peer.issuer}/reg: HTTP ${reg.status}`);
  const { startMiniflare } = await import('../tests/worker/miniflare.mjs');
  const w = await startMiniflare({
    bindings: {
      ALLOWED_ORIGINS: origin,
      INSECURE_ALLOW_LOOPBACK: 'true',
      PROVIDERS: JSON.stringify([{ name: 'peer', issuer: peer.issuer, client_id: client.client_id, client_secret_binding: 'PEER_CLIENT_SECRET', redirect_uris: [`${origin}/callback.html`] }]),
      PEER_CLIENT_SECRET: client.client_secret,
      BFF_REDIRECT_URI: `${origin}/bff/callback`,
      BFF_RETURN_URL: `${origin}/`,
      MCP_SERVERS: JSON.stringify([{ name: 'tools', url: peer.mcp, provider: 'peer', scope: 'mcp:tools', max_scope: 'mcp:tools mcp:admin' }]),
      BFF_COOKIE_KEY: nodeCrypto.randomBytes(32).toString('base64'),
      INSECURE_LOOPBACK_COOKIES: 'true',
    },
    port,
    verbose,
  });
  return { base: w.base, clientId: client.client_id, stop: () => w.mf.dispose().catch(() => {}) };
}

// ---- the page ----------------------------------------------------------------------------------

/** The static server for www/ on `port`, serving /config.json for this stack. */
export function startServe({ port, peer, worker, verbose = false }) {
  const config = { serverUrl: peer.mcp, workerUrl: worker?.base, workerClientId: worker?.clientId, bffServer: 'tools' };
  const argv = ['--port', String(port), '--config', JSON.stringify(config)];
  if (worker) argv.push('--worker', worker.base);
  return startNode('www/serve.mjs', path.join(HERE, 'serve.mjs'), argv, { verbose });
}

/** Completes the authorization server's pages in `page` until the sign-in is over: a popup
 *  closes, or (BFF and redirect modes, where the app itself goes to the AS) the page is back on
 *  `appOrigin` past its callback. Fills the login form (input `login`, button "Sign in") and
 *  allows the consent (button "Allow"; "Deny" with `deny`), or just waits when the AS approves
 *  by itself. Returns what it did, e.g. ["login", "consent"]. */
export async function completeSignIn(page, { issuer, appOrigin, user = 'demo-user', deny = false, timeoutMs = 20000 }) {
  const done = [];
  const asOrigin = new URL(issuer).origin;
  const deadline = Date.now() + timeoutMs;
  // The app page is back once it has navigated to itself (not its callback, not the worker).
  let back = false;
  const isApp = (u) => {
    try {
      const x = new URL(u);
      return x.origin === appOrigin && !x.pathname.startsWith('/bff/') && !x.pathname.startsWith('/callback');
    } catch {
      return false;
    }
  };
  const onNav = (frame) => { if (frame === page.mainFrame() && isApp(frame.url())) back = true; };
  if (appOrigin) page.on('framenavigated', onNav);
  try {
    while (Date.now() < deadline) {
      if (page.isClosed() || back) return done.length ? done : ['auto-approved'];
      let url;
      try {
        url = new URL(page.url());
      } catch {
        url = undefined;
      }
      if (url?.origin === asOrigin) {
        try {
          const login = page.locator('input[name="login"]');
          const answer = page.getByRole('button', { name: deny ? 'Deny' : 'Allow' });
          if (await login.isVisible()) {
            await login.fill(user);
            await page.getByRole('button', { name: 'Sign in' }).click({ timeout: 3000 });
            done.push('login');
          } else if (await answer.isVisible()) {
            await answer.click({ timeout: 3000 });
            done.push(deny ? 'deny' : 'consent');
          }
        } catch (err) {
          if (!/closed|navigat|detached|destroyed/i.test(String(err.message))) throw err;
        }
      }
      await sleep(100);
    }
  } finally {
    page.off('framenavigated', onNav);
  }
  throw new Error(`the sign-in at ${issuer} did not finish within ${timeoutMs / 1000} s (at ${page.isClosed() ? 'a closed page' : page.url()})`);
}

// ---- driving the page (tour and matrix) --------------------------------------------------------

/** The page's visible error, or undefined. */
export async function pageError(page) {
  return page.evaluate(() => {
    const box = document.querySelector('#error');
    if (!box || box.hidden) return undefined;
    return { code: box.querySelector('.code')?.textContent, message: box.querySelector('.message')?.textContent, remedy: box.querySelector('.remedy')?.textContent };
  });
}

/** Opens the app in a new tab of `context` and waits until it has started. */
export async function openApp(context, origin) {
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.demo?.ready);
  await page.evaluate(() => window.demo.ready);
  return page;
}

/** Waits until the page is connected (tools listed), or throws with the error it shows. */
export async function waitConnected(page, timeoutMs = 20000) {
  await page.waitForFunction(() => window.demo?.connected?.() || !document.querySelector('#error')?.hidden, undefined, { timeout: timeoutMs });
  const err = await pageError(page);
  if (err) throw new Error(`the page shows ${err.code}: ${err.message}`);
}

/** The session panel as text, by field. */
export async function sessionPanel(page) {
  return page.evaluate(() => Object.fromEntries(Array.from(document.querySelectorAll('#session dd'), (dd) => [dd.dataset.field, dd.textContent])));
}

export async function selectMode(page, mode) {
  await page.check(`input[name="mode"][value="${mode}"]`);
  await page.evaluate(() => new Promise((r) => setTimeout(r, 50)));
  await page.waitForFunction(() => !!window.demo.client, undefined, { timeout: 10000 });
}

/** Clicks Connect and completes the sign-in: in a popup (popup, token-mediating) or in the
 *  page itself (redirect, bff). Returns what the AS asked for. */
export async function connect(page, { peer, origin, mode }) {
  let steps;
  if (mode === 'popup' || mode === 'token-mediating') {
    const popup = page.waitForEvent('popup', { timeout: 10000 });
    await page.click('#connect');
    steps = await completeSignIn(await popup, { issuer: peer.issuer });
  } else {
    const signIn = completeSignIn(page, { issuer: peer.issuer, appOrigin: origin });
    await page.click('#connect');
    steps = await signIn;
    await page.waitForFunction(() => window.demo?.ready);
    await page.evaluate(() => window.demo.ready);
  }
  await waitConnected(page);
  return steps;
}

/** Calls a tool through the form; a popup opened meanwhile (step-up) is signed in. Returns
 *  {text, stepUp, popup: steps | undefined, error}. */
export async function callTool(page, peer, name, args = {}) {
  let signIn;
  const onPopup = (p) => { signIn = completeSignIn(p, { issuer: peer.issuer }); };
  page.on('popup', onPopup);
  try {
    await page.selectOption('#tool', name);
    await page.fill('#args', JSON.stringify(args));
    await page.evaluate(() => { const r = document.querySelector('#result'); r.textContent = ''; delete r.dataset.stepUp; });
    await page.click('#call');
    await page.waitForFunction(() => {
      const r = document.querySelector('#result');
      return (r.textContent && !r.textContent.startsWith('calling ')) ? true : false;
    }, undefined, { timeout: 30000 });
    // The step-up note is written once the status is read again after the call.
    await page.waitForFunction(() => !document.querySelector('#call').disabled || !document.querySelector('#error').hidden, undefined, { timeout: 10000 });
    const popup = signIn ? await signIn : undefined;
    const out = await page.evaluate(() => ({ text: document.querySelector('#result').textContent, stepUp: document.querySelector('#result').dataset.stepUp }));
    return { ...out, popup, error: await pageError(page) };
  } finally {
    page.off('popup', onPopup);
  }
}

/** A JSON-RPC tools/list to the MCP server straight from Node with `token`: the HTTP status. */
export async function mcpStatusWith(mcp, token) {
  const res = await fetch(mcp, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });
  await res.arrayBuffer();
  return res.status;
}
