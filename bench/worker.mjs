#!/usr/bin/env node
// The Cloudflare Worker under load: the Rust worker (worker/build, made by `make worker`) and a
// plain JavaScript worker doing the same forwarding (bench/worker-js/index.mjs), each in its own
// fresh workerd (miniflare 4, from tests/worker's lockfile) per row, driven by wrk (Debian
// package) through a socket straight to the worker (Miniflare's `unsafeDirectSockets`), in front
// of a stub authorization server and MCP server in this process. Builds nothing itself.
//
// Usage: node bench/worker.mjs [--seconds N] [--connections N] [--build DIR]
//                          [--rounds N]
//   (also BENCH_WORKER_SECONDS, BENCH_WORKER_CONNECTIONS, BENCH_WORKER_ROUNDS,
//   EDGE_OAUTH_WORKER_BUILD; WBENCH_DEBUG=1 shows wrk's output and refused answers)
// Prints a Markdown table and writes bench/results/worker.json (git-ignored). Reports numbers,
// asserts nothing about them; exits 1 only when the harness fails (a row with errors is shown
// as such). Without a built worker or wrk it says `skipped` and exits 0.

import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';

const ROOT = path.resolve(import.meta.dirname, '..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const SECONDS = Number(arg('seconds', process.env.BENCH_WORKER_SECONDS ?? 4));
// Each row runs once per round, in a fresh workerd; the order of Rust and JS alternates
// between rounds so that drift in the machine's load hits both.
const ROUNDS = Number(arg('rounds', process.env.BENCH_WORKER_ROUNDS ?? 2));
const WARMUP_SECONDS = 1;
const CONNECTIONS = Number(arg('connections', process.env.BENCH_WORKER_CONNECTIONS ?? 16));
const BUILD = path.resolve(arg('build', process.env.EDGE_OAUTH_WORKER_BUILD ?? path.join(ROOT, 'worker/build')));
const JS_WORKER = path.join(ROOT, 'bench/worker-js/index.mjs');
const RESULTS = path.join(ROOT, 'bench/results/worker.json');
const PAGE = 'http://127.0.0.1:8788'; // the token-mediating page's origin (no page is served)
const CLIENT_ID = 'bench-client';
const CLIENT_SECRET = 'bench-secret-0123456789';
const ACCESS_TOKEN = 'at-bench-0123456789abcdefghijklmnopqrstuvwxyz';
const REFRESH_TOKEN = 'rt-bench-0123456789abcdefghijklmnopqrstuvwxyz';
const VERIFIER = 'v'.repeat(43);
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function skip(why) {
  console.log(`\n## Worker under load\n\nskipped: ${why}`);
  process.exit(0);
}
if (!existsSync(path.join(BUILD, 'index.js'))) skip(`no built worker at ${BUILD} (run \`make worker\`)`);
if (spawnSync('wrk', ['--version']).error) skip('wrk is not installed (apt-get install wrk; `make bootstrap` does)');
// miniflare 4 as pinned for the workerd tests (one copy of workerd on disk).
const { Miniflare } = createRequire(path.join(ROOT, 'tests/worker/package.json'))('miniflare');

// --------------------------------------------------------------------------------------------
// The stub upstreams: an authorization server's token endpoint (client_secret_basic checked,
// fixed answers) and an MCP server (the worker's bearer token checked, a fixed tools/list).
// --------------------------------------------------------------------------------------------
const BASIC = `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`;
const tokenBody = (expiresIn) => Buffer.from(JSON.stringify({
  access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: expiresIn, refresh_token: REFRESH_TOKEN, scope: 'mcp:tools',
}));
// /expiring/token: expires_in 0, so every refresh through the worker goes upstream;
// /lasting/token: an hour, so none does.
const TOKEN_BODIES = { '/expiring/token': tokenBody(0), '/lasting/token': tokenBody(3600) };
const MCP_BODY = Buffer.from(JSON.stringify({
  jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'echo', description: 'Echoes its input', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } }] },
}));
const stats = { token: { authorization_code: 0, refresh_token: 0, refused: 0 }, revoke: 0, mcp: { ok: 0, refused: 0 } };
const resetStats = () => {
  Object.assign(stats.token, { authorization_code: 0, refresh_token: 0, refused: 0 });
  Object.assign(stats.mcp, { ok: 0, refused: 0 });
};

