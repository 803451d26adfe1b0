//! The backend-for-frontend's side of a session's Durable Object. A login starts in a new
//! object (the pending authorization in the table `bff_login`, deleted on first use), the
//! callback turns that object into the session (the tokens in `session`, as for a
//! token-mediating session), and every later request asks it for an access token, refreshed
//! under the same lock and by the same code as a token-mediating refresh.

use core::time::Duration;

use edge_oauth_core::authorize::{PendingAuthorization, validate_callback};
use edge_oauth_core::env::Clock;
use edge_oauth_core::token::{authorization_code_request, process_token_response_with};
use serde::{Deserialize, Serialize};

use super::{Proof, TokenSession, new_secret, own_proof, provider_named, send, storage_error};
use crate::bff::{BffBinding, SUPERSEDED_KEPT, session_status};
use crate::config::Config;
use crate::cookie::LOGIN_MAX_AGE_SECS;
use crate::dpop_key::SessionKey;
use crate::entry::resolve;
use crate::error::ProxyError;
use crate::fetch::{WorkerClock, WorkerHttp};
use crate::proxy::Command;
use crate::ratelimit::TokenBucket;
use crate::reply::Reply;
use crate::session::{HandleSecret, Presented, SessionHandle, SessionRecord, WrappedDpopKey};

const LOGIN_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS bff_login (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL)";

/// A login in progress.
#[derive(Serialize, Deserialize)]
struct LoginRecord {
    provider: String,
    mcp_server: String,
    pending: PendingAuthorization,
    /// base64url(SHA-256) of the login cookie's secret.
    secret_hash: String,
    /// A step-up: the session (`<id>.<secret>` when stored) this login replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replaces: Option<SessionHandle>,
    /// The session's DPoP key, made with the login: the code is bound to it (`dpop_jkt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_key: Option<WrappedDpopKey>,
}

