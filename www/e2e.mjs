#!/usr/bin/env node
// The end-to-end matrix of the demo page (`make demo-e2e`, part of `make test`): Playwright
// (playwright-core over Debian's Chromium) drives www/ like a user, against local
// authorization servers, and prints a table peer x mode x scenario.
//
//   node www/e2e.mjs [--only PEER/MODE] [--verbose]
//
// Rows: every peer (tests/peers/stack.mjs --as oidc|sdk|workers; without stack.mjs,
// mcp-stack.mjs as oidc) in browser-only popup mode, then oidc once in browser-only redirect
// mode (the callback page loads the package and exchanges the code; in popup mode it loads
// popup-callback.js alone), once in token-mediating and once in BFF mode through the edge worker
// in workerd. Each row gets fresh servers, a fresh page
// origin and a fresh browser context, with access tokens living 6 s. Scenarios:
//   connect      Connect, sign in (login form and consent, or an approving AS), tools listed, echo,
//                Refresh now (one refresh_token request at the AS)
//   reload       the page reloads and is connected again without signing in
//   second tab   a second tab shares the session (connects without signing in)
//   expiry       after the access token expired, both tabs call a tool at once: the AS counts
//                exactly one refresh_token request
//   step-up      admin_note needs mcp:admin: the 403 insufficient_scope becomes a sign-in for
//                more scope and the call succeeds (BFF: the worker records the challenge, the
//                page leaves for the worker's step-up login and, back, calls again); skipped when
//                the peer has no admin_note; redirect mode as BFF, through the AS itself
//   logout       Log out: the old access token is refused by the MCP server (BFF: the worker's
//                MCP route refuses the old cookie), and the second tab sees it
//   error        (first row) an unreachable server URL: the page shows transport_error and its
//                remedy as text
// Screenshots (www/shots/e2e/): each row connected, and the error state. Exit 1 on any failure.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  CHROMIUM, CHROMIUM_ARGS, HERE, callTool, completeSignIn, connect, freePort, getStats, grantRequests, mcpStatusWith,
  openApp, pageError, peerKinds, selectMode, sessionPanel, sleep, startPeer, startServe, startWorker, waitConnected,
} from './lib.mjs';

const { values: args } = parseArgs({ options: { only: { type: 'string' }, verbose: { type: 'boolean', default: false } } });
// Access-token lifetime: short, so the expiry scenario waits little (the workers peer enforces
// lifetimes under workers-oauth-provider's 60 s minimum itself).
const TTL = 6;
const SCENARIOS = ['connect', 'reload', 'second tab', 'expiry', 'step-up', 'logout', 'error'];
const SHOTS = path.join(HERE, 'shots/e2e');
fs.rmSync(SHOTS, { recursive: true, force: true });
fs.mkdirSync(SHOTS, { recursive: true });

class Failure extends Error {}
class Skip extends Error {}
const assert = (cond, message) => { if (!cond) throw new Failure(message); };
const log = (line) => { if (args.verbose) process.stderr.write(`${line}\n`); };

let rows = [...peerKinds().map((peer) => ({ peer, mode: 'popup' })), { peer: 'oidc', mode: 'redirect' }, { peer: 'oidc', mode: 'token-mediating' }, { peer: 'oidc', mode: 'bff' }];
if (args.only) rows = rows.filter((r) => `${r.peer}/${r.mode}` === args.only);
if (!rows.length) {
  process.stderr.write(`no row matches --only ${args.only}\n`);
  process.exit(2);
}

// Waits until the page's session is past its access token's expiry (re-reading it: a refresh
// meanwhile moves it), then returns the moment to fire at.
async function pastExpiry(page) {
  for (let i = 0; i < 5; i += 1) {
    const at = await page.evaluate(async () => (await window.demo.client.status()).expiresAt);
    assert(at, 'the session has no expiry');
    const fireAt = at * 1000 + 400;
    await sleep(Math.max(0, fireAt - Date.now()));
    const again = await page.evaluate(async () => (await window.demo.client.status()).expiresAt);
    if (again === at) return Date.now() + 300;
  }
  throw new Failure('the session kept being refreshed while waiting for its expiry');
}

