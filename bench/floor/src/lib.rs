//! The size floor of the browser package: the core's synchronous, sans-IO RFC steps alone,
//! exported to JS one function each. No `async`, no `fetch`, IndexedDB, WebCrypto or Web
//! Locks: a hand-written JS layer would do the I/O and call these between requests, holding
//! sessions, clients, metadata and pending authorizations as the JSON strings returned here.
//!
//! Every check stays the core's: each export only converts its arguments and calls the core.
//! Responses come in as `(status, headers, body)`, `headers` a flat `[name, value, …]` list;
//! requests go out as `{method, url, headers: [[name, value], …], body}`. Errors are thrown as
//! an `Error` named `EdgeOAuthError` with the core's stable `code` and `recovery`.
//!
//! Without features: the bare RFC steps (metadata URLs and checks, PKCE, authorization URL,
//! callback with the code grant, refresh grant, token response). `extras`: scope selection,
//! the 2025-03-26 fallback, the token challenge, session records, refresh-token salvage.
//! `full` (default, with `extras`): registration, revocation, DPoP/JWS, challenge parsing.
#![forbid(unsafe_code)]

use edge_oauth_core as eo;
#[cfg(feature = "extras")]
use eo::discovery::ProtectedResourceMetadata;
use eo::discovery::{self, AuthorizationServerMetadata};
use eo::env::{Clock, OsRandom};
use eo::json;
#[cfg(feature = "extras")]
use eo::json::{Map, Value};
use eo::registration::ClientCredentials;
use eo::{Error, HttpRequest, HttpResponse, Recovery, RefreshToken};
#[cfg(feature = "extras")]
use eo::{Session, TokenSet};
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

type R<T> = Result<T, JsValue>;

/// `Date.now()` in whole seconds (`SystemTime` panics on wasm32-unknown-unknown).
struct DateClock;

impl Clock for DateClock {
    fn now(&self) -> u64 {
        (js_sys::Date::now() / 1000.0) as u64
    }
}

fn thrown(code: &str, recovery: Recovery, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("EdgeOAuthError");
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    let _ = Reflect::set(&err, &"recovery".into(), &recovery.as_str().into());
    err.into()
}

/// The core's error as a JS `Error` with `.code` and `.recovery` (as the browser package's).
fn js_error(e: Error) -> JsValue {
    thrown(e.code(), e.recovery(), &e.to_string())
}

fn invalid(message: &str) -> JsValue {
    thrown("invalid_input", Recovery::Misconfiguration, message)
}

/// One of the JSON documents the JS side keeps (as returned by an export here).
fn load<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> R<T> {
    json::from_str(text).map_err(|e| invalid(&format!("{what}: {e}")))
}

fn save<T: serde::Serialize>(value: &T) -> R<String> {
    json::to_string(value).map_err(|e| invalid(&e.to_string()))
}

fn response(status: u16, headers: Vec<String>, body: &str) -> HttpResponse {
    let mut list = Vec::with_capacity(headers.len() / 2);
    let mut it = headers.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        list.push((name, value));
    }
    HttpResponse::new(status, list, body)
}

/// `{method, url, headers: [[name, value], …], body}` for `fetch`.
fn request(r: HttpRequest) -> JsValue {
    let o = Object::new();
    let headers = Array::new();
    for (name, value) in &r.headers {
        headers.push(&Array::of2(&name.into(), &value.into()));
    }
    let _ = Reflect::set(&o, &"method".into(), &r.method.as_str().into());
    let _ = Reflect::set(&o, &"url".into(), &r.url.into());
    let _ = Reflect::set(&o, &"headers".into(), &headers);
    if let Some(body) = r.body {
        // The core's bodies are form-urlencoded or JSON text.
        let body = String::from_utf8(body).unwrap_or_default();
        let _ = Reflect::set(&o, &"body".into(), &body.into());
    }
    o.into()
}

// ---- discovery (RFC 9728, RFC 8414, MCP) ----------------------------------------------------

/// RFC 9728 §3.1 well-known URLs for the MCP server URL, in order (the last is the root one).
#[wasm_bindgen(js_name = protectedResourceMetadataUrls)]
pub fn protected_resource_metadata_urls(server: &str) -> R<Vec<String>> {
    let server = eo::http::parse_secure_url(server).map_err(js_error)?;
    Ok(discovery::protected_resource_metadata_urls(&server)
        .into_iter()
        .map(|u| u.to_string())
        .collect())
}

