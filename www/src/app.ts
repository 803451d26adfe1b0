// The demo MCP web client: the edge-oauth package under the MCP TypeScript SDK's client, in
// any of RFC 10017's three architectures. Everything from a server is set as text.
import init, {
  EdgeOAuth,
  createAuthFetch,
  type EdgeOAuthDiscoveryStep,
  type EdgeOAuthStatus,
} from 'edge-oauth';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { BACK_FROM_SIGN_IN, describeError, loadConfig, loadSaved, MODES, optionsFor, save, type DemoConfig, type Mode } from './settings.js';

const $ = <T extends HTMLElement>(sel: string): T => {
  const el = document.querySelector<T>(sel);
  if (!el) throw new Error(`missing ${sel}`);
  return el;
};
const el = {
  form: $<HTMLFormElement>('#connect-form'),
  server: $<HTMLInputElement>('#server'),
  connect: $<HTMLButtonElement>('#connect'),
  connState: $<HTMLElement>('#conn-state'),
  modeNote: $<HTMLElement>('#mode-note'),
  error: $<HTMLElement>('#error'),
  refresh: $<HTMLButtonElement>('#refresh'),
  logout: $<HTMLButtonElement>('#logout'),
  trace: $<HTMLTableSectionElement>('#trace tbody'),
  traceNote: $<HTMLElement>('#trace-note'),
  tools: $<HTMLUListElement>('#tools'),
  callForm: $<HTMLFormElement>('#call-form'),
  tool: $<HTMLSelectElement>('#tool'),
  args: $<HTMLTextAreaElement>('#args'),
  call: $<HTMLButtonElement>('#call'),
  result: $<HTMLElement>('#result'),
  log: $<HTMLOListElement>('#log'),
};

const MODE_NOTES: Record<Mode, string> = {
  popup: 'Browser-only: this page is the OAuth client (PKCE, DCR). The login opens in a popup; the refresh token is sealed in IndexedDB under a non-extractable key, the access token stays in memory.',
  redirect: 'Browser-only: the same, but the whole page goes to the authorization server and comes back through /callback.html.',
  'token-mediating': 'Token-mediating: this page runs the authorization request; the edge worker exchanges the code and refreshes with its confidential client and keeps the refresh token. The page holds the access token and an opaque session handle.',
  bff: 'Backend-for-frontend: the edge worker is the OAuth client and keeps every token; this page holds only an HttpOnly session cookie and sends MCP requests through the worker.',
};

interface State {
  config: DemoConfig;
  mode: Mode;
  serverUrl: string;
  client?: EdgeOAuth;
  /** Resolves once `client` matches the current settings. */
  clientReady: Promise<EdgeOAuth | undefined>;
  status?: EdgeOAuthStatus;
  mcp?: Client;
  transport?: StreamableHTTPClientTransport;
  connecting: boolean;
}
const state: State = {
  config: {},
  mode: 'popup',
  serverUrl: '',
  clientReady: Promise.resolve(undefined),
  connecting: false,
};

// ---- small renderers ------------------------------------------------------------------------

function log(what: string, detail = ''): void {
  const li = document.createElement('li');
  const b = document.createElement('b');
  b.textContent = what;
  li.append(`${new Date().toLocaleTimeString()} `, b, detail ? ` ${detail}` : '');
  el.log.prepend(li);
  while (el.log.children.length > 60) el.log.lastElementChild?.remove();
}

function showError(e: unknown, context: string): void {
  const shown = describeError(e);
  el.error.hidden = false;
  $('#error .code').textContent = shown.code;
  $('#error .message').textContent = `${context}: ${shown.message}`;
  $('#error .remedy').textContent = shown.remedy;
  el.connState.dataset.state = 'error';
  log(`error ${shown.code}`, context);
  window.demo.lastError = shown;
}

function clearError(): void {
  el.error.hidden = true;
}

function field(name: string, text: string, value?: string): HTMLElement {
  const dd = $<HTMLElement>(`#session [data-field="${name}"]`);
  dd.textContent = text;
  if (value !== undefined) dd.dataset.value = value;
  return dd;
}

const SOURCES: Record<string, string> = {
  'pre-registered': 'pre-registered',
  cimd: 'Client ID Metadata Document',
  dcr: 'dynamic registration (RFC 7591)',
};

