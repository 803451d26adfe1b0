//! One Durable Object per session (SQLite-backed storage): the refresh token and current access
//! token of one login, refreshed upstream one request at a time. The front worker sends it a
//! [`Command`]; its answer is the page's answer. The backend-for-frontend's commands (a login
//! in progress, then a session behind a cookie) are in the child module `bff`.

mod bff;

use core::cell::{Cell, RefCell};
use core::time::Duration;

use edge_oauth_core::env::Clock;
use edge_oauth_core::token::{
    TokenTypeHint, process_revocation_response, process_token_response_with, refresh_token_request,
    revocation_request,
};
use edge_oauth_core::{HttpClient, OAuthErrorCode};
use worker::{DurableObject, Env, Request, Response, SqlStorageValue, State, durable_object};

use crate::config::{Config, Provider};
use crate::entry::{config, into_response, resolve};
use crate::error::ProxyError;
use crate::fetch::{WorkerClock, WorkerHttp};
use crate::lock::AsyncLock;
use crate::proxy::{Command, authorization_code_request};
use crate::ratelimit::TokenBucket;
use crate::reply::Reply;
use crate::session::{HandleSecret, Presented, SessionHandle, SessionRecord, mediated_response};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS session (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL)";

/// A session: see the module documentation.
#[durable_object(alarm)]
pub struct TokenSession {
    state: State,
    env: Env,
    /// Serialises every command: a refresh that waits here sees the tokens the one before it
    /// stored, so concurrent refreshes make one upstream request.
    lock: AsyncLock,
    /// The BFF session's rate limit (in memory: an evicted object starts full).
    bucket: RefCell<Option<TokenBucket>>,
    /// When the idle expiry was last pushed back (seconds), to write it at most once a minute.
    touched: Cell<u64>,
    /// The `DPoP-Nonce` the authorization server sent to the page's proof during this
    /// command: passed back with the answer (RFC 9449 §8), so the page's next proof carries it.
    upstream_nonce: RefCell<Option<String>>,
    /// A backend-for-frontend session with its own DPoP key: the latest nonces of the
    /// authorization server and of the MCP server (RFC 9449 §8, §9), in memory only.
    as_nonce: RefCell<Option<String>>,
    rs_nonce: RefCell<Option<String>>,
}

/// Who proves a token request of a session (RFC 9449 §5).
#[derive(Clone, Copy)]
pub(crate) enum Proof<'a> {
    /// Nobody: bearer tokens.
    None,
    /// The page, with this proof (token-mediating).
    Page(&'a str),
    /// The session's own key (backend-for-frontend), answering one nonce challenge.
    Own(&'a crate::dpop_key::SessionKey),
}

#[derive(serde::Deserialize)]
struct Row {
    record: String,
}

fn storage_error(what: &'static str) -> impl Fn(worker::Error) -> ProxyError {
    move |_| ProxyError::Internal { what }
}

impl DurableObject for TokenSession {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            lock: AsyncLock::new(),
            bucket: RefCell::new(None),
            touched: Cell::new(0),
            upstream_nonce: RefCell::new(None),
            as_nonce: RefCell::new(None),
            rs_nonce: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let command: Command = match req.json().await {
            Ok(c) => c,
            Err(_) => {
                return into_response(Reply::error(&ProxyError::Internal {
                    what: "an unreadable session command",
                }));
            }
        };
        let _guard = self.lock.acquire().await;
        let mut reply = self.run(command).await.unwrap_or_else(|e| Reply::error(&e));
        if let Some(nonce) = self.upstream_nonce.take() {
            reply = reply.with_header("DPoP-Nonce", nonce);
        }
        into_response(reply)
    }

    /// An idle session (no command for `SESSION_IDLE_SECS`) ends as at logout: its refresh
    /// tokens revoked upstream (best effort), then deleted. A session nobody uses any more —
    /// abandoned without a logout, or displaced by a later login in the same browser — leaves
    /// no live grant at the authorization server. (A pending login's object only expires.)
    async fn alarm(&self) -> worker::Result<Response> {
        let _guard = self.lock.acquire().await;
        if let Ok(config) = config(&self.env)
            && let Ok(Some(record)) = self.load()
        {
            let http = WorkerHttp::new(config.limits.upstream_timeout_ms);
            if self.end(&config, &http, &record).await.is_ok() {
                return Response::empty();
            }
        }
        self.state.storage().delete_all().await?;
        Response::empty()
    }
}

