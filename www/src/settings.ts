// What the app and its callback page share: the saved choice (server URL, mode) and the
// package options each mode maps to.
import type { EdgeOAuthOptions, EdgeOAuthPageOptions } from 'edge-oauth';

export type Mode = 'popup' | 'redirect' | 'token-mediating' | 'bff';

/** `sessionStorage`: set by the callback page of a redirect login just before it goes back to
 *  the app (ms since the epoch), read once by the app: the page is back from a sign-in. */
export const BACK_FROM_SIGN_IN = 'edge-oauth-demo:back-from-sign-in';
export const MODES: Mode[] = ['popup', 'redirect', 'token-mediating', 'bff'];

/** What the demo server serves at /config.json (all optional: the page works without it). */
export interface DemoConfig {
  /** The MCP server the URL field is prefilled with. */
  serverUrl?: string;
  /** The edge worker's base URL (token-mediating: its /token and /revoke). */
  workerUrl?: string;
  /** The worker's confidential client at the authorization server (token-mediating). */
  workerClientId?: string;
  /** The MCP server's name in the worker's MCP_SERVERS (bff). */
  bffServer?: string;
}

export interface Saved {
  serverUrl: string;
  mode: Mode;
}

const KEY = 'edge-oauth-demo:settings';

export function loadSaved(): Partial<Saved> {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) || '{}');
    return typeof v === 'object' && v ? v : {};
  } catch {
    return {};
  }
}

export function save(s: Saved): void {
  localStorage.setItem(KEY, JSON.stringify(s));
}

export async function loadConfig(): Promise<DemoConfig> {
  try {
    const res = await fetch('/config.json', { cache: 'no-store' });
    return res.ok ? ((await res.json()) as DemoConfig) : {};
  } catch {
    return {};
  }
}

/** The package options of a mode. Each architecture gets its own database: a session is
 *  stored per MCP server URL, and a browser-only session is not a token-mediating one. */
export function optionsFor(mode: Mode, serverUrl: string, config: DemoConfig): EdgeOAuthOptions {
  if (mode === 'bff') {
    return {
      architecture: 'bff',
      serverUrl,
      proxyUrl: location.origin,
      mcpServer: config.bffServer || 'tools',
      mode: 'redirect',
    };
  }
  const page: EdgeOAuthPageOptions = {
    serverUrl,
    redirectUri: `${location.origin}/callback.html`,
    clientName: 'edge-oauth demo',
    mode: mode === 'redirect' ? 'redirect' : 'popup',
    dbName: mode === 'token-mediating' ? 'edge-oauth-demo-mediated' : 'edge-oauth-demo',
  };
  if (mode === 'token-mediating') {
    page.architecture = 'token-mediating';
    page.proxyUrl = config.workerUrl || '';
    page.clientId = config.workerClientId || '';
  }
  return page;
}

/** The error as the page shows it: a stable code, the message, and one line on what to do. */
export interface Shown {
  code: string;
  message: string;
  remedy: string;
}

const BY_CODE: Record<string, string> = {
  transport_error: 'The server could not be reached, or it refused CORS for this origin: check the URL and that the server allows this page.',
  metadata_not_found: 'This URL advertises no authorization server: check the MCP server URL.',
  no_authorization_server: 'This URL advertises no authorization server: check the MCP server URL.',
  invalid_url: 'Check the server URL: https, or http on loopback only.',
  insecure_url: 'Check the server URL: https, or http on loopback only.',
  invalid_input: 'Check the settings: the server URL and, for the worker modes, the worker configuration.',
  authorization_failed: 'The sign-in was declined or failed at the authorization server: click Connect to try again.',
  oauth_error: 'The authorization server refused the request: click Connect to sign in again.',
  step_up_limit: 'The server keeps asking for a scope the authorization server does not grant: ask its administrator.',
  no_refresh_token: 'There is no session to refresh: click Connect.',
  session_ended: 'The session ended (logged out elsewhere): click Connect.',
  store_record_unreadable: 'The stored session could not be decrypted and was removed: click Connect.',
  unauthorized: 'The worker has no session for this browser: click Connect.',
  http_401: 'The server refused the credentials: click Connect to sign in again.',
  http_403: 'The server refused this call for the granted scopes.',
  no_step_up_challenge: 'The worker has no scope challenge on record for this session: call the tool again, and the step-up starts from its answer.',
  step_up_scope_not_allowed: 'The MCP server asked for a scope outside the worker\'s max_scope for it: ask the worker\'s administrator.',
  login_rejected: 'The worker refused the sign-in callback (expired or replayed): click Connect to try again.',
};
const BY_RECOVERY: Record<string, string> = {
  interaction: 'Finish the sign-in in the window that opened, then try again.',
  reauthenticate: 'Sign in again: click Connect.',
  transient: 'A temporary failure: try again in a moment.',
  misconfiguration: 'A configuration problem: check the server URL and the mode settings.',
  refused: 'The server refused: see the message.',
};

export function describeError(e: unknown): Shown {
  const err = e as { code?: unknown; recovery?: unknown; message?: unknown; name?: unknown } | undefined;
  const message = String(err?.message ?? e);
  let code = 'unexpected';
  if (typeof err?.code === 'string' && err.code) {
    code = err.code;
  } else if (typeof err?.code === 'number') {
    // The MCP SDK: StreamableHTTPError carries the HTTP status, McpError the JSON-RPC code.
    code = err.name === 'McpError' || err.code < 0 ? `mcp_error_${err.code}` : `http_${err.code}`;
  }
  let remedy = Object.hasOwn(BY_CODE, code) ? BY_CODE[code] : undefined;
  if (code === 'authorizer_failed') {
    if (message.includes('popup_blocked')) remedy = 'The browser blocked the login window: allow popups for this page, or use redirect mode.';
    else if (message.includes('popup_closed')) remedy = 'The login window was closed before the sign-in finished: click Connect to try again.';
    else if (message.includes('popup_timeout')) remedy = 'The sign-in took too long: click Connect to try again.';
  }
  remedy ??= (Object.hasOwn(BY_RECOVERY, String(err?.recovery)) ? BY_RECOVERY[String(err?.recovery)] : undefined) ?? 'See the message; the events list shows what happened before.';
  return { code, message, remedy: remedy ?? '' };
}
