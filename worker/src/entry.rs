//! The front worker: `#[event(fetch)]`, the configuration once per isolate, the per-address
//! rate limit, a match on the path: `/token` and `/revoke` (the `Origin` gate and CORS, the body
//! cap), the backend-for-frontend's `/bff/*` (in `bff_entry`) and `/relay`; sessions are
//! handed to their Durable Object.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use edge_oauth_core::env::Clock;
use edge_oauth_core::token::{TokenTypeHint, process_revocation_response, revocation_request};
use edge_oauth_core::{AuthorizationCode, CodeVerifier, HttpClient, HttpRequest};
use futures_util::StreamExt;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Headers, Method, Request, RequestInit, Response, event};

use crate::bff_entry::BffRoute;
use crate::config::{Config, ConfigError, Provider, Source};
use crate::error::ProxyError;
use crate::fetch::{WorkerClock, WorkerHttp};
use crate::form::{Form, TokenRequest, is_form_content_type};
use crate::proxy::{Command, EndpointCache, Endpoints};
use crate::ratelimit::Buckets;
use crate::relay::{MAX_RELAY_BYTES, RELAY_RESPONSE_HEADERS, relay_target};
use crate::reply::Reply;
use crate::session::SessionHandle;

/// The Durable Object namespace binding of the sessions.
pub const SESSIONS_BINDING: &str = "SESSIONS";

thread_local! {
    static CONFIG: OnceCell<Result<Rc<Config>, ConfigError>> = const { OnceCell::new() };
    /// Discovered endpoints, shared by the front worker and the sessions of this isolate.
    static ENDPOINTS: Rc<EndpointCache> = Rc::new(EndpointCache::new());
    /// `RATE_LIMIT_ADDRESS`: one bucket per client address seen by this isolate.
    static ADDRESSES: RefCell<Buckets> = RefCell::new(Buckets::new());
}

struct EnvSource<'a>(&'a Env);

impl EnvSource<'_> {
    fn read(&self, name: &str) -> Option<String> {
        let v = worker::js_sys::Reflect::get(self.0, &JsValue::from_str(name)).ok()?;
        if let Some(s) = v.as_string() {
            return Some(s);
        }
        if v.is_object() {
            // A TOML table or array under [vars] arrives as an object: read it as JSON.
            return worker::js_sys::JSON::stringify(&v).ok()?.as_string();
        }
        None
    }
}

impl Source for EnvSource<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.read(name)
    }
    fn secret(&self, name: &str) -> Option<String> {
        self.read(name)
    }
}

/// The configuration, validated on the first request of this isolate and kept.
pub fn config(env: &Env) -> Result<Rc<Config>, ConfigError> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            let loaded = Config::load(&EnvSource(env)).map(Rc::new);
            if let Err(e) = &loaded {
                worker::console_error!("edge-oauth-worker: configuration refused: {e}");
            }
            loaded
        })
        .clone()
    })
}

/// A provider's endpoints through this isolate's cache.
pub async fn resolve<H: HttpClient>(
    config: &Config,
    provider: &Provider,
    http: &H,
) -> Result<Endpoints, ProxyError> {
    let cache = ENDPOINTS.with(Rc::clone);
    cache
        .resolve(config, provider, http, WorkerClock.now())
        .await
}

/// A provider's endpoints for a backend-for-frontend login (with the authorization endpoint).
pub async fn resolve_for_login<H: HttpClient>(
    config: &Config,
    provider: &Provider,
    http: &H,
) -> Result<Endpoints, ProxyError> {
    let cache = ENDPOINTS.with(Rc::clone);
    cache
        .resolve_for_login(config, provider, http, WorkerClock.now())
        .await
}

/// One request from the bucket of the client's address (`CF-Connecting-IP`, which Cloudflare
/// sets and a client cannot).
fn rate_limit_address(req: &Request, config: &Config) -> Result<(), ProxyError> {
    let Some(limit) = config.rate_limits.address else {
        return Ok(());
    };
    let address = req
        .headers()
        .get("CF-Connecting-IP")
        .ok()
        .flatten()
        .unwrap_or_default();
    let now_ms = worker::js_sys::Date::now();
    ADDRESSES
        .with(|b| b.borrow_mut().take(&address, &limit, now_ms))
        .map_err(|retry_after| ProxyError::RateLimited { retry_after })
}

