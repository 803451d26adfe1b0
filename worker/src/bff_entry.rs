//! The backend-for-frontend's routes: `POST /bff/login`, `GET /bff/callback`,
//! `GET /bff/session`, `POST /bff/logout` and `/bff/mcp/<name>`. The page holds only a sealed
//! cookie; tokens stay in the session's Durable Object, and the worker adds the access token
//! to requests it proxies to the configured MCP servers.

use core::pin::pin;
use core::time::Duration;
use std::rc::Rc;

use edge_oauth_core::RefreshToken;
use edge_oauth_core::authorize::{AuthorizationRequest, build_authorization_url};
use edge_oauth_core::env::OsRandom;
use edge_oauth_core::url::Url;
use futures_util::future::{Either, select};
use worker::{
    AbortController, Delay, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
    Response, ResponseBuilder,
};

use crate::bff::{
    BffConfig, CSRF_HEADER, LoginRequest, STEP_UP_HEADER, csrf_check, insufficient_scope_challenge,
    login_scope, mcp_request_header_allowed, mcp_response_header_allowed,
};
use crate::config::Config;
use crate::cookie::{
    CookieKind, LoginCookie, MAX_LOGIN_COOKIES_READ, cookie_values, expire_cookie,
    expire_login_cookie, login_cookie_name, login_cookies, login_tag, logins_to_expire, set_cookie,
    set_login_cookie,
};
use crate::entry::{
    into_response, read_body, resolve_for_login, send_command, session_stub, sessions,
};
use crate::error::ProxyError;
use crate::fetch::WorkerClock;
use crate::form::{Form, is_form_content_type};
use crate::proxy::Command;
use crate::reply::{Reply, credentialed_cors};
use crate::seal::{seal, unseal};
use crate::session::{HandleSecret, SessionHandle};

/// Which BFF route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BffRoute {
    /// `POST /bff/login`.
    Login,
    /// `GET /bff/callback`.
    Callback,
    /// `GET /bff/session`.
    Session,
    /// `POST /bff/logout`.
    Logout,
    /// `/bff/mcp/<name>`.
    Mcp,
}