impl TokenSession {
    pub(super) async fn run_bff(
        &self,
        command: Command,
        config: &Config,
        http: &WorkerHttp,
    ) -> Result<Reply, ProxyError> {
        match command {
            Command::BffBegin {
                provider,
                mcp_server,
                pending,
                secret,
                replaces,
                dpop_key,
            } => {
                if self.load()?.is_some() || self.load_row::<LoginRecord>("bff_login")?.is_some() {
                    return Err(ProxyError::Internal {
                        what: "a login in a session object that is in use",
                    });
                }
                let login = LoginRecord {
                    provider,
                    mcp_server,
                    pending,
                    secret_hash: secret.hash(),
                    replaces,
                    dpop_key: dpop_key.map(|k| *k),
                };
                self.save_login(&login).await?;
                Ok(Reply::json(200, &serde_json::json!({})))
            }
            Command::BffComplete {
                secret,
                callback_url,
            } => self.complete(config, http, &secret, &callback_url).await,
            Command::BffStatus { secret } => {
                self.rate_limit(config)?;
                let now = WorkerClock.now();
                let record = self.bff_session(&secret)?;
                if record.is_some() {
                    self.touch(config).await?;
                }
                Ok(Reply::json(200, &session_status(record.as_ref(), now)))
            }
            Command::BffAccessToken {
                secret,
                mcp_server,
                method,
                nonce,
            } => {
                self.rate_limit(config)?;
                let Some(mut record) = self.bff_session(&secret)? else {
                    return Err(ProxyError::NotAuthenticated);
                };
                if record.bff.as_ref().map(|b| b.mcp_server.as_str()) != Some(&mcp_server) {
                    return Err(ProxyError::McpServerNotInSession);
                }
                let provider = self.session_provider(config, &record).await?;
                let now = WorkerClock.now();
                // A session bound to its own key refreshes and presents its token with it.
                let key = match (&record.dpop_key, &config.bff) {
                    (Some(k), Some(bff)) if record.tokens.is_dpop() => {
                        Some(SessionKey::unwrap(bff, k).await?)
                    }
                    _ => None,
                };
                let proof = key.as_ref().map_or(Proof::None, Proof::Own);
                self.refresh_if_due(config, http, provider, &mut record, now, proof)
                    .await?;
                if record.tokens.is_expired(WorkerClock.now()) {
                    return Err(ProxyError::UpstreamUnavailable { retry_after: None });
                }
                self.touch(config).await?;
                let token = &record.tokens.access_token;
                let mut answer = serde_json::json!({ "access_token": token.secret() });
                if let (Some(key), Some(bff)) = (&key, &config.bff)
                    && record.tokens.is_dpop()
                {
                    // RFC 9449 §7.1: the DPoP scheme, and a proof for this request with `ath`
                    // and the MCP server's latest nonce (§9).
                    let url = bff
                        .mcp_server(&mcp_server)
                        .map(|s| s.url.clone())
                        .ok_or(ProxyError::UnknownMcpServer)?;
                    let method = match method.as_deref() {
                        Some("GET") => edge_oauth_core::http::Method::Get,
                        Some("DELETE") => edge_oauth_core::http::Method::Delete,
                        _ => edge_oauth_core::http::Method::Post,
                    };
                    if nonce.is_some() {
                        *self.rs_nonce.borrow_mut() = nonce;
                    }
                    let rs_nonce = self.rs_nonce.borrow().clone();
                    let proof =
                        own_proof(key, method, &url, Some(token), rs_nonce.as_deref()).await?;
                    answer["token_type"] = "DPoP".into();
                    answer["dpop"] = proof.into();
                }
                Ok(Reply::json(200, &answer))
            }
            Command::BffLogout { secret } => {
                let mut answer = serde_json::json!({ "authenticated": false });
                if let Some(record) = self.bff_session(&secret)? {
                    // Its own refresh token, then those of the sessions it replaced.
                    self.end(config, http, &record).await?;
                    // A replaced session never deleted: the front worker logs it out too.
                    if let Some(old) = record.bff.as_ref().and_then(|b| b.replaces.clone()) {
                        answer["replaces"] = String::from(old).into();
                    }
                }
                Ok(Reply::json(200, &answer))
            }
            Command::BffChallenge {
                secret,
                mcp_server,
                scope,
            } => {
                let (mut recorded, mut granted) = (false, serde_json::Value::Null);
                if let Some(mut record) = self.bff_session(&secret)?
                    && let Some(binding) = record.bff.as_mut()
                    && binding.mcp_server == mcp_server
                {
                    // Answered with the granted scope: the proxy tells the page whether a
                    // step-up login would be accepted.
                    recorded = true;
                    granted = record.tokens.scope.clone().into();
                    if binding.step_up_scope.as_deref() != Some(scope.as_str()) {
                        binding.step_up_scope = Some(scope);
                        self.save(&record, config).await?;
                    }
                }
                Ok(Reply::json(
                    200,
                    &serde_json::json!({ "recorded": recorded, "scope": granted }),
                ))
            }
            Command::BffReplaced { secret } => {
                // Not revoked here: that could revoke the new session's grant too (RFC 7009
                // §2.1), when the step-up extended that grant. The new session keeps the
                // refresh tokens and revokes them at its logout, after its own.
                let mut tokens: Vec<String> = Vec::new();
                if let Some(record) = self.bff_session(&secret)? {
                    let kept = record.bff.iter().flat_map(|b| b.superseded.iter());
                    tokens = (record.tokens.refresh_token.iter().chain(kept))
                        .map(|t| t.secret().to_owned())
                        .collect();
                    self.delete().await?;
                }
                Ok(Reply::json(
                    200,
                    &serde_json::json!({ "refresh_tokens": tokens }),
                ))
            }
            Command::BffSuperseded {
                secret,
                replaced,
                refresh_tokens,
            } => {
                if let Some(mut record) = self.bff_session(&secret)?
                    && let Some(binding) = record.bff.as_mut()
                    && binding.replaces.as_ref() == Some(&replaced)
                {
                    binding.replaces = None;
                    let mut kept = refresh_tokens;
                    kept.append(&mut binding.superseded);
                    kept.truncate(SUPERSEDED_KEPT);
                    binding.superseded = kept;
                    self.save(&record, config).await?;
                }
                Ok(Reply::json(200, &serde_json::json!({})))
            }
            _ => Err(ProxyError::Internal {
                what: "a session command in the wrong place",
            }),
        }
    }

