import type { EdgeOAuth, EdgeOAuthBffOptions } from './edge_oauth_browser.js';

/**
 * The page's client of a backend-for-frontend worker (`architecture: "bff"`), without the
 * wasm: the worker is the OAuth client, the page holds only its HttpOnly session cookie. The
 * same interface as `EdgeOAuth` (`getAccessToken()` is always null, `refresh()` rejects);
 * `EdgeOAuth.create({ architecture: "bff", ... })` returns one of these too. Needs no `init()`.
 */
export function createBffClient(options: EdgeOAuthBffOptions): Promise<EdgeOAuth>;