function stub(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString();
    const fixed = TOKEN_BODIES[req.url];
    if (req.method === 'POST' && fixed) {
      const grant = new URLSearchParams(body).get('grant_type');
      const ok = req.headers.authorization === BASIC && !req.headers.cookie && !req.headers.origin
        && (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')
        && (grant === 'authorization_code' || grant === 'refresh_token');
      if (!ok) {
        stats.token.refused += 1;
        res.writeHead(401, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end('{"error":"invalid_client"}');
        return;
      }
      stats.token[grant] += 1;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': fixed.length });
      res.end(fixed);
      return;
    }
    if (req.method === 'POST' && req.url === '/revoke') {
      stats.revoke += 1;
      res.writeHead(200).end();
      return;
    }
    if (req.url === '/mcp') {
      const ok = req.method === 'POST' && req.headers.authorization === `Bearer ${ACCESS_TOKEN}` && !req.headers.cookie
        && !req.headers.origin && !req.headers['x-edge-oauth'] && body.includes('"tools/list"');
      if (!ok) {
        stats.mcp.refused += 1;
        res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'application/json' });
        res.end('{"error":"invalid_token"}');
        return;
      }
      stats.mcp.ok += 1;
      res.writeHead(200, {
        'content-type': 'application/json', 'content-length': MCP_BODY.length, 'mcp-session-id': 'bench-session',
        'set-cookie': 'upstream=must-not-reach-the-page',
      });
      res.end(MCP_BODY);
      return;
    }
    res.writeHead(404).end();
  });
}

async function listen(server, port = 0) {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return server.address().port;
}
async function freePort() {
  const srv = createNetServer();
  const port = await listen(srv);
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

// --------------------------------------------------------------------------------------------
// workerd: a fresh instance per row, its process found for CPU time and memory.
// --------------------------------------------------------------------------------------------
function processTable() {
  const table = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' ');
      table.set(Number(d), { comm, ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]) });
    } catch {
      // gone
    }
  }
  return table;
}
// The workerd processes descended from this one (another engineer's workerd is not ours).
function ourWorkerd() {
  const t = processTable();
  const mine = (pid) => {
    for (let p = pid, i = 0; p > 1 && i < 20; p = t.get(p)?.ppid ?? 0, i += 1) if (p === process.pid) return true;
    return false;
  };
  return [...t].filter(([pid, p]) => p.comm === 'workerd' && mine(pid)).map(([pid]) => pid);
}
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : null;
}

function bindings(as, mcp, port, tokenPath, cookieKey) {
  const self = `http://127.0.0.1:${port}`;
  return {
    ALLOWED_ORIGINS: `${PAGE},${self}`,
    PROVIDERS: JSON.stringify([{
      name: 'main', issuer: as, client_id: CLIENT_ID, client_secret_binding: 'MAIN_CLIENT_SECRET',
      auth_method: 'client_secret_basic', token_endpoint: `${as}${tokenPath}`, revocation_endpoint: `${as}/revoke`,
      authorization_endpoint: `${as}/authorize`, redirect_uris: [`${PAGE}/callback`],
    }]),
    MAIN_CLIENT_SECRET: CLIENT_SECRET,
    INSECURE_ALLOW_LOOPBACK: 'true',
    RATE_LIMIT_ADDRESS: 'off',
    RATE_LIMIT_SESSION: 'off',
    BFF_REDIRECT_URI: `${self}/bff/callback`,
    BFF_RETURN_URL: `${self}/`,
    MCP_SERVERS: JSON.stringify([{ name: 'tools', url: `${mcp}/mcp`, provider: 'main', scope: 'mcp:tools' }]),
    BFF_COOKIE_KEY: cookieKey,
    INSECURE_LOOPBACK_COOKIES: 'true',
  };
}

const WORKERS = {
  rust: {
    label: 'Rust (worker/build)',
    options: () => ({
      scriptPath: path.join(BUILD, 'index.js'),
      modulesRoot: BUILD,
      modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
    }),
  },
  js: {
    label: 'JS (bench/worker-js)',
    options: () => ({ scriptPath: JS_WORKER, modulesRoot: path.dirname(JS_WORKER) }),
  },
};

