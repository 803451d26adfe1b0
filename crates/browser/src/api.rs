//! The JS API: `EdgeOAuth` (login by popup or redirect, `getAccessToken`, an OAuth-aware
//! `fetch`, `status`, `logout`, change events) and `handleRedirectCallback` for the callback
//! page of a redirect login (the popup's callback page needs no wasm: `js/popup-callback.js`).
//! Types are in the hand-written `.d.ts` section below; errors are `Error`s with the core's
//! stable `.code` and a `.recovery` class.
//!
//! One option, `architecture`, picks among RFC 10017's three: `"browser"` (the page is the
//! OAuth client and holds every token), `"token-mediating"` (the page is the client, but the
//! code exchange and every refresh go through the worker's `/token`: the page holds the access
//! token and a session handle, never a refresh token; see [`crate::mediate`]) and `"bff"` (the
//! worker is the client and holds every token; the page's side is plain JS, `js/bff.js`, which
//! the package's `EdgeOAuth.create` loads for it).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use edge_oauth_core::client::{PendingLogin, RetryState};
use edge_oauth_core::env::OsRandom;
use edge_oauth_core::http::{HttpResponse, Method};
use edge_oauth_core::jws::Signer;
use edge_oauth_core::registration::{ClientMetadata, RegistrationSource};
use edge_oauth_core::store::CredentialStore;
use edge_oauth_core::{
    AccessToken, ClientConfig, DpopPolicy, OAuthClient, PreRegisteredClient, Recovery, Url,
};
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};

use crate::authorizer::{Mode, PageAuthorizer};
use crate::dpop::DpopKey;
use crate::env::DateClock;
use crate::mediate::MediatedHttp;
use crate::store::{BrowserStore, StorageMode, StoreOptions};

#[wasm_bindgen(typescript_custom_section)]
const TS: &'static str = r#"
/** Options of the "browser" and "token-mediating" architectures (the page is the OAuth client). */
export interface EdgeOAuthPageOptions {
  /** The MCP server URL (the protected resource), as the app (and the MCP SDK) uses it. */
  serverUrl: string;
  /** This app's callback page (registered as redirect URI). */
  redirectUri: string;
  /** Who holds the tokens (RFC 10017):
   *  - "browser" (default): this page; tokens encrypted in IndexedDB.
   *  - "token-mediating": this page runs the authorization request (PKCE, state, iss); the
   *    worker at `proxyUrl` exchanges the code and refreshes (`/token`, `/revoke`) with its
   *    confidential client and keeps the refresh token. The page keeps the access token and an
   *    opaque session handle, never a refresh token. Needs `proxyUrl` and `clientId` (the
   *    worker's client at the authorization server; `redirectUri` in its `redirect_uris`). */
  architecture?: "browser" | "token-mediating";
  /** "token-mediating": the worker's base URL (`<proxyUrl>/token`, `<proxyUrl>/revoke`). */
  proxyUrl?: string;
  /** Client name for dynamic registration. */
  clientName?: string;
  /** How the user is sent to the authorization server: "popup" (default) or "redirect". */
  mode?: "popup" | "redirect";
  /** Ask for this scope instead of the MCP scope selection. */
  scope?: string;
  /** A pre-registered client: its id, and the issuer it belongs to. */
  clientId?: string;
  issuer?: string;
  /** Its secret: only where the code is not shipped to users (Node, a worker), never a page. */
  clientSecret?: string;
  /** Your own authorization step (Node, workers, embedded views): open `url`, resolve with the
   *  callback URL the authorization server redirected to. Overrides `mode`. */
  authorize?: (url: string) => Promise<string>;
  /** A Client ID Metadata Document URL, used where the server supports CIMD. */
  clientMetadataUrl?: string;
  /** Keep access tokens encrypted in IndexedDB too (default: memory only). */
  persistAccessTokens?: boolean;
  /** IndexedDB database name (default "edge-oauth"). */
  dbName?: string;
  /** Sender-constrained tokens (DPoP, RFC 9449) with a non-extractable ECDSA P-256 key kept in
   *  IndexedDB (one per database), shared by the origin's tabs and by every MCP server whose
   *  session the database keeps, and replaced when a logout ends the database's last session:
   *  - "prefer" (default): DPoP when the authorization server advertises ES256 in
   *    `dpop_signing_alg_values_supported`, bearer tokens otherwise;
   *  - "require": DPoP-bound tokens only (a server that lists other algorithms is refused);
   *  - "off": bearer tokens only. */
  dpop?: "require" | "prefer" | "off";
}
/** Options of the "bff" architecture: the worker at `proxyUrl` is the OAuth client and keeps
 *  every token; the page holds only its HttpOnly session cookie. `getAccessToken()` is always
 *  null; `fetch` sends requests for `serverUrl` to `<proxyUrl>/bff/mcp/<mcpServer>` with the
 *  cookie and `X-Edge-OAuth: 1`; `login()` navigates to `<proxyUrl>/bff/login`. */