/// The authorization server metadata URLs in the MCP order, as `[url, "oauth" | "openid", …]`.
#[wasm_bindgen(js_name = authorizationServerMetadataUrls)]
pub fn authorization_server_metadata_urls(issuer: &str) -> R<Vec<String>> {
    let issuer = eo::http::parse_secure_url(issuer).map_err(js_error)?;
    let mut out = Vec::new();
    for (u, kind) in discovery::authorization_server_metadata_urls(&issuer) {
        out.push(u.to_string());
        out.push(match kind {
            discovery::MetadataKind::OAuth => "oauth".into(),
            discovery::MetadataKind::OpenId => "openid".into(),
        });
    }
    Ok(out)
}

/// A resource identifier (RFC 8707 §2) parsed and serialised.
#[wasm_bindgen(js_name = resourceIdentifier)]
pub fn resource_identifier(raw: &str) -> R<String> {
    discovery::resource_identifier(raw)
        .map(|u| u.to_string())
        .map_err(js_error)
}

/// An absolute URL, HTTPS except on loopback (RFC 9700 §2.6), serialised.
#[cfg(feature = "extras")]
#[wasm_bindgen(js_name = parseSecureUrl)]
pub fn parse_secure_url(input: &str) -> R<String> {
    eo::http::parse_secure_url(input)
        .map(|u| u.to_string())
        .map_err(js_error)
}

/// Checks a protected resource metadata response (RFC 9728 §3.2, §3.3). `source` is
/// `"challenge"`, `"path"` or `"root"`. The checked document as JSON.
#[wasm_bindgen(js_name = processProtectedResourceMetadata)]
#[allow(clippy::too_many_arguments)]
pub fn process_protected_resource_metadata(
    status: u16,
    headers: Vec<String>,
    body: &str,
    url: &str,
    server: &str,
    source: &str,
    same_origin_parent: bool,
) -> R<String> {
    let server = eo::http::parse_secure_url(server).map_err(js_error)?;
    let source = match source {
        "challenge" => discovery::MetadataSource::Challenge,
        "path" => discovery::MetadataSource::PathInserted,
        "root" => discovery::MetadataSource::Root,
        _ => return Err(invalid("source must be challenge, path or root")),
    };
    let policy = if same_origin_parent {
        discovery::ResourcePolicy::DangerousSameOriginParent
    } else {
        discovery::ResourcePolicy::Strict
    };
    let prm = discovery::process_protected_resource_metadata(
        &response(status, headers, body),
        url,
        &server,
        source,
        policy,
    )
    .map_err(js_error)?;
    save(&prm)
}

/// Checks an authorization server metadata response (RFC 8414 §3.3 issuer equality, S256,
/// HTTPS endpoints). The checked document as JSON.
#[wasm_bindgen(js_name = processAuthorizationServerMetadata)]
pub fn process_authorization_server_metadata(
    status: u16,
    headers: Vec<String>,
    body: &str,
    url: &str,
    expected_issuer: &str,
) -> R<String> {
    let meta = discovery::process_authorization_server_metadata(
        &response(status, headers, body),
        url,
        expected_issuer,
    )
    .map_err(js_error)?;
    save(&meta)
}

/// The 2025-03-26 default endpoints at the server's origin, for a server without metadata.
#[cfg(feature = "extras")]
#[wasm_bindgen(js_name = fallbackMetadata)]
pub fn fallback_metadata(server: &str) -> R<String> {
    let server = eo::http::parse_secure_url(server).map_err(js_error)?;
    let mut origin = server;
    origin.set_path("/");
    origin.set_query(None);
    origin.set_fragment(None);
    save(&AuthorizationServerMetadata::fallback_for(&origin))
}

/// The first Bearer (else DPoP) challenge of a `WWW-Authenticate` value, as JSON
/// `{error, error_description, scope, resource_metadata, realm}`, or `undefined`.
#[cfg(feature = "extras")]
#[wasm_bindgen(js_name = parseTokenChallenge)]
pub fn parse_token_challenge(header: &str) -> Option<String> {
    let c = eo::www_authenticate::parse_token_challenge(header)?;
    let mut m = Map::new();
    for (k, v) in [
        ("error", c.error),
        ("error_description", c.error_description),
        ("scope", c.scope),
        ("resource_metadata", c.resource_metadata),
        ("realm", c.realm),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v.into());
        }
    }
    Some(json::value_to_string(&Value::Object(m)))
}

