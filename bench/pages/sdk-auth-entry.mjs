// Entry of /sdk-auth.js, the baseline page's auth layer (bundled by bench/browser.mjs with esbuild):
// @modelcontextprotocol/sdk 1.x's own auth() plus an OAuthClientProvider kept in localStorage, the
// shape web MCP clients use (use-mcp's BrowserOAuthClientProvider, the SDK's examples): every
// getter parses JSON from localStorage, every setter writes it back, nothing is cached in memory.
export { auth } from '@modelcontextprotocol/sdk/client/auth.js';

export class LocalStorageOAuthProvider {
  constructor(serverUrl, { redirectUrl, clientName = 'edge-oauth bench (MCP SDK baseline)', prefix = 'mcp:auth' }) {
    this.serverUrl = serverUrl;
    this._redirectUrl = redirectUrl;
    this.clientName = clientName;
    this.prefix = `${prefix}_${serverUrl}_`;
    // Set by the benchmark during the concurrency burst: an authorization redirect is recorded
    // instead of navigating (it would mean "the user has to sign in again").
    this.onRedirect = undefined;
  }

  key(name) {
    return this.prefix + name;
  }

  read(name) {
    const data = localStorage.getItem(this.key(name));
    if (!data) return undefined;
    try {
      return JSON.parse(data);
    } catch {
      localStorage.removeItem(this.key(name));
      return undefined;
    }
  }

  get redirectUrl() {
    return this._redirectUrl;
  }

  get clientMetadata() {
    return {
      redirect_uris: [this._redirectUrl],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      client_name: this.clientName,
    };
  }

  async state() {
    const state = crypto.randomUUID();
    localStorage.setItem(this.key('state'), state);
    return state;
  }

  async clientInformation() {
    return this.read('client_info');
  }

  async saveClientInformation(info) {
    localStorage.setItem(this.key('client_info'), JSON.stringify(info));
  }

  async tokens() {
    return this.read('tokens');
  }

  // Stored unchanged (what the SDK asks); the expiry time is kept next to it, so a caller can
  // tell an expired access token without a request.
  async saveTokens(tokens) {
    localStorage.setItem(this.key('tokens'), JSON.stringify(tokens));
    if (tokens.expires_in !== undefined) {
      localStorage.setItem(this.key('expires_at'), String(Date.now() + tokens.expires_in * 1000));
    } else {
      localStorage.removeItem(this.key('expires_at'));
    }
    localStorage.removeItem(this.key('code_verifier'));
  }

  expiresAt() {
    const at = Number(localStorage.getItem(this.key('expires_at')));
    return at > 0 ? at : undefined;
  }

  async saveCodeVerifier(verifier) {
    localStorage.setItem(this.key('code_verifier'), verifier);
  }

  async codeVerifier() {
    const verifier = localStorage.getItem(this.key('code_verifier'));
    if (!verifier) throw new Error('no code verifier stored');
    return verifier;
  }

  async redirectToAuthorization(url) {
    if (this.onRedirect) {
      this.onRedirect(url);
      return;
    }
    location.assign(url.toString());
  }
}

// The same provider with the optional invalidateCredentials() of the SDK's OAuthClientProvider
// interface: auth() calls it after invalid_grant / invalid_client and starts over.
export class LocalStorageOAuthProviderWithInvalidate extends LocalStorageOAuthProvider {
  async invalidateCredentials(scope) {
    const drop = {
      all: ['client_info', 'tokens', 'expires_at', 'code_verifier'],
      client: ['client_info'],
      tokens: ['tokens', 'expires_at'],
      verifier: ['code_verifier'],
      discovery: [],
    }[scope] ?? [];
    for (const name of drop) localStorage.removeItem(this.key(name));
  }
}