export interface EdgeOAuthBffOptions {
  architecture: "bff";
  /** The MCP server URL as the app (and the MCP SDK) uses it; mapped onto the worker. */
  serverUrl: string;
  /** The worker's base URL, served on this page's origin (a route like `/bff/*`): its session
   *  cookie is SameSite=Strict and it returns to a URL of its own origin. */
  proxyUrl: string;
  /** The MCP server's name in the worker's `MCP_SERVERS`. */
  mcpServer: string;
  /** Always a full-page navigation; "popup" is refused. */
  mode?: "redirect";
}
export type EdgeOAuthOptions = EdgeOAuthPageOptions | EdgeOAuthBffOptions;
export interface EdgeOAuthStatus {
  /** authenticated: a valid access token, or a refresh token to get one; expired: the access
   *  token ran out and cannot be renewed; refresh-failed: the last refresh was refused. */
  state: "authenticated" | "expired" | "refresh-failed" | "not-authenticated";
  architecture: "browser" | "token-mediating" | "bff";
  /** "backend": "bff", where the worker holds the session. */
  storage: "indexeddb" | "memory" | "backend";
  storageReason?: string;
  lock: "web-locks" | "tab" | "backend";
  issuer?: string;
  clientId?: string;
  /** How `clientId` was obtained: configured ("pre-registered"), a Client ID Metadata
   *  Document URL ("cimd") or dynamic registration ("dcr"). */
  clientSource?: "pre-registered" | "cimd" | "dcr";
  /** Seconds since the epoch. */
  expiresAt?: number;
  scope?: string;
  refreshCount: number;
  /** The session's tokens are DPoP-bound (`token_type: DPoP`): useless without this
   *  origin's non-extractable key ("bff": without the worker's key for the session). */
  dpopBound: boolean;
  /** The RFC 7638 thumbprint of the DPoP key (the `cnf.jkt` bound tokens carry), when the
   *  `dpop` option is not "off". */
  dpopJkt?: string;
  /** "bff": the scope of the MCP server's last 403 `insufficient_scope` challenge to this
   *  session, until a step-up login replaces it. */
  stepUpScope?: string;
}
/** One request of the last discovery this page ran (at login or step-up). */
export interface EdgeOAuthDiscoveryStep {
  /** What was looked for, e.g. "protected resource metadata". */
  what: string;
  url: string;
  /** Absent on a transport failure (network or CORS). */
  status?: number;
  /** What came of it: what was advertised, or why the next URL was tried. */
  outcome: string;
}
export interface EdgeOAuthLogout {
  deleted: boolean;
  revoked: number;
  notRevocable: number;
  revocationError?: { code: string; message: string };
}
/** Thrown errors: `Error`s with the core's stable code and how to recover. */
export interface EdgeOAuthError extends Error {
  code: string;
  recovery: "interaction" | "reauthenticate" | "transient" | "misconfiguration" | "refused";
}
export class EdgeOAuth {
  private constructor();
  free(): void;
  static create(options: EdgeOAuthOptions): Promise<EdgeOAuth>;
  /** Popup mode: call from a click handler (the window opens before anything else).
   *  "bff": navigates to the worker's `/bff/login` (`returnTo` is the worker's BFF_RETURN_URL). */
  login(options?: { returnTo?: string }): Promise<void>;
  /** Always null with "bff": the page never sees a token there. */
  getAccessToken(): Promise<string | null>;
  /** fetch-compatible; the token goes only to the MCP server ("bff": requests for `serverUrl`
   *  go to the worker's `/bff/mcp/<mcpServer>` with the session cookie and `X-Edge-OAuth: 1`;
   *  a 403 `insufficient_scope` from there that the worker would step up for (it says so with
   *  `X-Edge-OAuth-Step-Up`) navigates to the worker's step-up login, and the page leaves:
   *  repeat the request after it is back (if it has not left after 10 s, the 403 is
   *  the answer). A second challenge right after a step-up is returned as the 403). */
  readonly fetch: typeof globalThis.fetch;
  status(): Promise<EdgeOAuthStatus>;
  /** The requests of the last discovery this page ran; empty before one ("bff": always). */
  discoveryTrace(): EdgeOAuthDiscoveryStep[];
  /** Refreshes now (under the same cross-tab lock as automatic refreshes): a session another
   *  tab just refreshed is taken over instead. Resolves with whether the access token changed
   *  ("token-mediating": the worker answers with the access token it holds while that one is
   *  not due). Rejects when there is nothing to refresh; "bff" rejects (the worker refreshes). */
  refresh(): Promise<boolean>;
  logout(): Promise<EdgeOAuthLogout>;
  /** Called after login, refresh and logout, in this tab or another tab of the origin. */
  onChange(listener: () => void): void;
}
export function createAuthFetch(client: EdgeOAuth): typeof globalThis.fetch;
export function handleRedirectCallback(options: EdgeOAuthPageOptions): Promise<{ returnTo: string }>;
/** The popup's callback page (plain JS in popup-callback.js, re-exported here; needs no
 *  `init()`, so a callback page that imports `edge-oauth/popup-callback.js` loads no wasm). */