// ---- scope (MCP scope selection) ------------------------------------------------------------

/// The scope to request: the challenge's, else the resource's `scopes_supported`, plus
/// `offline_access` when the AS lists it.
#[cfg(feature = "extras")]
#[wasm_bindgen(js_name = selectScope)]
pub fn select_scope(
    challenge_scope: Option<String>,
    resource_metadata: Option<String>,
    server_metadata: &str,
) -> R<Option<String>> {
    let prm: Option<ProtectedResourceMetadata> = match resource_metadata {
        Some(t) => Some(load("resource metadata", &t)?),
        None => None,
    };
    let meta: AuthorizationServerMetadata = load("server metadata", server_metadata)?;
    Ok(eo::scope::select_scope(
        challenge_scope.as_deref(),
        prm.as_ref(),
        &meta,
    ))
}

// ---- PKCE (RFC 7636) ------------------------------------------------------------------------

/// A fresh verifier and its S256 challenge: `[verifier, challenge]`.
#[wasm_bindgen]
pub fn pkce() -> R<Vec<String>> {
    let p = eo::pkce::Pkce::generate(&OsRandom).map_err(js_error)?;
    Ok(vec![
        p.verifier().secret().to_owned(),
        p.challenge().to_owned(),
    ])
}

/// BASE64URL(SHA256(verifier)).
#[wasm_bindgen(js_name = s256Challenge)]
pub fn s256_challenge(verifier: &str) -> String {
    eo::pkce::s256_challenge(verifier)
}

/// `bytes` (≥ 16) random bytes, base64url.
#[wasm_bindgen(js_name = randomToken)]
pub fn random_token(bytes: usize) -> R<String> {
    eo::pkce::random_token(&OsRandom, bytes).map_err(js_error)
}

// ---- authorization request and callback (RFC 6749 §4.1, RFC 9207) ---------------------------

/// The authorization URL with fresh state and PKCE: `[url, pendingAuthorizationJson]` (store
/// the pending authorization encrypted: it holds the verifier).
#[wasm_bindgen(js_name = buildAuthorizationUrl)]
pub fn build_authorization_url(
    server_metadata: &str,
    client: &str,
    redirect_uri: &str,
    scope: Option<String>,
    resource: Option<String>,
) -> R<Vec<String>> {
    let meta: AuthorizationServerMetadata = load("server metadata", server_metadata)?;
    let client: ClientCredentials = load("client", client)?;
    let req = eo::authorize::AuthorizationRequest {
        metadata: &meta,
        client: &client,
        redirect_uri,
        scope: scope.as_deref(),
        resource: resource.as_deref(),
    };
    let (url, pending) =
        eo::authorize::build_authorization_url(&req, &OsRandom, &DateClock).map_err(js_error)?;
    Ok(vec![url.to_string(), save(&pending)?])
}

/// Validates the redirect back (age, redirect URI, duplicates, `iss`, `state`, `error`) and
/// builds the code exchange (RFC 6749 §4.1.3, PKCE verifier, RFC 8707 `resource`). One call:
/// the core's code grant takes only a validated callback.
#[wasm_bindgen(js_name = codeRequest)]
pub fn code_request(
    callback_url: &str,
    pending: &str,
    token_endpoint: &str,
    client: &str,
) -> R<JsValue> {
    let pending: eo::authorize::PendingAuthorization = load("pending authorization", pending)?;
    let client: ClientCredentials = load("client", client)?;
    let validated =
        eo::authorize::validate_callback(callback_url, pending, &DateClock).map_err(js_error)?;
    eo::token::authorization_code_request(token_endpoint, &client, validated)
        .map(request)
        .map_err(js_error)
}

// ---- tokens (RFC 6749 §5, §6) ---------------------------------------------------------------

/// The refresh grant with `resource` and an optional narrower `scope`.
#[wasm_bindgen(js_name = refreshRequest)]
pub fn refresh_request(
    token_endpoint: &str,
    client: &str,
    refresh_token: &str,
    scope: Option<String>,
    resource: Option<String>,
) -> R<JsValue> {
    let client: ClientCredentials = load("client", client)?;
    eo::token::refresh_token_request(
        token_endpoint,
        &client,
        &RefreshToken::new(refresh_token),
        scope.as_deref(),
        resource.as_deref(),
    )
    .map(request)
    .map_err(js_error)
}

