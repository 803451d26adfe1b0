//! For apps that let the MCP TypeScript SDK drive the flow: an `OAuthClientProvider` (SDK 1.x
//! and 2.x) over the encrypted store. The SDK does discovery, registration, PKCE and refresh;
//! this keeps what it hands over (client information, tokens, the PKCE verifier, discovery
//! state) sealed in IndexedDB, makes the `state` the SDK sends, and — what the SDK never
//! does — checks it, and `iss`, in `handleCallback()` before the code reaches `finishAuth`.
//! (Single refresh across tabs needs `EdgeOAuth`, which drives the flow itself.)

use std::rc::Rc;

use edge_oauth_core::{State, Url};
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::api::{js_error, opt_str};
use crate::store::{BrowserStore, StoreOptions};

#[wasm_bindgen(typescript_custom_section)]
const TS: &'static str = r#"
export interface EdgeOAuthProviderOptions {
  /** The MCP server URL: records are kept per server. */
  serverUrl: string;
  /** The page that handles the callback (it calls `handleCallback()`). */
  redirectUri: string;
  clientName?: string;
  clientMetadataUrl?: string;
  scope?: string;
  dbName?: string;
}
/** An `OAuthClientProvider` for `@modelcontextprotocol/sdk` 1.x and `@modelcontextprotocol/client` 2.x. */
export class EdgeOAuthProvider {
  private constructor();
  free(): void;
  static create(options: EdgeOAuthProviderOptions): Promise<EdgeOAuthProvider>;
  readonly redirectUrl: string;
  readonly clientMetadata: Record<string, unknown>;
  readonly clientMetadataUrl: string | undefined;
  state(): Promise<string>;
  clientInformation(): Promise<Record<string, unknown> | undefined>;
  saveClientInformation(info: Record<string, unknown>): Promise<void>;
  tokens(): Promise<Record<string, unknown> | undefined>;
  saveTokens(tokens: Record<string, unknown>): Promise<void>;
  redirectToAuthorization(url: URL): void;
  saveCodeVerifier(verifier: string): Promise<void>;
  codeVerifier(): Promise<string>;
  saveDiscoveryState(state: Record<string, unknown>): Promise<void>;
  discoveryState(): Promise<Record<string, unknown> | undefined>;
  invalidateCredentials(scope: "all" | "client" | "tokens" | "verifier" | "discovery"): Promise<void>;
  /** On the callback page: checks `state` (and `iss` against the discovered issuer), removes
   *  the parameters from the address bar, and returns the code for `transport.finishAuth`. */
  handleCallback(url?: string): Promise<string>;
}
"#;

const CLIENT: &str = "client";
const TOKENS: &str = "tokens";
const VERIFIER: &str = "verifier";
const STATE: &str = "state";
const DISCOVERY: &str = "discovery";

/// The provider.
#[wasm_bindgen(skip_typescript)]
pub struct EdgeOAuthProvider {
    store: Rc<BrowserStore>,
    server: String,
    redirect_uri: String,
    client_name: String,
    client_metadata_url: Option<String>,
    scope: Option<String>,
}

fn parse_json(s: &str) -> JsValue {
    js_sys::JSON::parse(s).unwrap_or(JsValue::UNDEFINED)
}

fn to_json(v: &JsValue) -> Result<String, JsValue> {
    js_sys::JSON::stringify(v)?
        .as_string()
        .ok_or_else(|| JsValue::from_str("value is not JSON"))
}

impl EdgeOAuthProvider {
    fn id(&self, what: &str) -> String {
        format!("{}|{what}", self.server)
    }

    async fn get(&self, what: &str) -> Result<Option<String>, JsValue> {
        self.store
            .load_blob(&self.id(what))
            .await
            .map_err(|e| js_error(&e.into()))
    }

    async fn put(&self, what: &str, value: &str) -> Result<(), JsValue> {
        self.store
            .save_blob(&self.id(what), value)
            .await
            .map_err(|e| js_error(&e.into()))
    }

    async fn forget(&self, what: &str) -> Result<(), JsValue> {
        self.store
            .delete_blob(&self.id(what))
            .await
            .map_err(|e| js_error(&e.into()))
    }
}

#[wasm_bindgen]
impl EdgeOAuthProvider {
    /// Opens the store.
    pub async fn create(options: JsValue) -> Result<EdgeOAuthProvider, JsValue> {
        let server = opt_str(&options, "serverUrl")
            .ok_or_else(|| JsValue::from_str("serverUrl is required"))?;
        let server = edge_oauth_core::http::parse_secure_url(&server).map_err(|e| js_error(&e))?;
        let redirect_uri = opt_str(&options, "redirectUri")
            .ok_or_else(|| JsValue::from_str("redirectUri is required"))?;
        edge_oauth_core::http::parse_secure_url(&redirect_uri).map_err(|e| js_error(&e))?;
        let mut store_options = StoreOptions::new();
        if let Some(db) = opt_str(&options, "dbName") {
            store_options = store_options.db_name(db);
        }
        Ok(EdgeOAuthProvider {
            store: Rc::new(BrowserStore::open(store_options).await),
            server: server.to_string(),
            redirect_uri,
            client_name: opt_str(&options, "clientName").unwrap_or_else(|| "edge-oauth".into()),
            client_metadata_url: opt_str(&options, "clientMetadataUrl"),
            scope: opt_str(&options, "scope"),
        })
    }