impl TokenSession {
    async fn run(&self, command: Command) -> Result<Reply, ProxyError> {
        let config = config(&self.env).map_err(|e| ProxyError::Misconfigured {
            problem: e.to_string(),
        })?;
        let http = WorkerHttp::new(config.limits.upstream_timeout_ms);
        match command {
            Command::Exchange {
                provider,
                code,
                redirect_uri,
                code_verifier,
                resource,
                dpop,
            } => {
                let provider = provider_named(&config, &provider)?;
                let endpoints = resolve(&config, provider, &http).await?;
                let mut request = authorization_code_request(
                    &endpoints.token,
                    &provider.client,
                    &code,
                    &redirect_uri,
                    &code_verifier,
                    resource.as_deref(),
                );
                // The page's proof, for tokens bound to the page's key (RFC 9449 §5).
                if let Some(proof) = &dpop {
                    request.headers.push(("DPoP".into(), proof.clone()));
                }
                let response = send(&http, provider, request).await?;
                self.keep_nonce(&response, dpop.is_some());
                let tokens = process_token_response_with(
                    &response,
                    &endpoints.token,
                    &WorkerClock,
                    None,
                    None,
                    dpop.is_some(),
                )
                .map_err(ProxyError::from_upstream)?;
                let dpop_jkt = dpop
                    .as_deref()
                    .filter(|_| tokens.is_dpop())
                    .and_then(crate::dpop::proof_jkt);
                let handle = match tokens.refresh_token.is_some() {
                    true => {
                        let now = WorkerClock.now();
                        let record = SessionRecord {
                            provider: provider.name.clone(),
                            client_id: provider.client.client_id.clone(),
                            resource,
                            tokens,
                            handle: new_secret()?,
                            retired: Vec::new(),
                            created_at: now,
                            refreshes: 0,
                            bff: None,
                            dpop_jkt,
                            dpop_key: None,
                        };
                        self.save(&record, &config).await?;
                        Some(SessionHandle::encode(&self.id(), &record.handle))
                    }
                    // Nothing to keep at the edge: the page gets the access token alone.
                    false => None,
                };
                Ok(Reply::json(200, &mediated_response(&response.body, handle)))
            }
            Command::Refresh { secret, dpop } => {
                self.refresh(&config, &http, &secret, dpop.as_deref()).await
            }
            Command::Revoke { secret } => {
                if let Some(record) = self.load()?
                    && record.bff.is_none()
                    && record.classify(
                        &secret,
                        WorkerClock.now(),
                        config.limits.rotation_grace_secs,
                    ) != Presented::Unknown
                {
                    self.end(&config, &http, &record).await?;
                }
                // RFC 7009 §2.2: 200 whether or not the token was valid.
                Ok(Reply::json(200, &serde_json::json!({})))
            }
            bff => self.run_bff(bff, &config, &http).await,
        }
    }