/// Checks a token response (status and OAuth error body, content type, fields, `token_type`;
/// `DPoP` only when `proofSent`). The token set as JSON.
#[wasm_bindgen(js_name = processTokenResponse)]
#[allow(clippy::too_many_arguments)]
pub fn process_token_response(
    status: u16,
    headers: Vec<String>,
    body: &str,
    url: &str,
    previous_refresh: Option<String>,
    requested_scope: Option<String>,
    proof_sent: bool,
) -> R<String> {
    let previous = previous_refresh.map(RefreshToken::new);
    let tokens = eo::token::process_token_response_with(
        &response(status, headers, body),
        url,
        &DateClock,
        previous.as_ref(),
        requested_scope.as_deref(),
        proof_sent,
    )
    .map_err(js_error)?;
    save(&tokens)
}

/// A rotated refresh token in a 200 response that failed validation, if there is one.
#[cfg(feature = "extras")]
#[wasm_bindgen(js_name = salvageRefreshToken)]
pub fn salvage_refresh_token(
    status: u16,
    headers: Vec<String>,
    body: &str,
    old: &str,
) -> Option<String> {
    eo::token::salvage_refresh_token(&response(status, headers, body), &RefreshToken::new(old))
        .map(|t| t.secret().to_owned())
}

/// A session record (what the JS store keeps per resource) as JSON.
#[cfg(feature = "extras")]
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn session(
    resource: String,
    server: String,
    issuer: String,
    client_id: String,
    token_endpoint: String,
    revocation_endpoint: Option<String>,
    requested_scope: Option<String>,
    tokens: &str,
) -> R<String> {
    let tokens: TokenSet = load("tokens", tokens)?;
    save(&Session {
        resource,
        server,
        issuer,
        client_id,
        token_endpoint,
        revocation_endpoint,
        requested_scope,
        tokens,
    })
}

/// A stored session's `Authorization` value and whether it is due for refresh (within
/// `bufferSecs` of expiry): `[header, "refresh" | "fresh"]`.
#[cfg(feature = "extras")]
#[wasm_bindgen(js_name = sessionAuthorization)]
pub fn session_authorization(session: &str, buffer_secs: u32) -> R<Vec<String>> {
    let s: Session = load("session", session)?;
    let due = s
        .tokens
        .needs_refresh(DateClock.now(), u64::from(buffer_secs));
    Ok(vec![
        s.tokens.authorization_header(),
        if due { "refresh" } else { "fresh" }.into(),
    ])
}

/// A session with the tokens of a refresh, as JSON.
#[cfg(feature = "extras")]
#[wasm_bindgen(js_name = sessionWithTokens)]
pub fn session_with_tokens(session: &str, tokens: &str) -> R<String> {
    let mut s: Session = load("session", session)?;
    s.tokens = load("tokens", tokens)?;
    save(&s)
}

// ---- registration (RFC 7591, client ID metadata documents) ----------------------------------

#[cfg(feature = "full")]
mod full {
    use super::*;
    use eo::registration::{ClientMetadata, TokenEndpointAuthMethod};

    /// A client identified by its Client ID Metadata Document URL, as JSON.
    #[wasm_bindgen(js_name = metadataDocumentClient)]
    pub fn metadata_document_client(
        issuer: &str,
        client_id_url: &str,
        redirect_uri: &str,
    ) -> R<String> {
        let c = eo::registration::metadata_document_client(issuer, client_id_url, redirect_uri)
            .map_err(js_error)?;
        save(&c)
    }

    /// The auth method to register with.
    #[wasm_bindgen(js_name = chooseAuthMethod)]
    pub fn choose_auth_method(preferred: &str, server_metadata: &str) -> R<String> {
        let preferred = TokenEndpointAuthMethod::parse(preferred)
            .ok_or_else(|| invalid("unknown token endpoint auth method"))?;
        let meta: AuthorizationServerMetadata = load("server metadata", server_metadata)?;
        Ok(eo::registration::choose_auth_method(preferred, &meta)
            .as_str()
            .into())
    }

    /// The RFC 7591 §3.1 registration request for `clientMetadata` (JSON of the client's
    /// metadata: client_name, redirect_uris, application_type, grant_types, …).
    #[wasm_bindgen(js_name = registrationRequest)]
    pub fn registration_request(server_metadata: &str, client_metadata: &str) -> R<JsValue> {
        let meta: AuthorizationServerMetadata = load("server metadata", server_metadata)?;
        let client: ClientMetadata = load("client metadata", client_metadata)?;
        eo::registration::dynamic_registration_request(&meta, &client)
            .map(request)
            .map_err(js_error)
    }