function storageText(s: EdgeOAuthStatus): string {
  switch (s.architecture) {
    case 'bff':
      return 'edge: every token in the worker’s Durable Object; this page: an HttpOnly session cookie';
    case 'token-mediating':
      return `access token: memory; refresh token: edge (worker Durable Object); session handle: ${s.storage === 'indexeddb' ? 'encrypted IndexedDB' : `memory (${s.storageReason ?? 'no IndexedDB'})`}`;
    default:
      return s.storage === 'indexeddb'
        ? 'access token: memory; refresh token: encrypted IndexedDB (AES-GCM, non-extractable key)'
        : `memory only (${s.storageReason ?? 'IndexedDB unavailable'})`;
  }
}

function renderExpiry(): void {
  const at = state.status?.expiresAt;
  const dd = $<HTMLElement>('#session [data-field="expiry"]');
  if (!at || state.status?.state === 'not-authenticated') {
    dd.textContent = '—';
    dd.classList.remove('soon');
    return;
  }
  const left = Math.round(at - Date.now() / 1000);
  const mmss = (n: number) => `${Math.floor(n / 60)}:${String(n % 60).padStart(2, '0')}`;
  dd.textContent = left > 0 ? `in ${mmss(left)}` : `expired ${mmss(-left)} ago (refreshed on next use)`;
  dd.dataset.secondsLeft = String(left);
  dd.classList.toggle('soon', left <= 30);
}

function renderStatus(): void {
  const s = state.status;
  const connected = !!state.mcp;
  el.connState.dataset.state = state.connecting ? 'busy' : connected ? 'connected' : el.connState.dataset.state === 'error' ? 'error' : 'idle';
  el.connState.textContent = state.connecting ? 'connecting…' : connected ? 'connected' : 'not connected';
  el.refresh.disabled = !s || s.state === 'not-authenticated' || s.architecture === 'bff';
  el.logout.disabled = !s || s.state === 'not-authenticated';
  el.call.disabled = el.tool.disabled = !connected;
  if (!s) return;
  field('state', s.state, s.state);
  field('issuer', s.issuer ?? '—');
  const source = s.architecture === 'bff'
    ? 'the worker’s confidential client'
    : s.clientSource ? SOURCES[s.clientSource] : '';
  field('client', s.clientId ? `${s.clientId} (${source})` : s.architecture === 'bff' && s.state === 'authenticated' ? source : '—', s.clientSource ?? '');
  field('scope', s.stepUpScope ? `${s.scope ?? '—'} (the server asked for ${s.stepUpScope})` : s.scope ?? '—', s.scope ?? '');
  field('refreshes', s.architecture === 'bff' ? 'by the worker (not visible to the page)' : String(s.refreshCount), String(s.refreshCount));
  field('storage', storageText(s));
  field('dpop', s.architecture === 'bff' ? 'n/a (the page holds no token)' : s.state === 'not-authenticated' ? '—' : s.dpopBound ? 'yes (RFC 9449)' : 'no (bearer)');
  field('lock', s.lock === 'web-locks' ? 'Web Locks (one refresh across tabs)' : s.lock === 'tab' ? 'this tab only' : 'the worker (Durable Object)');
  renderExpiry();
}