    async fn refresh(
        &self,
        config: &Config,
        http: &WorkerHttp,
        secret: &HandleSecret,
        dpop: Option<&str>,
    ) -> Result<Reply, ProxyError> {
        let Some(mut record) = self.load()?.filter(|r| r.bff.is_none()) else {
            return Err(ProxyError::InvalidSessionHandle);
        };
        let now = WorkerClock.now();
        match record.classify(secret, now, config.limits.rotation_grace_secs) {
            Presented::Unknown => return Err(ProxyError::InvalidSessionHandle),
            Presented::Replayed => {
                self.end(config, http, &record).await?;
                return Err(ProxyError::SessionHandleReused);
            }
            Presented::Current | Presented::WithinGrace => {}
        }
        let provider = self.session_provider(config, &record).await?;
        // Tokens bound to the page's key go only to a valid proof by that key, made for the
        // token endpoint (verified here, whether or not a refresh goes upstream): the
        // authorization server would refuse any other, and the held access token must not go
        // to whoever has the handle and the public key.
        if let Some(jkt) = &record.dpop_jkt {
            let endpoints = resolve(config, provider, http).await?;
            let checked = crate::dpop::check_proof(
                dpop.ok_or(ProxyError::InvalidDpopProof)?,
                jkt,
                &[endpoints.token.as_str()],
                now,
            )?;
            crate::signer::verify_proof_signature(&checked).await?;
        }
        let proof = match dpop.filter(|_| record.dpop_jkt.is_some()) {
            Some(p) => Proof::Page(p),
            None => Proof::None,
        };
        self.refresh_if_due(config, http, provider, &mut record, now, proof)
            .await?;
        Ok(Reply::json(
            200,
            &record.token_response(&self.id(), WorkerClock.now()),
        ))
    }

    /// The error for a session that is gone: an invalid handle for the token-mediating page, no
    /// session for the backend-for-frontend's.
    fn ended(record: &SessionRecord) -> ProxyError {
        match record.bff {
            Some(_) => ProxyError::NotAuthenticated,
            None => ProxyError::InvalidSessionHandle,
        }
    }

