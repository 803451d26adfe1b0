//! What the front worker asks of a session's Durable Object, and the upstream requests the
//! session builds. Upstream requests are built from scratch with the core (form body, client
//! authentication from the configured secret), so nothing of the page's request — `Origin`,
//! `Cookie`, other headers, unknown parameters — reaches the authorization server.

use core::cell::RefCell;

use edge_oauth_core::authorize::PendingAuthorization;
use edge_oauth_core::discovery::{
    AuthorizationServerMetadata, fetch_authorization_server_metadata,
};
use edge_oauth_core::registration::ClientCredentials;
use edge_oauth_core::url::Url;
use edge_oauth_core::{AuthorizationCode, CodeVerifier, HttpClient, HttpRequest, Recovery};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Provider, check_upstream_url};
use crate::error::ProxyError;
use crate::session::{HandleSecret, SessionHandle, WrappedDpopKey};

/// A command to a session's Durable Object (the body of the internal request).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Exchange a code; keep the refresh token if one comes back.
    Exchange {
        /// The provider's configured name.
        provider: String,
        /// The authorization code.
        code: AuthorizationCode,
        /// The redirect URI (already checked against the provider's list).
        redirect_uri: String,
        /// The PKCE verifier.
        code_verifier: CodeVerifier,
        /// The resource indicator (RFC 8707).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
        /// The page's DPoP proof (RFC 9449 §5), passed on to the authorization server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dpop: Option<String>,
    },
    /// Answer with a fresh access token, refreshing upstream if the held one is due.
    Refresh {
        /// The presented handle's secret.
        secret: HandleSecret,
        /// The page's DPoP proof, passed on when the refresh goes upstream.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dpop: Option<String>,
    },
    /// End the session and revoke its refresh token upstream.
    Revoke {
        /// The presented handle's secret.
        secret: HandleSecret,
    },
    /// Backend-for-frontend: keep a login in progress (this Durable Object is new).
    BffBegin {
        /// The provider's configured name.
        provider: String,
        /// The MCP server's configured name.
        mcp_server: String,
        /// The pending authorization the core built (state, PKCE verifier, issuer, …).
        pending: PendingAuthorization,
        /// The login cookie's secret.
        secret: HandleSecret,
        /// A step-up: the session (`<id>.<secret>` on the wire) the new one replaces once it
        /// exists.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<SessionHandle>,
        /// The session's DPoP key (wrapped), made with the login so that its thumbprint went
        /// as `dpop_jkt` in the authorization request (RFC 9449 §10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dpop_key: Option<Box<WrappedDpopKey>>,
    },
    /// Backend-for-frontend: finish the login with the callback URL; answers the session
    /// cookie's secret.
    BffComplete {
        /// The login cookie's secret.
        secret: HandleSecret,
        /// The full callback URL as requested.
        callback_url: String,
    },
    /// Backend-for-frontend: the session's status (no token).
    BffStatus {
        /// The session cookie's secret.
        secret: HandleSecret,
    },
    /// Backend-for-frontend: a usable access token for the MCP server named, refreshed
    /// first when due (an internal answer: the front worker adds it to the proxied request).
    BffAccessToken {
        /// The session cookie's secret.
        secret: HandleSecret,
        /// The MCP server the request is for.
        mcp_server: String,
        /// The proxied request's method, for the DPoP proof of a session bound to its own key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// The MCP server's `DPoP-Nonce`, after its `use_dpop_nonce` challenge (RFC 9449 §9).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// Backend-for-frontend: revoke upstream and end the session.
    BffLogout {
        /// The session cookie's secret.
        secret: HandleSecret,
    },
    /// Backend-for-frontend: the MCP server answered this session's request with a 403
    /// `insufficient_scope` challenge for `scope`; keep it for a step-up login.
    BffChallenge {
        /// The session cookie's secret.
        secret: HandleSecret,
        /// The MCP server that answered.
        mcp_server: String,
        /// The challenge's scope, checked and normalized.
        scope: String,
    },
    /// Backend-for-frontend: a step-up login replaced this session; delete it without
    /// revoking upstream (the new session's grant may be the same grant) and answer its
    /// refresh tokens (`refresh_tokens`: its own, then those it kept) for the new session.
    BffReplaced {
        /// The replaced session's secret.
        secret: HandleSecret,
    },
    /// Backend-for-frontend: the session this step-up's session replaced is deleted; keep its
    /// refresh tokens to revoke at logout, and forget `replaces`.
    BffSuperseded {
        /// The new session's secret.
        secret: HandleSecret,
        /// The replaced session (must be the one this session records).
        replaced: SessionHandle,
        /// The replaced session's refresh tokens.
        refresh_tokens: Vec<edge_oauth_core::RefreshToken>,
    },
}

