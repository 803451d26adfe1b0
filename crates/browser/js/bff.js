// The backend-for-frontend (RFC 10017 §6.1) seen from the page: the worker is the OAuth client
// and holds every token; the page holds nothing but an HttpOnly session cookie it cannot read.
// Plain JS, no wasm: there is no OAuth in the page to run. `EdgeOAuth.create({ architecture:
// "bff" })` loads this file; a page that imports it alone (`createBffClient`) loads no wasm.
//
// `login()` is a top-level form POST to `<proxyUrl>/bff/login`; requests to the MCP server URL
// go to `<proxyUrl>/bff/mcp/<name>` with the cookie (`credentials: "include"`) and the worker's
// CSRF header (`X-Edge-OAuth: 1`), never an `Authorization` header; `status()` asks
// `/bff/session`, `logout()` posts `/bff/logout`. A 403 that the worker marks with
// `X-Edge-OAuth-Step-Up` (the MCP server's `insufficient_scope` challenge, recorded for the
// session, and a step-up login the worker would accept) is a step-up: the same form POST with
// `step_up=true` (MCP authorization, scope challenge handling).

/** The worker's CSRF header on every cookie-authenticated request. */
const CSRF_HEADER = 'X-Edge-OAuth';
/** The worker's cue on a 403: the challenge's scope, when a step-up login would be accepted. */
const STEP_UP_HEADER = 'X-Edge-OAuth-Step-Up';
/**
 * The `sessionStorage` key (with the MCP server's name) of the last automatic step-up:
 * `<ms since the epoch> <scope tokens, sorted>`. While it is younger than STEP_UP_MARK_MS, no challenge of that
 * MCP server is stepped up again, whatever its scope: the 403 is the answer. A hit leaves it
 * (it expires); logout clears it.
 */
const STEP_UP_KEY = 'edge-oauth:bff-step-up:';
/** How long that mark counts: the worker's login lifetime (10 minutes) and a little more. */
const STEP_UP_MARK_MS = 15 * 60 * 1000;
/** How long a step-up waits for the page to leave before answering with the 403. */
const STEP_UP_NAVIGATION_MS = 10_000;

/** An `Error` as the package throws them: `.code` (stable) and `.recovery`. */
function edgeError(code, recovery, message) {
  const e = new Error(message);
  e.name = 'EdgeOAuthError';
  e.code = code;
  e.recovery = recovery;
  return e;
}

const invalid = (message) => edgeError('invalid_input', 'misconfiguration', message);

/** An error answer of the worker: 401 means log in again, 429 and 5xx are transient. */
function bffError(code, status, message) {
  const recovery =
    status === 401 ? 'reauthenticate'
    : [429, 502, 503, 504].includes(status) ? 'transient'
    : status === 500 ? 'misconfiguration'
    : 'refused';
  return edgeError(code, recovery, message);
}

/** A non-empty string option, else undefined. */
function option(options, name) {
  const v = options?.[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * An absolute https URL, or http on loopback only (`localhost`, 127.0.0.0/8, `[::1]`): the
 * core's `parse_secure_url` (RFC 9700 §2.6), with its codes.
 */
function secureUrl(raw) {
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw edgeError('invalid_url', 'misconfiguration', `invalid URL "${String(raw).slice(0, 200)}": not an absolute URL`);
  }
  const host = url.hostname;
  const loopback = host.toLowerCase() === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (url.protocol === 'https:' || (url.protocol === 'http:' && loopback)) return url;
  if (url.protocol === 'http:') throw edgeError('insecure_url', 'refused', `${url.href} is not https (only loopback may use http)`);
  throw edgeError('invalid_url', 'misconfiguration', `invalid URL "${url.href}": scheme must be https`);
}

const trimSlash = (s) => s.replace(/\/+$/, '');

function sessionStorageOrNull() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // storage disabled for this page
  }
}

class EdgeOAuthBff {
  #proxy;
  #server;
  #mcpServer;
  #listeners = [];