/// What a route answers: a reply, or an MCP server's streamed response.
enum Outcome {
    Reply(Reply),
    Stream(Response),
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

fn method_not_allowed(allow: &str) -> Reply {
    Reply::error(&ProxyError::MethodNotAllowed).with_header("Allow", allow.to_owned())
}

/// Handles a `/bff/*` request.
pub async fn handle(
    mut req: Request,
    config: Rc<Config>,
    env: &Env,
    route: BffRoute,
    name: &str,
) -> worker::Result<Response> {
    let allowed = header(&req, "Origin").filter(|o| config.origin_allowed(o));
    let result = match config.bff.as_ref() {
        None => Err(Reply::error(&ProxyError::BffNotConfigured)),
        Some(bff) => dispatch(&mut req, &config, bff, env, route, name, allowed.as_deref()).await,
    };
    let secure = config.bff.as_ref().is_none_or(|b| b.secure_cookies);
    let mut reply = match result {
        Ok(Outcome::Stream(response)) => return Ok(response),
        Ok(Outcome::Reply(reply)) => reply,
        Err(mut reply) => {
            // The cookie was refused or its session is gone: stop the browser sending it.
            if reply.status == 401 && config.bff.is_some() {
                reply
                    .headers
                    .push(("Set-Cookie", expire_cookie(CookieKind::Session, secure)));
            }
            reply
        }
    };
    if route != BffRoute::Callback && reply.status != 204 {
        reply.headers.retain(|(n, _)| *n != "Vary");
        reply.headers.extend(credentialed_cors(allowed.as_deref()));
    }
    into_response(reply)
}

async fn dispatch(
    req: &mut Request,
    config: &Config,
    bff: &BffConfig,
    env: &Env,
    route: BffRoute,
    name: &str,
    allowed: Option<&str>,
) -> Result<Outcome, Reply> {
    let preflight = req.method() == Method::Options
        && header(req, "Access-Control-Request-Method").is_some()
        && route != BffRoute::Callback;
    if preflight {
        let origin = allowed.ok_or(ProxyError::OriginNotAllowed)?;
        let requested = header(req, "Access-Control-Request-Headers");
        return Reply::bff_preflight(origin, requested.as_deref())
            .map(Outcome::Reply)
            .ok_or_else(|| Reply::error(&ProxyError::OriginNotAllowed));
    }
    let reply = match route {
        BffRoute::Login => login(req, config, bff, env).await?,
        BffRoute::Callback => callback(req, config, bff, env).await?,
        BffRoute::Session => status(req, config, bff, env).await?,
        BffRoute::Logout => logout(req, config, bff, env).await?,
        BffRoute::Mcp => return mcp(req, config, bff, env, name, allowed).await,
    };
    Ok(Outcome::Reply(reply))
}

/// The CSRF gate (see [`csrf_check`]).
fn csrf(req: &Request, config: &Config, safe_method: bool) -> Result<(), ProxyError> {
    csrf_check(
        header(req, CSRF_HEADER).as_deref(),
        header(req, "Origin").as_deref(),
        safe_method,
        |o| config.origin_allowed(o),
    )
}

/// A cookie as this request carries it.
enum Cookie {
    Absent,
    Invalid,
    Valid(SessionHandle),
}

async fn read_cookie(req: &Request, bff: &BffConfig) -> Cookie {
    let header = header(req, "Cookie").unwrap_or_default();
    let values = cookie_values(&header, CookieKind::Session.name(bff.secure_cookies));
    if values.is_empty() {
        return Cookie::Absent;
    }
    for value in values {
        if let Some(plain) = unseal(bff, CookieKind::Session, value).await
            && let Some(handle) = SessionHandle::parse(&plain)
        {
            return Cookie::Valid(handle);
        }
    }
    Cookie::Invalid
}

/// The login cookie with this tag, when it unseals and was sealed for this tag.
async fn read_login_cookie(req: &Request, bff: &BffConfig, tag: &str) -> Option<SessionHandle> {
    let header = header(req, "Cookie").unwrap_or_default();
    let name = login_cookie_name(tag, bff.secure_cookies);
    for value in cookie_values(&header, &name) {
        if let Some(login) = unseal(bff, CookieKind::Login, value)
            .await
            .as_deref()
            .and_then(LoginCookie::parse)
            && login.tag == tag
            && let Some(handle) = SessionHandle::parse(&login.handle)
        {
            return Some(handle);
        }
    }
    None
}

/// The logins this browser has in progress, as its login cookies say: (tag, set at) of each
/// valid one, and the tags of the others (not ours any more, or past
/// [`MAX_LOGIN_COOKIES_READ`]), to expire.
async fn pending_logins(req: &Request, bff: &BffConfig) -> (Vec<(String, u64)>, Vec<String>) {
    let header = header(req, "Cookie").unwrap_or_default();
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    for (i, (tag, value)) in login_cookies(&header, bff.secure_cookies)
        .into_iter()
        .enumerate()
    {
        let login = match i < MAX_LOGIN_COOKIES_READ {
            true => unseal(bff, CookieKind::Login, value)
                .await
                .as_deref()
                .and_then(LoginCookie::parse)
                .filter(|l| l.tag == tag),
            false => None,
        };
        match login {
            Some(l) if !valid.iter().any(|(t, _)| t == tag) => valid.push((l.tag, l.set_at)),
            Some(_) => {}
            None if !invalid.iter().any(|t| t == tag) => invalid.push(tag.to_owned()),
            None => {}
        }
    }
    // A name with a valid value too (only possible without `__Host-`) stays.
    invalid.retain(|t| !valid.iter().any(|(v, _)| v == t));
    (valid, invalid)
}

/// The `state` of a callback URL (the first one: the core refuses a repeated one).
fn callback_state(url: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// The session behind a valid session cookie; refusals as the page should see them.
async fn session_cookie(
    req: &Request,
    bff: &BffConfig,
    env: &Env,
) -> Result<Option<(SessionHandle, worker::Stub)>, ProxyError> {
    match read_cookie(req, bff).await {
        Cookie::Absent => Ok(None),
        Cookie::Invalid => Err(ProxyError::InvalidSessionCookie),
        Cookie::Valid(handle) => {
            let stub = session_stub(env, &handle).map_err(|_| ProxyError::InvalidSessionCookie)?;
            Ok(Some((handle, stub)))
        }
    }
}

/// A session command whose answer must be 200 JSON; any other answer (already RFC-shaped,
/// with its `Retry-After`) is the page's.
async fn ask(stub: &worker::Stub, command: &Command) -> Result<serde_json::Value, Reply> {
    let answer = send_command(stub, command).await?;
    if answer.status != 200 {
        return Err(answer);
    }
    serde_json::from_slice(&answer.body).map_err(|_| {
        Reply::error(&ProxyError::Internal {
            what: "an unreadable session answer",
        })
    })
}

fn is_json_content_type(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// `POST /bff/login`: from a page's `fetch` (JSON, the custom header, an allowed `Origin`)
/// it answers `{"authorization_url": …}`; from a top-level form POST (no custom header
/// possible, the allowed `Origin` suffices: a login needs no session, and a step-up only
/// starts one) it answers `303` to it, or back to `BFF_RETURN_URL` with `edge_oauth_error`.
/// Either way a login cookie of its own binds the login to this browser (other logins in
/// progress keep theirs, up to [`crate::cookie::MAX_PENDING_LOGINS`]). With `step_up`, the
/// session in the request's cookie must be for the same MCP server; the login asks for the
/// scope of [`login_scope`] and its callback replaces that session (see `BffReplaced`).
async fn login(
    req: &mut Request,
    config: &Config,
    bff: &BffConfig,
    env: &Env,
) -> Result<Reply, Reply> {
    if req.method() != Method::Post {
        return Err(method_not_allowed("POST, OPTIONS"));
    }
    let content_type = header(req, "Content-Type").unwrap_or_default();
    let form_post = is_form_content_type(&content_type);
    if form_post {
        if !header(req, "Origin").is_some_and(|o| config.origin_allowed(&o)) {
            return Err(ProxyError::OriginNotAllowed.into());
        }
    } else {
        csrf(req, config, false)?;
        if !is_json_content_type(&content_type) {
            return Err(ProxyError::UnsupportedContentType.into());
        }
    }
    match start_login(req, config, bff, env, form_post).await {
        // A top-level navigation: the page gets the browser back with the code (a step-up
        // refused by `max_scope`, a session gone, an unreachable provider, ...).
        Err(reply) if form_post => back_with_error(bff, &error_code(&reply)),
        outcome => outcome,
    }
}

/// The stable code of an error reply.
fn error_code(reply: &Reply) -> String {
    serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "internal_error".into())
}

/// `303` to `BFF_RETURN_URL?edge_oauth_error=<code>`.
fn back_with_error(bff: &BffConfig, code: &str) -> Result<Reply, Reply> {
    let mut location = Url::parse(&bff.return_url).map_err(|_| ProxyError::Misconfigured {
        problem: "BFF_RETURN_URL is not a URL".into(),
    })?;
    location
        .query_pairs_mut()
        .append_pair("edge_oauth_error", code);
    Ok(Reply::redirect(location.as_str()))
}

/// The login past its CSRF gate: the authorization request, the pending login in a new
/// session object, its login cookie (and the oldest other login's expired past
/// [`crate::cookie::MAX_PENDING_LOGINS`]). At a provider that advertises ES256 for DPoP the
/// session's key is made now and its thumbprint sent as `dpop_jkt` (RFC 9449 §10), so the
/// code is bound to it.
async fn start_login(
    req: &mut Request,
    config: &Config,
    bff: &BffConfig,
    env: &Env,
    form_post: bool,
) -> Result<Reply, Reply> {
    let body = read_body(req, config.limits.max_body_bytes).await?;
    let request = match form_post {
        true => LoginRequest::from_form(&Form::parse(&body))?,
        false => LoginRequest::from_json(&body)?,
    };
    let (server, provider) = request.resolve(bff, &config.providers)?;
    // A step-up: the session of this browser, the scope it was granted and the scope the MCP
    // server's last challenge named (refused without one); the new session replaces it after
    // the callback.
    let (scope, replaces) = match request.step_up {
        false => (server.scope.clone(), None),
        true => {
            let (handle, stub) = session_cookie(req, bff, env)
                .await?
                .ok_or(ProxyError::NotAuthenticated)?;
            let status = ask(
                &stub,
                &Command::BffStatus {
                    secret: handle.secret.clone(),
                },
            )
            .await?;
            if status["authenticated"] != true {
                return Err(ProxyError::NotAuthenticated.into());
            }
            if status["mcp_server"].as_str() != Some(server.name.as_str()) {
                return Err(ProxyError::McpServerNotInSession.into());
            }
            // Without a recorded challenge there is nothing to step up to: a login now would
            // replace the session with one of the configured scope, maybe narrower.
            let challenge = status["step_up_scope"]
                .as_str()
                .ok_or(ProxyError::NoStepUpChallenge)?;
            let scope = login_scope(server, status["scope"].as_str(), Some(challenge))?;
            (scope, Some(handle))
        }
    };
    let http = crate::fetch::WorkerHttp::new(config.limits.upstream_timeout_ms);
    let endpoints = resolve_for_login(config, provider, &http).await?;
    let metadata = endpoints.login_metadata(provider)?;
    let dpop_key = match endpoints.dpop_es256 {
        true => Some(crate::dpop_key::generate(bff).await?),
        false => None,
    };
    let (mut url, pending) = build_authorization_url(
        &AuthorizationRequest {
            metadata: &metadata,
            client: &provider.client,
            redirect_uri: &bff.redirect_uri,
            scope: scope.as_deref(),
            resource: Some(&server.url),
        },
        &OsRandom,
        &WorkerClock,
    )
    .map_err(|e| match e {
        edge_oauth_core::Error::Random { .. } => ProxyError::Internal {
            what: "the random source",
        },
        e => ProxyError::Misconfigured {
            problem: format!("provider {}: {e}", provider.name),
        },
    })?;
    if let Some(key) = &dpop_key {
        // RFC 9449 §10: only this key can redeem the code.
        url.query_pairs_mut()
            .append_pair("dpop_jkt", &key.thumbprint());
    }
    let tag = login_tag(pending.state.secret());
    let namespace = sessions(env)?;
    let id = namespace.unique_id().map_err(|_| ProxyError::Internal {
        what: "creating a session id",
    })?;
    let stub = id.get_stub().map_err(|_| ProxyError::Internal {
        what: "reaching the session",
    })?;
    let secret = HandleSecret::random()?;
    ask(
        &stub,
        &Command::BffBegin {
            provider: provider.name.clone(),
            mcp_server: server.name.clone(),
            pending,
            secret: secret.clone(),
            replaces,
            dpop_key: dpop_key.map(Box::new),
        },
    )
    .await?;
    let cookie = LoginCookie {
        tag: tag.clone(),
        set_at: worker::js_sys::Date::now() as u64,
        handle: SessionHandle::encode(&id.to_string(), &secret),
    };
    let value = seal(bff, CookieKind::Login, &cookie.encode()).await?;
    let reply = match form_post {
        true => Reply::redirect(url.as_str()),
        false => Reply::json(
            200,
            &serde_json::json!({ "authorization_url": url.as_str() }),
        ),
    };
    let mut reply = reply;
    let secure = bff.secure_cookies;
    reply
        .headers
        .push(("Set-Cookie", set_login_cookie(&tag, &value, secure)));
    let (others, unreadable) = pending_logins(req, bff).await;
    // Bounded: a page that planted many login cookies gets them expired over several logins.
    let unreadable = unreadable.iter().take(MAX_LOGIN_COOKIES_READ);
    for old in unreadable.chain(&logins_to_expire(others)) {
        reply
            .headers
            .push(("Set-Cookie", expire_login_cookie(old, secure)));
    }
    Ok(reply)
}

/// `GET /bff/callback`: the login cookie of the callback's `state` finds the login, the
/// session validates the callback and exchanges the code; the browser goes to
/// `BFF_RETURN_URL` with the session cookie, or with `edge_oauth_error=<code>` when the login
/// failed. That login cookie is cleared either way; other logins in progress keep theirs.
async fn callback(
    req: &Request,
    config: &Config,
    bff: &BffConfig,
    env: &Env,
) -> Result<Reply, Reply> {
    if req.method() != Method::Get {
        return Err(method_not_allowed("GET"));
    }
    let tag = match callback_state(&req.inner().url()) {
        Some(state) => Some(login_tag(&state)),
        // An error redirect without `state` (RFC 6749 §4.1.2.1 wants it; some servers omit
        // it): with exactly one login in progress, that login reports the server's answer and
        // ends, as with one login cookie before; with several, none can be told apart.
        None => match pending_logins(req, bff).await.0.as_slice() {
            [(only, _)] => Some(only.clone()),
            _ => None,
        },
    };
    let outcome = match &tag {
        Some(tag) => finish_login(req, config, bff, env, tag).await,
        None => Err("no_login_in_progress".into()),
    };
    let mut location = Url::parse(&bff.return_url).map_err(|_| ProxyError::Misconfigured {
        problem: "BFF_RETURN_URL is not a URL".into(),
    })?;
    let mut cookies: Vec<String> = tag
        .iter()
        .map(|t| expire_login_cookie(t, bff.secure_cookies))
        .collect();
    match outcome {
        Ok(session_cookie) => cookies.push(session_cookie),
        Err(code) => {
            location
                .query_pairs_mut()
                .append_pair("edge_oauth_error", &code);
        }
    }
    let mut reply = Reply::redirect(location.as_str());
    for c in cookies {
        reply.headers.push(("Set-Cookie", c));
    }
    Ok(reply)
}

/// The session cookie of a completed login, or the stable code of why it failed.
async fn finish_login(
    req: &Request,
    config: &Config,
    bff: &BffConfig,
    env: &Env,
    tag: &str,
) -> Result<String, String> {
    let Some(login) = read_login_cookie(req, bff, tag).await else {
        return Err("no_login_in_progress".into());
    };
    let stub = session_stub(env, &login).map_err(|_| "no_login_in_progress".to_owned())?;
    let answer = ask(
        &stub,
        &Command::BffComplete {
            secret: login.secret.clone(),
            callback_url: req.inner().url(),
        },
    )
    .await
    .map_err(|r| error_code(&r))?;
    let handle = answer["secret"]
        .as_str()
        .and_then(|s| SessionHandle::parse(&format!("{}.{s}", login.session_id)))
        .ok_or_else(|| "internal_error".to_owned())?;
    // A step-up's new session is in place: the one it replaces is deleted, and its refresh
    // tokens move into the new session, which revokes them at logout after its own. Best
    // effort: the new session keeps `replaces` until then, and its logout logs that one out.
    if let Some(old) = answer["replaces"].as_str().and_then(SessionHandle::parse) {
        let moved = match session_stub(env, &old) {
            Ok(old_stub) => ask(
                &old_stub,
                &Command::BffReplaced {
                    secret: old.secret.clone(),
                },
            )
            .await
            .ok(),
            Err(_) => None,
        };
        let kept = match moved {
            Some(moved) => {
                let refresh_tokens = moved["refresh_tokens"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(RefreshToken::new))
                    .collect();
                let command = Command::BffSuperseded {
                    secret: handle.secret.clone(),
                    replaced: old,
                    refresh_tokens,
                };
                ask(&stub, &command).await.is_ok()
            }
            None => false,
        };
        if !kept {
            worker::console_warn!(
                "edge-oauth-worker: a step-up could not take over the session it replaced; this session's logout ends it"
            );
        }
    }
    let value = seal(
        bff,
        CookieKind::Session,
        &SessionHandle::encode(&handle.session_id, &handle.secret),
    )
    .await
    .map_err(|e| e.code().to_owned())?;
    Ok(set_cookie(
        CookieKind::Session,
        &value,
        config.limits.session_idle_secs,
        bff.secure_cookies,
    ))
}

/// `GET /bff/session`: `{"authenticated": false}` without a session, else its status
/// (issuer, provider, MCP server, `expires_at`, `scope`), never a token.
async fn status(
    req: &Request,
    config: &Config,
    bff: &BffConfig,
    env: &Env,
) -> Result<Reply, Reply> {
    if req.method() != Method::Get {
        return Err(method_not_allowed("GET, OPTIONS"));
    }
    csrf(req, config, true)?;
    let Some((handle, stub)) = session_cookie(req, bff, env).await? else {
        return Ok(Reply::json(
            200,
            &serde_json::json!({ "authenticated": false }),
        ));
    };
    let answer = ask(
        &stub,
        &Command::BffStatus {
            secret: handle.secret,
        },
    )
    .await?;
    let mut reply = Reply::json(200, &answer);
    if answer["authenticated"] != true {
        reply.headers.push((
            "Set-Cookie",
            expire_cookie(CookieKind::Session, bff.secure_cookies),
        ));
    }
    Ok(reply)
}

/// `POST /bff/logout`: the session's refresh token revoked upstream (RFC 7009), the session
/// deleted, the cookie expired. Without a session it only expires the cookie.
async fn logout(
    req: &Request,
    config: &Config,
    bff: &BffConfig,
    env: &Env,
) -> Result<Reply, Reply> {
    if req.method() != Method::Post {
        return Err(method_not_allowed("POST, OPTIONS"));
    }
    csrf(req, config, false)?;
    if let Some((handle, stub)) = session_cookie(req, bff, env).await? {
        let answer = ask(
            &stub,
            &Command::BffLogout {
                secret: handle.secret,
            },
        )
        .await?;
        // A session a step-up replaced and could not take over: logged out too (best effort).
        if let Some(old) = answer["replaces"].as_str().and_then(SessionHandle::parse)
            && let Ok(old_stub) = session_stub(env, &old)
            && ask(&old_stub, &Command::BffLogout { secret: old.secret })
                .await
                .is_err()
        {
            worker::console_warn!(
                "edge-oauth-worker: the session a step-up replaced stays until its idle expiry"
            );
        }
    }
    let mut reply = Reply::json(200, &serde_json::json!({ "authenticated": false }));
    reply.headers.push((
        "Set-Cookie",
        expire_cookie(CookieKind::Session, bff.secure_cookies),
    ));
    Ok(reply)
}

/// `/bff/mcp/<name>` (`POST`, `GET`, `DELETE`): the request to the configured MCP server with
/// the allowlisted headers and the session's access token, redirects not followed; the
/// answer's status, allowlisted headers and body stream back unchanged (an SSE stream is
/// piped, never buffered). The timeout covers the response head only.
async fn mcp(
    req: &mut Request,
    config: &Config,
    bff: &BffConfig,
    env: &Env,
    name: &str,
    allowed: Option<&str>,
) -> Result<Outcome, Reply> {
    let method = req.method();
    if !matches!(method, Method::Get | Method::Post | Method::Delete) {
        return Err(method_not_allowed("GET, POST, DELETE, OPTIONS"));
    }
    csrf(req, config, method == Method::Get)?;
    let server = bff.mcp_server(name).ok_or(ProxyError::UnknownMcpServer)?;
    let (handle, stub) = session_cookie(req, bff, env)
        .await?
        .ok_or(ProxyError::NotAuthenticated)?;
    let body = match method {
        Method::Post => Some(read_body(req, bff.max_mcp_body_bytes).await?),
        _ => None,
    };
    let method_name = match method {
        Method::Get => "GET",
        Method::Delete => "DELETE",
        _ => "POST",
    };
    let internal = |_| ProxyError::Internal {
        what: "building the MCP request",
    };
    let mut nonce: Option<String> = None;
    let mut answered_nonce = false;
    let response = loop {
        let answer = ask(
            &stub,
            &Command::BffAccessToken {
                secret: handle.secret.clone(),
                mcp_server: server.name.clone(),
                method: Some(method_name.into()),
                nonce: nonce.take(),
            },
        )
        .await?;
        let token = answer["access_token"]
            .as_str()
            .ok_or(ProxyError::Internal {
                what: "a session answer without an access token",
            })?;
        // A session bound to its own DPoP key: the DPoP scheme and the session's proof for
        // this request (RFC 9449 §7.1).
        let proof = answer["dpop"].as_str();
        let headers = Headers::new();
        for (n, v) in req.headers().entries() {
            if mcp_request_header_allowed(&n) {
                headers.append(&n, &v).map_err(internal)?;
            }
        }
        match proof {
            Some(p) => {
                headers
                    .set("Authorization", &format!("DPoP {token}"))
                    .map_err(internal)?;
                headers.set("DPoP", p).map_err(internal)?;
            }
            None => headers
                .set("Authorization", &format!("Bearer {token}"))
                .map_err(internal)?,
        }
        let mut init = RequestInit::new();
        init.with_method(method.clone())
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if let Some(body) = &body {
            init.with_body(Some(
                worker::js_sys::Uint8Array::from(body.as_slice()).into(),
            ));
        }
        let upstream = Request::new_with_init(&server.url, &init).map_err(internal)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(upstream);
        let sent = pin!(fetch.send_with_signal(&signal));
        let timer = pin!(Delay::from(Duration::from_millis(
            config.limits.upstream_timeout_ms
        )));
        let response = match select(sent, timer).await {
            Either::Left((Ok(r), _)) => r,
            Either::Left((Err(_), _)) => return Err(ProxyError::McpServerUnavailable.into()),
            Either::Right(_) => {
                controller.abort();
                return Err(ProxyError::McpServerUnavailable.into());
            }
        };
        // The MCP server's nonce challenge (RFC 9449 §9), answered once with a new proof.
        if proof.is_some() && !answered_nonce && response.status_code() == 401 {
            let get = |n: &str| response.headers().get(n).ok().flatten();
            let head = edge_oauth_core::HttpResponse::new(
                401,
                [
                    ("WWW-Authenticate", get("WWW-Authenticate")),
                    ("DPoP-Nonce", get("DPoP-Nonce")),
                ]
                .into_iter()
                .filter_map(|(n, v)| Some((n.to_owned(), v?)))
                .collect(),
                "",
            );
            if let Some(n) = edge_oauth_core::dpop::resource_nonce_challenge(&head) {
                nonce = Some(n.to_owned());
                answered_nonce = true;
                continue;
            }
        }
        break response;
    };
    let status = response.status_code();
    if (300..400).contains(&status) {
        return Err(ProxyError::McpServerUnavailable.into());
    }
    // The configured MCP server asks for more scope (403 `insufficient_scope`): the session
    // keeps the challenge's scope for a step-up login (`POST /bff/login` with `step_up`); the
    // 403 itself goes to the page unchanged, with `X-Edge-OAuth-Step-Up: <scope>` when such a
    // login would be accepted (the page reads that, not the MCP server's challenge).
    let challenge = response.headers().get("WWW-Authenticate").ok().flatten();
    let mut step_up = None;
    if let Some(scope) = insufficient_scope_challenge(status, challenge.as_deref()) {
        let answer = ask(
            &stub,
            &Command::BffChallenge {
                secret: handle.secret.clone(),
                mcp_server: server.name.clone(),
                scope: scope.clone(),
            },
        )
        .await?;
        // Recorded for this session, asking for something not granted yet, and within what a
        // step-up login may ask for.
        let granted = answer["scope"].as_str();
        if answer["recorded"] == true
            && !edge_oauth_core::scope::contains_all(granted, Some(&scope))
            && login_scope(server, granted, Some(&scope)).is_ok()
        {
            step_up = Some(scope);
        }
    }
    let out = Headers::new();
    for (n, v) in response.headers().entries() {
        if mcp_response_header_allowed(&n) {
            out.append(&n, &v).map_err(internal)?;
        }
    }
    if let Some(scope) = step_up {
        out.set(STEP_UP_HEADER, &scope).map_err(internal)?;
    }
    for (n, v) in credentialed_cors(allowed) {
        out.append(n, &v).map_err(internal)?;
    }
    let (_, body) = response.into_parts();
    Ok(Outcome::Stream(
        ResponseBuilder::new()
            .with_status(status)
            .with_headers(out)
            .body(body),
    ))
}