/// The authorization code grant (RFC 6749 §4.1.3) for a code the page obtained, with the
/// page's PKCE verifier (RFC 7636 §4.5), `resource` (RFC 8707 §2.2) and the worker's client
/// authentication (RFC 6749 §2.3.1). The core's own builder takes only a callback it validated
/// itself; here the page validated `state` and `iss`, so the request is assembled from the
/// checked parameters with the core's authentication.
pub fn authorization_code_request(
    token_endpoint: &str,
    client: &ClientCredentials,
    code: &AuthorizationCode,
    redirect_uri: &str,
    code_verifier: &CodeVerifier,
    resource: Option<&str>,
) -> HttpRequest {
    let mut pairs = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.secret().to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
        ("code_verifier", code_verifier.secret().to_owned()),
    ];
    if let Some(r) = resource {
        pairs.push(("resource", r.to_owned()));
    }
    client.authenticate(HttpRequest::post_form(token_endpoint, []), pairs)
}

/// A provider's endpoints, configured or discovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Token endpoint.
    pub token: String,
    /// Revocation endpoint, if the provider has one.
    pub revocation: Option<String>,
    /// Authorization endpoint (configured, or discovered), for the backend-for-frontend.
    pub authorization: Option<String>,
    /// RFC 9207: the provider says it puts `iss` in authorization responses (then a callback
    /// without it is refused).
    pub iss_parameter_supported: bool,
    /// RFC 9449 §5.1: the provider lists ES256 in `dpop_signing_alg_values_supported`; the
    /// backend-for-frontend then binds its sessions' tokens to a key of its own.
    pub dpop_es256: bool,
}

impl Endpoints {
    /// What the core's `build_authorization_url` needs of the provider's metadata.
    pub fn login_metadata(
        &self,
        provider: &Provider,
    ) -> Result<AuthorizationServerMetadata, ProxyError> {
        let authorization = self.authorization.clone().ok_or_else(|| ProxyError::Misconfigured {
            problem: format!(
                "provider {}: no authorization endpoint (configure authorization_endpoint, or an issuer with metadata)",
                provider.name
            ),
        })?;
        Ok(AuthorizationServerMetadata {
            issuer: provider.issuer.clone(),
            authorization_endpoint: Some(authorization),
            token_endpoint: Some(self.token.clone()),
            revocation_endpoint: self.revocation.clone(),
            authorization_response_iss_parameter_supported: self.iss_parameter_supported,
            ..Default::default()
        })
    }
}

/// How long a definitive discovery failure is remembered before discovery is tried again.
pub const DISCOVERY_FAILURE_SECS: u64 = 60;

/// Discovered endpoints, or a definitive failure and when it happened.
type CacheEntry = Result<Endpoints, (ProxyError, u64)>;

/// Discovered endpoints per provider name, for this isolate.
#[derive(Default)]
pub struct EndpointCache(RefCell<Vec<(String, CacheEntry)>>);

impl EndpointCache {
    /// An empty cache.
    pub const fn new() -> Self {
        Self(RefCell::new(Vec::new()))
    }

    /// The provider's endpoints: configured ones as they are, else discovered from the issuer
    /// through the core (RFC 8414 / OIDC metadata, issuer equality, S256, no redirects) and
    /// checked against the same address policy as configured URLs. A transient failure is not
    /// remembered; a definitive one is, for [`DISCOVERY_FAILURE_SECS`], as a configuration error.
    pub async fn resolve<H: HttpClient>(
        &self,
        config: &Config,
        provider: &Provider,
        http: &H,
        now: u64,
    ) -> Result<Endpoints, ProxyError> {
        if let (Some(token), Some(revocation)) =
            (&provider.token_endpoint, &provider.revocation_endpoint)
        {
            return Ok(Endpoints {
                token: token.clone(),
                revocation: Some(revocation.clone()),
                authorization: provider.authorization_endpoint.clone(),
                iss_parameter_supported: false,
                dpop_es256: false,
            });
        }
        self.discovered(config, provider, http, now).await
    }

