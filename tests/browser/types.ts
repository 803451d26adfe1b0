// Compile-only check of the hand-written TypeScript types of the browser package (`make
// typecheck`): every call a web MCP client makes, typed as documented. Never run.
import init, {
  EdgeOAuth,
  EdgeOAuthProvider,
  completePopupCallback,
  createAuthFetch,
  handleRedirectCallback,
  type EdgeOAuthDiscoveryStep,
  type EdgeOAuthError,
  type EdgeOAuthLogout,
  type EdgeOAuthOptions,
  type EdgeOAuthPageOptions,
  type EdgeOAuthProviderOptions,
  type EdgeOAuthStatus,
} from '../../crates/browser/pkg/edge_oauth_browser.js';
import { completePopupCallback as popupOnly } from '../../crates/browser/pkg/popup-callback.js';
import { createBffClient } from '../../crates/browser/pkg/bff.js';

export async function typed(): Promise<void> {
  await init();
  const options: EdgeOAuthPageOptions = {
    serverUrl: 'https://mcp.example.com/mcp',
    redirectUri: 'https://app.example.com/callback.html',
    clientName: 'typed',
    mode: 'redirect',
    scope: 'mcp:tools',
    persistAccessTokens: false,
    dbName: 'edge-oauth',
  };
  const client: EdgeOAuth = await EdgeOAuth.create(options);
  await client.login({ returnTo: '/' });
  const token: string | null = await client.getAccessToken();
  const status: EdgeOAuthStatus = await client.status();
  const state: 'authenticated' | 'expired' | 'refresh-failed' | 'not-authenticated' = status.state;
  const lock: 'web-locks' | 'tab' | 'backend' = status.lock;
  const dpopBound: boolean = status.dpopBound;
  const dpopJkt: string | undefined = status.dpopJkt;
  void dpopBound;
  void dpopJkt;
  for (const dpop of ['require', 'prefer', 'off'] as const) await EdgeOAuth.create({ ...options, dpop });
  const response: Response = await client.fetch('https://mcp.example.com/mcp', { method: 'POST' });
  const authFetch: typeof fetch = createAuthFetch(client);
  await authFetch(new URL('https://mcp.example.com/mcp'));
  client.onChange(() => undefined);
  // What a client UI shows: the discovery trace, how the client id was obtained, DPoP binding.
  const trace: EdgeOAuthDiscoveryStep[] = client.discoveryTrace();
  const step: { what: string; url: string; status?: number; outcome: string } | undefined = trace[0];
  const source: 'pre-registered' | 'cimd' | 'dcr' | undefined = status.clientSource;
  const renewed: boolean = await client.refresh();
  void [step, source, renewed];
  const out: EdgeOAuthLogout = await client.logout();
  const revoked: number = out.revoked;
  const { returnTo }: { returnTo: string } = await handleRedirectCallback(options);
  completePopupCallback();
  try {
    await EdgeOAuth.create({ ...options, authorize: async (url: string) => url });
  } catch (e) {
    const err = e as EdgeOAuthError;
    const code: string = err.code;
    const recovery: EdgeOAuthError['recovery'] = err.recovery;
    void code;
    void recovery;
  }
  // RFC 10017's other two architectures, through the worker.
  const mediated: EdgeOAuth = await EdgeOAuth.create({
    ...options,
    architecture: 'token-mediating',
    proxyUrl: 'https://app.example.com/oauth',
    clientId: 'worker-client',
  });
  const bffOptions: EdgeOAuthOptions = {
    serverUrl: options.serverUrl,
    architecture: 'bff',
    proxyUrl: 'https://app.example.com',
    mcpServer: 'tools',
    mode: 'redirect',
  };
  const bff: EdgeOAuth = await EdgeOAuth.create(bffOptions);
  const none: null | string = await bff.getAccessToken();
  const bffStatus: EdgeOAuthStatus = await bff.status();
  const architecture: 'browser' | 'token-mediating' | 'bff' = bffStatus.architecture;
  const storage: 'indexeddb' | 'memory' | 'backend' = bffStatus.storage;
  await mediated.fetch('https://mcp.example.com/mcp');
  void [none, architecture, storage];
  // The SDK drives: EdgeOAuthProvider is its OAuthClientProvider.
  const providerOptions: EdgeOAuthProviderOptions = { serverUrl: options.serverUrl, redirectUri: options.redirectUri };
  const provider: EdgeOAuthProvider = await EdgeOAuthProvider.create(providerOptions);
  const redirectUrl: string = provider.redirectUrl;
  const verifier: string = await provider.codeVerifier();
  const code: string = await provider.handleCallback();
  await provider.invalidateCredentials('tokens');
  const saved: Record<string, unknown> | undefined = await provider.tokens();
  void [token, state, lock, response, revoked, returnTo, redirectUrl, verifier, code, saved];
}

// The popup's callback page, and a backend-for-frontend page, without the package's glue or wasm.
popupOnly();
async function bffOnly(): Promise<void> {
  const bff: EdgeOAuth = await createBffClient({ architecture: 'bff', serverUrl: 'https://mcp.example.com/mcp', proxyUrl: 'https://app.example.com', mcpServer: 'tools' });
  const fetchFn: typeof globalThis.fetch = createAuthFetch(bff);
  void fetchFn;
}
void bffOnly;
