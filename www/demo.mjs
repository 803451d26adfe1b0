#!/usr/bin/env node
// `make demo`: the local stack on loopback and the demo page.
//
//   the authorization server + MCP server   tests/peers/mcp-stack.mjs --interactive (login form,
//                                           consent page), CORS for the page's origin
//   the edge worker                          worker/build in workerd (miniflare 4), configured
//                                           for that AS: token-mediating /token, BFF /bff/*
//   the page                                 www/ on http://127.0.0.1:$DEMO_PORT/
//
// Ports: DEMO_PORT (8080), DEMO_AS_PORT (9010), DEMO_MCP_PORT (9011), DEMO_WORKER_PORT (9012);
// a busy one is named and the demo exits 1. Prints one URL and runs until Ctrl-C, which stops
// every process it started by PID. Without a display (no DISPLAY) or with DEMO=tour it drives
// the page in headless Chromium instead (connect, call a tool, refresh, step-up, log out),
// prints what the page shows at each step, saves screenshots in www/shots/tour/, and exits.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CHROMIUM, CHROMIUM_ARGS, HERE, callTool, checkPort, connect, openApp, pageError, selectMode,
  sessionPanel, startPeer, startServe, startWorker,
} from './lib.mjs';

const env = (name, fallback) => {
  const v = process.env[name] || String(fallback);
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    process.stderr.write(`demo: ${name}=${v} is not a port number\n`);
    process.exit(2);
  }
  return n;
};
const ports = {
  DEMO_PORT: env('DEMO_PORT', 8080),
  DEMO_AS_PORT: env('DEMO_AS_PORT', 9010),
  DEMO_MCP_PORT: env('DEMO_MCP_PORT', 9011),
  DEMO_WORKER_PORT: env('DEMO_WORKER_PORT', 9012),
};
const tour = process.env.DEMO === 'tour' || !process.env.DISPLAY;
const verbose = process.env.DEMO_VERBOSE === '1';
const say = (line) => process.stdout.write(`${line}\n`);

const running = [];
async function stopAll() {
  for (const p of running.reverse()) await p.stop();
  running.length = 0;
}
// Ctrl-C while a process is starting: main() stops at the next step (so nothing started after
// the signal is left behind); otherwise stop everything now.
class Stopped extends Error {}
let starting = true;
let stopping = false;
const started = (p) => {
  running.push(p);
  if (stopping) throw new Stopped();
  return p;
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    say('\ndemo: stopping');
    if (starting) return;
    await stopAll();
    process.exit(0);
  });
}

async function main() {
  for (const [name, port] of Object.entries(ports)) await checkPort(port, name);
  const origin = `http://127.0.0.1:${ports.DEMO_PORT}`;
  for (const f of ['dist/app.js', '../crates/browser/pkg/edge_oauth_browser.js', '../worker/build/index.js']) {
    if (!fs.existsSync(path.join(HERE, f))) throw new Error(`${f} is missing: run \`make demo\` (it builds it)`);
  }
  const peer = started(await startPeer({ origin, interactive: true, asPort: ports.DEMO_AS_PORT, mcpPort: ports.DEMO_MCP_PORT, verbose }));
  const worker = started(await startWorker({ peer, origin, port: ports.DEMO_WORKER_PORT, verbose }));
  started(await startServe({ port: ports.DEMO_PORT, peer, worker, verbose }));
  starting = false;
  say(`authorization server  ${peer.issuer}${peer.interactive ? ' (login form: any name; consent page)' : ' (approves at once)'}`);
  say(`MCP server            ${peer.mcp}`);
  say(`edge worker (workerd) ${worker.base}`);
  if (!tour) {
    say(`\nOpen ${origin}/  (Ctrl-C stops everything)`);
    await new Promise(() => {});
  }
  say(`page                  ${origin}/\n\nNo display (or DEMO=tour): a headless tour of the page.`);
  await runTour(origin, peer);
}

async function runTour(origin, peer) {
  const shots = path.join(HERE, 'shots/tour');
  fs.rmSync(shots, { recursive: true, force: true });
  fs.mkdirSync(shots, { recursive: true });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  running.push({ stop: () => browser.close().catch(() => {}) });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await openApp(context, origin);
  let n = 0;
  const show = async (title, extra = []) => {
    n += 1;
    const s = await sessionPanel(page);
    say(`\n${n}. ${title}`);
    for (const line of extra) say(`   ${line}`);
    say(`   session: ${s.state}; issuer ${s.issuer}; client ${s.client}`);
    say(`            scopes ${s.scope}; expires ${s.expiry}; refreshes ${s.refreshes}; DPoP ${s.dpop}`);
    say(`            tokens: ${s.storage}`);
    const err = await pageError(page);
    if (err) say(`   error shown: ${err.code}: ${err.message} — ${err.remedy}`);
    const file = path.join(shots, `${String(n).padStart(2, '0')}-${title.split(/[^a-z]+/i).filter(Boolean).slice(0, 3).join('-').toLowerCase()}.png`);
    await page.screenshot({ path: file, fullPage: true });
  };
  await selectMode(page, 'popup');
  const steps = await connect(page, { peer, origin, mode: 'popup' });
  const trace = await page.$$eval('#trace tbody tr', (rows) => rows.map((r) => Array.from(r.cells, (c) => c.textContent)));
  const tools = await page.$$eval('#tools li[data-tool]', (lis) => lis.map((li) => li.dataset.tool));
  await show('Connect (browser-only, popup)', [
    `the AS asked for: ${steps.join(', ')}`,
    `discovery trace (${trace.length} requests):`,
    ...trace.map(([status, what, url, outcome]) => `  ${status.padEnd(6)} ${what}: ${url} -> ${outcome}`),
    `tools: ${tools.join(', ')}`,
  ]);
  const echo = await callTool(page, peer, 'echo', { text: 'hello from the edge' });
  await show('Call a tool: echo', [`result: ${echo.text}`]);
  const who = await callTool(page, peer, 'whoami', {});
  await show('Call a tool: whoami', [`result: ${who.text}`]);
  await page.click('#refresh');
  await page.waitForFunction(() => document.querySelector('#session [data-field="refreshes"]').dataset.value !== '0', undefined, { timeout: 10000 });
  await show('Refresh now');
  if (tools.includes('admin_note')) {
    const admin = await callTool(page, peer, 'admin_note', { text: 'needs mcp:admin' });
    await show('Step-up: admin_note needs mcp:admin', [
      admin.stepUp ? `step-up: signed in again (${(admin.popup || []).join(', ')}), granted ${admin.stepUp}` : 'no step-up happened',
      `result: ${admin.text}`,
    ]);
    if (!admin.stepUp || admin.error) throw new Error(`the step-up on admin_note did not happen: ${JSON.stringify(admin)}`);
  } else {
    say(`\n(step-up skipped: this MCP server has no admin_note tool)`);
  }
  await page.click('#logout');
  await page.waitForFunction(() => document.querySelector('#session [data-field="state"]').dataset.value === 'not-authenticated', undefined, { timeout: 10000 });
  const last = await page.$eval('#log li', (li) => li.textContent);
  await show('Log out', [`event: ${last}`]);
  say(`\nScreenshots: ${path.relative(process.cwd(), shots)}/ (${fs.readdirSync(shots).length} PNG)`);
}

main().then(async () => {
  await stopAll();
  process.exit(0);
}, async (err) => {
  // A child killed by the signal fails its start too: that is the stop, not an error.
  const stopped = err instanceof Stopped || stopping;
  if (!stopped) process.stderr.write(`demo: ${err.message}\n`);
  await stopAll();
  process.exit(stopped ? 0 : 1);
});