    /// The provider's endpoints for a backend-for-frontend login: with a configured
    /// `authorization_endpoint`, the configuration alone; else discovered (cached as
    /// [`EndpointCache::resolve`] does), so the authorization endpoint and RFC 9207 support
    /// come from the issuer's metadata.
    pub async fn resolve_for_login<H: HttpClient>(
        &self,
        config: &Config,
        provider: &Provider,
        http: &H,
        now: u64,
    ) -> Result<Endpoints, ProxyError> {
        match (&provider.authorization_endpoint, &provider.token_endpoint) {
            (Some(_), Some(_)) => self.resolve(config, provider, http, now).await,
            _ => self.discovered(config, provider, http, now).await,
        }
    }

    async fn discovered<H: HttpClient>(
        &self,
        config: &Config,
        provider: &Provider,
        http: &H,
        now: u64,
    ) -> Result<Endpoints, ProxyError> {
        if let Some(hit) = self.cached(&provider.name, now) {
            return hit;
        }
        let result = discover(config, provider, http).await;
        match &result {
            Ok(e) => self.store(&provider.name, Ok(e.clone())),
            Err(e @ ProxyError::Misconfigured { .. }) => {
                self.store(&provider.name, Err((e.clone(), now)))
            }
            Err(_) => {}
        }
        result
    }

    fn cached(&self, name: &str, now: u64) -> Option<Result<Endpoints, ProxyError>> {
        let cache = self.0.borrow();
        let (_, entry) = cache.iter().find(|(n, _)| n == name)?;
        match entry {
            Ok(e) => Some(Ok(e.clone())),
            Err((e, at)) if now.saturating_sub(*at) < DISCOVERY_FAILURE_SECS => {
                Some(Err(e.clone()))
            }
            Err(_) => None,
        }
    }

    fn store(&self, name: &str, entry: CacheEntry) {
        let mut cache = self.0.borrow_mut();
        cache.retain(|(n, _)| n != name);
        cache.push((name.to_owned(), entry));
    }
}

