//! The orchestrating client: given an MCP server URL, turns a 401 into discovery →
//! registration → authorization → code exchange → store → retry, a 403 `insufficient_scope`
//! into step-up, and keeps tokens fresh with rotation-aware refresh. Configured for it, it
//! obtains tokens with no user instead (client credentials, a workload's JWT, an enterprise
//! IdP's identity assertion) and binds them to a DPoP key (RFC 9449).

use core::cell::RefCell;
use core::future::Future;

use crate::url::Url;

use crate::authorize::PendingAuthorization;
use crate::authorize::{AuthorizationRequest, build_authorization_url, validate_callback};
use crate::device::process_device_token_response_with;
use crate::device::{
    DeviceAuthorization, DevicePoll, device_authorization_request, device_token_request,
    process_device_authorization_response,
};
use crate::discovery::{
    AuthorizationServerMetadata, Discovery, DiscoveryStep, ResourcePolicy, discover_with,
};
use crate::dpop::{self, DpopPolicy, ProofRequest};
use crate::env::{Clock, RandomSource};
use crate::error::{Error, Recovery, Result};
#[cfg(feature = "non-interactive")]
use crate::grants::{
    CLIENT_CREDENTIALS_GRANT, client_credentials_request, id_jag_request, jwt_bearer_request,
    process_id_jag_response,
};
use crate::grants::{client_assertion, with_client_assertion};
use crate::http::{self, HttpClient, HttpRequest, HttpResponse, Method, parse_secure_url};
use crate::jws::Signer;
use crate::registration::{
    ClientCredentials, ClientMetadata, RegistrationSource, TokenEndpointAuthMethod,
    dynamic_registration_request, metadata_document_client, process_registration_response,
};
#[cfg(feature = "non-interactive")]
use crate::scope::OFFLINE_ACCESS;
use crate::scope::{contains_all, select_scope, union};
use crate::secret::{AccessToken, ClientSecret, IdToken, JwtAssertion};
use crate::store::{CredentialStore, Session};
use crate::token::{
    DEFAULT_REFRESH_BUFFER_SECS, TokenSet, TokenTypeHint, authorization_code_request,
    process_revocation_response, process_token_response_with, refresh_token_request,
    revocation_request,
};
use crate::www_authenticate::{BearerChallenge, parse_token_challenge};

/// The user-facing step of authorization: show the authorization URL (browser popup,
/// redirect, system browser, or a headless redirect follower) and return the URL the
/// authorization server redirected back to.
pub trait Authorizer {
    /// The redirect URI this authorizer receives callbacks at.
    fn redirect_uri(&self) -> String;
    /// The redirect URI to register with `issuer` when the client registers itself (RFC 7591).
    /// An authorizer that can receive callbacks at several paths returns one per issuer
    /// (e.g. `…/callback/<issuer_tag(issuer)>`, see [`issuer_tag`]): a callback then proves
    /// which authorization server sent it even when that server sends no `iss` (RFC 9700
    /// §4.4.2). The default is the one [`Authorizer::redirect_uri`].
    fn redirect_uri_for(&self, issuer: &str) -> String {
        let _ = issuer;
        self.redirect_uri()
    }
    /// Sends the user to `authorization_url`; resolves with the full callback URL.
    fn authorize(&self, authorization_url: &Url) -> impl Future<Output = Result<String>>;
    /// [`Authorizer::authorize`] with the login in progress: an authorizer that leaves the
    /// page (a full-page redirect) keeps `pending` to finish with
    /// [`OAuthClient::complete_authorization`] after the redirect, and never resolves.
    fn authorize_pending(
        &self,
        authorization_url: &Url,
        pending: &PendingLogin,
    ) -> impl Future<Output = Result<String>> {
        let _ = pending;
        self.authorize(authorization_url)
    }
}

/// A client registered out of band.
#[derive(Clone, Debug)]
pub struct PreRegisteredClient {
    /// The issuer it is registered with. `None` binds it to the first issuer this
    /// [`OAuthClient`] meets (trust on first use, per client instance: a new process binds
    /// afresh) and it is never presented to another. Name the issuer when there is a secret.
    pub issuer: Option<String>,
    /// The client identifier.
    pub client_id: String,
    /// The secret of a confidential client.
    pub client_secret: Option<ClientSecret>,
    /// How to authenticate; `None` picks basic with a secret (RFC 6749 §2.3.1) else `none`.
    /// `PrivateKeyJwt` signs with [`ClientConfig::client_assertion_signer`].
    pub auth_method: Option<TokenEndpointAuthMethod>,
}

/// A grant that obtains tokens with no user at an authorization endpoint. When one is
/// configured, every authorization this client makes ([`OAuthClient::authorize`], and the
/// one a 401 or a step-up triggers) uses it instead of the authorization code flow: the
/// deployment decides, never the server. Failures are returned as they are — no retry with
/// the same grant, no fall back to another.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum NonInteractiveGrant {
    /// Client credentials (RFC 6749 §4.4; the MCP client credentials extension) as the
    /// pre-registered client for the authorization server: with its secret, or
    /// `private_key_jwt` through [`ClientConfig::client_assertion_signer`].
    ClientCredentials,
    /// The JWT bearer grant (RFC 7523 §2.1) with a JWT the platform issued to this workload
    /// (the MCP workload identity federation extension). A pre-registered client for the
    /// authorization server, if there is one, authenticates too.
    JwtBearer {
        /// The workload's JWT.
        assertion: JwtAssertion,
    },
    /// Enterprise-managed authorization (the MCP extension; the identity assertion
    /// authorization grant): the user's ID token is exchanged at the enterprise IdP for an
    /// ID-JAG (RFC 8693), which the JWT bearer grant presents to the MCP server's
    /// authorization server, as the pre-registered client there.
    IdentityAssertion(IdentityAssertionGrant),
}

/// Where and how to obtain an ID-JAG for [`NonInteractiveGrant::IdentityAssertion`].
#[derive(Clone, Debug)]
pub struct IdentityAssertionGrant {
    /// The enterprise IdP's token endpoint.
    pub idp_token_endpoint: String,
    /// This application's client at the IdP.
    pub idp_client_id: String,
    /// Its secret, if the IdP requires client authentication (`client_secret_basic`).
    pub idp_client_secret: Option<ClientSecret>,
    /// The user's ID token from single sign-on at the IdP.
    pub id_token: IdToken,
}

/// Configuration of an [`OAuthClient`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Registration metadata (its redirect URIs are replaced by the authorizer's).
    pub client_metadata: ClientMetadata,
    /// A Client ID Metadata Document URL, used when the AS supports CIMD.
    pub client_id_metadata_url: Option<String>,
    /// Pre-registered clients, tried first.
    pub pre_registered: Vec<PreRegisteredClient>,
    /// Refresh this many seconds before expiry (default 60).
    pub refresh_buffer_secs: u64,
    /// Authorizations (first one and step-ups) allowed while sending one request (default 3).
    pub max_authorizations: u32,
    /// Use this scope instead of the MCP selection strategy.
    pub scope_override: Option<String>,
    /// How protected resource metadata `resource` is matched (RFC 9728 §3.3 by default).
    pub resource_policy: ResourcePolicy,
    /// Obtain tokens with this grant instead of the authorization code flow (default none).
    /// (Needs the `non-interactive` feature, on by default; without it `authorize` answers
    /// [`Error::InvalidInput`] when one is set.)
    pub grant: Option<NonInteractiveGrant>,
    /// Signs the `private_key_jwt` client assertions of pre-registered clients whose
    /// `auth_method` is [`TokenEndpointAuthMethod::PrivateKeyJwt`] (RFC 7523 §2.2).
    pub client_assertion_signer: Option<Signer>,
    /// Whether to bind tokens to [`ClientConfig::dpop_signer`]'s key (RFC 9449; default off).
    pub dpop: DpopPolicy,
    /// The DPoP key: one per client installation, kept as long as the tokens bound to it.
    pub dpop_signer: Option<Signer>,
}