  constructor(proxy, server, mcpServer) {
    this.#proxy = proxy;
    this.#server = server;
    this.#mcpServer = mcpServer;
    // The OAuth-aware fetch, as `client.fetch` and `createAuthFetch(client)`.
    this.fetch = (input, init) => this.#fetch(input, init);
  }

  /** The worker's route for this MCP server. */
  get #mcpUrl() {
    return `${this.#proxy}/bff/mcp/${encodeURIComponent(this.#mcpServer)}`;
  }

  /** Is `url` the MCP server URL (query and a trailing slash aside)? */
  #isServer(url) {
    return url.origin === this.#server.origin && trimSlash(url.pathname) === trimSlash(this.#server.pathname);
  }

  #changed() {
    for (const l of this.#listeners) {
      try {
        l();
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** A request to the worker with the cookie and the CSRF header; its JSON answer. */
  async #json(method, path) {
    const response = await fetch(`${this.#proxy}${path}`, {
      method,
      credentials: 'include',
      redirect: 'manual',
      cache: 'no-store',
      headers: { [CSRF_HEADER]: '1', Accept: 'application/json' },
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const description = typeof body?.error_description === 'string' ? body.error_description : '';
      const code = typeof body?.code === 'string' ? body.code : 'bff_error';
      throw bffError(code, response.status, `${path} answered HTTP ${response.status}${description ? ': ' : ''}${description}`);
    }
    return body;
  }

  /** Popup mode does not exist here: the page leaves for the worker; the promise never settles. */
  login() {
    try {
      this.#submitLogin(false);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise(() => {});
  }

  /** Always null: the worker holds the tokens. */
  async getAccessToken() {
    return null;
  }

  /** `GET /bff/session` as an `EdgeOAuthStatus` (never a token). */
  async status() {
    const s = await this.#json('GET', '/bff/session');
    const authenticated = s?.authenticated === true;
    const out = {
      state: authenticated ? 'authenticated' : 'not-authenticated',
      architecture: 'bff',
      storage: 'backend',
      lock: 'backend',
      refreshCount: 0,
      // The worker's tokens, bound to the worker's own key when it uses DPoP.
      dpopBound: authenticated && s.dpop_bound === true,
    };
    if (authenticated) {
      for (const [from, to] of [['issuer', 'issuer'], ['expires_at', 'expiresAt'], ['scope', 'scope'], ['step_up_scope', 'stepUpScope']]) {
        if (s[from] !== undefined && s[from] !== null) out[to] = s[from];
      }
    }
    return out;
  }

  /** Nothing to release (the wasm class's `free`). */
  free() {}

  /** No discovery runs in the page. */
  discoveryTrace() {
    return [];
  }

  async refresh() {
    throw invalid('architecture "bff": the worker refreshes; the page holds no token');
  }

  /** `POST /bff/logout`: the worker revokes upstream and ends the session. */
  async logout() {
    await this.#json('POST', '/bff/logout');
    this.#stepUpMark(null);
    this.#changed();
    // The worker revokes the grant itself and does not report a count.
    return { deleted: true, revoked: 0, notRevocable: 0 };
  }

  /** Registers a listener called after logout. */
  onChange(listener) {
    this.#listeners.push(listener);
  }

  /**
   * A top-level form POST to `/bff/login` (`mcp_server=<name>`, and `step_up=true` for a
   * step-up): the worker answers 303 to the authorization server, and after its callback sends
   * the browser to its `BFF_RETURN_URL`.
   */
  #submitLogin(stepUp) {
    if (typeof document === 'undefined') throw invalid('no window');
    const form = document.createElement('form');
    form.method = 'POST';
    form.action = `${this.#proxy}/bff/login`;
    form.enctype = 'application/x-www-form-urlencoded';
    const fields = { mcp_server: this.#mcpServer, ...(stepUp ? { step_up: 'true' } : {}) };
    for (const [name, value] of Object.entries(fields)) {
      const input = document.createElement('input');
      input.type = 'hidden';
      input.name = name;
      input.value = value;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    form.submit();
  }

  /**
   * A request to the MCP server URL goes to the worker's `/bff/mcp/<name>` with the cookie and
   * the CSRF header, any `Authorization` removed and redirects not followed; every other
   * request passes through untouched.
   */
  async #fetch(input, init) {
    const request = new Request(input, init);
    let url = null;
    try {
      url = new URL(request.url);
    } catch {
      url = null;
    }
    if (!url || !this.#isServer(url)) return fetch(request);
    const headers = new Headers(request.headers);
    headers.delete('Authorization');
    headers.set(CSRF_HEADER, '1');
    const out = {
      method: request.method,
      headers,
      credentials: 'include',
      redirect: 'manual',
      mode: 'cors',
      signal: request.signal,
    };
    // Buffered: MCP request bodies are small JSON-RPC messages.
    if (request.method !== 'GET' && request.method !== 'HEAD') out.body = await request.arrayBuffer();
    const response = await fetch(`${this.#mcpUrl}${url.search}`, out);
    const scope = response.status === 403 ? response.headers.get(STEP_UP_HEADER) : null;
    // Stepped up a moment ago (the page is back and the server still refuses, for this scope
    // or another), or nowhere to keep the mark: the 403 is the answer.
    if (!scope || this.#stepUpMarked() || !this.#stepUpMark(scope)) return response;
    this.#submitLogin(true);
    // The page is leaving for the worker's step-up login. If it has not left after
    // STEP_UP_NAVIGATION_MS (a CSP `form-action` or a sandbox can block the form), the 403 is
    // the answer rather than a promise that never settles.
    await new Promise((resolve) => setTimeout(resolve, STEP_UP_NAVIGATION_MS));
    return response;
  }

  /**
   * Did this tab start a step-up for this MCP server within STEP_UP_MARK_MS? (A mark up to that
   * far in the future, after the clock was set back, counts too.)
   */
  #stepUpMarked() {
    let mark = null;
    try {
      mark = sessionStorageOrNull()?.getItem(STEP_UP_KEY + this.#mcpServer) ?? null;
    } catch {
      mark = null;
    }
    const at = mark === null ? NaN : Number.parseInt(mark.split(' ')[0], 10);
    return Number.isFinite(at) && Math.abs(Date.now() - at) < STEP_UP_MARK_MS;
  }

  /** Sets (a scope) or clears (null) the step-up mark; false when it could not be set. */
  #stepUpMark(scope) {
    const storage = sessionStorageOrNull();
    if (!storage) return false;
    try {
      if (scope === null) storage.removeItem(STEP_UP_KEY + this.#mcpServer);
      else storage.setItem(STEP_UP_KEY + this.#mcpServer, `${Date.now()} ${[...new Set(scope.split(' ').filter(Boolean))].sort().join(' ')}`);
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * The page's client of a backend-for-frontend worker: the same interface as `EdgeOAuth`
 * (`login`, `getAccessToken` → null, `fetch`, `status`, `discoveryTrace`, `refresh`, `logout`,
 * `onChange`). Options: `serverUrl` (the MCP server URL the app uses), `proxyUrl` (the worker),
 * `mcpServer` (the MCP server's name in the worker's `MCP_SERVERS`).
 */
export async function createBffClient(options) {
  const raw = option(options, 'proxyUrl');
  if (!raw) throw invalid('architecture "bff" needs proxyUrl (the worker\'s base URL)');
  const proxy = secureUrl(raw);
  // In the serialisation (a bare "?" or "#" leaves `search` and `hash` empty): outside the query
  // and the fragment both are percent-encoded.
  if (/[?#]/.test(proxy.href)) throw invalid('proxyUrl must not have a query or fragment');
  const serverUrl = option(options, 'serverUrl');
  if (!serverUrl) throw invalid('serverUrl is required');
  const server = secureUrl(serverUrl);
  const mcpServer = option(options, 'mcpServer');
  if (!mcpServer) throw invalid('architecture "bff" needs mcpServer (the MCP server\'s name in the worker\'s MCP_SERVERS)');
  if (option(options, 'mode') === 'popup' || option(options, 'clientSecret')) {
    throw invalid('architecture "bff": login is a full-page navigation to the worker (no popup mode) and the worker is the client (no clientSecret)');
  }
  return new EdgeOAuthBff(trimSlash(proxy.href), server, mcpServer);
}