    /// The redirect URI.
    #[wasm_bindgen(getter, js_name = redirectUrl)]
    pub fn redirect_url(&self) -> String {
        self.redirect_uri.clone()
    }

    /// RFC 7591 metadata of a public browser client.
    #[wasm_bindgen(getter, js_name = clientMetadata)]
    pub fn client_metadata(&self) -> JsValue {
        let o = Object::new();
        let set = |k: &str, v: JsValue| {
            let _ = Reflect::set(&o, &k.into(), &v);
        };
        set("client_name", self.client_name.as_str().into());
        set(
            "redirect_uris",
            js_sys::Array::of1(&self.redirect_uri.as_str().into()).into(),
        );
        set(
            "grant_types",
            js_sys::Array::of2(&"authorization_code".into(), &"refresh_token".into()).into(),
        );
        set("response_types", js_sys::Array::of1(&"code".into()).into());
        set("token_endpoint_auth_method", "none".into());
        if let Some(scope) = &self.scope {
            set("scope", scope.as_str().into());
        }
        o.into()
    }

    /// A Client ID Metadata Document URL, if configured.
    #[wasm_bindgen(getter, js_name = clientMetadataUrl)]
    pub fn client_metadata_url(&self) -> Option<String> {
        self.client_metadata_url.clone()
    }

    /// A fresh 256-bit `state`, kept (sealed) for `handleCallback`.
    pub async fn state(&self) -> Result<String, JsValue> {
        let state = edge_oauth_core::pkce::random_token(&edge_oauth_core::env::OsRandom, 32)
            .map_err(|e| js_error(&e))?;
        let now = edge_oauth_core::env::Clock::now(&crate::env::DateClock);
        // Kept with its birth time: a callback more than ten minutes later is refused.
        self.put(STATE, &format!("{now}|{state}")).await?;
        Ok(state)
    }

    /// The registered client, if any.
    #[wasm_bindgen(js_name = clientInformation)]
    pub async fn client_information(&self) -> Result<JsValue, JsValue> {
        Ok(self
            .get(CLIENT)
            .await?
            .map(|s| parse_json(&s))
            .unwrap_or(JsValue::UNDEFINED))
    }

    /// Keeps the registered client.
    #[wasm_bindgen(js_name = saveClientInformation)]
    pub async fn save_client_information(&self, info: JsValue) -> Result<(), JsValue> {
        self.put(CLIENT, &to_json(&info)?).await
    }

    /// The tokens, if any.
    pub async fn tokens(&self) -> Result<JsValue, JsValue> {
        Ok(self
            .get(TOKENS)
            .await?
            .map(|s| parse_json(&s))
            .unwrap_or(JsValue::UNDEFINED))
    }

    /// Keeps the tokens.
    #[wasm_bindgen(js_name = saveTokens)]
    pub async fn save_tokens(&self, tokens: JsValue) -> Result<(), JsValue> {
        self.put(TOKENS, &to_json(&tokens)?).await
    }

    /// Navigates to the authorization server.
    #[wasm_bindgen(js_name = redirectToAuthorization)]
    pub fn redirect_to_authorization(&self, url: JsValue) -> Result<(), JsValue> {
        let href = Reflect::get(&url, &"href".into())
            .ok()
            .and_then(|h| h.as_string())
            .or_else(|| url.as_string())
            .ok_or_else(|| JsValue::from_str("not a URL"))?;
        // Only an https (or loopback http) authorization endpoint: never a javascript: URL
        // from server metadata.
        let checked = edge_oauth_core::http::parse_secure_url(&href).map_err(|e| js_error(&e))?;
        let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
        window.location().assign(checked.as_str())
    }

    /// Keeps the PKCE verifier.
    #[wasm_bindgen(js_name = saveCodeVerifier)]
    pub async fn save_code_verifier(&self, verifier: String) -> Result<(), JsValue> {
        self.put(VERIFIER, &verifier).await
    }

    /// The PKCE verifier.
    #[wasm_bindgen(js_name = codeVerifier)]
    pub async fn code_verifier(&self) -> Result<String, JsValue> {
        self.get(VERIFIER)
            .await?
            .ok_or_else(|| JsValue::from_str("no code verifier saved"))
    }

    /// Keeps the SDK's discovery state.
    #[wasm_bindgen(js_name = saveDiscoveryState)]
    pub async fn save_discovery_state(&self, state: JsValue) -> Result<(), JsValue> {
        self.put(DISCOVERY, &to_json(&state)?).await
    }