impl ClientConfig {
    /// Defaults around the given registration metadata.
    pub fn new(client_metadata: ClientMetadata) -> Self {
        Self {
            client_metadata,
            client_id_metadata_url: None,
            pre_registered: Vec::new(),
            refresh_buffer_secs: DEFAULT_REFRESH_BUFFER_SECS,
            max_authorizations: 3,
            scope_override: None,
            resource_policy: ResourcePolicy::Strict,
            grant: None,
            client_assertion_signer: None,
            dpop: DpopPolicy::Off,
            dpop_signer: None,
        }
    }
}

/// What logout did.
#[derive(Debug, Default)]
pub struct LogoutOutcome {
    /// A session existed and was deleted locally.
    pub deleted: bool,
    /// Tokens revoked at the authorization server (RFC 7009).
    pub revoked: u32,
    /// Tokens the server cannot revoke (`unsupported_token_type`, RFC 7009 §2.2.1, e.g. JWT
    /// access tokens): they stay valid until they expire.
    pub not_revocable: u32,
    /// Why revocation failed or was skipped, if it did.
    pub revocation_error: Option<Error>,
}

/// A session the store failed to save, and the refresh token it replaced (so a newer session
/// saved meanwhile by another process is recognised and not overwritten).
#[derive(Clone, Debug)]
struct Unsaved {
    session: Session,
    replaces: Option<crate::secret::RefreshToken>,
}

/// Unsaved sessions by server URL: a handful at most, so a vector (smaller in wasm than a map).
#[derive(Default)]
struct UnsavedSessions(Vec<Unsaved>);

impl UnsavedSessions {
    fn get(&self, server: &str) -> Option<&Unsaved> {
        self.0.iter().find(|u| u.session.server == server)
    }
    fn contains_key(&self, server: &str) -> bool {
        self.get(server).is_some()
    }
    fn remove(&mut self, server: &str) {
        self.0.retain(|u| u.session.server != server);
    }
    fn insert(&mut self, server: String, unsaved: Unsaved) {
        self.remove(&server);
        self.0.push(unsaved);
    }
    fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|u| &u.session.server)
    }
}

/// An authorization in progress, with everything needed to finish it after a full-page
/// redirect: serialise it (it holds the PKCE verifier: keep it encrypted, or in memory) and
/// hand it to [`OAuthClient::complete_authorization`] with the callback URL. No client secret
/// is in it: a confidential client's secret is looked up again when the flow completes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingLogin {
    /// The authorization request's state, verifier, issuer, redirect URI, resource and scope.
    pub authorization: PendingAuthorization,
    /// The MCP server URL the session is for.
    pub server: String,
    /// The token endpoint the code is exchanged at.
    pub token_endpoint: String,
    /// The revocation endpoint, for logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// How the client was obtained (to find its credentials again).
    pub client_source: RegistrationSource,
    /// How the client authenticates at the token endpoint.
    pub auth_method: TokenEndpointAuthMethod,
    /// The thumbprint of the DPoP key the code is to be redeemed with (RFC 9449 §10: also sent
    /// as `dpop_jkt` in the authorization request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// A short, stable tag for an issuer, for per-issuer redirect URIs: 16 characters of the
/// base64url SHA-256 of the issuer string (96 bits).
pub fn issuer_tag(issuer: &str) -> String {
    let mut tag = crate::pkce::s256_challenge(issuer);
    tag.truncate(16);
    tag
}

/// What [`OAuthClient::recover`] has tried for one request so far.
#[derive(Clone, Debug, Default)]
pub struct RetryState {
    authorizations: u32,
    refreshed: bool,
    retried_current: bool,
    /// A resource's DPoP nonce challenge was answered (RFC 9449 §9: once per request).
    nonce_retried: bool,
}

impl RetryState {
    /// Authorizations made for this request.
    pub fn authorizations(&self) -> u32 {
        self.authorizations
    }
}

/// The MCP OAuth client over injected transport, store, authorizer, randomness and clock.
pub struct OAuthClient<H, S, A, R, C> {
    http: H,
    store: S,
    authorizer: A,
    rng: R,
    clock: C,
    config: ClientConfig,
    trace: RefCell<Vec<DiscoveryStep>>,
    /// Sessions the store failed to save (e.g. a rotated refresh token): kept here and saved
    /// again on next use, so a store hiccup never loses the only valid refresh token.
    unsaved: RefCell<UnsavedSessions>,
    /// The issuer a pre-registered client without one got bound to on first use.
    bound_issuer: RefCell<Option<String>>,
    /// The latest DPoP nonce of each origin (RFC 9449 §8, §9): authorization and resource
    /// servers alike. In memory only: a nonce is short-lived.
    dpop_nonces: RefCell<Vec<(String, String)>>,
}