function renderTrace(steps: EdgeOAuthDiscoveryStep[], note: string): void {
  el.trace.replaceChildren();
  for (const step of steps) {
    const tr = document.createElement('tr');
    const cells = [step.status === undefined ? 'none' : String(step.status), step.what, step.url, step.outcome];
    cells.forEach((text, i) => {
      const td = document.createElement('td');
      td.textContent = text;
      if (i === 0) td.className = `s${step.status === undefined ? 0 : String(step.status)[0]}`;
      tr.append(td);
    });
    el.trace.append(tr);
  }
  el.traceNote.textContent = note;
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
const TRACE_KEY = 'edge-oauth-demo:trace';
function saveTrace(): void {
  const steps = state.client?.discoveryTrace() ?? [];
  if (steps.length) sessionStorage.setItem(TRACE_KEY, JSON.stringify({ steps, at: Date.now(), mode: state.mode }));
}
function showTrace(): void {
  if (state.mode === 'bff') {
    renderTrace([], 'BFF: the worker discovers and registers; this page makes no OAuth request.');
    return;
  }
  const live = state.client?.discoveryTrace() ?? [];
  if (live.length) {
    saveTrace();
    renderTrace(live, `${plural(live.length, 'request')} at the last discovery (this page).`);
    return;
  }
  try {
    const saved = JSON.parse(sessionStorage.getItem(TRACE_KEY) || 'null');
    if (saved?.mode === state.mode && Array.isArray(saved.steps)) {
      renderTrace(saved.steps, `${plural(saved.steps.length, 'request')} at the discovery of ${new Date(saved.at).toLocaleTimeString()} (before this page loaded).`);
      return;
    }
  } catch { /* nothing saved */ }
  renderTrace([], 'Runs at login: each URL tried, its status, what it advertised.');
}

async function refreshStatus(): Promise<EdgeOAuthStatus | undefined> {
  const client = state.client;
  if (!client) return undefined;
  try {
    const s = await client.status();
    if (client === state.client) {
      state.status = s;
      if (s.state === 'not-authenticated' && state.mcp) await disconnect('signed out');
      renderStatus();
    }
    return s;
  } catch (e) {
    showError(e, 'status');
    return undefined;
  }
}

// ---- the client, the MCP connection ---------------------------------------------------------

function settingsChanged(): void {
  const mode = (el.form.elements.namedItem('mode') as RadioNodeList).value as Mode;
  const serverUrl = el.server.value.trim();
  if (mode === state.mode && serverUrl === state.serverUrl && state.client) return;
  state.mode = mode;
  state.serverUrl = serverUrl;
  save({ mode, serverUrl });
  el.modeNote.textContent = MODE_NOTES[mode];
  void disconnect();
  const old = state.client;
  state.client = undefined;
  state.status = undefined;
  old?.free();
  state.clientReady = (async () => {
    if (!serverUrl) return undefined;
    try {
      const client = await EdgeOAuth.create(optionsFor(mode, serverUrl, state.config));
      if (mode !== state.mode || serverUrl !== state.serverUrl) {
        client.free();
        return undefined;
      }
      state.client = client;
      window.demo.client = client;
      client.onChange(() => {
        void refreshStatus();
        showTrace();
      });
      clearError();
      showTrace();
      await refreshStatus();
      return client;
    } catch (e) {
      showError(e, 'setting up the client');
      return undefined;
    }
  })();
}

async function disconnect(why?: string): Promise<void> {
  const mcp = state.mcp;
  state.mcp = undefined;
  state.transport = undefined;
  el.tools.replaceChildren(Object.assign(document.createElement('li'), { className: 'empty', textContent: 'Connect to list the server’s tools.' }));
  el.tool.replaceChildren();
  el.result.textContent = '—';
  el.result.classList.remove('tool-error');
  if (mcp) {
    await mcp.close().catch(() => {});
    if (why) log('disconnected', why);
  }
  renderStatus();
}

async function connectMcp(): Promise<void> {
  const client = state.client;
  if (!client) return;
  state.connecting = true;
  renderStatus();
  try {
    const transport = new StreamableHTTPClientTransport(new URL(state.serverUrl), { fetch: createAuthFetch(client) });
    const mcp = new Client({ name: 'edge-oauth demo', version: '0.1.0' });
    await mcp.connect(transport);
    const { tools } = await mcp.listTools();
    state.mcp = mcp;
    state.transport = transport;
    el.tools.replaceChildren();
    el.tool.replaceChildren();
    for (const tool of tools) {
      const li = document.createElement('li');
      li.textContent = tool.name;
      li.dataset.tool = tool.name;
      if (tool.description) {
        const small = document.createElement('small');
        small.textContent = tool.description;
        li.append(small);
      }
      li.addEventListener('click', () => { el.tool.value = tool.name; el.args.value = exampleArgs(tool.name); });
      el.tools.append(li);
      el.tool.append(new Option(tool.name, tool.name));
    }
    if (tools.length) el.args.value = exampleArgs(el.tool.value);
    const version = mcp.getServerVersion();
    log('connected', `${version?.name ?? 'MCP server'} ${version?.version ?? ''}: ${tools.length} tools`);
    clearError();
  } catch (e) {
    showError(e, 'connecting');
  } finally {
    state.connecting = false;
    await refreshStatus();
    showTrace();
  }
}

function exampleArgs(tool: string): string {
  return tool === 'echo' || tool === 'admin_note' ? JSON.stringify({ text: 'hello from the edge' }) : '{}';
}

// Connect: in popup mode the login window must open inside this click, before any await.
function onConnect(ev: SubmitEvent): void {
  ev.preventDefault();
  settingsChanged();
  const client = state.client;
  if (!client) {
    void state.clientReady.then((c) => c && log('ready', 'click Connect again'));
    return;
  }
  clearError();
  if (state.status?.state === 'authenticated') {
    void connectMcp();
    return;
  }
  log('sign-in', state.mode === 'popup' || state.mode === 'token-mediating' ? 'in a popup' : 'by redirect');
  state.connecting = true;
  renderStatus();
  client.login({ returnTo: location.href }).then(
    async () => {
      log('signed in');
      showTrace();
      await connectMcp();
    },
    (e) => {
      state.connecting = false;
      renderStatus();
      showError(e, 'signing in');
      showTrace();
    },
  );
}

// BFF and redirect: a 403 insufficient_scope makes the package leave for a step-up sign-in (the
// worker's, or the authorization server's) in the middle of a call; the call is kept here and
// made again once the page is back.
const PENDING_CALL = 'edge-oauth-demo:pending-call';
interface PendingCall { name: string; args: Record<string, unknown>; before: string; at: number }
function takePendingCall(): PendingCall | undefined {
  const raw = sessionStorage.getItem(PENDING_CALL);
  sessionStorage.removeItem(PENDING_CALL);
  try {
    const p = JSON.parse(raw || 'null') as PendingCall | null;
    // The worker's login lives 10 minutes.
    return p && typeof p.name === 'string' && Date.now() - p.at < 15 * 60 * 1000 ? p : undefined;
  } catch {
    return undefined;
  }
}

function stepUpMarked(): boolean {
  for (let i = 0; i < sessionStorage.length; i += 1) {
    if (sessionStorage.key(i)?.startsWith('edge-oauth:bff-step-up:')) return true;
  }
  return false;
}
/** Back from a redirect sign-in this minute (the callback page said so; read once)? */
function backFromSignIn(): boolean {
  const at = Number(sessionStorage.getItem(BACK_FROM_SIGN_IN));
  sessionStorage.removeItem(BACK_FROM_SIGN_IN);
  return Number.isFinite(at) && Math.abs(Date.now() - at) < 60 * 1000;
}
function scopeGrew(before: string, after: string): boolean {
  const had = new Set(before.split(' ').filter(Boolean));
  return after.split(' ').some((s) => s && !had.has(s));
}

async function onCall(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  if (!state.mcp) return;
  const name = el.tool.value;
  let args: Record<string, unknown>;
  try {
    args = JSON.parse(el.args.value || '{}');
  } catch (e) {
    showError(Object.assign(new Error(`arguments are not JSON: ${(e as Error).message}`), { code: 'invalid_arguments', recovery: 'refused' }), `calling ${name}`);
    return;
  }
  await callTool(name, args, state.status?.scope ?? '');
}

async function callTool(name: string, args: Record<string, unknown>, before: string): Promise<void> {
  const mcp = state.mcp;
  if (!mcp) return;
  if (state.mode === 'bff' || state.mode === 'redirect') sessionStorage.setItem(PENDING_CALL, JSON.stringify({ name, args, before, at: Date.now() }));
  el.result.textContent = `calling ${name}…`;
  el.result.classList.remove('tool-error');
  el.call.disabled = true;
  try {
    const out = await mcp.callTool({ name, arguments: args });
    const content = Array.isArray(out.content) ? out.content : [];
    const text = content.map((c: { type: string; text?: string }) => (c.type === 'text' ? c.text : `[${c.type}]`)).join('\n');
    el.result.textContent = text || JSON.stringify(out);
    el.result.classList.toggle('tool-error', !!out.isError);
    el.result.dataset.tool = name;
    clearError();
    log(`called ${name}`, out.isError ? '(tool error)' : '');
  } catch (e) {
    el.result.textContent = '—';
    showError(e, `calling ${name}`);
  } finally {
    sessionStorage.removeItem(PENDING_CALL);
    const s = await refreshStatus();
    const added = (s?.scope ?? '').split(' ').filter((x) => x && !before.split(' ').includes(x));
    if (before && added.length) {
      log('step-up', `the server asked for more scope; signed in again and granted ${added.join(' ')}`);
      el.result.dataset.stepUp = added.join(' ');
    }
    showTrace();
    renderStatus();
  }
}

async function onRefresh(): Promise<void> {
  const client = state.client;
  if (!client) return;
  el.refresh.disabled = true;
  try {
    const renewed = await client.refresh();
    // The panel first, then the event: whoever watches the events sees the new counts.
    await refreshStatus();
    log('refreshed', renewed
      ? 'new access token'
      : state.mode === 'token-mediating'
        ? 'the worker answered with the access token it holds (it refreshes upstream when that one is due)'
        : 'another tab had just refreshed: its token taken over');
    clearError();
  } catch (e) {
    await refreshStatus();
    showError(e, 'refreshing');
  }
}

async function onLogout(): Promise<void> {
  const client = state.client;
  if (!client) return;
  el.logout.disabled = true;
  await disconnect();
  try {
    const out = await client.logout();
    log('logged out', state.mode === 'bff'
      ? 'the worker revoked the grant and cleared the session'
      : `${out.revoked} token(s) revoked${out.revocationError ? `; revocation failed: ${out.revocationError.code}` : ''}`);
    clearError();
  } catch (e) {
    showError(e, 'logging out');
  }
  await refreshStatus();
}

// ---- start -----------------------------------------------------------------------------------

declare global {
  interface Window {
    demo: {
      ready: Promise<void>;
      client?: EdgeOAuth;
      lastError?: { code: string; message: string; remedy: string };
      connected(): boolean;
    };
  }
}

window.demo = {
  ready: Promise.resolve(),
  connected: () => !!state.mcp,
};
window.demo.ready = (async () => {
  await init();
  state.config = await loadConfig();
  const saved = loadSaved();
  el.server.value = saved.serverUrl || state.config.serverUrl || '';
  const mode = MODES.includes(saved.mode as Mode) ? (saved.mode as Mode) : 'popup';
  (el.form.elements.namedItem('mode') as RadioNodeList).value = mode;
  el.form.addEventListener('submit', onConnect);
  el.form.addEventListener('change', (ev) => { if ((ev.target as HTMLInputElement).name === 'mode') settingsChanged(); });
  el.server.addEventListener('change', settingsChanged);
  el.callForm.addEventListener('submit', (ev) => void onCall(ev));
  el.tool.addEventListener('change', () => { el.args.value = exampleArgs(el.tool.value); });
  el.refresh.addEventListener('click', () => void onRefresh());
  el.logout.addEventListener('click', () => void onLogout());
  // A redirect login leaves the page from inside login(): keep its discovery trace.
  addEventListener('pagehide', saveTrace);
  setInterval(renderExpiry, 1000);
  setInterval(() => { if (!document.hidden) void refreshStatus(); }, 5000);
  settingsChanged();
  await state.clientReady;
  // Back from the worker's sign-in with its refusal (BFF): shown, and taken off the URL.
  const given = new URLSearchParams(location.search).get('edge_oauth_error');
  // Only a code is shown from the URL (anyone can link here with any text).
  const refused = given && /^[a-z_]{1,64}$/.test(given) ? given : given ? 'invalid_error_code' : null;
  if (given) {
    const clean = new URL(location.href);
    clean.searchParams.delete('edge_oauth_error');
    history.replaceState(history.state, '', clean);
  }
  // Back from a redirect login, a reload, or a second tab: a session is there, connect.
  const pending = takePendingCall();
  const signedIn = backFromSignIn();
  if (state.status?.state === 'authenticated') await connectMcp();
  // Back from a step-up sign-in: the call that asked for it, once more. Only when this is the
  // return from one (BFF: the package's step-up mark is set; redirect: the callback page just
  // sent the page back) and the scope grew: a reload or a crash mid-call must not make a tool
  // run again by itself.
  const steppedUp = state.mode === 'bff' ? stepUpMarked() : signedIn;
  if (pending && state.mcp && !refused && steppedUp && scopeGrew(pending.before, state.status?.scope ?? '')) {
    log('step-up', `back from the sign-in for more scope; calling ${pending.name} again`);
    el.tool.value = pending.name;
    el.args.value = JSON.stringify(pending.args);
    await callTool(pending.name, pending.args, pending.before);
  }
  if (refused) showError(Object.assign(new Error(`the worker's sign-in ended with ${refused}`), { code: refused, recovery: 'reauthenticate' }), 'signing in');
})().catch((e) => showError(e, 'starting'));