async function runRow(browser, row, first) {
  const results = {};
  const started = [];
  const { peer: kind, mode } = row;
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  let context;
  try {
    const peer = await startPeer({ kind, origin, ttl: TTL, interactive: true, verbose: args.verbose });
    started.push(peer);
    const worker = mode === 'popup' ? undefined : await startWorker({ peer, origin, verbose: args.verbose });
    if (worker) started.push(worker);
    started.push(await startServe({ port, peer, worker, verbose: args.verbose }));
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const popups = [];
    context.on('page', (p) => popups.push(p));
    const diagnostics = [];
    context.on('console', (m) => { if (m.type() === 'error') diagnostics.push(m.text()); });
    let page;
    let tab2;
    let tools = [];
    const scenario = async (name, fn) => {
      const t0 = Date.now();
      try {
        const note = await fn();
        results[name] = { ok: true, ms: Date.now() - t0, note };
      } catch (err) {
        if (err instanceof Skip) results[name] = { skip: true, note: err.message };
        else results[name] = { ok: false, ms: Date.now() - t0, note: err.message, diagnostics: diagnostics.slice(-5) };
        if (!(err instanceof Skip)) throw err;
      }
      log(`  ${kind}/${mode} ${name}: ${JSON.stringify(results[name])}`);
    };

    await scenario('connect', async () => {
      page = await openApp(context, origin);
      await selectMode(page, mode);
      const steps = await connect(page, { peer, origin, mode });
      const s = await sessionPanel(page);
      assert(s.state === 'authenticated', `session state ${s.state}`);
      assert(s.issuer === new URL(peer.issuer).href.replace(/\/$/, '') || s.issuer === peer.issuer, `issuer shown ${s.issuer}, want ${peer.issuer}`);
      if (mode === 'popup') assert(/\((dynamic registration|Client ID Metadata Document|pre-registered)/.test(s.client), `client id shown as ${s.client}`);
      if (mode === 'token-mediating') assert(s.client.includes('(pre-registered)'), `client id shown as ${s.client}, want the worker's pre-registered client`);
      tools = await page.$$eval('#tools li[data-tool]', (lis) => lis.map((li) => li.dataset.tool));
      assert(tools.includes('echo'), `tools listed: ${tools.join(', ')}`);
      const trace = await page.$$eval('#trace tbody tr', (r) => r.length);
      if (mode !== 'bff') assert(trace >= 2, `discovery trace has ${trace} rows`);
      const echo = await callTool(page, peer, 'echo', { text: `hello ${kind}` });
      assert(echo.text === `hello ${kind}` && !echo.error, `echo gave ${JSON.stringify(echo)}`);
      if (mode !== 'bff') {
        // Refresh now: browser-only, one refresh_token request at the AS and one more refresh
        // in the panel; token-mediating, the worker answers with the access token it holds
        // while that one is not due, so nothing upstream and the count stays.
        const r0 = grantRequests(await getStats(peer), 'refresh_token');
        const n0 = await page.$eval('#session [data-field="refreshes"]', (dd) => dd.dataset.value);
        const logged = await page.$$eval('#log li', (l) => l.length);
        await page.click('#refresh');
        await page.waitForFunction((n) => document.querySelectorAll('#log li').length > n, logged, { timeout: 10000 });
        const err = await pageError(page);
        assert(!err, `Refresh now: ${err?.code}: ${err?.message}`);
        const n1 = await page.$eval('#session [data-field="refreshes"]', (dd) => dd.dataset.value);
        const r1 = grantRequests(await getStats(peer), 'refresh_token');
        // (Token-mediating: once the held token is due — half its 6 s — the worker does
        // refresh upstream; either way the panel counts a new token exactly when the AS did.)
        const upstream = r1 - r0;
        assert(mode === 'popup' ? upstream === 1 : upstream <= 1, `Refresh now made ${upstream} refresh_token requests at the AS`);
        assert(Number(n1) - Number(n0) === upstream, `the panel's refresh count went ${n0} -> ${n1}, the AS counted ${upstream} refreshes`);
      }
      await page.screenshot({ path: path.join(SHOTS, `${kind}-${mode}-connected.png`), fullPage: true });
      return steps.join('+');
    });

    await scenario('reload', async () => {
      const before = popups.length;
      await page.reload();
      await page.evaluate(() => window.demo.ready);
      await waitConnected(page);
      const s = await sessionPanel(page);
      assert(s.state === 'authenticated', `after reload: ${s.state}`);
      assert(popups.length === before, 'the reload opened a sign-in window');
    });

    await scenario('second tab', async () => {
      const before = popups.length;
      tab2 = await openApp(context, origin);
      await waitConnected(tab2);
      assert(popups.length === before + 1, 'the second tab opened a sign-in window'); // +1: tab2 itself
      const s = await sessionPanel(tab2);
      assert(s.state === 'authenticated', `second tab: ${s.state}`);
    });

    await scenario('expiry', async () => {
      for (const p of [page, tab2]) {
        await p.selectOption('#tool', 'echo');
        await p.fill('#args', JSON.stringify({ text: 'after expiry' }));
        await p.evaluate(() => { document.querySelector('#result').textContent = ''; });
      }
      const fireAt = mode === 'bff'
        ? await (async () => {
          const at = await page.evaluate(async () => (await window.demo.client.status()).expiresAt);
          assert(at, 'the BFF session reports no expiry');
          await sleep(Math.max(0, at * 1000 + 400 - Date.now()));
          return Date.now() + 300;
        })()
        : await pastExpiry(page);
      const s0 = await getStats(peer);
      await Promise.all([page, tab2].map((p) => p.evaluate((at) => new Promise((r) => setTimeout(r, at - Date.now())).then(() => document.querySelector('#call').click()), fireAt)));
      for (const p of [page, tab2]) {
        await p.waitForFunction(() => /^(after expiry|—)$/.test(document.querySelector('#result').textContent), undefined, { timeout: 20000 });
        const err = await pageError(p);
        assert(!err, `a tab shows ${err?.code}: ${err?.message}`);
      }
      const s1 = await getStats(peer);
      const refreshes = grantRequests(s1, 'refresh_token') - grantRequests(s0, 'refresh_token');
      assert(refreshes === 1, `the AS counted ${refreshes} refresh_token requests across the two tabs, want exactly 1`);
      return '1 refresh';
    });

    await scenario('step-up', async () => {
      if (!tools.includes('admin_note')) throw new Skip('the peer has no admin_note');
      if (mode === 'bff' || mode === 'redirect') {
        // The page leaves for the step-up sign-in (BFF: the worker's login; redirect: the AS
        // itself), the AS asks for consent to the new scope, and, back, the page makes the
        // call again.
        const signIn = completeSignIn(page, { issuer: peer.issuer, appOrigin: origin });
        await page.selectOption('#tool', 'admin_note');
        await page.fill('#args', JSON.stringify({ text: 'from the matrix' }));
        await page.click('#call');
        const steps = await signIn;
        await page.waitForFunction(() => window.demo?.ready);
        await page.evaluate(() => window.demo.ready);
        const r = await page.evaluate(() => ({ text: document.querySelector('#result').textContent, stepUp: document.querySelector('#result').dataset.stepUp }));
        const error = await pageError(page);
        assert(!error, `admin_note after the step-up: the page shows ${error?.code}: ${error?.message}`);
        assert(r.text.startsWith('note saved by'), `admin_note result after the step-up: ${JSON.stringify(r)}`);
        assert(r.stepUp?.split(' ').includes('mcp:admin'), `no step-up to mcp:admin seen (result ${JSON.stringify(r)})`);
        return `+${r.stepUp} (${steps.join('+')} by redirect)`;
      }
      const r = await callTool(page, peer, 'admin_note', { text: 'from the matrix' });
      assert(!r.error, `admin_note failed: ${r.error?.code}: ${r.error?.message}`);
      assert(r.stepUp?.split(' ').includes('mcp:admin'), `no step-up to mcp:admin seen (result ${JSON.stringify(r)})`);
      return `+${r.stepUp}`;
    });

    await scenario('logout', async () => {
      const token = mode === 'bff' ? undefined : await page.evaluate(() => window.demo.client.getAccessToken());
      if (token) assert(await mcpStatusWith(peer.mcp, token) === 200, 'the MCP server refused the token before logout');
      await page.click('#logout');
      await page.waitForFunction(() => document.querySelector('#session [data-field="state"]').dataset.value === 'not-authenticated', undefined, { timeout: 10000 });
      if (token) {
        const status = await mcpStatusWith(peer.mcp, token);
        assert(status === 401, `after logout the MCP server answers ${status} to the old access token, want 401`);
      } else {
        const status = await tab2.evaluate(async (mcp) => (await window.demo.client.fetch(mcp, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
        })).status, peer.mcp);
        assert(status === 401, `after logout the worker's MCP route answers ${status} to the old session cookie, want 401`);
      }
      await tab2.waitForFunction(() => document.querySelector('#session [data-field="state"]').dataset.value === 'not-authenticated', undefined, { timeout: 8000 })
        .catch(() => { throw new Failure('the second tab still shows a session after logout'); });
      return token ? 'old token 401' : 'old cookie 401';
    });

    if (first) {
      await scenario('error', async () => {
        const dead = await freePort();
        await page.fill('#server', `http://127.0.0.1:${dead}/mcp`);
        await page.dispatchEvent('#server', 'change');
        await page.waitForFunction(() => !!window.demo.client, undefined, { timeout: 10000 });
        await page.check('input[name="mode"][value="popup"]');
        await page.click('#connect');
        await page.waitForFunction(() => !document.querySelector('#error').hidden, undefined, { timeout: 20000 });
        const err = await pageError(page);
        assert(err.code === 'transport_error', `error code shown ${err.code}`);
        assert(err.remedy && err.message.includes(`127.0.0.1:${dead}`), `error shown without the URL or a remedy: ${JSON.stringify(err)}`);
        // Text only: no element was created from the message.
        assert(await page.$$eval('#error *', (n) => n.length) === 4, 'the error box holds more elements than its own');
        await page.screenshot({ path: path.join(SHOTS, 'error-state.png'), fullPage: true });
        return err.code;
      });
    }
  } catch (err) {
    if (!Object.values(results).some((r) => r.ok === false)) results.setup = { ok: false, note: err.message };
  } finally {
    await context?.close().catch(() => {});
    for (const p of started.reverse()) await p.stop();
  }
  return results;
}