impl<H, S, A, R, C> OAuthClient<H, S, A, R, C>
where
    H: HttpClient,
    S: CredentialStore,
    A: Authorizer,
    R: RandomSource,
    C: Clock,
{
    /// A client.
    pub fn new(http: H, store: S, authorizer: A, rng: R, clock: C, config: ClientConfig) -> Self {
        Self {
            http,
            store,
            authorizer,
            rng,
            clock,
            config,
            trace: RefCell::new(Vec::new()),
            unsaved: RefCell::new(UnsavedSessions::default()),
            bound_issuer: RefCell::new(None),
            dpop_nonces: RefCell::new(Vec::new()),
        }
    }

    /// The transport.
    pub fn http(&self) -> &H {
        &self.http
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The authorizer.
    pub fn authorizer_ref(&self) -> &A {
        &self.authorizer
    }

    /// The requests made by the last discovery.
    pub fn last_trace(&self) -> Vec<DiscoveryStep> {
        self.trace.borrow().clone()
    }

    /// The current session for `server`. A session this client could not save is saved again
    /// first — unless the store meanwhile holds a session that did not come from the one it
    /// replaced (another process logged in or rotated): then the stored one wins.
    pub async fn load_session(&self, server: &str) -> Result<Option<Session>> {
        let pending = self.unsaved.borrow().get(server).cloned();
        let Some(pending) = pending else {
            return self.store.load_session(server).await;
        };
        let stored = match self.store.load_session(server).await {
            Ok(s) => s,
            Err(_) => return Ok(Some(pending.session)), // the store is still down
        };
        let superseded = match &stored {
            Some(s) => s.tokens.refresh_token != pending.replaces,
            // It replaced a stored session that is gone: logged out elsewhere. Bringing it
            // back would resurrect a refresh token that logout never saw.
            None => pending.replaces.is_some(),
        };
        if superseded {
            self.unsaved.borrow_mut().remove(server);
            return Ok(stored);
        }
        if self.store.save_session(&pending.session).await.is_ok() {
            self.unsaved.borrow_mut().remove(server);
        }
        Ok(Some(pending.session))
    }

    /// Saves every session the store refused before. Call before a short-lived process exits:
    /// an error means a rotated refresh token exists only in memory.
    pub async fn flush(&self) -> Result<()> {
        let servers: Vec<String> = self.unsaved.borrow().keys().cloned().collect();
        for server in servers {
            self.load_session(&server).await?;
            if self.unsaved.borrow().contains_key(&server) {
                return Err(Error::Store {
                    message: format!("the session for {server} could not be saved"),
                });
            }
        }
        Ok(())
    }

    /// Saves `session`, which replaces one holding `replaces`; on failure keeps it in memory.
    async fn save_session_replacing(
        &self,
        session: &Session,
        replaces: Option<&crate::secret::RefreshToken>,
    ) -> Result<()> {
        match self.store.save_session(session).await {
            Ok(()) => {
                self.unsaved.borrow_mut().remove(&session.server);
                Ok(())
            }
            Err(e) => {
                self.unsaved.borrow_mut().insert(
                    session.server.clone(),
                    Unsaved {
                        session: session.clone(),
                        replaces: replaces.cloned(),
                    },
                );
                Err(e)
            }
        }
    }

    async fn save_session(&self, session: &Session) -> Result<()> {
        let previous = match self.store.load_session(&session.server).await {
            Ok(s) => s.and_then(|s| s.tokens.refresh_token),
            Err(_) => None,
        };
        self.save_session_replacing(session, previous.as_ref())
            .await
    }

    /// The access token of an unsaved (refreshed but not persisted) session, while valid.
    fn unsaved_access_token(&self, server: &str) -> Option<AccessToken> {
        let now = self.clock.now();
        self.unsaved
            .borrow()
            .get(server)
            .filter(|u| !u.session.tokens.is_expired(now))
            .map(|u| u.session.tokens.access_token.clone())
    }

    async fn delete_session(&self, server: &str) -> Result<()> {
        self.unsaved.borrow_mut().remove(server);
        self.store.delete_session(server).await
    }

    /// The latest DPoP nonce `url`'s server gave.
    fn dpop_nonce(&self, url: &str) -> Option<String> {
        let origin = nonce_origin(url);
        self.dpop_nonces
            .borrow()
            .iter()
            .find(|(o, _)| *o == origin)
            .map(|(_, n)| n.clone())
    }

    /// Keeps the `DPoP-Nonce` a server sent, with any response (RFC 9449 §8.2, §9).
    fn remember_nonce(&self, url: &str, response: &HttpResponse) {
        let Some(nonce) = dpop::response_nonce(response) else {
            return;
        };
        let origin = nonce_origin(url);
        let mut nonces = self.dpop_nonces.borrow_mut();
        nonces.retain(|(o, _)| *o != origin);
        if nonces.len() >= 16 {
            nonces.remove(0);
        }
        nonces.push((origin, nonce.to_owned()));
    }

    /// The DPoP key to prove token requests to `meta`'s authorization server with, by the
    /// configured policy (RFC 9449 §5.1).
    fn dpop_key_for(&self, meta: &AuthorizationServerMetadata) -> Result<Option<&Signer>> {
        let Some(key) = &self.config.dpop_signer else {
            return match self.config.dpop {
                DpopPolicy::Require => Err(Error::InvalidInput {
                    reason: "DPoP is required but no DPoP key is configured",
                }),
                _ => Ok(None),
            };
        };
        Ok(dpop::use_dpop(self.config.dpop, key.algorithm(), meta)?.then_some(key))
    }

    /// The key DPoP-bound tokens are used and refreshed with (RFC 9449 §5): the configured
    /// one. A client keeps one DPoP key per installation (and store), so it is the key the
    /// tokens were bound to; a key replaced since is refused by the servers, which hold the
    /// binding, and the session ends with a sign-in.
    fn bound_key(&self) -> Result<&Signer> {
        self.config
            .dpop_signer
            .as_ref()
            .ok_or(Error::DpopKeyMismatch)
    }

    /// The configured DPoP key, if it is the one with thumbprint `jkt`.
    fn dpop_key_with(&self, jkt: &str) -> Result<&Signer> {
        self.config
            .dpop_signer
            .as_ref()
            .filter(|k| k.thumbprint() == jkt)
            .ok_or(Error::DpopKeyMismatch)
    }

    /// A proof for one request, with the server's latest nonce.
    async fn dpop_proof(
        &self,
        key: &Signer,
        method: Method,
        url: &str,
        access_token: Option<&AccessToken>,
    ) -> Result<crate::secret::DpopProof> {
        let nonce = self.dpop_nonce(url);
        let request = ProofRequest {
            method,
            url,
            access_token,
            nonce: nonce.as_deref(),
        };
        dpop::proof(key.get(), &request, &self.clock, &self.rng).await
    }

    /// Sends a token-endpoint request. Each attempt gets a fresh client assertion when
    /// `client` authenticates with `private_key_jwt` (RFC 7523 §2.2; servers may refuse a
    /// `jti` twice) and a fresh proof with `dpop`; one nonce challenge (RFC 9449 §8) is
    /// answered with the nonce the server sent.
    async fn send_token_request(
        &self,
        request: HttpRequest,
        client: Option<&ClientCredentials>,
        dpop: Option<&Signer>,
    ) -> Result<HttpResponse> {
        let mut answered_nonce = false;
        loop {
            let mut attempt = request.clone();
            if let Some(c) =
                client.filter(|c| c.auth_method == TokenEndpointAuthMethod::PrivateKeyJwt)
            {
                let signer =
                    self.config
                        .client_assertion_signer
                        .as_ref()
                        .ok_or(Error::InvalidInput {
                            reason: "private_key_jwt client authentication needs a client assertion signer",
                        })?;
                let assertion = client_assertion(
                    signer.get(),
                    &c.client_id,
                    &c.issuer,
                    &self.clock,
                    &self.rng,
                )
                .await?;
                attempt = with_client_assertion(attempt, &assertion);
            }
            if let Some(key) = dpop {
                let proof = self
                    .dpop_proof(key, attempt.method, &attempt.url, None)
                    .await?;
                attempt
                    .headers
                    .push(("DPoP".into(), proof.secret().to_owned()));
            }
            let response = http::send(&self.http, attempt).await?;
            if dpop.is_some() {
                self.remember_nonce(&request.url, &response);
                if !answered_nonce && dpop::token_endpoint_nonce_challenge(&response).is_some() {
                    answered_nonce = true;
                    continue;
                }
            }
            return Ok(response);
        }
    }

    /// Checks a token response to a request proven with `dpop` (or not): under
    /// [`DpopPolicy::Require`] a bearer token is refused.
    fn process_tokens(
        &self,
        response: &HttpResponse,
        url: &str,
        previous_refresh: Option<&crate::secret::RefreshToken>,
        requested_scope: Option<&str>,
        dpop: Option<&Signer>,
    ) -> Result<TokenSet> {
        let tokens = process_token_response_with(
            response,
            url,
            &self.clock,
            previous_refresh,
            requested_scope,
            dpop.is_some(),
        )?;
        if self.config.dpop == DpopPolicy::Require && !tokens.is_dpop() {
            return Err(Error::DpopNotBound {
                url: url.to_owned(),
            });
        }
        Ok(tokens)
    }

    /// The headers that present `token`, a token of the session of `server` (the URL the
    /// session is stored under), on a `method` request to `url` (the server's URL, or any
    /// URL under it, with a query or not): `Authorization: Bearer …` (RFC 6750 §2.1), or for a
    /// DPoP-bound session `Authorization: DPoP …` and a fresh `DPoP` proof for `url` with
    /// `ath` and the server's latest nonce (RFC 9449 §7.1). For callers that send requests
    /// themselves; [`Self::send_to`] uses it.
    ///
    /// Fails closed: unless DPoP is [`DpopPolicy::Off`], a token for a server with no stored
    /// session is [`Error::DpopSessionMissing`], never a bearer token by default.
    pub async fn authorization_headers(
        &self,
        server: &str,
        method: Method,
        url: &str,
        token: &AccessToken,
    ) -> Result<Vec<(String, String)>> {
        // The binding is the session's: a token of an older refresh of the same grant (another
        // tab refreshed meanwhile) is bound like the current one.
        let bound = match self.load_session(server).await? {
            Some(s) => s.tokens.is_dpop(),
            None if self.config.dpop == DpopPolicy::Off => false,
            None => {
                return Err(Error::DpopSessionMissing {
                    server: server.to_owned(),
                });
            }
        };
        if !bound {
            return Ok(vec![(
                "Authorization".into(),
                format!("Bearer {}", token.secret()),
            )]);
        }
        let key = self.bound_key()?;
        let proof = self.dpop_proof(key, method, url, Some(token)).await?;
        Ok(vec![
            ("Authorization".into(), format!("DPoP {}", token.secret())),
            ("DPoP".into(), proof.secret().to_owned()),
        ])
    }

    /// Runs discovery for an MCP server URL, recording the trace.
    pub async fn discover(
        &self,
        server: &Url,
        challenge: Option<&BearerChallenge>,
    ) -> Result<Discovery> {
        let mut trace = Vec::new();
        let result = discover_with(
            &self.http,
            server,
            challenge,
            self.config.resource_policy,
            &mut trace,
        )
        .await;
        *self.trace.borrow_mut() = trace;
        result
    }

    /// A usable access token for `server`: the stored one, refreshed first when it is within
    /// the refresh buffer of expiry. `Ok(None)` when authorization is needed. A transient
    /// refresh failure keeps every token and returns the current access token while it is
    /// still valid.
    pub async fn access_token(&self, server: &str) -> Result<Option<AccessToken>> {
        let session = match self.load_session(server).await {
            // The store dropped a record it could not read: sign in again.
            Err(Error::StoreRecordUnreadable { .. }) => return Ok(None),
            other => other?,
        };
        let Some(session) = session else {
            return Ok(None);
        };
        if self.config.dpop == DpopPolicy::Require && !session.tokens.is_dpop() {
            // Bearer tokens from before DPoP was required: authorize again, bound this time.
            return Ok(None);
        }
        let now = self.clock.now();
        if !session
            .tokens
            .needs_refresh(now, self.config.refresh_buffer_secs)
        {
            return Ok(Some(session.tokens.access_token));
        }
        if session.tokens.refresh_token.is_none() {
            return Ok((!session.tokens.is_expired(now)).then_some(session.tokens.access_token));
        }
        match self.refresh(&session).await {
            Ok(s) => Ok(Some(s.tokens.access_token)),
            Err(e) if e.recovery() == Recovery::Reauthenticate => Ok(None),
            // The session was dropped (e.g. the AS forgot its client): authorize again.
            Err(Error::OAuth { .. }) if self.load_session(server).await?.is_none() => Ok(None),
            // Refreshed but not persisted: the new tokens are held in memory meanwhile.
            Err(Error::Store { .. }) if self.unsaved_access_token(server).is_some() => {
                Ok(self.unsaved_access_token(server))
            }
            Err(e) if !session.tokens.is_expired(now) && e.recovery() == Recovery::Transient => {
                Ok(Some(session.tokens.access_token))
            }
            Err(e) => Err(e),
        }
    }

    /// Refreshes `seen` — or returns the session another process or tab refreshed meanwhile.
    /// Runs under the store's lock ([`CredentialStore::lock_session`]) and re-reads the session
    /// inside it, so everyone sharing the store makes one refresh request between them and
    /// nobody replays a rotated refresh token. A session deleted meanwhile (logged out
    /// elsewhere) is [`Error::SessionEnded`].
    pub async fn refresh(&self, seen: &Session) -> Result<Session> {
        let _lock = self.store.lock_session(&seen.server).await?;
        let current =
            self.load_session(&seen.server)
                .await?
                .ok_or_else(|| Error::SessionEnded {
                    server: seen.server.clone(),
                })?;
        let changed = current.tokens.refresh_token != seen.tokens.refresh_token
            || current.tokens.access_token != seen.tokens.access_token;
        // Someone else refreshed: take theirs, unless it is no use here (its access token
        // expired, or not handed to this process) — then refresh it, with its own refresh
        // token, so nothing is replayed.
        let usable = !current
            .tokens
            .needs_refresh(self.clock.now(), self.config.refresh_buffer_secs)
            && !current.tokens.access_token.secret().is_empty();
        if changed && usable {
            return Ok(current);
        }
        self.refresh_now(&current).await
    }

    /// Refreshes a session (RFC 6749 §6) with its `resource`, without the lock; a rotated
    /// refresh token replaces the old one, an absent one keeps it. A rejected refresh token (`invalid_grant`) removes
    /// the session if it still holds that token (another process may have rotated it); any
    /// other failure leaves it untouched, and a new refresh token in an otherwise unusable
    /// response is still kept, since the old one is dead once the server has rotated it.
    async fn refresh_now(&self, session: &Session) -> Result<Session> {
        let refresh = session
            .tokens
            .refresh_token
            .as_ref()
            .ok_or(Error::NoRefreshToken)?;
        let client = self.client_of(session).await?;
        // A refresh token bound to a DPoP key is refreshed with that key (RFC 9449 §5).
        let dpop = if session.tokens.is_dpop() {
            Some(self.bound_key()?)
        } else {
            None
        };
        let request = refresh_token_request(
            &session.token_endpoint,
            &client,
            refresh,
            None,
            Some(&session.resource),
        )?;
        let response = self
            .send_token_request(request, Some(&client), dpop)
            .await?;
        let tokens = match self.process_tokens(
            &response,
            &session.token_endpoint,
            Some(refresh),
            session.tokens.scope.as_deref(),
            dpop,
        ) {
            Ok(t) => t,
            Err(e) => {
                let forgotten = e.oauth_code()
                    == Some(&crate::error::OAuthErrorCode::InvalidClient)
                    && client.source != RegistrationSource::PreRegistered;
                if forgotten {
                    // The AS forgot this client: its tokens are dead; register again next time.
                    self.forget_dynamic_client(&session.issuer, &client).await?;
                }
                if forgotten || e.recovery() == Recovery::Reauthenticate {
                    // Only if no other process has rotated it meanwhile (a store without
                    // compare-and-delete leaves a small window; the next 401 recovers from it).
                    let stored = self.load_session(&session.server).await?;
                    if stored.is_some_and(|s| s.tokens.refresh_token.as_ref() == Some(refresh)) {
                        self.delete_session(&session.server).await?;
                    }
                } else if let Some(rt) = crate::token::salvage_refresh_token(&response, refresh) {
                    let mut kept = session.clone();
                    kept.tokens.refresh_token = Some(rt);
                    self.save_session_replacing(&kept, Some(refresh)).await?;
                }
                return Err(e);
            }
        };
        let updated = Session {
            tokens,
            ..session.clone()
        };
        self.save_session_replacing(&updated, Some(refresh)).await?;
        Ok(updated)
    }

    /// Authorizes from scratch for `server` after a challenge: discovery, registration,
    /// the authorization request through the [`Authorizer`], callback validation, code
    /// exchange, and storage. `extra_scope` is unioned in (step-up). One future for the
    /// whole flow (popup, loopback listener); a flow that leaves the page uses
    /// [`Self::begin_authorization`] and [`Self::complete_authorization`], which this is
    /// built on.
    pub async fn authorize(
        &self,
        server: &Url,
        challenge: Option<&BearerChallenge>,
        extra_scope: Option<&str>,
    ) -> Result<Session> {
        self.authorize_after(server, challenge, extra_scope, None)
            .await
    }

    /// [`Self::authorize`], remembering `known`: the session in use before (a failed refresh
    /// may have deleted it since), whose requested scopes a new authorization keeps.
    async fn authorize_after(
        &self,
        server: &Url,
        challenge: Option<&BearerChallenge>,
        extra_scope: Option<&str>,
        known: Option<&Session>,
    ) -> Result<Session> {
        if let Some(grant) = &self.config.grant {
            #[cfg(feature = "non-interactive")]
            return self
                .authorize_without_user(server, grant, challenge, extra_scope, known)
                .await;
            #[cfg(not(feature = "non-interactive"))]
            {
                let _ = grant;
                return Err(Error::InvalidInput {
                    reason: "non-interactive grants are not built in (the `non-interactive` feature)",
                });
            }
        }
        let (url, pending) = self
            .begin_after(server, challenge, extra_scope, known)
            .await?;
        let callback = self.authorizer.authorize_pending(&url, &pending).await?;
        self.complete_authorization(&callback, pending).await
    }

    /// The first half of an authorization: discovery, registration, and the authorization
    /// URL with its [`PendingLogin`]. The scope is the challenge's (or the MCP selection),
    /// unioned with `extra_scope` and with what the current session for this server asked
    /// of the same authorization server: re-authorization keeps previously requested scopes.
    pub async fn begin_authorization(
        &self,
        server: &Url,
        challenge: Option<&BearerChallenge>,
        extra_scope: Option<&str>,
    ) -> Result<(Url, PendingLogin)> {
        self.begin_after(server, challenge, extra_scope, None).await
    }

    async fn begin_after(
        &self,
        server: &Url,
        challenge: Option<&BearerChallenge>,
        extra_scope: Option<&str>,
        known: Option<&Session>,
    ) -> Result<(Url, PendingLogin)> {
        let discovery = self.discover(server, challenge).await?;
        let meta = &discovery.authorization_server;
        let server_key = server.as_str();
        let scope = self
            .scope_for(server_key, &discovery, challenge, extra_scope, known)
            .await?;
        let client = self.client_for(&discovery).await?;
        let dpop_jkt = self.dpop_key_for(meta)?.map(Signer::thumbprint);
        let token_endpoint = meta.require_token_endpoint()?;
        let redirect_uri = self.redirect_uri_for(&client);
        let request = AuthorizationRequest {
            metadata: meta,
            client: &client,
            redirect_uri: &redirect_uri,
            scope: scope.as_deref(),
            resource: Some(&discovery.resource),
        };
        let (mut url, authorization) = build_authorization_url(&request, &self.rng, &self.clock)?;
        if let Some(jkt) = &dpop_jkt {
            // RFC 9449 §10: binds the code to the key, so only this key can redeem it.
            url.query_pairs_mut().append_pair("dpop_jkt", jkt);
        }
        Ok((
            url,
            PendingLogin {
                authorization,
                server: server_key.to_owned(),
                token_endpoint,
                revocation_endpoint: meta.revocation_endpoint.clone(),
                client_source: client.source,
                auth_method: client.auth_method,
                dpop_jkt,
            },
        ))
    }

    /// The scope of a new authorization for `server`: the challenge's (or the MCP
    /// selection), unioned with `extra_scope` and with what the current session asked of the
    /// same authorization server. A session with another authorization server is deleted
    /// first: the resource moved, and its tokens, client and scopes stay behind.
    async fn scope_for(
        &self,
        server_key: &str,
        discovery: &Discovery,
        challenge: Option<&BearerChallenge>,
        extra_scope: Option<&str>,
        known: Option<&Session>,
    ) -> Result<Option<String>> {
        let meta = &discovery.authorization_server;
        let issuer = &meta.issuer;
        let old = self.load_session(server_key).await?;
        if old.as_ref().is_some_and(|old| old.issuer != *issuer) {
            self.delete_session(server_key).await?;
        }
        let previous_scope = old
            .as_ref()
            .or(known)
            .filter(|s| s.issuer == *issuer)
            .and_then(|s| s.requested_scope.clone().or(s.tokens.scope.clone()));
        let challenged = challenge.and_then(|c| c.scope.as_deref());
        let scope = match &self.config.scope_override {
            // The resource's challenge still counts: it names what this request needs.
            Some(s) => Some(union(Some(s), challenged)),
            None => select_scope(challenged, discovery.protected_resource.as_ref(), meta),
        };
        Ok(match (extra_scope, previous_scope.as_deref()) {
            (None, None) => scope,
            (extra, previous) => Some(union(Some(&union(scope.as_deref(), extra)), previous)),
        })
    }

    /// Obtains tokens for `server` with `grant`, no user involved: discovery, then the grant's
    /// token request(s) for the resource (RFC 8707) and the scope an authorization would ask
    /// for, proven with the DPoP key when the policy says so; the session is stored with no
    /// refresh token as a rule, and asked for again when it expires.
    #[cfg(feature = "non-interactive")]
    async fn authorize_without_user(
        &self,
        server: &Url,
        grant: &NonInteractiveGrant,
        challenge: Option<&BearerChallenge>,
        extra_scope: Option<&str>,
        known: Option<&Session>,
    ) -> Result<Session> {
        let discovery = self.discover(server, challenge).await?;
        let meta = &discovery.authorization_server;
        let issuer = meta.issuer.clone();
        let server_key = server.as_str();
        let scope = self
            .scope_for(server_key, &discovery, challenge, extra_scope, known)
            .await?;
        // `offline_access` asks a user's consent for refresh tokens (OpenID Connect Core §11);
        // these grants have no user to ask and issue none as a rule. Kept only when configured.
        let configured = self.config.scope_override.as_deref();
        let scope = match scope {
            Some(s) if !contains_all(configured, Some(OFFLINE_ACCESS)) => {
                let kept: Vec<&str> = s
                    .split_ascii_whitespace()
                    .filter(|t| *t != OFFLINE_ACCESS)
                    .collect();
                (!kept.is_empty()).then(|| kept.join(" "))
            }
            other => other,
        };
        let token_endpoint = meta.require_token_endpoint()?;
        let dpop = self.dpop_key_for(meta)?;
        let client = self.pre_registered_for(&issuer, Some(meta));
        let resource = Some(discovery.resource.as_str());
        let request = match grant {
            NonInteractiveGrant::ClientCredentials => {
                let c = client.as_ref().ok_or(Error::RegistrationNotSupported {
                    issuer: issuer.clone(),
                })?;
                if meta.grant_types_supported.is_some()
                    && !meta.supports_grant(CLIENT_CREDENTIALS_GRANT)
                {
                    return Err(Error::UnsupportedByServer {
                        issuer,
                        feature: "the client_credentials grant",
                    });
                }
                client_credentials_request(&token_endpoint, c, scope.as_deref(), resource)?
            }
            NonInteractiveGrant::JwtBearer { assertion } => jwt_bearer_request(
                &token_endpoint,
                assertion,
                client.as_ref(),
                scope.as_deref(),
                resource,
            )?,
            NonInteractiveGrant::IdentityAssertion(g) => {
                let idp_client = ClientCredentials {
                    issuer: g.idp_token_endpoint.clone(),
                    client_id: g.idp_client_id.clone(),
                    client_secret: g.idp_client_secret.clone(),
                    auth_method: if g.idp_client_secret.is_some() {
                        TokenEndpointAuthMethod::ClientSecretBasic
                    } else {
                        TokenEndpointAuthMethod::None
                    },
                    source: RegistrationSource::PreRegistered,
                    redirect_uris: Vec::new(),
                    secret_expires_at: None,
                    registration_access_token: None,
                };
                // The audience is the authorization server's issuer identifier (the MCP
                // enterprise-managed authorization profile §4).
                let exchange = id_jag_request(
                    &g.idp_token_endpoint,
                    &idp_client,
                    &g.id_token,
                    &issuer,
                    resource,
                    scope.as_deref(),
                )?;
                let response = self
                    .send_token_request(exchange, Some(&idp_client), None)
                    .await?;
                let id_jag = process_id_jag_response(&response, &g.idp_token_endpoint)?;
                jwt_bearer_request(
                    &token_endpoint,
                    &id_jag,
                    client.as_ref(),
                    scope.as_deref(),
                    resource,
                )?
            }
        };
        let response = self
            .send_token_request(request, client.as_ref(), dpop)
            .await?;
        let tokens =
            self.process_tokens(&response, &token_endpoint, None, scope.as_deref(), dpop)?;
        let session = Session {
            resource: discovery.resource.clone(),
            server: server_key.to_owned(),
            issuer,
            client_id: client
                .as_ref()
                .map(|c| c.client_id.clone())
                .unwrap_or_default(),
            token_endpoint,
            revocation_endpoint: meta.revocation_endpoint.clone(),
            requested_scope: scope,
            tokens,
        };
        self.save_session(&session).await?;
        if let Some(c) = &client {
            // The binding to this issuer, as after an authorization code flow.
            self.store.save_client(c).await?;
        }
        Ok(session)
    }

    /// The second half: validates the callback against the pending login (age, redirect URI,
    /// `iss`, `state`, …), exchanges the code and stores the session.
    pub async fn complete_authorization(
        &self,
        callback_url: &str,
        pending: PendingLogin,
    ) -> Result<Session> {
        let PendingLogin {
            authorization,
            server,
            token_endpoint,
            revocation_endpoint,
            client_source,
            auth_method,
            dpop_jkt,
        } = pending;
        let issuer = authorization.issuer.clone();
        let resource = authorization.resource.clone().unwrap_or_default();
        let scope = authorization.scope.clone();
        let client = self
            .client_for_pending(&authorization, client_source, auth_method)
            .await?;
        let dpop = match dpop_jkt.as_deref() {
            Some(jkt) => Some(self.dpop_key_with(jkt)?),
            None => None,
        };
        let validated = validate_callback(callback_url, authorization, &self.clock)?;
        let request = authorization_code_request(&token_endpoint, &client, validated)?;
        let response = self
            .send_token_request(request, Some(&client), dpop)
            .await?;
        let tokens =
            match self.process_tokens(&response, &token_endpoint, None, scope.as_deref(), dpop) {
                Ok(t) => t,
                Err(e) => {
                    if e.oauth_code() == Some(&crate::error::OAuthErrorCode::InvalidClient) {
                        self.forget_dynamic_client(&issuer, &client).await?;
                    }
                    return Err(e);
                }
            };
        let session = Session {
            resource,
            server,
            issuer,
            client_id: client.client_id.clone(),
            token_endpoint,
            revocation_endpoint,
            requested_scope: scope,
            tokens,
        };
        self.save_session(&session).await?;
        if client.source == RegistrationSource::PreRegistered {
            // Kept per issuer: the stored binding lets later runs refresh and revoke with it.
            self.store.save_client(&client).await?;
        }
        Ok(session)
    }

    /// The redirect URI for an authorization with `client`: the one it registered (per
    /// issuer, when the authorizer offers that) for a dynamically registered client, the
    /// authorizer's fixed one otherwise.
    fn redirect_uri_for(&self, client: &ClientCredentials) -> String {
        if client.source == RegistrationSource::Dynamic {
            let wanted = self.authorizer.redirect_uri_for(&client.issuer);
            if client
                .redirect_uris
                .iter()
                .any(|r| redirect_uri_matches(r, &wanted))
            {
                return wanted;
            }
        }
        self.authorizer.redirect_uri()
    }

    /// The credentials of the client a pending login was started with.
    async fn client_for_pending(
        &self,
        a: &PendingAuthorization,
        source: RegistrationSource,
        auth_method: TokenEndpointAuthMethod,
    ) -> Result<ClientCredentials> {
        let gone = || Error::Store {
            message: "the client this authorization was started with is no longer known".into(),
        };
        match source {
            RegistrationSource::PreRegistered => {
                let mut c = self
                    .pre_registered_for(&a.issuer, None)
                    .filter(|c| c.client_id == a.client_id)
                    .ok_or_else(gone)?;
                c.auth_method = auth_method;
                Ok(c)
            }
            RegistrationSource::Dynamic => self
                .store
                .load_client(&a.issuer)
                .await?
                .filter(|c| c.client_id == a.client_id)
                .ok_or_else(gone),
            RegistrationSource::MetadataDocument => Ok(ClientCredentials {
                issuer: a.issuer.clone(),
                client_id: a.client_id.clone(),
                client_secret: None,
                auth_method: TokenEndpointAuthMethod::None,
                source,
                redirect_uris: vec![a.redirect_uri.clone()],
                secret_expires_at: None,
                registration_access_token: None,
            }),
        }
    }

    /// Runs the device authorization grant (RFC 8628) for `server`. `show` receives the user
    /// code and URIs; `sleep` waits the given seconds between polls.
    pub async fn device_authorize<F, Fut>(
        &self,
        server: &Url,
        show: impl FnOnce(&DeviceAuthorization),
        sleep: F,
    ) -> Result<Session>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = ()>,
    {
        let discovery = self.discover(server, None).await?;
        let meta = &discovery.authorization_server;
        let client = self.client_for(&discovery).await?;
        let scope = self
            .config
            .scope_override
            .clone()
            .or_else(|| select_scope(None, discovery.protected_resource.as_ref(), meta));
        let request = device_authorization_request(
            meta,
            &client,
            scope.as_deref(),
            Some(&discovery.resource),
        )?;
        let url = request.url.clone();
        let response = http::send(&self.http, request).await?;
        let device = process_device_authorization_response(&response, &url, &self.clock)?;
        let dpop = self.dpop_key_for(meta)?;
        show(&device);
        let token_endpoint = meta.require_token_endpoint()?;
        let mut interval = device.interval;
        loop {
            if self.clock.now() >= device.expires_at {
                return Err(Error::DeviceCodeExpired);
            }
            sleep(interval).await;
            let request =
                device_token_request(&token_endpoint, &client, &device, Some(&discovery.resource))?;
            let poll = match self.send_token_request(request, Some(&client), dpop).await {
                Ok(response) => process_device_token_response_with(
                    &response,
                    &token_endpoint,
                    &self.clock,
                    scope.as_deref(),
                    dpop.is_some(),
                ),
                Err(e) => Err(e),
            };
            match poll {
                // RFC 8628 §3.5: back off on timeouts and transient errors, keep polling.
                Err(e) if e.recovery() == Recovery::Transient => {
                    interval = interval.max(interval.saturating_mul(2).min(300))
                }
                Err(e) => return Err(e),
                Ok(DevicePoll::Pending) => {}
                Ok(DevicePoll::SlowDown) => interval += 5,
                Ok(DevicePoll::Complete(tokens)) => {
                    if self.config.dpop == DpopPolicy::Require && !tokens.is_dpop() {
                        return Err(Error::DpopNotBound {
                            url: token_endpoint,
                        });
                    }
                    let session = Session {
                        resource: discovery.resource.clone(),
                        server: server.to_string(),
                        issuer: meta.issuer.clone(),
                        client_id: client.client_id.clone(),
                        token_endpoint,
                        revocation_endpoint: meta.revocation_endpoint.clone(),
                        requested_scope: scope,
                        tokens,
                    };
                    self.save_session(&session).await?;
                    return Ok(session);
                }
            }
        }
    }

    /// Revokes the session's refresh and access tokens (RFC 7009), then deletes it locally.
    pub async fn logout(&self, server: &str) -> Result<LogoutOutcome> {
        let mut out = LogoutOutcome::default();
        // Under the refresh lock: a refresh running elsewhere cannot save a rotated session
        // after this logout deleted it.
        let _lock = self.store.lock_session(server).await?;
        let Some(session) = self.load_session(server).await? else {
            return Ok(out);
        };
        match &session.revocation_endpoint {
            Some(endpoint) => {
                let client = self.client_of(&session).await?;
                let mut tokens = Vec::new();
                if let Some(rt) = &session.tokens.refresh_token {
                    tokens.push((rt.secret(), TokenTypeHint::RefreshToken));
                }
                // An access token this process does not hold (kept in another tab's memory)
                // is not sent as an empty one.
                if !session.tokens.access_token.secret().is_empty() {
                    tokens.push((
                        session.tokens.access_token.secret(),
                        TokenTypeHint::AccessToken,
                    ));
                }
                for (token, hint) in tokens {
                    let result = async {
                        let request = revocation_request(endpoint, &client, token, hint)?;
                        // Authenticated like a token request (a private_key_jwt assertion).
                        let response = self
                            .send_token_request(request, Some(&client), None)
                            .await?;
                        process_revocation_response(&response, endpoint)
                    }
                    .await;
                    match result {
                        Ok(()) => out.revoked += 1,
                        Err(e)
                            if e.oauth_code()
                                == Some(&crate::error::OAuthErrorCode::UnsupportedTokenType) =>
                        {
                            out.not_revocable += 1
                        }
                        Err(e) => out.revocation_error = Some(e),
                    }
                }
            }
            None => {
                out.revocation_error = Some(Error::UnsupportedByServer {
                    issuer: session.issuer.clone(),
                    feature: "revocation_endpoint",
                })
            }
        }
        self.delete_session(server).await?;
        out.deleted = true;
        Ok(out)
    }

    /// Sends a request to the protected resource with the bearer token, handling 401
    /// (refresh, else authorize, then retry) and 403 `insufficient_scope` (step-up with the
    /// union of the previously requested and the challenged scopes). At most `max_authorizations` authorizations
    /// per call; a 403 asking only for scopes already granted is returned as an error at once,
    /// since authorizing again cannot help.
    ///
    /// The session is the one of the request's own URL: for a request to another URL of the
    /// server (a path under it, a query), use [`Self::send_to`].
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let server = request.url.clone();
        self.send_to(&server, request).await
    }

    /// [`Self::send`] with the session of `server` (the URL it is stored under), for a
    /// request to `server` or any URL under it: the token, refreshes and authorizations are
    /// that session's, the DPoP proof is made for the request's URL.
    pub async fn send_to(&self, server: &str, request: HttpRequest) -> Result<HttpResponse> {
        let server = parse_secure_url(server)?;
        let target = parse_secure_url(&request.url)?;
        if !within(&server, &target) {
            // The token is the server's: never sent to another origin or path.
            return Err(Error::InvalidUrl {
                url: target.as_str().to_owned(),
                reason: "not the MCP server's URL or a URL under it",
            });
        }
        let mut token = self.access_token(server.as_str()).await?;
        let mut retry = RetryState::default();
        loop {
            let mut attempt = request.clone();
            attempt.headers.retain(|(n, _)| {
                !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("dpop")
            });
            if let Some(t) = &token {
                let headers = self
                    .authorization_headers(server.as_str(), attempt.method, &attempt.url, t)
                    .await?;
                attempt.headers.extend(headers);
            }
            let response = http::send(&self.http, attempt).await?;
            match self
                .recover_response(&server, &response, token.as_ref(), &mut retry)
                .await?
            {
                Some(t) => token = Some(t),
                None => return Ok(response),
            }
        }
    }

    /// [`Self::recover`] given the whole response: also keeps a `DPoP-Nonce` the server sent,
    /// and answers a DPoP nonce challenge (RFC 9449 §9) once per request by handing back the
    /// same token (the next proof, from [`Self::authorization_headers`], carries the nonce).
    /// A second nonce challenge is the server's answer: authorizing again would not help.
    pub async fn recover_response(
        &self,
        server: &Url,
        response: &HttpResponse,
        sent: Option<&AccessToken>,
        retry: &mut RetryState,
    ) -> Result<Option<AccessToken>> {
        self.remember_nonce(server.as_str(), response);
        if let (Some(t), Some(_)) = (sent, dpop::resource_nonce_challenge(response)) {
            if retry.nonce_retried {
                return Ok(None);
            }
            retry.nonce_retried = true;
            return Ok(Some(t.clone()));
        }
        let challenge = response.header_joined("www-authenticate");
        self.recover(server, response.status, challenge.as_deref(), sent, retry)
            .await
    }

    /// What to do about a response from the protected resource, for callers that send the
    /// requests themselves (a streaming `fetch`): `Ok(None)` to keep the response, `Ok(Some(token))`
    /// to send the request again with that token. A 401 first retries with a token another
    /// process stored meanwhile, then refreshes once, then authorizes; a 403
    /// `insufficient_scope` steps up; `retry` carries the attempts across one request's tries.
    pub async fn recover(
        &self,
        server: &Url,
        status: u16,
        www_authenticate: Option<&str>,
        sent: Option<&AccessToken>,
        retry: &mut RetryState,
    ) -> Result<Option<AccessToken>> {
        let key = server.to_string();
        let challenge = www_authenticate.and_then(parse_token_challenge);
        let insufficient_scope = status == 403
            && challenge.as_ref().and_then(|c| c.error.as_deref()) == Some("insufficient_scope");
        if status != 401 && !insufficient_scope {
            return Ok(None);
        }
        let current = self.load_session(&key).await?;
        if status == 401 && retry.authorizations > 0 {
            return Err(Error::StillUnauthorized { resource: key });
        }
        // Another process or tab refreshed since this token was read, and the server revoked
        // the old access token on rotation: retry with the current one rather than start a
        // second refresh.
        // Under DPoP `Require`, bearer tokens from before are not used again.
        let usable = current
            .as_ref()
            .filter(|s| self.config.dpop != DpopPolicy::Require || s.tokens.is_dpop());
        if let (401, false, Some(cur)) = (status, retry.retried_current, usable) {
            let now = self.clock.now();
            if sent != Some(&cur.tokens.access_token) && !cur.tokens.is_expired(now) {
                retry.retried_current = true;
                return Ok(Some(cur.tokens.access_token.clone()));
            }
        }
        // A token the server stopped accepting: one refresh before asking the user.
        let refreshable = usable.filter(|s| s.tokens.refresh_token.is_some());
        if let (401, false, Some(session)) = (status, retry.refreshed, refreshable) {
            retry.refreshed = true;
            match self.refresh(session).await {
                Ok(s) if Some(&s.tokens.access_token) != sent => {
                    return Ok(Some(s.tokens.access_token));
                }
                Ok(_) => {}
                Err(Error::Store { .. }) if self.unsaved_access_token(&key).is_some() => {
                    return Ok(self.unsaved_access_token(&key));
                }
                // The AS is down: say so rather than send the user to it.
                Err(e) if e.recovery() == Recovery::Transient => return Err(e),
                Err(_) => {}
            }
        }
        let granted = current.as_ref().and_then(|s| s.tokens.scope.clone());
        let needed = challenge.as_ref().and_then(|c| c.scope.clone());
        if insufficient_scope
            && sent.is_some()
            && contains_all(granted.as_deref(), needed.as_deref())
        {
            return Err(Error::OAuth {
                endpoint: crate::error::Endpoint::Resource,
                status,
                error: crate::error::OAuthError {
                    code: crate::error::OAuthErrorCode::InsufficientScope,
                    description: challenge.and_then(|c| c.error_description),
                    uri: None,
                },
                retry_after: None,
            });
        }
        if retry.authorizations >= self.config.max_authorizations {
            return Err(Error::StepUpLimit {
                attempts: retry.authorizations,
            });
        }
        retry.authorizations += 1;
        // The new request keeps what the session asked before (a plain 401 and step-up
        // alike): begin_authorization unions it in.
        let session = self
            .authorize_after(server, challenge.as_ref(), None, current.as_ref())
            .await?;
        Ok(Some(session.tokens.access_token))
    }

    /// Drops a dynamically registered client the AS no longer knows (`invalid_client`), so the
    /// next authorization registers again.
    async fn forget_dynamic_client(&self, issuer: &str, client: &ClientCredentials) -> Result<()> {
        if client.source == RegistrationSource::Dynamic {
            self.store.delete_client(issuer).await?;
        }
        Ok(())
    }

    /// The client a session's tokens were issued to: the stored registration, a pre-registered
    /// client with that id, or else a public client by id (Client ID Metadata Documents and
    /// public registrations need nothing more).
    async fn client_of(&self, session: &Session) -> Result<ClientCredentials> {
        // Configured credentials first (a changed secret wins over a stored copy). A client
        // configured without an issuer is matched only through a binding to this session's
        // issuer: this instance's, or the one stored when a session was first obtained with
        // it. Never by id alone: its secret would go to whichever issuer the session names.
        let stored = self.store.load_client(&session.issuer).await?;
        let stored_binding = stored.as_ref().is_some_and(|c| {
            c.source == RegistrationSource::PreRegistered && c.client_id == session.client_id
        });
        if let Some(p) = self.config.pre_registered.iter().find(|p| {
            p.client_id == session.client_id
                && match (&p.issuer, self.bound_issuer.borrow().as_deref()) {
                    (Some(i), _) => *i == session.issuer,
                    (None, Some(b)) => b == session.issuer,
                    (None, None) => stored_binding,
                }
        }) {
            return Ok(self.pre_registered_credentials(p, &session.issuer, None));
        }
        if let Some(c) = stored
            && c.client_id == session.client_id
        {
            return Ok(c);
        }
        Ok(ClientCredentials {
            issuer: session.issuer.clone(),
            client_id: session.client_id.clone(),
            client_secret: None,
            auth_method: TokenEndpointAuthMethod::None,
            source: RegistrationSource::MetadataDocument,
            redirect_uris: Vec::new(),
            secret_expires_at: None,
            registration_access_token: None,
        })
    }

    fn pre_registered_for(
        &self,
        issuer: &str,
        meta: Option<&AuthorizationServerMetadata>,
    ) -> Option<ClientCredentials> {
        let named = self
            .config
            .pre_registered
            .iter()
            .find(|p| p.issuer.as_deref() == Some(issuer));
        let p = match named {
            Some(p) => p,
            None => {
                let p = self
                    .config
                    .pre_registered
                    .iter()
                    .find(|p| p.issuer.is_none())?;
                let mut bound = self.bound_issuer.borrow_mut();
                match bound.as_deref() {
                    Some(b) if b != issuer => return None,
                    Some(_) => {}
                    None => *bound = Some(issuer.to_owned()),
                }
                p
            }
        };
        Some(self.pre_registered_credentials(p, issuer, meta))
    }

    fn pre_registered_credentials(
        &self,
        p: &PreRegisteredClient,
        issuer: &str,
        meta: Option<&AuthorizationServerMetadata>,
    ) -> ClientCredentials {
        let auth_method = p.auth_method.unwrap_or(if p.client_secret.is_some() {
            TokenEndpointAuthMethod::ClientSecretBasic
        } else {
            TokenEndpointAuthMethod::None
        });
        let auth_method = match (p.auth_method, meta) {
            // Unspecified for a confidential client: basic unless the AS only takes post.
            (None, Some(m))
                if p.client_secret.is_some()
                    && !m.supports_auth_method("client_secret_basic")
                    && m.supports_auth_method("client_secret_post") =>
            {
                TokenEndpointAuthMethod::ClientSecretPost
            }
            _ => auth_method,
        };
        ClientCredentials {
            issuer: issuer.to_owned(),
            client_id: p.client_id.clone(),
            client_secret: p.client_secret.clone(),
            auth_method,
            source: RegistrationSource::PreRegistered,
            redirect_uris: vec![self.authorizer.redirect_uri()],
            secret_expires_at: None,
            registration_access_token: None,
        }
    }

    /// The client to use with the discovered AS, in the MCP order: pre-registered, Client ID
    /// Metadata Document, a stored registration for this issuer, then dynamic registration.
    pub async fn client_for(&self, discovery: &Discovery) -> Result<ClientCredentials> {
        let meta = &discovery.authorization_server;
        let issuer = &meta.issuer;
        if let Some(c) = self.pre_registered_for(issuer, Some(meta)) {
            return Ok(c);
        }
        // Pre-registered credentials belong to their AS and are never shown to this one; it
        // gets a Client ID Metadata Document or a registration of its own, if it offers either.
        let other_issuer = self
            .config
            .pre_registered
            .iter()
            .filter_map(|p| p.issuer.clone())
            .chain(self.bound_issuer.borrow().clone())
            .find(|i| i != issuer);
        if let (true, Some(url)) = (
            meta.client_id_metadata_document_supported,
            &self.config.client_id_metadata_url,
        ) {
            // One fixed redirect list for every AS: here only `iss` and `state` tell servers
            // apart.
            return metadata_document_client(issuer, url, &self.authorizer.redirect_uri());
        }
        // A registration of our own gets a redirect URI of its own per issuer, where the
        // authorizer offers that (RFC 9700 §4.4.2: mix-up defence without `iss`).
        let redirect_uri = self.authorizer.redirect_uri_for(issuer);
        if let Some(c) = self.store.load_client(issuer).await? {
            let usable = c.source == RegistrationSource::Dynamic
                && !c.is_expired(self.clock.now())
                && c.redirect_uris
                    .iter()
                    .any(|r| redirect_uri_matches(r, &redirect_uri));
            if usable {
                return Ok(c);
            }
        }
        if meta.registration_endpoint.is_none() {
            return Err(match other_issuer {
                Some(bound) => Error::ClientIssuerMismatch {
                    bound,
                    found: issuer.clone(),
                },
                None => Error::RegistrationNotSupported {
                    issuer: issuer.clone(),
                },
            });
        }
        let mut metadata = self.config.client_metadata.clone();
        metadata.redirect_uris = vec![redirect_uri];
        let request = dynamic_registration_request(meta, &metadata)?;
        let url = request.url.clone();
        let response = http::send(&self.http, request).await?;
        let client = process_registration_response(&response, &url, issuer, &metadata)?;
        self.store.save_client(&client).await?;
        Ok(client)
    }
}