const started = new Set();
async function startWorker(kind, env, port) {
  const before = new Set(ourWorkerd());
  const t0 = performance.now();
  const mf = new Miniflare({
    ...WORKERS[kind].options(),
    modules: true,
    compatibilityDate: '2026-01-01',
    durableObjects: { SESSIONS: { className: 'TokenSession', useSQLite: true } },
    durableObjectsPersist: false,
    bindings: env,
    host: '127.0.0.1',
    port: 0,
    unsafeDirectSockets: [{ host: '127.0.0.1', port }],
    handleRuntimeStdio(stdout, stderr) {
      stdout.resume();
      stderr.resume();
    },
  });
  started.add(mf);
  await mf.ready;
  const readyMs = performance.now() - t0;
  const base = (await mf.unsafeGetDirectURL()).origin;
  // The first answer of this isolate: a CORS preflight (configuration read, routing, no
  // upstream, no Durable Object), then the same preflight warm.
  const preflight = async () => {
    const t = performance.now();
    const res = await fetch(`${base}/token`, {
      method: 'OPTIONS', headers: { origin: PAGE, 'access-control-request-method': 'POST' },
    });
    await res.arrayBuffer();
    if (res.status !== 204) throw new Error(`${kind}: preflight answered ${res.status}`);
    return performance.now() - t;
  };
  const firstMs = await preflight();
  const firstAnswerMs = performance.now() - t0;
  const warm = [];
  for (let i = 0; i < 21; i += 1) warm.push(await preflight());
  const pids = ourWorkerd().filter((p) => !before.has(p));
  if (pids.length !== 1) throw new Error(`expected one new workerd process, found ${pids.length}`);
  return { mf, base, pid: pids[0], cold: { readyMs, firstMs, firstAnswerMs, warmMs: median(warm) } };
}
async function stopWorker(w) {
  await w.mf.dispose();
  started.delete(w.mf);
}

// --------------------------------------------------------------------------------------------
// Session setup, as a page would: code exchanges for the token-mediating path; a login and its
// callback for the Rust BFF (the JS baseline has a setup route instead).
// --------------------------------------------------------------------------------------------
async function exchange(base) {
  const res = await fetch(`${base}/token`, {
    method: 'POST',
    headers: { origin: PAGE, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: `c-${crypto.randomUUID()}`, redirect_uri: `${PAGE}/callback`, code_verifier: VERIFIER }),
  });
  const json = await res.json();
  if (res.status !== 200 || !json.session_handle) throw new Error(`code exchange: ${res.status} ${JSON.stringify(json)}`);
  return json.session_handle;
}

async function bffCookie(kind, base) {
  if (kind === 'js') {
    const res = await fetch(`${base}/bench/bff-session`, {
      method: 'POST',
      body: new URLSearchParams({ code: `c-${crypto.randomUUID()}`, mcp_server: 'tools', redirect_uri: `${base}/bff/callback` }),
    });
    const json = await res.json();
    if (res.status !== 200) throw new Error(`JS BFF setup: ${res.status} ${JSON.stringify(json)}`);
    return json.cookie;
  }
  const login = await fetch(`${base}/bff/login`, {
    method: 'POST',
    headers: { origin: base, 'x-edge-oauth': '1', 'content-type': 'application/json' },
    body: JSON.stringify({ mcp_server: 'tools' }),
  });
  const { authorization_url: url } = await login.json();
  if (login.status !== 200) throw new Error(`BFF login: ${login.status}`);
  const loginCookie = login.headers.getSetCookie()[0].split(';')[0];
  const state = new URL(url).searchParams.get('state');
  const cb = await fetch(`${base}/bff/callback?code=c-${crypto.randomUUID()}&state=${encodeURIComponent(state)}`, {
    redirect: 'manual', headers: { cookie: loginCookie },
  });
  await cb.arrayBuffer();
  const session = cb.headers.getSetCookie().find((c) => c.startsWith('edge-oauth-session='));
  if (cb.status !== 303 || !session) throw new Error(`BFF callback: ${cb.status} ${cb.headers.get('location')}`);
  return session.split(';')[0];
}