/// Resolves every provider's endpoints (configured, or discovered once per isolate): a
/// provider whose discovery fails definitively makes the whole worker answer with the
/// configuration error, never a proxy that works for some providers only.
async fn ensure_endpoints<H: HttpClient>(config: &Config, http: &H) -> Result<(), ProxyError> {
    for p in &config.providers {
        resolve(config, p, http).await?;
    }
    Ok(())
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: worker::Context) -> worker::Result<Response> {
    let origin = req.headers().get("Origin").ok().flatten();
    let config = match config(&env) {
        Ok(c) => c,
        Err(e) => {
            let allowed = origin
                .as_deref()
                .filter(|o| e.allowed_origins.iter().flatten().any(|a| a == o));
            let error = ProxyError::Misconfigured {
                problem: e.to_string(),
            };
            return into_response(Reply::error(&error).with_cors(allowed));
        }
    };
    if let Err(e) = rate_limit_address(&req, &config) {
        let allowed = origin.as_deref().filter(|o| config.origin_allowed(o));
        let mut reply = Reply::error(&e);
        if req.path().starts_with("/bff/") {
            reply
                .headers
                .extend(crate::reply::credentialed_cors(allowed));
        } else {
            reply = reply.with_cors(allowed);
        }
        return into_response(reply);
    }
    // A plain match on the path: cheaper than building a `Router` for every request.
    let path = req.path();
    match path.as_str() {
        "/token" => into_response(route(req, config, &env, Route::Token).await),
        "/revoke" => into_response(route(req, config, &env, Route::Revoke).await),
        "/bff/login" => crate::bff_entry::handle(req, config, &env, BffRoute::Login, "").await,
        "/bff/callback" => {
            crate::bff_entry::handle(req, config, &env, BffRoute::Callback, "").await
        }
        "/bff/session" => crate::bff_entry::handle(req, config, &env, BffRoute::Session, "").await,
        "/bff/logout" => crate::bff_entry::handle(req, config, &env, BffRoute::Logout, "").await,
        "/relay" => into_response(relay(req, config).await),
        other => match other.strip_prefix("/bff/mcp/") {
            Some(name) if !name.is_empty() && !name.contains('/') => {
                crate::bff_entry::handle(req, config, &env, BffRoute::Mcp, name).await
            }
            _ => not_found(&req, &config),
        },
    }
}

fn not_found(req: &Request, config: &Config) -> worker::Result<Response> {
    let origin = req.headers().get("Origin").ok().flatten();
    let allowed = origin.as_deref().filter(|o| config.origin_allowed(o));
    into_response(Reply::error(&ProxyError::NotFound).with_cors(allowed))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Token,
    Revoke,
}

async fn route(mut req: Request, config: Rc<Config>, env: &Env, route: Route) -> Reply {
    // Strict allowlist: a request without an Origin is not from an allowed origin either.
    let origin = req.headers().get("Origin").ok().flatten();
    let Some(origin) = origin.filter(|o| config.origin_allowed(o)) else {
        return Reply::error(&ProxyError::OriginNotAllowed).with_cors(None);
    };
    let result = match req.method() {
        Method::Options
            if req
                .headers()
                .has("Access-Control-Request-Method")
                .unwrap_or(false) =>
        {
            return Reply::preflight(&origin);
        }
        Method::Post => match read_form(&mut req, config.limits.max_body_bytes).await {
            Ok(form) => match route {
                Route::Token => {
                    match crate::dpop::request_proof(req.headers().get("DPoP").ok().flatten()) {
                        Ok(dpop) => token(&form, &config, env, dpop).await,
                        Err(e) => Err(e),
                    }
                }
                Route::Revoke => revoke(&form, &config, env).await,
            },
            Err(e) => Err(e),
        },
        _ => Err(ProxyError::MethodNotAllowed),
    };
    result
        .unwrap_or_else(|e| Reply::error(&e))
        .with_cors(Some(&origin))
}

/// Reads a form body of at most `limit` bytes (see [`read_body`]).
async fn read_form(req: &mut Request, limit: usize) -> Result<Form, ProxyError> {
    let content_type = req
        .headers()
        .get("Content-Type")
        .ok()
        .flatten()
        .unwrap_or_default();
    if !is_form_content_type(&content_type) {
        // A declared oversized body is still refused as such, before its type.
        check_declared_length(req, limit)?;
        return Err(ProxyError::UnsupportedContentType);
    }
    Ok(Form::parse(&read_body(req, limit).await?))
}