export function completePopupCallback(): void;
"#;

type Core = OAuthClient<MediatedHttp, Rc<BrowserStore>, PageAuthorizer, OsRandom, DateClock>;

/// RFC 10017's architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Architecture {
    Browser,
    TokenMediating,
    Bff,
}

impl Architecture {
    fn from_options(options: &JsValue) -> Result<Self, JsValue> {
        match opt_str(options, "architecture").as_deref() {
            None | Some("browser") => Ok(Self::Browser),
            Some("token-mediating") => Ok(Self::TokenMediating),
            Some("bff") => Ok(Self::Bff),
            _ => Err(invalid(
                "architecture must be \"browser\", \"token-mediating\" or \"bff\"",
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Browser => "browser",
            Self::TokenMediating => "token-mediating",
            Self::Bff => "bff",
        }
    }
}

/// `proxyUrl`, required by the proxied architectures: an https URL (or plain-http loopback,
/// as the core allows for development), without query or fragment.
fn proxy_url(options: &JsValue, architecture: Architecture) -> Result<String, JsValue> {
    let raw = opt_str(options, "proxyUrl").ok_or_else(|| {
        invalid(&format!(
            "architecture \"{}\" needs proxyUrl (the worker's base URL)",
            architecture.as_str()
        ))
    })?;
    let url = edge_oauth_core::http::parse_secure_url(&raw).map_err(|e| js_error(&e))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("proxyUrl must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

struct Inner {
    core: Core,
    architecture: Architecture,
    server: Url,
    store: Rc<BrowserStore>,
    listeners: RefCell<Vec<Function>>,
    refresh_count: Cell<u32>,
    refresh_failed: Cell<bool>,
    /// The access token `getAccessToken` returned last.
    last_token: RefCell<Option<AccessToken>>,
    /// The DPoP key (also the core's `dpop_signer`), unless the `dpop` option is "off".
    dpop: Option<DpopKey>,
}

/// A client for one MCP server.
#[wasm_bindgen(skip_typescript)]
pub struct EdgeOAuth {
    inner: Rc<Inner>,
    fetch: Function,
}

/// The core's error as a JS `Error` with `.code` and `.recovery`.
pub fn js_error(e: &edge_oauth_core::Error) -> JsValue {
    let (code, recovery) = match crate::error::unreadable_kind(e) {
        Some(_) => ("store_record_unreadable", Recovery::Reauthenticate),
        None => (e.code(), e.recovery()),
    };
    error_value(code, recovery, &e.to_string())
}

fn error_value(code: &str, recovery: Recovery, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("EdgeOAuthError");
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    let _ = Reflect::set(&err, &"recovery".into(), &recovery.as_str().into());
    err.into()
}

fn invalid(message: &str) -> JsValue {
    error_value("invalid_input", Recovery::Misconfiguration, message)
}

pub(crate) fn opt_str(o: &JsValue, k: &str) -> Option<String> {
    Reflect::get(o, &JsValue::from_str(k))
        .ok()
        .and_then(|v| v.as_string())
        .filter(|s| !s.is_empty())
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &JsValue::from_str(k), &v.into());
}

/// Reads the options and opens the store (shared by `create` and `handleRedirectCallback`).
async fn build(options: &JsValue) -> Result<Rc<Inner>, JsValue> {
    let architecture = Architecture::from_options(options)?;
    let http = match architecture {
        Architecture::Browser => MediatedHttp::direct(),
        Architecture::TokenMediating => {
            if opt_str(options, "clientId").is_none() {
                return Err(invalid(
                    "architecture \"token-mediating\" needs clientId (the worker's client at the authorization server)",
                ));
            }
            if opt_str(options, "clientSecret").is_some() {
                return Err(invalid(
                    "architecture \"token-mediating\": the worker authenticates the client; pass no clientSecret",
                ));
            }
            MediatedHttp::through(&proxy_url(options, architecture)?)
        }
        Architecture::Bff => {
            return Err(invalid(
                "architecture \"bff\" has no callback in the page: the worker handles /bff/callback",
            ));
        }
    };
    let server = opt_str(options, "serverUrl").ok_or_else(|| invalid("serverUrl is required"))?;
    let server = edge_oauth_core::http::parse_secure_url(&server).map_err(|e| js_error(&e))?;
    let redirect_uri =
        opt_str(options, "redirectUri").ok_or_else(|| invalid("redirectUri is required"))?;
    edge_oauth_core::http::parse_secure_url(&redirect_uri).map_err(|e| js_error(&e))?;
    let custom = Reflect::get(options, &"authorize".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok());
    let mode = match (opt_str(options, "mode").as_deref(), custom) {
        (_, Some(f)) => Mode::Custom(f),
        (None | Some("popup"), None) => Mode::Popup,
        (Some("redirect"), None) => Mode::Redirect,
        _ => return Err(invalid("mode must be \"popup\" or \"redirect\"")),
    };
    let persist = Reflect::get(options, &"persistAccessTokens".into())
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let mut store_options = StoreOptions::new().persist_access_tokens(persist);
    if let Some(db) = opt_str(options, "dbName") {
        store_options = store_options.db_name(db);
    }
    let store = Rc::new(BrowserStore::open(store_options).await);
    let policy = match opt_str(options, "dpop").as_deref() {
        // Prefer by default: sender-constrained tokens wherever the AS offers them (a stolen
        // token is then useless without the non-extractable key), bearer tokens elsewhere.
        None | Some("prefer") => DpopPolicy::Prefer,
        Some("require") => DpopPolicy::Require,
        Some("off") => DpopPolicy::Off,
        _ => return Err(invalid("dpop must be \"require\", \"prefer\" or \"off\"")),
    };
    let dpop = match policy {
        DpopPolicy::Off => None,
        _ => match DpopKey::load_or_create(store.database(), store.db_name()).await {
            Ok(key) => Some(key),
            Err(e) if policy == DpopPolicy::Require => return Err(js_error(&e.into())),
            // No usable WebCrypto ECDSA here: bearer tokens, as if no AS offered DPoP.
            Err(_) => None,
        },
    };
    let name = opt_str(options, "clientName").unwrap_or_else(|| "edge-oauth".into());
    let mut config = ClientConfig::new(ClientMetadata::web(name, redirect_uri.clone()));
    config.scope_override = opt_str(options, "scope");
    config.client_id_metadata_url = opt_str(options, "clientMetadataUrl");
    config.dpop = policy;
    config.dpop_signer = dpop.clone().map(Signer::new);
    if let Some(client_id) = opt_str(options, "clientId") {
        // A secret only where the code is not shipped to users (Node, a worker); never in a
        // page, where anyone can read it.
        let client_secret =
            opt_str(options, "clientSecret").map(edge_oauth_core::ClientSecret::new);
        if client_secret.is_some() && opt_str(options, "issuer").is_none() {
            return Err(invalid(
                "a clientSecret is only sent to the issuer you name: set issuer",
            ));
        }
        config.pre_registered.push(PreRegisteredClient {
            issuer: opt_str(options, "issuer"),
            client_id,
            client_secret,
            auth_method: None,
        });
    }
    let authorizer = PageAuthorizer::new(mode, redirect_uri, store.clone());
    let core = OAuthClient::new(http, store.clone(), authorizer, OsRandom, DateClock, config);
    Ok(Rc::new(Inner {
        core,
        architecture,
        server,
        store,
        listeners: RefCell::default(),
        refresh_count: Cell::new(0),
        refresh_failed: Cell::new(false),
        last_token: RefCell::default(),
        dpop,
    }))
}

impl Inner {
    fn key(&self) -> &str {
        self.server.as_str()
    }

    fn changed(&self) {
        for l in self.listeners.borrow().iter() {
            let _ = l.call0(&JsValue::UNDEFINED);
        }
    }

    /// The access token, refreshed ahead of expiry; counts refreshes for `status()`.
    async fn access_token(&self) -> Result<Option<AccessToken>, edge_oauth_core::Error> {
        // One store read per call (the core's): the refresh count and the change event come
        // from comparing with the token this page handed out last.
        let result = self.core.access_token(self.key()).await;
        let last = self.last_token.borrow().clone();
        match &result {
            Ok(Some(t)) if last.as_ref() != Some(t) => {
                if last.is_some() {
                    self.refresh_count.set(self.refresh_count.get() + 1);
                }
                *self.last_token.borrow_mut() = Some(t.clone());
                self.refresh_failed.set(false);
                self.changed();
            }
            Ok(None) if last.is_some() => {
                *self.last_token.borrow_mut() = None;
                self.refresh_failed.set(true);
                self.changed();
            }
            Err(_) => self.refresh_failed.set(true),
            _ => {}
        }
        result
    }

    /// The headers presenting `token` on a `method` request to `url` (the core's: bearer, or
    /// DPoP with a proof). The session deciding which is this server's, whatever URL under it
    /// (path, query) the request goes to.
    async fn authorization(
        &self,
        method: &str,
        url: &str,
        token: &AccessToken,
    ) -> Result<Vec<(String, String)>, JsValue> {
        let known = match method {
            "GET" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "DELETE" => Some(Method::Delete),
            _ => None,
        };
        let headers = self
            .core
            .authorization_headers(self.key(), known.unwrap_or(Method::Get), url, token)
            .await
            .map_err(|e| js_error(&e))?;
        if known.is_none() && headers.iter().any(|(n, _)| n == "DPoP") {
            return Err(invalid(
                "DPoP proofs are made for GET, POST and DELETE requests only",
            ));
        }
        Ok(headers)
    }

    /// Takes the DPoP key stored now (another tab replaced it at logout); waits for a logout
    /// that is replacing it to have stored the new one.
    async fn reload_dpop_key(&self) {
        if let Some(key) = &self.dpop {
            let _ = key
                .reload(self.store.database(), self.store.db_name())
                .await;
        }
    }

    /// Is `url` the protected resource (same origin, path within the server's)?
    fn protects(&self, url: &Url) -> bool {
        if url.origin() != self.server.origin() {
            return false;
        }
        let base = self.server.path().trim_end_matches('/');
        let path = url.path();
        path == base || path.starts_with(&format!("{base}/")) || base.is_empty()
    }

    async fn fetch(self: Rc<Self>, input: JsValue, init: JsValue) -> Result<JsValue, JsValue> {
        let global = js_sys::global();
        let request_ctor: Function = Reflect::get(&global, &"Request".into())?.unchecked_into();
        let args = js_sys::Array::of2(&input, &init);
        let request: web_sys::Request = Reflect::construct(&request_ctor, &args)?.unchecked_into();
        let fetch: Function = Reflect::get(&global, &"fetch".into())?.unchecked_into();
        let url = Url::parse(&request.url()).ok();
        if !url.as_ref().is_some_and(|u| self.protects(u)) {
            // Not the MCP server: untouched, and never a token.
            return JsFuture::from(Promise::from(fetch.call1(&global, &request)?)).await;
        }
        let mut token = self.access_token().await.map_err(|e| js_error(&e))?;
        let mut retry = RetryState::default();
        // Redirects are not followed with the token: a redirect answer comes back as it is
        // (an opaque redirect), never re-sent elsewhere carrying Authorization.
        let manual = Object::new();
        set(&manual, "redirect", "manual");
        loop {
            let attempt: web_sys::Request = Reflect::construct(
                &request_ctor,
                &js_sys::Array::of2(&request.clone()?.into(), &manual),
            )?
            .unchecked_into();
            let headers = attempt.headers();
            headers.delete("Authorization")?;
            headers.delete("DPoP")?;
            if let Some(t) = &token {
                // Bearer, or for a DPoP-bound token the DPoP scheme and a fresh proof (with
                // `ath` and the resource server's latest nonce).
                for (name, value) in self
                    .authorization(&attempt.method(), &attempt.url(), t)
                    .await?
                {
                    headers.set(&name, &value)?;
                }
            }
            let response: web_sys::Response =
                JsFuture::from(Promise::from(fetch.call1(&global, &attempt)?))
                    .await?
                    .unchecked_into();
            // What recovery reads: the challenge, and a DPoP nonce (kept for the next proof;
            // a `use_dpop_nonce` challenge is answered once).
            let seen = response.headers();
            let mut kept = Vec::new();
            for name in ["www-authenticate", "dpop-nonce"] {
                if let Some(v) = seen.get(name)? {
                    kept.push((name.to_owned(), v));
                }
            }
            let head = HttpResponse::new(response.status(), kept, "");
            let authorizations = retry.authorizations();
            let next = self
                .core
                .recover_response(&self.server, &head, token.as_ref(), &mut retry)
                .await
                .map_err(|e| js_error(&e))?;
            match next {
                None => return Ok(response.into()),
                Some(t) => {
                    if retry.authorizations() > authorizations {
                        self.changed();
                    }
                    token = Some(t);
                }
            }
        }
    }
}

fn make_fetch(inner: &Rc<Inner>) -> Function {
    let inner = inner.clone();
    Closure::<dyn Fn(JsValue, JsValue) -> Promise>::new(move |input, init| {
        future_to_promise(inner.clone().fetch(input, init))
    })
    .into_js_value()
    .unchecked_into()
}

#[wasm_bindgen]
impl EdgeOAuth {
    /// Opens the store and prepares the client (no network).
    pub async fn create(options: JsValue) -> Result<EdgeOAuth, JsValue> {
        if Architecture::from_options(&options)? == Architecture::Bff {
            // In a page the package's `EdgeOAuth.create` hands these options to `bff.js`.
            return Err(invalid(
                "architecture \"bff\" is for pages: the web build's bff.js (createBffClient)",
            ));
        }
        let inner = build(&options).await?;
        if inner.dpop.is_some() {
            // Another tab's logout replaces the key: take the new one for the next login.
            let weak = Rc::downgrade(&inner);
            let reload = Closure::<dyn Fn()>::new(move || {
                if let Some(inner) = weak.upgrade() {
                    wasm_bindgen_futures::spawn_local(async move { inner.reload_dpop_key().await });
                }
            });
            inner
                .store
                .on_change_elsewhere(reload.into_js_value().unchecked_into());
        }
        let fetch = make_fetch(&inner);
        Ok(EdgeOAuth { inner, fetch })
    }

    /// Popup: opens the window at once (inside the click handler), then discovers, registers,
    /// and waits for the callback. Redirect: saves the pending login encrypted and navigates.
    pub fn login(&self, options: JsValue) -> Promise {
        let inner = self.inner.clone();
        let return_to = opt_str(&options, "returnTo");
        if let Err(e) = inner.core.authorizer_ref().prepare(return_to) {
            return Promise::reject(&js_error(&e));
        }
        future_to_promise(async move {
            // Bind to the key every tab uses now.
            inner.reload_dpop_key().await;
            let result = inner.core.authorize(&inner.server, None, None).await;
            inner.core.authorizer_ref().finish();
            result.map_err(|e| js_error(&e))?;
            inner.refresh_failed.set(false);
            inner.changed();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// A valid access token (refreshed ahead of expiry, one refresh across tabs), or `null`
    /// when the user must log in.
    #[wasm_bindgen(js_name = getAccessToken)]
    pub async fn get_access_token(&self) -> Result<JsValue, JsValue> {
        let inner = &self.inner;
        let t = inner.access_token().await.map_err(|e| js_error(&e))?;
        Ok(t.map(|t| JsValue::from_str(t.secret()))
            .unwrap_or(JsValue::NULL))
    }

    /// The OAuth-aware `fetch`.
    #[wasm_bindgen(getter)]
    pub fn fetch(&self) -> Function {
        self.fetch.clone()
    }

    /// Where things stand.
    pub async fn status(&self) -> Result<JsValue, JsValue> {
        let inner = &self.inner;
        let o = Object::new();
        set(&o, "architecture", inner.architecture.as_str());
        let session = inner
            .core
            .load_session(inner.key())
            .await
            .map_err(|e| js_error(&e))?;
        let now = edge_oauth_core::env::Clock::now(&DateClock);
        // A session with a refresh token is usable (getAccessToken refreshes it); one whose
        // access token ran out without a way to renew it needs a login.
        let state = match &session {
            None => "not-authenticated",
            Some(_) if inner.refresh_failed.get() => "refresh-failed",
            Some(s) if s.tokens.is_expired(now) && s.tokens.refresh_token.is_none() => "expired",
            Some(_) => "authenticated",
        };
        set(&o, "state", state);
        match inner.store.storage_mode() {
            StorageMode::IndexedDb => set(&o, "storage", "indexeddb"),
            StorageMode::Memory { reason } => {
                set(&o, "storage", "memory");
                set(&o, "storageReason", reason.to_string());
            }
        }
        set(&o, "lock", crate::locks::mode().as_str());
        set(&o, "refreshCount", inner.refresh_count.get());
        set(
            &o,
            "dpopBound",
            session.as_ref().is_some_and(|s| s.tokens.is_dpop()),
        );
        if let Some(key) = &inner.dpop {
            set(&o, "dpopJkt", key.thumbprint());
        }
        if let Some(s) = &session {
            // How the client id was obtained: the stored registration of this issuer when it
            // is the session's client, else the configured one.
            let stored = inner.store.load_client(&s.issuer).await.ok().flatten();
            let source = match stored.filter(|c| c.client_id == s.client_id) {
                Some(c) => c.source,
                None => RegistrationSource::PreRegistered,
            };
            let source = match source {
                RegistrationSource::PreRegistered => "pre-registered",
                RegistrationSource::MetadataDocument => "cimd",
                RegistrationSource::Dynamic => "dcr",
            };
            set(&o, "clientSource", source);
        }
        if let Some(s) = session {
            set(&o, "issuer", s.issuer);
            set(&o, "clientId", s.client_id);
            if let Some(t) = s.tokens.expires_at.filter(|t| *t > 0) {
                set(&o, "expiresAt", t as f64);
            }
            if let Some(scope) = s.tokens.scope {
                set(&o, "scope", scope);
            }
        }
        Ok(o.into())
    }

    /// The requests of the last discovery this page ran, as `{what, url, status?, outcome}`.
    #[wasm_bindgen(js_name = discoveryTrace)]
    pub fn discovery_trace(&self) -> js_sys::Array {
        let steps = js_sys::Array::new();
        for step in self.inner.core.last_trace() {
            let o = Object::new();
            set(&o, "what", step.what);
            set(&o, "url", step.url);
            if let Some(status) = step.status {
                set(&o, "status", status);
            }
            set(&o, "outcome", step.outcome);
            steps.push(&o);
        }
        steps
    }

    /// Refreshes now, under the session's cross-tab lock (a session another tab refreshed
    /// meanwhile is taken over, never refreshed twice); true when the access token changed.
    pub async fn refresh(&self) -> Result<bool, JsValue> {
        let inner = &self.inner;
        let session = inner
            .core
            .load_session(inner.key())
            .await
            .map_err(|e| js_error(&e))?
            .ok_or_else(|| js_error(&edge_oauth_core::Error::NoRefreshToken))?;
        match inner.core.refresh(&session).await {
            Ok(s) => {
                let changed = inner.last_token.borrow().as_ref() != Some(&s.tokens.access_token);
                if changed {
                    inner.refresh_count.set(inner.refresh_count.get() + 1);
                }
                *inner.last_token.borrow_mut() = Some(s.tokens.access_token);
                inner.refresh_failed.set(false);
                inner.changed();
                Ok(changed)
            }
            Err(e) => {
                inner.refresh_failed.set(true);
                inner.changed();
                Err(js_error(&e))
            }
        }
    }

    /// Revokes (RFC 7009) then deletes the session; without a revocation endpoint the
    /// session is still deleted and `revocationError` says so.
    pub async fn logout(&self) -> Result<JsValue, JsValue> {
        let inner = &self.inner;
        // The DPoP key lock, from before the session is deleted (other tabs hear of that and
        // reload the key, under this lock) until the key is replaced or kept.
        let key_lock = match &inner.dpop {
            Some(_) => crate::dpop::lock(inner.store.db_name()).await.ok(),
            None => None,
        };
        let out = inner
            .core
            .logout(inner.key())
            .await
            .map_err(|e| js_error(&e))?;
        // The last session of the database ended: a new DPoP key for the next login, so
        // nothing issued before is bound to it. Other servers' sessions still bound to the
        // key keep it. Best effort: the session is gone either way, and the old key never
        // left WebCrypto.
        if let Some(key) = &inner.dpop {
            let _ = key.retire(&inner.store).await;
        }
        drop(key_lock);
        inner.refresh_failed.set(false);
        inner.changed();
        let o = Object::new();
        set(&o, "deleted", out.deleted);
        set(&o, "revoked", out.revoked);
        set(&o, "notRevocable", out.not_revocable);
        if let Some(e) = out.revocation_error {
            let r = Object::new();
            set(&r, "code", e.code());
            set(&r, "message", e.to_string());
            set(&o, "revocationError", r);
        }
        Ok(o.into())
    }

    /// Registers a listener called after login, refresh and logout, here or in another tab.
    #[wasm_bindgen(js_name = onChange)]
    pub fn on_change(&self, listener: Function) {
        self.inner.store.on_change_elsewhere(listener.clone());
        self.inner.listeners.borrow_mut().push(listener);
    }
}

/// The OAuth-aware `fetch` of `client` (the same function as `client.fetch`): an `EdgeOAuth`,
/// or the backend-for-frontend client `bff.js` makes.
#[wasm_bindgen(js_name = createAuthFetch, skip_typescript)]
pub fn create_auth_fetch(client: &JsValue) -> Result<Function, JsValue> {
    Reflect::get(client, &"fetch".into())?
        .dyn_into::<Function>()
        .map_err(|_| invalid("createAuthFetch needs a client made by EdgeOAuth.create"))
}

/// On the callback page of a redirect flow: validates the callback against the saved pending
/// login, exchanges the code, stores the session, removes `code`/`state`/`iss` from the
/// address bar, and gives the same-origin URL to return to.
#[wasm_bindgen(js_name = handleRedirectCallback, skip_typescript)]
pub async fn handle_redirect_callback(options: JsValue) -> Result<JsValue, JsValue> {
    let inner = build(&options).await?;
    let window = web_sys::window().ok_or_else(|| invalid("no window"))?;
    let href = window.location().href()?;
    let url = Url::parse(&href).map_err(|_| invalid("the page URL does not parse"))?;
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| js_error(&edge_oauth_core::Error::StateMissing))?;
    let saved = inner
        .store
        .take_pending(&state)
        .await
        .map_err(|e| js_error(&e.into()))?
        .ok_or_else(|| js_error(&edge_oauth_core::Error::StateMismatch))?;
    // Taken: one use only, whatever happens next.
    let (pending, return_to): (PendingLogin, Option<String>) =
        edge_oauth_core::json::from_str(&saved)
            .map_err(|_| invalid("the saved login does not parse"))?;
    let mut clean = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| {
            !matches!(
                k.as_ref(),
                "code" | "state" | "iss" | "error" | "error_description" | "error_uri"
            )
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    clean.set_query(None);
    if !kept.is_empty() {
        clean.query_pairs_mut().extend_pairs(kept);
    }
    let history = window.history()?;
    history.replace_state_with_url(&JsValue::NULL, "", Some(clean.as_str()))?;
    let session = inner
        .core
        .complete_authorization(&href, pending)
        .await
        .map_err(|e| js_error(&e))?;
    // The page returned to is a new document: hand it the access token (sealed, read once).
    let _ = inner.store.hand_off(&session).await;
    let origin = url.origin();
    let return_to = return_to
        .and_then(|r| url.join(&r).ok())
        .filter(|r| r.origin() == origin)
        .map(|r| r.to_string())
        .unwrap_or_else(|| origin.ascii_serialization() + "/");
    let o = Object::new();
    set(&o, "returnTo", return_to);
    Ok(o.into())
}