    /// Checks the RFC 7591 §3.2 response; the client credentials as JSON.
    #[wasm_bindgen(js_name = processRegistrationResponse)]
    pub fn process_registration_response(
        status: u16,
        headers: Vec<String>,
        body: &str,
        url: &str,
        issuer: &str,
        client_metadata: &str,
    ) -> R<String> {
        let requested: ClientMetadata = load("client metadata", client_metadata)?;
        let c = eo::registration::process_registration_response(
            &response(status, headers, body),
            url,
            issuer,
            &requested,
        )
        .map_err(js_error)?;
        save(&c)
    }

    // ---- revocation (RFC 7009) --------------------------------------------------------------

    /// The revocation request; `hint` is `"access_token"` or `"refresh_token"`.
    #[wasm_bindgen(js_name = revocationRequest)]
    pub fn revocation_request(endpoint: &str, client: &str, token: &str, hint: &str) -> R<JsValue> {
        let client: ClientCredentials = load("client", client)?;
        let hint = match hint {
            "access_token" => eo::token::TokenTypeHint::AccessToken,
            "refresh_token" => eo::token::TokenTypeHint::RefreshToken,
            _ => return Err(invalid("hint must be access_token or refresh_token")),
        };
        eo::token::revocation_request(endpoint, &client, token, hint)
            .map(request)
            .map_err(js_error)
    }

    /// RFC 7009 §2.2: throws unless the token was revoked (or already invalid).
    #[wasm_bindgen(js_name = processRevocationResponse)]
    pub fn process_revocation_response(
        status: u16,
        headers: Vec<String>,
        body: &str,
        url: &str,
    ) -> R<()> {
        eo::token::process_revocation_response(&response(status, headers, body), url)
            .map_err(js_error)
    }

    // ---- scope unions (step-up) -------------------------------------------------------------

    /// Space-separated union, order kept, duplicates dropped.
    #[wasm_bindgen(js_name = scopeUnion)]
    pub fn scope_union(a: Option<String>, b: Option<String>) -> String {
        eo::scope::union(a.as_deref(), b.as_deref())
    }

    /// True when every scope of `needed` is in `granted`.
    #[wasm_bindgen(js_name = scopeContainsAll)]
    pub fn scope_contains_all(granted: Option<String>, needed: Option<String>) -> bool {
        eo::scope::contains_all(granted.as_deref(), needed.as_deref())
    }

    // ---- WWW-Authenticate (RFC 9110 §11.6.1) ------------------------------------------------

    /// Every challenge of a `WWW-Authenticate` value as JSON
    /// `[{scheme, token68?, params: [[name, value], …]}, …]`.
    #[wasm_bindgen(js_name = parseChallenges)]
    pub fn parse_challenges(header: &str) -> String {
        let list: Vec<Value> = eo::www_authenticate::parse_challenges(header)
            .into_iter()
            .map(|c| {
                let mut m = Map::new();
                m.insert("scheme".into(), c.scheme.into());
                if let Some(t) = c.token68 {
                    m.insert("token68".into(), t.into());
                }
                let params: Vec<Value> = c
                    .params
                    .into_iter()
                    .map(|(k, v)| Value::Array(vec![k.into(), v.into()]))
                    .collect();
                m.insert("params".into(), Value::Array(params));
                Value::Object(m)
            })
            .collect();
        json::value_to_string(&Value::Array(list))
    }

    // ---- DPoP (RFC 9449) and JWS (RFC 7515) ---------------------------------------------------

    fn method(m: &str) -> R<eo::Method> {
        match m {
            "GET" => Ok(eo::Method::Get),
            "POST" => Ok(eo::Method::Post),
            "DELETE" => Ok(eo::Method::Delete),
            _ => Err(invalid("method must be GET, POST or DELETE")),
        }
    }

    /// Whether token requests carry proofs: `policy` `"off" | "prefer" | "require"` for an
    /// ES256 key.
    #[wasm_bindgen(js_name = useDpop)]
    pub fn use_dpop(policy: &str, server_metadata: &str) -> R<bool> {
        let policy = match policy {
            "off" => eo::DpopPolicy::Off,
            "prefer" => eo::DpopPolicy::Prefer,
            "require" => eo::DpopPolicy::Require,
            _ => return Err(invalid("policy must be off, prefer or require")),
        };
        let meta: AuthorizationServerMetadata = load("server metadata", server_metadata)?;
        eo::dpop::use_dpop(policy, eo::JwsAlgorithm::Es256, &meta).map_err(js_error)
    }