    /// The callback: the pending login is taken (deleted before anything is checked, so a
    /// callback URL works once), the core validates the callback against it (age, redirect
    /// URI, duplicates, `iss`, `state`) and builds the code exchange with the worker's client
    /// authentication; the tokens become this object's session.
    async fn complete(
        &self,
        config: &Config,
        http: &WorkerHttp,
        secret: &HandleSecret,
        callback_url: &str,
    ) -> Result<Reply, ProxyError> {
        let no_login = ProxyError::LoginRejected {
            core_code: "no_login_in_progress",
        };
        let Some(login) = self.load_row::<LoginRecord>("bff_login")? else {
            return Err(no_login);
        };
        if !crate::session::constant_time_eq(login.secret_hash.as_bytes(), secret.hash().as_bytes())
        {
            return Err(no_login);
        }
        self.delete_login()?;
        let provider = provider_named(config, &login.provider)?;
        if provider.client.client_id != login.pending.client_id {
            return Err(ProxyError::LoginRejected {
                core_code: "provider_reconfigured",
            });
        }
        let issuer = login.pending.issuer.clone();
        let resource = login.pending.resource.clone();
        let scope = login.pending.scope.clone();
        let validated = validate_callback(callback_url, login.pending, &WorkerClock)
            .map_err(ProxyError::from_callback)?;
        let endpoints = resolve(config, provider, http).await?;
        let request = authorization_code_request(&endpoints.token, &provider.client, validated)
            .map_err(ProxyError::from_upstream)?;
        // A provider that advertises ES256 for DPoP gets the tokens bound to a key of this
        // session (RFC 9449 §5.1), kept wrapped: the one the login made and bound the code to
        // (`dpop_jkt`), or, for a login begun by an earlier version, one made now.
        let wrapped = match (login.dpop_key, &config.bff) {
            (Some(k), Some(_)) => Some(k),
            (None, Some(bff)) if endpoints.dpop_es256 => {
                Some(crate::dpop_key::generate(bff).await?)
            }
            _ => None,
        };
        let key = match (&wrapped, &config.bff) {
            (Some(w), Some(bff)) => Some(SessionKey::unwrap(bff, w).await?),
            _ => None,
        };
        let response = match &key {
            Some(k) => self.send_proven(http, provider, request, k).await?,
            None => send(http, provider, request).await?,
        };
        let tokens = process_token_response_with(
            &response,
            &endpoints.token,
            &WorkerClock,
            None,
            scope.as_deref(),
            key.is_some(),
        )
        .map_err(ProxyError::from_upstream)?;
        let bound = tokens.is_dpop();
        let dpop_jkt = key
            .as_ref()
            .filter(|_| bound)
            .map(|k| edge_oauth_core::jws::JwsSigner::public_jwk(k).thumbprint());
        let record = SessionRecord {
            provider: provider.name.clone(),
            client_id: provider.client.client_id.clone(),
            resource,
            tokens,
            handle: new_secret()?,
            retired: Vec::new(),
            created_at: WorkerClock.now(),
            refreshes: 0,
            bff: Some(BffBinding {
                mcp_server: login.mcp_server,
                issuer,
                step_up_scope: None,
                replaces: login.replaces.clone(),
                superseded: Vec::new(),
            }),
            dpop_jkt,
            dpop_key: wrapped.filter(|_| bound),
        };
        self.save(&record, config).await?;
        self.touched.set(WorkerClock.now());
        let mut answer = serde_json::json!({ "secret": record.handle.secret() });
        if let Some(replaces) = login.replaces {
            answer["replaces"] = String::from(replaces).into();
        }
        Ok(Reply::json(200, &answer))
    }

    /// The BFF session this cookie secret opens, if any. The handle of a BFF session does
    /// not rotate, so only the current one counts.
    fn bff_session(&self, secret: &HandleSecret) -> Result<Option<SessionRecord>, ProxyError> {
        Ok(self.load()?.filter(|r| {
            r.bff.is_some() && r.classify(secret, WorkerClock.now(), 0) == Presented::Current
        }))
    }

    /// One request from this session's bucket (`RATE_LIMIT_SESSION`).
    fn rate_limit(&self, config: &Config) -> Result<(), ProxyError> {
        let Some(limit) = config.rate_limits.session else {
            return Ok(());
        };
        let now_ms = worker::js_sys::Date::now();
        let mut bucket = self.bucket.borrow_mut();
        bucket
            .get_or_insert_with(|| TokenBucket::full(&limit, now_ms))
            .take(&limit, now_ms)
            .map_err(|retry_after| ProxyError::RateLimited { retry_after })
    }

    /// Pushes the idle expiry back (`SESSION_IDLE_SECS` from now), at most once a minute.
    async fn touch(&self, config: &Config) -> Result<(), ProxyError> {
        let now = WorkerClock.now();
        if now.saturating_sub(self.touched.get()) < 60 {
            return Ok(());
        }
        self.state
            .storage()
            .set_alarm(Duration::from_secs(config.limits.session_idle_secs))
            .await
            .map_err(storage_error("scheduling the session's expiry"))?;
        self.touched.set(now);
        Ok(())
    }

    async fn save_login(&self, login: &LoginRecord) -> Result<(), ProxyError> {
        self.write_row(
            LOGIN_SCHEMA,
            "INSERT OR REPLACE INTO bff_login (id, record) VALUES (1, ?)",
            login,
            "writing the login",
        )?;
        // A login never completed is deleted with its object a little after it expires.
        self.state
            .storage()
            .set_alarm(Duration::from_secs(LOGIN_MAX_AGE_SECS + 60))
            .await
            .map_err(storage_error("scheduling the login's expiry"))
    }

    fn delete_login(&self) -> Result<(), ProxyError> {
        self.state
            .storage()
            .sql()
            .exec("DELETE FROM bff_login", None)
            .map(|_| ())
            .map_err(storage_error("deleting the login"))
    }
}