/// The origin a DPoP nonce belongs to (RFC 9449 §8, §9: nonces are per server).
fn nonce_origin(url: &str) -> String {
    Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// A registered redirect URI matches exactly, or, for loopback IP literals, with any port
/// (RFC 8252 §7.3).
pub fn redirect_uri_matches(registered: &str, actual: &str) -> bool {
    if registered == actual {
        return true;
    }
    match (Url::parse(registered), Url::parse(actual)) {
        (Ok(a), Ok(b)) => {
            let ip_literal = matches!(
                a.host(),
                Some(crate::url::Host::Ipv4(_) | crate::url::Host::Ipv6(_))
            );
            ip_literal
                && http::is_loopback(&a)
                && a.scheme() == "http"
                && a.scheme() == b.scheme()
                && a.host() == b.host()
                && a.path() == b.path()
                && a.query() == b.query()
        }
        _ => false,
    }
}

/// Is `url` the server's URL or under it: the same origin, and the server's path or a path
/// below it (any query)?
fn within(server: &Url, url: &Url) -> bool {
    if url.origin() != server.origin() {
        return false;
    }
    let base = server.path().trim_end_matches('/');
    let path = url.path();
    base.is_empty() || path == base || path.starts_with(base) && path[base.len()..].starts_with('/')
}