    /// The session's provider, as long as it is still configured with the same client.
    async fn session_provider<'a>(
        &self,
        config: &'a Config,
        record: &SessionRecord,
    ) -> Result<&'a Provider, ProxyError> {
        match config.provider(&record.provider) {
            Some(p) if p.client.client_id == record.client_id => Ok(p),
            // The provider or its client was reconfigured: these tokens belong to no client here.
            _ => {
                self.delete().await?;
                Err(Self::ended(record))
            }
        }
    }

    /// Refreshes upstream when the access token is due (`REFRESH_BUFFER_SECS` before expiry,
    /// at most half its lifetime), and stores the result before returning. `Ok` means `record`
    /// now holds an access token to use: a fresh one, or the current one while it is valid and
    /// the authorization server is unavailable (a BFF session the provider gave no refresh
    /// token uses its access token until it expires).
    async fn refresh_if_due(
        &self,
        config: &Config,
        http: &WorkerHttp,
        provider: &Provider,
        record: &mut SessionRecord,
        now: u64,
        proof: Proof<'_>,
    ) -> Result<(), ProxyError> {
        if !record
            .tokens
            .needs_refresh(now, config.limits.refresh_buffer_secs)
        {
            return Ok(());
        }
        let Some(old) = record.tokens.refresh_token.clone() else {
            if record.bff.is_some() && !record.tokens.is_expired(now) {
                return Ok(());
            }
            self.delete().await?;
            return Err(Self::ended(record));
        };
        let endpoints = resolve(config, provider, http).await?;
        let mut request = refresh_token_request(
            &endpoints.token,
            &provider.client,
            &old,
            None,
            record.resource.as_deref(),
        )
        .map_err(ProxyError::from_upstream)?;
        let response = match proof {
            Proof::Own(key) => self.send_proven(http, provider, request, key).await,
            Proof::Page(p) => {
                request.headers.push(("DPoP".into(), p.to_owned()));
                let response = send(http, provider, request).await;
                if let Ok(r) = &response {
                    self.keep_nonce(r, true);
                }
                response
            }
            Proof::None => send(http, provider, request).await,
        };
        let proven = !matches!(proof, Proof::None);
        let outcome = response.as_ref().map_err(Clone::clone).and_then(|r| {
            process_token_response_with(
                r,
                &endpoints.token,
                &WorkerClock,
                Some(&old),
                record.tokens.scope.as_deref(),
                proven,
            )
            .map_err(ProxyError::from_upstream)
        });
        match outcome {
            Ok(tokens) => {
                record.renew(tokens, new_secret()?, WorkerClock.now());
                self.save(record, config).await?;
                Ok(())
            }
            Err(e) => {
                // A 200 that failed validation may still carry a rotated refresh token: the
                // old one is dead then, so keep the new one for the next try.
                if let Ok(r) = &response
                    && let Some(rotated) = edge_oauth_core::token::salvage_refresh_token(r, &old)
                {
                    record.tokens.refresh_token = Some(rotated);
                    self.save(record, config).await?;
                }
                match &e {
                    ProxyError::Upstream { error, .. }
                        if error.code == OAuthErrorCode::InvalidGrant =>
                    {
                        // The grant is gone upstream: so is the session.
                        self.delete().await?;
                        if record.bff.is_some() {
                            return Err(ProxyError::NotAuthenticated);
                        }
                    }
                    // The authorization server is down but the access token still works.
                    ProxyError::UpstreamUnavailable { .. } if !record.tokens.is_expired(now) => {
                        return Ok(());
                    }
                    _ => {}
                }
                Err(e)
            }
        }
    }

    /// Revokes the refresh token upstream (best effort), then those of the sessions a BFF
    /// step-up replaced, and deletes the session.
    async fn end(
        &self,
        config: &Config,
        http: &WorkerHttp,
        record: &SessionRecord,
    ) -> Result<(), ProxyError> {
        let superseded = record.bff.iter().flat_map(|b| b.superseded.iter());
        for rt in record.tokens.refresh_token.iter().chain(superseded) {
            self.revoke_upstream(config, http, record, rt).await;
        }
        self.delete().await
    }

    /// Revokes a refresh token of `record` upstream (RFC 7009), best effort: a failure is
    /// logged, never answered.
    async fn revoke_upstream(
        &self,
        config: &Config,
        http: &WorkerHttp,
        record: &SessionRecord,
        rt: &edge_oauth_core::RefreshToken,
    ) {
        if let Some(provider) = config.provider(&record.provider)
            && provider.client.client_id == record.client_id
            && let Ok(endpoints) = resolve(config, provider, http).await
            && let Some(url) = endpoints.revocation
        {
            let outcome = match revocation_request(
                &url,
                &provider.client,
                rt.secret(),
                TokenTypeHint::RefreshToken,
            ) {
                Ok(request) => match send(http, provider, request).await {
                    Ok(response) => {
                        process_revocation_response(&response, &url).map_err(|e| e.code())
                    }
                    Err(_) => Err("transport_error"),
                },
                Err(e) => Err(e.code()),
            };
            if let Err(code) = outcome {
                worker::console_warn!(
                    "edge-oauth-worker: upstream revocation failed ({code}); the session is deleted anyway"
                );
            }
        }
    }

    fn id(&self) -> String {
        self.state.id().to_string()
    }

    /// Sends a token request proven by the session's own key with the authorization server's
    /// latest nonce; a `use_dpop_nonce` challenge is answered once with a fresh proof (RFC 9449
    /// §8). Each attempt gets fresh client authentication too (see [`send`]).
    pub(crate) async fn send_proven(
        &self,
        http: &WorkerHttp,
        provider: &Provider,
        request: edge_oauth_core::HttpRequest,
        key: &crate::dpop_key::SessionKey,
    ) -> Result<edge_oauth_core::HttpResponse, ProxyError> {
        use edge_oauth_core::dpop;
        let mut answered = false;
        loop {
            let mut attempt = request.clone();
            let nonce = self.as_nonce.borrow().clone();
            let proof =
                own_proof(key, attempt.method, &attempt.url, None, nonce.as_deref()).await?;
            attempt.headers.push(("DPoP".into(), proof));
            let response = send(http, provider, attempt).await?;
            if let Some(n) = dpop::response_nonce(&response) {
                *self.as_nonce.borrow_mut() = Some(n.to_owned());
            }
            if !answered && dpop::token_endpoint_nonce_challenge(&response).is_some() {
                answered = true;
                continue;
            }
            return Ok(response);
        }
    }

    /// Keeps the authorization server's `DPoP-Nonce` for the page's answer, when the request
    /// carried the page's proof.
    fn keep_nonce(&self, response: &edge_oauth_core::HttpResponse, proven: bool) {
        if let Some(n) = edge_oauth_core::dpop::response_nonce(response).filter(|_| proven) {
            *self.upstream_nonce.borrow_mut() = Some(n.to_owned());
        }
    }

    fn load(&self) -> Result<Option<SessionRecord>, ProxyError> {
        self.load_row("session")
    }

    /// The record of the one-row table `table` (`session`, `bff_login`).
    fn load_row<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
    ) -> Result<Option<T>, ProxyError> {
        let sql = self.state.storage().sql();
        // A session that never stored anything has no table, and that is not an error: one
        // query, instead of asking `sqlite_master` first.
        let rows: Vec<Row> = match sql
            .exec(&format!("SELECT record FROM {table} WHERE id = 1"), None)
            .and_then(|c| c.to_array())
        {
            Ok(rows) => rows,
            Err(e) if e.to_string().contains("no such table") => return Ok(None),
            Err(e) => return Err(storage_error("reading the session")(e)),
        };
        match rows.first() {
            None => Ok(None),
            Some(row) => {
                serde_json::from_str(&row.record)
                    .map(Some)
                    .map_err(|_| ProxyError::Internal {
                        what: "a stored session that does not parse",
                    })
            }
        }
    }

    /// Stores `record` as JSON in the one row of a table (created by `schema` if missing).
    fn write_row(
        &self,
        schema: &str,
        insert: &str,
        record: &impl serde::Serialize,
        what: &'static str,
    ) -> Result<(), ProxyError> {
        let json = serde_json::to_string(record).map_err(|_| ProxyError::Internal { what })?;
        let sql = self.state.storage().sql();
        sql.exec(schema, None).map_err(storage_error(what))?;
        sql.exec(insert, vec![SqlStorageValue::from(json)])
            .map(|_| ())
            .map_err(storage_error(what))
    }

    async fn save(&self, record: &SessionRecord, config: &Config) -> Result<(), ProxyError> {
        self.write_row(
            SCHEMA,
            "INSERT OR REPLACE INTO session (id, record) VALUES (1, ?)",
            record,
            "writing the session",
        )?;
        self.state
            .storage()
            .set_alarm(Duration::from_secs(config.limits.session_idle_secs))
            .await
            .map_err(storage_error("scheduling the session's expiry"))
    }

    async fn delete(&self) -> Result<(), ProxyError> {
        let storage = self.state.storage();
        storage
            .delete_alarm()
            .await
            .map_err(storage_error("deleting the session"))?;
        storage
            .delete_all()
            .await
            .map_err(storage_error("deleting the session"))
    }
}