    /// The SDK's discovery state.
    #[wasm_bindgen(js_name = discoveryState)]
    pub async fn discovery_state(&self) -> Result<JsValue, JsValue> {
        Ok(self
            .get(DISCOVERY)
            .await?
            .map(|s| parse_json(&s))
            .unwrap_or(JsValue::UNDEFINED))
    }

    /// Drops what the server rejected.
    #[wasm_bindgen(js_name = invalidateCredentials)]
    pub async fn invalidate_credentials(&self, scope: String) -> Result<(), JsValue> {
        let what: &[&str] = match scope.as_str() {
            "client" => &[CLIENT],
            "tokens" => &[TOKENS],
            "verifier" => &[VERIFIER, STATE],
            "discovery" => &[DISCOVERY],
            _ => &[CLIENT, TOKENS, VERIFIER, STATE, DISCOVERY],
        };
        for w in what {
            self.forget(w).await?;
        }
        Ok(())
    }

    /// Checks the callback (`state` in constant time, used once; `iss` against the issuer the
    /// SDK discovered, when both are known; `error`), strips it from the address bar, and
    /// returns the code.
    #[wasm_bindgen(js_name = handleCallback)]
    pub async fn handle_callback(&self, url: Option<String>) -> Result<String, JsValue> {
        let window = web_sys::window();
        let href = match url {
            Some(u) => u,
            None => window
                .as_ref()
                .ok_or_else(|| JsValue::from_str("no window"))?
                .location()
                .href()?,
        };
        let parsed = Url::parse(&href).map_err(|_| {
            js_error(&edge_oauth_core::Error::InvalidUrl {
                url: String::new(),
                reason: "callback is not an absolute URL",
            })
        })?;
        let param = |name: &str| {
            let mut values = parsed.query_pairs().filter(|(k, _)| k == name);
            let first = values.next().map(|(_, v)| v.into_owned());
            (first, values.next().is_some())
        };
        let expected = self.get(STATE).await?;
        // One use, whatever the outcome.
        self.forget(STATE).await?;
        let (state, repeated_state) = param("state");
        let (code, repeated_code) = param("code");
        if repeated_state || repeated_code {
            return Err(js_error(&edge_oauth_core::Error::DuplicateParameter {
                name: if repeated_state { "state" } else { "code" }.into(),
            }));
        }
        let (born, expected) = match expected.as_deref().and_then(|e| e.split_once('|')) {
            Some((born, e)) => (born.parse::<u64>().ok(), Some(e.to_owned())),
            None => (None, None),
        };
        let matches = match (&expected, &state) {
            (Some(e), Some(s)) => State::new(e.clone()).matches(s),
            _ => false,
        };
        if !matches {
            return Err(js_error(&if state.is_none() {
                edge_oauth_core::Error::StateMissing
            } else {
                edge_oauth_core::Error::StateMismatch
            }));
        }
        let now = edge_oauth_core::env::Clock::now(&crate::env::DateClock);
        let age_secs = now.saturating_sub(born.unwrap_or(0));
        if age_secs > edge_oauth_core::authorize::PENDING_MAX_AGE_SECS {
            return Err(js_error(
                &edge_oauth_core::Error::PendingAuthorizationExpired {
                    age_secs,
                    max_age_secs: edge_oauth_core::authorize::PENDING_MAX_AGE_SECS,
                },
            ));
        }
        // RFC 9207 against the issuer the SDK discovered (its discovery state): equal when
        // sent, required when the server advertises it.
        let metadata = self.get(DISCOVERY).await?.and_then(|d| {
            Reflect::get(&parse_json(&d), &"authorizationServerMetadata".into()).ok()
        });
        let issuer = metadata
            .as_ref()
            .and_then(|m| Reflect::get(m, &"issuer".into()).ok())
            .and_then(|i| i.as_string());
        let advertised = metadata
            .as_ref()
            .and_then(|m| {
                Reflect::get(m, &"authorization_response_iss_parameter_supported".into()).ok()
            })
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        match (param("iss").0, issuer) {
            (Some(found), Some(issuer)) if found != issuer => {
                return Err(js_error(&edge_oauth_core::Error::IssMismatch {
                    expected: issuer,
                    found,
                }));
            }
            (None, _) if advertised => return Err(js_error(&edge_oauth_core::Error::IssMissing)),
            _ => {}
        }
        if let Some(code) = param("error").0 {
            return Err(js_error(&edge_oauth_core::Error::AuthorizationFailed {
                error: edge_oauth_core::OAuthError {
                    code: edge_oauth_core::OAuthErrorCode::parse(&code),
                    description: param("error_description").0,
                    uri: None,
                },
            }));
        }
        let code = code.ok_or_else(|| js_error(&edge_oauth_core::Error::CodeMissing))?;
        if let Some(w) = window {
            let mut clean = parsed.clone();
            clean.set_query(None);
            let _ = w
                .history()
                .and_then(|h| h.replace_state_with_url(&JsValue::NULL, "", Some(clean.as_str())));
        }
        Ok(code)
    }
}