async fn discover<H: HttpClient>(
    config: &Config,
    provider: &Provider,
    http: &H,
) -> Result<Endpoints, ProxyError> {
    let misconfigured = |problem: String| ProxyError::Misconfigured { problem };
    let issuer = Url::parse(&provider.issuer).map_err(|_| {
        misconfigured(format!(
            "provider {}: the issuer is not a URL",
            provider.name
        ))
    })?;
    let mut trace = Vec::new();
    let meta = match fetch_authorization_server_metadata(
        http,
        &issuer,
        &provider.issuer,
        &mut trace,
    )
    .await
    {
        Ok(Some(meta)) => meta,
        // A configured token endpoint is enough; revocation then stays local only.
        Ok(None) if provider.token_endpoint.is_some() => Default::default(),
        Ok(None) => {
            return Err(misconfigured(format!(
                "provider {}: no authorization server metadata at {} (configure token_endpoint and revocation_endpoint)",
                provider.name, provider.issuer
            )));
        }
        Err(e) if e.recovery() == Recovery::Transient => {
            return Err(ProxyError::UpstreamUnavailable {
                retry_after: e.retry_after(),
            });
        }
        Err(e) => {
            return Err(misconfigured(format!(
                "provider {}: discovery failed: {e}",
                provider.name
            )));
        }
    };
    // Configured endpoints win over discovered ones.
    let token = match &provider.token_endpoint {
        Some(t) => t.clone(),
        None => meta.token_endpoint.clone().unwrap_or_default(),
    };
    let revocation = provider
        .revocation_endpoint
        .clone()
        .or(meta.revocation_endpoint.clone());
    let authorization = provider
        .authorization_endpoint
        .clone()
        .or(meta.authorization_endpoint.clone());
    for (what, url) in [
        ("token_endpoint", Some(&token)),
        ("revocation_endpoint", revocation.as_ref()),
        ("authorization_endpoint", authorization.as_ref()),
    ] {
        if let Some(u) = url
            && let Err(why) = check_upstream_url(u, config.allow_loopback)
        {
            return Err(misconfigured(format!(
                "provider {}: the discovered {what} {u:?} {why}",
                provider.name
            )));
        }
    }
    Ok(Endpoints {
        token,
        revocation,
        authorization,
        iss_parameter_supported: meta.authorization_response_iss_parameter_supported,
        dpop_es256: meta
            .dpop_signing_alg_values_supported
            .iter()
            .flatten()
            .any(|a| a == "ES256"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_oauth_core::ClientSecret;
    use edge_oauth_core::registration::{RegistrationSource, TokenEndpointAuthMethod};

    fn client(method: TokenEndpointAuthMethod) -> ClientCredentials {
        ClientCredentials {
            issuer: "https://as".into(),
            client_id: "c 1".into(),
            client_secret: Some(ClientSecret::new("s:x")),
            auth_method: method,
            source: RegistrationSource::PreRegistered,
            redirect_uris: vec![],
            secret_expires_at: None,
            registration_access_token: None,
        }
    }

    #[test]
    fn a_replaced_sessions_secret_is_redacted() {
        let replaced = HandleSecret::from_random(&[7; 32]);
        let handle = format!("{}.{}", "ab".repeat(32), replaced.secret());
        let wire = serde_json::json!({ "bff_begin": {
            "provider": "main",
            "mcp_server": "tools",
            "pending": {
                "state": "st", "code_verifier": "cv", "issuer": "https://as", "iss_required": true,
                "redirect_uri": "https://w/bff/callback", "client_id": "c", "created_at": 1,
            },
            "secret": HandleSecret::from_random(&[1; 32]).secret(),
            "replaces": handle,
        }});
        let command: Command = serde_json::from_value(wire.clone()).unwrap();
        let debug = format!("{command:?}");
        assert!(!debug.contains(replaced.secret()), "{debug}");
        // The wire form (and a stored login's) is unchanged: `<id>.<secret>`.
        assert_eq!(serde_json::to_value(&command).unwrap(), wire);
        let mut bad = wire;
        bad["bff_begin"]["replaces"] = "not-a-handle".into();
        assert!(serde_json::from_value::<Command>(bad).is_err());
    }

    #[test]
    fn code_exchange_carries_the_secret_and_nothing_else() {
        let r = authorization_code_request(
            "https://as/token",
            &client(TokenEndpointAuthMethod::ClientSecretBasic),
            &AuthorizationCode::new("code-1"),
            "https://app/cb",
            &CodeVerifier::new("v-1"),
            Some("https://mcp/"),
        );
        // RFC 6749 §2.3.1: id and secret form-encoded before base64.
        assert_eq!(r.header("authorization"), Some("Basic YysxOnMlM0F4"));
        let pairs = r.form_pairs();
        let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "grant_type",
                "code",
                "redirect_uri",
                "code_verifier",
                "resource",
                "client_id"
            ]
        );
        assert_eq!(r.headers.len(), 3, "{r:?}");
        let r = authorization_code_request(
            "https://as/token",
            &client(TokenEndpointAuthMethod::ClientSecretPost),
            &AuthorizationCode::new("code-1"),
            "https://app/cb",
            &CodeVerifier::new("v-1"),
            None,
        );
        assert!(r.header("authorization").is_none());
        assert!(
            r.form_pairs()
                .contains(&("client_secret".into(), "s:x".into()))
        );
    }

    #[test]
    fn commands_do_not_print_secrets() {
        let c = Command::Exchange {
            provider: "p".into(),
            code: AuthorizationCode::new("code-secret"),
            redirect_uri: "https://app/cb".into(),
            code_verifier: CodeVerifier::new("verifier-secret"),
            resource: None,
            dpop: Some("h.p.s".into()),
        };
        let d = format!("{c:?}");
        assert!(
            !d.contains("code-secret") && !d.contains("verifier-secret"),
            "{d}"
        );
        let json = serde_json::to_string(&c).unwrap();
        let back: Command = serde_json::from_str(&json).unwrap();
        assert!(matches!(back, Command::Exchange { dpop: Some(p), .. } if p == "h.p.s"));
    }
}