fn check_declared_length(req: &Request, limit: usize) -> Result<(), ProxyError> {
    let declared = req.headers().get("Content-Length").ok().flatten();
    if declared
        .and_then(|l| l.trim().parse::<u64>().ok())
        .is_some_and(|l| l > limit as u64)
    {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    Ok(())
}

/// Reads a body of at most `limit` bytes: a declared larger `Content-Length` is refused before
/// reading, a stream that grows past the limit as soon as it does.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, ProxyError> {
    let too_large = ProxyError::BodyTooLarge { limit };
    check_declared_length(req, limit)?;
    // A declared length within the limit (HTTP framing holds the body to it): one read.
    if req
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .is_some_and(|l| l.trim().parse::<u64>().is_ok())
    {
        let body = req.bytes().await.map_err(|_| ProxyError::Internal {
            what: "reading the request body",
        })?;
        return if body.len() > limit {
            Err(too_large)
        } else {
            Ok(body)
        };
    }
    let mut body = Vec::new();
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| ProxyError::Internal {
                what: "reading the request body",
            })?;
            if body.len() + chunk.len() > limit {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
    }
    Ok(body)
}

async fn token(
    form: &Form,
    config: &Config,
    env: &Env,
    dpop: Option<String>,
) -> Result<Reply, ProxyError> {
    let http = WorkerHttp::new(config.limits.upstream_timeout_ms);
    match TokenRequest::from_form(form)? {
        TokenRequest::AuthorizationCode {
            client_id,
            code,
            redirect_uri,
            code_verifier,
            resource,
        } => {
            let provider = config
                .provider_for_client(client_id.as_deref())
                .ok_or(ProxyError::UnknownClient)?;
            if !provider.redirect_uris.contains(&redirect_uri) {
                return Err(ProxyError::RedirectUriNotAllowed);
            }
            ensure_endpoints(config, &http).await?;
            let ns = sessions(env)?;
            let id = ns.unique_id().map_err(|_| ProxyError::Internal {
                what: "creating a session id",
            })?;
            let stub = id.get_stub().map_err(|_| ProxyError::Internal {
                what: "reaching the session",
            })?;
            let command = Command::Exchange {
                provider: provider.name.clone(),
                code: AuthorizationCode::new(code),
                redirect_uri,
                code_verifier: CodeVerifier::new(code_verifier),
                resource,
                dpop,
            };
            send_command(&stub, &command).await
        }
        TokenRequest::RefreshToken { handle } => {
            ensure_endpoints(config, &http).await?;
            let handle = SessionHandle::parse(&handle).ok_or(ProxyError::InvalidSessionHandle)?;
            let stub = session_stub(env, &handle)?;
            send_command(
                &stub,
                &Command::Refresh {
                    secret: handle.secret,
                    dpop,
                },
            )
            .await
        }
    }
}

/// RFC 7009: a session handle ends its session (the refresh token revoked upstream); any other
/// token is revoked at the provider chosen by `client_id`, with the worker's authentication.
async fn revoke(form: &Form, config: &Config, env: &Env) -> Result<Reply, ProxyError> {
    let token = form.required("token")?;
    let hint = form.single("token_type_hint")?;
    let client_id = form.single("client_id")?;
    let http = WorkerHttp::new(config.limits.upstream_timeout_ms);
    ensure_endpoints(config, &http).await?;
    if let Some(handle) = SessionHandle::parse(token) {
        let Ok(stub) = session_stub(env, &handle) else {
            // Not a session of this worker: nothing to revoke (RFC 7009 §2.2).
            return Ok(Reply::json(200, &serde_json::json!({})));
        };
        return send_command(
            &stub,
            &Command::Revoke {
                secret: handle.secret,
            },
        )
        .await;
    }
    let provider = config
        .provider_for_client(client_id)
        .ok_or(ProxyError::UnknownClient)?;
    let endpoints = resolve(config, provider, &http).await?;
    let Some(url) = endpoints.revocation else {
        return Err(ProxyError::RevocationUnsupported);
    };
    let hint = match hint {
        Some("refresh_token") => TokenTypeHint::RefreshToken,
        _ => TokenTypeHint::AccessToken,
    };
    let request = revocation_request(&url, &provider.client, token, hint)
        .map_err(ProxyError::from_upstream)?;
    let request = crate::signer::authenticate(provider, request).await?;
    let response = http
        .send(request)
        .await
        .map_err(|_| ProxyError::UpstreamUnavailable { retry_after: None })?;
    process_revocation_response(&response, &url).map_err(ProxyError::from_upstream)?;
    Ok(Reply::json(200, &serde_json::json!({})))
}

/// The sessions' Durable Object namespace.
pub fn sessions(env: &Env) -> Result<worker::ObjectNamespace, ProxyError> {
    env.durable_object(SESSIONS_BINDING).map_err(|_| ProxyError::Misconfigured {
        problem: format!("the Durable Object binding {SESSIONS_BINDING} is missing (wrangler.toml [[durable_objects.bindings]])"),
    })
}