    /// `htu`: the URL without query and fragment.
    #[wasm_bindgen(js_name = dpopHtu)]
    pub fn dpop_htu(url: &str) -> R<String> {
        eo::dpop::htu(url).map_err(js_error)
    }

    /// `ath`: base64url SHA-256 of the access token.
    #[wasm_bindgen(js_name = dpopAth)]
    pub fn dpop_ath(access_token: &str) -> String {
        eo::dpop::ath(&eo::AccessToken::new(access_token))
    }

    /// RFC 7638 thumbprint of a P-256 public key (`jkt`).
    #[wasm_bindgen(js_name = jwkThumbprint)]
    pub fn jwk_thumbprint(x: &str, y: &str) -> String {
        p256_jwk(x, y).thumbprint()
    }

    fn p256_jwk(x: &str, y: &str) -> eo::PublicJwk {
        eo::PublicJwk::Ec {
            crv: "P-256".into(),
            x: x.into(),
            y: y.into(),
        }
    }

    /// The signing input of an ES256 DPoP proof for one request (header `typ`, `alg`, `jwk`;
    /// claims `jti`, `htm`, `htu`, `iat`, `ath`, `nonce`): the JS side signs it with WebCrypto
    /// and appends `.` and the base64url signature.
    #[wasm_bindgen(js_name = dpopSigningInput)]
    pub fn dpop_signing_input(
        method_name: &str,
        url: &str,
        access_token: Option<String>,
        nonce: Option<String>,
        x: &str,
        y: &str,
    ) -> R<String> {
        let token = access_token.map(eo::AccessToken::new);
        let req = eo::dpop::ProofRequest {
            method: method(method_name)?,
            url,
            access_token: token.as_ref(),
            nonce: nonce.as_deref(),
        };
        let jti = eo::jws::new_jti(&OsRandom).map_err(js_error)?;
        let claims = eo::dpop::proof_claims(&req, DateClock.now(), &jti).map_err(js_error)?;
        let mut header = Map::new();
        header.insert("typ".into(), eo::dpop::PROOF_TYPE.into());
        header.insert("alg".into(), eo::JwsAlgorithm::Es256.as_str().into());
        header.insert("jwk".into(), p256_jwk(x, y).to_json());
        Ok(eo::jws::signing_input(&Value::Object(header), &claims))
    }

    /// The JWS signing input of a JSON header and payload.
    #[wasm_bindgen(js_name = signingInput)]
    pub fn signing_input(header: &str, payload: &str) -> R<String> {
        let h: Value = load("header", header)?;
        let p: Value = load("payload", payload)?;
        Ok(eo::jws::signing_input(&h, &p))
    }

    /// A fresh `jti`.
    #[wasm_bindgen(js_name = newJti)]
    pub fn new_jti() -> R<String> {
        eo::jws::new_jti(&OsRandom).map_err(js_error)
    }

    /// A well-formed `DPoP-Nonce` of a response, if any.
    #[wasm_bindgen(js_name = dpopResponseNonce)]
    pub fn dpop_response_nonce(status: u16, headers: Vec<String>, body: &str) -> Option<String> {
        eo::dpop::response_nonce(&response(status, headers, body)).map(str::to_owned)
    }

    /// The new nonce of a token endpoint's `use_dpop_nonce` challenge, if it is one.
    #[wasm_bindgen(js_name = tokenEndpointNonceChallenge)]
    pub fn token_endpoint_nonce_challenge(
        status: u16,
        headers: Vec<String>,
        body: &str,
    ) -> Option<String> {
        eo::dpop::token_endpoint_nonce_challenge(&response(status, headers, body))
            .map(str::to_owned)
    }

    /// The new nonce of a resource server's `use_dpop_nonce` challenge, if it is one.
    #[wasm_bindgen(js_name = resourceNonceChallenge)]
    pub fn resource_nonce_challenge(
        status: u16,
        headers: Vec<String>,
        body: &str,
    ) -> Option<String> {
        eo::dpop::resource_nonce_challenge(&response(status, headers, body)).map(str::to_owned)
    }
}