// --------------------------------------------------------------------------------------------
// wrk, with a Lua script per scenario; `done` prints one JSON line.
// --------------------------------------------------------------------------------------------
const lua = (s) => JSON.stringify(s); // ASCII only: a JSON string is a Lua string literal
const DONE_LUA = `
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nRESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`;

// Refresh through a session handle. Handles rotate with every upstream refresh, so the script
// keeps a pool of current handles, one per connection: a request takes one, its answer gives
// the successor back (each connection has one request in flight).
function tokenScript(handles) {
  return `
local pool = {${handles.map(lua).join(',')}}
local headers = {["Origin"] = ${lua(PAGE)}, ["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = "page_session=must-not-be-forwarded"}
function request()
  local h = table.remove(pool) or "missing"
  return wrk.format("POST", "/token", headers, "grant_type=refresh_token&refresh_token=" .. h)
end
function response(status, hdrs, body)
  local h = string.match(body, '"session_handle":"([^"]+)"')
  if h then table.insert(pool, h) elseif os.getenv("WBENCH_DEBUG") then io.stderr:write(status .. " " .. body .. "\\n") end
end
${DONE_LUA}`;
}

// tools/list through /bff/mcp/tools with the session cookie.
function mcpScript(cookie, origin) {
  return `
local headers = {["Origin"] = ${lua(origin)}, ["X-Edge-OAuth"] = "1", ["Cookie"] = ${lua(`${cookie}; page_session=must-not-be-forwarded`)},
  ["Content-Type"] = "application/json", ["Accept"] = "application/json, text/event-stream", ["MCP-Protocol-Version"] = "2025-06-18"}
local body = ${lua(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }))}
wrk.method = "POST"
wrk.path = "/bff/mcp/tools"
wrk.headers = headers
wrk.body = body
${DONE_LUA}`;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'edge-oauth-wbench-'));
async function wrk(base, script, seconds) {
  const file = path.join(tmp, `s-${crypto.randomUUID()}.lua`);
  writeFileSync(file, script);
  const out = await new Promise((resolve, reject) => {
    // One wrk thread (2 cores: workerd's one thread, this process's stubs, wrk).
    const child = spawn('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '5s', '-s', file, `${base}/`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d) => { text += d; });
    child.stderr.on('data', (d) => { text += d; if (process.env.WBENCH_DEBUG) process.stderr.write(d); });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`))));
  });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`no result from wrk: ${out}`);
  const r = JSON.parse(line.slice(7));
  r.errors = r.connect + r.read + r.write + r.status + r.timeout;
  r.rps = r.requests / (r.duration_us / 1e6);
  return r;
}

// --------------------------------------------------------------------------------------------
// The rows.
// --------------------------------------------------------------------------------------------
const SCENARIOS = [
  {
    id: 'token-refresh',
    title: '`POST /token` refresh, upstream every time',
    tokenPath: '/expiring/token',
    what: 'POST /token grant_type=refresh_token with a session handle: Origin and form checks, the session\'s Durable Object (SQLite read, handle compared), an upstream refresh at the stub AS (client_secret_basic; its tokens have expires_in 0), the answer checked, the handle rotated, the record written and the idle alarm set, the new handle answered. The AS counts one refresh per request.',
    setup: async (w) => ({ warm: await sessions(w.base), run: await sessions(w.base) }),
    script: (s, phase) => tokenScript(s[phase]),
    upstreamPerRequest: () => stats.token.refresh_token,
  },
  {
    id: 'token-held',
    title: '`POST /token` refresh, token still valid',
    tokenPath: '/lasting/token',
    what: 'The same request while the access token is not due (the stub\'s tokens last an hour): the Durable Object reads and checks, answers the token it holds; no upstream request, no write.',
    setup: async (w) => {
      const s = await sessions(w.base);
      return { warm: s, run: s };
    },
    script: (s, phase) => tokenScript(s[phase]),
    upstreamPerRequest: () => stats.token.refresh_token,
  },
  {
    id: 'bff-mcp',
    title: '`POST /bff/mcp/tools` (tools/list)',
    tokenPath: '/lasting/token',
    what: 'CSRF header and Origin, the AES-256-GCM session cookie unsealed (WebCrypto), the body read, the access token from the session\'s Durable Object (not due: no upstream refresh), the stub MCP server called with the allowlisted headers and the bearer token (it checks both), its answer passed back with the allowlisted headers (its Set-Cookie dropped) and credentialed CORS.',
    setup: async (w, kind) => ({ cookie: await bffCookie(kind, w.base) }),
    script: (s, _phase, w) => mcpScript(s.cookie, w.base),
    upstreamPerRequest: () => stats.mcp.ok,
  },
];

// One session per connection, and two spare: wrk calls `request()` once more than it sends
// (a handle taken then is never presented, so it stays current).
async function sessions(base) {
  const out = [];
  for (let i = 0; i < CONNECTIONS + 2; i += 1) out.push(await exchange(base));
  return out;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function runRow(scenario, kind, upstream) {
  const port = await freePort();
  const cookieKey = crypto.randomBytes(32).toString('base64');
  const w = await startWorker(kind, bindings(upstream.as, upstream.mcp, port, scenario.tokenPath, cookieKey), port);
  try {
    const s = await scenario.setup(w, kind);
    await wrk(w.base, scenario.script(s, 'warm', w), WARMUP_SECONDS);
    resetStats();
    const cpu0 = cpuSeconds(w.pid);
    const stub0 = process.cpuUsage();
    const r = await wrk(w.base, scenario.script(s, 'run', w), SECONDS);
    const cpu = cpuSeconds(w.pid) - cpu0;
    const stubCpu = process.cpuUsage(stub0);
    const upstreamCalls = scenario.upstreamPerRequest();
    return {
      scenario: scenario.id, worker: kind, ...r,
      cpu_s: cpu, cpu_us_per_request: r.requests ? (cpu * 1e6) / r.requests : null,
      // This process (the stubs, and the harness idling): not the bottleneck, not in the table.
      stub_cpu_us_per_request: r.requests ? (stubCpu.user + stubCpu.system) / r.requests : null,
      upstream_calls: upstreamCalls, upstream_refused: stats.token.refused + stats.mcp.refused,
      workerd_rss_mb: rssMb(w.pid), cold: w.cold,
    };
  } finally {
    await stopWorker(w);
  }
}

// --------------------------------------------------------------------------------------------
// Output.
// --------------------------------------------------------------------------------------------
const fmt = (n, d = 0) => (n === null || n === undefined || Number.isNaN(n) ? 'n/a' : n.toFixed(d));
const ms = (us) => fmt(us / 1000, 2);

async function main() {
  const wasm = readFileSync(path.join(BUILD, 'index_bg.wasm'));
  const size = { wasm_bytes: wasm.length, gzip_bytes: gzipSync(wasm, { level: 9 }).length };
  const as = createServer({ keepAliveTimeout: 30_000 }, stub);
  const asUrl = `http://127.0.0.1:${await listen(as)}`;
  const upstream = { as: asUrl, mcp: asUrl };
  const runs = [];
  const t0 = performance.now();
  try {
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const scenario of SCENARIOS) {
        for (const kind of round % 2 ? ['js', 'rust'] : ['rust', 'js']) {
          runs.push({ round, ...(await runRow(scenario, kind, upstream)) });
        }
      }
    }
  } finally {
    as.close();
    as.closeAllConnections();
  }
  const wrkVersion = spawnSync('wrk', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0].split(' [')[0];
  const env = `Node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, load ${os.loadavg()[0].toFixed(2)}, ${wrkVersion}, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s after a ${WARMUP_SECONDS} s warm-up, a fresh workerd per run, ${ROUNDS} rounds (req/s and CPU over all rounds, p50 the median of the rounds', p99 the worst)`;
  // A row: its runs pooled.
  const rows = [];
  for (const scenario of SCENARIOS) {
    for (const kind of ['rust', 'js']) {
      const rs = runs.filter((r) => r.scenario === scenario.id && r.worker === kind);
      const sum = (f) => rs.reduce((a, r) => a + f(r), 0);
      const requests = sum((r) => r.requests);
      rows.push({
        scenario: scenario.id, worker: kind, runs: rs.length, requests,
        rps: requests / (sum((r) => r.duration_us) / 1e6),
        p50_us: median(rs.map((r) => r.p50_us)), p99_us: Math.max(...rs.map((r) => r.p99_us)),
        errors: sum((r) => r.errors + r.upstream_refused),
        cpu_us_per_request: (sum((r) => r.cpu_s) * 1e6) / requests,
        upstream_per_request: sum((r) => r.upstream_calls) / requests,
      });
    }
  }

  const lines = [];
  lines.push('', '## Worker under load (wrk -> workerd direct socket -> stub upstream on loopback)', '', env, '');
  lines.push('| path | worker | req/s | p50 ms | p99 ms | CPU µs/req | upstream/req | errors | Rust/JS req/s | Rust/JS p50 | Rust/JS CPU |');
  lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const scenario of SCENARIOS) {
    const rust = rows.find((r) => r.scenario === scenario.id && r.worker === 'rust');
    const js = rows.find((r) => r.scenario === scenario.id && r.worker === 'js');
    for (const r of [rust, js]) {
      const ratio = r === rust
        ? `| ${fmt(rust.rps / js.rps, 2)} | ${fmt(rust.p50_us / js.p50_us, 2)} | ${fmt(rust.cpu_us_per_request / js.cpu_us_per_request, 2)} |`
        : '| | | |';
      lines.push(`| ${scenario.title} | ${r.worker === 'rust' ? 'Rust' : 'JS'} | ${fmt(r.rps)} | ${ms(r.p50_us)} | ${ms(r.p99_us)} | ${fmt(r.cpu_us_per_request)} | ${fmt(r.upstream_per_request, 2)} | ${r.errors} ${ratio}`);
    }
  }
  const cold = (kind) => {
    const c = runs.filter((r) => r.worker === kind).map((r) => r.cold);
    return {
      ready_ms: median(c.map((x) => x.readyMs)), first_request_ms: median(c.map((x) => x.firstMs)),
      first_answer_ms: median(c.map((x) => x.firstAnswerMs)), warm_request_ms: median(c.map((x) => x.warmMs)), samples: c.length,
    };
  };
  const coldRust = cold('rust');
  const coldJs = cold('js');
  lines.push('');
  lines.push(`Rust worker size: ${size.wasm_bytes} bytes wasm, ${size.gzip_bytes} bytes gzip (Node zlib level 9; \`make worker\` prints gzip(1) -9, ~1 KB less) = ${(size.gzip_bytes / 1024).toFixed(0)} KB of a 400 KB budget.`);
  lines.push('');
  lines.push('| cold start (median over the fresh instances) | miniflare start -> ready | first request | start -> first answer | the same request warm |');
  lines.push('| --- | ---: | ---: | ---: | ---: |');
  for (const [name, c] of [['Rust', coldRust], ['JS', coldJs]]) {
    lines.push(`| ${name} (${c.samples} starts; the request is a /token CORS preflight) | ${fmt(c.ready_ms)} ms | ${fmt(c.first_request_ms, 1)} ms | ${fmt(c.first_answer_ms)} ms | ${fmt(c.warm_request_ms, 2)} ms |`);
  }
  lines.push('');
  for (const s of SCENARIOS) lines.push(`- ${s.title}: ${s.what}`);
  lines.push('- p50 is the figure to compare: wrk\'s p99 catches workerd\'s stalls under sustained load (its memory grows: workerd RSS after each row is in the JSON) and the other engineers\' load on these 2 shared cores. CPU is workerd\'s process CPU time (user+sys, Durable Objects included, the stubs and wrk excluded) over the run, per request; 10 ms tick resolution.');
  console.log(lines.join('\n'));

  mkdirSync(path.dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, JSON.stringify({
    date: new Date().toISOString(), environment: env, seconds: SECONDS, warmup_seconds: WARMUP_SECONDS, connections: CONNECTIONS, rounds: ROUNDS,
    size, cold_start: { rust: coldRust, js: coldJs }, scenarios: SCENARIOS.map(({ id, title, what }) => ({ id, title, what })),
    rows, runs, elapsed_s: (performance.now() - t0) / 1000,
  }, null, 2));
  console.log(`\n(bench/results/worker.json; ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}

async function cleanup() {
  for (const mf of started) await mf.dispose().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    await cleanup();
    process.exit(130);
  });
}
try {
  await main();
  await cleanup();
} catch (err) {
  console.error(`bench/worker.mjs: ${err.stack ?? err}`);
  await cleanup();
  process.exit(1);
}