/// The Durable Object of a session handle (an id this namespace did not make is refused).
pub fn session_stub(env: &Env, handle: &SessionHandle) -> Result<worker::Stub, ProxyError> {
    let ns = sessions(env)?;
    // An id this namespace did not make fails here: an invalid handle.
    let id = ns
        .id_from_string(&handle.session_id)
        .map_err(|_| ProxyError::InvalidSessionHandle)?;
    id.get_stub().map_err(|_| ProxyError::InvalidSessionHandle)
}

/// Sends a command to a session; its answer (status, JSON, `Retry-After`) is the page's.
pub async fn send_command(stub: &worker::Stub, command: &Command) -> Result<Reply, ProxyError> {
    fn internal<E>(what: &'static str) -> impl Fn(E) -> ProxyError {
        move |_| ProxyError::Internal { what }
    }
    let body = serde_json::to_string(command).map_err(internal("encoding a session command"))?;
    let headers = Headers::new();
    headers
        .set("Content-Type", "application/json")
        .map_err(internal("encoding a session command"))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&body)));
    let request = Request::new_with_init("https://session.internal/", &init)
        .map_err(internal("encoding a session command"))?;
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(internal("calling the session"))?;
    let status = response.status_code();
    let retry_after = response.headers().get("Retry-After").ok().flatten();
    let nonce = response.headers().get("DPoP-Nonce").ok().flatten();
    let bytes = response
        .bytes()
        .await
        .map_err(internal("reading the session's answer"))?;
    let mut reply = Reply::json_bytes(status, bytes);
    if let Some(r) = retry_after {
        reply.headers.push(("Retry-After", r));
    }
    if let Some(n) = nonce {
        reply.headers.push(("DPoP-Nonce", n));
    }
    Ok(reply)
}

/// `GET /relay?url=`: a well-known metadata document of a configured issuer, fetched without
/// redirects, passed back with CORS for allowed origins (a page of another origin has no
/// reason to call; a same-origin `GET` carries no `Origin`).
async fn relay(req: Request, config: Rc<Config>) -> Reply {
    let origin = req.headers().get("Origin").ok().flatten();
    let allowed = origin.as_deref().filter(|o| config.origin_allowed(o));
    if origin.is_some() && allowed.is_none() {
        return Reply::error(&ProxyError::OriginNotAllowed).with_cors(None);
    }
    let result = async {
        if req.method() != Method::Get {
            return Err(ProxyError::MethodNotAllowed);
        }
        let url = edge_oauth_core::url::Url::parse(&req.inner().url())
            .map_err(|_| ProxyError::MissingParameter { name: "url" })?;
        let mut values = url
            .query_pairs()
            .filter(|(k, _)| k == "url")
            .map(|(_, v)| v);
        let requested = match (values.next(), values.next()) {
            (Some(v), None) => v.into_owned(),
            (None, _) => return Err(ProxyError::MissingParameter { name: "url" }),
            (Some(_), Some(_)) => return Err(ProxyError::DuplicateParameter { name: "url" }),
        };
        let target =
            relay_target(&requested, &config.providers).ok_or(ProxyError::RelayNotAllowed)?;
        let http = WorkerHttp::new(config.limits.upstream_timeout_ms);
        let response = http
            .send(HttpRequest::get_json(target))
            .await
            .map_err(|_| ProxyError::UpstreamUnavailable { retry_after: None })?;
        if response.body.len() > MAX_RELAY_BYTES {
            return Err(ProxyError::UpstreamInvalid {
                core_code: "metadata_too_large",
            });
        }
        let headers = RELAY_RESPONSE_HEADERS
            .iter()
            .filter_map(|&name| response.header(name).map(|v| (name, v.to_owned())))
            .collect();
        Ok(Reply {
            status: response.status,
            headers,
            body: response.body,
        })
    }
    .await;
    match result {
        Ok(reply) => reply,
        Err(e @ ProxyError::MethodNotAllowed) => {
            Reply::error(&e).with_header("Allow", "GET".into())
        }
        Err(e) => Reply::error(&e),
    }
    .with_cors(allowed)
}

/// A [`Reply`] as a `worker::Response`.
pub fn into_response(reply: Reply) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in &reply.headers {
        headers.append(name, value)?;
    }
    let response = if reply.body.is_empty() {
        Response::empty()?
    } else {
        Response::from_bytes(reply.body)?
    };
    Ok(response.with_status(reply.status).with_headers(headers))
}