// Ctrl-C or a kill: exit, so that lib.mjs's exit hook stops every process group started.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    process.stderr.write(`demo e2e: ${signal}, stopping\n`);
    process.exit(130);
  });
}

const t0 = Date.now();
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
const table = [];
try {
  for (const [i, row] of rows.entries()) {
    const r0 = Date.now();
    const results = await runRow(browser, row, i === 0);
    table.push({ ...row, results, ms: Date.now() - r0 });
  }
} finally {
  await browser.close();
}

// The table.
const cell = (r) => (!r ? '—' : r.skip ? 'skip' : !r.ok ? 'FAIL' : `ok ${(r.ms / 1000).toFixed(1)}s`);
const header = ['peer', 'mode', ...SCENARIOS];
const lines = table.map((t) => [t.peer, t.mode, ...SCENARIOS.map((s) => cell(t.results[s]))]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
const fmt = (cols) => cols.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
process.stdout.write(`${fmt(header)}\n${fmt(widths.map((w) => '-'.repeat(w)))}\n${lines.map(fmt).join('\n')}\n`);
let failed = 0;
for (const t of table) {
  for (const [name, r] of Object.entries(t.results)) {
    if (r.ok === false) {
      failed += 1;
      process.stdout.write(`FAIL ${t.peer}/${t.mode} ${name}: ${r.note}\n${(r.diagnostics || []).map((d) => `  console: ${d}\n`).join('')}`);
    } else if (r.note) {
      process.stdout.write(`     ${t.peer}/${t.mode} ${name}: ${r.note}\n`);
    }
  }
}
process.stdout.write(`demo e2e: ${table.length} rows, ${failed} failed, ${((Date.now() - t0) / 1000).toFixed(0)} s; screenshots in www/shots/e2e/\n`);
process.exit(failed ? 1 : 0);