fn provider_named<'a>(config: &'a Config, name: &str) -> Result<&'a Provider, ProxyError> {
    config
        .provider(name)
        .ok_or_else(|| ProxyError::Misconfigured {
            problem: format!("no provider named {name:?}"),
        })
}

/// Sends a token-endpoint or revocation request for `provider`'s client, with its client
/// authentication completed (a fresh assertion for `private_key_jwt`).
async fn send(
    http: &WorkerHttp,
    provider: &Provider,
    request: edge_oauth_core::HttpRequest,
) -> Result<edge_oauth_core::HttpResponse, ProxyError> {
    let request = crate::signer::authenticate(provider, request).await?;
    http.send(request)
        .await
        .map_err(|_| ProxyError::UpstreamUnavailable { retry_after: None })
}

/// A DPoP proof by a session's own key (RFC 9449 §4.2): `ath` for a resource request.
pub(crate) async fn own_proof(
    key: &crate::dpop_key::SessionKey,
    method: edge_oauth_core::http::Method,
    url: &str,
    access_token: Option<&edge_oauth_core::AccessToken>,
    nonce: Option<&str>,
) -> Result<String, ProxyError> {
    let request = edge_oauth_core::dpop::ProofRequest {
        method,
        url,
        access_token,
        nonce,
    };
    edge_oauth_core::dpop::proof(key, &request, &WorkerClock, &edge_oauth_core::env::OsRandom)
        .await
        .map(|p| p.secret().to_owned())
        .map_err(|_| ProxyError::Internal {
            what: "signing a DPoP proof",
        })
}

fn new_secret() -> Result<HandleSecret, ProxyError> {
    HandleSecret::random()
}
